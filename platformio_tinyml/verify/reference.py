"""Reference interpreters: the golden outputs generated code must match.

int8 and float TFLite models run on the TensorFlow Lite Micro host
interpreter (PyPI ``tflite-micro``, reference kernels); ONNX models on
onnxruntime. Both are imported lazily: they are optional extras.

A model is untrusted input, and both interpreters are native code that a
malformed model can crash: they run in a child process
(:mod:`platformio_tinyml.isolate`), one per Python process for every
reference run, started on first use and again after a failure. A crash
there is one line (``reference interpreter crashed on this model (signal 6,
SIGABRT)``); a model the interpreter refuses is one line with its reason.
The child keeps the last few interpreters it opened, keyed by file and
version, so the N inputs of a ``verify`` run cost one load.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import TinyMLError
from ..isolate import Worker, shared_worker

_HINT = "Install the reference extra: pip install --pre 'platformio-tinyml[reference]'"
_KEEP = 8   # interpreters the child keeps open


class ReferenceUnavailable(TinyMLError):
    pass


class ReferenceFailed(TinyMLError):
    """The reference interpreter refused or failed to run the model."""


def reference_worker() -> Worker:
    """The child process that runs this process's reference interpreters."""
    return shared_worker("reference interpreter", hint="The model is probably malformed")


