"""Keras import: a tiny tf.keras model saved as .keras, converted float and int8 (with a
calibration .npy); the int8 result runs bit-exact against TFLite Micro on the converted .tflite."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import ModelError  # noqa: E402
from platformio_tinyml.ir import DType  # noqa: E402
from platformio_tinyml.model.loader import load_model  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras")
    tf.keras.utils.set_random_seed(0)
    L = tf.keras.layers
    x = tf.keras.Input(shape=(8, 8, 2), batch_size=1)
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.MaxPooling2D(2)(y)
    y = L.Flatten()(y)
    y = L.Dense(5, activation="softmax")(y)
    path = root / "tiny.keras"
    tf.keras.Model(x, y).save(path)
    calib = root / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((16, 8, 8, 2)).astype(np.float32))
    return path, calib


def test_float_export(keras_model):
    path, _ = keras_model
    g = load_model(path)
    assert g.source_format == "tflite" and g.meta["quantized"] == "float32"
    assert g.tensors[g.inputs[0]].dtype is DType.FLOAT32


def test_int8_export_is_bit_exact_to_tflm(keras_model, tmp_path):
    from platformio_tinyml.verify.reference import TFLMReference
    path, calib = keras_model
    g = load_model(path, calibration=calib)
    assert g.tensors[g.inputs[0]].dtype is DType.INT8 and g.meta["quantized"] == "int8"
    hm = build_host(generate(g, "k"), g, tmp_path)
    ref = TFLMReference(g.meta["tflite_path"])
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
        np.testing.assert_array_equal(hm.run([x])[0].reshape(-1), ref.run([x])[0].reshape(-1))


def test_bad_calibration_shape(keras_model, tmp_path):
    path, _ = keras_model
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 3, 3), np.float32))
    with pytest.raises(ModelError, match=r"bad.npy: calibration data has shape \[4, 3, 3\]"):
        load_model(path, calibration=bad)


def test_conversions_are_cached_outside_the_source_tree(keras_model, tmp_path, monkeypatch):
    path, calib = keras_model
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    before = sorted(p.name for p in path.parent.iterdir())
    g = load_model(path, calibration=calib)
    assert sorted(p.name for p in path.parent.iterdir()) == before
    assert g.meta["tflite_path"].startswith(str(tmp_path / "cache" / "keras"))


def test_errors_name_the_users_model_not_the_converted_file(tmp_path, monkeypatch):
    """An op cgen refuses (FLOOR_MOD of int32, which TFLite Micro has no kernel for either) is
    reported against the SavedModel folder the user gave, not the converted .tflite in the cache."""
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    x = tf.keras.Input(shape=(4,), batch_size=1)
    m = tf.keras.Model(x, tf.keras.layers.Dense(3)(tf.keras.layers.Lambda(
        lambda t: tf.cast(tf.math.floormod(tf.cast(t, tf.int32), 3), tf.float32))(x)))
    saved = tmp_path / "sine_savedmodel"
    m.export(str(saved))
    g = load_model(saved)
    with pytest.raises(ModelError) as err:
        generate(g, "sine")
    assert str(err.value).startswith(f"{saved} (converted to TFLite): ")
    assert "FLOOR_MOD" in str(err.value) and str(tmp_path / "cache") not in str(err.value)


def test_mlperf_kws_savedmodel_imports_bit_exact(mlperf_dir, tmp_path, monkeypatch):
    """The MLPerf Tiny KWS SavedModel (written by an older Keras: TF 2's loader cannot restore it)
    converts through the serving signature, int8 with calibration, and runs bit-exact to TFLM."""
    from platformio_tinyml.verify.reference import TFLMReference
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(2).uniform(-1, 1, (8, 49, 10, 1)).astype(np.float32))
    g = load_model(mlperf_dir / "kws_ref_model_savedmodel", calibration=calib)
    assert list(g.tensors[g.inputs[0]].shape) == [1, 49, 10, 1]
    assert g.tensors[g.inputs[0]].dtype is DType.INT8 and len(g.ops) >= 10
    hm = build_host(generate(g, "kws"), g, tmp_path)
    ref = TFLMReference(g.meta["tflite_path"])
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)
        np.testing.assert_array_equal(hm.run([x])[0].reshape(-1), ref.run([x])[0].reshape(-1))


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_recurrent_layers_are_unrolled_and_compile(kind, int8, tmp_path, monkeypatch):
    """A .keras with recurrent layers (stacked, then Dense): Keras 3 would convert them to a WHILE
    loop; the importer fuses LSTMs (below) and unrolls GRU and SimpleRNN (weights kept: the float
    conversion equals Keras), and the result runs on cgen within 1e-5 of TFLite Micro (float32)
    or bit-exact (int8, calibrated)."""
    from platformio_tinyml.verify.parity import check_parity
    from platformio_tinyml.verify.reference import TFLMReference
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    tf.keras.utils.set_random_seed(0)
    layer = getattr(tf.keras.layers, kind)
    m = tf.keras.Sequential([tf.keras.Input((6, 3)), layer(8, return_sequences=True), layer(4),
                             tf.keras.layers.Dense(2)])
    path = tmp_path / f"{kind}.keras"
    m.save(path)
    calib = None
    if int8:
        calib = tmp_path / "calib.npy"
        np.save(calib, np.random.default_rng(1).standard_normal((16, 6, 3)).astype(np.float32))
    g = load_model(path, calibration=calib)
    assert "WHILE" not in {op.kind.value for op in g.ops}
    if not int8:
        x = np.random.default_rng(0).standard_normal((1, 6, 3)).astype(np.float32)
        want = np.asarray(m(x))
        got = TFLMReference(g.meta["tflite_path"]).run([x])[0]
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
    report = check_parity(g, path, samples=5, workdir=tmp_path / "b")
    assert report.ok and all(o.max_rel <= 1e-5 for o in report.outputs), report.table()
    assert not int8 or all(o.exact == o.samples for o in report.outputs), report.table()


def _ops(g):
    return [op.kind.value for op in g.ops]


@pytest.fixture(scope="module")
def lstm_keras(tmp_path_factory):
    """A functional .keras model as users write one: Conv1D, two stacked LSTMs, a softmax head."""
    root = tmp_path_factory.mktemp("lstm")
    tf.keras.utils.set_random_seed(2)
    L = tf.keras.layers
    x = tf.keras.Input((30, 5))
    y = L.Conv1D(8, 3, activation="relu")(x)
    y = L.LSTM(12, return_sequences=True)(y)
    y = L.LSTM(10)(y)
    m = tf.keras.Model(x, L.Dense(3, activation="softmax")(y))
    m.save(root / "lstm.keras")
    np.save(root / "calib.npy", np.random.default_rng(0).standard_normal((32, 30, 5)).astype(np.float32))
    return m, root / "lstm.keras", root / "calib.npy"


def test_keras_lstm_becomes_the_fused_op_and_each_call_starts_from_zero_state(lstm_keras, tmp_path, monkeypatch):
    """Keras 3 converts an LSTM layer to a WHILE loop (TFLite Micro users get stuck there); the
    importer gives TFLite's converter the annotated function it fuses, so each LSTM is one
    UNIDIRECTIONAL_SEQUENCE_LSTM (a few KB of flash, not one copy of the cell per step). Its
    state is a TFLite variable kept between invokes, but the Keras model starts every call from
    zero state: the generated code resets it at every invoke, so three calls in a row each equal
    Keras on the same input (a carried state would differ from the second call on)."""
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    m, path, _ = lstm_keras
    g = load_model(path)
    assert _ops(g).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and not {"WHILE", "UNPACK"} & set(_ops(g))
    gen = generate(g, "m")
    assert "    m_reset();" in gen.files["m.c"]
    host = build_host(gen, g, tmp_path / "b")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 30, 5)).astype(np.float32)
    want = np.asarray(m(x)).reshape(-1)
    for _ in range(3):
        got = host.run([x])[0].reshape(-1)
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max())), (got, want)
    for _ in range(2):
        x = rng.standard_normal((1, 30, 5)).astype(np.float32)
        want = np.asarray(m(x)).reshape(-1)
        assert np.abs(host.run([x])[0].reshape(-1) - want).max() <= 1e-5


def test_keras_int8_lstm_is_fused_and_bit_exact(lstm_keras, tmp_path, monkeypatch):
    """With calibration data the fused LSTMs are quantized by the converter (int8 activations,
    int16 cell state) and cgen's int8 LSTM equals TFLite Micro byte for byte, each sample from
    the reset state; the result stays close to the float Keras model."""
    from platformio_tinyml.verify.parity import check_parity
    from platformio_tinyml.verify.reference import TFLMReference
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    m, path, calib = lstm_keras
    g = load_model(path, calibration=calib)
    lstms = [op for op in g.ops if op.kind.value == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert len(lstms) == 2 and all(g.tensors[op.inputs[0]].dtype is DType.INT8 for op in lstms)
    report = check_parity(g, path, samples=4, workdir=tmp_path / "b")
    assert report.ok and all(o.exact == o.samples for o in report.outputs), report.table()
    xq, yq = g.tensors[g.inputs[0]].quant, g.tensors[g.outputs[0]].quant
    x = np.random.default_rng(5).standard_normal((1, 30, 5)).astype(np.float32)
    xi = np.clip(np.round(x / xq.s) + xq.zp, -128, 127).astype(np.int8)
    got = (TFLMReference(g.meta["tflite_path"]).run([xi])[0].astype(np.float32) - yq.zp) * yq.s
    assert np.abs(got.reshape(-1) - np.asarray(m(x)).reshape(-1)).max() <= 0.05


@pytest.mark.parametrize("variant", [dict(go_backwards=True), dict(activation="relu")])
def test_lstm_variants_the_fused_op_lacks_are_unrolled(variant, tmp_path, monkeypatch):
    """An LSTM the fused op does not compute (backwards, another activation) is unrolled, and
    still equals Keras."""
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    tf.keras.utils.set_random_seed(4)
    m = tf.keras.Sequential([tf.keras.Input((6, 3)), tf.keras.layers.LSTM(5, **variant), tf.keras.layers.Dense(2)])
    m.save(tmp_path / "v.keras")
    g = load_model(tmp_path / "v.keras")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in _ops(g) and "WHILE" not in _ops(g) and not g.variables
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((1, 6, 3)).astype(np.float32)
    assert np.abs(host.run([x])[0].reshape(-1) - np.asarray(m(x)).reshape(-1)).max() <= 1e-5


def test_tflm_glue_resets_the_fused_lstm_state_at_every_invoke(lstm_keras, tmp_path, monkeypatch):
    """The tflm backend compiles the converted .tflite itself, whose LSTM state TFLite Micro keeps
    between invokes: its glue resets the interpreter's variables before each Invoke for a Keras
    model (and only for one whose state is the converter's, not a streaming model's own)."""
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.pipeline import compile_model
    monkeypatch.setenv("TINYML_CACHE_DIR", str(tmp_path / "cache"))
    _, path, calib = lstm_keras
    compile_model(path, load_profile("nucleo_f446re"), tmp_path / "k", name="k", backend="tflm", calibration=calib)
    glue = (tmp_path / "k" / "k_tflm.cc").read_text()
    assert glue.index("interp->Reset()") < glue.index("interp->Invoke()")
    tfl = load_model(path, calibration=calib).meta["tflite_path"]
    compile_model(tfl, load_profile("nucleo_f446re"), tmp_path / "t", name="t", backend="tflm")
    assert "Reset()" not in (tmp_path / "t" / "t_tflm.cc").read_text()   # the .tflite alone: a stream
