#!/usr/bin/env python3
"""Screenshots of the web console for docs/console.md, made from a real service.

Starts ``tinyml serve`` (with its LwM2M server) in a temporary folder, registers two
devices, compiles the MLPerf Tiny anomaly-detection model through the console in
headless Chromium, and saves each page as ``docs/images/console-*.png`` (one of them
at a phone's width). Needs what the tests need: ``scripts/setup.sh`` (chromium,
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
from service_support import Server, tinyml  # noqa: E402
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


def _devices(server) -> list[RawDevice]:
    sensor, gateway = RawDevice(), RawDevice()
    sensor.answer("GET", "/3/0", DEVICE_TLV, TLV)
    sensor.answer("GET", "/32100/0", TINYML_TLV, TLV)
    sensor.register(server.coap_port, "dev-kws-0042", LINKS, lt=300, version="1.0")
    gateway.register(server.coap_port, "dev-gateway-7", "</1/0>,</3/0>", lt=300)
    battery = [{"n": "9", "v": level, "t": 600 * i} for i, level in enumerate((97, 95, 94, 90, 88, 85))]
    battery[0].update(bn="/3/0/", bt=1700000000)
    sensor.request(server.coap_port, Code.POST, "/dp", fmt=SENML_JSON,       # LwM2M Send: battery levels
                   payload=json.dumps(battery).encode())
    return [sensor, gateway]


def main(out: Path) -> int:
    from selenium.webdriver.common.by import By
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        coap = free_udp_port()
        server = Server(Path(tmp) / "data", "--lwm2m-port", coap)
        server.coap_port = coap
        token = server.token("fw-team")
        tinyml("service", "devices", "allow", "--project", "fw-team", "--pattern", "dev-*", "--data", server.data)
        server.start()
        fleet, driver = _devices(server), chromium(1280, 860)
        try:
            shot = lambda name: driver.save_screenshot(str(out / f"console-{name}.png"))  # noqa: E731
            driver.get(server.url + "/signin")
            shot("signin")
            driver.find_element(By.ID, "token").send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "form.card button").click()
            driver.get(server.url + "/compilations/new")
            model = Path(tmp) / "anomaly_detection.tflite"
            shutil.copyfile(MLPERF / MLPERF_INT8["ad"], model)
            driver.find_element(By.ID, "model").send_keys(str(model))
            driver.find_element(By.ID, "target").send_keys("nucleo_f446re")
            driver.find_element(By.TAG_NAME, "h1").click()     # the board input loses focus: its profile shows
            _until(lambda: driver.find_element(By.ID, "profile").text)
            shot("new")
            driver.find_element(By.CSS_SELECTOR, "form.card button").click()
            _until(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-bar]"))
            detail = driver.current_url
            driver.set_window_size(1280, 1500)
            shot("compilation")
            driver.find_element(By.XPATH, "//button[text()='Compare every backend']").click()
            _until(lambda: driver.find_elements(By.ID, "chosen"))
            driver.set_window_size(1280, 700)
            shot("compare")
            driver.set_window_size(390, 1600)
            driver.get(detail)
            shot("compilation-phone")
            driver.set_window_size(1280, 860)
            driver.get(server.url + "/compilations")
            shot("compilations")
            driver.get(server.url + "/devices")
            _until(lambda: re.search(r"2 of 2 devices", driver.page_source))
            shot("devices")
            driver.find_element(By.LINK_TEXT, "dev-kws-0042").click()
            _until(lambda: driver.find_elements(By.CSS_SELECTOR, "figure.chart"))
            driver.set_window_size(1280, 1100)
            shot("device")
        finally:
            driver.quit()
            for device in fleet:
                device.close()
            server.stop()
    print(f"console_screenshots: wrote {', '.join(sorted(p.name for p in out.glob('console-*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images"))
