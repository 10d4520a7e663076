/* tml_dwconv_s8.c - int8 DEPTHWISE_CONV_2D with per-channel requantization,
 * TFLite reference semantics (output channel oc = ic * depth_mult + m).
 *
 * The in_offset term of the whole window is pre-folded into bias_fold; taps
 * in the padding subtract their in_offset * w again. With depth_mult == 1,
 * four channels are computed together from one 32-bit load of the input and
 * one of the filter per tap (Arm DSP: __sxtb16 + __smlabb/__smlatt).
 */
#include "tml_kernels.h"
#include "tml_dot_s8.h"

/* Channels c..c+3 of one output pixel (depth_mult == 1). */
static void dw4(const tml_conv_s8_t *P, const int8_t *in, int8_t *o, int32_t c,
                int32_t iy0, int32_t ix0, int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1)
{
    const int32_t C = P->in_c, k_w = P->k_w;
    int32_t a0 = TML_RD32(P->bias_fold + c), a1 = TML_RD32(P->bias_fold + c + 1);
    int32_t a2 = TML_RD32(P->bias_fold + c + 2), a3 = TML_RD32(P->bias_fold + c + 3);
    for (int32_t ky = ky0; ky < ky1; ++ky) {
        const int8_t *xr = in + ((iy0 + ky * P->dil_h) * P->in_w + ix0) * C + c;
        const int8_t *wr = P->filter + ky * k_w * C + c;
        for (int32_t kx = kx0; kx < kx1; ++kx) {
            const int8_t *x = xr + kx * P->dil_w * C;
            const int8_t *w = wr + kx * C;
#if TML_HAVE_DSP
            const int32_t xv = tml_ld4(x), wv = tml_ld4(w);
            const int32_t xe = __sxtb16(xv), xo = __sxtb16(tml_ror8(xv));
            const int32_t we = __sxtb16(wv), wo = __sxtb16(tml_ror8(wv));
            a0 = __smlabb(xe, we, a0);
            a2 = __smlatt(xe, we, a2);
            a1 = __smlabb(xo, wo, a1);
            a3 = __smlatt(xo, wo, a3);
#else
            a0 += (int32_t)x[0] * TML_RD8(w);
            a1 += (int32_t)x[1] * TML_RD8(w + 1);
            a2 += (int32_t)x[2] * TML_RD8(w + 2);
            a3 += (int32_t)x[3] * TML_RD8(w + 3);
#endif
        }
    }
    if (ky0 > 0 || kx0 > 0 || ky1 < P->k_h || kx1 < k_w) {
        /* window over the border: take in_offset * w of the padded taps back out */
        int32_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (int32_t ky = 0; ky < P->k_h; ++ky) {
            for (int32_t kx = 0; kx < k_w; ++kx) {
                if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) continue;
                const int8_t *w = P->filter + (ky * k_w + kx) * C + c;
                p0 += TML_RD8(w);
                p1 += TML_RD8(w + 1);
                p2 += TML_RD8(w + 2);
                p3 += TML_RD8(w + 3);
            }
        }
        a0 -= p0 * P->in_offset;
        a1 -= p1 * P->in_offset;
        a2 -= p2 * P->in_offset;
        a3 -= p3 * P->in_offset;
    }
    o[c] = tml_out_s8(a0, TML_RD32(P->mult + c), TML_RD8(P->shift + c), P->out_offset, P->act_min, P->act_max);
    o[c + 1] = tml_out_s8(a1, TML_RD32(P->mult + c + 1), TML_RD8(P->shift + c + 1), P->out_offset,
                          P->act_min, P->act_max);
    o[c + 2] = tml_out_s8(a2, TML_RD32(P->mult + c + 2), TML_RD8(P->shift + c + 2), P->out_offset,
                          P->act_min, P->act_max);
    o[c + 3] = tml_out_s8(a3, TML_RD32(P->mult + c + 3), TML_RD8(P->shift + c + 3), P->out_offset,
                          P->act_min, P->act_max);
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

/* First tap k with i0 + k * d >= 0, and one past the last with i0 + k * d < n. */
static int32_t tap_lo(int32_t i0, int32_t d, int32_t k)
{
    int32_t t = 0;
    while (t < k && i0 + t * d < 0) ++t;
    return t;
}

static int32_t tap_hi(int32_t i0, int32_t d, int32_t k, int32_t n)
{
    int32_t t = k;
    while (t > 0 && i0 + (t - 1) * d >= n) --t;
    return t;
}

void tml_dwconv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t out_c = P->out_c;
    const int32_t c4 = P->depth_mult == 1 ? out_c & ~(int32_t)3 : 0;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int32_t ky0 = tap_lo(iy0, P->dil_h, P->k_h), ky1 = tap_hi(iy0, P->dil_h, P->k_h, P->in_h);
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            const int32_t kx0 = tap_lo(ix0, P->dil_w, P->k_w), kx1 = tap_hi(ix0, P->dil_w, P->k_w, P->in_w);
            int8_t *o = out + (oy * P->out_w + ox) * out_c;
            int32_t oc = 0;
            for (; oc < c4; oc += 4) dw4(P, in, o, oc, iy0, ix0, ky0, ky1, kx0, kx1);
            for (; oc < out_c; ++oc) o[oc] = dw1(P, in, oc, iy0, ix0);
        }
    }
}
