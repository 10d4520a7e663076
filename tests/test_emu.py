"""End-to-end checks of the emulated boards (platformio_tinyml.emu).

Each machine builds a small C program (checksums over a 4 KiB const table
in flash, 32/64-bit integer arithmetic, float arithmetic), runs it in QEMU or
simavr and must print exactly what the same computation gives in Python.
The instruction/cycle counters are checked against hand-written loops of
known length, and must repeat exactly from run to run. Machines whose
compiler or emulator is missing are skipped with the Debian package to
install.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from platformio_tinyml.emu import (
    MACHINES,
    FirmwareBuildError,
    ToolNotFoundError,
    arch_flags,
    build_firmware,
    compile_only,
    run,
)

SEED = 20240611
TABLE_LEN = 4096
FLOAT_STEPS = 1024
DIVISOR = 1000003
SIGNED_DIVISOR = 12345
LOOP_COUNTS = (1000, 2000, 4000, 12000)

# Allowed error of one measurement: on Arm the SysTick tick (40 or 31.25
# instructions); on AVR one Timer1 overflow interrupt (a real cost, ~40
# cycles per 65536), which a loop of up to 48,000 cycles may meet once.
COUNTER_SLACK = {"mps2-an385": 40, "mps2-an386": 40, "mps3-an547": 32,
                 "riscv32-virt": 0, "atmega328p": 64, "atmega2560": 64}
# Counter units per iteration of the spin loop in SPIN_C.
UNITS_PER_ITERATION = {"arm": 2, "riscv": 2, "avr": 4}


def _table() -> bytes:
    state = SEED
    out = bytearray()
    for _ in range(TABLE_LEN):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((state >> 16) & 0xFF)
    return bytes(out)


TABLE_H_PROLOGUE = """\
#include <stdint.h>
#ifdef __AVR__
#include <avr/pgmspace.h>
#define TBL_ATTR PROGMEM
#define TBL_READ(i) pgm_read_byte(&tbl[(i)])
#else
#define TBL_ATTR
#define TBL_READ(i) (tbl[(i)])
#endif
"""

PARITY_C = r"""
#include "tml_board.h"
#include "table.h"

static void print_u64(uint64_t v)
{
    board_print_u32_hex((uint32_t)(v >> 32));
    board_print_u32_hex((uint32_t)v);
}

static uint32_t float_bits(float f)
{
    union { float f; uint32_t u; } cvt;
    cvt.f = f;
    return cvt.u;
}

/* volatile: keep the compiler from folding the arithmetic at build time */
static volatile uint32_t divisor = DIVISOR;
static volatile int32_t signed_divisor = SIGNED_DIVISOR;
static volatile float scale = 0.125f;
static volatile float decay = 0.75f;

int main(void)
{
    uint32_t fnv = 2166136261u, wsum = 0u, poly = 0u;
    uint16_t i;
    uint64_t a, q;
    int64_t n;
    float acc = 0.0f;

    board_init();
    for (i = 0; i < TABLE_LEN; i++) {
        uint8_t b = TBL_READ(i);
        fnv = (fnv ^ b) * 16777619u;
        wsum += (uint32_t)(i + 1u) * b;
        poly = poly * 31u + (uint32_t)((int32_t)b - 128);
    }
    board_puts("fnv ");  board_print_u32_hex(fnv);  board_putc('\n');
    board_puts("wsum "); board_print_u32_hex(wsum); board_putc('\n');
    board_puts("poly "); board_print_i32((int32_t)poly); board_putc('\n');

    a = ((uint64_t)fnv << 32) | wsum;
    q = a / divisor;
    board_puts("udiv "); print_u64(q); board_putc(' ');
    print_u64(a % divisor); board_putc('\n');
    n = -(int64_t)(a >> 1);
    board_puts("sdiv "); print_u64((uint64_t)(n / signed_divisor)); board_putc(' ');
    print_u64((uint64_t)(n % signed_divisor)); board_putc('\n');

    for (i = 0; i < FLOAT_STEPS; i++) {
        acc = acc * decay + (float)TBL_READ(i) * scale;
    }
    board_puts("float "); board_print_u32_hex(float_bits(acc)); board_putc(' ');
    board_print_u32_hex(float_bits(acc / 3.0f)); board_putc('\n');
    board_print_i32(INT32_MIN); board_putc(' ');
    board_print_i32(0); board_putc(' ');
    board_print_i32(INT32_MAX); board_putc('\n');
    return 42;
}
"""

SPIN_C = r"""
#include "tml_board.h"

/* A loop whose cost is known exactly: 2 instructions per iteration on Arm
 * (".syntax unified": GCC switches to divided syntax around Thumb-1 asm)
 * and RISC-V, 4 cycles on AVR (sbiw 2 + taken brne 2; the last brne 1). */
