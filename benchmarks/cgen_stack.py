#!/usr/bin/env python3
"""Worst-case stack of one cgen inference, per core family, on the MLPerf Tiny models.

    .venv/bin/python benchmarks/cgen_stack.py [--models kws,vww,resnet8,ad] [--out bench-out]

For each family (Cortex-M0+, M3, M4, M7, RV32, AVR) and model, the generated
code and its runtime are compiled (-Os and -O2, the flags of
``platformio_tinyml.emu.compile_only``) with ``-fstack-usage`` and, where gcc
has it, ``-fcallgraph-info=su``; :func:`platformio_tinyml.memory.stack.stack_depth`
gives the deepest path from ``<model>_invoke``. Prints the table and the
per-family maximum as the ``STACK_BYTES`` table of
``platformio_tinyml/compilers/cgen/backend.py`` (paste it there when it
changes), and writes <out>/cgen_stack.json.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.cgen.emit import write_output  # noqa: E402
from platformio_tinyml.emu.toolchain import FirmwareBuildError, compile_only, compiler_for  # noqa: E402
from platformio_tinyml.memory.stack import stack_depth  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402

MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite",
          "resnet8": "pretrainedResnet_quant.tflite", "ad": "ad01_int8.tflite"}
# family -> (core, fpu, bytes one call level adds outside the callee's frame)
FAMILIES = {
    "cortex-m0plus": ("cortex-m0plus", None, 0),
    "cortex-m3": ("cortex-m3", None, 0),
    "cortex-m4": ("cortex-m4", "fpv4-sp-d16", 0),
    "cortex-m7": ("cortex-m7", "fpv5-d16", 0),
    "rv32": ("rv32imac", None, 0),
    "avr": ("atmega2560", None, 3),     # call pushes a 3-byte PC on > 128 KiB parts
}
OPTS = ("-Os", "-O2")


def measure(key: str, family: str, opt: str, work: Path) -> dict:
    g = load_tflite(MLPERF / MODELS[key])
    gen = generate(g, key)
    core, fpu, call_bytes = FAMILIES[family]
    src = work / f"{key}-{family}{opt}" / "src"
    src.mkdir(parents=True, exist_ok=True)
    cfiles = [p for p in write_output(gen, src) if p.suffix == ".c"]
    gcc = compiler_for(core)
    flags = ["-fstack-usage"] + ([] if family == "avr" else ["-fcallgraph-info=su"])
    row = {"model": key, "family": family, "opt": opt}
    try:
        objs = compile_only(cfiles, [src], core, fpu, cflags=flags, out_dir=src.parent / "obj", opt=opt)
    except FirmwareBuildError as e:   # e.g. VWW on AVR: arrays over 32 KiB, an arena larger than RAM
        return {**row, "stack_bytes": None, "path": [], "unknown": [], "skipped": e.what}
    depth, path, unknown = stack_depth(objs[0].parent, f"{key}_invoke", call_bytes=call_bytes,
                                       objdump=gcc[:-3] + "objdump")
    return {**row, "stack_bytes": depth, "path": path, "unknown": unknown}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            for key in args.models.split(","):
                for opt in OPTS:
                    r = measure(key, family, opt, Path(tmp))
                    rows.append(r)
                    if r["stack_bytes"] is None:
                        print(f"{family:<14} {key:<8} {opt:<4}  does not compile: {r['skipped']}", flush=True)
                        continue
                    print(f"{family:<14} {key:<8} {opt:<4} {r['stack_bytes']:>6} B  "
                          f"{' > '.join(r['path'])}{'  UNKNOWN: ' + ', '.join(r['unknown']) if r['unknown'] else ''}",
                          flush=True)
    worst = {f: max(r["stack_bytes"] or 0 for r in rows if r["family"] == f) for f in args.families.split(",")}
    print("\nSTACK_BYTES = {" + ", ".join(f'"{f}": {b}' for f, b in worst.items()) + "}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cgen_stack.json").write_text(json.dumps({"rows": rows, "worst": worst,
                                                     "seconds": round(time.time() - t0, 1)}, indent=1))
    return 1 if any(r["unknown"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
