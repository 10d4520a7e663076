"""Comparisons, boolean logic and select (cgen/lower_logic.py, bool tensors as one byte 0/1):
TFLite LESS .. NOT_EQUAL, LOGICAL_AND / OR / NOT and SELECT_V2 against TensorFlow Lite Micro
(float32, and int8 of one quantization: bit-exact), ONNX Less .. Equal, Not, And, Or, Where and
Cast between bool and float32 against onnxruntime, with broadcasting and NCHW inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import DType, OpKind  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import OnnxReference  # noqa: E402
from test_cgen_ops_ew import _builder, _run  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402

COMPARE = ["LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL"]


def _select_model(op: str, int8: bool, logic: str | None = None) -> bytes:
    """y = SELECT_V2(op(a', b) [logic], a, k): a [1, 4, 5, 3]; a' = a for int8 (the first sample
    has every code) or RELU(a) for float32, so that both tie with the constant b [3] (0, and the
    codes 3 and -7): LESS and LESS_EQUAL differ there; k [4, 1, 3] a constant."""
    B = _builder()()
    dt = "int8" if int8 else "float32"
    q = ([0.05], [3], 0) if int8 else None
    a = B.tensor((1, 4, 5, 3), dt, q, name="a")
    b = B.tensor((3,), dt, q, data=np.array([0, 3, -7], np.int8) if int8 else np.zeros(3, np.float32))
    k = B.tensor((4, 1, 3), dt, q, data=np.arange(12, dtype=np.int8).reshape(4, 1, 3) * 9 if int8
                 else np.arange(12, dtype=np.float32).reshape(4, 1, 3) + 50)
    x = a
    if not int8:
        x = B.tensor((1, 4, 5, 3), dt, q, name="relu")
        B.op("RELU", [a], [x])
    c = B.tensor((1, 4, 5, 3), "bool", name="c")
    B.op(op, [x, b], [c])
    if logic == "LOGICAL_NOT":
        n = B.tensor((1, 4, 5, 3), "bool", name="n")
        B.op("LOGICAL_NOT", [c], [n])
        c = n
    elif logic:
        c2 = B.tensor((1, 4, 5, 3), "bool", name="c2")
        B.op("GREATER", [k, x], [c2])
        n = B.tensor((1, 4, 5, 3), "bool", name="n")
        B.op(logic, [c, c2], [n])
        c = n
    y = B.tensor((1, 4, 5, 3), dt, q, name="y")
    B.op("SELECT_V2", [c, a, k], [y])
    return B.finish([a], [y])


@pytest.mark.parametrize("op", COMPARE)
@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_tflite_compare_and_select(op, int8, tmp_path):
    _run(_select_model(op, int8), tmp_path)


@pytest.mark.parametrize("logic", ["LOGICAL_NOT", "LOGICAL_AND", "LOGICAL_OR"])
def test_tflite_logical(logic, tmp_path):
    _run(_select_model("LESS_EQUAL", True, logic), tmp_path)


def test_int8_compare_of_two_quantizations_is_refused(tmp_path):
    B = _builder()()
    a = B.tensor((1, 8), "int8", ([0.05], [3], 0), name="a")
    b = B.tensor((1, 8), "int8", ([0.04], [3], 0), name="b")
    c = B.tensor((1, 8), "bool", name="c")
    y = B.tensor((1, 8), "int8", ([0.05], [3], 0), name="y")
    B.op("LESS", [a, b], [c])
    B.op("SELECT_V2", [c, a, a], [y])
    path = tmp_path / "m.tflite"
    path.write_bytes(B.finish([a, b], [y]))
    from platformio_tinyml.model.tflite import load_tflite
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    assert "different quantizations" in str(e.value) and "\n" not in str(e.value)


def _onnx(path, nodes, inputs, out="y", out_type=TP.FLOAT, inits=()):
    g = h.make_graph(nodes, "logic", [h.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in inputs],
                     [h.make_tensor_value_info(out, out_type, None)], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def test_onnx_where_of_comparisons_on_nchw(tmp_path):
    """A leaky ReLU as ONNX's function body writes it, and a band select, on an NCHW input
    (stored NHWC) with a per-channel constant broadcast into that layout."""
    per_channel = onnx.numpy_helper.from_array(np.array([0.5, -0.5, 0.0], np.float32).reshape(3, 1, 1), "t")
    nodes = [h.make_node("Less", ["x", "t"], ["neg"]),
             h.make_node("Mul", ["x", "a"], ["ax"]),
             h.make_node("Where", ["neg", "ax", "x"], ["leaky"]),
             h.make_node("GreaterOrEqual", ["x", "lo"], ["above"]),
             h.make_node("LessOrEqual", ["x", "hi"], ["below"]),
             h.make_node("And", ["above", "below"], ["band"]),
             h.make_node("Not", ["band"], ["out"]),
             h.make_node("Or", ["out", "neg"], ["sel"]),
             h.make_node("Where", ["sel", "leaky", "z"], ["y"])]
    inits = [per_channel] + [onnx.numpy_helper.from_array(np.array(v, np.float32), n)
                             for n, v in (("a", 0.1), ("lo", -1.0), ("hi", 1.5), ("z", 0.0))]
    g = _check(_onnx(tmp_path / "m.onnx", nodes, [("x", (1, 3, 4, 5))], inits=inits), tmp_path)
    assert {op.kind for op in g.ops} >= {OpKind.LESS, OpKind.SELECT_V2, OpKind.LOGICAL_AND, OpKind.LOGICAL_NOT}


def test_onnx_where_with_a_constant_condition(tmp_path):
    """A constant bool condition over W, broadcast into the NHWC layout of an NCHW input."""
    cond = onnx.numpy_helper.from_array(np.array([True, False, True, False, True]), "cond")
    path = _onnx(tmp_path / "m.onnx", [h.make_node("Where", ["cond", "x", "w"], ["y"])],
                 [("x", (1, 3, 4, 5)), ("w", (1, 3, 4, 5))], inits=[cond])
    _check(path, tmp_path)


def test_onnx_equal_and_casts(tmp_path):
    """Equal on values that do tie (halves), Cast bool -> float as the output, Cast float -> bool."""
    nodes = [h.make_node("Equal", ["x", "w"], ["eq"]),
             h.make_node("Cast", ["x"], ["nz"], to=TP.BOOL),
             h.make_node("Or", ["eq", "nz"], ["any"]),
             h.make_node("Greater", ["w", "x"], ["gt"]),
             h.make_node("And", ["any", "gt"], ["both"]),
             h.make_node("Cast", ["both"], ["y"], to=TP.FLOAT)]
    _check(_onnx(tmp_path / "m.onnx", nodes, [("x", (2, 6)), ("w", (6,))]), tmp_path, domain="halves")


def test_onnx_bool_output(tmp_path):
    """A comparison's bool result as a graph output: one byte per element, as onnxruntime's."""
    path = _onnx(tmp_path / "m.onnx", [h.make_node("Greater", ["x", "y"], ["c"])], [("x", (2, 3)), ("y", (3,))],
                 out="c", out_type=TP.BOOL)
    g = load_onnx(path)
    assert g.tensors[g.outputs[0]].dtype is DType.BOOL
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    ours, theirs = host.run(xs)[0], OnnxReference(path, g).run(xs)[0]
    assert ours.dtype == np.bool_ and (ours == theirs).all()


def test_onnx_where_on_an_integer_input_is_refused(tmp_path):
    nodes = [h.make_node("Cast", ["x"], ["xi"], to=TP.INT32), h.make_node("Less", ["xi", "k"], ["c"]),
             h.make_node("Where", ["c", "x", "x"], ["y"])]
    path = _onnx(tmp_path / "m.onnx", nodes, [("x", (4,))], inits=[onnx.numpy_helper.from_array(np.int32(2), "k")])
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("shape, axis", [((1, 3, 4, 5), 1), ((1, 3, 4, 5), -1), ((2, 6), 0)])
def test_onnx_hardmax_first_of_ties(shape, axis, tmp_path):
    """1 at the first maximum only: inputs in quarters tie often (onnxruntime's one-hot)."""
    path = _onnx(tmp_path / "m.onnx", [h.make_node("Hardmax", ["x"], ["y"], axis=axis)], [("x", shape)])
    _check(path, tmp_path, domain="halves")
