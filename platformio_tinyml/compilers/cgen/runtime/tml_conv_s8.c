/* tml_conv_s8.c - int8 CONV_2D with per-channel requantization.
 *
 * acc = bias + sum((x + in_offset) * w) over the valid taps, then
 * out = clamp(requant(acc) + out_offset), exactly as TFLite. The in_offset
 * term of the whole window is folded into bias_fold at compile time, so the
 * kernels accumulate sum(x * w) with padded taps reading the input zero
 * point (offset-corrected value 0). Integer arithmetic is exact in any order.
 *
 * Main path (im2col): the windows of two output pixels are copied into an
 * int16 buffer (sign-extended once, padded taps = zero point, the reduction
 * rounded up to a multiple of 4 with zeros), then every pair of output
 * channels is a 2 pixels x 2 channels block over it. The buffer is
 * P->scratch (arena bytes the planner found free at this op) or, when the
 * planner found none, a small stack buffer. With the Arm DSP extension the
 * buffer holds each group of 4 elements as (x0,x2),(x1,x3) pairs of pixel A
 * then of pixel B, which is what __sxtb16 / __sxtb16(ror 8) make of a filter
 * word, so one __smlad takes two MACs with no reordering of the weights.
 * A filter row is read in whole words up to the padded length: the bytes
 * past its end (the next row's, or the array's zero padding) meet zeros.
 * Cortex-M speed builds (not -Os): a window inside the input is copied as one
 * byte stream in words; 1x1 filters without padding (the pixel is its window)
 * skip the window copy and expand both input pixels straight into the buffer;
 * with out_c a multiple of 4 each pass reduces 2 pixels x 4 channels and
 * stores each pixel's 4 outputs as one word; where the layer's accumulators
 * and shifts allow it (tml_rqx_ok) and the activation range is all of int8,
 * fq_pair (asm) does all channels of the pixel pair with the SMMLAR
 * requantize (tml_rqx_s8). Inside windows with rows of >= 4 bytes are
 * copied by fill_in in whole words read inside each row, 3 rows of 9 bytes
 * (3x3 over 3 channels) by fill9. Where the lowering found arena room for it
 * (P->filter16, see tml_kernels.h), the filter is expanded there once a
 * call into int16 pairs and fq_pair16 reads it with
 * LDRD (12 instructions a chunk instead of 17). An odd last pixel is
 * computed as a pair with the one before it (whose bytes are stored again).
 *
 * Fallback (window too big for the stack and no scratch): two horizontally
 * adjacent inside pixels x two output channels straight from the input,
 * border pixels one channel at a time with the padded taps corrected.
 */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"
#include "tml_dot_s8.h"

/* Bytes of the stack im2col buffer (2 pixels): int16 windows when they fit,
 * else int8 windows (raw bytes, padded taps = zero point). */
#ifndef TML_CONV_STACK_BYTES
#if defined(__AVR__)
#define TML_CONV_STACK_BYTES 0
#elif defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(_WIN32)
#define TML_CONV_STACK_BYTES 16384
#elif TML_RV32
#define TML_CONV_STACK_BYTES 128    /* its register blocks' frames sit under it: 512 B in all */
#else
#define TML_CONV_STACK_BYTES 288
#endif
#endif
#ifndef TML_CONV_STACK16_BYTES
#define TML_CONV_STACK16_BYTES (TML_CONV_STACK_BYTES > 256 && TML_CONV_STACK_BYTES < 1024 ? 256 : TML_CONV_STACK_BYTES)
#endif
/* The stack buffer of conv_im2col (conv_stack16). Cortex-M speed builds:
 * at most 128 B, as conv_im2col and its callees have bigger frames there;
 * their 1x1 layers take the whole TML_CONV_STACK16_BYTES (conv_1x1_stack). */
#ifndef TML_CONV_IM2COL16_BYTES
#if TML_ARM_FAST && TML_CONV_STACK16_BYTES > 128 && TML_CONV_STACK16_BYTES < 1024
#define TML_CONV_IM2COL16_BYTES 128
#else
#define TML_CONV_IM2COL16_BYTES TML_CONV_STACK16_BYTES
#endif
#endif

/* ---- im2col path ---------------------------------------------------------- */

/* 1x1 filters without padding, where each output pixel's window is its input
 * pixel: the pixels in order, two at a time (n pixels left; n == 1: the last
 * one with itself, both outputs the same bytes). */
typedef struct {
    const int8_t *x;
    int8_t *o;
    int32_t n, ox, out_w, out_c, sx, sy;   /* n: pixels left */
} tml_px1_t;

TML_INLINE void px1_init(tml_px1_t *w, const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    w->x = in;
    w->o = out;
    w->n = P->out_h * P->out_w;
    w->ox = 0;
    w->out_w = P->out_w;
    w->out_c = P->out_c;
    w->sx = P->stride_w * P->in_c;
    w->sy = (P->stride_h * P->in_w - P->out_w * P->stride_w) * P->in_c;
}

TML_INLINE void px1_step(tml_px1_t *w)
{
    w->x += w->sx;
    if (++w->ox == w->out_w) { w->ox = 0; w->x += w->sy; }
    w->o += w->out_c;
}

/* The next pixel (n > 0). */
TML_INLINE void px1_take(tml_px1_t *w, const int8_t **x, int8_t **o)
{
    *x = w->x;
    *o = w->o;
    px1_step(w);
    --w->n;
}

/* The next pair; 0 when none is left. */
TML_INLINE int px1_pair(tml_px1_t *w, const int8_t **xa, const int8_t **xb, int8_t **oa, int8_t **ob)
{
    if (w->n <= 0) return 0;
    *xa = *xb = w->x;
    *oa = *ob = w->o;
    px1_step(w);
    if (w->n > 1) {
        *xb = w->x;
        *ob = w->o;
        px1_step(w);
    }
    w->n -= 2;
    return 1;
}

/* Speed-tuned Cortex-M paths (-O1/-O2/-O3; -Os keeps the compact loops). */
#define TML_CONV_FAST TML_ARM_FAST

#if TML_HAVE_DSP
/* Element k of a pixel's window: chunk k/4 holds 8 int16 (A pairs, B pairs). */
#define TML_IX(k) ((((k) >> 2) << 3) | (((k) & 1) << 1) | (((k) >> 1) & 1))

/* n bytes from src as window elements k.. of one pixel (d: its chunk base):
 * single elements up to a multiple of 4, then whole words, then the rest. */
static void put_seg(int16_t *d, int32_t k, const int8_t *src, int32_t n)
{
    for (; n > 0 && (k & 3); --n, ++k) d[TML_IX(k)] = *src++;
    int32_t *dw = (int32_t *)(void *)(d + (k << 1));
    for (; n >= 4; n -= 4, k += 4, src += 4, dw += 4) {
        const int32_t v = tml_ld4(src);
        dw[0] = __sxtb16(v);
        dw[1] = tml_sxtb16_ror8(v);
    }
    for (; n > 0; --n, ++k) d[TML_IX(k)] = *src++;
}

static void put_const(int16_t *d, int32_t k, int32_t v, int32_t n)
{
    for (int32_t i = 0; i < n; ++i, ++k) d[TML_IX(k)] = (int16_t)v;
}
#else
static void put_seg(int16_t *d, int32_t k, const int8_t *src, int32_t n)
{
    d += k;
    for (int32_t i = 0; i < n; ++i) d[i] = src[i];
}

static void put_const(int16_t *d, int32_t k, int32_t v, int32_t n)
{
    d += k;
    for (int32_t i = 0; i < n; ++i) d[i] = (int16_t)v;
}
#endif

#if TML_CONV_FAST
/* Pixels A and B (K bytes each, K a multiple of 4) into the window buffer as
 * interleaved chunks: per 4 taps, sxtb16 / sxtb16 ror 8 of A's word, then B's. */
TML_INLINE void expand_pair(int16_t *buf, const int8_t *xa, const int8_t *xb, int32_t K)
{
    int32_t *dw = (int32_t *)(void *)buf;
    for (int32_t k = 0; k < K; k += 4, dw += 4) {
        const int32_t va = tml_ld4(xa + k), vb = tml_ld4(xb + k);
        dw[0] = __sxtb16(va);
        dw[1] = tml_sxtb16_ror8(va);
        dw[2] = __sxtb16(vb);
        dw[3] = tml_sxtb16_ror8(vb);
    }
}

/* v << n and v >> n with ARM register-shift semantics (n >= 32 gives 0). */
TML_INLINE uint32_t lsl_r(uint32_t v, uint32_t n)
{
    uint32_t r;
    __asm__("lsl %0, %1, %2" : "=r"(r) : "r"(v), "r"(n));
    return r;
}

TML_INLINE uint32_t lsr_r(uint32_t v, uint32_t n)
{
    uint32_t r;
    __asm__("lsr %0, %1, %2" : "=r"(r) : "r"(v), "r"(n));
    return r;
}

