"""TRANSPOSE_CONV (and the other matrix ops of cgen/lower_mm.py) against TensorFlow Lite Micro.

Keras models (Conv2DTranspose with and without bias, SAME/VALID, stride 2, odd
filters, output_padding, an open batch dimension whose output shape the converter
computes with SHAPE/STRIDED_SLICE/PACK) converted as users convert them
(tests/modelgen.convert: float32, and full-integer int8 with per-channel filters),
compiled to C, built for the host and run next to the TFLite Micro interpreter:
int8 bit-exact, float32 within 1e-5 relative (test_cgen_ops.check_parity).
Hand-built models (benchmarks/difftest.py's builder) cover per-tensor filters and
what is refused in one line.
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
    "chain_relu": _tconv_relu_chain,
}


def _convert(tmp_path_factory, name: str, dtype: str):
    root = tmp_path_factory.getbasetemp() / "mm_models"
    root.mkdir(exist_ok=True)
    path = root / f"{name}_{dtype}.tflite"
    if not path.exists():
        modelgen._seed(0)
        path.write_bytes(modelgen.convert(TCONV[name](), int8=dtype == "int8"))
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


def test_transpose_conv_fused_activation_is_refused_in_one_line(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_tconv_model(True, act="RELU"))
    with pytest.raises(UnsupportedOpError, match="TRANSPOSE_CONV.*fused activation relu") as e:
        generate(load_tflite(path), "m")
    assert "\n" not in str(e.value)


def test_transpose_conv_output_shape_mismatch_is_refused(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_tconv_model(True, out_shape=(1, 10, 7, 3)))
    with pytest.raises(ModelError, match="shape-mismatch.*output_shape") as e:
        load_tflite(path)
    assert "\n" not in str(e.value)


CROSS = [("cortex-m0plus", None), ("cortex-m4", "fpv4-sp-d16"), ("rv32imac", None), ("atmega2560", None)]
CROSS_MODELS = [("tconv", "same_s2_bias")]


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
    path = _convert(tmp_path_factory, name, dtype) if kind == "tconv" else _MODELS[kind](tmp_path_factory, name,
                                                                                         dtype)
    src = tmp_path / "src"
    files = write_output(generate(load_tflite(path), "m"), src)
    for core, fpu in CROSS:
        objs = compile_only([p for p in files if p.suffix == ".c"], [src], core, fpu, out_dir=tmp_path / core)
        assert objs and all(o.is_file() for o in objs)


_MODELS = {}   # kind -> (tmp_path_factory, name, dtype) -> model path, for the other ops of lower_mm
