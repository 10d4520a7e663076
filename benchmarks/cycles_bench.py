#!/usr/bin/env python3
"""Cycles per inference of the MLPerf Tiny int8 models, cgen, beside instructions.

    .venv/bin/python benchmarks/cycles_bench.py [--models kws,vww,resnet8,ad] [--out bench-out]

For each model and build (Cortex-M4 -O2 and -Os on mps2-an386; ARMv6-M code
for the Cortex-M0+ at -Os, run on the Cortex-M3 machine mps2-an385 since QEMU
has no M0+ board; RV32IMAC on riscv32-virt, instructions only) it runs one inference under QEMU with the cycle model's
tracing plugin (benchmarks/cycle_model.py) and reports instructions, cycles at
0 and 4 flash wait states (STM32L4 at 80 MHz; ART-style caches as documented in
cycle_model.py), cycles per MAC, and the ratio to X-CUBE-AI 10.2's published
Cortex-M4 cycles. Every build's outputs are checked against TensorFlow Lite
Micro first; flash+ is the model's code and constants beyond its weights (as
in cgen_bench.py). Builds: -O2; -Os, the default, where the hot kernel files
switch themselves to -O2 (runtime/tml_speed.h); "size", -Os with
-DTML_OPTIMIZE_SIZE (custom_tinyml_optimize = size). Prints a table and writes
<out>/cycles_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import cycle_model  # noqa: E402
from cgen_bench import MLPERF, MODELS, XCUBE_CYCLES, model_memory  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.tflm.flatbuffer import read_facts  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.firmware import run_model  # noqa: E402
from platformio_tinyml.verify.reference import TFLMReference  # noqa: E402

# build name -> (machine, extra cflags, optimisation, cycle-model core)
SIZE = ["-DTML_OPTIMIZE_SIZE"]     # custom_tinyml_optimize = size: no -O2 kernels in the -Os build
BUILDS = {
    "m4-O2": ("mps2-an386", [], "-O2", "m4"),
    "m4-Os": ("mps2-an386", [], "-Os", "m4"),
    "m4-size": ("mps2-an386", SIZE, "-Os", "m4"),
    "m0plus-Os": ("mps2-an385", ["-mcpu=cortex-m0plus"], "-Os", "m0plus"),
    "m0plus-size": ("mps2-an385", ["-mcpu=cortex-m0plus", *SIZE], "-Os", "m0plus"),
    # RV32IMAC (QEMU riscv32-virt): instructions only, there is no RV32 cycle model
    "rv32-Os": ("riscv32-virt", [], "-Os", None),
    "rv32-size": ("riscv32-virt", SIZE, "-Os", None),
}
WAIT_STATES = (0, 4)


def bench(key: str, work: Path, builds: list[str]) -> dict:
    path = MLPERF / MODELS[key]
    g = load_tflite(path)
    gen = generate(g, key)
    x = np.random.default_rng(2024).integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
    golden = TFLMReference(path).run([x])[0].reshape(-1)
    macs = read_facts(path).macs
    row = {"model": key, "macs": macs, "xcube_cycles": XCUBE_CYCLES[key], "builds": {}}
    for b in builds:
        machine, flags, opt, core = BUILDS[b]
        r = run_model(gen, g, [[x]], work / f"{key}-{b}", machine, opt=opt, extra_cflags=flags, timeout=600)
        flash = model_memory(r.elf, gen, r.elf.with_name(r.elf.stem + ".obj"))["flash_beyond_weights"]
        exact = bool(np.array_equal(r.outputs[0][0].reshape(-1), golden))
        if core is None:   # no cycle model: the board's instruction count
            row["builds"][b] = {"flash_beyond_weights": flash, "exact": exact, "instructions": r.instructions[0],
                                "board_instructions": r.instructions[0],
                                "instructions_per_mac": r.instructions[0] / macs}
            continue
        c = cycle_model.measure(r.elf, machine, core)
        top = sorted(c.by_function.items(), key=lambda kv: -kv[1][1])[:6]
        row["builds"][b] = {
            "flash_beyond_weights": flash, "exact": exact,
            "instructions": c.instructions, "board_instructions": r.instructions[0],
            **{f"cycles_ws{w}": c.at(w) for w in WAIT_STATES},
            "cpi": c.cycles / c.instructions,
            "instructions_per_mac": c.instructions / macs, "cycles_per_mac": c.cycles / macs,
            "vs_xcube": c.cycles / XCUBE_CYCLES[key],
            "top": [{"function": n, "instructions": i, "cycles": cy} for n, (i, cy) in top],
        }
    return row


def table(rows: list[dict]) -> str:
    out = [f"{'model':<8} {'build':<10} {'instr':>11} {'cycles 0ws':>11} {'4ws':>11} {'CPI':>5} "
           f"{'i/MAC':>6} {'c/MAC':>6} {'X-CUBE-AI':>10} {'ratio':>6} {'flash+':>7} exact"]
    for r in rows:
        for b, v in r["builds"].items():
            if "cycles_ws0" not in v:   # instructions only (RV32)
                out.append(f"{r['model']:<8} {b:<10} {v['instructions']:>11,} {'-':>11} {'-':>11} {'-':>5} "
                           f"{v['instructions_per_mac']:>6.2f} {'-':>6} {'-':>10} {'-':>6} "
                           f"{v['flash_beyond_weights']:>7,} {v['exact']}")
                continue
            ratio = f"{v['vs_xcube']:.2f}" if b.startswith("m4") else "-"
            out.append(f"{r['model']:<8} {b:<10} {v['instructions']:>11,} {v['cycles_ws0']:>11,} "
                       f"{v['cycles_ws4']:>11,} {v['cpi']:>5.2f} {v['instructions_per_mac']:>6.2f} "
                       f"{v['cycles_per_mac']:>6.2f} {int(r['xcube_cycles']):>10,} {ratio:>6} {v['flash_beyond_weights']:>7,} "
                       f"{v['exact']}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--builds", default=",".join(BUILDS))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    a = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in a.models.split(","):
            rows.append(bench(key, Path(tmp), a.builds.split(",")))
            print(f"[cycles] {key}: {time.time() - t0:.0f} s", file=sys.stderr)
    print(table(rows))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cycles_bench.json").write_text(json.dumps({"models": rows, "seconds": round(time.time() - t0)},
                                                      indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
