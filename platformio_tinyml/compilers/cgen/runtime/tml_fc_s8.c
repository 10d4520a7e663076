/* tml_fc_s8.c - int8 FULLY_CONNECTED (symmetric weights), TFLite semantics.
 * The input offset term is folded into bias_fold at compile time. Four
 * output rows per pass over the input, so every input word is loaded (and,
 * with the Arm DSP extension, sign-extended) once for four rows (ARMv6-M:
 * tml_v6m_rows4, Thumb-1 asm). */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"
#include "tml_dot_s8.h"

#if TML_RV32
/* RV32: the four rows four inputs a step (each input byte loaded once for
 * the four rows), then the rest one at a time. */
static TML_NOINLINE TML_RV_NOSCHED void rows4_rv32(const int8_t *x, const int8_t *w, int32_t n, int32_t *a)
{
    const int8_t *w0 = w, *w1 = w + n, *w2 = w1 + n, *w3 = w2 + n, *const x4 = x + (n & ~(int32_t)3), *const xe = x + n;
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#define TML_RV_FC(j)                                                         \
    {                                                                        \
        const int32_t xi = x[j];                                             \
        a0 += xi * TML_RD8(w0 + (j));                                        \
        a1 += xi * TML_RD8(w1 + (j));                                        \
        a2 += xi * TML_RD8(w2 + (j));                                        \
        a3 += xi * TML_RD8(w3 + (j));                                        \
    }
    for (; x != x4; x += 4, w0 += 4, w1 += 4, w2 += 4, w3 += 4) {
        TML_RV_FC(0) TML_RV_FC(1) TML_RV_FC(2) TML_RV_FC(3)
    }
    for (; x != xe; ++x, ++w0, ++w1, ++w2, ++w3) TML_RV_FC(0)
#undef TML_RV_FC
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
}
#endif

static void rows4(const int8_t *x, const int8_t *w, int32_t n, int32_t *a)
{
#if TML_V6M
    tml_v6m_rows4(x, w, n, a);
#elif TML_RV32
    rows4_rv32(x, w, n, a);
#else
    tml_dot4_s8(x, w, w + n, w + 2 * n, w + 3 * n, n, a);
#endif
}

static int32_t row1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if TML_HAVE_DSP
    for (; i + 4 <= n; i += 4) {
        const int32_t xv = tml_ld4(x + i), u = tml_ld4(w + i);
        acc = __smlad(__sxtb16(xv), __sxtb16(u), acc);
        acc = __smlad(tml_sxtb16_ror8((xv)), tml_sxtb16_ror8((u)), acc);
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

#if TML_HOST_STACK > 0
/* Wide hosts: the input sign-extended once to int16, then k <= 4 rows per
 * pass as int16 x int8 dot products, which gcc/clang -O3 turn into
 * multiply-add vector instructions (pmaddwd on x86-64). */
static void rows_x16(const int16_t *xs, const int8_t *w, int32_t n, int32_t k, int32_t *a)
{
    if (k == 4) {
        const int8_t *w0 = w, *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n;
        int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        for (int32_t i = 0; i < n; ++i) {
            const int16_t xi = xs[i];
            a0 += xi * (int16_t)w0[i];
            a1 += xi * (int16_t)w1[i];
            a2 += xi * (int16_t)w2[i];
            a3 += xi * (int16_t)w3[i];
        }
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
        return;
    }
    for (int32_t j = 0; j < k; ++j, w += n) {
        int32_t acc = a[j];
        for (int32_t i = 0; i < n; ++i) acc += xs[i] * (int16_t)w[i];
        a[j] = acc;
    }
}
#endif

void tml_fc_s8(const tml_fc_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_fc_s8_t, src);
#if TML_HOST_STACK > 0
    if (2 * (int32_t)P->in_features <= TML_HOST_STACK) {
        int16_t xs[TML_HOST_STACK / 2];
        const int32_t n_in = P->in_features, n_out = P->out_features;
        for (int32_t b = 0; b < P->batches; ++b) {
            const int8_t *x = in + b * n_in;
            int8_t *y = out + b * n_out;
            for (int32_t i = 0; i < n_in; ++i) xs[i] = x[i];
            for (int32_t o = 0; o < n_out; o += 4) {
                const int32_t k = n_out - o >= 4 ? 4 : n_out - o;
                int32_t a[4];
                for (int32_t j = 0; j < k; ++j) a[j] = P->bias_fold[o + j];
                rows_x16(xs, P->weights + o * n_in, n_in, k, a);
                for (int32_t j = 0; j < k; ++j) {
                    const int32_t m = P->per_channel ? P->mults[o + j] : P->mult;
                    const int s = P->per_channel ? P->shifts[o + j] : P->shift;
                    y[o + j] = tml_out_s8(a[j], m, s, P->out_offset, P->act_min, P->act_max);
                }
            }
        }
        return;
    }
#endif
    const int32_t n_in = P->in_features, n_out = P->out_features;
    for (int32_t b = 0; b < P->batches; ++b) {
        const int8_t *x = in + b * n_in;
        int8_t *y = out + b * n_out;
        int32_t o = 0;
        while (o < n_out) {
            int32_t a[4];
            const int32_t k = n_out - o >= 4 ? 4 : 1;
            for (int32_t j = 0; j < k; ++j) a[j] = TML_RD32(P->bias_fold + o + j);
            if (k == 4)
                rows4(x, P->weights + o * n_in, n_in, a);
            else
                a[0] = row1(x, P->weights + o * n_in, n_in, a[0]);
            for (int32_t j = 0; j < k; ++j) {
                const int32_t m = P->per_channel ? TML_RD32(P->mults + o + j) : P->mult;
                const int s = P->per_channel ? TML_RD8(P->shifts + o + j) : P->shift;
                y[o + j] = tml_out_s8(a[j], m, s, P->out_offset, P->act_min, P->act_max);
            }
            o += k;
        }
    }
}
