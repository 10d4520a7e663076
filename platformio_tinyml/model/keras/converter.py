"""Convert a Keras model or SavedModel to ``.tflite`` with ``tf.lite.TFLiteConverter``.

Without calibration data the export is float32. With a calibration ``.npy``
(representative inputs, shape ``[n, *input_shape]`` or ``[n, 1, *input_shape]``)
it is full-integer int8 post-training quantization with int8 input and output,
the form the int8 kernels run bit-exactly to TFLite Micro. Keras ``LSTM`` layers become
TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (:func:`_fused_lstm_converter`; Keras 3 alone
gives a WHILE loop), other recurrent layers are unrolled. The ``.tflite`` is
written to a cache directory (``.tinyml_cache`` next to the model, keyed by a
hash of the model and calibration files) and loaded with the TFLite importer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from ...errors import ModelError, TinyMLError
from ...ir import Graph
from ...ir.graph import RESET_EACH_INVOKE

_HINT = "Install the Keras extra: pip install 'platformio-tinyml[keras]'"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_stderr():   # absl/oneDNN banners at import time
            import tensorflow as tf
    except ImportError:
        raise ModelError("TensorFlow is needed to convert Keras/SavedModel models but is not installed",
                         hint=_HINT) from None
    return tf


_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def _unrolled(tf, model):
    """``model`` with its recurrent layers (LSTM, GRU, SimpleRNN) unrolled over their fixed
    number of steps, the weights copied: Keras 3 converts a rolled one to a WHILE loop with body
    subgraphs, which no backend here runs; unrolled, it becomes plain UNPACK/FULLY_CONNECTED/
    SPLIT/LOGISTIC/TANH/MUL/ADD ops. ``model`` itself where it has none, or where it cannot be
    cloned (a subclassed model, an open number of steps): its WHILE is then refused in one line."""
    if not any(type(layer).__name__ in _RECURRENT and not layer.unroll for layer in model.layers):
        return model

    def clone(layer):
        cfg = layer.get_config()
        if type(layer).__name__ in _RECURRENT:
            cfg["unroll"] = True
        return layer.__class__.from_config(cfg)
    try:
        copy = tf.keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
        return copy
    except Exception:   # noqa: BLE001 - any Keras failure: convert the model as it is
        return model


def _fusable_lstm(layer) -> bool:
    """A Keras ``LSTM`` layer TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM computes exactly: the
    standard activations, a bias, forward, not stateful (dropout does nothing at inference)."""
    if type(layer).__name__ != "LSTM":
        return False
    cfg = layer.get_config()
    return (cfg.get("activation") == "tanh" and cfg.get("recurrent_activation") == "sigmoid"
            and cfg.get("use_bias", True) and not cfg.get("go_backwards") and not cfg.get("stateful"))


def _lstm_function(tf):
    """A TensorFlow function with the argument list, results and ``api_implements = "lstm_..."``
    annotation TFLite's converter replaces by one fused UNIDIRECTIONAL_SEQUENCE_LSTM (the
    annotation tf_keras' LSTM carried and Keras 3's lost). The body is the LSTM itself, Keras'
    gate order (input, forget, cell, output), so the function also computes what it stands for."""
    import uuid

    def lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        def step(carry, x):
            h, c = carry
            z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c
        hs, cs = tf.scan(step, tf.transpose(inputs, [1, 0, 2]), initializer=(init_h, init_c))
        return hs[-1], tf.transpose(hs, [1, 0, 2]), hs[-1], cs[-1], tf.constant(0.0)
    return tf.function(lstm, autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4().hex}", "api_preferred_device": "CPU",
        "time_major": False, "go_backwards": False})


def _fused_lstm_model(tf, model):
    """``model`` with every :func:`_fusable_lstm` layer replaced by a layer calling
    :func:`_lstm_function` (the weights copied), other recurrent layers unrolled; None when the
    model has no such layer, masks its inputs (a fused LSTM has no mask) or cannot be cloned."""
    import keras
    fused = [layer.name for layer in model.layers if _fusable_lstm(layer)]
    if not fused or any(type(layer).__name__ == "Masking" or getattr(layer, "mask_zero", False)
                        for layer in model.layers):
        return None

    class FusedLSTM(keras.layers.Layer):
        def __init__(self, src):
            super().__init__(name=src.name, dtype=src.dtype_policy)
            self.units, self.sequences, self.states = src.units, src.return_sequences, src.return_state
            self.fn = _lstm_function(tf)
            self.weights_ = [self.add_weight(shape=w.shape, name=n, trainable=True)
                             for w, n in zip(src.get_weights(), ("kernel", "recurrent_kernel", "bias"))]
            self.set_weights(src.get_weights())

        def call(self, x, mask=None, training=None, initial_state=None):
            if initial_state is not None:
                raise ValueError("an LSTM given its initial state")
            zero = tf.zeros((tf.shape(x)[0], self.units), x.dtype)
            last, seq, h, c, _ = self.fn(x, zero, zero, *(tf.convert_to_tensor(w) for w in self.weights_))
            y = seq if self.sequences else last
            return [y, h, c] if self.states else y

        def compute_output_shape(self, shape):
            y = (shape[0], shape[1], self.units) if self.sequences else (shape[0], self.units)
            return [y, (shape[0], self.units), (shape[0], self.units)] if self.states else y

    def clone(layer):
        if layer.name in fused:
            return FusedLSTM(layer)
        cfg = layer.get_config()
        if type(layer).__name__ in _RECURRENT:
            cfg["unroll"] = True
        return layer.__class__.from_config(cfg)
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        for src, dst in zip(model.layers, copy.layers):
            if src.name not in fused:
                dst.set_weights(src.get_weights())
        return copy
    except Exception:   # noqa: BLE001 - any Keras failure: unroll instead
        return None


def _tflite_matches(tf, flat: bytes, model, shapes, tol: float = 1e-4) -> bool:
    """The float ``.tflite`` has a fused LSTM and computes ``model``: its outputs on two seeded
    random inputs within ``tol`` of Keras' (relative to the largest output), or False."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=flat)
    if "UNIDIRECTIONAL_SEQUENCE_LSTM" not in {d["op_name"] for d in interp._get_ops_details()}:
        return False
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != len(shapes) or len(outs) != len(model.outputs):
        return False
    rng = np.random.default_rng(0)
    for _ in range(2):
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for d, x in zip(ins, xs):       # the converter keeps Keras' input order
            interp.set_tensor(d["index"], x)
        interp.reset_all_variables()    # each call from zero state, as Keras computes it
        interp.invoke()
        want = model(xs if len(xs) > 1 else xs[0], training=False)
        want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
        got = sorted((interp.get_tensor(d["index"]) for d in outs), key=lambda a: a.shape)
        want = sorted(want, key=lambda a: a.shape)
        for g, w in zip(got, want):
            if g.shape != w.shape or np.abs(g - w).max() > tol * max(1.0, float(np.abs(w).max())):
                return False
    return True


