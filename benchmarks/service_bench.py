"""The service's speed: cache hits under 50 concurrent clients, and a cold KWS compile
through the service vs the same compile in-process.

    .venv/bin/python benchmarks/service_bench.py [--clients 50] [--requests 2000] [--repeats 5] [--cold-only]

Starts a real ``tinyml serve`` (embedded default: SQLite, 2 workers) on a free
loopback port with a temporary ``--data``, and prints one table (also written
to ``bench-out/service_bench.json``):

* cache hit: ``POST /v1/compilations`` of the KWS model for a board whose
  build exists (answer 200, ``cached: true``), ``--clients`` concurrent
  keep-alive connections from one asyncio client; p50/p99 latency and
  requests/s over ``--requests`` requests;
* cold compile: median of ``--repeats`` compiles of the KWS model with cgen,
  each a cache miss (a new C name), from the POST to the artifact downloaded;
  against the median of the same compiles with ``pipeline.compile_model`` in
  this process (imports done before timing, as in the service's workers);
* the same as a user runs it (``--cli-repeats``, 0 to skip): ``tinyml compile`` against
  ``tinyml remote compile`` against the running service, each a fresh process from the
  shell, cache misses, median wall time of each command.

The server's CPU time per cache hit (from /proc) is printed too: on a
shared, loaded machine it is the figure that does not depend on the load.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KWS = SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
BOARD = "nucleo_f446re"
os.environ.setdefault("TINYML_BOARDS_DIRS", str(SHARED / "boards"))
sys.path.insert(0, str(REPO))


def start_server(data: Path, log_requests: bool = True) -> tuple[subprocess.Popen, str, str]:
    from platformio_tinyml.service.auth import create_token
    from platformio_tinyml.service.db import open_database
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine, session = open_database(f"sqlite:///{data / 'service.db'}")
    with session() as db:
        token = create_token(db, "bench", ("compile", "read"))
    engine.dispose()
    proc = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "serve", "--data", str(data),
                             "--port", str(port)], stderr=open(data / "serve.log", "w"),
                            env={**os.environ, "PYTHONPATH": str(REPO),
                                 "TINYML_SERVICE_LOG_REQUESTS": "yes" if log_requests else "no"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/v1/health").status_code == 200:
                return proc, url, token
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("tinyml serve did not start: " + (data / "serve.log").read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compile_remote(client: httpx.Client, name: str) -> float:
    t = time.perf_counter()
    r = client.post("/v1/compilations", files={"model": (KWS.name, KWS.read_bytes())},
                    data={"target": BOARD, "backend": "cgen", "name": name})
    assert r.status_code == 202, r.text
    comp = r.json()
    while comp["state"] in ("queued", "running"):   # a long poll: answered as the job ends
        comp = client.get(f"/v1/compilations/{comp['id']}", params={"wait": 30}).json()
    assert comp["state"] == "succeeded", comp
    assert client.get(comp["artifact_url"]).status_code == 200
    return time.perf_counter() - t


def compile_local(name: str, out: Path) -> float:
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.pipeline import compile_model
    dev = load_profile(BOARD)
    t = time.perf_counter()
    compile_model(KWS, dev, out / name, name=name, backend="cgen")
    return time.perf_counter() - t


def cli_compile(args: list[str], env: dict) -> float:
    """Wall time of one ``tinyml`` command, started as a user's shell starts it."""
    t = time.perf_counter()
    r = subprocess.run([str(REPO / ".venv" / "bin" / "tinyml"), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stdout + r.stderr
    return wall


def lookup_body() -> dict:
    """What a client sends to ask for the KWS build by key (``ServiceClient.lookup``)."""
    from platformio_tinyml.device import load_profile
    return {"model_sha256": hashlib.sha256(KWS.read_bytes()).hexdigest(), "model_file": KWS.name,
            "name": "kws_ref_model", "backend": "cgen", "options": {}, "profile": load_profile(BOARD).to_dict()}


async def hammer_raw(url: str, token: str, clients: int, requests: int) -> tuple[list[float], float]:
    """The lookup hits from ``clients`` keep-alive connections written with asyncio streams:
    one pre-encoded request, the answer read by its Content-Length. httpx costs a few
    milliseconds of CPU per request on the client, which shares the CPUs with the server
    here and would be what is measured."""
    host, port = url.split("//", 1)[1].split(":")
    body = json.dumps(lookup_body()).encode()
    request = (f"POST /v1/compilations/lookup HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    left = [requests]

    async def one_client():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while left[0] > 0:
                left[0] -= 1
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                assert head.startswith(b"HTTP/1.1 200") and b'"cached":true' in answer, head + answer[:300]
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, time.perf_counter() - t0


async def hammer(url: str, token: str, clients: int, requests: int, by_key: bool) -> tuple[list[float], float]:
    """``requests`` cache hits from ``clients`` concurrent connections: by key (the lookup) or by upload."""
    model, body = KWS.read_bytes(), lookup_body()
    latencies: list[float] = []
    left = [requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        async def one_client():
            while left[0] > 0:
                left[0] -= 1
                t = time.perf_counter()
                if by_key:
                    r = await client.post("/v1/compilations/lookup", json=body)
                else:
                    r = await client.post("/v1/compilations", files={"model": (KWS.name, model)},
                                          data={"target": BOARD, "backend": "cgen"})
                latencies.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["cached"], r.text

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return latencies, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--no-request-log", action="store_true",
                    help="start the service without its one log line per request (the default logs, as users get)")
    ap.add_argument("--cold-only", action="store_true", help="measure the cold compile only (no cache-hit load)")
    ap.add_argument("--cli-repeats", type=int, default=5,
                    help="tinyml compile vs tinyml remote compile, as fresh processes (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyml-service-bench-") as tmp:
        tmp = Path(tmp)
        proc, url, token = start_server(tmp, log_requests=not args.no_request_log)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
                compile_remote(c, "kws_warmup")            # forkserver started, the board's manifest read
                remote = [compile_remote(c, f"kws_remote_{i}") for i in range(args.repeats)]
                compile_remote(c, "kws_ref_model")         # the build the cache hits below find
            compile_local("kws_local_warmup", tmp / "local")
            local = [compile_local(f"kws_local_{i}", tmp / "local") for i in range(args.repeats)]
            env = dict(os.environ, TINYML_SERVICE_URL=url, TINYML_SERVICE_TOKEN=token)
            common = [str(KWS), "-t", BOARD, "--backend", "cgen"]
            cli_local, cli_remote = [], []
            for i in range(args.cli_repeats):      # interleaved: both see the same load
                cli_local.append(cli_compile(["compile", *common, "--name", f"kws_cli_l{i}",
                                              "-o", str(tmp / "cli" / f"l{i}")], env))
                cli_remote.append(cli_compile(["remote", "compile", *common, "--name", f"kws_cli_r{i}",
                                               "-o", str(tmp / "cli" / f"r{i}")], env))
            hits = {}
            for how, by_key in () if args.cold_only else (("lookup", True), ("upload", False)):
                def run(n):
                    if by_key:
                        return asyncio.run(hammer_raw(url, token, args.clients, n))
                    return asyncio.run(hammer(url, token, args.clients, n, by_key))
                run(args.clients * 2)   # connections, caches
                cpu0 = cpu_seconds(proc.pid)
                lat, wall = run(args.requests)
                hits[how] = (sorted(lat), wall, cpu_seconds(proc.pid) - cpu0)
        finally:
            proc.terminate()
            proc.wait(30)
    figures = {"clients": args.clients, "requests": args.requests} if hits else {}
    for how, (lat, wall, server_cpu) in hits.items():
        figures.update({f"{how}_hit_p50_ms": 1000 * lat[len(lat) // 2],
                        f"{how}_hit_p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1],
                        f"{how}_hit_rps": len(lat) / wall, f"{how}_server_cpu_ms_per_hit": 1000 * server_cpu / len(lat)})
    figures["request_log"] = not args.no_request_log
    figures.update({"cold_service_s": statistics.median(remote), "cold_in_process_s": statistics.median(local),
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]})
    figures["cold_ratio"] = figures["cold_service_s"] / figures["cold_in_process_s"]
    if cli_local:
        figures.update({"cli_local_s": statistics.median(cli_local), "cli_remote_s": statistics.median(cli_remote)})
        figures["cli_ratio"] = figures["cli_remote_s"] / figures["cli_local_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_bench.json").write_text(json.dumps(figures, indent=2))
    for how in hits:
        print(f"| cache hit by {how}, {args.clients} clients, {args.requests} requests | "
              f"p50 {figures[how + '_hit_p50_ms']:.1f} ms, p99 {figures[how + '_hit_p99_ms']:.1f} ms, "
              f"{figures[how + '_hit_rps']:.0f} req/s, server CPU {figures[how + '_server_cpu_ms_per_hit']:.2f} ms "
              "per request |")
    print(f"| cold KWS cgen compile, median of {args.repeats} | service {figures['cold_service_s']:.3f} s, "
          f"in-process {figures['cold_in_process_s']:.3f} s, ratio {figures['cold_ratio']:.2f} |")
    if "cli_ratio" in figures:
        print(f"| cold KWS cgen compile as a user runs it, median of {args.cli_repeats} | `tinyml remote compile` "
              f"{figures['cli_remote_s']:.3f} s, `tinyml compile` {figures['cli_local_s']:.3f} s, "
              f"ratio {figures['cli_ratio']:.2f} |")
    print(f"(machine: {os.cpu_count()} CPUs, load average {figures['load_average']:.1f}; one log line per request: "
          f"{'yes' if figures['request_log'] else 'no'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
