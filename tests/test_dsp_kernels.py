"""The Cortex-M DSP paths of the conv/depthwise kernels (SIMD, inline asm,
grouped filter layouts, stack/arena window buffers) on shapes the MLPerf
models do not have, run in QEMU mps2-an386 and compared byte for byte with
the TFLite Micro reference interpreter; the same shapes through the ARMv6-M
paths (mps2-an385) and the RV32 blocks (riscv32-virt)."""

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


def _conv_after(shape, pre, filters, k, **kw):
    """A 1x1 conv from a wide input down to ``pre`` channels, then the conv
    under test: the dead model input leaves the arena gap where the planner
    puts the test conv's scratch with room for its int16 filter."""
    def build():
        L = modelgen._tf().keras.layers
        x = modelgen._inp(shape)
        return modelgen._model(x, L.Conv2D(filters, k, **kw)(L.Conv2D(pre, 1)(x)))
    return build


def _dense(n_in, n_out, **kw):
    def build():
        L = modelgen._tf().keras.layers
        x = modelgen._inp((n_in,))
        return modelgen._model(x, L.Dense(n_out, **kw)(x))
    return build


CASES = {
    "dw3x3_c8_same": _dw((7, 6, 8), 3, padding="same"),                  # grouped 4-channel + asm taps
    "dw3x3_c6_valid": _dw((6, 6, 6), 3, padding="valid"),                # channels not a multiple of 4
    "dw5x5_c4_same_s2": _dw((9, 9, 4), 5, strides=2, padding="same", activation="relu"),
    "dw3x3_c4_dil2": _dw((9, 9, 4), 3, dilation_rate=2, padding="same"),
    "dw3x3_c4_dm2": _dw((6, 6, 4), 3, depth_multiplier=2, padding="same"),
    # The fast 3x3 path: inside runs, border pixels (padded rows and columns
    # 0/2), tiny maps (middle column padded: generic pixel), stride 2, relu6.
    "dw3x3_c16_same_relu6": _dw((6, 7, 16), 3, padding="same", activation="relu6"),
    "dw3x3_c8_same_s2": _dw((7, 8, 8), 3, strides=2, padding="same", activation="relu"),
    "dw3x3_c12_same_s2_even": _dw((8, 8, 12), 3, strides=2, padding="same"),
    "dw3x3_c4_tiny": _dw((2, 1, 4), 3, padding="same"),
    "dw3x3_c8_dil2_valid": _dw((7, 7, 8), 3, dilation_rate=2, padding="valid"),
    # The triple path (three output pixels a pass, channel group outer):
    # one triple padded left and right, several with a middle one, stride 2
    # with the last column padded, stride 2 with pad_l 1 (and a left-over
    # pixel), valid padding, row stride 2, odd widths.
    "dw3x3_c4_same_w3": _dw((5, 3, 4), 3, padding="same"),
    "dw3x3_c12_same_w9_relu6": _dw((4, 9, 12), 3, padding="same", activation="relu6"),
    "dw3x3_c4_s2_w6_relu": _dw((6, 6, 4), 3, strides=2, padding="same", activation="relu"),
    "dw3x3_c8_s2_w7": _dw((7, 7, 8), 3, strides=2, padding="same"),
    "dw3x3_c8_s2_w11": _dw((5, 11, 8), 3, strides=2, padding="same"),
    "dw3x3_c4_valid_w8": _dw((5, 8, 4), 3, padding="valid"),
    "dw3x3_c8_s21_w5": _dw((7, 5, 8), 3, strides=(2, 1), padding="same"),
    "conv3x3_c3_s2": _conv((11, 11, 3), 8, 3, strides=2, padding="same"),  # VWW/ResNet-like first layer
    "conv1x1_c16": _conv((5, 4, 16), 10, 1, activation="relu6"),
    "conv5x5_c5": _conv((9, 8, 5), 6, 5, padding="same"),
    "conv3x3_c32_big_window": _conv((6, 6, 32), 4, 3, padding="same"),     # window > stack int16 buffer
    "conv1x1_c4_k4": _conv((5, 5, 4), 8, 1),                 # SMMLAR requant path: one chunk, odd pixel count
    "conv3x3_c2_k18": _conv((7, 6, 2), 12, 3, padding="same"),  # SMMLAR path: odd chunk count + loop
    "conv3x5_c3_row15": _conv((8, 9, 3), 4, (3, 5)),          # window rows of 15 bytes (3 left over)
    "dense_21x10_relu": _dense(21, 10, activation="relu"),     # odd input length, 4 + 4 + 1 + 1 rows
}

