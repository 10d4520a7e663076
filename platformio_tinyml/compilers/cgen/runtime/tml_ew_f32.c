/* tml_ew_f32.c - float32 element-wise ops, TFLite reference semantics:
 * SUB, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU, FLOOR_DIV, FLOOR_MOD (4-D broadcasting,
 * fused activation clamp), the functions of tml_map_f32 (ELU, HARD_SWISH,
 * LEAKY_RELU, GELU, EXP, LOG, SQRT, RSQRT, ABS, NEG, SQUARE, and the float
 * functions of opaque ops: rounding, trigonometric and hyperbolic functions,
 * erf and smooth activations, TML_MAP_FLOOR .. TML_MAP_ELU_ALPHA) and
 * LOG_SOFTMAX / L2_NORMALIZATION over the last axis. */
#include <math.h>
#include "tml_kernels.h"

enum { OP_SUB, OP_DIV, OP_MAX, OP_MIN, OP_SQDIFF, OP_PRELU, OP_FLOORDIV, OP_FLOORMOD };

/* TFLite's FloorMod: the truncated remainder moved to the divisor's sign. */
static float floor_mod(float a, float b)
{
    const float r = fmodf(a, b);
    return (r != 0.0f && ((b < 0.0f) != (r < 0.0f))) ? r + b : r;
}

static void loop4(const tml_binary_f32_t *P, const float *in1, const float *in2, float *out, int op)
{
    uint32_t n = 0;
    for (uint32_t i0 = 0; i0 < P->dims[0]; ++i0)
        for (uint32_t i1 = 0; i1 < P->dims[1]; ++i1)
            for (uint32_t i2 = 0; i2 < P->dims[2]; ++i2)
                for (uint32_t i3 = 0; i3 < P->dims[3]; ++i3) {
                    const float a = in1[i0 * P->s1[0] + i1 * P->s1[1] + i2 * P->s1[2] + i3 * P->s1[3]];
                    const float b = in2[i0 * P->s2[0] + i1 * P->s2[1] + i2 * P->s2[2] + i3 * P->s2[3]];
                    float v;
                    switch (op) {
                    case OP_SUB: v = a - b; break;
                    case OP_DIV: v = a / b; break;
                    case OP_MAX: v = a > b ? a : b; break;
                    case OP_MIN: v = a < b ? a : b; break;
                    case OP_SQDIFF: v = (a - b) * (a - b); break;
                    case OP_FLOORDIV: v = floorf(a / b); break;
                    case OP_FLOORMOD: v = floor_mod(a, b); break;
                    default: v = a >= 0.0f ? a : a * b; break;
                    }
                    if (v < P->act_min) v = P->act_min;
                    if (v > P->act_max) v = P->act_max;
                    out[n++] = v;
                }
}

void tml_sub_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_SUB);
}

void tml_div_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_DIV);
}

void tml_max_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_MAX);
}

void tml_min_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_MIN);
}

void tml_sqdiff_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_SQDIFF);
}

void tml_prelu_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_PRELU);
}

void tml_floordiv_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_FLOORDIV);
}

void tml_floormod_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    loop4(P, in1, in2, out, OP_FLOORMOD);
}

#if defined(__AVR__) || defined(TML_PORTABLE_MATH)
/* avr-libc has no expm1, erf, erfc, rint, asinh, acosh or atanh: forms built on the functions it
 * has, within a few 1e-7 relative (series where the direct formula would cancel). */
static float tml_expm1f(float x)
{
    if (fabsf(x) < 0.05f)
        return x * (1.0f + x * (0.5f + x * (1.0f / 6 + x * (1.0f / 24 + x * (1.0f / 120 + x * (1.0f / 720))))));
    return expf(x) - 1.0f;
}
static float tml_erff(float x)
{
    const float a = fabsf(x);
    if (a < 0.5f) {
        const float z = x * x;
        return 1.1283791670955126f * x *
               (1.0f - z * (1.0f / 3 - z * (1.0f / 10 - z * (1.0f / 42 - z * (1.0f / 216 - z * (1.0f / 1320))))));
    }
    /* Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7 */
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f +
                    t * 1.061405429f))));
    const float e = 1.0f - p * expf(-a * a);
    return x < 0.0f ? -e : e;
}
static float tml_rintf(float x)         /* to nearest, halves to even */
{
    if (!(fabsf(x) < 8388608.0f))       /* already an integer (or NaN, infinity) */
        return x;
    float r = floorf(x + 0.5f);
    if (r - x == 0.5f && fmodf(r, 2.0f) != 0.0f)
        r -= 1.0f;
    return r;
}
static float tml_asinhf(float x)
{
    const float a = fabsf(x);
    const float z = a * a;
    const float v = a < 0.15f ? a * (1.0f - z * (1.0f / 6 - z * (3.0f / 40 - z * (5.0f / 112))))
                              : logf(a + sqrtf(z + 1.0f));
    return x < 0.0f ? -v : v;
}
static float tml_acoshf(float x)       /* asinh(sqrt(x^2 - 1)): (x - 1) is exact near 1 */
{
    return x > 1e18f ? logf(x) + 0.69314718f : tml_asinhf(sqrtf((x - 1.0f) * (x + 1.0f)));
}
static float tml_atanhf(float x)
{
    if (fabsf(x) < 0.05f)
        return x * (1.0f + x * x * (1.0f / 3 + x * x * (1.0f / 5)));
    return 0.5f * logf((1.0f + x) / (1.0f - x));
}
#define expm1f tml_expm1f
#define erff tml_erff
#define erfcf(x) (1.0f - tml_erff(x))
#define rintf tml_rintf
#define asinhf tml_asinhf
#define acoshf tml_acoshf
#define atanhf tml_atanhf
#endif

