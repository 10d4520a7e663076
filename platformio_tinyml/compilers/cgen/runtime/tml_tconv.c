/* tml_tconv.c - TRANSPOSE_CONV (int8 per-channel, float32) on one NHWC image.
 *
 * TFLite scatters input pixel (iy, ix) into output (iy*stride - pad + ky,
 * ix*stride - pad + kx); here each output gathers the taps with
 * oy + pad - ky = iy * stride, 0 <= iy < in_h (same for x). Filter OHWI.
 * int8: exact int32 sums of (in + in_offset) * filter, + bias, requantized
 * per output channel (mult, shift), + out_offset, clamped to [act_min, act_max];
 * bias_fold holds the plain bias here (borders differ per pixel: nothing folds).
 * float32: taps in the reference's order (input pixel ascending), then bias. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

/* The input row for filter tap k at output position o, or -1 when none. */
static int32_t tml_tconv_src(int32_t o, int32_t pad, int32_t k, int32_t stride, int32_t n_in)
{
    int32_t t = o + pad - k;
    if (t < 0) return -1;
    int32_t i = t / stride;
    if (i * stride != t || i >= n_in) return -1;
    return i;
}

void tml_tconv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t in_c = P->in_c, k_h = P->k_h, k_w = P->k_w;
    const int32_t in_off = P->in_offset;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            for (int32_t oc = 0; oc < P->out_c; ++oc) {
                const int8_t *wf = P->filter + (int32_t)oc * k_h * k_w * in_c;
                int32_t acc = 0;
                for (int32_t ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = tml_tconv_src(oy, P->pad_t, ky, P->stride_h, P->in_h);
                    if (iy < 0) continue;
                    for (int32_t kx = 0; kx < k_w; ++kx) {
                        const int32_t ix = tml_tconv_src(ox, P->pad_l, kx, P->stride_w, P->in_w);
                        if (ix < 0) continue;
                        const int8_t *xp = in + (iy * (int32_t)P->in_w + ix) * in_c;
                        const int8_t *wp = wf + (ky * k_w + kx) * in_c;
                        for (int32_t ic = 0; ic < in_c; ++ic)
                            acc += ((int32_t)xp[ic] + in_off) * (int32_t)TML_RD8(wp + ic);
                    }
                }
                acc += TML_RD32(P->bias_fold + oc);
                acc = tml_requant(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc)) + P->out_offset;
                if (acc < P->act_min) acc = P->act_min;
                if (acc > P->act_max) acc = P->act_max;
                out[(oy * (int32_t)P->out_w + ox) * P->out_c + oc] = (int8_t)acc;
            }
        }
    }
}

void tml_tconv_f32(const tml_conv_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_conv_f32_t, src);
    const int32_t in_c = P->in_c, k_h = P->k_h, k_w = P->k_w;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            for (int32_t oc = 0; oc < P->out_c; ++oc) {
                const float *wf = P->filter + (int32_t)oc * k_h * k_w * in_c;
                float acc = 0.0f;
                for (int32_t ky = k_h - 1; ky >= 0; --ky) {
                    const int32_t iy = tml_tconv_src(oy, P->pad_t, ky, P->stride_h, P->in_h);
                    if (iy < 0) continue;
                    for (int32_t kx = k_w - 1; kx >= 0; --kx) {
                        const int32_t ix = tml_tconv_src(ox, P->pad_l, kx, P->stride_w, P->in_w);
                        if (ix < 0) continue;
                        const float *xp = in + (iy * (int32_t)P->in_w + ix) * in_c;
                        const float *wp = wf + (ky * k_w + kx) * in_c;
                        for (int32_t ic = 0; ic < in_c; ++ic) acc += xp[ic] * TML_RDF(wp + ic);
                    }
                }
                acc += TML_RDF(P->bias + oc);
                if (acc < P->act_min) acc = P->act_min;
                if (acc > P->act_max) acc = P->act_max;
                out[(oy * (int32_t)P->out_w + ox) * P->out_c + oc] = acc;
            }
        }
    }
}
