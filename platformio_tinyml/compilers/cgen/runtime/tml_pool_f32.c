/* tml_pool_f32.c - float32 AVERAGE_POOL_2D, MAX_POOL_2D, L2_POOL_2D (padded
 * taps excluded) and MEAN, TFLite reference semantics. */
#include <math.h>
#include "tml_kernels.h"

enum { POOL_MAX, POOL_AVG, POOL_L2 };

static void pool(const tml_pool_f32_t *P, const float *in, float *out, int kind)
{
    const int is_avg = kind != POOL_MAX;
    const int32_t c_n = P->c;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int32_t y0 = iy0 < 0 ? 0 : iy0;
        const int32_t y1 = iy0 + P->k_h > P->in_h ? P->in_h : iy0 + P->k_h;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            const int32_t x0 = ix0 < 0 ? 0 : ix0;
            const int32_t x1 = ix0 + P->k_w > P->in_w ? P->in_w : ix0 + P->k_w;
            for (int32_t c = 0; c < c_n; ++c) {
                float acc = is_avg ? 0.0f : -3.40282347e+38f;
                int32_t count = 0;
                for (int32_t y = y0; y < y1; ++y)
                    for (int32_t x = x0; x < x1; ++x) {
                        const float v = in[(y * P->in_w + x) * c_n + c];
                        if (kind == POOL_L2) acc += v * v;
                        else if (is_avg) acc += v;
                        else if (v > acc) acc = v;
                        ++count;
                    }
                if (is_avg) acc = acc / (float)count;
                if (kind == POOL_L2) acc = sqrtf(acc);
                if (acc < P->act_min) acc = P->act_min;
                if (acc > P->act_max) acc = P->act_max;
                out[(oy * P->out_w + ox) * c_n + c] = acc;
            }
        }
    }
}

void tml_avgpool_f32(const tml_pool_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_pool_f32_t, src);
    pool(P, in, out, POOL_AVG);
}

void tml_maxpool_f32(const tml_pool_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_pool_f32_t, src);
    pool(P, in, out, POOL_MAX);
}

void tml_l2pool_f32(const tml_pool_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_pool_f32_t, src);
    pool(P, in, out, POOL_L2);
}

void tml_mean_f32(const tml_mean_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_mean_f32_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const float *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            float sum = 0.0f;
            for (uint32_t k = 0; k < count; ++k) sum += x[k * inner + i];
            out[o * inner + i] = sum / (float)count;
        }
    }
}
