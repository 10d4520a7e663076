"""Our LwM2M server against peers we did not write, over real UDP on 127.0.0.1.

* ``lwm2m-node-lib`` 1.4.0 (npm, Telefonica; an LwM2M 1.0 client answering
  plain text), run by ``tests/interop/node_client.js``: it registers, our
  server reads its Device object, writes and executes resources, and the
  client's own events (JSON lines on its stdout) confirm what arrived; then
  it de-registers. Installed by ``scripts/setup_interop.sh`` (run by
  ``scripts/setup.sh``) into ``third_party/node``.
* libcoap's ``coap-client-notls`` (Debian ``libcoap3-bin``) fetches a
  published package from the pull URI ``coap://HOST:PORT/pkg/<sha256>``
  block-wise, and sends the requests we must refuse (a block past the end,
  an unknown critical option).

A peer that is missing fails the test (CI installs both); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest
from agent_support import lwm2m_service
from service_support import REPO, one_line

NODE_MODULES = REPO / "third_party" / "node" / "node_modules"
NODE_CLIENT = REPO / "tests" / "interop" / "node_client.js"
COAP_CLIENT = "coap-client-notls"


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    srv = lwm2m_service(tmp_path_factory.mktemp("interop") / "data", "interop", "node-*")
    yield srv
    srv.stop()


class NodeClient:
    """``node tests/interop/node_client.js``: its stdout events, one JSON object a line, in a queue."""

    def __init__(self, port: int, endpoint: str):
        assert (NODE_MODULES / "lwm2m-node-lib").is_dir(), \
            "lwm2m-node-lib is not installed: run scripts/setup_interop.sh"
        node = shutil.which("node") or shutil.which("nodejs")
        assert node, "node is not installed (scripts/setup.sh installs nodejs)"
        self.proc = subprocess.Popen([node, str(NODE_CLIENT), "127.0.0.1", str(port), endpoint],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
        self.events: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:          # the library's own log lines (logops, JSON) are kept apart
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and "event" in event:
                self.events.put(event)
            else:
                self.log.append(line.strip())

    def next(self, timeout: float = 10.0) -> dict:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event from the node client in {timeout:g} s (exit code {self.proc.poll()}; "
                                 f"its log: {self.log[-3:]})") from None
        assert event["event"] != "error", (event, self.log[-3:])
        return event

    def say(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def test_lwm2m_node_lib_client_registers_is_read_written_executed_and_deregisters(svc):
    node = NodeClient(svc.coap_port, "node-1")
    try:
        reg = node.next(15)
        assert reg["event"] == "registered" and reg["location"].startswith("rd/"), reg
        dev = svc.reader.get("/v1/devices/node-1").json()
        registration = dev["registration"]
        assert (dev["online"], registration["lwm2m_version"], registration["binding"],
                registration["lifetime_s"]) == (True, "1.0", "U", 300)
        assert {o["path"] for o in registration["objects"]} >= {"/1/0", "/3/0"}
        # requests reach it from the socket it registered from: it answers them
        assert registration["address"] == f"127.0.0.1:{reg['port']}"

        def read(path):
            r = svc.reader.get(f"/v1/devices/node-1/resources{path}")
            assert r.status_code == 200, r.text
            return r.json()["values"][path]

        assert (read("/3/0/0"), read("/3/0/1"), read("/3/0/2"), read("/3/0/3")) == (
            "Telefonica I+D", "lwm2m-node-lib", "SN-0042", "1.4.0")
        assert read("/3/0/9") == 87                        # text "87", typed by the object definition
        assert read("/1/0/1") == 300

        assert svc.reader.get("/v1/devices/node-1").json()["content_formats"] == {"used": {"single": 0},
                                                                                "refused": {}}
        r = svc.deployer.put("/v1/devices/node-1/resources/3/0/14", json={"value": "+02:00"})
        assert r.status_code == 200, r.text
        assert node.next() == {"event": "write", "path": "/3/0/14", "value": "+02:00"}
        assert read("/3/0/14") == "+02:00"
        r = svc.deployer.put("/v1/devices/node-1/resources/1/0/1", json={"value": 120})
        assert r.status_code == 200, r.text
        assert node.next() == {"event": "write", "path": "/1/0/1", "value": "120"}
        assert read("/1/0/1") == 120

        r = svc.deployer.post("/v1/devices/node-1/execute/3/0/4")
        assert r.status_code == 200, r.text
        assert node.next() == {"event": "execute", "path": "/3/0/4", "args": ""}

        one_line(svc.reader.get("/v1/devices/node-1/resources/3/0/13"), 404, "answered 4.04")

        r = svc.deployer.put("/v1/devices/node-1/attributes/3/0/9", json={"pmin": 10, "pmax": 60})
        assert r.status_code == 200, r.text
        links = svc.reader.get("/v1/devices/node-1/discover/3/0/9").json()["links"]
        assert links == [{"path": "/3/0/9", "pmin": "10", "pmax": "60"}]      # what it stored, read back
        links = svc.reader.get("/v1/devices/node-1/discover/3/0").json()["links"]
        assert [lk["path"] for lk in links] == ["/3/0", "/3/0/0", "/3/0/1", "/3/0/2", "/3/0/3", "/3/0/9",
                                                "/3/0/14", "/3/0/16"]
        # Observe: its first answer, then a notification when the client changes the value itself
        r = svc.deployer.post("/v1/devices/node-1/observe/1/0/1")
        assert r.status_code == 200 and r.json()["values"] == {"/1/0/1": 120}, r.text
        node.say("set /1/0 1 150")
        assert node.next() == {"event": "set", "path": "/1/0/1", "value": "150", "error": None}
        wait_for(lambda: [(v["path"], v["value"], v["source"]) for v in
                          svc.reader.get("/v1/devices/node-1/values").json()][:2] == [
            ("/1/0/1", 150, "observe"), ("/1/0/1", 120, "observe")])
        assert svc.deployer.delete("/v1/devices/node-1/observe/1/0/1").json()["cancelled"] is True

        # a Read of an instance asks for TLV (11542), a format its CoAP library does not know: it does not answer
        # at all (with Accept 0 it would say 4.04: it serves single resources only). One line, and we go on.
        # Its CoAP exchange ends with the request's timeout (3 s: one transmission), so the next request goes out at
        # once; with aiocoap's defaults it waited (NSTART 1) behind retransmissions of the unanswered one for 93 s.
        one_line(svc.reader.get("/v1/devices/node-1/resources/3/0"), 424, "GET /3/0 on 'node-1': no answer within")
        t = time.monotonic()
        assert read("/3/0/0") == "Telefonica I+D" and time.monotonic() - t < 1.5

        node.say("bye")
        assert node.next() == {"event": "deregistered", "error": None}
        dev = svc.reader.get("/v1/devices/node-1").json()
        assert not dev["online"] and dev["registration"]["end_reason"] == "deregistered"
        assert dev["content_formats"] is None
        assert node.proc.wait(10) == 0
    finally:
        node.close()
    log = svc.log.read_text()
    assert "Traceback" not in log
    # what the peer used, as our server saw it (docs/lwm2m.md's interop table)
    assert "'node-1' (LwM2M 1.0) uses TEXT (0) for single resources" in log


def _coap_get(uri: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    assert shutil.which(COAP_CLIENT), f"{COAP_CLIENT} is not installed (Debian libcoap3-bin; scripts/setup.sh)"
    return subprocess.run([COAP_CLIENT, "-m", "get", "-B", "60", *args, uri], capture_output=True, timeout=timeout)


def test_libcoap_client_pulls_a_package_block_wise(svc, tmp_path):
    package = hashlib.shake_256(b"tinyml pull test").digest(30_737)        # ~30 KB, not a multiple of 64
    r = svc.deployer.post("/v1/packages", content=package, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    digest = hashlib.sha256(package).hexdigest()
    assert r.json()["sha256"] == digest and r.json()["size"] == len(package)
    uri = r.json()["coap_uri"]
    assert uri == f"coap://127.0.0.1:{svc.coap_port}/pkg/{digest}"

    for size in ("64", "1024"):
        out = tmp_path / f"pkg-{size}.bin"
        got = _coap_get(uri, "-b", size, "-o", str(out))
        assert got.returncode == 0, got.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest, (size, out.stat().st_size)
    # over HTTP too, with no token
    http = svc.client(None).get(r.json()["http_uri"])
    assert http.status_code == 200 and hashlib.sha256(http.content).hexdigest() == digest
    assert http.headers["etag"] == f'"{digest}"'
    part = svc.client(None).get(r.json()["http_uri"], headers={"Range": "bytes=30000-"})     # a resumed download
    assert part.status_code == 206 and part.content == package[30000:]

    # an unknown digest: 4.04; a block past the end: 4.02 (the libcoap client prints the code)
    missing = _coap_get(f"coap://127.0.0.1:{svc.coap_port}/pkg/{'0' * 64}")
    assert b"4.04" in missing.stdout + missing.stderr, missing
    past = _coap_get(uri, "-b", "481,64")                  # 30,737 B: the last 64-byte block is 480
    assert b"4.02" in past.stdout + past.stderr, past
    last = _coap_get(uri, "-b", "480,64", "-o", str(tmp_path / "last.bin"))
    assert last.returncode == 0 and (tmp_path / "last.bin").read_bytes() == package[480 * 64:]
    # any block, in any order, from a new socket (the server keeps no transfer state): a cut transfer resumes
    for n in (200, 17, 479):                     # libcoap fetches just the block named
        one = _coap_get(uri, "-b", f"{n},64", "-o", str(tmp_path / f"block-{n}.bin"))
        assert one.returncode == 0 and (tmp_path / f"block-{n}.bin").read_bytes() == package[n * 64:(n + 1) * 64]
    put = subprocess.run([COAP_CLIENT, "-m", "put", "-B", "10", "-e", "x", uri], capture_output=True, timeout=30)
    assert b"4.05" in put.stdout + put.stderr, put
    # an unknown critical option (2049 is odd: critical) is refused, not ignored
    odd = _coap_get(uri, "-O", "2049,x")
    assert b"4.02" in odd.stdout + odd.stderr, odd
    one_line(svc.client(None).get(f"/v1/packages/{'0' * 64}"), 404, "no published package")
    one_line(svc.reader.post("/v1/packages", content=b"x"), 403, "'deploy' scope")
    log = svc.log.read_text()
    assert f"GET /pkg/{digest} from 127.0.0.1:" in log and ": critical option 2049 not supported" in log
    assert "starts past the end of 30,737 bytes" in log
