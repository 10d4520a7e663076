"""ONNX Conv over [N, C, L] (PyTorch's Conv1d: audio and time-series models), compiled as a
convolution of height 1 between two transposes, against onnxruntime (float32, 1e-5 relative).
The PyTorch exports the onnx wheel ships with recorded outputs are in test_onnx_conformance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.model.onnx import load_onnx
from test_onnx_elementwise import _check

pytest.importorskip("onnxruntime")
RNG = np.random.default_rng(5)


def _model(path, x_shape, w_shape, group=1, bias=True, then_relu=False, **attrs):
    inits = [nh.from_array((0.4 * RNG.standard_normal(w_shape)).astype(np.float32), "w")]
    ins = ["x", "w"]
    if bias:
        inits.append(nh.from_array(RNG.standard_normal(w_shape[0]).astype(np.float32), "b"))
        ins.append("b")
    nodes = [h.make_node("Conv", ins, ["c" if then_relu else "y"], group=group, **attrs)]
    if then_relu:
        nodes.append(h.make_node("Relu", ["c"], ["y"]))
    g = h.make_graph(nodes, "conv1d", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


CASES = {
    "plain": dict(x_shape=(1, 3, 20), w_shape=(8, 3, 5)),
    "stride2_pads": dict(x_shape=(1, 4, 33), w_shape=(6, 4, 3), strides=[2], pads=[1, 2]),
    "dilated": dict(x_shape=(1, 2, 40), w_shape=(4, 2, 3), dilations=[3]),
    "same_upper_batch2": dict(x_shape=(2, 5, 16), w_shape=(7, 5, 4), auto_pad="SAME_UPPER", then_relu=True),
    "depthwise": dict(x_shape=(1, 6, 25), w_shape=(6, 1, 7), group=6, pads=[3, 3]),
    "depthwise_multiplier2_no_bias": dict(x_shape=(1, 3, 12), w_shape=(6, 1, 3), group=3, bias=False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv1d_matches_onnxruntime(name, tmp_path):
    g = _check(_model(tmp_path / "m.onnx", **CASES[name]), tmp_path)
    assert any(op.kind.value in ("CONV_2D", "DEPTHWISE_CONV_2D") for op in g.ops)


def test_grouped_conv1d_whose_filters_do_not_split_into_the_groups_is_refused_in_one_line(tmp_path):
    """(Grouped 1-D convolutions compile: tests/test_onnx_grouped_conv.py.)"""
    path = _model(tmp_path / "m.onnx", (1, 4, 10), (5, 2, 3), group=2)
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_onnx(path), "m")
    assert "grouped convolution with group=2 and 5 output channels" in str(e.value) and "\n" not in str(e.value)


def _pool_model(path, x_shape, nodes, inits=()):
    g = h.make_graph(nodes, "pool1d", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)],
                     [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


POOLS = {
    "max_k3_s2_pads": h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 1]),
    "max_ceil": h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2], ceil_mode=1),
    "avg_k4_s1": h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[4]),
    "avg_pads_excluded": h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 1]),
    "global_avg": h.make_node("GlobalAveragePool", ["x"], ["y"]),
    "global_max": h.make_node("GlobalMaxPool", ["x"], ["y"]),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pool1d_matches_onnxruntime(name, tmp_path):
    _check(_pool_model(tmp_path / "m.onnx", (2, 5, 17), [POOLS[name]]), tmp_path)


def test_audio_style_conv1d_network(tmp_path):
    """Conv1d -> Relu -> MaxPool1d -> depthwise Conv1d -> Relu -> GlobalAveragePool -> Flatten -> Gemm:
    the shape of small audio and vibration classifiers exported from PyTorch."""
    w = lambda *s: (0.3 * RNG.standard_normal(s)).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2], pads=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2], strides=[2]),
             h.make_node("Conv", ["p1", "w2"], ["c2"], group=8, pads=[1, 1]),
             h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("GlobalAveragePool", ["r2"], ["g"]),
             h.make_node("Flatten", ["g"], ["f"]),
             h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    path = _pool_model(tmp_path / "m.onnx", (1, 1, 64), nodes,
                       [("w1", w(8, 1, 5)), ("b1", w(8)), ("w2", w(8, 1, 3)), ("w3", w(4, 8)), ("b3", w(4))])
    g = _check(path, tmp_path)
    assert [op.kind.value for op in g.ops].count("TRANSPOSE") >= 2
