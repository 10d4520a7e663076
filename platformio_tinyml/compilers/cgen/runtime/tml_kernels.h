/* tml_kernels.h - kernel entry points and their parameter blocks.
 *
 * Each kernel takes a pointer to a constant parameter block (in flash) plus
 * its input and output buffers. Generated model code is a list of such calls;
 * the inference-module executor drives the same kernels from a table. Every
 * kernel is in its own .c file so a model links only what it uses.
 * Activations are NHWC; conv filters OHWI; depthwise filters [1,H,W,C*M] (with
 * depth_mult 1 and C a multiple of 4 the lowering groups each 4 channels' taps
 * together, see lower_s8._dw_grouped);
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
    int16_t *filter16;          /* CONV_2D: arena room for the filter as int16 pairs (out_c x kp,
                                 * kp = k_h*k_w*in_c rounded up to 4), which the Cortex-M speed path
                                 * fills once a call (tml_conv_s8.c); NULL: none (always for dwconv) */
    const int32_t *bias_fold;   /* bias + in_offset * sum(filter row): used where no tap is padded */
    const int32_t *mult;        /* per output channel requantization multiplier */
    const int8_t *shift;        /* per output channel shift */
    void *scratch;              /* conv: arena scratch for the im2col path (NULL: none) */
} tml_conv_s8_t;

void tml_conv_s8(const tml_conv_s8_t *p, const int8_t *in, int8_t *out);
void tml_dwconv_s8(const tml_conv_s8_t *p, const int8_t *in, int8_t *out);
/* TRANSPOSE_CONV (tml_tconv.c): in_* the input, out_* the output, pad_t/pad_l TFLite's padding of
 * the output; bias_fold is the plain int32 bias, filter OHWI; dil, depth_mult, filter16, scratch unused. */
void tml_tconv_s8(const tml_conv_s8_t *p, const int8_t *in, int8_t *out);

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

/* L2_NORMALIZATION over the last dimension (tml_l2norm_s8.c): output scale 1/128, zero
 * point 0, as TFLite's integer kernel writes it whatever the output tensor says. */
typedef struct {
    uint16_t outer, depth;
    int16_t in_offset;          /* -(input zero point) */
} tml_l2norm_s8_t;

void tml_l2norm_s8(const tml_l2norm_s8_t *p, const int8_t *in, int8_t *out);

/* LOG_SOFTMAX over the last dimension (tml_log_softmax_s8.c): output scale 16/256, zero
 * point 127. input_mult/input_left_shift scale a difference to the row maximum to Q5;
 * rev_mult/rev_shift (shift <= 0) scale a Q5 value back to input units. */
typedef struct {
    uint16_t outer, depth;
    int32_t input_mult;
    int8_t input_left_shift;
    int32_t diff_min;
    int32_t rev_mult;
    int8_t rev_shift;
} tml_log_softmax_s8_t;

void tml_log_softmax_s8(const tml_log_softmax_s8_t *p, const int8_t *in, int8_t *out);

/* ---- data movement (any element type) ------------------------------------ */

/* PAD of a tensor of rank <= 4 (extended to 4-D at the front): output element
 * (i0..i3) is in[i - before] when inside the input, else the pad element
 * 'value' (elem_size bytes: the int8 zero point or a float). */
typedef struct {
    uint32_t in_dims[4], out_dims[4], before[4];
    uint8_t elem_size;          /* 1 or 4 */
    uint8_t value[4];           /* one element, native byte order */
} tml_pad_t;

void tml_pad(const tml_pad_t *p, const void *in, void *out);
/* MIRROR_PAD on tml_pad_t: value[0] is 1 for symmetric, 0 for reflect; pads at most the
 * dimension (symmetric) or one less (reflect). */
void tml_mirror_pad(const tml_pad_t *p, const void *in, void *out);

/* CONCATENATION: each of 'outer' output rows is the inputs' rows back to back;
 * input k contributes chunk[k] bytes per row. No requantization. */
typedef struct {
    uint32_t outer;
    uint16_t n_inputs;
    const int32_t *chunk;       /* bytes per row, per input */
} tml_concat_t;

void tml_concat(const tml_concat_t *p, const void *const *ins, void *out);

