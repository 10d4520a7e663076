/* tml_dwconv_s8.c - int8 DEPTHWISE_CONV_2D with per-channel requantization,
 * TFLite reference semantics (output channel oc = ic * depth_mult + m).
 *
 * The in_offset term of the whole window is pre-folded into bias_fold; taps
 * in the padding count as the input zero point (offset-corrected value 0).
 *
 * Grouped layout (depth_mult == 1 and in_c a multiple of 4, the lowering
 * permutes the filter so): the filter is [in_c / 4][k_h * k_w][4], i.e. the
 * taps of four channels are contiguous, and each output pixel is computed
 * four channels at a time from one 32-bit load of the input and one of the
 * filter per tap (Arm DSP: __sxtb16 + __smlabb/__smlatt). The taps of a
 * pixel are split into the rectangle that lies in the input and the padded
 * rest once per pixel, so no tap is tested per channel group; 3x3 windows
 * inside the input are fully unrolled. Any other shape: the filter keeps
 * TFLite's [1, k_h, k_w, out_c] layout and one output channel at a time.
 */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"
#include "tml_dot_s8.h"
#include <stddef.h>

/* Arm DSP cores, optimizing for speed: the fast 3x3 path (dw3x3_fast). */
#if TML_ARM_FAST
#define TML_DW_FAST 1
#endif

#if TML_HAVE_DSP
#define TML_DW_TAP(xv, wv)                                                   \
    do {                                                                     \
        const int32_t xe_ = __sxtb16(xv), xo_ = tml_sxtb16_ror8(xv);         \
        const int32_t we_ = __sxtb16(wv), wo_ = tml_sxtb16_ror8(wv);         \
        a0 = __smlabb(xe_, we_, a0);                                         \
        a2 = __smlatt(xe_, we_, a2);                                         \
        a1 = __smlabb(xo_, wo_, a1);                                         \
        a3 = __smlatt(xo_, wo_, a3);                                         \
    } while (0)
/* x: 4 input bytes in RAM; w: 4 filter bytes (word aligned). */
#define TML_DW_X(p) tml_ld4(p)
#define TML_DW_W(p) tml_ld4(p)
#else
#define TML_DW_TAP(xv, wv)                                                   \
    do {                                                                     \
        a0 += TML_MUL8((int8_t)(xv), (int8_t)(wv));                          \
        a1 += TML_MUL8((int8_t)((xv) >> 8), (int8_t)((wv) >> 8));            \
        a2 += TML_MUL8((int8_t)((xv) >> 16), (int8_t)((wv) >> 16));          \
        a3 += TML_MUL8((int8_t)((xv) >> 24), (int8_t)((wv) >> 24));          \
    } while (0)
#define TML_DW_X(p) tml_ld4(p)
TML_INLINE int32_t tml_dw_w(const int8_t *p)
{
    return (int32_t)((uint32_t)TML_RDU8(p) | ((uint32_t)TML_RDU8(p + 1) << 8) |
                     ((uint32_t)TML_RDU8(p + 2) << 16) | ((uint32_t)TML_RDU8(p + 3) << 24));
}
#define TML_DW_W(p) tml_dw_w(p)
#endif

/* Requantize channels c..c+3 and store them. */
#define TML_DW_STORE() tml_out4_s8(o + c, a0, a1, a2, a3, mult + c, shift + c, off, lo, hi)

#define TML_DW_LOAD_BIAS()                                                   \
    int32_t a0 = TML_RD32(P->bias_fold + c), a1 = TML_RD32(P->bias_fold + c + 1); \
    int32_t a2 = TML_RD32(P->bias_fold + c + 2), a3 = TML_RD32(P->bias_fold + c + 3)

#if !defined(TML_DW_FAST)
/* One pixel, all channels (grouped layout), 3x3 window inside the input:
 * x points at the window's top-left tap, channel 0. (Speed builds on Arm
 * DSP cores use dw3x3_tri / dw3x3_fast instead.) */
static void dw3x3_inside(const tml_conv_s8_t *P, const int8_t *x, int8_t *o)
{
    const int32_t C = P->in_c, sx = P->dil_w * C, sy = P->dil_h * P->in_w * C;
    const int32_t *mult = P->mult;
    const int8_t *shift = P->shift, *w = P->filter;
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    for (int32_t c = 0; c < C; c += 4, x += 4, w += 36) {
        TML_DW_LOAD_BIAS();
        const int8_t *wr = w;
        const int8_t *r = x;
        for (int32_t ky = 0; ky < 3; ++ky, r += sy, wr += 12) {
            TML_DW_TAP(TML_DW_X(r), TML_DW_W(wr));
            TML_DW_TAP(TML_DW_X(r + sx), TML_DW_W(wr + 4));
            TML_DW_TAP(TML_DW_X(r + 2 * sx), TML_DW_W(wr + 8));
        }
        TML_DW_STORE();
    }
}
#endif

/* One pixel, all channels (grouped layout), any window: taps in rows
 * [ky0, ky1) x columns [kx0, kx1) read the input (x0: the tap (ky0, kx0),
 * channel 0), the others are padding and read the zero point (zp4). */
static void dw_pixel(const tml_conv_s8_t *P, const int8_t *x0, int8_t *o, int32_t ky0, int32_t ky1,
                     int32_t kx0, int32_t kx1, int32_t zp4)
{
    const int32_t C = P->in_c, k_h = P->k_h, k_w = P->k_w;
    const int32_t sx = P->dil_w * C, sy = P->dil_h * P->in_w * C;
    const int32_t *mult = P->mult;
    const int8_t *shift = P->shift, *w = P->filter;
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    const int32_t pre = ky0 * k_w, post = (k_h - ky1) * k_w, mid_l = kx0, mid_r = k_w - kx1;
    for (int32_t c = 0; c < C; c += 4) {
        TML_DW_LOAD_BIAS();
        int32_t t;
        for (t = 0; t < pre; ++t, w += 4) TML_DW_TAP(zp4, TML_DW_W(w));
        const int8_t *r = x0 + c;
        for (int32_t ky = ky0; ky < ky1; ++ky, r += sy) {
            for (t = 0; t < mid_l; ++t, w += 4) TML_DW_TAP(zp4, TML_DW_W(w));
            const int8_t *xp = r;
            for (t = kx0; t < kx1; ++t, w += 4, xp += sx) TML_DW_TAP(TML_DW_X(xp), TML_DW_W(w));
            for (t = 0; t < mid_r; ++t, w += 4) TML_DW_TAP(zp4, TML_DW_W(w));
        }
        for (t = 0; t < post; ++t, w += 4) TML_DW_TAP(zp4, TML_DW_W(w));
        TML_DW_STORE();
    }
}

#if defined(TML_DW_FAST)
/* Fast 3x3 path (grouped layout, Arm DSP, not -Os): every pixel whose middle
 * window column lies in the input goes through inline asm, one group of four
 * channels at a time. Border pixels read the zero point instead of a padded
 * tap (column taps 0 and 2 loaded only where valid, whole padded rows from
 * sxtb16(zp4)), so they cost about what an inside pixel does.
 *
 * Requantization in asm, exact where every shift is < 0 and every multiplier
 * is >= 2^30 (checked once per call; else tml_out4_s8): with m2 = 2m - 2^32
 * as int32, SMMLAR(x, m2, x) = floor((x*2^32 + x*m2 + 2^31) / 2^32)
 * = floor((2xm + 2^31) / 2^32) = SaturatingRoundingDoublingHighMul(x, m)
 * (see tml_dot_s8.h) = s. With e = -shift = e1 + 1, TFLite's
 * RoundingDivideByPOT(s, e) = floor((s - [s<0] + 2^e1) / 2^e)
 * = floor((floor((s - [s<0]) / 2^e1) + 1) / 2), so the output is
 * ssat8(((s + (s >> 31)) >> e1) + 2*off + 1) >> 1) (the offset added inside
 * the last halving is exact: 2*off is even). e1 = ~shift byte-wise. */

