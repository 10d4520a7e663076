"""ONNX RMSNormalization, LayerNormalization with its Mean and InvStdDev outputs, LpNormalization
and the variadic Sum, Mean, Max and Min, decomposed into float32 IR ops, against onnxruntime
within 1e-5 relative (test_onnx_elementwise._check); rank-4 inputs are NCHW, held NHWC in the IR.
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
from platformio_tinyml.verify.host import build_host  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402

RNG = np.random.default_rng(12)


def _save(path, node, inputs, outputs=("y",), inits=(), opset=17):
    """One ``node`` on float32 graph inputs ``inputs`` ({name: shape}) and constants ``inits``."""
    ins = [h.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in inputs.items()]
    outs = [h.make_tensor_value_info(n, TP.FLOAT, None) for n in outputs]
    inits = [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits]
    m = h.make_model(h.make_graph([node], "norm2", ins, outs, inits), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _kinds(g) -> set:
    return {op.kind for op in g.ops}


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_variadic_nchw(op, n, tmp_path):
    names = [f"x{k}" for k in range(n)]
    node = h.make_node(op, names, ["y"])
    _check(_save(tmp_path / "m.onnx", node, {k: (1, 3, 4, 5) for k in names}, opset=13), tmp_path)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic_broadcasts_constants_and_activations(op, tmp_path):
    """Constants first and last, per channel and per row, against two NCHW activations."""
    inits = [("c0", RNG.standard_normal((3, 1, 1))), ("c1", RNG.standard_normal((5,)))]
    node = h.make_node(op, ["c0", "x0", "x1", "c1"], ["y"])
    g = _check(_save(tmp_path / "m.onnx", node, {"x0": (1, 3, 4, 5), "x1": (1, 3, 4, 5)}, inits=inits, opset=13),
               tmp_path)
    assert (OpKind.DIV in _kinds(g)) == (op == "Mean")


def test_variadic_lower_rank_operands_broadcast(tmp_path):
    node = h.make_node("Sum", ["x0", "x1", "x2"], ["y"])
    _check(_save(tmp_path / "m.onnx", node, {"x0": (4,), "x1": (3, 1), "x2": (2, 3, 4)}, opset=13), tmp_path)


@pytest.mark.parametrize("shape, axis", [((2, 6, 8), -1), ((2, 6, 8), 1), ((1, 3, 4, 5), 1), ((1, 3, 4, 5), -1),
                                         ((2, 3, 4, 5), 0)])
@pytest.mark.parametrize("scale_input", [False, True])
def test_rms_normalization(shape, axis, scale_input, tmp_path):
    norm = shape[axis % len(shape):]
    inputs, inits = {"x": shape}, [("g", RNG.standard_normal(norm))]
    if scale_input:
        inputs, inits = {"x": shape, "g": norm}, []
    node = h.make_node("RMSNormalization", ["x", "g"], ["y"], axis=axis, epsilon=1e-3)
    g = _check(_save(tmp_path / "m.onnx", node, inputs, inits=inits, opset=23), tmp_path)
    assert {OpKind.SQUARE, OpKind.MEAN, OpKind.RSQRT} <= _kinds(g) and OpKind.SUB not in _kinds(g)


@pytest.mark.parametrize("shape, axis", [((2, 6, 8), -1), ((2, 6, 8), 1), ((1, 3, 4, 5), 1), ((1, 3, 4, 5), -2)])
@pytest.mark.parametrize("inputs_scale", [False, True])
def test_layer_normalization_mean_and_inv_std_dev(shape, axis, inputs_scale, tmp_path):
    norm = shape[axis % len(shape):]
    scale, bias = RNG.standard_normal(norm), RNG.standard_normal(norm)
    inputs, inits = {"x": shape}, [("g", scale), ("b", bias)]
    if inputs_scale:
        inputs, inits = {"x": shape, "g": norm, "b": norm}, []
    node = h.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv"], axis=axis, epsilon=1e-3)
    path = _save(tmp_path / "m.onnx", node, inputs, ("y", "mean", "inv"), inits)
    g = _check(path, tmp_path)
    stat = tuple(1 if k >= axis % len(shape) else d for k, d in enumerate(shape))
    assert [tuple(g.tensors[k].shape) for k in g.outputs[1:]] == [stat if len(shape) < 4 or inputs_scale else
                                                                  (stat[0], stat[2], stat[3], stat[1])] * 2


def test_layer_normalization_inv_std_dev_only(tmp_path):
    node = h.make_node("LayerNormalization", ["x", "g"], ["y", "", "inv"], axis=-1)
    _check(_save(tmp_path / "m.onnx", node, {"x": (1, 4, 8)}, ("y", "inv"), [("g", np.ones(8))]), tmp_path)


@pytest.mark.parametrize("shape, axis", [((2, 3, 4), -1), ((2, 3, 4), 0), ((1, 3, 4, 5), 1), ((1, 3, 4, 5), 3)])
@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization(shape, axis, p, tmp_path):
    node = h.make_node("LpNormalization", ["x"], ["y"], axis=axis, p=p)
    g = _check(_save(tmp_path / "m.onnx", node, {"x": shape}, opset=22), tmp_path)
    assert {OpKind.SUM, OpKind.DIV} <= _kinds(g)


@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization_of_zeros_is_zero(p, tmp_path):
    """ONNX adds no epsilon: an all-zero (or underflowing) slice gives 0, as onnxruntime, not NaN."""
    node = h.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=p)
    g = load_onnx(_save(tmp_path / "m.onnx", node, {"x": (3, 4)}, opset=22))
    x = np.array([[0, 0, 0, 0], [1e-30, -2e-30, 0, 0], [3, -4, 0, 1e-38]], np.float32)
    y = build_host(generate(g, "m"), g, tmp_path / "b").run([x])[0]
    norm = np.sum(np.abs(x.astype(np.float64)) ** p, axis=-1, keepdims=True) ** (1 / p)
    want = np.divide(x, norm, out=np.zeros_like(x, np.float64), where=norm > 0)
    if p == 2:
        want[1] = x[1]   # the squares underflow in float32: divided by 1, not 0 as a float64 norm gives
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-30)


def test_sum_of_activations_in_different_layouts(tmp_path):
    """An NCHW activation (held NHWC) and a rank-2 one: summed in ONNX's order."""
    node = h.make_node("Sum", ["x0", "x1", "x0"], ["y"])
    _check(_save(tmp_path / "m.onnx", node, {"x0": (1, 3, 4, 5), "x1": (4, 5)}, opset=22), tmp_path)


@pytest.mark.parametrize("node, inputs, match", [
    (h.make_node("LpNormalization", ["x"], ["y"], p=3), {"x": (2, 4)}, r"LpNormalization.*p=3"),
])
def test_refused_in_one_line(node, inputs, match, tmp_path):
    with pytest.raises(UnsupportedOpError, match=match) as e:
        generate(load_onnx(_save(tmp_path / "m.onnx", node, inputs, opset=22)), "m")
    assert "\n" not in str(e.value)