/* ---- int8: reductions, activations, (re)quantization --------------------- */

/* MEAN over a contiguous block of axes: the input is [outer][count][inner],
 * the output [outer][inner]: requant(sum - in_zp * count) + out_zp with
 * 1/count folded into mult/shift (TFLite Micro's QuantizedMeanOrSum, which it
 * uses whether or not the input and output quantization are equal). */
typedef struct {
    uint32_t outer, count, inner;
    int16_t in_zp, out_zp;
    int8_t shift;
    int32_t mult;
} tml_mean_s8_t;

void tml_mean_s8(const tml_mean_s8_t *p, const int8_t *in, int8_t *out);

/* Element-wise int8 activations over 'size' elements (in place is fine).
 * RELU / QUANTIZE(int8->int8): clamp(requant(x - in_zp, mult, shift) + out_zp);
 * QUANTIZE int8->uint8 clamps to 0..255, uint8->int8 reads uint8 input.
 * RELU6: clamp(x, act_min, act_max) in the input's quantization (as TFLM).
 * LOGISTIC / TANH: TFLite's Q4 fixed-point; |x - in_zp| >= radius saturates. */
typedef struct {
    uint32_t size;
    int16_t in_zp, out_zp;
    int8_t act_min, act_max;
    int8_t shift;
    int32_t mult;
    int32_t radius;
} tml_unary_s8_t;

void tml_relu_s8(const tml_unary_s8_t *p, const int8_t *in, int8_t *out);
void tml_relu6_s8(const tml_unary_s8_t *p, const int8_t *in, int8_t *out);
void tml_requantize_s8(const tml_unary_s8_t *p, const int8_t *in, int8_t *out);
void tml_requantize_s8_u8(const tml_unary_s8_t *p, const int8_t *in, uint8_t *out);
void tml_requantize_u8_s8(const tml_unary_s8_t *p, const uint8_t *in, int8_t *out);
void tml_logistic_s8(const tml_unary_s8_t *p, const int8_t *in, int8_t *out);
void tml_tanh_s8(const tml_unary_s8_t *p, const int8_t *in, int8_t *out);

/* QUANTIZE float32 -> int8: clamp(round(x / scale) + zp), the division in
 * float, round half away from zero. DEQUANTIZE int8 -> float32:
 * scale * (q - zp). */
typedef struct {
    uint32_t size;
    int16_t zp;
    float scale;
} tml_quant_t;

void tml_quantize_f32_s8(const tml_quant_t *p, const float *in, int8_t *out);
void tml_dequantize_s8_f32(const tml_quant_t *p, const int8_t *in, float *out);

/* BATCH_MATMUL (tml_bmm.c): for each output batch (b0, b1, b2), out[b][m][n] = requant(sum_k
 * (lhs[m][k] + lhs_offset) * (rhs[k][n] + rhs_offset)) + out_offset, clamped to int8 (TFLite Micro
 * applies no activation); lhs is [K][M] when adj_x, rhs [N][K] when adj_y. The operands of batch
 * (b0, b1, b2) start at b0*lhs_stride[0] + b1*lhs_stride[1] + b2*lhs_stride[2] (0: broadcast);
 * outputs are contiguous. The float32 kernel takes the same block (offsets, mult, shift unused). */
typedef struct {
    uint16_t batch[3];
    uint32_t lhs_stride[3], rhs_stride[3];
    uint16_t m, n, k;
    uint8_t adj_x, adj_y;
    int16_t lhs_offset, rhs_offset, out_offset;
    int32_t mult;
    int8_t shift;
} tml_bmm_t;

void tml_bmm_s8(const tml_bmm_t *p, const int8_t *lhs, const int8_t *rhs, int8_t *out);

/* ---- float32 --------------------------------------------------------------- */
/* Each output sums in the order of TFLite's reference kernels; constants read with
 * TML_RDF. act_min/act_max are the fused activation's clamp bounds
 * (+-FLT_MAX when there is none, as TFLite). */

