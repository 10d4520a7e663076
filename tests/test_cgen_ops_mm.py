"""TRANSPOSE_CONV and BATCH_MATMUL (cgen/lower_mm.py) against TensorFlow Lite Micro.

Keras models (Conv2DTranspose with and without bias, SAME/VALID, stride 2, odd
filters, output_padding, an open batch dimension whose output shape the converter
computes with SHAPE/STRIDED_SLICE/PACK) converted as users convert them
(tests/modelgen.convert: float32, and full-integer int8 with per-channel filters),
compiled to C, built for the host and run next to the TFLite Micro interpreter:
int8 bit-exact, float32 within 1e-5 relative (test_cgen_ops.check_parity).
BATCH_MATMUL: Keras matmuls (attention-style q @ k^T becomes adj_y) and hand-built
models for adj_x/adj_y, broadcast batch dimensions up to rank 5, non-zero zero
points and a constant operand. Hand-built models (benchmarks/difftest.py's builder)
also cover per-tensor filters and what is refused in one line. Both kernels also
cross-compile warning-free (Cortex-M0+, M4F, RV32, AVR) and run bit-exact on emulated
AVR (simavr), RV32 and Cortex-M4 (QEMU).
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import ModelError, UnsupportedOpError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.model.tflite import load_tflite
from test_cgen_ops import check_parity
from test_cgen_ops_ew import _builder, _run

pytest.importorskip("tflite_micro")


def _tconv(shape, filters, kernel, batch=1, **kw):
    def build():
        tf = modelgen._tf()
        x = tf.keras.Input(shape=shape, batch_size=batch)
        return tf.keras.Model(x, tf.keras.layers.Conv2DTranspose(filters, kernel, **kw)(x))
    return build


def _tconv_relu_chain():
    tf = modelgen._tf()
    L = tf.keras.layers
    x = tf.keras.Input(shape=(4, 4, 2), batch_size=1)
    y = L.Conv2D(3, 3, padding="same", activation="relu")(x)
    y = L.Conv2DTranspose(2, 3, strides=2, padding="same", use_bias=False, activation="relu")(y)
    return tf.keras.Model(x, L.Conv2DTranspose(3, 2, strides=2, padding="valid")(y))


TCONV = {
    "same_s2_bias": _tconv((5, 6, 3), 4, 3, strides=2, padding="same"),
    "valid_s2_nobias": _tconv((5, 6, 3), 4, 3, strides=2, padding="valid", use_bias=False),
    "same_s2_k4x3_odd": _tconv((3, 5, 2), 3, (4, 3), strides=(2, 1), padding="same"),
    "valid_s2_output_padding": _tconv((4, 3, 3), 2, 3, strides=2, padding="valid", output_padding=1),
    "same_s1": _tconv((6, 6, 4), 5, 3, padding="same"),
    "open_batch_same_s2": _tconv((5, 6, 3), 4, 3, batch=None, strides=2, padding="same"),
    "chain_relu": _tconv_relu_chain,   # the converter keeps RELU a separate op
}


def _convert(tmp_path_factory, name: str, dtype: str, specs=TCONV):
    root = tmp_path_factory.getbasetemp() / "mm_models"
    root.mkdir(exist_ok=True)
    path = root / f"{name}_{dtype}.tflite"
    if not path.exists():
        modelgen._seed(0)
        path.write_bytes(modelgen.convert(specs[name](), int8=dtype == "int8"))
    return path


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", sorted(TCONV))
def test_transpose_conv_keras(name, dtype, tmp_path_factory, tmp_path):
    path = _convert(tmp_path_factory, name, dtype)
    g = load_tflite(path)
    assert OpKind.TRANSPOSE_CONV in {op.kind for op in g.ops}
    assert not {op.kind for op in g.ops} & {OpKind.SHAPE, OpKind.PACK, OpKind.STRIDED_SLICE}
    check_parity(path, tmp_path, n=10)


def _tconv_model(int8: bool, act: str = "NONE", out_shape=(1, 9, 7, 3), bias: bool = True) -> bytes:
    """x [1,4,3,2] -> TRANSPOSE_CONV 3x3 stride 2 VALID, per-tensor int8 filter (zero point 0)."""
    B = _builder()()
    rng = np.random.default_rng(7)
    dt = "int8" if int8 else "float32"
    q = (lambda s, z: ([s], [z], 0)) if int8 else (lambda s, z: None)
    x = B.tensor((1, 4, 3, 2), dt, q(0.05, -9), name="x")
    wdata = rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8) if int8 \
        else rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    w = B.tensor((3, 3, 3, 2), dt, q(0.02, 0), data=wdata)
    shape = B.tensor((4,), "int32", data=np.array(out_shape, np.int32))
    ins = [shape, w, x]
    if bias:
        bdata = rng.integers(-500, 500, 3).astype(np.int32) if int8 else rng.standard_normal(3).astype(np.float32)
        ins.append(B.tensor((3,), "int32" if int8 else "float32", ([0.05 * 0.02], [0], 0) if int8 else None,
                            data=bdata))
    y = B.tensor((1, 9, 7, 3), dt, q(0.1, 4), name="y")
    B.op("TRANSPOSE_CONV", ins, [y], B.options("TransposeConvOptions", padding=B.S.Padding.VALID, strideH=2,
                                                 strideW=2, fusedActivationFunction=getattr(
                                                     B.S.ActivationFunctionType, act)))
    return B.finish([x], [y])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float32"])
def test_transpose_conv_per_tensor_builder(int8, bias, tmp_path):
    _run(_tconv_model(int8, bias=bias), tmp_path, n=6)


@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float32"])
def test_transpose_conv_fused_activation(int8, act, tmp_path):
    _run(_tconv_model(int8, act=act), tmp_path, n=4)


def test_transpose_conv_unknown_fused_activation_is_refused_in_one_line(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_tconv_model(True, act="TANH"))
    with pytest.raises(UnsupportedOpError, match="TRANSPOSE_CONV.*fused activation") as e:
        load_tflite(path)
    assert "\n" not in str(e.value)


def test_transpose_conv_output_shape_mismatch_is_refused(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_tconv_model(True, out_shape=(1, 10, 7, 3)))
    with pytest.raises(ModelError, match="shape-mismatch.*output_shape") as e:
        load_tflite(path)
    assert "\n" not in str(e.value)


CROSS = [("cortex-m0plus", None), ("cortex-m4", "fpv4-sp-d16"), ("rv32imac", None), ("atmega2560", None)]
CROSS_MODELS = [("tconv", "same_s2_bias"), ("bmm", "attention_qk")]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("kind, name", CROSS_MODELS)
def test_cross_compile_warning_free(kind, name, dtype, tmp_path_factory, tmp_path):
    """The kernels build with -Wall -Wextra -Werror for Cortex-M0+ (no FPU, no 64-bit divide),
    Cortex-M4F, RV32 and AVR (16-bit int, constants in PROGMEM)."""
    import shutil
    from platformio_tinyml.compilers.cgen import write_output
    from platformio_tinyml.emu import compile_only
    if not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "riscv64-unknown-elf-gcc", "avr-gcc")):
        pytest.skip("cross toolchains not installed")
    path = _convert(tmp_path_factory, name, dtype, BMM if kind == "bmm" else TCONV)
    src = tmp_path / "src"
    files = write_output(generate(load_tflite(path), "m"), src)
    for core, fpu in CROSS:
        objs = compile_only([p for p in files if p.suffix == ".c"], [src], core, fpu, out_dir=tmp_path / core)
        assert objs and all(o.is_file() for o in objs)




# ---- BATCH_MATMUL ------------------------------------------------------------------------------

def _matmul(shape_a, shape_b, transpose_b=False, batch=1):
    def build():
        tf = modelgen._tf()
        import keras
        a = tf.keras.Input(shape=shape_a, batch_size=batch, name="in0")
        b = tf.keras.Input(shape=shape_b, batch_size=batch, name="in1")
        rhs = keras.ops.swapaxes(b, -1, -2) if transpose_b else b
        return tf.keras.Model([a, b], keras.ops.matmul(a, rhs))
    return build


def _attention_qk():
    """Scaled dot-product scores of a tiny self-attention: Dense q, k; q @ k^T; softmax."""
    tf = modelgen._tf()
    import keras
    L = tf.keras.layers
    x = tf.keras.Input(shape=(6, 8), batch_size=1)
    q, k = L.Dense(4)(x), L.Dense(4)(x)
    return tf.keras.Model(x, L.Softmax()(keras.ops.matmul(q, keras.ops.swapaxes(k, -1, -2)) * 0.5))


BMM = {
    "rank4": _matmul((3, 4, 5), (3, 5, 6)),
    "rank3_transpose_b": _matmul((4, 5), (6, 5), transpose_b=True),
    "open_batch": _matmul((4, 5), (5, 6), batch=None),
    "attention_qk": _attention_qk,
}


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", sorted(BMM))
def test_batch_matmul_keras(name, dtype, tmp_path_factory, tmp_path):
    path = _convert(tmp_path_factory, name, dtype, BMM)
    assert OpKind.BATCH_MATMUL in {op.kind for op in load_tflite(path).ops}
    check_parity(path, tmp_path, n=10)


def _bmm_model(shape_a, shape_b, shape_y, adj_x, adj_y, int8: bool, const_b: bool = False) -> bytes:
    B = _builder()()
    dt = "int8" if int8 else "float32"
    q = (lambda s, z: ([s], [z], 0)) if int8 else (lambda s, z: None)
    a = B.tensor(shape_a, dt, q(0.04, -11), name="in0")
    if const_b:
        rng = np.random.default_rng(3)
        data = rng.integers(-128, 128, shape_b).astype(np.int8) if int8 \
            else rng.standard_normal(shape_b).astype(np.float32)
        b = B.tensor(shape_b, dt, q(0.03, 5), data=data)
    else:
        b = B.tensor(shape_b, dt, q(0.03, 5), name="in1")
    y = B.tensor(shape_y, dt, q(0.5, -3), name="y")
    B.op("BATCH_MATMUL", [a, b], [y], B.options("BatchMatMulOptions", adjX=adj_x, adjY=adj_y))
    return B.finish([a] if const_b else [a, b], [y])


BMM_BUILT = [   # lhs, rhs, output, adj_x, adj_y, constant rhs
    ((2, 4, 3), (2, 4, 5), (2, 3, 5), True, False, False),
    ((2, 3, 4), (2, 5, 4), (2, 3, 5), False, True, False),
    ((2, 4, 3), (2, 5, 4), (2, 3, 5), True, True, False),
    ((2, 1, 3, 4), (3, 4, 5), (2, 3, 3, 5), False, False, False),
    ((3, 4), (2, 2, 1, 4, 5), (2, 2, 1, 3, 5), False, False, False),
    ((1, 3, 3, 4), (3, 1, 4, 2), (3, 3, 3, 2), False, False, False),
    ((2, 3, 4), (4, 5), (2, 3, 5), False, False, True),
]


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float32"])
@pytest.mark.parametrize("case", BMM_BUILT, ids=[f"{c[0]}x{c[1]}-adj{int(c[3])}{int(c[4])}{'-const' * c[5]}"
                                                 for c in BMM_BUILT])
def test_batch_matmul_builder(case, int8, tmp_path):
    a, b, y, adj_x, adj_y, const_b = case
    _run(_bmm_model(a, b, y, adj_x, adj_y, int8, const_b), tmp_path, n=4)


def test_batch_matmul_depth_mismatch_is_refused_in_one_line(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_bmm_model((2, 3, 4), (2, 5, 4), (2, 3, 5), False, False, True))
    with pytest.raises(ModelError, match="shape-mismatch.*BATCH_MATMUL.*depths 4 and 5") as e:
        load_tflite(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("machine", ["atmega2560", "riscv32-virt", "mps2-an386"])
@pytest.mark.parametrize("kind, name", CROSS_MODELS)
def test_int8_bit_exact_on_emulated_targets(kind, name, machine, tmp_path_factory, tmp_path):
    """The int8 kernels on real targets: AVR in simavr (constants in PROGMEM, 16-bit int),
    RV32 and Cortex-M4 in QEMU, outputs equal to TFLite Micro's on the host."""
    import shutil
    from platformio_tinyml.verify.firmware import run_model
    from platformio_tinyml.verify.reference import TFLMReference
    tools = {"atmega2560": ("avr-gcc", "simavr"), "riscv32-virt": ("riscv64-unknown-elf-gcc", "qemu-system-riscv32"),
             "mps2-an386": ("arm-none-eabi-gcc", "qemu-system-arm")}[machine]
    if not all(shutil.which(t) for t in tools):
        pytest.skip(f"not installed: {tools}")
    path = _convert(tmp_path_factory, name, "int8", BMM if kind == "bmm" else TCONV)
    g = load_tflite(path)
    rng = np.random.default_rng(4)
    samples = [[rng.integers(-128, 128, g.tensors[i].shape).astype(np.int8) for i in g.inputs] for _ in range(2)]
    r = run_model(generate(g, "m"), g, samples, tmp_path, machine, opt="-Os", timeout=120)
    ref = TFLMReference(path)
    for k, (s, ours) in enumerate(zip(samples, r.outputs)):
        assert np.array_equal(ours[0].reshape(-1), ref.run(s)[0].reshape(-1)), f"sample {k} differs on {machine}"