typedef struct {
    const int8_t *w;
    const int32_t *bf, *mult;
    const int8_t *shift;
    int32_t C, sx, sy, zp4, ze, k21;
    uint32_t lo4, hi4;
    int32_t off, lo, hi, fq;
} tml_dw_ctx_t;

#define TML_DWF_TAP                                                          \
        "ldr %[t1], [%[w]], #4\n\t"                                          \
        "sxtb16 %[t2], %[t0]\n\t"                                            \
        "sxtb16 %[t3], %[t1]\n\t"                                            \
        "sxtb16 %[t0], %[t0], ror #8\n\t"                                    \
        "sxtb16 %[t1], %[t1], ror #8\n\t"                                    \
        "smlabb %[a0], %[t2], %[t3], %[a0]\n\t"                              \
        "smlatt %[a2], %[t2], %[t3], %[a2]\n\t"                              \
        "smlabb %[a1], %[t0], %[t1], %[a1]\n\t"                              \
        "smlatt %[a3], %[t0], %[t1], %[a3]\n\t"
#define TML_DWF_OPS                                                          \
        [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), \
        [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)

/* Requantize a0..a3 (channels c..c+3), pack, clamp and store at o. */
TML_INLINE void tml_dwf_out(const tml_dw_ctx_t *k, int32_t c, int32_t a0, int32_t a1, int32_t a2,
                            int32_t a3, int8_t *o)
{
    if (!k->fq) {
        tml_out4_s8(o, a0, a1, a2, a3, k->mult + c, k->shift + c, k->off, k->lo, k->hi);
        return;
    }
    uint32_t e;
    memcpy(&e, k->shift + c, 4);
    e = ~e;
    const int32_t *mp = k->mult + c;
    int32_t m;
#define TML_DWF_RQ(A)                                                        \
        "ldr %[m], [%[mp]], #4\n\t"                                          \
        "lsl %[m], %[m], #1\n\t"                                             \
        "smmlar %[" A "], %[" A "], %[m], %[" A "]\n\t"                      \
        "add %[" A "], %[" A "], %[" A "], asr #31\n\t"                      \
        "asr %[" A "], %[" A "], %[e]\n\t"                                   \
        "add %[" A "], %[" A "], %[k21]\n\t"                                 \
        "ssat %[" A "], #8, %[" A "], asr #1\n\t"
    __asm__(TML_DWF_RQ("a0") "lsr %[e], %[e], #8\n\t"
            TML_DWF_RQ("a1") "lsr %[e], %[e], #8\n\t"
            TML_DWF_RQ("a2") "lsr %[e], %[e], #8\n\t"
            TML_DWF_RQ("a3")
            "bfi %[a0], %[a1], #8, #8\n\t"
            "bfi %[a0], %[a2], #16, #8\n\t"
            "bfi %[a0], %[a3], #24, #8\n\t"
            "ssub8 %[m], %[a0], %[lo]\n\t"
            "sel %[a0], %[a0], %[lo]\n\t"
            "ssub8 %[m], %[hi], %[a0]\n\t"
            "sel %[a0], %[a0], %[hi]"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [mp] "+r"(mp), [e] "+r"(e),
              [m] "=&r"(m)
            : [k21] "r"(k->k21), [lo] "r"(k->lo4), [hi] "r"(k->hi4), "m"(*(const int32_t(*)[4])mp)
            : "cc");
#undef TML_DWF_RQ
    memcpy(o, &a0, 4);
}

/* The state of the asm group loops of dwf_inside and dwf_edge, in memory (its loop needs all 14 registers). */
typedef struct {
    const int32_t *bp, *mp;     /* advance per group (ldm / stm as r4-r7) */
    const int8_t *shp;
    int8_t *o;
    const int8_t *xend;         /* x + C */
    uint32_t lo4, hi4;
    int32_t k21, sx, sy1;       /* sy1 = sy - sx */
    const int8_t *w, *x;
    int32_t zp4;                /* dwf_edge: the value of a padded tap */
    uint32_t rf[3];             /* dwf_edge: row ky's flags, N/Z/C: column 0/1/2 padded */
} tml_dwf_px_t;

/* The group loop: r0-r3 accumulators, r4-r7 tap temporaries, r8 filter,
 * r9 row, r10/r11 strides, r12 input group, lr the state; TAPS the nine
 * taps, then the requantization (as tml_dwf_out), packing, store, next group. */
/* One tap with its input word in r4: the filter word, both expanded, 4 MACs. */
#define TML_DWF_MAC4                                                         \
        "ldr r5, [r8], #4\n\t"                                               \
        "sxtb16 r6, r4\n\t"                                                  \
        "sxtb16 r7, r5\n\t"                                                  \
        "sxtb16 r4, r4, ror #8\n\t"                                          \
        "sxtb16 r5, r5, ror #8\n\t"                                          \
        "smlabb r0, r6, r7, r0\n\t"                                          \
        "smlatt r2, r6, r7, r2\n\t"                                          \
        "smlabb r1, r4, r5, r1\n\t"                                          \
        "smlatt r3, r4, r5, r3\n\t"
#define TML_DWF_XTAP(XADDR) "ldr r4, " XADDR "\n\t" TML_DWF_MAC4
#define TML_DWF_XROW                                                         \
        TML_DWF_XTAP("[r9]") TML_DWF_XTAP("[r9, r10]") "add r9, r9, r10\n\t" \
        TML_DWF_XTAP("[r9, r10]")
#define TML_DWF_XRQ(A)                                                       \
        "ldr r11, [r5], #4\n\t"                                              \
        "lsl r11, r11, #1\n\t"                                               \
        "smmlar " A ", " A ", r11, " A "\n\t"                                \
        "add " A ", " A ", " A ", asr #31\n\t"                               \
        "asr " A ", " A ", r9\n\t"                                           \
        "add " A ", " A ", r10\n\t"                                          \
        "ssat " A ", #8, " A ", asr #1\n\t"
