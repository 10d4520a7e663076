/* tml_ew_s8.c - int8 element-wise ops with TFLite Micro's integer arithmetic:
 * the table lookup of the unary ops (tables computed at compile time), and
 * SUB, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, DIV, PRELU with 4-D
 * broadcasting (see tml_kernels.h). Each output element reads its inputs
 * first, so in == out is allowed for the unary and same-shape binary ops. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

void tml_lut_s8(const tml_lut_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_lut_s8_t, src);
    const int8_t *table = P->table;
    for (uint32_t i = 0; i < P->size; ++i) out[i] = TML_RD8(table + (uint8_t)in[i]);
}

typedef int32_t (*ew_fn)(const tml_binary_s8_t *P, int32_t a, int32_t b);

static void loop4(const tml_binary_s8_t *P, const int8_t *in1, const int8_t *in2, int8_t *out, ew_fn f)
{
    uint32_t n = 0;
    for (int32_t i0 = 0; i0 < (int32_t)P->dims[0]; ++i0)
        for (int32_t i1 = 0; i1 < (int32_t)P->dims[1]; ++i1)
            for (int32_t i2 = 0; i2 < (int32_t)P->dims[2]; ++i2)
                for (int32_t i3 = 0; i3 < (int32_t)P->dims[3]; ++i3) {
                    const int32_t a = in1[i0 * (int32_t)P->s1[0] + i1 * (int32_t)P->s1[1] +
                                          i2 * (int32_t)P->s1[2] + i3 * (int32_t)P->s1[3]];
                    const int32_t b = in2[i0 * (int32_t)P->s2[0] + i1 * (int32_t)P->s2[1] +
                                          i2 * (int32_t)P->s2[2] + i3 * (int32_t)P->s2[3]];
                    int32_t v = f(P, a, b);
                    if (v < P->act_min) v = P->act_min;
                    if (v > P->act_max) v = P->act_max;
                    out[n++] = (int8_t)v;
                }
}

/* (x + offset) << left_shift, rescaled to the common scale (shift <= 0). */
static int32_t scaled(const tml_binary_s8_t *P, int32_t x, int32_t offset, int32_t mult, int shift)
{
    return tml_requant((int32_t)((uint32_t)(x + offset) << P->left_shift), mult, shift);
}

static int32_t sub1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    const int32_t d = scaled(P, a, P->in1_offset, P->in1_mult, P->in1_shift) -
                      scaled(P, b, P->in2_offset, P->in2_mult, P->in2_shift);
    return tml_requant(d, P->out_mult, P->out_shift) + P->out_offset;
}

static int32_t sqdiff1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    const int32_t d = scaled(P, a, P->in1_offset, P->in1_mult, P->in1_shift) -
                      scaled(P, b, P->in2_offset, P->in2_mult, P->in2_shift);
    return tml_requant(d * d, P->out_mult, P->out_shift) + P->out_offset;
}

static int32_t max1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    (void)P;
    return a > b ? a : b;
}

static int32_t min1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    (void)P;
    return a < b ? a : b;
}

static int32_t prelu1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    const int32_t x = a + P->in1_offset;
    if (x >= 0) return tml_requant(x, P->in1_mult, P->in1_shift) + P->out_offset;
    return tml_requant(x * (b + P->in2_offset), P->out_mult, P->out_shift) + P->out_offset;
}

static int clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* x / 2^e rounded half away from zero, for any e >= 0 (TFLite's
 * RoundingDivideByPOT where e < 32; a larger e leaves 0 or -1 + rounding). */
static int32_t rdbpot_any(int32_t x, int e)
{
    if (e <= 31) return tml_rdbpot(x, e);
    return 0;
}

static int32_t div1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    int32_t x1 = a + P->in1_offset, x2 = b + P->in2_offset;
    if (x2 < 0) {
        x1 = -x1;
        x2 = -x2;
    }
    if (x2 == 0) return x1 > 0 ? 127 : (x1 < 0 ? -128 : P->out_offset);   /* TFLite Micro: undefined */
    /* 1 / x2 as a Q0 reciprocal of x2 normalised into [1, 2), and its exponent. */
    const int hp1 = clz32((uint32_t)x2);
    const int recip_shift = 31 - hp1;
    const int32_t inv = tml_fx_one_over_one_plus_x((int32_t)(((uint32_t)x2 << hp1) - 0x80000000u));
    const int headroom = x1 >= 0 ? clz32((uint32_t)x1) - 1 : clz32(2u * (uint32_t)(-x1) - 1u);
    const int32_t q = tml_srdhm((int32_t)((uint32_t)x1 << headroom), inv);
    const int total = P->out_shift - recip_shift - headroom;
    return rdbpot_any(tml_srdhm(q, P->out_mult), -total) + P->out_offset;
}

void tml_sub_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, sub1);
}

void tml_sqdiff_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, sqdiff1);
}

void tml_max_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, max1);
}

void tml_min_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, min1);
}

void tml_div_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, div1);
}

void tml_prelu_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    loop4(P, in1, in2, out, prelu1);
}
