"""LwM2M over DTLS with pre-shared keys, end to end on 127.0.0.1.

A real ``tinyml serve --lwm2m-dtls-port P --lwm2m-psk-file F`` and real agents
(:mod:`platformio_tinyml.lwm2m.agent`) with ``coaps://`` servers: a device
registers over DTLS, the server reads its Device object and pushes a signed
module block-wise over the DTLS session the device opened (server-initiated
requests), and the module runs like TensorFlow Lite Micro. A wrong key, an
endpoint name other than the identity, and a keyed name over plain UDP are
refused. Needs the optional DTLSSocket package (``pip install
'platformio-tinyml[dtls]'``); benchmarks/dtls_psk_probe.py is the feasibility
probe behind it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("DTLSSocket", reason="DTLSSocket (the optional 'dtls' extra, which builds tinydtls) is not "
                                         "installed: the DTLS-PSK transport cannot run")

from agent_support import (Loop, agent_config, kws_module, last_output, lwm2m_service, public_key_pem,  # noqa: E402
                           push, wait_capabilities)
from lwm2m_support import free_udp_port  # noqa: E402
from service_support import free_port  # noqa: E402

from platformio_tinyml.lwm2m.agent import Agent  # noqa: E402

KEY = bytes(range(1, 17))                   # 16 bytes, the most tinydtls takes
OTHER_KEY = bytes(range(2, 18))


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dtls")
    psk = tmp / "psk.json"
    psk.write_text(json.dumps({"agent-dtls": KEY.hex(), "agent-keyed": OTHER_KEY.hex(), "agent-lost": KEY.hex()}))
    dtls_port = free_udp_port()
    srv = lwm2m_service(tmp / "data", "fleet", "agent-*", "--lwm2m-dtls-port", dtls_port, "--lwm2m-psk-file", psk,
                        timeout_s="5")
    srv.dtls_port, srv.psk = dtls_port, psk
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loop():
    lp = Loop()
    yield lp
    lp.close()


def dtls_agent(svc, endpoint, key=KEY, **kw) -> Agent:
    cfg = agent_config(svc.coap_port, endpoint, psk_key=key, **kw)
    return Agent(dataclasses.replace(cfg, server=f"coaps://127.0.0.1:{svc.dtls_port}"))


def test_device_registers_over_dtls_is_read_and_gets_a_module(svc, loop):
    mod, golden = kws_module()
    agent = dtls_agent(svc, "agent-dtls")
    loop.run(agent.start())
    try:
        assert loop.run(agent.wait_registered(15))
        dev = svc.reader.get("/v1/devices/agent-dtls").json()
        assert dev["online"] is True, dev
        # a Read the server sends to the device over the DTLS session the device opened
        r = svc.reader.get("/v1/devices/agent-dtls/resources/3/0")
        assert r.status_code == 200, r.text
        assert r.json()["values"], r.text
        caps = wait_capabilities(svc, "agent-dtls")["capabilities"]
        assert caps["slot_count"] == 2
        # a module pushed block-wise (Block1 PUTs, then Install and Activate) over DTLS
        st = push(svc, "agent-dtls", mod.data)
        assert st["state"] == "active", st["message"]
        assert last_output(svc, "agent-dtls") == golden
        assert agent.device("agent-dtls").inference_count == 1
    finally:
        loop.run(agent.stop())
    log = (svc.data.parent / f"serve-{svc.port}.log").read_text()
    assert "coaps://127.0.0.1:%d (DTLS-PSK, 3 identities)" % svc.dtls_port in log, log


@pytest.mark.parametrize("endpoint, kw, needle", [
    ("agent-lost", {"key": OTHER_KEY}, None),                                     # wrong key: no handshake
    ("agent-other", {"psk_identity": "agent-dtls"}, "must be the PSK identity"),  # name != identity
])
def test_dtls_registration_is_refused_without_the_right_key_and_name(svc, loop, endpoint, kw, needle):
    agent = dtls_agent(svc, endpoint, request_timeout_s=3, **kw)
    loop.run(agent.start())
    try:
        assert not loop.run(agent.wait_registered(6))
    finally:
        loop.run(agent.stop())
    assert svc.reader.get(f"/v1/devices/{endpoint}").status_code == 404
    if needle:
        assert needle in (svc.data.parent / f"serve-{svc.port}.log").read_text()


def test_a_keyed_endpoint_name_is_refused_over_plain_udp(svc, loop):
    agent = Agent(agent_config(svc.coap_port, "agent-keyed", request_timeout_s=3))
    loop.run(agent.start())
    try:
        assert not loop.run(agent.wait_registered(4))
    finally:
        loop.run(agent.stop())
    deadline = time.monotonic() + 5
    log = ""
    while "registers over coaps:// only" not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = (svc.data.parent / f"serve-{svc.port}.log").read_text()
    assert "'agent-keyed' has a pre-shared key: it registers over coaps:// only" in log


def test_cli_refuses_bad_dtls_settings_in_one_line(svc, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    pub = public_key_pem(tmp_path / "key.pub")
    long_key = tmp_path / "long.json"
    long_key.write_text(json.dumps({"dev": "00" * 17}))
    serve = [sys.executable, "-m", "platformio_tinyml.cli.main", "serve", "--data", str(tmp_path / "d"),
             "--port", str(free_port()), "--lwm2m-port", str(free_udp_port()), "--lwm2m-dtls-port", str(free_udp_port())]
    agent = [sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent", "--endpoint", "dev",
             "--public-key", str(pub), "--server", "coaps://127.0.0.1:1"]
    for cmd, needle in ((serve, "--lwm2m-psk-file"),
                        (serve + ["--lwm2m-psk-file", str(long_key)], "tinydtls takes 1 to 16"),
                        (serve + ["--lwm2m-psk-file", str(svc.psk), "--host", "0.0.0.0"], "one address"),
                        (agent, "--psk-key"),
                        (agent + ["--psk-key", "zz"], "hex digits"),
                        (agent + ["--psk-key", "00" * 17], "tinydtls takes 1 to 16")):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, (cmd, r.stderr)


def test_cli_device_agent_registers_over_dtls(svc, tmp_path):
    """``tinyml device-agent --server coaps://... --psk-identity ID --psk-key HEX`` as a process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    pub = public_key_pem(tmp_path / "key.pub")
    proc = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent",
                             "--server", f"coaps://127.0.0.1:{svc.dtls_port}", "--endpoint", "agent-keyed",
                             "--psk-identity", "agent-keyed", "--psk-key", OTHER_KEY.hex(), "--public-key", str(pub)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        caps = wait_capabilities(svc, "agent-keyed", timeout=20)["capabilities"]
        assert caps["slot_count"] == 2
        r = svc.reader.get("/v1/devices/agent-keyed/resources/3/0/0")
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "1 of 1 device(s) registered" in out, (out, err)