#define TML_DWF_LOOP(TAPS) \
        __asm__ volatile( \
            "mov lr, r0\n\t" \
            "ldr r8, [lr, #40]\n\t" \
            "ldr r12, [lr, #44]\n\t" \
            "ldr r4, [lr]\n\t" \
            "ldmia r4!, {r0-r3}\n\t" \
            "str r4, [lr]\n" \
            "1:\n\t" \
            "ldrd r10, r11, [lr, #32]\n\t" \
            "mov r9, r12\n\t" \
            TAPS \
            "ldm lr, {r4, r5, r6, r7}\n\t" \
            "ldr r9, [r6], #4\n\t" \
            "mvn r9, r9\n\t" \
            "ldr r10, [lr, #28]\n\t" \
            TML_DWF_XRQ("r0") "lsr r9, r9, #8\n\t" \
            TML_DWF_XRQ("r1") "lsr r9, r9, #8\n\t" \
            TML_DWF_XRQ("r2") "lsr r9, r9, #8\n\t" \
            TML_DWF_XRQ("r3") \
            "bfi r0, r1, #8, #8\n\t" \
            "bfi r0, r2, #16, #8\n\t" \
            "bfi r0, r3, #24, #8\n\t" \
            "ldrd r9, r10, [lr, #20]\n\t" \
            "ssub8 r11, r0, r9\n\t" \
            "sel r0, r0, r9\n\t" \
            "ssub8 r11, r10, r0\n\t" \
            "sel r0, r0, r10\n\t" \
            "str r0, [r7], #4\n\t" \
            "add r12, r12, #4\n\t" \
            "ldr r9, [lr, #16]\n\t" \
            "cmp r12, r9\n\t" \
            "beq 2f\n\t" \
            "ldmia r4!, {r0-r3}\n\t" \
            "stm lr, {r4, r5, r6, r7}\n\t" \
            "b 1b\n" \
            "2:" \
            : "+r"(sp_) \
            : \
            : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc", \
              "memory")

/* dwf_edge: tap XADDR or, where the flag COND is set, the zero point. */
#define TML_DWF_ETAP(COND, NCOND, XADDR)                                     \
        "ite " COND "\n\t"                                                   \
        "ldr" COND " r4, [lr, #48]\n\t"                                      \
        "ldr" NCOND " r4, " XADDR "\n\t"                                     \
        TML_DWF_MAC4
#define TML_DWF_EROW(F)                                                      \
        "ldr r4, [lr, #" F "]\n\t"                                           \
        "msr APSR_nzcvq, r4\n\t"                                             \
        TML_DWF_ETAP("mi", "pl", "[r9]") TML_DWF_ETAP("eq", "ne", "[r9, r10]") \
        "add r9, r9, r10\n\t" TML_DWF_ETAP("cs", "cc", "[r9, r10]")

TML_INLINE void dwf_state(const tml_dw_ctx_t *k, tml_dwf_px_t *s, const int8_t *x, int8_t *o)
{
    s->bp = k->bf;
    s->mp = k->mult;
    s->shp = k->shift;
    s->o = o;
    s->xend = x + k->C;
    s->lo4 = k->lo4;
    s->hi4 = k->hi4;
    s->k21 = k->k21;
    s->sx = k->sx;
    s->sy1 = k->sy - k->sx;
    s->w = k->w;
    s->x = x;
}

/* One pixel, all channels, 3x3 window inside the input (x: tap (0, 0)). */
static void dwf_inside(const tml_dw_ctx_t *k, const int8_t *x, int8_t *o)
{
    if (k->fq) {   /* 97 instructions of taps, 51 of requantization and loop a group */
        tml_dwf_px_t s;
        dwf_state(k, &s, x, o);
        register tml_dwf_px_t *sp_ __asm__("r0") = &s;
        TML_DWF_LOOP(TML_DWF_XROW "add r9, r9, r11\n\t" TML_DWF_XROW "add r9, r9, r11\n\t" TML_DWF_XROW);
        return;
    }
    const int8_t *w = k->w;
    const int32_t *bp = k->bf;
    const int32_t C = k->C, sx = k->sx, sy = k->sy - k->sx;
    for (int32_t c = 0; c < C; c += 4, x += 4, o += 4) {
        int32_t a0 = bp[0], a1 = bp[1], a2 = bp[2], a3 = bp[3], t0, t1, t2, t3;
        const int8_t *r = x;
        bp += 4;
#define TML_DWF_ROW                                                          \
        "ldr %[t0], [%[r]]\n\t" TML_DWF_TAP                                  \
        "ldr %[t0], [%[r], %[sx]]\n\t" TML_DWF_TAP                           \
        "add %[r], %[r], %[sx]\n\t"                                          \
        "ldr %[t0], [%[r], %[sx]]\n\t" TML_DWF_TAP
        __asm__(TML_DWF_ROW "add %[r], %[r], %[sy]\n\t"
                TML_DWF_ROW "add %[r], %[r], %[sy]\n\t"
                TML_DWF_ROW
                : TML_DWF_OPS, [t0] "=&r"(t0), [r] "+r"(r)
                : [sx] "r"(sx), [sy] "r"(sy)
                : "memory");
#undef TML_DWF_ROW
        tml_dwf_out(k, c, a0, a1, a2, a3, o);
    }
}

/* One pixel, all channels, any 3x3 window: x is tap (0, 0) (an address that
 * may lie outside the input, read only where valid), rows bit ky set: row ky
 * in the input; cm bits 0/1/2: column 0/2/1 padded (column 1 padded: fq only). */
static void dwf_edge(const tml_dw_ctx_t *k, uintptr_t x, int8_t *o, uint32_t rows, uint32_t cm)
{
    if (k->fq) {   /* as dwf_inside, two instructions more a tap */
        tml_dwf_px_t s;
        dwf_state(k, &s, (const int8_t *)x, o);
        s.zp4 = k->zp4;
        for (int32_t ky = 0; ky < 3; ++ky)
            s.rf[ky] = !(rows >> ky & 1u) ? 0xe0000000u : ((cm & 1u) << 31) | ((cm & 2u) << 28) | ((cm & 4u) << 28);
        register tml_dwf_px_t *sp_ __asm__("r0") = &s;
        TML_DWF_LOOP(TML_DWF_EROW("52") "add r9, r9, r11\n\t" TML_DWF_EROW("56") "add r9, r9, r11\n\t"
                     TML_DWF_EROW("60"));
        return;
    }
    const int8_t *w = k->w;
    const int32_t *bp = k->bf;
    const int32_t C = k->C, sx = k->sx, sy = k->sy, zp = k->zp4, ze = k->ze;
    for (int32_t c = 0; c < C; c += 4, x += 4, o += 4) {
        int32_t a0 = bp[0], a1 = bp[1], a2 = bp[2], a3 = bp[3], t0, t1, t2, t3;
        (void)t0;
        bp += 4;
        uintptr_t r = x;
        for (uint32_t rv = rows | 8u; rv != 1u; rv >>= 1, r += (uintptr_t)sy) {
            if (rv & 1u) {
                /* Column taps 0 and 2 read the zero point where padded. */
                const int8_t *rp = (const int8_t *)r;
                int32_t x0 = zp, x2 = zp;
                if (!(cm & 1u)) x0 = tml_ld4(rp);
                if (!(cm & 2u)) x2 = tml_ld4(rp + 2 * sx);
                t0 = x0;
                __asm__(TML_DWF_TAP : TML_DWF_OPS, [t0] "+&r"(t0) : : "memory");
                t0 = tml_ld4(rp + sx);
                __asm__(TML_DWF_TAP : TML_DWF_OPS, [t0] "+&r"(t0) : : "memory");
                t0 = x2;
                __asm__(TML_DWF_TAP : TML_DWF_OPS, [t0] "+&r"(t0) : : "memory");
            } else {
#define TML_DWF_ZTAP                                                         \
                "ldr %[t1], [%[w]], #4\n\t"                                  \
                "sxtb16 %[t3], %[t1]\n\t"                                    \
                "sxtb16 %[t1], %[t1], ror #8\n\t"                            \
                "smlabb %[a0], %[ze], %[t3], %[a0]\n\t"                      \
                "smlatt %[a2], %[ze], %[t3], %[a2]\n\t"                      \
                "smlabb %[a1], %[ze], %[t1], %[a1]\n\t"                      \
                "smlatt %[a3], %[ze], %[t1], %[a3]\n\t"
                __asm__(TML_DWF_ZTAP TML_DWF_ZTAP TML_DWF_ZTAP
                        : TML_DWF_OPS
                        : [ze] "r"(ze)
                        : "memory");
#undef TML_DWF_ZTAP
            }
        }
        tml_dwf_out(k, c, a0, a1, a2, a3, o);
    }
}

/* Whether every channel's requantization fits the asm form of tml_dwf_out
 * (shift < 0, multiplier >= 2^30). */
static TML_NOINLINE int32_t dwf_fq(const tml_conv_s8_t *P)
{
    for (int32_t c = 0; c < P->in_c; ++c)
        if (TML_RD8(P->shift + c) >= 0 || TML_RD32(P->mult + c) < 0x40000000) return 0;
    return 1;
}

/* Without fq, dwf_edge needs a window row in the input and the middle
 * column in the input: whether every pixel of the columns >= ox0 has both
 * (else those columns take dw_generic, so dw3x3_fast never needs dw_pixel
 * and the two frames do not add up). */
static TML_NOINLINE int32_t dwf_edge_ok(const tml_conv_s8_t *P, int32_t ox0)
{
    const int32_t in_w = P->in_w, in_h = P->in_h, dil_h = P->dil_h;
    /* the middle column grows with ox: the first and the last */
    const int32_t ixa = ox0 * P->stride_w - P->pad_l + P->dil_w;
    const int32_t ixb = (P->out_w - 1) * P->stride_w - P->pad_l + P->dil_w;
    if (ixa < 0 || ixb >= in_w) return 0;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        int32_t any = 0;
        for (int32_t ky = 0; ky < 3; ++ky) {
            const int32_t iy = iy0 + ky * dil_h;
            any |= iy >= 0 && iy < in_h;
        }
        if (!any) return 0;
    }
    return 1;
}

