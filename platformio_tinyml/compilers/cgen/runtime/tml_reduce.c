/* tml_reduce.c - REDUCE_MAX / REDUCE_MIN (int8: TFLite Micro needs equal input
 * and output quantization, so raw values compare), float SUM, and ARG_MAX /
 * ARG_MIN (first index of the extreme value, as TFLite's strict comparison
 * gives; int32 indices, or int64 for ONNX's ArgMax) over the middle axis of [outer][count][inner]. */
#include <float.h>
#include "tml_kernels.h"

void tml_reduce_s8(const tml_reduce_t *src, const int8_t *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_reduce_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const int8_t *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            int8_t v = P->op == 0 ? (int8_t)-128 : (int8_t)127;
            for (uint32_t k = 0; k < count; ++k) {
                const int8_t a = x[k * inner + i];
                if (P->op == 0 ? a > v : a < v) v = a;
            }
            out[o * inner + i] = v;
        }
    }
}

void tml_reduce_f32(const tml_reduce_t *src, const float *in, float *out)
{
    TML_LOAD_PARAMS(tml_reduce_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const float *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            float v = P->op == 0 ? -FLT_MAX : P->op == 1 ? FLT_MAX : 0.0f;
            for (uint32_t k = 0; k < count; ++k) {
                const float a = x[k * inner + i];
                if (P->op == 2) v += a;
                else if (P->op == 0 ? a > v : a < v) v = a;
            }
            out[o * inner + i] = v;
        }
    }
}

static void put_index(void *out, uint32_t at, uint32_t k, uint8_t out64)
{
    if (out64) ((int64_t *)out)[at] = (int64_t)k;
    else ((int32_t *)out)[at] = (int32_t)k;
}

void tml_arg_s8(const tml_arg_t *src, const int8_t *in, void *out)
{
    TML_LOAD_PARAMS(tml_arg_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const int8_t *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            int8_t best = x[i];
            uint32_t at = 0;
            for (uint32_t k = 1; k < count; ++k) {
                const int8_t a = x[k * inner + i];
                if (P->is_min ? a < best : a > best) { best = a; at = k; }
            }
            put_index(out, o * inner + i, at, P->out64);
        }
    }
}

void tml_arg_f32(const tml_arg_t *src, const float *in, void *out)
{
    TML_LOAD_PARAMS(tml_arg_t, src);
    const uint32_t count = P->count, inner = P->inner;
    for (uint32_t o = 0; o < P->outer; ++o) {
        const float *x = in + o * count * inner;
        for (uint32_t i = 0; i < inner; ++i) {
            float best = x[i];
            uint32_t at = 0;
            for (uint32_t k = 1; k < count; ++k) {
                const float a = x[k * inner + i];
                if (P->is_min ? a < best : a > best) { best = a; at = k; }
            }
            put_index(out, o * inner + i, at, P->out64);
        }
    }
}
