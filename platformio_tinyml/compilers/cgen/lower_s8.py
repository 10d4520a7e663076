"""int8 lowerings: TFLite's Prepare-time arithmetic, then a kernel call."""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lowering import Lowering
from .quant import activation_range_s8, f32, input_radius, quantize_multiplier

S8 = DType.INT8


def _per_channel_requant(x, w, y, n_out: int):
    """Multipliers/shifts of conv-like ops (TFLite PopulateConvolutionQuantizationParams)."""
    ws = w.quant.scale
    if len(ws) == 1:
        ws = ws * n_out
    ms, ss = [], []
    for c in range(n_out):
        m, s = quantize_multiplier(f32(x.quant.s) * f32(ws[c]) / f32(y.quant.s))
        ms.append(m)
        ss.append(s)
    return np.array(ms, np.int32), np.array(ss, np.int8)


def _bias(g: Graph, op: Op, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return g.tensors[op.inputs[2]].data.astype(np.int64).reshape(-1)
    return np.zeros(n, np.int64)


def _check_conv(g: Graph, op: Op):
    x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    y = g.tensors[op.outputs[0]]
    if w.dtype is not S8 or y.dtype is not S8 or not w.is_const:
        return "int8 ops need constant int8 weights and an int8 output"
    if any(z != 0 for z in w.quant.zero_point):
        return "asymmetric (non-zero zero point) weights"
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and g.tensors[op.inputs[2]].dtype is not DType.INT32:
        return "bias must be int32"
    if len(x.shape) != 4 and op.kind is not OpKind.FULLY_CONNECTED:
        return f"input rank {len(x.shape)} (expected 4)"
    return None


def _conv(em, op):
    g = em.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    a = op.attrs
    is_dw = op.kind is OpKind.DEPTHWISE_CONV_2D
    n_out = y.shape[3]
    wd = w.data.astype(np.int64)
    bias = _bias(g, op, n_out)
    in_off = -x.quant.zp
    if is_dw:   # [1, H, W, C*M]: per output channel sum over H, W
        row_sums = wd.reshape(-1, n_out).sum(axis=0)
    else:       # OHWI
        row_sums = wd.reshape(n_out, -1).sum(axis=1)
    mults, shifts = _per_channel_requant(x, w, y, n_out)
    lo, hi = activation_range_s8(a.activation, y)
    fields = dict(
        in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
        out_c=n_out, k_h=w.shape[1], k_w=w.shape[2], stride_h=a.stride_h, stride_w=a.stride_w,
        dil_h=a.dilation_h, dil_w=a.dilation_w, pad_t=a.pad_top, pad_l=a.pad_left,
        in_offset=in_off, out_offset=y.quant.zp, act_min=lo, act_max=hi,
        depth_mult=a.depth_multiplier,
        filter=em.array("int8_t", w.data, "w"),
        bias=em.array("int32_t", bias.astype(np.int32), "b"),
        bias_fold=em.array("int32_t", (bias + in_off * row_sums).astype(np.int32), "bf"),
        mult=em.array("int32_t", mults, "m"),
        shift=em.array("int8_t", shifts, "s"),
    )
    p = em.params("tml_conv_s8_t", fields)
    fn = "tml_dwconv_s8" if is_dw else "tml_conv_s8"
    em.call(op, f"{fn}({p}, {em.ptr(op.inputs[0], True)}, {em.ptr(op.outputs[0])})",
            f"{fn}.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _fc(em, op):
    g = em.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    n_out, n_in = w.shape
    bias = _bias(g, op, n_out)
    in_off = -x.quant.zp
    row_sums = w.data.astype(np.int64).sum(axis=1)
    mults, shifts = _per_channel_requant(x, w, y, n_out)
    per_channel = w.quant.per_channel
    lo, hi = activation_range_s8(op.attrs.activation, y)
    fields = dict(batches=x.size // n_in, in_features=n_in, out_features=n_out,
                  out_offset=y.quant.zp, act_min=lo, act_max=hi,
                  shift=int(shifts[0]), per_channel=per_channel, mult=int(mults[0]),
                  weights=em.array("int8_t", w.data, "w"),
                  bias_fold=em.array("int32_t", (bias + in_off * row_sums).astype(np.int32), "bf"))
    if per_channel:
        fields.update(mults=em.array("int32_t", mults, "m"), shifts=em.array("int8_t", shifts, "s"))
    else:
        fields.update(mults="0", shifts="0")
    p = em.params("tml_fc_s8_t", fields)
    em.call(op, f"tml_fc_s8({p}, {em.ptr(op.inputs[0], True)}, {em.ptr(op.outputs[0])})",
            "tml_fc_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _check_same_quant(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if y.dtype is not S8:
        return "int8 input needs an int8 output"
    if (x.quant.s, x.quant.zp) != (y.quant.s, y.quant.zp):
        return "input and output quantization differ"
    return None


def _pool(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    a = op.attrs
    lo, hi = activation_range_s8(a.activation, y)
    p = em.params("tml_pool_s8_t", dict(
        in_h=x.shape[1], in_w=x.shape[2], c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
        k_h=a.filter_h, k_w=a.filter_w, stride_h=a.stride_h, stride_w=a.stride_w,
        pad_t=a.pad_top, pad_l=a.pad_left, act_min=lo, act_max=hi))
    fn = "tml_avgpool_s8" if op.kind is OpKind.AVERAGE_POOL_2D else "tml_maxpool_s8"
    em.call(op, f"{fn}({p}, {em.ptr(op.inputs[0], True)}, {em.ptr(op.outputs[0])})", "tml_pool_s8.c")


def broadcast_strides(shape_in: tuple, shape_out: tuple) -> list[int]:
    """Element strides of ``shape_in`` broadcast to 4-D ``shape_out`` (0 = broadcast)."""
    sin = (1,) * (4 - len(shape_in)) + tuple(shape_in)
    strides, acc = [0] * 4, 1
    for k in range(3, -1, -1):
        strides[k] = 0 if sin[k] == 1 and shape_out[k] != 1 else acc
        acc *= sin[k]
    return strides


def _check_binary(g: Graph, op: Op):
    y = g.tensors[op.outputs[0]]
    if y.dtype is not S8 or any(g.tensors[i].dtype is not S8 for i in op.inputs):
        return "all operands must be int8"
    if len(y.shape) > 4:
        return f"rank {len(y.shape)} > 4"
    return None


def _binary(em, op):
    g = em.graph
    a_t, b_t, y = (g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]])
    out4 = (1,) * (4 - len(y.shape)) + tuple(y.shape)
    lo, hi = activation_range_s8(op.attrs.activation, y)
    f = dict(dims=list(out4), s1=broadcast_strides(a_t.shape, out4), s2=broadcast_strides(b_t.shape, out4),
             in1_offset=-a_t.quant.zp, in2_offset=-b_t.quant.zp, out_offset=y.quant.zp,
             act_min=lo, act_max=hi, left_shift=0, in1_shift=0, in2_shift=0, out_shift=0,
             in1_mult=0, in2_mult=0, out_mult=0)
    if op.kind is OpKind.ADD:
        s1, s2, so = f32(a_t.quant.s), f32(b_t.quant.s), f32(y.quant.s)
        twice_max = 2 * max(s1, s2)
        f["left_shift"] = 20
        f["in1_mult"], f["in1_shift"] = quantize_multiplier(s1 / twice_max)
        f["in2_mult"], f["in2_shift"] = quantize_multiplier(s2 / twice_max)
        f["out_mult"], f["out_shift"] = quantize_multiplier(twice_max / ((1 << 20) * so))
        fn = "tml_add_s8"
    else:
        f["out_mult"], f["out_shift"] = quantize_multiplier(
            f32(a_t.quant.s) * f32(b_t.quant.s) / f32(y.quant.s))
        fn = "tml_mul_s8"
    p = em.params("tml_binary_s8_t", f)
    em.call(op, f"{fn}({p}, {em.ptr(op.inputs[0], True)}, {em.ptr(op.inputs[1], True)}, "
                f"{em.ptr(op.outputs[0])})", "tml_binary_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _check_softmax(g: Graph, op: Op):
    y = g.tensors[op.outputs[0]]
    if y.dtype is not S8 or (y.quant.s, y.quant.zp) != (1 / 256, -128):
        return "int8 softmax output must have scale 1/256 and zero point -128"
    return None


def _softmax(em, op):
    g = em.graph
    x = g.tensors[op.inputs[0]]
    depth = x.shape[-1]
    real = min(float(op.attrs.beta) * f32(x.quant.s) * (1 << (31 - 5)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    p = em.params("tml_softmax_s8_t", dict(outer=x.size // depth, depth=depth, input_mult=mult,
                                           input_left_shift=shift, diff_min=-input_radius(5, shift)))
    em.call(op, f"tml_softmax_s8({p}, {em.ptr(op.inputs[0], True)}, {em.ptr(op.outputs[0])})",
            "tml_softmax_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


LOWERINGS = {
    (OpKind.CONV_2D, S8): Lowering(_conv, _check_conv),
    (OpKind.DEPTHWISE_CONV_2D, S8): Lowering(_conv, _check_conv),
    (OpKind.FULLY_CONNECTED, S8): Lowering(_fc, _check_conv),
    (OpKind.AVERAGE_POOL_2D, S8): Lowering(_pool, _check_same_quant),
    (OpKind.MAX_POOL_2D, S8): Lowering(_pool, _check_same_quant),
    (OpKind.ADD, S8): Lowering(_binary, _check_binary),
    (OpKind.MUL, S8): Lowering(_binary, _check_binary),
    (OpKind.SOFTMAX, S8): Lowering(_softmax, _check_softmax),
}
