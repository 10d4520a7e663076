"""Lowerings of TRANSPOSE_CONV (int8 per-channel and float32).

TRANSPOSE_CONV: TFLite Micro scatters every input pixel ``(iy, ix)`` times the
filter into the output at ``(iy * stride - pad + ky, ix * stride - pad + kx)``
(int32 accumulators for int8, then bias, the per-channel requantization of
CONV_2D and the output zero point). The kernels here gather instead: output
``oy`` takes filter row ``ky`` where ``oy + pad - ky`` is a non-negative
multiple of the stride below ``in_h * stride``. The int8 sums are exact, so the
order does not matter; the float32 kernel visits the taps in the reference's
order (input pixel ascending, i.e. filter tap descending; input channel
ascending), then adds the bias.
"""

from __future__ import annotations

import numpy as np

from ...ir import Activation, DType, Graph, Op, OpKind
from .lower_common import per_batch
from .lower_f32 import _float_io
from .lower_s8 import _per_channel_requant
from .lowering import Lowering

S8, F32 = DType.INT8, DType.FLOAT32


def _check_tconv(g: Graph, op: Op):
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    b = g.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if not w.is_const or (b is not None and not b.is_const):
        return "filter and bias must be constants"
    if op.attrs.activation is not Activation.NONE:
        return (f"fused activation {op.attrs.activation.value} (converters emit a separate activation "
                "op; TFLite Micro versions differ on this one)")
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
    f.update(in_offset=-x.quant.zp, out_offset=y.quant.zp, act_min=-128, act_max=127, depth_mult=1,
             filter=em.array("int8_t", w.data, "w"), filter16="0",
             bias_fold=em.array("int32_t", _bias(g, op, n_out, np.int32), "b"),
             mult=em.array("int32_t", mults, "m"), shift=em.array("int8_t", shifts, "s"), scratch="0")
    per_batch(em, op, "tml_tconv_s8", em.params("tml_conv_s8_t", f), "tml_tconv.c", "tml_fixedpoint.h")


def _tconv_f32(em, op):
    g = em.graph
    w, y = g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    f = _tconv_fields(g, op)
    flt = float(np.finfo(np.float32).max)
    f.update(depth_mult=1, act_min=-flt, act_max=flt, filter=em.array("float", w.data.astype(np.float32), "w"),
             bias=em.array("float", _bias(g, op, y.shape[3], np.float32), "b"))
    per_batch(em, op, "tml_tconv_f32", em.params("tml_conv_f32_t", f), "tml_tconv.c", "tml_fixedpoint.h")


LOWERINGS = {
    (OpKind.TRANSPOSE_CONV, S8): Lowering(_tconv_s8, _check_tconv),
    (OpKind.TRANSPOSE_CONV, F32): Lowering(_tconv_f32, _check_tconv),
}
