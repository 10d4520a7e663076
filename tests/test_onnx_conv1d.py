"""ONNX Conv over [N, C, L] (PyTorch's Conv1d: audio and time-series models), compiled as a
convolution of height 1 between two transposes, against onnxruntime (float32, 1e-5 relative).
The PyTorch exports the onnx wheel ships with recorded outputs are in test_onnx_conformance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

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


def test_grouped_conv1d_is_refused_in_one_line(tmp_path):
    path = _model(tmp_path / "m.onnx", (1, 4, 10), (4, 2, 3), group=2)
    with pytest.raises(UnsupportedOpError) as e:
        load_onnx(path)
    assert "group=2" in str(e.value) and "\n" not in str(e.value)
