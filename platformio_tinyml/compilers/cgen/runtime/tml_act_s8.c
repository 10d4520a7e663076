/* tml_act_s8.c - int8 element-wise activations with TFLite Micro semantics:
 * RELU (requantizing), RELU6 (a clamp in the input's quantization),
 * QUANTIZE int8->int8, int8->uint8 and uint8->int8 (requantize), LOGISTIC and TANH (Q4 fixed point).
 * Each reads then writes one element, so in == out is allowed. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

static int32_t clamp32(int32_t v, int32_t lo, int32_t hi)
{
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return v;
}

static int8_t sat8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)clamp32(v, lo, hi);
}

/* (x - in_zp) rescaled + out_zp, clamped to [lo, hi]. */
static int32_t requant1(const tml_unary_s8_t *P, int32_t x, int32_t lo, int32_t hi)
{
    return clamp32(tml_requant(x - P->in_zp, P->mult, P->shift) + P->out_zp, lo, hi);
}

static void requant(const tml_unary_s8_t *P, const int8_t *in, int8_t *out)
{
    for (uint32_t i = 0; i < P->size; ++i) out[i] = (int8_t)requant1(P, in[i], P->act_min, P->act_max);
}

void tml_relu_s8(const tml_unary_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    requant(P, in, out);
}

void tml_requantize_s8(const tml_unary_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    requant(P, in, out);
}

/* To uint8: the clamp is the uint8 range (act_min/act_max are int8 fields). */
void tml_requantize_s8_u8(const tml_unary_s8_t *src, const int8_t *in, uint8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    for (uint32_t i = 0; i < P->size; ++i) out[i] = (uint8_t)requant1(P, in[i], 0, 255);
}

void tml_requantize_u8_s8(const tml_unary_s8_t *src, const uint8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    for (uint32_t i = 0; i < P->size; ++i) out[i] = (int8_t)requant1(P, in[i], P->act_min, P->act_max);
}

void tml_relu6_s8(const tml_unary_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    for (uint32_t i = 0; i < P->size; ++i) out[i] = sat8(in[i], P->act_min, P->act_max);
}

/* x - in_zp rescaled to Q4 (4 integer bits), or saturation outside +-radius. */
static int q4_input(const tml_unary_s8_t *P, int32_t x, int32_t *q4)
{
    const int32_t d = x - P->in_zp;
    if (d <= -P->radius) return -1;
    if (d >= P->radius) return 1;
    *q4 = tml_requant(d, P->mult, P->shift);
    return 0;
}

void tml_logistic_s8(const tml_unary_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    for (uint32_t i = 0; i < P->size; ++i) {
        int32_t q4 = 0;
        const int s = q4_input(P, in[i], &q4);
        if (s != 0) {
            out[i] = s < 0 ? -128 : 127;
            continue;
        }
        /* Q0 result in [0, 1) -> 1/256 steps with zero point -128. */
        const int32_t v = tml_rdbpot(tml_fx_logistic(q4, 4), 31 - 8) - 128;
        out[i] = sat8(v, -128, 127);
    }
}

void tml_tanh_s8(const tml_unary_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_unary_s8_t, src);
    for (uint32_t i = 0; i < P->size; ++i) {
        int32_t q4 = 0;
        const int s = q4_input(P, in[i], &q4);
        if (s != 0) {
            out[i] = s < 0 ? -128 : 127;
            continue;
        }
        /* Q0 result in (-1, 1) -> 1/128 steps with zero point 0. */
        const int32_t v = tml_rdbpot(tml_fx_tanh(q4, 4), 31 - 7);
        out[i] = sat8(v, -128, 127);
    }
}
