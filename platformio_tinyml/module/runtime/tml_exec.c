/* tml_exec.c - the table-driven executor: kernel ids -> the cgen kernels.
 *
 * Ids are those of platformio_tinyml/module/kernels.py (append only). Only
 * the kernels in TML_EXEC_KERNEL_MASK are compiled in, so the firmware links
 * exactly its kernel set. For each kernel tml_exec_check() recomputes from
 * the parameters how many bytes the kernel will read or write through each
 * operand and pointer, and compares with the extents the record declares
 * (which the loader has already checked against the arena and weight blob).
 */
#include "tml_exec.h"

#include <string.h>

#include "tml_kernels.h"

typedef struct {
    uint32_t n;
} tml_copy_t;

enum {
    K_COPY = 0, K_CONV_S8, K_DWCONV_S8, K_FC_S8, K_AVGPOOL_S8, K_MAXPOOL_S8, K_ADD_S8, K_MUL_S8,
    K_SOFTMAX_S8, K_PAD, K_CONCAT, K_MEAN_S8, K_RELU_S8, K_RELU6_S8, K_REQUANTIZE_S8, K_LOGISTIC_S8,
    K_TANH_S8, K_QUANTIZE_F32_S8, K_DEQUANTIZE_S8_F32, K_CONV_F32, K_DWCONV_F32, K_FC_F32,
    K_AVGPOOL_F32, K_MAXPOOL_F32, K_MEAN_F32, K_ADD_F32, K_MUL_F32, K_CLAMP_F32, K_LOGISTIC_F32,
    K_TANH_F32, K_SOFTMAX_F32, K_COUNT
};

uint32_t tml_exec_param_size(uint32_t k)
{
    if (k >= K_COUNT || k >= 64 || !((TML_EXEC_KERNEL_MASK >> k) & 1u)) return 0;
    switch (k) {
    case K_COPY: return sizeof(tml_copy_t);
    case K_CONV_S8: case K_DWCONV_S8: return sizeof(tml_conv_s8_t);
    case K_FC_S8: return sizeof(tml_fc_s8_t);
    case K_AVGPOOL_S8: case K_MAXPOOL_S8: return sizeof(tml_pool_s8_t);
    case K_ADD_S8: case K_MUL_S8: return sizeof(tml_binary_s8_t);
    case K_SOFTMAX_S8: return sizeof(tml_softmax_s8_t);
    case K_PAD: return sizeof(tml_pad_t);
    case K_CONCAT: return sizeof(tml_concat_t);
    case K_MEAN_S8: return sizeof(tml_mean_s8_t);
    case K_RELU_S8: case K_RELU6_S8: case K_REQUANTIZE_S8: case K_LOGISTIC_S8: case K_TANH_S8:
        return sizeof(tml_unary_s8_t);
    case K_QUANTIZE_F32_S8: case K_DEQUANTIZE_S8_F32: return sizeof(tml_quant_t);
    case K_CONV_F32: case K_DWCONV_F32: return sizeof(tml_conv_f32_t);
    case K_FC_F32: return sizeof(tml_fc_f32_t);
    case K_AVGPOOL_F32: case K_MAXPOOL_F32: return sizeof(tml_pool_f32_t);
    case K_MEAN_F32: return sizeof(tml_mean_f32_t);
    case K_ADD_F32: case K_MUL_F32: return sizeof(tml_binary_f32_t);
    case K_CLAMP_F32: case K_LOGISTIC_F32: case K_TANH_F32: return sizeof(tml_unary_f32_t);
    case K_SOFTMAX_F32: return sizeof(tml_softmax_f32_t);
    default: return 0;
    }
}

/* ---- extent checks ------------------------------------------------------- */

static uint64_t operand_bytes(const tml_exec_op_t *op, uint32_t j)
{
    return tml_ld32(op->operands + 8u * j + 4u);
}

/* The relocation record of the pointer field at byte 'field', or NULL (the field is NULL). */
static const uint8_t *reloc_of(const tml_exec_op_t *op, size_t field)
{
    uint32_t r;
    for (r = 0; r < op->n_relocs; ++r)
        if (tml_ld16(op->relocs + 12u * r) == field) return op->relocs + 12u * r;
    return 0;
}