/* 3x3, grouped layout: the output columns ox >= ox0, pixel by pixel; fq:
 * dwf_fq(P), else dwf_edge_ok(P, ox0) holds. */
static TML_NOINLINE void dw3x3_fast(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int32_t ox0, int32_t fq)
{
    tml_dw_ctx_t K;
    const int32_t C = P->in_c, in_w = P->in_w, in_h = P->in_h, out_w = P->out_w;
    const int32_t str_w = P->stride_w, dil_h = P->dil_h, dil_w = P->dil_w;
    K.w = P->filter;
    K.bf = P->bias_fold;
    K.mult = P->mult;
    K.shift = P->shift;
    K.C = C;
    K.sx = dil_w * C;
    K.sy = dil_h * in_w * C;
    K.zp4 = (int32_t)(((uint32_t)(uint8_t)(-P->in_offset)) * 0x01010101u);
    K.ze = __sxtb16(K.zp4);
    K.off = P->out_offset;
    K.lo = P->act_min;
    K.hi = P->act_max;
    K.k21 = 2 * K.off + 1;
    K.lo4 = (uint32_t)(uint8_t)K.lo * 0x01010101u;
    K.hi4 = (uint32_t)(uint8_t)K.hi * 0x01010101u;
    K.fq = fq;
    /* Pixels ox in [ox_lo, ox_hi) have all three window columns inside. */
    int32_t ox_lo = 0, ox_hi;
    while (ox_lo < out_w && ox_lo * str_w - P->pad_l < 0) ++ox_lo;
    ox_hi = ox_lo;
    while (ox_hi < out_w && ox_hi * str_w - P->pad_l + 2 * dil_w < in_w) ++ox_hi;
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        uint32_t rows = 0;
        for (int32_t ky = 0; ky < 3; ++ky) {
            const int32_t iy = iy0 + ky * dil_h;
            if (iy >= 0 && iy < in_h) rows |= 1u << ky;
        }
        const intptr_t rowoff = (intptr_t)iy0 * in_w * C;
        int8_t *o = out + (oy * out_w + ox0) * C;
        for (int32_t ox = ox0; ox < out_w; ++ox, o += C) {
            const int32_t ix0 = ox * str_w - P->pad_l;
            const uintptr_t x = (uintptr_t)in + (uintptr_t)(rowoff + (intptr_t)ix0 * C);
            if (rows == 7u && ox >= ox_lo && ox < ox_hi) {
                const int8_t *xp = (const int8_t *)x;
                for (; ox < ox_hi; ++ox, o += C, xp += str_w * C) dwf_inside(&K, xp, o);
                --ox;
                o -= C;
                continue;
            }
            const int32_t ix1 = ix0 + dil_w, ix2 = ix1 + dil_w;
            const uint32_t mid = (uint32_t)(ix1 < 0 || ix1 >= in_w);
            /* fq, or rows != 0 and !mid (dwf_edge_ok) */
            const uint32_t cm = (uint32_t)(ix0 < 0 || ix0 >= in_w) | ((uint32_t)(ix2 < 0 || ix2 >= in_w) << 1) |
                                (mid << 2);
            dwf_edge(&K, x, o, rows, cm);
        }
    }
}

/* Triple path (3x3, dilation 1, stride 1 or 2, at most one padded column on
 * the left, per layer exact conditions of dwt_ok): channel group outer, then
 * output rows, then three horizontally adjacent output pixels at a time
 * ("triples") in one asm loop over the row. A triple is done in two passes,
 * the even lanes (channels c0, c2 of the group: SXTB16) and the odd lanes
 * (c1, c3: SXTB16 ROR #8), each with six accumulators (3 pixels x 2 lanes):
 * every input word of the 5 (stride 2: 7) columns of a window row is loaded
 * and extended once a pass and feeds all the pixels whose window holds it,
 * the filter taps sit pre-extended in the frame (dwt_t.wt), loaded per row.
 *
 * The filter words are stored doubled (2w, exact in 16 bits), so the
 * accumulators hold 2 acc and the requantize is tml_rqx_s8's SMMLAR form
 * without its shift: hi = SMMLAR(2 acc, m, R - [acc<0]) with
 * R = (2 off + 1) << e1, out = ssat8((hi >> e1) >> 1), e1 = -shift - 1
 * (see the proof in tml_dot_s8.h; it holds for any e1 as long as nothing
 * overflows: |2 acc| < 2^31 and |hi| <= |R| + |acc| + 1 < 2^31, which dwt_ok
 * checks per channel from |bias_fold| + 9 * 2^14 >= |acc|).
 *
 * Padding: a padded window row reads a row pointer to the zero point word
 * with column stride 0; the first column of the row's first triple (pad_l 1)
 * and the last column of its last triple (column in_w) read the zero point
 * under IT from the flags N and Z set by MSR (V: no activation clamp). */
typedef struct {
    int32_t wt[18];     /*   0: taps 0..8 as (2 w[c0], 2 w[c2]) halfwords, then (c1, c3) */
    int32_t rq[8];      /*  72: (m, R) of c0, c2, c1, c3 */
    uint32_t e1[2];     /* 104: e1 of c0 | c2 << 8, of c1 | c3 << 8 */
    int32_t b[4];       /* 112: 2 * bias_fold of c0, c2, c1, c3 */
    uintptr_t row[6];   /* 128: window rows (pointer to column 0 of the triple, column stride) */
    uint32_t ev[3];     /* 152: the even lanes' results of the triple, packed */
    int32_t zp4;        /* 164 */
    uint32_t fl, flm, flr; /* 168: flags of this triple, of a middle one, of the last one */
    int32_t n;          /* 180: triples left in the row */
    uintptr_t o;        /* 184: output of the triple, channel c0 */
    int32_t oc;         /* 188: output pixel stride */
    uint32_t lo4, hi4;  /* 192 */
} tml_dwt_t;

typedef char tml_dwt_layout_ok[(offsetof(tml_dwt_t, row) == 128 && offsetof(tml_dwt_t, zp4) == 164 &&
                                offsetof(tml_dwt_t, lo4) == 192) ? 1 : -1];

#define DWT_MAC(A, B, W) "smlabb " A ", r7, " W ", " A "\n\t" "smlatt " B ", r7, " W ", " B "\n\t"
#define DWT_P0(W) DWT_MAC("r1", "r2", W)
#define DWT_P1(W) DWT_MAC("r3", "r4", W)
#define DWT_P2(W) DWT_MAC("r5", "r6", W)
/* Row ROW (offset of its row[] entry) with the filter row at W / W8 = W + 8:
 * r11 row pointer, r12 column stride, lr r11 + r12 (stride 2: then + 2 r12). */
#define DWT_ROWHEAD(ROW, W, W8)                                              \
        "ldrd r11, r12, [r0, #" ROW "]\n\t"                                  \
        "ldrd r8, r9, [r0, #" W "]\n\t"                                      \
        "ldr r10, [r0, #" W8 "]\n\t"                                         \
        "add lr, r11, r12\n\t"
