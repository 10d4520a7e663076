"""MIRROR_PAD (cgen's tml_mirror_pad): TFLite's REFLECT and SYMMETRIC modes against TensorFlow
Lite Micro (int8 and float32, bit-exact: the bytes are copied), and ONNX Pad in 'reflect' mode
(what Silero VAD's STFT front end starts with) against onnxruntime on NCHW and rank-3 inputs.
Also the pools whose padding counts as zeros (AveragePool count_include_pad=1, LpPool), made
an explicit PAD before a VALID average, against onnxruntime.
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
from test_cgen_ops_ew import _builder, _run  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402


def _mirror_model(shape, pads, mode: int, int8: bool) -> bytes:
    B = _builder()()
    dt = "int8" if int8 else "float32"
    q = ([0.05], [3], 0) if int8 else None
    x = B.tensor(shape, dt, q, name="x")
    p = B.tensor((len(shape), 2), "int32", data=np.array(pads, np.int32))
    out = tuple(d + lo + hi for d, (lo, hi) in zip(shape, pads))
    y = B.tensor(out, dt, q, name="y")
    B.op("MIRROR_PAD", [x, p], [y], B.options("MirrorPadOptions", mode=mode))
    return B.finish([x], [y])


@pytest.mark.parametrize("shape, pads", [((1, 5, 6, 3), [[0, 0], [2, 1], [1, 3], [0, 0]]),
                                         ((4, 7), [[3, 0], [2, 2]]), ((1, 3, 4, 2), [[0, 0], [0, 0], [3, 3], [1, 1]])])
@pytest.mark.parametrize("mode", [0, 1], ids=["reflect", "symmetric"])
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float32"])
def test_tflite_mirror_pad(shape, pads, mode, int8, tmp_path):
    """Pads up to the dimension less one (reflect's limit), on each side and dimension."""
    _run(_mirror_model(shape, pads, mode, int8), tmp_path)


def _onnx_pad(path, shape, pads, mode="reflect"):
    node = h.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    g = h.make_graph([node], "pad", [h.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [nh.from_array(np.array(pads, np.int64), "pads")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


@pytest.mark.parametrize("shape, pads", [((1, 3, 5, 6), [0, 0, 2, 1, 0, 0, 1, 3]), ((1, 1, 64), [0, 0, 31, 0, 0, 33])])
def test_onnx_reflect_pad(shape, pads, tmp_path):
    g = _check(_onnx_pad(tmp_path / "m.onnx", shape, pads), tmp_path)
    assert OpKind.MIRROR_PAD in {op.kind for op in g.ops}


def test_onnx_reflect_pad_wider_than_the_input_is_refused_in_one_line(tmp_path):
    path = _onnx_pad(tmp_path / "m.onnx", (1, 4), [0, 4, 0, 0])
    with pytest.raises(UnsupportedOpError, match=r"Pad is not supported \(reflect pads") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)


# ---- explicit zero padding: AveragePool with count_include_pad=1, LpPool ----------------------------

def _onnx_pool(path, op, attrs, shape=(1, 3, 7, 6)):
    node = h.make_node(op, ["x"], ["y"], **attrs)
    g = h.make_graph([node], "pool", [h.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


@pytest.mark.parametrize("op, attrs", [
    ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 2, 1, 0], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 3], strides=[2, 1], auto_pad="SAME_UPPER", count_include_pad=1)),
    ("LpPool", dict(kernel_shape=[3, 2], p=1, pads=[1, 1, 0, 1])),
    ("LpPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("LpPool", dict(kernel_shape=[3, 3], p=3, auto_pad="SAME_LOWER")),
    ("LpPool", dict(kernel_shape=[2, 2], p=4, pads=[1, 1, 1, 1]))], ids=lambda v: str(v) if isinstance(v, str) else "")
def test_zero_padded_pools_match_onnxruntime(op, attrs, tmp_path):
    """The padding becomes zeros that count (a PAD before a VALID average); LpPool's power and root
    as products, SQRT or exp(log / p), within float32 rounding of onnxruntime's pow."""
    _check(_onnx_pool(tmp_path / "p.onnx", op, attrs), tmp_path)


@pytest.mark.parametrize("attrs, detail", [(dict(kernel_shape=[2, 2], p=9), "p=9"),
                                           (dict(kernel_shape=[2, 2], dilations=[2, 2]), "dilated")])
def test_lppool_refusals_are_one_line(attrs, detail, tmp_path):
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_onnx(_onnx_pool(tmp_path / "p.onnx", "LpPool", attrs)), "m")
    assert "\n" not in str(e.value) and detail in str(e.value) and "LpPool" in str(e.value), str(e.value)


def test_lppool_1d_is_refused_not_averaged(tmp_path):
    """A 1-D LpPool must not take the 1-D average path (it would compile to wrong code)."""
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_onnx(_onnx_pool(tmp_path / "p.onnx", "LpPool", dict(kernel_shape=[2]), shape=(1, 3, 8))), "m")
    assert "1-D LpPool" in str(e.value)
