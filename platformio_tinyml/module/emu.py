"""A module-updatable firmware on an emulated Cortex-M board (QEMU mps2).

Used by ``tests/test_module_e2e.py`` and ``benchmarks/module_bench.py``. The
firmware is built once (executor + kernel set + loader + public key); each
run places modules in its two slots and an input vector in memory with
QEMU's ``-device loader``, so no rebuild happens between models. At boot
it opens slot 0, tries to install slot 1 (A/B switch only on success), runs
the active module once and prints::

    B <code>              tml_slots_boot(slot 0)
    U <code> <active>     tml_slots_install(slot 1), then the active slot
    V <version>           installed module version
    I <n>                 instructions of tml_module_invoke
    O <k> <hex>           output k
    T <n> <fnv>           (TFLITE module) flatbuffer size and FNV-1a 32 of its bytes
    E                     end

Built with ``tflite=True`` the firmware defines TML_MODULE_TFLITE, as one
embedding TensorFlow Lite Micro would: a TFLITE module is then installed and
its flatbuffer handed over (here: checksummed instead of run; TFLM's C++
sources are not obtainable offline).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinyMLError
from .firmware import KernelSet, write_runtime

SLOT_ADDR = (0x0020_0000, 0x0030_0000)     # in mps2 code memory (SSRAM1), 1 MiB each
SLOT_SIZE = 0x0010_0000
INPUT_ADDR = 0x0018_0000                   # u32 length + bytes
MACHINE = "mps2-an386"

_MAIN = r"""/* main.c - module-updatable firmware for the QEMU slot tests (generated). */
#include <stdint.h>
#include <string.h>
#include "tml_board.h"
#include "tml_module.h"

PUBKEY_DECL
static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));

static void hex(const uint8_t *p, uint32_t n)
{
    static const char d[] = "0123456789abcdef";
    uint32_t i;
    for (i = 0; i < n; ++i) {
        board_putc(d[p[i] >> 4]);
        board_putc(d[p[i] & 15]);
    }
}

int main(void)
{
    tml_slots_t s;
    int err;
    uint32_t k, n, t0, t1, len;
    const uint8_t *in = (const uint8_t *)INPUT_ADDR + 4;
    board_init();
    memset(&s, 0, sizeof s);
    s.base[0] = (const uint8_t *)SLOT0_ADDR;
    s.base[1] = (const uint8_t *)SLOT1_ADDR;
    s.size[0] = s.size[1] = SLOT_SIZE;
    s.public_key = pubkey;
    s.arena = arena;
    s.arena_bytes = sizeof arena;
    err = tml_slots_boot(&s, 0, 0);
    board_puts("B "); board_print_i32(err); board_putc('\n');
    err = tml_slots_install(&s, 1);
    board_puts("U "); board_print_i32(err); board_putc(' '); board_print_i32(s.active); board_putc('\n');
    if (s.active < 0) return 3;
    board_puts("V "); board_print_i32((int32_t)s.installed_version); board_putc('\n');
#ifdef TML_MODULE_TFLITE
    {
        const uint8_t *fb = tml_module_tflite(&s.module, &n);
        if (fb) {
            uint32_t h = 2166136261u;
            for (k = 0; k < n; ++k) h = (h ^ fb[k]) * 16777619u;
            board_puts("T "); board_print_i32((int32_t)n); board_putc(' '); hex((const uint8_t *)&h, 4);
            board_puts("\nE\n");
            return 0;
        }
    }
#endif
    memcpy(&len, (const void *)INPUT_ADDR, 4);
    for (k = 0; k < s.module.n_inputs; ++k) {
        uint8_t *p = tml_module_input(&s.module, k, &n);
        if (n > len) return 4;
        memcpy(p, in, n);
        in += n;
        len -= n;
    }
    t0 = board_instructions();
    tml_module_invoke(&s.module);
    t1 = board_instructions();
    board_puts("I "); board_print_i32((int32_t)(t1 - t0)); board_putc('\n');
    for (k = 0; k < s.module.n_outputs; ++k) {
        const uint8_t *p = tml_module_output(&s.module, k, &n);
        board_puts("O "); board_print_i32((int32_t)k); board_putc(' '); hex(p, n); board_putc('\n');
    }
    board_puts("E\n");
    return 0;
}
"""


@dataclass
class SlotRun:
    boot: int
    install: int
    active: int
    version: int | None
    instructions: int | None
    outputs: list[bytes] = field(default_factory=list)
    tflite: tuple[int, int] | None = None      # (size, FNV-1a 32) of a TFLITE module's flatbuffer
    stdout: str = ""


def slot_main_source(pubkey_decl: str, arena_bytes: int) -> str:
    """The test firmware's main.c; ``pubkey_decl`` defines ``pubkey`` (32 bytes)."""
    return _MAIN.replace("PUBKEY_DECL", pubkey_decl).replace("ARENA_BYTES", str(arena_bytes))


