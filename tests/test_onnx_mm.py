"""ONNX MatMul beyond activation x 2-D weights (cgen BATCH_MATMUL) and ConvTranspose (cgen
TRANSPOSE_CONV), float32, against onnxruntime.

MatMul: two activations (batched, broadcast, rank 2), a constant left operand, stacked
rank-3 constant weights, and a self-attention score block (x @ Wq, x @ Wk, q @ k^T,
Softmax). ConvTranspose: PyTorch's usual upsamplers (k3 s2 p1 output_padding 1, k4 s2
p1), stride 1 without bias, asymmetric pads with batch 2, VALID. All within 1e-5
relative of onnxruntime (test_onnx_elementwise._check); MatMul on rank-4 activations:
test_onnx_layouts. A grouped or dilated ConvTranspose and SAME auto-padding are refused
in one line. A static QDQ model mixing them with an int8 Conv
runs them as float islands, within one LSB of onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402


def _save(path, nodes, inputs, inits=()):
    ins = [h.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in inputs]
    out = h.make_tensor_value_info("y", TP.FLOAT, None)
    inits = [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits]
    m = h.make_model(h.make_graph(nodes, "mm", ins, [out], inits), opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


RNG = np.random.default_rng(5)
CASES = {
    "batched": ([("a", (2, 3, 4)), ("b", (2, 4, 5))], (), ["a", "b"]),
    "broadcast": ([("a", (1, 3, 4)), ("b", (2, 4, 5))], (), ["a", "b"]),
    "broadcast_rank2": ([("a", (3, 4)), ("b", (2, 4, 5))], (), ["a", "b"]),
    "rank2": ([("a", (3, 4)), ("b", (4, 6))], (), ["a", "b"]),
    "const_left": ([("b", (2, 4, 5))], [("k", RNG.standard_normal((3, 4)))], ["k", "b"]),
    "stacked_weights": ([("a", (2, 3, 4))], [("k", RNG.standard_normal((2, 4, 5)))], ["a", "k"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matmul(name, tmp_path):
    inputs, inits, operands = CASES[name]
    path = _save(tmp_path / "m.onnx", [h.make_node("MatMul", operands, ["y"], name="mm")], inputs, inits)
    g = _check(path, tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.BATCH_MATMUL]


def test_attention_scores(tmp_path):
    nodes = [h.make_node("MatMul", ["x", "wq"], ["q"]), h.make_node("MatMul", ["x", "wk"], ["k"]),
             h.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), h.make_node("MatMul", ["q", "kt"], ["s"]),
             h.make_node("Softmax", ["s"], ["y"], axis=-1)]
    inits = [("wq", 0.3 * RNG.standard_normal((8, 4))), ("wk", 0.3 * RNG.standard_normal((8, 4)))]
    g = _check(_save(tmp_path / "m.onnx", nodes, [("x", (1, 6, 8))], inits), tmp_path)
    assert OpKind.BATCH_MATMUL in {op.kind for op in g.ops}


# ---- ConvTranspose -> TRANSPOSE_CONV ------------------------------------------------------------

CONV_T = {   # name: (input NCHW, weights [C_in, C_out, kH, kW], attributes, bias)
    "s2_k3_p1_outpad1": ((1, 3, 4, 5), (3, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
                         True),
    "s2_k4_p1": ((1, 2, 3, 3), (2, 3, 4, 4), dict(strides=[2, 2], pads=[1, 1, 1, 1]), True),
    "s1_k3_nobias": ((1, 4, 5, 5), (4, 2, 3, 3), {}, False),
    "s21_k2x3_asym_pads": ((2, 3, 3, 4), (3, 2, 2, 3), dict(strides=[2, 1], pads=[0, 1, 1, 0]), True),
    "valid_s2": ((1, 2, 3, 4), (2, 3, 3, 3), dict(strides=[2, 2], auto_pad="VALID"), True),
}


@pytest.mark.parametrize("name", sorted(CONV_T))
def test_conv_transpose(name, tmp_path):
    xs, ws, attrs, bias = CONV_T[name]
    inits = [("w", 0.3 * RNG.standard_normal(ws))] + ([("b", RNG.standard_normal(ws[1]))] if bias else [])
    node = h.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["y"], name="ct", **attrs)
    g = _check(_save(tmp_path / "m.onnx", [node], [("x", xs)], inits), tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.TRANSPOSE_CONV]


@pytest.mark.parametrize("attrs, match", [
    (dict(group=3), "group 3"), (dict(dilations=[2, 2]), "dilations"), (dict(auto_pad="SAME_UPPER"), "SAME_UPPER"),
])
def test_conv_transpose_refused_in_one_line(attrs, match, tmp_path):
    ws = (3, 1, 3, 3) if "group" in attrs else (3, 2, 3, 3)
    node = h.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct", strides=[2, 2], **attrs)
    path = _save(tmp_path / "m.onnx", [node], [("x", (1, 3, 4, 4))], [("w", RNG.standard_normal(ws))])
    with pytest.raises(UnsupportedOpError, match=f"ConvTranspose.*{match}") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)


def test_qdq_model_runs_new_ops_as_float_islands(tmp_path):
    """A static QDQ model (onnxruntime.quantization) with Conv -> Sub(conv, x) -> Abs -> Max(., x)
    -> ConvTranspose -> Elu: the int8 Conv stays int8, the others run in float32 between
    DEQUANTIZE and QUANTIZE as onnxruntime computes them; outputs within one LSB of the last
    quantized tensor (rounding ties may differ)."""
    from platformio_tinyml.ir import DType
    from platformio_tinyml.verify.host import build_host
    from platformio_tinyml.verify.reference import OnnxReference
    from test_onnx_import import _quantize
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Sub", ["c", "x"], ["s"]),
             h.make_node("Abs", ["s"], ["a"]), h.make_node("Max", ["a", "x"], ["m"]),
             h.make_node("ConvTranspose", ["m", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1],
                         output_padding=[1, 1]),
             h.make_node("Elu", ["t"], ["y"])]
    inits = [("w", 0.3 * RNG.standard_normal((3, 3, 3, 3))), ("b", RNG.standard_normal(3)),
             ("wt", 0.3 * RNG.standard_normal((3, 2, 3, 3))), ("bt", RNG.standard_normal(2))]
    path = _quantize(_save(tmp_path / "f.onnx", nodes, [("x", (1, 3, 5, 5))], inits), tmp_path / "q.onnx", "qdq",
                     True)
    g = load_onnx(path)
    kinds = [op.kind for op in g.ops]
    assert OpKind.TRANSPOSE_CONV in kinds and OpKind.SUB in kinds
    assert any(op.kind is OpKind.CONV_2D and g.tensors[op.outputs[0]].dtype is DType.INT8 for op in g.ops)
    lsb = g.tensors[[op for op in g.ops if op.kind is OpKind.QUANTIZE][-1].outputs[0]].quant.s
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ref = OnnxReference(path, g)
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
        ours = host.run([x])[0]
        assert np.abs(ours - ref.run([x])[0].reshape(ours.shape)).max() <= lsb * 1.0001