def _call(fn, *args, where: str):
    """``fn(*args)`` in the reference child; a refusal ends with what the interpreter said."""
    try:
        return reference_worker().call(fn, *args, where=where)
    except ReferenceFailed as e:
        said = [ln.strip() for ln in e.child_log.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
        if not said:
            raise
        raise ReferenceFailed(f"{e.what} ({said[-1][:200]})", where=e.where) from None


def _key(kind: str, path: str | Path, *extra) -> tuple:
    """What the child caches an interpreter under: the file and its version."""
    st = os.stat(path)
    return (kind, str(path), st.st_size, st.st_mtime_ns, *extra)


class TFLMReference:
    """Runs a .tflite model on the TFLite Micro host interpreter (in the reference child)."""

    def __init__(self, model_path: str | Path, arena_size: int = 8 << 20):
        self.path = str(model_path)
        self._key = _key("tflm", self.path, arena_size)
        self.num_outputs = _tflite_output_count(self.path)
        _call(_tflm_open, self._key, where=self.path)

    def run(self, inputs: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        """One invocation; ``reset=False`` keeps the resource variables (streaming
        models) from the previous one, as an application calling invoke again does."""
        return _call(_tflm_run, self._key, [np.asarray(x) for x in inputs], self.num_outputs, reset,
                     where=self.path)


class TFLiteReference:
    """Runs a .tflite model on TensorFlow Lite's interpreter (in the reference child), for
    float models TFLite Micro cannot run right: float16 weights (DEQUANTIZE of FLOAT16
    has no TFLite Micro kernel) and float32 SPACE_TO_BATCH_ND with padding (TFLite Micro
    pads with a value it never sets). Float outputs, so the 1-LSB int8 differences
    between the two interpreters do not arise."""

    def __init__(self, model_path: str | Path):
        self.path = str(model_path)
        self._key = _key("tflite", self.path)
        _call(_tflite_open, self._key, where=self.path)

    def run(self, inputs: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        return _call(_tflite_run, self._key, [np.asarray(x) for x in inputs], where=self.path)


def _tflite_output_count(path: str) -> int:
    """Outputs of the model's first subgraph, read from the flatbuffer as the interpreter
    will (not through the importer: the reference also runs models it would refuse)."""
    import tflite
    try:
        data = Path(path).read_bytes()
        return int(tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).OutputsLength())
    except Exception as e:   # any malformed flatbuffer: struct, index and type errors
        raise ReferenceFailed(f"the reference interpreter cannot read the model's outputs "
                              f"({type(e).__name__})", where=path) from None


def tflm_arena_bytes(model_path: str | Path) -> int:
    """The arena TFLite Micro allocates for ``model_path`` (from print_allocations)."""
    return _call(_tflm_arena, str(model_path), where=str(model_path))


class OnnxReference:
    """Runs an .onnx model on onnxruntime (CPU, in the reference child).

    Inputs and outputs are in the IR's layout: rank-4 tensors the importer
    converted from NCHW (``graph.meta['input_layouts']``) are transposed.
    """

    def __init__(self, model_path: str | Path, graph=None):
        self.in_layouts = list((graph.meta.get("input_layouts") if graph is not None else None) or [])
        self.out_layouts = list((graph.meta.get("output_layouts") if graph is not None else None) or [])
        # inputs bound to constants (--input-value): fed their values; the others in the IR's order
        self.bound = {name: np.array(b["values"], b["dtype"]).reshape(b["shape"])
                      for name, b in ((graph.meta.get("bound_inputs") if graph is not None else None) or {}).items()}
        self.path = str(model_path)
        self._key = _key("onnx", self.path)
        _call(_onnx_open, self._key, where=self.path)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        from ..model.onnx import nchw_to_nhwc, nhwc_to_nchw
        feed = [nhwc_to_nchw(x) if _converted(self.in_layouts, k) else np.asarray(x) for k, x in enumerate(inputs)]
        outs = _call(_onnx_run, self._key, feed, self.bound, where=self.path)
        for k, o in enumerate(outs):
            if _converted(self.out_layouts, k) and np.ndim(o) != 4:
                raise ReferenceFailed(f"onnxruntime's output #{k} has shape {list(np.shape(o))}, not the rank-4 "
                                      "output the importer read: the two read this model differently",
                                      where=self.path)
        return [nchw_to_nhwc(o) if _converted(self.out_layouts, k) else o for k, o in enumerate(outs)]


def _converted(layouts: list, k: int) -> bool:
    from ..model.onnx.layout import CONVERTED
    return k < len(layouts) and layouts[k] == CONVERTED


def warm_up(model_path: str | Path) -> None:
    """Start the reference child and have it import the interpreter for ``model_path``
    while the caller goes on (``verify`` builds the host code meanwhile)."""
    modules = {".tflite": ("tflite_micro.python.tflite_micro.runtime",), ".onnx": ("onnxruntime",)}
    interpreter = modules.get(Path(model_path).suffix.lower())
    if interpreter:
        reference_worker().start(__name__, *interpreter)


def reference_for(model_path: str | Path, graph=None):
    suffix = Path(model_path).suffix.lower()
    if suffix == ".tflite" and ((graph is not None and graph.meta.get("float16_weights"))
                                or _tflm_pads_unset(model_path)):
        return TFLiteReference(model_path)
    if suffix == ".tflite":
        return TFLMReference(model_path)
    if suffix == ".onnx":
        return OnnxReference(model_path, graph)
    raise ReferenceUnavailable(f"no reference interpreter for '{suffix}' models", where=str(model_path))


def _tflm_pads_unset(model_path: str | Path) -> bool:
    """Whether TFLite Micro's output for the model depends on memory it never wrote (a
    float32 SPACE_TO_BATCH_ND with padding): then TensorFlow Lite's interpreter, which
    pads with 0, is the reference. A file the flatbuffer reader cannot read stays with
    TFLite Micro, which refuses it in one line from its child."""
    from ..compilers.tflm.flatbuffer import read_facts
    try:
        return bool(read_facts(model_path).unset_padding)
    except Exception:   # any malformed flatbuffer: struct, index and type errors
        return False


# -- run in the reference child -------------------------------------------------------

_open: OrderedDict = OrderedDict()


def _cached(key: tuple, make):
    obj = _open.pop(key, None)
    if obj is None:
        obj = make()
    _open[key] = obj
    while len(_open) > _KEEP:
        _open.popitem(last=False)
    return obj


def _refusing(path: str, interpreter: str, fn):
    """``fn()``, with the interpreter's exceptions as one line (see :func:`_call`)."""
    try:
        return fn()
    except (TinyMLError, MemoryError):
        raise
    except Exception as e:
        said = " ".join(str(e).split())   # onnxruntime's messages span lines
        raise ReferenceFailed(f"the reference interpreter ({interpreter}) cannot run this model: "
                              f"{type(e).__name__}: {said}", where=path) from None


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ReferenceUnavailable("the TFLite Micro reference interpreter (tflite-micro) is not installed",
                                   hint=_HINT) from None
    return runtime


def _tflm_interpreter(key: tuple):
    """The interpreter for ``key`` (opened now, or kept from an earlier call)."""
    path, arena_size = key[1], key[-1]
    runtime = _tflm()
    return _cached(key, lambda: _refusing(path, "TFLite Micro",
                                          lambda: runtime.Interpreter.from_file(path, arena_size=arena_size)))


def _tflm_open(key: tuple) -> None:
    _tflm_interpreter(key)


def _tflm_run(key: tuple, inputs: list[np.ndarray], num_outputs: int, reset: bool = True) -> list[np.ndarray]:
    interp = _tflm_interpreter(key)

    def run():
        if reset:
            interp.reset()
        for k, x in enumerate(inputs):
            d = interp.get_input_details(k)
            interp.set_input(np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]), k)
        interp.invoke()
        return [np.array(interp.get_output(k)) for k in range(num_outputs)]
    return _refusing(key[1], "TFLite Micro", run)


