"""Graph passes on models converted from ordinary Keras code, exactly as users do.

``TFLiteConverter.from_keras_model`` leaves the batch dimension open, so a
``Flatten`` becomes ``SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE`` and a
``Conv1D`` ``EXPAND_DIMS -> CONV_2D -> RESHAPE``: the passes in
``platformio_tinyml/ir/passes.py`` must turn those into plain reshapes, and
the compiled code must match TensorFlow Lite Micro (int8 bit-exact, float32
within 1e-5 relative) on 10 random inputs.
"""

from __future__ import annotations

import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.ir.graph import GRAPH_PASS_OPS
from platformio_tinyml.model.tflite import load_tflite
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


def test_strided_slice_on_activations_is_refused_in_one_line(converted):
    path = converted(cropping, "float32")
    g = load_tflite(path)
    with pytest.raises(UnsupportedOpError) as e:
        generate(g, "m")
    msg = str(e.value)
    assert "\n" not in msg and "STRIDED_SLICE is not supported" in msg and str(path) in msg, msg
