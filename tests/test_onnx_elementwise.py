"""ONNX element-wise ops of the float32 path against onnxruntime.

Single-node models (rank-4 NCHW activations, which the importer turns to NHWC with
their constants, and rank-2 ones) for Sqrt, Exp, Log, Neg, Abs, HardSwish, LeakyRelu,
Elu, Gelu (exact and tanh), Pow with exponent 2 / 0.5 / -0.5, Reciprocal, Sub and Div
of two activations or with a constant first operand, Min, Max and PRelu, and the
Div/Erf/Add/Mul/Mul chain torch.onnx writes for nn.GELU below opset 20 (one GELU), and the
one-input functions carried as opaque ops that cgen computes (Floor, Round, Sin, Acosh, Erf,
Softplus, Selu, HardSigmoid, Celu, Mish, Elu with any alpha, ...):
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


def _check(path, tmp_path, positive=False, nonzero=False, n=5, domain=None):
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
            if domain == "open_unit":       # asin, acos, atanh
                x = (0.97 * np.tanh(x)).astype(np.float32)
            elif domain == "from_one":      # acosh
                x = (np.abs(x) + 1).astype(np.float32)
            elif domain == "halves":        # round: exact halves among the draws, ties go to even
                x = (np.round(x * 4) / 4).astype(np.float32)
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

# one-input functions the IR carries as opaque ops, which cgen computes with tml_map_f32
MATH = [   # (op, attrs, opset, input domain)
    ("Floor", {}, 13, None), ("Ceil", {}, 13, None), ("Round", {}, 13, "halves"), ("Sign", {}, 13, "halves"),
    ("Sin", {}, 13, None), ("Cos", {}, 13, None), ("Tan", {}, 13, "open_unit"), ("Asin", {}, 13, "open_unit"),
    ("Acos", {}, 13, "open_unit"), ("Atan", {}, 13, None), ("Sinh", {}, 13, None), ("Cosh", {}, 13, None),
    ("Asinh", {}, 13, None), ("Acosh", {}, 13, "from_one"), ("Atanh", {}, 13, "open_unit"),
    ("Erf", {}, 13, None), ("Softplus", {}, 13, None), ("Softsign", {}, 13, None), ("Selu", {}, 13, None),
    ("Selu", {"alpha": 2.0, "gamma": 0.5}, 13, None), ("ThresholdedRelu", {}, 13, None),
    ("ThresholdedRelu", {"alpha": -0.5}, 13, None), ("HardSigmoid", {}, 13, None),
    ("HardSigmoid", {"alpha": 0.4, "beta": 0.3}, 13, None), ("Celu", {}, 13, None),
    ("Celu", {"alpha": 2.5}, 13, None), ("Mish", {}, 18, None), ("Elu", {"alpha": 0.5}, 13, None),
]


@pytest.mark.parametrize("layout", sorted(SHAPES))
@pytest.mark.parametrize("case", MATH, ids=[f"{c[0]}-{k}" for k, c in enumerate(MATH)])
def test_math_function(case, layout, tmp_path):
    """Carried as an opaque op on the input as the reader holds it (no transposes around it)."""
    from platformio_tinyml.ir import OpKind
    op, attrs, opset, domain = case
    path = _model(tmp_path / "m.onnx", op, attrs=attrs, shape=SHAPES[layout], opset=opset)
    g = _check(path, tmp_path, domain=domain)
    assert [o.kind for o in g.ops] == [OpKind.OPAQUE] and g.ops[0].attrs.op == op


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
    ("Celu", [], {"alpha": 0.0}, 1, 13, "Celu 'celu_0' is not supported .Celu with alpha 0"),
    ("Selu", [], {"alpha": float("inf")}, 1, 13, "'alpha' must be a finite number"),
    ("LRN", [], {"size": 3}, 1, 13, "LRN 'lrn_0' is not supported .cgen has no kernel"),
])
def test_refused_in_one_line(op, consts, attrs, n_inputs, opset, match, tmp_path):
    """Refused by the reader (an op it reads but whose parameters cgen cannot take, or an input
    the IR cannot carry), or carried as an opaque op that cgen then refuses with its index."""
    path = _model(tmp_path / "m.onnx", op, n_inputs=n_inputs, consts=consts, attrs=attrs, opset=opset)
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
def test_erf_pattern_that_is_not_gelu_is_computed_as_written(variant, tmp_path):
    """Not one GELU: the Erf is an opaque op cgen computes (erff) and the ops around it stay."""
    from platformio_tinyml.ir import OpKind
    path = _torch_gelu(tmp_path / "m.onnx", half=0.25 if variant == "other_half" else 0.5,
                       reuse=variant == "erf_is_an_output")
    g = _check(path, tmp_path)
    kinds = [op.kind for op in g.ops]
    assert OpKind.GELU not in kinds and [op.attrs.op for op in g.ops if op.kind is OpKind.OPAQUE] == ["Erf"]


@pytest.mark.parametrize("layout", sorted(SHAPES))
def test_batch_normalization_inference_form(layout, tmp_path):
    """Constant statistics (BatchNorm1d after a Linear, BatchNorm2d not folded into a conv): one
    MUL and one ADD per channel, within 1e-5 of onnxruntime; the training form is refused."""
    from platformio_tinyml.ir import OpKind
    shape = SHAPES[layout]
    c = shape[1]
    rng = np.random.default_rng(3)
    stats = [rng.uniform(0.5, 2, c), rng.standard_normal(c), rng.standard_normal(c), rng.uniform(0.1, 3, c)]
    path = _model(tmp_path / "m.onnx", "BatchNormalization", consts=[s.astype(np.float32) for s in stats],
                  attrs={"epsilon": 1e-3}, shape=shape, opset=15)
    g = _check(path, tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.MUL, OpKind.ADD]
    m = onnx.load(str(path))
    m.graph.node[0].output.extend(["running_mean", "running_var"])
    m.graph.node[0].attribute.append(h.make_attribute("training_mode", 1))
    onnx.save(m, str(tmp_path / "train.onnx"))
    with pytest.raises(UnsupportedOpError, match="training mode") as e:
        generate(load_onnx(tmp_path / "train.onnx"), "m")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("layout, axis", [("nchw", 1), ("2d", -1), ("2d", 1)])
def test_log_softmax(layout, axis, tmp_path):
    path = _model(tmp_path / "m.onnx", "LogSoftmax", attrs={"axis": axis}, shape=SHAPES[layout])
    _check(path, tmp_path)
