/*
 * The few declarations of QEMU's TCG plugin API (version 1, as in QEMU 7.2)
 * that tml_cycles_plugin.c uses; Debian ships QEMU with plugin support but
 * not its header.  Written from the API's documentation.
 */
#ifndef TML_QEMU_PLUGIN_H
#define TML_QEMU_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TML_PLUGIN_EXPORT __attribute__((visibility("default")))
#define TML_QEMU_PLUGIN_VERSION 1

typedef uint64_t tml_plugin_id_t;
typedef uint32_t tml_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum tml_cb_flags { TML_CB_NO_REGS, TML_CB_R_REGS, TML_CB_RW_REGS };
enum tml_mem_rw { TML_MEM_R = 1, TML_MEM_W, TML_MEM_RW };

typedef void (*tml_tb_trans_cb)(tml_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*tml_vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);
typedef void (*tml_mem_cb)(unsigned int vcpu_index, tml_meminfo_t info, uint64_t vaddr, void *userdata);
typedef void (*tml_udata_cb)(tml_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(tml_plugin_id_t id, tml_tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, tml_vcpu_udata_cb cb,
                                          enum tml_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, tml_mem_cb cb, enum tml_cb_flags flags,
                                      enum tml_mem_rw rw, void *userdata);
void qemu_plugin_register_atexit_cb(tml_plugin_id_t id, tml_udata_cb cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);
bool qemu_plugin_mem_is_store(tml_meminfo_t info);

TML_PLUGIN_EXPORT int qemu_plugin_install(tml_plugin_id_t id, const void *info, int argc, char **argv);

#endif