# The conv under test gets scratch with room for its int16 filter (fq_pair16):
# odd pixel counts, stride 2, padding on all sides, in_c 3 / 1 / 5, relu6.
WIDE = {
    "wide_conv1x1_c16_odd": _conv_after((5, 5, 64), 16, 8, 1),
    "wide_conv3x3_c3_s2": _conv_after((13, 11, 24), 3, 8, 3, strides=2, padding="same"),
    "wide_conv3x3_c3_s1_pad": _conv_after((9, 7, 32), 3, 16, 3, padding="same"),
    "wide_conv3x3_c1_s2": _conv_after((10, 9, 32), 1, 8, 3, strides=2, padding="same"),
    "wide_conv3x3_c5_pad": _conv_after((9, 8, 32), 5, 12, 3, padding="same"),
    "wide_conv3x3_c3_relu6": _conv_after((9, 8, 32), 3, 8, 3, padding="same", activation="relu6"),
    "wide_conv1x1_c32_k32": _conv_after((6, 5, 96), 32, 12, 1),
    # other 9-byte window rows (fill9), stack buffer
    "conv3x9_c1_row9": _conv((8, 12, 1), 4, (3, 9), padding="same"),
    "conv3x1_c9_s2_row9": _conv((9, 7, 9), 8, (3, 1), strides=2, padding="same", activation="relu"),
}
CASES.update(WIDE)

# 1x1 convs with no arena scratch (-O2: conv_1x1_stack / conv_1x1_stack_fq,
# the stack buffer): out_c a multiple of 4 (block_fast's 4-channel pass)
# with an odd pixel count, and single-pixel layers (the pixel paired with
# itself). These qualify for fq_pair (conv_1x1_stack_fq); the models made
# from them below miss it (conv_1x1_stack, block_fast): output zero point 0
# (activation range narrower than int8), a live big bias, shifts >= 0.
STACK1X1 = {
    "conv1x1_c8_k12_stack": _conv((5, 3, 8), 12, 1),
    "conv1x1_c8_k12_stack_relu6": _conv((5, 3, 8), 12, 1, activation="relu6"),
    "conv1x1_c16_k12_pix1_relu6": _conv((1, 1, 16), 12, 1, activation="relu6"),
}
CASES.update(STACK1X1)

# The RV32 blocks (TML_RV32): 1x1 layers read in place three pixels at a
# time with one or two left over, a strided 1x1, depthwise swept down the
# columns (taller than wide) at vertical stride 1 and 2 with any stride across.
RV32 = {
    "conv1x1_c8_k12_pix8": _conv((4, 2, 8), 12, 1),
    "conv1x1_c8_k8_s2": _conv((7, 6, 8), 8, 1, strides=2, activation="relu"),
    "dw3x3_c8_tall_s2": _dw((9, 4, 8), 3, strides=2, padding="same"),
    "dw3x3_c4_tall_s13": _dw((8, 7, 4), 3, strides=(1, 3), padding="same", activation="relu6"),
    "dw3x3_c4_tall_valid": _dw((9, 5, 4), 3, padding="valid"),
}
CASES.update(RV32)


