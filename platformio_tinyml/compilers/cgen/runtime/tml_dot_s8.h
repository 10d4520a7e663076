/* tml_dot_s8.h - helpers shared by the int8 conv / depthwise / fully
 * connected kernels: word loads, the Arm DSP pair expansion and a requantize
 * that is bit-exact to TFLite's MultiplyByQuantizedMultiplier.
 *
 * Requantization: TFLite computes SaturatingRoundingDoublingHighMul(x, m) as
 * trunc((x*m + nudge) / 2^31) with nudge = 2^30 for x*m >= 0 and 1 - 2^30
 * otherwise. For x*m < 0 that equals floor((x*m + 2^30) / 2^31), the same
 * expression as for x*m >= 0, so one 64-bit add and arithmetic shift gives
 * it exactly (the saturating case needs m == INT32_MIN, which
 * quantize_multiplier never produces: m < 2^31). The rounding right shift
 * that follows is TFLite's RoundingDivideByPOT unchanged.
 */
#ifndef TML_DOT_S8_H
#define TML_DOT_S8_H

#include "tml_port.h"

/* 4 bytes from RAM (activations), any alignment. */
TML_INLINE int32_t tml_ld4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

TML_INLINE int32_t tml_ror8(int32_t v)
{
    return (int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}

#if TML_HAVE_DSP
/* __sxtb16(ror(v, 8)) as one instruction (gcc 12 does not fuse the rotate). */
TML_INLINE int32_t tml_sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

TML_INLINE int32_t tml_requant_s8(int32_t x, int32_t m, int shift)
{
    if (shift > 0) x = (int32_t)((uint32_t)x << shift);
    x = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);
    if (shift < 0) {
        const int e = -shift;
        const int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u);
        const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
        x = (x >> e) + ((x & mask) > threshold ? 1 : 0);
    }
    return x;
}

/* requant + output offset + clamp, as int8. */
TML_INLINE int8_t tml_out_s8(int32_t acc, int32_t m, int shift, int32_t out_offset,
                             int32_t act_min, int32_t act_max)
{
    acc = tml_requant_s8(acc, m, shift) + out_offset;
    if (acc < act_min) acc = act_min;
    if (acc > act_max) acc = act_max;
    return (int8_t)acc;
}

#endif /* TML_DOT_S8_H */
