/* tml_mean_s8.c - int8 MEAN over a contiguous block of axes, TFLite Micro
 * semantics: an int32 sum per output, then a requantization with 1/count
 * folded into the multiplier (also when input and output quantization are
 * equal: current TFLM no longer has a separate plain-division path). */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

void tml_mean_s8(const tml_mean_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_mean_s8_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const int8_t *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            int32_t sum = 0;
            for (uint32_t k = 0; k < count; ++k) sum += x[k * inner + i];
            int32_t v = tml_requant(sum - (int32_t)P->in_zp * (int32_t)count, P->mult, P->shift) + P->out_zp;
            if (v < -128) v = -128;
            if (v > 127) v = 127;
            out[o * inner + i] = (int8_t)v;
        }
    }
}