typedef struct {
    uint16_t in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    uint8_t stride_h, stride_w, dil_h, dil_w;
    int16_t pad_t, pad_l;
    uint16_t depth_mult;        /* depthwise only */
    float act_min, act_max;
    const float *filter;        /* CONV_2D: HWIO; depthwise: [1,H,W,C*M]; TRANSPOSE_CONV: OHWI */
    const float *bias;          /* per output channel */
} tml_conv_f32_t;

void tml_conv_f32(const tml_conv_f32_t *p, const float *in, float *out);
void tml_dwconv_f32(const tml_conv_f32_t *p, const float *in, float *out);
void tml_tconv_f32(const tml_conv_f32_t *p, const float *in, float *out);   /* TRANSPOSE_CONV, OHWI */
void tml_bmm_f32(const tml_bmm_t *p, const float *lhs, const float *rhs, float *out);   /* BATCH_MATMUL */

typedef struct {
    uint32_t batches;
    uint16_t in_features, out_features;
    float act_min, act_max;
    const float *weights;       /* [in, out] */
    const float *bias;
} tml_fc_f32_t;

void tml_fc_f32(const tml_fc_f32_t *p, const float *in, float *out);

typedef struct {
    uint16_t in_h, in_w, c, out_h, out_w, k_h, k_w;
    uint8_t stride_h, stride_w;
    int16_t pad_t, pad_l;
    float act_min, act_max;
} tml_pool_f32_t;

void tml_avgpool_f32(const tml_pool_f32_t *p, const float *in, float *out);
void tml_maxpool_f32(const tml_pool_f32_t *p, const float *in, float *out);
/* L2_POOL_2D: sqrt of the mean of the squares of the window's taps. */
void tml_l2pool_f32(const tml_pool_f32_t *p, const float *in, float *out);

/* MEAN over a contiguous block of axes: [outer][count][inner] -> [outer][inner]. */
typedef struct {
    uint32_t outer, count, inner;
} tml_mean_f32_t;

void tml_mean_f32(const tml_mean_f32_t *p, const float *in, float *out);

/* ADD / MUL with 4-D broadcasting (element strides, 0 = broadcast). */
typedef struct {
    uint32_t dims[4];
    uint32_t s1[4], s2[4];
    float act_min, act_max;
} tml_binary_f32_t;

void tml_add_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_mul_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);

/* Element-wise: clamp to [lo, hi] (RELU, RELU6), LOGISTIC, TANH (in place is fine). */
typedef struct {
    uint32_t size;
    float lo, hi;
} tml_unary_f32_t;

void tml_clamp_f32(const tml_unary_f32_t *p, const float *in, float *out);
void tml_logistic_f32(const tml_unary_f32_t *p, const float *in, float *out);
void tml_tanh_f32(const tml_unary_f32_t *p, const float *in, float *out);
float tml_logisticf(float v);   /* TFLite's float LOGISTIC of one value (cutoffs at -9 and 16.62) */

/* UNIDIRECTIONAL_SEQUENCE_LSTM (tml_lstm.c), TFLite Micro's float kernel: for each batch b and
 * step t, gate[q] = (W[q] x_t + bias[q]) + R[q] h for q = input, forget, cell, output (W [U][F],
 * R [U][U] stacked by gate); i, f, o = logistic, g = tanh; c = f*c + i*g, clipped to +-cell_clip
 * when it is > 0; h = tanh(c) * o, written to y at (b, t) ((t, b) when time_major). The state
 * starts from h0, c0 ([B][U]) and ends in h, c; reverse walks t from the last step to the first. */
typedef struct {
    uint16_t batches, steps, features, units;
    uint8_t time_major, reverse;
    float cell_clip;
    const float *w, *r, *bias;
} tml_lstm_f32_t;

void tml_lstm_f32(const tml_lstm_f32_t *p, const float *x, const float *h0, const float *c0, float *y,
                  float *h, float *c);

