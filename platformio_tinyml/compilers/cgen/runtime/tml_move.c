/* tml_move.c - data movement for any element type: a strided n-d copy
 * (TRANSPOSE, SLICE, SPLIT, TILE, ... as lower_shape.py describes them), a
 * fill, and GATHER with constant indices. Bytes move unchanged: int8 tensors
 * keep their quantization. */
#include "tml_kernels.h"

void tml_copy_nd(const tml_copy_nd_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_copy_nd_t, src);
    const uint8_t *x = (const uint8_t *)in;
    uint8_t *y = (uint8_t *)out;
    const uint32_t last = (uint32_t)P->rank - 1u, e = P->elem, n = P->dims[last];
    const int32_t si = P->in_step[last], so = P->out_step[last];
    const int whole = si == (int32_t)e && so == (int32_t)e;
    uint32_t idx[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t oi = P->in_base, oo = P->out_base;
    for (;;) {
        if (whole) {
            memcpy(y + oo, x + oi, n * e);
        } else {
            int32_t a = oi, b = oo;
            for (uint32_t k = 0; k < n; ++k, a += si, b += so) memcpy(y + b, x + a, e);
        }
        uint32_t d = last;
        while (d > 0) {
            --d;
            oi += P->in_step[d];
            oo += P->out_step[d];
            if (++idx[d] < P->dims[d]) break;
            oi -= P->in_step[d] * (int32_t)P->dims[d];
            oo -= P->out_step[d] * (int32_t)P->dims[d];
            idx[d] = 0;
            if (d == 0) return;
        }
        if (last == 0) return;
    }
}

void tml_fill(const tml_fill_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_fill_t, src);
    uint8_t *y = (uint8_t *)out;
    (void)in;
    for (uint32_t i = 0; i < P->n; ++i, y += P->elem) memcpy(y, P->value, P->elem);
}

void tml_gather(const tml_gather_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_gather_t, src);
    const uint8_t *x = (const uint8_t *)in;
    uint8_t *y = (uint8_t *)out;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const uint8_t *block = x + o * P->axis * P->inner;
        for (uint32_t k = 0; k < P->n_idx; ++k, y += P->inner)
            memcpy(y, block + (uint32_t)TML_RD32(P->idx + k) * P->inner, P->inner);
    }
}
