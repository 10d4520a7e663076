/* tml_dot_s8.h - helpers shared by the int8 conv / depthwise / fully
 * connected kernels: word loads, the Arm DSP pair expansion and a requantize
 * that is bit-exact to TFLite's MultiplyByQuantizedMultiplier.
 *
 * Requantization: TFLite computes SaturatingRoundingDoublingHighMul(x, m) as
 * trunc((x*m + nudge) / 2^31) with nudge = 2^30 for x*m >= 0 and 1 - 2^30
 * otherwise. For x*m < 0 that equals floor((x*m + 2^30) / 2^31), the same
 * expression as for x*m >= 0, so one 64-bit add and arithmetic shift gives
 * it exactly (the saturating case needs m == INT32_MIN, which
 * quantize_multiplier never produces: m < 2^31). The rounding right shift
 * that follows is TFLite's RoundingDivideByPOT unchanged.
 */
#ifndef TML_DOT_S8_H
#define TML_DOT_S8_H

#include "tml_port.h"

#if defined(__GNUC__)
#define TML_NOINLINE __attribute__((noinline))
#else
#define TML_NOINLINE
#endif

/* Wide hosts (x86-64, AArch64, ...): plain C loops that gcc/clang -O3
 * vectorize, with stack buffers of up to TML_HOST_STACK bytes (sign-extended
 * inputs, transposed filters). Small cores leave this 0 and get none of it. */
#ifndef TML_HOST_STACK
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(_WIN32)
#define TML_HOST_STACK 16384
#else
#define TML_HOST_STACK 0
#endif
#endif

/* Speed code generation: a build that is optimized and not for size, or an
 * -Os build whose hot kernel files switched to -O2 (tml_speed.h). */
#if !defined(TML_SPEED_KERNELS)
#define TML_SPEED_KERNELS 0
#endif
#if defined(__OPTIMIZE__) && (!defined(__OPTIMIZE_SIZE__) || TML_SPEED_KERNELS)
#define TML_OPT_SPEED 1
#else
#define TML_OPT_SPEED 0
#endif

/* Hand-scheduled Arm DSP code (inline asm blocks): speed code generation only.
 * Not with TML_OPTIMIZE_SIZE (the compact loops keep flash smallest) and not at
 * -O0 (debug builds: the frame pointer leaves the asm blocks too few registers). */
#if TML_HAVE_DSP && defined(__arm__) && defined(__GNUC__) && TML_OPT_SPEED
#define TML_ARM_FAST 1
#else
#define TML_ARM_FAST 0
#endif

/* ARMv6-M (Cortex-M0/M0+/M1, GCC or clang): the int8 dot products in the
 * Thumb-1 assembly below. C loops over four accumulators, four pointers and
 * a counter need more than the 8 low registers there and spill to the stack. */
#if defined(__ARM_ARCH_6M__) && defined(__GNUC__)
#define TML_V6M 1
#else
#define TML_V6M 0
#endif

/* RISC-V RV32 with the M extension (GCC or clang), speed code generation:
 * register-blocked C loops (tml_conv_s8.c, tml_dwconv_s8.c, tml_fc_s8.c).
 * With no SIMD and no indexed addressing, every MAC costs a multiply and an
 * add; the blocks load each input and filter byte once for several MACs and
 * keep the accumulators in registers (31 GPRs; not RV32E, which has 15). */
#if defined(__riscv) && defined(__riscv_xlen) && __riscv_xlen == 32 && defined(__riscv_mul) && \
    !defined(__riscv_32e) && defined(__GNUC__) && TML_OPT_SPEED
#define TML_RV32 1
#else
#define TML_RV32 0
#endif
/* GCC's pre-allocation scheduler hoists a whole unrolled step's loads ahead
 * of the multiplies and then spills the accumulators: off in the RV32 blocks. */
#if TML_RV32 && !defined(__clang__)
#define TML_RV_NOSCHED __attribute__((optimize("no-schedule-insns")))
#else
#define TML_RV_NOSCHED
#endif

