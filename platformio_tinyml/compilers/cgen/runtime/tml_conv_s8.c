/* tml_conv_s8.c - int8 CONV_2D with per-channel requantization.
 *
 * acc = bias + sum((x + in_offset) * w) over the valid taps, then
 * out = clamp(requant(acc) + out_offset), exactly as TFLite. The in_offset
 * term of the whole window is folded into bias_fold at compile time, so a
 * window entirely inside the input is a plain int8 dot product; for a window
 * that hangs over the border, in_offset * w of the padded taps is taken back
 * out of bias_fold (integer arithmetic is exact in any order).
 *
 * Blocking: two horizontally adjacent inside pixels x two output channels
 * per inner loop, so each loaded (and, with the Arm DSP extension,
 * sign-extended) input word serves two channels and each filter word two
 * pixels. On DSP cores __sxtb16 splits 4 int8 into the pairs (b0,b2) and
 * (b1,b3) for both operands, so __smlad pairs them up correctly with no
 * reordering of the weights.
 */
#include "tml_kernels.h"
#include "tml_dot_s8.h"

/* 2 pixels (xa, xb) x 2 channels (wa, wb) over n bytes: a[0..3] += ... */
TML_INLINE void dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *wa, const int8_t *wb,
                    int32_t n, int32_t *a)
{
    int32_t a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t x0 = tml_ld4(xa + i), x1 = tml_ld4(xb + i);
        const int32_t u0 = tml_ld4(wa + i), u1 = tml_ld4(wb + i);
        const int32_t x0e = __sxtb16(x0), x0o = tml_sxtb16_ror8((x0));
        const int32_t x1e = __sxtb16(x1), x1o = tml_sxtb16_ror8((x1));
        int32_t we = __sxtb16(u0), wo = tml_sxtb16_ror8((u0));
        a00 = __smlad(x0e, we, a00);
        a00 = __smlad(x0o, wo, a00);
        a10 = __smlad(x1e, we, a10);
        a10 = __smlad(x1o, wo, a10);
        we = __sxtb16(u1);
        wo = tml_sxtb16_ror8((u1));
        a01 = __smlad(x0e, we, a01);
        a01 = __smlad(x0o, wo, a01);
        a11 = __smlad(x1e, we, a11);
        a11 = __smlad(x1o, wo, a11);
    }
#endif
    for (; i < n; ++i) {
        const int32_t w0 = TML_RD8(wa + i), w1 = TML_RD8(wb + i);
        const int32_t x0 = xa[i], x1 = xb[i];
        a00 += x0 * w0;
        a01 += x0 * w1;
        a10 += x1 * w0;
        a11 += x1 * w1;
    }
    a[0] = a00; a[1] = a01; a[2] = a10; a[3] = a11;
}

/* 1 pixel x 1 channel over n bytes. */
static int32_t dot_1x1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t xv = tml_ld4(x + i), wv = tml_ld4(w + i);
        acc = __smlad(__sxtb16(xv), __sxtb16(wv), acc);
        acc = __smlad(tml_sxtb16_ror8((xv)), tml_sxtb16_ror8((wv)), acc);
    }
#endif
    for (; i < n; ++i) acc += (int32_t)x[i] * TML_RD8(w + i);
    return acc;
}

static int32_t wsum(const int8_t *w, int32_t n)
{
    int32_t s = 0;
    for (int32_t i = 0; i < n; ++i) s += TML_RD8(w + i);
    return s;
}

/* Any pixel, one output channel at a time: bias_fold, dot over the valid
 * taps, minus in_offset * (filter taps that fall in the padding). */
static void conv_pixel(const tml_conv_s8_t *P, const int8_t *in, int8_t *o, int32_t iy0, int32_t ix0)
{
    const int32_t in_c = P->in_c, k_w = P->k_w, k_h = P->k_h;
    const int32_t filt_len = k_h * k_w * in_c;
    for (int32_t oc = 0; oc < P->out_c; ++oc) {
        const int8_t *wf = P->filter + oc * filt_len;
        int32_t acc = TML_RD32(P->bias_fold + oc), pad_sum = 0;
        for (int32_t ky = 0; ky < k_h; ++ky) {
            const int32_t iy = iy0 + ky * P->dil_h;
            const int8_t *wr = wf + ky * k_w * in_c;
            if (iy < 0 || iy >= P->in_h) {
                pad_sum += wsum(wr, k_w * in_c);
                continue;
            }
            for (int32_t kx = 0; kx < k_w; ++kx) {
                const int32_t ix = ix0 + kx * P->dil_w;
                if (ix < 0 || ix >= P->in_w)
                    pad_sum += wsum(wr + kx * in_c, in_c);
                else
                    acc = dot_1x1(in + (iy * P->in_w + ix) * in_c, wr + kx * in_c, in_c, acc);
            }
        }
        acc -= pad_sum * P->in_offset;
        o[oc] = tml_out_s8(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc),
                           P->out_offset, P->act_min, P->act_max);
    }
}

/* Two pixels whose windows are 'rows' rows of row_len contiguous bytes, row_step
 * apart, starting at xa and xb (ob == 0: only the first pixel is wanted). */
