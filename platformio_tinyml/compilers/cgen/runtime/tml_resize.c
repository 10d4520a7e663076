/* tml_resize.c - RESIZE_NEAREST_NEIGHBOR (any element type) and
 * RESIZE_BILINEAR (int8: TFLite's 10-bit fixed-point kernel, rounding half
 * away from zero; float32). Source rows/columns and weights come as tables
 * computed at compile time. */
#include "tml_kernels.h"

void tml_resize_nearest(const tml_resize_nearest_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_resize_nearest_t, src);
    const uint8_t *x = (const uint8_t *)in;
    uint8_t *y = (uint8_t *)out;
    const uint32_t d = P->depth, row = P->in_w * d;
    for (uint32_t b = 0; b < P->batches; ++b) {
        const uint8_t *img = x + b * P->in_h * row;
        for (uint32_t oy = 0; oy < P->out_h; ++oy) {
            const uint8_t *r = img + (uint32_t)TML_RD32(P->ys + oy) * row;
            for (uint32_t ox = 0; ox < P->out_w; ++ox, y += d)
                memcpy(y, r + (uint32_t)TML_RD32(P->xs + ox) * d, d);
        }
    }
}

void tml_resize_bilinear_s8(const tml_resize_bilinear_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_resize_bilinear_t, src);
    const uint32_t d = P->depth, row = P->in_w * d;
    for (uint32_t b = 0; b < P->batches; ++b) {
        const int8_t *img = in + b * P->in_h * row;
        for (uint32_t oy = 0; oy < P->out_h; ++oy) {
            const int8_t *r0 = img + (uint32_t)TML_RD32(P->y_lo + oy) * row;
            const int8_t *r1 = img + (uint32_t)TML_RD32(P->y_hi + oy) * row;
            const int32_t wy1 = TML_RD32(P->dy + oy), wy0 = 1024 - wy1;
            for (uint32_t ox = 0; ox < P->out_w; ++ox) {
                const uint32_t c0 = (uint32_t)TML_RD32(P->x_lo + ox) * d, c1 = (uint32_t)TML_RD32(P->x_hi + ox) * d;
                const int32_t wx1 = TML_RD32(P->dx + ox), wx0 = 1024 - wx1;
                for (uint32_t c = 0; c < d; ++c) {
                    /* |acc| < 2^31: |weights| <= 2048 each way, |values| <= 128 */
                    const int32_t acc = (int32_t)r0[c0 + c] * wy0 * wx0 + (int32_t)r1[c0 + c] * wy1 * wx0 +
                                        (int32_t)r0[c1 + c] * wy0 * wx1 + (int32_t)r1[c1 + c] * wy1 * wx1;
                    const int32_t round = acc > 0 ? ((int32_t)1 << 19) : -((int32_t)1 << 19);
                    *out++ = (int8_t)((acc + round) / ((int32_t)1 << 20));
                }
            }
        }
    }
}

void tml_resize_bilinear_f32(const tml_resize_bilinear_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_resize_bilinear_t, src);
    const uint32_t d = P->depth, row = P->in_w * d;
    for (uint32_t b = 0; b < P->batches; ++b) {
        const float *img = in + b * P->in_h * row;
        for (uint32_t oy = 0; oy < P->out_h; ++oy) {
            const float *r0 = img + (uint32_t)TML_RD32(P->y_lo + oy) * row;
            const float *r1 = img + (uint32_t)TML_RD32(P->y_hi + oy) * row;
            const float fy = TML_RDF(P->fy + oy);
            for (uint32_t ox = 0; ox < P->out_w; ++ox) {
                const uint32_t c0 = (uint32_t)TML_RD32(P->x_lo + ox) * d, c1 = (uint32_t)TML_RD32(P->x_hi + ox) * d;
                const float fx = TML_RDF(P->fx + ox);
                for (uint32_t c = 0; c < d; ++c)
                    *out++ = r0[c0 + c] * (1 - fy) * (1 - fx) + r1[c0 + c] * fy * (1 - fx) +
                             r0[c1 + c] * (1 - fy) * fx + r1[c1 + c] * fy * fx;
            }
        }
    }
}
