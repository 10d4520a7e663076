"""int8 L2_NORMALIZATION and LOG_SOFTMAX over the last axis, bit-exact to TFLite Micro.

Both kernels have a fixed output quantization, which TFLite's converter writes and
TFLite Micro's kernels assume: L2_NORMALIZATION scale 1/128 and zero point 0 (its kernel
writes that whatever the tensor says, so another quantization is refused here rather
than mislabelled), LOG_SOFTMAX scale 16/256 and zero point 127 (TFLite Micro's Prepare
refuses anything else). LOG_SOFTMAX rows longer than 4,095 are refused: TFLite Micro's
int32 sum overflows there. L2_NORMALIZATION's only parameter is the input zero point: the
1/sqrt of each row's sum of squares is computed at run time in fixed point
(``runtime/tml_l2norm_s8.c``). LOG_SOFTMAX's multipliers and thresholds are computed here
as TFLite Micro's Prepare computes them (:func:`log_softmax_params`); the exp, log and
rescaling run in fixed point (``runtime/tml_log_softmax_s8.c``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import DType, Graph, Op, OpKind
from .emit import ParamRangeError
from .lower_s8 import operand_ptr
from .lowering import Lowering
from .quant import f32, input_radius, quantize_multiplier

S8 = DType.INT8
L2_OUT = (1.0 / 128.0, 0)
LOG_SOFTMAX_OUT = (16.0 / 256.0, 127)
_OUT = {OpKind.L2_NORMALIZATION: L2_OUT, OpKind.LOG_SOFTMAX: LOG_SOFTMAX_OUT}
SCALED_DIFF_BITS = 5          # the differences to the row maximum go to exp() in Q5
# exp(0) is 2^19 in the Q12 sum: 4,096 values at the row maximum reach 2^31
LOG_SOFTMAX_MAX_DEPTH = 4095


@dataclass(frozen=True)
class LogSoftmaxParams:
    """What TFLite Micro's LOG_SOFTMAX Prepare computes from the input scale."""
    input_mult: int
    input_left_shift: int
    rev_mult: int             # 1 / (input_mult * 2^(input_left_shift - 31)), Q31
    rev_shift: int            # <= 0
    diff_min: int


def log_softmax_params(input_scale: float) -> LogSoftmaxParams | str:
    """TFLite's PreprocessLogSoftmaxScalingExp (beta 1, 5 integer bits) and
    CalculateInputRadius, in double as there; a reason string where TFLite Micro
    would stop at a failed check (or the kernels' shift range ends)."""
    real = min(f32(input_scale) * float(1 << (31 - SCALED_DIFF_BITS)), (1 << 31) - 1.0)
    if real <= 1.0:
        return f"input scale {input_scale:.6g} is too small (TFLite Micro needs scale x 2^26 > 1)"
    try:
        mult, shift = quantize_multiplier(real)
    except ParamRangeError:
        return f"input scale {input_scale:.6g} is too large (the kernels take below 16)"
    reverse = float(1 << (31 - shift)) / float(mult)
    if not 0.0 < reverse < 1.0:
        return f"input scale {input_scale:.6g} gives a reverse scaling of {reverse!r} (TFLite Micro needs < 1)"
    rev_mult, rev_shift = quantize_multiplier(reverse)
    return LogSoftmaxParams(mult, shift, rev_mult, rev_shift, -input_radius(SCALED_DIFF_BITS, shift))


def _check(g: Graph, op: Op) -> str | None:
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    for t in (x, y):
        if t.dtype is not S8:
            return f"all operands must be int8 (tensor '{t.name}' is {t.dtype.np_name})"
        if t.quant is None or t.quant.per_channel:
            return f"tensor '{t.name}' needs one (per-tensor) scale and zero point"
    if len(x.shape) > 4 and op.kind is OpKind.L2_NORMALIZATION:
        return f"rank {len(x.shape)} > 4 (TFLite Micro's L2_NORMALIZATION takes up to 4)"
    if tuple(x.shape) != tuple(y.shape):
        return f"output shape {list(y.shape)} differs from the input's {list(x.shape)}"
    want_s, want_zp = _OUT[op.kind]
    if (f32(y.quant.s), y.quant.zp) != (want_s, want_zp):
        return (f"output must be scale {want_s:g}, zero point {want_zp} as TFLite fixes it "
                f"('{y.name}': {y.quant.s:.6g}, {y.quant.zp})")
    if op.kind is OpKind.LOG_SOFTMAX:
        if x.shape and x.shape[-1] > LOG_SOFTMAX_MAX_DEPTH:
            return (f"depth {x.shape[-1]} > {LOG_SOFTMAX_MAX_DEPTH}: TFLite Micro's Q12 sum of exps overflows "
                    "int32 there (undefined behaviour, no reference to be exact to)")
        p = log_softmax_params(x.quant.s)
        if isinstance(p, str):
            return p
    return None


def _rows(x) -> tuple[int, int]:
    depth = x.shape[-1] if x.shape else 1
    return x.size // max(depth, 1), depth


def _l2norm(em, op):
    x = em.graph.tensors[op.inputs[0]]
    outer, depth = _rows(x)
    p = em.params("tml_l2norm_s8_t", dict(outer=outer, depth=depth, in_offset=-int(x.quant.zp)))
    em.call(op, f"tml_l2norm_s8({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_l2norm_s8.c", "tml_fixedpoint.h")


def _log_softmax(em, op):
    x = em.graph.tensors[op.inputs[0]]
    outer, depth = _rows(x)
    q = log_softmax_params(x.quant.s)
    p = em.params("tml_log_softmax_s8_t", dict(
        outer=outer, depth=depth, input_mult=q.input_mult, input_left_shift=q.input_left_shift,
        diff_min=q.diff_min, rev_mult=q.rev_mult, rev_shift=q.rev_shift))
    em.call(op, f"tml_log_softmax_s8({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_log_softmax_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


LOWERINGS = {
    (OpKind.L2_NORMALIZATION, S8): Lowering(_l2norm, _check),
    (OpKind.LOG_SOFTMAX, S8): Lowering(_log_softmax, _check),
}
