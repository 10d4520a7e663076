"""int8 L2_NORMALIZATION and LOG_SOFTMAX of the cgen backend (cgen/lower_norms.py) against
TensorFlow Lite Micro, bit for bit.

One-op models written with the flatbuffer schema (benchmarks/difftest.py's builder, as in
test_cgen_ops_ew.py): rank 2 and 4, depth 1, 10, 64, 257 and 4,095, input scales from 2^-11 to
12; each model runs random rows and the extremes (all codes equal, one code far above the
others, -128/127 alternating, every input at the zero point). The same on AVR (simavr), RV32
and Cortex-M4 (QEMU). Keras models with tf.nn.log_softmax and tf.math.l2_normalize after a
dense or 1x1 conv layer, converted with full int8 quantization (the converter fuses them into
the two builtins), compared likewise. A perturbed LOG_SOFTMAX multiplier must be caught; an
output quantization other than TFLite's fixed one, and a LOG_SOFTMAX row over 4,095, are
refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

from platformio_tinyml.compilers.cgen import generate, lower_norms
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference
from test_cgen_ops import check_parity
from test_cgen_ops_ew import _builder

pytest.importorskip("tflite_micro")

OUT_Q = {"L2_NORMALIZATION": (1.0 / 128.0, 0), "LOG_SOFTMAX": (16.0 / 256.0, 127)}
OPTIONS = {"L2_NORMALIZATION": "L2NormOptions", "LOG_SOFTMAX": "LogSoftmaxOptions"}
DEPTHS = (1, 10, 64, 257)
# input (scale, zero point): a typical activation, a wide range at the bottom code, a narrow one
IN_Q = ((0.05, 3), (0.5, -128), (0.004, 20))


def _model(op: str, shape, qin, qout=None) -> bytes:
    B = _builder()()
    x = B.tensor(shape, "int8", ([qin[0]], [qin[1]], 0), name="x")
    so, zo = qout or OUT_Q[op]
    y = B.tensor(shape, "int8", ([so], [zo], 0), name="y")
    B.op(op, [x], [y], B.options(OPTIONS[op]))
    return B.finish([x], [y])


def _inputs(shape, zp: int, n_random: int, seed: int) -> list[np.ndarray]:
    """Random codes, then the extremes, each row of the last axis alike."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    depth = shape[-1]
    xs = [rng.integers(-128, 128, size) for _ in range(n_random)]
    xs.append(rng.integers(-4, 5, size) + zp)                     # near the zero point: small sums
    xs.append(np.full(size, 77))                                  # all equal
    one = np.full(size, -128)
    one[::depth] = 127                                            # one large code per row
    xs.append(one)
    xs.append(np.where(np.arange(size) % 2 == 0, -128, 127))
    xs.append(np.full(size, zp))                                  # all at the zero point (sum 0)
    xs.append(np.full(size, -128))
    return [np.clip(x, -128, 127).astype(np.int8).reshape(shape) for x in xs]


