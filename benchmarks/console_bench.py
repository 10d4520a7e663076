"""The console's device table with many devices: how long the page takes to render.

    .venv/bin/python benchmarks/console_bench.py [--devices 10000] [--repeats 3]

Writes ``--devices`` devices of one project straight into a fresh service database
(online or not, a device profile, an installed module, a tag), starts a real ``tinyml
serve`` with its LwM2M server, signs in to the console and times ``GET /devices``
(all devices, sorted by last seen; an endpoint filter; a tag filter) and, to compare,
``GET /v1/devices``: the median of ``--repeats`` requests each, in ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lwm2m_support import free_udp_port  # noqa: E402
from service_support import Server  # noqa: E402

from platformio_tinyml.service.db import Device, Project, open_database  # noqa: E402


def _fleet(server: Server, project: str, n: int) -> None:
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:
            pid = db.scalar(select(Project.id).where(Project.name == project))
            caps = {"profile": {"board": "sensor-m4", "core": "cortex-m4", "ram_bytes": 65536},
                    "slots": [{"index": 0, "module": "kws", "version": "3", "state": "active"}]}
            db.add_all(Device(endpoint=f"dev-{i:05d}", project_id=pid, online=i % 3 != 0, capabilities=caps,
                              tags=["site-a" if i % 2 else "site-b"]) for i in range(n))
            db.commit()
    finally:
        engine.dispose()


def _median_ms(get, repeats: int) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        r = get()
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text[:200]
        text = r.text
    return statistics.median(times), text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data", "--lwm2m-port", free_udp_port())
        token = server.token("fleet")
        _fleet(server, "fleet", args.devices)
        server.start()
        try:
            console = httpx.Client(base_url=server.url, timeout=300)
            csrf = re.search(r'name="csrf" value="([^"]+)"', console.get("/signin").text).group(1)
            console.post("/signin", data={"token": token, "csrf": csrf})
            print(f"{args.devices:,} devices, median of {args.repeats}")
            for what, q in (("all, sorted by last seen", ""), ("filter: one endpoint", "dev-00999"),
                            ("filter: a tag (half)", "site-a")):
                ms, text = _median_ms(lambda: console.get("/devices", params={"q": q, "sort": "last_seen",
                                                                             "desc": 1}), args.repeats)
                shown = re.search(r'id="count">([^<]*)<', text).group(1)
                print(f"  GET /devices, {what:<26} {ms:8.0f} ms  ({shown})")
            api = server.client(token)
            ms, _ = _median_ms(lambda: api.get("/v1/devices"), args.repeats)
            print(f"  GET /v1/devices (the list the page is made from) {ms:8.0f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