/* int8 UNIDIRECTIONAL_SEQUENCE_LSTM, TFLite Micro's integer kernel (int8 input, hidden state and
 * output, int16 cell state, int8 weights, int32 biases): per gate q (i, f, g, o) and unit, the
 * input and the recurrent products are each requantized to int16 at 2^-12 (mult/shift[q] and
 * [4 + q]; fold[] holds bias + input offset x row sum, then -hidden zp x row sum) and clamped,
 * added with saturation, then the int16 LUT logistic (tanh for g) gives Q0.15. The cell and
 * hidden updates are TFLite's int16 multiplies (mult/shift[8..10]: f*c, i*g, o*tanh(c) with the
 * hidden zero point), the cell clipped to +-cell_clip when has_clip; tanh(c) scales the cell by
 * 3 << tanh_shift (>= 0) or 3 >> -tanh_shift, rounded (< 0). Shapes and order as tml_lstm_f32. */
typedef struct {
    uint16_t batches, steps, features, units;
    uint8_t time_major, reverse, has_clip;
    int8_t tanh_shift;
    int16_t cell_clip;
    int16_t hidden_zp;
    int32_t mult[11];
    int8_t shift[11];
    const int8_t *w, *r;
    const int32_t *fold;
} tml_lstm_s8_t;

/* Row of x and y (in [features] / [units] rows) that step s of batch b reads and writes, for
 * either LSTM kernel: t runs backwards when reverse; rows are (t, b) when time_major, else (b, t). */
TML_INLINE int32_t tml_lstm_row(int32_t s, int32_t b, int32_t steps, int32_t batches, int reverse, int time_major)
{
    const int32_t t = reverse ? steps - 1 - s : s;
    return time_major ? t * batches + b : b * steps + t;
}

void tml_lstm_s8(const tml_lstm_s8_t *p, const int8_t *x, const int8_t *h0, const int16_t *c0, int8_t *y,
                 int8_t *h, int16_t *c);

typedef struct {
    uint32_t outer;
    uint16_t depth;
    float beta;
} tml_softmax_f32_t;

void tml_softmax_f32(const tml_softmax_f32_t *p, const float *in, float *out);

/* ---- data movement, reductions, resizing (lower_shape.py) ------------------ */

/* Strided copy of any element type: 'rank' nested loops over dims[] (outermost
 * first) moving the input and output by in_step[]/out_step[] bytes (signed: 0
 * repeats, negative walks backwards), from byte offsets in_base/out_base.
 * TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, UNPACK, PACK, TILE, BROADCAST_TO,
 * SPACE/DEPTH/BATCH re-arrangements. No requantization. */
typedef struct {
    uint8_t rank, elem;
    uint32_t dims[8];
    int32_t in_step[8], out_step[8];
    int32_t in_base, out_base;
} tml_copy_nd_t;

void tml_copy_nd(const tml_copy_nd_t *p, const void *in, void *out);

/* n elements of elem bytes, each set to value[0..elem) (SPACE_TO_BATCH_ND padding). */
typedef struct {
    uint32_t n;
    uint8_t elem;
    uint8_t value[4];
} tml_fill_t;

void tml_fill(const tml_fill_t *p, const void *in, void *out);

/* GATHER with constant indices: the input is [outer][axis][inner bytes]; the
 * output [outer][n_idx][inner bytes] takes rows idx[k] of each outer block. */
typedef struct {
    uint32_t outer, n_idx, axis, inner;
    const int32_t *idx;
} tml_gather_t;

void tml_gather(const tml_gather_t *p, const void *in, void *out);

/* REDUCE_MAX / REDUCE_MIN / SUM (float) over the middle of [outer][count][inner]. */
typedef struct {
    uint32_t outer, count, inner;
    uint8_t op;                 /* 0 max, 1 min, 2 sum (float only) */
} tml_reduce_t;

void tml_reduce_s8(const tml_reduce_t *p, const int8_t *in, int8_t *out);
void tml_reduce_f32(const tml_reduce_t *p, const float *in, float *out);

/* ARG_MAX / ARG_MIN over the middle of [outer][count][inner]: the first index
 * of the extreme value, as int32 or (out64: ONNX) int64. */
typedef struct {
    uint32_t outer, count, inner;
    uint8_t is_min, out64;
} tml_arg_t;

void tml_arg_s8(const tml_arg_t *p, const int8_t *in, void *out);
void tml_arg_f32(const tml_arg_t *p, const float *in, void *out);

/* RESIZE_NEAREST_NEIGHBOR: output pixel (y, x) copies input pixel (ys[y], xs[x])
 * (depth bytes); the index tables hold TFLite's float arithmetic, done at compile time. */
