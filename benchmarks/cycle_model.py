#!/usr/bin/env python3
"""Cycles, not instructions: a Cortex-M4 / Cortex-M0+ cycle model over QEMU's executed blocks.

    .venv/bin/python benchmarks/cycle_model.py FIRMWARE.elf [--core m4|m0plus] [--machine mps2-an386]
                                             [--wait-states 0,4]

QEMU executes instructions, not cycles (``-icount`` counts one per instruction).
This module runs a firmware once under QEMU with a small TCG plugin
(``benchmarks/cycles/tml_cycles_plugin.c``) that records, between two calls of
``board_instructions()`` (one inference in the benchmark harness), every
translation block that ran, how often, how often it left through a taken
branch, and the misses of a simple flash cache; then it prices every
instruction with the core's timing rules:

Cortex-M4 (Arm Cortex-M4 Technical Reference Manual, r0p1, "Processor
instruction timings", and its load/store pipelining notes):

* data processing, DSP/SIMD (SMLAD, SXTB16, SSAT, QADD ...), MUL, SMULL,
  UMULL, SMLAL, UMLAL, SMLAxy: 1; MLA, MLS: 2; SDIV/UDIV: 2-12, counted 12;
* single LDR*: 2, but 1 when it directly follows another single load or store
  whose loaded register it does not use as an address ("neighbouring load and
  store instructions pipeline their address and data phases"); STR* with an
  immediate offset: 1 (through the write buffer), other STR*: as LDR;
  LDRD/STRD: 3; LDM/STM/PUSH/POP: 1+N; writing PC adds P;
* a load/store whose address register the previous data-processing
  instruction wrote: +1 (no forwarding path to the address generator);
* branches: 1, plus P = 2 when taken (pipeline refill; the manual gives 1-3
  depending on the target's alignment and width); BL/BLX/BX always taken;
  TBB/TBH: 2 + P; CBZ/CBNZ as conditional branches;
* IT: 0 when it follows a 16-bit instruction (folded), else 1;
* FPU: VADD/VSUB/VMUL/VABS/VNEG/VCVT/VCMP/VMOV/VMRS: 1; VMLA/VMLS/VNMLA/
  VNMLS/VFMA/VFMS/VFNMA/VFNMS: 3; VDIV/VSQRT: 14; VLDR/VSTR as LDR/STR;
  VLDM/VSTM/VPUSH/VPOP: 1+N (N registers of 32 bits).

Cortex-M0+ (Cortex-M0+ Technical Reference Manual, "Instruction set summary"
cycle counts; single-cycle multiplier configuration): data processing and
MULS 1; LDR*/STR* 2; LDM/STM/PUSH/POP 1+N (POP with PC 3+N); B taken 2, not
taken 1; BL 3; BX/BLX 2. Run an ARMv6-M build on the Cortex-M3 machine (QEMU
has no M0+ board); the instructions executed are the same.

Flash wait states (``W``), modelled simply and the same for both cores: an
ART-style accelerator as on the STM32L4 (instruction cache 32 lines and
data cache 8 lines of 32 bytes, fully associative LRU here; prefetch on).
A sequential instruction-line miss is hidden by the prefetch buffer; a miss
on the first line after a taken branch stalls ``W`` cycles; a load from flash
that misses the data cache stalls ``W`` cycles. ``W = 0`` is a zero-wait-state
memory (the figures X-CUBE-AI and microTVM publish are for boards running from
flash with such an accelerator; the STM32L4 at 80 MHz needs 4 wait states, the
STM32L4+ at 120 MHz 5).

What the model does not do: Cortex-M7 (dual issue) is not modelled; interrupt
entry is counted as a taken branch; a conditional instruction that fails its IT
condition is priced as if it ran; bus contention between fetch and data is
ignored. The test ``tests/test_cycle_model.py`` checks the pricing on
instruction sequences whose cycle counts the manuals state, run on real QEMU.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SRC = Path(__file__).resolve().parent / "cycles"
sys.path.insert(0, str(REPO))

from platformio_tinyml.emu.run import emulator_command  # noqa: E402

P_M4 = 2            # pipeline refill after a taken branch (TRM: 1-3)
DIV_CYCLES = 12     # SDIV/UDIV worst case (TRM: 2-12, operand dependent)


# ---- the plugin and its trace ---------------------------------------------------

@functools.lru_cache(maxsize=1)
def plugin_path() -> Path:
    """Build the TCG plugin once (host gcc) and return the shared library."""
    src = PLUGIN_SRC / "tml_cycles_plugin.c"
    out_dir = Path(tempfile.gettempdir()) / "tml-cycles-plugin"
    out_dir.mkdir(exist_ok=True)
    so = out_dir / "libtmlcycles.so"
    newest = max(p.stat().st_mtime for p in PLUGIN_SRC.iterdir())
    if not so.exists() or so.stat().st_mtime < newest:
        tmp = out_dir / f"libtmlcycles.{id(src)}.so"
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden",
                        "-I", str(PLUGIN_SRC), str(src), "-o", str(tmp)], check=True)
        tmp.replace(so)
    return so


@dataclass
class Insn:
    addr: int
    size: int
    flash_loads: int = 0
    dmiss: int = 0


@dataclass
class Block:
    start: int
    end: int
    count: int
    taken: int
    imiss_target: int
    imiss_seq: int
    insns: list[Insn] = field(default_factory=list)


def _symbol(elf: Path, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec.header.sh_type == "SHT_SYMTAB":
                for sym in sec.get_symbol_by_name(name) or ():
                    return sym["st_value"] & ~1
    raise SystemExit(f"{elf}: no symbol '{name}'")


def _flash_range(elf: Path) -> tuple[int, int]:
    """Read-only loadable segments below the SRAM base (0x20000000): code and constants."""
    from elftools.elf.elffile import ELFFile
    lo, hi = None, 0
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_paddr"] < 0x20000000 and seg["p_filesz"]:
                lo = seg["p_paddr"] if lo is None else min(lo, seg["p_paddr"])
                hi = max(hi, seg["p_paddr"] + seg["p_filesz"])
    return (lo or 0), hi


def trace(elf: Path, machine: str = "mps2-an386", timeout: float = 600,
          toggle: str = "board_instructions") -> tuple[list[Block], str]:
    """Run ``elf`` under QEMU with the plugin; the blocks counted and the console text."""
    elf = Path(elf)
    lo, hi = _flash_range(elf)
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "blocks.txt"
        args = f"{plugin_path()},out={out},toggle={_symbol(elf, toggle):#x},flash_lo={lo:#x},flash_hi={hi:#x}"
        cmd = emulator_command(elf, machine)
        cmd[1:1] = ["-plugin", args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if not out.exists():
            raise SystemExit(f"QEMU wrote no trace (exit {proc.returncode}): {proc.stderr[-800:]}")
        blocks, cur = [], None
        for line in out.read_text().splitlines():
            f = line.split()
            if f[0] == "T":
                cur = Block(int(f[1], 16), int(f[2], 16), *map(int, f[4:8]))
                blocks.append(cur)
            else:
                cur.insns.append(Insn(int(f[1], 16), int(f[2]), int(f[3]), int(f[4])))
    return blocks, proc.stdout


# ---- disassembly ---------------------------------------------------------------------

_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*?)\s*(?:;.*)?$")


@functools.lru_cache(maxsize=8)
def disassemble(elf: Path) -> dict[int, tuple[str, str]]:
    """address -> (mnemonic, operands) for every instruction in the ELF's code."""
    objdump = shutil.which("arm-none-eabi-objdump")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.rstrip().endswith(">:"):
            out[int(m.group(1), 16)] = (m.group(2).lower(), m.group(3).split("@")[0].strip())
    return out


