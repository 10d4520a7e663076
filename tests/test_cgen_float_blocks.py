"""cgen's float32 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED block paths.

The kernels sum each output's products in TFLite's reference order whatever
the blocking (tml_conv_f32.c, tml_fc_f32.c). So the host's vector path (its
AVX2 build where the CPU has AVX2, and the baseline SSE2 build:
``-DTML_NO_CLONES``), the microcontroller path built on the host
(``-DTML_F32_VEC=0``) and the TFLite Micro interpreter's reference kernels
give the same bits, on shapes chosen to
hit every branch: blocks with leftover channels (13 = 8 + 5 = 3 x 4 + 1) and
leftover pixels, padding edges, stride, dilation, 1x1, depth multiplier 2,
and fully connected layers of 21 outputs (16 + 4 + 1)."""

from __future__ import annotations

import numpy as np
import pytest

from modelgen import _inp, _model, _seed, _tf, convert
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference


def _layers():
    return _tf().keras.layers


CASES = {
    "conv3x3_same_13": lambda L, x: L.Conv2D(13, 3, padding="same")(x),
    "conv3x3_s2_same_relu_16": lambda L, x: L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x),
    "conv3x3_dil2_valid_9": lambda L, x: L.Conv2D(9, 3, dilation_rate=2, padding="valid")(x),
    "conv1x1_24": lambda L, x: L.Conv2D(24, 1)(x),
    "conv5x3_valid_8": lambda L, x: L.Conv2D(8, (5, 3), padding="valid")(x),
    "dw3x3_same_relu6": lambda L, x: L.DepthwiseConv2D(3, padding="same", activation="relu6")(x),
    "dw3x3_s2_dm2_same": lambda L, x: L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same")(x),
    "dw5x5_dil2_same": lambda L, x: L.DepthwiseConv2D(5, dilation_rate=2, padding="same")(x),
    "fc21_relu": lambda L, x: L.Dense(21, activation="relu")(L.Flatten()(x)),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = {}
    base = tmp_path_factory.mktemp("f32blocks")
    for name, layer in CASES.items():
        _seed(len(name))
        x = _inp((11, 10, 13))          # 10 columns: 4-pixel runs leave 2 (and 2 of 5 with padding)
        path = base / f"{name}.tflite"
        path.write_bytes(convert(_model(x, layer(_layers(), x)), int8=False))
        out[name] = path
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_host_and_microcontroller_paths_give_tflite_micro_bits(name, built, tmp_path):
    path = built[name]
    g = load_tflite(path)
    gen = generate(g, "m")
    vec = build_host(gen, g, tmp_path / "vec")
    sse = build_host(gen, g, tmp_path / "sse", extra_cflags=["-DTML_NO_CLONES"])
    mcu = build_host(gen, g, tmp_path / "mcu", extra_cflags=["-DTML_F32_VEC=0"])
    ref = TFLMReference(path)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = (3.0 * rng.standard_normal(g.tensors[g.inputs[0]].shape)).astype(np.float32)
        golden = ref.run([x])[0]
        a, b, c = vec.run([x])[0], mcu.run([x])[0], sse.run([x])[0]
        assert np.array_equal(a, b) and np.array_equal(a, c), "the block paths differ"
        d = np.abs(a.astype(np.float64) - golden.astype(np.float64))
        assert np.array_equal(a, golden), f"{int((d > 0).sum())} of {d.size} differ from TFLM, max {d.max():.3g}"