typedef struct {
    uint32_t batches, in_h, in_w, out_h, out_w, depth;
    const int32_t *ys, *xs;
} tml_resize_nearest_t;

void tml_resize_nearest(const tml_resize_nearest_t *p, const void *in, void *out);

/* RESIZE_BILINEAR: per output row/column the two input rows/columns (lo, hi) and
 * the weight of hi: int8 in 1/1024 units (TFLite's integer kernel), float as
 * the fraction input_y - y0. */
typedef struct {
    uint32_t batches, in_h, in_w, out_h, out_w, depth;
    const int32_t *y_lo, *y_hi, *x_lo, *x_hi;
    const int32_t *dy, *dx;     /* int8 */
    const float *fy, *fx;       /* float32 */
} tml_resize_bilinear_t;

void tml_resize_bilinear_s8(const tml_resize_bilinear_t *p, const int8_t *in, int8_t *out);
void tml_resize_bilinear_f32(const tml_resize_bilinear_t *p, const float *in, float *out);
/* ---- element-wise ops: SUB, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU,
 * activations and math functions (tml_ew_s8.c, tml_ew_f32.c) ------------------ */

/* int8 unary op as a 256-entry table computed at compile time with TFLite
 * Micro's arithmetic for the op (cgen/lower_ew.py): out = table[(uint8_t)in].
 * LEAKY_RELU, ELU, HARD_SWISH, ABS, RSQRT. In place is fine. */
typedef struct {
    uint32_t size;
    const int8_t *table;        /* TML_CONST, read with TML_RD8 */
} tml_lut_s8_t;

void tml_lut_s8(const tml_lut_s8_t *p, const int8_t *in, int8_t *out);

/* int8 binary ops on tml_binary_s8_t (4-D broadcasting as ADD), each clamped
 * to [act_min, act_max]:
 * SUB: ADD's arithmetic with the scaled second input subtracted.
 * SQUARED_DIFFERENCE: (scaled in1 - scaled in2)^2, requantized (left_shift 7).
 * MAXIMUM / MINIMUM: of the raw int8 values (TFLite Micro does not requantize).
 * DIV: TFLite Micro's reciprocal-based integer quotient (out_mult, out_shift).
 * PRELU: in2 is alpha; x = in1 + in1_offset >= 0: requant(x, in1_mult, in1_shift),
 *        else requant(x * (alpha + in2_offset), out_mult, out_shift). */
void tml_sub_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_sqdiff_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_max_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_min_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_div_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tml_prelu_s8(const tml_binary_s8_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

/* float32 binary ops on tml_binary_f32_t (act_min/act_max clamp as ADD). */
void tml_sub_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_div_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_max_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_min_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_sqdiff_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_prelu_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
/* FLOOR_DIV: floor(a / b); FLOOR_MOD: fmod(a, b) moved to b's sign (TFLite's FloorMod). */
void tml_floordiv_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);
void tml_floormod_f32(const tml_binary_f32_t *p, const float *in1, const float *in2, float *out);

/* Comparisons -> 0/1 bytes (TML_CMP_*), LOGICAL_AND / LOGICAL_OR (is_or) on 0/1 bytes, with
 * tml_binary_f32_t's dims and strides (act_min / act_max unused); tml_logic.c. */
enum { TML_CMP_LESS, TML_CMP_LESS_EQUAL, TML_CMP_GREATER, TML_CMP_GREATER_EQUAL, TML_CMP_EQUAL, TML_CMP_NOT_EQUAL };
void tml_compare_f32(const tml_binary_f32_t *p, const float *a, const float *b, uint8_t *out, int op);
void tml_compare_s8(const tml_binary_f32_t *p, const int8_t *a, const int8_t *b, uint8_t *out, int op);
void tml_logical(const tml_binary_f32_t *p, const uint8_t *a, const uint8_t *b, uint8_t *out, int is_or);
void tml_logical_not(uint32_t n, const uint8_t *a, uint8_t *out);

/* SELECT_V2: out = cond ? x : y, elements of elem_size bytes; s1 strides x, s2 y, sc cond. */
typedef struct {
    uint32_t dims[4];
    uint32_t s1[4], s2[4], sc[4];
    uint32_t elem_size;
} tml_select_t;

