"""``tinyml device-agent --firmware``: the device agent is the modem, the example firmware
(``example_projects/module-cortex-m4``, booted in QEMU mps2-an386) is the microcontroller.

A real ``tinyml serve`` pushes the KWS module (packed for 32-bit Cortex-M, signed) to a
real ``tinyml device-agent --firmware`` process over UDP on 127.0.0.1. The firmware's own
C loader, compiled for the Cortex-M4, checks and switches the slots, and its inference
output, which the device reports in the TinyML object, must equal TensorFlow Lite Micro's
bit for bit. Tampered, foreign, wider and older modules are refused by that loader with
the Update Result the LwM2M specification defines, and the running module stays.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from agent_support import KWS_KERNELS, kws_firmware_module, kws_module, last_output, public_key_pem, push
from conftest import need_programs
from lwm2m_support import free_udp_port
from module_support import MODEL_A, fixed_key, pack, resign
from service_support import REPO, Server, interrupt, tinyml, wait_for

from platformio_tinyml.module.kernels import Abi

EXAMPLE = REPO / "example_projects" / "module-cortex-m4"
CLI = [sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent"]


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    """The service and one agent process with two firmware devices, 'fw-0' and 'fw-1'."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    tmp = tmp_path_factory.mktemp("fwagent")
    port = free_udp_port()
    srv = Server(tmp / "data", "--lwm2m-port", port, env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "5"})
    srv.coap_port, srv.pub = port, public_key_pem(tmp / "key.pub")
    tokens = {s: srv.token("fleet", s) for s in ("read", "read,deploy")}
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "fw-*", "--data", srv.data)
    srv.start()
    srv.reader, srv.deployer = srv.client(tokens["read"]), srv.client(tokens["read,deploy"])
    srv.agent_log = tmp / "agent.log"
    agent = subprocess.Popen(CLI + ["--server", f"coap://127.0.0.1:{port}", "--endpoint", "fw", "--count", "2",
                                    "--public-key", str(srv.pub), "--kernels", ",".join(KWS_KERNELS),
                                    "--firmware", str(EXAMPLE), "-v"],
                             stdout=subprocess.DEVNULL, stderr=open(srv.agent_log, "w"),
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        def registered():
            assert agent.poll() is None, srv.agent_log.read_text()
            return all(srv.reader.get(f"/v1/devices/{ep}").json().get("capabilities") for ep in ("fw-0", "fw-1"))
        wait_for(registered, "both firmware devices registered", 60, srv.agent_log)  # builds the firmware once
        yield srv
    finally:
        interrupt(agent, timeout=15)
        srv.stop()


def _firmware_said(svc) -> str:
    return svc.agent_log.read_text()


def test_firmware_device_reports_its_mcu_and_runs_the_pushed_module_like_tflm(svc):
    _, golden = kws_module()                 # TFLM's output on the agent's probe input
    caps = svc.reader.get("/v1/devices/fw-0").json()["capabilities"]
    prof = caps["profile"]
    assert (prof["board"], prof["core"], prof["word_bits"], prof["ram_bytes"], caps["executor_abi"]) == \
        ("mps2-an386", "cortex-m4", 32, 32 * 1024, int(Abi.ILP32_LE))
    assert (caps["slot_size"], caps["slot_count"], caps["active_slot"]) == (1 << 20, 2, -1)

    st = push(svc, "fw-0", kws_firmware_module(1).data)
    assert st["state"] == "active", st["message"]
    assert (st["update_result"], st["inference_count"]) == (2, 1)
    assert last_output(svc, "fw-0") == golden         # printed by the Cortex-M4 firmware in QEMU
    said = _firmware_said(svc)
    assert "fw-0': firmware: firmware version 1.0.0 | slot A: ok" in said and "running module version 1" in said

    st = push(svc, "fw-0", kws_firmware_module(2).data)     # the next version goes to the other slot
    assert st["state"] == "active", st["message"]
    assert "update from slot B: ok | running module version 2" in _firmware_said(svc)
    installed = svc.reader.get("/v1/devices/fw-0/modules").json()["installed"]
    assert [(s["version"], s["state"]) for s in installed] == [("1", "installed"), ("2", "active")]
    assert last_output(svc, "fw-0") == golden


@pytest.mark.parametrize("case, result, reason, firmware_line", [
    ("flipped bit", 53, "crc", "slot A: crc mismatch"),
    ("another key", 53, "signature", "slot A: bad signature"),
    ("wider kernel set", 54, "kernel_set", "slot A: kernel missing from firmware"),
    ("host ABI (LP64)", 54, "kernel_abi", "slot A: kernel ABI mismatch"),
    ("older version", 58, "version", "update from slot B: older than installed"),
])
def test_firmware_loader_refuses_bad_modules_with_the_update_result(svc, case, result, reason, firmware_line):
    _, golden = kws_module()
    if svc.reader.get("/v1/devices/fw-1").json()["capabilities"]["active_slot"] < 0:
        assert push(svc, "fw-1", kws_firmware_module(3).data)["state"] == "active"
    good = kws_firmware_module(4)
    bad = {"flipped bit": lambda: bytes(b ^ (0x10 if i == len(good.data) // 2 else 0) for i, b in enumerate(good.data)),
           "another key": lambda: kws_firmware_module(4, fixed_key(99)).data,
           "wider kernel set": lambda: resign(good.data, fixed_key(), kernel_mask=good.header.kernel_mask | 1 << 5),
           "host ABI (LP64)": lambda: pack(MODEL_A, Abi.LP64_LE, 4, fixed_key())[1].data,
           "older version": lambda: kws_firmware_module(2).data}[case]()
    before = len(_firmware_said(svc))
    st = push(svc, "fw-1", bad)
    assert (st["state"], st["update_result"], st["reason"]) == ("failed", result, reason), st
    said = _firmware_said(svc)[before:]                  # the firmware's own loader said it, in this push
    assert "'fw-1': firmware: " in said and firmware_line in said, said
    caps = svc.reader.get("/v1/devices/fw-1").json()["capabilities"]
    assert caps["active_slot"] == 0 and last_output(svc, "fw-1") == golden   # the running module stays


@pytest.mark.parametrize("args, needle", [
    (["--firmware", "/nope"], "/nope"),
    (["--firmware", "README.md"], "not an ELF firmware"),
    (["--firmware", "/nope.json"], "cannot read the factory image"),
    (["--firmware", "docs/report.schema.json"], "not a factory image layout"),
    (["--firmware", str(EXAMPLE), "--slot-size", "4096"], "--slot-size and --arena"),
])
def test_bad_firmware_options_are_one_line(svc, args, needle):
    r = subprocess.run(CLI + ["--server", "coap://127.0.0.1:1", "--endpoint", "fw-x", "--public-key", str(svc.pub),
                              *args], capture_output=True, text=True, cwd=REPO, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_factory_image_device_starts_with_its_slot_a_module_and_takes_an_update(svc, tmp_path):
    """``--firmware tinyml-image.json``: the factory image (firmware + KWS v1 in slot A, as
    ``pio run -t tinyml-image`` writes it) is what boots; the device registers already running
    v1, takes v2 over the air into slot B, and computes TFLM's output."""
    from agent_support import Loop, agent_config

    from platformio_tinyml.lwm2m.agent import Agent
    from platformio_tinyml.module.emu import SLOT_ADDR, SLOT_SIZE
    from platformio_tinyml.module.firmware import KernelSet
    from platformio_tinyml.module.image import write_factory_image
    from platformio_tinyml.module.keys import public_key_bytes
    from platformio_tinyml.module.qemu import build_example_firmware
    _, golden = kws_module()
    kset = KernelSet.of(KWS_KERNELS)
    elf = build_example_firmware(kset, public_key_bytes(fixed_key().public_key()))
    write_factory_image(elf, kws_firmware_module(1).data, [(a, SLOT_SIZE) for a in SLOT_ADDR],
                        tmp_path / "tinyml-image.bin")
    loop = Loop()
    agent = Agent(agent_config(svc.coap_port, "fw-factory", firmware=tmp_path / "tinyml-image.json"))
    dev = agent.devices[0]
    try:
        assert "slot A: ok" in dev.mcu.printed[-1] and "running module version 1" in dev.mcu.printed[-1]
        loop.run(agent.start())
        assert loop.run(agent.wait_registered(10))
        caps = wait_for(lambda: svc.reader.get("/v1/devices/fw-factory").json().get("capabilities"),
                        "capabilities of fw-factory", 20)
        assert caps["active_slot"] == 0 and caps["device"]["firmware"].startswith("1.0.0 (tinyml-image.json, sha256 ")
        assert [(s["module"], s["version"], s["state"]) for s in caps["slots"]] == \
            [("main", "1", "active"), ("", "", "empty")]
        st = push(svc, "fw-factory", kws_firmware_module(2).data)
        assert st["state"] == "active", st["message"]
        assert (dev.mcu.active, dev.mcu.installed_version) == (1, 2)
        assert any("update from slot B: ok" in out and "running module version 2" in out for out in dev.mcu.printed)
        assert last_output(svc, "fw-factory") == golden
    finally:
        loop.run(agent.stop())
        loop.close()
