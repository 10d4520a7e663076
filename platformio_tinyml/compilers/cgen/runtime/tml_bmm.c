/* tml_bmm.c - BATCH_MATMUL (int8, float32): see tml_kernels.h. Sums over k
 * ascending from 0 (TFLite's reference order); int8 sums are exact int32. */
#include "tml_kernels.h"
#include "tml_fixedpoint.h"

/* Strides of element (i, k) of lhs and (k, j) of rhs, and the number of output batches. */
typedef struct {
    int32_t lsi, lsk, rsk, rsj, batches;
} tml_bmm_walk_t;

static tml_bmm_walk_t tml_bmm_walk(const tml_bmm_t *P)
{
    tml_bmm_walk_t w;
    w.lsi = P->adj_x ? 1 : (int32_t)P->k;
    w.lsk = P->adj_x ? (int32_t)P->m : 1;
    w.rsk = P->adj_y ? 1 : (int32_t)P->n;
    w.rsj = P->adj_y ? (int32_t)P->k : 1;
    w.batches = (int32_t)P->batch[0] * P->batch[1] * P->batch[2];
    return w;
}

/* Element offsets of output batch b's lhs and rhs (broadcast dimensions have stride 0). */
static void tml_bmm_base(const tml_bmm_t *P, int32_t b, int32_t *lb, int32_t *rb)
{
    const int32_t b2 = b % P->batch[2], b1 = (b / P->batch[2]) % P->batch[1];
    const int32_t b0 = b / ((int32_t)P->batch[2] * P->batch[1]);
    *lb = (int32_t)(b0 * P->lhs_stride[0] + b1 * P->lhs_stride[1] + b2 * P->lhs_stride[2]);
    *rb = (int32_t)(b0 * P->rhs_stride[0] + b1 * P->rhs_stride[1] + b2 * P->rhs_stride[2]);
}

void tml_bmm_s8(const tml_bmm_t *src, const int8_t *lhs, const int8_t *rhs, int8_t *out)
{
    TML_LOAD_PARAMS(tml_bmm_t, src);
    const tml_bmm_walk_t w = tml_bmm_walk(P);
    const int32_t lo = P->lhs_offset, ro = P->rhs_offset;
    for (int32_t b = 0; b < w.batches; ++b) {
        int32_t lb, rb;
        tml_bmm_base(P, b, &lb, &rb);
        for (int32_t i = 0; i < P->m; ++i) {
            const int8_t *l = lhs + lb + i * w.lsi;
            for (int32_t j = 0; j < P->n; ++j) {
                const int8_t *r = rhs + rb + j * w.rsj;
                int32_t acc = 0;
                for (int32_t k = 0; k < P->k; ++k)
                    acc += ((int32_t)l[k * w.lsk] + lo) * ((int32_t)r[k * w.rsk] + ro);
                acc = tml_requant(acc, P->mult, P->shift) + P->out_offset;
                *out++ = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
            }
        }
    }
}

void tml_bmm_f32(const tml_bmm_t *src, const float *lhs, const float *rhs, float *out)
{
    TML_LOAD_PARAMS(tml_bmm_t, src);
    const tml_bmm_walk_t w = tml_bmm_walk(P);
    for (int32_t b = 0; b < w.batches; ++b) {
        int32_t lb, rb;
        tml_bmm_base(P, b, &lb, &rb);
        for (int32_t i = 0; i < P->m; ++i) {
            const float *l = lhs + lb + i * w.lsi;
            for (int32_t j = 0; j < P->n; ++j) {
                const float *r = rhs + rb + j * w.rsj;
                float acc = 0.0f;
                for (int32_t k = 0; k < P->k; ++k) acc += l[k * w.lsk] * r[k * w.rsk];
                *out++ = acc;
            }
        }
    }
}
