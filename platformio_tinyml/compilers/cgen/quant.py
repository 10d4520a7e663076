"""TFLite's compile-time quantization arithmetic, reproduced exactly.

The kernels get the same multipliers, shifts and clamp bounds that the
TFLite (Micro) reference kernels compute in their Prepare step, which is
what makes the int8 outputs bit-exact.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import Activation, Tensor


def tfl_round(x: float) -> float:
    """Round half away from zero (C's round())."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """A real multiplier as (int32 Q31 multiplier, power-of-two shift)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(tfl_round(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        # TFLite Micro saturates such a multiplier (shift 30, Q31 maximum) and the kernels'
        # arithmetic is not meant for it: no real model scales by 2^30 or more; refuse it
        from .emit import ParamRangeError
        raise ParamRangeError(f"a requantization multiplier of {m:.3g} (2^{shift - 1} or more; the kernels "
                              "take less than 2^30): the quantization scales or the operator's options are "
                              "out of range")
    return q_fixed, shift


def quantize_f32(value: float, scale: float, zero_point: int) -> int:
    """zero_point + round(value / scale), the division done in float32."""
    q = np.float32(value) / np.float32(scale)
    return zero_point + int(tfl_round(float(q)))


def activation_range_s8(act: Activation, t: Tensor) -> tuple[int, int]:
    """Clamp bounds of a fused activation on an int8 output tensor."""
    lo, hi = -128, 127
    s, zp = t.quant.s, t.quant.zp
    if act is Activation.RELU:
        lo = max(lo, quantize_f32(0.0, s, zp))
    elif act is Activation.RELU6:
        lo = max(lo, quantize_f32(0.0, s, zp))
        hi = min(hi, quantize_f32(6.0, s, zp))
    elif act is Activation.RELU_N1_TO_1:
        lo = max(lo, quantize_f32(-1.0, s, zp))
        hi = min(hi, quantize_f32(1.0, s, zp))
    return lo, hi


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """Largest |input| before a fixed-point transcendental saturates."""
    max_rescaled = (1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits))
                    / (1 << left_shift))
    return int(math.floor(max_rescaled))


def f32(x) -> float:
    """A float32 scale widened to double, as TFLite's static_cast<double>."""
    return float(np.float32(x))


def sigmoid_lut_q16(entries: int = 256, step: float = 1 / 24) -> list[int]:
    """The table ``tml_lstm_s8.c``'s int16 logistic and tanh interpolate: sigmoid at ``i * step``
    in unsigned 0.16, each entry raised by half the error a straight chord to the next sample
    makes at the segment's midpoint (sigmoid is concave for x > 0, so the chord runs below it
    and linear interpolation between raised samples errs on both sides instead of one), rounded
    half up; the last entry is the format's 1.0, 65535. TFLite's integer LSTM interpolates the
    same table, so these are the values its kernels use (the C array is checked against this
    function by tests/test_cgen_lstm_int8.py)."""
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))
    out = []
    for i in range(entries - 1):
        x = i * step
        chord_error = sig(x + step / 2) - (sig(x) + sig(x + step)) / 2
        out.append(min(65535, math.floor(65536 * (sig(x) + chord_error / 2) + 0.5)))
    return out + [65535]