/* The first / last column's load: edge triples (flags N / Z: the zero point
 * instead) or the others. */
#define DWT_C0E "ite mi\n\t" "ldrmi r7, [r0, #164]\n\t" "ldrpl r7, [r11]\n\t"
#define DWT_C0I "ldr r7, [r11]\n\t"
#define DWT_CLE(A) "ite eq\n\t" "ldreq r7, [r0, #164]\n\t" "ldrne r7, " A "\n\t"
#define DWT_CLI(A) "ldr r7, " A "\n\t"
#define DWT_ROW1(C0, CL, SX, ROW, W, W8, NEXT)                               \
        DWT_ROWHEAD(ROW, W, W8) C0 SX DWT_P0("r8")                           \
        "ldr r7, [r11, r12]\n\t" SX DWT_P0("r9") DWT_P1("r8")                \
        "ldr r7, [r11, r12, lsl #1]\n\t" SX DWT_P0("r10") DWT_P1("r9") DWT_P2("r8") \
        "ldr r7, [lr, r12, lsl #1]\n\t" SX DWT_P1("r10") DWT_P2("r9")        \
        CL("[r11, r12, lsl #2]") SX DWT_P2("r10") NEXT
#define DWT_NEXT1(ROW) "add r11, lr, r12, lsl #1\n\t" "str r11, [r0, #" ROW "]\n\t"
#define DWT_ROW2(C0, CL, SX, ROW, W, W8, NEXT)                               \
        DWT_ROWHEAD(ROW, W, W8) C0 SX DWT_P0("r8")                           \
        "ldr r7, [r11, r12]\n\t" SX DWT_P0("r9")                             \
        "ldr r7, [r11, r12, lsl #1]\n\t" SX DWT_P0("r10") DWT_P1("r8")       \
        "ldr r7, [lr, r12, lsl #1]\n\t" SX DWT_P1("r9")                      \
        "ldr r7, [r11, r12, lsl #2]\n\t" SX DWT_P1("r10") DWT_P2("r8")       \
        "ldr r7, [lr, r12, lsl #2]\n\t" SX DWT_P2("r9")                      \
        "add lr, lr, r12\n\t"                                                \
        CL("[lr, r12, lsl #2]") SX DWT_P2("r10") NEXT
#define DWT_NEXT2(ROW) "add r11, lr, r12, lsl #2\n\t" "str r11, [r0, #" ROW "]\n\t"
#define DWT_SXE "sxtb16 r7, r7\n\t"
#define DWT_SXO "sxtb16 r7, r7, ror #8\n\t"
#define DWT_RQ1(A)                                                           \
        "add r10, r9, " A ", asr #31\n\t"                                    \
        "smmlar " A ", " A ", r8, r10\n\t"                                   \
        "asr " A ", " A ", r12\n\t"                                          \
        "ssat " A ", #8, " A ", asr #1\n\t"
#define DWT_RQ(RQ0, RQ1, E)                                                  \
        "ldr r12, [r0, #" E "]\n\t"                                          \
        "ldrd r8, r9, [r0, #" RQ0 "]\n\t" DWT_RQ1("r1") DWT_RQ1("r3") DWT_RQ1("r5") \
        "lsr r12, r12, #8\n\t"                                               \
        "ldrd r8, r9, [r0, #" RQ1 "]\n\t" DWT_RQ1("r2") DWT_RQ1("r4") DWT_RQ1("r6")
#define DWT_CLAMP(V) "ssub8 r12, " V ", r10\n\t" "sel " V ", " V ", r10\n\t" \
        "ssub8 r12, r11, " V "\n\t" "sel " V ", " V ", r11\n\t"
#define DWT_NONE(ROW) ""
/* The taps of a pass: even lanes (filter at 0), odd lanes (filter at 36,
 * and the row pointers advanced to the next triple). */
#define DWT_PASS(ROW, C0, CL, SX, NEXT)                                      \
        ROW(C0, CL, SX, "128", "0", "8", NEXT("128")) ROW(C0, CL, SX, "136", "12", "20", NEXT("136")) \
        ROW(C0, CL, SX, "144", "24", "32", NEXT("144"))
#define DWT_PASSO(ROW, C0, CL, NEXT)                                         \
        ROW(C0, CL, DWT_SXO, "128", "36", "44", NEXT("128"))                 \
        ROW(C0, CL, DWT_SXO, "136", "48", "56", NEXT("136"))                 \
        ROW(C0, CL, DWT_SXO, "144", "60", "68", NEXT("144"))
/* The row loop; flags from dwt_t.fl: N / Z first / last column padded, C
 * either (the edge code), V no activation clamp. */