/* Declared extent of the pointer field at byte 'field' (0 when it is NULL). */
static uint64_t pointer_bytes(const tml_exec_op_t *op, size_t field)
{
    const uint8_t *rel = reloc_of(op, field);
    return rel ? tml_ld32(rel + 8u) : 0;
}

/* The pointer field at byte 'field' is relocated into the arena (not the
 * module): required of every buffer a kernel writes (scratch, filter16). */
static int pointer_in_arena(const tml_exec_op_t *op, size_t field)
{
    const uint8_t *rel = reloc_of(op, field);
    return rel && !(tml_ld32(rel + 4u) & TML_EXEC_BLOB_REF);
}

/* Operands: exactly 'n', input 0 needs 'in' bytes, the output 'out' bytes. */
static int io_ok(const tml_exec_op_t *op, uint32_t n, uint64_t in, uint64_t out)
{
    return op->n_operands == n && operand_bytes(op, 0) >= in && operand_bytes(op, n - 1) >= out;
}

#define PTR_OK(T, f, need) (pointer_bytes(op, offsetof(T, f)) >= (uint64_t)(need))
#define PTR_NULL(T, f) (pointer_bytes(op, offsetof(T, f)) == 0)
#define PTR_ARENA(T, f) pointer_in_arena(op, offsetof(T, f))

/* Pointer members of each parameter struct: a pointer needs a relocation
 * (module base or arena + offset) or must be NULL in the record, so a module
 * can never smuggle in an absolute address. */
static const uint16_t conv_s8_ptrs[] = {
    offsetof(tml_conv_s8_t, filter), offsetof(tml_conv_s8_t, filter16), offsetof(tml_conv_s8_t, bias_fold),
    offsetof(tml_conv_s8_t, mult), offsetof(tml_conv_s8_t, shift), offsetof(tml_conv_s8_t, scratch)};
static const uint16_t fc_s8_ptrs[] = {
    offsetof(tml_fc_s8_t, weights), offsetof(tml_fc_s8_t, bias_fold), offsetof(tml_fc_s8_t, mults),
    offsetof(tml_fc_s8_t, shifts)};
static const uint16_t concat_ptrs[] = {offsetof(tml_concat_t, chunk)};
static const uint16_t conv_f32_ptrs[] = {offsetof(tml_conv_f32_t, filter), offsetof(tml_conv_f32_t, bias)};
static const uint16_t fc_f32_ptrs[] = {offsetof(tml_fc_f32_t, weights), offsetof(tml_fc_f32_t, bias)};

static int pointers_ok(const tml_exec_op_t *op)
{
    const uint16_t *f = 0;
    uint32_t n = 0, j, r;
    switch (op->kernel) {
    case K_CONV_S8: case K_DWCONV_S8: f = conv_s8_ptrs; n = sizeof conv_s8_ptrs / sizeof *f; break;
    case K_FC_S8: f = fc_s8_ptrs; n = sizeof fc_s8_ptrs / sizeof *f; break;
    case K_CONCAT: f = concat_ptrs; n = 1; break;
    case K_CONV_F32: case K_DWCONV_F32: f = conv_f32_ptrs; n = 2; break;
    case K_FC_F32: f = fc_f32_ptrs; n = 2; break;
    default: break;
    }
    for (r = 0; r < op->n_relocs; ++r) {          /* relocations only onto pointer members, once each */
        uint32_t field = tml_ld16(op->relocs + 12u * r), hit = 0, r2;
        for (j = 0; j < n; ++j) hit |= f[j] == field;
        for (r2 = 0; r2 < r; ++r2) hit &= tml_ld16(op->relocs + 12u * r2) != field;
        if (!hit) return 0;
    }
    for (j = 0; j < n; ++j) {                     /* the others NULL */
        uint32_t b;
        if (pointer_bytes(op, f[j]) != 0) continue;
        for (b = 0; b < sizeof(void *); ++b)
            if (op->params[f[j] + b] != 0) return 0;
    }
    return 1;
}

/* Requantization shifts outside [-31, 31] are undefined behaviour in the
 * kernels' fixed-point helpers: refuse them (per-channel arrays in the blob). */
