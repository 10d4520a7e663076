"""The LwM2M server inside a real ``tinyml serve``, over real UDP on 127.0.0.1.

The device is :class:`lwm2m_support.RawDevice`: its answers are byte strings
written here by hand (TLV, SenML-CBOR, SenML-JSON, link format), and the
test checks what reached it (method, path, Accept, Content-Format, payload).
The bad-input tests at the end send malformed and hostile messages and
check that each costs one log line and the server keeps serving.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiocoap.numbers.codes import Code
from lwm2m_support import RawDevice, free_udp_port
from service_support import Server, one_line
from service_support import wait_for as service_wait_for

from platformio_tinyml.device import DeviceProfile

TLV, SENML_JSON, SENML_CBOR, TEXT, LINK = 11542, 110, 112, 0, 40


def h(text: str) -> bytes:
    """Hex with spaces and "quoted ASCII" runs."""
    out, parts = bytearray(), text.split('"')
    for i, part in enumerate(parts):
        out += part.encode("ascii") if i % 2 else bytes.fromhex(part)
    return bytes(out)


DEVICE_TLV = h('C4 00 "Acme" C8 01 08 "Sensor 2"')
TINYML_TLV = h('C8 00 09 "cortex-m4" C8 01 08 "armv7e-m" C4 02 04 C4 B4 00 C4 03 00 00 EA 60 C4 05 00 00 80 00'
               ' C1 06 02 C8 08 0A "cmsis-nn-6" C1 09 01 C2 0A "sp" C1 0B 01 87 0F 43 00 "kws" 40 01'
               ' 86 11 41 00 02 41 01 00 C1 12 00')
LINKS = "</1/0>,</3/0>,</32100/0>"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    port = free_udp_port()
    srv = Server(tmp_path_factory.mktemp("lwm2m") / "data", "--lwm2m-port", port, env={
        "TINYML_SERVICE_LWM2M_TIMEOUT_S": "1.5", "TINYML_SERVICE_LWM2M_QUEUE_WAIT_S": "2",
        "TINYML_SERVICE_LWM2M_AWAKE_S": "1", "TINYML_SERVICE_LWM2M_FLOOD_COUNT": "30"})
    srv.coap_port = port
    tokens = {scope: srv.token("fleet", scope) for scope in ("read", "read,deploy")}
    tinyml_allow = ("service", "devices", "allow", "--project", "fleet", "--pattern", "dev-*", "--data", srv.data)
    from service_support import tinyml
    tinyml(*tinyml_allow)
    srv.start()
    srv.reader, srv.deployer = srv.client(tokens["read"]), srv.client(tokens["read,deploy"])
    yield srv
    srv.stop()


@pytest.fixture
def device():
    dev = RawDevice()
    yield dev
    dev.close()


def wait_for(fn, timeout=5.0):
    return service_wait_for(fn, timeout=timeout, interval=0.05)


def test_registration_reads_capabilities_into_a_device_profile(svc, device):
    device.answer("GET", "/3/0", DEVICE_TLV, TLV)
    device.answer("GET", "/32100/0", TINYML_TLV, TLV)
    resp = device.register(svc.coap_port, "dev-caps", LINKS, lt=120, version="1.0")
    assert resp.code == Code.CREATED and device.location[0] == "rd"
    dev = wait_for(lambda: (d := svc.reader.get("/v1/devices/dev-caps").json())["capabilities"] and d)
    reg = dev["registration"]
    assert (reg["lwm2m_version"], reg["binding"], reg["lifetime_s"], dev["online"]) == ("1.0", "U", 120, True)
    assert [o["path"] for o in reg["objects"]] == ["/1/0", "/3/0", "/32100/0"]
    assert reg["address"].startswith("127.0.0.1:")
    prof = DeviceProfile.from_dict(dev["profile"])
    assert (prof.core, prof.arch, prof.clock_hz, prof.ram_bytes, prof.flash_bytes, prof.fpu, prof.dsp,
            prof.name) == ("cortex-m4", "armv7e-m", 80_000_000, 60_000, 32_768, "sp", True, "Acme Sensor 2")
    caps = dev["capabilities"]
    assert (caps["kernel_set"], caps["executor_abi"], caps["slot_count"], caps["active_slot"]) == (
        "cmsis-nn-6", 1, 2, 0)
    assert dev["installed"] == [{"index": 0, "module": "kws", "version": "", "state": "active"}]
    # an LwM2M 1.0 device is asked for TLV, with an Accept option
    assert [(m, p, a) for m, p, a, *_ in device.received] == [("GET", "/3/0", TLV), ("GET", "/32100/0", TLV)]
    listed = svc.reader.get("/v1/devices").json()
    assert {"endpoint": "dev-caps", "online": True, "board": "lwm2m-dev-caps"}.items() <= \
        next(d for d in listed if d["endpoint"] == "dev-caps").items()


def test_read_write_execute_discover_attributes(svc, device):
    assert device.register(svc.coap_port, "dev-ops", "</1/0>,</3/0>", version="1.1").code == Code.CREATED
    device.answer("GET", "/3/0/9", h('81 A2 00 66 "/3/0/9" 02 18 57'), SENML_CBOR)
    r = svc.reader.get("/v1/devices/dev-ops/resources/3/0/9")
    assert r.status_code == 200 and r.json() == {"path": "/3/0/9", "values": {"/3/0/9": 87}}
    assert device.received[-1][:3] == ("GET", "/3/0/9", SENML_CBOR)     # 1.1: SenML-CBOR is asked for

    device.answer("PUT", "/1/0/1", b"", None, Code.CHANGED)
    r = svc.deployer.put("/v1/devices/dev-ops/resources/1/0/1", json={"value": 300})
    assert r.status_code == 200, r.text
    assert device.received[-1][:4] == ("PUT", "/1/0/1", SENML_CBOR, SENML_CBOR)
    assert device.received[-1][5] == h('81 A2 21 66 "/1/0/1" 02 19 01 2C')

    device.answer("POST", "/1/0", b"", None, Code.CHANGED)
    r = svc.deployer.put("/v1/devices/dev-ops/resources/1/0", json={
        "values": {"/1/0/1": 60, "/1/0/7": "UQ"}, "partial": True})
    assert r.status_code == 200, r.text
    assert device.received[-1][:2] == ("POST", "/1/0")
    assert device.received[-1][5] == h('82 A3 21 65 "/1/0/" 00 61 "1" 02 18 3C A2 00 61 "7" 03 62 "UQ"')

    device.answer("POST", "/3/0/4", b"", None, Code.CHANGED)
    r = svc.deployer.post("/v1/devices/dev-ops/execute/3/0/4", json={"args": "0='now'"})
    assert r.status_code == 200 and device.received[-1][::5] == ("POST", b"0='now'")

    device.answer("GET", "/3/0", b"</3/0>,</3/0/0>,</3/0/9>;pmin=10", LINK)
    r = svc.reader.get("/v1/devices/dev-ops/discover/3/0")
    assert r.json()["links"] == [{"path": "/3/0"}, {"path": "/3/0/0"}, {"path": "/3/0/9", "pmin": "10"}]
    assert device.received[-1][2] == LINK

    device.answer("PUT", "/3/0/9", b"", None, Code.CHANGED)
    r = svc.deployer.put("/v1/devices/dev-ops/attributes/3/0/9", json={"pmin": 10, "pmax": 60})
    assert r.status_code == 200 and device.received[-1][4] == ("pmin=10", "pmax=60")

    # the device's own error keeps its meaning; a non-executable resource is refused before sending
    one_line(svc.reader.get("/v1/devices/dev-ops/resources/3/0/13"), 404, "answered 4.04")
    sent = len(device.received)
    one_line(svc.deployer.post("/v1/devices/dev-ops/execute/3/0/0"), 405, "Manufacturer is not executable")
    assert len(device.received) == sent


def test_observe_notifications_and_send_are_stored(svc, device):
    device.register(svc.coap_port, "dev-obs", "</3/0>", version="1.1")
    device.observable.add(("GET", "/3/0/9"))
    device.answer("GET", "/3/0/9", h('81 A2 00 66 "/3/0/9" 02 18 57'), SENML_CBOR)
    r = svc.deployer.post("/v1/devices/dev-obs/observe/3/0/9")
    assert r.status_code == 200 and r.json()["values"] == {"/3/0/9": 87}
    assert wait_for(lambda: device.notify("/3/0/9", h('81 A2 00 66 "/3/0/9" 02 18 5A'), SENML_CBOR))
    wait_for(lambda: [v["value"] for v in svc.reader.get("/v1/devices/dev-obs/values").json()] == [90, 87])
    assert svc.deployer.delete("/v1/devices/dev-obs/observe/3/0/9").json()["cancelled"] is True
    device.notify("/3/0/9", h('81 A2 00 66 "/3/0/9" 02 18 5B'), SENML_CBOR)

    sent = device.request(svc.coap_port, Code.POST, "/dp", payload=b'[{"bn":"/3/0/","bt":1700000000,"n":"9",'
                          b'"v":50},{"n":"9","v":49,"t":60}]', fmt=SENML_JSON)
    assert sent.code == Code.CHANGED
    rows = svc.reader.get("/v1/devices/dev-obs/values").json()
    assert [(r["value"], r["source"], r["time"]) for r in rows[:2]] == [(49, "send", 1700000060),
                                                                        (50, "send", 1700000000)]
    assert 91 not in [r["value"] for r in rows]          # nothing stored after the cancel


def test_queue_mode_requests_wait_for_the_next_update(svc, device):
    device.register(svc.coap_port, "dev-sleepy", "</3/0>", version="1.0", binding="UQ")
    device.answer("GET", "/3/0/9", b"77", TEXT)
    time.sleep(1.2)                                       # past the 1 s awake window
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(svc.reader.get, "/v1/devices/dev-sleepy/resources/3/0/9")
        time.sleep(0.5)
        assert not pending.done() and not any(p == "/3/0/9" for _, p, *_ in device.received)
        assert device.update(svc.coap_port).code == Code.CHANGED
        r = pending.result(10)
    assert r.status_code == 200 and r.json()["values"] == {"/3/0/9": 77}
    assert device.received[-1][2] == TEXT                 # 1.0, one resource: plain text
    time.sleep(1.2)
    one_line(svc.reader.get("/v1/devices/dev-sleepy/resources/3/0/9"), 409, "asleep (queue mode)")


def test_lifetime_expiry_deregister_and_replacement(svc, device):
    device.register(svc.coap_port, "dev-short", "</3/0>", lt=1)
    wait_for(lambda: not svc.reader.get("/v1/devices/dev-short").json()["online"])
    dev = svc.reader.get("/v1/devices/dev-short").json()
    assert dev["registration"]["end_reason"] == "expired"
    one_line(svc.reader.get("/v1/devices/dev-short/resources/3/0/9"), 409, "offline")

    device.register(svc.coap_port, "dev-moved", "</3/0>", version="1.0")
    first = svc.reader.get("/v1/devices/dev-moved").json()["registration"]
    other = RawDevice()                                    # the same endpoint from a new address
    try:
        other.answer("GET", "/3/0/0", b"New Place", TEXT)
        assert other.register(svc.coap_port, "dev-moved", "</3/0>", version="1.0").code == Code.CREATED
        dev = svc.reader.get("/v1/devices/dev-moved").json()
        assert dev["registration"]["address"] != first["address"] and dev["online"]
        assert svc.reader.get("/v1/devices/dev-moved/resources/3/0/0").json()["values"] == {"/3/0/0": "New Place"}
        assert device.update(svc.coap_port).code == Code.NOT_FOUND      # the old registration is gone
        assert other.deregister(svc.coap_port).code == Code.DELETED
        dev = svc.reader.get("/v1/devices/dev-moved").json()
        assert not dev["online"] and dev["registration"]["end_reason"] == "deregistered"
    finally:
        other.close()


def test_rest_errors_are_one_line(svc, device):
    device.register(svc.coap_port, "dev-rest", "</3/0>", version="1.1")
    one_line(svc.client(None).get("/v1/devices"), 401, "missing or unknown token")
    one_line(svc.reader.put("/v1/devices/dev-rest/resources/3/0/14", json={"value": "x"}), 403, "'deploy' scope")
    one_line(svc.reader.get("/v1/devices/nobody"), 404, "no device 'nobody'")
    one_line(svc.reader.get("/v1/devices/dev-rest/resources/3/x"), 400, "invalid LwM2M path")
    one_line(svc.deployer.put("/v1/devices/dev-rest/resources/3/0/9", json={"value": "high"}), 400,
             "/3/0/9: 'high' is not a number")
    one_line(svc.deployer.put("/v1/devices/dev-rest/resources/3/0/9", json={"nothing": 1}), 400, '{"value": V}')
    one_line(svc.reader.get("/v1/devices/dev-rest/resources/3/0/9?format=xml"), 400, "unknown format 'xml'")
    one_line(svc.reader.get("/v1/devices/dev-rest/resources/3/0/1"), 404, "answered 4.04")


# -- content-format negotiation -------------------------------------------------------------

def _accepts(device) -> list[tuple[str, str, int]]:
    return [(m, p, a if m == "GET" else f) for m, p, a, f, *_ in device.received]


def test_a_refused_format_is_retried_in_the_next_one_and_remembered(svc, device):
    assert device.register(svc.coap_port, "dev-fmt", "</1/0>,</3/0>", version="1.1").code == Code.CREATED
    device.answer("GET", "/3/0", b"", None, Code.NOT_ACCEPTABLE)              # any Accept but TLV: 4.06
    device.answer("GET", "/3/0", DEVICE_TLV, TLV, when=TLV)
    r = svc.reader.get("/v1/devices/dev-fmt/resources/3/0")
    assert r.status_code == 200 and r.json()["values"] == {"/3/0/0": "Acme", "/3/0/1": "Sensor 2"}
    assert _accepts(device) == [("GET", "/3/0", SENML_CBOR), ("GET", "/3/0", SENML_JSON), ("GET", "/3/0", TLV)]
    device.received.clear()                                                  # remembered: TLV at once
    device.answer("GET", "/1/0", h("C1 00 01 C2 01 01 2C"), TLV, when=TLV)
    assert svc.reader.get("/v1/devices/dev-fmt/resources/1/0").json()["values"] == {"/1/0/0": 1, "/1/0/1": 300}
    assert _accepts(device) == [("GET", "/1/0", TLV)]

    # a write refused with 4.15 goes out again in the next format (single resource: ... then plain text)
    device.received.clear()
    device.answer("PUT", "/1/0/1", b"", None, Code.UNSUPPORTED_CONTENT_FORMAT)
    device.answer("PUT", "/1/0/1", b"", None, Code.CHANGED, when=TEXT)
    r = svc.deployer.put("/v1/devices/dev-fmt/resources/1/0/1", json={"value": 90})
    assert r.status_code == 200, r.text
    assert _accepts(device) == [("PUT", "/1/0/1", f) for f in (SENML_CBOR, SENML_JSON, TLV, TEXT)]
    assert device.received[-1][5] == b"90"
    device.received.clear()
    device.answer("GET", "/3/0/9", b"87", TEXT, when=TEXT)
    assert svc.reader.get("/v1/devices/dev-fmt/resources/3/0/9").json()["values"] == {"/3/0/9": 87}
    assert _accepts(device) == [("GET", "/3/0/9", TEXT)]                     # single resources: text first now

    # a 5.00 also moves on (LwM2M 1.0: text, then TLV); an error that is not about formats is not retried
    other = RawDevice()
    try:
        other.register(svc.coap_port, "dev-fmt10", "</3/0>", version="1.0")
        other.answer("GET", "/3/0/9", b"", None, Code.INTERNAL_SERVER_ERROR)
        other.answer("GET", "/3/0/9", h("C1 09 57"), TLV, when=TLV)
        assert svc.reader.get("/v1/devices/dev-fmt10/resources/3/0/9").json()["values"] == {"/3/0/9": 87}
        assert _accepts(other) == [("GET", "/3/0/9", TEXT), ("GET", "/3/0/9", TLV)]
        other.received.clear()
        other.answer("GET", "/3/0/0", b"", None, Code.BAD_REQUEST)
        one_line(svc.reader.get("/v1/devices/dev-fmt10/resources/3/0/0"), 400, "answered 4.00")
        assert _accepts(other) == [("GET", "/3/0/0", TLV)]                  # remembered, and asked once
    finally:
        other.close()
    assert svc.reader.get("/v1/devices/dev-fmt").json()["content_formats"] == {
        "used": {"multiple": TLV, "single": TEXT},
        "refused": {"multiple": [SENML_JSON, SENML_CBOR], "single": [SENML_JSON, SENML_CBOR, TLV]}}
    log = svc.log.read_text()
    assert log.count("'dev-fmt' refused SENML-CBOR (112) for /3/0 (4.06): trying SENML-JSON (110)") == 1
    assert log.count("'dev-fmt10' refused TEXT (0) for /3/0/9 (5.00): trying TLV (11542)") == 1


def test_a_device_answering_in_another_format_costs_one_line(svc, device):
    device.register(svc.coap_port, "dev-other", "</3/0>", version="1.1")
    device.answer("GET", "/3/0", DEVICE_TLV, TLV)                            # asked SenML-CBOR, answers TLV
    for _ in range(2):
        r = svc.reader.get("/v1/devices/dev-other/resources/3/0")
        assert r.status_code == 200 and r.json()["values"] == {"/3/0/0": "Acme", "/3/0/1": "Sensor 2"}
    assert _accepts(device) == [("GET", "/3/0", SENML_CBOR), ("GET", "/3/0", TLV)]
    device.answer("GET", "/3/0/1", b"\xa1\x00", SENML_CBOR)                  # says SenML-CBOR, is not
    one_line(svc.reader.get("/v1/devices/dev-other/resources/3/0/1"), 424, "content format 112")
    assert svc.reader.get("/v1/devices/dev-other/resources/3/0").status_code == 200     # still served
    log = svc.log.read_text()
    assert log.count("'dev-other' answered /3/0 in TLV (11542), not the SENML-CBOR (112) asked for") == 1
    assert log.count("'dev-other' answered /3/0/1 with content format 112 that we cannot read") == 1
    assert "Traceback" not in log


def test_unknown_critical_options_are_refused_with_4_02(svc, device):
    # CON POST /rd?ep=dev-crit with option 2049 (odd: critical; nobody defines it), written byte by byte
    raw = (b"\x42\x02\x12\x34" + b"\xab\xcd" + b"\xb2rd" + b"\x4b" + b"ep=dev-crit"
           + b"\xe1" + (2049 - 15 - 269).to_bytes(2, "big") + b"x")
    answer = _udp(svc.coap_port, raw)
    assert answer is not None and answer[1] == 0x82 and answer[2:4] == b"\x12\x34", answer   # 4.02, same MID
    assert svc.reader.get("/v1/devices/dev-crit").status_code == 404                        # not registered
    raw_if_match = b"\x42\x01\x12\x35\xab\xce" + b"\x10" + b"\xa3pkg"      # If-Match (1, critical): not supported
    answer = _udp(svc.coap_port, raw_if_match)
    assert answer is not None and answer[1] == 0x82
    elective = b"\x42\x01\x12\x36\xab\xcf" + b"\xb3pkg" + b"\xe1" + (2048 - 11 - 269).to_bytes(2, "big") + b"x"
    answer = _udp(svc.coap_port, elective)                                  # an unknown elective one is ignored
    assert answer is not None and answer[1] == 0x84                                         # 4.04: /pkg alone
    log = svc.log.read_text()
    assert log.count("POST /rd from 127.0.0.1:") >= 1 and log.count(": critical option 2049 not supported") == 1
    assert log.count("critical option 1 (IF_MATCH) not supported") == 1


# -- bad input: one log line each, the server keeps serving -------------------------------

def _udp(port: int, data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(2048)
        except TimeoutError:
            return None


def test_bad_input_costs_one_log_line_each(svc, device):
    port = svc.coap_port
    for raw in (b"\x00", b"\xff\xff\xff\xff", b"\x49\x02\x00\x01" + b"12345678",   # version 3, token length 9
                b"\x40\x02\x00\x02\xf0", b"\x40\x02\x00\x03\xb2rd\x0d\xff"):          # reserved delta, cut option
        _udp(port, raw)
    assert device.request(port, Code.POST, "/rd", "lt=60", b"</3/0>", fmt=LINK).code == Code.BAD_REQUEST
    assert device.request(port, Code.POST, "/rd", "ep=dev-bad&lt=soon", b"</3/0>", LINK).code == Code.BAD_REQUEST
    assert device.request(port, Code.POST, "/rd", "ep=dev-bad", b"<3/0", LINK).code == Code.BAD_REQUEST
    assert device.request(port, Code.POST, "/rd", "ep=intruder", b"</3/0>", LINK).code == Code.FORBIDDEN
    assert device.request(port, Code.POST, "/rd", "ep=dev-bad&lwm2m=9.9", b"", LINK).code == \
        Code.PRECONDITION_FAILED
    big = b"</3/0>," * 10_000                                          # 70 kB, sent block-wise
    assert device.request(port, Code.POST, "/rd", "ep=dev-big", big, LINK).code == Code.REQUEST_ENTITY_TOO_LARGE
    assert device.request(port, Code.GET, "/.well-known/core").code == Code.NOT_FOUND

    device.register(port, "dev-odd", "</3/0>,</4000/0>", version="1.1")
    device.answer("GET", "/4000/0/1", b'[{"n":"/4000/0/1","v":5}]', SENML_JSON)    # an object we do not know
    assert svc.reader.get("/v1/devices/dev-odd/resources/4000/0/1").json()["values"] == {"/4000/0/1": 5}
    device.answer("GET", "/3/0/9", b'[{"n":"/3/0/9","vs":"full"}]', SENML_JSON)     # SenML with a bad type
    one_line(svc.reader.get("/v1/devices/dev-odd/resources/3/0/9"), 424, "'vs' value for a Integer resource")
    device.answer("GET", "/3/0/10", b'{"free": 15}', 50)                             # application/json
    one_line(svc.reader.get("/v1/devices/dev-odd/resources/3/0/10"), 424, "content format 50")
    bad_send = device.request(port, Code.POST, "/dp", payload=b'[{"n":"/3/0/9","vb":true}]', fmt=SENML_JSON)
    assert bad_send.code == Code.BAD_REQUEST

    codes = [device.request(port, Code.POST, "/rd", f"ep=dev-flood-{i}", b"</3/0>", LINK).code for i in range(40)]
    assert Code.TOO_MANY_REQUESTS in codes and codes[0] == Code.CREATED

    # still serving: an Update, a read, and the HTTP API
    device.answer("GET", "/3/0/0", b'[{"n":"/3/0/0","vs":"Acme"}]', SENML_JSON)
    assert device.update(port).code == Code.CHANGED
    assert svc.reader.get("/v1/devices/dev-odd/resources/3/0/0").json()["values"] == {"/3/0/0": "Acme"}
    log = svc.log.read_text()
    assert "Traceback" not in log
    for line in ("missing or invalid endpoint name", "invalid lifetime 'soon'", "link format: expected",
                 "no project allows this endpoint name", "LwM2M version '9.9' is not supported",
                 "bytes (at most 65,536)", "GET /.well-known/core from", "object(s) 4000, which have no definition",
                 "'vs' value for a Integer resource", "content format 50 that we cannot read",
                 "Send from 'dev-odd'", "refusing registrations from 127.0.0.1"):
        assert log.count(line) == 1, (line, log[-4000:])
    assert log.count("refusing registrations") == 1