/* The window rows (rows of row >= 4 bytes, step apart, from src) as one byte
 * stream into the chunks from dw on, zeros up to de. Every row is read in
 * whole words inside it: its row / 4 words, then, for the last row % 4
 * bytes, the word ending at the row's end shifted down; acc holds the nb
 * bits of the stream not yet stored. */
static TML_NOINLINE void fill_in(int32_t *dw, const int8_t *src, int32_t row, int32_t step, int32_t rows,
                                 const int32_t *de)
{
    const int32_t n4 = row >> 2, t = row & 3;
    const uint32_t tb = (uint32_t)t * 8;
    uint32_t acc = 0, nb = 0;
    if (!t) {   /* whole words: nothing pending across rows */
        for (int32_t r = 0; r < rows; ++r, src += step)
            for (const int8_t *sp = src, *se = src + row; sp < se; sp += 4, dw += 4) {
                const int32_t v = tml_ld4(sp);
                dw[0] = __sxtb16(v);
                dw[1] = tml_sxtb16_ror8(v);
            }
        rows = 0;
    }
    for (int32_t r = 0; r < rows; ++r, src += step) {
        const int8_t *sp = src;
        for (int32_t i = 0; i < n4; ++i, sp += 4, dw += 4) {
            const uint32_t v = (uint32_t)tml_ld4(sp);
            const uint32_t wv = acc | lsl_r(v, nb);
            acc = lsr_r(v, 32 - nb);
            dw[0] = __sxtb16((int32_t)wv);
            dw[1] = tml_sxtb16_ror8((int32_t)wv);
        }
        if (t) {
            const uint32_t v = (uint32_t)tml_ld4(sp + t - 4) >> (32 - tb);
            acc |= lsl_r(v, nb);
            nb += tb;
            if (nb >= 32) {
                dw[0] = __sxtb16((int32_t)acc);
                dw[1] = tml_sxtb16_ror8((int32_t)acc);
                dw += 4;
                nb -= 32;
                acc = lsr_r(v, tb - nb);
            }
        }
    }
    if (nb) {
        dw[0] = __sxtb16((int32_t)acc);
        dw[1] = tml_sxtb16_ror8((int32_t)acc);
        dw += 4;
    }
    for (; dw < de; dw += 4) dw[0] = dw[1] = 0;
}
#endif

#if TML_CONV_FAST
/* The 4 window elements in the bytes of v as chunk dw (one pixel's half). */
TML_INLINE void put4(int32_t *dw, uint32_t v)
{
    dw[0] = __sxtb16((int32_t)v);
    dw[1] = tml_sxtb16_ror8((int32_t)v);
}

/* fill_in for 3 rows of 9 bytes (3x3 filter over 3 channels: kp = 28): each
 * row read as the words at bytes 0, 4 and 5 (all inside it), the 27 bytes
 * and a zero as 7 words, shifted together in registers. */
static TML_NOINLINE void fill9(int32_t *dw, const int8_t *s, int32_t step)
{
    const uint32_t a0 = (uint32_t)tml_ld4(s), b0 = (uint32_t)tml_ld4(s + 4), c0 = (uint32_t)tml_ld4(s + 5);
    s += step;
    const uint32_t a1 = (uint32_t)tml_ld4(s), b1 = (uint32_t)tml_ld4(s + 4), c1 = (uint32_t)tml_ld4(s + 5);
    s += step;
    const uint32_t a2 = (uint32_t)tml_ld4(s), b2 = (uint32_t)tml_ld4(s + 4), c2 = (uint32_t)tml_ld4(s + 5);
    put4(dw, a0);
    put4(dw + 4, b0);
    put4(dw + 8, (c0 >> 24) | (a1 << 8));
    put4(dw + 12, (a1 >> 24) | (b1 << 8));
    put4(dw + 16, (c1 >> 16) | (a2 << 16));
    put4(dw + 20, (a2 >> 16) | (b2 << 16));
    put4(dw + 24, c2 >> 8);
}
#endif

/* The window of the pixel with top-left input corner (iy0, ix0) into d. */
static TML_NOINLINE void fill(const tml_conv_s8_t *P, const int8_t *in, int16_t *d, int32_t iy0, int32_t ix0,
                 int32_t kp)
{
    const int32_t in_c = P->in_c, in_w = P->in_w, k_w = P->k_w, row = k_w * in_c;
    const int32_t zp = -P->in_offset;
    const int row_in = ix0 >= 0 && ix0 + (k_w - 1) * P->dil_w < in_w && P->dil_w == 1;
#if TML_CONV_FAST
    /* Window inside the input, rows of >= 4 bytes: fill_in. */
    if (row_in && row >= 4 && iy0 >= 0 && iy0 + (P->k_h - 1) * P->dil_h < P->in_h) {
        if (row == 9 && P->k_h == 3) {
            fill9((int32_t *)(void *)d, in + (iy0 * in_w + ix0) * in_c, P->dil_h * in_w * in_c);
            return;
        }
        fill_in((int32_t *)(void *)d, in + (iy0 * in_w + ix0) * in_c, row, P->dil_h * in_w * in_c, P->k_h,
                (int32_t *)(void *)d + kp);
        return;
    }
#endif
    int32_t k = 0;
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        if (iy < 0 || iy >= P->in_h) {
            put_const(d, k, zp, row);
            k += row;
        } else if (row_in) {
            put_seg(d, k, in + (iy * in_w + ix0) * in_c, row);
            k += row;
        } else {
            for (int32_t kx = 0; kx < k_w; ++kx, k += in_c) {
                const int32_t ix = ix0 + kx * P->dil_w;
                if (ix < 0 || ix >= in_w)
                    put_const(d, k, zp, in_c);
                else
                    put_seg(d, k, in + (iy * in_w + ix) * in_c, in_c);
            }
        }
    }
    put_const(d, k, 0, kp - k);
}

/* Requantize the 2x2 block and store it (ob == 0: pixel B is not wanted). */
TML_INLINE void store2x2(const tml_conv_s8_t *P, int32_t oc, int two, const int32_t *a,
                         int8_t *oa, int8_t *ob)
{
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    const int32_t m0 = TML_RD32(P->mult + oc);
    const int s0 = TML_RD8(P->shift + oc);
    oa[oc] = tml_out_s8(a[0], m0, s0, off, lo, hi);
    if (ob) ob[oc] = tml_out_s8(a[2], m0, s0, off, lo, hi);
    if (two) {
        const int32_t m1 = TML_RD32(P->mult + oc + 1);
        const int s1 = TML_RD8(P->shift + oc + 1);
        oa[oc + 1] = tml_out_s8(a[1], m1, s1, off, lo, hi);
        if (ob) ob[oc + 1] = tml_out_s8(a[3], m1, s1, off, lo, hi);
    }
}

#if TML_RV32
/* RV32: 2 pixels x 4 channels a pass, eight accumulators in registers, the
 * reduction unrolled by 4 (n: a multiple of 4, > 0). XA, XB: the windows (int16
 * im2col buffer or int8 input pixels), read with W0..W3 up to n. */
#define TML_RV_TAP(j)                                                        \
    {                                                                        \
        const int32_t xa_ = xa[j], xb_ = xb[j];                              \
        int32_t v_ = TML_RD8(w0 + (j));                                      \
        a0 += xa_ * v_; b0 += xb_ * v_;                                      \
        v_ = TML_RD8(w1 + (j));                                              \
        a1 += xa_ * v_; b1 += xb_ * v_;                                      \
        v_ = TML_RD8(w2 + (j));                                              \
        a2 += xa_ * v_; b2 += xb_ * v_;                                      \
        v_ = TML_RD8(w3 + (j));                                              \
        a3 += xa_ * v_; b3 += xb_ * v_;                                      \
    }
/* Channels oc .. oc + 3 of pixels A (acc[0..3]) and B (acc[4..7], ob == 0:
 * not wanted) requantized and stored. */
static TML_NOINLINE void rv_out(const tml_conv_s8_t *P, int fast, int32_t oc, const int32_t *acc, int8_t *oa,
                                int8_t *ob)
{
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    for (int32_t j = 0; j < 4; ++j) {
        const int32_t m = TML_RD32(P->mult + oc + j);
        const int sh = TML_RD8(P->shift + oc + j);
        const int32_t R = fast ? tml_rqx_rv_r(off, sh) : 0;
        if (ob) ob[oc + j] = tml_out_rv(acc[4 + j], fast, m, sh, R, off, lo, hi);
        oa[oc + j] = tml_out_rv(acc[j], fast, m, sh, R, off, lo, hi);
    }
}

