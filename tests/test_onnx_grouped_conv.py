"""ONNX Conv with 1 < group < channels (ResNeXt, ShuffleNet, PyTorch's ``groups=``), float32: the
input's channels split into the groups, one CONV_2D per group, the results concatenated; 2-D
(NCHW) and 1-D (``[N, C, L]``), against onnxruntime."""

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


def _conv_model(path, x_shape, m: int, kernel, group: int, bias: bool, **attrs):
    rng = np.random.default_rng(7)
    c = x_shape[1]
    w = rng.standard_normal((m, c // group, *kernel)).astype(np.float32)
    inits = [nh.from_array(w, "w")] + ([nh.from_array(rng.standard_normal(m).astype(np.float32), "b")] if bias else [])
    node = h.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], group=group,
                       kernel_shape=list(kernel), **attrs)
    g = h.make_graph([node], "grouped", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path


CASES = [   # (input, output channels, kernel, group, bias, attributes)
    ((1, 4, 6, 5), 6, (3, 2), 2, True, {}),
    ((1, 6, 7, 7), 9, (3, 3), 3, False, {"strides": [2, 1], "pads": [1, 0, 1, 2]}),
    ((1, 8, 9, 8), 4, (3, 3), 4, True, {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),
    ((1, 6, 5, 5), 12, (1, 1), 2, True, {}),                    # pointwise, ShuffleNet's
    ((1, 4, 12), 6, (3,), 2, True, {"pads": [1, 1]}),            # Conv1d(groups=2)
    ((1, 9, 10), 6, (2,), 3, False, {"strides": [2]}),
]


@pytest.mark.parametrize("x_shape, m, kernel, group, bias, attrs", CASES,
                         ids=[f"{len(c[0]) - 2}d-g{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_grouped_conv_matches_onnxruntime(x_shape, m, kernel, group, bias, attrs, tmp_path):
    g = _check(_conv_model(tmp_path / "m.onnx", x_shape, m, kernel, group, bias, **attrs), tmp_path)
    kinds = [op.kind for op in g.ops]
    assert kinds.count(OpKind.CONV_2D) == group and OpKind.SPLIT in kinds and OpKind.CONCATENATION in kinds


def test_weights_that_do_not_fit_the_groups_are_refused_in_one_line(tmp_path):
    path = _conv_model(tmp_path / "m.onnx", (1, 6, 5, 5), 6, (3, 3), 3, False)
    m = onnx.load(str(path))
    m.graph.initializer[0].CopyFrom(nh.from_array(np.ones((6, 3, 3, 3), np.float32), "w"))   # [M, C/2] for group 3
    onnx.save(m, str(path))
    g = load_onnx(path)   # carried as an opaque op with the converter's reason; cgen refuses it
    assert OpKind.OPAQUE in [op.kind for op in g.ops]
    with pytest.raises(UnsupportedOpError) as e:
        generate(g, "m")
    assert "grouped convolution with group=3, weights [6, 3, 3, 3] and 6 input channels" in str(e.value)
    assert "\n" not in str(e.value)
