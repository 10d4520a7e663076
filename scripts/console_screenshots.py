#!/usr/bin/env python3
"""Screenshots of the web console for docs/console.md, made from a real service.

Starts ``tinyml serve`` (with its LwM2M server) in a temporary folder with five real
``tinyml device-agent`` devices (two of which cannot take the KWS module: a 16 KiB slot,
a firmware without the convolution kernels) and a scripted sensor that sends battery
levels; then, in headless Chromium, compiles the MLPerf Tiny anomaly-detection model
through the console, deploys the signed KWS module through the New deployment form in
two stages, and saves each page as ``docs/images/console-*.png`` (one of them at a
phone's width). Needs what the tests need: ``scripts/setup.sh`` (chromium,
chromium-driver, the dev extra) and ``../shared/models``.

    .venv/bin/python scripts/console_screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from aiocoap.numbers.codes import Code  # noqa: E402
from conftest import MLPERF, MLPERF_INT8  # noqa: E402  (sets TINYML_BOARDS_DIRS as the tests do)
from console_support import chromium  # noqa: E402
from lwm2m_support import RawDevice, free_udp_port  # noqa: E402
from service_support import Server, interrupt, tinyml  # noqa: E402
from module_support import kws_probe_modules  # noqa: E402
from test_deployments import _agent, _public_key, _wait_capabilities  # noqa: E402
from test_lwm2m_server import DEVICE_TLV, LINKS, TINYML_TLV  # noqa: E402

TLV, SENML_JSON = 11542, 110


def _until(fn, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except Exception:   # the page is reloading
            pass
        time.sleep(0.2)
    raise SystemExit("console_screenshots: the page did not get there in time")


AGENTS = (("dev-kws", "--count", 3), ("dev-kws-small", "--slot-size", 16384), ("dev-fc-only", "--kernels", "tml_fc_s8"))
AGENT_ENDPOINTS = ("dev-kws-0", "dev-kws-1", "dev-kws-2", "dev-kws-small", "dev-fc-only")


def _sensor(server) -> RawDevice:
    """A scripted LwM2M device without object 9 that sends battery levels (the device page's chart)."""
    sensor = RawDevice()
    sensor.answer("GET", "/3/0", DEVICE_TLV, TLV)
    sensor.answer("GET", "/32100/0", TINYML_TLV, TLV)
    sensor.register(server.coap_port, "dev-sensor-7", LINKS, lt=300, version="1.0")
    battery = [{"n": "9", "v": level, "t": 600 * i} for i, level in enumerate((97, 95, 94, 90, 88, 85))]
    battery[0].update(bn="/3/0/", bt=1700000000)
    sensor.request(server.coap_port, Code.POST, "/dp", fmt=SENML_JSON,       # LwM2M Send: battery levels
                   payload=json.dumps(battery).encode())
    return sensor


def _agents(server, tmp: Path) -> list:
    """Real device agents (the C module loader built for the host): three that take the KWS module,
    one with a 16 KiB slot, one whose firmware has only the fully connected kernel."""
    server.pub = _public_key(tmp / "key.pub")
    server.reader = server.client(server.api_token)
    agents = [_agent(server, "--endpoint", *args) for args in AGENTS]
    _wait_capabilities(server, AGENT_ENDPOINTS)
    return agents


def _compilation_pages(driver, server, tmp: Path, shot) -> None:
    from selenium.webdriver.common.by import By
    driver.get(server.url + "/compilations/new")
    model = tmp / "anomaly_detection.tflite"
    shutil.copyfile(MLPERF / MLPERF_INT8["ad"], model)
    driver.find_element(By.ID, "model").send_keys(str(model))
    driver.find_element(By.ID, "target").send_keys("nucleo_f446re")
    driver.find_element(By.TAG_NAME, "h1").click()     # the board input loses focus: its profile shows
    _until(lambda: driver.find_element(By.ID, "profile").text)
    shot("new")
    driver.find_element(By.CSS_SELECTOR, "form.card button").click()
    _until(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-bar]"))
    detail = driver.current_url
    shot("compilation", 1500)
    driver.find_element(By.XPATH, "//button[text()='Compare every backend']").click()
    _until(lambda: driver.find_elements(By.ID, "chosen"))
    shot("compare", 700)
    driver.get(detail)
    shot("compilation-phone", 1600, width=390)
    driver.get(server.url + "/compilations")
    shot("compilations")


def _deployment_pages(driver, server, tmp: Path, shot) -> None:
    """New deployment (the module chosen: what it would skip and why), its page while it runs and
    when it is done, the list, then the devices and a device's module history."""
    from selenium.webdriver.common.by import By
    module = tmp / "kws-v2.tmm"
    module.write_bytes(kws_probe_modules(2)[0][2].data)
    driver.get(server.url + "/deployments/new")
    driver.find_element(By.ID, "query").send_keys("ram >= 16000")
    driver.find_element(By.ID, "module").send_keys(str(module))
    driver.find_element(By.ID, "stages").send_keys("50, 100")
    driver.find_element(By.ID, "inferences").send_keys("1")
    driver.find_element(By.ID, "within_s").send_keys("20")
    _until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#skipped li")) == 3)
    shot("new-deployment", 1150)
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    _until(lambda: driver.find_elements(By.ID, "dep-state"))
    shot("deployment-live", 900)
    _until(lambda: driver.find_element(By.ID, "dep-state").text == "succeeded")
    driver.refresh()        # the live part follows state, counts and rows; the rest is as it loaded
    shot("deployment")
    driver.get(server.url + "/deployments")
    shot("deployments", 500)
    driver.get(server.url + "/devices")
    _until(lambda: re.search(r"6 of 6 devices", driver.page_source))
    shot("devices")
    driver.find_element(By.LINK_TEXT, "dev-kws-0").click()
    _until(lambda: driver.find_elements(By.CSS_SELECTOR, "#history tbody tr"))
    shot("device", 1300)
    driver.get(server.url + "/devices/dev-sensor-7")
    _until(lambda: driver.find_elements(By.CSS_SELECTOR, "figure.chart"))
    shot("device-values", 1100)


def main(out: Path) -> int:
    from selenium.webdriver.common.by import By
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        coap = free_udp_port()
        server = Server(tmp / "data", "--lwm2m-port", coap)
        server.coap_port = coap
        token = server.api_token = server.token("fw-team")
        tinyml("service", "devices", "allow", "--project", "fw-team", "--pattern", "dev-*", "--data", server.data)
        server.start()
        agents, sensor, driver = [], None, None
        try:
            agents, sensor, driver = _agents(server, tmp), _sensor(server), chromium(1280, 860)

            def shot(name: str, height: int = 860, width: int = 1280) -> None:
                """Save the page as console-NAME.png, the window ``width`` x ``height`` pixels."""
                driver.set_window_size(width, height)
                driver.save_screenshot(str(out / f"console-{name}.png"))

            driver.get(server.url + "/signin")
            shot("signin")
            driver.find_element(By.ID, "token").send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "form.card button").click()
            _until(lambda: "/signin" not in driver.current_url)      # signed in before the next page
            _compilation_pages(driver, server, tmp, shot)
            _deployment_pages(driver, server, tmp, shot)
        finally:
            if driver is not None:
                driver.quit()
            if sensor is not None:
                sensor.close()
            interrupt(*agents)
            server.stop()
    print(f"console_screenshots: wrote {', '.join(sorted(p.name for p in out.glob('console-*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images"))
