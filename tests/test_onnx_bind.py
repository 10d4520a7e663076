"""Graph inputs bound to constants (``--input-value``) and ``If`` replaced by the branch its
folded condition takes: a model's setting input (Silero VAD's sample rate) selects one of
its variants at import, and exporters' shape checks written as ``If`` disappear.

The references are onnxruntime on the unmodified file, fed the bound values
(``OnnxReference`` reads them from the graph), and the outputs of the two settings differ,
so a wrong branch cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import ModelError  # noqa: E402
from platformio_tinyml.integrations.core import ModelSpec, cache_key  # noqa: E402
from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.model.loader import load_model, parse_input_values  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import OnnxReference  # noqa: E402
from test_cli import tinyml  # noqa: E402


def _branch(name: str, nodes, out: str):
    return h.make_graph(nodes, name, [], [h.make_tensor_value_info(out, TP.FLOAT, None)])


def _mode_model(path):
    """y = If(mode == 1) then relu(x * 2) else x + 3, the then-branch holding a shape check
    written as a nested If (Shape(x)[1] == 4: Relu, else Neg), as exporters write them."""
    two, three = nh.from_array(np.array(2, np.float32), "two"), nh.from_array(np.array(3, np.float32), "three")
    inner = h.make_node("If", ["is4"], ["t_out"], name="check",
                        then_branch=_branch("relu", [h.make_node("Relu", ["t_mul"], ["t_relu"])], "t_relu"),
                        else_branch=_branch("neg", [h.make_node("Neg", ["t_mul"], ["t_neg"])], "t_neg"))
    then_nodes = [h.make_node("Mul", ["x", "two"], ["t_mul"]),
                  h.make_node("Shape", ["x"], ["shp"]),
                  h.make_node("Gather", ["shp", "one_i"], ["dim1"], axis=0),
                  h.make_node("Equal", ["dim1", "four"], ["is4"]), inner]
    then_b = h.make_graph(then_nodes, "then", [], [h.make_tensor_value_info("t_out", TP.FLOAT, None)],
                          [nh.from_array(np.array(1, np.int64), "one_i"), nh.from_array(np.array(4, np.int64), "four")])
    else_b = _branch("else", [h.make_node("Add", ["x", "three"], ["e_add"])], "e_add")
    nodes = [h.make_node("Equal", ["mode", "one"], ["eq"]),
             h.make_node("If", ["eq"], ["r"], name="pick", then_branch=then_b, else_branch=else_b),
             h.make_node("Identity", ["r"], ["y"])]
    g = h.make_graph(nodes, "modes", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4]),
                                      h.make_tensor_value_info("mode", TP.INT64, [])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])],
                     [two, three, nh.from_array(np.array(1, np.int64), "one")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _open_model(path):
    """y = relu(x) + x, x of shape [n, t]: an open batch and an open length (``--input-shape x=1,T``)."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Add", ["r", "x"], ["y"])]
    g = h.make_graph(nodes, "open", [h.make_tensor_value_info("x", TP.FLOAT, ["n", "t"])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["n", "t"])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _outputs(path, values: dict, tmp_path, x: np.ndarray):
    g = load_model(path, input_values=values)
    host = build_host(generate(g, "m"), g, tmp_path / f"b{values}")
    ours, theirs = host.run([x])[0], OnnxReference(path, g).run([x])[0]
    return g, np.asarray(ours).reshape(-1), np.asarray(theirs).reshape(-1)


def test_bound_input_selects_the_branch_and_matches_onnxruntime(tmp_path):
    path = _mode_model(tmp_path / "modes.onnx")
    x = np.array([[-1.5, 0.25, 2.0, -3.0]], np.float32)
    results = {}
    for mode in (1, 0):
        g, ours, theirs = _outputs(path, {"mode": (mode,)}, tmp_path, x)
        assert [g.tensors[i].name for i in g.inputs] == ["x"]           # mode is no longer an input
        assert [g.tensors[i].name for i in g.outputs] == ["y"]          # the graph's own output name
        assert g.meta["bound_inputs"] == {"mode": {"dtype": "int64", "shape": [], "values": [mode]}}
        assert not {op.kind.name for op in g.ops} & {"CUSTOM", "OPAQUE"}
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        results[mode] = ours
    np.testing.assert_array_equal(results[1], np.maximum(x * 2, 0).reshape(-1))   # then, then the Relu
    np.testing.assert_array_equal(results[0], (x + 3).reshape(-1))                # else


def test_cache_key_follows_the_bound_values(tmp_path):
    path = _mode_model(tmp_path / "modes.onnx")
    dev = load_profile("nucleo_f446re")
    keys = {cache_key(ModelSpec.make(path, input_values=v), dev) for v in (None, {"mode": (1,)}, {"mode": (0,)})}
    assert len(keys) == 3


@pytest.mark.parametrize("values, needle", [
    ({"sr": (16000,)}, "--input-value names 'sr', which is not a graph input. Graph inputs: mode, x"),
    ({"mode": (1, 2)}, "--input-value mode gives 2 value(s) for an input of shape []"),
    ({"mode": (1.5,)}, "--input-value mode: the input holds int64, and 1.5 is not"),
])
def test_bad_bindings_are_one_line(values, needle, tmp_path):
    path = _mode_model(tmp_path / "modes.onnx")
    with pytest.raises(ModelError) as e:
        load_model(path, input_values=values)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_parse_and_cli(tmp_path):
    assert parse_input_values(["sr=16000", " gain = -0.5,2 "]) == {"sr": (16000,), "gain": (-0.5, 2)}
    for bad in ("sr", "=3", "sr=", "sr=abc", "sr=1,x"):
        with pytest.raises(ModelError, match="is not NAME=V0,V1,... with numbers"):
            parse_input_values([bad])
    path = _mode_model(tmp_path / "modes.onnx")
    rc, out, err = tinyml("compile", path, "-t", "nucleo_f446re", "-o", tmp_path / "out")
    assert rc != 0 and "graph input 'mode' has unsupported type int64" in err and "--input-value mode=V" in err
    assert len(err.strip().splitlines()) == 1
    rc, out, err = tinyml("compile", path, "-t", "nucleo_f446re", "-o", tmp_path / "out", "--input-value", "mode=1")
    assert rc == 0, err
    rc, out, err = tinyml("verify", path, "-t", "nucleo_f446re", "--input-value", "mode=0", "-n", "3")
    assert rc == 0 and "PASS" in out, out + err


def test_input_values_are_for_onnx_only(tmp_path):
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match=r"input values \(--input-value\) apply to .onnx models"):
        load_model(tfl, input_values={"x": (1,)})
