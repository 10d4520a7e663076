/* tml_lstm.c - float32 UNIDIRECTIONAL_SEQUENCE_LSTM: see tml_kernels.h. Sums in TFLite
 * Micro's order: the input product (k ascending) plus the bias, then the recurrent
 * product added to it; the cell update as f*c first, then + i*g. No scratch: a step
 * writes its new h to its row of y, copied into h once every unit has read the old h. */
#include "tml_kernels.h"
#include <math.h>

/* sum_k v[k] * w[k] over n values, w constant (TML_RDF). */
static float tml_lstm_dot(const float *w, const float *v, int32_t n)
{
    float acc = 0.0f;
    for (int32_t k = 0; k < n; ++k) acc += v[k] * TML_RDF(w + k);
    return acc;
}

/* Gate row q (0 .. 4U-1): (W[q] x + bias[q]) + R[q] h. */
static float tml_lstm_gate(const tml_lstm_f32_t *P, int32_t q, const float *x, const float *h)
{
    const float in = tml_lstm_dot(P->w + q * (int32_t)P->features, x, P->features) + TML_RDF(P->bias + q);
    return in + tml_lstm_dot(P->r + q * (int32_t)P->units, h, P->units);
}

void tml_lstm_f32(const tml_lstm_f32_t *src, const float *x, const float *h0, const float *c0, float *y,
                  float *h, float *c)
{
    TML_LOAD_PARAMS(tml_lstm_f32_t, src);
    const int32_t nb = P->batches, nt = P->steps, nu = P->units;
    for (int32_t b = 0; b < nb; ++b) {
        float *hb = h + b * nu, *cb = c + b * nu;
        for (int32_t u = 0; u < nu; ++u) {
            hb[u] = h0[b * nu + u];
            cb[u] = c0[b * nu + u];
        }
        for (int32_t s = 0; s < nt; ++s) {
            const int32_t row = tml_lstm_row(s, b, nt, nb, P->reverse, P->time_major);
            const float *xt = x + row * (int32_t)P->features;
            float *yt = y + row * nu;
            for (int32_t u = 0; u < nu; ++u) {
                const float ig = tml_logisticf(tml_lstm_gate(P, u, xt, hb));
                const float fg = tml_logisticf(tml_lstm_gate(P, nu + u, xt, hb));
                const float cg = tanhf(tml_lstm_gate(P, 2 * nu + u, xt, hb));
                const float og = tml_logisticf(tml_lstm_gate(P, 3 * nu + u, xt, hb));
                float cell = fg * cb[u];
                cell += ig * cg;
                if (P->cell_clip > 0.0f) {
                    if (cell > P->cell_clip) cell = P->cell_clip;
                    if (cell < -P->cell_clip) cell = -P->cell_clip;
                }
                cb[u] = cell;
                yt[u] = tanhf(cell) * og;
            }
            for (int32_t u = 0; u < nu; ++u) hb[u] = yt[u];
        }
    }
}
