/* tml_softmax_f32.c - float32 SOFTMAX over the last dimension with beta,
 * TFLite reference semantics: exp((x - max) * beta) / sum. */
#include <math.h>
#include "tml_kernels.h"

void tml_softmax_f32(const tml_softmax_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_softmax_f32_t, src);
    const int32_t depth = P->depth;
    for (uint32_t r = 0; r < P->outer; ++r) {
        const float *x = in + r * (uint32_t)depth;
        float *y = out + r * (uint32_t)depth;
        float max = x[0];
        for (int32_t c = 1; c < depth; ++c) if (x[c] > max) max = x[c];
        float sum = 0.0f;
        for (int32_t c = 0; c < depth; ++c) sum += expf((x[c] - max) * P->beta);
        for (int32_t c = 0; c < depth; ++c) y[c] = expf((x[c] - max) * P->beta) / sum;
    }
}