#define DWT_LOOP(ROW, NEXT)                                                  \
        __asm__ volatile(                                                    \
            "1:\n\t"                                                         \
            "ldr r7, [r0, #168]\n\t"                                         \
            "msr APSR_nzcvq, r7\n\t"                                         \
            "ldrd r1, r2, [r0, #112]\n\t"                                    \
            "ldrd r3, r4, [r0, #112]\n\t"                                    \
            "ldrd r5, r6, [r0, #112]\n\t"                                    \
            "bcs 5f\n\t"                                                     \
            DWT_PASS(ROW, DWT_C0I, DWT_CLI, DWT_SXE, DWT_NONE)               \
            "b 6f\n"                                                        \
            "5:\n\t"                                                         \
            DWT_PASS(ROW, DWT_C0E, DWT_CLE, DWT_SXE, DWT_NONE)               \
            "6:\n\t"                                                         \
            DWT_RQ("72", "80", "104")                                        \
            "pkhbt r1, r1, r2, lsl #16\n\t"                                  \
            "pkhbt r3, r3, r4, lsl #16\n\t"                                  \
            "pkhbt r5, r5, r6, lsl #16\n\t"                                  \
            "strd r1, r3, [r0, #152]\n\t"                                    \
            "str r5, [r0, #160]\n\t"                                         \
            "ldrd r1, r2, [r0, #120]\n\t"                                    \
            "ldrd r3, r4, [r0, #120]\n\t"                                    \
            "ldrd r5, r6, [r0, #120]\n\t"                                    \
            "bcs 7f\n\t"                                                     \
            DWT_PASSO(ROW, DWT_C0I, DWT_CLI, NEXT)                           \
            "b 8f\n"                                                        \
            "7:\n\t"                                                         \
            DWT_PASSO(ROW, DWT_C0E, DWT_CLE, NEXT)                           \
            "8:\n\t"                                                         \
            DWT_RQ("88", "96", "108")                                        \
            "ldrd r7, r8, [r0, #152]\n\t"                                    \
            "ldr r9, [r0, #160]\n\t"                                         \
            "bfi r7, r1, #8, #8\n\t"                                         \
            "bfi r7, r2, #24, #8\n\t"                                        \
            "bfi r8, r3, #8, #8\n\t"                                         \
            "bfi r8, r4, #24, #8\n\t"                                        \
            "bfi r9, r5, #8, #8\n\t"                                         \
            "bfi r9, r6, #24, #8\n\t"                                        \
            "bvs 3f\n\t"                                                     \
            "ldrd r10, r11, [r0, #192]\n\t"                                  \
            DWT_CLAMP("r7") DWT_CLAMP("r8") DWT_CLAMP("r9")                  \
            "3:\n\t"                                                         \
            "ldrd r10, r11, [r0, #184]\n\t"                                  \
            "str r7, [r10]\n\t"                                              \
            "str r8, [r10, r11]\n\t"                                         \
            "add r10, r10, r11, lsl #1\n\t"                                  \
            "str r9, [r10]\n\t"                                              \
            "add r10, r10, r11\n\t"                                          \
            "str r10, [r0, #184]\n\t"                                        \
            "ldr r7, [r0, #180]\n\t"                                         \
            "subs r7, r7, #1\n\t"                                            \
            "beq 9f\n\t"                                                     \
            "str r7, [r0, #180]\n\t"                                         \
            "cmp r7, #1\n\t"                                                 \
            "ite eq\n\t"                                                     \
            "ldreq r7, [r0, #176]\n\t"                                       \
            "ldrne r7, [r0, #172]\n\t"                                       \
            "str r7, [r0, #168]\n\t"                                         \
            "b 1b\n"                                                         \
            "9:"                                                             \
            : "+r"(st_)                                                      \
            :                                                                \
            : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc", \
              "memory")

/* Whether the layer's requantization fits the triple path (see above). */
static int dwt_ok(const tml_conv_s8_t *P)
{
    for (int32_t c = 0; c < P->in_c; ++c) {
        const int32_t s = TML_RD8(P->shift + c), b = TML_RD32(P->bias_fold + c);
        if (s > -1 || s < -23 || TML_RD32(P->mult + c) < 0) return 0;
        const uint32_t ab = (b < 0 ? 0u - (uint32_t)b : (uint32_t)b) + 9u * 16384u;
        if (ab >= 0x40000000u || ab + (255u << (-s - 1)) + 2u >= 0x80000000u) return 0;
    }
    return 1;
}

/* 3x3 through triples where the layer allows: returns the first output
 * column not done (0: none done), the rest is for dw3x3_fast (called after
 * this returns, so the two frames do not add up). */
static TML_NOINLINE int32_t dw3x3_tri(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    const int32_t C = P->in_c, in_w = P->in_w, in_h = P->in_h, out_w = P->out_w, sw = P->stride_w;
    const int32_t nt = out_w / 3, pl = P->pad_l;
    if (P->dil_h != 1 || P->dil_w != 1 || (sw != 1 && sw != 2) || nt == 0 || pl < 0 || pl > 1) return 0;
    const int32_t xl = (3 * nt - 1) * sw - pl + 2;   /* the last column of the last triple */
    if (xl > in_w || !dwt_ok(P)) return 0;
    tml_dwt_t T;
    const int32_t off = P->out_offset;
    T.zp4 = (int32_t)(((uint32_t)(uint8_t)(-P->in_offset)) * 0x01010101u);
    T.lo4 = (uint32_t)(uint8_t)P->act_min * 0x01010101u;
    T.hi4 = (uint32_t)(uint8_t)P->act_max * 0x01010101u;
    T.oc = C;
    const uint32_t fv = (P->act_min == -128 && P->act_max == 127) ? 0x10000000u : 0u;
    T.flm = fv;
    T.flr = fv | (xl == in_w ? 0x60000000u : 0u);
    const uint32_t f0 = (pl ? 0xa0000000u : 0u) | (nt == 1 ? T.flr : fv);
    for (int32_t g = 0; g < C; g += 4) {
        const int8_t *w = P->filter + g * 9;
        for (int32_t t = 0; t < 9; ++t, w += 4) {
            const int32_t v = TML_DW_W(w), ve = __sxtb16(v), vo = tml_sxtb16_ror8(v);
            T.wt[t] = (int32_t)__sadd16((uint32_t)ve, (uint32_t)ve);   /* 2 w, exact per halfword */
            T.wt[9 + t] = (int32_t)__sadd16((uint32_t)vo, (uint32_t)vo);
        }
        T.e1[0] = T.e1[1] = 0;
        for (int32_t j = 0; j < 4; ++j) {
            const int32_t c = g + (j >> 1) + 2 * (j & 1);   /* c0, c2, c1, c3 */
            const int32_t e1 = -TML_RD8(P->shift + c) - 1;
            T.rq[2 * j] = TML_RD32(P->mult + c);
            T.rq[2 * j + 1] = (2 * off + 1) * ((int32_t)1 << e1);
            T.b[j] = 2 * TML_RD32(P->bias_fold + c);
            T.e1[j >> 1] |= (uint32_t)e1 << (8 * (j & 1));
        }
        for (int32_t oy = 0; oy < P->out_h; ++oy) {
            const int32_t iy0 = oy * P->stride_h - P->pad_t;
            for (int32_t ky = 0; ky < 3; ++ky) {
                const int32_t iy = iy0 + ky;
                if (iy >= 0 && iy < in_h) {
                    T.row[2 * ky] = (uintptr_t)in + (uintptr_t)((intptr_t)(iy * in_w - pl) * C + g);
                    T.row[2 * ky + 1] = (uintptr_t)C;
                } else {
                    T.row[2 * ky] = (uintptr_t)&T.zp4;
                    T.row[2 * ky + 1] = 0;
                }
            }
            T.o = (uintptr_t)(out + oy * out_w * C + g);
            T.n = nt;
            T.fl = f0;
            register tml_dwt_t *st_ __asm__("r0") = &T;
            if (sw == 1)
                DWT_LOOP(DWT_ROW1, DWT_NEXT1);
            else
                DWT_LOOP(DWT_ROW2, DWT_NEXT2);
        }
    }
    return 3 * nt;
}
#endif

#if TML_V6M
/* ARMv6-M, grouped layout: one channel at a time (channel c's tap t is
 * w[(c / 4) * T * 4 + 4 t + c % 4]), byte loads only: the 4-channel taps
 * above unpack words with shifts, and tml_ld4 is a memcpy call on a core
 * without unaligned loads. */

/* Channels a chunk of dw3x3_v6m takes (the bytes of its zero-point row). */
#define TML_DW_V6M_CHUNK 32

/* 3x3 windows anywhere (iy0, ix0: the top-left tap), unrolled: each tap
 * reads its input pixel's channels, or a padded tap a row of zero-point
 * bytes, through one pointer per tap and chunk of channels. */
static TML_NOINLINE void dw3x3_v6m(const tml_conv_s8_t *P, const int8_t *in, int8_t *o, int32_t iy0, int32_t ix0)
{
    const int32_t C = P->in_c, lo = P->act_min, hi = P->act_max, off = P->out_offset;
    const int32_t *bias = P->bias_fold, *mult = P->mult;   /* locals: the int8 stores may alias P */
    const int8_t *shift = P->shift, *w = P->filter;
    int8_t zrow[TML_DW_V6M_CHUNK] TML_ALIGNED(4);
    const int8_t *base[9], *tp[9];
    uint32_t padded = 0;
    for (int32_t t = 0, iy = iy0; t < 9; iy += P->dil_h)
        for (int32_t k = 0, ix = ix0; k < 3; ++k, ++t, ix += P->dil_w) {
            if (iy >= 0 && iy < P->in_h && ix >= 0 && ix < P->in_w)
                base[t] = in + (iy * P->in_w + ix) * C;
            else
                padded |= 1u << t;
        }
    if (padded) memset(zrow, (uint8_t)(-P->in_offset), sizeof zrow);
    for (int32_t c0 = 0; c0 < C; c0 += TML_DW_V6M_CHUNK) {
        for (int32_t t = 0; t < 9; ++t) tp[t] = (padded >> t) & 1u ? zrow : base[t] + c0;
        const int32_t n = C - c0 < TML_DW_V6M_CHUNK ? C - c0 : TML_DW_V6M_CHUNK;
        for (int32_t j = 0; j < n; ++j) {
            const int32_t c = c0 + j;
            const int8_t *wc = w + ((c >> 2) * 36 + (c & 3));
            int32_t a = bias[c];
            a += tp[0][j] * wc[0] + tp[1][j] * wc[4] + tp[2][j] * wc[8];
            a += tp[3][j] * wc[12] + tp[4][j] * wc[16] + tp[5][j] * wc[20];
            a += tp[6][j] * wc[24] + tp[7][j] * wc[28] + tp[8][j] * wc[32];
            o[c] = tml_out_s8(a, mult[c], shift[c], off, lo, hi);
        }
    }
}

/* Any window (iy0, ix0: its top-left tap, may lie in the padding): the
 * taps are listed once per pixel, those in the input (input and filter
 * offsets) and the padded ones, which add zp * w. At most 25 taps (larger
 * windows: dw_pixel). */
#define TML_DW_V6M_TAPS 25
static TML_NOINLINE void dw_pixel_v6m(const tml_conv_s8_t *P, const int8_t *in, int8_t *o, int32_t iy0, int32_t ix0)
{
    const int32_t C = P->in_c, k_h = P->k_h, k_w = P->k_w, T4 = 4 * k_h * k_w, zp = -P->in_offset;
    const int32_t lo = P->act_min, hi = P->act_max, off = P->out_offset;
    int32_t xo[TML_DW_V6M_TAPS];
    uint8_t wo[TML_DW_V6M_TAPS], wp[TML_DW_V6M_TAPS];
    int32_t nv = 0, np = 0;
    for (int32_t ky = 0, t4 = 0; ky < k_h; ++ky) {
        const int32_t iy = iy0 + ky * P->dil_h;
        for (int32_t kx = 0; kx < k_w; ++kx, t4 += 4) {
            const int32_t ix = ix0 + kx * P->dil_w;
            if (iy >= 0 && iy < P->in_h && ix >= 0 && ix < P->in_w) {
                xo[nv] = (iy * P->in_w + ix) * C;
                wo[nv++] = (uint8_t)t4;
            } else {
                wp[np++] = (uint8_t)t4;
            }
        }
    }
    const int8_t *wg = P->filter;
    for (int32_t c = 0; c < C; ++c) {
        const int8_t *wc = wg + (c & 3), *x = in + c;
        int32_t a = TML_RD32(P->bias_fold + c), pad = 0;
        for (int32_t k = 0; k < nv; ++k) a += TML_MUL8(x[xo[k]], TML_RD8(wc + wo[k]));
        for (int32_t k = 0; k < np; ++k) pad += TML_RD8(wc + wp[k]);
        o[c] = tml_out_s8(a + zp * pad, TML_RD32(P->mult + c), TML_RD8(P->shift + c), off, lo, hi);
        if ((c & 3) == 3) wg += T4;
    }
}
#endif

#if TML_RV32
/* RV32, 3x3 windows (grouped layout, dilation 1, stride 1 or 2 along the
 * sweep): one channel at a time with its nine weights in registers, each line
 * of outputs swept along the longer output axis (rows, or columns: KWS's
 * 25 x 5 maps). A cross-section of the window (three input bytes, one per
 * lane) is loaded once and meets all three filter slices; the sums of the
 * windows still open carry over (stride 1: two, stride 2: one). A lane in
 * the padding gets zero weights and its taps' zp * w go into the line's bias
 * (the same all along); a cross-section in the padding reads zp. */
typedef struct {
    int32_t n_a, s_a, pad_a, in_a, step_a, ostep_a;   /* along the sweep */
    int32_t n_x, s_x, pad_x, in_x, step_x, ostep_x;   /* across: the lines */
    int32_t tap_a, tap_x;                              /* filter tap strides (bytes) */
} tml_dw_sweep_t;

#define TML_RV_COL()                                                         \
    if ((uint32_t)ia++ < (uint32_t)in_a) {                                   \
        v0 = TML_RD8(q0); v1 = TML_RD8(q1); v2 = TML_RD8(q2);                \
        q0 += step_a; q1 += step_a; q2 += step_a;                            \
    } else {                                                                 \
        v0 = v1 = v2 = zp;                                                   \
    }
#define TML_RV_LANE(r, WA, WB, WC, Q)                                        \
    {                                                                        \
        const int32_t ix = ix0 + (r);                                        \
        const int8_t *wr = wc + (r) * S->tap_x;                              \
        WA = TML_RD8(wr); WB = TML_RD8(wr + S->tap_a); WC = TML_RD8(wr + 2 * S->tap_a); \
        Q = in + c;                                                          \
        if ((uint32_t)ix < (uint32_t)S->in_x) {                              \
            Q += ix * S->step_x;                                             \
        } else {                                                             \
            bias += zp * (WA + WB + WC);                                     \
            WA = WB = WC = 0;                                                \
        }                                                                    \
    }
static TML_NOINLINE TML_RV_NOSCHED void dw3x3_rv32(const tml_conv_s8_t *P, const tml_dw_sweep_t *S,
                                                   const int8_t *in, int8_t *out)
{
    const int32_t C = P->in_c, in_a = S->in_a, step_a = S->step_a, ostep_a = S->ostep_a, n_a = S->n_a;
    const int32_t zp = -P->in_offset, lo = P->act_min, hi = P->act_max, off = P->out_offset;
    const int fast = tml_rqx_ok(P->bias_fold, P->shift, C, 9);
    for (int32_t c = 0; c < C; ++c) {
        const int8_t *wc = P->filter + (c >> 2) * 36 + (c & 3);
        const int32_t m = TML_RD32(P->mult + c), b = TML_RD32(P->bias_fold + c);
        const int sh = TML_RD8(P->shift + c);
        const int32_t R = fast ? tml_rqx_rv_r(off, sh) : 0;
        int8_t *o = out + c;
        for (int32_t j = 0; j < S->n_x; ++j, o += S->ostep_x) {
            const int32_t ix0 = j * S->s_x - S->pad_x;
            int32_t bias = b, w0, w1, w2, w3, w4, w5, w6, w7, w8, v0, v1, v2;
            const int8_t *q0, *q1, *q2;
            TML_RV_LANE(0, w0, w1, w2, q0)
            TML_RV_LANE(1, w3, w4, w5, q1)
            TML_RV_LANE(2, w6, w7, w8, q2)
            int32_t ia = -S->pad_a;
            int8_t *op = o;
            if (S->s_a == 1) {
                TML_RV_COL()
                int32_t B = bias + w0 * v0 + w3 * v1 + w6 * v2;
                TML_RV_COL()
                int32_t A = B + w1 * v0 + w4 * v1 + w7 * v2;
                B = bias + w0 * v0 + w3 * v1 + w6 * v2;
                for (int32_t n = n_a; n > 0; --n, op += ostep_a) {
                    TML_RV_COL()
                    const int32_t y = A + w2 * v0 + w5 * v1 + w8 * v2;
                    A = B + w1 * v0 + w4 * v1 + w7 * v2;
                    B = bias + w0 * v0 + w3 * v1 + w6 * v2;
                    *op = tml_out_rv(y, fast, m, sh, R, off, lo, hi);
                }
            } else {
                TML_RV_COL()
                int32_t A = bias + w0 * v0 + w3 * v1 + w6 * v2;
                for (int32_t n = n_a; n > 0; --n, op += ostep_a) {
                    TML_RV_COL()
                    A += w1 * v0 + w4 * v1 + w7 * v2;
                    TML_RV_COL()
                    const int32_t y = A + w2 * v0 + w5 * v1 + w8 * v2;
                    A = bias + w0 * v0 + w3 * v1 + w6 * v2;
                    *op = tml_out_rv(y, fast, m, sh, R, off, lo, hi);
                }
            }
        }
    }
}
#undef TML_RV_COL
#undef TML_RV_LANE

/* Sweeps along the output rows, or along the columns where they are longer
 * (and the vertical stride allows it). */
static TML_NOINLINE void dw3x3_rv32_sweep(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    const int32_t C = P->in_c, row = P->in_w * C, orow = P->out_w * C;
    tml_dw_sweep_t S = {P->out_w, P->stride_w, P->pad_l, P->in_w, C, C,
                        P->out_h, P->stride_h, P->pad_t, P->in_h, row, orow, 4, 12};
    if (P->out_h > P->out_w && P->stride_h <= 2) {
        const tml_dw_sweep_t V = {P->out_h, P->stride_h, P->pad_t, P->in_h, row, orow,
                                  P->out_w, P->stride_w, P->pad_l, P->in_w, C, C, 12, 4};
        S = V;
    }
    dw3x3_rv32(P, &S, in, out);
}
#endif

/* Output channel oc of one pixel, any depth multiplier, TFLite's layout. */
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
                acc += TML_MUL8(in[(iy * P->in_w + ix) * P->in_c + ic], w);
        }
    }
    return tml_out_s8(acc, TML_RD32(P->mult + oc), TML_RD8(P->shift + oc), P->out_offset,
                      P->act_min, P->act_max);
}

