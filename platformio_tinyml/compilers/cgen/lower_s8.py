"""int8 lowerings: TFLite's Prepare-time arithmetic, then a kernel call."""

from __future__ import annotations

import math

import numpy as np

from ...ir import Activation, DType, Graph, Op, OpKind
from .lower_common import per_batch
from .lowering import Lowering
from .quant import activation_range_s8, f32, input_radius, quantize_f32, quantize_multiplier, tfl_round

S8 = DType.INT8
U8 = DType.UINT8


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
    if op.kind is OpKind.CONV_2D and w.shape[3] != x.shape[3]:
        return "grouped convolution"
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
    bias_fold = bias + in_off * row_sums
    if not is_dw:
        _const_channels(wd.reshape(n_out, -1), bias_fold, mults, shifts, y.quant.zp, lo, hi)
    scratch, filter16 = _granted_scratch(em, op) if not is_dw else ("0", "0")
    fields = dict(
        in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3], out_h=y.shape[1], out_w=y.shape[2],
        out_c=n_out, k_h=w.shape[1], k_w=w.shape[2], stride_h=a.stride_h, stride_w=a.stride_w,
        dil_h=a.dilation_h, dil_w=a.dilation_w, pad_t=a.pad_top, pad_l=a.pad_left,
        in_offset=in_off, out_offset=y.quant.zp, act_min=lo, act_max=hi,
        depth_mult=a.depth_multiplier,
        filter=em.array("int8_t", _dw_grouped(w.data, a.depth_multiplier) if is_dw
                        else _padded_filter(w.data, is_dw), "w"),
        filter16=filter16,    # the kernels start from bias_fold and correct padded taps: no bias
        bias_fold=em.array("int32_t", bias_fold.astype(np.int32), "bf"),
        mult=em.array("int32_t", mults, "m"),
        shift=em.array("int8_t", shifts, "s"),
        scratch=scratch,
    )
    p = em.params("tml_conv_s8_t", fields)
    fn = "tml_dwconv_s8" if is_dw else "tml_conv_s8"
    per_batch(em, op, fn, p, f"{fn}.c", "tml_dot_s8.h")


def _requant_ref(acc: int, m: int, s: int) -> int | None:
    """TFLite MultiplyByQuantizedMultiplier on int32 ``acc`` (None: int32 overflow)."""
    acc = (acc + 2**31) % 2**32 - 2**31   # the kernels hold bias_fold as int32
    if s > 0:
        acc <<= s
        if not -2**31 <= acc < 2**31:
            return None
    p = acc * int(m)
    v = p + (1 << 30) if p >= 0 else p + 1 - (1 << 30)
    r = abs(v) >> 31
    r = r if v >= 0 else -r
    e = max(-s, 0)
    mask = (1 << e) - 1
    return (r >> e) + (1 if (r & mask) > (mask >> 1) + (1 if r < 0 else 0) else 0)


def _const_channels(w2: np.ndarray, bias_fold: np.ndarray, mults: np.ndarray, shifts: np.ndarray,
                    out_zp: int, lo: int, hi: int) -> None:
    """Canonical requantization for output channels whose filter is all zeros.

    Their accumulator is bias_fold for every input, so their output is one
    constant c; trained models carry such dead channels with extreme biases
    and shifts (|bias| ~ 2^30, shift -31 or a zero multiplier). They get
    bias_fold = 4 (c - zp), mult = 2^30, shift = -1, which gives exactly c
    again (2^30 * 4d / 2^31 = 2d, then /2 = d; d + zp = c) and keeps every
    channel of the layer in the accumulator and shift ranges that the fast
    requantize of tml_conv_s8.c asks for. Updates the arrays in place."""
    for c in np.flatnonzero(~w2.any(axis=1)):
        r = _requant_ref(int(bias_fold[c]), int(mults[c]), int(shifts[c]))
        if r is None:
            continue
        v = min(max(r + out_zp, lo), hi)
        bias_fold[c], mults[c], shifts[c] = 4 * (v - out_zp), 1 << 30, -1


def _conv_scratch(g: Graph, op: Op) -> int | tuple[int, int]:
    """CONV_2D im2col buffer: two pixels' windows as int16, rounded up to 4
    elements (kp). With out_c a multiple of 4, preferably also room for the
    filter as int16 (out_c rows of kp, 2 * kp * out_c bytes) after it: the
    Cortex-M speed path expands the filter there once per call and then
    reads it without unpacking (tml_conv_s8.c)."""
    if op.kind is not OpKind.CONV_2D:
        return 0
    w = g.tensors[op.inputs[1]]
    kp = (int(np.prod(w.shape[1:])) + 3) // 4 * 4
    n_out = int(w.shape[0])
    if n_out % 4 == 0:
        return (4 * kp + 2 * kp * n_out, 4 * kp)
    return 4 * kp


