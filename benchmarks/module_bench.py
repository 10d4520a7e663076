"""Inference modules vs compiled-in code, on QEMU mps2-an386 (Cortex-M4).

Prints, per model: module size vs weight bytes (target <= weights + 5 % +
1 KiB), instructions per inference (target <= 1.15x compiled), firmware
flash without weights (executor overhead target <= 8 KiB; loader + Ed25519
shown separately) and static RAM (target <= compiled + 1 KiB).

    .venv/bin/python benchmarks/module_bench.py [--out bench-out/module]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from module_support import MODEL_A, MODEL_B, fixed_key, pack  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.module.emu import build_slot_firmware, run_slots  # noqa: E402
from platformio_tinyml.module.firmware import KernelSet  # noqa: E402
from platformio_tinyml.module.kernels import Abi  # noqa: E402
from platformio_tinyml.module.keys import public_key_bytes  # noqa: E402
from platformio_tinyml.verify.firmware import run_model  # noqa: E402


def _sections(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True).stdout
    return {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines()) if len(p) >= 2 and p[1].isdigit()}


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)], capture_output=True, text=True).stdout
    return {p[3]: int(p[1], 16) for p in (line.split() for line in out.splitlines()) if len(p) == 4}


def _object_bytes(elf: Path, suffixes: tuple[str, ...]) -> int:
    """.text + .rodata that the link kept from the objects named ``*suffix`` (from the linker map)."""
    text = elf.with_suffix(".map").read_text()
    total, pending = 0, None
    for line in text[text.index("Linker script and memory map"):].splitlines():
        p = line.split()
        if pending and len(p) == 3:          # long section names wrap onto the next line
            p = [pending, *p]
        pending = p[0] if len(p) == 1 and p[0].startswith((".text", ".rodata")) else None
        if len(p) == 4 and p[0].startswith((".text", ".rodata")) and p[2].startswith("0x") and p[3].endswith(suffixes):
            total += int(p[2], 16)
    return total


def _code_bytes(elf: Path, skip_prefix: str | None = None) -> int:
    """.text + .rodata without the model's constant arrays (weights live in the module)."""
    s = _sections(elf)
    total = s.get(".text", 0) + s.get(".rodata", 0)
    if skip_prefix:
        total -= sum(n for name, n in _symbols(elf).items()
                     if name.startswith(skip_prefix + "_") and not name.endswith("_arena")
                     and not name.endswith(("_invoke", "_invoke_multi", "_input_ptr", "_output_ptr")))
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out/module"))
    args = ap.parse_args()
    key = fixed_key()
    kset = KernelSet.of(["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"])
    args.out.mkdir(parents=True, exist_ok=True)
    elf = build_slot_firmware(args.out / "slots", kset, public_key_bytes(key.public_key()), 16 * 1024, opt="-O2")
    sym = _symbols(elf)
    crypto = _object_bytes(elf, ("_tml_ed25519.o", "_monocypher.o", "_Hacl_Hash_SHA2.o"))
    print(f"{'model':<6} {'module B':>9} {'limit B':>9} {'instr exec':>11} {'instr comp':>11} {'ratio':>6}")
    for tag, path in (("kws", MODEL_A), ("ad", MODEL_B)):
        g, res = pack(path, Abi.ILP32_LE, 1, key)
        x = np.random.default_rng(0).integers(-128, 128, size=g.tensors[g.inputs[0]].shape, dtype=np.int8)
        run = run_slots(elf, args.out / "slots", res.data, None, x.tobytes())
        gen = generate(g, f"m_{tag}")
        comp = run_model(gen, g, [[x]], args.out / f"comp_{tag}", "mps2-an386", opt="-O2")
        assert run.outputs[0] == comp.outputs[0][0].tobytes(), "executor and compiled code disagree"
        limit = res.weight_bytes * 1.05 + 1024
        print(f"{tag:<6} {len(res.data):>9,} {limit:>9,.0f} {run.instructions:>11,} {comp.instructions[0]:>11,} "
              f"{run.instructions / comp.instructions[0]:>6.3f}")
        c_code = _code_bytes(comp.elf, f"m_{tag}")
        c_ram = _sections(comp.elf).get(".bss", 0) + _sections(comp.elf).get(".data", 0)
        print(f"       compiled firmware code (no weights) {c_code:,} B, static RAM {c_ram:,} B "
              f"(arena {gen.arena_bytes:,})")
    e_code = _code_bytes(elf)
    e_ram = _sections(elf).get(".bss", 0) + _sections(elf).get(".data", 0)
    print(f"executor firmware code {e_code:,} B (of which Ed25519: Monocypher + HACL* SHA-512 {crypto:,} B), "
          f"static RAM {e_ram:,} B (arena 16,384)")
    print(f"loader+executor functions: " + ", ".join(f"{n} {s}" for n, s in sorted(sym.items())
                                                   if n.startswith(("tml_module", "tml_exec", "tml_slots",
                                                                    "check_", "open_", "pointers_ok"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
