"""The Cortex-M DSP paths of the conv/depthwise kernels (SIMD, inline asm,
grouped filter layouts, stack/arena window buffers) on shapes the MLPerf
models do not have, run in QEMU mps2-an386 and compared byte for byte with
the TFLite Micro reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.firmware import run_model
from platformio_tinyml.verify.reference import TFLMReference


def _dw(shape, k, **kw):
    def build():
        L = modelgen._tf().keras.layers
        x = modelgen._inp(shape)
        return modelgen._model(x, L.DepthwiseConv2D(k, **kw)(x))
    return build


def _conv(shape, filters, k, **kw):
    def build():
        L = modelgen._tf().keras.layers
        x = modelgen._inp(shape)
        return modelgen._model(x, L.Conv2D(filters, k, **kw)(x))
    return build


CASES = {
    "dw3x3_c8_same": _dw((7, 6, 8), 3, padding="same"),                  # grouped 4-channel + asm taps
    "dw3x3_c6_valid": _dw((6, 6, 6), 3, padding="valid"),                # channels not a multiple of 4
    "dw5x5_c4_same_s2": _dw((9, 9, 4), 5, strides=2, padding="same", activation="relu"),
    "dw3x3_c4_dil2": _dw((9, 9, 4), 3, dilation_rate=2, padding="same"),
    "dw3x3_c4_dm2": _dw((6, 6, 4), 3, depth_multiplier=2, padding="same"),
    "conv3x3_c3_s2": _conv((11, 11, 3), 8, 3, strides=2, padding="same"),  # VWW/ResNet-like first layer
    "conv1x1_c16": _conv((5, 4, 16), 10, 1, activation="relu6"),
    "conv5x5_c5": _conv((9, 8, 5), 6, 5, padding="same"),
    "conv3x3_c32_big_window": _conv((6, 6, 32), 4, 3, padding="same"),     # window > stack int16 buffer
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsp_models")
    out = {}
    for name, build in CASES.items():
        modelgen._seed(0)
        path = root / f"{name}.tflite"
        path.write_bytes(modelgen.convert(build(), int8=True))
        out[name] = path
    return out


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cortex_m4_kernels_bit_exact(name, opt, models, tmp_path):
    path = models[name]
    g = load_tflite(path)
    gen = generate(g, "m")
    rng = np.random.default_rng(7)
    t = g.tensors[g.inputs[0]]
    samples = [[rng.integers(-128, 128, t.shape).astype(np.int8)] for _ in range(2)]
    run = run_model(gen, g, samples, tmp_path, "mps2-an386", opt=opt)
    ref = TFLMReference(path)
    for k, xs in enumerate(samples):
        golden = ref.run(xs)[0].reshape(-1)
        assert np.array_equal(run.outputs[k][0].reshape(-1), golden), f"{name} {opt} sample {k}"