static int shifts_ok(const tml_exec_op_t *op, size_t field, uint32_t n)
{
    uint32_t r, k;
    for (r = 0; r < op->n_relocs; ++r) {
        const uint8_t *rel = op->relocs + 12u * r;
        uint32_t ref = tml_ld32(rel + 4u);
        if (tml_ld16(rel) != field) continue;
        if (!(ref & TML_EXEC_BLOB_REF)) return 0;
        for (k = 0; k < n; ++k) {
            int8_t s = (int8_t)op->blob[(ref & ~TML_EXEC_BLOB_REF) + k];
            if (s < -31 || s > 31) return 0;
        }
        return 1;
    }
    return 1;
}

#define SHIFT_OK(s) ((s) >= -31 && (s) <= 31)

static uint64_t broadcast_extent(const uint16_t *dims, const uint16_t *s)
{
    uint64_t last = 0;
    int k;
    for (k = 0; k < 4; ++k) {
        if (dims[k] == 0) return 0;
        last += (uint64_t)(dims[k] - 1u) * s[k];
    }
    return last + 1u;
}

static int check_conv_s8(const tml_exec_op_t *op, const tml_conv_s8_t *p, int depthwise)
{
    uint64_t in = (uint64_t)p->in_h * p->in_w * p->in_c, out = (uint64_t)p->out_h * p->out_w * p->out_c;
    uint64_t taps = (uint64_t)p->k_h * p->k_w * (depthwise ? 1u : p->in_c);
    if (p->stride_h == 0 || p->stride_w == 0 || p->dil_h == 0 || p->dil_w == 0) return -1;
    /* no empty dimension: out_h x out_w loops over 0 channels would run up to 2^32 times (a hang) */
    if (in == 0 || out == 0 || taps == 0) return -1;
    if (depthwise && (uint32_t)p->in_c * p->depth_mult != p->out_c) return -1;
    if (!io_ok(op, 2, in, out)) return -1;
    if (!PTR_OK(tml_conv_s8_t, filter, taps * p->out_c)) return -1;
    if (!PTR_NULL(tml_conv_s8_t, scratch)
        && (!PTR_ARENA(tml_conv_s8_t, scratch) || !PTR_OK(tml_conv_s8_t, scratch, 4u * ((taps + 3u) / 4u * 4u))))
        return -1;
    if (!PTR_NULL(tml_conv_s8_t, filter16)
        && (depthwise || !PTR_ARENA(tml_conv_s8_t, filter16)
            || !PTR_OK(tml_conv_s8_t, filter16, 2u * p->out_c * ((taps + 3u) / 4u * 4u)))) return -1;
    return PTR_OK(tml_conv_s8_t, bias_fold, 4u * p->out_c) && PTR_OK(tml_conv_s8_t, mult, 4u * p->out_c)
           && PTR_OK(tml_conv_s8_t, shift, p->out_c)
           && shifts_ok(op, offsetof(tml_conv_s8_t, shift), p->out_c) ? 0 : -1;
}

static int check_fc_s8(const tml_exec_op_t *op, const tml_fc_s8_t *p)
{
    if (!io_ok(op, 2, (uint64_t)p->batches * p->in_features, (uint64_t)p->batches * p->out_features)) return -1;
    if (!PTR_OK(tml_fc_s8_t, weights, (uint64_t)p->in_features * p->out_features)) return -1;
    if (!PTR_OK(tml_fc_s8_t, bias_fold, 4u * p->out_features)) return -1;
    if (p->per_channel && !(PTR_OK(tml_fc_s8_t, mults, 4u * p->out_features)
                            && PTR_OK(tml_fc_s8_t, shifts, p->out_features)
                            && shifts_ok(op, offsetof(tml_fc_s8_t, shifts), p->out_features))) return -1;
    return SHIFT_OK(p->shift) ? 0 : -1;
}

static int check_pool(const tml_exec_op_t *op, uint32_t in_h, uint32_t in_w, uint32_t c, uint32_t out_h,
                      uint32_t out_w, uint32_t stride_h, uint32_t stride_w, uint32_t elem)
{
    if (stride_h == 0 || stride_w == 0) return -1;
    if ((uint64_t)in_h * in_w * c == 0 || (uint64_t)out_h * out_w * c == 0) return -1;    /* as for conv */
    return io_ok(op, 2, (uint64_t)in_h * in_w * c * elem, (uint64_t)out_h * out_w * c * elem) ? 0 : -1;
}

