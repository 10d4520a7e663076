/* tml_fc_s8.c - int8 FULLY_CONNECTED (symmetric weights), TFLite semantics.
 * The input offset term is folded into bias_fold at compile time. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

void tml_fc_s8(const tml_fc_s8_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_fc_s8_t, src);
    const int32_t n_in = P->in_features, n_out = P->out_features;
    for (int32_t b = 0; b < P->batches; ++b) {
        const int8_t *x = in + b * n_in;
        for (int32_t o = 0; o < n_out; ++o) {
            const int8_t *w = P->weights + o * n_in;
            int32_t acc = TML_RD32(P->bias_fold + o);
            int32_t i = 0;
#if TML_HAVE_DSP
            for (; i + 4 <= n_in; i += 4) {
                int32_t xw, ww;
                memcpy(&xw, x + i, 4);
                memcpy(&ww, w + i, 4);
                acc = __smlad(__sxtb16(xw), __sxtb16(ww), acc);
                acc = __smlad(__sxtb16(__ror(xw, 8)), __sxtb16(__ror(ww, 8)), acc);
            }
#endif
            for (; i < n_in; ++i) acc += (int32_t)x[i] * TML_RD8(w + i);
            if (P->per_channel)
                acc = tml_requant(acc, TML_RD32(P->mults + o), TML_RD8(P->shifts + o));
            else
                acc = tml_requant(acc, P->mult, P->shift);
            acc += P->out_offset;
            if (acc < P->act_min) acc = P->act_min;
            if (acc > P->act_max) acc = P->act_max;
            out[b * n_out + o] = (int8_t)acc;
        }
    }
}