void tml_select(const tml_select_t *p, const uint8_t *cond, const void *x, const void *y, void *out);

/* float32 element-wise function 'op' (TML_MAP_*) over 'size' elements, in place is fine. */
#define TML_MAP_ELU 1
#define TML_MAP_HARD_SWISH 2
#define TML_MAP_LEAKY_RELU 3   /* alpha */
#define TML_MAP_GELU 4
#define TML_MAP_GELU_TANH 5
#define TML_MAP_EXP 6
#define TML_MAP_LOG 7
#define TML_MAP_SQRT 8
#define TML_MAP_RSQRT 9
#define TML_MAP_ABS 10
#define TML_MAP_NEG 11
#define TML_MAP_SQUARE 12
#define TML_MAP_FLOOR 13
#define TML_MAP_CEIL 14
#define TML_MAP_ROUND 15           /* to nearest, halves to even */
#define TML_MAP_SIGN 16
#define TML_MAP_SIN 17
#define TML_MAP_COS 18
#define TML_MAP_TAN 19
#define TML_MAP_ASIN 20
#define TML_MAP_ACOS 21
#define TML_MAP_ATAN 22
#define TML_MAP_SINH 23
#define TML_MAP_COSH 24
#define TML_MAP_ASINH 25
#define TML_MAP_ACOSH 26
#define TML_MAP_ATANH 27
#define TML_MAP_ERF 28
#define TML_MAP_SOFTPLUS 29
#define TML_MAP_SOFTSIGN 30
#define TML_MAP_SELU 31            /* alpha, beta = gamma */
#define TML_MAP_THRESHOLDED_RELU 32 /* alpha */
#define TML_MAP_HARD_SIGMOID 33    /* max(0, min(1, alpha x + beta)) */
#define TML_MAP_CELU 34            /* alpha */
#define TML_MAP_MISH 35
#define TML_MAP_SWISH 36           /* x sigmoid(alpha x) */
#define TML_MAP_ELU_ALPHA 37       /* alpha */
typedef struct {
    uint32_t size;
    uint8_t op;
    float alpha;
    float beta;
} tml_map_f32_t;

void tml_map_f32(const tml_map_f32_t *p, const float *in, float *out);

/* LOG_SOFTMAX and L2_NORMALIZATION (float32) over the last axis: 'outer' rows
 * of 'depth' (beta unused). */
void tml_log_softmax_f32(const tml_softmax_f32_t *p, const float *in, float *out);
void tml_l2norm_f32(const tml_softmax_f32_t *p, const float *in, float *out);

/* TREE_ENSEMBLE (ONNX-ML TreeEnsembleRegressor / TreeEnsembleClassifier with onnxruntime's
 * semantics): each of 'rows' inputs of 'features' floats walks every tree from roots[t]: a branch
 * node i goes to true_child[i] when x[feature[i]] <mode[i]> threshold[i] (float compare), else
 * to false_child[i]; a leaf adds (or for MIN / MAX, combines) weight_value[j] into target
 * weight_target[j] (dense: j - first, the leaf's weights being targets 0..n_targets-1) for j
 * from first = false_child[i], count = true_child[i] weights. Then the aggregate, base values,
 * post transform and, for a classifier (labels not NULL), the label.
 * n_targets <= TML_TREE_MAX_TARGETS. */
#define TML_TREE_MAX_TARGETS 256
#define TML_TREE_LEQ 0
#define TML_TREE_LT 1
#define TML_TREE_GTE 2
#define TML_TREE_GT 3
#define TML_TREE_EQ 4
#define TML_TREE_NEQ 5
#define TML_TREE_LEAF 6
#define TML_TREE_SUM 0
#define TML_TREE_AVERAGE 1
#define TML_TREE_MIN 2
#define TML_TREE_MAX 3
#define TML_POST_NONE 0
#define TML_POST_LOGISTIC 1
#define TML_POST_SOFTMAX 2
#define TML_POST_SOFTMAX_ZERO 3
typedef struct {
    uint32_t rows, features, n_targets, n_trees, n_base;
    uint8_t aggregate, post, classifier, binary, all_positive, dense;
    const int32_t *roots, *feature, *true_child, *false_child, *weight_target;
    const uint8_t *mode;
    const float *threshold, *weight_value, *base;
    const int32_t *labels;
} tml_tree_t;

