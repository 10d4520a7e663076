/* tml_pad_s8.c - PAD for any element type (int8 pads with the output zero
 * point, float32 with the pad value): rows of the innermost dimension are
 * copied whole, everything else is filled with the pad element; MIRROR_PAD
 * (reflect or symmetric), element by element. */
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

/* Input index of output index o of a dimension of n elements padded by 'before'. */
static uint32_t mirror(int32_t o, int32_t before, int32_t n, int32_t symmetric)
{
    int32_t i = o - before;
    if (i < 0) i = -i - symmetric;
    if (i >= n) i = 2 * n - i - 2 + symmetric;
    return (uint32_t)i;
}

void tml_mirror_pad(const tml_pad_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_pad_t, src);
    const uint32_t elem = P->elem_size;
    const int32_t sym = P->value[0];      /* 1: symmetric (the edge repeated), 0: reflect */
    const uint8_t *x = (const uint8_t *)in;
    uint8_t *y = (uint8_t *)out;
    for (uint32_t i0 = 0; i0 < P->out_dims[0]; ++i0) {
        const uint32_t j0 = mirror((int32_t)i0, (int32_t)P->before[0], (int32_t)P->in_dims[0], sym);
        for (uint32_t i1 = 0; i1 < P->out_dims[1]; ++i1) {
            const uint32_t j1 = mirror((int32_t)i1, (int32_t)P->before[1], (int32_t)P->in_dims[1], sym);
            for (uint32_t i2 = 0; i2 < P->out_dims[2]; ++i2) {
                const uint32_t j2 = mirror((int32_t)i2, (int32_t)P->before[2], (int32_t)P->in_dims[2], sym);
                const uint32_t r = ((j0 * P->in_dims[1] + j1) * P->in_dims[2] + j2) * P->in_dims[3];
                for (uint32_t i3 = 0; i3 < P->out_dims[3]; ++i3, y += elem) {
                    const uint32_t j3 = mirror((int32_t)i3, (int32_t)P->before[3], (int32_t)P->in_dims[3], sym);
                    memcpy(y, x + (r + j3) * elem, elem);
                }
            }
        }
    }
}
