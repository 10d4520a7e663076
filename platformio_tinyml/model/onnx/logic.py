"""ONNX comparisons, boolean logic and Where as the IR's comparison ops, LOGICAL_* and
SELECT_V2 (bool tensors are DType.BOOL: one byte, 0 or 1): Less, LessOrEqual, Greater,
GreaterOrEqual, Equal (float32 operands; QDQ operands are dequantized), Not, And, Or, Where
(float32 choices), Cast between bool and float32 (SELECT_V2 of 1 and 0; NOT_EQUAL to 0), and
Hardmax (comparisons, reductions and selects).

Operands keep the reader's layout: activations must share one (rank-4 ones are NHWC) and
constants are broadcast into it, as for the arithmetic ops. Constant-only nodes are folded
before they get here.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, OpKind
from ...ir import attrs as A
from . import layout as L
from .attention import _Builder
from .shape_ops import Fail, cv_attrs

K = OpKind
_COMPARE = {"Less": K.LESS, "LessOrEqual": K.LESS_EQUAL, "Greater": K.GREATER, "GreaterOrEqual": K.GREATER_EQUAL,
            "Equal": K.EQUAL}
_BOOL, _FLOAT = 9, 1          # onnx TensorProto BOOL, FLOAT


def _layout(cv, names):
    """The one layout of the activations among ``names`` (and one of them for its channel map)."""
    bases = [v.src if hasattr(v, "src") else v for v in (cv._get(n) for n in names if n not in cv.consts)]
    lays = {b.layout for b in bases}
    if len(lays) != 1:
        raise Fail("operands in different layouts (an NCHW activation with a lower-rank activation)")
    lay = lays.pop()
    if lay is L.Layout.FLAT_NHWC:
        raise Fail("a flattened NCHW operand (its element order differs from ONNX's)")
    return lay, bases[0]


def _operand(cv, name, lay, dtype: DType) -> int:
    """``name`` as an IR tensor of ``dtype`` (float32 or bool) in layout ``lay``."""
    if name in cv.consts:
        data = np.asarray(cv._const_f(name))
        return cv._const(cv._bcast(data.astype(dtype.numpy), lay), dtype, hint="k")
    if dtype is DType.FLOAT32:
        return cv._float(name).idx
    v = cv._get(name)
    if hasattr(v, "src") or cv.tensors[v.idx].dtype is not DType.BOOL:
        raise Fail(f"input '{name}' is not a bool tensor")
    return v.idx


def _emit(cv, node, kind, ins, lay, base, dtype: DType) -> None:
    from .reader import Val
    name = node.output[0]
    shape = cv._shape(name)
    out = cv._tensor(name, L.ir_shape(shape, lay), dtype)
    cv._emit(kind, ins, [out])
    cv.vals[name] = Val(out, lay, shape, base.chw if tuple(base.shape) == tuple(shape) else None)


def compare(cv, node) -> None:
    names = list(node.input[:2])
    lay, base = _layout(cv, names)
    _emit(cv, node, _COMPARE[node.op_type], [_operand(cv, n, lay, DType.FLOAT32) for n in names], lay, base,
          DType.BOOL)


def logical(cv, node) -> None:
    names = list(node.input)
    lay, base = _layout(cv, names)
    kind = {"Not": K.LOGICAL_NOT, "And": K.LOGICAL_AND, "Or": K.LOGICAL_OR}[node.op_type]
    _emit(cv, node, kind, [_operand(cv, n, lay, DType.BOOL) for n in names], lay, base, DType.BOOL)


def where(cv, node) -> None:
    names = list(node.input[:3])
    lay, base = _layout(cv, names)
    ins = [_operand(cv, names[0], lay, DType.BOOL)] + [_operand(cv, n, lay, DType.FLOAT32) for n in names[1:]]
    _emit(cv, node, K.SELECT_V2, ins, lay, base, DType.FLOAT32)


def cast(cv, node) -> bool:
    """Cast / CastLike between bool and float32 (False: not such a cast)."""
    src = cv.elem_types.get(node.input[0], 0)
    to = cv_attrs(node).get("to") if node.op_type == "Cast" else \
        cv.elem_types.get(node.input[1], 0) if len(node.input) > 1 else None
    if (src, to) not in ((_BOOL, _FLOAT), (_FLOAT, _BOOL)) or node.input[0] in cv.consts:
        return False
    lay, base = _layout(cv, node.input[:1])
    x = _operand(cv, node.input[0], lay, DType.BOOL if src == _BOOL else DType.FLOAT32)
    if src == _BOOL:
        one, zero = (cv._const(np.array([v], np.float32), DType.FLOAT32, hint="k") for v in (1.0, 0.0))
        _emit(cv, node, K.SELECT_V2, [x, one, zero], lay, base, DType.FLOAT32)
    else:
        zero = cv._const(np.array([0.0], np.float32), DType.FLOAT32, hint="k")
        _emit(cv, node, K.NOT_EQUAL, [x, zero], lay, base, DType.BOOL)
    return True


def hardmax(cv, node) -> None:
    """Hardmax: 1 at the first maximum along ``axis``, else 0, from the float kernels exactly:
    ``eq = x == max(x)``; the first of the tied places is the largest of ``eq ? (n - j) : 0``."""
    from .reader import Val
    a = cv_attrs(node)
    xf = cv._float(node.input[0])
    if xf.layout is L.Layout.FLAT_NHWC:
        raise Fail("a flattened NCHW input (its element order differs from ONNX's)")
    rank = len(xf.shape)
    axis = int(a.get("axis", -1 if cv.opset >= 13 else 1)) % rank
    if cv.opset < 13 and axis != rank - 1:
        raise Fail(f"axis {axis} before opset 13 (over the flattened axes {axis}..{rank - 1})")
    ir = tuple(cv.tensors[xf.idx].shape)
    k = L.ir_axis(axis, rank, xf.layout)
    stat = tuple(1 if j == k else d for j, d in enumerate(ir))
    name = node.output[0]
    b = _Builder(cv, node, "hardmax")

    def is_max(t):
        return b.op(K.EQUAL, [t, b.op(K.REDUCE_MAX, [t], stat, A.Mean((k,), True))], ir, dtype=DType.BOOL)

    rank_weights = (ir[k] - np.arange(ir[k], dtype=np.float32)).reshape([-1 if j == k else 1 for j in range(rank)])
    first = b.op(K.SELECT_V2, [is_max(xf.idx), b.const(rank_weights), b.const([0.0])], ir)
    out = cv._tensor(name, ir, DType.FLOAT32)
    cv._emit(K.SELECT_V2, [is_max(first), b.const([1.0]), b.const([0.0])], [out])
    cv.vals[name] = Val(out, xf.layout, xf.shape, xf.chw)


HANDLERS = {**{op: compare for op in _COMPARE}, "Not": logical, "And": logical, "Or": logical, "Where": where,
            "Hardmax": hardmax}
