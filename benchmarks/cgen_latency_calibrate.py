#!/usr/bin/env python3
"""Calibrate cgen's latency tables (platformio_tinyml/compilers/cgen/latency.py).

    .venv/bin/python benchmarks/cgen_latency_calibrate.py [--isas armv7em,rv32] [--models kws,ad]
                                                          [--out bench-out] [--jobs 2]

Generates each MLPerf Tiny model (and a streaming wake-word model) with cgen,
builds it at -Os for an emulated machine with the exact instruction count
(QEMU -icount; AVR: simavr cycles) read between its kernel calls
(benchmarks/cgen_profile.py's instrumentation), so every op is measured as the
model runs it: with the arena scratch the memory planner grants it there, which
picks the kernel's fast path (a conv alone in a graph gets none, and runs up to
1.7x slower). A model too big for the machine (the ATmega2560) is cut into
single-op graphs instead. Then fits, per ISA and kernel family,
``instructions = a * work + c * outputs + b`` (non-negative least squares,
relative error) and prints the table to paste into latency.py. Writes
<out>/cgen_latency_calibration.json (every measurement and the fit).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from cgen_profile import instrument  # noqa: E402
from platformio_tinyml.compilers.cgen.latency import _result, kernel_of, op_work  # noqa: E402
from platformio_tinyml.emu import run as emu_run  # noqa: E402
from platformio_tinyml.ir import Graph, OpKind  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.firmware import build_model_firmware, run_model  # noqa: E402

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


def measure_model(job) -> list[dict]:
    """Every op of a whole model on one ISA, from counter reads between its kernel calls; []
    when the model does not build or run there (then it is measured op by op)."""
    model, isa, g = job
    machine, cflags = ISAS[isa]
    name = f"m{model.replace('_', '')}"
    gen = generate(g, name)
    if isa == "avr" and (gen.arena_bytes + gen.state_bytes > AVR_RAM or gen.const_bytes > AVR_FLASH):
        return []
    src, n = instrument(gen.files[f"{name}.c"], name)
    if n != len(g.ops):
        return []
    gen.files[f"{name}.c"] = src
    with tempfile.TemporaryDirectory(prefix="tml-cal-") as td:
        try:
            elf = build_model_firmware(gen, g, [sample(g, np.random.default_rng(0))], Path(td), machine,
                                       "-Os", cflags)
            res = emu_run(elf, machine, timeout=600)
        except Exception:      # an AVR array over 32 KB and the like: measured op by op
            return []
    counts = [int(m) & 0xFFFFFFFF for m in re.findall(r"^P (-?\d+)", res.stdout, flags=re.M)]
    if len(counts) != len(g.ops):
        return []
    return [{"model": model, "op": k, "isa": isa, "kernel": kernel_of(g, op), "work": op_work(g, op),
             "outs": _result(g, op).size, "kind": op.kind.value, "instructions": c, "context": "model"}
            for k, (op, c) in enumerate(zip(g.ops, counts)) if op.kind is not OpKind.RESHAPE]


# ---- cycles per instruction (--cpi): Cortex-M4 and M0+ through benchmarks/cycle_model.py --------------

CPI_CORES = {"cortex-m4": ("mps2-an386", [], "m4"), "cortex-m0plus": ("mps2-an385", ["-mcpu=cortex-m0plus"], "m0plus")}
# kernel family (int8) -> the runtime files whose functions run it; float families share one figure
FAMILY_FILES = {"conv_s8": ("tml_conv_s8.c",), "dwconv_s8": ("tml_dwconv_s8.c",), "fc_s8": ("tml_fc_s8.c",),
                "pool_s8": ("tml_pool_s8.c", "tml_mean_s8.c"), "softmax_s8": ("tml_softmax_s8.c",),
                "eltwise_s8": ("tml_binary_s8.c", "tml_ew_s8.c", "tml_act_s8.c"),
                "move_s8": ("tml_move.c", "tml_concat_s8.c", "?")}


def _file_of_functions(elf: Path) -> list[tuple[int, int, str]]:
    """(low, high, source file name) of every function the ELF's DWARF describes."""
    from elftools.elf.elffile import ELFFile
    out = []
    with open(elf, "rb") as f:
        for cu in ELFFile(f).get_dwarf_info().iter_CUs():
            name = Path(cu.get_top_DIE().get_full_path()).name
            for die in cu.iter_DIEs():
                at = die.attributes
                if die.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in at and "DW_AT_high_pc" in at:
                    lo, hp = at["DW_AT_low_pc"].value, at["DW_AT_high_pc"]
                    out.append((lo, hp.value if hp.form == "DW_FORM_addr" else lo + hp.value, name))
    return sorted(out)


