"""The IR carries any op (issue 12 item 1): an operator the IR has no kind for is imported as
an OPAQUE op with its source type, options and the file's output shapes; cgen computes the
TFLite ones it has kernels for and refuses the others with the op and its index; a backend
that compiles the file takes the model, and the result is
checked against the reference interpreter, not against anything computed here.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.loader import load_model  # noqa: E402
from platformio_tinyml.pipeline import compare_backends  # noqa: E402
from platformio_tinyml.verify.chosen import verify_model  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import TFLMReference  # noqa: E402


def _cumsum(path):
    import tensorflow as tf
    fn = tf.function(lambda x: tf.nn.relu(tf.math.cumsum(x, axis=1, exclusive=True, reverse=True)))
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function(tf.TensorSpec((1, 8, 4), tf.float32))])
    path.write_bytes(conv.convert())
    return path


def test_tflite_op_without_a_kind_is_carried_with_its_options(tmp_path):
    g = load_model(_cumsum(tmp_path / "cumsum.tflite"))
    op = next(op for op in g.ops if op.kind is OpKind.OPAQUE)
    assert op.type_name == "CUMSUM" and op.label == f"#{op.index} CUMSUM"
    options = dict(op.attrs.options)
    assert options["Exclusive"] is True and options["Reverse"] is True
    assert g.tensors[op.outputs[0]].shape == (1, 8, 4)
    assert np.asarray(g.op_inputs(op)[1].data).reshape(-1).tolist() == [1]   # the axis operand, as in the file
    # cgen computes it from what is carried (cgen/lower_more.py; tests/test_cgen_ops_more.py for the variants)
    host = build_host(generate(g, "cumsum"), g, tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((1, 8, 4)).astype(np.float32)
    ours, ref = host.run([x])[0], TFLMReference(tmp_path / "cumsum.tflite").run([x])[0]
    assert np.allclose(ours, ref.reshape(ours.shape), rtol=1e-5, atol=1e-6)


def runtime_broadcast_args(path):
    """A .tflite whose one op, BROADCAST_ARGS of two shapes given at run time, cgen refuses
    (it folds constant ones) and TensorFlow Lite Micro computes."""
    from test_cgen_ops_ew import _builder
    B = _builder()()
    a, b = B.tensor((3,), "int32", name="a"), B.tensor((2,), "int32", name="b")
    y = B.tensor((3,), "int32", name="shape")
    B.op("BROADCAST_ARGS", [a, b], [y])
    path.write_bytes(B.finish([a, b], [y]))
    return path


def test_tflite_op_cgen_refuses_goes_to_tflm(tmp_path):
    """An opaque op cgen refuses (BROADCAST_ARGS of shapes known at run time only: cgen folds
    constant ones) is refused with the op, its index and the reason; tflm takes the model."""
    path = runtime_broadcast_args(tmp_path / "bargs.tflite")
    with pytest.raises(UnsupportedOpError, match=r"operator #0 BROADCAST_ARGS is not supported "
                                                 r"\(shapes computed at run time"):
        generate(load_model(path), "bargs")
    table = compare_backends(path, load_profile("nucleo_f446re"))
    rows = {r["backend"]: r for r in table["backends"]}
    assert not rows["cgen"]["supported"] and rows["tflm"]["supported"] and table["chosen"] in ("tflm", "tvm")


def _conv_lrn(path):
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             h.make_node("LRN", ["c"], ["e"], size=3, name="lrn"),
             h.make_node("Relu", ["e"], ["y"], name="relu")]
    w = nh.from_array((0.3 * rng.standard_normal((4, 3, 3, 3))).astype(np.float32), "w")
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], initializer=[w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def test_onnx_op_without_a_kind_runs_in_onnx_layout_and_tvm_compiles_it(tmp_path):
    """LRN over the channel axis between two ops the reader converts to NHWC: it is carried
    in ONNX's NCHW order (transposes around it), cgen refuses it, and TVM, which compiles the
    file, is chosen and matches onnxruntime."""
    path = _conv_lrn(tmp_path / "lrn.onnx")
    g = load_model(path)
    kinds = [op.type_name for op in g.ops]
    assert kinds == ["CONV_2D", "TRANSPOSE", "LRN", "TRANSPOSE", "RELU"], kinds
    lrn = g.ops[2]
    assert g.tensors[lrn.inputs[0]].shape == (1, 4, 8, 8) == g.tensors[lrn.outputs[0]].shape
    assert lrn.attrs.domain == "" and lrn.name == "LRN lrn" and dict(lrn.attrs.options) == {"size": 3}
    with pytest.raises(UnsupportedOpError, match=r"operator #2 LRN 'lrn' is not supported"):
        generate(g, "lrn")
    pytest.importorskip("tvm")
    v = verify_model(path, load_profile("nucleo_f446re"), samples=5)
    assert v.backend == "tvm" and v.ok, v.report.table()
    assert all(o.max_rel <= 1e-5 for o in v.report.outputs), v.report.table()


def test_onnx_op_whose_converter_refuses_is_carried_for_tvm(tmp_path):
    """A Pad in 'edge' mode, which the reader's Pad converter refuses: carried as an opaque op
    with that reason, so cgen refuses it with the reason and TVM compiles the file."""
    rng = np.random.default_rng(1)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             h.make_node("Pad", ["c", "pads"], ["p"], mode="edge", name="pad"),
             h.make_node("Relu", ["p"], ["y"], name="relu")]
    inits = [nh.from_array((0.3 * rng.standard_normal((4, 3, 3, 3))).astype(np.float32), "w"),
             nh.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "edge.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    graph = load_model(path)
    pad = next(op for op in graph.ops if op.kind is OpKind.OPAQUE)
    assert pad.type_name == "Pad" and "edge" in pad.attrs.reason
    with pytest.raises(UnsupportedOpError, match=r"Pad 'pad' is not supported \(mode 'edge'") as e:
        generate(graph, "edge")
    assert "\n" not in str(e.value)
    pytest.importorskip("tvm")
    v = verify_model(path, load_profile("nucleo_f446re"), samples=3)
    assert v.backend == "tvm" and v.ok, v.report.table()


def test_onnx_control_flow_and_bool_constants_are_refused_in_one_line(tmp_path):
    """What the IR cannot carry is still one line at import: an op with subgraphs whose condition
    is known only at run time (one on a constant is replaced by its branch: test_onnx_bind.py)."""
    then = h.make_graph([h.make_node("Identity", ["x"], ["t"])], "then", [],
                        [h.make_tensor_value_info("t", TP.FLOAT, [1, 4])])
    nodes = [h.make_node("ReduceSum", ["x"], ["s"], keepdims=0), h.make_node("Greater", ["s", "zero"], ["cond"]),
             h.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then, name="branch")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])],
                     initializer=[nh.from_array(np.array(0, np.float32), "zero")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "if.onnx"))
    with pytest.raises(UnsupportedOpError, match=r"If 'branch' is not supported \(control flow") as e:
        load_model(tmp_path / "if.onnx")
    assert "\n" not in str(e.value)
