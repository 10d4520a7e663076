/*
 * QEMU TCG plugin for benchmarks/cycle_model.py: which translation blocks ran,
 * how often, how often they left through a taken branch, and what a simple
 * flash cache (ART-style) would have missed.
 *
 * Counting is on between two calls of the function at `toggle=ADDR` (the
 * firmware's board_instructions(), which brackets one inference), so start-up
 * and printing are not counted.  At exit it writes, for every block that ran
 * while counting:
 *
 *   T <start> <end> <n_insns> <executions> <taken> <icache_target_misses> <icache_seq_misses>
 *   I <addr> <size> <flash_loads> <dcache_misses>        (n_insns lines)
 *
 * "taken": the next block counted did not start at this block's end (the
 * branch that ended it was taken, or an exception was entered).  The caches are
 * fully associative LRU over [flash_lo, flash_hi): instruction lines are
 * looked up for every line a block covers (a miss on the block's first line
 * after a taken branch is a "target" miss, any other a "sequential" one); data
 * lines for every load from flash.  Arguments: out=PATH toggle=ADDR
 * flash_lo=ADDR flash_hi=ADDR iline=32 ilines=32 dline=32 dlines=8.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tml_qemu_plugin.h"

TML_PLUGIN_EXPORT int qemu_plugin_version = TML_QEMU_PLUGIN_VERSION;

struct insn_rec {
    uint64_t addr;
    uint32_t size;
    uint64_t flash_loads, dmiss;
};

struct tb_rec {
    uint64_t start, end;
    size_t n;
    uint64_t count, taken, imiss_target, imiss_seq;
    struct insn_rec *insns;
    struct tb_rec *next_all;
};

struct cache {
    unsigned line_shift, lines;
    uint64_t *tag;    /* line address + 1; 0 = empty */
    uint64_t *used;   /* LRU stamp */
    uint64_t clock;
};

static struct tb_rec *all_tbs;
static struct tb_rec *prev;
static bool counting;
static uint64_t toggle_addr = UINT64_MAX, flash_lo, flash_hi;
static struct cache icache, dcache;
static char out_path[4096];

static unsigned log2u(unsigned v)
{
    unsigned s = 0;
    while ((1u << s) < v)
        ++s;
    return s;
}

static void cache_init(struct cache *c, unsigned line, unsigned lines)
{
    c->line_shift = log2u(line);
    c->lines = lines;
    c->tag = calloc(lines ? lines : 1, sizeof *c->tag);
    c->used = calloc(lines ? lines : 1, sizeof *c->used);
}

/* true on a hit; a miss fills the least recently used line */
static bool cache_access(struct cache *c, uint64_t addr)
{
    uint64_t tag = (addr >> c->line_shift) + 1;
    unsigned victim = 0, i;
    ++c->clock;
    for (i = 0; i < c->lines; ++i) {
        if (c->tag[i] == tag) {
            c->used[i] = c->clock;
            return true;
        }
        if (c->used[i] < c->used[victim])
            victim = i;
    }
    if (c->lines) {
        c->tag[victim] = tag;
        c->used[victim] = c->clock;
    }
    return false;
}

static bool in_flash(uint64_t a)
{
    return a >= flash_lo && a < flash_hi;
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    struct tb_rec *tb = udata;
    uint64_t line, first, last;
    (void)vcpu;
    if (tb->start == toggle_addr) {
        counting = !counting;
        prev = NULL;
    }
    if (!counting)
        return;
    ++tb->count;
    bool after_taken = prev && prev->end != tb->start;
    if (after_taken)
        ++prev->taken;
    prev = tb;
    if (!in_flash(tb->start))
        return;
    first = tb->start >> icache.line_shift;
    last = (tb->end - 1) >> icache.line_shift;
    for (line = first; line <= last; ++line) {
        if (!cache_access(&icache, line << icache.line_shift)) {
            if (line == first && after_taken)
                ++tb->imiss_target;
            else
                ++tb->imiss_seq;
        }
    }
}