def _tflm_arena(path: str) -> int:
    runtime = _tflm()
    interp = _refusing(path, "TFLite Micro", lambda: runtime.Interpreter.from_file(path, arena_size=8 << 20))
    with _capture_fd(2) as read:
        interp.print_allocations()
    text = read()
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    if not m:
        raise ReferenceFailed(f"the reference interpreter (TFLite Micro) printed no arena total: {text[:200]!r}",
                              where=path)
    return int(m.group(1))


def _tflite_interpreter(key: tuple):
    def make():
        try:
            import tensorflow as tf
        except ImportError:
            raise ReferenceUnavailable("TensorFlow (for TensorFlow Lite's interpreter) is not installed",
                                       hint="Install the keras extra: pip install 'platformio-tinyml[keras]'") from None
        interp = tf.lite.Interpreter(model_path=key[1], num_threads=1)
        interp.allocate_tensors()
        return interp
    return _cached(key, lambda: _refusing(key[1], "TensorFlow Lite", make))


def _tflite_open(key: tuple) -> None:
    _tflite_interpreter(key)


def _tflite_run(key: tuple, inputs: list[np.ndarray]) -> list[np.ndarray]:
    interp = _tflite_interpreter(key)

    def run():
        for d, x in zip(interp.get_input_details(), inputs):
            interp.set_tensor(d["index"], np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        interp.invoke()
        return [np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()]
    return _refusing(key[1], "TensorFlow Lite", run)


def _onnx_session(key: tuple):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ReferenceUnavailable("onnxruntime is not installed", hint=_HINT) from None

    def make():
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3   # errors only, and those reach the user as our line
        so.intra_op_num_threads = 1  # deterministic, and no thread pool per core in the child
        return ort.InferenceSession(key[1], so, providers=["CPUExecutionProvider"])
    return _cached(key, lambda: _refusing(key[1], "onnxruntime", make))


def _onnx_open(key: tuple) -> None:
    _onnx_session(key)


def _onnx_run(key: tuple, inputs: list[np.ndarray], bound: dict | None = None) -> list[np.ndarray]:
    sess = _onnx_session(key)
    bound = bound or {}
    feed = dict(bound)
    feed.update(zip((d.name for d in sess.get_inputs() if d.name not in bound), inputs))
    return [np.asarray(o) for o in _refusing(key[1], "onnxruntime", lambda: sess.run(None, feed))]


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
