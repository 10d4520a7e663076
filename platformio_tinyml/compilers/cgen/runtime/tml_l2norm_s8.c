/* tml_l2norm_s8.c - int8 L2_NORMALIZATION over the last dimension, TFLite's
 * integer algorithm: the row's sum of squares (int32), 1/sqrt of it as a
 * multiplier and shift by fixed-point Newton-Raphson, each element requantized
 * by it to the fixed output scale 1/128 (zero point 0). No float at run time. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

#define TML_Q3_ONE ((int32_t)1 << 28)                        /* 1.0 in Q3 */
#define TML_Q3_ONE_AND_HALF (((int32_t)1 << 28) + ((int32_t)1 << 27))
#define TML_HALF_SQRT2_Q0 ((int32_t)1518500250)              /* sqrt(2)/2 in Q0 */

/* 1/sqrt(x) for x >= 0 as a Q0 multiplier and a left shift (<= 0): TFLite's
 * GetInvSqrtQuantizedMultiplierExp with reverse_shift -1, step for step. */
static void inv_sqrt(int32_t x, int32_t *mult, int *shift)
{
    if (x <= 1) {                  /* 0 (all inputs at the zero point) and 1: TFLite's special case */
        *mult = INT32_MAX;
        *shift = 0;
        return;
    }
    int right = 11;
    while (x >= ((int32_t)1 << 29)) {
        x /= 4;
        ++right;
    }
    int pairs = (tml_clz32((uint32_t)x) - 1) / 2 - 1;    /* bring x into [2^27, 2^29) */
    right -= pairs;
    x = (int32_t)((uint32_t)x << (2 * pairs));
    int32_t half_x = tml_rdbpot(x >> 1, 1);                /* x/2 in Q3 */
    int32_t y = TML_Q3_ONE;
    for (int i = 0; i < 5; ++i) {                          /* y <- y * (3/2 - x/2 * y^2), Q3 */
        int32_t y3 = tml_sat_shl(tml_srdhm(tml_srdhm(y, y), y), 6);
        uint32_t d = (uint32_t)tml_srdhm(TML_Q3_ONE_AND_HALF, y) - (uint32_t)tml_srdhm(half_x, y3);
        y = tml_sat_shl((int32_t)d, 3);
    }
    y = tml_srdhm(y, TML_HALF_SQRT2_Q0);
    if (right < 0) {
        y = (int32_t)((uint32_t)y << -right);
        right = 0;
    }
    *mult = y;
    *shift = -right;
}

void tml_l2norm_s8(const tml_l2norm_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_l2norm_s8_t, src);
    const int32_t depth = P->depth, offset = P->in_offset;
    for (int32_t r = 0; r < (int32_t)P->outer; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        /* Each square is below 2^16: the int32 sum wraps only past 33,025 elements
         * (as TFLite's does); unsigned here, so no overflow UB. */
        uint32_t acc = 0;
        for (int32_t c = 0; c < depth; ++c) {
            int32_t v = x[c] + offset;
            acc += (uint32_t)(v * v);
        }
        int32_t mult;
        int shift;
        inv_sqrt((int32_t)acc, &mult, &shift);
        for (int32_t c = 0; c < depth; ++c) {
            int32_t v = tml_requant(x[c] + offset, mult, shift + 7);   /* 7: the output's 2^-7 */
            if (v < -128) v = -128;
            if (v > 127) v = 127;
            y[c] = (int8_t)v;
        }
    }
}
