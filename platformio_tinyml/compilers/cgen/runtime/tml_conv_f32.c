/* tml_conv_f32.c - float32 CONV_2D and DEPTHWISE_CONV_2D.
 *
 * Each output is 0 + the products of its valid taps in TFLite's reference
 * order (filter y, filter x, input channel), then + bias, then the fused
 * activation clamp: the same additions in the same order as TFLite's
 * reference kernel, so the result does not depend on how the loops below are
 * arranged around them.
 *
 * CONV_2D filters are stored HWIO ([k_h][k_w][in_c][out_c]; the lowering
 * transposes TFLite's OHWI), depthwise filters are [k_h][k_w][out_c]: the
 * weights of one tap for neighbouring output channels are contiguous.
 *
 * Output pixels whose whole window lies inside the input go by blocks of
 * BPX pixels (consecutive in scan order over the inside region) x BOC
 * output channels, the block's accumulators in
 * registers for the whole window, so each weight is read once for BPX pixels
 * and the accumulators' dependency chains are independent: 4 x 8 in 4-lane
 * vectors on host-class targets (GCC/Clang vector extensions on x86-64 and
 * AArch64), 2 x 4 scalars on microcontrollers (8 FPU registers on a
 * Cortex-M4F). The channel blocks are the outer loop, so a block's weights
 * stay in the cache for all pixels. Edge pixels (a tap in the padding) and
 * the channels past the last whole block take the row path: one input value
 * times a contiguous row of weights added into the pixel's output row.
 */
#if !defined(__AVR__)     /* AVR: built with the build's own flags (TML_F32_BLOCKS is 0 there) */
#include "tml_speed.h"
#endif
#include "tml_kernels.h"

#if TML_F32_VEC
#define BPX 4       /* a block: BPX output pixels x BOC output channels */
#define BOC 8
#else
#define BPX 2
#define BOC 4
#endif

static float clampf(const tml_conv_f32_t *P, float v)
{
    if (v < P->act_min) v = P->act_min;
    if (v > P->act_max) v = P->act_max;
    return v;
}

static void bias_clamp(const tml_conv_f32_t *P, float *TML_RESTRICT o, int32_t from, int32_t to)
{
    for (int32_t oc = from; oc < to; ++oc) o[oc] = clampf(P, o[oc] + TML_RDF(P->bias + oc));
}

/* x86-64 glibc (ifunc) with GCC: the block and row functions are also built for
 * AVX2, and the loader picks those builds on CPUs that have it (an ifunc).
 * Without FMA: the products are rounded before they are added, as in every
 * other build. -DTML_NO_CLONES leaves the baseline build alone. */
#if TML_F32_VEC && defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && !defined(TML_NO_CLONES)
#define TML_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TML_CLONES
#endif

/* One output pixel, output channels [from, to): the row path (CONV_2D, or
 * depthwise with depth multiplier dm when dw). */
TML_CLONES
static void row_pixel(const tml_conv_f32_t *P, const float *in, float *TML_RESTRICT o,
                      int32_t iy0, int32_t ix0, int32_t from, int32_t to, int dw)
{
    const int32_t in_c = P->in_c, out_c = P->out_c, dm = P->depth_mult;
    for (int32_t oc = from; oc < to; ++oc) o[oc] = 0.0f;
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        if (iy < 0 || iy >= P->in_h) continue;
        for (int32_t kx = 0; kx < P->k_w; ++kx) {
            const int32_t ix = ix0 + kx * P->dil_w;
            if (ix < 0 || ix >= P->in_w) continue;
            const float *xp = in + (iy * P->in_w + ix) * in_c;
            const float *wp = P->filter + (ky * P->k_w + kx) * (dw ? 1 : in_c) * out_c;
            if (dw && dm == 1) {
                for (int32_t oc = from; oc < to; ++oc) o[oc] += xp[oc] * TML_RDF(wp + oc);
            } else if (dw) {
                for (int32_t oc = from; oc < to; ++oc) o[oc] += xp[oc / dm] * TML_RDF(wp + oc);
            } else {
                for (int32_t ic = 0; ic < in_c; ++ic, wp += out_c) {
                    const float xv = xp[ic];
                    for (int32_t oc = from; oc < to; ++oc) o[oc] += xv * TML_RDF(wp + oc);
                }
            }
        }
    }
    bias_clamp(P, o, from, to);
}

#if TML_F32_VEC
typedef float tml_v8f __attribute__((vector_size(32)));

/* BPX output pixels whose windows are all inside the input (window origins
 * x[p] in the input, outputs o[p]), output channels [oc, oc + 8): one
 * 8-lane accumulator per pixel (two SSE registers, or one AVX register). */
