"""The ``emlearn`` plugin: scikit-learn estimators and Dense-only Keras models
for any board with a C compiler.

Backend options (``custom_tinyml_backend_options`` / ``--option``):
``output=class`` (default for scikit-learn: int32 class label, or the most
likely GaussianMixture component), ``output=proba`` (float32 class
probabilities / component responsibilities), ``output=score``
(GaussianMixture log-likelihood), ``output=scores`` (default for Keras:
the last layer's float32 values); ``precision=double|float``
(KNeighborsClassifier distance arithmetic, default double).

Keras models reach backends as the ``.tflite`` the pipeline converted them
to; the graph's ``meta["converted_from"]`` names the ``.keras``/``.h5``
file, which this backend reads for the Dense weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import CompileError
from ..base import generated_files, support_from_estimate
from ..interface import CompileRequest, CompileResult, Estimate, Support
from .describe import ModelInfo, Unsupported, describe, describe_keras, estimate_sizes, keras_dense_stack

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# Ops a Dense-only Keras model becomes in TFLite: a cheap first check before Keras is loaded.
_DENSE_OPS = {"FULLY_CONNECTED", "RELU", "LOGISTIC", "TANH", "SOFTMAX", "RESHAPE"}


def _emlearn_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("emlearn")
    except Exception:
        return None


class EmlearnCompiler:
    name = "emlearn"
    formats = ("sklearn", "keras")   # input formats, as GET /v1/backends lists them

    def __init__(self) -> None:
        self.version = _emlearn_version() or "missing"

    def _info(self, request: CompileRequest) -> ModelInfo:
        return self._load(request)[1]

    def _load(self, request: CompileRequest):
        """(estimator or Keras (activations, weights, biases), ModelInfo) or Unsupported."""
        opts = request.options.backend_options
        keras_path = _keras_source(request)
        if request.model_format != "sklearn" and keras_path is None:
            raise Unsupported(f"emlearn compiles scikit-learn estimators and Dense-only Keras "
                              f"models; this is a '{request.model_format}' model")
        if _emlearn_version() is None:
            raise Unsupported("the emlearn package is not installed (pip install emlearn)")
        if keras_path is not None:
            layers, params = _keras_dense(keras_path)
            return params, describe_keras(layers, opts.get("output", "scores"))
        from ...model.sklearn import load_estimator
        est = load_estimator(request.model_path)
        return est, describe(est, opts.get("output", "class"), opts.get("precision", "double"))

    def supports(self, request: CompileRequest) -> Support:
        try:
            info = self._info(request)
        except Unsupported as e:
            return Support(False, (str(e),))
        est = self._estimate(info, request)
        return support_from_estimate(est, request.device)

    def _estimate(self, info: ModelInfo, request: CompileRequest) -> Estimate:
        flash, ram, cycles = estimate_sizes(info, request.device.arch, request.device.has_fpu)
        return Estimate(flash_bytes=flash, ram_bytes=ram, latency_cycles=cycles)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        from .emit import write
        try:
            est, info = self._load(request)
        except Unsupported as e:
            raise CompileError(str(e), where=str(request.model_path)) from None
        emitted = write(est, info, request.options.name, Path(outdir))
        files = generated_files(emitted.files)
        estimate = self._estimate(info, request)
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=estimate, arena_bytes=emitted.static_bytes,
            weight_bytes=4 * info.weights if info.weights else 0,
            build_flags=("-lm",) if info.family in ("mlp", "gmm", "classic") else (),
            diagnostics=info.notes,
            details={"estimator": info.kind, "family": info.family, "output": info.output,
                     "n_features": info.n_features, "leaf_bits": info.leaf_bits,
                     "decision_nodes": info.decision_nodes, "leaves": info.leaves,
                     "trees": info.n_trees, "classes": list(map(str, info.classes or ())),
                     "neighbors": info.k if info.family == "knn" else None,
                     "components": info.k if info.family == "gmm" else None})


def _keras_source(request: CompileRequest) -> Path | None:
    """The .keras/.h5 file a float (unquantized) 'tflite' request was converted from, or None."""
    g = request.graph
    if request.model_format != "tflite" or g is None:
        return None
    src = g.meta.get("converted_from")
    if not src or Path(src).suffix.lower() not in KERAS_SUFFIXES:
        return None
    if g.meta.get("quantized", "float32") != "float32":
        raise Unsupported("emlearn runs float32 Keras models; this one was quantized to int8 "
                          "(drop the calibration data to use emlearn)")
    ops = sorted({op.type_name for op in g.ops} - _DENSE_OPS)
    if ops:
        raise Unsupported("emlearn takes Keras models made of Dense layers (+ activations) only; "
                          f"this one has {', '.join(ops)}")
    return Path(src)


_KERAS_CACHE: dict[tuple[str, int], tuple] = {}


def _keras_dense(path: Path) -> tuple[list, tuple]:
    """Layer summaries (see :func:`keras_dense_stack`) and the emlearn (activations, weights,
    biases) of the Keras model in ``path``; cached per file version."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _KERAS_CACHE:
        try:
            import keras
        except ImportError:
            raise Unsupported("Keras (tensorflow) is not installed") from None
        try:
            model = keras.models.load_model(str(path), compile=False)
        except Exception as e:
            raise Unsupported(f"cannot load the Keras model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise Unsupported("emlearn takes Keras models with one input and one output")
        layers = []
        for layer in model.layers:
            cls = type(layer).__name__
            cfg = layer.get_config()
            rank, shape = 0, (0, 0)
            if cls == "Dense":
                kernel = layer.kernel
                shape = (int(kernel.shape[0]), int(kernel.shape[1]))
                try:
                    rank = len(layer.input.shape)
                except Exception:
                    rank = 2
            layers.append((cls, cfg, rank, shape))
        acts, _, dense_at = keras_dense_stack(layers)
        if len(model.inputs[0].shape) != 2:
            raise Unsupported("the Keras model's input must be flat (batch, features)")
        weights, biases = [], []
        for i in dense_at:
            layer = model.layers[i]
            w = layer.get_weights()
            weights.append(w[0].astype("float32"))
            biases.append(w[1].astype("float32") if layer.use_bias else
                          np.zeros(w[0].shape[1], "float32"))
        _KERAS_CACHE[key] = (layers, (acts, weights, biases))
    return _KERAS_CACHE[key]