def _fused_lstm_converter(tf, model, work: Path):
    """A converter whose float conversion has one UNIDIRECTIONAL_SEQUENCE_LSTM per Keras LSTM
    layer (Keras 3 gives a WHILE loop): the model, its LSTMs swapped (:func:`_fused_lstm_model`),
    as a batch-1 function of constant weights saved as a SavedModel, the form in which TFLite's
    converter fuses the annotated function. Returns (the converter, its float32 ``.tflite``, already
    converted and checked); None unless the float conversion has the fused ops and computes what
    ``model`` computes (:func:`_tflite_matches`): the caller unrolls then."""
    copy = _fused_lstm_model(tf, model)
    if copy is None:
        return None
    try:
        shapes = [(1, *map(int, i.shape[1:])) for i in model.inputs]
        trainable = [tf.constant(np.asarray(v)) for v in copy.trainable_variables]
        fixed = [tf.constant(np.asarray(v)) for v in copy.non_trainable_variables]

        @tf.function(input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
        def forward(*xs):
            y, _ = copy.stateless_call(trainable, fixed, xs if len(xs) > 1 else xs[0], training=False)
            return y
        module = tf.Module()
        module.forward = forward
        tf.saved_model.save(module, str(work), signatures=forward.get_concrete_function())
        conv = tf.lite.TFLiteConverter.from_saved_model(str(work))
        flat = conv.convert()
        if not _tflite_matches(tf, flat, model, shapes):
            return None
        return conv, flat
    except Exception:   # noqa: BLE001 - any TensorFlow failure: unroll instead
        return None


def _fixed_batch_converter(tf, model, work: Path | None = None):
    """(A converter for ``model`` with batch size 1, its float32 conversion when already made, else
    None): MCU code has static shapes, and a free batch dimension makes the converter emit
    SHAPE/dynamic RESHAPE ops. LSTM layers become fused LSTM ops (:func:`_fused_lstm_converter`)
    where they can, other recurrent layers are unrolled (:func:`_unrolled`)."""
    if work is not None:
        fused = _fused_lstm_converter(tf, model, work)
        if fused is not None:
            return fused
    model = _unrolled(tf, model)
    inputs = [tf.keras.Input(tuple(i.shape[1:]), batch_size=1, dtype=i.dtype) for i in model.inputs]
    outputs = model(inputs if len(inputs) > 1 else inputs[0])
    return tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, outputs)), None


def _saved_model_converter(tf, path: Path):
    """A converter for the SavedModel folder ``path`` and its first input's shape.

    TF 2's loader restores the SavedModel's whole object graph, which fails on
    models saved by older Keras versions whose optimizer objects no longer
    restore (``'_UserObject' object has no attribute 'add_slot'``, as with the
    MLPerf Tiny KWS SavedModel). The TF 1 converter reads only the serving
    signature's graph and variables, which is all a conversion needs; it is
    used when the TF 2 one fails, with every free (batch) dimension set to 1.
    """
    try:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(path))
        spec = conv._funcs[0].structured_input_signature[1] if getattr(conv, "_funcs", None) else {}
        if spec:
            return conv, tuple(next(iter(spec.values())).shape)
        shapes = _serving_input_shapes(path)   # the signature as the file states it
        return conv, tuple(next(iter(shapes.values()))) if shapes else (None,)
    except Exception as first:
        shapes = _serving_input_shapes(path)
        if not shapes:
            raise first
    conv = tf.compat.v1.lite.TFLiteConverter.from_saved_model(str(path), input_shapes=shapes)
    return conv, tuple(next(iter(shapes.values())))