#if TML_V6M
#define TML_ARG __attribute__((unused))   /* read by the asm only */

/* The naked functions' prologue and epilogue: r4-r11 saved (AAPCS), 36 bytes. */
#define TML_V6M_SAVE                                                         \
        "push {r4, r5, r6, r7, lr}\n\t"                                       \
        "mov r4, r8\n\t"                                                     \
        "mov r5, r9\n\t"                                                     \
        "mov r6, r10\n\t"                                                    \
        "mov r7, r11\n\t"                                                    \
        "push {r4, r5, r6, r7}\n\t"
#define TML_V6M_RESTORE                                                      \
        "pop {r4, r5, r6, r7}\n\t"                                           \
        "mov r8, r4\n\t"                                                     \
        "mov r9, r5\n\t"                                                     \
        "mov r10, r6\n\t"                                                    \
        "mov r11, r7\n\t"                                                    \
        "pop {r4, r5, r6, r7, pc}\n\t"

/* The 2 x 2 loop: r0, r1 the ends of xa, xb; r2, r3 of wa, wb; r4 the index
 * from -n (< 0) up to 0; r8..r11 += xa wa, xa wb, xb wa, xb wb; r5-r7 scratch.
 * Two elements a branch: an odd n enters at the second. */
#define TML_V6M_DOT_STEP                                                     \
        "ldrsb r5, [r0, r4]\n\t"         /* xa */                            \
        "ldrsb r6, [r2, r4]\n\t"         /* wa */                            \
        "mov r7, r6\n\t"                                                     \
        "muls r7, r5, r7\n\t"                                                \
        "add r8, r7\n\t"                                                     \
        "ldrsb r7, [r3, r4]\n\t"         /* wb */                            \
        "muls r5, r7, r5\n\t"                                                \
        "add r9, r5\n\t"                                                     \
        "ldrsb r5, [r1, r4]\n\t"         /* xb */                            \
        "muls r6, r5, r6\n\t"                                                \
        "add r10, r6\n\t"                                                    \
        "muls r7, r5, r7\n\t"                                                \
        "add r11, r7\n\t"                                                    \
        "adds r4, r4, #1\n\t"
#define TML_V6M_DOT_LOOP                                                     \
        "movs r5, #1\n\t"                                                    \
        "tst r4, r5\n\t"                                                     \
        "bne 4f\n"                                                           \
        "1:\n\t"                                                             \
        TML_V6M_DOT_STEP                                                     \
        "4:\n\t"                                                             \
        TML_V6M_DOT_STEP                                                     \
        "bne 1b\n"

/* a[r] += sum x[i] w[r n + i] over i < n (n >= 0) for the four rows r < 4
 * (FULLY_CONNECTED): 5 LDRSB, 4 MULS, 4 ADDs a step, two steps a branch. */
#define TML_V6M_ROW_STEP                                                     \
        "ldrsb r6, [r0, r2]\n\t"         /* x */                             \
        "ldrsb r7, [r1, r2]\n\t"                                             \
        "muls r7, r6, r7\n\t"                                                \
        "add r8, r7\n\t"                                                     \
        "ldrsb r7, [r3, r2]\n\t"                                             \
        "muls r7, r6, r7\n\t"                                                \
        "add r9, r7\n\t"                                                     \
        "ldrsb r7, [r4, r2]\n\t"                                             \
        "muls r7, r6, r7\n\t"                                                \
        "add r10, r7\n\t"                                                    \
        "ldrsb r7, [r5, r2]\n\t"                                             \
        "muls r7, r6, r7\n\t"                                                \
        "add r11, r7\n\t"                                                    \
        "adds r2, r2, #1\n\t"

