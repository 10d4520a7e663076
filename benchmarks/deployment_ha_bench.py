"""Two ``tinyml serve`` on one PostgreSQL: the owner of a deployment killed mid-transfer, the other finishes it.

    .venv/bin/python benchmarks/deployment_ha_bench.py [--devices 40] [--lease-s 5] [--lifetime 30]

A throw-away PostgreSQL cluster (``tests/service_support.postgres_cluster``),
servers ``a`` and ``b`` on it (one ``--data`` folder), and two agent processes
of N/2 devices each, both with both servers (``--server`` twice), the first
registered with ``a``, the second with ``b``. One deployment of the KWS module
(16-byte blocks, one inference checked per device) is created on ``a``; once a
quarter of ``a``'s devices have bytes acknowledged, ``a`` gets SIGKILL.
Measures, from the kill:

* ``lease_taken_s``: until ``b`` logs the takeover (the lease runs out after ``--lease-s``);
* ``all_on_b_s``: until every device is registered with ``b`` (each notices at
  its next Update, every lifetime/2, then fails over);
* ``finished_s``: until the deployment ends; and its state, the devices failed,
  how many transfers were resumed at a recorded byte rather than 0, ``b``'s CPU.

Prints one table and writes ``bench-out/deployment_ha_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import device_fleet_bench as fleet  # noqa: E402
from service_support import Server, fleet_project, postgres_cluster  # noqa: E402


def _servers(db: str, data: Path, lease_s: float, n: int) -> dict:
    env = {"TINYML_SERVICE_LWM2M_LEASE_S": str(lease_s), "TINYML_SERVICE_LOG_REQUESTS": "no",
           "TINYML_SERVICE_LWM2M_FLOOD_COUNT": str(n + 100), "TINYML_SERVICE_LWM2M_TIMEOUT_S": "10"}
    servers = {}
    for name in "ab":
        port = fleet._free(socket.SOCK_DGRAM)
        servers[name] = Server(data, "--database", db, "--lwm2m-port", port, "--lwm2m-server-id", name, env=env)
        servers[name].coap_port = port
        servers[name].start()
    return servers


def _registered_with(client: httpx.Client, server: str) -> int:
    return sum(1 for d in client.get("/v1/devices").json()
               if d["online"] and client.get(f"/v1/devices/{d['endpoint']}").json()["registration"]["server"] == server)


def run(args, tmp: Path, db: str) -> dict:
    module, pub = fleet._module_and_key(tmp)
    token = fleet_project(db, tmp / "data", "bench", "bench-*")
    servers = _servers(db, tmp / "data", args.lease_s, args.devices)
    a, b = (httpx.Client(base_url=servers[k].url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            for k in "ab")
    half = args.devices // 2
    agents = [fleet._agent(servers[first].coap_port, pub, f"bench-{first}", half, tmp / f"agent-{first}.log",
                           "--server", f"coap://127.0.0.1:{servers[second].coap_port}", "--lifetime",
                           str(args.lifetime), "--failover-s", "5", "--max-block", "16")
              for first, second in (("a", "b"), ("b", "a"))]
    try:
        deadline = time.monotonic() + 300
        while sum(d.get("board") == "host-loader" for d in b.get("/v1/devices").json()) < 2 * half:
            assert time.monotonic() < deadline, "the devices did not register"
            time.sleep(0.5)
        r = a.post("/v1/deployments", files={"module": ("kws.tmm", module)}, data={
            "selector": json.dumps({"query": "slot_count == 2 and online == true"}), "block_size": "16",
            "criteria": json.dumps({"inferences": 1, "within_s": 60}), "max_failure_ratio": "0.05"})
        r.raise_for_status()
        dep_id, t_create = r.json()["id"], time.monotonic()
        on_a = [f"bench-a-{i}" for i in range(half)]
        while sum(d["bytes_done"] > 0 for d in b.get(f"/v1/deployments/{dep_id}").json()["devices"]
                  if d["endpoint"] in on_a) < max(1, half // 4):
            time.sleep(0.05)
        servers["a"].proc.kill()
        t_kill = time.monotonic()
        servers["a"].proc.wait(10)
        rows = {d["endpoint"]: d for d in b.get(f"/v1/deployments/{dep_id}").json()["devices"]}
        cut = sum(1 for ep in on_a if rows[ep]["state"] == "transferring" and rows[ep]["bytes_done"] > 0)
        cpu0 = fleet._cpu_s(servers["b"].proc.pid)
        lease_s = all_on_b = None
        while True:
            now = time.monotonic() - t_kill
            if lease_s is None and "taken over from server 'a'" in servers["b"].log.read_text():
                lease_s = now
            if all_on_b is None and _registered_with(b, "b") == 2 * half:
                all_on_b = now
            dep = b.get(f"/v1/deployments/{dep_id}").json()
            if dep["state"] != "running":
                break
            assert now < 600, dep
            time.sleep(0.5)
        finished = time.monotonic() - t_kill
        log = servers["b"].log.read_text()
        resumed = len(re.findall(rf"deployment {dep_id}: the transfer to '[^']+' goes on at byte [1-9]", log))
        return {"devices": 2 * half, "lease_s": args.lease_s, "lifetime_s": args.lifetime,
                "module_bytes": len(module), "block": 16,
                "killed_after_s": round(t_kill - t_create, 2), "cut_transfers_on_a": cut,
                "lease_taken_s": round(lease_s, 2) if lease_s is not None else None,
                "all_on_b_s": round(all_on_b, 2) if all_on_b is not None else None,
                "finished_s": round(finished, 2), "state": dep["state"],
                "succeeded": dep["counts"]["succeeded"], "failed": dep["counts"]["failed"],
                "resumed_at_recorded_byte": resumed,
                "server_b_cpu_s_after_kill": round(fleet._cpu_s(servers["b"].proc.pid) - cpu0, 2),
                "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    finally:
        fleet._stop(*agents)
        for srv in servers.values():
            if srv.proc.poll() is None:
                srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=40, help="devices in all, half on each server")
    ap.add_argument("--lease-s", type=float, default=5.0)
    ap.add_argument("--lifetime", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="deploy-ha-bench-"))
    (tmp / "pg").mkdir()
    with postgres_cluster(tmp / "pg") as db:
        out = run(args, tmp, db)
    fleet._report(out, "deployment_ha_bench.json")
    return 0 if out["state"] == "succeeded" and out["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
