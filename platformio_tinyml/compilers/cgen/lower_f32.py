"""float32 lowerings: TFLite's reference float kernels, in C.

Outputs are not bit-identical to TFLite Micro in general (libm's expf/tanhf
and the compiler's float contraction may differ) but follow the same loop
and summation orders; the tests hold them to a max relative error of 1e-5
(max |ours - ref| / max |ref| per output tensor).
"""

from __future__ import annotations

import numpy as np

from ...ir import Activation, DType, Graph, Op, OpKind
from .lower_s8 import (broadcast_strides, check_concat, check_mean, check_pad, lower_concat, lower_pad, mean_layout,
                       operand_ptr)
from .lower_common import per_batch
from .lowering import Lowering
from .quant import f32

F32 = DType.FLOAT32
FLT_MAX = float(np.finfo(np.float32).max)


def act_range_f32(act: Activation) -> tuple[float, float]:
    """Clamp bounds of a fused activation (TFLite: +-FLT_MAX for none)."""
    lo, hi = act.float_range()
    return max(lo, -FLT_MAX), min(hi, FLT_MAX)


def _float_io(g: Graph, op: Op, weights: bool = False):
    for i in op.inputs:
        if i >= 0 and g.tensors[i].dtype is not F32:
            return f"all operands must be float32 (got {g.tensors[i].dtype.np_name})"
    for i in op.outputs:
        if g.tensors[i].dtype is not F32:
            return f"float32 input needs a float32 output (got {g.tensors[i].dtype.np_name})"
    return None


