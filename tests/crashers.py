"""Tiny .tflite models that crash the TFLite Micro interpreter, for isolation tests.

Each is one operator built from scratch with the flatbuffer object API (the
schema shipped with ``tflite-micro``, no TensorFlow), shaped after a model the
fuzzer found: TFLM aborts, segfaults or divides by zero on it when run
in-process. They are kept in ``tests/fuzz_corpus/models/`` as regression files;
``python tests/crashers.py`` writes them again (byte-identical).

* ``tflm_abort_add_int8_int32``: ADD of an int8 tensor and an int32 constant
  (a RESHAPE whose opcode became ADD). TFLM aborts (SIGABRT) while allocating,
  which is what the tflm backend's arena sizing does in ``supports()``.
* ``tflm_segv_zero_size_input``: FULLY_CONNECTED whose input is [1, 0]; it
  allocates, then segfaults (SIGSEGV) in ``invoke``.
* ``tflm_fpe_conv_rank3_input``: CONV_2D on a rank-3 input; it allocates,
  then divides by zero (SIGFPE) in ``invoke``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS = Path(__file__).parent / "fuzz_corpus" / "models"

# model name -> the signal TFLM dies of, when ("open": allocating, "invoke"), its input's shape
CRASHES = {
    "tflm_abort_add_int8_int32": ("SIGABRT", "open", (1, 1, 1, 64)),
    "tflm_segv_zero_size_input": ("SIGSEGV", "invoke", (1, 0)),
    "tflm_fpe_conv_rank3_input": ("SIGFPE", "invoke", (1, 9, 9)),
}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S
    return S


def one_op_model(op: str, tensors: list[tuple], inputs: list[int], outputs: list[int], options=None) -> bytes:
    """One-operator model: ``tensors`` are (name, type, shape, data or None, scale, zero point)."""
    import flatbuffers
    S = _schema()
    m = S.ModelT()
    m.version = 3
    m.description = b"platformio-tinyml isolation test"
    m.buffers = [S.BufferT()]
    sg = S.SubGraphT()
    sg.name = b"main"
    sg.tensors = []
    for name, ttype, shape, data, scale, zero in tensors:
        t = S.TensorT()
        t.name = name.encode()
        t.type = getattr(S.TensorType, ttype)
        t.shape = np.array(shape, np.int32)
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.asarray(data).tobytes(), np.uint8)
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zero)]
            t.quantization = q
        sg.tensors.append(t)
    code = S.OperatorCodeT()
    code.builtinCode = getattr(S.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    m.operatorCodes = [code]
    o = S.OperatorT()
    o.opcodeIndex = 0
    o.inputs = np.array(inputs, np.int32)
    o.outputs = np.array(outputs, np.int32)
    if options is not None:
        o.builtinOptionsType, o.builtinOptions = options
    sg.operators = [o]
    sg.inputs = np.array([inputs[0]], np.int32)
    sg.outputs = np.array(outputs, np.int32)
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def build(name: str) -> bytes:
    S = _schema()
    rng = np.random.default_rng(0)
    if name == "tflm_abort_add_int8_int32":
        return one_op_model("ADD", [
            ("x", "INT8", [1, 1, 1, 64], None, 0.1, 0),
            ("shape", "INT32", [2], np.array([-1, 64], np.int32), None, None),
            ("y", "INT8", [1, 64], None, 0.1, 0),
        ], [0, 1], [2])
    if name == "tflm_segv_zero_size_input":
        fc = S.FullyConnectedOptionsT()
        return one_op_model("FULLY_CONNECTED", [
            ("x", "INT8", [1, 0], None, 0.05, -3),
            ("w", "INT8", [3, 5], rng.integers(-127, 128, (3, 5)).astype(np.int8), 0.02, 0),
            ("b", "INT32", [3], np.array([10, -20, 30], np.int32), 0.001, 0),
            ("y", "INT8", [1, 3], None, 0.1, 2),
        ], [0, 1, 2], [3], (S.BuiltinOptions.FullyConnectedOptions, fc))
    if name == "tflm_fpe_conv_rank3_input":
        conv = S.Conv2DOptionsT()
        conv.padding, conv.strideW, conv.strideH = S.Padding.VALID, 1, 1
        conv.dilationWFactor = conv.dilationHFactor = 1
        return one_op_model("CONV_2D", [
            ("x", "INT8", [1, 9, 9], None, 0.05, 0),
            ("w", "INT8", [4, 3, 3, 3], rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), [0.02] * 4, [0] * 4),
            ("b", "INT32", [4], np.array([1, 2, 3, 4], np.int32), [0.001] * 4, [0] * 4),
            ("y", "INT8", [1, 7, 7, 4], None, 0.1, 0),
        ], [0, 1, 2], [3], (S.BuiltinOptions.Conv2DOptions, conv))
    raise KeyError(name)


def path(name: str) -> Path:
    return CORPUS / f"{name}.tflite"


if __name__ == "__main__":
    CORPUS.mkdir(parents=True, exist_ok=True)
    for n in CRASHES:
        path(n).write_bytes(build(n))
        print(path(n))
