/* tml_fixedpoint.c - Q-format transcendental functions with the exact
 * semantics of gemmlowp's fixed-point library, which TFLite's integer
 * SOFTMAX, LOGISTIC and TANH kernels are built on.
 *
 * A value in "Qi" has i integer bits and 31-i fractional bits in an int32.
 * Products of Qa and Qb values are Q(a+b) (tml_srdhm).
 */
#include "tml_fixedpoint.h"

#define Q_ONE(ib) ((int32_t)1 << (31 - (ib)))   /* 1.0 in Qib, ib >= 1 */

/* Rescale a raw value from Q(src) to Q(dst). */
static int32_t rescale(int32_t x, int src, int dst)
{
    int e = src - dst;
    return e >= 0 ? tml_sat_shl(x, e) : tml_rdbpot(x, -e);
}

/* (a + b) / 2 rounded, without overflow. */
static int32_t rounding_half_sum(int32_t a, int32_t b)
{
    int64_t sum = (int64_t)a + (int64_t)b;
    int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0. */
static int32_t exp_on_interval(int32_t a)
{
    const int32_t constant_term = 1895147668;      /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    int32_t x = a + ((int32_t)1 << 28);            /* a + 1/8 */
    int32_t x2 = tml_srdhm(x, x);
    int32_t x3 = tml_srdhm(x2, x);
    int32_t x4 = tml_srdhm(x2, x2);
    int32_t x4_over_4 = tml_rdbpot(x4, 2);
    int32_t poly = tml_rdbpot(tml_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tml_srdhm(constant_term, x + poly);
}

int32_t tml_fx_exp_on_negative(int32_t a, int integer_bits)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535, 720401, 242};
    const int frac_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    int32_t mask = one_quarter - 1;
    int32_t a_mod_q_minus_q = (a & mask) - one_quarter;
    int32_t result = exp_on_interval(rescale(a_mod_q_minus_q, integer_bits, 0));
    int32_t remainder = a_mod_q_minus_q - a;
    for (int k = 0; k < 7; ++k) {
        int exponent = k - 2;
        if (integer_bits > exponent && (remainder & ((int32_t)1 << (frac_bits + exponent))))
            result = tml_srdhm(result, barrel[k]);
    }
    if (integer_bits > 5) {
        int32_t clamp = -((int32_t)1 << (36 - integer_bits));   /* -32.0 */
        if (a < clamp) result = 0;
    }
    return a == 0 ? INT32_MAX : result;
}

/* Newton-Raphson for 1/(1+a), a in [0,1) as Q0; returns 2/(1+a) ... as Q2. */
static int32_t two_over_one_plus_x(int32_t a)
{
    int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;   /* Q2 */
    int32_t x = c48_17 + tml_srdhm(half_denominator, cneg32_17);
    for (int i = 0; i < 3; ++i) {
        int32_t hd_x = tml_srdhm(half_denominator, x);                  /* Q2 */
        int32_t one_minus = Q_ONE(2) - hd_x;                            /* Q2 */
        /* Wraps (as gemmlowp's int32 '+' does in TFLite) only for a = -1, a
         * SOFTMAX sum that wrapped to 0; unsigned: no overflow UB. */
        x = (int32_t)((uint32_t)x + (uint32_t)rescale(tml_srdhm(x, one_minus), 4, 2));
    }
    return x;
}

int32_t tml_fx_one_over_one_plus_x(int32_t a)
{
    /* x/2 reinterpreted as Q1, then rescaled to Q0. */
    return rescale(two_over_one_plus_x(a), 1, 0);
}

int32_t tml_fx_one_minus_x_over_one_plus_x(int32_t a)
{
    return rescale(two_over_one_plus_x(a) - Q_ONE(2), 2, 0);
}

int32_t tml_fx_logistic(int32_t a, int integer_bits)
{
    if (a == 0) return (int32_t)1 << 30;   /* 1/2 */
    int32_t abs_a = a > 0 ? a : -a;
    int32_t pos = tml_fx_one_over_one_plus_x(tml_fx_exp_on_negative(-abs_a, integer_bits));
    return a > 0 ? pos : INT32_MAX - pos;
}

int32_t tml_fx_tanh(int32_t a, int integer_bits)
{
    if (a == 0) return 0;
    int32_t n = a < 0 ? a : -a;
    /* exp(2n): doubling reinterprets the raw value with one more integer bit. */
    int32_t t = tml_fx_one_minus_x_over_one_plus_x(tml_fx_exp_on_negative(n, integer_bits + 1));
    return a < 0 ? -t : t;
}