def cpi_by_file(model: str, core: str) -> dict[str, list[int]]:
    """{source file ("?" for libc/libgcc): [instructions, cycles]} of one inference, zero wait states."""
    import bisect
    from collections import defaultdict
    import cycle_model
    machine, cflags, rule = CPI_CORES[core]
    g = load_tflite(EXTRA[model] if model in EXTRA else MLPERF / MODELS[model])
    with tempfile.TemporaryDirectory(prefix="tml-cpi-") as td:
        run = run_model(generate(g, "m"), g, [sample(g, np.random.default_rng(0))], Path(td), machine, "-Os",
                        cflags, timeout=1800)
        c = cycle_model.measure(run.elf, machine, rule)
        spans = _file_of_functions(run.elf)
        addr = {n: lo for lo, _, n in cycle_model._functions(run.elf)}
    starts = [s[0] for s in spans]
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for fn, (ins, cyc) in c.by_function.items():
        a, name = addr.get(fn), "?"
        k = bisect.bisect_right(starts, a) - 1 if a is not None else -1
        if k >= 0 and spans[k][0] <= a < spans[k][1]:
            name = spans[k][2]
        out[name][0] += ins
        out[name][1] += cyc
    return dict(out)


def cpi_tables(models: list[str], jobs: int) -> dict:
    """Per core: CPI of each int8 kernel family (its files' cycles / instructions over the models) and
    "f32" (whole float models: their kernels and the libgcc/libm calls they make)."""
    work = [(m, core) for core in CPI_CORES for m in models]
    with ThreadPoolExecutor(jobs) as ex:
        res = dict(zip(work, ex.map(lambda w: cpi_by_file(*w), work)))
    table = {}
    for core in CPI_CORES:
        files: dict[str, list[int]] = {}
        fl = [0, 0]
        for (m, c), by in res.items():
            if c != core:
                continue
            if m.endswith("_f32"):
                fl = [fl[0] + sum(v[0] for v in by.values()), fl[1] + sum(v[1] for v in by.values())]
                continue
            for f, (i, cy) in by.items():
                acc = files.setdefault(f, [0, 0])
                acc[0] += i
                acc[1] += cy
        row = {}
        for fam, fs in FAMILY_FILES.items():
            i = sum(files.get(f, [0, 0])[0] for f in fs)
            cy = sum(files.get(f, [0, 0])[1] for f in fs)
            if i > 10_000:
                row[fam] = round(cy / i, 3)
        if fl[0]:
            row["f32"] = round(fl[1] / fl[0], 3)
        table[core] = row
    return table


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
        # a per-op intercept for every kernel: the wake-word model's small layers (1x1 outputs)
        # pin it down, which a few large MLPerf layers alone could not
        X = np.array([[r["work"], r["outs"], 1.0] for r in rs], float)
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
    ap.add_argument("--cpi", action="store_true",
                    help="measure cycles per instruction per kernel family on Cortex-M4 and M0+ (cycle model)")
    ap.add_argument("--refit", help="fit the rows of an earlier calibration JSON; measure nothing")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.cpi:
        table = cpi_tables(args.models.split(","), args.jobs)
        print("CPI_KERNEL = {   # measured with benchmarks/cycle_model.py, zero wait states")
        for core, row in table.items():
            print(f"    {core!r}: {row!r},")
        print("}")
        print(f"done in {time.time() - t0:.0f} s")
        return 0
    if args.refit:
        rows = json.loads(Path(args.refit).read_text())["rows"]
        _report(rows, fit(rows), Path(args.out), t0)
        return 0
    graphs = {m: load_tflite(EXTRA[m] if m in EXTRA else MLPERF / MODELS[m]) for m in args.models.split(",")}
    whole = [(m, isa, g) for m, g in graphs.items() for isa in args.isas.split(",")]
    print(f"{len(whole)} whole-model firmware runs", flush=True)
    with ThreadPoolExecutor(args.jobs) as ex:
        measured = dict(zip(((m, isa) for m, isa, _ in whole), ex.map(measure_model, whole)))
    rows = [r for rs in measured.values() for r in rs]
    jobs = []
    for (model, isa), rs in measured.items():
        if rs:
            continue
        g = graphs[model]
        for k, op in enumerate(g.ops):
            if op.kind in (OpKind.RESHAPE, OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE):
                continue    # aliased; variable access needs the whole model's state
            sub = single_op_graph(g, k)
            jobs.append((model, k, isa, sub, kernel_of(sub, sub.ops[0]), op_work(sub, sub.ops[0]),
                         sub.tensors[sub.ops[0].outputs[0]].size))
    print(f"{len(jobs)} single-op firmware runs (models too big for the machine)", flush=True)
    with ThreadPoolExecutor(args.jobs) as ex:
        rows += list(ex.map(measure, jobs))
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
