"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, installed
by scripts/setup.sh) against a real `tinyml serve` with its LwM2M server and a device:
sign in, upload a model, watch it succeed, check the memory bars against the API's report,
see the device, sign out; CSRF and escaping at the HTTP level."""

from __future__ import annotations

import re
import shutil
import time

import httpx
import pytest
from aiocoap.numbers.codes import Code
from console_support import chromium
from lwm2m_support import RawDevice, free_udp_port
from service_support import Server, tinyml
from test_lwm2m_server import DEVICE_TLV, LINKS, TINYML_TLV
from test_report_html import Page, assert_inert

from conftest import MLPERF, MLPERF_INT8

AD = MLPERF / MLPERF_INT8["ad"]
HOSTILE_FILE = "<img src=x onerror=alert(1)>.tflite"
HOSTILE_DEVICE = "dev-<script>alert(1)</script>"
TLV, SENML_JSON = 11542, 110


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    coap = free_udp_port()
    srv = Server(tmp_path_factory.mktemp("console") / "data", "--lwm2m-port", coap)
    srv.coap_port = coap
    srv.alice = srv.token("alice")
    srv.bob = srv.token("bob", "read")
    tinyml("service", "devices", "allow", "--project", "alice", "--pattern", "dev-*", "--data", srv.data)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    try:
        driver = chromium()
    except Exception as e:   # CI has both from scripts/setup.sh: a missing browser is a failure
        pytest.fail(f"headless Chromium did not start ({type(e).__name__}: {' '.join(str(e).split())[:300]}). "
                    "Install chromium and chromium-driver (scripts/setup.sh) and selenium (the dev extra)",
                    pytrace=False)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(fn, timeout_s: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = fn()
        except Exception:   # the page is reloading
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout_s} s")


def _register_devices(server) -> list[RawDevice]:
    """A device with a hostile endpoint that reports its capabilities, and a plain one that does not."""
    hostile, plain = RawDevice(), RawDevice()
    hostile.answer("GET", "/3/0", DEVICE_TLV, TLV)
    hostile.answer("GET", "/32100/0", TINYML_TLV, TLV)
    assert hostile.register(server.coap_port, HOSTILE_DEVICE, LINKS, lt=120, version="1.0").code.is_successful()
    assert plain.register(server.coap_port, "dev-a-plain", "</1/0>,</3/0>", lt=120).code.is_successful()
    api = server.client(server.alice)
    _wait(lambda: [d for d in api.get("/v1/devices").json() if d.get("core")], 10, "device capabilities")
    sent = hostile.request(server.coap_port, Code.POST, "/dp", fmt=SENML_JSON, payload=(   # LwM2M Send
        b'[{"bn":"/3/0/","bt":1700000000,"n":"9","v":80},{"n":"9","v":75,"t":60},{"n":"9","v":71,"t":120},'
        b'{"n":"0","vs":"<img src=x onerror=alert(2)>"}]'))
    assert sent.code == Code.CHANGED
    return [hostile, plain]


def _sign_in(driver, server, token: str) -> None:
    from selenium.webdriver.common.by import By
    driver.get(server.url + "/signin")
    driver.find_element(By.ID, "token").send_keys(token)
    _submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))


def _submit(driver, button) -> None:
    """Click ``button`` and wait for the next page to replace this one and finish loading.

    The old page is marked with a window property that the next page does not have; selenium's
    ``staleness_of`` instead probes the old element, and Chrome may answer that probe with "Node
    with given id does not belong to the document" (an unknown error, not a stale reference) while
    the documents swap."""
    driver.execute_script("window.__tmlOldPage = true;")
    button.click()
    _wait(lambda: driver.execute_script("return !window.__tmlOldPage && document.readyState === 'complete';"),
          15, "the next page")


def _upload(driver, server, model_path) -> str:
    """Submit the new-compilation form; the detail page's URL."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    driver.get(server.url + "/compilations/new")
    driver.find_element(By.ID, "model").send_keys(str(model_path))
    board = driver.find_element(By.ID, "target")
    board.send_keys("nucleo_f446re")
    driver.find_element(By.TAG_NAME, "h1").click()     # the board input loses focus: its profile is shown
    _wait(lambda: "cortex-m4" in driver.find_element(By.ID, "profile").text, 10, "board profile shown")
    Select(driver.find_element(By.ID, "backend")).select_by_value("auto")
    _submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))
    return _wait(lambda: re.search(r"/compilations/[0-9a-f]{32}$", driver.current_url) and driver.current_url,
                 10, "the detail page")