#define TML_RV_BLOCK24(T)                                                    \
    const int32_t c4 = P->out_c & ~(int32_t)3;                               \
    const int8_t *w = P->filter;                                             \
    for (int32_t oc = 0; oc < c4; oc += 4, w += 4 * K) {                     \
        const T *xa = xa0, *xb = xb0, *const xe = xa0 + n;                   \
        const int8_t *w0 = w, *w1 = w + K, *w2 = w1 + K, *w3 = w2 + K;       \
        int32_t a0 = TML_RD32(P->bias_fold + oc), a1 = TML_RD32(P->bias_fold + oc + 1); \
        int32_t a2 = TML_RD32(P->bias_fold + oc + 2), a3 = TML_RD32(P->bias_fold + oc + 3); \
        int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;                          \
        do {                                                                 \
            TML_RV_TAP(0) TML_RV_TAP(1) TML_RV_TAP(2) TML_RV_TAP(3)          \
            xa += 4; xb += 4; w0 += 4; w1 += 4; w2 += 4; w3 += 4;            \
        } while (xa != xe);                                                  \
        const int32_t acc[8] = {a0, a1, a2, a3, b0, b1, b2, b3};             \
        rv_out(P, fast, oc, acc, oa, ob);                                    \
    }                                                                        \
    return c4

/* The int16 windows in buf (pixel B kp on): channels 0 .. out_c & ~3 of
 * both pixels (ob == 0: A only); returns how many channels it did. */
static TML_NOINLINE TML_RV_NOSCHED int32_t block_rv32(const tml_conv_s8_t *P, const int16_t *buf, int32_t K, int32_t kp,
                                       int8_t *oa, int8_t *ob, int fast)
{
    const int16_t *xa0 = buf, *xb0 = buf + kp;
    const int32_t n = kp;
    TML_RV_BLOCK24(int16_t);
}

/* The same straight from two int8 windows of n bytes (n a multiple of 4, K
 * the filter row length; ob == oa for a lone pixel: its bytes stored twice). */
static TML_NOINLINE TML_RV_NOSCHED int32_t block_rv32_s8(const tml_conv_s8_t *P, const int8_t *xa0, const int8_t *xb0,
                                          int32_t K, int32_t n, int8_t *oa, int8_t *ob, int fast)
{
    TML_RV_BLOCK24(int8_t);
}
#undef TML_RV_BLOCK24
#undef TML_RV_TAP

/* 3 pixels x 4 channels (1x1 filters read in place, K and out_c multiples
 * of 4): twelve accumulators, 7 loads, 12 multiplies and 12 adds a step. */
#define TML_RV_TAP3(j)                                                       \
    {                                                                        \
        const int32_t xa_ = xa[j], xb_ = xb[j], xc_ = xc[j];                 \
        int32_t v_ = TML_RD8(w0 + (j));                                      \
        a0 += xa_ * v_; b0 += xb_ * v_; c0 += xc_ * v_;                      \
        v_ = TML_RD8(w1 + (j));                                              \
        a1 += xa_ * v_; b1 += xb_ * v_; c1 += xc_ * v_;                      \
        v_ = TML_RD8(w2 + (j));                                              \
        a2 += xa_ * v_; b2 += xb_ * v_; c2 += xc_ * v_;                      \
        v_ = TML_RD8(w3 + (j));                                              \
        a3 += xa_ * v_; b3 += xb_ * v_; c3 += xc_ * v_;                      \
    }
static TML_NOINLINE TML_RV_NOSCHED void block_rv32_3(const tml_conv_s8_t *P, const int8_t *const *x, int8_t *const *o,
                                                     int fast)
{
    const int32_t K = P->in_c, out_c = P->out_c;
    const int8_t *w = P->filter;
    for (int32_t oc = 0; oc < out_c; oc += 4, w += 4 * K) {
        const int8_t *xa = x[0], *xb = x[1], *xc = x[2], *const xe = x[0] + K;
        const int8_t *w0 = w, *w1 = w + K, *w2 = w1 + K, *w3 = w2 + K;
        int32_t a0 = TML_RD32(P->bias_fold + oc), a1 = TML_RD32(P->bias_fold + oc + 1);
        int32_t a2 = TML_RD32(P->bias_fold + oc + 2), a3 = TML_RD32(P->bias_fold + oc + 3);
        int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3, c0 = a0, c1 = a1, c2 = a2, c3 = a3;
        do {
            TML_RV_TAP3(0) TML_RV_TAP3(1) TML_RV_TAP3(2) TML_RV_TAP3(3)
            xa += 4; xb += 4; xc += 4; w0 += 4; w1 += 4; w2 += 4; w3 += 4;
        } while (xa != xe);
        const int32_t acc[12] = {a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3};
        rv_out(P, fast, oc, acc, o[0], o[1]);
        rv_out(P, fast, oc, acc + 8, o[2], 0);
    }
}
#undef TML_RV_TAP3
#endif

/* All output channels of the two pixels whose windows are in buf. */
static TML_NOINLINE void block(const tml_conv_s8_t *P, const int16_t *buf, int32_t K, int32_t kp, int8_t *oa, int8_t *ob,
                               int rq)
{
    const int32_t out_c = P->out_c;
    int32_t oc = 0;
#if TML_RV32
    oc = block_rv32(P, buf, K, kp, oa, ob, rq);
#else
    (void)rq;
#endif
    for (; oc < out_c; oc += 2) {
        const int two = oc + 1 < out_c;
        const int8_t *w0 = P->filter + oc * K;
        const int8_t *w1 = two ? w0 + K : w0;
        int32_t a00 = TML_RD32(P->bias_fold + oc), a01 = two ? TML_RD32(P->bias_fold + oc + 1) : 0;
        int32_t a10 = a00, a11 = a01;
#if TML_HAVE_DSP
        const int32_t *x = (const int32_t *)(const void *)buf;
#define TML_CHUNK(j)                                                         \
        {                                                                    \
            const int32_t u0 = tml_ld4(w0 + 4 * (j));                        \
            const int32_t u0e = __sxtb16(u0), u0o = tml_sxtb16_ror8(u0);     \
            a00 = __smlad(x[4 * (j)], u0e, a00);                             \
            a00 = __smlad(x[4 * (j) + 1], u0o, a00);                         \
            a10 = __smlad(x[4 * (j) + 2], u0e, a10);                         \
            a10 = __smlad(x[4 * (j) + 3], u0o, a10);                         \
            const int32_t u1 = tml_ld4(w1 + 4 * (j));                        \
            const int32_t u1e = __sxtb16(u1), u1o = tml_sxtb16_ror8(u1);     \
            a01 = __smlad(x[4 * (j)], u1e, a01);                             \
            a01 = __smlad(x[4 * (j) + 1], u1o, a01);                         \
            a11 = __smlad(x[4 * (j) + 2], u1e, a11);                         \
            a11 = __smlad(x[4 * (j) + 3], u1o, a11);                         \
        }
        for (int32_t n = kp >> 2; n > 0; --n, x += 4, w0 += 4, w1 += 4) TML_CHUNK(0)
#undef TML_CHUNK
#else
        const int16_t *xa = buf, *xb = buf + kp;
        for (int32_t k = 0; k < kp; ++k) {
            const int32_t v0 = TML_RD8(w0 + k), v1 = TML_RD8(w1 + k);
            a00 += xa[k] * v0;
            a01 += xa[k] * v1;
            a10 += xb[k] * v0;
            a11 += xb[k] * v1;
        }
#endif
        const int32_t a[4] = {a00, a01, a10, a11};
        store2x2(P, oc, two, a, oa, ob);
    }
}


#if TML_CONV_FAST
/* The asm reduction of block_fast: pixels A, B (buf from xb to xe) x the
 * filter rows w0, w1 (2 chunks = 16 MACs x 2 an iteration, 17 instructions
 * a chunk). It reads only buf (written before) and the filter (constant),
 * so it needs no memory clobber. */
TML_INLINE void dot2x2_asm(const int32_t *x, const int32_t *xe, int32_t kp, const int8_t *w0, const int8_t *w1,
                           int32_t *p00, int32_t *p01, int32_t *p10, int32_t *p11)
{
    int32_t a00 = *p00, a01 = *p01, a10 = *p10, a11 = *p11;
    int32_t xa0, xa1, xb0, xb1, ue, uo;
#define TML_CONV_ASM_CHUNK                                                   \
        "ldrd %[xa0], %[xa1], [%[x]], #8\n\t"                                \
        "ldrd %[xb0], %[xb1], [%[x]], #8\n\t"                                \
        "ldr %[uo], [%[w0]], #4\n\t"                                         \
        "sxtb16 %[ue], %[uo]\n\t"                                            \
        "sxtb16 %[uo], %[uo], ror #8\n\t"                                    \
        "smlad %[a00], %[xa0], %[ue], %[a00]\n\t"                            \
        "smlad %[a10], %[xb0], %[ue], %[a10]\n\t"                            \
        "smlad %[a00], %[xa1], %[uo], %[a00]\n\t"                            \
        "smlad %[a10], %[xb1], %[uo], %[a10]\n\t"                            \
        "ldr %[uo], [%[w1]], #4\n\t"                                         \
        "sxtb16 %[ue], %[uo]\n\t"                                            \
        "sxtb16 %[uo], %[uo], ror #8\n\t"                                    \
        "smlad %[a01], %[xa0], %[ue], %[a01]\n\t"                            \
        "smlad %[a11], %[xb0], %[ue], %[a11]\n\t"                            \
        "smlad %[a01], %[xa1], %[uo], %[a01]\n\t"                            \
        "smlad %[a11], %[xb1], %[uo], %[a11]\n\t"
#define TML_CONV_ASM_OPS                                                     \
        : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), \
          [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [xa0] "=&r"(xa0), [xa1] "=&r"(xa1), \
          [xb0] "=&r"(xb0), [xb1] "=&r"(xb1), [ue] "=&r"(ue), [uo] "=&r"(uo)
    if (kp & 4) __asm__(TML_CONV_ASM_CHUNK TML_CONV_ASM_OPS);
    if (x != xe)
        __asm__("1:\n\t" TML_CONV_ASM_CHUNK TML_CONV_ASM_CHUNK
                "cmp %[x], %[xe]\n\t"
                "bne 1b"
                TML_CONV_ASM_OPS : [xe] "r"(xe) : "cc");
#undef TML_CONV_ASM_OPS
#undef TML_CONV_ASM_CHUNK
    *p00 = a00; *p01 = a01; *p10 = a10; *p11 = a11;
}

