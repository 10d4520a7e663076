"""The device agent and push delivery, end to end over real UDP on 127.0.0.1.

A real ``tinyml serve`` (its LwM2M server), real agents (:mod:`platformio_tinyml.lwm2m.agent`,
in a thread of this process, and one as a ``tinyml device-agent`` process),
real signed modules (the MLPerf KWS model packed for the host ABI) pushed
block-wise through ``POST /v1/devices/{endpoint}/modules`` and installed and
run by the real C loader built for the host. The output the device reports
must equal TensorFlow Lite Micro's on the same input, bit for bit.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from agent_support import KWS_KERNELS, OCTETS, Loop, agent_config, kws_module, last_output, lwm2m_service, push
from agent_support import start_agents, stop_agents, wait_capabilities
from module_support import MODEL_A, fixed_key, pack

from platformio_tinyml.lwm2m.agent import Agent, probe_input
from platformio_tinyml.module.firmware import KernelSet
from platformio_tinyml.module.kernels import Abi


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    srv = lwm2m_service(tmp_path_factory.mktemp("agent") / "data", "fleet", "agent-*",
                        TINYML_SERVICE_LWM2M_FLOOD_COUNT="1000")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def agents(svc):
    """Two agents in one loop: 'agent' (6 devices, blocks up to 1024 B) and 'agent-small' (256 B)."""
    loop = Loop()
    out = {"big": Agent(agent_config(svc.coap_port, "agent", count=6)),
           "small": Agent(agent_config(svc.coap_port, "agent-small", max_block=256))}
    start_agents(loop, *out.values())
    yield {**out, "loop": loop}
    stop_agents(loop, *out.values())


@pytest.fixture(scope="module")
def kws():
    return kws_module()


def _deliver(svc, endpoint, data, **params) -> dict:
    wait_capabilities(svc, endpoint)
    return push(svc, endpoint, data, **params)


def test_pushed_module_is_installed_and_runs_like_tflm(svc, agents, kws):
    mod, golden = kws
    caps = wait_capabilities(svc, "agent-0")["capabilities"]
    assert (caps["slot_count"], caps["active_slot"], caps["executor_abi"]) == (2, -1, int(Abi.LP64_LE))
    assert caps["kernel_set"] == f"0x{KernelSet.of(KWS_KERNELS).mask:x}"

    st = _deliver(svc, "agent-0", mod.data)
    assert st["state"] == "active", st["message"]
    assert (st["block_size"], st["bytes_done"], st["blocks_done"]) == (1024, len(mod.data), -(-len(mod.data) // 1024))
    assert (st["update_result"], st["inference_count"]) == (2, 1)
    assert last_output(svc, "agent-0") == golden           # the host C executor = TFLite Micro, bit for bit
    dev = agents["big"].device("agent-0")
    assert (dev.mcu.active, dev.mcu.installed_version, dev.inference_count) == (0, 1, 1)
    assert svc.deployer.post("/v1/devices/agent-0/execute/9/0/10").status_code == 200   # again: a no-op
    assert dev.inference_count == 1
    installed = svc.reader.get("/v1/devices/agent-0/modules").json()["installed"]
    assert installed == [{"index": 0, "module": mod.header.model_name, "version": "1", "state": "active"}]

    # the next version goes to the other slot; the device reports it and runs it
    v2 = pack(MODEL_A, Abi.LP64_LE, 2, fixed_key())[1]
    st = _deliver(svc, "agent-0", v2.data)
    assert st["state"] == "active", st["message"]
    assert (dev.mcu.active, dev.mcu.installed_version, dev.inference_count) == (1, 2, 2)
    assert last_output(svc, "agent-0") == golden


@pytest.mark.parametrize("endpoint, mode", [("agent-1", "push"), ("agent-5", "pull")])
def test_tampered_module_is_refused_with_result_53_and_the_running_one_stays(svc, agents, kws, endpoint, mode):
    """Pushed, or pulled (?pull=true: the device fetches the published module and hands it to the
    same checks as a pushed module's last block): the same Update Results, the running module stays."""
    mod, golden = kws
    pull = {"pull": "true"} if mode == "pull" else {}
    assert _deliver(svc, endpoint, mod.data, **pull)["state"] == "active"
    bad = bytearray(mod.data)
    bad[len(bad) // 2] ^= 0x10
    st = _deliver(svc, endpoint, bytes(bad), **pull)
    assert (st["state"], st["mode"], st["update_result"], st["reason"]) == ("failed", mode, 53, "crc"), st
    when = "after fetching the package" if pull else "after the last block"
    assert f"{when}: Update Result 53 (package integrity check failure" in st["message"] and "sign it" in st["message"]
    assert "\n" not in st["message"]
    dev = agents["big"].device(endpoint)
    assert (dev.mcu.active, dev.inference_count) == (0, 1)
    assert dev.mcu.infer(probe_input(sum(d.nbytes for d in mod.header.inputs))) == golden

    # a module signed with another key: 53 as well; an older version: install fails, 58
    other = pack(MODEL_A, Abi.LP64_LE, 5, fixed_key(99))[1]
    st = _deliver(svc, endpoint, other.data, **pull)
    assert (st["state"], st["update_result"], st["reason"]) == ("failed", 53, "signature")
    older = pack(MODEL_A, Abi.LP64_LE, 0, fixed_key())[1]
    st = _deliver(svc, endpoint, older.data, **pull)
    assert (st["state"], st["update_result"], st["reason"]) == ("failed", 58, "version"), st
    assert "raise the module version" in st["message"]
    assert dev.mcu.active == 0 and dev.mcu.installed_version == 1


def test_device_answering_413_gets_smaller_blocks(svc, agents, kws):
    mod, golden = kws
    st = _deliver(svc, "agent-small", mod.data)
    assert st["state"] == "active", st["message"]
    assert (st["block_size"], st["bytes_done"]) == (256, len(mod.data))
    assert st["blocks_done"] == 1 + -(-(len(mod.data) - 256) // 256)   # block 0 refused at 1024, resent at 256
    assert last_output(svc, "agent-small") == golden


async def _moved(dev) -> None:
    """The device's socket closes; a second later it is back on a new port (and sends an Update)."""
    await dev.stop(deregister=False)
    await asyncio.sleep(1.0)
    await dev.start()


@pytest.mark.parametrize("endpoint, fault", [
    ("agent-2", lambda dev: dev.lose_coverage(6.0)),    # requests wait unanswered; the server's time out (5 s)
    ("agent-4", _moved),                                 # ICMP "port unreachable", then a new address
], ids=["out-of-coverage", "new-port"])
def test_transfer_cut_midway_resumes_from_the_last_acknowledged_block(svc, agents, kws, endpoint, fault):
    """The fault strikes after 8 KB; the delivery goes on where it stopped, to wherever the
    device is now: every block is acknowledged exactly once."""
    mod, golden = kws
    dev, loop = agents["big"].device(endpoint), agents["loop"]
    before = wait_capabilities(svc, endpoint)["registration"]["address"]

    async def cut():
        while dev.sw.received < 8192:
            await asyncio.sleep(0.0005)
        cut_at = dev.sw.received
        await fault(dev)
        return cut_at
    cut_at = asyncio.run_coroutine_threadsafe(cut(), loop.loop)
    st = _deliver(svc, endpoint, mod.data)
    assert 8192 <= cut_at.result(5) < len(mod.data)
    assert st["state"] == "active", st["message"]
    assert st["resumed"] >= 1 and st["blocks_done"] == -(-len(mod.data) // 1024), st
    assert last_output(svc, endpoint) == golden
    moved = svc.reader.get(f"/v1/devices/{endpoint}").json()["registration"]["address"] != before
    assert moved == (fault is _moved)


def test_a_device_gone_without_deregistering_leaves_the_others_reachable(svc):
    """A device's socket closes: the server's next request to it gets ICMP "port unreachable".
    Under uvloop aiocoap's socket then stopped receiving, and no device was heard again."""
    loop = Loop()
    agent = Agent(agent_config(svc.coap_port, "agent-gone", count=2))
    loop.run(agent.start())
    try:
        assert loop.run(agent.wait_registered(10))
        wait_capabilities(svc, "agent-gone-1")
        loop.run(agent.devices[0].stop(deregister=False))
        for _ in range(2):
            r = svc.reader.get("/v1/devices/agent-gone-0/resources/9/0/7")
            assert r.status_code == 424, r.text
            r = svc.reader.get("/v1/devices/agent-gone-1/resources/9/0/7")
            assert r.status_code == 200 and r.json()["values"] == {"/9/0/7": 0}, r.text
    finally:
        loop.run(agent.stop())
        loop.close()


def test_every_device_has_a_port_of_its_own(svc):
    """aiocoap binds with SO_REUSEPORT, so port 0 could give two devices one port (seen: 10 of
    1,000), and each then got some of the other's requests. 200 devices: 200 addresses (without the
    fix about one run in three shares a port: 2e-5 per pair of sockets)."""
    loop = Loop()
    agent = Agent(agent_config(svc.coap_port, "agent-many", count=200))
    loop.run(agent.start())
    try:
        assert loop.run(agent.wait_registered(40), timeout=60)
        addresses = {svc.reader.get(f"/v1/devices/agent-many-{i}").json()["registration"]["address"]
                     for i in range(200)}
        assert len(addresses) == 200
    finally:
        loop.run(agent.stop(), timeout=60)
        loop.close()


def test_delivery_needs_deploy_scope_and_a_module(svc, agents, kws):
    mod, _ = kws
    r = svc.reader.post("/v1/devices/agent-3/modules", content=mod.data, headers=OCTETS)
    assert r.status_code == 403 and "deploy" in r.json()["detail"]
    r = svc.deployer.post("/v1/devices/agent-3/modules", content=b"\x7fELF" + bytes(100), headers=OCTETS)
    assert r.status_code == 400 and "not an inference module" in r.json()["detail"]
    r = svc.deployer.post("/v1/devices/agent-9/modules", content=mod.data, headers=OCTETS)
    assert r.status_code == 404
    assert svc.reader.get("/v1/devices/agent-3/modules").json()["delivery"] is None


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
            caps = wait_capabilities(svc, ep)["capabilities"]
            assert caps["kernel_set"] == f"0x{KernelSet.all().mask:x}"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "2 of 2 device(s) registered" in out, (out, err)