TML_CLONES
static void conv_block(const tml_conv_f32_t *P, const float *const x[BPX], float *const o[BPX], int32_t oc)
{
    const int32_t in_c = P->in_c, out_c = P->out_c;
    tml_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, w;
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        for (int32_t kx = 0; kx < P->k_w; ++kx) {
            const int32_t t = (ky * P->dil_h * P->in_w + kx * P->dil_w) * in_c;
            const float *x0 = x[0] + t, *x1 = x[1] + t, *x2 = x[2] + t, *x3 = x[3] + t;
            const float *wp = P->filter + (ky * P->k_w + kx) * in_c * out_c + oc;
            for (int32_t ic = 0; ic < in_c; ++ic, wp += out_c) {
                __builtin_memcpy(&w, wp, sizeof w);
                a0 += x0[ic] * w;
                a1 += x1[ic] * w;
                a2 += x2[ic] * w;
                a3 += x3[ic] * w;
            }
        }
    }
    __builtin_memcpy(o[0] + oc, &a0, sizeof a0);
    __builtin_memcpy(o[1] + oc, &a1, sizeof a1);
    __builtin_memcpy(o[2] + oc, &a2, sizeof a2);
    __builtin_memcpy(o[3] + oc, &a3, sizeof a3);
    for (int32_t p = 0; p < 4; ++p) bias_clamp(P, o[p], oc, oc + 8);
}
#else
/* BPX output pixels whose windows are all inside the input (window origins
 * x[p], outputs o[p]), output channels [oc, oc + 4): 8 accumulators in FPU
 * registers, each weight read once for both pixels. */
static void conv_block(const tml_conv_f32_t *P, const float *const x[BPX], float *const o[BPX], int32_t oc)
{
    const int32_t in_c = P->in_c, out_c = P->out_c;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
    for (int32_t ky = 0; ky < P->k_h; ++ky) {
        for (int32_t kx = 0; kx < P->k_w; ++kx) {
            const int32_t t = (ky * P->dil_h * P->in_w + kx * P->dil_w) * in_c;
            const float *xa = x[0] + t, *xb = x[1] + t;
            const float *wp = P->filter + (ky * P->k_w + kx) * in_c * out_c + oc;
            for (int32_t ic = 0; ic < in_c; ++ic, wp += out_c) {
                const float w0 = TML_RDF(wp), w1 = TML_RDF(wp + 1), w2 = TML_RDF(wp + 2), w3 = TML_RDF(wp + 3);
                const float u = xa[ic], v = xb[ic];
                a0 += u * w0; a1 += u * w1; a2 += u * w2; a3 += u * w3;
                b0 += v * w0; b1 += v * w1; b2 += v * w2; b3 += v * w3;
            }
        }
    }
    float *oa = o[0] + oc, *ob = o[1] + oc;
    oa[0] = a0; oa[1] = a1; oa[2] = a2; oa[3] = a3;
    ob[0] = b0; ob[1] = b1; ob[2] = b2; ob[3] = b3;
    bias_clamp(P, o[0], oc, oc + 4);
    bias_clamp(P, o[1], oc, oc + 4);
}
#endif

/* Output columns [*lo, *hi) and rows [*ylo, *yhi) whose windows lie inside the input. */
static void inside(const tml_conv_f32_t *P, int32_t *lo, int32_t *hi, int32_t *ylo, int32_t *yhi)
{
    const int32_t span_w = (P->k_w - 1) * P->dil_w, span_h = (P->k_h - 1) * P->dil_h;
    int32_t a = 0, b = P->out_w;
    while (a < b && a * P->stride_w - P->pad_l < 0) ++a;
    while (b > a && (b - 1) * P->stride_w - P->pad_l + span_w >= P->in_w) --b;
    *lo = a;
    *hi = b;
    a = 0, b = P->out_h;
    while (a < b && a * P->stride_h - P->pad_t < 0) ++a;
    while (b > a && (b - 1) * P->stride_h - P->pad_t + span_h >= P->in_h) --b;
    *ylo = a;
    *yhi = b;
}