/* Requantize one channel (m, s) of pixels A (*pa) and B (*pb), + off,
 * saturated to int8 (the per-channel constants decoded once for both). */
TML_INLINE void rq2(int32_t *pa, int32_t *pb, int32_t m, int s, int32_t off)
{
    if (s < 0) {
        const int32_t e1 = -s - 1, r = (int32_t)1 << e1;
        *pa = __ssat(tml_requant_neg_s8(*pa, m, r, e1) + off, 8);
        *pb = __ssat(tml_requant_neg_s8(*pb, m, r, e1) + off, 8);
    } else {
        *pa = __ssat(tml_requant_s8(*pa, m, s) + off, 8);
        *pb = __ssat(tml_requant_s8(*pb, m, s) + off, 8);
    }
}

/* block() for an even out_c and two wanted pixels. out_c a multiple of 4:
 * two 2x2 reductions, then each pixel's 4 channels requantized together
 * (tml_out4_s8: one word store). Else per channel pair, where both shifts
 * are negative with the per-channel constants hoisted, clamped byte-wise
 * and stored as two halfwords. */
static TML_NOINLINE void block_fast(const tml_conv_s8_t *P, const int16_t *buf, int32_t K, int32_t kp,
                                    int8_t *oa, int8_t *ob)
{
    const int32_t out_c = P->out_c, off = P->out_offset, lo = P->act_min, hi = P->act_max;
    const int32_t *bf = P->bias_fold, *mp = P->mult;
    const int8_t *sh = P->shift, *w = P->filter;
    const int32_t *xb = (const int32_t *)(const void *)buf, *xe = xb + kp;
    if (!(out_c & 3)) {
        for (int32_t oc = 0; oc < out_c; oc += 4, w += 4 * K) {
            int32_t a00 = bf[oc], a01 = bf[oc + 1], a10 = a00, a11 = a01;
            int32_t c00 = bf[oc + 2], c01 = bf[oc + 3], c10 = c00, c11 = c01;
            dot2x2_asm(xb, xe, kp, w, w + K, &a00, &a01, &a10, &a11);
            dot2x2_asm(xb, xe, kp, w + 2 * K, w + 3 * K, &c00, &c01, &c10, &c11);
            rq2(&a00, &a10, mp[oc], sh[oc], off);
            rq2(&a01, &a11, mp[oc + 1], sh[oc + 1], off);
            rq2(&c00, &c10, mp[oc + 2], sh[oc + 2], off);
            rq2(&c01, &c11, mp[oc + 3], sh[oc + 3], off);
            const uint32_t pa = tml_pack4_s8(a00, a01, c00, c01, lo, hi);
            const uint32_t pb = tml_pack4_s8(a10, a11, c10, c11, lo, hi);
            memcpy(oa + oc, &pa, 4);
            memcpy(ob + oc, &pb, 4);
        }
        return;
    }
    for (int32_t oc = 0; oc < out_c; oc += 2, w += 2 * K) {
        int32_t a00 = bf[oc], a01 = bf[oc + 1], a10 = a00, a11 = a01;
        dot2x2_asm(xb, xe, kp, w, w + K, &a00, &a01, &a10, &a11);
        const int s0 = sh[oc], s1 = sh[oc + 1];
        if ((s0 & s1) < 0) {   /* both shifts negative */
            const int32_t m0 = mp[oc], m1 = mp[oc + 1];
            const int32_t e0 = -s0 - 1, e1 = -s1 - 1, r0 = (int32_t)1 << e0, r1 = (int32_t)1 << e1;
            const int32_t v00 = __ssat(tml_requant_neg_s8(a00, m0, r0, e0) + off, 8);
            const int32_t v10 = __ssat(tml_requant_neg_s8(a10, m0, r0, e0) + off, 8);
            const int32_t v01 = __ssat(tml_requant_neg_s8(a01, m1, r1, e1) + off, 8);
            const int32_t v11 = __ssat(tml_requant_neg_s8(a11, m1, r1, e1) + off, 8);
            const uint32_t pk = tml_pack4_s8(v00, v01, v10, v11, lo, hi);
            const uint16_t pa = (uint16_t)pk, pb = (uint16_t)(pk >> 16);
            memcpy(oa + oc, &pa, 2);
            memcpy(ob + oc, &pb, 2);
        } else {
            const int32_t a[4] = {a00, a01, a10, a11};
            store2x2(P, oc, 1, a, oa, ob);
        }
    }
}
#endif

#if TML_CONV_FAST
/* block_fast with the SMMLAR requantize (tml_rqx_s8) for layers where
 * tml_rqx_ok holds, out_c is a multiple of 4 and the activation range is all
 * of int8. The first 13 words are what fq_pair (below) copies to its frame. */
typedef struct {
    const int32_t *bf;     /*  0: bias_fold */
    const int32_t *xb;     /*  4: buffer start (2 pixels, interleaved chunks) */
    const int8_t *w;       /*  8: filter */
    int32_t K;             /* 12: filter row length */
    int32_t odd;           /* 16: (kp / 4) & 1 (fq_pair16: & 3) */
    const int32_t *xe;     /* 20: buffer end */
    const int32_t *m;      /* 24: mult */
    const int8_t *sh;      /* 28: shift */
    int32_t kpk;           /* 32: kp - K */
    int32_t off2;          /* 36: 2 * out_offset + 1 */
    int8_t *oa, *ob;       /* 40, 44: outputs of pixels A, B */
    int32_t nq;            /* 48: out_c / 4 */
} conv_fq_t;

/* One chunk (4 window elements of both pixels) x the filter rows at r5, r6:
 * x = r4, accumulators r0 (A, row 0), r1 (A, row 1), r2 (B, 0), r3 (B, 1). */
#define TML_FQ_CHUNK                                                          \
    "ldrd r7, r8, [r4], #8\n\t"                                               \
    "ldrd r9, r10, [r4], #8\n\t"                                              \
    "ldr r12, [r5], #4\n\t"                                                   \
    "sxtb16 r11, r12\n\t"                                                     \
    "sxtb16 r12, r12, ror #8\n\t"                                             \
    "smlad r0, r7, r11, r0\n\t"                                               \
    "smlad r2, r9, r11, r2\n\t"                                               \
    "smlad r0, r8, r12, r0\n\t"                                               \
    "smlad r2, r10, r12, r2\n\t"                                              \
    "ldr r12, [r6], #4\n\t"                                                   \
    "sxtb16 r11, r12\n\t"                                                     \
    "sxtb16 r12, r12, ror #8\n\t"                                             \
    "smlad r1, r7, r11, r1\n\t"                                               \
    "smlad r3, r9, r11, r3\n\t"                                               \
    "smlad r1, r8, r12, r1\n\t"                                               \
    "smlad r3, r10, r12, r3\n\t"

/* TML_FQ_CHUNK with the filter rows already as int16 pairs (the int16
 * filter of conv_fq_t: each 4 taps as sxtb16 / sxtb16 ror 8 of their word). */
#define TML_FQ_CHUNK16                                                        \
    "ldrd r7, r8, [r4], #8\n\t"                                               \
    "ldrd r9, r10, [r4], #8\n\t"                                              \
    "ldrd r11, r12, [r5], #8\n\t"                                             \
    "smlad r0, r7, r11, r0\n\t"                                               \
    "smlad r2, r9, r11, r2\n\t"                                               \
    "smlad r0, r8, r12, r0\n\t"                                               \
    "smlad r2, r10, r12, r2\n\t"                                              \
    "ldrd r11, r12, [r6], #8\n\t"                                             \
    "smlad r1, r7, r11, r1\n\t"                                               \
    "smlad r3, r9, r11, r3\n\t"                                               \
    "smlad r1, r8, r12, r1\n\t"                                               \
    "smlad r3, r10, r12, r3\n\t"

