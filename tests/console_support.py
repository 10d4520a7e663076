"""Headless Chromium for the console's tests and screenshots (Debian's chromium and
chromium-driver from scripts/setup.sh, driven by Selenium from the dev extra)."""

from __future__ import annotations

import shutil


def chromium(width: int = 1280, height: int = 900):
    """A new headless Chromium WebDriver; raises when the browser or its driver cannot start."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=DriverService(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"))
