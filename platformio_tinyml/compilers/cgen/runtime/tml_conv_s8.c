/* tml_conv_s8.c - int8 CONV_2D with per-channel requantization.
 *
 * acc = bias + sum((x + in_offset) * w) over the valid taps, then
 * out = clamp(requant(acc) + out_offset), exactly as TFLite. For output
 * pixels whose window is entirely inside the input, the in_offset term is
 * constant and pre-folded into bias_fold, leaving a plain int8 dot product
 * (SIMD on cores with the Arm DSP extension).
 */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

/* sum(x[i] * w[i]) for i < n, w in flash (TML_RD8). */
static int32_t dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        int32_t xw, ww;
        memcpy(&xw, x + i, 4);
        memcpy(&ww, w + i, 4);
        acc = __smlad(__sxtb16(xw), __sxtb16(ww), acc);
        acc = __smlad(__sxtb16(__ror(xw, 8)), __sxtb16(__ror(ww, 8)), acc);
    }
#endif
    for (; i < n; ++i) acc += (int32_t)x[i] * TML_RD8(w + i);
    return acc;
}

static int8_t finish(const tml_conv_s8_t *P, int32_t acc, int oc)
{
    acc = tml_requant(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc)) + P->out_offset;
    if (acc < P->act_min) acc = P->act_min;
    if (acc > P->act_max) acc = P->act_max;
    return (int8_t)acc;
}

void tml_conv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t in_c = P->in_c, k_w = P->k_w, k_h = P->k_h;
    const int32_t row_len = k_w * in_c;              /* contiguous when dil_w == 1 */
    const int32_t filt_len = k_h * row_len;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            const int inside = iy0 >= 0 && ix0 >= 0 &&
                               iy0 + (k_h - 1) * P->dil_h < P->in_h &&
                               ix0 + (k_w - 1) * P->dil_w < P->in_w;
            for (int32_t oc = 0; oc < P->out_c; ++oc) {
                const int8_t *wf = P->filter + oc * filt_len;
                int32_t acc;
                if (inside && P->dil_w == 1) {
                    acc = TML_RD32(P->bias_fold + oc);
                    for (int32_t ky = 0; ky < k_h; ++ky) {
                        const int8_t *xr = in + ((iy0 + ky * P->dil_h) * P->in_w + ix0) * in_c;
                        acc = dot_s8(xr, wf + ky * row_len, row_len, acc);
                    }
                } else {
                    acc = TML_RD32(P->bias + oc);
                    for (int32_t ky = 0; ky < k_h; ++ky) {
                        const int32_t iy = iy0 + ky * P->dil_h;
                        if (iy < 0 || iy >= P->in_h) continue;
                        for (int32_t kx = 0; kx < k_w; ++kx) {
                            const int32_t ix = ix0 + kx * P->dil_w;
                            if (ix < 0 || ix >= P->in_w) continue;
                            const int8_t *xp = in + (iy * P->in_w + ix) * in_c;
                            const int8_t *wp = wf + (ky * k_w + kx) * in_c;
                            for (int32_t ic = 0; ic < in_c; ++ic)
                                acc += ((int32_t)xp[ic] + P->in_offset) * TML_RD8(wp + ic);
                        }
                    }
                }
                out[(oy * P->out_w + ox) * P->out_c + oc] = finish(P, acc, (int)oc);
            }
        }
    }
}
