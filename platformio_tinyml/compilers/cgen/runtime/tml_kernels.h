/* tml_kernels.h - kernel entry points and their parameter blocks.
 *
 * Each kernel takes a pointer to a constant parameter block (in flash) plus
 * its input and output buffers. Generated model code is a list of such calls;
 * the inference-module executor drives the same kernels from a table. Every
 * kernel is in its own .c file so a model links only what it uses.
 * Activations are NHWC; conv filters OHWI; depthwise filters [1,H,W,C*M];
 * fully connected weights [out, in].
 */
#ifndef TML_KERNELS_H
#define TML_KERNELS_H

#include "tml_port.h"

/* ---- int8 ---------------------------------------------------------------- */

typedef struct {
    uint16_t in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    uint8_t stride_h, stride_w, dil_h, dil_w;
    int16_t pad_t, pad_l;
    int16_t in_offset;          /* -(input zero point) */
    int16_t out_offset;         /* output zero point */
    int8_t act_min, act_max;
    uint16_t depth_mult;        /* depthwise only */
    const int8_t *filter;
    const int32_t *bias;        /* per output channel */
    const int32_t *bias_fold;   /* bias + in_offset * sum(filter row): used where no tap is padded */
    const int32_t *mult;        /* per output channel requantization multiplier */
    const int8_t *shift;        /* per output channel shift */
} tml_conv_s8_t;

void tml_conv_s8(const tml_conv_s8_t *p, const int8_t *in, int8_t *out);
void tml_dwconv_s8(const tml_conv_s8_t *p, const int8_t *in, int8_t *out);

typedef struct {
    uint16_t batches, in_features, out_features;
    int16_t out_offset;
    int8_t act_min, act_max;
    int8_t shift;               /* used when per_channel == 0 */
    uint8_t per_channel;
    int32_t mult;               /* used when per_channel == 0 */
    const int8_t *weights;      /* [out, in] */
    const int32_t *bias_fold;   /* bias + in_offset * sum(row) */
    const int32_t *mults;       /* per_channel only */
    const int8_t *shifts;       /* per_channel only */
} tml_fc_s8_t;

void tml_fc_s8(const tml_fc_s8_t *p, const int8_t *in, int8_t *out);

typedef struct {
    uint16_t in_h, in_w, c, out_h, out_w, k_h, k_w;
    uint8_t stride_h, stride_w;
    int16_t pad_t, pad_l;
    int8_t act_min, act_max;
} tml_pool_s8_t;

void tml_avgpool_s8(const tml_pool_s8_t *p, const int8_t *in, int8_t *out);
void tml_maxpool_s8(const tml_pool_s8_t *p, const int8_t *in, int8_t *out);

/* Broadcasting over up to 4 dimensions: element (i0,i1,i2,i3) of the output
 * reads in1[sum(ik * s1[k])] and in2[sum(ik * s2[k])] (stride 0 = broadcast). */
typedef struct {
    uint16_t dims[4];
    uint16_t s1[4], s2[4];
    int16_t in1_offset, in2_offset, out_offset;
    int8_t act_min, act_max;
    int8_t left_shift;
    int8_t in1_shift, in2_shift, out_shift;
    int32_t in1_mult, in2_mult, out_mult;
} tml_binary_s8_t;

void tml_add_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_mul_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

typedef struct {
    uint16_t outer, depth;
    int32_t input_mult;
    int8_t input_left_shift;
    int32_t diff_min;
} tml_softmax_s8_t;

void tml_softmax_s8(const tml_softmax_s8_t *p, const int8_t *in, int8_t *out);

#endif /* TML_KERNELS_H */
