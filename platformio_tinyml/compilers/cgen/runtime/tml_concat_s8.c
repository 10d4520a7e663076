/* tml_concat_s8.c - CONCATENATION for any element type: a byte copy per input
 * and output row (int8 inputs share the output's quantization). */
#include "tml_kernels.h"

void tml_concat(const tml_concat_t *src, const void *const *ins, void *out)
{
    TML_LOAD_PARAMS(tml_concat_t, src);
    uint8_t *y = (uint8_t *)out;
    for (uint32_t r = 0; r < P->outer; ++r) {
        for (uint16_t k = 0; k < P->n_inputs; ++k) {
            const uint32_t n = (uint32_t)TML_RD32(P->chunk + k);
            memcpy(y, (const uint8_t *)ins[k] + r * n, n);
            y += n;
        }
    }
}
