"""Reshapes of NCHW activations (which the reader holds as NHWC) to anything but [N, C*H*W]:
ShuffleNet's channel shuffle (Reshape to 5-D, Transpose, Reshape back), Flatten at axis 0, 2
and 3, a view as [N, C, H*W] followed by a softmax over H*W, and a flatten that is the graph
output. They run in ONNX's element order between transposes; compiled by cgen, within 1e-5 of
onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from test_onnx_fold import _check  # noqa: E402


def _conv_then(path, nodes, inits=(), out_shape=None):
    """x [1, 3, 6, 5] -> Conv 3x3 pad 1 to 8 channels -> ``nodes`` (reading 'c', writing 'y')."""
    rng = np.random.default_rng(2)
    w = nh.from_array((0.4 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32), "w")
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), *nodes], "reshape",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 5])],
                     [h.make_tensor_value_info("y", TP.FLOAT, out_shape)], [w, *inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _shape(name, dims):
    return nh.from_array(np.array(dims, np.int64), name)


CASES = {
    "channel_shuffle": ([h.make_node("Reshape", ["c", "s5"], ["r"]), h.make_node("Transpose", ["r"], ["t"],
                                                                                  perm=[0, 2, 1, 3, 4]),
                         h.make_node("Reshape", ["t", "s4"], ["q"]), h.make_node("Relu", ["q"], ["y"])],
                        [_shape("s5", [1, 2, 4, 6, 5]), _shape("s4", [1, 8, 6, 5])]),
    "flatten_axis2": ([h.make_node("Flatten", ["c"], ["y"], axis=2)], []),
    "flatten_axis0": ([h.make_node("Flatten", ["c"], ["y"], axis=0)], []),
    "flatten_axis3": ([h.make_node("Flatten", ["c"], ["y"], axis=3)], []),
    "view_softmax": ([h.make_node("Reshape", ["c", "s3"], ["r"]), h.make_node("Softmax", ["r"], ["y"], axis=-1)],
                     [_shape("s3", [1, 8, 30])]),
    "flatten_is_output": ([h.make_node("Flatten", ["c"], ["y"], axis=1)], []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reshape_of_an_nchw_activation(case, tmp_path):
    nodes, inits = CASES[case]
    _check(_conv_then(tmp_path / "m.onnx", nodes, inits), tmp_path)
