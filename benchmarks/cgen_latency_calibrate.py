#!/usr/bin/env python3
"""Calibrate cgen's latency tables (platformio_tinyml/compilers/cgen/latency.py).

    .venv/bin/python benchmarks/cgen_latency_calibrate.py [--isas armv7em,rv32] [--models kws,ad]
                                                          [--out bench-out] [--jobs 2]

Cuts each MLPerf Tiny model into single-op graphs, generates each with cgen,
builds it at -Os for an emulated machine and reads the exact instruction
count of one inference (QEMU -icount; AVR: simavr cycles). Then fits, per
ISA and kernel family, ``instructions = a * work + b`` (least squares, b >= 0)
and prints the table to paste into latency.py. Writes
<out>/cgen_latency_calibration.json (every measurement and the fit).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.cgen.latency import kernel_of, op_work  # noqa: E402
from platformio_tinyml.ir import Graph, OpKind  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.firmware import run_model  # noqa: E402

MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite",
          "resnet8": "pretrainedResnet_quant.tflite", "ad": "ad01_int8.tflite",
          "ad_f32": "ad01_fp32.tflite", "vww_f32": "vww_96_float.tflite",
          "resnet8_f32": "pretrainedResnet.tflite"}
# Beyond MLPerf Tiny (downloaded by scripts/setup.sh): a streaming wake-word model, whose
# concatenations and slices of its state buffers calibrate the copy ("move") kernels.
EXTRA = {"alexa": REPO / "third_party" / "models" / "pymicro_wakeword" / "alexa.tflite"}
# ISA -> (machine, extra cflags)
ISAS = {
    "armv7em": ("mps2-an386", []),
    "armv7m": ("mps2-an385", []),
    "armv6m": ("mps2-an385", ["-mcpu=cortex-m0"]),
    "armv81m": ("mps3-an547", []),
    "rv32": ("riscv32-virt", []),
    "avr": ("atmega2560", []),
}
AVR_RAM = 7 * 1024
AVR_FLASH = 200 * 1024


def single_op_graph(g: Graph, k: int) -> Graph:
    op = g.ops[k]
    sub = Graph(name=f"op{k}", tensors=list(g.tensors), ops=[op], source=g.source,
                inputs=[i for i in dict.fromkeys(op.inputs) if i >= 0 and not g.tensors[i].is_const],
                outputs=list(op.outputs), source_format=g.source_format)
    sub = copy.deepcopy(sub)
    sub.ops[0].index = 0
    return sub.renumber()


def sample(g: Graph, rng) -> list[np.ndarray]:
    out = []
    for t in g.inputs:
        tt = g.tensors[t]
        if tt.dtype.np_name == "float32":
            out.append(rng.standard_normal(tt.shape).astype(np.float32))
        else:
            info = np.iinfo(tt.dtype.numpy)
            out.append(rng.integers(info.min, info.max + 1, tt.shape).astype(tt.dtype.numpy))
    return out


def measure(job) -> dict:
    model, k, isa, sub, kernel, work, outs = job
    machine, cflags = ISAS[isa]
    rng = np.random.default_rng(k)
    gen = generate(sub, f"m{model.replace('_', '')}{k}")
    row = {"model": model, "op": k, "isa": isa, "kernel": kernel, "work": work, "outs": outs,
           "kind": sub.ops[0].kind.value}
    if isa == "avr" and (gen.arena_bytes > AVR_RAM or gen.const_bytes > AVR_FLASH):
        row["skipped"] = f"arena {gen.arena_bytes} B / const {gen.const_bytes} B too big for the ATmega2560"
        return row
    with tempfile.TemporaryDirectory(prefix="tml-cal-") as td:
        try:
            run = run_model(gen, sub, [sample(sub, rng)], Path(td), machine, "-Os", cflags, timeout=600)
            row["instructions"] = run.instructions[0]
        except Exception as e:  # record, keep going
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return row


def fit(rows: list[dict]) -> dict:
    """Per (isa, kernel): non-negative least squares of
    instructions = a * work + c * output elements + b (relative error weighted)."""
    from scipy.optimize import nnls
    table: dict = {}
    groups: dict = {}
    for r in rows:
        if "instructions" in r:
            groups.setdefault((r["isa"], r["kernel"]), []).append(r)
    for (isa, kernel), rs in sorted(groups.items()):
        y = np.array([r["instructions"] for r in rs], float)
        # loop kernels keep their per-op overhead in c (per output); a free intercept
        # fitted to a few distinct layer shapes would swamp small layers.
        one = 0.0 if kernel.split("_")[0] in ("conv", "dwconv", "fc", "pool") else 1.0
        X = np.array([[r["work"], r["outs"], one] for r in rs], float)
        wt = 1.0 / np.maximum(y, 1.0)            # fit relative, not absolute, error
        coef, _ = nnls(X * wt[:, None], y * wt)
        pred = X @ coef
        err = float(np.max(np.abs(pred - y) / np.maximum(y, 1)))
        table.setdefault(isa, {})[kernel] = {"a": round(float(coef[0]), 3), "c": round(float(coef[1]), 2),
                                             "b": round(float(coef[2])), "n": len(rs),
                                             "max_rel_err": round(err, 3)}
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isas", default=",".join(ISAS))
    ap.add_argument("--models", default=",".join([*MODELS, *EXTRA]))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--refit", help="fit the rows of an earlier calibration JSON; measure nothing")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.refit:
        rows = json.loads(Path(args.refit).read_text())["rows"]
        _report(rows, fit(rows), Path(args.out), t0)
        return 0
    jobs = []
    for model in args.models.split(","):
        g = load_tflite(EXTRA[model] if model in EXTRA else MLPERF / MODELS[model])
        for k, op in enumerate(g.ops):
            if op.kind in (OpKind.RESHAPE, OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE):
                continue    # aliased; variable access needs the whole model's state (priced as moves)
            sub = single_op_graph(g, k)
            for isa in args.isas.split(","):
                jobs.append((model, k, isa, sub, kernel_of(sub, sub.ops[0]), op_work(sub, sub.ops[0]),
                             sub.tensors[sub.ops[0].outputs[0]].size))
    print(f"{len(jobs)} single-op firmware runs", flush=True)
    with ThreadPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(measure, jobs))
    for r in rows:
        if "error" in r:
            print(f"  {r['model']} op {r['op']} on {r['isa']}: {r['error'].splitlines()[0][:200]}")
    _report(rows, fit(rows), Path(args.out), t0)
    return 0


def _report(rows, table, out: Path, t0: float) -> None:
    print("IPW = {   # (a per unit of work, c per output element, b per op); max fit error in comments")
    for isa, kernels in table.items():
        print(f"    {isa!r}: {{")
        for kernel, v in kernels.items():
            print(f"        {kernel!r}: ({v['a']}, {v['c']}, {v['b']}),  # n={v['n']}, "
                  f"max err {v['max_rel_err']:.0%}")
        print("    },")
    print("}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "cgen_latency_calibration.json").write_text(json.dumps(
        {"opt": "-Os", "rows": rows, "fit": table, "seconds": round(time.time() - t0, 1)}, indent=1))
    print(f"done in {time.time() - t0:.0f} s -> {out / 'cgen_latency_calibration.json'}")


if __name__ == "__main__":
    sys.exit(main())