static void conv_pair(const tml_conv_s8_t *P, const int8_t *xa, const int8_t *xb, int32_t rows,
                      int32_t row_len, int32_t row_step, int8_t *oa, int8_t *ob)
{
    const int32_t out_c = P->out_c;
    const int32_t filt_len = rows * row_len;
    const int32_t act_min = P->act_min, act_max = P->act_max, out_offset = P->out_offset;
    int32_t oc = 0;
    for (; oc + 2 <= out_c; oc += 2) {
        const int8_t *wa = P->filter + oc * filt_len;
        int32_t a[4];
        a[0] = a[2] = TML_RD32(P->bias_fold + oc);
        a[1] = a[3] = TML_RD32(P->bias_fold + oc + 1);
        for (int32_t r = 0; r < rows; ++r)
            dot_2x2(xa + r * row_step, xb + r * row_step, wa + r * row_len, wa + filt_len + r * row_len,
                    row_len, a);
        const int32_t m0 = TML_RD32(P->mult + oc), m1 = TML_RD32(P->mult + oc + 1);
        const int s0 = TML_RD8(P->shift + oc), s1 = TML_RD8(P->shift + oc + 1);
        oa[oc] = tml_out_s8(a[0], m0, s0, out_offset, act_min, act_max);
        oa[oc + 1] = tml_out_s8(a[1], m1, s1, out_offset, act_min, act_max);
        if (ob) {
            ob[oc] = tml_out_s8(a[2], m0, s0, out_offset, act_min, act_max);
            ob[oc + 1] = tml_out_s8(a[3], m1, s1, out_offset, act_min, act_max);
        }
    }
    for (; oc < out_c; ++oc) {
        const int8_t *wa = P->filter + oc * filt_len;
        int32_t acc0 = TML_RD32(P->bias_fold + oc), acc1 = acc0;
        for (int32_t r = 0; r < rows; ++r) {
            acc0 = dot_1x1(xa + r * row_step, wa + r * row_len, row_len, acc0);
            if (ob) acc1 = dot_1x1(xb + r * row_step, wa + r * row_len, row_len, acc1);
        }
        const int32_t m = TML_RD32(P->mult + oc);
        const int s = TML_RD8(P->shift + oc);
        oa[oc] = tml_out_s8(acc0, m, s, out_offset, act_min, act_max);
        if (ob) ob[oc] = tml_out_s8(acc1, m, s, out_offset, act_min, act_max);
    }
}

/* Windows of at most this many bytes are gathered (padding = the input zero
 * point, whose offset-corrected value is 0) into a stack buffer. */
#define TML_CONV_GATHER 64

static void gather(const tml_conv_s8_t *P, const int8_t *in, int8_t *buf, int32_t iy0, int32_t ix0)
{
    const int32_t in_c = P->in_c;
    const int8_t zp = (int8_t)(-P->in_offset);
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        for (int32_t kx = 0; kx < P->k_w; ++kx) {
            const int32_t ix = ix0 + kx * P->dil_w;
            const int ok = iy >= 0 && iy < P->in_h && ix >= 0 && ix < P->in_w;
            const int8_t *x = in + (iy * P->in_w + ix) * in_c;
            for (int32_t ic = 0; ic < in_c; ++ic) *buf++ = ok ? x[ic] : zp;
        }
    }
}

void tml_conv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
    const int32_t in_c = P->in_c, in_w = P->in_w, out_w = P->out_w, out_c = P->out_c;
    const int32_t span_h = (P->k_h - 1) * P->dil_h, span_w = (P->k_w - 1) * P->dil_w;
    const int32_t win = P->k_h * P->k_w * in_c;
    const int use_gather = win <= TML_CONV_GATHER && (P->k_h > 1 || P->k_w > 1);
    const int32_t row_len = P->k_w * in_c, row_step = P->dil_h * in_w * in_c;
    int8_t buf[2][TML_CONV_GATHER];
    const int8_t *pend = 0;       /* window of a pixel waiting for a partner */
    int8_t *pend_out = 0;
    int slot = 0;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int rows_in = iy0 >= 0 && iy0 + span_h < P->in_h && P->dil_w == 1;
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            const int8_t *x;
            if (use_gather) {
                gather(P, in, buf[slot], iy0, ix0);
                x = buf[slot];
                slot ^= 1;
                if (pend) {
                    conv_pair(P, pend, x, 1, win, 0, pend_out, o);
                    pend = 0;
                } else {
                    pend = x;
                    pend_out = o;
                }
            } else if (rows_in && ix0 >= 0 && ix0 + span_w < in_w) {
                x = in + (iy0 * in_w + ix0) * in_c;
                if (pend) {
                    conv_pair(P, pend, x, P->k_h, row_len, row_step, pend_out, o);
                    pend = 0;
                } else {
                    pend = x;
                    pend_out = o;
                }
            } else {
                conv_pixel(P, in, o, iy0, ix0);
            }
        }
    }
    if (pend) {
        if (use_gather)
            conv_pair(P, pend, pend, 1, win, 0, pend_out, 0);
        else
            conv_pair(P, pend, pend, P->k_h, row_len, row_step, pend_out, 0);
    }
}
