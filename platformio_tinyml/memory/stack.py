"""Worst-case stack depth of a call tree, from gcc's own per-function frame sizes.

Compile with ``-fstack-usage`` (every gcc) and, where gcc has it (10 and
later: arm-none-eabi, riscv), ``-fcallgraph-info=su``; then
:func:`stack_depth` walks the call graph from a root function (the model's
``<name>_invoke``) and adds the frames along the deepest path.

* Frames: the ``.su`` files (or the ``.ci`` node labels).
* Calls: the ``.ci`` edges; for avr-gcc 5 (no ``-fcallgraph-info``) the
  ``R_AVR_CALL`` relocations of each object (``avr-objdump -dr``).
* Naked asm functions, to which ``-fstack-usage`` gives 0 bytes: the
  pushes and ``sub sp`` of their code (:func:`asm_frames`, Arm).
* ``call_bytes``: what one call level adds outside the callee's frame (the
  return address that AVR's ``call`` pushes; 0 on Arm and RISC-V, where the
  callee saves ``lr``/``ra`` in its frame).

Used by ``benchmarks/cgen_stack.py`` (the per-family table of the cgen
backend) and ``benchmarks/cgen_bench.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_BYTES = re.compile(r"(\d+) bytes \((static|dynamic[^)]*)\)")
_SU = re.compile(r"^(?:.*:)?([^:\t]+)\t(\d+)\t(\S+)$")
_AVR_CALL = re.compile(r"R_AVR_CALL\s+(?:\.text\.)?([A-Za-z_][\w.]*)(\+0x[0-9a-f]+)?")

# C library leaves called by generated code (newlib-nano, picolibc, avr-libc):
# not compiled here, so no .su; their frames are bounded by these (a push of
# <= 4 registers).
LIBC_LEAF = {"memcpy": 16, "memset": 16, "memmove": 16, "memcpy_P": 16}
# libgcc arithmetic helpers (__muldi3, __ashldi3, ...; assembly on AVR): the
# deepest avr libgcc routine pushes 18 registers (__prologue_saves__), plus
# the return addresses of nested helper calls; 40 bytes bounds every one.
LIBGCC_BOUND = 40


def _short(title: str) -> str:
    return title.rsplit(":", 1)[-1]


_REGS = re.compile(r"\b([rsd])(\d+)(?:-[rsd](\d+))?\b|\b(fp|ip|lr|sl|sb|pc)\b")


def _reg_bytes(regs: str) -> int:
    """Bytes that a push / stmdb / vpush of the register list ``regs`` stores."""
    n = 0
    for kind, lo, hi, named in _REGS.findall(regs):
        if named:
            n += 4
        else:
            n += (int(hi) - int(lo) + 1 if hi else 1) * (8 if kind == "d" else 4)
    return n


_PUSH = re.compile(r"\t(?:v?push|stmdb(?:\.w)?\s+sp!,|vstmdb\s+sp!,)\s*\{([^}]*)\}")
_SUBSP = re.compile(r"\tsub(?:\.w|w)?\s+sp,\s*(?:sp,\s*)?#(\d+)")
_STRPRE = re.compile(r"\tstr(?:\.w)?\s+\w+,\s*\[sp,\s*#-(\d+)\]!")
_SPWRITE = re.compile(r"\t(?!str|ldr|ldm|stm|cmp|tst|push|pop|vpush|vpop)[a-z.]+\s+sp\b")
_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")


def objdump_for(obj_dir: Path, default: str = "arm-none-eabi-objdump") -> str | None:
    """The objdump of the toolchain that built ``obj_dir`` (its ``.build.json``,
    or ``gcc=`` given to :func:`stack_depth`), else ``default`` from PATH."""
    bj = obj_dir.with_name(obj_dir.name[: -len(".obj")] + ".elf.build.json")
    if bj.exists():
        gcc = json.loads(bj.read_text()).get("gcc", "")
        if gcc.endswith("gcc") and Path(gcc[:-3] + "objdump").exists():
            return gcc[:-3] + "objdump"
    return shutil.which(default)


def _disassemble(tool: str, obj: Path, relocs: bool = False) -> str:
    args = [tool, "-d", "--no-show-raw-insn"] + (["-r"] if relocs else []) + [str(obj)]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def asm_frames(obj_dir: Path, tool: str | None = None) -> tuple[dict[str, int], set[str]]:
    """Stack bytes that the code of each function in ``obj_dir`` itself
    reserves, read from its (Arm) disassembly: pushes (push / stmdb sp! /
    vpush, str [sp, #-n]!) and sub sp, #n, summed (an upper bound: every
    prologue counted, none popped). For naked asm functions, where
    -fstack-usage reports 0; computed from the object code, so it cannot go
    stale when the asm changes. Second: functions that write sp some other
    way (unknown)."""
    tool = tool or objdump_for(obj_dir)
    frames: dict[str, int] = {}
    odd: set[str] = set()
    if tool is None:
        return frames, odd
    for obj in sorted(obj_dir.glob("*.o")):
        name = None
        for line in _disassemble(tool, obj).splitlines():
            m = _FUNC.match(line)
            if m:
                name = m.group(1)
                frames.setdefault(name, 0)
                continue
            if name is None or "\t" not in line:
                continue
            ins = line[line.index("\t"):]
            p = _PUSH.search(ins)
            q = _SUBSP.search(ins) or _STRPRE.search(ins)
            if p:
                frames[name] += _reg_bytes(p.group(1))
            elif q:
                frames[name] += int(q.group(1))
            elif _SPWRITE.search(ins) and not re.search(r"\tadd(?:\.w)?\s+sp,\s*(?:sp,\s*)?#", ins):
                odd.add(name)
    return frames, odd


def _avr_calls(obj_dir: Path, tool: str) -> dict[str, set[str]]:
    """Call edges of the AVR objects in ``obj_dir``: the R_AVR_CALL relocations
    (call / jmp) inside each function."""
    calls: dict[str, set[str]] = {}
    for obj in sorted(obj_dir.glob("*.o")):
        name = None
        for line in _disassemble(tool, obj, relocs=True).splitlines():
            m = _FUNC.match(line)
            if m:
                name = m.group(1)
                continue
            r = _AVR_CALL.search(line)
            if r and name is not None and not (r.group(2) and r.group(1) == name):   # not a jump inside
                calls.setdefault(name, set()).add(r.group(1))
    return calls


def _read_su(obj_dir: Path) -> tuple[dict[str, int], set[str]]:
    frame: dict[str, int] = {}
    dynamic: set[str] = set()
    for su in sorted(obj_dir.glob("*.su")):
        for line in su.read_text().splitlines():
            m = _SU.match(line.strip())
            if m:
                frame[m.group(1)] = max(frame.get(m.group(1), 0), int(m.group(2)))
                if m.group(3) not in ("static", "dynamic,bounded"):
                    dynamic.add(m.group(1) + " (dynamic)")
    return frame, dynamic


def stack_depth(obj_dir: Path, root: str, *, call_bytes: int = 0,
                objdump: str | None = None) -> tuple[int, list[str], list[str]]:
    """Worst-case stack bytes from ``root`` over the objects in ``obj_dir``.

    Returns (bytes, the deepest path, callees without stack info). A function
    whose frame is dynamic is reported in the third list too. A function that
    -fstack-usage gives 0 bytes (naked asm: fq_pair in tml_conv_s8.c) counts
    the pushes and sub sp of its code (asm_frames); one that moves sp in a
    way asm_frames cannot read is reported unknown. Without ``.ci`` files
    (avr-gcc 5) the calls come from the objects' AVR call relocations, read
    with ``objdump`` (default: from the toolchain in ``.build.json``).
    ``call_bytes`` is added once per call level (see the module docstring).
    """
    frame, unknown = _read_su(obj_dir)
    calls: dict[str, set[str]] = {}
    cis = sorted(obj_dir.glob("*.ci"))
    for ci in cis:
        text = ci.read_text()
        for title, label in _NODE.findall(text):
            m = _BYTES.search(label.replace("\\n", "\n"))
            name = _short(title)
            if m:
                frame[name] = max(frame.get(name, 0), int(m.group(1)))
                if m.group(2) not in ("static", "dynamic,bounded"):
                    unknown.add(name + " (dynamic)")
        for src, dst in _EDGE.findall(text):
            calls.setdefault(_short(src), set()).add(_short(dst))
    if not cis:
        tool = objdump or objdump_for(obj_dir, "avr-objdump")
        calls = _avr_calls(obj_dir, tool) if tool else {}
    else:
        asm, odd = asm_frames(obj_dir, objdump)
        for name, size in list(frame.items()):
            if size == 0 and name in asm:
                frame[name] = asm[name]
                if name in odd:
                    unknown.add(name + " (sp written by asm)")
    for name, size in LIBC_LEAF.items():
        frame.setdefault(name, size)
    memo: dict[str, tuple[int, list[str]]] = {}

    def depth(f: str, active: tuple = ()) -> tuple[int, list[str]]:
        if f in memo:
            return memo[f]
        if f in active:
            unknown.add(f + " (recursion)")
            return 0, [f]
        if f not in frame and f.startswith("__"):
            frame[f] = LIBGCC_BOUND
        if f not in frame:
            unknown.add(f)
            return 0, [f]
        best = (0, [])
        for c in calls.get(f, ()):
            d = depth(c, active + (f,))
            if d[0] > best[0]:
                best = d
        memo[f] = (frame[f] + call_bytes + best[0], [f] + best[1])
        return memo[f]

    total, path = depth(root)
    return total, path, sorted(unknown)
