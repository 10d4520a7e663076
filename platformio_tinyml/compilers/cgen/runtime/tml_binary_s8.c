/* tml_binary_s8.c - int8 ADD and MUL with 4-D broadcasting, TFLite semantics.
 * ADD rescales both inputs to a common scale with 20 bits of headroom
 * (left_shift), sums, and rescales to the output scale. */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"
#include "tml_dot_s8.h"

static int8_t clamp8(const tml_binary_s8_t *P, int32_t v)
{
    if (v < P->act_min) v = P->act_min;
    if (v > P->act_max) v = P->act_max;
    return (int8_t)v;
}

static int32_t add1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    int32_t sa = tml_requant((a + P->in1_offset) * ((int32_t)1 << P->left_shift), P->in1_mult, P->in1_shift);
    int32_t sb = tml_requant((b + P->in2_offset) * ((int32_t)1 << P->left_shift), P->in2_mult, P->in2_shift);
    return tml_requant(sa + sb, P->out_mult, P->out_shift) + P->out_offset;
}

static int32_t mul1(const tml_binary_s8_t *P, int32_t a, int32_t b)
{
    return tml_requant((a + P->in1_offset) * (b + P->in2_offset), P->out_mult, P->out_shift) + P->out_offset;
}

/* Both inputs dense and of the output's shape: one flat loop, constants in registers. */
static int dense(const tml_binary_s8_t *P, int32_t *count)
{
    int32_t acc = 1;
    for (int k = 3; k >= 0; --k) {
        if (P->dims[k] != 1 && (P->s1[k] != acc || P->s2[k] != acc)) return 0;
        acc *= P->dims[k];
    }
    *count = acc;
    return 1;
}

static void add_flat(const tml_binary_s8_t *P, const int8_t *in1, const int8_t *in2, int8_t *out, int32_t n)
{
    const int32_t o1 = P->in1_offset, o2 = P->in2_offset, oo = P->out_offset;
    const int32_t m1 = P->in1_mult, m2 = P->in2_mult, mo = P->out_mult;
    const int s1 = P->in1_shift, s2 = P->in2_shift, so = P->out_shift, ls = P->left_shift;
    const int32_t lo = P->act_min, hi = P->act_max;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t a = tml_requant_s8((int32_t)((uint32_t)(in1[i] + o1) << ls), m1, s1);
        const int32_t b = tml_requant_s8((int32_t)((uint32_t)(in2[i] + o2) << ls), m2, s2);
        int32_t v = tml_requant_s8(a + b, mo, so) + oo;
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        out[i] = (int8_t)v;
    }
}

static void mul_flat(const tml_binary_s8_t *P, const int8_t *in1, const int8_t *in2, int8_t *out, int32_t n)
{
    const int32_t o1 = P->in1_offset, o2 = P->in2_offset, oo = P->out_offset, mo = P->out_mult;
    const int so = P->out_shift;
    const int32_t lo = P->act_min, hi = P->act_max;
    for (int32_t i = 0; i < n; ++i) {
        int32_t v = tml_requant_s8((in1[i] + o1) * (in2[i] + o2), mo, so) + oo;
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        out[i] = (int8_t)v;
    }
}

static void binary(const tml_binary_s8_t *P, const int8_t *in1, const int8_t *in2, int8_t *out, int is_add)
{
    int32_t n = 0;
    if (dense(P, &n)) {
        if (is_add)
            add_flat(P, in1, in2, out, n);
        else
            mul_flat(P, in1, in2, out, n);
        return;
    }
    for (int32_t i0 = 0; i0 < P->dims[0]; ++i0)
        for (int32_t i1 = 0; i1 < P->dims[1]; ++i1)
            for (int32_t i2 = 0; i2 < P->dims[2]; ++i2)
                for (int32_t i3 = 0; i3 < P->dims[3]; ++i3) {
                    int32_t a = in1[i0 * P->s1[0] + i1 * P->s1[1] + i2 * P->s1[2] + i3 * P->s1[3]];
                    int32_t b = in2[i0 * P->s2[0] + i1 * P->s2[1] + i2 * P->s2[2] + i3 * P->s2[3]];
                    out[n++] = clamp8(P, is_add ? add1(P, a, b) : mul1(P, a, b));
                }
}

void tml_add_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    binary(P, in1, in2, out, 1);
}

void tml_mul_s8(const tml_binary_s8_t *src, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    TML_LOAD_PARAMS(tml_binary_s8_t, src);
    binary(P, in1, in2, out, 0);
}
