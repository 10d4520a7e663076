#!/usr/bin/env python3
"""Measure the flash cgen's code takes per ISA: the table of platformio_tinyml/compilers/cgen/sizes.py.

    .venv/bin/python benchmarks/measure_kernels.py [--isas armv7em,armv6m,...] [--out bench-out]

Compiles every runtime kernel file (runtime/*.c) at -Os for the core that stands for
each ISA of latency.py (the emulated machines' flags: Cortex-M4F, Cortex-M3,
Cortex-M0+, Cortex-M55, rv32imac, ATmega2560) and reads the bytes of its allocated,
non-zero-initialised sections (code, rodata, data): a file's whole object, which the
linker's section GC trims little (the MLPerf models use almost every function of the
kernels they pull in). Then compiles the generated model file of the MLPerf Tiny
models and a streaming wake-word model and fits the model code beyond its constant
data as ``bytes = per_op * ops + base`` (least squares). Prints the tables to paste
into sizes.py and writes <out>/kernel_sizes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cgen_latency_calibrate import EXTRA, MLPERF, MODELS  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.cgen.emit import RUNTIME_PKG, runtime_text, write_output  # noqa: E402
from platformio_tinyml.emu.toolchain import FirmwareBuildError, compile_only  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402

# ISA (latency.py's names) -> (core, fpu) as the emulated machine builds it
ISAS = {"armv7em": ("cortex-m4", "fpv4-sp-d16"), "armv7m": ("cortex-m3", None),
        "armv6m": ("cortex-m0plus", None), "armv81m": ("cortex-m55", "auto"),
        "rv32": ("rv32imac", None), "avr": ("atmega2560", None)}
FIT_MODELS = ("kws", "vww", "resnet8", "ad", "ad_f32", "alexa")


def object_bytes(obj: Path) -> int:
    """Bytes of an object's allocated sections that occupy flash (SHF_ALLOC, not NOBITS)."""
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        return sum(s["sh_size"] for s in ELFFile(f).iter_sections()
                   if s["sh_flags"] & 2 and s["sh_type"] != "SHT_NOBITS")


def runtime_names() -> list[str]:
    from importlib import resources
    return sorted(p.name for p in resources.files(RUNTIME_PKG).iterdir() if p.name.startswith("tml_"))


def fit_models() -> dict:
    """{name: (graph, generated code)} of FIT_MODELS: the generated C is the same for every ISA."""
    out = {}
    for m in FIT_MODELS:
        g = load_tflite(EXTRA[m] if m in EXTRA else MLPERF / MODELS[m])
        out[m] = (g, generate(g, m))
    return out


def measure_isa(isa: str, work: Path, generated: dict) -> dict:
    core, fpu = ISAS[isa]
    src = work / isa / "src"
    src.mkdir(parents=True)
    for name in runtime_names():
        (src / name).write_text(runtime_text(name))
    kernels = {}
    for f in (n for n in runtime_names() if n.endswith(".c")):
        obj = compile_only([src / f], [src], core, fpu, out_dir=work / isa / "obj")[0]
        kernels[f] = object_bytes(obj)
    models = []
    for m, (g, gen) in generated.items():
        out = work / isa / m
        write_output(gen, out)
        try:
            obj = compile_only([out / f"{m}.c"], [out], core, fpu, out_dir=out / "obj")[0]
        except FirmwareBuildError:      # AVR: arrays over 32 KB (such a model is refused there)
            continue
        size = object_bytes(obj)
        models.append({"model": m, "ops": len(g.ops), "const_bytes": gen.const_bytes,
                       "object_bytes": size, "code_bytes": size - gen.const_bytes})
    X = np.array([[r["ops"], 1.0] for r in models])
    y = np.array([r["code_bytes"] for r in models], float)
    (per_op, base), *_ = np.linalg.lstsq(X, y, rcond=None)
    return {"kernels": kernels, "models": models, "per_op": round(float(per_op), 1), "base": max(0, round(float(base)))}


def tables(res: dict) -> str:
    """sizes.py's KERNEL_BYTES and MODEL_CODE, as they are pasted there."""
    lines = ["KERNEL_BYTES: dict[str, dict[str, int]] = {"]
    for isa, r in res.items():
        cur = f"    {isa!r}: {{"
        for item in (f"{k[4:-2]!r}: {n}, " for k, n in r["kernels"].items()):
            if len(cur) + len(item) > 109:
                lines.append(cur.rstrip())
                cur = "        "
            cur += item
        lines.append(cur.rstrip().rstrip(",") + "},")
    lines += ["}", "# isa: (bytes per op, base bytes) of the generated model file beyond its constant data",
              "MODEL_CODE: dict[str, tuple[float, int]] = {"
              + ", ".join(f"{isa!r}: ({r['per_op']}, {r['base']})" for isa, r in res.items()) + "}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isas", default=",".join(ISAS))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    a = ap.parse_args(argv)
    res = {}
    generated = fit_models()
    with tempfile.TemporaryDirectory(prefix="tml-ksize-") as tmp:
        for isa in a.isas.split(","):
            res[isa] = measure_isa(isa, Path(tmp), generated)
            print(f"[kernels] {isa}: per op {res[isa]['per_op']} B, base {res[isa]['base']} B", file=sys.stderr)
    print(tables(res))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel_sizes.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
