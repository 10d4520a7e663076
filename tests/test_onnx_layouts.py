"""ONNX ops whose operands the reader holds in different layouts, against onnxruntime (float32
within 1e-5 relative, test_onnx_elementwise._check).

MatMul on rank-4 activations (stored NHWC in the IR) and with rank-1 operands runs as
BATCH_MATMUL in ONNX's order, its result in ONNX's order at every rank, also where it feeds
Add, Softmax, ReduceMean and Concat or is a graph output; binary ops of an NHWC activation
with a lower-rank one compute in ONNX's order; Clip with run-time bounds is MAXIMUM then
MINIMUM (min > max gives max), Clip without bounds an identity; Gemm with an activation as B,
transA=1 or a run-time C is BATCH_MATMUL then alpha and beta * C; Concat takes constant inputs.
A flattened NCHW activation (its element order differs from ONNX's) mixed in is refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402

RNG = np.random.default_rng(17)


def _save(path, nodes, inputs, inits=(), opset=13):
    ins = [h.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in inputs]
    out = h.make_tensor_value_info("y", TP.FLOAT, None)
    inits = [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits]
    m = h.make_model(h.make_graph(nodes, "lay", ins, [out], inits), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _one(op, operands, inputs, inits=(), **attrs):
    return [h.make_node(op, operands, ["y"], name=op.lower(), **attrs)], inputs, inits


CASES = {
    "matmul_4d": _one("MatMul", ["a", "b"], [("a", (1, 2, 3, 4)), ("b", (1, 2, 4, 5))]),
    "matmul_4d_bcast": _one("MatMul", ["a", "b"], [("a", (2, 1, 3, 4)), ("b", (3, 4, 2))]),
    "matmul_4d_const": _one("MatMul", ["a", "w"], [("a", (2, 3, 3, 4))], [("w", RNG.standard_normal((4, 5)))]),
    "matmul_1d_1d": _one("MatMul", ["a", "b"], [("a", (4,)), ("b", (4,))]),
    "matmul_1d_3d": _one("MatMul", ["a", "b"], [("a", (4,)), ("b", (2, 4, 5))]),
    "matmul_4d_1d": _one("MatMul", ["a", "b"], [("a", (1, 2, 3, 4)), ("b", (4,))]),
    "matmul_1d_const": _one("MatMul", ["a", "w"], [("a", (4,))], [("w", RNG.standard_normal((4, 3)))]),
    # a rank-4 MatMul result (ONNX order) with an NHWC activation, then Softmax, ReduceMean over H, W
    "matmul_4d_downstream": ([h.make_node("MatMul", ["a", "b"], ["m"]), h.make_node("Add", ["m", "c"], ["s"]),
                              h.make_node("Softmax", ["s"], ["p"], axis=-1),
                              h.make_node("ReduceMean", ["p"], ["y"], axes=[2, 3], keepdims=1)],
                             [("a", (1, 2, 3, 4)), ("b", (1, 2, 4, 5)), ("c", (1, 2, 3, 5))], ()),
    "concat_matmul_nhwc": ([h.make_node("MatMul", ["a", "b"], ["m"]),
                            h.make_node("Concat", ["m", "c"], ["y"], axis=1)],
                           [("a", (1, 2, 3, 4)), ("b", (1, 2, 4, 5)), ("c", (1, 3, 3, 5))], ()),
    "mul_nchw_rank2": _one("Mul", ["x", "s"], [("x", (1, 2, 3, 4)), ("s", (3, 4))]),
    "add_rank1_nchw": _one("Add", ["v", "x"], [("v", (4,)), ("x", (1, 2, 3, 4))]),
    "sub_rank3_nchw": _one("Sub", ["s", "x"], [("s", (2, 1, 4)), ("x", (1, 2, 3, 4))]),
    "max_nchw_rank2": _one("Max", ["x", "s"], [("x", (1, 2, 3, 4)), ("s", (3, 1))]),
    "clip_runtime": _one("Clip", ["x", "lo", "hi"], [("x", (2, 5)), ("lo", ()), ("hi", ())]),
    "clip_runtime_min_nchw": _one("Clip", ["x", "lo"], [("x", (1, 2, 3, 4)), ("lo", ())]),
    "clip_runtime_max_const_min": _one("Clip", ["x", "lo", "hi"], [("x", (1, 2, 3, 4)), ("hi", ())],
                                       [("lo", np.float32(-0.5))]),
    "clip_runtime_max_inf_min": _one("Clip", ["x", "lo", "hi"], [("x", (3, 4)), ("hi", ())],
                                     [("lo", np.float32(-np.inf))]),
    "clip_no_bounds": _one("Clip", ["x"], [("x", (1, 2, 3, 4))]),
    "gemm_act_b": _one("Gemm", ["a", "b", "c"], [("a", (3, 4)), ("b", (5, 4)), ("c", (5,))], transB=1,
                       alpha=0.5, beta=2.0),
    "gemm_trans_a": _one("Gemm", ["a", "w", "c"], [("a", (4, 3))],
                         [("w", RNG.standard_normal((4, 5))), ("c", RNG.standard_normal((1, 5)))], transA=1,
                         beta=0.25),
    "gemm_runtime_c": _one("Gemm", ["a", "w", "c"], [("a", (3, 4)), ("c", (3, 1))],
                           [("w", RNG.standard_normal((4, 5)))], alpha=2.0),
    "concat_const_nchw": _one("Concat", ["x", "k"], [("x", (1, 2, 3, 4))],
                              [("k", RNG.standard_normal((1, 3, 3, 4)))], axis=1),
    "concat_const_rank2": _one("Concat", ["k", "x"], [("x", (2, 3))], [("k", RNG.standard_normal((2, 2)))],
                               axis=-1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layouts(name, tmp_path):
    nodes, inputs, inits = CASES[name]
    g = _check(_save(tmp_path / "m.onnx", nodes, inputs, inits), tmp_path)
    kinds = {op.kind for op in g.ops}
    if name.startswith(("matmul", "gemm")):
        assert OpKind.BATCH_MATMUL in kinds
    if name.startswith("clip_runtime"):
        assert kinds & {OpKind.MAXIMUM, OpKind.MINIMUM}
    if name in ("matmul_4d", "concat_matmul_nhwc"):   # a rank-4 graph output in ONNX's order
        assert g.meta["output_layouts"] == ["same"]


@pytest.mark.parametrize("op, match", [("MatMul", "flattened NCHW tensor"), ("Add", "flattened NCHW activation")])
def test_flattened_nchw_operand_is_refused_in_one_line(op, match, tmp_path):
    nodes = [h.make_node("Flatten", ["x"], ["f"]), h.make_node(op, ["f", "b"], ["y"], name="n")]
    path = _save(tmp_path / "m.onnx", nodes, [("x", (1, 2, 3, 4)), ("b", (24, 5) if op == "MatMul" else (1, 24))])
    with pytest.raises(UnsupportedOpError, match=f"{op} 'n'.*{match}") as e:
        load_onnx(path)
    assert "\n" not in str(e.value)