# ---- pricing -------------------------------------------------------------------------

_CONDS = ("eq", "ne", "cs", "cc", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_REG = re.compile(r"\b(r\d+|sb|sl|fp|ip|sp|lr|pc)\b")
_NO_DEST = ("cmp", "cmn", "tst", "teq", "str", "strb", "strh", "strd", "push", "stm", "stmia", "stmdb",
            "b", "bl", "bx", "blx", "cbz", "cbnz", "it", "nop", "vstr", "vstm", "vpush", "vcmp", "vcmpe")


def _base(mnem: str) -> str:
    """The mnemonic without width qualifier, condition and flag-setting suffix."""
    m = mnem.split(".")[0]
    if m.startswith("it"):
        return "it"
    for c in _CONDS:
        if len(m) > len(c) and m.endswith(c) and not m.startswith(("vcmp", "vcvt")):
            stem = m[:-len(c)]
            if stem in _KNOWN_STEMS:
                m = stem
                break
    if m.endswith("s") and m[:-1] in _FLAG_SETTERS:
        m = m[:-1]
    return m


_FLAG_SETTERS = {"add", "adc", "sub", "sbc", "rsb", "and", "orr", "eor", "bic", "orn", "mvn", "mov", "lsl",
                 "lsr", "asr", "ror", "mul", "neg", "rrx", "mla", "smull", "umull"}
_KNOWN_STEMS = _FLAG_SETTERS | {"b", "bx", "blx", "bl", "ldr", "str", "ldrb", "strb", "ldrh", "strh", "ldrsb",
                                "ldrsh", "ldrd", "strd", "mov", "movs", "adds", "subs", "cmp", "cmn", "tst",
                                "addw", "subw", "vmov", "vldr", "vstr", "ssat", "usat", "movw", "movt",
                                "ands", "orrs", "eors", "lsls", "lsrs", "asrs", "muls", "negs", "mvns",
                                "bics", "rsbs", "sbcs", "adcs", "rors", "sdiv", "udiv", "ldm", "stm",
                                "pop", "push", "vadd", "vsub", "vmul", "vmla", "vdiv", "vneg", "vabs"}


def _regs(text: str) -> list[str]:
    return _REG.findall(text)


def _addr_regs(ops: str) -> set[str]:
    inside = ops[ops.find("[") + 1: ops.find("]")] if "[" in ops else ""
    return set(_regs(inside))


def _reglist_len(ops: str) -> int:
    inside = ops[ops.find("{") + 1: ops.find("}")] if "{" in ops else ""
    n = 0
    for part in inside.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += int(re.sub(r"\D", "", b)) - int(re.sub(r"\D", "", a)) + 1
        elif part:
            n += 1
    return n


def _dest(base: str, ops: str) -> str | None:
    if base in _NO_DEST or base.startswith(("str", "vst", "vcmp")):
        return None
    regs = _regs(ops.split(",")[0]) if ops else []
    return regs[0] if regs else None


@dataclass
class Priced:
    cycles: int          # issue cycles, branch penalty not included
    is_branch: bool = False
    always_taken: bool = False
    taken_penalty: int = 0
    is_ls: bool = False  # single load/store (pipelinable)
    dest: str | None = None
    is_alu: bool = False


def price_m4(mnem: str, ops: str, size: int, prev: Priced | None, prev_size: int) -> Priced:
    b = _base(mnem)
    dest = _dest(b, ops)
    writes_pc = dest == "pc" or (b in ("pop", "ldm", "ldmia") and "pc" in ops)
    penalty = P_M4 if writes_pc else 0
    if b == "it":
        return Priced(0 if prev_size == 2 else 1)
    if b in ("b", "cbz", "cbnz"):
        return Priced(1, True, False, P_M4)
    if b in ("bl", "blx", "bx"):
        return Priced(1, True, True, P_M4)
    if b in ("tbb", "tbh"):
        return Priced(2, True, True, P_M4)
    if b in ("ldm", "ldmia", "ldmdb", "ldmfd", "stm", "stmia", "stmdb", "stmea", "push", "pop"):
        return Priced(1 + _reglist_len(ops), writes_pc, writes_pc, penalty)
    if b in ("vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"):
        n = _reglist_len(ops) * (2 if re.search(r"\bd\d+", ops) else 1)
        return Priced(1 + n)
    single_ls = b.startswith(("ldr", "str", "vldr", "vstr")) and b not in ("ldrd", "strd")
    if b in ("ldrd", "strd"):
        c = 3
    elif single_ls:
        store_imm = b.startswith(("str", "vstr")) and "[" in ops and _regs(ops[ops.find("["):]).__len__() == 1
        pipelined = prev is not None and prev.is_ls and (prev.dest is None or prev.dest not in _addr_regs(ops))
        c = 1 if store_imm or pipelined else 2
    else:
        c = None
    if c is not None:
        if prev is not None and prev.is_alu and prev.dest and prev.dest in _addr_regs(ops):
            c += 1
        return Priced(c, writes_pc, writes_pc, penalty, is_ls=single_ls, dest=dest)
    if b in ("mla", "mls"):
        c = 2
    elif b in ("sdiv", "udiv"):
        c = DIV_CYCLES
    elif b in ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"):
        c = 3
    elif b in ("vdiv", "vsqrt"):
        c = 14
    else:
        c = 1
    return Priced(c, writes_pc, writes_pc, penalty, dest=dest, is_alu=True)


def price_m0plus(mnem: str, ops: str, size: int, prev: Priced | None, prev_size: int) -> Priced:
    b = _base(mnem)
    dest = _dest(b, ops)
    if b == "b":
        return Priced(1, True, False, 1)
    if b == "bl":
        return Priced(3, True, True, 0)
    if b in ("bx", "blx"):
        return Priced(2, True, True, 0)
    if b in ("ldm", "ldmia", "stm", "stmia", "push"):
        return Priced(1 + _reglist_len(ops))
    if b == "pop":
        pc = "pc" in ops
        return Priced((3 if pc else 1) + _reglist_len(ops) - (1 if pc else 0), pc, pc, 0)
    if b.startswith(("ldr", "str")):
        return Priced(2, dest == "pc", dest == "pc", 2 if dest == "pc" else 0)
    if dest == "pc":   # mov pc / add pc
        return Priced(3, True, True, 0)
    return Priced(1, dest=dest)


CORES = {"m4": price_m4, "m0plus": price_m0plus}


@dataclass
class Cycles:
    instructions: int
    cycles: int                 # zero wait states
    stalls_per_wait_state: int  # taken-branch line misses + flash data misses
    by_function: dict[str, list[int]]   # name -> [instructions, cycles]
    flash_loads: int = 0
    dcache_misses: int = 0
    icache_target_misses: int = 0

    def at(self, wait_states: int) -> int:
        return self.cycles + wait_states * self.stalls_per_wait_state


def _functions(elf: Path) -> list[tuple[int, int, str]]:
    from elftools.elf.elffile import ELFFile
    out = []
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec.header.sh_type == "SHT_SYMTAB":
                for s in sec.iter_symbols():
                    if s["st_info"]["type"] == "STT_FUNC" and s["st_size"]:
                        out.append((s["st_value"] & ~1, (s["st_value"] & ~1) + s["st_size"], s.name))
    return sorted(out)


def price(blocks: list[Block], elf: Path, core: str = "m4") -> Cycles:
    """Cycles of the traced run under ``core``'s rules (see the module doc)."""
    rule = CORES[core]
    dis = disassemble(Path(elf))
    funcs = _functions(Path(elf))
    starts = [f[0] for f in funcs]
    import bisect
    by_fn: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total_i = total_c = loads = dmiss = imiss = 0
    for blk in blocks:
        prev, prev_size, c_blk, last = None, 4, 0, None
        for ins in blk.insns:
            mnem, ops = dis.get(ins.addr, ("nop", ""))
            last = rule(mnem, ops, ins.size, prev, prev_size)
            c_blk += last.cycles
            prev, prev_size = last, ins.size
            loads += ins.flash_loads
            dmiss += ins.dmiss
        taken = blk.count if last is not None and last.always_taken else blk.taken
        cyc = c_blk * blk.count + (last.taken_penalty if last else 0) * taken
        imiss += blk.imiss_target
        total_i += len(blk.insns) * blk.count
        total_c += cyc
        k = bisect.bisect_right(starts, blk.start) - 1
        name = funcs[k][2] if k >= 0 and blk.start < funcs[k][1] else f"?{blk.start:#x}"
        by_fn[name][0] += len(blk.insns) * blk.count
        by_fn[name][1] += cyc
    return Cycles(total_i, total_c, dmiss + imiss, dict(by_fn), loads, dmiss, imiss)


def measure(elf: Path, machine: str = "mps2-an386", core: str = "m4", timeout: float = 600) -> Cycles:
    blocks, _ = trace(Path(elf), machine, timeout)
    return price(blocks, Path(elf), core)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("elf", type=Path)
    ap.add_argument("--core", choices=sorted(CORES), default="m4")
    ap.add_argument("--machine", default="mps2-an386")
    ap.add_argument("--wait-states", default="0,4")
    ap.add_argument("--top", type=int, default=12, help="functions to list")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    c = measure(a.elf, a.machine, a.core)
    ws = [int(w) for w in a.wait_states.split(",")]
    if a.json:
        print(json.dumps({"instructions": c.instructions, **{f"cycles_ws{w}": c.at(w) for w in ws},
                          "by_function": c.by_function}))
        return 0
    print(f"instructions {c.instructions:,}  " + "  ".join(f"cycles@{w}ws {c.at(w):,}" for w in ws)
          + f"  CPI@0ws {c.cycles / max(c.instructions, 1):.2f}")
    for name, (i, cy) in sorted(c.by_function.items(), key=lambda kv: -kv[1][1])[:a.top]:
        print(f"  {name:40s} {i:>12,} insns {cy:>12,} cycles  CPI {cy / max(i, 1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
