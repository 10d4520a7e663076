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


InputShapes = dict[str, tuple[int, ...]]


def parse_input_shapes(specs: list[str] | tuple[str, ...] | None, where: str = "--input-shape") -> InputShapes:
    """``NAME=1,49,10,1`` items (``--input-shape``, ``custom_tinyml_input_shape``) as a dict.

    >>> parse_input_shapes(["x=1,49,10,1"])
    {'x': (1, 49, 10, 1)}
    """
    out: InputShapes = {}
    for item in specs or ():
        name, sep, dims = item.strip().rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not sep or not name.strip() or not shape or min(shape) < 1:
            raise ModelError(f"'{item}' is not NAME=D0,D1,... with positive dimensions", where=where,
                             hint="For example --input-shape input_1=1,49,10,1")
        if name.strip() in out:
            raise ModelError(f"input '{name.strip()}' is given twice", where=where)
        out[name.strip()] = shape
    return out


def load_model(path: str | Path, calibration: str | Path | None = None,
               input_shapes: InputShapes | None = None) -> Graph:
    """Read ``path`` into a validated :class:`Graph`.

    ``calibration`` (a ``.npy`` of representative inputs) only applies to
    Keras/SavedModel sources, which are quantized to int8 with it.
    ``input_shapes`` sets the dynamic dimensions of named graph inputs
    (an open batch dimension is 1 without it).
    """
    path = Path(path)
    if input_shapes and (path.is_dir() or path.suffix.lower() not in (".tflite", ".onnx")):
        raise ModelError("input shapes apply to .tflite and .onnx models", where=str(path),
                         hint="Give the Keras model's Input layer a fixed shape instead")
    suffix = path.suffix.lower()
    if path.is_dir() and (path / "saved_model.pb").is_file() or suffix in (".keras", ".h5"):
        from .keras import load_keras
        return load_keras(path, calibration)
    if calibration is not None:
        raise ModelError("a calibration dataset only applies to Keras/SavedModel models", where=str(path),
                         hint="Quantize .tflite/.onnx models when exporting them")
    if suffix == ".tflite":
        from .tflite import load_tflite
        return load_tflite(path, input_shapes)
    if suffix == ".onnx":
        from .onnx import load_onnx
        return load_onnx(path, input_shapes)
    raise ModelError(f"unknown model format '{suffix or path.name}'", where=str(path),
                     hint="Supported formats: " + ", ".join(FORMATS))