/* tml_rqx_s8 of accumulator x with multiplier m, R and e1 (r12 scratch). */
#define TML_FQ_RQ(x, m, R, e)                                                 \
    "lsl " x ", " x ", #1\n\t"                                                \
    "add r12, " R ", " x ", asr #31\n\t"                                      \
    "smmlar " x ", " x ", " m ", r12\n\t"                                     \
    "asr " x ", " x ", " e "\n\t"                                             \
    "ssat " x ", #8, " x ", asr #1\n\t"

/* The reduction of TML_FQ_PAIR: fq_pair (odd = (kp / 4) & 1) one chunk,
 * then 2 an iteration; fq_pair16 (odd = (kp / 4) & 3) the remainder of 1
 * and 2 chunks, then 4 an iteration (LSLS #30: Z = no remainder; LSLS #31:
 * N = bit 0, C = bit 1). */
#define TML_FQ_LOOP8(L)                                                       \
    "cbz r7, 2" L "f\n\t"                                                     \
    TML_FQ_CHUNK                                                              \
    "cmp r4, lr\n\t"                                                          \
    "beq 3" L "f\n"                                                           \
    "2" L ":\n\t"                                                             \
    TML_FQ_CHUNK TML_FQ_CHUNK                                                 \
    "cmp r4, lr\n\t"                                                          \
    "bne 2" L "b\n"

#define TML_FQ_LOOP16(L)                                                      \
    "lsls r12, r7, #30\n\t"                                                   \
    "beq 2" L "f\n\t"                                                         \
    "lsls r7, r7, #31\n\t"                                                    \
    "bpl 4" L "f\n\t"                                                         \
    TML_FQ_CHUNK16                                                            \
    "4" L ":\n\t"                                                             \
    "bcc 5" L "f\n\t"                                                         \
    TML_FQ_CHUNK16 TML_FQ_CHUNK16                                             \
    "5" L ":\n\t"                                                             \
    "cmp r4, lr\n\t"                                                          \
    "beq 3" L "f\n"                                                           \
    "2" L ":\n\t"                                                             \
    TML_FQ_CHUNK16 TML_FQ_CHUNK16 TML_FQ_CHUNK16 TML_FQ_CHUNK16               \
    "cmp r4, lr\n\t"                                                          \
    "bne 2" L "b\n"

/* Two output channels of both pixels: r0 = A's two bytes, r2 = B's (low
 * halfwords, stored by TML_FQ_STORE). Frame: the 13 words of conv_fq_t. */
#define TML_FQ_PAIR(L, LOOP)                                                  \
    "ldm sp, {r3, r4, r5, r6, r7, lr}\n\t"                                    \
    "ldrd r0, r1, [r3], #8\n\t"                                               \
    "str r3, [sp]\n\t"                                                        \
    "mov r2, r0\n\t"                                                          \
    "mov r3, r1\n\t"                                                          \
    "add r6, r5, r6\n\t"                                                      \
    LOOP(L)                                                                   \
    "3" L ":\n\t"                                                             \
    "add r12, sp, #24\n\t"                                                    \
    "ldm r12, {r4, r5, r7, r10}\n\t"                                          \
    "sub r6, r6, r7\n\t"                                                      \
    "str r6, [sp, #8]\n\t"                                                    \
    "ldrd r6, r7, [r4], #8\n\t"                                               \
    "ldrsb r8, [r5], #1\n\t"                                                  \
    "ldrsb r9, [r5], #1\n\t"                                                  \
    "strd r4, r5, [sp, #24]\n\t"                                              \
    "mvn r8, r8\n\t"                                                          \
    "mvn r9, r9\n\t"                                                          \
    "lsl r11, r10, r8\n\t"                                                    \
    "lsl r10, r10, r9\n\t"                                                    \
    TML_FQ_RQ("r0", "r6", "r11", "r8")                                        \
    TML_FQ_RQ("r2", "r6", "r11", "r8")                                        \
    TML_FQ_RQ("r1", "r7", "r10", "r9")                                        \
    TML_FQ_RQ("r3", "r7", "r10", "r9")                                        \
    "bfi r0, r1, #8, #8\n\t"                                                  \
    "bfi r2, r3, #8, #8\n\t"

/* All output channels of the two pixels in the buffer (c->nq >= 1): fq_pair
 * unpacks the int8 filter rows, fq_pair16 reads the int16 filter. */
#define TML_FQ_STORE \
        "ldrd r6, r7, [sp, #40]\n\t" \
        "strh r0, [r6], #2\n\t" \
        "strh r2, [r7], #2\n\t" \
        "strd r6, r7, [sp, #40]\n\t"
#define TML_FQ_FUNC(LOOP) \
        "push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t" \
        "sub sp, sp, #52\n\t" \
        "ldm r0, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, lr}\n\t" \
        "stm sp, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, lr}\n" \
        "1:\n\t" \
        TML_FQ_PAIR("0", LOOP) \
        TML_FQ_STORE \
        TML_FQ_PAIR("1", LOOP) \
        TML_FQ_STORE \
        "ldr r8, [sp, #48]\n\t" \
        "subs r8, r8, #1\n\t" \
        "str r8, [sp, #48]\n\t" \
        "bne 1b\n\t" \
        "add sp, sp, #52\n\t" \
        "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"

__attribute__((naked, noinline)) static void fq_pair(const conv_fq_t *c __attribute__((unused)))
{
    __asm__(TML_FQ_FUNC(TML_FQ_LOOP8));
}

__attribute__((naked, noinline)) static void fq_pair16(const conv_fq_t *c __attribute__((unused)))
{
    __asm__(TML_FQ_FUNC(TML_FQ_LOOP16));
}
#undef TML_FQ_FUNC
#undef TML_FQ_STORE
#undef TML_FQ_LOOP8
#undef TML_FQ_LOOP16
#undef TML_FQ_PAIR
#undef TML_FQ_CHUNK16
#undef TML_FQ_RQ
#undef TML_FQ_CHUNK

/* use (fq_init): 2 fq_pair16, else fq_pair; direct calls, so the call graph
 * (-fcallgraph-info, benchmarks/cgen_bench.py) sees them. */
TML_INLINE void block_fq(conv_fq_t *c, int use, int8_t *oa, int8_t *ob)
{
    c->oa = oa;
    c->ob = ob;
    if (use == 2)
        fq_pair16(c);
    else
        fq_pair(c);
}

/* The fq_pair constants of P (buffer buf): 0 where the layer does not
 * qualify, 2 where P->filter16 gives arena room for the filter as int16 (out_c rows of kp: each 4 taps as the words
 * sxtb16 / sxtb16 ror 8 of their int8 word, which fq_pair16 reads as they
 * are; written here, once a call), else 1 (fq_pair: the int8 filter). */
static int fq_ok(const tml_conv_s8_t *P, int32_t K)
{
    return !(P->out_c & 3) && P->act_min == -128 && P->act_max == 127 &&
           tml_rqx_ok(P->bias_fold, P->shift, P->out_c, K);
}

/* fq_init for a layer known to qualify (4 arguments: none on the stack). */
static int fq_set(const tml_conv_s8_t *P, conv_fq_t *c, int16_t *buf, int32_t kp)
{
    const int32_t K = P->k_h * P->k_w * P->in_c;
    int use = 1;
    c->bf = P->bias_fold;
    c->xb = (const int32_t *)(const void *)buf;
    c->w = P->filter;
    c->K = K;
    c->kpk = kp - K;
    if (P->filter16 && buf == (const int16_t *)P->scratch) {
        int32_t *wd = (int32_t *)(void *)P->filter16;
        const int8_t *wr = P->filter;
        c->w = (const int8_t *)wd;
        c->K = 2 * kp;
        c->kpk = 0;
        for (int32_t oc = P->out_c; oc > 0; --oc, wr += K) {
            /* taps past K: the row's padding words meet zeros in the window */
            for (int32_t k = 0; k < kp; k += 4, wd += 2) {
                const int32_t v = tml_ld4(wr + k);
                wd[0] = __sxtb16(v);
                wd[1] = tml_sxtb16_ror8(v);
            }
        }
        use = 2;
    }
    c->odd = (kp >> 2) & (use == 2 ? 3 : 1);
    c->xe = c->xb + kp;
    c->m = P->mult;
    c->sh = P->shift;
    c->off2 = 2 * P->out_offset + 1;
    c->nq = P->out_c >> 2;
    return use;
}

static int fq_init(const tml_conv_s8_t *P, conv_fq_t *c, int16_t *buf, int32_t K, int32_t kp)
{
    return fq_ok(P, K) ? fq_set(P, c, buf, kp) : 0;
}
#endif

