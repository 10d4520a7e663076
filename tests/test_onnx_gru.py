"""ONNX GRU and RNN (gru.py: unrolled over the time steps into FULLY_CONNECTED, element-wise
and slicing ops), float32, against onnxruntime within 1e-5 relative
(test_onnx_elementwise._check), or the onnx reference implementation where onnxruntime has
no kernel (layout 1).

GRU forward, reverse and bidirectional with linear_before_reset 0 and 1, with and without
B, an initial_h input or constant, Y and Y_h both graph outputs, layout 1, a GRU whose Y_h
feeds a Gemm, W / R / B given at run time; RNN forward and bidirectional. Other activations,
clip, a sequence_lens shorter than the sequence and more than 512 steps are refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from test_cgen_ops import FLOAT_TOL, rel_err  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402

RNG = np.random.default_rng(7)
SEQ, BATCH, IN, HID = 5, 2, 3, 4


def _save(path, op="GRU", nd=1, layout=0, bias=True, h0=None, outs=("y", "yh"), runtime=(), seq=SEQ, post=(),
          extra=(), **attrs):
    """One GRU / RNN node (``h0``: None, "input" or "const"; ``runtime``: W / R / B as graph
    inputs), its outputs ``outs`` (``post`` nodes, with initializers ``extra``, may consume them)."""
    gates = 3 if op == "GRU" else 1
    xs = (seq, BATCH, IN) if layout == 0 else (BATCH, seq, IN)
    hs = (nd, BATCH, HID) if layout == 0 else (BATCH, nd, HID)
    consts = {"w": 0.5 * RNG.standard_normal((nd, gates * HID, IN)),
              "r": 0.5 * RNG.standard_normal((nd, gates * HID, HID)),
              "b": 0.5 * RNG.standard_normal((nd, 2 * gates * HID)) if bias else None,
              "h0": RNG.standard_normal(hs) if h0 == "const" else None}
    ins = [("x", xs)] + [(n, consts[n].shape) for n in runtime] + ([("h0", hs)] if h0 == "input" else [])
    inits = [(n, v) for n, v in consts.items() if v is not None and n not in runtime] + list(extra)
    names = ["x", "w", "r", "b" if bias else "", "", "h0" if h0 else ""]
    while not names[-1]:
        names.pop()
    if nd == 2:
        attrs["direction"] = "bidirectional"
    node = h.make_node(op, names, list(outs), hidden_size=HID, layout=layout, **attrs)
    graph_outs = [post[-1].output[0]] if post else [o for o in outs if o]
    g = h.make_graph([node, *post], op, [h.make_tensor_value_info(n, TP.FLOAT, list(s)) for n, s in ins],
                     [h.make_tensor_value_info(n, TP.FLOAT, None) for n in graph_outs],
                     [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _check_reference(path, tmp_path):
    """Like _check, against onnx's reference implementation (onnxruntime refuses layout 1)."""
    ref, names = ReferenceEvaluator(str(path)), [i.name for i in onnx.load(str(path)).graph.input]
    g = load_onnx(path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    rng = np.random.default_rng(1)
    for i in range(3):
        xs = [rng.standard_normal(g.tensors[k].shape).astype(np.float32) for k in g.inputs]
        for a, b in zip(host.run(xs), ref.run(None, dict(zip(names, xs)))):
            e = rel_err(a, np.asarray(b).reshape(a.shape))
            assert e <= FLOAT_TOL, f"sample {i}: relative error {e:.3g}"


CASES = {
    "forward": {},
    "forward_lbr": {"linear_before_reset": 1},
    "reverse": {"direction": "reverse"},
    "bidirectional": {"nd": 2},
    "bidirectional_lbr": {"nd": 2, "linear_before_reset": 1, "h0": "input"},
    "initial_h_input": {"h0": "input", "linear_before_reset": 1},
    "initial_h_const": {"h0": "const", "direction": "reverse"},
    "no_bias": {"bias": False, "linear_before_reset": 1},
    "only_y_h": {"outs": ("", "yh")},
    "runtime_weights": {"nd": 2, "runtime": ("w", "r", "b"), "linear_before_reset": 1},
    "runtime_weights_lbr0": {"runtime": ("w", "r", "b")},
    "rnn": {"op": "RNN", "h0": "input"},
    "rnn_bidirectional": {"op": "RNN", "nd": 2, "bias": False},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recurrent(name, tmp_path):
    g = _check(_save(tmp_path / "m.onnx", **CASES[name]), tmp_path)
    assert OpKind.TANH in {op.kind for op in g.ops}


@pytest.mark.parametrize("case", [{}, {"nd": 2, "h0": "input", "linear_before_reset": 1}, {"op": "RNN", "nd": 2}])
def test_layout_1(case, tmp_path):
    _check_reference(_save(tmp_path / "m.onnx", layout=1, **case), tmp_path)


def test_gru_into_gemm(tmp_path):
    """Y_h squeezed to [batch, hidden] and classified by a Gemm, as a PyTorch export does."""
    axes = h.make_node("Constant", [], ["axes"], value=nh.from_array(np.array([0], np.int64)))
    post = [axes, h.make_node("Squeeze", ["yh", "axes"], ["last"]),
            h.make_node("Gemm", ["last", "k"], ["z"], transB=1)]
    path = _save(tmp_path / "m.onnx", outs=("", "yh"), post=post, extra=[("k", RNG.standard_normal((3, HID)))],
                 linear_before_reset=1)
    g = _check(path, tmp_path)
    assert g.ops[-1].kind is OpKind.FULLY_CONNECTED


@pytest.mark.parametrize("kw,match", [
    ({"activations": ["Relu", "Tanh"]}, "activations"),
    ({"op": "RNN", "activations": ["Relu"]}, "activations"),
    ({"clip": 1.0}, "clip"),
    ({"seq": 513}, "513 time steps"),
])
def test_refused(kw, match, tmp_path):
    op = kw.get("op", "GRU")
    with pytest.raises(UnsupportedOpError, match=f"{op}.*{match}") as e:
        generate(load_onnx(_save(tmp_path / "m.onnx", **kw)), "m")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("lens,ok", [((SEQ, SEQ), True), ((SEQ, SEQ - 1), False)])
def test_sequence_lens(lens, ok, tmp_path):
    """A constant sequence_lens of the full length compiles; a shorter one is refused."""
    path = _save(tmp_path / "m.onnx")
    m = onnx.load(str(path))
    m.graph.node[0].input[:] = ["x", "w", "r", "b", "lens"]
    m.graph.initializer.append(nh.from_array(np.array(lens, np.int32), "lens"))
    onnx.save(m, str(path))
    if ok:
        _check(path, tmp_path)
        return
    with pytest.raises(UnsupportedOpError, match="GRU.*sequence_lens") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)