def _bias(g: Graph, op: Op, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return g.tensors[op.inputs[2]].data.astype(np.float32).reshape(-1)
    return np.zeros(n, np.float32)


def _check_conv(g: Graph, op: Op):
    err = _float_io(g, op)
    if err:
        return err
    x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    if not w.is_const:
        return "weights must be constant"
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and not g.tensors[op.inputs[2]].is_const:
        return "bias must be constant"
    if op.kind is not OpKind.FULLY_CONNECTED and len(x.shape) != 4:
        return f"input rank {len(x.shape)} (expected 4)"
    if op.kind is OpKind.CONV_2D and w.shape[3] != x.shape[3]:
        return "grouped convolution"
    return None


def _conv_filter(op: Op, w: np.ndarray) -> np.ndarray:
    """The filter as tml_conv_f32.c reads it: CONV_2D's OHWI as HWIO (a tap's output channels
    contiguous); depthwise [1, H, W, C*M] as it is."""
    w = w.astype(np.float32)
    return w if op.kind is OpKind.DEPTHWISE_CONV_2D else np.ascontiguousarray(w.transpose(1, 2, 3, 0))


def _conv(em, op):
    g = em.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    a = op.attrs
    lo, hi = act_range_f32(a.activation)
    n_out = y.shape[3]
    p = em.params("tml_conv_f32_t", dict(
        in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
        out_c=n_out, k_h=w.shape[1], k_w=w.shape[2], stride_h=a.stride_h, stride_w=a.stride_w,
        dil_h=a.dilation_h, dil_w=a.dilation_w, pad_t=a.pad_top, pad_l=a.pad_left,
        depth_mult=a.depth_multiplier, act_min=lo, act_max=hi,
        filter=em.array("float", _conv_filter(op, w.data), "w"),
        bias=em.array("float", _bias(g, op, n_out), "b")))
    fn = "tml_dwconv_f32" if op.kind is OpKind.DEPTHWISE_CONV_2D else "tml_conv_f32"
    per_batch(em, op, fn, p, "tml_conv_f32.c")


def _fc(em, op):
    g = em.graph
    x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    n_out, n_in = w.shape
    lo, hi = act_range_f32(op.attrs.activation)
    p = em.params("tml_fc_f32_t", dict(
        batches=x.size // n_in, in_features=n_in, out_features=n_out, act_min=lo, act_max=hi,
        weights=em.array("float", np.ascontiguousarray(w.data.astype(np.float32).T), "w"),   # [in, out]
        bias=em.array("float", _bias(g, op, n_out), "b")))
    em.call(op, f"tml_fc_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_fc_f32.c")


def _check_pool(g: Graph, op: Op):
    err = _float_io(g, op)
    if err:
        return err
    if len(g.tensors[op.inputs[0]].shape) != 4:
        return "input rank must be 4"
    return None


def _pool(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    a = op.attrs
    lo, hi = act_range_f32(a.activation)
    p = em.params("tml_pool_f32_t", dict(
        in_h=x.shape[1], in_w=x.shape[2], c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
        k_h=a.filter_h, k_w=a.filter_w, stride_h=a.stride_h, stride_w=a.stride_w,
        pad_t=a.pad_top, pad_l=a.pad_left, act_min=lo, act_max=hi))
    fn = "tml_avgpool_f32" if op.kind is OpKind.AVERAGE_POOL_2D else "tml_maxpool_f32"
    per_batch(em, op, fn, p, "tml_pool_f32.c")


def _check_binary(g: Graph, op: Op):
    err = _float_io(g, op)
    if err:
        return err
    if len(g.tensors[op.outputs[0]].shape) > 4:
        return f"rank {len(g.tensors[op.outputs[0]].shape)} > 4"
    return None


def _binary(em, op):
    g = em.graph
    a_t, b_t, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    out4 = (1,) * (4 - len(y.shape)) + tuple(y.shape)
    lo, hi = act_range_f32(op.attrs.activation)
    p = em.params("tml_binary_f32_t", dict(
        dims=list(out4), s1=broadcast_strides(a_t.shape, out4), s2=broadcast_strides(b_t.shape, out4),
        act_min=lo, act_max=hi))
    fn = "tml_add_f32" if op.kind is OpKind.ADD else "tml_mul_f32"
    # Operands are read with plain loads: constants go to RAM (see operand_ptr).
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {operand_ptr(em, op.inputs[1])}, "
                f"{em.ptr(op.outputs[0])})", "tml_elementwise_f32.c")


def _check_softmax(g: Graph, op: Op):
    err = _float_io(g, op)
    if err:
        return err
    x = g.tensors[op.inputs[0]]
    if op.attrs.axis not in (-1, len(x.shape) - 1):
        return "softmax over an axis other than the last"
    return None


def _softmax(em, op):
    x = em.graph.tensors[op.inputs[0]]
    depth = x.shape[-1]
    p = em.params("tml_softmax_f32_t", dict(outer=x.size // depth, depth=depth, beta=f32(op.attrs.beta)))
    em.call(op, f"tml_softmax_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_softmax_f32.c")


def _mean(em, op):
    outer, count, inner = mean_layout(em.graph, op)
    p = em.params("tml_mean_f32_t", dict(outer=outer, count=count, inner=inner))
    em.call(op, f"tml_mean_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_pool_f32.c")


def _check_unary(g: Graph, op: Op):
    return _float_io(g, op)


def _unary(em, op):
    x = em.graph.tensors[op.inputs[0]]
    lo, hi = -FLT_MAX, FLT_MAX
    if op.kind is OpKind.RELU:
        lo, fn = 0.0, "tml_clamp_f32"
    elif op.kind is OpKind.RELU6:
        lo, hi, fn = 0.0, 6.0, "tml_clamp_f32"
    elif op.kind is OpKind.LOGISTIC:
        fn = "tml_logistic_f32"
    else:
        fn = "tml_tanh_f32"
    p = em.params("tml_unary_f32_t", dict(size=x.size, lo=lo, hi=hi))
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_elementwise_f32.c")


def _check_quantize(g: Graph, op: Op):
    y = g.tensors[op.outputs[0]]
    if y.dtype is not DType.INT8:
        return f"QUANTIZE float32 -> {y.dtype.np_name}"
    if y.quant is None or y.quant.per_channel:
        return "needs per-tensor output quantization"
    return None


def _quantize(em, op):
    y = em.graph.tensors[op.outputs[0]]
    p = em.params("tml_quant_t", dict(size=y.size, zp=y.quant.zp, scale=f32(y.quant.s)))
    em.call(op, f"tml_quantize_f32_s8({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_quant_f32.c")


def _check_pad(g: Graph, op: Op):
    return _float_io(g, op) or check_pad(g, op)


def _check_concat(g: Graph, op: Op):
    return _float_io(g, op) or check_concat(g, op)


def _check_mean(g: Graph, op: Op):
    return _float_io(g, op) or check_mean(g, op)


LOWERINGS = {
    (OpKind.CONV_2D, F32): Lowering(_conv, _check_conv),
    (OpKind.DEPTHWISE_CONV_2D, F32): Lowering(_conv, _check_conv),
    (OpKind.FULLY_CONNECTED, F32): Lowering(_fc, _check_conv),
    (OpKind.AVERAGE_POOL_2D, F32): Lowering(_pool, _check_pool),
    (OpKind.MAX_POOL_2D, F32): Lowering(_pool, _check_pool),
    (OpKind.ADD, F32): Lowering(_binary, _check_binary),
    (OpKind.MUL, F32): Lowering(_binary, _check_binary),
    (OpKind.SOFTMAX, F32): Lowering(_softmax, _check_softmax),
    (OpKind.PAD, F32): Lowering(lower_pad, _check_pad),
    (OpKind.CONCATENATION, F32): Lowering(lower_concat, _check_concat),
    (OpKind.MEAN, F32): Lowering(_mean, _check_mean),
    (OpKind.RELU, F32): Lowering(_unary, _check_unary),
    (OpKind.RELU6, F32): Lowering(_unary, _check_unary),
    (OpKind.LOGISTIC, F32): Lowering(_unary, _check_unary),
    (OpKind.TANH, F32): Lowering(_unary, _check_unary),
    (OpKind.QUANTIZE, F32): Lowering(_quantize, _check_quantize),
}