/* First k in [0, n) with 0 <= i0 + k * d < lim, and one past the last. */
static void valid_range(int32_t i0, int32_t d, int32_t n, int32_t lim, int32_t *k0, int32_t *k1)
{
    int32_t a = 0, b = n;
    while (a < n && i0 + a * d < 0) ++a;
    while (b > a && i0 + (b - 1) * d >= lim) --b;
    *k0 = a;
    *k1 = b;
}

#if TML_HOST_STACK > 0
/* Wide hosts, grouped layout: the filter transposed back to [tap][C] once
 * per call, then per pixel all C channels tap by tap (a loop over contiguous
 * channels that gcc/clang -O3 vectorize), padded taps adding -in_offset * w. */
static TML_NOINLINE void dw_host(const tml_conv_s8_t *P, const int8_t *in, int8_t *out)
{
    int8_t wt[TML_HOST_STACK / 2];
    int32_t acc[TML_HOST_STACK / 8];
    const int32_t C = P->in_c, T = P->k_h * P->k_w, in_w = P->in_w, in_off = P->in_offset;
    for (int32_t c = 0; c < C; ++c)
        for (int32_t t = 0; t < T; ++t) wt[t * C + c] = P->filter[((c >> 2) * T + t) * 4 + (c & 3)];
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        for (int32_t ox = 0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            for (int32_t c = 0; c < C; ++c) acc[c] = P->bias_fold[c];
            const int8_t *wr = wt;
            for (int32_t ky = 0; ky < P->k_h; ++ky) {
                const int32_t iy = iy0 + ky * P->dil_h;
                for (int32_t kx = 0; kx < P->k_w; ++kx, wr += C) {
                    const int32_t ix = ix0 + kx * P->dil_w;
                    if (iy < 0 || iy >= P->in_h || ix < 0 || ix >= in_w) {
                        for (int32_t c = 0; c < C; ++c) acc[c] -= in_off * wr[c];
                    } else {
                        const int8_t *x = in + (iy * in_w + ix) * C;
                        for (int32_t c = 0; c < C; ++c) acc[c] += (int16_t)x[c] * (int16_t)wr[c];
                    }
                }
            }
            int8_t *o = out + (oy * P->out_w + ox) * C;
            for (int32_t c = 0; c < C; ++c)
                o[c] = tml_out_s8(acc[c], P->mult[c], P->shift[c], P->out_offset, P->act_min, P->act_max);
        }
    }
}
#endif