__attribute__((naked, noinline, unused))
static void tml_v6m_rows4(TML_ARG const int8_t *x, TML_ARG const int8_t *w, TML_ARG int32_t n, TML_ARG int32_t *a)
{
    __asm__ volatile(
        ".syntax unified\n\t"
        TML_V6M_SAVE
        "mov ip, r3\n\t"
        "ldr r4, [r3, #0]\n\t"
        "mov r8, r4\n\t"
        "ldr r4, [r3, #4]\n\t"
        "mov r9, r4\n\t"
        "ldr r4, [r3, #8]\n\t"
        "mov r10, r4\n\t"
        "ldr r4, [r3, #12]\n\t"
        "mov r11, r4\n\t"
        "adds r0, r0, r2\n\t"            /* the ends of x and the four rows */
        "adds r1, r1, r2\n\t"
        "adds r3, r1, r2\n\t"
        "adds r4, r3, r2\n\t"
        "adds r5, r4, r2\n\t"
        "rsbs r2, r2, #0\n\t"
        "bge 2f\n\t"
        "movs r6, #1\n\t"
        "tst r2, r6\n\t"
        "bne 4f\n"
        "1:\n\t"
        TML_V6M_ROW_STEP
        "4:\n\t"
        TML_V6M_ROW_STEP
        "bne 1b\n"
        "2:\n\t"
        "mov r3, ip\n\t"
        "mov r4, r8\n\t"
        "str r4, [r3, #0]\n\t"
        "mov r4, r9\n\t"
        "str r4, [r3, #4]\n\t"
        "mov r4, r10\n\t"
        "str r4, [r3, #8]\n\t"
        "mov r4, r11\n\t"
        "str r4, [r3, #12]\n\t"
        TML_V6M_RESTORE);
}

/* Several channel pairs of one pixel pair (conv_v6m): the filter rows
 * w, w + K of pair i start at w + 2 i K; the accumulators start from
 * bias[2 i], bias[2 i + 1] and are stored as acc[4 i ..] (xa wa, xa wb,
 * xb wa, xb wb). xa, xb, w: the ends of the first rows (start + K). n >= 1. */
typedef struct {
    const int8_t *xa, *xb, *w;
    int32_t K;
    const int32_t *bias;
    int32_t *acc;
    int32_t n;
} tml_v6m_pairs_t;

__attribute__((naked, noinline, unused))
static void tml_v6m_dot_pairs(TML_ARG tml_v6m_pairs_t *j)
{
    __asm__ volatile(
        ".syntax unified\n\t"
        TML_V6M_SAVE
        "mov ip, r0\n\t"                 /* the job, updated as it goes */
        "ldr r1, [r0, #4]\n\t"
        "ldr r2, [r0, #8]\n\t"
        "ldr r4, [r0, #12]\n\t"
        "adds r3, r2, r4\n\t"
        "ldr r0, [r0, #0]\n"
        "3:\n\t"
        "mov r5, ip\n\t"
        "ldr r6, [r5, #16]\n\t"          /* bias */
        "ldr r7, [r6, #0]\n\t"
        "mov r8, r7\n\t"
        "mov r10, r7\n\t"
        "ldr r7, [r6, #4]\n\t"
        "mov r9, r7\n\t"
        "mov r11, r7\n\t"
        "adds r6, r6, #8\n\t"
        "str r6, [r5, #16]\n\t"
        "ldr r4, [r5, #12]\n\t"
        "rsbs r4, r4, #0\n\t"
        "bge 2f\n"
        TML_V6M_DOT_LOOP
        "2:\n\t"
        "mov r5, ip\n\t"
        "ldr r6, [r5, #20]\n\t"          /* acc */
        "mov r7, r8\n\t"
        "str r7, [r6, #0]\n\t"
        "mov r7, r9\n\t"
        "str r7, [r6, #4]\n\t"
        "mov r7, r10\n\t"
        "str r7, [r6, #8]\n\t"
        "mov r7, r11\n\t"
        "str r7, [r6, #12]\n\t"
        "adds r6, r6, #16\n\t"
        "str r6, [r5, #20]\n\t"
        "ldr r4, [r5, #12]\n\t"
        "lsls r4, r4, #1\n\t"
        "adds r2, r2, r4\n\t"            /* next pair's rows */
        "adds r3, r3, r4\n\t"
        "ldr r4, [r5, #24]\n\t"
        "subs r4, r4, #1\n\t"
        "str r4, [r5, #24]\n\t"
        "bne 3b\n\t"
        TML_V6M_RESTORE);
}
/* a[0] += sum xa[i] wa[i], a[1] += sum xa[i] wb[i], a[2] += sum xb[i] wa[i],
 * a[3] += sum xb[i] wb[i] over i < n (n >= 0): 2 pixels x 2 channels, 15
 * instructions per 4 MACs (4 LDRSB, 4 MULS, 4 ADDs to accumulators kept in
 * r8-r11, one MOV, the index step and the branch). Naked: its own prologue
 * and epilogue (AAPCS: r4-r11 saved; n and a are the stacked arguments). */
