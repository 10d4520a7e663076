/* tml_exec.h - between the module loader and the table-driven executor.
 * Internal to the module runtime; firmware uses tml_module.h. */
#ifndef TML_EXEC_H
#define TML_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "tml_exec_config.h"

#define TML_EXEC_MAX_PARAMS 128     /* bytes of the largest parameter block */
#define TML_EXEC_MAX_OPERANDS 16
#define TML_EXEC_BLOB_REF 0x80000000u

#if UINTPTR_MAX == 0xFFFFFFFFu
#define TML_EXEC_ABI 1u
#define TML_EXEC_KERNEL_ABI_HASH TML_EXEC_KERNEL_ABI_HASH_ILP32
#else
#define TML_EXEC_ABI 2u
#define TML_EXEC_KERNEL_ABI_HASH TML_EXEC_KERNEL_ABI_HASH_LP64
#endif

#define TML_EXEC_HAS(id) ((TML_EXEC_KERNEL_MASK >> (id)) & 1u)

static inline uint32_t tml_ld16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t tml_ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* One decoded op record (pointers into the module image). */
typedef struct {
    uint32_t kernel;
    uint32_t n_operands, n_relocs, param_size;
    const uint8_t *operands;        /* n_operands x (ref u32, bytes u32) */
    const uint8_t *relocs;          /* n_relocs x (field u16, 0 u16, ref u32, bytes u32) */
    const uint8_t *params;
    const uint8_t *blob;            /* the module's weight blob */
} tml_exec_op_t;

/* sizeof the kernel's parameter struct, or 0 if the kernel is not built in. */
uint32_t tml_exec_param_size(uint32_t kernel);

/* Do the kernel's parameters agree with the declared operand and pointer
 * extents (so it cannot touch memory outside them)? 0 = yes. */
int tml_exec_check(const tml_exec_op_t *op);

/* Call the kernel: 'params' (aligned, pointers patched), 'io' inputs then output. */
void tml_exec_call(uint32_t kernel, const void *params, void *const *io, uint32_t n_io);

#endif /* TML_EXEC_H */
