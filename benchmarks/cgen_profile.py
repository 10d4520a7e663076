#!/usr/bin/env python3
"""Per-op Cortex-M4 instruction profile of the cgen MLPerf Tiny models.

    .venv/bin/python benchmarks/cgen_profile.py [--models kws,resnet8] [--opt -O2]

Builds each model for QEMU mps2-an386 with board_instructions() read
between the kernel calls of <model>_invoke_multi and prints, per op, its
label, shape summary and instruction count (plus the model total).
A development aid: the numbers of the benchmark come from cgen_bench.py.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cgen_bench import MLPERF, MODELS  # noqa: E402
from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.emu import run as emu_run  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.firmware import build_model_firmware  # noqa: E402


def instrument(src: str, name: str) -> tuple[str, int]:
    """Insert a counter read before every kernel call and a dump at the end."""
    lines = src.split("\n")
    out, k = [], 0
    in_body = False
    for ln in lines:
        if ln.startswith(f"int {name}_invoke_multi("):
            in_body = True
        if in_body and re.match(r"    /\* .* \*/$", ln):
            out.append(f"    tml_prof_t[{k}] = board_instructions();")
            k += 1
        if in_body and ln == "    return 0;":
            out.append(f"    tml_prof_t[{k}] = board_instructions();")
            out.append(f"    for (int q = 0; q < {k}; ++q) {{ board_puts(\"P \"); "
                       f"board_print_i32((int32_t)(tml_prof_t[q + 1] - tml_prof_t[q])); board_putc('\\n'); }}")
            in_body = False
        out.append(ln)
    text = "\n".join(out)
    text = text.replace('#include "tml_kernels.h"',
                        f'#include "tml_kernels.h"\n#include "tml_board.h"\nstatic uint32_t tml_prof_t[{k + 1}];', 1)
    return text, k


def profile(key: str, work: Path, opt: str) -> list[tuple[str, int]]:
    path = MLPERF / MODELS[key]
    g = load_tflite(path)
    gen = generate(g, key)
    src, n = instrument(gen.files[f"{key}.c"], key)
    gen.files[f"{key}.c"] = src
    x = np.random.default_rng(2024).integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
    elf = build_model_firmware(gen, g, [[x]], work / key, "mps2-an386", opt=opt)
    res = emu_run(elf, "mps2-an386", timeout=120)
    counts = [int(m) for m in re.findall(r"^P (-?\d+)", res.stdout, flags=re.M)]
    rows = []
    for op, c in zip(g.ops, counts):
        ins = [g.tensors[t] for t in op.inputs if t >= 0]
        shp = " ".join("x".join(map(str, t.shape)) for t in ins[:2])
        rows.append((f"{op.index:>3} {op.kind.value:<18} {shp:<30} -> "
                     f"{'x'.join(map(str, g.tensors[op.outputs[0]].shape))}", c))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--opt", default="-O2")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            rows = profile(key, Path(tmp), args.opt)
            print(f"== {key} ({args.opt})")
            for label, c in rows:
                print(f"{label:<80} {c:>11,}")
            print(f"{'total':<80} {sum(c for _, c in rows):>11,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