def _granted_scratch(em, op) -> tuple[str, str]:
    """The arena scratch the planner found free at this op (the window
    buffer), and after it the room for the int16 filter when granted; "0"
    for none."""
    plan = em.plan
    need = _conv_scratch(em.graph, op)
    sizes = need if isinstance(need, tuple) else (need,)
    got = plan.scratch_bytes.get(-(op.index + 2), 0) if plan is not None else 0
    if plan is None or -(op.index + 2) not in plan.offsets or got < sizes[-1]:
        return "0", "0"
    if len(sizes) > 1 and got >= sizes[0]:
        window = sizes[-1]
        return em.scratch(op), em.scratch(op, window, sizes[0] - window, ctype="int16_t")
    return em.scratch(op), "0"


def _dw_grouped(data: np.ndarray, depth_mult: int) -> np.ndarray:
    """Depthwise filter [1, H, W, C] -> [C/4, H*W, 4] when depth_mult == 1 and C % 4 == 0
    (the grouped layout of tml_dwconv_s8.c: four channels' taps contiguous); else unchanged."""
    c = data.shape[-1]
    if depth_mult != 1 or c % 4:
        return data
    return np.ascontiguousarray(data.reshape(-1, c // 4, 4).transpose(1, 0, 2)).reshape(-1)


def _padded_filter(data: np.ndarray, is_dw: bool) -> np.ndarray:
    """Conv filters get 4 zero bytes after the last row when a row is not whole
    words: the kernels read rows in words up to the padded length."""
    if is_dw or int(np.prod(data.shape[1:])) % 4 == 0:
        return data
    return np.concatenate([data.reshape(-1), np.zeros(4, data.dtype)])


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
            "tml_fc_s8.c", "tml_dot_s8.h")


def _check_pool(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if y.dtype is not S8:
        return "int8 input needs an int8 output"
    if (x.quant.s, x.quant.zp) != (y.quant.s, y.quant.zp):
        return "input and output quantization differ"
    if len(x.shape) != 4:
        return f"input rank {len(x.shape)} (expected 4)"
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
    per_batch(em, op, fn, p, "tml_pool_s8.c")


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
                f"{em.ptr(op.outputs[0])})", "tml_binary_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c",
            "tml_dot_s8.h")


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
    (OpKind.CONV_2D, S8): Lowering(_conv, _check_conv, _conv_scratch),
    (OpKind.DEPTHWISE_CONV_2D, S8): Lowering(_conv, _check_conv),
    (OpKind.FULLY_CONNECTED, S8): Lowering(_fc, _check_conv),
    (OpKind.AVERAGE_POOL_2D, S8): Lowering(_pool, _check_pool),
    (OpKind.MAX_POOL_2D, S8): Lowering(_pool, _check_pool),
    (OpKind.ADD, S8): Lowering(_binary, _check_binary),
    (OpKind.MUL, S8): Lowering(_binary, _check_binary),
    (OpKind.SOFTMAX, S8): Lowering(_softmax, _check_softmax),
}


# ---- data movement, reductions, activations, (re)quantization ----------------
# Shared with lower_f32 where the kernel does not depend on the element type.

def _dims4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


def operand_ptr(em, t: int) -> str:
    """A tensor operand read with plain loads (constants land in RAM on AVR)."""
    return em.ptr(t, const=True)