static float softplus(float x)      /* log(1 + e^x), without overflow for large x */
{
    return x > 0.0f ? x + logf(1.0f + expf(-x)) : logf(1.0f + expf(x));
}

static float map1(int op, float alpha, float beta, float x)
{
    switch (op) {
    case TML_MAP_ELU: return x < 0.0f ? expm1f(x) : x;
    case TML_MAP_HARD_SWISH: {
        float r = x + 3.0f;
        if (r < 0.0f) r = 0.0f;
        if (r > 6.0f) r = 6.0f;
        return x * r / 6.0f;
    }
    case TML_MAP_LEAKY_RELU: return x > 0.0f ? x : x * alpha;
    case TML_MAP_GELU: return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    case TML_MAP_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case TML_MAP_EXP: return expf(x);
    case TML_MAP_LOG: return logf(x);
    case TML_MAP_SQRT: return sqrtf(x);
    case TML_MAP_RSQRT: return 1.0f / sqrtf(x);
    case TML_MAP_ABS: return fabsf(x);
    case TML_MAP_NEG: return -x;
    case TML_MAP_SQUARE: return x * x;
    case TML_MAP_FLOOR: return floorf(x);
    case TML_MAP_CEIL: return ceilf(x);
    case TML_MAP_ROUND: return rintf(x);
    case TML_MAP_SIGN: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case TML_MAP_SIN: return sinf(x);
    case TML_MAP_COS: return cosf(x);
    case TML_MAP_TAN: return tanf(x);
    case TML_MAP_ASIN: return asinf(x);
    case TML_MAP_ACOS: return acosf(x);
    case TML_MAP_ATAN: return atanf(x);
    case TML_MAP_SINH: return sinhf(x);
    case TML_MAP_COSH: return coshf(x);
    case TML_MAP_ASINH: return asinhf(x);
    case TML_MAP_ACOSH: return acoshf(x);
    case TML_MAP_ATANH: return atanhf(x);
    case TML_MAP_ERF: return erff(x);
    case TML_MAP_SOFTPLUS: return softplus(x);
    case TML_MAP_SOFTSIGN: return x / (1.0f + fabsf(x));
    case TML_MAP_SELU: return x > 0.0f ? beta * x : beta * alpha * expm1f(x);
    case TML_MAP_THRESHOLDED_RELU: return x > alpha ? x : 0.0f;
    case TML_MAP_HARD_SIGMOID: {
        const float v = alpha * x + beta;
        return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    case TML_MAP_CELU: return x > 0.0f ? x : alpha * expm1f(x / alpha);
    case TML_MAP_MISH: return x * tanhf(softplus(x));
    case TML_MAP_SWISH: return x / (1.0f + expf(-alpha * x));
    default: return x < 0.0f ? alpha * expm1f(x) : x;     /* TML_MAP_ELU_ALPHA */
    }
}

void tml_map_f32(const tml_map_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_map_f32_t, src);
    const int op = P->op;
    const float alpha = P->alpha, beta = P->beta;
    for (uint32_t i = 0; i < P->size; ++i) out[i] = map1(op, alpha, beta, in[i]);
}

void tml_log_softmax_f32(const tml_softmax_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_softmax_f32_t, src);
    const uint32_t depth = P->depth;
    for (uint32_t r = 0; r < P->outer; ++r) {
        const float *x = in + r * depth;
        float *y = out + r * depth;
        float max = x[0];
        for (uint32_t c = 1; c < depth; ++c) if (x[c] > max) max = x[c];
        float sum = 0.0f;
        for (uint32_t c = 0; c < depth; ++c) sum += expf(x[c] - max);
        const float log_sum = logf(sum);
        for (uint32_t c = 0; c < depth; ++c) y[c] = x[c] - max - log_sum;
    }
}

void tml_l2norm_f32(const tml_softmax_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_softmax_f32_t, src);
    const uint32_t depth = P->depth;
    for (uint32_t r = 0; r < P->outer; ++r) {
        const float *x = in + r * depth;
        float *y = out + r * depth;
        float sq = 0.0f;
        for (uint32_t c = 0; c < depth; ++c) sq += x[c] * x[c];
        float norm = sqrtf(sq);
        if (norm < 1e-6f) norm = 1e-6f;    /* TFLite's epsilon */
        for (uint32_t c = 0; c < depth; ++c) y[c] = x[c] / norm;
    }
}
