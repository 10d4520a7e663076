/* tml_dwconv_s8.c - int8 DEPTHWISE_CONV_2D with per-channel requantization,
 * TFLite reference semantics (output channel oc = ic * depth_mult + m). */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

void tml_dwconv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t in_c = P->in_c, out_c = P->out_c, dm = P->depth_mult;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            const int inside = iy0 >= 0 && ix0 >= 0 &&
                               iy0 + (P->k_h - 1) * P->dil_h < P->in_h &&
                               ix0 + (P->k_w - 1) * P->dil_w < P->in_w;
            int8_t *o = out + (oy * P->out_w + ox) * out_c;
            for (int32_t oc = 0; oc < out_c; ++oc) {
                const int32_t ic = oc / dm;
                int32_t acc;
                if (inside) {
                    acc = TML_RD32(P->bias_fold + oc);
                    for (int32_t ky = 0; ky < P->k_h; ++ky) {
                        const int8_t *xr = in + ((iy0 + ky * P->dil_h) * P->in_w + ix0) * in_c + ic;
                        const int8_t *wr = P->filter + ky * P->k_w * out_c + oc;
                        for (int32_t kx = 0; kx < P->k_w; ++kx)
                            acc += (int32_t)xr[kx * P->dil_w * in_c] * TML_RD8(wr + kx * out_c);
                    }
                } else {
                    acc = TML_RD32(P->bias + oc);
                    for (int32_t ky = 0; ky < P->k_h; ++ky) {
                        const int32_t iy = iy0 + ky * P->dil_h;
                        if (iy < 0 || iy >= P->in_h) continue;
                        for (int32_t kx = 0; kx < P->k_w; ++kx) {
                            const int32_t ix = ix0 + kx * P->dil_w;
                            if (ix < 0 || ix >= P->in_w) continue;
                            acc += ((int32_t)in[(iy * P->in_w + ix) * in_c + ic] + P->in_offset) *
                                   TML_RD8(P->filter + (ky * P->k_w + kx) * out_c + oc);
                        }
                    }
                }
                acc = tml_requant(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc)) + P->out_offset;
                if (acc < P->act_min) acc = P->act_min;
                if (acc > P->act_max) acc = P->act_max;
                o[oc] = (int8_t)acc;
            }
        }
    }
}
