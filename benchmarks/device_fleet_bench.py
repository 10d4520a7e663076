"""A fleet of simulated devices: registration, then the KWS module pushed to every one of them.

    .venv/bin/python benchmarks/device_fleet_bench.py [--devices 100] [--block 1024]
                                                     [--deployment [--stages 10,50,100]] [--firmware]

Starts a real ``tinyml serve`` (SQLite, LwM2M on a free loopback UDP port) and
one ``tinyml device-agent --count N`` process (N devices, each its own UDP
socket and its own two slots behind the host-built C loader). Measures:

* registration: from the agent's start until the service lists all N devices
  online, and how many of them had their capabilities read by then;
* delivery: the KWS module (MLPerf Tiny, packed for the host ABI and signed)
  pushed to all N at once through ``POST /v1/devices/{ep}/modules``, until every
  delivery is ``active`` (block-wise transfer, the loader's checks, Install,
  Activate, one inference on every device): wall time, devices/s, failures;
* with ``--deployment``: the same module to all N through one ``POST /v1/deployments``
  (selected by a capability query, staged, each device checked for one inference after
  activation, every transition written to the database), until the deployment ends;
* CPU: the server's and the agent's CPU seconds during the delivery, per device
  (on a loaded machine the wall time says little; these do not depend on the load);
* memory: resident set of the server and of the agent process at the end.

With ``--firmware`` the agent runs ``--firmware example_projects/module-cortex-m4``: each
device's MCU is the example firmware booted in QEMU (the module packed for 32-bit Cortex-M);
the figures add the QEMU boots (counted from the agent's ``-v`` log) and their host time.

Prints one table and writes ``bench-out/device_fleet_bench.json``.

``--hold-s S`` measures registrations held instead of a delivery (the issue's 10,000
registrations): the devices come from ``--agents K`` agent processes (N/K each,
registration lifetime ``--lifetime``, so each device sends an Update every
lifetime/2 s), all registered, then held S seconds; prints the server's CPU during
the hold (per second and per Update), its resident memory, and how many devices are
still online at the end (none may have expired).
"""


from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KWS = SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
KERNELS = "tml_conv_s8,tml_dwconv_s8,tml_fc_s8,tml_avgpool_s8,tml_softmax_s8"
sys.path.insert(0, str(REPO))


def _free(kind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process so far (the figure that does not depend on the load);
    ``children``: of its ended child processes instead (the agent's QEMU runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    k = 13 if children else 11
    return (int(fields[k]) + int(fields[k + 1])) / os.sysconf("SC_CLK_TCK")


def _module_and_key(tmp: Path, firmware: bool = False) -> tuple[bytes, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from platformio_tinyml.module.kernels import Abi
    from platformio_tinyml.module.pack import pack_graph
    from platformio_tinyml.pipeline import load_any
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
    pub = tmp / "key.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    g, _ = load_any(KWS)
    return pack_graph(g, KWS.read_bytes(), Abi.ILP32_LE if firmware else Abi.LP64_LE, 1, key.sign).data, pub


def _agent(coap: int, pub: Path, endpoint: str, count: int, log: Path, *extra: str) -> subprocess.Popen:
    """``tinyml device-agent --count N`` for the server on ``coap``, with the KWS kernels."""
    return subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent",
                             "--server", f"coap://127.0.0.1:{coap}", "--endpoint", endpoint,
                             "--public-key", str(pub), "--count", str(count), "--kernels", KERNELS, *extra],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env={**os.environ, "PYTHONPATH": str(REPO)})


def _stop(*procs) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait(60)


def _report(out: dict, name: str) -> None:
    """Print ``out`` one figure a line and write it to bench-out/``name``."""
    width = max(map(len, out)) + 2
    for k, v in out.items():
        print(f"{k:{width}} {v}")
    (REPO / "bench-out").mkdir(exist_ok=True)
    (REPO / "bench-out" / name).write_text(json.dumps(out, indent=2) + "\n")


def start_server(data: Path, coap: int, n: int) -> tuple[subprocess.Popen, str, str]:
    from platformio_tinyml.service.auth import create_token
    from platformio_tinyml.service.db import open_database
    data.mkdir(parents=True)
    http = _free(socket.SOCK_STREAM)
    engine, session = open_database(f"sqlite:///{data / 'service.db'}")
    with session() as db:
        token = create_token(db, "bench", ("read", "deploy"))
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TINYML_SERVICE_LOG_REQUESTS": "no",
           "TINYML_SERVICE_LWM2M_FLOOD_COUNT": str(n + 100), "TINYML_SERVICE_LWM2M_TIMEOUT_S": "10"}
    subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", "service", "devices", "allow",
                    "--project", "bench", "--pattern", "bench-*", "--data", str(data)], check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "serve", "--data", str(data),
                             "--port", str(http), "--lwm2m-port", str(coap)],
                            stderr=open(data / "serve.log", "w"), env=env)
    url = f"http://127.0.0.1:{http}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url, token
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("tinyml serve did not start: " + (data / "serve.log").read_text()[-2000:])