__attribute__((naked, noinline, unused))
static void tml_v6m_dot2x2(TML_ARG const int8_t *xa, TML_ARG const int8_t *xb, TML_ARG const int8_t *wa,
                           TML_ARG const int8_t *wb, TML_ARG int32_t n, TML_ARG int32_t *a)
{
    __asm__ volatile(
        ".syntax unified\n\t"            /* GCC's inline asm default is divided; it switches back after */
        TML_V6M_SAVE
        "ldr r4, [sp, #36]\n\t"          /* n */
        "ldr r5, [sp, #40]\n\t"          /* a */
        "mov ip, r5\n\t"
        "ldr r6, [r5, #0]\n\t"
        "mov r8, r6\n\t"
        "ldr r6, [r5, #4]\n\t"
        "mov r9, r6\n\t"
        "ldr r6, [r5, #8]\n\t"
        "mov r10, r6\n\t"
        "ldr r6, [r5, #12]\n\t"
        "mov r11, r6\n\t"
        "adds r0, r0, r4\n\t"            /* the four ends; index i from -n up to 0 */
        "adds r1, r1, r4\n\t"
        "adds r2, r2, r4\n\t"
        "adds r3, r3, r4\n\t"
        "rsbs r4, r4, #0\n\t"
        "bge 2f\n"
        TML_V6M_DOT_LOOP
        "2:\n\t"
        "mov r5, ip\n\t"
        "mov r6, r8\n\t"
        "str r6, [r5, #0]\n\t"
        "mov r6, r9\n\t"
        "str r6, [r5, #4]\n\t"
        "mov r6, r10\n\t"
        "str r6, [r5, #8]\n\t"
        "mov r6, r11\n\t"
        "str r6, [r5, #12]\n\t"
        TML_V6M_RESTORE);
}
#endif

#if defined(__AVR__) && defined(__GNUC__)
#define TML_AVR 1
/* AVR: acc + the dot product of x (n int8 in RAM) and w (n int8 in flash,
 * read with LPM like TML_RD8). Each product comes from one MULS in r1:r0;
 * 0x4000 added to it makes it an unsigned 16-bit value (-16256..16384 ->
 * 128..32768), which a plain 32-bit add-with-carry takes; n * 0x4000 is
 * taken off at the end. 14 cycles a MAC (two a pass), where GCC's code for
 * the C loop with int32 accumulators takes 30-50. r1 (__zero_reg__) is
 * cleared again after the loop. Exact: the sum is the same integer. */