def _compare(buf: bytes, tmp_path, n_random: int = 6) -> int:
    """Run the model in cgen's host build and in TFLite Micro; the number of differing codes."""
    path = tmp_path / "m.tflite"
    path.write_bytes(buf)
    g = load_tflite(path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ref = TFLMReference(path)
    t = g.tensors[g.inputs[0]]
    differ = 0
    for x in _inputs(tuple(t.shape), t.quant.zp, n_random, seed=t.size):
        ours, golden = host.run([x])[0], ref.run([x])[0]
        differ += int((ours.astype(int) != golden.astype(int)).sum())
    return differ


@pytest.mark.parametrize("rank", [2, 4])
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("op", ["L2_NORMALIZATION", "LOG_SOFTMAX"])
def test_bit_exact(op, depth, rank, tmp_path):
    shape = (3, depth) if rank == 2 else (1, 2, 3, depth)
    qin = IN_Q[(depth + rank) % len(IN_Q)]
    assert _compare(_model(op, shape, qin), tmp_path) == 0


@pytest.mark.parametrize("qin", [(0.0005, -3), (0.05, 127), (1.7, 0), (12.0, -100)])
@pytest.mark.parametrize("op", ["L2_NORMALIZATION", "LOG_SOFTMAX"])
def test_bit_exact_input_scales(op, qin, tmp_path):
    """Input scales from 2^-11 to 12: LOG_SOFTMAX's multiplier, shift and thresholds all move."""
    assert _compare(_model(op, (4, 33), qin), tmp_path) == 0


def test_perturbed_multiplier_is_caught(tmp_path, monkeypatch):
    """The comparison sees a LOG_SOFTMAX input multiplier off by 1/4096 of itself."""
    real = lower_norms.log_softmax_params

    def off(scale):
        p = real(scale)
        return lower_norms.LogSoftmaxParams(p.input_mult + (p.input_mult >> 12), p.input_left_shift,
                                            p.rev_mult, p.rev_shift, p.diff_min)
    monkeypatch.setattr(lower_norms, "log_softmax_params", off)
    assert _compare(_model("LOG_SOFTMAX", (4, 64), (0.05, 3)), tmp_path) > 0


def test_params_as_tflite_micro():
    """A scale of 1/16 (2^22 as Q5 multiplier): multiplier 2^30, shift 23, TFLite's radius."""
    p = lower_norms.log_softmax_params(1.0 / 16.0)
    assert (p.input_mult, p.input_left_shift) == (1 << 30, 23)
    assert (p.rev_mult, p.rev_shift) == (1 << 30, -21)
    assert p.diff_min == -((31 << 26) >> 23)


@pytest.mark.parametrize("op,qout,expect", [
    ("LOG_SOFTMAX", (1.0 / 16.0, 0), "zero point 127"),
    ("LOG_SOFTMAX", (0.1, 127), "scale 0.0625"),
    ("L2_NORMALIZATION", (1.0 / 256.0, 0), "scale 0.0078125"),
    ("L2_NORMALIZATION", (1.0 / 128.0, -128), "zero point 0"),
])
def test_wrong_output_quantization_refused_in_one_line(op, qout, expect, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_model(op, (2, 10), (0.05, 3), qout))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    msg = str(e.value)
    assert "\n" not in msg and f"#0 {op}" in msg and expect in msg, msg


@pytest.mark.parametrize("op", ["L2_NORMALIZATION", "LOG_SOFTMAX"])
def test_rows_of_4095(op, tmp_path):
    """Rows of 4,095 (LOG_SOFTMAX's longest): with every code at the row maximum its Q12 sum is
    at its largest, 2^31 - 2^19."""
    assert _compare(_model(op, (1, 4095), (0.05, 3)), tmp_path, n_random=2) == 0


def test_log_softmax_row_past_the_sum_range_refused(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_model("LOG_SOFTMAX", (1, 4096), (0.05, 3)))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    assert "\n" not in str(e.value) and "depth 4096 > 4095" in str(e.value)


def test_tiny_input_scale_refused_in_one_line(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_model("LOG_SOFTMAX", (2, 10), (1e-9, 0)))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    assert "\n" not in str(e.value) and "too small" in str(e.value)


def _both_model(shape, qin) -> bytes:
    """One input read by both ops: x -> L2_NORMALIZATION -> y1, x -> LOG_SOFTMAX -> y2."""
    B = _builder()()
    x = B.tensor(shape, "int8", ([qin[0]], [qin[1]], 0), name="x")
    ys = []
    for op in ("L2_NORMALIZATION", "LOG_SOFTMAX"):
        so, zo = OUT_Q[op]
        ys.append(B.tensor(shape, "int8", ([so], [zo], 0), name=op.lower()))
        B.op(op, [x], [ys[-1]], B.options(OPTIONS[op]))
    return B.finish([x], ys)


@pytest.mark.parametrize("machine", ["atmega2560", "riscv32-virt", "mps2-an386"])
def test_bit_exact_on_emulated_targets(machine, tmp_path):
    """AVR in simavr (16-bit int, parameters in PROGMEM), RV32 and Cortex-M4 in QEMU: the
    outputs equal TFLite Micro's on the host, extremes included."""
    import shutil
    from platformio_tinyml.verify.firmware import run_model
    tools = {"atmega2560": ("avr-gcc", "simavr"), "riscv32-virt": ("riscv64-unknown-elf-gcc", "qemu-system-riscv32"),
             "mps2-an386": ("arm-none-eabi-gcc", "qemu-system-arm")}[machine]
    if not all(shutil.which(t) for t in tools):
        pytest.skip(f"not installed: {tools}")
    path = tmp_path / "both.tflite"
    path.write_bytes(_both_model((2, 64), (0.05, 3)))
    g = load_tflite(path)
    samples = [[x] for x in _inputs((2, 64), 3, 2, seed=7)]
    r = run_model(generate(g, "m"), g, samples, tmp_path / "fw", machine, opt="-Os", timeout=120)
    ref = TFLMReference(path)
    for k, (s, ours) in enumerate(zip(samples, r.outputs)):
        for j, (a, b) in enumerate(zip(ours, ref.run(s))):
            assert np.array_equal(a.reshape(-1), b.reshape(-1)), f"sample {k}, output {j} differs on {machine}"


def test_cross_compile_warning_free(tmp_path):
    """Both kernels build with -Wall -Wextra -Werror for Cortex-M0+ (no 64-bit divide), Cortex-M4F,
    RV32 and AVR."""
    import shutil
    from platformio_tinyml.compilers.cgen import write_output
    from platformio_tinyml.emu import compile_only
    if not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "riscv64-unknown-elf-gcc", "avr-gcc")):
        pytest.skip("cross toolchains not installed")
    path = tmp_path / "both.tflite"
    path.write_bytes(_both_model((2, 10), (0.05, 3)))
    src = tmp_path / "src"
    files = write_output(generate(load_tflite(path), "m"), src)
    for core, fpu in [("cortex-m0plus", None), ("cortex-m4", "fpv4-sp-d16"), ("rv32imac", None), ("atmega2560", None)]:
        objs = compile_only([p for p in files if p.suffix == ".c"], [src], core, fpu, out_dir=tmp_path / core)
        assert objs and all(o.is_file() for o in objs)