async def deliver_all(url: str, token: str, endpoints: list[str], module: bytes, block: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        t0 = time.perf_counter()
        for ep in endpoints:
            r = await client.post(f"/v1/devices/{ep}/modules", content=module, params={"block_size": block},
                                  headers={"content-type": "application/octet-stream"})
            r.raise_for_status()
        states: dict[str, dict] = {}
        pending = list(endpoints)
        while pending:          # one GET per 0.2 s while the oldest delivery runs: polling costs the server little
            st = (await client.get(f"/v1/devices/{pending[0]}/modules")).json()["delivery"]
            if st["state"] in ("active", "failed"):
                states[pending.pop(0)] = st
            else:
                await asyncio.sleep(0.2)
        wall = time.perf_counter() - t0
    failed = [s for s in states.values() if s["state"] != "active"]
    return {"wall_s": wall, "failed": len(failed), "first_failure": failed[0]["message"] if failed else None,
            "resumed": sum(s["resumed"] for s in states.values()),
            "blocks": sum(s["blocks_done"] for s in states.values()),
            "inferences": sum(s["inference_count"] or 0 for s in states.values()),
            "not_one_inference": sorted(ep for ep, s in states.items() if s["inference_count"] != 1)[:10]}


async def deploy_all(url: str, token: str, n: int, module: bytes, block: int, stages: str) -> dict:
    """One deployment to every device (a query picks them all); the same figures as :func:`deliver_all`."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        t0 = time.perf_counter()
        r = await client.post("/v1/deployments", files={"module": ("kws.tmm", module)}, data={
            "selector": json.dumps({"query": "slot_count == 2 and online == true"}),
            "stages": json.dumps([float(x) for x in stages.split(",")]), "block_size": str(block),
            "criteria": json.dumps({"inferences": 1, "within_s": 60}), "max_failure_ratio": "0.05"})
        r.raise_for_status()
        dep = r.json()
        while dep["state"] == "running":
            await asyncio.sleep(0.5)
            dep = (await client.get(f"/v1/deployments/{dep['id']}")).json()
        wall = time.perf_counter() - t0
    rows = dep["devices"]
    failed = [d for d in rows if d["state"] != "succeeded"]
    return {"wall_s": wall, "failed": len(failed) + n - len(rows),
            "first_failure": (failed[0]["reason"] if failed else None), "state": dep["state"],
            "resumed": 0, "blocks": sum(d["blocks_done"] for d in rows),
            "inferences": sum(1 for d in rows if d["state"] == "succeeded"),
            "not_one_inference": [], "message": dep["message"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--hold-s", type=float, default=0, help="hold the registrations this long, no delivery")
    ap.add_argument("--agents", type=int, default=1, help="agent processes (with --hold-s)")
    ap.add_argument("--lifetime", type=int, default=300, help="registration lifetime (with --hold-s)")
    ap.add_argument("--deployment", action="store_true", help="one POST /v1/deployments instead of N pushes")
    ap.add_argument("--stages", default="100", help="with --deployment: cumulative percentages (default 100)")
    ap.add_argument("--firmware", action="store_true", help="devices run the example firmware in QEMU")
    args = ap.parse_args()
    if args.hold_s:
        return hold(args)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    module, pub = _module_and_key(tmp, args.firmware)
    board = "mps2-an386" if args.firmware else "host-loader"
    coap = _free(socket.SOCK_DGRAM)
    server, url, token = start_server(tmp / "data", coap, args.devices)
    agent = None
    try:
        endpoints = [f"bench-{i}" for i in range(args.devices)]
        t0 = time.perf_counter()
        agent = _agent(coap, pub, "bench", args.devices, tmp / "agent.log",
                       *(["--firmware", str(REPO / "example_projects" / "module-cortex-m4"), "-v"]
                         if args.firmware else []))
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        while True:               # registered; delivery needs no capabilities (their reads may time out)
            devs = client.get("/v1/devices").json()       # a deployment's selector does: it waits for them
            if sum(d["online"] and (not args.deployment or d.get("board") == board)
                   for d in devs) >= args.devices:
                break
            if agent.poll() is not None:
                raise SystemExit("the agent stopped: " + (tmp / "agent.log").read_text()[-2000:])
            time.sleep(0.2)
        reg_s = time.perf_counter() - t0
        caps = sum(d.get("board") == board for d in client.get("/v1/devices").json())
        cpu0 = _cpu_s(server.pid), _cpu_s(agent.pid), _cpu_s(agent.pid, children=True)
        res = asyncio.run(deploy_all(url, token, args.devices, module, args.block, args.stages) if args.deployment
                          else deliver_all(url, token, endpoints, module, args.block))
        cpu = _cpu_s(server.pid) - cpu0[0], _cpu_s(agent.pid) - cpu0[1], _cpu_s(agent.pid, children=True) - cpu0[2]
        out = {"devices": args.devices, "mode": f"deployment, stages {args.stages}" if args.deployment else "pushes",
               "module_bytes": len(module), "block": args.block,
               "registration_s": round(reg_s, 2), "capabilities_read": caps, "delivery_wall_s": round(res["wall_s"], 2),
               "devices_per_s": round(args.devices / res["wall_s"], 1), "failed": res["failed"],
               "first_failure": res["first_failure"], "resumed_blocks": res["resumed"],
               "blocks_acknowledged": res["blocks"], "inferences": res["inferences"],
               "not_one_inference": res["not_one_inference"],
               "server_cpu_ms_per_device": round(1000 * cpu[0] / args.devices, 1),
               "agent_cpu_ms_per_device": round(1000 * cpu[1] / args.devices, 1),
               "server_rss_mib": round(_rss_mib(server.pid), 1), "agent_rss_mib": round(_rss_mib(agent.pid), 1),
               "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
               **({"deployment": res["state"], "message": res["message"]} if args.deployment else {}),
               **({"qemu_boots": (tmp / "agent.log").read_text().count(": firmware: "),
                   "qemu_cpu_ms_per_device": round(1000 * cpu[2] / args.devices, 1)} if args.firmware else {})}
    finally:
        _stop(agent, server)
    _report(out, "device_fleet_bench.json")
    return 0 if out["failed"] == 0 else 1


def hold(args) -> int:
    """Registrations held: K agents, N devices, S seconds of Updates; server CPU and memory."""
    tmp = Path(tempfile.mkdtemp(prefix="fleet-hold-"))
    _, pub = _module_and_key(tmp)
    coap = _free(socket.SOCK_DGRAM)
    server, url, token = start_server(tmp / "data", coap, args.devices)
    agents = []
    try:
        per = args.devices // args.agents
        t0 = time.perf_counter()
        for k in range(args.agents):
            agents.append(_agent(coap, pub, f"bench-{k}", per, tmp / f"agent-{k}.log",
                                 "--lifetime", str(args.lifetime)))
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        total = per * args.agents

        def online() -> int:
            return sum(d["online"] for d in client.get("/v1/devices").json())
        while online() < total:
            for k, a in enumerate(agents):
                if a.poll() is not None:
                    raise SystemExit("an agent stopped: " + (tmp / f"agent-{k}.log").read_text()[-2000:])
            time.sleep(1.0)
        reg_s = time.perf_counter() - t0
        rss_registered = _rss_mib(server.pid)
        cpu0, h0 = _cpu_s(server.pid), time.perf_counter()
        time.sleep(args.hold_s)
        held_s = time.perf_counter() - h0
        cpu = _cpu_s(server.pid) - cpu0
        updates = total * held_s / (args.lifetime / 2)
        out = {"devices": total, "agents": args.agents, "lifetime_s": args.lifetime,
               "registration_s": round(reg_s, 1), "registrations_per_s": round(total / reg_s, 1),
               "held_s": round(held_s, 1), "online_at_end": online(),
               "server_cpu_s_per_s": round(cpu / held_s, 3),
               "server_cpu_ms_per_update": round(1000 * cpu / updates, 2) if updates else None,
               "server_rss_mib_registered": round(rss_registered, 1),
               "server_rss_mib_end": round(_rss_mib(server.pid), 1),
               "agents_rss_mib": round(sum(_rss_mib(a.pid) for a in agents), 1),
               "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    finally:
        _stop(*agents, server)
    _report(out, "device_fleet_hold.json")
    return 0 if out["online_at_end"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
