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

Then a deployment of ``--deployment-devices`` of those devices (1,000 by default; 0: none), its
rows planned by the runner's own ``plan`` and written by its ``DeploymentStore``, left paused
so that no runner moves it while its page keeps following it: ``GET /deployments/{id}`` and
the JSON that page polls every second (``GET /deployments/{id}/state``) are timed, then in
Chromium the page's load and one live refresh: every row is changed in the database (as a
runner's progress would), and the script's update of all rows is timed from the browser's own
records (the poll's fetch, from the Resource Timing entry; the update, to the mutation of the
table), with a marker set on ``window`` before that must survive (no reload).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace
from pathlib import Path

import httpx
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lwm2m_support import free_udp_port  # noqa: E402
from service_support import Server  # noqa: E402

from platformio_tinyml.lwm2m.deployment_store import DeploymentStore  # noqa: E402
from platformio_tinyml.lwm2m.deployments import plan  # noqa: E402
from platformio_tinyml.service.db import DeploymentDevice, Device, Project, open_database  # noqa: E402


def _fleet(server: Server, project: str, n: int) -> None:
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:
            pid = db.scalar(select(Project.id).where(Project.name == project))
            caps = {"profile": {"board": "sensor-m4", "core": "cortex-m4", "ram_bytes": 65536},
                    "slot_size": 65536, "executor_abi": 2, "kernel_set": "0x1f",
                    "slots": [{"index": 0, "module": "kws", "version": "3", "state": "active"}]}
            db.add_all(Device(endpoint=f"dev-{i:05d}", project_id=pid, online=i % 3 != 0, capabilities=caps,
                              tags=["site-a" if i % 2 else "site-b"]) for i in range(n))
            db.commit()
    finally:
        engine.dispose()


def _deployment(server: Server, project: str, n: int) -> str:
    """A paused deployment of the project's first ``n`` devices, its rows from the runner's ``plan``
    (three stages; the devices not online are skipped as offline) written by its store."""
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:
            pid = db.scalar(select(Project.id).where(Project.name == project))
            found = db.execute(select(Device.endpoint, Device.capabilities, Device.online)
                               .where(Device.project_id == pid).order_by(Device.endpoint).limit(n)).all()
        devices = [{"endpoint": ep, "capabilities": caps} for ep, caps, _ in found]
        online = {ep: {3, 9, 32100} for ep, _, up in found if up}
        stages = [10, 50, 100]
        rows = plan(SimpleNamespace(abi=2, kernel_mask=0b11, arena_bytes=20000), 3000, devices, online, stages)
        store = DeploymentStore(session)
        dep_id = store.create(pid, {"module_sha256": "0" * 64, "module_size": 3000, "module_name": "kws",
                                    "module_version": 4}, {"query": "ram >= 20000"}, stages,
                              {"activated": True, "inferences": 0, "within_s": 60}, 0.0, 1024, rows)
        store.set(dep_id, state="paused", message="paused for the benchmark")
        return dep_id
    finally:
        engine.dispose()


def _progress(server: Server, dep_id: str, state: str) -> None:
    """Every row of the deployment in ``state``, one more block done: one UPDATE, as a runner's
    progress on all of them at once would be."""
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:
            db.execute(update(DeploymentDevice).where(DeploymentDevice.deployment_id == dep_id)
                       .values(state=state, blocks_done=DeploymentDevice.blocks_done + 1))
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


def _signed_in(server: Server, token: str):
    """Headless Chromium signed in to the console."""
    from console_support import chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    driver = chromium()
    driver.get(server.url + "/signin")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.card button").click()
    WebDriverWait(driver, 30).until(expected_conditions.url_contains("/compilations"))
    return driver