def _non_negative_shifts(buf: bytes) -> bytes:
    """The model edited so its requantization shifts are >= 0 (the kernels'
    rarely used paths) while outputs stay unsaturated: weights in {-1, 0, 1},
    zero bias, and the output scale set so the largest effective scale
    (input scale x weight scale / output scale) is 1.0."""
    m = modelgen._unpack(buf)
    sg = m.subgraphs[0]
    op = sg.operators[0]
    x, w, b, y = (sg.tensors[i] for i in (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]))
    rng = np.random.default_rng(3)
    wbuf, bbuf = m.buffers[w.buffer], m.buffers[b.buffer]
    wbuf.data = rng.integers(-1, 2, len(wbuf.data)).astype(np.int8).view(np.uint8)
    bbuf.data = np.zeros(len(bbuf.data), np.uint8)
    y.quantization.scale = [float(x.quantization.scale[0]) * max(float(s) for s in w.quantization.scale)]
    return modelgen._pack(m)


# Models whose requantization shifts are made non-negative, from these cases.
POSITIVE_SHIFT = {"conv1x1_c16_shift_pos": "conv1x1_c16", "dw3x3_c8_same_shift_pos": "dw3x3_c8_same",
                  "conv1x1_c8_k12_stack_shift_pos": "conv1x1_c8_k12_stack"}


def _extreme_channels(buf: bytes, live_big_bias: bool) -> bytes:
    """Dead output channels as trained models have them (VWW): all-zero
    filters, |bias| ~ 2^30 and a tiny weight scale (shift -31, or a zero
    multiplier), which the lowering replaces by a canonical constant channel.
    With ``live_big_bias`` a channel that has weights gets a bias near 2^30 as
    well, so the layer misses the fast requantize's accumulator bound."""
    m = modelgen._unpack(buf)
    sg = m.subgraphs[0]
    op = sg.operators[0]
    w, b = sg.tensors[op.inputs[1]], sg.tensors[op.inputs[2]]
    n = len(w.quantization.scale)
    wd = np.frombuffer(bytes(m.buffers[w.buffer].data), np.int8).reshape(n, -1).copy()
    bd = np.frombuffer(bytes(m.buffers[b.buffer].data), np.int32).copy()
    scale = [float(s) for s in w.quantization.scale]
    for c, (bias, s) in {1: (2**30, 2e-9), 2: (-2**30, 1e-10), 5: (2**30 - 7, 1e-30)}.items():
        wd[c] = 0
        bd[c] = bias
        scale[c] = s
    if live_big_bias:
        bd[3] = 2**30 - 2**10
    w.quantization.scale = scale
    m.buffers[w.buffer].data = wd.reshape(-1).view(np.uint8)
    m.buffers[b.buffer].data = bd.view(np.uint8)
    return modelgen._pack(m)


def _out_zp0(buf: bytes) -> bytes:
    """The output zero point set to 0, so a relu/relu6 layer clamps at 0
    (activation range narrower than int8: the kernels' clamp code)."""
    m = modelgen._unpack(buf)
    sg = m.subgraphs[0]
    y = sg.tensors[sg.operators[0].outputs[0]]
    y.quantization.zeroPoint = [0]
    return modelgen._pack(m)


def _deep_shift(buf: bytes) -> bytes:
    """Requantization shifts near -22 (large right shifts): biases of about
    2^26 and an output scale 2^22.3 times the accumulator's, so outputs stay
    mostly unsaturated."""
    m = modelgen._unpack(buf)
    sg = m.subgraphs[0]
    op = sg.operators[0]
    x, w, b, y = (sg.tensors[i] for i in (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]))
    rng = np.random.default_rng(5)
    bbuf = m.buffers[b.buffer]
    n = len(bbuf.data) // 4
    bbuf.data = rng.integers(-2**26, 2**26, n).astype(np.int32).view(np.uint8)
    y.quantization.scale = [float(x.quantization.scale[0]) * max(float(s) for s in w.quantization.scale) * 2**22.3]
    y.quantization.zeroPoint = [3]
    return modelgen._pack(m)


# Models from these cases with the output zero point 0 / shifts near -22.
OUT_ZP0 = {"dw3x3_c12_same_w9_relu6_zp0": "dw3x3_c12_same_w9_relu6",
           "dw3x3_c4_s2_w6_relu_zp0": "dw3x3_c4_s2_w6_relu",
           "conv1x1_c8_k12_stack_relu6_zp0": "conv1x1_c8_k12_stack_relu6",
           "conv1x1_c16_k12_pix1_relu6_zp0": "conv1x1_c16_k12_pix1_relu6"}
