"""The service end to end: a real `tinyml serve` over HTTP, compiles checked against `tinyml compile`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import tarfile
import threading
import time

import pytest

from conftest import MLPERF, MLPERF_INT8
from service_support import module_server, one_line, tinyml, wait_done

KWS, AD, VWW = (MLPERF / MLPERF_INT8[m] for m in ("kws", "ad", "vww"))
BOARD = "nucleo_f446re"


server = module_server("--workers", "2")


@pytest.fixture(scope="module")
def alice(server):
    return server.client(server.token("alice", "compile,read,deploy", cli=True))


def submit(client, model, **fields):
    with open(model, "rb") as f:
        return client.post("/v1/compilations", files={"model": (model.name, f.read())},
                           data={"target": BOARD, **fields})


def files_of(tar_gz: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_kws_artifact_is_byte_identical_to_tinyml_compile_and_repeat_is_a_cache_hit(server, alice, tmp_path):
    r = submit(alice, KWS, backend="cgen")
    assert r.status_code == 202 and r.json()["cached"] is False, r.text
    done = wait_done(alice, r.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["backend"] == "cgen" and done["report"]["arena_bytes"] == 16000
    artifact = alice.get(done["artifact_url"])
    assert artifact.status_code == 200 and artifact.headers["content-type"] == "application/gzip"
    served = files_of(artifact.content)

    # the local compile, run beside the model as the service runs it
    tinyml("compile", KWS.name, "-t", BOARD, "-b", "cgen", "-o", tmp_path / "local", cwd=MLPERF)
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    # tinyml-report.html is rendered by the CLI from report.json, also by `tinyml remote compile`
    assert served.keys() | {"tinyml-report.html"} == local.keys() and "report.json" in served
    for name in served:
        assert served[name] == local[name], name

    again = submit(alice, KWS, backend="cgen")
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["cached"] is True and body["state"] == "succeeded" and body["id"] != done["id"]
    assert files_of(alice.get(body["artifact_url"]).content) == served


def test_remote_compile_writes_what_the_local_compile_writes(server, alice, tmp_path):
    token = alice.headers["Authorization"].split()[1]
    env = {"TINYML_SERVICE_TOKEN": token}
    rc = tinyml("remote", "compile", KWS, "-t", BOARD, "-o", tmp_path / "remote", "--service", server.url, env=env)
    tinyml("compile", KWS, "-t", BOARD, "-o", tmp_path / "local")
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == local
    for name in local:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert "backend cgen" in rc.stdout and "arena 16,000 B" in rc.stdout


def test_remote_status_fetch_and_compare(server, alice, tmp_path):
    env = {"TINYML_SERVICE_TOKEN": alice.headers["Authorization"].split()[1], "TINYML_SERVICE_URL": server.url}
    comp_id = tinyml("remote", "compile", AD, "-t", BOARD, "--no-wait", env=env).stdout.strip()
    wait_done(alice, comp_id)
    status = tinyml("remote", "status", comp_id, env=env).stdout
    assert status.startswith(f"{comp_id}: succeeded") and "backend cgen" in status
    fetched = tinyml("remote", "fetch", comp_id, "-o", tmp_path / "got", env=env).stdout
    assert "report.json" in fetched and (tmp_path / "got" / "ad01_int8.h").is_file()
    remote = json.loads(tinyml("remote", "compare", AD, "-t", "esp32dev", "--json", env=env).stdout)
    local = json.loads(tinyml("compare", AD, "-t", "esp32dev", "--json").stdout)
    assert remote == local
    bad = tinyml("remote", "status", "0" * 32, env=env, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "404" in bad.stderr


def test_build_front_end_compile_through_the_service_then_the_local_cache_hits(server, alice, tmp_path):
    """integrations.remote.compile_remote: what `pio run` with a service will call."""
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.integrations.core import ModelSpec, compile_cached
    from platformio_tinyml.integrations.remote import ServiceClient, compile_remote
    spec, device = ModelSpec.make(KWS, backend="cgen"), load_profile(BOARD)
    client = ServiceClient(server.url, alice.headers["Authorization"].split()[1])
    remote = compile_remote(client, spec, device, tmp_path / "build" / "kws")
    local = compile_cached(spec, device, tmp_path / "local" / "kws")
    assert not local.cached and remote.report == local.report
    names = sorted(p.name for p in local.outdir.iterdir())
    assert sorted(p.name for p in remote.outdir.iterdir()) == names   # .tinyml-key included
    for name in names:
        assert (remote.outdir / name).read_bytes() == (local.outdir / name).read_bytes(), name
    again = compile_cached(spec, device, remote.outdir)   # the next unchanged build: no compile, no request
    assert again.cached and again.report == remote.report


def test_lookup_by_digest_answers_the_upload_s_compilation_without_the_model(server, alice):
    sha = hashlib.sha256(AD.read_bytes()).hexdigest()
    ask = {"model_sha256": sha, "model_file": AD.name, "name": "ad_lookup", "backend": "cgen", "target": BOARD}
    one_line(alice.post("/v1/compilations/lookup", json=ask), 404, "POST /v1/compilations")
    built = wait_done(alice, submit(alice, AD, backend="cgen", name="ad_lookup").json()["id"])
    hit = alice.post("/v1/compilations/lookup", json=ask)
    assert hit.status_code == 200 and hit.json()["cached"] is True and hit.json()["state"] == "succeeded", hit.text
    assert hit.json()["id"] == built["id"] and hit.json()["report"] == built["report"]   # its own, no new row
    # repeats are answered from memory (before routing), the same bytes; the token is checked each time
    assert {alice.post("/v1/compilations/lookup", json=ask).content for _ in range(3)} == {hit.content}
    one_line(server.client(server.token("alice", "compile")).post("/v1/compilations/lookup", json=ask), 403,
             "'read' scope")
    one_line(server.client(None).post("/v1/compilations/lookup", json=ask), 401, "token")
    one_line(server.client("tml_not-a-token").post("/v1/compilations/lookup", json=ask), 401, "token")
    # the board's profile as data, and a read-only token, find the same build
    profile = alice.get(f"/v1/boards/{BOARD}").json()
    reader = server.client(server.token("alice", "read"))
    by_profile = reader.post("/v1/compilations/lookup", json={**ask, "target": None, "profile": profile})
    assert by_profile.status_code == 200 and by_profile.json()["id"] == built["id"], by_profile.text
    # another project gets its own id for the same bytes, and nothing of alice's
    dave = server.client(server.token("dave", "read"))
    theirs = dave.post("/v1/compilations/lookup", json=ask)
    assert theirs.status_code == 200 and theirs.json()["id"] != built["id"], theirs.text
    assert dave.get(theirs.json()["artifact_url"]).content == alice.get(built["artifact_url"]).content
    # any input of the key changes the answer
    for change in ({"name": "ad_other"}, {"backend": "auto"}, {"options": {"x": "1"}}, {"model_sha256": "0" * 64},
                   {"model_file": "renamed.tflite"}):
        one_line(alice.post("/v1/compilations/lookup", json={**ask, **change}), 404, "no finished compilation")
    one_line(alice.post("/v1/compilations/lookup", json={**ask, "model_sha256": "xyz"}), 422, "model_sha256")
    one_line(alice.post("/v1/compilations/lookup", json={**ask, "target": "no_such_board"}), 422, "no_such_board")


def test_a_long_poll_answers_when_the_compilation_ends(server, alice):
    comp = submit(alice, VWW, backend="cgen", name="vww_long_poll").json()
    assert comp["state"] in ("queued", "running"), comp
    t = time.monotonic()
    done = alice.get(f"/v1/compilations/{comp['id']}", params={"wait": 60}, timeout=90)
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    assert time.monotonic() - t < 50   # answered as the job ended, not at the end of the wait
    assert done.json() == alice.get(f"/v1/compilations/{comp['id']}").json()
    t = time.monotonic()
    assert alice.get(f"/v1/compilations/{comp['id']}", params={"wait": 60}).json()["state"] == "succeeded"
    assert time.monotonic() - t < 5    # a finished compilation is not held
    for bad in ("-1", "61", "soon"):
        one_line(alice.get(f"/v1/compilations/{comp['id']}", params={"wait": bad}), 422, "wait")


def test_identical_concurrent_requests_compile_once(server, alice):
    before = alice.get("/v1/health").json()["jobs"].get("succeeded", 0)
    answers = [None] * 4

    def post(i):
        answers[i] = submit(alice, AD, name="ad_concurrent")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    done = [wait_done(alice, a.json()["id"]) for a in answers]
    assert len({d["id"] for d in done}) == len(answers)
    assert all(d["state"] == "succeeded" for d in done)
    assert len({(d["started_at"], d["finished_at"]) for d in done}) == 1   # one job behind them all
    assert alice.get("/v1/health").json()["jobs"]["succeeded"] == before + 1


def test_tokens_scopes_and_projects(server, alice):
    comp = submit(alice, KWS, backend="cgen").json()
    one_line(server.client(None).get(f"/v1/compilations/{comp['id']}"), 401, "token")
    one_line(server.client("tml_not-a-token").get("/v1/backends"), 401, "token")
    reader = server.client(server.token("alice", "read"))
    assert reader.get(f"/v1/compilations/{comp['id']}").status_code == 200
    one_line(submit(reader, KWS), 403, "'compile' scope")
    one_line(reader.post(f"/v1/compilations/{comp['id']}/module", data={"version": "1"}), 403, "'deploy' scope")
    bob = server.client(server.token("bob", "compile,read,deploy"))
    for path in ("", "/artifact"):
        one_line(bob.get(f"/v1/compilations/{comp['id']}{path}"), 404, "not found")
    one_line(bob.post(f"/v1/compilations/{comp['id']}/module", data={"version": "1"}), 404, "not found")
    # bob's identical request is a cache hit with his own id, and nothing of alice's
    hit = submit(bob, KWS, backend="cgen")
    assert hit.status_code == 200 and hit.json()["cached"] is True
    assert hit.json()["id"] != comp["id"] and "alice" not in hit.text
    assert bob.get("/v1/projects/current/public-key").json()["public_key_hex"] != \
        alice.get("/v1/projects/current/public-key").json()["public_key_hex"]


def test_signed_module_verifies_with_the_project_public_key(server, alice, tmp_path):
    from platformio_tinyml.module import decode_module
    comp = wait_done(alice, submit(alice, KWS, backend="cgen").json()["id"])
    r = alice.post(f"/v1/compilations/{comp['id']}/module", data={"version": "7", "kind": "graph"})
    assert r.status_code == 200, r.text
    (tmp_path / "kws.tmm").write_bytes(r.content)
    (tmp_path / "project.pub").write_text(alice.get("/v1/projects/current/public-key").json()["public_key_pem"])
    out = tinyml("module", "verify", tmp_path / "kws.tmm", "--pubkey", tmp_path / "project.pub").stdout
    assert "OK" in out and "version 7" in out
    assert decode_module(r.content).header.model_sha256 == hashlib.sha256(KWS.read_bytes()).digest()
    bob_pub = server.client(server.token("bob2")).get("/v1/projects/current/public-key").json()
    (tmp_path / "bob.pub").write_text(bob_pub["public_key_pem"])
    bad = tinyml("module", "verify", tmp_path / "kws.tmm", "--pubkey", tmp_path / "bob.pub", check=False)
    assert bad.returncode == 1 and "signature" in bad.stderr


def test_catalog_compare_health_and_metrics(server, alice):
    backends = {b["name"]: b for b in alice.get("/v1/backends").json()}
    assert backends["cgen"]["installed"] and "tflite" in backends["cgen"]["inputs"]
    assert "sklearn" in backends["emlearn"]["inputs"]
    boards = alice.get("/v1/boards", params={"q": "nucleo_f4"}).json()
    assert {"id": BOARD} in boards["boards"]
    profile = alice.get(f"/v1/boards/{BOARD}").json()
    assert profile["core"] == "cortex-m4" and profile["ram_bytes"] == 131072
    one_line(alice.get("/v1/boards/no_such_board"), 404, "no_such_board")
    # a profile sent as JSON compiles like the board id
    r = alice.post("/v1/compilations", files={"model": (KWS.name, KWS.read_bytes())},
                   data={"profile": json.dumps(profile), "backend": "cgen"})
    assert r.status_code == 200 and r.json()["cached"] is True, r.text
    # esp32 (Xtensa): every backend answers from its cheap checks, tvm included
    local = json.loads(tinyml("compare", AD, "-t", "esp32dev", "--json").stdout)
    remote = alice.post("/v1/compare", files={"model": (AD.name, AD.read_bytes())}, data={"target": "esp32dev"})
    assert remote.status_code == 200, remote.text
    assert remote.json()["backends"] == local["backends"] and remote.json()["chosen"] == local["chosen"]
    text = server.client(None).get("/metrics").text
    assert 'tinyml_jobs{state="succeeded"}' in text and 'tinyml_cache_requests_total{result="hit"}' in text
    assert 'tinyml_compile_seconds_bucket{backend="cgen",le="+Inf"}' in text
    assert server.client(None).get("/v1/openapi.json").json()["paths"]["/v1/compilations"]["post"]


def _running_jobs(pid: int) -> list[int]:
    """The compile children running a job under ``pid``: the forkserver's children that lead their
    own process group (a child forked ahead of its job waits in the forkserver's group)."""
    stat = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                _, ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
            stat[int(entry)] = (int(ppid), int(pgrp))
        except (OSError, ValueError, IndexError):
            continue
    children = {p for p, (pp, _) in stat.items() if pp == pid}
    return [p for p, (pp, group) in stat.items() if pp in children and group == p]


def test_a_compile_process_that_dies_fails_its_job_and_the_service_lives_on(server, alice):
    r = submit(alice, VWW, backend="cgen", name="vww_killed")
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while not (jobs := _running_jobs(server.proc.pid)):   # the compile child, as a crashing compiler dies
        assert time.monotonic() < deadline and server.proc.poll() is None
        time.sleep(0.005)
    for pid in jobs:
        os.kill(pid, signal.SIGKILL)
    done = wait_done(alice, r.json()["id"])
    assert done["state"] == "failed" and done["error"]["message"] == "the compiler process died (killed by SIGKILL)"
    assert "try another backend" in done["error"]["hint"]
    again = submit(alice, VWW, backend="cgen", name="vww_killed")   # a failed build is retried, not cached
    assert again.status_code == 202 and wait_done(alice, again.json()["id"])["state"] == "succeeded"


def test_restart_keeps_projects_tokens_jobs_and_artifacts(server):
    """Last in this file: stops and restarts the module's server."""
    token = server.token("carol")
    comp = wait_done(server.client(token), submit(server.client(token), AD, backend="cgen").json()["id"])
    artifact = server.client(token).get(comp["artifact_url"]).content
    pending = submit(server.client(token), VWW, backend="cgen", name="vww_across_restart").json()
    assert server.stop() == 0   # Ctrl-C while that job is queued or running
    log = server.log.read_text()
    assert "job " in log and "POST /v1/compilations 202" in log and "Traceback" not in log
    server.start()
    again = server.client(token).get(f"/v1/compilations/{comp['id']}")
    assert again.status_code == 200 and again.json()["state"] == "succeeded"
    assert server.client(token).get(comp["artifact_url"]).content == artifact
    assert submit(server.client(token), AD, backend="cgen").json()["cached"] is True
    resumed = wait_done(server.client(token), pending["id"])   # queued again at start, if it had not finished
    assert resumed["state"] == "succeeded"
    assert resumed["log"][-1].startswith("succeeded") and resumed["log"].count("queued") == 1