static void conv_im2col(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int16_t *buf)
{
    const int32_t K = P->k_h * P->k_w * P->in_c, kp = (K + 3) & ~(int32_t)3;
    const int32_t out_w = P->out_w, out_h = P->out_h, out_c = P->out_c, npix = out_h * out_w;
    int32_t p0 = 0;
#if TML_HAVE_DSP
    int16_t *da = buf, *db = buf + 4;   /* interleaved chunks */
#else
    int16_t *da = buf, *db = buf + kp;
#endif
    int32_t oy = 0, ox = 0;
#if TML_RV32   /* block_rv32's requantize (rv_out) */
    const int rq = tml_rqx_ok(P->bias_fold, P->shift, out_c & ~(int32_t)3, K);
#else
    const int rq = 0;
#endif
#if TML_CONV_FAST
    conv_fq_t fq;
    const int use_fq = fq_init(P, &fq, buf, K, kp);
    /* 1x1 filter, no padding, whole words: the pixel IS its window, so each
     * input word of pixels A and B goes straight to its chunk. */
    if (P->k_h == 1 && P->k_w == 1 && P->pad_t == 0 && P->pad_l == 0 && !(K & 3) && !(out_c & 1)) {
        const int32_t sx = P->stride_w * K, sy = (P->stride_h * P->in_w - out_w * P->stride_w) * K;
        const int8_t *x = in;
        for (int32_t p = 0; p + 1 < npix; p += 2) {
            const int8_t *xa = x;
            x += sx;
            if (++ox == out_w) { ox = 0; x += sy; }
            const int8_t *xb = x;
            x += sx;
            if (++ox == out_w) { ox = 0; x += sy; }
            expand_pair(buf, xa, xb, K);
            int8_t *oa = out + p * out_c;
            if (use_fq)
                block_fq(&fq, use_fq, oa, oa + out_c);
            else
                block_fast(P, buf, K, kp, oa, oa + out_c);
        }
        if (!(npix & 1)) return;
        oy = out_h - 1;
        ox = out_w - 1;
        p0 = npix - 1;
    }
#endif
    int32_t pend = npix;
#if TML_CONV_FAST
    /* An odd last pixel goes with pixel npix - 2 again as a pair (whose
     * outputs are stored a second time, the same bytes). */
    const int tail2 = ((npix - p0) & 1) && npix >= 2 && !(out_c & 1);
    if (tail2) pend = npix - 1;
#endif
#if TML_CONV_FAST
    /* 3 rows of 9 bytes: windows inside the input straight to fill9 */
    const int32_t in_c = P->in_c, in_w = P->in_w, st9 = P->dil_h * in_w * in_c;
    const int32_t lim_y = P->in_h - 1 - 2 * P->dil_h, lim_x = in_w - P->k_w;
    const int f9 = P->k_h == 3 && P->k_w * in_c == 9 && P->dil_w == 1 && lim_y >= 0 && lim_x >= 0;
#define TML_FILL(d, iy, ix)                                                  \
    if (f9 && (uint32_t)(iy) <= (uint32_t)lim_y && (uint32_t)(ix) <= (uint32_t)lim_x) \
        fill9((int32_t *)(void *)(d), in + ((iy) * in_w + (ix)) * in_c, st9);  \
    else                                                                     \
        fill(P, in, d, iy, ix, kp)
#else
#define TML_FILL(d, iy, ix) fill(P, in, d, iy, ix, kp)
#endif
    for (int32_t p = p0; p < pend; p += 2) {
        const int32_t iya = oy * P->stride_h - P->pad_t, ixa = ox * P->stride_w - P->pad_l;
        TML_FILL(da, iya, ixa);
        if (++ox == out_w) { ox = 0; ++oy; }
        const int has_b = p + 1 < npix;
        if (has_b) {
            const int32_t iyb = oy * P->stride_h - P->pad_t, ixb = ox * P->stride_w - P->pad_l;
            TML_FILL(db, iyb, ixb);
            if (++ox == out_w) { ox = 0; ++oy; }
        } else {
            fill(P, in, db, iya, ixa, kp);
        }
        int8_t *oa = out + p * out_c;
#if TML_CONV_FAST
        if (has_b && !(out_c & 1)) {
            if (use_fq)
                block_fq(&fq, use_fq, oa, oa + out_c);
            else
                block_fast(P, buf, K, kp, oa, oa + out_c);
            continue;
        }
#endif
        block(P, buf, K, kp, oa, has_b ? oa + out_c : 0, rq);
    }
#undef TML_FILL
#if TML_CONV_FAST
    if (tail2) {
        const int32_t q = npix - 2, qy = q / out_w, qx = q - qy * out_w;
        const int32_t ry = (q + 1) / out_w, rx = q + 1 - ry * out_w;
        fill(P, in, da, qy * P->stride_h - P->pad_t, qx * P->stride_w - P->pad_l, kp);
        fill(P, in, db, ry * P->stride_h - P->pad_t, rx * P->stride_w - P->pad_l, kp);
        int8_t *oa = out + q * out_c;
        if (use_fq)
            block_fq(&fq, use_fq, oa, oa + out_c);
        else
            block_fast(P, buf, K, kp, oa, oa + out_c);
    }
#endif
}

/* ---- fallback: no buffer ---------------------------------------------------- */

/* 2 pixels (xa, xb) x 2 channels (wa, wb) over n bytes: a[0..3] += ... */
TML_INLINE void dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *wa, const int8_t *wb,
                        int32_t n, int32_t *a)
{
#if TML_V6M
    tml_v6m_dot2x2(xa, xb, wa, wb, n, a);
#elif TML_AVR
    a[0] = tml_avr_dot(xa, wa, n, a[0]);
    a[1] = tml_avr_dot(xa, wb, n, a[1]);
    a[2] = tml_avr_dot(xb, wa, n, a[2]);
    a[3] = tml_avr_dot(xb, wb, n, a[3]);
#else
    int32_t a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t x0 = tml_ld4(xa + i), x1 = tml_ld4(xb + i);
        const int32_t u0 = tml_ld4(wa + i), u1 = tml_ld4(wb + i);
        const int32_t x0e = __sxtb16(x0), x0o = tml_sxtb16_ror8(x0);
        const int32_t x1e = __sxtb16(x1), x1o = tml_sxtb16_ror8(x1);
        int32_t we = __sxtb16(u0), wo = tml_sxtb16_ror8(u0);
        a00 = __smlad(x0e, we, a00);
        a00 = __smlad(x0o, wo, a00);
        a10 = __smlad(x1e, we, a10);
        a10 = __smlad(x1o, wo, a10);
        we = __sxtb16(u1);
        wo = tml_sxtb16_ror8(u1);
        a01 = __smlad(x0e, we, a01);
        a01 = __smlad(x0o, wo, a01);
        a11 = __smlad(x1e, we, a11);
        a11 = __smlad(x1o, wo, a11);
    }
#endif
    for (; i < n; ++i) {
        const int32_t w0 = TML_RD8(wa + i), w1 = TML_RD8(wb + i);
        const int32_t x0 = xa[i], x1 = xb[i];
        a00 += TML_MUL8(x0, w0);
        a01 += TML_MUL8(x0, w1);
        a10 += TML_MUL8(x1, w0);
        a11 += TML_MUL8(x1, w1);
    }
    a[0] = a00; a[1] = a01; a[2] = a10; a[3] = a11;
#endif
}

/* 1 pixel x 1 channel over n bytes. */
static int32_t dot_1x1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t xv = tml_ld4(x + i), wv = tml_ld4(w + i);
        acc = __smlad(__sxtb16(xv), __sxtb16(wv), acc);
        acc = __smlad(tml_sxtb16_ror8(xv), tml_sxtb16_ror8(wv), acc);
    }
#endif
#if TML_AVR
    (void)i;
    return tml_avr_dot(x, w, n, acc);
#else
    for (; i < n; ++i) acc += TML_MUL8(x[i], TML_RD8(w + i));
    return acc;
#endif
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
                const int8_t *x = in + (iy * P->in_w + ix) * in_c, *w = wr + kx * in_c;
                if (ix < 0 || ix >= P->in_w)
                    pad_sum += wsum(w, in_c);
                else
                    acc = dot_1x1(x, w, in_c, acc);
            }
        }
        acc -= pad_sum * P->in_offset;
        o[oc] = tml_out_s8(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc),
                           P->out_offset, P->act_min, P->act_max);
    }
}

/* Two inside pixels whose windows are k_h rows of row_len contiguous bytes,
 * row_step apart, starting at xa and xb (ob == 0: only the first is wanted). */
static void conv_pair(const tml_conv_s8_t *P, const int8_t *xa, const int8_t *xb, int32_t row_len,
                      int32_t row_step, int8_t *oa, int8_t *ob)
{
    const int32_t out_c = P->out_c, rows = P->k_h;
    const int32_t filt_len = rows * row_len;
    for (int32_t oc = 0; oc < out_c; oc += 2) {
        const int two = oc + 1 < out_c;
        const int8_t *wa = P->filter + oc * filt_len, *wb = two ? wa + filt_len : wa;
        int32_t a[4];
        a[0] = a[2] = TML_RD32(P->bias_fold + oc);
        a[1] = a[3] = two ? TML_RD32(P->bias_fold + oc + 1) : 0;
        for (int32_t r = 0; r < rows; ++r)
            dot_2x2(xa + r * row_step, xb + r * row_step, wa + r * row_len, wb + r * row_len, row_len, a);
        store2x2(P, oc, two, a, oa, ob);
    }
}

