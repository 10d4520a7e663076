"""A float constant holding -inf is taken where it is a mask value (read by Where, comparisons,
Max/Min or Add, through casts and reshapes), against onnxruntime; anywhere else it stays a
one-line refusal (rule finite-weights)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.errors import ModelError  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402


def _model(path, use: str):
    mask = np.array([[True, False, True, False, True]])
    inits = [nh.from_array(mask, "mask")]
    if use != "add":
        inits.append(nh.from_array(np.array([-np.inf], np.float32), "neg_inf"))
    if use == "where":
        nodes = [h.make_node("Reshape", ["neg_inf", "one"], ["ninf"]),
                 h.make_node("Where", ["mask", "x", "ninf"], ["masked"]),
                 h.make_node("Softmax", ["masked"], ["y"], axis=-1)]
        inits.append(nh.from_array(np.array([1, 1], np.int64), "one"))
    elif use == "add":
        bias = np.where(mask, 0.0, -np.inf).astype(np.float32)
        inits.append(nh.from_array(bias, "bias"))
        nodes = [h.make_node("Add", ["x", "bias"], ["masked"]), h.make_node("Softmax", ["masked"], ["y"], axis=-1)]
    else:   # a weight
        nodes = [h.make_node("Mul", ["x", "neg_inf"], ["y"])]
    g = h.make_graph(nodes, "mask", [h.make_tensor_value_info("x", TP.FLOAT, [1, 5])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


@pytest.mark.parametrize("use", ["where", "add"])
def test_a_mask_of_minus_infinity_matches_onnxruntime(use, tmp_path):
    _check(_model(tmp_path / "m.onnx", use), tmp_path)


def test_minus_infinity_as_a_weight_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelError, match="finite-weights") as e:
        load_onnx(_model(tmp_path / "m.onnx", "mul"))
    assert "\n" not in str(e.value)