static int check_pad(const tml_exec_op_t *op, const tml_pad_t *p)
{
    uint64_t in = p->elem_size, out = p->elem_size;
    int k;
    if (p->elem_size != 1 && p->elem_size != 4) return -1;
    for (k = 0; k < 4; ++k) {
        if ((uint64_t)p->before[k] + p->in_dims[k] > p->out_dims[k]) return -1;
        in *= p->in_dims[k];
        out *= p->out_dims[k];
    }
    return io_ok(op, 2, in, out) ? 0 : -1;
}

static int check_concat(const tml_exec_op_t *op, const tml_concat_t *p)
{
    uint64_t row = 0;
    uint32_t k, r;
    const uint8_t *chunk = 0;
    if (p->n_inputs + 1u != op->n_operands || op->n_operands > TML_EXEC_MAX_OPERANDS) return -1;
    if (!PTR_OK(tml_concat_t, chunk, 4u * p->n_inputs)) return -1;
    /* the per-input row sizes live in the weight blob (extent checked above) */
    for (r = 0; r < op->n_relocs; ++r) {
        const uint8_t *rel = op->relocs + 12u * r;
        uint32_t ref = tml_ld32(rel + 4u);
        if (tml_ld16(rel) == offsetof(tml_concat_t, chunk) && (ref & TML_EXEC_BLOB_REF))
            chunk = op->blob + (ref & ~TML_EXEC_BLOB_REF);
    }
    if (chunk == 0) return -1;
    for (k = 0; k < p->n_inputs; ++k) {
        uint32_t c = tml_ld32(chunk + 4u * k);
        if (c > 0x7FFFFFFFu || operand_bytes(op, k) < (uint64_t)p->outer * c) return -1;
        row += c;
    }
    return operand_bytes(op, op->n_operands - 1u) >= (uint64_t)p->outer * row ? 0 : -1;
}

