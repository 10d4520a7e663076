/* tml_fc_f32.c - float32 FULLY_CONNECTED.
 *
 * Each output is 0 + x[0]*w[0][o] + x[1]*w[1][o] + ... in input order, then
 * + bias, then the clamp: TFLite's reference additions in its order. The
 * weights are stored [in][out] (the lowering transposes TFLite's [out][in])
 * so that the weights of one input for 4 neighbouring outputs are contiguous:
 * 4 accumulators in registers take one input value each step (the compiler
 * vectorizes them), and their dependency chains are independent. Host-class
 * targets (GCC/Clang vector extensions on x86-64 and AArch64) take 16
 * outputs at a time in four 4-lane vectors first. Output and input never
 * share memory (the planner places FULLY_CONNECTED out of place).
 */
#if !defined(__AVR__)     /* AVR: built with the build's own flags (TML_F32_BLOCKS is 0 there) */
#include "tml_speed.h"
#endif
#include "tml_kernels.h"

void tml_fc_f32(const tml_fc_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_fc_f32_t, src);
    const int32_t n_in = P->in_features, n_out = P->out_features;
    for (uint32_t b = 0; b < P->batches; ++b) {
        const float *x = in + b * (uint32_t)n_in;
        float *TML_RESTRICT o = out + b * (uint32_t)n_out;
        int32_t j = 0;
#if TML_F32_VEC
        for (; j + 16 <= n_out; j += 16) {
            tml_v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            const float *w = P->weights + j;
            for (int32_t i = 0; i < n_in; ++i, w += n_out) {
                const float xv = x[i];
                a0 += xv * tml_ld4f(w);
                a1 += xv * tml_ld4f(w + 4);
                a2 += xv * tml_ld4f(w + 8);
                a3 += xv * tml_ld4f(w + 12);
            }
            tml_st4f(o + j, a0);
            tml_st4f(o + j + 4, a1);
            tml_st4f(o + j + 8, a2);
            tml_st4f(o + j + 12, a3);
        }
#endif
        /* 4 outputs at a time in registers; the weights of an input for them are contiguous */
        for (; TML_F32_BLOCKS && j + 4 <= n_out; j += 4) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            const float *w = P->weights + j;
            for (int32_t i = 0; i < n_in; ++i, w += n_out) {
                const float xv = x[i];
                a0 += xv * TML_RDF(w);
                a1 += xv * TML_RDF(w + 1);
                a2 += xv * TML_RDF(w + 2);
                a3 += xv * TML_RDF(w + 3);
            }
            o[j] = a0;
            o[j + 1] = a1;
            o[j + 2] = a2;
            o[j + 3] = a3;
        }
        for (; j < n_out; ++j) {
            float acc = 0.0f;
            const float *w = P->weights + j;
            for (int32_t i = 0; i < n_in; ++i, w += n_out) acc += x[i] * TML_RDF(w);
            o[j] = acc;
        }
        for (int32_t j = 0; j < n_out; ++j) {
            float acc = o[j] + TML_RDF(P->bias + j);
            if (acc < P->act_min) acc = P->act_min;
            if (acc > P->act_max) acc = P->act_max;
            o[j] = acc;
        }
    }
}