DEEP_SHIFT = {"dw3x3_c8_same_deep_shift": "dw3x3_c8_same", "dw3x3_c8_s2_w11_deep_shift": "dw3x3_c8_s2_w11"}


# Models with dead / extreme channels, from these cases (flag: live big bias).
EXTREME = {"conv1x1_c4_dead": ("conv1x1_c4_k4", False), "conv3x3_c2_bigbias": ("conv3x3_c2_k18", True),
           "conv1x1_c8_k12_stack_bigbias": ("conv1x1_c8_k12_stack", True)}


# (Models whose output was grown past what SAME padding gives, to reach dw_generic from the
# -O2 depthwise path, are refused at import now: rule shape-mismatch, as TFLite never writes them.)


def _fq_1x1(g) -> bool:
    """tml_conv_s8's fq_ok for the model's one conv: out_c a multiple of 4,
    the activation range all of int8, shifts in [-20, -1] and
    |bias_fold| + K 2^14 < 2^30."""
    from platformio_tinyml.compilers.cgen.quant import activation_range_s8, quantize_multiplier
    op = g.ops[0]
    x, w, b, y = (g.tensors[i] for i in (*op.inputs[:3], op.outputs[0]))
    wd = w.data.reshape(w.shape[0], -1).astype(np.int64)
    K = wd.shape[1]
    bf = b.data.astype(np.int64) - x.quant.zp * wd.sum(axis=1)
    live = wd.any(axis=1)   # dead channels get canonical constants (lower_s8._const_channels)
    shifts = np.array([quantize_multiplier(x.quant.s * ws / y.quant.s)[1] for ws in w.quant.scale])
    return (w.shape[0] % 4 == 0 and activation_range_s8(op.attrs.activation, y) == (-128, 127)
            and bool(np.all((shifts[live] <= -1) & (shifts[live] >= -20)))
            and bool(np.all(np.abs(bf[live]) + (K << 14) < 1 << 30)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsp_models")
    out = {}
    for name, build in CASES.items():
        modelgen._seed(0)
        path = root / f"{name}.tflite"
        path.write_bytes(modelgen.convert(build(), int8=True))
        out[name] = path
    for name, base in POSITIVE_SHIFT.items():
        out[name] = root / f"{name}.tflite"
        out[name].write_bytes(_non_negative_shifts(out[base].read_bytes()))
    for name, base in OUT_ZP0.items():
        out[name] = root / f"{name}.tflite"
        out[name].write_bytes(_out_zp0(out[base].read_bytes()))
    for name, base in DEEP_SHIFT.items():
        out[name] = root / f"{name}.tflite"
        out[name].write_bytes(_deep_shift(out[base].read_bytes()))
    for name, (base, big) in EXTREME.items():
        out[name] = root / f"{name}.tflite"
        out[name].write_bytes(_extreme_channels(out[base].read_bytes(), big))
    return out


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("name", sorted(CASES) + sorted(POSITIVE_SHIFT) + sorted(EXTREME) + sorted(OUT_ZP0)
                         + sorted(DEEP_SHIFT))
def test_cortex_m4_kernels_bit_exact(name, opt, models, tmp_path):
    _check(name, models, tmp_path, "mps2-an386", opt, [])


# ARMv6-M (Cortex-M0+ code on QEMU's Cortex-M3 machine): the Thumb-1 asm dot
# products, int8 windows, per-channel depthwise and the split-multiply requantize.
@pytest.mark.parametrize("name", sorted(CASES) + sorted(POSITIVE_SHIFT) + sorted(EXTREME) + sorted(OUT_ZP0)
                         + sorted(DEEP_SHIFT))
def test_cortex_m0plus_kernels_bit_exact(name, models, tmp_path):
    _check(name, models, tmp_path, "mps2-an385", "-Os", ["-mcpu=cortex-m0plus"])


# RV32IMAC (QEMU riscv32-virt), the default -Os build whose kernel files
# switch to -O2: the register-blocked conv / depthwise / fully connected
# paths and their requantize (tml_rqx_rv where tml_rqx_ok holds, else the
# general one: the shift-edited and big-bias models).
@pytest.mark.parametrize("name", sorted(CASES) + sorted(POSITIVE_SHIFT) + sorted(EXTREME) + sorted(OUT_ZP0)
                         + sorted(DEEP_SHIFT))
def test_rv32_kernels_bit_exact(name, models, tmp_path):
    _check(name, models, tmp_path, "riscv32-virt", "-Os", [])


# ATmega2560 (simavr): the MULS dot product of tml_avr_dot (fully connected rows,
# conv pixel pairs and border pixels) and the requantize from 16x16 -> 32-bit
# products (tml_smull on AVR); every model of this file that fits 8 KiB of RAM.
@pytest.mark.parametrize("name", sorted(CASES) + sorted(POSITIVE_SHIFT) + sorted(EXTREME) + sorted(OUT_ZP0)
                         + sorted(DEEP_SHIFT))
def test_avr_kernels_bit_exact(name, models, tmp_path):
    _check(name, models, tmp_path, "atmega2560", "-Os", [])


def _check(name, models, tmp_path, machine, opt, cflags):
    path = models[name]
    g = load_tflite(path)
    gen = generate(g, "m")
    if name.startswith("wide_"):   # the test conv really gets the int16 filter room
        assert "filter16 = (int16_t *)(m_arena + " in gen.files["m.c"], name
    rng = np.random.default_rng(7)
    t = g.tensors[g.inputs[0]]
    samples = [[rng.integers(-128, 128, t.shape).astype(np.int8)] for _ in range(2)]
    if name in STACK1X1 or any(name.startswith(k + "_") for k in STACK1X1):
        # conv_1x1_stack(_fq): no arena scratch; fq_pair only for the unedited models
        assert ".scratch = 0" in gen.files["m.c"] and "filter16 = 0" in gen.files["m.c"], name
        assert _fq_1x1(g) == (name in STACK1X1), name
        if "pix1" in name:
            assert g.tensors[g.ops[0].outputs[0]].shape[1:3] == (1, 1)
    if name in POSITIVE_SHIFT:
        # Inputs near the zero point keep the (now large-gain) outputs unsaturated.
        samples = [[(t.quant.zp + rng.integers(-6, 7, t.shape)).astype(np.int8)] for _ in range(2)]
        from platformio_tinyml.compilers.cgen.quant import quantize_multiplier
        x, w, y = (g.tensors[i] for i in (g.ops[0].inputs[0], g.ops[0].inputs[1], g.ops[0].outputs[0]))
        shifts = [quantize_multiplier(x.quant.s * ws / y.quant.s)[1] for ws in w.quant.scale]
        assert min(shifts) >= 0, shifts   # the edit really reaches the non-negative-shift paths
    if name in DEEP_SHIFT:
        from platformio_tinyml.compilers.cgen.quant import quantize_multiplier
        x, w, y = (g.tensors[i] for i in (g.ops[0].inputs[0], g.ops[0].inputs[1], g.ops[0].outputs[0]))
        shifts = [quantize_multiplier(x.quant.s * ws / y.quant.s)[1] for ws in w.quant.scale]
        assert min(shifts) <= -21, shifts   # the edit really reaches the deep shifts
    if name in OUT_ZP0:
        from platformio_tinyml.compilers.cgen.quant import activation_range_s8
        assert activation_range_s8(g.ops[0].attrs.activation, g.tensors[g.ops[0].outputs[0]])[0] == 0
    run = run_model(gen, g, samples, tmp_path, machine, opt=opt, extra_cflags=cflags)
    ref = TFLMReference(path)
    for k, xs in enumerate(samples):
        golden = ref.run(xs)[0].reshape(-1)
        assert np.array_equal(run.outputs[k][0].reshape(-1), golden), f"{name} {opt} sample {k}"
        if name in POSITIVE_SHIFT or name in DEEP_SHIFT:
            assert np.mean((golden > -128) & (golden < 127)) > 0.5, "outputs saturated: test too weak"
