"""ONNX ReduceMean over any axes, layer normalization (the LayerNormalization op of
opset 17, and the ReduceMean/Sub/Pow/Sqrt/Div form older PyTorch exports write) and
InstanceNormalization against onnxruntime, float32 within 1e-5 relative
(test_onnx_elementwise._check).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.ir import OpKind  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402

RNG = np.random.default_rng(11)


def _save(path, nodes, shape, inits=(), opset=13):
    inp = h.make_tensor_value_info("x", TP.FLOAT, list(shape))
    out = h.make_tensor_value_info("y", TP.FLOAT, None)
    inits = [nh.from_array(np.asarray(v), n) for n, v in inits]
    m = h.make_model(h.make_graph(nodes, "norm", [inp], [out], inits), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


@pytest.mark.parametrize("shape, axes, keep", [
    ((1, 4, 8), [-1], 1), ((1, 4, 8), [1], 0), ((2, 4, 8), [1, 2], 1), ((1, 3, 4, 5), [1], 1),
    ((1, 3, 4, 5), [1, 2, 3], 1), ((1, 3, 4, 5), [-1], 1), ((1, 3, 4, 5), [2, 3], 0),
])
def test_reduce_mean(shape, axes, keep, tmp_path):
    node = h.make_node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=keep)
    _check(_save(tmp_path / "m.onnx", [node], shape), tmp_path)


def _pytorch_layer_norm(d: int, opset: int):
    """nn.LayerNorm(d) as torch.onnx exports it below opset 17."""
    axes = dict(axes=[-1]) if opset < 18 else {}
    extra = [] if opset < 18 else ["axes"]
    nodes = [h.make_node("ReduceMean", ["x"] + extra, ["m"], **axes), h.make_node("Sub", ["x", "m"], ["d"]),
             h.make_node("Pow", ["d", "two"], ["d2"]), h.make_node("ReduceMean", ["d2"] + extra, ["v"], **axes),
             h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["s"]),
             h.make_node("Div", ["d", "s"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    inits = [("two", np.float32(2.0)), ("eps", np.float32(1e-5)), ("g", RNG.standard_normal(d).astype(np.float32)),
             ("b", RNG.standard_normal(d).astype(np.float32))]
    if opset >= 18:
        inits.append(("axes", np.array([-1], np.int64)))
    return nodes, inits


@pytest.mark.parametrize("opset", [13, 18])
def test_pytorch_decomposed_layer_norm(opset, tmp_path):
    nodes, inits = _pytorch_layer_norm(8, opset)
    g = _check(_save(tmp_path / "m.onnx", nodes, (1, 6, 8), inits, opset), tmp_path)
    assert {OpKind.MEAN, OpKind.SQUARE, OpKind.SQRT, OpKind.DIV} <= {op.kind for op in g.ops}


@pytest.mark.parametrize("shape, axis, bias", [((1, 6, 8), -1, True), ((2, 6, 8), 1, True), ((1, 6, 8), -1, False),
                                               ((1, 3, 4, 5), 1, True), ((1, 3, 4, 5), -1, True)])
def test_layer_normalization_op(shape, axis, bias, tmp_path):
    norm = shape[axis % len(shape):]
    inits = [("g", RNG.standard_normal(norm).astype(np.float32))]
    if bias:
        inits.append(("b", RNG.standard_normal(norm).astype(np.float32)))
    node = h.make_node("LayerNormalization", ["x", "g"] + (["b"] if bias else []), ["y"], axis=axis,
                       epsilon=1e-3)
    g = _check(_save(tmp_path / "m.onnx", [node], shape, inits, opset=17), tmp_path)
    assert {OpKind.MEAN, OpKind.SQUARED_DIFFERENCE, OpKind.RSQRT} <= {op.kind for op in g.ops}


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 4, 3, 3), (1, 4, 10)])
def test_instance_normalization(shape, tmp_path):
    c = shape[1]
    inits = [("g", RNG.standard_normal(c).astype(np.float32)), ("b", RNG.standard_normal(c).astype(np.float32))]
    node = h.make_node("InstanceNormalization", ["x", "g", "b"], ["y"], epsilon=1e-4)
    g = _check(_save(tmp_path / "m.onnx", [node], shape, inits), tmp_path)
    assert {OpKind.MEAN, OpKind.SQUARED_DIFFERENCE, OpKind.RSQRT} <= {op.kind for op in g.ops}