/* Not inlined: the asm needs X, Z, a word register and 10 more, free only at a call. */
__attribute__((noinline, unused)) static int32_t tml_avr_dot(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    if (n <= 0 || n > 65535) {
        for (int32_t i = 0; i < n; ++i) acc += TML_MUL8(x[i], TML_RD8(w + i));
        return acc;
    }
    uint16_t pairs = (uint16_t)n >> 1;
    const uint8_t c40 = 0x40, zero = 0;
    uint8_t xv, wv;
    int32_t sum = acc - ((int32_t)n << 14);
/* one MAC: x from X, w from Z (both post-incremented), product + 0x4000 into sum */
#define TML_AVR_MAC                                                          \
    "ld %[xv], X+\n\t"                                                      \
    "lpm %[wv], Z+\n\t"                                                     \
    "muls %[xv], %[wv]\n\t"                                                 \
    "add r1, %[c40]\n\t"                                                    \
    "add %A[s], r0\n\t"                                                     \
    "adc %B[s], r1\n\t"                                                     \
    "adc %C[s], %[zero]\n\t"                                                \
    "adc %D[s], %[zero]\n\t"
    if (n & 1)
        __asm__ volatile(TML_AVR_MAC "clr __zero_reg__"
                         : [s] "+r"(sum), "+x"(x), "+z"(w), [xv] "=&d"(xv), [wv] "=&d"(wv)
                         : [c40] "r"(c40), [zero] "r"(zero)
                         : "r0");
    if (pairs)
        __asm__ volatile("1:\n\t" TML_AVR_MAC TML_AVR_MAC
                         "sbiw %[k], 1\n\t"
                         "brne 1b\n\t"
                         "clr __zero_reg__"
                         : [s] "+r"(sum), "+x"(x), "+z"(w), [k] "+w"(pairs), [xv] "=&d"(xv), [wv] "=&d"(wv)
                         : [c40] "r"(c40), [zero] "r"(zero)
                         : "r0");
#undef TML_AVR_MAC
    return sum;
}
#else
#define TML_AVR 0
#endif

/* 4 bytes from RAM (activations), any alignment. */
TML_INLINE int32_t tml_ld4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

TML_INLINE int32_t tml_ror8(int32_t v)
{
    return (int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}

#if TML_HAVE_DSP
/* __sxtb16(ror(v, 8)) as one instruction (gcc 12 does not fuse the rotate). */
TML_INLINE int32_t tml_sxtb16_ror8(int32_t v)
{
#if defined(__arm__) && defined(__GNUC__)
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16(tml_ror8(v));
#endif
}
#endif

/* a[j] += the dot product of x (n int8, in RAM) and row wj, for the four rows w0..w3 in one
 * pass over x: every input word is loaded (and, with the Arm DSP extension, sign-extended)
 * once for four rows. FULLY_CONNECTED's rows and the four gates of an LSTM unit. */
TML_INLINE void tml_dot4_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, const int8_t *w2,
                            const int8_t *w3, int32_t n, int32_t *a)
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t xv = tml_ld4(x + i);
        const int32_t xe = __sxtb16(xv), xo = tml_sxtb16_ror8(xv);
        int32_t u = tml_ld4(w0 + i);
        a0 = __smlad(xe, __sxtb16(u), a0);
        a0 = __smlad(xo, tml_sxtb16_ror8(u), a0);
        u = tml_ld4(w1 + i);
        a1 = __smlad(xe, __sxtb16(u), a1);
        a1 = __smlad(xo, tml_sxtb16_ror8(u), a1);
        u = tml_ld4(w2 + i);
        a2 = __smlad(xe, __sxtb16(u), a2);
        a2 = __smlad(xo, tml_sxtb16_ror8(u), a2);
        u = tml_ld4(w3 + i);
        a3 = __smlad(xe, __sxtb16(u), a3);
        a3 = __smlad(xo, tml_sxtb16_ror8(u), a3);
    }
#endif
#if TML_AVR
    a0 = tml_avr_dot(x, w0, n, a0);
    a1 = tml_avr_dot(x, w1, n, a1);
    a2 = tml_avr_dot(x, w2, n, a2);
    a3 = tml_avr_dot(x, w3, n, a3);
    i = n;
#endif
    for (; i < n; ++i) {
        const int32_t xi = x[i];
        a0 += TML_MUL8(xi, TML_RD8(w0 + i));
        a1 += TML_MUL8(xi, TML_RD8(w1 + i));
        a2 += TML_MUL8(xi, TML_RD8(w2 + i));
        a3 += TML_MUL8(xi, TML_RD8(w3 + i));
    }
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
}