def _serving_input_shapes(path: Path) -> dict[str, list[int]]:
    """Input tensor name -> shape (free dimensions as 1) of the 'serve' graph's default signature."""
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        sig = mg.signature_def.get("serving_default")
        if "serve" in mg.meta_info_def.tags and sig is not None:
            return {info.name.split(":")[0]: [max(1, d.size) for d in info.tensor_shape.dim]
                    for _, info in sorted(sig.inputs.items())}
    return {}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ logging) for the duration; Python errors still propagate."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _digest(path: Path, calibration: Path | None) -> str:
    h = hashlib.sha256(b"lstm-fused")   # the conversion recipe: earlier ones unrolled LSTMs or kept WHILE
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files + ([calibration] if calibration else []):
        h.update(str(f.relative_to(path) if path.is_dir() and f != calibration else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _calibration(path: Path, input_shape: tuple) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ModelError(f"cannot read calibration data ({type(e).__name__}: {e})", where=str(path),
                         hint="Save representative inputs with numpy.save(path, array)") from None
    want = tuple(d for d in input_shape[1:])
    if tuple(data.shape[1:]) == want:
        data = data[:, None]
    if data.ndim < 1 or tuple(data.shape[2:]) != want:
        raise ModelError(f"calibration data has shape {list(data.shape)}; expected [n, {', '.join(map(str, want))}]",
                         where=str(path), hint="One representative input per row")
    return data.astype(np.float32)


def default_cache_dir() -> Path:
    """Where converted models are kept: ``$TINYML_CACHE_DIR/keras``, else the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``), never beside the model in the source tree."""
    root = os.environ.get("TINYML_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "keras"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "platformio-tinyml" / "keras"


def convert_keras(path: str | Path, calibration: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> Path:
    """Convert ``path`` and return the cached ``.tflite`` path (int8 with ``calibration``)."""
    path = Path(path)
    calib = Path(calibration) if calibration is not None else None
    if not path.exists():
        raise ModelError("model file not found", where=str(path))
    if calib is not None and not calib.is_file():
        raise ModelError("calibration file not found", where=str(calib))
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    out = cache / f"{path.stem}-{'int8' if calib else 'f32'}-{_digest(path, calib)}.tflite"
    if out.is_file():
        return out
    tf = _tf()
    with tempfile.TemporaryDirectory(prefix="tinyml-keras-") as work:   # the fused-LSTM SavedModel
        flat = None     # the float32 conversion, where the fused-LSTM check already made it
        try:
            if path.is_dir():
                with _quiet_stderr(), contextlib.redirect_stdout(io.StringIO()):
                    conv, shape = _saved_model_converter(tf, path)
            else:
                model = tf.keras.models.load_model(str(path), compile=False)
                with _quiet_stderr(), contextlib.redirect_stdout(io.StringIO()):
                    conv, flat = _fixed_batch_converter(tf, model, Path(work) / "fused")
                shape = tuple(model.inputs[0].shape)
        except Exception as e:
            raise ModelError(f"cannot load the Keras model ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                             where=str(path), hint="Save it with model.save('model.keras')") from None
        if calib is not None:
            flat = None
            data = _calibration(calib, shape)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([x] for x in data)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        try:
            # TF's C++ logging and Keras' export banner would land in the user's build log.
            with _quiet_stderr(), contextlib.redirect_stdout(io.StringIO()):
                flat = flat if flat is not None else conv.convert()
        except Exception as e:
            raise ModelError(f"TFLite conversion failed ({type(e).__name__}: {str(e).splitlines()[0][:300]})",
                             where=str(path), hint="Use only TFLite builtin operators") from None
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(flat)
    tmp.replace(out)
    return out


def load_keras(path: str | Path, calibration: str | Path | None = None) -> Graph:
    """Convert (cached) and import ``path``; the graph records the ``.tflite`` it came from."""
    from ..tflite import load_tflite
    tfl = convert_keras(path, calibration)
    try:
        g = load_tflite(tfl)
    except TinyMLError as e:    # name the user's model, not the converted file in the cache
        if e.where == str(tfl):
            e.where = f"{path} (converted to TFLite)"
            e.args = (e.format(),)
        raise
    g.meta.update(converted_from=str(path), tflite_path=str(tfl),
                  quantized="int8" if calibration is not None else "float32")
    if g.variables and Path(path).is_file():
        # A .keras/.h5 model starts every call from zero state; the variables are the fused
        # LSTMs' hidden and cell state, which TFLite keeps between invokes: reset them each time.
        g.meta[RESET_EACH_INVOKE] = True
    return g
