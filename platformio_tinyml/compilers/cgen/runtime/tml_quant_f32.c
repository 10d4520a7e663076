/* tml_quant_f32.c - QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32,
 * TFLite Micro semantics. */
#include <math.h>
#include "tml_kernels.h"

void tml_quantize_f32_s8(const tml_quant_t *src, const float *in, int8_t *out)
{
    TML_LOAD_PARAMS(tml_quant_t, src);
    const float scale = P->scale;
    for (uint32_t i = 0; i < P->size; ++i) {
        float q = roundf(in[i] / scale);            /* half away from zero */
        /* Clamp in float first so huge values cannot overflow the int cast. */
        if (!(q > -1000.0f)) q = -1000.0f;   /* also NaN */
        if (q > 1000.0f) q = 1000.0f;
        int32_t v = (int32_t)q + P->zp;
        if (v < -128) v = -128;
        if (v > 127) v = 127;
        out[i] = (int8_t)v;
    }
}

void tml_dequantize_s8_f32(const tml_quant_t *src, const int8_t *in, float *out)
{
    TML_LOAD_PARAMS(tml_quant_t, src);
    for (uint32_t i = 0; i < P->size; ++i)
        out[i] = P->scale * (float)((int32_t)in[i] - P->zp);
}
