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
    def dims(text: str) -> tuple[int, ...]:
        shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
        return shape if shape and min(shape) >= 1 else ()
    return _named_lists(specs, where, dims, "NAME=D0,D1,... with positive dimensions",
                        "For example --input-shape input_1=1,49,10,1")


InputValues = dict[str, tuple[float, ...]]


def parse_input_values(specs: list[str] | tuple[str, ...] | None, where: str = "--input-value") -> InputValues:
    """``NAME=V0,V1,...`` items (``--input-value``, ``custom_tinyml_input_value``) as a dict: graph
    inputs bound to constants (a model's sample rate, a mode flag), folded at import.

    >>> parse_input_values(["sr=16000"])
    {'sr': (16000,)}
    """
    def numbers(text: str) -> tuple[float, ...]:
        return tuple(int(v) if v.strip().lstrip("+-").isdigit() else float(v) for v in text.split(",") if v.strip())
    return _named_lists(specs, where, numbers, "NAME=V0,V1,... with numbers", "For example --input-value sr=16000")


def _named_lists(specs, where: str, parse, form: str, example: str) -> dict:
    """``NAME=...`` items as {name: parse(text)}; a malformed item (``parse`` raising ValueError or
    giving nothing) or a name given twice is one line."""
    out = {}
    for item in specs or ():
        name, sep, text = item.strip().rpartition("=")
        try:
            value = parse(text)
        except ValueError:
            value = ()
        if not sep or not name.strip() or not value:
            raise ModelError(f"'{item}' is not {form}", where=where, hint=example)
        if name.strip() in out:
            raise ModelError(f"input '{name.strip()}' is given twice", where=where)
        out[name.strip()] = value
    return out


def load_model(path: str | Path, calibration: str | Path | None = None,
               input_shapes: InputShapes | None = None, input_values: InputValues | None = None) -> Graph:
    """Read ``path`` into a validated :class:`Graph`.

    ``calibration`` (a ``.npy`` of representative inputs) only applies to
    Keras/SavedModel sources, which are quantized to int8 with it.
    ``input_shapes`` sets the dynamic dimensions of named graph inputs
    (an open batch dimension is 1 without it); ``input_values`` binds named
    inputs of an ONNX model to constants (they are no longer inputs).
    """
    path = Path(path)
    if input_values and path.suffix.lower() != ".onnx":
        raise ModelError("input values (--input-value) apply to .onnx models", where=str(path),
                         hint="Export the model with that input as a constant instead")
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
        return load_onnx(path, input_shapes, input_values)
    raise ModelError(f"unknown model format '{suffix or path.name}'", where=str(path),
                     hint="Supported formats: " + ", ".join(FORMATS))