def _browser(driver, server: Server, repeats: int) -> None:
    """The device table in headless Chromium: load it (to the load event), then filter it with the form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
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


# Watches the deployment's device table for the first update that shows ``window.benchWant`` in
# every row: when the script's update of the table ended (the mutation) and the next frame after it.
_WATCH = """
const body = document.getElementById("dep-devices");
window.benchSeen = null;
new MutationObserver(() => {
  if (window.benchSeen || !window.benchWant) return;
  const states = body.querySelectorAll(".state");
  for (const s of states) if (s.textContent !== window.benchWant) return;
  const dom = performance.now();
  requestAnimationFrame(() => setTimeout(() => { window.benchSeen = {dom, frame: performance.now(),
                                                                      rows: states.length}; }, 0));
}).observe(body, {childList: true, subtree: true, characterData: true});
"""

_TIMING = """
const seen = window.benchSeen;
const fetches = performance.getEntriesByType("resource").filter(
  (e) => e.name.endsWith("/state") && e.responseEnd <= seen.dom);
const f = fetches[fetches.length - 1];
return {fetch: f.responseEnd - f.startTime, update: seen.dom - f.responseEnd, frame: seen.frame - f.responseEnd,
        rows: seen.rows, bytes: f.encodedBodySize};
"""


def _deployment_browser(driver, server: Server, dep_id: str, repeats: int) -> None:
    """The deployment's page in headless Chromium: its load, then live refreshes of every row."""
    from selenium.webdriver.support.ui import WebDriverWait
    url = f"{server.url}/deployments/{dep_id}"
    loads = []
    for _ in range(repeats):
        started = time.perf_counter()
        driver.get(url)
        loads.append((time.perf_counter() - started) * 1000)
    driver.execute_script("window.benchMarker = 42;" + _WATCH)       # the marker is gone if the page reloads
    fetches, updates, frames, visible, rows, size = [], [], [], [], 0, 0
    for k in range(repeats):
        want = ("transferring", "delivered", "installed")[k % 3]
        driver.execute_script("window.benchSeen = null; window.benchWant = arguments[0];", want)
        started = time.perf_counter()
        _progress(server, dep_id, want)
        WebDriverWait(driver, 30, poll_frequency=0.02).until(lambda d: d.execute_script("return window.benchSeen"))
        visible.append((time.perf_counter() - started) * 1000)
        t = driver.execute_script(_TIMING)
        fetches.append(t["fetch"])
        updates.append(t["update"])
        frames.append(t["frame"])
        rows, size = t["rows"], t["bytes"]
    assert driver.execute_script("return window.benchMarker") == 42, "the deployment page reloaded"
    print(f"  Chromium: load the deployment page {statistics.median(loads):6.0f} ms; a live refresh of "
          f"{rows:,} rows: the poll's fetch {statistics.median(fetches):5.0f} ms ({size:,} bytes), the table's "
          f"update {statistics.median(updates):5.0f} ms, to the next frame {statistics.median(frames):5.0f} ms; "
          f"database change to seen {statistics.median(visible):5.0f} ms (the page polls every second); no reload")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--deployment-devices", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data", "--lwm2m-port", free_udp_port())
        token = server.token("fleet")
        _fleet(server, "fleet", args.devices)
        dep_id = _deployment(server, "fleet", args.deployment_devices) if args.deployment_devices else ""
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
            driver = _signed_in(server, token)
            try:
                _browser(driver, server, args.repeats)
                if dep_id:
                    ms, text = _median_ms(lambda: console.get(f"/deployments/{dep_id}"), args.repeats)
                    live, state = _median_ms(lambda: console.get(f"/deployments/{dep_id}/state"), args.repeats)
                    print(f"  deployment of {args.deployment_devices:,} devices ({text.count('<tr>') - 1:,} rows): "
                          f"GET /deployments/{{id}} {ms:6.0f} ms; its live refresh /state {live:6.0f} ms "
                          f"({len(state):,} bytes)")
                    _deployment_browser(driver, server, dep_id, args.repeats)
            finally:
                driver.quit()
            api = server.client(token)
            ms, _ = _median_ms(lambda: api.get("/v1/devices"), args.repeats)
            print(f"  GET /v1/devices (the list the page is made from) {ms:8.0f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