static void mem_access(unsigned int vcpu, tml_meminfo_t info, uint64_t vaddr, void *udata)
{
    struct insn_rec *ir = udata;
    (void)vcpu;
    if (!counting || qemu_plugin_mem_is_store(info) || !in_flash(vaddr))
        return;
    ++ir->flash_loads;
    if (!cache_access(&dcache, vaddr))
        ++ir->dmiss;
}

static void tb_trans(tml_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    struct tb_rec *r = calloc(1, sizeof *r);
    (void)id;
    r->n = n;
    r->insns = calloc(n ? n : 1, sizeof *r->insns);
    r->start = qemu_plugin_tb_vaddr(tb);
    r->end = r->start;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        r->insns[i].addr = qemu_plugin_insn_vaddr(insn);
        r->insns[i].size = (uint32_t)qemu_plugin_insn_size(insn);
        r->end = r->insns[i].addr + r->insns[i].size;
        qemu_plugin_register_vcpu_mem_cb(insn, mem_access, TML_CB_NO_REGS, TML_MEM_RW, &r->insns[i]);
    }
    r->next_all = all_tbs;
    all_tbs = r;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, TML_CB_NO_REGS, r);
}

static void at_exit(tml_plugin_id_t id, void *p)
{
    FILE *f = fopen(out_path, "w");
    struct tb_rec *r;
    size_t i;
    (void)id;
    (void)p;
    if (!f) {
        qemu_plugin_outs("tml_cycles: cannot write the output file\n");
        return;
    }
    for (r = all_tbs; r; r = r->next_all) {
        if (!r->count)
            continue;
        fprintf(f, "T %llx %llx %zu %llu %llu %llu %llu\n", (unsigned long long)r->start,
                (unsigned long long)r->end, r->n, (unsigned long long)r->count,
                (unsigned long long)r->taken, (unsigned long long)r->imiss_target,
                (unsigned long long)r->imiss_seq);
        for (i = 0; i < r->n; ++i)
            fprintf(f, "I %llx %u %llu %llu\n", (unsigned long long)r->insns[i].addr, r->insns[i].size,
                    (unsigned long long)r->insns[i].flash_loads, (unsigned long long)r->insns[i].dmiss);
    }
    fclose(f);
}

static uint64_t parse_num(const char *s)
{
    return strtoull(s, NULL, 0);
}

TML_PLUGIN_EXPORT int qemu_plugin_install(tml_plugin_id_t id, const void *info, int argc, char **argv)
{
    unsigned iline = 32, ilines = 32, dline = 32, dlines = 8;
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (!eq)
            continue;
        size_t k = (size_t)(eq - a);
        const char *v = eq + 1;
        if (k == 3 && !strncmp(a, "out", k))
            snprintf(out_path, sizeof out_path, "%s", v);
        else if (!strncmp(a, "toggle", k))
            toggle_addr = parse_num(v) & ~(uint64_t)1;   /* Thumb symbols carry bit 0 */
        else if (!strncmp(a, "flash_lo", k))
            flash_lo = parse_num(v);
        else if (!strncmp(a, "flash_hi", k))
            flash_hi = parse_num(v);
        else if (!strncmp(a, "ilines", k))
            ilines = (unsigned)parse_num(v);
        else if (!strncmp(a, "iline", k))
            iline = (unsigned)parse_num(v);
        else if (!strncmp(a, "dlines", k))
            dlines = (unsigned)parse_num(v);
        else if (!strncmp(a, "dline", k))
            dline = (unsigned)parse_num(v);
    }
    if (!out_path[0]) {
        qemu_plugin_outs("tml_cycles: out=PATH is required\n");
        return -1;
    }
    cache_init(&icache, iline, ilines);
    cache_init(&dcache, dline, dlines);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