int tml_exec_check(const tml_exec_op_t *op)
{
    union {
        void *align;
        uint64_t align64;
        uint8_t b[TML_EXEC_MAX_PARAMS];
    } u;
    const void *pv = u.b;
    if (op->param_size == 0 || op->param_size > TML_EXEC_MAX_PARAMS
        || op->param_size != tml_exec_param_size(op->kernel)) return -1;
    memcpy(u.b, op->params, op->param_size);
    if (!pointers_ok(op)) return -1;
    switch (op->kernel) {
    case K_COPY: return io_ok(op, 2, ((const tml_copy_t *)pv)->n, ((const tml_copy_t *)pv)->n) ? 0 : -1;
    case K_CONV_S8: return check_conv_s8(op, (const tml_conv_s8_t *)pv, 0);
    case K_DWCONV_S8: return check_conv_s8(op, (const tml_conv_s8_t *)pv, 1);
    case K_FC_S8: return check_fc_s8(op, (const tml_fc_s8_t *)pv);
    case K_AVGPOOL_S8: case K_MAXPOOL_S8: {
        const tml_pool_s8_t *p = (const tml_pool_s8_t *)pv;
        return check_pool(op, p->in_h, p->in_w, p->c, p->out_h, p->out_w, p->stride_h, p->stride_w, 1);
    }
    case K_ADD_S8: case K_MUL_S8: {
        const tml_binary_s8_t *p = (const tml_binary_s8_t *)pv;
        uint64_t out = (uint64_t)p->dims[0] * p->dims[1] * p->dims[2] * p->dims[3];
        return op->n_operands == 3 && operand_bytes(op, 0) >= broadcast_extent(p->dims, p->s1)
               && operand_bytes(op, 1) >= broadcast_extent(p->dims, p->s2) && operand_bytes(op, 2) >= out ? 0 : -1;
    }
    case K_SOFTMAX_S8: {
        const tml_softmax_s8_t *p = (const tml_softmax_s8_t *)pv;
        /* a left shift of the input differences (negative: UB, found by the fuzzer) */
        if (p->input_left_shift < 0 || p->input_left_shift > 31) return -1;
        return io_ok(op, 2, (uint64_t)p->outer * p->depth, (uint64_t)p->outer * p->depth) ? 0 : -1;
    }
    case K_PAD: return check_pad(op, (const tml_pad_t *)pv);
    case K_CONCAT: return check_concat(op, (const tml_concat_t *)pv);
    case K_MEAN_S8: case K_MEAN_F32: {
        const tml_mean_s8_t *p = (const tml_mean_s8_t *)pv;   /* outer, count, inner lead both structs */
        uint32_t e = op->kernel == K_MEAN_F32 ? 4u : 1u;
        return io_ok(op, 2, (uint64_t)p->outer * p->count * p->inner * e, (uint64_t)p->outer * p->inner * e)
               ? 0 : -1;
    }
    case K_RELU_S8: case K_RELU6_S8: case K_REQUANTIZE_S8: case K_LOGISTIC_S8: case K_TANH_S8: {
        uint32_t n = ((const tml_unary_s8_t *)pv)->size;
        return io_ok(op, 2, n, n) ? 0 : -1;
    }
    case K_QUANTIZE_F32_S8: case K_DEQUANTIZE_S8_F32: {
        uint64_t n = ((const tml_quant_t *)pv)->size;
        return io_ok(op, 2, op->kernel == K_QUANTIZE_F32_S8 ? 4u * n : n,
                     op->kernel == K_QUANTIZE_F32_S8 ? n : 4u * n) ? 0 : -1;
    }
    case K_CONV_F32: case K_DWCONV_F32: {
        const tml_conv_f32_t *p = (const tml_conv_f32_t *)pv;
        int dw = op->kernel == K_DWCONV_F32;
        uint64_t taps = (uint64_t)p->k_h * p->k_w * (dw ? 1u : p->in_c);
        if (p->stride_h == 0 || p->stride_w == 0 || p->dil_h == 0 || p->dil_w == 0) return -1;
        if (dw && (uint32_t)p->in_c * p->depth_mult != p->out_c) return -1;
        return io_ok(op, 2, 4u * (uint64_t)p->in_h * p->in_w * p->in_c, 4u * (uint64_t)p->out_h * p->out_w * p->out_c)
               && PTR_OK(tml_conv_f32_t, filter, 4u * taps * p->out_c)
               && PTR_OK(tml_conv_f32_t, bias, 4u * p->out_c) ? 0 : -1;
    }
    case K_FC_F32: {
        const tml_fc_f32_t *p = (const tml_fc_f32_t *)pv;
        return io_ok(op, 2, 4u * (uint64_t)p->batches * p->in_features, 4u * (uint64_t)p->batches * p->out_features)
               && PTR_OK(tml_fc_f32_t, weights, 4u * (uint64_t)p->in_features * p->out_features)
               && PTR_OK(tml_fc_f32_t, bias, 4u * p->out_features) ? 0 : -1;
    }
    case K_AVGPOOL_F32: case K_MAXPOOL_F32: {
        const tml_pool_f32_t *p = (const tml_pool_f32_t *)pv;
        return check_pool(op, p->in_h, p->in_w, p->c, p->out_h, p->out_w, p->stride_h, p->stride_w, 4);
    }
    case K_ADD_F32: case K_MUL_F32: {
        const tml_binary_f32_t *p = (const tml_binary_f32_t *)pv;
        uint64_t out = 4u, e1 = 1u, e2 = 1u;
        int k;
        for (k = 0; k < 4; ++k) {
            if (p->dims[k] == 0) return -1;
            out *= p->dims[k];
            e1 += (uint64_t)(p->dims[k] - 1u) * p->s1[k];
            e2 += (uint64_t)(p->dims[k] - 1u) * p->s2[k];
        }
        return op->n_operands == 3 && operand_bytes(op, 0) >= 4u * e1 && operand_bytes(op, 1) >= 4u * e2
               && operand_bytes(op, 2) >= out ? 0 : -1;
    }
    case K_CLAMP_F32: case K_LOGISTIC_F32: case K_TANH_F32: {
        uint64_t n = 4u * (uint64_t)((const tml_unary_f32_t *)pv)->size;
        return io_ok(op, 2, n, n) ? 0 : -1;
    }
    case K_SOFTMAX_F32: {
        const tml_softmax_f32_t *p = (const tml_softmax_f32_t *)pv;
        uint64_t n = 4u * (uint64_t)p->outer * p->depth;
        return io_ok(op, 2, n, n) ? 0 : -1;
    }
    default: return -1;
    }
}

