"""Our LwM2M server against peers we did not write, over real UDP on 127.0.0.1.

* libcoap's ``coap-client-notls`` (Debian ``libcoap3-bin``) fetches a
  published package from the pull URI ``coap://HOST:PORT/pkg/<sha256>``
  block-wise, and sends the requests we must refuse (a block past the end,
  an unknown critical option).

A peer that is missing fails the test (CI installs both); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from lwm2m_support import free_udp_port
from service_support import Server, one_line, tinyml

COAP_CLIENT = "coap-client-notls"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    port = free_udp_port()
    srv = Server(tmp_path_factory.mktemp("interop") / "data", "--lwm2m-port", port,
                 env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "5"})
    srv.coap_port = port
    tinyml("service", "devices", "allow", "--project", "interop", "--pattern", "node-*", "--data", srv.data)
    reader, deployer = srv.token("interop", "read"), srv.token("interop", "read,deploy")
    srv.start()
    srv.reader, srv.deployer = srv.client(reader), srv.client(deployer)
    yield srv
    srv.stop()


def _coap_get(uri: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    assert shutil.which(COAP_CLIENT), f"{COAP_CLIENT} is not installed (Debian libcoap3-bin; scripts/setup.sh)"
    return subprocess.run([COAP_CLIENT, "-m", "get", "-B", "10", *args, uri], capture_output=True, timeout=timeout)


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

    # an unknown digest: 4.04; a block past the end: 4.02 (the libcoap client prints the code)
    missing = _coap_get(f"coap://127.0.0.1:{svc.coap_port}/pkg/{'0' * 64}")
    assert b"4.04" in missing.stdout + missing.stderr, missing
    past = _coap_get(uri, "-b", "481,64")                  # 30,737 B: the last 64-byte block is 480
    assert b"4.02" in past.stdout + past.stderr, past
    last = _coap_get(uri, "-b", "480,64", "-o", str(tmp_path / "last.bin"))
    assert last.returncode == 0 and (tmp_path / "last.bin").read_bytes() == package[480 * 64:]
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
