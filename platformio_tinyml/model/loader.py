"""Load any supported model file into the IR, dispatching on its suffix.

``.tflite`` -> :func:`model.tflite.load_tflite`; ``.onnx`` ->
:func:`model.onnx.load_onnx`; ``.keras`` / ``.h5`` / a SavedModel directory ->
:func:`model.keras.load_keras` (converted to ``.tflite`` first, int8 when a
calibration ``.npy`` is given).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..ir import Graph

FORMATS = (".tflite", ".onnx", ".keras", ".h5", "SavedModel directory")


def model_format(path: str | Path) -> str:
    """The format name of ``path`` as reports show it: tflite, onnx or keras."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and (path / "saved_model.pb").is_file() or suffix in (".keras", ".h5"):
        return "keras"
    if suffix in (".tflite", ".onnx"):
        return suffix[1:]
    raise ModelError(f"unknown model format '{suffix or path.name}'", where=str(path),
                     hint="Supported formats: " + ", ".join(FORMATS) + ", and scikit-learn .pkl/.joblib/.skops")


def load_model(path: str | Path, calibration: str | Path | None = None) -> Graph:
    """Read ``path`` into a validated :class:`Graph`.

    ``calibration`` (a ``.npy`` of representative inputs) only applies to
    Keras/SavedModel sources, which are quantized to int8 with it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and (path / "saved_model.pb").is_file() or suffix in (".keras", ".h5"):
        from .keras import load_keras
        return load_keras(path, calibration)
    if calibration is not None:
        raise ModelError("a calibration dataset only applies to Keras/SavedModel models", where=str(path),
                         hint="Quantize .tflite/.onnx models when exporting them")
    if suffix == ".tflite":
        from .tflite import load_tflite
        return load_tflite(path)
    if suffix == ".onnx":
        from .onnx import load_onnx
        return load_onnx(path)
    raise ModelError(f"unknown model format '{suffix or path.name}'", where=str(path),
                     hint="Supported formats: " + ", ".join(FORMATS))
