/* tml_lstm_s8.c - int8 UNIDIRECTIONAL_SEQUENCE_LSTM: see tml_kernels.h. TFLite Micro's integer
 * LSTM (its 8x8->16 path), reproduced bit for bit with integer arithmetic only: each gate is two
 * int16-saturated products, added with saturation, then the int16 LUT logistic or tanh. Every
 * step after the products is element-wise, so one unit is finished before the next starts and
 * the kernel needs no scratch: a step writes its new h to its row of y, copied into h once every
 * unit has read the old h (TFLite Micro writes h and copies it to y, the same bytes). */
#include "tml_speed.h"   /* first: -O2 for this file in -Os builds */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"
#include "tml_dot_s8.h"

/* sigmoid(i/24) in 0.16, each entry raised by half its segment's midpoint chord error, the last
 * 65535: quant.sigmoid_lut_q16() computes it (the formula is the one TFLite's integer kernels'
 * table follows). The logistic and tanh below interpolate it; tanh(x) = 2 sigmoid(2x) - 1. */
static const uint16_t tml_sig_lut[256] TML_CONST = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535
};

static uint32_t tml_lut(uint32_t i)
{
    return (uint16_t)TML_RD16(tml_sig_lut + i);
}

static int16_t tml_sat16(int32_t v)
{
    return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}

/* Logistic of a Q3.12 value (its x3 scaling done by the caller): Q0.15. */
static int16_t tml_sigmoid16(int32_t v)
{
    const uint32_t a = (uint32_t)(v < 0 ? -v : v), hi = a >> 9;
    uint32_t r;
    if (hi >= 255u) {
        r = (uint32_t)0x7FFF << 10;
    } else {
        const uint32_t lo = tml_lut(hi), up = tml_lut(hi + 1u);
        r = (lo << 9) + (a & 0x1FFu) * (up - lo);
    }
    r = v >= 0 ? r + ((uint32_t)1 << 9) : ((uint32_t)1 << 25) - r + ((uint32_t)1 << 9) - 1u;
    return (int16_t)(r >> 10);
}

/* Tanh of a value already scaled to the LUT's input (x3 and the format's shift): Q0.15. */
static int16_t tml_tanh16(int32_t v)
{
    const uint32_t a = (uint32_t)(v < 0 ? -v : v), hi = a >> 8;
    int32_t r;
    if (hi >= 255u) {
        r = (int32_t)((uint32_t)0xFFFF << 8);
    } else {
        const uint32_t lo = tml_lut(hi), up = tml_lut(hi + 1u);
        r = (int32_t)((lo << 8) + (a & 0xFFu) * (up - lo));
    }
    r = v >= 0 ? r - ((int32_t)1 << 23) + ((int32_t)1 << 7) : -r + ((int32_t)1 << 23) + ((int32_t)1 << 7) - 1;
    return (int16_t)(r >> 8);
}

/* Gate q of a unit (0 input, 1 forget, 2 cell: tanh, 3 output) from its input product a and
 * recurrent product b: each requantized to int16 with saturation, added with saturation. */
static int16_t tml_lstm_gate_s8(const tml_lstm_s8_t *P, int32_t q, int32_t a, int32_t b)
{
    const int32_t s = (int32_t)tml_sat16(tml_requant(a, P->mult[q], P->shift[q]))
                      + tml_sat16(tml_requant(b, P->mult[4 + q], P->shift[4 + q]));
    return q == 2 ? tml_tanh16(3 * (int32_t)tml_sat16(s)) : tml_sigmoid16(3 * (int32_t)tml_sat16(s));
}

/* The cell state scaled to tanh's input: x 3 << shift, or (x 3) >> -shift rounded. */
static int32_t tml_cell_to_tanh(int32_t c, int32_t shift)
{
    if (shift >= 0) return c * ((int32_t)3 << shift);
    return (c * 3 + ((int32_t)1 << (-shift - 1))) >> -shift;
}

static void tml_lstm_unit_s8(const tml_lstm_s8_t *P, int32_t u, const int8_t *xt, const int8_t *hb, int16_t *cb,
                             int8_t *yt)
{
    const int32_t nf = P->features, nu = P->units;
    int32_t a[4], r[4];
    for (int32_t q = 0; q < 4; ++q) {
        a[q] = TML_RD32(P->fold + q * nu + u);
        r[q] = TML_RD32(P->fold + 4 * nu + q * nu + u);
    }
    const int8_t *w = P->w + u * nf, *rw = P->r + u * nu;     /* gate q's rows: q * nu rows on */
    tml_dot4_s8(xt, w, w + nu * nf, w + 2 * nu * nf, w + 3 * nu * nf, nf, a);
    tml_dot4_s8(hb, rw, rw + nu * nu, rw + 2 * nu * nu, rw + 3 * nu * nu, nu, r);
    const int32_t ig = tml_lstm_gate_s8(P, 0, a[0], r[0]), fg = tml_lstm_gate_s8(P, 1, a[1], r[1]);
    const int32_t cg = tml_lstm_gate_s8(P, 2, a[2], r[2]), og = tml_lstm_gate_s8(P, 3, a[3], r[3]);
    const int32_t kept = tml_sat16(tml_requant(fg * cb[u], P->mult[8], P->shift[8]));
    const int32_t added = tml_sat16(tml_requant(ig * cg, P->mult[9], P->shift[9]));
    int16_t cell = tml_sat16(kept + added);
    if (P->has_clip) {
        if (cell > P->cell_clip) cell = P->cell_clip;
        if (cell < -P->cell_clip) cell = (int16_t)-P->cell_clip;
    }
    cb[u] = cell;
    const int32_t t = tml_tanh16(tml_cell_to_tanh(cell, P->tanh_shift));
    int32_t v = tml_requant(t * og, P->mult[10], P->shift[10]) + P->hidden_zp;
    yt[u] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
}

void tml_lstm_s8(const tml_lstm_s8_t *src, const int8_t *x, const int8_t *h0, const int16_t *c0, int8_t *y,
                 int8_t *h, int16_t *c)
{
    TML_LOAD_PARAMS(tml_lstm_s8_t, src);
    const int32_t nb = P->batches, nt = P->steps, nu = P->units;
    for (int32_t b = 0; b < nb; ++b) {
        int8_t *hb = h + b * nu;
        int16_t *cb = c + b * nu;
        for (int32_t u = 0; u < nu; ++u) {
            hb[u] = h0[b * nu + u];
            cb[u] = c0[b * nu + u];
        }
        for (int32_t s = 0; s < nt; ++s) {
            const int32_t row = tml_lstm_row(s, b, nt, nb, P->reverse, P->time_major);
            int8_t *yt = y + row * nu;
            for (int32_t u = 0; u < nu; ++u) tml_lstm_unit_s8(P, u, x + row * (int32_t)P->features, hb, cb, yt);
            for (int32_t u = 0; u < nu; ++u) hb[u] = yt[u];
        }
    }
}
