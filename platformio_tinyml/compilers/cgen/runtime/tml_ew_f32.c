/* tml_ew_f32.c - float32 element-wise ops, TFLite reference semantics:
 * SUB, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU (4-D broadcasting,
 * fused activation clamp), the functions of tml_map_f32 (ELU, HARD_SWISH,
 * LEAKY_RELU, GELU, EXP, LOG, SQRT, RSQRT, ABS, NEG, SQUARE) and
 * LOG_SOFTMAX / L2_NORMALIZATION over the last axis. */
#include <math.h>
#include "tml_kernels.h"

enum { OP_SUB, OP_DIV, OP_MAX, OP_MIN, OP_SQDIFF, OP_PRELU };

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

static float map1(int op, float alpha, float x)
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
    default: return x * x;     /* TML_MAP_SQUARE */
    }
}

void tml_map_f32(const tml_map_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_map_f32_t, src);
    const int op = P->op;
    const float alpha = P->alpha;
    for (uint32_t i = 0; i < P->size; ++i) out[i] = map1(op, alpha, in[i]);
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