#if defined(TML_DW_FAST)
/* Its own frame at -O2, so the dispatcher tml_dwconv_s8 stays thin and the
 * fast 3x3 paths do not carry it. */
#define TML_DW_GENERIC static TML_NOINLINE
#else
#define TML_DW_GENERIC TML_INLINE
#endif

/* Any shape, the output columns ox >= ox0 (grouped layout: dw_pixel; -Os:
 * 3x3 windows inside the input through dw3x3_inside). */
TML_DW_GENERIC void dw_generic(const tml_conv_s8_t *P, const int8_t *in, int8_t *out, int32_t ox0)
{
    const int32_t out_c = P->out_c, C = P->in_c, in_w = P->in_w;
    const int grouped = P->depth_mult == 1 && (C & 3) == 0;
#if !defined(TML_DW_FAST)   /* else grouped 3x3 is dw_pixel's here (rare: see tml_dwconv_s8) */
    const int k33 = P->k_h == 3 && P->k_w == 3;
#endif
    const int32_t zp4 = (int32_t)(((uint32_t)(uint8_t)(-P->in_offset)) * 0x01010101u);
    for (int32_t oy = 0; oy < P->out_h; ++oy) {
        const int32_t iy0 = oy * P->stride_h - P->pad_t;
        int32_t ky0, ky1;
        valid_range(iy0, P->dil_h, P->k_h, P->in_h, &ky0, &ky1);
        for (int32_t ox = ox0; ox < P->out_w; ++ox) {
            const int32_t ix0 = ox * P->stride_w - P->pad_l;
            int8_t *o = out + (oy * P->out_w + ox) * out_c;
            if (!grouped) {
                for (int32_t oc = 0; oc < out_c; ++oc) o[oc] = dw1(P, in, oc, iy0, ix0);
                continue;
            }
            int32_t kx0, kx1;
            valid_range(ix0, P->dil_w, P->k_w, in_w, &kx0, &kx1);
#if TML_V6M
            if (k33) {
                dw3x3_v6m(P, in, o, iy0, ix0);
                continue;
            }
            if (P->k_h * P->k_w <= TML_DW_V6M_TAPS) {
                dw_pixel_v6m(P, in, o, iy0, ix0);
                continue;
            }
#endif
            if (ky0 < ky1 && kx0 < kx1) {
                const int8_t *x0 = in + ((iy0 + ky0 * P->dil_h) * in_w + ix0 + kx0 * P->dil_w) * C;
#if !defined(TML_DW_FAST)
                if (k33 && ky1 - ky0 == 3 && kx1 - kx0 == 3)
                    dw3x3_inside(P, x0, o);
                else
#endif
                    dw_pixel(P, x0, o, ky0, ky1, kx0, kx1, zp4);
            } else {
                dw_pixel(P, in, o, 0, 0, 0, 0, zp4);   /* window wholly in the padding */
            }
        }
    }
}

void tml_dwconv_s8(const tml_conv_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_conv_s8_t, src);
#if TML_HOST_STACK > 0
    if (P->depth_mult == 1 && (P->in_c & 3) == 0 && P->k_h * P->k_w * P->in_c <= TML_HOST_STACK / 2 &&
        P->in_c <= TML_HOST_STACK / 8) {
        dw_host(P, in, out);
        return;
    }
#endif
#if defined(TML_DW_FAST)
    if (P->depth_mult == 1 && (P->in_c & 3) == 0 && P->k_h == 3 && P->k_w == 3) {
        /* triples where the layer allows, then pixel by pixel: dw3x3_fast
         * where it needs no dw_pixel, else (no fq and windows with no row or
         * no middle column in the input) dw_generic */
        const int32_t ox0 = dw3x3_tri(P, in, out);
        if (ox0 < P->out_w) {
            const int32_t fq = dwf_fq(P);
            if (fq || dwf_edge_ok(P, ox0))
                dw3x3_fast(P, in, out, ox0, fq);
            else
                dw_generic(P, in, out, ox0);
        }
        return;
    }
#endif
#if TML_RV32
    if (P->depth_mult == 1 && (P->in_c & 3) == 0 && P->k_h == 3 && P->k_w == 3 && P->dil_h == 1 &&
        P->dil_w == 1 && ((P->stride_w == 1 || P->stride_w == 2) || (P->stride_h <= 2 && P->out_h > P->out_w))) {
        dw3x3_rv32_sweep(P, in, out);
        return;
    }
#endif
    dw_generic(P, in, out, 0);
}
