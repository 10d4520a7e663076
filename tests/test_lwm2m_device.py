"""The device side of LwM2M without the wire: object 9's state machines driving the
real C module loader (built for the host), object 5's state machine.

Modules are the MLPerf KWS and AD models packed and signed as in production;
outputs must equal the TFLite Micro reference bit for bit, and each refusal of
the loader must come back as the Update Result the LwM2M specification defines
while the module that ran before keeps serving."""

from __future__ import annotations

import numpy as np
import pytest

from module_support import MODEL_A, MODEL_B, fixed_key, pack, resign
from platformio_tinyml.lwm2m.sw_update import SoftwareUpdate, SwUpdateError, UpdateResult, UpdateState
from platformio_tinyml.module.firmware import KernelSet
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.keys import public_key_bytes

KWS_KERNELS = ("tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8")


@pytest.fixture(scope="module")
def models():
    """name -> (signed LP64 module v1 packer, input, TFLM output bytes)."""
    from platformio_tinyml.verify.reference import TFLMReference
    key = fixed_key()
    out = {}
    for name, path in (("kws", MODEL_A), ("ad", MODEL_B)):
        g, _ = pack(path, Abi.LP64_LE, 1, key)
        x = np.random.default_rng(3).integers(-128, 128, size=g.tensors[g.inputs[0]].shape, dtype=np.int8)
        golden = np.asarray(TFLMReference(path).run([x])[0], np.int8).tobytes()
        out[name] = (path, x.tobytes(), golden)
    return out


def _module(models, name, version, key=None, abi=Abi.LP64_LE) -> bytes:
    return pack(models[name][0], abi, version, key or fixed_key())[1].data


def _device(slot_size=512 * 1024):
    from platformio_tinyml.module.host import HostDevice
    return HostDevice(KernelSet.of(KWS_KERNELS), public_key_bytes(fixed_key().public_key()), slot_size=slot_size)


def _push(sw: SoftwareUpdate, data: bytes, block: int = 1024) -> UpdateResult:
    for off in range(0, len(data), block):
        res = sw.write_block(off, data[off:off + block], last=off + block >= len(data))
        if res is not UpdateResult.DOWNLOADING:
            break
    return res


def _serving(models, sw, name):
    return sw.target.infer(models[name][1]) == models[name][2]


def test_push_install_activate_update_and_roll_back(models):
    sw = SoftwareUpdate(_device())
    kws = _module(models, "kws", 1)
    # a transfer cut after 10 blocks resumes where it stopped; a block past that point is refused
    for off in range(0, 10 * 1024, 1024):
        sw.write_block(off, kws[off:off + 1024], last=False)
    assert (sw.state, sw.result, sw.resume_offset) == (UpdateState.DOWNLOAD_STARTED, UpdateResult.DOWNLOADING, 10240)
    with pytest.raises(SwUpdateError, match="expected 10240"):
        sw.write_block(12 * 1024, kws[12 * 1024:13 * 1024], last=False)
    for off in range(sw.resume_offset, len(kws), 1024):
        sw.write_block(off, kws[off:off + 1024], last=off + 1024 >= len(kws))
    assert (sw.state, sw.result) == (UpdateState.DELIVERED, UpdateResult.DOWNLOADED_VERIFIED)
    header = pack(models["kws"][0], Abi.LP64_LE, 1, fixed_key())[1].header
    assert (sw.package.name, sw.package.version, sw.package.size) == (header.model_name, "1", len(kws))
    assert sw.target.active == -1                      # delivered is not running
    assert sw.install() is UpdateResult.INSTALLED and sw.state is UpdateState.INSTALLED and not sw.activated
    sw.activate()
    assert sw.activated and sw.target.active == 0 and _serving(models, sw, "kws")

    # next package: Uninstall "ForUpdate" keeps KWS running, AD goes to the other slot
    sw.uninstall(for_update=True)
    assert (sw.state, sw.result, sw.target.active, sw.slot) == (UpdateState.INITIAL, UpdateResult.INITIAL, 0, 1)
    assert _serving(models, sw, "kws")
    assert _push(sw, _module(models, "ad", 2)) is UpdateResult.DOWNLOADED_VERIFIED
    assert sw.install() is UpdateResult.INSTALLED
    sw.activate()
    assert (sw.target.active, sw.target.installed_version) == (1, 2) and _serving(models, sw, "ad")
    sw.deactivate()                                    # rolls back to KWS v1
    assert not sw.activated and (sw.target.active, sw.target.installed_version) == (0, 1)
    assert _serving(models, sw, "kws")
    sw.activate()
    assert _serving(models, sw, "ad")
    sw.uninstall()                                     # removes AD: KWS runs again
    assert (sw.state, sw.result, sw.target.active) == (UpdateState.INITIAL, UpdateResult.INITIAL, 0)
    assert sw.target.check(1) == -4 and _serving(models, sw, "kws")   # slot 1 erased


