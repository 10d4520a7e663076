/* tml_more.c - kernels of TFLite builtins without an IR kind (cgen/lower_more.py):
 * CAST between int8, uint8, int16, int32, float32 and bool as C converts (TFLite
 * Micro's static_cast: float to integer truncates toward zero, integers narrow
 * by wrapping, anything to bool is "nonzero"); int8 ADD_N; GATHER_ND and
 * EMBEDDING_LOOKUP with run-time indices; CUMSUM; DYNAMIC_UPDATE_SLICE; int8 SVDF. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

static int32_t load_int(const uint8_t *x, uint8_t type, uint32_t i)
{
    switch (type) {
    case TML_T_INT8: return ((const int8_t *)x)[i];
    case TML_T_INT16: return ((const int16_t *)x)[i];
    case TML_T_INT32: return ((const int32_t *)x)[i];
    default: return ((const uint8_t *)x)[i];       /* uint8, bool */
    }
}

/* Element i of out, of type 'type', from integer v. */
static void store_int(void *out, uint8_t type, uint32_t i, int32_t v)
{
    switch (type) {
    case TML_T_INT8: ((int8_t *)out)[i] = (int8_t)v; break;
    case TML_T_UINT8: ((uint8_t *)out)[i] = (uint8_t)v; break;
    case TML_T_INT16: ((int16_t *)out)[i] = (int16_t)v; break;
    case TML_T_INT32: ((int32_t *)out)[i] = v; break;
    case TML_T_FLOAT32: ((float *)out)[i] = (float)v; break;
    default: ((uint8_t *)out)[i] = (uint8_t)(v != 0); break;
    }
}

void tml_cast(const tml_cast_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_cast_t, src);
    const uint8_t *x = (const uint8_t *)in;
    for (uint32_t i = 0; i < P->n; ++i) {
        if (P->from != TML_T_FLOAT32) {
            store_int(out, P->to, i, load_int(x, P->from, i));
            continue;
        }
        const float f = ((const float *)x)[i];
        if (P->to == TML_T_FLOAT32) ((float *)out)[i] = f;
        else if (P->to == TML_T_BOOL) ((uint8_t *)out)[i] = (uint8_t)(f != 0.0f);
        else store_int(out, P->to, i, (int32_t)f);   /* truncation toward zero, then narrowing */
    }
}

/* An int8 input code rescaled with 20 bits of headroom (TFLite's ADD_N / CUMSUM). */
static int32_t lift(int32_t offset, int32_t mult, int shift, int32_t code)
{
    return tml_requant((offset + code) * ((int32_t)1 << 20), mult, shift);
}

static int8_t to_s8(int32_t scaled, int32_t mult, int shift, int32_t offset)
{
    const int32_t v = tml_requant(scaled, mult, shift) + offset;
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

void tml_add_n_s8(const tml_add_n_s8_t *src, const int8_t *const *ins, int8_t *out)
{
    TML_LOAD_PARAMS(tml_add_n_s8_t, src);
    /* TFLite Micro starts the sum from the rescaled input offset, not from 0 */
    const int32_t start = lift(P->in_offset, P->in_mult, P->in_shift, 0);
    for (uint32_t i = 0; i < P->count; ++i) {
        int32_t acc = start;
        for (uint32_t k = 0; k < P->n; ++k) acc += lift(P->in_offset, P->in_mult, P->in_shift, ins[k][i]);
        out[i] = to_s8(acc, P->out_mult, P->out_shift, P->out_offset);
    }
}

/* Element index of step d of the scan at (o, i). */
#define TML_SCAN_AT(P, o, i, d) \
    (((o) * (P)->count + ((P)->reverse ? (P)->count - 1u - (d) : (d))) * (P)->inner + (i))

void tml_cumsum_f32(const tml_cumsum_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_cumsum_t, src);
    for (uint32_t o = 0; o < P->outer; ++o)
        for (uint32_t i = 0; i < P->inner; ++i) {
            float acc = 0.0f;
            for (uint32_t d = 0; d < P->count; ++d) {
                const uint32_t k = TML_SCAN_AT(P, o, i, d);
                const float v = in[k];
                if (P->exclusive) {
                    out[k] = acc;
                    acc += v;
                } else {
                    acc += v;
                    out[k] = acc;
                }
            }
        }
}