void tml_tree_ensemble(const tml_tree_t *p, const float *x, float *scores, int64_t *labels);

/* Kernels of TFLite builtins without an IR kind (tml_more.c). Element types: */
#define TML_T_INT8 0
#define TML_T_UINT8 1
#define TML_T_INT16 2
#define TML_T_INT32 3
#define TML_T_FLOAT32 4
#define TML_T_BOOL 5

/* CAST of n elements from type 'from' to type 'to' (TML_T_*), as C converts. */
typedef struct {
    uint32_t n;
    uint8_t from, to;
} tml_cast_t;

void tml_cast(const tml_cast_t *p, const void *in, void *out);

/* int8 ADD_N of n inputs of count elements each (ins: their pointers), TFLite's
 * integer arithmetic: every input rescaled with 20 bits of headroom, summed onto
 * the rescaled input offset, rescaled to the output. */
typedef struct {
    uint32_t n, count;
    int32_t in_offset, out_offset, in_mult, out_mult;
    int8_t in_shift, out_shift;
} tml_add_n_s8_t;

void tml_add_n_s8(const tml_add_n_s8_t *p, const int8_t *const *ins, int8_t *out);

/* GATHER_ND and EMBEDDING_LOOKUP with indices read at run time: for each of n index
 * tuples (depth int32s of idx), the slice of 'slice' elements of 'elem' bytes at
 * sum(index[k] * step[k]) bytes; an index outside 0..dims[k]-1 (TFLite Micro fails
 * the invoke) gives a slice of zeros. scale != 0 (hybrid EMBEDDING_LOOKUP): int8
 * elements written as float32 value * scale. */
typedef struct {
    uint32_t n, depth, slice;
    uint8_t elem;
    uint32_t dims[5], step[5];
    float scale;
} tml_gather_nd_t;

void tml_gather_nd(const tml_gather_nd_t *p, const void *params, const int32_t *idx, void *out);

/* CUMSUM along the middle of [outer][count][inner] (exclusive: each sum leaves out its own
 * element; reverse: from the end). int8 rescales as ADD_N (tml_add_n_s8_t's fields). */
typedef struct {
    uint32_t outer, count, inner;
    uint8_t exclusive, reverse;
    int32_t in_offset, out_offset, in_mult, out_mult;
    int8_t in_shift, out_shift;
} tml_cumsum_t;

void tml_cumsum_f32(const tml_cumsum_t *p, const float *in, float *out);
void tml_cumsum_s8(const tml_cumsum_t *p, const int8_t *in, int8_t *out);

/* DYNAMIC_UPDATE_SLICE after the operand is copied to out: update (upd_dims) written
 * into out (out_dims) at the start indices read at run time (int32, or int64 when
 * idx64), each clamped to 0 .. out_dims - upd_dims as TFLite Micro does. */
typedef struct {
    uint8_t rank, elem, idx64;
    uint32_t out_dims[6], upd_dims[6];
} tml_update_slice_t;

void tml_update_slice(const tml_update_slice_t *p, const void *update, const void *start, void *out);

/* int8 SVDF with int16 time weights and state (zero point 0), TFLite Micro's integer
 * reference: state_out is state_in moved one step left, each filter's newest entry the
 * rescaled feature dot product (saturated to int16); the output sums 'rank' filters' time
 * dot products per unit onto the bias and rescales them. Weights: TML_CONST. */
typedef struct {
    uint16_t batch, n_input, n_filter, n_memory, rank;
    int32_t in_zp, out_zp, mult1, mult2;
    int8_t shift1, shift2;
    const int8_t *wf;
    const int16_t *wt;
    const int32_t *bias;
} tml_svdf_s8_t;

void tml_svdf_s8(const tml_svdf_s8_t *p, const int8_t *in, const int16_t *state_in, int8_t *out,
                 int16_t *state_out);

#endif /* TML_KERNELS_H */
