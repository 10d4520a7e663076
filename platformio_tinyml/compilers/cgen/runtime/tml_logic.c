/* tml_logic.c - comparisons (float32 or int8 operands -> 0/1 bytes), LOGICAL_AND / LOGICAL_OR /
 * LOGICAL_NOT on 0/1 bytes, and SELECT_V2 (x where the condition byte is nonzero, else y), all
 * with 4-D broadcasting (element strides, 0 = broadcast), TFLite's semantics: a comparison
 * with NaN is false except NOT_EQUAL. */
#include <string.h>
#include "tml_kernels.h"

#define TML_LOOP4(P, ...)                                                                \
    do {                                                                                  \
        uint32_t n_ = 0;                                                                  \
        for (uint32_t i0 = 0; i0 < (P)->dims[0]; ++i0)                                    \
            for (uint32_t i1 = 0; i1 < (P)->dims[1]; ++i1)                                \
                for (uint32_t i2 = 0; i2 < (P)->dims[2]; ++i2)                            \
                    for (uint32_t i3 = 0; i3 < (P)->dims[3]; ++i3, ++n_) {                \
                        const uint32_t k1 = i0 * (P)->s1[0] + i1 * (P)->s1[1] + i2 * (P)->s1[2] + i3 * (P)->s1[3]; \
                        const uint32_t k2 = i0 * (P)->s2[0] + i1 * (P)->s2[1] + i2 * (P)->s2[2] + i3 * (P)->s2[3]; \
                        __VA_ARGS__;                                                      \
                    }                                                                     \
    } while (0)

#define TML_COMPARE(P, a, b, out, op)                                                     \
    TML_LOOP4(P, {                                                                        \
        const float x_ = (float)(a)[k1], y_ = (float)(b)[k2];                             \
        uint8_t r_;                                                                       \
        switch (op) {                                                                     \
        case TML_CMP_LESS: r_ = x_ < y_; break;                                           \
        case TML_CMP_LESS_EQUAL: r_ = x_ <= y_; break;                                    \
        case TML_CMP_GREATER: r_ = x_ > y_; break;                                        \
        case TML_CMP_GREATER_EQUAL: r_ = x_ >= y_; break;                                 \
        case TML_CMP_EQUAL: r_ = x_ == y_; break;                                         \
        default: r_ = x_ != y_; break;                                                    \
        }                                                                                 \
        (out)[n_] = r_;                                                                   \
    })

void tml_compare_f32(const tml_binary_f32_t *src, const float *a, const float *b, uint8_t *out, int op)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    TML_COMPARE(P, a, b, out, op);
}

/* int8 operands of one quantization: comparing the codes compares the values */
void tml_compare_s8(const tml_binary_f32_t *src, const int8_t *a, const int8_t *b, uint8_t *out, int op)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    TML_COMPARE(P, a, b, out, op);
}

void tml_logical(const tml_binary_f32_t *src, const uint8_t *a, const uint8_t *b, uint8_t *out, int is_or)
{
    TML_LOAD_PARAMS(tml_binary_f32_t, src);
    TML_LOOP4(P, out[n_] = is_or ? (uint8_t)(a[k1] || b[k2]) : (uint8_t)(a[k1] && b[k2]));
}

void tml_logical_not(uint32_t n, const uint8_t *a, uint8_t *out)
{
    for (uint32_t i = 0; i < n; ++i) out[i] = (uint8_t)!a[i];
}

void tml_select(const tml_select_t *src, const uint8_t *cond, const void *x, const void *y, void *out)
{
    TML_LOAD_PARAMS(tml_select_t, src);
    const uint32_t size = P->elem_size;
    TML_LOOP4(P, {
        const uint32_t c = i0 * P->sc[0] + i1 * P->sc[1] + i2 * P->sc[2] + i3 * P->sc[3];
        memcpy((uint8_t *)out + n_ * size,
               cond[c] ? (const uint8_t *)x + k1 * size : (const uint8_t *)y + k2 * size, size);
    });
}