def check_pad(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if len(x.shape) > 4:
        return f"rank {len(x.shape)} > 4"
    if y.dtype is not x.dtype:
        return "input and output types differ"
    if any(a < 0 or b < 0 for a, b in op.attrs.paddings):
        return "negative paddings"
    return None


def _pad_call(em, op, fn: str, value: list[int], paddings=None) -> None:
    """``fn`` (tml_pad / tml_mirror_pad) on tml_pad_t with the 4-byte ``value`` field
    (``paddings``: the op's attribute unless given)."""
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    pads = [(0, 0)] * (4 - len(x.shape)) + [tuple(p) for p in (op.attrs.paddings if paddings is None else paddings)]
    p = em.params("tml_pad_t", dict(in_dims=_dims4(x.shape), out_dims=_dims4(y.shape),
                                    before=[int(a) for a, _ in pads], elem_size=y.dtype.itemsize,
                                    value=[int(v) for v in value] + [0] * (4 - len(value))))
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_pad_s8.c")


def lower_pad(em, op):
    y = em.graph.tensors[op.outputs[0]]
    if y.dtype is S8:
        value = [int(np.int8(y.quant.zp).view(np.uint8))]   # TFLM: the output zero point
    else:
        value = list(np.array([op.attrs.value], np.float32).view(np.uint8))
    _pad_call(em, op, "tml_pad", value)


def check_mirror_pad(g: Graph, op: Op):
    """MIRROR_PAD: pads of at most the dimension (symmetric) or one less (reflect: the edge is
    not repeated), an input quantized as the output (the bytes are copied), rank <= 4."""
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    err = check_pad(g, op)
    if err:
        return err
    a = op.attrs
    if a.mode not in ("reflect", "symmetric"):
        return f"mode '{a.mode}'"
    limit = 0 if a.mode == "symmetric" else 1
    if any(max(lo, hi) > d - limit for d, (lo, hi) in zip(x.shape, a.paddings)):
        return f"paddings {[list(pr) for pr in a.paddings]} larger than the input {list(x.shape)} mirrors"
    if y.dtype is S8 and (x.quant is None or y.quant is None or (x.quant.scale, x.quant.zero_point) !=
                          (y.quant.scale, y.quant.zero_point)):
        return "input and output quantized differently"
    return None


def lower_mirror_pad(em, op):
    _pad_call(em, op, "tml_mirror_pad", [int(op.attrs.mode == "symmetric")])


def check_concat(g: Graph, op: Op):
    y = g.tensors[op.outputs[0]]
    ins = [g.tensors[i] for i in op.inputs]
    if any(t.dtype is not y.dtype for t in ins):
        return "all operands must have the same type"
    if op.attrs.activation is not Activation.NONE:
        return f"fused activation {op.attrs.activation.value}"
    if y.dtype is S8:
        q = (y.quant.s, y.quant.zp)
        for k, t in enumerate(ins):
            if t.quant is None or (t.quant.s, t.quant.zp) != q:
                return (f"input {k} quantization (scale {t.quant.s if t.quant else None}, zero point "
                        f"{t.quant.zp if t.quant else None}) differs from the output's "
                        f"(scale {q[0]}, zero point {q[1]}); TFLite Micro needs equal int8 quantization")
    return None


def lower_concat(em, op):
    g = em.graph
    y = g.tensors[op.outputs[0]]
    axis = op.attrs.axis
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = [int(np.prod(g.tensors[i].shape[axis:], dtype=np.int64)) * y.dtype.itemsize for i in op.inputs]
    p = em.params("tml_concat_t", dict(outer=outer, n_inputs=len(chunks),
                                       chunk=em.array("int32_t", np.array(chunks, np.int32), "cc")))
    ins = ", ".join(f"(const void *){operand_ptr(em, i)}" for i in op.inputs)
    em.call(op, f"tml_concat({p}, (const void *const[]){{{ins}}}, {em.ptr(op.outputs[0])})",
            "tml_concat_s8.c")


def mean_layout(g: Graph, op: Op) -> tuple[int, int, int] | None:
    """(outer, count, inner) when the reduced axes are contiguous, else None."""
    shape = g.tensors[op.inputs[0]].shape
    axes = sorted(set(op.attrs.axes))
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        return None
    outer = int(np.prod(shape[:axes[0]], dtype=np.int64))
    count = int(np.prod(shape[axes[0]:axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(shape[axes[-1] + 1:], dtype=np.int64))
    return outer, count, inner


def check_mean(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if y.dtype is not x.dtype:
        return "input and output types differ"
    if mean_layout(g, op) is None:
        return f"reduction axes {op.attrs.axes} are not contiguous"
    if mean_layout(g, op)[1] == 0:
        return "empty reduction"
    return None


def _mean(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    outer, count, inner = mean_layout(g, op)
    # TFLM's EvalIntegerMean always takes QuantizedMeanOrSum (also for equal
    # input/output quantization): fold 1/count into the multiplier.
    mult, shift = quantize_multiplier(f32(x.quant.s) / f32(y.quant.s))
    if mult:
        sh = min(count.bit_length() - 1, 32, 31 + shift)
        mult = int((mult << sh) // count)    # both positive: C's truncating division
        shift -= sh
    p = em.params("tml_mean_s8_t", dict(outer=outer, count=count, inner=inner, in_zp=x.quant.zp,
                                        out_zp=y.quant.zp, shift=shift, mult=mult))
    em.call(op, f"tml_mean_s8({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_mean_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _check_unary(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if op.kind is OpKind.QUANTIZE and (x.dtype, y.dtype) in ((S8, U8), (U8, S8)):
        pass    # TFLM requantizes between int8 and uint8 too
    elif x.dtype is not S8 or y.dtype is not S8:
        return "int8 input needs an int8 output"
    if x.quant is None or y.quant is None or x.quant.per_channel or y.quant.per_channel:
        return "needs per-tensor quantization on input and output"
    if op.kind is OpKind.LOGISTIC and y.quant.zp != -128:
        return "int8 LOGISTIC output must have zero point -128"
    if op.kind is OpKind.RELU6:
        six = quantize_f32(6.0, x.quant.s, x.quant.zp)
        if not -128 <= six <= 127:
            return "6.0 is outside the input's int8 range"
    return None


def _unary_fields(x, y) -> dict:
    return dict(size=x.size, in_zp=x.quant.zp, out_zp=y.quant.zp, act_min=-128, act_max=127,
                shift=0, mult=0, radius=0)


def _relu(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    f = _unary_fields(x, y)
    if op.kind is OpKind.RELU:
        # TFLM CalculateReluOpData: requantize, then clamp at the quantized 0.
        f["mult"], f["shift"] = quantize_multiplier(f32(x.quant.s) / f32(y.quant.s))
        f["act_min"] = max(-128, y.quant.zp + int(quantize_f32(0.0, y.quant.s, 0)))
        fn = "tml_relu_s8"
    elif op.kind is OpKind.RELU6:
        # TFLM Relu6: a clamp to [zero_point, q(6.0)] in the input's quantization.
        f["act_min"] = x.quant.zp
        f["act_max"] = quantize_f32(6.0, x.quant.s, x.quant.zp)
        fn = "tml_relu6_s8"
    else:   # QUANTIZE int8 -> int8 / uint8, uint8 -> int8 (TFLM Requantize)
        f["mult"], f["shift"] = quantize_multiplier(f32(x.quant.s) / f32(y.quant.s))
        fn = "tml_requantize_s8"
        if y.dtype is U8:
            fn = "tml_requantize_s8_u8"     # clamps to 0..255 itself
        elif x.dtype is U8:
            fn = "tml_requantize_u8_s8"
    p = em.params("tml_unary_s8_t", f)
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_act_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _q4_multiplier(scale: float) -> tuple[int, int, int]:
    """LOGISTIC/TANH Prepare: input scale * 2^27 as (multiplier, shift, radius).

    TFLM rounds q * 2^31 without the usual renormalisation of a result of
    exactly 2^31 (which the int32 cast then wraps to INT32_MIN on common hosts).
    """
    real = f32(scale) * float(1 << (31 - 4))
    q, shift = math.frexp(real)
    m = int(tfl_round(q * (1 << 31)))
    if m >= 1 << 31:
        m -= 1 << 32
    return m, shift, input_radius(4, shift)


def _sigmoid_like(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    f = _unary_fields(x, y)
    f["mult"], f["shift"], f["radius"] = _q4_multiplier(x.quant.s)
    fn = "tml_logistic_s8" if op.kind is OpKind.LOGISTIC else "tml_tanh_s8"
    p = em.params("tml_unary_s8_t", f)
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_act_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


def _check_dequantize(g: Graph, op: Op):
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if y.dtype is not DType.FLOAT32:
        return f"DEQUANTIZE int8 -> {y.dtype.np_name}"
    if x.quant is None or x.quant.per_channel:
        return "needs per-tensor input quantization"
    return None


def _dequantize(em, op):
    g = em.graph
    x = g.tensors[op.inputs[0]]
    p = em.params("tml_quant_t", dict(size=x.size, zp=x.quant.zp, scale=f32(x.quant.s)))
    em.call(op, f"tml_dequantize_s8_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_quant_f32.c")


LOWERINGS.update({
    (OpKind.PAD, S8): Lowering(lower_pad, check_pad),
    (OpKind.MIRROR_PAD, S8): Lowering(lower_mirror_pad, check_mirror_pad),
    (OpKind.MIRROR_PAD, DType.FLOAT32): Lowering(lower_mirror_pad, check_mirror_pad),
    (OpKind.CONCATENATION, S8): Lowering(lower_concat, check_concat),
    (OpKind.MEAN, S8): Lowering(_mean, check_mean),
    (OpKind.RELU, S8): Lowering(_relu, _check_unary),
    (OpKind.RELU6, S8): Lowering(_relu, _check_unary),
    (OpKind.QUANTIZE, S8): Lowering(_relu, _check_unary),
    (OpKind.QUANTIZE, U8): Lowering(_relu, _check_unary),
    (OpKind.LOGISTIC, S8): Lowering(_sigmoid_like, _check_unary),
    (OpKind.TANH, S8): Lowering(_sigmoid_like, _check_unary),
    (OpKind.DEQUANTIZE, S8): Lowering(_dequantize, _check_dequantize),
})
