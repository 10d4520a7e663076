"""Graph passes on models converted from ordinary Keras code, exactly as users do.

``TFLiteConverter.from_keras_model`` leaves the batch dimension open, so a
``Flatten`` becomes ``SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE`` and a
``Conv1D`` ``EXPAND_DIMS -> CONV_2D -> RESHAPE``: the passes in
``platformio_tinyml/ir/passes.py`` must turn those into plain reshapes, and
the compiled code must match TensorFlow Lite Micro (int8 bit-exact, float32
within 1e-5 relative) on 10 random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import ModelError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.ir.graph import GRAPH_PASS_OPS
from platformio_tinyml.model.loader import load_model, parse_input_shapes
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.parity import check_parity

pytest.importorskip("tflite_micro")


def flatten_cnn():
    L = modelgen._tf().keras.layers
    x = modelgen._tf().keras.Input((49, 10, 1))      # open batch, as users write it
    y = L.MaxPooling2D(2)(L.Conv2D(8, 3, activation="relu")(x))
    return modelgen._model(x, L.Softmax()(L.Dense(4)(L.Flatten()(y))))


def conv1d():
    L = modelgen._tf().keras.layers
    x = modelgen._tf().keras.Input((49, 10))
    y = L.GlobalAveragePooling1D()(L.Conv1D(8, 3, activation="relu")(x))
    return modelgen._model(x, L.Dense(4)(y))


def cropping():
    L = modelgen._tf().keras.layers
    x = modelgen._tf().keras.Input((8, 8, 2))
    return modelgen._model(x, L.Cropping2D(((1, 2), (0, 1)))(L.Conv2D(3, 1)(x)))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras")
    cache = {}

    def get(builder, dtype):
        key = (builder.__name__, dtype)
        if key not in cache:
            modelgen._seed(0)
            path = root / f"{builder.__name__}_{dtype}.tflite"
            path.write_bytes(modelgen.convert(builder(), int8=dtype == "int8"))
            cache[key] = path
        return cache[key]
    return get


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("builder", [flatten_cnn, conv1d])
def test_keras_model_compiles_with_parity(builder, dtype, converted, tmp_path):
    path = converted(builder, dtype)
    g = load_tflite(path)
    kinds = [op.kind for op in g.ops]
    assert not GRAPH_PASS_OPS & set(kinds), kinds
    assert OpKind.RESHAPE in kinds
    report = check_parity(g, path, samples=10, workdir=tmp_path)
    assert report.ok, report.table()
    if dtype == "int8":
        assert all(o.exact == o.samples for o in report.outputs), report.table()


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_cropping_strided_slice_compiles_with_parity(dtype, converted, tmp_path):
    path = converted(cropping, dtype)
    g = load_tflite(path)
    assert OpKind.STRIDED_SLICE in {op.kind for op in g.ops}
    report = check_parity(g, path, samples=5, workdir=tmp_path)
    assert report.ok and (dtype == "float32" or all(o.exact == o.samples for o in report.outputs)), report.table()


# ---- open dimensions: --input-shape --------------------------------------------------------------

def open_time_conv1d():
    L = modelgen._tf().keras.layers
    x = modelgen._tf().keras.Input((None, 10), name="frames")    # open batch and time
    y = L.GlobalMaxPooling1D()(L.Conv1D(8, 3, activation="relu")(x))
    return modelgen._model(x, L.Dense(4)(y))


def test_open_time_dimension_needs_input_shape_then_matches_tflite(converted, tmp_path):
    path = converted(open_time_conv1d, "float32")
    with pytest.raises(ModelError) as e:
        load_model(path)
    msg = str(e.value)
    assert "\n" not in msg and "frames" in msg and "frames:0=1,N,10" in msg and "--input-shape" in msg, msg
    g = load_model(path, input_shapes=parse_input_shapes(["frames=1,49,10"]))
    assert g.tensors[g.inputs[0]].shape == (1, 49, 10)
    assert not {OpKind.SHAPE, OpKind.STRIDED_SLICE, OpKind.PACK} & {op.kind for op in g.ops}
    tf = modelgen._tf()
    interp = tf.lite.Interpreter(model_path=str(path))
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [1, 49, 10])
    interp.allocate_tensors()
    host = build_host(generate(g, "m"), g, tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((1, 49, 10)).astype(np.float32)
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        want = interp.get_tensor(interp.get_output_details()[0]["index"])
        got = host.run([x])[0].reshape(want.shape)
        assert np.max(np.abs(got - want)) <= 1e-5 * max(np.max(np.abs(want)), 1e-30)


def torch_view_flatten(path):
    """What torch.onnx.export writes for conv -> relu -> x.view(x.size(0), -1) -> linear,
    with dynamic_axes on the batch and the time axis."""
    import onnx
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    rng = np.random.default_rng(0)
    init = [nh.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "conv.weight"),
            nh.from_array(rng.standard_normal(4).astype(np.float32), "conv.bias"),
            nh.from_array(rng.standard_normal((3, 4 * 6 * 8)).astype(np.float32), "fc.weight"),
            nh.from_array(np.array([0], np.int64), "axes0"), nh.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [h.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], kernel_shape=[3, 3]),
             h.make_node("Relu", ["c"], ["r"]),
             h.make_node("Shape", ["r"], ["s"]),
             h.make_node("Constant", [], ["i0"], value=nh.from_array(np.array(0, np.int64))),
             h.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             h.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             h.make_node("Reshape", ["r", "shape"], ["f"]),
             h.make_node("Gemm", ["f", "fc.weight"], ["y"], transB=1)]
    graph = h.make_graph(nodes, "torch_jit", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", 1, "time", 10])],
                         [h.make_tensor_value_info("y", TP.FLOAT, ["batch", 3])], initializer=init)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_torch_style_onnx_with_dynamic_axes(tmp_path):
    path = torch_view_flatten(tmp_path / "view.onnx")
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert "\n" not in str(e.value) and "--input-shape x=1,1,TIME,10" in str(e.value), str(e.value)
    with pytest.raises(ModelError, match="not a graph input. Graph inputs: x"):
        load_model(path, input_shapes={"y": (1, 1, 8, 10)})
    with pytest.raises(ModelError, match="does not fit"):
        load_model(path, input_shapes={"x": (1, 2, 8, 10)})
    g = load_model(path, input_shapes=parse_input_shapes(["x=1,1,8,10"]))
    assert [op.kind for op in g.ops] == [OpKind.CONV_2D, OpKind.RESHAPE, OpKind.FULLY_CONNECTED]
    report = check_parity(g, path, samples=5, workdir=tmp_path)
    assert report.ok, report.table()


def test_input_shape_syntax_errors_are_one_line():
    for bad in (["x"], ["x=1,a"], ["=1,2"], ["x=0,3"], ["x=1", "x=2"]):
        with pytest.raises(ModelError) as e:
            parse_input_shapes(bad)
        assert "\n" not in str(e.value)