static TML_NOINLINE void conv_direct(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    const int32_t in_c = P->in_c, in_w = P->in_w, out_w = P->out_w, out_c = P->out_c;
    const int32_t span_h = (P->k_h - 1) * P->dil_h, span_w = (P->k_w - 1) * P->dil_w;
    const int32_t row_len = P->k_w * in_c, row_step = P->dil_h * in_w * in_c;
    const int8_t *pend = 0;       /* window of a pixel waiting for a partner */
    int8_t *pend_out = 0;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int rows_in = iy0 >= 0 && iy0 + span_h < P->in_h && P->dil_w == 1;
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            if (rows_in && ix0 >= 0 && ix0 + span_w < in_w) {
                const int8_t *x = in + (iy0 * in_w + ix0) * in_c;
                if (pend) {
                    conv_pair(P, pend, x, row_len, row_step, pend_out, o);
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
    if (pend) conv_pair(P, pend, pend, row_len, row_step, pend_out, 0);
}

#if TML_CONV_STACK_BYTES > 0
/* The int8 window of the pixel with top-left input corner (iy0, ix0) into d
 * (kp bytes: padded taps read the zero point, the tail past K zeros). */
TML_INLINE void fill8(const tml_conv_s8_t *P, const int8_t *in, int8_t *d, int32_t iy0, int32_t ix0, int32_t kp)
{
    const int32_t in_c = P->in_c, in_w = P->in_w, k_w = P->k_w, row = k_w * in_c;
    const int8_t zp = (int8_t)(-P->in_offset);
    const int row_in = ix0 >= 0 && ix0 + (k_w - 1) * P->dil_w < in_w && P->dil_w == 1;
    int8_t *d0 = d;
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        if (iy < 0 || iy >= P->in_h) {
            memset(d, zp, (size_t)row);
            d += row;
        } else if (row_in) {
            memcpy(d, in + (iy * in_w + ix0) * in_c, (size_t)row);
            d += row;
        } else {
            for (int32_t kx = 0; kx < k_w; ++kx, d += in_c) {
                const int32_t ix = ix0 + kx * P->dil_w;
                if (ix < 0 || ix >= in_w)
                    memset(d, zp, (size_t)in_c);
                else
                    memcpy(d, in + (iy * in_w + ix) * in_c, (size_t)in_c);
            }
        }
    }
    memset(d, 0, (size_t)(kp - (d - d0)));
}

/* im2col with int8 windows: 2 pixels x 2 channels straight from the buffer. */
static TML_NOINLINE void conv_im2col8(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int8_t *buf)
{
    const int32_t K = P->k_h * P->k_w * P->in_c, kp = (K + 3) & ~(int32_t)3;
    const int32_t out_w = P->out_w, out_c = P->out_c, npix = P->out_h * out_w;
    int32_t oy = 0, ox = 0;
#if TML_RV32
    const int rq = tml_rqx_ok(P->bias_fold, P->shift, out_c & ~(int32_t)3, K);
#endif
    for (int32_t p = 0; p < npix; p += 2) {
        const int32_t iya = oy * P->stride_h - P->pad_t, ixa = ox * P->stride_w - P->pad_l;
        fill8(P, in, buf, iya, ixa, kp);
        if (++ox == out_w) { ox = 0; ++oy; }
        const int has_b = p + 1 < npix;
        if (has_b) {
            fill8(P, in, buf + kp, oy * P->stride_h - P->pad_t, ox * P->stride_w - P->pad_l, kp);
            if (++ox == out_w) { ox = 0; ++oy; }
        }
        int8_t *oa = out + p * out_c;
        int32_t oc = 0;
#if TML_RV32
        oc = block_rv32_s8(P, buf, has_b ? buf + kp : buf, K, kp, oa, has_b ? oa + out_c : 0, rq);
#endif
        for (; oc < out_c; oc += 2) {
            const int two = oc + 1 < out_c;
            const int8_t *wa = P->filter + oc * K, *wb = two ? wa + K : wa;
            int32_t a[4];
            a[0] = a[2] = TML_RD32(P->bias_fold + oc);
            a[1] = a[3] = two ? TML_RD32(P->bias_fold + oc + 1) : 0;
            dot_2x2(buf, has_b ? buf + kp : buf, wa, wb, kp, a);
            store2x2(P, oc, two, a, oa, has_b ? oa + out_c : 0);
        }
    }
}

/* Separate frames so the deeper int16 path does not carry the int8 buffer. */
static TML_NOINLINE void conv_stack16(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int16_t buf[TML_CONV_IM2COL16_BYTES / 2] TML_ALIGNED(8);
    conv_im2col(P, in, out, buf);
}

#if TML_CONV_FAST
/* -O2, no arena scratch, 1x1 filter without padding, K a multiple of 4, even
 * out_c, 4 K <= TML_CONV_STACK16_BYTES: conv_im2col's 1x1 path with the
 * buffer on the stack, in a function of its own with nothing else in its
 * frame (fq: the fq_pair constants, else block_fast), so the worst-case stack
 * stays within 512 B (fq_set, not fq_init: 4 arguments, none in the frame;
 * few values live across the calls). An odd last pixel (or a single one)
 * goes as a pair with itself, both outputs the same bytes. */
TML_INLINE void conv_1x1_pairs(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int16_t *buf,
                               conv_fq_t *fq)
{
    const int32_t K = P->in_c;
    const int8_t *xa, *xb;
    int8_t *oa, *ob;
    tml_px1_t wk;
    px1_init(&wk, P, in, out);
    while (px1_pair(&wk, &xa, &xb, &oa, &ob)) {
        expand_pair(buf, xa, xb, K);
        if (fq)
            block_fq(fq, 1, oa, ob);
        else
            block_fast(P, buf, K, K, oa, ob);
    }
}

static TML_NOINLINE void conv_1x1_stack_fq(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int16_t buf[TML_CONV_STACK16_BYTES / 2] TML_ALIGNED(8);
    conv_fq_t fq;
    fq_set(P, &fq, buf, P->in_c);   /* fq_ok holds (tml_conv_s8); 1: fq_pair (filter16 needs arena scratch) */
    conv_1x1_pairs(P, in, out, buf, &fq);
}

static TML_NOINLINE void conv_1x1_stack(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int16_t buf[TML_CONV_STACK16_BYTES / 2] TML_ALIGNED(8);
    conv_1x1_pairs(P, in, out, buf, 0);
}
#endif

static TML_NOINLINE void conv_stack8(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int8_t buf[TML_CONV_STACK_BYTES] TML_ALIGNED(8);
    conv_im2col8(P, in, out, buf);
}

#if TML_V6M
/* Bytes of conv_v6m's stack buffer (K <= 48 when the planner found no
 * arena scratch: the first layers, 3x3x3, 10x4x1, 4x4x3), so the deepest
 * call chain stays within 512 B. */
#ifndef TML_CONV_V6M_STACK_BYTES
#define TML_CONV_V6M_STACK_BYTES 96
#endif

/* The loops around the asm and the requantization: -Os code generation
 * (GCC), whose frames are smaller, so the deepest call chain stays within
 * 512 B; little time goes there. */
#if defined(__GNUC__) && !defined(__clang__)
#define TML_V6M_OUTER static TML_NOINLINE __attribute__((optimize("Os")))
#else
#define TML_V6M_OUTER static TML_NOINLINE
#endif

/* Channel pairs a tml_v6m_dot_pairs call takes (16 B of stack each). */
#define TML_V6M_PAIRS 4

typedef struct {
    const int32_t *mult;
    const int8_t *shift;
    int32_t off, lo, hi;
} tml_v6m_rq_t;

/* Channels c .. c + n - 1 of pixels A and B requantized and stored, from
 * the accumulators of tml_v6m_dot_pairs (per channel pair: A c, A c+1,
 * B c, B c+1); B's bytes first (ob == oa: a lone last pixel, A's value is
 * the one kept). Its own frame: inlined, the requantizations would double
 * v6m_pixels'. */
static TML_NOINLINE void v6m_out(const tml_v6m_rq_t *q, const int32_t *a, int32_t c, int32_t n, int8_t *oa,
                                 int8_t *ob)
{
    const int32_t off = q->off, lo = q->lo, hi = q->hi;
    for (const int32_t end = c + n;; a += 4) {
        const int32_t m0 = q->mult[c], s0 = q->shift[c];
        ob[c] = tml_out_s8(a[2], m0, s0, off, lo, hi);
        oa[c] = tml_out_s8(a[0], m0, s0, off, lo, hi);
        if (++c == end) return;
        const int32_t m1 = q->mult[c], s1 = q->shift[c];
        ob[c] = tml_out_s8(a[3], m1, s1, off, lo, hi);
        oa[c] = tml_out_s8(a[1], m1, s1, off, lo, hi);
        if (++c == end) return;
    }
}

/* fill8 in a frame of its own (inlined twice it more than doubles conv_v6m's) */
TML_V6M_OUTER void fill8_v6m(const tml_conv_s8_t *P, const int8_t *in, int8_t *d, int32_t iy0, int32_t ix0,
                                   int32_t K)
{
    fill8(P, in, d, iy0, ix0, K);
}

/* All output channels of pixels A and B (windows xa, xb): tml_v6m_dot_pairs
 * over up to TML_V6M_PAIRS channel pairs a call, an odd last channel paired
 * with itself. */
TML_V6M_OUTER void v6m_pixels(const tml_conv_s8_t *P, const tml_v6m_rq_t *q, const int8_t *xa,
                                    const int8_t *xb, int8_t *oa, int8_t *ob)
{
    const int32_t K = P->k_h * P->k_w * P->in_c, out_c = P->out_c, even = out_c & ~(int32_t)1;
    const int32_t *bias = P->bias_fold;
    const int8_t *w = P->filter;
    int32_t acc[4 * TML_V6M_PAIRS];
    for (int32_t oc = 0; oc < even; oc += 2 * TML_V6M_PAIRS) {
        const int32_t n = even - oc < 2 * TML_V6M_PAIRS ? (even - oc) >> 1 : TML_V6M_PAIRS;
        tml_v6m_pairs_t j = {xa + K, xb + K, w + (oc + 1) * K, K, bias + oc, acc, n};
        tml_v6m_dot_pairs(&j);
        v6m_out(q, acc, oc, 2 * n, oa, ob);
    }
    if (out_c & 1) {   /* the last channel as its own pair */
        acc[0] = acc[1] = acc[2] = acc[3] = bias[even];
        tml_v6m_dot2x2(xa, xb, w + even * K, w + even * K, K, acc);
        v6m_out(q, acc, even, 1, oa, ob);
    }
}

/* ARMv6-M: 2 pixels x 2 channels through tml_v6m_dot_pairs over int8 windows
 * K bytes apart (buf: 2 K bytes), so both pixels and both filter rows are
 * read at one index. A 1x1 filter with stride 1 and no padding reads the
 * input in place (pixel p + 1 follows pixel p, K = in_c bytes on). An odd
 * last pixel is paired with itself and stored once (v6m_pixels). */
TML_V6M_OUTER void conv_v6m(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int8_t *buf)
{
    const int32_t K = P->k_h * P->k_w * P->in_c, out_w = P->out_w, out_c = P->out_c, npix = P->out_h * out_w;
    const tml_v6m_rq_t q = {P->mult, P->shift, P->out_offset, P->act_min, P->act_max};
    const int inplace = buf == 0;
    int32_t oy = 0, ox = 0;
    for (int32_t p = 0; p < npix; p += 2) {
        const int has_b = p + 1 < npix;
        const int8_t *xa, *xb;
        if (inplace) {
            xa = in + p * K;
            xb = has_b ? xa + K : xa;
        } else {
            fill8_v6m(P, in, buf, oy * P->stride_h - P->pad_t, ox * P->stride_w - P->pad_l, K);
            if (++ox == out_w) { ox = 0; ++oy; }
            if (has_b) {
                fill8_v6m(P, in, buf + K, oy * P->stride_h - P->pad_t, ox * P->stride_w - P->pad_l, K);
                if (++ox == out_w) { ox = 0; ++oy; }
            }
            xa = buf;
            xb = has_b ? buf + K : buf;
        }
        /* ob == oa for a lone last pixel: B's bytes are stored first, then A's */
        int8_t *oa = out + p * out_c;
        v6m_pixels(P, &q, xa, xb, oa, has_b ? oa + out_c : oa);
    }
}

TML_V6M_OUTER void conv_v6m_stack(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int8_t buf[TML_CONV_V6M_STACK_BYTES] TML_ALIGNED(8);
    conv_v6m(P, in, out, buf);
}
#endif
#endif

#if TML_RV32
/* RV32, 1x1 filter without padding, in_c and out_c multiples of 4: each
 * pixel is its own window, read in place, two pixels a pass (a lone last
 * pixel with itself). */
static TML_NOINLINE void conv_rv32_1x1(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    const int32_t K = P->in_c;
    const int fast = tml_rqx_ok(P->bias_fold, P->shift, P->out_c, K);
    const int8_t *xa, *xb;
    int8_t *oa, *ob;
    const int8_t *x3[3];
    int8_t *o3[3];
    tml_px1_t wk;
    px1_init(&wk, P, in, out);
    while (wk.n >= 3) {
        px1_take(&wk, &x3[0], &o3[0]);
        px1_take(&wk, &x3[1], &o3[1]);
        px1_take(&wk, &x3[2], &o3[2]);
        block_rv32_3(P, x3, o3, fast);
    }
    if (px1_pair(&wk, &xa, &xb, &oa, &ob)) block_rv32_s8(P, xa, xb, K, K, oa, ob, fast);
}
#endif

#if TML_HOST_STACK > 0
/* Wide hosts, 1x1 filters over few input channels (in_c <= 8, no padding):
 * per pixel all output channels as outer products, acc[j] += x[k] * wt[k][j]
 * with the filter transposed on the stack, loops over contiguous channels
 * that gcc/clang -O3 vectorize. (Longer reductions vectorize well as they are.) */
#define TML_CONV_HOST_K 8
static TML_NOINLINE void conv_host(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int8_t wt[TML_HOST_STACK / 4];
    int32_t acc[TML_HOST_STACK / 16];
    const int32_t K = P->in_c, out_c = P->out_c;
    for (int32_t j = 0; j < out_c; ++j)
        for (int32_t k = 0; k < K; ++k) wt[k * out_c + j] = P->filter[j * K + k];
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int8_t *x = in + (oy * P->stride_h * P->in_w + ox * P->stride_w) * K;
            for (int32_t j = 0; j < out_c; ++j) acc[j] = P->bias_fold[j];
            for (int32_t k = 0; k < K; ++k) {
                const int16_t xk = x[k];
                const int8_t *wk = wt + k * out_c;
                for (int32_t j = 0; j < out_c; ++j) acc[j] += xk * (int16_t)wk[j];
            }
            int8_t *o = out + (oy * P->out_w + ox) * out_c;
            for (int32_t j = 0; j < out_c; ++j)
                o[j] = tml_out_s8(acc[j], P->mult[j], P->shift[j], P->out_offset, P->act_min, P->act_max);
        }
    }
}
#endif

