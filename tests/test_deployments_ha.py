"""Two ``tinyml serve`` processes on one PostgreSQL share devices and deployments.

A real PostgreSQL cluster (started by the test on a free loopback port), two
real servers on it (servers ``a`` and ``b``, each with its own HTTP and LwM2M
port, one ``--data`` folder as docs/service.md asks), and real device agents,
each with both servers (``--server`` twice: it registers with the first and
fails over to the second when the first stops answering its Update). Two
devices start on ``a``, one on ``b``: ``a`` owns the deployment (it was
created there), each server delivers to the devices registered with it.
``a`` is SIGKILLed in the middle of its transfers; its devices notice at
their next Update and register with ``b``, which takes the deployment's
lease once it runs out, claims their rows and resumes each transfer at the
byte the database recorded. Every device ends up running the module, with
TensorFlow Lite Micro's output, as read from the devices themselves.

Before that, while both run, a deployment owned by ``a`` is rolled back: the
device registered with ``b`` is rolled back by ``b``, as ``a`` asked.
"""

from __future__ import annotations

import re

import pytest
from lwm2m_support import free_udp_port
from module_support import kws_probe_modules
from service_support import Server, fleet_project, interrupt, postgres_cluster, wait_for

from deploy_support import agent, create, finished, on_device, public_key, wait_capabilities

pytest.importorskip("psycopg")

LEASE_S = 4
ENV = {"TINYML_SERVICE_LWM2M_TIMEOUT_S": "3", "TINYML_SERVICE_LWM2M_LEASE_S": str(LEASE_S)}
ON_A, ON_B = ["ha-a-0", "ha-a-1"], ["ha-b"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """PostgreSQL, servers a and b on it, and the agents (ON_A first with a, ON_B with b)."""
    tmp = tmp_path_factory.mktemp("ha")
    (tmp / "pg").mkdir()
    with postgres_cluster(tmp / "pg") as db:
        token = fleet_project(db, tmp / "data", "fleet", "ha-*")
        ports = {"a": free_udp_port(), "b": free_udp_port()}
        servers = {k: Server(tmp / "data", "--database", db, "--lwm2m-port", p, "--lwm2m-server-id", k,
                             env=ENV) for k, p in ports.items()}
        for srv in servers.values():
            srv.start()
        pub = public_key(tmp / "key.pub")
        agents = [agent(pub, [ports["a"], ports["b"]], "--endpoint", "ha-a", "--count", 2, "--lifetime", 30,
                        "--max-block", 16, "--failover-s", 3),
                  agent(pub, [ports["b"], ports["a"]], "--endpoint", "ha-b", "--lifetime", 30, "--max-block", 16,
                        "--failover-s", 3)]
        try:
            yield {"servers": servers, "a": servers["a"].client(token), "b": servers["b"].client(token)}
        finally:
            interrupt(*agents)
            for srv in servers.values():
                if srv.proc.poll() is None:
                    srv.stop()


@pytest.fixture(scope="module")
def kws():
    mods, golden = kws_probe_modules(1, 2)
    return {v: m.data for v, m in mods.items()}, golden


def _rows(client, dep_id) -> dict:
    return {d["endpoint"]: d for d in client.get(f"/v1/deployments/{dep_id}").json()["devices"]}


def test_devices_of_either_server_are_seen_through_both(cluster):
    a, b = cluster["a"], cluster["b"]
    wait_capabilities(b, ON_A + ON_B)               # devices of either server, read through b
    wait_capabilities(a, ON_A + ON_B)
    assert {ep: b.get(f"/v1/devices/{ep}").json()["registration"]["server"] for ep in ON_A + ON_B} == \
        {"ha-a-0": "a", "ha-a-1": "a", "ha-b": "b"}


def test_a_rollback_by_the_owner_reaches_a_device_of_the_other_server(cluster, kws):
    """v1 to one device of each server (owned by a, each delivered by its own server), then rolled back
    through a: b rolls back its device, which itself reports no module active again."""
    (modules, golden), a, b = kws, cluster["a"], cluster["b"]
    r = create(a, modules[1], {"endpoints": ["ha-a-0", "ha-b"]})
    assert r.status_code == 201, r.text
    dep = finished(a, r.json()["id"], timeout=40)
    assert dep["state"] == "succeeded", dep
    assert {d["endpoint"]: d["driver"] for d in dep["devices"]} == {"ha-a-0": "a", "ha-b": "b"}
    assert on_device(a, "ha-a-0") == ("1", golden) and on_device(b, "ha-b") == ("1", golden)

    dep = a.post(f"/v1/deployments/{dep['id']}/rollback").json()
    assert dep["state"] == "rolled_back" and dep["counts"]["rolled_back"] == 2, dep
    assert on_device(a, "ha-a-0")[0] == "" and on_device(b, "ha-b")[0] == ""
    assert f"deployment {dep['id']}: rolling back 'ha-b' for the deployment's owner" in \
        cluster["servers"]["b"].log.read_text()


def test_the_other_server_takes_over_a_deployment_when_its_owner_is_killed(cluster, kws):
    (modules, golden), a, b, servers = kws, cluster["a"], cluster["b"], cluster["servers"]
    module = modules[2]
    r = create(a, module, {"endpoints": ON_A + ON_B}, criteria={"inferences": 1, "within_s": 20})
    assert r.status_code == 201, r.text
    dep_id = r.json()["id"]
    assert r.json()["owner"] == "a" and r.json()["counts"]["pending"] == 3, r.json()

    # exactly one server drives each device: the one it is registered with
    rows = wait_for(lambda: (rs := _rows(b, dep_id)) and all(rs[ep]["bytes_done"] for ep in ON_A) and rs,
                    "the transfers on a under way", timeout=20, interval=0.02)
    assert {ep: rows[ep]["driver"] for ep in ON_A} == {"ha-a-0": "a", "ha-a-1": "a"}, rows
    assert rows["ha-b"]["driver"] in ("b", None), rows      # None: not claimed yet
    servers["a"].proc.kill()                        # no shutdown: its leases stay until they run out
    servers["a"].proc.wait(10)
    cut = {ep: r["bytes_done"] for ep, r in _rows(b, dep_id).items() if ep in ON_A}
    assert all(0 < n < len(module) for n in cut.values()), cut

    dep = finished(b, dep_id, timeout=60)
    assert dep["state"] == "succeeded", dep
    assert [(d["endpoint"], d["state"], d["bytes_done"], d["driver"]) for d in dep["devices"]] == \
        [(ep, "succeeded", len(module), "b") for ep in ON_A + ON_B]
    for ep in ON_A + ON_B:
        assert on_device(b, ep) == ("2", golden), ep
        assert b.get(f"/v1/devices/{ep}").json()["registration"]["server"] == "b"
    log = servers["b"].log.read_text()
    assert f"deployment {dep_id}: taken over from server 'a' (its lease ran out)" in log
    resumed = {m.group(1): int(m.group(2)) for m in re.finditer(
        rf"deployment {dep_id}: the transfer to '([^']+)' goes on at byte (\d+)", log)}
    assert resumed == cut, (resumed, cut)           # at the recorded byte, not from 0
