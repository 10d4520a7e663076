"""The console's device table with many devices: how long the page takes to render.

    .venv/bin/python benchmarks/console_bench.py [--devices 10000] [--repeats 3]

Writes ``--devices`` devices of one project straight into a fresh service database
(online or not, a device profile, an installed module, a tag), starts a real ``tinyml
serve`` with its LwM2M server, signs in to the console and times ``GET /devices``
(all devices sorted by last seen and by RAM, a JSON field; an endpoint filter; a tag
filter; the 50th page), the JSON its script polls every 2 s for the same view
(``GET /device-rows``) and, to compare,
``GET /v1/devices``: the median of ``--repeats`` requests each, in ms; then the page in
headless Chromium (load, and filter with the form, to the next page's load event).
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


def _browser(server: Server, token: str, repeats: int) -> None:
    """The same page in headless Chromium: load it (to the load event), then filter it with the form."""
    from console_support import chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    driver = chromium()
    try:
        driver.get(server.url + "/signin")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "form.card button").click()
        WebDriverWait(driver, 30).until(expected_conditions.url_contains("/compilations"))
        loads, filters = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            driver.get(server.url + "/devices?sort=last_seen&desc=1")
            loads.append((time.perf_counter() - started) * 1000)
            old = driver.find_element(By.TAG_NAME, "html")
            driver.find_element(By.ID, "q").send_keys("site-a")
            started = time.perf_counter()
            driver.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
            WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
            filters.append((time.perf_counter() - started) * 1000)
        shown = driver.find_element(By.ID, "count").text
        print(f"  Chromium: load the page {statistics.median(loads):8.0f} ms; filter it {statistics.median(filters):8.0f} ms"
              f"  ({shown})")
    finally:
        driver.quit()


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
            for what, q, sort in (("all, by last seen", "", "last_seen"), ("all, by RAM (JSON)", "", "ram_bytes"),
                                  ("filter: one endpoint", "dev-00999", "endpoint"),
                                  ("filter: a tag (half)", "site-a", "tags"), ("page 50", "", "endpoint")):
                params = {"q": q, "sort": sort, "desc": 1, "page": 50 if what == "page 50" else 1}
                ms, text = _median_ms(lambda: console.get("/devices", params=params), args.repeats)
                shown = re.search(r'id="count">([^<]*)<', text).group(1)
                live, _ = _median_ms(lambda: console.get("/device-rows", params=params), args.repeats)
                print(f"  GET /devices, {what:<22} {ms:8.0f} ms; its live refresh /device-rows {live:6.0f} ms"
                      f"  ({shown})")
            _browser(server, token, args.repeats)
            api = server.client(token)
            ms, _ = _median_ms(lambda: api.get("/v1/devices"), args.repeats)
            print(f"  GET /v1/devices (the list the page is made from) {ms:8.0f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
