"""Keras LayerNormalization as TFLite exports it, compiled by cgen, against TensorFlow Lite Micro.

The converter has no LAYER_NORM builtin: it writes MEAN, SQUARED_DIFFERENCE, MEAN,
ADD (epsilon), RSQRT, MUL/ADD (and NEG between a DEQUANTIZE/QUANTIZE pair in int8
models; rms_scaling drops the centring). Each variant (last axis of a sequence,
of an NHWC map, over three axes, without scale/centre, RMS scaling, after a conv or
a dense layer, open batch) is converted as users do (tests/modelgen.convert: float32
and full-integer int8) and must run bit-exact (int8) or within 1e-5 (float32).
"""

from __future__ import annotations

import pytest

import modelgen
from platformio_tinyml.errors import ModelError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.model.tflite import load_tflite
from test_cgen_ops import check_parity

pytest.importorskip("tflite_micro")


def _ln(shape, batch=1, before=None, **kw):
    def build():
        tf = modelgen._tf()
        L = tf.keras.layers
        x = tf.keras.Input(shape=shape, batch_size=batch)
        y = {"conv": lambda t: L.Conv2D(8, 3, padding="same")(t), "dense": lambda t: L.Dense(16)(t),
             None: lambda t: t}[before](x)
        return tf.keras.Model(x, L.LayerNormalization(**kw)(y))
    return build


VARIANTS = {
    "sequence_last_axis": _ln((4, 8)),
    "nhwc_last_axis": _ln((3, 3, 8)),
    "nhwc_three_axes": _ln((3, 3, 8), axis=[1, 2, 3]),
    "no_center_no_scale": _ln((4, 8), center=False, scale=False),
    "rms_scaling": _ln((4, 8), rms_scaling=True),
    "after_conv_open_batch": _ln((6, 6, 3), batch=None, before="conv"),
    "after_dense": _ln((10,), before="dense"),
}


@pytest.fixture(scope="module")
def ln_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("layernorm")

    def path(name: str, dtype: str):
        p = root / f"{name}_{dtype}.tflite"
        if not p.exists():
            modelgen._seed(0)
            p.write_bytes(modelgen.convert(VARIANTS[name](), int8=dtype == "int8"))
        return p
    return path


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_layer_normalization(name, dtype, ln_models, tmp_path):
    path = ln_models(name, dtype)
    kinds = {op.kind for op in load_tflite(path).ops}
    assert {OpKind.MEAN, OpKind.SQUARED_DIFFERENCE, OpKind.RSQRT} <= kinds, kinds
    check_parity(path, tmp_path, n=10)


def test_dense_on_sequence_with_open_batch_is_refused_in_one_line(tmp_path):
    """Dense on a [batch, T, D] input with the batch open exports Tensordot shape arithmetic
    (SHAPE, GATHER, REDUCE_PROD) whose tensors carry no usable static shape (TFLite Micro
    cannot run it either): refused with the fix, not compiled."""
    tf = modelgen._tf()
    L = tf.keras.layers
    modelgen._seed(0)
    x = tf.keras.Input(shape=(4, 8))
    path = tmp_path / "m.tflite"
    path.write_bytes(modelgen.convert(tf.keras.Model(x, L.LayerNormalization()(L.Dense(8)(x))), int8=False))
    with pytest.raises(ModelError, match="dynamic shape.*fixed input shapes") as e:
        load_tflite(path)
    assert "\n" not in str(e.value)