# ---- Keras models, full int8 quantization ---------------------------------------------------------

def _keras(op: str, shape):
    def build():
        import modelgen
        tf = modelgen._tf()
        L = tf.keras.layers
        x = modelgen._inp(shape)
        h = L.Dense(shape[-1])(x) if len(shape) == 1 else L.Conv2D(shape[-1], 1)(x)
        fn = ((lambda v: tf.nn.log_softmax(v, axis=-1)) if op == "LOG_SOFTMAX"
              else (lambda v: tf.math.l2_normalize(v, axis=-1)))
        return modelgen._model(x, L.Lambda(fn)(h))
    return build


KERAS = {"log_softmax_fc10": ("LOG_SOFTMAX", (10,)), "log_softmax_conv_3x4x64": ("LOG_SOFTMAX", (3, 4, 64)),
         "l2norm_fc10": ("L2_NORMALIZATION", (10,)), "l2norm_conv_3x4x64": ("L2_NORMALIZATION", (3, 4, 64))}


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_int8_bit_exact(name, tmp_path):
    import modelgen
    from platformio_tinyml.ir import OpKind
    op, shape = KERAS[name]
    modelgen._seed(0)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(modelgen.convert(_keras(op, shape)(), int8=True))
    g = load_tflite(path)
    assert OpKind(op) in {o.kind for o in g.ops}
    check_parity(path, tmp_path / "b", n=10)
