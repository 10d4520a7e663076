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
DEVICES = ("fw-0", "fw-1", "fw-2", "fw-3")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    """The service and one agent process with four firmware devices, 'fw-0' to 'fw-3'
    (fw-2 and fw-3 take firmware updates over object 5)."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    tmp = tmp_path_factory.mktemp("fwagent")
    port = free_udp_port()
    srv = Server(tmp / "data", "--lwm2m-port", port, env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "5"})
    srv.coap_port, srv.pub = port, public_key_pem(tmp / "key.pub")
    tokens = {s: srv.token("fleet", s) for s in ("read", "read,deploy")}
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "fw-*", "--data", srv.data)
    srv.start()
    srv.reader, srv.deployer = srv.client(tokens["read"]), srv.client(tokens["read,deploy"])
    srv.deploy_token = tokens["read,deploy"]
    srv.agent_log = tmp / "agent.log"
    agent = subprocess.Popen(CLI + ["--server", f"coap://127.0.0.1:{port}", "--endpoint", "fw", "--count", "4",
                                    "--public-key", str(srv.pub), "--kernels", ",".join(KWS_KERNELS),
                                    "--firmware", str(EXAMPLE), "-v"],
                             stdout=subprocess.DEVNULL, stderr=open(srv.agent_log, "w"),
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    srv.agent = agent
    try:
        def registered():
            assert agent.poll() is None, srv.agent_log.read_text()
            return all(srv.reader.get(f"/v1/devices/{ep}").json().get("capabilities") for ep in DEVICES)
        wait_for(registered, "the firmware devices registered", 60, srv.agent_log)  # builds the firmware once
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


def test_firmware_device_pulls_a_module_and_its_own_loader_checks_it(svc):
    """?pull=true: the device fetches the published module (Block2) and hands it to the firmware's
    loader as a pushed module's last block: it runs like TFLM, and a tampered one is refused (53)."""
    _, golden = kws_module()
    good = kws_firmware_module(3)
    st = push(svc, "fw-0", good.data, pull="true")
    assert (st["state"], st["mode"], st["bytes_done"], st["update_result"]) == ("active", "pull", len(good.data), 2), st
    said = _firmware_said(svc)
    assert f"'fw-0': pulled {len(good.data)} bytes of module: result 3" in said and "running module version 3" in said
    assert last_output(svc, "fw-0") == golden
    active = svc.reader.get("/v1/devices/fw-0").json()["capabilities"]["active_slot"]
    before = len(_firmware_said(svc))
    bad = bytes(b ^ (0x10 if i == len(good.data) // 2 else 0) for i, b in enumerate(kws_firmware_module(4).data))
    st = push(svc, "fw-0", bad, pull="true")
    assert (st["state"], st["update_result"], st["reason"]) == ("failed", 53, "crc"), st
    assert "crc mismatch" in _firmware_said(svc)[before:]                 # the firmware's loader said it
    assert svc.reader.get("/v1/devices/fw-0").json()["capabilities"]["active_slot"] == active
    assert last_output(svc, "fw-0") == golden


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


# -- FOTA: whole firmware images over object 5 ------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Firmware ELFs, each built once and cached: the one the agent boots ('1.0.0'), the same
    example built with FIRMWARE_VERSION "2.0.0", and one built for another signing key."""
    from platformio_tinyml.module.firmware import KernelSet
    from platformio_tinyml.module.keys import public_key_bytes
    from platformio_tinyml.emu import build_firmware
    from platformio_tinyml.module.qemu import build_example_firmware
    kset, key = KernelSet.of(KWS_KERNELS), public_key_bytes(fixed_key().public_key())
    v2 = tmp_path_factory.mktemp("fw-v2") / "main.c"
    v2.write_text('#define FIRMWARE_VERSION "2.0.0"\n' + (EXAMPLE / "src" / "main.c").read_text())
    blank = v2.parent / "blank.c"            # boots and ends without a loader: not this device's firmware
    blank.write_text("int main(void) { return 0; }\n")
    return {"blank": build_firmware([blank], [], v2.parent / "blank.elf", "mps2-an386").read_bytes(),
            "v1": build_example_firmware(kset, key).read_bytes(),
            "v2": build_example_firmware(kset, key, v2).read_bytes(),
            "other key": build_example_firmware(kset, public_key_bytes(fixed_key(99).public_key())).read_bytes()}


def _stripped(elf: bytes, folder):
    """The ELF without symbols and debug sections (arm-none-eabi-strip): what it loads, 11x smaller."""
    path = folder / "firmware.elf"
    path.write_bytes(elf)
    subprocess.run(["arm-none-eabi-strip", str(path)], check=True)
    return path


def _version(svc, endpoint) -> str:
    return svc.reader.get(f"/v1/devices/{endpoint}/firmware").json()["version"]


def test_fota_push_reflashes_the_firmware_and_the_module_keeps_running(svc, images):
    import hashlib
    _, golden = kws_module()
    assert push(svc, "fw-2", kws_firmware_module(1).data)["state"] == "active"
    before = _version(svc, "fw-2")
    assert before.startswith("1.0.0 (module-example-"), before
    st = push(svc, "fw-2", images["v2"], what="firmware", timeout=60)
    assert (st["state"], st["update_result"], st["result_meaning"]) == \
        ("updated", 1, "firmware updated successfully"), st["message"]
    assert st["firmware_before"] == before and st["bytes_done"] == len(images["v2"])
    assert st["firmware_after"].startswith("2.0.0 (firmware-") and \
        st["firmware_after"].endswith(f"sha256 {hashlib.sha256(images['v2']).hexdigest()[:12]})")
    assert _version(svc, "fw-2") == st["firmware_after"]             # /3/0/3, read again into the capabilities
    said = _firmware_said(svc)
    assert "'fw-2': firmware: firmware version 2.0.0 | slot A: ok" in said and "updated to 2.0.0" in said
    assert svc.reader.get("/v1/devices/fw-2").json()["capabilities"]["active_slot"] == 0   # it kept running
    before = len(_firmware_said(svc))
    st = push(svc, "fw-2", kws_firmware_module(2).data)        # the new firmware's loader takes the next one
    assert st["state"] == "active", st["message"]
    assert "firmware version 2.0.0 | slot A: ok | update from slot B: ok | running module version 2" in \
        _firmware_said(svc)[before:]
    assert last_output(svc, "fw-2") == golden                   # computed by firmware 2.0.0 in QEMU


def test_fota_transfer_cut_midway_resumes(svc, images):
    """The agent process stopped (SIGSTOP) for 6 s mid-transfer: the block in flight times out,
    the delivery waits, and goes on from the last acknowledged block once the device answers."""
    import signal
    import time
    agent_pid = svc.agent.pid
    r = svc.deployer.post("/v1/devices/fw-2/firmware", content=images["v1"],
                          headers={"content-type": "application/octet-stream"}, params={"block_size": 256})
    assert r.status_code == 202, r.text
    st = wait_for(lambda: (s := svc.reader.get("/v1/devices/fw-2/firmware").json()["delivery"])["bytes_done"]
                  > 64 * 1024 and s, "64 KiB transferred", 30, interval=0.02)
    os.kill(agent_pid, signal.SIGSTOP)
    try:
        time.sleep(6)
        cut = svc.reader.get("/v1/devices/fw-2/firmware").json()["delivery"]
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    assert cut["state"] == "transferring" and cut["bytes_done"] < len(images["v1"])
    st = wait_for(lambda: (s := svc.reader.get("/v1/devices/fw-2/firmware").json()["delivery"])["state"]
                  in ("updated", "failed") and s, "the delivery's end", 60)
    assert (st["state"], st["update_result"]) == ("updated", 1), st["message"]
    assert st["resumed"] >= 1 and st["bytes_done"] == len(images["v1"]) and st["firmware_after"].startswith("1.0.0")
    assert st["bytes_done"] - st["blocks_done"] * 256 < 256        # every block sent once more at most, counted once


def test_fota_cli_pushes_a_stripped_image_and_waits(svc, images, tmp_path):
    stripped = _stripped(images["v2"], tmp_path)
    env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
    size = stripped.stat().st_size
    out = tinyml("fleet", "firmware", "fw-2", stripped, "--wait", env=env).stdout
    assert out.startswith(f"fw-2: firmware updated, {size:,} of {size:,} bytes, Update Result 1 (firmware updated "
                          "successfully)\n  firmware updated on 'fw-2'") and "now '2.0.0 (firmware-" in out, out
    out = tinyml("fleet", "firmware", "fw-2", stripped, "--pull", "--wait", env=env).stdout
    assert out.startswith(f"fw-2: firmware updated, {size:,} of {size:,} bytes, Update Result 1"), out
    r = tinyml("fleet", "firmware", "fw-2", tmp_path / "nope.elf", env=env, check=False)
    assert r.returncode == 2 and "cannot read the firmware image" in r.stderr and \
        len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = tinyml("fleet", "firmware", "fw-9", stripped, env=env, check=False)
    assert r.returncode == 2 and "404" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_fota_pull_fetches_the_published_image(svc, images, tmp_path):
    """?pull=true: the service publishes the image and writes coap://.../pkg/<sha256> to /5/0/1;
    the device fetches it block-wise (Block2) from the LwM2M server's socket and updates."""
    stripped = _stripped(images["v1"], tmp_path).read_bytes()
    st = push(svc, "fw-2", stripped, what="firmware", pull="true")
    assert (st["state"], st["update_result"], st["bytes_done"]) == ("updated", 1, len(stripped)), st
    assert st["firmware_after"].startswith("1.0.0 (firmware-") and _version(svc, "fw-2") == st["firmware_after"]
    assert f"'fw-2': pulled {len(stripped)} bytes of firmware: result 0" in _firmware_said(svc)
    ep = "/v1/devices/fw-3/resources/5/0/1"
    for uri, result in (("http://127.0.0.1/x.elf", 9), ("coap://127.0.0.1", 7),
                        (f"coap://127.0.0.1:{svc.coap_port}/pkg/{'0' * 64}", 7)):
        r = svc.deployer.put(ep, json={"value": uri})
        assert r.status_code == 200, r.text
        values = wait_for(lambda: (v := svc.reader.get("/v1/devices/fw-3/resources/5/0").json()["values"])
                          ["/5/0/3"] != 1 and v, f"fw-3 done with {uri}", 10)
        assert (values["/5/0/3"], values["/5/0/5"]) == (0, result), (uri, values)


@pytest.mark.parametrize("case, result, meaning", [
    ("not an ELF", 6, "unsupported package type"),
    ("cut ELF", 5, "integrity check failure"),
    ("too large", 2, "not enough flash memory"),
    ("other key", 8, "firmware update failed"),
    ("no loader", 8, "firmware update failed"),
])
def test_fota_refusals_keep_the_old_firmware(svc, images, case, result, meaning):
    if svc.reader.get("/v1/devices/fw-3").json()["capabilities"]["active_slot"] < 0:
        assert push(svc, "fw-3", kws_firmware_module(1).data)["state"] == "active"
    before = _version(svc, "fw-3")
    active = svc.reader.get("/v1/devices/fw-3").json()["capabilities"]["active_slot"]
    image = {"not an ELF": lambda: kws_firmware_module(1).data,
             "cut ELF": lambda: images["v2"][:len(images["v2"]) * 2 // 3],
             "too large": lambda: images["v2"] + bytes(2 * 1024 * 1024 - len(images["v2"])),
             "other key": lambda: images["other key"], "no loader": lambda: images["blank"]}[case]()
    log_at = len(_firmware_said(svc))
    st = push(svc, "fw-3", image, what="firmware", timeout=60)
    assert (st["state"], st["update_result"]) == ("failed", result), st
    assert st["result_meaning"].startswith(meaning) and st["message"].count("\n") == 0, st["message"]
    assert _version(svc, "fw-3") == before                   # the old firmware runs
    if case == "too large":          # refused at the first block from its Size1, nothing more sent
        assert st["bytes_done"] == 0, st
    if case in ("other key", "no loader"):  # booted; its loader refused the running module, or there is none
        why = {"other key": "its loader refused the running module: bad signature",
               "no loader": "it printed no loader line"}[case]
        assert f"update failed ({why})" in _firmware_said(svc)[log_at:]
        assert svc.reader.get("/v1/devices/fw-3").json()["capabilities"]["active_slot"] == active >= 0
        version = {"other key": 2, "no loader": 3}[case]                             # the old firmware's loader
        assert push(svc, "fw-3", kws_firmware_module(version).data)["state"] == "active"
        assert "'fw-3': firmware: firmware version 1.0.0 | slot A: ok | update from slot B: ok" in \
            _firmware_said(svc)[log_at:]


def test_fota_without_firmware_is_refused_with_result_8(svc, images, tmp_path):
    """The host-built loader (no --firmware) has no firmware to replace: the image downloads and
    checks, and Update ends with result 8 (documented in docs/device-agent.md)."""
    from agent_support import Loop, agent_config

    from platformio_tinyml.lwm2m.agent import Agent
    loop, agent = Loop(), Agent(agent_config(svc.coap_port, "fw-host"))
    try:
        loop.run(agent.start())
        assert loop.run(agent.wait_registered(10))
        wait_for(lambda: svc.reader.get("/v1/devices/fw-host").json().get("capabilities"), "fw-host's capabilities", 20)
        stripped = _stripped(images["v2"], tmp_path)
        st = push(svc, "fw-host", images["v2"], what="firmware")          # larger than its 128 KiB: result 2
        assert (st["state"], st["update_result"], st["bytes_done"]) == ("failed", 2, 0), st
        st = push(svc, "fw-host", stripped.read_bytes(), what="firmware")       # 48 KiB: downloaded, then 8
        assert (st["state"], st["update_result"]) == ("failed", 8) and "after Update" in st["message"], st
        assert svc.reader.get("/v1/devices/fw-host/firmware").json()["version"] == "host"
    finally:
        loop.run(agent.stop())
        loop.close()


def test_fota_bad_requests_are_one_line(svc):
    octets = {"content-type": "application/octet-stream"}
    r = svc.deployer.post("/v1/devices/fw-3/firmware", content=b"", headers=octets)
    assert r.status_code == 400 and "body is empty" in r.json()["detail"], r.text
    r = svc.deployer.post("/v1/devices/fw-3/firmware", content=b"x", headers=octets, params={"block_size": 100})
    assert r.status_code == 400 and "block size 100" in r.json()["detail"], r.text
    r = svc.deployer.post("/v1/devices/nope/firmware", content=b"x", headers=octets)
    assert r.status_code == 404, r.text
    r = svc.reader.post("/v1/devices/fw-3/firmware", content=b"x", headers=octets)
    assert r.status_code == 403, r.text