def _bars(driver) -> dict:
    from selenium.webdriver.common.by import By
    bars = {}
    for bar in driver.find_elements(By.CSS_SELECTOR, "[data-bar]"):
        parts = {r.get_attribute("data-kind"): int(r.get_attribute("data-bytes"))
                 for r in bar.find_elements(By.CSS_SELECTOR, "rect[data-kind]")}
        assert bar.is_displayed() and all(r.size["width"] >= 0 for r in bar.find_elements(By.TAG_NAME, "rect"))
        bars[bar.get_attribute("data-bar")] = {"limit": int(bar.get_attribute("data-limit")), **parts}
    return bars


def _no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text   # injected script would have opened one


def test_sign_in_compile_watch_memory_picture_devices_and_sign_out(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    fleet = _register_devices(server)
    try:
        browser.get(server.url + "/compilations")
        assert browser.current_url.endswith("/signin")         # not signed in: to the sign-in page
        _sign_in(browser, server, "tml_not-a-token")
        alerts = browser.find_elements(By.CSS_SELECTOR, "[role=alert]")
        assert [a.text for a in alerts] == ["Unknown token: check it, or make a new one with tinyml service "
                                            "token create."]
        _sign_in(browser, server, server.alice)
        assert browser.current_url.endswith("/compilations") and "project alice" in browser.page_source

        model = tmp_path / HOSTILE_FILE
        shutil.copyfile(AD, model)
        detail = _upload(browser, server, model)
        seen = {browser.find_element(By.ID, "state").text}
        _wait(lambda: seen.add(browser.find_element(By.ID, "state").text) or "succeeded" in seen, 90,
              "the compilation succeeded")
        assert seen & {"queued", "running"}, seen     # it was watched, not found finished
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-bar]"), 10, "the memory picture")

        comp = server.client(server.alice).get(f"/v1/compilations/{detail.rsplit('/', 1)[1]}").json()
        report = comp["report"]
        assert comp["state"] == "succeeded"
        assert _bars(browser) == {
            "flash": {"limit": report["target"]["flash_bytes"], "weights": report["weight_bytes"],
                      "code": report["estimated_flash_bytes"] - report["weight_bytes"]},
            "ram": {"limit": report["target"]["ram_bytes"], "arena": report["arena_bytes"],
                    "model_other": report["estimated_ram_bytes"] - report["arena_bytes"]}}
        legend = browser.find_element(By.CSS_SELECTOR, "[data-bar=flash] .legend").text
        assert f"weights {report['weight_bytes']:,} B" in legend
        assert report["chosen_because"] in browser.find_element(By.ID, "status").text
        assert HOSTILE_FILE in browser.find_element(By.TAG_NAME, "main").text   # shown as text
        assert not browser.find_elements(By.CSS_SELECTOR, "main img")
        _no_alert(browser)

        _submit(browser, browser.find_element(By.LINK_TEXT, "Compilations"))
        row = browser.find_element(By.CSS_SELECTOR, "table.list tbody tr").text
        assert HOSTILE_FILE in row and "nucleo_f446re" in row and "cgen" in row and "succeeded" in row

        _submit(browser, browser.find_element(By.LINK_TEXT, "Devices"))
        endpoints = lambda: [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#devices tbody td:first-child")]  # noqa: E731
        assert endpoints() == [HOSTILE_DEVICE, "dev-a-plain"]            # by endpoint
        _submit(browser, browser.find_element(By.LINK_TEXT, "endpoint"))            # the same column again: descending
        assert endpoints() == ["dev-a-plain", HOSTILE_DEVICE]
        browser.find_element(By.ID, "q").send_keys("cortex")
        _submit(browser, browser.find_element(By.CSS_SELECTOR, "form[role=search] button"))
        assert browser.find_element(By.ID, "count").text == "1 of 2 devices"
        cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#devices tbody tr td")]
        assert cells[:2] == [HOSTILE_DEVICE, "yes"] and cells[4:6] == ["cortex-m4", "60,000 B"], cells
        assert cells[6].startswith("cmsis-nn") and cells[7] == "kws", cells     # kernel set, installed module
        assert not browser.find_elements(By.CSS_SELECTOR, "main script")
        _no_alert(browser)

        _submit(browser, browser.find_element(By.LINK_TEXT, HOSTILE_DEVICE))        # the device's page
        main = browser.find_element(By.TAG_NAME, "main")
        assert browser.find_element(By.TAG_NAME, "h1").text == f"Device {HOSTILE_DEVICE}"
        assert "cortex-m4" in main.text and "cmsis-nn-6" in main.text
        assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#slots tbody td")][:4] == [
            "0", "kws", "-", "active"]
        assert "/32100/0" in browser.find_element(By.ID, "objects").text
        chart = browser.find_element(By.CSS_SELECTOR, "figure.chart")
        assert (chart.get_attribute("data-path"), chart.get_attribute("data-points")) == ("/3/0/9", "3")
        assert "from 71 to 80, last 71" in chart.text
        assert '"<img src=x onerror=alert(2)>"' in browser.find_element(By.ID, "values").text
        assert not browser.find_elements(By.CSS_SELECTOR, "main img")
        _no_alert(browser)

        _submit(browser, browser.find_element(By.CSS_SELECTOR, "nav form button"))
        _wait(lambda: browser.current_url.endswith("/signin"), 10, "signed out")
        browser.get(server.url + "/devices")
        assert browser.current_url.endswith("/signin")
    finally:
        for device in fleet:
            device.close()


