"""Reference interpreters: the golden outputs generated code must match.

int8 and float TFLite models run on the TensorFlow Lite Micro host
interpreter (PyPI ``tflite-micro``, reference kernels); ONNX models on
onnxruntime. Both are imported lazily: they are optional extras.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import TinyMLError

_HINT = "Install the reference extra: pip install --pre 'platformio-tinyml[reference]'"


class ReferenceUnavailable(TinyMLError):
    pass


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ReferenceUnavailable("the TFLite Micro reference interpreter (tflite-micro) is not installed",
                                   hint=_HINT) from None
    return runtime


class TFLMReference:
    """Runs a .tflite model on the TFLite Micro host interpreter."""

    def __init__(self, model_path: str | Path, arena_size: int = 8 << 20):
        runtime = _tflm()
        self.path = str(model_path)
        self.interp = runtime.Interpreter.from_file(self.path, arena_size=arena_size)
        from ..model.tflite import load_tflite
        self.num_outputs = len(load_tflite(model_path).outputs)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.interp.reset()
        for k, x in enumerate(inputs):
            d = self.interp.get_input_details(k)
            self.interp.set_input(np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]), k)
        self.interp.invoke()
        return [np.array(self.interp.get_output(k)) for k in range(self.num_outputs)]


def tflm_arena_bytes(model_path: str | Path) -> int:
    """The arena TFLite Micro allocates for ``model_path`` (from print_allocations)."""
    runtime = _tflm()
    interp = runtime.Interpreter.from_file(str(model_path), arena_size=8 << 20)
    with _capture_fd(2) as read:
        interp.print_allocations()
    text = read()
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    if not m:
        raise RuntimeError(f"no arena total in TFLM output: {text[:200]!r}")
    return int(m.group(1))


@contextlib.contextmanager
def _capture_fd(fd: int):
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        result = {}
        try:
            yield lambda: result.get("text", "")
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            result["text"] = tmp.read().decode(errors="replace")


class OnnxReference:
    """Runs an .onnx model on onnxruntime (CPU).

    Inputs and outputs are in the IR's layout: rank-4 tensors the importer
    converted from NCHW (``graph.meta['input_layouts']``) are transposed.
    """

    def __init__(self, model_path: str | Path, graph=None):
        self.in_layouts = list((graph.meta.get("input_layouts") if graph is not None else None) or [])
        self.out_layouts = list((graph.meta.get("output_layouts") if graph is not None else None) or [])
        try:
            import onnxruntime as ort
        except ImportError:
            raise ReferenceUnavailable("onnxruntime is not installed", hint=_HINT) from None
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        from ..model.onnx import nchw_to_nhwc, nhwc_to_nchw
        feed = {}
        for k, (d, x) in enumerate(zip(self.sess.get_inputs(), inputs)):
            feed[d.name] = nhwc_to_nchw(x) if _converted(self.in_layouts, k) else x
        outs = self.sess.run(None, feed)
        return [nchw_to_nhwc(np.asarray(o)) if _converted(self.out_layouts, k) else np.asarray(o)
                for k, o in enumerate(outs)]


def _converted(layouts: list, k: int) -> bool:
    from ..model.onnx.layout import CONVERTED
    return k < len(layouts) and layouts[k] == CONVERTED


def reference_for(model_path: str | Path, graph=None):
    suffix = Path(model_path).suffix.lower()
    if suffix == ".tflite":
        return TFLMReference(model_path)
    if suffix == ".onnx":
        return OnnxReference(model_path, graph)
    raise ReferenceUnavailable(f"no reference interpreter for '{suffix}' models", where=str(model_path))
