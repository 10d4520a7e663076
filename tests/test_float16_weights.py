"""Float16 weights (the converter's float16 quantization, as some face-detection models
ship): the importer widens the FLOAT16 constants to float32 exactly and the DEQUANTIZE
ops that read them fold away. TFLite Micro cannot prepare DEQUANTIZE of FLOAT16, so the
reference is TensorFlow Lite's interpreter; outputs within 1e-5 relative.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from platformio_tinyml.device import load_profile
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.chosen import verify_model
from platformio_tinyml.verify.reference import TFLiteReference, reference_for

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def f16_model(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf.keras.utils.set_random_seed(3)
    m = tf.keras.Sequential([tf.keras.Input((16, 16, 3), batch_size=1),
                             tf.keras.layers.Conv2D(8, 3, activation="relu"),
                             tf.keras.layers.DepthwiseConv2D(3, padding="same"),
                             tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(4),
                             tf.keras.layers.Softmax()])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    path = tmp_path_factory.mktemp("f16") / "f16.tflite"
    path.write_bytes(conv.convert())
    return path, m


def test_float16_constants_widen_exactly_and_dequantize_folds(f16_model):
    path, keras_model = f16_model
    g = load_tflite(path)
    assert "DEQUANTIZE" not in {op.kind.value for op in g.ops}
    assert g.meta.get("float16_weights")
    kernel = keras_model.layers[0].get_weights()[0]            # HWIO
    want = kernel.astype(np.float16).astype(np.float32)
    consts = [t.data for t in g.tensors if t.is_const and t.data is not None and t.data.size == kernel.size]
    assert any(np.array_equal(np.transpose(c, (1, 2, 3, 0)).reshape(want.shape), want) for c in consts
               if c.ndim == 4)
    assert isinstance(reference_for(path, g), TFLiteReference)


def test_float16_model_verifies_against_tflite(f16_model):
    path, _ = f16_model
    v = verify_model(path, load_profile("nucleo_f446re"), samples=10)
    assert v.backend == "cgen" and v.ok, v.report.table()
    assert all(o.max_rel <= 1e-5 for o in v.report.outputs)


def test_tflm_refuses_float16_dequantize_in_one_line(f16_model):
    """TFLite Micro cannot prepare DEQUANTIZE of FLOAT16: the tflm backend says so (its refusal
    comes without a hint; supports() used to raise TypeError on that)."""
    from platformio_tinyml.pipeline import compare_backends
    path, _ = f16_model
    table = compare_backends(path, load_profile("nucleo_f446re"))
    tflm = next(r for r in table["backends"] if r["backend"] == "tflm")
    assert not tflm["supported"]
    why = " ".join(tflm["reasons"])
    assert "DEQUANTIZE" in why and "TypeError" not in why and "\n" not in why, why
