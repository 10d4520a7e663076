/* tml_elementwise_f32.c - float32 ADD and MUL (4-D broadcasting, fused
 * activation clamp) and the element-wise activations RELU/RELU6 (a clamp),
 * LOGISTIC and TANH, TFLite reference semantics. In place is fine. */
#include <math.h>
#include "tml_kernels.h"

static void binary(const tml_binary_f32_t *P, const float *in1, const float *in2, float *out, int is_add)
{
    uint32_t n = 0;
    for (uint32_t i0 = 0; i0 < P->dims[0]; ++i0)
        for (uint32_t i1 = 0; i1 < P->dims[1]; ++i1)
            for (uint32_t i2 = 0; i2 < P->dims[2]; ++i2)
                for (uint32_t i3 = 0; i3 < P->dims[3]; ++i3) {
                    const float a = in1[i0 * P->s1[0] + i1 * P->s1[1] + i2 * P->s1[2] + i3 * P->s1[3]];
                    const float b = in2[i0 * P->s2[0] + i1 * P->s2[1] + i2 * P->s2[2] + i3 * P->s2[3]];
                    float v = is_add ? a + b : a * b;
                    if (v < P->act_min) v = P->act_min;
                    if (v > P->act_max) v = P->act_max;
                    out[n++] = v;
                }
}

void tml_add_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    binary(P, in1, in2, out, 1);
}

void tml_mul_f32(const tml_binary_f32_t *src, const float *in1, const float *in2, float *out)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    binary(P, in1, in2, out, 0);
}

void tml_clamp_f32(const tml_unary_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_unary_f32_t, src);
    for (uint32_t i = 0; i < P->size; ++i) {
        float v = in[i];
        if (v < P->lo) v = P->lo;
        if (v > P->hi) v = P->hi;
        out[i] = v;
    }
}

float tml_logisticf(float v)
{
    if (v > 16.619047164916992188f) return 1.0f;
    if (v < -9.0f) return expf(v);
    return 1.0f / (1.0f + expf(-v));
}

void tml_logistic_f32(const tml_unary_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_unary_f32_t, src);
    for (uint32_t i = 0; i < P->size; ++i) out[i] = tml_logisticf(in[i]);
}

void tml_tanh_f32(const tml_unary_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_unary_f32_t, src);
    for (uint32_t i = 0; i < P->size; ++i) out[i] = tanhf(in[i]);
}