void tml_conv_f32(const tml_conv_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_conv_f32_t, src);
    const int32_t out_c = P->out_c, in_c = P->in_c;
    int32_t lo, hi, ylo, yhi;
    inside(P, &lo, &hi, &ylo, &yhi);
    /* The inside pixels in scan order, [0, n): the first BPX * (n / BPX) go by blocks of
     * BPX pixels x BOC channels, pixel k at (ylo + k / w, lo + k % w). */
    const int32_t w = hi - lo, n = TML_F32_BLOCKS && out_c >= BOC ? (yhi - ylo) * w : 0;
    const int32_t blocked_n = n - n % BPX;
    /* channel blocks outermost: a block's weights stay in the (L1) cache for all pixels */
    for (int32_t oc = 0; oc + BOC <= out_c && blocked_n; oc += BOC)
        for (int32_t k = 0; k < blocked_n; k += BPX) {
            const float *x[BPX];
            float *o[BPX];
            for (int32_t p = 0; p < BPX; ++p) {
                const int32_t oy = ylo + (k + p) / w, ox = lo + (k + p) % w;
                x[p] = in + ((oy * P->stride_h - P->pad_t) * P->in_w + ox * P->stride_w - P->pad_l) * in_c;
                o[p] = out + (oy * P->out_w + ox) * out_c;
            }
            conv_block(P, x, o, oc);
        }
    const int32_t rest = out_c - out_c % BOC;     /* channels the blocks left */
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int in_block = oy >= ylo && oy < yhi && ox >= lo && ox < hi && (oy - ylo) * w + ox - lo < blocked_n;
            if (in_block && rest == out_c) continue;
            row_pixel(P, in, out + (oy * P->out_w + ox) * out_c, iy0, ox * P->stride_w - P->pad_l,
                      in_block ? rest : 0, out_c, 0);
        }
    }
}

/* Depthwise, depth multiplier 1, one output pixel whose window lies inside
 * the input: 4 channels at a time (8 in two vectors on host-class targets)
 * in registers over the whole window. */
TML_CLONES
static void dw_inside(const tml_conv_f32_t *P, const float *in, float *TML_RESTRICT o, int32_t iy0, int32_t ix0)
{
    const int32_t c = P->out_c;
    int32_t oc = 0;
#if TML_F32_VEC
    for (; oc + 8 <= c; oc += 8) {
        tml_v4f a = {0}, b = {0};
        for (int32_t ky = 0; ky < P->k_h; ++ky) {
            const float *xp = in + ((iy0 + ky * P->dil_h) * P->in_w + ix0) * c + oc;
            const float *wp = P->filter + ky * P->k_w * c + oc;
            for (int32_t kx = 0; kx < P->k_w; ++kx, xp += P->dil_w * c, wp += c) {
                a += tml_ld4f(xp) * tml_ld4f(wp);
                b += tml_ld4f(xp + 4) * tml_ld4f(wp + 4);
            }
        }
        tml_st4f(o + oc, a);
        tml_st4f(o + oc + 4, b);
    }
#endif
    for (; oc + 4 <= c; oc += 4) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int32_t ky = 0; ky < P->k_h; ++ky) {
            const float *xp = in + ((iy0 + ky * P->dil_h) * P->in_w + ix0) * c + oc;
            const float *wp = P->filter + ky * P->k_w * c + oc;
            for (int32_t kx = 0; kx < P->k_w; ++kx, xp += P->dil_w * c, wp += c) {
                a0 += xp[0] * TML_RDF(wp);
                a1 += xp[1] * TML_RDF(wp + 1);
                a2 += xp[2] * TML_RDF(wp + 2);
                a3 += xp[3] * TML_RDF(wp + 3);
            }
        }
        o[oc] = a0; o[oc + 1] = a1; o[oc + 2] = a2; o[oc + 3] = a3;
    }
    for (; oc < c; ++oc) {
        float acc = 0.0f;
        for (int32_t ky = 0; ky < P->k_h; ++ky)
            for (int32_t kx = 0; kx < P->k_w; ++kx)
                acc += in[((iy0 + ky * P->dil_h) * P->in_w + ix0 + kx * P->dil_w) * c + oc] *
                       TML_RDF(P->filter + (ky * P->k_w + kx) * c + oc);
        o[oc] = acc;
    }
    bias_clamp(P, o, 0, c);
}

void tml_dwconv_f32(const tml_conv_f32_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_conv_f32_t, src);
    const int32_t out_c = P->out_c, dm = P->depth_mult;
    int32_t lo, hi, ylo, yhi;
    inside(P, &lo, &hi, &ylo, &yhi);
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        const int inside_row = TML_F32_BLOCKS && dm == 1 && oy >= ylo && oy < yhi;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            float *TML_RESTRICT o = out + (oy * P->out_w + ox) * out_c;
            if (inside_row && ox >= lo && ox < hi) {
                dw_inside(P, in, o, iy0, ix0);
                continue;
            }
            row_pixel(P, in, o, iy0, ix0, 0, out_c, 1);
        }
    }
}