/* The shift < 0 case of tml_requant_s8 with e1 = -shift - 1 and r2 = 1 << e1
 * given (per-channel values that callers can hoist out of their pixel loops).
 * Both roundings in one 64-bit add: with p = x*m, s = floor((p + 2^30) / 2^31)
 * and e = -shift >= 1, RoundingDivideByPOT(s, e) = floor((s + 2^(e-1) - [s<0]) / 2^e)
 * = floor((p + 2^30 + 2^31 * (2^(e-1) - [s<0])) / 2^(31+e)). [s<0] may be
 * replaced by [x<0] (m > 0; where they differ s == 0 and both give 0), and
 * the division by 2^(31+e) is the high word shifted right by e-1. */
TML_INLINE int32_t tml_requant_neg_s8(int32_t x, int32_t m, int32_t r2, int32_t e1)
{
#if TML_NO_SMULL
    /* s = SaturatingRoundingDoublingHighMul(x, m) (tml_smull_r31), then
     * RoundingDivideByPOT(s, e1 + 1) = floor((floor((s - [s<0]) / 2^e1) + 1) / 2).
     * No overflow: 0 <= m < 2^31 gives -2^31 + 1 <= s <= 2^31 - 2. */
    (void)r2;
    const int32_t s = tml_smull_r31(x, m);
    return (((s + (s >> 31)) >> e1) + 1) >> 1;
#else
    const int32_t q = r2 + (x >> 31);      /* >= 0 */
    const uint32_t lo = ((uint32_t)q << 31) | 0x40000000u, hi = (uint32_t)q >> 1;
    const int64_t k = (int64_t)(((uint64_t)hi << 32) | lo);   /* q * 2^31 + 2^30 */
    return (int32_t)(((int64_t)x * m + k) >> 32) >> e1;
#endif
}

/* floor((a * b + 2^30) / 2^31) truncated to 32 bits: SaturatingRoundingDoublingHighMul
 * for every (a, b) but a == b == INT32_MIN (see the top of this file). */
TML_INLINE int32_t tml_mulhi_r31(int32_t a, int32_t b)
{
#if TML_NO_SMULL
    return tml_smull_r31(a, b);
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
#endif
}

TML_INLINE int32_t tml_requant_s8(int32_t x, int32_t m, int shift)
{
    if (shift < 0) {
        const int32_t e1 = -shift - 1;
        return tml_requant_neg_s8(x, m, (int32_t)1 << e1, e1);
    }
    return tml_mulhi_r31((int32_t)((uint32_t)x << shift), m);
}

/* requant + output offset + clamp, as int8. */
TML_INLINE int8_t tml_out_s8(int32_t acc, int32_t m, int shift, int32_t out_offset,
                             int32_t act_min, int32_t act_max)
{
    acc = tml_requant_s8(acc, m, shift) + out_offset;
    if (acc < act_min) acc = act_min;
    if (acc > act_max) acc = act_max;
    return (int8_t)acc;
}

#if TML_HAVE_DSP && defined(__arm__) && defined(__GNUC__)
/* The four bytes of p clamped byte-wise to [lo, hi] (lo4, hi4: the bounds
 * replicated to all four bytes): SSUB8 + SEL twice. */
TML_INLINE uint32_t tml_clamp4_s8(uint32_t p, uint32_t lo4, uint32_t hi4)
{
    uint32_t t;
    __asm__("ssub8 %[t], %[p], %[lo]\n\t"
            "sel %[p], %[p], %[lo]\n\t"
            "ssub8 %[t], %[hi], %[p]\n\t"
            "sel %[p], %[p], %[hi]"
            : [p] "+r"(p), [t] "=&r"(t) : [lo] "r"(lo4), [hi] "r"(hi4) : "cc");
    return p;
}