static void spin(uint16_t n)
{
#if defined(__arm__)
    uint32_t r = n;
    __asm__ volatile(".syntax unified\n1: subs %0, #1\n\tbne 1b" : "+l"(r) : : "cc");
#elif defined(__riscv)
    uint32_t r = n;
    __asm__ volatile("1: addi %0, %0, -1\n\tbnez %0, 1b" : "+r"(r));
#elif defined(__AVR__)
    __asm__ volatile("1: sbiw %0, 1\n\tbrne 1b" : "+w"(n));
#endif
}

static const uint16_t counts[] = {LOOP_COUNTS};

int main(void)
{
    unsigned k;

    for (k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        uint32_t before = board_instructions();
        spin(counts[k]);
        board_print_i32((int32_t)(board_instructions() - before));
        board_putc('\n');
    }
    return 0;
}
"""


def _expected_parity_output(table: bytes) -> str:
    mask = 0xFFFFFFFF
    fnv, wsum, poly = 2166136261, 0, 0
    for i, b in enumerate(table):
        fnv = ((fnv ^ b) * 16777619) & mask
        wsum = (wsum + (i + 1) * b) & mask
        poly = (poly * 31 + (b - 128)) & mask
    poly_signed = poly - (1 << 32) if poly & 0x80000000 else poly
    a = (fnv << 32) | wsum
    n = -(a >> 1)
    sq = -(-n // SIGNED_DIVISOR)             # C truncates towards zero
    sr = n - sq * SIGNED_DIVISOR
    m64 = (1 << 64) - 1
    f32 = np.float32
    acc = f32(0.0)
    for b in table[:FLOAT_STEPS]:
        acc = f32(f32(acc * f32(0.75)) + f32(f32(b) * f32(0.125)))
    third = f32(acc / f32(3.0))

    def bits(x: np.float32) -> str:
        return struct.pack(">f", float(x)).hex()

    return (f"fnv {fnv:08x}\nwsum {wsum:08x}\npoly {poly_signed}\n"
            f"udiv {a // DIVISOR:016x} {a % DIVISOR:016x}\n"
            f"sdiv {sq & m64:016x} {sr & m64:016x}\n"
            f"float {bits(acc)} {bits(third)}\n"
            "-2147483648 0 2147483647\n")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("emu_src")
    table = _table()
    rows = ",\n".join(", ".join(str(b) for b in table[i:i + 32])
                      for i in range(0, TABLE_LEN, 32))
    (src / "table.h").write_text(
        TABLE_H_PROLOGUE + f"#define TABLE_LEN {TABLE_LEN}u\n"
        f"static const uint8_t tbl[TABLE_LEN] TBL_ATTR = {{\n{rows}\n}};\n")
    defines = (f"#define DIVISOR {DIVISOR}u\n#define SIGNED_DIVISOR {SIGNED_DIVISOR}\n"
               f"#define FLOAT_STEPS {FLOAT_STEPS}u\n")
    (src / "parity.c").write_text(defines + PARITY_C)
    counts = ", ".join(str(c) for c in LOOP_COUNTS)
    (src / "spin.c").write_text(f"#define LOOP_COUNTS {counts}\n" + SPIN_C)
    return src


def _build_or_skip(sources: Path, name: str, out: Path, machine: str, **kw) -> Path:
    try:
        return build_firmware([sources / name], [sources], out, machine, **kw)
    except ToolNotFoundError as err:
        pytest.skip(str(err))


def _run_or_skip(elf: Path, machine: str, **kw):
    try:
        return run(elf, machine, **kw)
    except ToolNotFoundError as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("machine", list(MACHINES))
def test_parity_program_matches_python(machine, sources, tmp_path):
    elf = _build_or_skip(sources, "parity.c", tmp_path / "parity.elf", machine)
    result = _run_or_skip(elf, machine, timeout=30)
    assert not result.timed_out, result
    assert result.stdout == _expected_parity_output(_table())
    assert result.exit_code == 42


@pytest.mark.parametrize("machine", ["mps2-an386", "riscv32-virt"])
def test_builds_without_libc(machine, sources, tmp_path):
    elf = _build_or_skip(sources, "parity.c", tmp_path / "nolibc.elf", machine,
                         nostdlib=True)
    result = _run_or_skip(elf, machine, timeout=30)
    assert result.stdout == _expected_parity_output(_table())
    assert result.exit_code == 42


@pytest.mark.parametrize("machine", list(MACHINES))
def test_counter_is_exact_and_repeatable(machine, sources, tmp_path):
    elf = _build_or_skip(sources, "spin.c", tmp_path / "spin.elf", machine)
    first = _run_or_skip(elf, machine, timeout=30)
    second = _run_or_skip(elf, machine, timeout=30)
    assert first.exit_code == 0, first
    assert first.stdout == second.stdout  # deterministic run to run
    deltas = [int(line) for line in first.stdout.split()]
    per_iteration = UNITS_PER_ITERATION[MACHINES[machine].family]
    slack = COUNTER_SLACK[machine]
    for (n0, d0), (n1, d1) in zip(zip(LOOP_COUNTS, deltas),
                                  zip(LOOP_COUNTS[1:], deltas[1:])):
        # Linear with the exact slope: the constant overhead cancels out.
        assert abs((d1 - d0) - per_iteration * (n1 - n0)) <= slack, deltas
    overhead = deltas[-1] - per_iteration * LOOP_COUNTS[-1]
    assert -slack <= overhead < 100 + slack, deltas


def test_fault_ends_run_with_code_126(tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include "tml_board.h"\nint main(void)\n{\n'
                   '    board_puts("before\\n");\n'
                   '    __asm__ volatile(".short 0xde00"); /* udf #0 */\n'
                   '    return 0;\n}\n')
    elf = _build_or_skip(tmp_path, "fault.c", tmp_path / "fault.elf", "mps2-an385")
    result = _run_or_skip(elf, "mps2-an385", timeout=10)
    assert result.exit_code == 126
    assert result.stdout == "before\n\n[tml] unexpected exception 3\n"


def test_timeout_kills_emulator(tmp_path):
    src = tmp_path / "hang.c"
    src.write_text('#include "tml_board.h"\nint main(void)\n{\n'
                   '    board_puts("spinning\\n");\n    for (;;) {\n    }\n}\n')
    elf = _build_or_skip(tmp_path, "hang.c", tmp_path / "hang.elf", "riscv32-virt")
    result = _run_or_skip(elf, "riscv32-virt", timeout=1.0)
    assert result.timed_out and result.exit_code is None
    assert result.stdout == "spinning\n"


def test_compile_error_carries_compiler_output(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void)\n{\n    int unused;\n    return 0;\n}\n")
    with pytest.raises(FirmwareBuildError) as info:
        _build_or_skip(tmp_path, "bad.c", tmp_path / "bad.elf", "mps2-an386")
    assert "bad.c" in str(info.value) and "unused" in str(info.value)


def test_missing_emulator_names_debian_package(sources, tmp_path, monkeypatch):
    elf = _build_or_skip(sources, "spin.c", tmp_path / "spin.elf", "riscv32-virt")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolNotFoundError, match="qemu-system-misc"):
        run(elf, "riscv32-virt")


@pytest.mark.parametrize("core, fpu, tags", [
    ("cortex-m0plus", None, ["Tag_CPU_arch: v6S-M"]),
    ("cortex-m7", "fpv5-d16", ["Tag_CPU_arch: v7E-M", "Tag_ABI_VFP_args: VFP registers",
                               "Tag_FP_arch: FPv5/FP-D16"]),
    ("cortex-m7", "fpv5-sp-d16", ["Tag_CPU_arch: v7E-M", "Tag_ABI_VFP_args: VFP registers"]),
    ("cortex-m33", "fpv5-sp-d16", ["Tag_CPU_arch: v8-M.mainline",
                                   "Tag_ABI_VFP_args: VFP registers"]),
    ("cortex-m55", "auto", ["Tag_CPU_arch: v8.1-M.mainline", "Tag_MVE_arch"]),
    ("rv32imac", None, []),
])
def test_compile_only_other_cores(core, fpu, tags, sources, tmp_path):
    try:
        objects = compile_only([sources / "parity.c", sources / "spin.c"], [sources],
                               core, fpu, out_dir=tmp_path)
    except ToolNotFoundError as err:
        pytest.skip(str(err))
    for obj in objects:
        with obj.open("rb") as fh:
            elf = ELFFile(fh)
            assert elf.elfclass == 32
            assert elf["e_machine"] == ("EM_RISCV" if core == "rv32imac" else "EM_ARM")
        if tags:
            attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(obj)],
                                   capture_output=True, text=True, check=True).stdout
            for tag in tags:
                assert tag in attrs, attrs
            assert ("VFP registers" in attrs) == (fpu is not None), attrs


def test_arch_flags_reject_wrong_fpu():
    assert "-mfpu=fpv5-sp-d16" in arch_flags("cortex-m33", "fpv5-sp-d16")
    assert arch_flags("rv32imac") == ["-march=rv32imac", "-mabi=ilp32"]
    with pytest.raises(Exception, match="cannot use fpu"):
        arch_flags("cortex-m4", "fpv5-d16")
