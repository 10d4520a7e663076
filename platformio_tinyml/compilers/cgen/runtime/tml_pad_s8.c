/* tml_pad_s8.c - PAD for any element type (int8 pads with the output zero
 * point, float32 with the pad value): rows of the innermost dimension are
 * copied whole, everything else is filled with the pad element. */
#include "tml_kernels.h"

static void fill(uint8_t *dst, const uint8_t *value, uint32_t elem, uint32_t n)
{
    if (elem == 1) {
        memset(dst, value[0], n);
        return;
    }
    for (uint32_t i = 0; i < n; ++i) memcpy(dst + i * elem, value, elem);
}

void tml_pad(const tml_pad_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_pad_t, src);
    const uint32_t elem = P->elem_size;
    const uint8_t *x = (const uint8_t *)in;
    uint8_t *y = (uint8_t *)out;
    const uint32_t row_out = P->out_dims[3] * elem;
    const uint32_t row_in = P->in_dims[3] * elem;
    const uint32_t left = P->before[3] * elem;
    for (uint32_t i0 = 0; i0 < P->out_dims[0]; ++i0) {
        const int32_t j0 = (int32_t)i0 - (int32_t)P->before[0];
        for (uint32_t i1 = 0; i1 < P->out_dims[1]; ++i1) {
            const int32_t j1 = (int32_t)i1 - (int32_t)P->before[1];
            for (uint32_t i2 = 0; i2 < P->out_dims[2]; ++i2) {
                const int32_t j2 = (int32_t)i2 - (int32_t)P->before[2];
                const int inside = j0 >= 0 && j0 < (int32_t)P->in_dims[0] &&
                                   j1 >= 0 && j1 < (int32_t)P->in_dims[1] &&
                                   j2 >= 0 && j2 < (int32_t)P->in_dims[2];
                if (!inside) {
                    fill(y, P->value, elem, P->out_dims[3]);
                } else {
                    const uint32_t r = ((uint32_t)j0 * P->in_dims[1] + (uint32_t)j1) * P->in_dims[2] + (uint32_t)j2;
                    fill(y, P->value, elem, P->before[3]);
                    memcpy(y + left, x + r * row_in, row_in);
                    fill(y + left + row_in, P->value, elem, (row_out - left - row_in) / elem);
                }
                y += row_out;
            }
        }
    }
}
