"""Seeded mutations of a small .tflite model: flatbuffer object-API edits and byte edits.

For the import validation tests (tests/test_validate.py): each mutant is a
plausible way a hostile or damaged file differs from a good one (a dimension
set to 0 or 2^31-1, a NaN scale, an index past the end, a name that is not
UTF-8, flipped or cut bytes). :func:`mutant` returns the bytes and a short
description of what was changed, so a failure names its seed and edit.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path

import numpy as np

import modelgen

INTS = (0, -1, 2, 7, 255, 256, 1000, 65536, 2 ** 31 - 1, -2 ** 31)
FLOATS = (float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-45, 1e-30, 3e38)
NAMES = (b"\xff\xfe", b"a*/b", b"x\ny", b"", b"n" * 5000)


def _pick(rng, seq):
    if not len(seq):
        raise LookupError("nothing to edit")
    return seq[int(rng.integers(len(seq)))]


def _quantized(m):
    return [t for t in m.subgraphs[0].tensors
            if t.quantization and t.quantization.scale is not None and len(t.quantization.scale)]


def _shape(m, rng):
    t = _pick(rng, m.subgraphs[0].tensors)
    if t.shape is None or not len(t.shape):
        return "no shape"
    shape = [int(d) for d in t.shape]
    k = int(rng.integers(len(shape)))
    shape[k] = _pick(rng, INTS)
    t.shape = shape
    return f"tensor {t.name[:40]!r} shape {shape}"


def _scale(m, rng):
    t = _pick(rng, _quantized(m))
    q = t.quantization
    q.scale = [float(s) for s in q.scale]
    q.scale[int(rng.integers(len(q.scale)))] = _pick(rng, FLOATS)
    return f"tensor {t.name[:40]!r} scale {q.scale[:3]}"


def _zero_point(m, rng):
    t = _pick(rng, [t for t in _quantized(m) if t.quantization.zeroPoint is not None])
    t.quantization.zeroPoint = [_pick(rng, (-129, 128, 300, 2 ** 31 - 1, -2 ** 40))] * len(t.quantization.zeroPoint)
    return f"tensor {t.name[:40]!r} zero point {t.quantization.zeroPoint[0]}"


def _quant_layout(m, rng):
    t = _pick(rng, _quantized(m))
    q = t.quantization
    if rng.integers(2):
        q.quantizedDimension = _pick(rng, INTS)
    else:
        q.scale = [float(q.scale[0])] * int(rng.integers(0, 5))
    return f"tensor {t.name[:40]!r} quantization axis {q.quantizedDimension} scales {len(q.scale)}"


def _option(m, rng):
    op = _pick(rng, [op for op in m.subgraphs[0].operators if op.builtinOptions is not None])
    opts = op.builtinOptions
    field = _pick(rng, sorted(vars(opts)))
    old = getattr(opts, field)
    new = _pick(rng, FLOATS) if isinstance(old, float) else bool(rng.integers(2)) if isinstance(old, bool) \
        else _pick(rng, INTS)
    setattr(opts, field, new)
    return f"{type(opts).__name__}.{field} = {new}"


def _weights(m, rng):
    sg = m.subgraphs[0]
    t = _pick(rng, [t for t in sg.tensors if m.buffers[t.buffer].data is not None])
    data = np.array(m.buffers[t.buffer].data, dtype=np.uint8)
    if rng.integers(2) and t.type == 0:   # FLOAT32: a NaN or Inf weight
        f = data.view(np.float32).copy()
        f[int(rng.integers(f.size))] = _pick(rng, FLOATS[:3])
        data = f.view(np.uint8)
    else:
        data = data[: _pick(rng, range(data.size))]
    m.buffers[t.buffer].data = data
    return f"tensor {t.name[:40]!r} data of {data.size} bytes"


def _index(m, rng):
    sg = m.subgraphs[0]
    n = len(sg.tensors)
    what = int(rng.integers(6))
    if what == 0:
        t = _pick(rng, sg.tensors)
        t.buffer = _pick(rng, (len(m.buffers), 2 ** 31 - 1, 0))
        return f"tensor buffer {t.buffer}"
    if what == 1:
        op = _pick(rng, sg.operators)
        op.opcodeIndex = _pick(rng, (len(m.operatorCodes), 2 ** 31 - 1, 0))
        return f"opcode index {op.opcodeIndex}"
    if what == 2:
        op = _pick(rng, sg.operators)
        ins = [int(i) for i in op.inputs]
        ins[int(rng.integers(len(ins)))] = _pick(rng, (-1, -2, n, n + 100, 0))
        op.inputs = ins
        return f"operator inputs {ins}"
    if what == 3:
        op = _pick(rng, sg.operators)
        op.outputs = [_pick(rng, (-1, n, 0, int(sg.inputs[0]), int(op.inputs[0])))]
        return f"operator outputs {op.outputs}"
    if what == 4:
        sg.outputs = _pick(rng, ([], [n], [int(sg.inputs[0])], [int(sg.operators[0].inputs[1])],
                                 [int(sg.outputs[0])] * 2))
        return f"graph outputs {sg.outputs}"
    sg.inputs = _pick(rng, ([], [n], [int(sg.operators[0].inputs[1])], [int(sg.outputs[0])]))
    return f"graph inputs {sg.inputs}"


def _name_or_type(m, rng):
    sg = m.subgraphs[0]
    if rng.integers(3) == 0:
        sg.name = _pick(rng, NAMES)
        return f"subgraph name {sg.name[:20]!r}"
    t = _pick(rng, sg.tensors)
    if rng.integers(2):
        t.name = _pick(rng, NAMES)
        return f"tensor name {t.name[:20]!r}"
    t.type = int(rng.integers(18))
    return f"tensor {t.name[:40]!r} type {t.type}"


def _opcode(m, rng):
    oc = _pick(rng, m.operatorCodes)
    oc.builtinCode = int(_pick(rng, (3, 4, 9, 17, 22, 25, 0, 1, 2, 14, 28, 34, 40, 32)))
    oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    return f"builtin code {oc.builtinCode}"


EDITS = (_shape, _scale, _zero_point, _quant_layout, _option, _weights, _index, _name_or_type, _opcode)


def mutant(base: bytes, seed: int) -> tuple[bytes, str]:
    """The ``seed``-th mutant of TFLite model ``base`` and what was changed.

    Three in four mutants are one or two object-API edits; the rest flip bytes
    or cut the file (after the 8-byte header, so the reader gets past the identifier)."""
    rng = np.random.default_rng(seed)
    if rng.integers(4) == 0:
        return _byte_mutant(base, rng, 8)
    m = copy.deepcopy(_unpacked(base))
    what = _apply(m, rng, EDITS)
    try:
        return modelgen._pack(m), what
    except Exception:   # a value the field's type cannot hold (e.g. -1 in a uint32): keep the base
        return base, f"unchanged ({what} does not pack)"


def _byte_mutant(base: bytes, rng, start: int) -> tuple[bytes, str]:
    """``base`` cut short, or with up to 8 bytes past ``start`` replaced."""
    data = bytearray(base)
    if rng.integers(3) == 0:
        return bytes(data[: int(rng.integers(start or 1, len(data)))]), "truncated"
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(start, len(data)))] = int(rng.integers(256))
    return bytes(data), "bytes flipped"


def _apply(m, rng, edits) -> str:
    """One or two of ``edits`` applied to ``m``; what they changed."""
    what = []
    while len(what) < int(rng.integers(1, 3)) or not what:
        try:
            what.append(_pick(rng, edits)(m, rng))
        except LookupError:   # this model has nothing of that kind (e.g. no quantization)
            pass
    return "; ".join(what)


@functools.lru_cache(maxsize=None)
def schema():
    """TensorFlow's generated TFLite schema module (object API), loaded from its file without
    importing TensorFlow itself (which takes seconds)."""
    tf_dir = Path(importlib.util.find_spec("tensorflow").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("tflite_schema_object_api",
                                                  tf_dir / "lite" / "python" / "schema_py_generated.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def unpack(buf: bytes):
    """The object-API ``ModelT`` of ``buf`` (edit it, then ``modelgen._pack`` it)."""
    S = schema()
    return S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))


@functools.lru_cache(maxsize=4)
def _unpacked(base: bytes):
    return unpack(base)


def cut(base: bytes, first: int, last: int) -> bytes:
    """TFLite model ``base`` cut down to operators ``first..last`` (a small mutation base),
    keeping only the tensors those operators use."""
    m = unpack(base)
    sg = m.subgraphs[0]
    ops = sg.operators[first:last + 1]
    used = sorted({int(i) for op in ops for i in list(op.inputs) + list(op.outputs) if i >= 0})
    new = {old: k for k, old in enumerate(used)}
    sg.tensors = [sg.tensors[i] for i in used]
    for op in ops:
        op.inputs = [new.get(int(i), -1) for i in op.inputs]
        op.outputs = [new[int(i)] for i in op.outputs]
    sg.operators = ops
    sg.inputs, sg.outputs = [int(ops[0].inputs[0])], [int(ops[-1].outputs[0])]
    return modelgen._pack(m)


# ---- ONNX: protobuf field edits and byte edits ------------------------------------------------------

def _onnx_attr(m, rng):
    node = _pick(rng, [n for n in m.graph.node if any(a.ints or a.type == a.INT for a in n.attribute)])
    a = _pick(rng, [a for a in node.attribute if a.ints or a.type == a.INT])
    if a.ints:
        a.ints[int(rng.integers(len(a.ints)))] = _pick(rng, INTS)
    else:
        a.i = _pick(rng, INTS)
    return f"node {node.name} {a.name}"


def _onnx_dims(m, rng):
    vi = _pick(rng, list(m.graph.initializer) + [v.type.tensor_type.shape for v in m.graph.input])
    k = _pick(rng, range(len(vi.dims if hasattr(vi, "dims") else vi.dim)))
    if hasattr(vi, "dims"):
        vi.dims[k] = _pick(rng, INTS)
    else:
        vi.dim[k].dim_value = max(_pick(rng, INTS), 0)
    return "dims"


def _onnx_data(m, rng):
    t = _pick(rng, [t for t in m.graph.initializer if t.raw_data])
    raw = np.frombuffer(t.raw_data, np.uint8).copy()
    if t.data_type == 1 and raw.size % 4 == 0 and rng.integers(2):
        f = raw.view(np.float32)
        f[int(rng.integers(f.size))] = _pick(rng, FLOATS[:3])
    else:
        raw = raw[: int(rng.integers(raw.size))]
    t.raw_data = raw.tobytes()
    return f"initializer {t.name} data"


def _onnx_wiring(m, rng):
    g = m.graph
    what = int(rng.integers(4))
    if what == 0:
        node = _pick(rng, g.node)
        node.input[int(rng.integers(len(node.input)))] = _pick(rng, ["nope", g.input[0].name, g.output[0].name,
                                                                     g.initializer[0].name])
        return f"node {node.name} input"
    if what == 1:
        del g.output[:]
        if rng.integers(2):
            g.output.add().name = _pick(rng, [g.initializer[0].name, g.input[0].name, "nope"])
        return "graph outputs"
    if what == 2:
        node = _pick(rng, g.node)
        node.op_type = _pick(rng, ["Relu", "Conv", "Gemm", "Softmax", "MaxPool", "Add", "Flatten", "Reshape"])
        return f"node {node.name} op_type {node.op_type}"
    node = _pick(rng, g.node)
    node.output[0] = _pick(rng, [g.input[0].name, g.initializer[0].name, g.node[0].output[0]])
    return f"node {node.name} output"


ONNX_EDITS = (_onnx_attr, _onnx_dims, _onnx_data, _onnx_wiring)


def onnx_mutant(base: bytes, seed: int) -> tuple[bytes, str]:
    """The ``seed``-th mutant of ONNX model ``base`` (protobuf edits, or flipped/cut bytes)."""
    import onnx
    rng = np.random.default_rng(seed)
    if rng.integers(4) == 0:
        return _byte_mutant(base, rng, 0)
    m = onnx.load_from_string(base)
    what = _apply(m, rng, ONNX_EDITS)
    return m.SerializeToString(), what
