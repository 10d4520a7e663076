"""Reader-level checks of a ``.tflite`` file, before the IR is built (rules: :mod:`..validate`).

After :func:`check_tflite` every index the reader follows (buffers, opcodes, tensors) is in
range, every name decodes and every constant's data has the size its shape needs.
"""

from __future__ import annotations

import tflite

from ..validate import (BUFFER_BOUNDS, BUFFER_INDEX, CONSTANT_SIZE, OPCODE_INDEX, TENSOR_INDEX, VARIABLE_CONSTANT,
                        InvalidModelError, count, decode_name, printable)

_ITEMSIZE = {tflite.TensorType.FLOAT32: 4, tflite.TensorType.INT32: 4, tflite.TensorType.UINT8: 1,
             tflite.TensorType.INT64: 8, tflite.TensorType.INT16: 2, tflite.TensorType.INT8: 1}


def builtin_code(oc) -> int:
    """The operator an ``OperatorCode`` names, as TensorFlow Lite (Micro) reads it: the larger of
    ``builtin_code`` and ``deprecated_builtin_code``. ``builtin_code`` is read raw: the PyPI
    ``tflite`` package's ``BuiltinCode()`` returns ``deprecated_builtin_code`` whenever
    ``builtin_code`` is below 127, so a file whose two fields disagree (builtin_code 18, MUL;
    deprecated 0, ADD) read as ADD where TensorFlow Lite Micro runs MUL (a fuzz finding)."""
    import flatbuffers
    tab = oc._tab
    o = tab.Offset(10)
    raw = tab.Get(flatbuffers.number_types.Int32Flags, o + tab.Pos) if o else 0
    return max(int(raw), int(oc.DeprecatedBuiltinCode()))


def check_tflite(model, buf: bytes, path: str, subgraph: int = 0) -> None:
    """Reader-level rules on a parsed ``tflite.Model`` (``subgraph``, 0: the main one) read from ``buf``.

    Run before the IR is built: afterwards every index the reader follows is in range
    and every constant's data has the size its shape needs.
    """
    sg = model.Subgraphs(subgraph)
    n_t, n_buf, n_oc = sg.TensorsLength(), model.BuffersLength(), model.OperatorCodesLength()
    decode_name(sg.Name(), f"subgraph {subgraph}", path)
    for k in range(n_oc):
        decode_name(model.OperatorCodes(k).CustomCode(), f"operator code #{k}", path)
    for i in range(n_t):
        t = sg.Tensors(i)
        subject = f"tensor #{i} '{printable(decode_name(t.Name(), f'tensor #{i}', path))}'"
        b = t.Buffer()
        if not 0 <= b < n_buf:
            raise InvalidModelError(BUFFER_INDEX, subject, f"uses buffer {b}; the model has {n_buf}", path)
        data = model.Buffers(b)
        off, size = (int(data.Offset()), int(data.Size())) if data is not None else (0, 0)
        if off > 1 and off + size > len(buf):
            raise InvalidModelError(BUFFER_BOUNDS, subject, f"has data at bytes {off}..{off + size}, past "
                                    f"the end of the {len(buf):,}-byte file", path)
        nbytes = size if off > 1 else (data.DataLength() if data is not None else 0)
        if nbytes and t.Type() in _ITEMSIZE:
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            want = count(shape) * _ITEMSIZE[t.Type()]
            if any(d < 0 for d in shape) or nbytes != want:
                raise InvalidModelError(CONSTANT_SIZE, subject, f"of shape {shape} has {nbytes:,} bytes "
                                        f"of data", path)
        if nbytes and t.IsVariable():
            # An old-style variable tensor (state kept between invocations): TFLite Micro allocates it in
            # the arena and resets it to zero, so the data would be dropped. A variable without data (an
            # activation) computes as an ordinary one; resource variables (VAR_HANDLE) are variables.py's.
            raise InvalidModelError(VARIABLE_CONSTANT, subject, "has constant data and is marked is_variable "
                                    "(variable tensors are not supported)", path)
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        if not 0 <= op.OpcodeIndex() < n_oc:
            raise InvalidModelError(OPCODE_INDEX, f"operator #{k}", f"uses opcode {op.OpcodeIndex()}; the "
                                    f"model has {n_oc}", path)
        ins = list(op.InputsAsNumpy()) if op.InputsLength() else []
        outs = list(op.OutputsAsNumpy()) if op.OutputsLength() else []
        bad = [int(x) for x in ins if not -1 <= x < n_t] + [int(x) for x in outs if not 0 <= x < n_t]
        if bad:
            raise InvalidModelError(TENSOR_INDEX, f"operator #{k}", f"uses tensor {bad[0]}; the graph has "
                                    f"{n_t}", path)
    for what, idxs in (("input", sg.InputsAsNumpy() if sg.InputsLength() else []),
                       ("output", sg.OutputsAsNumpy() if sg.OutputsLength() else [])):
        bad = [int(x) for x in idxs if not 0 <= x < n_t]
        if bad:
            raise InvalidModelError(TENSOR_INDEX, "graph", f"{what} is tensor {bad[0]}; the graph has {n_t}",
                                    path)


def tflite_buffer_bytes(buf: bytes, data) -> bytes:
    """The bytes of TFLite buffer ``data`` (inline, or at its offset for >2 GB-format files),
    after :func:`check_tflite`."""
    off = int(data.Offset())
    if off > 1:
        return bytes(buf[off:off + int(data.Size())])
    return data.DataAsNumpy().tobytes() if data.DataLength() else b""


def builtin_options(op, cls):
    """Operator ``op``'s builtin options as ``cls`` (a ``tflite`` options class), or None when it has
    none or options of another type: TFLite Micro parses none then either (the schema's
    ``builtin_options_as_X`` is null) and runs the kernel on zero-initialised parameters."""
    table = op.BuiltinOptions()
    if table is None or op.BuiltinOptionsType() != getattr(tflite.BuiltinOptions, cls.__name__):
        return None
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o
