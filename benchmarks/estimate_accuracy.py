#!/usr/bin/env python3
"""How close cgen's flash and latency estimates come to the measured figures (issue 15 item 5).

    .venv/bin/python benchmarks/estimate_accuracy.py [--models kws,vww,resnet8,ad] [--isas m4,m0plus,rv32,avr]
                                                      [--out bench-out]

For each MLPerf Tiny model (int8 and float), a streaming wake-word model and core (and three wake-word models the tables were not fitted on) it takes the estimate selection uses
(``CgenCompiler.supports`` on a real board of that core: the flash the model adds and
the latency in cycles) and measures the same things on the emulated core, building
the generated C at -Os as PlatformIO does:

* flash: code + rodata + data of the model's own symbols in the linked ELF (weights,
  generated code, the runtime kernels it uses, the libgcc/libm helpers they pull in;
  not the harness), read with pyelftools;
* latency: Cortex-M4 and Cortex-M0+ cycles from the instruction trace priced by
  benchmarks/cycle_model.py (zero wait states); RV32: QEMU's exact instruction count
  only (no cycle model: the estimate's instructions, i.e. cycles / CPI, are compared);
  AVR: simavr's exact cycle count.

Models that do not fit the emulated machine (the ATmega2560: 8 KB of RAM) are skipped
and say so. Prints a table with estimate / measured and writes
<out>/estimate_accuracy.json.
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
from cgen_bench import model_memory  # noqa: E402
from cgen_latency_calibrate import EXTRA, MLPERF, MODELS, sample  # noqa: E402

# Wake-word models the latency tables were not fitted on (held out), downloaded by scripts/setup.sh.
HELD_OUT = {m: REPO / "third_party" / "models" / "pymicro_wakeword" / f"{m}.tflite"
            for m in ("hey_jarvis", "hey_mycroft", "okay_nabu")}

from platformio_tinyml.compilers.cgen.backend import CgenCompiler  # noqa: E402
from platformio_tinyml.compilers.cgen.latency import CPI, isa_of  # noqa: E402
from platformio_tinyml.device.search import load_profile  # noqa: E402
from platformio_tinyml.pipeline import prepare_request  # noqa: E402
from platformio_tinyml.verify.firmware import run_model  # noqa: E402

# core -> (a real board of that core whose profile gives the estimate, emulated machine,
#          extra cflags, cycle-model core or None: instructions / "avr": simavr cycles)
CORES = {
    "m4": ("nucleo_f446re", "mps2-an386", [], "m4"),
    "m0plus": ("pico", "mps2-an385", ["-mcpu=cortex-m0plus"], "m0plus"),
    "rv32": ("hifive1-revb", "riscv32-virt", [], None),
    "avr": ("megaatmega2560", "atmega2560", [], "avr"),
}


def measure(model: str, core: str, work: Path) -> dict:
    board, machine, cflags, cyc_core = CORES[core]
    device = load_profile(board)
    path = {**EXTRA, **HELD_OUT}.get(model, MLPERF / MODELS.get(model, ""))
    req = prepare_request(path, device, name=model)
    cg = CgenCompiler()
    sup = cg.supports(req)
    est = sup.estimate
    isa, factor = isa_of(device)
    cpi = CPI.get(device.core, 1.3) * factor
    row = {"model": model, "core": core, "board": board, "isa": isa, "cpi": cpi,
           "est_flash": est.flash_bytes, "est_cycles": est.latency_cycles}
    if core == "avr" and not sup.ok:
        row["skipped"] = "; ".join(sup.reasons)[:160]
        return row
    gen = cg._generate_cached(req)      # the code supports() generated for its estimate
    g = req.graph
    t0 = time.time()
    r = run_model(gen, g, [sample(g, np.random.default_rng(7))], work / f"{model}-{core}", machine, opt="-Os", extra_cflags=cflags, timeout=1800)
    mem = model_memory(r.elf, gen, r.elf.with_name(r.elf.stem + ".obj"))
    row["flash"] = mem["flash_bytes"]
    row["weight_bytes"] = mem["weight_bytes"]
    if cyc_core == "avr":
        row["cycles"] = r.instructions[0]              # simavr: the harness counter is in cycles
    elif cyc_core:
        c = cycle_model.measure(r.elf, machine, cyc_core)
        row["cycles"], row["instructions"] = c.at(0), c.instructions
    else:
        row["instructions"] = r.instructions[0]
    row["seconds"] = round(time.time() - t0, 1)
    row["flash_ratio"] = row["est_flash"] / row["flash"]
    if "cycles" in row and row["est_cycles"]:
        row["latency_ratio"] = row["est_cycles"] / row["cycles"]
    elif row["est_cycles"]:
        row["latency_ratio"] = row["est_cycles"] / cpi / row["instructions"]
    return row


def table(rows: list[dict]) -> str:
    out = [f"{'model':<8} {'core':<7} {'est flash':>10} {'flash':>10} {'ratio':>6}  {'est latency':>12} "
           f"{'measured':>12} {'unit':<7} {'ratio':>6}"]
    for r in rows:
        if "skipped" in r:
            out.append(f"{r['model']:<8} {r['core']:<7} skipped: {r['skipped']}")
            continue
        if "cycles" in r:
            est, meas, unit = r["est_cycles"], r["cycles"], "cycles"
        else:
            est, meas, unit = round(r["est_cycles"] / r["cpi"]) if r["est_cycles"] else None, r["instructions"], "instr"
        lat = f"{r['latency_ratio']:>6.2f}" if "latency_ratio" in r else "     -"
        out.append(f"{r['model']:<8} {r['core']:<7} {r['est_flash']:>10,} {r['flash']:>10,} {r['flash_ratio']:>6.2f}  "
                   f"{est or 0:>12,} {meas:>12,} {unit:<7} {lat}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join([*MODELS, *EXTRA, *HELD_OUT]))
    ap.add_argument("--isas", default=",".join(CORES))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    a = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tml-est-") as tmp:
        for model in a.models.split(","):
            for core in a.isas.split(","):
                rows.append(measure(model, core, Path(tmp)))
                print(f"[estimate] {model} {core}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimate_accuracy.json").write_text(json.dumps({"rows": rows, "seconds": round(time.time() - t0)},
                                                           indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
