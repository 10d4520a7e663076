"""Constant folding of ops the numpy table has no entry for, by the onnx package's reference
implementation (model/onnx/fold.py: reference_fold): the mask and shape arithmetic exported
function bodies carry (Neg, Range, Equal, Where, Expand, Cast of constants) folds, and the
model compiled by cgen matches onnxruntime; what could grow large or cost more than its size
(a Range of 10^9 elements, a Conv of constants) is not folded and is refused in one line
without running it (nor onnx's data propagation, which would compute a huge Range's values
and take all memory). Also: Constant with value_float(s) / value_int(s), and Cast of an
activation to its own type (an identity)."""

from __future__ import annotations

import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import ModelError  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import OnnxReference  # noqa: E402
from test_cgen_ops import FLOAT_TOL, rel_err  # noqa: E402


def _save(path, nodes, inits, shape=(1, 6), outputs=("y",), opset=17, out_shape=None):
    g = h.make_graph(nodes, "fold", [h.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                     [h.make_tensor_value_info(o, TP.FLOAT, out_shape) for o in outputs], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _check(path, tmp_path):
    g = load_onnx(path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ref = OnnxReference(path, g)
    rng = np.random.default_rng(0)
    for _ in range(3):
        xs = [rng.standard_normal(g.tensors[i].shape).astype(np.float32) for i in g.inputs]
        for a, b in zip(host.run(xs), ref.run(xs)):
            assert rel_err(a, np.asarray(b).reshape(a.shape)) <= FLOAT_TOL
    return g


def test_mask_arithmetic_on_constants_folds(tmp_path):
    """x + Where(Equal(Range(0, 6, 1) mod 2, 0), -bias, Cast(bias)): every op but the Add is
    constant; it folds to one constant and the model is one ADD."""
    nodes = [h.make_node("Constant", [], ["start"], value_int=0), h.make_node("Constant", [], ["limit"], value_int=6),
             h.make_node("Constant", [], ["delta"], value_int=1),
             h.make_node("Range", ["start", "limit", "delta"], ["r"]),
             h.make_node("Constant", [], ["two"], value_ints=[2]), h.make_node("Mod", ["r", "two"], ["m"]),
             h.make_node("Constant", [], ["zero"], value_int=0), h.make_node("Equal", ["m", "zero"], ["even"]),
             h.make_node("Neg", ["bias"], ["nb"]), h.make_node("Cast", ["bias"], ["b32"], to=TP.FLOAT),
             h.make_node("Where", ["even", "nb", "b32"], ["w"]),
             h.make_node("Constant", [], ["half"], value_float=0.5), h.make_node("Mul", ["w", "half"], ["k"]),
             h.make_node("Add", ["x", "k"], ["y"])]
    bias = nh.from_array(np.linspace(1, 2, 6).astype(np.float32), "bias")
    g = _check(_save(tmp_path / "mask.onnx", nodes, [bias]), tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.ADD]
    k = next(t for t in g.tensors if t.data is not None)
    expected = 0.5 * np.where(np.arange(6) % 2 == 0, -np.linspace(1, 2, 6), np.linspace(1, 2, 6))
    assert np.allclose(np.asarray(k.data).reshape(-1), expected)


def test_expand_of_a_constant_and_an_identity_cast(tmp_path):
    nodes = [h.make_node("Expand", ["row", "shape"], ["e"]), h.make_node("Cast", ["x"], ["xc"], to=TP.FLOAT),
             h.make_node("Mul", ["xc", "e"], ["y"])]
    inits = [nh.from_array(np.array([[2.0, -1.0, 0.5]], np.float32), "row"),
             nh.from_array(np.array([4, 3], np.int64), "shape")]
    g = _check(_save(tmp_path / "expand.onnx", nodes, inits, shape=(4, 3)), tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.MUL]


@pytest.mark.parametrize("case", ["huge_range", "conv_of_constants"])
def test_what_could_be_large_or_slow_is_not_folded(case, tmp_path):
    if case == "huge_range":      # 10^9 elements: never evaluated
        nodes = [h.make_node("Range", ["a", "b", "c"], ["r"]), h.make_node("Cast", ["r"], ["rf"], to=TP.FLOAT),
                 h.make_node("ReduceSum", ["rf"], ["s"], keepdims=1), h.make_node("Add", ["x", "s"], ["y"])]
        inits = [nh.from_array(np.array(v, np.float32), n) for n, v in (("a", 0), ("b", 1e9), ("c", 1))]
    else:                         # a Conv's cost is not bounded by its output size
        nodes = [h.make_node("Conv", ["cx", "cw"], ["c"]), h.make_node("Flatten", ["c"], ["f"]),
                 h.make_node("Add", ["x", "f"], ["y"])]
        inits = [nh.from_array(np.ones((1, 64, 8, 8), np.float32), "cx"),
                 nh.from_array(np.ones((1, 64, 3, 3), np.float32), "cw")]
    path = _save(tmp_path / f"{case}.onnx", nodes, inits, shape=(1, 36), out_shape=[1, 36])
    t0 = time.monotonic()
    with pytest.raises(ModelError) as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value) and time.monotonic() - t0 < 20
    # (onnx's data propagation would have computed the 10^9 values: it does not run on this model)
    assert ("tensor-too-large: tensor #" in str(e.value) and "'r' of shape [1000000000]" in str(e.value)
            if case == "huge_range" else "operator #0 Conv is not supported" in str(e.value)), str(e.value)
