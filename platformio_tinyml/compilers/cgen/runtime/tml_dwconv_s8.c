/* tml_dwconv_s8.c - int8 DEPTHWISE_CONV_2D with per-channel requantization,
 * TFLite reference semantics (output channel oc = ic * depth_mult + m).
 *
 * The in_offset term of the whole window is pre-folded into bias_fold; taps
 * in the padding count as the input zero point (offset-corrected value 0). With depth_mult == 1,
 * four channels are computed together from one 32-bit load of the input and
 * one of the filter per tap (Arm DSP: __sxtb16 + __smlabb/__smlatt).
 */
#include "tml_kernels.h"
#include "tml_dot_s8.h"

/* Channels c..c+3 of one output pixel (depth_mult == 1). A tap in the
 * padding reads four copies of the input zero point (zp4): its offset-
 * corrected value is 0, which is what bias_fold assumes. */
static void dw4(const tml_conv_s8_t *P, const int8_t *in, int8_t *o, int32_t c,
                int32_t iy0, int32_t ix0, int32_t zp4)
{
    const int32_t C = P->in_c, k_w = P->k_w, k_h = P->k_h, in_w = P->in_w;
    int32_t a0 = TML_RD32(P->bias_fold + c), a1 = TML_RD32(P->bias_fold + c + 1);
    int32_t a2 = TML_RD32(P->bias_fold + c + 2), a3 = TML_RD32(P->bias_fold + c + 3);
    const int8_t *w = P->filter + c;
    for (int32_t ky = 0; ky < k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        const int row_ok = iy >= 0 && iy < P->in_h;
        const int8_t *xr = in + iy * in_w * C + c;
        for (int32_t kx = 0; kx < k_w; ++kx, w += C) {
            const int32_t ix = ix0 + kx * P->dil_w;
            const int32_t xv = (row_ok && ix >= 0 && ix < in_w) ? tml_ld4(xr + ix * C) : zp4;
#if TML_HAVE_DSP
            const int32_t wv = tml_ld4(w);
            const int32_t xe = __sxtb16(xv), xo = tml_sxtb16_ror8(xv);
            const int32_t we = __sxtb16(wv), wo = tml_sxtb16_ror8(wv);
            a0 = __smlabb(xe, we, a0);
            a2 = __smlatt(xe, we, a2);
            a1 = __smlabb(xo, wo, a1);
            a3 = __smlatt(xo, wo, a3);
#else
            int8_t xb[4];
            memcpy(xb, &xv, 4);
            a0 += (int32_t)xb[0] * TML_RD8(w);
            a1 += (int32_t)xb[1] * TML_RD8(w + 1);
            a2 += (int32_t)xb[2] * TML_RD8(w + 2);
            a3 += (int32_t)xb[3] * TML_RD8(w + 3);
#endif
        }
    }
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    o[c] = tml_out_s8(a0, TML_RD32(P->mult + c), TML_RD8(P->shift + c), off, lo, hi);
    o[c + 1] = tml_out_s8(a1, TML_RD32(P->mult + c + 1), TML_RD8(P->shift + c + 1), off, lo, hi);
    o[c + 2] = tml_out_s8(a2, TML_RD32(P->mult + c + 2), TML_RD8(P->shift + c + 2), off, lo, hi);
    o[c + 3] = tml_out_s8(a3, TML_RD32(P->mult + c + 3), TML_RD8(P->shift + c + 3), off, lo, hi);
}

/* Inside pixels (whole window in the input): the taps' byte offsets from the
 * window's corner are precomputed, so a tap is two loads and four MACs. */
#define TML_DW_MAX_TAPS 25