void tml_conv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
#if TML_HOST_STACK > 0
    if (P->k_h == 1 && P->k_w == 1 && P->in_c <= TML_CONV_HOST_K && P->pad_t == 0 && P->pad_l == 0 &&
        P->out_c <= TML_HOST_STACK / 32) {
        conv_host(P, in, out);
        return;
    }
#endif
#if TML_V6M && TML_CONV_STACK_BYTES > 0
    {
        const int32_t K = P->k_h * P->k_w * P->in_c;
        if (P->k_h == 1 && P->k_w == 1 && P->stride_h == 1 && P->stride_w == 1 && P->pad_t == 0 &&
            P->pad_l == 0 && P->out_w == P->in_w) {
            conv_v6m(P, in, out, 0);
            return;
        }
        if (P->scratch)   /* 4 kp >= 2 K bytes */
            conv_v6m(P, in, out, (int8_t *)P->scratch);
        else if (2 * K <= TML_CONV_V6M_STACK_BYTES)
            conv_v6m_stack(P, in, out);
        else
            conv_direct(P, in, out);
        return;   /* the paths below: not on ARMv6-M (nor in its stack depth) */
    }
#endif
#if TML_RV32
    if (P->k_h == 1 && P->k_w == 1 && P->pad_t == 0 && P->pad_l == 0 && !(P->in_c & 3) && !(P->out_c & 3)) {
        conv_rv32_1x1(P, in, out);
        return;
    }
#endif
    /* AVR: the direct path's MULS dot products (tml_avr_dot) beat the int16 windows */
    if (P->scratch && !TML_AVR) {
        conv_im2col(P, in, out, (int16_t *)P->scratch);
        return;
    }
#if TML_CONV_STACK_BYTES > 0
    {
        const int32_t K = P->k_h * P->k_w * P->in_c, kp = (K + 3) & ~(int32_t)3;
        /* int8 windows only where the direct path would not read them in place */
#if TML_CONV_FAST
        if (P->k_h == 1 && P->k_w == 1 && P->pad_t == 0 && P->pad_l == 0 && !(K & 3) && !(P->out_c & 1) &&
            4 * kp <= TML_CONV_STACK16_BYTES) {
            if (fq_ok(P, K))
                conv_1x1_stack_fq(P, in, out);
            else
                conv_1x1_stack(P, in, out);
            return;
        }
#endif
        if (4 * kp <= TML_CONV_IM2COL16_BYTES) {
            conv_stack16(P, in, out);
            return;
        }
        if (2 * kp <= TML_CONV_STACK_BYTES && K > P->in_c) {
            conv_stack8(P, in, out);
            return;
        }
    }
#endif
    conv_direct(P, in, out);
}
