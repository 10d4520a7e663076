"""ONNX element-wise ops of the float32 path against onnxruntime.

Single-node models (rank-4 NCHW activations, which the importer turns to NHWC with
their constants, and rank-2 ones) for Sqrt, Exp, Log, Neg, Abs, HardSwish, LeakyRelu,
Elu, Gelu (exact and tanh), Pow with exponent 2 / 0.5 / -0.5, Reciprocal, Sub and Div
of two activations or with a constant first operand, Min, Max and PRelu, and the
Div/Erf/Add/Mul/Mul chain torch.onnx writes for nn.GELU below opset 20 (one GELU):
compiled by cgen, built for the host, outputs within 1e-5 relative of onnxruntime's
(test_cgen_ops.rel_err). What has no kernel is carried as an opaque op, which cgen refuses in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import OnnxReference  # noqa: E402
from test_cgen_ops import FLOAT_TOL, rel_err  # noqa: E402

SHAPES = {"nchw": [1, 3, 4, 5], "2d": [3, 5]}


def _model(path, op, n_inputs=1, consts=(), attrs=None, shape=(1, 3, 4, 5), opset=13, const_first=False):
    """One ``op`` node on inputs x0.. (and the constants ``consts``, after them or first)."""
    inits = [nh.from_array(np.asarray(c, np.float32), f"c{k}") for k, c in enumerate(consts)]
    acts = [f"x{k}" for k in range(n_inputs)]
    names = [i.name for i in inits] + acts if const_first else acts + [i.name for i in inits]
    node = h.make_node(op, names, ["y"], name=f"{op.lower()}_0", **(attrs or {}))
    ins = [h.make_tensor_value_info(a, TP.FLOAT, list(shape)) for a in acts]
    out = h.make_tensor_value_info("y", TP.FLOAT, None)
    m = h.make_model(h.make_graph([node], op, ins, [out], inits), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m)
    onnx.save(m, str(path))
    return path


def _check(path, tmp_path, positive=False, nonzero=False, n=5):
    g = load_onnx(path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ref = OnnxReference(path, g)
    rng = np.random.default_rng(1)
    for i in range(n):
        xs = []
        for t in (g.tensors[k] for k in g.inputs):
            x = (2.0 * rng.standard_normal(t.shape)).astype(np.float32)
            if positive:
                x = np.abs(x) + np.float32(0.05)
            if nonzero:
                x = np.where(np.abs(x) < 0.1, np.float32(0.5), x).astype(np.float32)
            xs.append(x)
        ours, theirs = host.run(xs), ref.run(xs)
        for a, b in zip(ours, theirs):
            e = rel_err(a, np.asarray(b).reshape(a.shape))
            assert e <= FLOAT_TOL, f"sample {i}: relative error {e:.3g}"
    return g


UNARY = [   # (op, attrs, opset, positive inputs)
    ("Sqrt", {}, 13, True), ("Exp", {}, 13, False), ("Log", {}, 13, True), ("Neg", {}, 13, False),
    ("Abs", {}, 13, False), ("HardSwish", {}, 14, False), ("LeakyRelu", {"alpha": 0.1}, 13, False),
    ("LeakyRelu", {}, 13, False), ("Elu", {}, 13, False), ("Gelu", {}, 20, False),
    ("Gelu", {"approximate": "tanh"}, 20, False), ("Reciprocal", {}, 13, True),
]


@pytest.mark.parametrize("layout", sorted(SHAPES))
@pytest.mark.parametrize("case", UNARY, ids=[f"{c[0]}-{k}" for k, c in enumerate(UNARY)])
def test_unary(case, layout, tmp_path):
    op, attrs, opset, positive = case
    path = _model(tmp_path / "m.onnx", op, attrs=attrs, shape=SHAPES[layout], opset=opset)
    _check(path, tmp_path, positive=positive)


@pytest.mark.parametrize("exponent", [2.0, 0.5, -0.5])
def test_pow_with_constant_exponent(exponent, tmp_path):
    path = _model(tmp_path / "m.onnx", "Pow", consts=[np.float32(exponent)])
    _check(path, tmp_path, positive=exponent < 1)


BINARY = [   # (op, n activations, constants, constant first, nonzero inputs)
    ("Sub", 2, (), False, False), ("Div", 2, (), False, True),
    ("Sub", 1, (np.linspace(-1, 1, 3, dtype=np.float32).reshape(3, 1, 1),), True, False),
    ("Div", 1, (np.float32(2.5),), True, True),
    ("Min", 2, (), False, False), ("Max", 2, (), False, False),
    ("Max", 1, (np.linspace(-1, 1, 5, dtype=np.float32),), False, False),
    ("PRelu", 1, (np.array([0.1, -0.2, 0.3], np.float32).reshape(3, 1, 1),), False, False),
]


@pytest.mark.parametrize("case", BINARY, ids=[f"{c[0]}-{k}" for k, c in enumerate(BINARY)])
def test_binary(case, tmp_path):
    op, n_act, consts, first, nonzero = case
    path = _model(tmp_path / "m.onnx", op, n_inputs=n_act, consts=consts, const_first=first)
    _check(path, tmp_path, nonzero=nonzero)


def test_binary_2d_two_activations(tmp_path):
    for op in ("Sub", "Div", "Min", "Max"):
        (tmp_path / op).mkdir()
        path = _model(tmp_path / op / "m.onnx", op, n_inputs=2, shape=SHAPES["2d"])
        _check(path, tmp_path / op, nonzero=op == "Div")


@pytest.mark.parametrize("op, consts, attrs, n_inputs, opset, match", [
    ("Pow", [np.float32(3.0)], {}, 1, 13, "exponent 3"),
    ("Elu", [], {"alpha": 0.5}, 1, 13, "alpha 0.5"),
    ("Min", [], {}, 3, 13, "3 operands"),
    ("Erf", [], {}, 1, 13, "Erf 'erf_0' is not supported .cgen has no kernel"),
    ("Where", [], {}, 2, 13, "'cond' is a bool constant"),
])
def test_refused_in_one_line(op, consts, attrs, n_inputs, opset, match, tmp_path):
    """Refused by the reader (an op it reads but whose parameters cgen cannot take, or an input
    the IR cannot carry), or carried as an opaque op that cgen then refuses with its index."""
    path = _model(tmp_path / "m.onnx", op, n_inputs=n_inputs, consts=consts, attrs=attrs, opset=opset)
    if op == "Where":   # a constant bool condition first
        m = onnx.load(str(path))
        m.graph.initializer.append(nh.from_array(np.array([True, False, True, False, True]), "cond"))
        m.graph.node[0].input.insert(0, "cond")
        m.graph.output[0].type.tensor_type.shape.dim.extend([h.make_tensor_value_info(
            "t", TP.FLOAT, [1, 3, 4, 5]).type.tensor_type.shape.dim[k] for k in range(4)])
        onnx.save(m, str(path))
    with pytest.raises(UnsupportedOpError, match=match) as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)


def _torch_gelu(path, first="Div", shape=(1, 3, 4, 5), half=0.5, reuse=False):
    """nn.GELU() as torch.onnx exports it below opset 20 (Div or Mul by 1/sqrt 2 first)."""
    k = np.float32(np.sqrt(2.0) if first == "Div" else np.sqrt(0.5))
    nodes = [h.make_node(first, ["x", "k"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
             h.make_node("Add", ["e", "one"], ["a"]), h.make_node("Mul", ["x", "a"], ["m"]),
             h.make_node("Mul", ["m", "half"], ["y"])]
    outs = [h.make_tensor_value_info("y", TP.FLOAT, None)]
    if reuse:   # the Erf's result is also a graph output: not a GELU
        outs.append(h.make_tensor_value_info("e", TP.FLOAT, None))
    inits = [nh.from_array(np.float32(v), n) for n, v in (("k", k), ("one", 1.0), ("half", half))]
    m = h.make_model(h.make_graph(nodes, "gelu", [h.make_tensor_value_info("x", TP.FLOAT, list(shape))], outs,
                                  inits), opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


@pytest.mark.parametrize("first, shape", [("Div", (1, 3, 4, 5)), ("Mul", (2, 7)), ("Div", (1, 6, 8))])
def test_erf_gelu_pattern_is_one_gelu(first, shape, tmp_path):
    from platformio_tinyml.ir import OpKind
    g = _check(_torch_gelu(tmp_path / "m.onnx", first, shape), tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.GELU]


@pytest.mark.parametrize("variant", ["other_half", "erf_is_an_output"])
def test_erf_pattern_that_is_not_gelu_is_refused_at_erf(variant, tmp_path):
    """Carried as an opaque Erf (between transposes: its own NCHW layout), which cgen refuses."""
    path = _torch_gelu(tmp_path / "m.onnx", half=0.25 if variant == "other_half" else 0.5,
                       reuse=variant == "erf_is_an_output")
    with pytest.raises(UnsupportedOpError, match="Erf.*no kernel") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)
