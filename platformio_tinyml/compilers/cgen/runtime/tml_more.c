/* tml_more.c - kernels of TFLite builtins without an IR kind (cgen/lower_more.py):
 * CAST between int8, uint8, int16, int32, float32 and bool as C converts (TFLite
 * Micro's static_cast: float to integer truncates toward zero, integers narrow
 * by wrapping, anything to bool is "nonzero"). */
#include "tml_kernels.h"

static int32_t load_int(const uint8_t *x, uint8_t type, uint32_t i)
{
    switch (type) {
    case TML_T_INT8: return ((const int8_t *)x)[i];
    case TML_T_INT16: return ((const int16_t *)x)[i];
    case TML_T_INT32: return ((const int32_t *)x)[i];
    default: return ((const uint8_t *)x)[i];       /* uint8, bool */
    }
}

void tml_cast(const tml_cast_t *src, const void *in, void *out)
{
    TML_LOAD_PARAMS(tml_cast_t, src);
    const uint8_t *x = (const uint8_t *)in;
    const int from_float = P->from == TML_T_FLOAT32;
    for (uint32_t i = 0; i < P->n; ++i) {
        const float f = from_float ? ((const float *)x)[i] : 0.0f;
        const int32_t v = from_float ? (int32_t)f : load_int(x, P->from, i);
        switch (P->to) {
        case TML_T_INT8: ((int8_t *)out)[i] = (int8_t)v; break;
        case TML_T_UINT8: ((uint8_t *)out)[i] = (uint8_t)v; break;
        case TML_T_INT16: ((int16_t *)out)[i] = (int16_t)v; break;
        case TML_T_INT32: ((int32_t *)out)[i] = v; break;
        case TML_T_FLOAT32: ((float *)out)[i] = from_float ? f : (float)v; break;
        default: ((uint8_t *)out)[i] = (uint8_t)(from_float ? f != 0.0f : v != 0); break;
        }
    }
}