def _bad_packages(models):
    key = fixed_key()
    good = pack(models["ad"][0], Abi.LP64_LE, 3, key)[1]
    flipped = bytearray(good.data)
    flipped[len(flipped) // 2] ^= 0x10
    return {
        "flipped bit": (bytes(flipped), UpdateResult.INTEGRITY_CHECK_FAILURE, "crc"),
        "other key": (_module(models, "ad", 3, key=fixed_key(99)), UpdateResult.INTEGRITY_CHECK_FAILURE, "signature"),
        "cut short": (good.data[:-100], UpdateResult.INTEGRITY_CHECK_FAILURE, "reserved"),   # erased flash read as trailer
        "not a module": (b"\x7fELF" + bytes(600), UpdateResult.INTEGRITY_CHECK_FAILURE, "magic"),
        "kernel set": (resign(good.data, key, kernel_mask=good.header.kernel_mask | 1 << 5),
                       UpdateResult.UNSUPPORTED_PACKAGE_TYPE, "kernel_set"),
        "32-bit ABI": (_module(models, "ad", 3, abi=Abi.ILP32_LE), UpdateResult.UNSUPPORTED_PACKAGE_TYPE, "kernel_abi"),
    }


@pytest.mark.parametrize("case", ["flipped bit", "other key", "cut short", "not a module", "kernel set",
                                  "32-bit ABI"])
def test_refused_package_gets_its_update_result_and_kws_keeps_serving(models, case):
    data, result, reason = _bad_packages(models)[case]
    sw = SoftwareUpdate(_device())
    _push(sw, _module(models, "kws", 2))
    sw.install()
    sw.activate()
    sw.uninstall(for_update=True)

    assert _push(sw, data) is result
    assert (sw.state, sw.result, sw.reason) == (UpdateState.INITIAL, result, reason)
    assert (sw.target.active, sw.target.installed_version) == (0, 2) and _serving(models, sw, "kws")
    with pytest.raises(SwUpdateError, match="DELIVERED"):
        sw.install()


def test_older_module_is_delivered_but_its_install_fails(models):
    sw = SoftwareUpdate(_device())
    _push(sw, _module(models, "kws", 5))
    sw.install()
    sw.activate()
    sw.uninstall(for_update=True)
    assert _push(sw, _module(models, "ad", 4)) is UpdateResult.DOWNLOADED_VERIFIED   # integrity is fine

    assert sw.install() is UpdateResult.INSTALLATION_FAILURE
    assert (sw.state, sw.reason, sw.target.active) == (UpdateState.DELIVERED, "version", 0)   # stays DELIVERED
    assert _serving(models, sw, "kws")
    sw.uninstall()
    assert (sw.state, sw.result) == (UpdateState.INITIAL, UpdateResult.INITIAL)


def test_module_larger_than_the_slot_is_not_enough_storage(models):
    sw = SoftwareUpdate(_device(slot_size=64 * 1024))
    ad = _module(models, "ad", 1)                  # ~270 KB

    assert _push(sw, ad) is UpdateResult.NOT_ENOUGH_STORAGE
    assert sw.state is UpdateState.INITIAL and sw.target.active == -1
    assert _push(sw, _module(models, "kws", 1)) is UpdateResult.DOWNLOADED_VERIFIED   # ~29 KB still goes


def test_firmware_update_state_machine():
    from platformio_tinyml.lwm2m.fw_update import FirmwareUpdate, FwUpdateError, State
    from platformio_tinyml.lwm2m.fw_update import UpdateResult as R
    applied = []
    fw = FirmwareUpdate(4096, verify=lambda img: R.SUCCESS if img.startswith(b"FW") else R.UNSUPPORTED_PACKAGE_TYPE,
                        apply=lambda img: applied.append(img) or (R.SUCCESS if b"ok" in img else R.UPDATE_FAILED))
    assert fw.write_block(0, b"FW..", last=False) is R.INITIAL and fw.state is State.DOWNLOADING
    with pytest.raises(FwUpdateError, match="expected 4"):
        fw.write_block(8, b"xx", last=False)
    fw.write_block(4, b"ok", last=True)
    assert fw.state is State.DOWNLOADED
    with pytest.raises(FwUpdateError):
        fw.write_block(0, b"FW", last=True)
    assert fw.update() is R.SUCCESS and fw.state is State.IDLE and applied == [b"FW..ok"]
    assert fw.write_block(0, b"XX", last=True) is R.UNSUPPORTED_PACKAGE_TYPE and fw.state is State.IDLE
    assert fw.write_block(0, bytes(5000), last=False) is R.NOT_ENOUGH_FLASH and fw.state is State.IDLE
    fw.write_block(0, b"FW-bad", last=True)
    assert fw.update() is R.UPDATE_FAILED and fw.state is State.IDLE
    fw.write_block(0, b"FW", last=False)
    fw.write_block(0, b"", last=True)          # empty package: cancel
    assert (fw.state, fw.result) == (State.IDLE, R.INITIAL)


# ---- --firmware: the module-cortex-m4 example firmware in QEMU decides -----------------------------

@pytest.fixture(scope="module")
def qemu_elf():
    from conftest import need_programs
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    from platformio_tinyml.module.qemu import build_example_firmware
    return build_example_firmware(KernelSet.of(KWS_KERNELS), public_key_bytes(fixed_key().public_key()))


def test_example_firmware_in_qemu_installs_runs_and_refuses(models, qemu_elf, tmp_path):
    from platformio_tinyml.module.qemu import QemuDevice
    sw = SoftwareUpdate(QemuDevice(qemu_elf, tmp_path))
    assert _push(sw, _module(models, "kws", 1, abi=Abi.ILP32_LE)) is UpdateResult.DOWNLOADED_VERIFIED
    assert sw.install() is UpdateResult.INSTALLED
    sw.activate()
    assert (sw.target.active, sw.target.installed_version) == (0, 1)
    assert _serving(models, sw, "kws")
    assert "running module version 1" in sw.target.last.stdout

    sw.uninstall(for_update=True)
    good = pack(models["kws"][0], Abi.ILP32_LE, 2, fixed_key())[1]
    flipped = bytearray(good.data)
    flipped[len(flipped) // 3] ^= 0x04
    assert _push(sw, bytes(flipped)) is UpdateResult.INTEGRITY_CHECK_FAILURE and sw.reason == "crc"
    assert "slot A: crc mismatch" in sw.target.last.stdout   # the last block: the package alone, as the host's check
    wider = resign(good.data, fixed_key(), kernel_mask=good.header.kernel_mask | 1 << 5)
    assert _push(sw, wider) is UpdateResult.UNSUPPORTED_PACKAGE_TYPE and sw.reason == "kernel_set"
    assert _push(sw, _module(models, "kws", 1, key=fixed_key(99), abi=Abi.ILP32_LE)) is UpdateResult.INTEGRITY_CHECK_FAILURE
    assert sw.target.active == 0 and _serving(models, sw, "kws")
