"""The device agent and push delivery, end to end over real UDP on 127.0.0.1.

A real ``tinyml serve`` (its LwM2M server), real agents (:mod:`platformio_tinyml.lwm2m.agent`,
in a thread of this process, and one as a ``tinyml device-agent`` process),
real signed modules (the MLPerf KWS model packed for the host ABI) pushed
block-wise through ``POST /v1/devices/{endpoint}/modules`` and installed and
run by the real C loader built for the host. """

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest
from lwm2m_support import free_udp_port
from module_support import fixed_key
from service_support import Server, tinyml

from platformio_tinyml.lwm2m.agent import Agent, AgentConfig
from platformio_tinyml.module.firmware import KernelSet
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.keys import public_key_bytes

KWS_KERNELS = ("tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    port = free_udp_port()
    srv = Server(tmp_path_factory.mktemp("agent") / "data", "--lwm2m-port", port,
                 env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "3"})
    srv.coap_port = port
    tokens = {s: srv.token("fleet", s) for s in ("read", "read,deploy")}
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "agent-*", "--data", srv.data)
    srv.start()
    srv.reader, srv.deployer = srv.client(tokens["read"]), srv.client(tokens["read,deploy"])
    yield srv
    srv.stop()


class _Loop:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="module")
def agents(svc):
    """Two agents in one loop: 'agent' (3 devices, blocks up to 1024 B) and 'agent-small' (256 B)."""
    loop = _Loop()
    common = dict(server=f"coap://127.0.0.1:{svc.coap_port}", kernels=KernelSet.of(KWS_KERNELS),
                  public_key=public_key_bytes(fixed_key().public_key()))
    out = {"big": Agent(AgentConfig(endpoint="agent", count=3, **common)),
           "small": Agent(AgentConfig(endpoint="agent-small", max_block=256, **common))}
    for a in out.values():
        loop.run(a.start())
        assert loop.run(a.wait_registered(10))
    yield out
    for a in out.values():
        loop.run(a.stop())
    loop.loop.call_soon_threadsafe(loop.loop.stop)


def _wait_capabilities(svc, endpoint):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dev = svc.reader.get(f"/v1/devices/{endpoint}").json()
        if dev.get("capabilities"):
            return dev
        time.sleep(0.1)
    raise AssertionError(f"no capabilities for {endpoint}")


def test_agent_registers_with_its_capabilities(svc, agents):
    caps = _wait_capabilities(svc, "agent-0")["capabilities"]
    assert (caps["slot_count"], caps["active_slot"], caps["executor_abi"]) == (2, -1, int(Abi.LP64_LE))
    assert caps["kernel_set"] == f"0x{KernelSet.of(KWS_KERNELS).mask:x}"
    assert [s["state"] for s in caps["slots"]] == ["empty", "empty"]
    assert svc.reader.get("/v1/devices/agent-small").json()["online"] is True


def test_cli_runs_devices_and_refuses_bad_input_in_one_line(svc, tmp_path):
    from cryptography.hazmat.primitives import serialization
    pub = tmp_path / "key.pub"
    pub.write_bytes(fixed_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    cmd = [sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for args, needle in ((["--server", "http://x", "--endpoint", "a", "--public-key", str(pub)], "coap://"),
                         (["--server", "coap://127.0.0.1:1", "--endpoint", "a", "--public-key", "/nope"], "/nope"),
                         (["--server", "coap://127.0.0.1:1", "--endpoint", "a", "--public-key", str(pub),
                           "--max-block", "1000"], "--max-block")):
        r = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

    proc = subprocess.Popen(cmd + ["--server", f"coap://127.0.0.1:{svc.coap_port}", "--endpoint", "agent-cli",
                                   "--public-key", str(pub), "--count", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for ep in ("agent-cli-0", "agent-cli-1"):
            caps = _wait_capabilities(svc, ep)["capabilities"]
            assert caps["kernel_set"] == f"0x{KernelSet.all().mask:x}"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "2 of 2 device(s) registered" in out, (out, err)
