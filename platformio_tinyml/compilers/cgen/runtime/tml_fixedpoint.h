/* tml_fixedpoint.h - TFLite integer arithmetic, reproduced bit for bit.
 *
 * The int8 kernels must give exactly the outputs of TFLite (Micro)'s reference
 * kernels, so requantization uses the same operations: a saturating, rounding,
 * doubling high multiply followed by a rounding right shift (round half away
 * from zero), and the Q-format transcendental helpers (exp on negative values,
 * 1/(1+x), logistic, tanh) used by SOFTMAX/LOGISTIC/TANH. All arithmetic is
 * explicitly 32/64-bit so it is also right on 8- and 16-bit cores.
 */
#ifndef TML_FIXEDPOINT_H
#define TML_FIXEDPOINT_H

#include "tml_port.h"

/* round(a * b / 2^31), saturating the single overflow case. */
TML_INLINE int32_t tml_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
#if TML_NO_SMULL
    /* q / 2^31 truncated is floor((a*b + 2^30) / 2^31) for either sign of a*b
     * (a*b < 0: q = a*b + 1 - 2^30 < 0, and trunc(q / 2^31) = floor((q + 2^31 - 1) / 2^31)) */
    return tml_smull_r31(a, b);
#else
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    int64_t q = ab + nudge;
    /* Division truncating toward zero, as C's '/' (not an arithmetic shift). */
    return (int32_t)(q >= 0 ? (q >> 31) : -((-q) >> 31));
#endif
}

/* x / 2^e rounded to nearest, ties away from zero (0 <= e <= 31). */
TML_INLINE int32_t tml_rdbpot(int32_t x, int e)
{
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift with TFLite's double rounding (shift may be < 0). */
TML_INLINE int32_t tml_requant(int32_t x, int32_t multiplier, int shift)
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return tml_rdbpot(tml_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

TML_INLINE int32_t tml_sat_shl(int32_t x, int n)
{
    int32_t lim = (int32_t)(INT32_MAX >> n);
    if (x > lim) return INT32_MAX;
    if (x < -lim - 1) return INT32_MIN;
    return (int32_t)((uint32_t)x << n);
}

/* Leading zero bits of x (32 for 0). */
TML_INLINE int tml_clz32(uint32_t x)
{
#if defined(__GNUC__) && defined(__SIZEOF_INT__) && __SIZEOF_INT__ >= 4
    return x ? __builtin_clz(x) : 32;
#else
    int n = 0;
    if (x == 0) return 32;
    if (!(x & 0xFFFF0000u)) { n += 16; x <<= 16; }
    if (!(x & 0xFF000000u)) { n += 8; x <<= 8; }
    if (!(x & 0xF0000000u)) { n += 4; x <<= 4; }
    if (!(x & 0xC0000000u)) { n += 2; x <<= 2; }
    return x & 0x80000000u ? n : n + 1;
#endif
}

int32_t tml_fx_exp_on_negative(int32_t a, int integer_bits);
int32_t tml_fx_one_over_one_plus_x(int32_t a);
int32_t tml_fx_one_minus_x_over_one_plus_x(int32_t a);
int32_t tml_fx_logistic(int32_t a, int integer_bits);
int32_t tml_fx_tanh(int32_t a, int integer_bits);

#endif /* TML_FIXEDPOINT_H */
