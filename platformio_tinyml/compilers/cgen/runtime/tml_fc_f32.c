/* tml_fc_f32.c - float32 FULLY_CONNECTED, TFLite reference semantics. */
#include "tml_kernels.h"

void tml_fc_f32(const tml_fc_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_fc_f32_t, src);
    const int32_t n_in = P->in_features, n_out = P->out_features;
    for (uint32_t b = 0; b < P->batches; ++b) {
        const float *x = in + b * (uint32_t)n_in;
        for (int32_t o = 0; o < n_out; ++o) {
            const float *w = P->weights + o * n_in;
            float acc = 0.0f;
            for (int32_t i = 0; i < n_in; ++i) acc += x[i] * TML_RDF(w + i);
            acc += TML_RDF(P->bias + o);
            if (acc < P->act_min) acc = P->act_min;
            if (acc > P->act_max) acc = P->act_max;
            out[b * (uint32_t)n_out + o] = acc;
        }
    }
}
