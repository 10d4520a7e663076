"""Small single-op (and few-op) TFLite models built with TensorFlow, for
operator-level tests of the code generator against TFLite Micro.

Each spec in :data:`SPECS` builds a ``tf.keras`` model; :func:`convert`
turns it into a float32 ``.tflite`` or a full-integer int8 one
(post-training quantization with a seeded representative dataset,
``inference_input_type``/``inference_output_type`` int8 unless the spec asks
for float I/O). :class:`ModelCache` converts each (spec, dtype) at most once
per test session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _tf():
    import tensorflow as tf
    return tf


def _model(inputs, outputs):
    tf = _tf()
    return tf.keras.Model(inputs=inputs, outputs=outputs)


def _inp(shape, name=None):
    # Multi-input models name their inputs in0, in1, ...: the converter orders
    # inputs by name, and the representative dataset must follow that order.
    return _tf().keras.Input(shape=shape, batch_size=1, name=name)


def _seed(seed: int = 0):
    _tf().keras.utils.set_random_seed(seed)


# ---- model builders: each returns a keras model --------------------------------

def conv_valid():
    L = _tf().keras.layers
    x = _inp((9, 9, 3))
    return _model(x, L.Conv2D(4, 3, padding="valid")(x))


def conv_same_s2_relu6():
    L = _tf().keras.layers
    x = _inp((9, 8, 3))
    return _model(x, L.Conv2D(5, 3, strides=2, padding="same", activation="relu6")(x))


def conv_1x1_relu():
    L = _tf().keras.layers
    x = _inp((5, 5, 6))
    return _model(x, L.Conv2D(7, 1, activation="relu")(x))


def dwconv_same_dm2():
    L = _tf().keras.layers
    x = _inp((7, 7, 3))
    return _model(x, L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x))


def dwconv_valid_s2_relu():
    L = _tf().keras.layers
    x = _inp((9, 9, 4))
    return _model(x, L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu")(x))


def fc():
    L = _tf().keras.layers
    x = _inp((16,))
    return _model(x, L.Dense(8)(x))


def fc_relu6():
    L = _tf().keras.layers
    x = _inp((12,))
    return _model(x, L.Dense(10, activation="relu6")(x))


def avgpool_same_s2():
    L = _tf().keras.layers
    x = _inp((7, 7, 3))
    return _model(x, L.AveragePooling2D(3, strides=2, padding="same")(x))


def maxpool_valid():
    L = _tf().keras.layers
    x = _inp((8, 8, 3))
    return _model(x, L.MaxPooling2D(2)(x))


def maxpool_same_s1():
    L = _tf().keras.layers
    x = _inp((5, 6, 2))
    return _model(x, L.MaxPooling2D(3, strides=1, padding="same")(x))


def add_same_shape():
    L = _tf().keras.layers
    a, b = _inp((4, 5, 3), "in0"), _inp((4, 5, 3), "in1")
    return _model([a, b], L.Add()([a, b]))


def add_broadcast_relu():
    L = _tf().keras.layers
    a, b = _inp((4, 5, 3), "in0"), _inp((1, 1, 3), "in1")
    return _model([a, b], L.ReLU()(L.Add()([a, b])))


def add_const_broadcast():
    tf = _tf()
    a = _inp((4, 4, 3))
    return _model(a, a + tf.constant([0.5, -1.0, 2.0]))


def mul_broadcast():
    a, b = _inp((4, 5, 3), "in0"), _inp((4, 1, 3), "in1")
    return _model([a, b], a * b)


def mul_const_broadcast():
    tf = _tf()
    a = _inp((3, 4, 2))
    return _model(a, a * tf.constant([[1.5], [-0.5], [2.0], [0.25]]))


def softmax():
    L = _tf().keras.layers
    x = _inp((10,))
    return _model(x, L.Softmax()(x))


def softmax_4d():
    L = _tf().keras.layers
    x = _inp((2, 3, 6))
    return _model(x, L.Softmax()(x))


def pad():
    L = _tf().keras.layers
    x = _inp((4, 5, 3))
    return _model(x, L.ZeroPadding2D(((1, 2), (0, 1)))(x))


def concat_channels():
    L = _tf().keras.layers
    a, b = _inp((4, 4, 2), "in0"), _inp((4, 4, 3), "in1")
    return _model([a, b], L.Concatenate(axis=-1)([a, b]))


def concat_axis1():
    L = _tf().keras.layers
    a, b = _inp((2, 4, 3), "in0"), _inp((3, 4, 3), "in1")
    return _model([a, b], L.Concatenate(axis=1)([a, b]))


def mean_global():
    L = _tf().keras.layers
    x = _inp((6, 5, 4))
    return _model(x, L.GlobalAveragePooling2D()(x))


def mean_keepdims():
    L = _tf().keras.layers
    x = _inp((5, 5, 3))
    return _model(x, L.GlobalAveragePooling2D(keepdims=True)(x))


def logistic():
    L = _tf().keras.layers
    x = _inp((6, 7))
    return _model(x, L.Activation("sigmoid")(x))


def tanh():
    L = _tf().keras.layers
    x = _inp((6, 7))
    return _model(x, L.Activation("tanh")(x))


def relu():
    L = _tf().keras.layers
    x = _inp((5, 6))
    return _model(x, L.ReLU()(x))


def relu6():
    L = _tf().keras.layers
    x = _inp((5, 6))
    return _model(x, L.Activation("relu6")(x))


def reshape():
    """RESHAPE between two ops (a trailing RESHAPE is the emitter's business)."""
    L = _tf().keras.layers
    x = _inp((4, 6))
    return _model(x, L.Softmax()(L.Reshape((3, 8))(L.ReLU()(x))))


def conv_pool_fc_softmax():
    """A tiny classifier: every common op chained."""
    L = _tf().keras.layers
    x = _inp((10, 10, 2))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(y)
    y = L.MaxPooling2D(2)(y)
    y = L.Flatten()(y)
    y = L.Dense(5)(y)
    return _model(x, L.Softmax()(y))


def branches_concat():
    """Two conv branches concatenated: the int8 converter requantizes them."""
    L = _tf().keras.layers
    x = _inp((6, 6, 3))
    a = L.Conv2D(2, 3, padding="same")(x)
    b = L.Conv2D(3, 1, padding="same", activation="relu")(x)
    y = L.Concatenate(axis=-1)([a, b])
    return _model(x, L.GlobalAveragePooling2D()(y))


def float_io_conv():
    """int8 model with float32 I/O: QUANTIZE ... DEQUANTIZE."""
    L = _tf().keras.layers
    x = _inp((6, 6, 2))
    return _model(x, L.Conv2D(3, 3, padding="same")(x))


SPECS: dict[str, Callable] = {f.__name__: f for f in (
    conv_valid, conv_same_s2_relu6, conv_1x1_relu, dwconv_same_dm2, dwconv_valid_s2_relu, fc, fc_relu6,
    avgpool_same_s2, maxpool_valid, maxpool_same_s1, add_same_shape, add_broadcast_relu, add_const_broadcast,
    mul_broadcast, mul_const_broadcast, softmax, softmax_4d, pad, concat_channels, concat_axis1,
    mean_global, mean_keepdims, logistic, tanh, relu, relu6, reshape, conv_pool_fc_softmax,
    branches_concat, float_io_conv)}

# Specs whose int8 variant keeps float32 inputs/outputs (QUANTIZE/DEQUANTIZE at the edges).
FLOAT_IO = {"float_io_conv"}


def representative(model, seed: int = 0, n: int = 16, scale: float = 2.0):
    """A seeded representative dataset for post-training quantization."""
    shapes = [tuple(1 if d is None else int(d) for d in t.shape) for t in model.inputs]   # open batch: 1

    def gen():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield [(scale * rng.standard_normal(s)).astype(np.float32) for s in shapes]
    return gen


def convert(model, int8: bool, float_io: bool = False, seed: int = 0, uint8_io: bool = False) -> bytes:
    """uint8_io: int8 model with uint8 input and output (QUANTIZE uint8 <-> int8 at the edges)."""
    tf = _tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative(model, seed)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:
            conv.inference_input_type = conv.inference_output_type = tf.uint8 if uint8_io else tf.int8
    return conv.convert()


class ModelCache:
    """Converts each (spec, dtype) once and keeps the .tflite files in ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, spec: str, dtype: str) -> Path:
        p = self.root / f"{spec}_{dtype}.tflite"
        if not p.exists():
            _seed(0)
            model = SPECS[spec]()
            p.write_bytes(convert(model, int8=dtype in ("int8", "uint8io"), float_io=spec in FLOAT_IO,
                                  uint8_io=dtype == "uint8io"))
        return p


# ---- edited models: cases the converter does not produce on its own -------------

def _schema():
    from tensorflow.lite.python import schema_py_generated as S
    return S


def _unpack(buf: bytes):
    S = _schema()
    return S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))


def _pack(m) -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def keep_ops(buf: bytes, first: int, last: int) -> bytes:
    """The model cut down to operators first..last (inclusive)."""
    m = _unpack(buf)
    sg = m.subgraphs[0]
    sg.operators = sg.operators[first:last + 1]
    sg.inputs = [int(i) for i in sg.operators[0].inputs[:1]]
    sg.outputs = [int(i) for i in sg.operators[-1].outputs]
    return _pack(m)


def set_opcode(buf: bytes, builtin: str) -> bytes:
    """Every operator of the model becomes ``builtin`` (same tensors, no options)."""
    S = _schema()
    m = _unpack(buf)
    code = getattr(S.BuiltinOperator, builtin)
    for oc in m.operatorCodes:
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
    for op in m.subgraphs[0].operators:
        op.builtinOptionsType = 0
        op.builtinOptions = None
    return _pack(m)


def copy_quant(buf: bytes, src: str, dst: str) -> bytes:
    """Tensor ``dst`` ("input0", "input1", "output0") takes tensor ``src``'s quantization."""
    m = _unpack(buf)
    sg = m.subgraphs[0]

    def idx(name):
        return int((sg.inputs if name.startswith("input") else sg.outputs)[int(name[-1])])
    import copy
    sg.tensors[idx(dst)].quantization = copy.deepcopy(sg.tensors[idx(src)].quantization)
    return _pack(m)


def scale_quant(buf: bytes, which: str, factor: float) -> bytes:
    """Multiply the scale of graph tensor ``which`` ("input1", ...) by ``factor``."""
    m = _unpack(buf)
    sg = m.subgraphs[0]
    t = int((sg.inputs if which.startswith("input") else sg.outputs)[int(which[-1])])
    q = sg.tensors[t].quantization
    q.scale = [float(s) * factor for s in q.scale]
    return _pack(m)


# name -> (base spec, int8 edit applied to its int8 .tflite)
EDITED: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    # QUANTIZE float32 -> int8 alone (the first op of an int8 model with float I/O).
    "quantize_f32_s8": ("float_io_conv", lambda b: keep_ops(b, 0, 0)),
    # DEQUANTIZE int8 -> float32 alone.
    "dequantize_s8_f32": ("float_io_conv", lambda b: keep_ops(b, 2, 2)),
    # QUANTIZE int8 -> int8 (requantize): RELU's tensors, which have different scales.
    "requantize_s8": ("relu", lambda b: set_opcode(b, "QUANTIZE")),
    # MEAN whose output quantization equals its input's (TFLM's plain integer mean).
    "mean_same_quant": ("mean_global", lambda b: copy_quant(b, "input0", "output0")),
    # RELU with equal input/output quantization (no rescaling).
    "relu_same_quant": ("relu", lambda b: copy_quant(b, "input0", "output0")),
    # CONCATENATION with an input quantized differently: must be refused.
    "concat_mismatch": ("concat_channels", lambda b: scale_quant(b, "input1", 2.0)),
}


def edited_path(cache: "ModelCache", name: str) -> Path:
    p = cache.root / f"{name}_int8.tflite"
    if not p.exists():
        base, edit = EDITED[name]
        p.write_bytes(edit(cache.path(base, "int8").read_bytes()))
    return p