TML_INLINE void dw4_inside(const tml_conv_s8_t *P, const int8_t *x0, const int32_t *off, int32_t taps,
                       int8_t *o, int32_t c)
{
    const int32_t C = P->in_c;
    int32_t a0 = TML_RD32(P->bias_fold + c), a1 = TML_RD32(P->bias_fold + c + 1);
    int32_t a2 = TML_RD32(P->bias_fold + c + 2), a3 = TML_RD32(P->bias_fold + c + 3);
    const int8_t *w = P->filter + c;
    const int8_t *x = x0 + c;
    for (int32_t t = 0; t < taps; ++t, w += C) {
        const int32_t xv = tml_ld4(x + off[t]);
#if TML_HAVE_DSP
        const int32_t wv = tml_ld4(w);
        const int32_t xe = __sxtb16(xv), xo = tml_sxtb16_ror8(xv);
        const int32_t we = __sxtb16(wv), wo = tml_sxtb16_ror8(wv);
        a0 = __smlabb(xe, we, a0);
        a2 = __smlatt(xe, we, a2);
        a1 = __smlabb(xo, wo, a1);
        a3 = __smlatt(xo, wo, a3);
#else
        int8_t xb[4];
        memcpy(xb, &xv, 4);
        a0 += (int32_t)xb[0] * TML_RD8(w);
        a1 += (int32_t)xb[1] * TML_RD8(w + 1);
        a2 += (int32_t)xb[2] * TML_RD8(w + 2);
        a3 += (int32_t)xb[3] * TML_RD8(w + 3);
#endif
    }
    const int32_t lo = P->act_min, hi = P->act_max, of = P->out_offset;
    o[c] = tml_out_s8(a0, TML_RD32(P->mult + c), TML_RD8(P->shift + c), of, lo, hi);
    o[c + 1] = tml_out_s8(a1, TML_RD32(P->mult + c + 1), TML_RD8(P->shift + c + 1), of, lo, hi);
    o[c + 2] = tml_out_s8(a2, TML_RD32(P->mult + c + 2), TML_RD8(P->shift + c + 2), of, lo, hi);
    o[c + 3] = tml_out_s8(a3, TML_RD32(P->mult + c + 3), TML_RD8(P->shift + c + 3), of, lo, hi);
}

/* Output channel oc of one pixel, any depth multiplier. */
static int8_t dw1(const tml_conv_s8_t *P, const int8_t *in, int32_t oc, int32_t iy0, int32_t ix0)
{
    const int32_t ic = oc / P->depth_mult, out_c = P->out_c;
    int32_t acc = TML_RD32(P->bias_fold + oc);
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        for (int32_t kx = 0; kx < P->k_w; ++kx) {
            const int32_t ix = ix0 + kx * P->dil_w;
            const int32_t w = TML_RD8(P->filter + (ky * P->k_w + kx) * out_c + oc);
            if (iy < 0 || iy >= P->in_h || ix < 0 || ix >= P->in_w)
                acc -= P->in_offset * w;
            else
                acc += (int32_t)in[(iy * P->in_w + ix) * P->in_c + ic] * w;
        }
    }
    return tml_out_s8(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc), P->out_offset,
                      P->act_min, P->act_max);
}

void tml_dwconv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t out_c = P->out_c;
    const int32_t c4 = P->depth_mult == 1 ? out_c & ~(int32_t)3 : 0;
    const int32_t zp4 = (int32_t)(((uint32_t)(uint8_t)(-P->in_offset)) * 0x01010101u);
    const int32_t taps = P->k_h * P->k_w;
    int32_t off[TML_DW_MAX_TAPS];
    if (taps <= TML_DW_MAX_TAPS)
        for (int32_t t = 0; t < taps; ++t)
            off[t] = ((t / P->k_w) * P->dil_h * P->in_w + (t % P->k_w) * P->dil_w) * P->in_c;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            int8_t *o = out + (oy * P->out_w + ox) * out_c;
            const int inside = taps <= TML_DW_MAX_TAPS && iy0 >= 0 && ix0 >= 0 &&
                               iy0 + (P->k_h - 1) * P->dil_h < P->in_h && ix0 + (P->k_w - 1) * P->dil_w < P->in_w;
            int32_t oc = 0;
            if (inside) {
                const int8_t *x0 = in + (iy0 * P->in_w + ix0) * P->in_c;
                for (; oc < c4; oc += 4) dw4_inside(P, x0, off, taps, o, oc);
            }
            for (; oc < c4; oc += 4) dw4(P, in, o, oc, iy0, ix0, zp4);
            for (; oc < out_c; ++oc) o[oc] = dw1(P, in, oc, iy0, ix0);
        }
    }
}
