/* tml_log_softmax_s8.c - int8 LOG_SOFTMAX over the last dimension (output
 * scale 16/256, zero point 127), TFLite's fixed-point algorithm: exp of the
 * differences to the row maximum (rescaled to Q5) summed in Q12, log of the sum
 * in Q5, and each output the difference minus that log, rescaled to Q4 and
 * offset by 127. Differences too negative to be represented after the
 * subtraction give -128. No float at run time. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

#define LOG_IN_BITS 12      /* the sum of exps: Q12 */
#define LOG_ACC_BITS 6      /* the log is accumulated with one bit over its Q5 result */

/* gemmlowp's SaturatingRoundingMultiplyByPOTParam: x * 2^e, saturating or rounding. */
static int32_t mul_pot(int32_t x, int e)
{
    if (e == 0) return x;
    return e > 0 ? tml_sat_shl(x, e) : tml_rdbpot(x, -e);
}

static int32_t add_sat(int32_t a, int32_t b)
{
    int64_t s = (int64_t)a + (int64_t)b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

/* int32 + and - wrapping as gemmlowp's raw arithmetic does (unsigned: no overflow UB) */
static int32_t wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t wrap_sub(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* log(x) of x >= 1 given in Q12, result in Q5: TFLite's
 * log_x_for_x_greater_than_or_equal_to_1<5>, a range reduction to [sqrt(1/2), 1]
 * by powers of two (two candidates, 1/4 apart in log2) and a rational
 * approximation of the remaining log there. */
static int32_t log_q12_to_q5(int32_t z)
{
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
    const int32_t quarter_acc = (int32_t)1 << (29 - LOG_ACC_BITS);      /* 1/4 in Q6 */
    int za_lz = tml_clz32((uint32_t)z);
    int32_t r_a = mul_pot(tml_srdhm(mul_pot(z, za_lz - 1), sqrt_half), 1);
    int32_t pow_a = add_sat(mul_pot(LOG_IN_BITS - za_lz, 31 - LOG_ACC_BITS), quarter_acc);
    int zb_lz = tml_clz32((uint32_t)tml_srdhm(z, sqrt_half)) - 1;
    int32_t r_b = mul_pot(z, zb_lz);
    int32_t pow_b = add_sat(mul_pot(LOG_IN_BITS - zb_lz, 31 - LOG_ACC_BITS), -quarter_acc);
    int32_t r = r_a < r_b ? r_a : r_b;
    int32_t pow2 = pow_a > pow_b ? pow_a : pow_b;

    int64_t half_sum = (int64_t)r + sqrt_sqrt_half;
    int32_t p = (int32_t)((half_sum + (half_sum >= 0 ? 1 : -1)) / 2);
    int32_t q = wrap_sub(r, sqrt_sqrt_half);
    q = wrap_add(q, q);
    int32_t q_sq = tml_srdhm(q, q);
    int32_t num = wrap_add(tml_srdhm(q, r), tml_srdhm(tml_srdhm(q, q_sq), alpha_n));
    int32_t den = wrap_add(wrap_add(alpha_i, q), tml_srdhm(alpha_d, q_sq));
    int32_t den_minus_one = wrap_add(tml_srdhm(p, den), tml_srdhm(alpha_f, q));
    int32_t recip = tml_fx_one_over_one_plus_x(den_minus_one);
    int32_t acc = wrap_add(tml_srdhm(pow2, log_2), tml_srdhm(mul_pot(num, -LOG_ACC_BITS), recip));
    return mul_pot(acc, LOG_ACC_BITS - 5);
}

void tml_log_softmax_s8(const tml_log_softmax_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_log_softmax_s8_t, src);
    const int32_t depth = P->depth;
    for (int32_t r = 0; r < (int32_t)P->outer; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t max = -128;
        for (int32_t c = 0; c < depth; ++c) if (x[c] > max) max = x[c];
        /* Q12: exp(0) is 2^19, so depth <= 4,095 (the lowering's limit) cannot overflow */
        uint32_t sum = 0;
        for (int32_t c = 0; c < depth; ++c) {
            int32_t d = x[c] - max;
            if (d >= P->diff_min) {
                int32_t d5 = tml_requant(d, P->input_mult, P->input_left_shift);
                sum += (uint32_t)tml_rdbpot(tml_fx_exp_on_negative(d5, 5), 12);
            }
        }
        int32_t log_sum = log_q12_to_q5((int32_t)sum);
        /* The most negative Q5 value that survives subtracting log_sum, back in input units. */
        int32_t limit = tml_requant(wrap_add(log_sum, INT32_MIN), P->rev_mult, P->rev_shift);
        if (limit < P->diff_min - 1) limit = P->diff_min - 1;
        for (int32_t c = 0; c < depth; ++c) {
            int32_t d = x[c] - max;
            int32_t v = -128;
            if (d > limit) {
                int32_t d5 = tml_requant(d, P->input_mult, P->input_left_shift);
                v = tml_rdbpot(wrap_sub(d5, log_sum), 31 - 5 - 4) + 127;
                if (v < -128) v = -128;
                if (v > 127) v = 127;
            }
            y[c] = (int8_t)v;
        }
    }
}
