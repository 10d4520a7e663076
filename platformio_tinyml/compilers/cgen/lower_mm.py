"""Lowerings of TRANSPOSE_CONV (int8 per-channel and float32) and BATCH_MATMUL (int8, float32).

TRANSPOSE_CONV: TFLite Micro scatters every input pixel ``(iy, ix)`` times the
filter into the output at ``(iy * stride - pad + ky, ix * stride - pad + kx)``
(int32 accumulators for int8, then bias, the per-channel requantization of
CONV_2D, the output zero point and the fused activation's clamp, which TFLite
Micro applies although converters write a separate activation op). The kernels here gather instead: output
``oy`` takes filter row ``ky`` where ``oy + pad - ky`` is a non-negative
multiple of the stride below ``in_h * stride``. The int8 sums are exact, so the
order does not matter; the float32 kernel visits the taps in the reference's
order (input pixel ascending, i.e. filter tap descending; input channel
ascending), then adds the bias.

BATCH_MATMUL: TFLite Micro's integer arithmetic (per-tensor scales: one
multiplier ``lhs_scale * rhs_scale / out_scale``, zero points as offsets, no
activation), batch dimensions broadcast numpy-style up to rank 5.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lower_common import per_batch
from .lower_f32 import _float_io, act_range_f32
from .lower_s8 import _per_channel_requant, operand_ptr
from .lowering import Lowering
from .quant import activation_range_s8, f32, quantize_multiplier

S8, F32 = DType.INT8, DType.FLOAT32


def _check_tconv(g: Graph, op: Op):
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    b = g.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if not w.is_const or (b is not None and not b.is_const):
        return "filter and bias must be constants"
    if x.dtype is F32:
        return _float_io(g, op)
    if w.dtype is not S8 or y.dtype is not S8:
        return "int8 TRANSPOSE_CONV needs int8 filter and output (int16 activations are not supported)"
    if any(z != 0 for z in w.quant.zero_point):
        return "asymmetric (non-zero zero point) filter"
    if b is not None and b.dtype is not DType.INT32:
        return f"bias must be int32 (got {b.dtype.np_name})"
    return None


def _tconv_fields(g: Graph, op: Op) -> dict:
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    a = op.attrs
    return dict(in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
                out_c=y.shape[3], k_h=w.shape[1], k_w=w.shape[2], stride_h=a.stride_h, stride_w=a.stride_w,
                dil_h=1, dil_w=1, pad_t=a.pad_top, pad_l=a.pad_left)


def _bias(g: Graph, op: Op, n: int, dtype) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return g.tensors[op.inputs[2]].data.astype(dtype).reshape(-1)
    return np.zeros(n, dtype)


def _tconv_s8(em, op):
    g = em.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    n_out = y.shape[3]
    mults, shifts = _per_channel_requant(x, w, y, n_out)
    f = _tconv_fields(g, op)
    lo, hi = activation_range_s8(op.attrs.activation, y)
    f.update(in_offset=-x.quant.zp, out_offset=y.quant.zp, act_min=lo, act_max=hi, depth_mult=1,
             filter=em.array("int8_t", w.data, "w"), filter16="0",
             bias_fold=em.array("int32_t", _bias(g, op, n_out, np.int32), "b"),
             mult=em.array("int32_t", mults, "m"), shift=em.array("int8_t", shifts, "s"), scratch="0")
    per_batch(em, op, "tml_tconv_s8", em.params("tml_conv_s8_t", f), "tml_tconv.c", "tml_fixedpoint.h")


def _tconv_f32(em, op):
    g = em.graph
    w, y = g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    f = _tconv_fields(g, op)
    lo, hi = act_range_f32(op.attrs.activation)
    f.update(depth_mult=1, act_min=lo, act_max=hi, filter=em.array("float", w.data.astype(np.float32), "w"),
             bias=em.array("float", _bias(g, op, y.shape[3], np.float32), "b"))
    per_batch(em, op, "tml_tconv_f32", em.params("tml_conv_f32_t", f), "tml_tconv.c", "tml_fixedpoint.h")


LOWERINGS = {
    (OpKind.TRANSPOSE_CONV, S8): Lowering(_tconv_s8, _check_tconv),
    (OpKind.TRANSPOSE_CONV, F32): Lowering(_tconv_f32, _check_tconv),
}


# ---- BATCH_MATMUL ------------------------------------------------------------------------------

def _batch_strides(shape, out_batch) -> list[int]:
    """Element strides of an operand's batch dims (its last two are the matrix), broadcast to
    ``out_batch`` left-padded to 3 dims (0 where the operand's dimension is broadcast)."""
    mat = int(shape[-1]) * int(shape[-2])
    dims = [1] * (3 - len(shape[:-2])) + [int(d) for d in shape[:-2]]
    strides, acc = [0, 0, 0], mat
    for d in range(2, -1, -1):
        strides[d] = 0 if dims[d] == 1 and out_batch[d] != 1 else acc
        acc *= dims[d]
    return strides


def _check_bmm(g: Graph, op: Op):
    a, b, y = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    if len(y.shape) > 5:
        return f"rank {len(y.shape)} > 5"
    if y.dtype is F32:
        return _float_io(g, op)
    if a.dtype is not S8 or b.dtype is not S8 or y.dtype is not S8:
        return "int8 BATCH_MATMUL needs int8 operands and output (int16 and hybrid are not supported)"
    return None


def _bmm(em, op):
    g = em.graph
    a, b, y = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    at = op.attrs
    m, k = (a.shape[-1], a.shape[-2]) if at.adj_x else (a.shape[-2], a.shape[-1])
    n = b.shape[-2] if at.adj_y else b.shape[-1]
    batch = [1] * (5 - len(y.shape)) + [int(d) for d in y.shape[:-2]]
    f = dict(batch=batch, lhs_stride=_batch_strides(a.shape, batch), rhs_stride=_batch_strides(b.shape, batch),
             m=m, n=n, k=k, adj_x=int(at.adj_x), adj_y=int(at.adj_y),
             lhs_offset=0, rhs_offset=0, out_offset=0, mult=0, shift=0)
    if y.dtype is S8:
        f.update(lhs_offset=-a.quant.zp, rhs_offset=-b.quant.zp, out_offset=y.quant.zp)
        f["mult"], f["shift"] = quantize_multiplier(f32(a.quant.s) * f32(b.quant.s) / f32(y.quant.s))
    fn = "tml_bmm_s8" if y.dtype is S8 else "tml_bmm_f32"
    em.call(op, f"{fn}({em.params('tml_bmm_t', f)}, {operand_ptr(em, op.inputs[0])}, "
                f"{operand_ptr(em, op.inputs[1])}, {em.ptr(op.outputs[0])})", "tml_bmm.c", "tml_fixedpoint.h")


LOWERINGS.update({
    (OpKind.BATCH_MATMUL, S8): Lowering(_bmm, _check_bmm),
    (OpKind.BATCH_MATMUL, F32): Lowering(_bmm, _check_bmm),
})
