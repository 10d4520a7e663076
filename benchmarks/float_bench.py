#!/usr/bin/env python3
"""Float32 speed of cgen's code: the host build against onnxruntime, and Cortex-M4F cycles.

    .venv/bin/python benchmarks/float_bench.py [--models ad,resnet8,vww] [--out bench-out] [--no-m4]

The float MLPerf Tiny models (ad01_fp32, pretrainedResnet, vww_96_float; the
"float32" KWS file is dynamic-range quantized, int8 weights, which cgen refuses)
are converted to ONNX with tf2onnx (installed on first use into
<out>/tf2onnx-pkgs with pip, pinned; it is only this benchmark's tool), and run:

* onnxruntime, CPU provider, one intra-op and one inter-op thread;
* cgen's host build (``verify.host.HOST_CFLAGS``: -O3, the baseline x86-64 ISA,
  no -march), through its ctypes entry point.

Each side is the median of 7 batches of back-to-back calls on the same input
(cgen_bench's timing);
the outputs must agree within verify's float tolerance (1e-5 relative). Then,
unless ``--no-m4``, each model is built at -Os for QEMU mps2-an386 (Cortex-M4F)
and run once: instructions (``-icount``), cycles from benchmarks/cycle_model.py
(zero wait states), and MACs per cycle (MACs: the convolution and fully
connected work of ``latency.op_work``). Writes <out>/float_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cgen_bench import MLPERF, _time_per_call  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.cgen.latency import op_work  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.parity import FLOAT_RTOL, differences  # noqa: E402

MODELS = {"ad": "ad01_fp32.tflite", "resnet8": "pretrainedResnet.tflite", "vww": "vww_96_float.tflite"}
TF2ONNX = "tf2onnx==1.17.0"
MAC_OPS = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)


def tf2onnx_path(out: Path) -> Path:
    pkgs = out / "tf2onnx-pkgs"
    if not (pkgs / "tf2onnx").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(pkgs), TF2ONNX],
                       check=True)
    return pkgs


def to_onnx(tflite: Path, dest: Path, pkgs: Path) -> Path:
    if not dest.exists():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkgs), *sys.path])}
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output", str(dest),
                        "--opset", "13"], check=True, env=env, capture_output=True)
    return dest


def bench(key: str, out: Path, work: Path, pkgs: Path, m4: bool) -> dict:
    import onnxruntime as ort
    path = MLPERF / MODELS[key]
    g = load_tflite(path)
    gen = generate(g, key)
    x = np.random.default_rng(7).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(to_onnx(path, out / f"{key}.onnx", pkgs)), opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feed = {name: x}
    ref = sess.run(None, feed)[0]
    host = build_host(gen, g, work / f"{key}-host")
    ours = host.run([x])[0]
    d, scale = differences(ours.reshape(-1), ref.reshape(-1))
    macs = sum(op_work(g, op) for op in g.ops if op.kind in MAC_OPS)
    row = {"model": key, "file": MODELS[key], "macs": macs, "max_rel_err": float(d.max() / scale),
           "host_us": 1e6 * _time_per_call(lambda: host.run([x])),
           "ort_us": 1e6 * _time_per_call(lambda: sess.run(None, feed))}
    row["ratio"] = row["host_us"] / row["ort_us"]
    if m4:
        import cycle_model
        from platformio_tinyml.verify.firmware import run_model
        r = run_model(gen, g, [[x]], work / f"{key}-m4", "mps2-an386", opt="-Os", timeout=600)
        m4_out = np.asarray(r.outputs[0][0]).reshape(-1)
        d4, s4 = differences(m4_out, ref.reshape(-1))
        row.update(m4_instructions=r.instructions[0], m4_cycles=cycle_model.measure(r.elf).cycles,
                   m4_max_rel_err=float(d4.max() / s4))
        row["m4_macs_per_cycle"] = macs / row["m4_cycles"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--no-m4", action="store_true", help="host only (no Cortex-M4F run)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pkgs = tf2onnx_path(out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tml-float-") as tmp:
        for key in args.models.split(","):
            rows.append(bench(key, out, Path(tmp), pkgs, not args.no_m4))
    print(f"{'model':<8} {'MACs':>10} {'cgen us':>9} {'ORT us':>9} {'x ORT':>6} {'rel err':>9}"
          + ("" if args.no_m4 else f" {'M4F instr':>12} {'M4F cycles':>12} {'MAC/cyc':>7}"))
    ok = True
    for r in rows:
        line = (f"{r['model']:<8} {r['macs']:>10,} {r['host_us']:>9.1f} {r['ort_us']:>9.1f} {r['ratio']:>6.2f} "
                f"{r['max_rel_err']:>9.2e}")
        if "m4_cycles" in r:
            line += f" {r['m4_instructions']:>12,} {r['m4_cycles']:>12,} {r['m4_macs_per_cycle']:>7.3f}"
            ok &= r["m4_max_rel_err"] <= FLOAT_RTOL
        ok &= r["max_rel_err"] <= FLOAT_RTOL
        print(line)
    print("x ORT = cgen host time / onnxruntime time (1 thread); outputs "
          + ("within" if ok else "NOT within") + f" {FLOAT_RTOL:g} relative of onnxruntime")
    (out / "float_bench.json").write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
