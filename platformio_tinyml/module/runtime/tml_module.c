/* tml_module.c - inference module loader, I/O access and A/B slots.
 *
 * Every field of the module is read byte by byte (little-endian) and every
 * offset is checked before use with subtraction-only arithmetic (no
 * overflow), so a truncated, oversized or malicious image can only be
 * refused. The order of checks is that of docs/inference-module-format.md:
 * cheap structure first, reserved fields zero, then CRC (every byte before
 * it), then the signature (every byte before it, CRC included), then
 * compatibility, then the op table. Nothing is written anywhere except 'm'.
 *
 * TML_MODULE_TFLITE (firmware that embeds TensorFlow Lite Micro) also
 * accepts TFLITE modules: validated the same way up to the payload, which
 * must be a 16-byte aligned flatbuffer with the "TFL3" identifier, then
 * handed to the firmware's TFLM code by tml_module_tflite().
 *
 * TML_MODULE_FUZZING (fuzz builds only) skips the CRC and signature so the
 * fuzzer reaches the parsers behind them; fuzz builds without it run them.
 */
#include "tml_module.h"

#include <stddef.h>
#include <string.h>

#include "tml_ed25519.h"
#include "tml_exec.h"

#define FIXED_HEADER 128u
#define TENSOR_DESC 40u
#define TRAILER 72u
#define GRAPH_HEADER 16u
#define KIND_GRAPH 1u
#define KIND_TFLITE 2u
#define FORMAT_VERSION 2u

