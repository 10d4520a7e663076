"""The cycle model of benchmarks/cycle_model.py on real QEMU runs.

Each case is an instruction sequence whose cycle count the Arm manuals state
(Cortex-M4 TRM "Processor instruction timings" and its load/store pipelining
notes; Cortex-M0+ TRM cycle table), built into a firmware between two
board_instructions() calls and run on QEMU with the tracing plugin. A baseline
of two NOPs is subtracted, so what is checked is the sequence alone, including
how often QEMU's trace says a branch was taken.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import cycle_model  # noqa: E402

from platformio_tinyml.emu import build_firmware  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm")

HARNESS = r"""
#include <stdint.h>
#include "tml_board.h"
static uint32_t buf[16];
__attribute__((noinline, naked)) static void seq(uint32_t *p __attribute__((unused)))
{
    __asm volatile(
        ".syntax unified\n"
        "push {r4-r7}\n"
        "mov r1, r0\n mov r3, r0\n movs r2, #4\n mov r5, r0\n"
        "nop\n"
        %s
        "nop\n"
        "pop {r4-r7}\n"
        "bx lr\n");
}
int main(void)
{
    board_init();
    volatile uint32_t t0 = board_instructions();
    seq(buf);
    volatile uint32_t t1 = board_instructions();
    (void)t0; (void)t1;
    board_exit(0);
}
"""


def _cycles(tmp_path: Path, name: str, asm: str, core: str = "m4") -> tuple[int, int]:
    lines = "".join(f'"{line.strip()}\\n"\n' for line in asm.strip().splitlines())
    src = tmp_path / f"{name}.c"
    src.write_text(HARNESS % lines)
    machine, flags = ("mps2-an386", []) if core == "m4" else ("mps2-an385", ["-mcpu=cortex-m0"])
    elf = build_firmware([src], [], tmp_path / f"{name}.elf", machine, extra_cflags=flags, opt="-O1")
    c = cycle_model.measure(elf, machine, core)
    return c.instructions, c.cycles


# name, sequence, instructions, Cortex-M4 cycles the manual gives
M4_CASES = [
    ("alu", "add r4, r4, #1\n eor r6, r6, r4\n mul r7, r6, r6", 3, 3),
    ("mla_2", "mla r4, r6, r6, r4", 1, 2),
    ("smlad_1", "smlad r4, r6, r7, r4", 1, 1),
    ("ldr_2", "ldr r4, [r1]", 1, 2),
    # "LDR R0,[R1]; LDR R1,[R2]: normally three cycles total"
    ("ldr_ldr_3", "ldr r4, [r1]\n ldr r6, [r3, #4]", 2, 3),
    # "LDR R0,[R1,R2]; STR R0,[R3,#20]: normally three cycles total"
    ("ldr_str_3", "ldr r4, [r1, r2]\n str r4, [r3, #20]", 2, 3),
    # STR with an immediate offset is one cycle (write buffer)
    ("str_imm_1", "str r6, [r3, #8]", 1, 1),
    # a load whose address the previous data-processing op computed waits one cycle
    ("addr_dep", "add r5, r5, #4\n ldr r4, [r5]", 2, 4),
    ("push_pop", "push {r1, r2, r3}\n pop {r1, r2, r3}", 2, 8),
    ("ldrd_3", "ldrd r4, r6, [r1]", 1, 3),
    # B: 1 + P taken (P = 2 here)
    ("b_taken", "b 1f\n nop\n 1:", 1, 3),
    # loop of 10: 10 SUBS, 9 taken BNE (1+P), 1 not taken (1)
    ("loop10", "mov r4, #10\n 2: subs r4, r4, #1\n bne 2b", 21, 1 + 10 + 9 * 3 + 1),
    ("sdiv", "sdiv r4, r6, r2", 1, cycle_model.DIV_CYCLES),
]


@pytest.mark.parametrize("name, asm, insns, cycles", M4_CASES, ids=[c[0] for c in M4_CASES])
def test_cortex_m4_documented_sequences(tmp_path, name, asm, insns, cycles):
    base_i, base_c = _cycles(tmp_path, "base", "")
    i, c = _cycles(tmp_path, name, asm)
    assert (i - base_i, c - base_c) == (insns, cycles)


M0_CASES = [
    ("alu_mul", "adds r4, #1\n muls r6, r4", 2, 2),
    ("ldr_ldr", "ldr r4, [r1]\n ldr r6, [r3, #4]", 2, 4),
    ("push_pop", "push {r1, r2, r3}\n pop {r1, r2, r3}", 2, 8),
    ("loop10", "movs r4, #10\n 2: subs r4, #1\n bne 2b", 21, 1 + 10 + 9 * 2 + 1),
]


@pytest.mark.parametrize("name, asm, insns, cycles", M0_CASES, ids=[c[0] for c in M0_CASES])
def test_cortex_m0plus_documented_sequences(tmp_path, name, asm, insns, cycles):
    base_i, base_c = _cycles(tmp_path, "base", "", "m0plus")
    i, c = _cycles(tmp_path, name, asm, "m0plus")
    assert (i - base_i, c - base_c) == (insns, cycles)


def test_trace_counts_the_instructions_the_firmware_counts(tmp_path):
    """Between the two board_instructions() calls the plugin sees what -icount counted (within the bracket)."""
    src = tmp_path / "count.c"
    src.write_text(r"""
#include <stdint.h>
#include "tml_board.h"
volatile uint32_t sink;
int main(void)
{
    board_init();
    uint32_t t0 = board_instructions();
    for (uint32_t k = 0; k < 100000; ++k) sink += k * k;
    uint32_t t1 = board_instructions();
    board_print_i32((int32_t)(t1 - t0));
    board_putc('\n');
    board_exit(0);
}
""")
    elf = build_firmware([src], [], tmp_path / "count.elf", "mps2-an386", opt="-O2")
    blocks, console = cycle_model.trace(elf)
    counted = int(console.split()[0])
    c = cycle_model.price(blocks, elf)
    assert counted > 500_000
    assert abs(c.instructions - counted) <= 16   # the bracket: the counter reads' own instructions
    assert 1.0 < c.cycles / c.instructions < 3.0


def test_flash_data_cache_misses(tmp_path):
    """Loads from flash through the 8-line x 32-byte data cache: streaming misses once a line, a small block stays."""
    src = tmp_path / "flash.c"
    src.write_text(r"""
#include <stdint.h>
#include "tml_board.h"
__attribute__((aligned(32))) static const uint32_t table[1024] = {1, 2, 3};
volatile uint32_t sink;
int main(void)
{
    board_init();
    uint32_t s = 0, t0 = board_instructions();
    for (int k = 0; k < 1024; ++k) s += ((const volatile uint32_t *)table)[k];       /* 4 KiB: 128 lines */
    for (int r = 0; r < 10; ++r)
        for (int k = 0; k < 32; ++k) s += ((const volatile uint32_t *)table)[k];     /* 128 B: 4 lines, kept */
    uint32_t t1 = board_instructions();
    sink = s + t0 + t1;
    board_exit(0);
}
""")
    elf = build_firmware([src], [], tmp_path / "flash.elf", "mps2-an386", opt="-O2")
    c = cycle_model.measure(elf)
    literals = c.flash_loads - (1024 + 320)      # the code's own literal-pool loads (addresses), also flash
    assert 0 <= literals <= 8
    assert 128 + 4 <= c.dcache_misses <= 128 + 4 + literals
    assert c.at(4) - c.at(0) == 4 * (c.dcache_misses + c.icache_target_misses)