def _signed_in(server, token: str) -> httpx.Client:
    c = httpx.Client(base_url=server.url, timeout=60)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/signin").text).group(1)
    r = c.post("/signin", data={"token": token, "csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/compilations", r.text
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("tinyml_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
    return c


def _alert(r: httpx.Response) -> list[str]:
    return re.findall(r'role="alert">([^<]*)<', r.text)


def test_forms_without_the_csrf_token_are_refused(server):
    c = _signed_in(server, server.alice)
    page = c.get("/compilations/new")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    model = {"model": ("ad.tflite", AD.read_bytes())}
    before = c.get("/compilations").text.count("<tr>")

    for fields in ({}, {"csrf": "0" * 64}):
        r = c.post("/compilations/new", data={"target": "nucleo_f446re", **fields}, files=model)
        assert r.status_code == 403 and _alert(r) == [
            "this form did not come from this console (missing or wrong CSRF token). Reload the page and send "
            "it again"], r.text
    assert c.get("/compilations").text.count("<tr>") == before          # nothing was queued
    assert c.post("/signout").status_code == 403                         # still signed in
    assert c.get("/compilations").status_code == 200
    other = _signed_in(server, server.bob)                               # another session's token is wrong here
    other_csrf = re.search(r'name="csrf" value="([^"]+)"', other.get("/compilations").text).group(1)
    assert c.post("/signout", data={"csrf": other_csrf}).status_code == 403
    assert httpx.post(server.url + "/signin", data={"token": server.alice}).status_code == 403   # sign-in too

    r = c.post("/signout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert c.get("/compilations").headers["location"] == "/signin"


def test_pages_escape_and_stay_in_the_project(server):
    alice, bob = _signed_in(server, server.alice), _signed_in(server, server.bob)
    csrf = re.search(r'name="csrf" value="([^"]+)"', alice.get("/compilations/new").text).group(1)
    r = alice.post("/compilations/new", data={"target": "nucleo_f446re", "csrf": csrf},
                   files={"model": ('"><svg onload=alert(1)>.tflite', AD.read_bytes())})
    assert r.status_code == 303, r.text
    detail = r.headers["location"]
    _wait(lambda: alice.get(detail + "/state").json()["state"] == "succeeded", 90, "the compilation succeeded")

    for path in (detail, "/compilations", detail + "/report.html"):
        text = alice.get(path).text
        assert "<svg onload" not in text and "&lt;svg onload=alert(1)&gt;" in text, path
    assert_inert(Page(alice.get(detail + "/report.html").text))
    assert Page(alice.get(detail).text).bars["flash"]["weights"] > 0

    compared = alice.post(detail + "/compare", data={"csrf": csrf})    # every backend, as tinyml compare
    assert compared.status_code == 200, compared.text
    table = Page(compared.text)
    names = [d for d in table.text if d.strip()]
    assert "cgen (chosen)" in names and "tflm" in names and "chosen: cgen (fits flash and RAM" in compared.text
    assert alice.post(detail + "/compare").status_code == 403          # no CSRF token
    assert bob.post(detail + "/compare", data={"csrf": csrf}).status_code == 403   # bob's session, alice's token
    assert bob.get(detail).status_code == 404                 # another project's id
    assert bob.get(detail + "/artifact").status_code == 404
    assert bob.get("/compilations/new").status_code == 403    # a read-only token cannot compile
    r = alice.post(detail + "/module", data={"version": "2", "csrf": csrf})
    assert r.status_code == 200 and r.content[:4] and r.headers["content-type"] == "application/octet-stream"
    assert alice.get(detail + "/artifact").headers["content-type"] == "application/gzip"


def test_odd_requests_get_a_4xx_with_one_line_never_a_5xx(server):
    c = _signed_in(server, server.alice)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/compilations").text).group(1)
    for method, path in (("GET", "/compilations?page=99999999999999999999999"), ("GET", "/compilations?page=x"),
                         ("GET", "/compilations/" + "a" * 5000), ("GET", "/compilations/%00/state"),
                         ("GET", "/compilations/x/report.html"), ("GET", "/compilations/x/artifact"),
                         ("POST", "/compilations/x/module"), ("GET", "/boards/%2e%2e/profile"),
                         ("POST", "/compilations/new"), ("GET", "/signin?ended=x"),
                         ("GET", "/devices/no-such-device"), ("GET", "/devices/%2e%2e/%00"),
                         ("GET", "/devices?page=0"), ("GET", "/devices?q=" + "x" * 300)):
        r = c.request(method, path, data={"csrf": csrf})
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:200])
        lines = _alert(r) if r.headers["content-type"].startswith("text/html") else [r.json()["detail"]]
        assert len(lines) == 1 and "\n" not in lines[0] and "Traceback" not in lines[0], (path, lines)
    r = c.post("/compilations/new", data={"csrf": csrf, "target": "nucleo_f446re"},
               files={"model": ("m.tflite", b"not a model")})
    assert r.status_code == 422 and _alert(r) == [
        "m.tflite: not a TFLite flatbuffer (missing &#x27;TFL3&#x27; identifier). Export the model with "
        "tf.lite.TFLiteConverter"]
    assert 'value="nucleo_f446re"' in r.text           # the form keeps what was typed


def test_a_session_whose_token_is_gone_goes_back_to_sign_in_with_a_message(server):
    from sqlalchemy import delete
    from platformio_tinyml.service.auth import hash_token
    from platformio_tinyml.service.core import TOKEN_CACHE_S
    from platformio_tinyml.service.db import Token, open_database
    token = server.token("carol")
    c = _signed_in(server, token)
    assert c.get("/compilations").status_code == 200
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:          # the token is removed from the database (revoked)
            db.execute(delete(Token).where(Token.token_hash == hash_token(token)))
            db.commit()
    finally:
        engine.dispose()
    time.sleep(TOKEN_CACHE_S + 0.5)    # the service keeps a token's answer this long
    r = c.get("/compilations")
    assert r.status_code == 303 and r.headers["location"] == "/signin?ended=1"
    assert _alert(c.get(r.headers["location"])) == ["Your session ended: sign in again."]


def test_device_table_filters_sorts_and_pages_in_the_database(server):
    from sqlalchemy import select
    from platformio_tinyml.service.db import Device, Project, open_database
    token = server.token("dave")
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    try:
        with session() as db:
            pid = db.scalar(select(Project.id).where(Project.name == "dave"))
            db.add_all(Device(endpoint=f"dave-{i:03d}", project_id=pid, online=i % 2 == 0, tags=[f"site-{i % 3}"],
                              capabilities=None if i == 7 else {"profile": {"core": "cortex-m4", "ram_bytes": 1000 + i},
                                                                "kernel_set": f"0x{i % 4 + 1:x}f"})
                       for i in range(150))
            db.commit()
    finally:
        engine.dispose()
    c = _signed_in(server, token)

    def table(**params) -> tuple[str, list[list[str]]]:
        page = c.get("/devices", params=params)
        assert page.status_code == 200, page.text
        rows = re.findall(r"<tr>(.*?)</tr>", page.text.partition("<tbody>")[2])
        return (re.search(r'id="count">([^<]*)<', page.text).group(1),
                [re.findall(r"<td[^>]*>(?:<a [^>]*>)?([^<]*)", row) for row in rows])

    count, rows = table()
    assert count == "150 of 150 devices" and len(rows) == 100 and rows[0][0] == "dave-000"
    assert [r[0] for r in table(page=2)[1]] == [f"dave-{i:03d}" for i in range(100, 150)]
    _, rows = table(sort="ram_bytes", desc=1)              # a field of the capabilities JSON
    assert [r[5] for r in rows[:2]] == ["1,149 B", "1,148 B"]
    assert table(sort="ram_bytes")[1][-1][0] != "dave-007"   # no capabilities: last either way
    assert [r[0] for r in table(sort="ram_bytes", page=2)[1]][-1] == "dave-007"
    count, rows = table(q="SITE-1", sort="endpoint", desc=1)
    assert count == "50 of 150 devices" and rows[0][0] == "dave-148" and all(r[8] == "site-1" for r in rows)
    count, rows = table(q="0x4f", sort="kernel_set")          # the firmware's kernel set: filter and sort
    assert count == "36 of 150 devices" and {r[6] for r in rows} == {"0x4f"}     # i % 4 == 3, but 7 has none
    assert table(sort="kernel_set", desc=1)[1][0][6] == "0x4f" and table(sort="kernel_set")[1][0][6] == "0x1f"
    assert table(q="100%")[0] == "0 of 150 devices"      # LIKE's wildcards are text here
    assert table(sort="no-such-column")[1][0][0] == "dave-000"


def test_the_device_table_follows_registrations_without_reloading(server, browser):
    """In Chromium: a filtered, sorted device table gets the devices that register after it was
    loaded, and their going offline, in place (no reload), and keeps its filter and sort."""
    from selenium.webdriver.common.by import By
    _sign_in(browser, server, server.alice)
    total = len(server.client(server.alice).get("/v1/devices").json())
    browser.get(server.url + "/devices?q=LIVE&sort=endpoint&desc=1")
    assert browser.find_element(By.ID, "count").text == f"0 of {total} devices"
    browser.execute_script("window.tinymlMarker = 7;")        # gone if the page reloads
    rows = lambda: [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]  # noqa: E731
                    for tr in browser.find_elements(By.CSS_SELECTOR, "#devices tbody tr")]
    fleet = [RawDevice() for _ in range(3)]
    try:
        for device, ep in zip(fleet, ("dev-live-1", "dev-quiet-9", "dev-live-2")):
            assert device.register(server.coap_port, ep, "</1/0>,</3/0>", lt=120).code.is_successful()
        _wait(lambda: [r[:2] for r in rows()] == [["dev-live-2", "yes"], ["dev-live-1", "yes"]], 15,
              "the two matching devices, newest name first")
        assert browser.find_element(By.ID, "count").text == f"2 of {total + 3} devices"
        assert fleet[0].deregister(server.coap_port).code == Code.DELETED
        _wait(lambda: [r[:2] for r in rows()] == [["dev-live-2", "yes"], ["dev-live-1", "no"]], 15,
              "dev-live-1 offline")
        assert browser.execute_script("return window.tinymlMarker;") == 7
        assert int(browser.find_element(By.ID, "devices").get_attribute("data-updates")) >= 2
        assert browser.find_element(By.ID, "q").get_attribute("value") == "LIVE"
        assert browser.find_element(By.CSS_SELECTOR, "th[aria-sort]").text == "endpoint"
        assert browser.find_element(By.CSS_SELECTOR, "th[aria-sort]").get_attribute("aria-sort") == "descending"
        browser.find_element(By.LINK_TEXT, "dev-live-2").click()      # a row the script made links to its page
        _wait(lambda: browser.find_element(By.TAG_NAME, "h1").text == "Device dev-live-2", 15, "the device page")
    finally:
        for device in fleet:
            device.close()
    c = _signed_in(server, server.alice)
    rows_json = c.get("/device-rows", params={"q": "live", "sort": "no-such", "page": 1}).json()
    assert [r["endpoint"] for r in rows_json["rows"]] == ["dev-live-1", "dev-live-2"] and not rows_json["next"]
    assert server.client(None).get("/device-rows").status_code == 401
    assert c.get("/device-rows", params={"page": 0}).status_code == 422


def test_a_failed_compilation_shows_its_one_line_error_escaped_and_no_memory_picture(server):
    import uuid
    from sqlalchemy import select
    from platformio_tinyml.service.db import Build, Compilation, Project, open_database
    token = server.token("erin")
    engine, session = open_database(f"sqlite:///{server.data / 'service.db'}")
    comp_id = uuid.uuid4().hex
    try:    # a build that failed as a crashing compiler's does (what a job writes)
        with session() as db:
            pid = db.scalar(select(Project.id).where(Project.name == "erin"))
            build = Build(id=uuid.uuid4().hex, key=uuid.uuid4().hex, state="failed", model_sha256="0" * 64,
                          model_file="<b>m</b>.tflite", device={"board": "nucleo_f446re"}, name="m",
                          backend_requested="auto", options={}, progress=1.0,
                          log=["queued", "failed: the compiler process died (killed by SIGSEGV)"],
                          error_message="the compiler process died (killed by SIGSEGV)",
                          error_where="<i>op 3</i>", error_hint="Report it")
            db.add(build)
            db.add(Compilation(id=comp_id, project_id=pid, build_id=build.id, cached=False, target="nucleo_f446re"))
            db.commit()
    finally:
        engine.dispose()
    c = _signed_in(server, token)
    page = c.get(f"/compilations/{comp_id}")
    assert page.status_code == 200
    assert _alert(page) == ["the compiler process died (killed by SIGSEGV) (&lt;i&gt;op 3&lt;/i&gt;). Report it"]
    assert 'data-state="failed"' in page.text and 'data-poll=""' in page.text     # finished: not polled
    assert "data-bar" not in page.text and "/artifact" not in page.text
    listed = c.get("/compilations").text
    assert "&lt;b&gt;m&lt;/b&gt;.tflite" in listed and "auto (asked)" in listed and "failed" in listed
    r = c.get(f"/compilations/{comp_id}/report.html")
    assert r.status_code == 409 and _alert(r) == [f"compilation &#x27;{comp_id}&#x27; is failed; there is no report yet"]


def test_deployment_pages_list_and_unknown_ids(server):
    c = _signed_in(server, server.alice)
    page = c.get("/deployments")
    assert page.status_code == 200 and "No deployments yet." in page.text, page.text
    assert '<a href="/deployments">Deployments</a>' in page.text                  # in the navigation
    assert server.client(server.alice).get("/v1/deployments").json() == []      # the same store as the API
    r = c.get("/deployments/<img src=x onerror=alert(1)>")
    assert r.status_code == 404 and _alert(r) == [
        "no deployment &#x27;&lt;img src=x onerror=alert(1)&gt;&#x27; in project &#x27;alice&#x27;. GET "
        "/v1/deployments lists them"]
    assert httpx.get(server.url + "/deployments").headers["location"] == "/signin"