/* Four int8-range values (v0..v3 in [-128, 127]) as the bytes of one word,
 * v0 lowest, clamped byte-wise to [lo, hi] (SSUB8 + SEL twice). */
TML_INLINE uint32_t tml_pack4_s8(int32_t v0, int32_t v1, int32_t v2, int32_t v3, int32_t lo, int32_t hi)
{
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    const uint32_t p02 = ((uint32_t)v0 & 0xffffu) | ((uint32_t)v2 << 16);
    const uint32_t p13 = ((uint32_t)v1 & 0xffffu) | ((uint32_t)v3 << 16);
    return tml_clamp4_s8(__uxtb16(p02) | (__uxtb16(p13) << 8), lo4, hi4);
}
#endif

/* Four requantized channels (+ offset, clamped to [lo, hi]) as the bytes of
 * one word, in memory order: with the Arm DSP extension the clamp is two
 * byte-wise max/min (SSUB8 + SEL) on the packed word. */
TML_INLINE void tml_out4_s8(int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                            const int32_t *m, const int8_t *s, int32_t off, int32_t lo, int32_t hi)
{
#if TML_HAVE_DSP && defined(__arm__) && defined(__GNUC__)
#if TML_OPT_SPEED
    uint32_t sw;
    memcpy(&sw, s, 4);
    if ((sw & 0x80808080u) == 0x80808080u) {   /* all four shifts negative: e1 = ~shift */
        const uint32_t ne = ~sw;
        const int32_t e0 = (int32_t)(ne & 0xffu), e1 = (int32_t)((ne >> 8) & 0xffu);
        const int32_t e2 = (int32_t)((ne >> 16) & 0xffu), e3 = (int32_t)(ne >> 24);
        const int32_t w0 = __ssat(tml_requant_neg_s8(a0, TML_RD32(m), (int32_t)1 << e0, e0) + off, 8);
        const int32_t w1 = __ssat(tml_requant_neg_s8(a1, TML_RD32(m + 1), (int32_t)1 << e1, e1) + off, 8);
        const int32_t w2 = __ssat(tml_requant_neg_s8(a2, TML_RD32(m + 2), (int32_t)1 << e2, e2) + off, 8);
        const int32_t w3 = __ssat(tml_requant_neg_s8(a3, TML_RD32(m + 3), (int32_t)1 << e3, e3) + off, 8);
        const uint32_t pw = tml_pack4_s8(w0, w1, w2, w3, lo, hi);
        memcpy(o, &pw, 4);
        return;
    }
#endif
    const int32_t v0 = __ssat(tml_requant_s8(a0, TML_RD32(m), TML_RD8(s)) + off, 8);
    const int32_t v1 = __ssat(tml_requant_s8(a1, TML_RD32(m + 1), TML_RD8(s + 1)) + off, 8);
    const int32_t v2 = __ssat(tml_requant_s8(a2, TML_RD32(m + 2), TML_RD8(s + 2)) + off, 8);
    const int32_t v3 = __ssat(tml_requant_s8(a3, TML_RD32(m + 3), TML_RD8(s + 3)) + off, 8);
    const uint32_t p = tml_pack4_s8(v0, v1, v2, v3, lo, hi);
    memcpy(o, &p, 4);
#else
    o[0] = tml_out_s8(a0, TML_RD32(m), TML_RD8(s), off, lo, hi);
    o[1] = tml_out_s8(a1, TML_RD32(m + 1), TML_RD8(s + 1), off, lo, hi);
    o[2] = tml_out_s8(a2, TML_RD32(m + 2), TML_RD8(s + 2), off, lo, hi);
    o[3] = tml_out_s8(a3, TML_RD32(m + 3), TML_RD8(s + 3), off, lo, hi);
#endif
}