static uint64_t ld64(const uint8_t *p) { return (uint64_t)tml_ld32(p) | ((uint64_t)tml_ld32(p + 4) << 32); }

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        int k;
        c ^= *p++;
        for (k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static int all_zero(const uint8_t *p, uint32_t n)
{
    while (n--)
        if (*p++ != 0) return 0;
    return 1;
}

/* Reserved fields of header and trailer (spec section 2): descriptor
 * reserved words and shape entries past the rank, header padding, the
 * trailer's reserved word. 'end' = header + payload size. */
static int reserved_zero(const uint8_t *b, uint32_t n_tensors, uint32_t hsize, uint32_t end)
{
    const uint8_t *d = b + FIXED_HEADER;
    uint32_t k, j;
    for (k = 0; k < n_tensors; ++k, d += TENSOR_DESC) {
        if (tml_ld16(d + 2) != 0 || tml_ld32(d + 36) != 0) return 0;
        for (j = d[1]; j < 4u; ++j)
            if (tml_ld32(d + 4 + 4 * j) != 0) return 0;
    }
    return all_zero(d, hsize - FIXED_HEADER - TENSOR_DESC * n_tensors) && tml_ld32(b + end) == 0;
}

/* I/O descriptors; 'arena' = 0xFFFFFFFF: no arena offsets (TFLITE: TFLM places tensors). */
static int check_tensors(const uint8_t *d, uint32_t n, uint32_t arena)
{
    static const uint8_t itemsize[6] = {0, 1, 1, 2, 4, 4};
    uint32_t k;
    for (k = 0; k < n; ++k, d += TENSOR_DESC) {
        uint64_t count = 1;
        uint32_t j, aoff = tml_ld32(d + 28), nbytes = tml_ld32(d + 32);
        if (d[0] == 0 || d[0] > 5 || d[1] > 4) return TML_MOD_E_TENSOR;
        for (j = 0; j < d[1]; ++j) {
            count *= tml_ld32(d + 4 + 4 * j);
            if (count > 0xFFFFFFFFu) return TML_MOD_E_TENSOR;
        }
        if (count * itemsize[d[0]] != nbytes) return TML_MOD_E_TENSOR;
        if (arena != 0xFFFFFFFFu && (aoff > arena || nbytes > arena - aoff)) return TML_MOD_E_TENSOR;
    }
    return TML_MOD_OK;
}

/* Operand / pointer reference 'ref' with extent 'n' inside the arena or blob,
 * and 4-byte aligned (spec section 1): kernels load int32 and float words. */
static int ref_ok(uint32_t ref, uint32_t n, uint32_t arena, uint32_t blob)
{
    uint32_t space = (ref & TML_EXEC_BLOB_REF) ? blob : arena, off = ref & ~TML_EXEC_BLOB_REF;
    return off % 4u == 0 && off <= space && n <= space - off;
}

static int check_graph(tml_module_t *m, const uint8_t *payload, uint32_t psize, uint64_t mask)
{
    uint32_t n_ops, ops_size, blob_off, blob_size, k, pos;
    uint64_t used = 0;
    if (psize < GRAPH_HEADER) return TML_MOD_E_GRAPH;
    n_ops = tml_ld32(payload);
    ops_size = tml_ld32(payload + 4);
    blob_off = tml_ld32(payload + 8);
    blob_size = tml_ld32(payload + 12);
    if (blob_off % 16u || blob_off > psize || blob_size > psize - blob_off
        || ops_size > blob_off - GRAPH_HEADER || blob_off < GRAPH_HEADER) return TML_MOD_E_GRAPH;
    if (!all_zero(payload + GRAPH_HEADER + ops_size, blob_off - GRAPH_HEADER - ops_size)
        || !all_zero(payload + blob_off + blob_size, psize - blob_off - blob_size)) return TML_MOD_E_GRAPH;
    m->ops = payload + GRAPH_HEADER;
    m->blob = payload + blob_off;
    m->blob_size = blob_size;
    for (k = 0, pos = 0; k < n_ops; ++k) {
        const uint8_t *r = m->ops + pos;
        tml_exec_op_t op;
        uint32_t j, rsize, need;
        if (ops_size - pos < 8u) return TML_MOD_E_GRAPH;
        op.kernel = r[0];
        op.n_operands = r[1];
        op.n_relocs = r[2];
        op.param_size = tml_ld16(r + 4);
        rsize = tml_ld16(r + 6);
        need = 8u + 8u * op.n_operands + 12u * op.n_relocs + op.param_size;
        if (r[3] != 0 || rsize % 4u || rsize < need || rsize > ops_size - pos || !all_zero(r + need, rsize - need))
            return TML_MOD_E_GRAPH;
        if (op.kernel >= 64u || !((mask >> op.kernel) & 1u)) return TML_MOD_E_GRAPH;
        if (op.n_operands < 2u || op.n_operands > TML_EXEC_MAX_OPERANDS) return TML_MOD_E_GRAPH;
        op.operands = r + 8;
        op.relocs = op.operands + 8u * op.n_operands;
        op.params = op.relocs + 12u * op.n_relocs;
        op.blob = m->blob;
        for (j = 0; j < op.n_operands; ++j)
            if (!ref_ok(tml_ld32(op.operands + 8 * j), tml_ld32(op.operands + 8 * j + 4), m->arena_bytes, blob_size))
                return TML_MOD_E_GRAPH;
        /* The output (last operand) is written: arena only, never the module (found by the fuzzer). */
        if (tml_ld32(op.operands + 8u * (op.n_operands - 1u)) & TML_EXEC_BLOB_REF) return TML_MOD_E_GRAPH;
        for (j = 0; j < op.n_relocs; ++j) {
            const uint8_t *rel = op.relocs + 12u * j;
            uint32_t field = tml_ld16(rel);
            if (tml_ld16(rel + 2) != 0 || field % sizeof(void *) || field > op.param_size
                || op.param_size - field < sizeof(void *)
                || !ref_ok(tml_ld32(rel + 4), tml_ld32(rel + 8), m->arena_bytes, blob_size))
                return TML_MOD_E_GRAPH;
        }
        if (tml_exec_check(&op) != 0) return TML_MOD_E_GRAPH;
        used |= (uint64_t)1 << op.kernel;
        pos += rsize;
    }
    if (pos != ops_size || used != mask) return TML_MOD_E_GRAPH;
    m->n_ops = n_ops;
    return TML_MOD_OK;
}

#ifdef TML_MODULE_TFLITE
/* After CRC and signature: the rest of a TFLITE module's checks. */
static int open_tflite(tml_module_t *m, const uint8_t *b, uint32_t hsize, uint32_t psize, uint32_t n_tensors,
                       uint32_t min_version, uint32_t arena_bytes)
{
    int err;
    if (b[9] != 0 || ld64(b + 32) != 0 || ld64(b + 40) != 0) return TML_MOD_E_HEADER;
    if (((uintptr_t)(b + hsize) & 15u) != 0) return TML_MOD_E_ALIGN;    /* TFLM wants 16 */
    if (psize < 8u || memcmp(b + hsize + 4, "TFL3", 4) != 0) return TML_MOD_E_TFLITE;
    m->version = tml_ld32(b + 16);
    if (m->version < min_version) return TML_MOD_E_VERSION;
    m->arena_bytes = tml_ld32(b + 28);
    if (m->arena_bytes > arena_bytes) return TML_MOD_E_ARENA;
    err = check_tensors(b + FIXED_HEADER, n_tensors, 0xFFFFFFFFu);
    if (err) return err;
    m->image = b;
    m->size = hsize + psize + TRAILER;
    m->desc = b + FIXED_HEADER;
    m->n_inputs = b[10];
    m->n_outputs = b[11];
    m->blob = b + hsize;
    m->blob_size = psize;
    return TML_MOD_OK;
}
#endif

static int open_checked(tml_module_t *m, const uint8_t *b, uint32_t avail, const uint8_t *key,
                        uint32_t min_version, uint32_t arena_bytes)
{
    static const uint16_t one = 1;
    uint32_t total, hsize, psize, n_tensors, end;
    uint64_t mask;
    int err;
    if (*(const uint8_t *)&one != 1u) return TML_MOD_E_ENDIAN;
    if (((uintptr_t)b & 3u) != 0) return TML_MOD_E_ALIGN;
    if (avail < FIXED_HEADER + TRAILER) return TML_MOD_E_TRUNCATED;
    if (memcmp(b, "TMOD", 4) != 0) return TML_MOD_E_MAGIC;
    if (tml_ld16(b + 4) != FORMAT_VERSION) return TML_MOD_E_FORMAT_VERSION;
    total = tml_ld32(b + 20);
    if (total > avail) return TML_MOD_E_TRUNCATED;
    if (total < FIXED_HEADER + TRAILER) return TML_MOD_E_SIZE;
    hsize = tml_ld16(b + 6);
    n_tensors = (uint32_t)b[10] + b[11];
    if (hsize != ((FIXED_HEADER + TENSOR_DESC * n_tensors + 15u) & ~15u) || tml_ld32(b + 12) != 0)
        return TML_MOD_E_HEADER;
    psize = tml_ld32(b + 24);
    if (hsize > total - TRAILER || psize % 8u || psize != total - TRAILER - hsize) return TML_MOD_E_SIZE;
    end = hsize + psize;            /* trailer: reserved | CRC-32 | signature */
    if (!reserved_zero(b, n_tensors, hsize, end)) return TML_MOD_E_RESERVED;
#ifndef TML_MODULE_FUZZING
    if (crc32(b, end + 4u) != tml_ld32(b + end + 4)) return TML_MOD_E_CRC;
    if (tml_ed25519_check(b + end + 8, key, b, end + 8u) != 0) return TML_MOD_E_SIGNATURE;
#else
    (void)key;
    (void)crc32;
#endif
    m->kind = b[8];
#ifdef TML_MODULE_TFLITE
    if (m->kind == KIND_TFLITE) return open_tflite(m, b, hsize, psize, n_tensors, min_version, arena_bytes);
#endif
    if (m->kind != KIND_GRAPH) return TML_MOD_E_KIND;
    mask = ld64(b + 32);
    if (b[9] != TML_EXEC_ABI || ld64(b + 40) != (uint64_t)TML_EXEC_KERNEL_ABI_HASH) return TML_MOD_E_KERNEL_ABI;
    if (mask & ~(uint64_t)TML_EXEC_KERNEL_MASK) return TML_MOD_E_KERNEL_SET;
    m->version = tml_ld32(b + 16);
    if (m->version < min_version) return TML_MOD_E_VERSION;
    m->arena_bytes = tml_ld32(b + 28);
    if (m->arena_bytes > arena_bytes) return TML_MOD_E_ARENA;
    err = check_tensors(b + FIXED_HEADER, n_tensors, m->arena_bytes);
    if (err) return err;
    err = check_graph(m, b + hsize, psize, mask);
    if (err) return err;
    m->image = b;
    m->size = total;
    m->desc = b + FIXED_HEADER;
    m->n_inputs = b[10];
    m->n_outputs = b[11];
    return TML_MOD_OK;
}

int tml_module_open(tml_module_t *m, const void *image, uint32_t avail, const uint8_t public_key[32],
                    uint32_t min_version, uint8_t *arena, uint32_t arena_bytes)
{
    int err;
    if (m == 0) return TML_MOD_E_ARG;
    memset(m, 0, sizeof *m);
    if (image == 0 || public_key == 0 || (arena == 0 && arena_bytes != 0)) return TML_MOD_E_ARG;
    err = open_checked(m, (const uint8_t *)image, avail, public_key, min_version, arena_bytes);
    if (err) {
        memset(m, 0, sizeof *m);
        return err;
    }
    m->arena = arena;
    return TML_MOD_OK;
}

static void *resolve(const tml_module_t *m, uint32_t ref)
{
    return (ref & TML_EXEC_BLOB_REF) ? (void *)(uintptr_t)(m->blob + (ref & ~TML_EXEC_BLOB_REF))
                                     : (void *)(m->arena + ref);
}

int tml_module_invoke(const tml_module_t *m)
{
    const uint8_t *r;
    uint32_t k;
    if (m == 0 || m->image == 0) return TML_MOD_E_ARG;
    if (m->kind != KIND_GRAPH) return TML_MOD_E_KIND;
    for (k = 0, r = m->ops; k < m->n_ops; ++k) {
        union {
            void *align;
            uint64_t align64;
            uint8_t b[TML_EXEC_MAX_PARAMS];
        } params;
        void *io[TML_EXEC_MAX_OPERANDS];
        uint32_t j, n_io = r[1], n_rel = r[2], psize = tml_ld16(r + 4);
        const uint8_t *opnd = r + 8, *rel = opnd + 8u * n_io;
        memcpy(params.b, rel + 12u * n_rel, psize);
        for (j = 0; j < n_rel; ++j, rel += 12) {
            void *p = resolve(m, tml_ld32(rel + 4));
            memcpy(params.b + tml_ld16(rel), &p, sizeof p);
        }
        for (j = 0; j < n_io; ++j) io[j] = resolve(m, tml_ld32(opnd + 8u * j));
        tml_exec_call(r[0], params.b, io, n_io);
        r += tml_ld16(r + 6);
    }
    return TML_MOD_OK;
}

static void *tensor(const tml_module_t *m, unsigned k, uint32_t *nbytes)
{
    const uint8_t *d = m->desc + TENSOR_DESC * k;
    if (nbytes) *nbytes = tml_ld32(d + 32);
    return m->arena + tml_ld32(d + 28);
}

void *tml_module_input(const tml_module_t *m, unsigned k, uint32_t *nbytes)
{
    return (m && m->image && m->kind == KIND_GRAPH && k < m->n_inputs) ? tensor(m, k, nbytes) : 0;
}

void *tml_module_output(const tml_module_t *m, unsigned k, uint32_t *nbytes)
{
    return (m && m->image && m->kind == KIND_GRAPH && k < m->n_outputs) ? tensor(m, m->n_inputs + k, nbytes) : 0;
}

const void *tml_module_tflite(const tml_module_t *m, uint32_t *size)
{
    if (!(m && m->image && m->kind == KIND_TFLITE)) return 0;
    if (size) *size = m->blob_size;
    return m->blob;
}

const char *tml_module_strerror(int err)
{
    static const char *const names[] = {
        "ok", "bad argument", "misaligned image", "truncated", "bad magic", "unknown format version",
        "bad header", "bad size", "crc mismatch", "bad signature", "unsupported payload kind",
        "kernel ABI mismatch", "kernel missing from firmware", "older than installed", "arena too small",
        "bad tensor descriptor", "bad op table", "big-endian cpu", "not a TFLite flatbuffer",
        "reserved field not zero"};
    return (err <= 0 && -err < (int)(sizeof names / sizeof names[0])) ? names[-err] : "unknown error";
}

/* ---- A/B slots ------------------------------------------------------------ */

static int open_slot(tml_slots_t *s, int slot, uint32_t min_version, tml_module_t *out)
{
    if (slot < 0 || slot > 1 || s->base[slot] == 0 || s->size[slot] == 0) return TML_MOD_E_ARG;
    return tml_module_open(out, s->base[slot], s->size[slot], s->public_key, min_version, s->arena,
                           s->arena_bytes);
}

int tml_slots_boot(tml_slots_t *s, int active, uint32_t installed_version)
{
    int err, other;
    tml_module_t m;
    if (s == 0) return TML_MOD_E_ARG;
    s->active = -1;
    s->installed_version = installed_version;
    err = open_slot(s, active, installed_version, &m);
    other = active == 0 ? 1 : 0;
    if (err == TML_MOD_OK || open_slot(s, other, installed_version, &m) == TML_MOD_OK) {
        s->active = err == TML_MOD_OK ? active : other;
        s->installed_version = m.version;
        s->module = m;
    }
    return err;
}

int tml_slots_install(tml_slots_t *s, int slot)
{
    tml_module_t m;
    int err;
    if (s == 0 || slot == s->active) return TML_MOD_E_ARG;
    err = open_slot(s, slot, s->installed_version, &m);
    if (err != TML_MOD_OK) return err;
    s->module = m;          /* the switch: only after every check passed */
    s->active = slot;
    s->installed_version = m.version;
    return TML_MOD_OK;
}