void tml_cumsum_s8(const tml_cumsum_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_cumsum_t, src);
    const int32_t start = lift(P->in_offset, P->in_mult, P->in_shift, 0);   /* as ADD_N */
    for (uint32_t o = 0; o < P->outer; ++o)
        for (uint32_t i = 0; i < P->inner; ++i) {
            int32_t acc = start;
            for (uint32_t d = 0; d < P->count; ++d) {
                const uint32_t k = TML_SCAN_AT(P, o, i, d);
                const int32_t v = lift(P->in_offset, P->in_mult, P->in_shift, in[k]);
                const int32_t before = acc;
                acc += v;
                out[k] = to_s8(P->exclusive ? before : acc, P->out_mult, P->out_shift, P->out_offset);
            }
        }
}

void tml_gather_nd(const tml_gather_nd_t *src, const void *params, const int32_t *idx, void *out)
{
    TML_LOAD_PARAMS(tml_gather_nd_t, src);
    const uint8_t *x = (const uint8_t *)params;
    uint8_t *y = (uint8_t *)out;
    const uint32_t bytes = P->slice * (P->scale != 0.0f ? 4u : P->elem);
    for (uint32_t i = 0; i < P->n; ++i, idx += P->depth, y += bytes) {
        uint32_t from = 0;
        int inside = 1;
        for (uint32_t k = 0; k < P->depth; ++k) {
            if (idx[k] < 0 || (uint32_t)idx[k] >= P->dims[k]) inside = 0;
            else from += (uint32_t)idx[k] * P->step[k];
        }
        if (!inside) {
            memset(y, 0, bytes);
        } else if (P->scale != 0.0f) {
            const int8_t *v = (const int8_t *)(x + from);
            float *f = (float *)y;
            for (uint32_t j = 0; j < P->slice; ++j) f[j] = (float)v[j] * P->scale;
        } else {
            memcpy(y, x + from, bytes);
        }
    }
}

void tml_update_slice(const tml_update_slice_t *src, const void *update, const void *start, void *out)
{
    TML_LOAD_PARAMS(tml_update_slice_t, src);
    const uint32_t last = (uint32_t)P->rank - 1u, e = P->elem;
    int32_t first[6];
    uint32_t rows = 1;
    for (uint32_t k = 0; k <= last; ++k) {
        const int64_t v = P->idx64 ? ((const int64_t *)start)[k] : ((const int32_t *)start)[k];
        const int64_t hi = (int64_t)P->out_dims[k] - (int64_t)P->upd_dims[k];
        first[k] = (int32_t)(v < 0 ? 0 : v > hi ? hi : v);
        if (k < last) rows *= P->upd_dims[k];
    }
    const uint32_t row = P->upd_dims[last] * e;
    const uint8_t *u = (const uint8_t *)update;
    for (uint32_t r = 0; r < rows; ++r, u += row) {
        uint32_t rest = r, at = (uint32_t)first[last], stride = P->out_dims[last];
        for (uint32_t k = last; k-- > 0;) {        /* r as indices of the update's outer dims */
            at += ((uint32_t)first[k] + rest % P->upd_dims[k]) * stride;
            rest /= P->upd_dims[k];
            stride *= P->out_dims[k];
        }
        memcpy((uint8_t *)out + at * e, u, row);
    }
}

void tml_svdf_s8(const tml_svdf_s8_t *src, const int8_t *in, const int16_t *state_in, int8_t *out,
                 int16_t *state_out)
{
    TML_LOAD_PARAMS(tml_svdf_s8_t, src);
    const uint32_t F = P->n_filter, M = P->n_memory, I = P->n_input, units = F / P->rank;
    const uint32_t n = (uint32_t)P->batch * F * M;
    for (uint32_t k = 0; k + 1u < n; ++k) state_out[k] = state_in[k + 1u];   /* one step left */
    for (uint32_t b = 0; b < P->batch; ++b) {
        const int8_t *x = in + b * I;
        int16_t *st = state_out + b * F * M;
        for (uint32_t f = 0; f < F; ++f) {       /* the newest entry of every filter */
            int32_t dot = 0;
            for (uint32_t c = 0; c < I; ++c) dot += (int32_t)TML_RD8(P->wf + f * I + c) * ((int32_t)x[c] - P->in_zp);
            dot = tml_requant(dot, P->mult1, P->shift1);
            st[f * M + M - 1u] = (int16_t)(dot < -32768 ? -32768 : dot > 32767 ? 32767 : dot);
        }
        for (uint32_t u = 0; u < units; ++u) {
            int32_t acc = TML_RD32(P->bias + u);
            for (uint32_t f = u * P->rank; f < (u + 1u) * P->rank; ++f)
                for (uint32_t m = 0; m < M; ++m) acc += (int32_t)TML_RD16(P->wt + f * M + m) * st[f * M + m];
            out[b * units + u] = to_s8(acc, P->mult2, P->shift2, P->out_zp);
        }
    }
}