def slot_defines() -> list[str]:
    """The -D flags main.c needs: slot and input addresses in the mps2 memory map."""
    return [f"-DSLOT0_ADDR=0x{SLOT_ADDR[0]:x}u", f"-DSLOT1_ADDR=0x{SLOT_ADDR[1]:x}u",
            f"-DSLOT_SIZE=0x{SLOT_SIZE:x}u", f"-DINPUT_ADDR=0x{INPUT_ADDR:x}u"]


def build_slot_firmware(workdir: Path, kset: KernelSet, public_key: bytes, arena_bytes: int,
                        opt: str = "-O2", tflite: bool = False) -> Path:
    """Build the firmware once for ``kset`` (+ TFLITE modules if ``tflite``); returns the ELF."""
    from ..emu import build_firmware
    src = Path(workdir) / "src"
    cfiles = write_runtime(src, kset)
    decl = "static const uint8_t pubkey[32] = {" + ", ".join(str(b) for b in public_key) + "};"
    (src / "main.c").write_text(slot_main_source(decl, arena_bytes))
    flags = slot_defines()
    if tflite:
        flags.append("-DTML_MODULE_TFLITE")
    return build_firmware([*cfiles, src / "main.c"], [src], Path(workdir) / "slots.elf", MACHINE,
                          extra_cflags=flags, opt=opt)


def run_slots(elf: Path, workdir: Path, slot0: bytes | None, slot1: bytes | None, input_bytes: bytes,
              timeout: float = 120) -> SlotRun:
    """Run ``elf`` with the given slot contents (None = erased) and input."""
    from ..emu import run
    workdir = Path(workdir)
    loads = []
    for k, data in enumerate((slot0, slot1)):
        if data is None:
            continue
        if len(data) > SLOT_SIZE:
            raise TinyMLError(f"module of {len(data)} bytes does not fit a {SLOT_SIZE}-byte slot")
        path = workdir / f"slot{k}.bin"
        path.write_bytes(data)
        loads.append((path, SLOT_ADDR[k]))
    inp = workdir / "input.bin"
    inp.write_bytes(struct.pack("<I", len(input_bytes)) + input_bytes)
    loads.append((inp, INPUT_ADDR))
    res = run(elf, MACHINE, timeout=timeout, loads=loads)
    if res.timed_out:
        raise TinyMLError(f"QEMU timed out after {timeout} s", hint=res.stdout[-1000:])
    return parse_slot_output(res.stdout + res.stderr)


def parse_slot_output(text: str) -> SlotRun:
    run = SlotRun(boot=1, install=1, active=-1, version=None, instructions=None, stdout=text)
    for line in text.replace("\r", "\n").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "B":
            run.boot = int(parts[1])
        elif parts[0] == "U":
            run.install, run.active = int(parts[1]), int(parts[2])
        elif parts[0] == "V":
            run.version = int(parts[1])
        elif parts[0] == "I":
            run.instructions = int(parts[1])
        elif parts[0] == "O":
            run.outputs.append(bytes.fromhex(parts[2]) if len(parts) > 2 else b"")
        elif parts[0] == "T":
            run.tflite = (int(parts[1]), int.from_bytes(bytes.fromhex(parts[2]), "little"))
    return run
