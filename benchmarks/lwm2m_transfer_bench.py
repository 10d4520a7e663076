"""A ~30 KB module pushed block-wise over LwM2M on loopback: wall time vs the ideal, without and with loss.

    .venv/bin/python benchmarks/lwm2m_transfer_bench.py [--reps 3] [--seeds 5] [--loss 0.1] [--rtts 200]

The LwM2M server (:class:`~platformio_tinyml.lwm2m.server.LwM2MServer`, SQLite)
runs in this process; two ``tinyml device-agent`` processes (one device each,
the host-built C loader behind it) register to it, one directly and one
through ``tests/lossy_relay.py`` (the relay in this process too). For each:

* the round trip: the median (and 90th percentile) of ``--rtts`` confirmable
  Reads of ``/9/0/7`` made one after the other by the same server to the same
  agent (a CoAP exchange, both sides' encoding and decoding included);
* the transfer: the KWS module (MLPerf Tiny, packed for the host ABI and
  signed; 29,128 bytes: 29 Block1 writes of 1024 B to ``/9/0/2``), pushed
  ``--reps`` times (a new version each time) with the delivery code of
  ``tinyml serve`` (:class:`~platformio_tinyml.lwm2m.delivery.Delivery`);
  ``transfer_s`` is first block sent to last block acknowledged, ``total_s``
  also has the Reads, Install, Activate and the inference before ``active``.

The ideal is blocks × the median round trip of the same path. Then the
relayed device again with ``--loss`` of the datagrams dropped each way and as
many reordered (delayed 5-30 ms), for ``--seeds`` seeds: median and max.

Prints a table and writes ``bench-out/lwm2m_transfer_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KWS = REPO.parent / "shared" / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
KERNELS = "tml_conv_s8,tml_dwconv_s8,tml_fc_s8,tml_avgpool_s8,tml_softmax_s8"
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _modules(tmp: Path, versions: int) -> tuple[list[bytes], Path]:
    """The KWS module packed ``versions`` times (versions 1, 2, ...: each delivery must be newer) and the key."""
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
    return [pack_graph(g, KWS.read_bytes(), Abi.LP64_LE, v, key.sign).data for v in range(1, versions + 1)], pub


def _server(tmp: Path, port: int, timeout_s: float):
    from platformio_tinyml.lwm2m.ids import load_definitions
    from platformio_tinyml.lwm2m.server import LwM2MServer, Settings
    from platformio_tinyml.lwm2m.store import DeviceStore
    from platformio_tinyml.service.auth import get_or_create_project
    from platformio_tinyml.service.db import open_database
    _, session = open_database(f"sqlite:///{tmp / 'service.db'}")
    with session() as db:
        project = get_or_create_project(db, "bench")
        db.commit()
        project_id = project.id
    store = DeviceStore(session)
    store.allow(project_id, "xfer-*")
    return LwM2MServer(store, load_definitions(), Settings(port=port, request_timeout_s=timeout_s))


def _agent(tmp: Path, port: int, endpoint: str, pub: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent", "--server",
                             f"coap://127.0.0.1:{port}", "--endpoint", endpoint, "--public-key", str(pub),
                             "--kernels", KERNELS], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{endpoint}.log", "w"))


async def _round_trips(server, endpoint: str, n: int) -> list[float]:
    from platformio_tinyml.lwm2m.ids import ResourcePath
    path = ResourcePath(9, 0, 7)
    await server.read(endpoint, path)              # the content format is learnt: one format per request from here
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await server.read(endpoint, path)
        out.append(time.perf_counter() - t)
    return out


async def _push(server, endpoint: str, module: bytes, relay=None) -> dict:
    from platformio_tinyml.lwm2m.delivery import Delivery
    if relay is not None:
        relay.blocks.clear()
        relay.counts.clear()
    st = await Delivery(server, endpoint, module).run()
    if st.state != "active":
        raise SystemExit(f"delivery to {endpoint} failed: {st.message}")
    out = {"transfer_s": st.transfer_s, "total_s": st.finished - st.started, "resumed": st.resumed,
           "blocks": st.blocks_done}
    if relay is not None:
        out.update(block_requests=len(relay.blocks), dropped=relay.counts["dropped_up"] + relay.counts["dropped_down"],
                   delayed=relay.counts["delayed_up"] + relay.counts["delayed_down"])
    return out


async def run(args) -> dict:
    from lossy_relay import LossyRelay
    tmp = Path(tempfile.mkdtemp(prefix="xfer-bench-"))
    modules, pub = _modules(tmp, args.reps + args.reps + args.seeds)
    port = _free_udp()
    server = _server(tmp, port, args.timeout)
    await server.start()
    relay = LossyRelay(("127.0.0.1", port))
    rport = await relay.start()
    agents = [_agent(tmp, port, "xfer-direct", pub), _agent(tmp, rport, "xfer-relay", pub)]
    try:
        for _ in range(600):
            if {"xfer-direct", "xfer-relay"} <= server.regs.keys():
                break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("the agents did not register: " + (tmp / "xfer-direct.log").read_text()[-1000:])
        await asyncio.sleep(1.0)                   # the capability reads after registration are over
        size = len(modules[0])
        blocks = -(-size // 1024)
        result = {"module_bytes": size, "blocks": blocks, "block_size": 1024, "request_timeout_s": args.timeout,
                  "loss": args.loss, "paths": {}}
        versions = iter(range(len(modules)))
        for name, ep, via in (("direct", "xfer-direct", None), ("relay", "xfer-relay", relay)):
            rtts = await _round_trips(server, ep, args.rtts)
            rtt = statistics.median(rtts)
            pushes = [await _push(server, ep, modules[next(versions)], via) for _ in range(args.reps)]
            result["paths"][name] = {
                "rtt_median_ms": rtt * 1000, "rtt_p90_ms": sorted(rtts)[int(0.9 * len(rtts))] * 1000,
                "ideal_s": blocks * rtt, "pushes": pushes,
                "transfer_median_s": statistics.median(p["transfer_s"] for p in pushes),
                "total_median_s": statistics.median(p["total_s"] for p in pushes)}
        lossy = []
        for seed in range(1, args.seeds + 1):
            relay.set_loss(args.loss, args.loss, seed)
            lossy.append({"seed": seed, **await _push(server, "xfer-relay", modules[next(versions)], relay)})
        relay.set_loss(0.0)
        result["lossy"] = {"pushes": lossy,
                           "transfer_median_s": statistics.median(p["transfer_s"] for p in lossy),
                           "transfer_max_s": max(p["transfer_s"] for p in lossy),
                           "total_median_s": statistics.median(p["total_s"] for p in lossy),
                           "total_max_s": max(p["total_s"] for p in lossy)}
        return result
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(20)
        relay.stop()
        await server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="pushes per path without loss")
    ap.add_argument("--seeds", type=int, default=5, help="pushes with loss, one per seed")
    ap.add_argument("--loss", type=float, default=0.1, help="fraction dropped (and reordered) each way")
    ap.add_argument("--rtts", type=int, default=200, help="round trips measured per path")
    ap.add_argument("--timeout", type=float, default=10.0, help="the server's device request timeout (s)")
    args = ap.parse_args()
    r = asyncio.run(run(args))
    print(f"module {r['module_bytes']:,} B = {r['blocks']} blocks of 1024 B; request timeout {args.timeout:g} s; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'path':<22} {'RTT median':>10} {'RTT p90':>8} {'ideal':>8} {'transfer':>9} {'x ideal':>8} "
          f"{'total':>7}")
    for name, p in r["paths"].items():
        print(f"{name + ', 0 % loss':<22} {p['rtt_median_ms']:>8.2f}ms {p['rtt_p90_ms']:>6.2f}ms "
              f"{p['ideal_s'] * 1000:>6.1f}ms {p['transfer_median_s'] * 1000:>7.1f}ms "
              f"{p['transfer_median_s'] / p['ideal_s']:>8.2f} {p['total_median_s']:>6.2f}s")
    lossy, ideal = r["lossy"], r["paths"]["relay"]["ideal_s"]
    print(f"relay, {args.loss:.0%} loss+reorder: transfer median {lossy['transfer_median_s']:.2f} s "
          f"(x{lossy['transfer_median_s'] / ideal:.0f} ideal), max {lossy['transfer_max_s']:.2f} s; total median "
          f"{lossy['total_median_s']:.2f} s, max {lossy['total_max_s']:.2f} s")
    for p in lossy["pushes"]:
        print(f"  seed {p['seed']}: transfer {p['transfer_s']:.2f} s, total {p['total_s']:.2f} s, "
              f"{p['block_requests']} block requests for {p['blocks']} blocks, {p['resumed']} resumes, "
              f"{p['dropped']} datagrams dropped, {p['delayed']} delayed")
    out = REPO / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "lwm2m_transfer_bench.json").write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
