/* tml_softmax_s8.c - int8 SOFTMAX over the last dimension (output scale
 * 1/256, zero point -128), TFLite's fixed-point algorithm: exp of the
 * rescaled differences to the row maximum in Q5 -> Q0, summed in Q12,
 * reciprocal by Newton-Raphson. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

static int clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

static int32_t exp_of_diff(const tml_softmax_s8_t *P, int32_t diff)
{
    int32_t scaled = tml_srdhm((int32_t)((uint32_t)diff << P->input_left_shift), P->input_mult);
    return tml_fx_exp_on_negative(scaled, 5);   /* Q5 in, Q0 out */
}

void tml_softmax_s8(const tml_softmax_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_softmax_s8_t, src);
    for (int32_t r = 0; r < P->outer; ++r) {
        const int8_t *x = in + r * P->depth;
        int8_t *y = out + r * P->depth;
        int32_t max = -128;
        for (int32_t c = 0; c < P->depth; ++c) if (x[c] > max) max = x[c];
        /* Q12, wrapping modulo 2^32 as TFLite's int32 sum does on every target
         * (8192 equal values sum to 2^32: 0). Unsigned: no overflow UB. */
        uint32_t sum = 0;
        for (int32_t c = 0; c < P->depth; ++c) {
            int32_t d = x[c] - max;
            if (d >= P->diff_min) sum += (uint32_t)tml_rdbpot(exp_of_diff(P, d), 12);
        }
        int headroom = clz32(sum);
        int bits_over_unit = 12 - headroom;
        /* sum == 0: headroom 32, and 0 shifted by 32 is 0, what TFLite computes
         * (its shift by 32 is undefined in C; 0 << n is 0 on every CPU). */
        uint32_t shifted = headroom < 32 ? sum << headroom : 0u;
        int32_t shifted_minus_one = (int32_t)(shifted - ((uint32_t)1 << 31));
        int32_t scale = tml_fx_one_over_one_plus_x(shifted_minus_one);
        /* A sum of 2^28 or more (>= 512 values near the maximum) makes the final
         * divisor 2^32 or more: TFLite asserts and aborts there. The quotient of
         * the non-negative product (< 2^31) rounds to 0, which is computed here
         * instead of an undefined shift. */
        int out_shift = bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < P->depth; ++c) {
            int32_t d = x[c] - max;
            int32_t v = -128;
            if (d >= P->diff_min) {
                int32_t prod = tml_srdhm(scale, exp_of_diff(P, d));
                v = (out_shift < 32 ? tml_rdbpot(prod, out_shift) : 0) - 128;
                if (v < -128) v = -128;
                if (v > 127) v = 127;
            }
            y[c] = (int8_t)v;
        }
    }
}