#if TML_ARM_FAST || TML_RV32
/* Speed builds: a shorter exact requantize for layers whose accumulators are
 * known to satisfy |acc| < 2^30 and whose shifts are all in [-20, -1].
 * With e = -shift, e1 = e - 1 and p = acc * m, the result before the clamp is
 * floor((2p + 2^31 + 2^32 * (2^e1 - [acc<0])) / 2^(32+e)) (tml_requant_neg_s8
 * doubled), and SMMLAR(2 acc, m, Ra) = floor((Ra * 2^32 + 2p + 2^31) / 2^32)
 * gives it with Ra = 2^e1 - [acc<0]. The output offset is folded into Ra as
 * off * 2^e (exact: a multiple of 2^e), so Ra = R - [acc<0] with
 * R = (2 off + 1) << e1 per channel, and the final shift by e is an ASR by e1
 * then SSAT's own ASR #1. All intermediates stay below 2^31 in magnitude:
 * |SRDHM| <= |acc| < 2^30 and |R| < 2^28. */

/* Whether a layer qualifies: shifts in [-20, -1] and |bias_fold| + K * 2^14
 * < 2^30 (|x * w| <= 2^14 per tap for int8 x and w). */
TML_INLINE int tml_rqx_ok(const int32_t *bf, const int8_t *sh, int32_t n, int32_t K)
{
    if (K <= 0 || K >= 65536) return 0;
    const uint32_t lim = (uint32_t)1 << 30, span = (uint32_t)K << 14;
    for (int32_t c = 0; c < n; ++c) {
        const int32_t s = sh[c], b = bf[c];
        const uint32_t ab = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
        if (s > -1 || s < -20 || ab >= lim - span) return 0;
    }
    return 1;
}

#if TML_RV32
/* RV32: the same in C, before the clamp (the offset included): e = -shift,
 * R = (2 off + 1) << (e - 1). floor((2p + 2^31) / 2^32) is the high word of
 * 2 acc * m plus the low word's top bit (MUL, MULH, SRLI, ADD), then
 * + R - [acc<0] and the arithmetic shift by e: 9 instructions. */
TML_INLINE int32_t tml_rqx_rv(int32_t acc, int32_t m, int32_t R, int32_t e)
{
    const int32_t x2 = (int32_t)((uint32_t)acc << 1);
    const int64_t p = (int64_t)x2 * m;
    const int32_t hi = (int32_t)(uint32_t)((uint64_t)p >> 32) + (int32_t)((uint32_t)p >> 31);
    return (hi + R + (x2 >> 31)) >> e;
}

/* R of tml_rqx_rv for a channel with shift sh in [-20, -1]. */
TML_INLINE int32_t tml_rqx_rv_r(int32_t off, int sh)
{
    return (int32_t)((uint32_t)(2 * off + 1) << (-sh - 1));
}

/* acc -> int8 output: tml_rqx_rv where the layer qualifies (fast: tml_rqx_ok,
 * R, e = -sh), else tml_requant_s8 + off; clamped to [lo, hi]. */
TML_INLINE int8_t tml_out_rv(int32_t acc, int fast, int32_t m, int sh, int32_t R, int32_t off, int32_t lo,
                             int32_t hi)
{
    int32_t v = fast ? tml_rqx_rv(acc, m, R, -sh) : tml_requant_s8(acc, m, sh) + off;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}
#endif

#if TML_ARM_FAST
/* One output: acc -> int8 (saturated, offset included); R = (2 off + 1) << e1,
 * e1 = -shift - 1 (tml_rqx_ok must hold for the layer). */
TML_INLINE int32_t tml_rqx_s8(int32_t acc, int32_t m, int32_t R, int32_t e1)
{
    const int32_t x2 = (int32_t)((uint32_t)acc << 1);
    int32_t hi, r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(hi) : "r"(x2), "r"(m), "r"(R + (x2 >> 31)));
    hi >>= e1;
    __asm__("ssat %0, #8, %1, asr #1" : "=r"(r) : "r"(hi));
    return r;
}
#endif
#endif

#endif /* TML_DOT_S8_H */
