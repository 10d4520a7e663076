"""Scale-out: two API processes and Celery workers on a real Redis and a real PostgreSQL.

The fixtures start ``redis-server`` and a throw-away PostgreSQL cluster (``initdb`` +
``postgres``, as the ``postgres`` user when the tests run as root) on free loopback
ports and stop them afterwards. Jobs submitted to one API process are read from the
other; a worker killed (SIGKILL, its whole process group) in the middle of a job leaves
a stale heartbeat, the reaper queues the build again, and another worker finishes it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from service_support import Server, Worker, postgres_cluster, redis_server
from service_support import wait_for as _wait

SHARED = Path(__file__).resolve().parents[2] / "shared"
KWS = SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
AD = SHARED / "models" / "mlperf_tiny" / "ad01_int8.tflite"

pytest.importorskip("celery")
pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    with postgres_cluster(tmp_path_factory.mktemp("pg")) as url:
        yield url


ENV = {"TINYML_SERVICE_HEARTBEAT_S": "0.5", "TINYML_SERVICE_STALE_AFTER_S": "4"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_url, database_url):
    data = tmp_path_factory.mktemp("scaleout") / "data"
    data.mkdir()
    from platformio_tinyml.service.auth import create_token
    from platformio_tinyml.service.db import open_database
    engine, session = open_database(database_url)
    with session() as db:
        token = create_token(db, "team", ("compile", "read"))
    engine.dispose()
    flags = ["--database", database_url, "--broker", redis_url]
    apis = [Server(data, *flags, env=ENV) for _ in range(2)]
    for api in apis:
        api.start()
    yield {"data": data, "apis": apis, "token": token, "db": database_url, "broker": redis_url}
    for api in apis:
        api.stop()


def _client(api: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _submit(client: httpx.Client, model: Path, target: str = "nucleo_f446re", **fields) -> dict:
    r = client.post("/v1/compilations", files={"model": (model.name, model.read_bytes())},
                    data={"target": target, **fields})
    assert r.status_code in (200, 202), r.text
    return r.json()


def _state(client: httpx.Client, comp_id: str) -> dict:
    r = client.get(f"/v1/compilations/{comp_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_jobs_submitted_to_one_api_are_read_from_the_other(cluster):
    a, b = (_client(api, cluster["token"]) for api in cluster["apis"])
    workers = [Worker(cluster["data"], cluster["db"], cluster["broker"], env=ENV) for _ in range(2)]
    try:
        comps = [_submit(a, m, backend="cgen", name=f"m{k}") for k, m in enumerate((KWS, AD))]
        for comp in comps:
            done = _wait(lambda: (s := _state(b, comp["id"]))["state"] in ("succeeded", "failed") and s,
                         "a worker finishing the job", timeout=120, log=workers[0].log)
            assert done["state"] == "succeeded", done
            assert done["backend"] == "cgen"
            art = b.get(f"/v1/compilations/{comp['id']}/artifact")
            assert art.status_code == 200 and len(art.content) > 1000
        # the same inputs again, through the other API: the finished build, no new job
        again = _submit(b, KWS, backend="cgen", name="m0")
        assert again["cached"] is True and again["state"] == "succeeded"
    finally:
        for w in workers:
            w.stop()


def test_a_worker_killed_mid_job_loses_nothing(cluster):
    """A TVM build (seconds to tens of seconds) on worker 1, killed while it runs; worker 2
    starts afterwards, the reaper requeues the build, worker 2 finishes it."""
    pytest.importorskip("tvm")
    a, b = (_client(api, cluster["token"]) for api in cluster["apis"])
    first = Worker(cluster["data"], cluster["db"], cluster["broker"], "--concurrency", "1", env=ENV)
    second = None
    try:
        comp = _submit(a, KWS, "nucleo_h743zi", backend="tvm", name="killed")
        _wait(lambda: _state(b, comp["id"])["state"] == "running", "the job starting on worker 1",
              timeout=60, log=first.log)
        time.sleep(1.0)
        first.kill()
        assert _state(a, comp["id"])["state"] == "running"   # until the reaper sees the heartbeat stop
        second = Worker(cluster["data"], cluster["db"], cluster["broker"], "--concurrency", "1", env=ENV)
        done = _wait(lambda: (s := _state(b, comp["id"]))["state"] in ("succeeded", "failed") and s,
                     "the job finishing on worker 2", timeout=300, log=second.log)
        assert done["state"] == "succeeded", done
        assert any("queued again: its worker" in line and "stopped answering" in line for line in done["log"]), \
            done["log"]
        assert b.get(f"/v1/compilations/{comp['id']}/artifact").status_code == 200
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_slow_queue_does_not_hold_up_fast_jobs(cluster):
    """One worker takes only slow (tvm) jobs, one only fast: a cgen job submitted after a
    TVM build finishes while the TVM build still runs."""
    pytest.importorskip("tvm")
    a = _client(cluster["apis"][0], cluster["token"])
    slow = Worker(cluster["data"], cluster["db"], cluster["broker"], "--queues", "slow", "--concurrency", "1",
                  env=ENV)
    fast = Worker(cluster["data"], cluster["db"], cluster["broker"], "--queues", "fast", "--concurrency", "1",
                  env=ENV)
    try:
        tvm_job = _submit(a, KWS, "nucleo_h743zi", backend="tvm", name="slow1")
        _wait(lambda: _state(a, tvm_job["id"])["state"] == "running", "the TVM job starting", timeout=60,
              log=slow.log)
        cgen_job = _submit(a, AD, backend="cgen", name="fast1")
        done = _wait(lambda: (s := _state(a, cgen_job["id"]))["state"] in ("succeeded", "failed") and s,
                     "the cgen job finishing", timeout=60, log=fast.log)
        assert done["state"] == "succeeded", done
        assert _state(a, tvm_job["id"])["state"] == "running"
        _wait(lambda: _state(a, tvm_job["id"])["state"] == "succeeded", "the TVM job finishing", timeout=300,
              log=slow.log)
    finally:
        slow.stop()
        fast.stop()
