/* tml_pool_s8.c - int8 AVERAGE_POOL_2D and MAX_POOL_2D, TFLite semantics:
 * padded taps are excluded, the average rounds half away from zero. */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"

static void pool(const tml_pool_s8_t *P, const int8_t *in, int8_t *out, int is_avg)
{
    const int32_t c_n = P->c;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int32_t y0 = iy0 < 0 ? 0 : iy0;
        const int32_t y1 = iy0 + P->k_h > P->in_h ? P->in_h : iy0 + P->k_h;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            const int32_t x0 = ix0 < 0 ? 0 : ix0;
            const int32_t x1 = ix0 + P->k_w > P->in_w ? P->in_w : ix0 + P->k_w;
            const int32_t count = (y1 - y0) * (x1 - x0);
            for (int32_t c = 0; c < c_n; ++c) {
                int32_t acc = is_avg ? 0 : -128;
                for (int32_t y = y0; y < y1; ++y)
                    for (int32_t x = x0; x < x1; ++x) {
                        int32_t v = in[(y * P->in_w + x) * c_n + c];
                        if (is_avg) acc += v;
                        else if (v > acc) acc = v;
                    }
                if (is_avg && count > 0)
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                if (acc < P->act_min) acc = P->act_min;
                if (acc > P->act_max) acc = P->act_max;
                out[(oy * P->out_w + ox) * c_n + c] = (int8_t)acc;
            }
        }
    }
}

void tml_avgpool_s8(const tml_pool_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_pool_s8_t, src);
    pool(P, in, out, 1);
}

void tml_maxpool_s8(const tml_pool_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_pool_s8_t, src);
    pool(P, in, out, 0);
}