/* ---- dispatch ------------------------------------------------------------ */

#define P(T) ((const T *)params)
#define IN(T, j) ((const T *)io[j])
#define OUT(T, j) ((T *)io[j])

void tml_exec_call(uint32_t kernel, const void *params, void *const *io, uint32_t n_io)
{
    (void)n_io;
    switch (kernel) {
#if TML_EXEC_HAS(0)
    case K_COPY: memmove(io[1], io[0], P(tml_copy_t)->n); break;
#endif
#if TML_EXEC_HAS(1)
    case K_CONV_S8: tml_conv_s8(P(tml_conv_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(2)
    case K_DWCONV_S8: tml_dwconv_s8(P(tml_conv_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(3)
    case K_FC_S8: tml_fc_s8(P(tml_fc_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(4)
    case K_AVGPOOL_S8: tml_avgpool_s8(P(tml_pool_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(5)
    case K_MAXPOOL_S8: tml_maxpool_s8(P(tml_pool_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(6)
    case K_ADD_S8: tml_add_s8(P(tml_binary_s8_t), IN(int8_t, 0), IN(int8_t, 1), OUT(int8_t, 2)); break;
#endif
#if TML_EXEC_HAS(7)
    case K_MUL_S8: tml_mul_s8(P(tml_binary_s8_t), IN(int8_t, 0), IN(int8_t, 1), OUT(int8_t, 2)); break;
#endif
#if TML_EXEC_HAS(8)
    case K_SOFTMAX_S8: tml_softmax_s8(P(tml_softmax_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(9)
    case K_PAD: tml_pad(P(tml_pad_t), io[0], io[1]); break;
#endif
#if TML_EXEC_HAS(10)
    case K_CONCAT: tml_concat(P(tml_concat_t), (const void *const *)io, io[n_io - 1]); break;
#endif
#if TML_EXEC_HAS(11)
    case K_MEAN_S8: tml_mean_s8(P(tml_mean_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(12)
    case K_RELU_S8: tml_relu_s8(P(tml_unary_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(13)
    case K_RELU6_S8: tml_relu6_s8(P(tml_unary_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(14)
    case K_REQUANTIZE_S8: tml_requantize_s8(P(tml_unary_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(15)
    case K_LOGISTIC_S8: tml_logistic_s8(P(tml_unary_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(16)
    case K_TANH_S8: tml_tanh_s8(P(tml_unary_s8_t), IN(int8_t, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(17)
    case K_QUANTIZE_F32_S8: tml_quantize_f32_s8(P(tml_quant_t), IN(float, 0), OUT(int8_t, 1)); break;
#endif
#if TML_EXEC_HAS(18)
    case K_DEQUANTIZE_S8_F32: tml_dequantize_s8_f32(P(tml_quant_t), IN(int8_t, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(19)
    case K_CONV_F32: tml_conv_f32(P(tml_conv_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(20)
    case K_DWCONV_F32: tml_dwconv_f32(P(tml_conv_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(21)
    case K_FC_F32: tml_fc_f32(P(tml_fc_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(22)
    case K_AVGPOOL_F32: tml_avgpool_f32(P(tml_pool_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(23)
    case K_MAXPOOL_F32: tml_maxpool_f32(P(tml_pool_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(24)
    case K_MEAN_F32: tml_mean_f32(P(tml_mean_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(25)
    case K_ADD_F32: tml_add_f32(P(tml_binary_f32_t), IN(float, 0), IN(float, 1), OUT(float, 2)); break;
#endif
#if TML_EXEC_HAS(26)
    case K_MUL_F32: tml_mul_f32(P(tml_binary_f32_t), IN(float, 0), IN(float, 1), OUT(float, 2)); break;
#endif
#if TML_EXEC_HAS(27)
    case K_CLAMP_F32: tml_clamp_f32(P(tml_unary_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(28)
    case K_LOGISTIC_F32: tml_logistic_f32(P(tml_unary_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(29)
    case K_TANH_F32: tml_tanh_f32(P(tml_unary_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
#if TML_EXEC_HAS(30)
    case K_SOFTMAX_F32: tml_softmax_f32(P(tml_softmax_f32_t), IN(float, 0), OUT(float, 1)); break;
#endif
    default: break;
    }
}
