"""Lowerings of the comparisons (LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, EQUAL, NOT_EQUAL:
float32 operands, or int8 operands of one quantization, whose codes then compare as their
values), LOGICAL_AND / LOGICAL_OR / LOGICAL_NOT on BOOL tensors (one byte, 0 or 1), and
SELECT_V2 (a BOOL condition choosing between float32 or int8 tensors; int8 ones must share the
output's quantization: the bytes are copied). All broadcast numpy's way up to rank 4
(``tml_logic.c``).
"""

from __future__ import annotations

from ...ir import DType, Graph, Op, OpKind
from ...ir.graph import COMPARISON_OPS
from .lower_s8 import broadcast_strides, operand_ptr
from .lowering import Lowering

S8, F32, BOOL = DType.INT8, DType.FLOAT32, DType.BOOL
_CMP = {OpKind.LESS: "TML_CMP_LESS", OpKind.LESS_EQUAL: "TML_CMP_LESS_EQUAL", OpKind.GREATER: "TML_CMP_GREATER",
        OpKind.GREATER_EQUAL: "TML_CMP_GREATER_EQUAL", OpKind.EQUAL: "TML_CMP_EQUAL",
        OpKind.NOT_EQUAL: "TML_CMP_NOT_EQUAL"}


def _out4(g: Graph, op: Op) -> tuple[int, ...]:
    y = g.tensors[op.outputs[0]]
    return (1,) * (4 - len(y.shape)) + tuple(y.shape)


def _rank(g: Graph, op: Op) -> str | None:
    y = g.tensors[op.outputs[0]]
    return f"rank {len(y.shape)} > 4" if len(y.shape) > 4 else None


def _check_compare(g: Graph, op: Op) -> str | None:
    a, b, y = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    if y.dtype is not BOOL or a.dtype is not b.dtype or a.dtype not in (F32, S8):
        return "compares two float32 or two int8 tensors into a bool tensor"
    if a.dtype is S8 and (a.quant is None or b.quant is None or a.quant.per_channel or b.quant.per_channel
                          or (a.quant.scale, a.quant.zero_point) != (b.quant.scale, b.quant.zero_point)):
        return "int8 operands with different quantizations (compare them in float32)"
    return _rank(g, op)


def _binary_params(em, op) -> str:
    g = em.graph
    out4 = _out4(g, op)
    a, b = (g.tensors[i] for i in op.inputs)
    return em.params("tml_binary_f32_t", dict(dims=list(out4), s1=broadcast_strides(a.shape, out4),
                                              s2=broadcast_strides(b.shape, out4), act_min=0.0, act_max=0.0))


def _compare(em, op):
    fn = "tml_compare_s8" if em.graph.tensors[op.inputs[0]].dtype is S8 else "tml_compare_f32"
    em.call(op, f"{fn}({_binary_params(em, op)}, {operand_ptr(em, op.inputs[0])}, {operand_ptr(em, op.inputs[1])}, "
                f"{em.ptr(op.outputs[0])}, {_CMP[op.kind]})", "tml_logic.c")


def _check_logical(g: Graph, op: Op) -> str | None:
    if any(g.tensors[i].dtype is not BOOL for i in (*op.inputs, *op.outputs)):
        return "logical ops take and give bool tensors"
    return _rank(g, op)


def _logical(em, op):
    em.call(op, f"tml_logical({_binary_params(em, op)}, {operand_ptr(em, op.inputs[0])}, "
                f"{operand_ptr(em, op.inputs[1])}, {em.ptr(op.outputs[0])}, {int(op.kind is OpKind.LOGICAL_OR)})",
            "tml_logic.c")


def _logical_not(em, op):
    n = em.graph.tensors[op.outputs[0]].size
    em.call(op, f"tml_logical_not({n}u, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_logic.c")


def _check_select(g: Graph, op: Op) -> str | None:
    c, x, y, out = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    if c.dtype is not BOOL or not (x.dtype is y.dtype is out.dtype) or out.dtype not in (F32, S8):
        return "selects with a bool condition between float32 or int8 tensors of the output's type"
    if out.dtype is S8 and not (x.quant == y.quant == out.quant and out.quant is not None):
        return "int8 operands quantized unlike the output (select in float32)"
    return _rank(g, op)


def _select(em, op):
    g = em.graph
    out4 = _out4(g, op)
    c, x, y = (g.tensors[i] for i in op.inputs)
    p = em.params("tml_select_t", dict(dims=list(out4), s1=broadcast_strides(x.shape, out4),
                                       s2=broadcast_strides(y.shape, out4), sc=broadcast_strides(c.shape, out4),
                                       elem_size=x.dtype.itemsize))
    em.call(op, f"tml_select({p}, {operand_ptr(em, op.inputs[0])}, {operand_ptr(em, op.inputs[1])}, "
                f"{operand_ptr(em, op.inputs[2])}, {em.ptr(op.outputs[0])})", "tml_logic.c")


LOWERINGS = {(k, dt): Lowering(_compare, _check_compare) for k in COMPARISON_OPS for dt in (F32, S8)}
LOWERINGS.update({(k, BOOL): Lowering(_logical, _check_logical) for k in (OpKind.LOGICAL_AND, OpKind.LOGICAL_OR)})
LOWERINGS[(OpKind.LOGICAL_NOT, BOOL)] = Lowering(_logical_not, _check_logical)
LOWERINGS[(OpKind.SELECT_V2, BOOL)] = Lowering(_select, _check_select)
