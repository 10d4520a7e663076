"""One firmware (QEMU mps2-an386, Cortex-M4) built once with the module
executor; models change only through its A/B module slots. Outputs must
equal the TFLite Micro reference bit for bit; bad modules are refused with
their error code while the previous slot keeps serving."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from module_support import MODEL_A, MODEL_B, fixed_key, pack, resign
from platformio_tinyml.module.firmware import KernelSet
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.keys import public_key_bytes

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh)")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from platformio_tinyml.module.emu import build_slot_firmware
    from platformio_tinyml.verify.reference import TFLMReference
    key = fixed_key()
    mods = {}
    for name, path in (("A", MODEL_A), ("B", MODEL_B)):
        g, _ = pack(path, Abi.ILP32_LE, 1, key)
        rng = np.random.default_rng(42)
        x = rng.integers(-128, 128, size=g.tensors[g.inputs[0]].shape, dtype=np.int8)
        golden = np.asarray(TFLMReference(path).run([x])[0], np.int8).tobytes()
        mods[name] = (path, x, golden)
    kset = KernelSet.of(["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"])
    wd = tmp_path_factory.mktemp("slots")
    elf = build_slot_firmware(wd, kset, public_key_bytes(key.public_key()), arena_bytes=32 * 1024)
    return key, mods, elf, wd


def _module(setup, name, version, key=None):
    key0, mods, _, _ = setup
    return pack(mods[name][0], Abi.ILP32_LE, version, key or key0)[1]


def _run(setup, slot0, slot1, serving):
    from platformio_tinyml.module.emu import run_slots
    _, mods, elf, wd = setup
    return run_slots(elf, wd, slot0, slot1, mods[serving][1].tobytes())


@pytest.mark.parametrize("model", ["A", "B"])
def test_same_firmware_runs_either_model(setup, model):
    r = _run(setup, _module(setup, model, 1).data, None, model)
    assert (r.boot, r.install, r.active) == (0, -4, 0), r.stdout     # slot 1 erased: bad magic
    assert r.outputs == [setup[1][model][2]]


def test_install_switches_to_the_new_module(setup):
    r = _run(setup, _module(setup, "A", 1).data, _module(setup, "B", 2).data, "B")
    assert (r.boot, r.install, r.active, r.version) == (0, 0, 1, 2), r.stdout
    assert r.outputs == [setup[1]["B"][2]]


def _bad_candidates(setup):
    key = setup[0]
    good = _module(setup, "B", 3)
    flipped = bytearray(good.data)
    flipped[len(flipped) // 2] ^= 0x20
    return {
        "flipped bit": (bytes(flipped), -8),
        "wrong signature": (_module(setup, "B", 3, key=fixed_key(99)).data, -9),
        "older version": (_module(setup, "B", 1).data, -13),
        "kernel set": (resign(good.data, key, kernel_mask=good.header.kernel_mask | 1 << 5), -12),
    }


@pytest.mark.parametrize("case", ["flipped bit", "wrong signature", "older version", "kernel set"])
def test_bad_module_is_refused_and_previous_keeps_serving(setup, case):
    data, code = _bad_candidates(setup)[case]
    r = _run(setup, _module(setup, "A", 2).data, data, "A")
    assert (r.boot, r.install, r.active, r.version) == (0, code, 0, 2), r.stdout
    assert r.outputs == [setup[1]["A"][2]]


# TFLITE modules: firmware embedding TensorFlow Lite Micro defines TML_MODULE_TFLITE and
# gets the verified flatbuffer from tml_module_tflite(). TFLM's C++ sources are not
# obtainable here, so the firmware checksums the flatbuffer it was handed instead of
# running it: the bytes must be the model file's, zero-padded to 8.

def _fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@pytest.fixture(scope="module")
def tflite_setup(setup, tmp_path_factory):
    from platformio_tinyml.module.emu import build_slot_firmware
    from platformio_tinyml.module.pack import pack_tflite
    from platformio_tinyml.pipeline import load_any
    from platformio_tinyml.verify.reference import tflm_arena_bytes
    key = setup[0]
    wd = tmp_path_factory.mktemp("tflite_slots")
    kset = KernelSet.of(["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"])
    elf = build_slot_firmware(wd, kset, public_key_bytes(key.public_key()), arena_bytes=32 * 1024, tflite=True)
    g, _ = load_any(MODEL_A)
    raw = MODEL_A.read_bytes()
    arena = tflm_arena_bytes(MODEL_A)

    def module(version, model_bytes=raw, key_=key):
        return pack_tflite(g, model_bytes, version, key_.sign, arena).data
    return elf, wd, module, raw + bytes(-len(raw) % 8)


def test_tflite_module_is_verified_and_handed_over(setup, tflite_setup):
    from platformio_tinyml.module.emu import run_slots
    elf, wd, module, padded = tflite_setup
    r = run_slots(elf, wd, _module(setup, "A", 1).data, module(2), b"")   # GRAPH A -> TFLITE
    assert (r.boot, r.install, r.active, r.version) == (0, 0, 1, 2), r.stdout
    assert r.tflite == (len(padded), _fnv1a(padded))


def test_bad_tflite_modules_are_refused(setup, tflite_setup):
    from platformio_tinyml.module.emu import run_slots
    elf, wd, module, padded = tflite_setup
    raw = MODEL_A.read_bytes()
    not_flatbuffer = raw[:4] + b"XXXX" + raw[8:]
    flipped = bytearray(module(3))
    flipped[len(flipped) // 2] ^= 1
    for data, code in ((module(3, not_flatbuffer), -18), (bytes(flipped), -8),
                       (module(3, key_=fixed_key(99)), -9), (module(1), -13)):
        r = run_slots(elf, wd, module(2), data, b"")
        assert (r.boot, r.install, r.active, r.version) == (0, code, 0, 2), r.stdout
        assert r.tflite == (len(padded), _fnv1a(padded))


def test_firmware_without_tflm_refuses_tflite_and_keeps_serving(setup, tflite_setup):
    module = tflite_setup[2]
    r = _run(setup, _module(setup, "A", 1).data, module(2), "A")
    assert (r.boot, r.install, r.active, r.version) == (0, -10, 0, 1), r.stdout
    assert r.outputs == [setup[1]["A"][2]]
