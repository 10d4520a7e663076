/* tml_conv_f32.c - float32 CONV_2D and DEPTHWISE_CONV_2D, TFLite reference
 * semantics and summation order (filter y, filter x, input channel), then
 * bias and the fused activation clamp. */
#include "tml_kernels.h"

static float clampf(const tml_conv_f32_t *P, float v)
{
    if (v < P->act_min) v = P->act_min;
    if (v > P->act_max) v = P->act_max;
    return v;
}

void tml_conv_f32(const tml_conv_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_conv_f32_t, src);
    const int32_t in_c = P->in_c, k_w = P->k_w, k_h = P->k_h;
    const int32_t filt_len = k_h * k_w * in_c;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            for (int32_t oc = 0; oc < P->out_c; ++oc) {
                const float *wf = P->filter + oc * filt_len;
                float acc = 0.0f;
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = iy0 + ky * P->dil_h;
                    if (iy < 0 || iy >= P->in_h) continue;
                    for (int32_t kx = 0; kx < k_w; ++kx) {
                        const int32_t ix = ix0 + kx * P->dil_w;
                        if (ix < 0 || ix >= P->in_w) continue;
                        const float *xp = in + (iy * P->in_w + ix) * in_c;
                        const float *wp = wf + (ky * k_w + kx) * in_c;
                        for (int32_t ic = 0; ic < in_c; ++ic) acc += xp[ic] * TML_RDF(wp + ic);
                    }
                }
                out[(oy * P->out_w + ox) * P->out_c + oc] = clampf(P, acc + TML_RDF(P->bias + oc));
            }
        }
    }
}

void tml_dwconv_f32(const tml_conv_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_conv_f32_t, src);
    const int32_t in_c = P->in_c, out_c = P->out_c, dm = P->depth_mult;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            float *o = out + (oy * P->out_w + ox) * out_c;
            for (int32_t oc = 0; oc < out_c; ++oc) {
                const int32_t ic = oc / dm;
                float acc = 0.0f;
                for (int32_t ky = 0; ky < P->k_h; ++ky) {
                    const int32_t iy = iy0 + ky * P->dil_h;
                    if (iy < 0 || iy >= P->in_h) continue;
                    for (int32_t kx = 0; kx < P->k_w; ++kx) {
                        const int32_t ix = ix0 + kx * P->dil_w;
                        if (ix < 0 || ix >= P->in_w) continue;
                        acc += in[(iy * P->in_w + ix) * in_c + ic] *
                               TML_RDF(P->filter + (ky * P->k_w + kx) * out_c + oc);
                    }
                }
                o[oc] = clampf(P, acc + TML_RDF(P->bias + oc));
            }
        }
    }
}
