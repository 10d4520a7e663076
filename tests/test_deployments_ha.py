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
"""

from __future__ import annotations

import re

import pytest
from lwm2m_support import free_udp_port
from module_support import kws_probe_modules
from service_support import Server, fleet_project, postgres_cluster, wait_for

from deploy_support import agent, create, finished, on_device, public_key, stop_agents, wait_capabilities

pytest.importorskip("psycopg")

LEASE_S = 4
ENV = {"TINYML_SERVICE_LWM2M_TIMEOUT_S": "3", "TINYML_SERVICE_LWM2M_LEASE_S": str(LEASE_S)}
ON_A, ON_B = ["ha-a-0", "ha-a-1"], ["ha-b"]


def _rows(client, dep_id) -> dict:
    return {d["endpoint"]: d for d in client.get(f"/v1/deployments/{dep_id}").json()["devices"]}


def test_the_other_server_takes_over_a_deployment_when_its_owner_is_killed(tmp_path):
    mods, golden = kws_probe_modules(1)
    module = mods[1].data
    (tmp_path / "pg").mkdir()
    with postgres_cluster(tmp_path / "pg") as db:
        token = fleet_project(db, tmp_path / "data", "fleet", "ha-*")
        ports = {"a": free_udp_port(), "b": free_udp_port()}
        servers = {k: Server(tmp_path / "data", "--database", db, "--lwm2m-port", p, "--lwm2m-server-id", k,
                             env=ENV) for k, p in ports.items()}
        for srv in servers.values():
            srv.start()
        a, b = (servers[k].client(token) for k in "ab")
        pub = public_key(tmp_path / "key.pub")
        agents = [agent(pub, [ports["a"], ports["b"]], "--endpoint", "ha-a", "--count", 2, "--lifetime", 30,
                        "--max-block", 16, "--failover-s", 3),
                  agent(pub, [ports["b"], ports["a"]], "--endpoint", "ha-b", "--lifetime", 30, "--max-block", 16,
                        "--failover-s", 3)]
        try:
            wait_capabilities(b, ON_A + ON_B)           # devices of either server, read through b
            assert {ep: b.get(f"/v1/devices/{ep}").json()["registration"]["server"] for ep in ON_A + ON_B} == \
                {"ha-a-0": "a", "ha-a-1": "a", "ha-b": "b"}

            r = create(a, module, {"endpoints": ON_A + ON_B}, criteria={"inferences": 1, "within_s": 20})
            assert r.status_code == 201, r.text
            dep_id = r.json()["id"]
            assert r.json()["owner"] == "a" and r.json()["counts"]["pending"] == 3, r.json()

            # exactly one server drives each device: the one it is registered with
            rows = wait_for(lambda: (rs := _rows(b, dep_id)) and all(rs[ep]["bytes_done"] for ep in ON_A) and rs,
                            "the transfers on a under way", timeout=20, interval=0.02)
            assert {ep: rows[ep]["driver"] for ep in ON_A} == {"ha-a-0": "a", "ha-a-1": "a"}, rows
            assert rows["ha-b"]["driver"] in ("b", None), rows      # None: b already finished it
            servers["a"].proc.kill()                    # no shutdown: its leases stay until they run out
            servers["a"].proc.wait(10)
            cut = {ep: r["bytes_done"] for ep, r in _rows(b, dep_id).items() if ep in ON_A}
            assert all(0 < n < len(module) for n in cut.values()), cut

            dep = finished(b, dep_id, timeout=60)
            assert dep["state"] == "succeeded", dep
            assert [(d["endpoint"], d["state"], d["bytes_done"], d["driver"]) for d in dep["devices"]] == \
                [(ep, "succeeded", len(module), "b") for ep in ON_A + ON_B]
            for ep in ON_A + ON_B:
                assert on_device(b, ep) == ("1", golden), ep
                assert b.get(f"/v1/devices/{ep}").json()["registration"]["server"] == "b"
            log = servers["b"].log.read_text()
            assert f"deployment {dep_id}: taken over from server 'a' (its lease ran out)" in log
            resumed = {m.group(1): int(m.group(2)) for m in re.finditer(
                rf"deployment {dep_id}: the transfer to '([^']+)' goes on at byte (\d+)", log)}
            assert resumed == cut, (resumed, cut)       # at the recorded byte, not from 0
        finally:
            stop_agents(agents)
            for srv in servers.values():
                if srv.proc.poll() is None:
                    srv.stop()
