"""What running the reference interpreters in a child process costs.

    .venv/bin/python benchmarks/isolate_bench.py --before COMMIT [--rounds 5] [--samples 20] [--out bench-out]

1. ``tinyml verify <KWS> -t nucleo_f446re -n SAMPLES``, wall time and CPU time
   (the command and everything it waited for: compiler, reference child), for
   the tree at ``COMMIT`` (exported with ``git archive``: the interpreters
   in-process) and for this tree, alternated ROUNDS times so that load from
   other processes hits both alike; medians are reported.
2. The reference child's peak address space (VmPeak, what ``RLIMIT_AS``
   limits) and resident set (VmHWM) after running each MLPerf Tiny int8 model
   and a small ONNX model: the default memory limit must leave room above them.

Writes ``bench-out/isolate_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"
KWS = MLPERF / "kws_ref_model.tflite"
INT8 = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"]


def timed_verify(tree: Path, samples: int) -> tuple[float, float]:
    """Wall and CPU seconds of one ``tinyml verify`` run from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree),
               TINYML_BOARDS_DIRS=os.environ.get("TINYML_BOARDS_DIRS", str(REPO.parent / "shared" / "boards")))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", "verify", str(KWS), "-t", "nucleo_f446re",
                        "-n", str(samples)], env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0 or f"{samples}/{samples}" not in r.stdout:
        sys.exit(f"verify failed in {tree}:\n{r.stdout}{r.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def verify_times(before: Path, rounds: int, samples: int) -> dict:
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for side, tree in (("before", before), ("after", REPO)):
            runs[side].append(timed_verify(tree, samples))
    out = {}
    for side, rs in runs.items():
        out[side] = {"wall_s": [round(w, 3) for w, _ in rs], "cpu_s": [round(c, 3) for _, c in rs],
                     "wall_median_s": round(statistics.median(w for w, _ in rs), 3),
                     "cpu_median_s": round(statistics.median(c for _, c in rs), 3)}
    return out


def _status_kib(text: str, field: str) -> int:
    line = next(ln for ln in text.splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1])


def child_peaks() -> list[dict]:
    sys.path.insert(0, str(REPO))
    from platformio_tinyml.model.tflite import load_tflite
    from platformio_tinyml.verify.reference import OnnxReference, TFLMReference, reference_worker
    rows = []
    status = Path("/proc/self/status").read_text   # a bound method: it pickles, and runs in the child
    for name in INT8:
        g = load_tflite(MLPERF / f"{name}.tflite")
        t = g.tensors[g.inputs[0]]
        TFLMReference(MLPERF / f"{name}.tflite").run([np.zeros(t.shape, t.dtype.numpy)])
        text = reference_worker().call(status)
        rows.append({"model": f"{name}.tflite", "vm_peak_mib": _status_kib(text, "VmPeak") // 1024,
                     "rss_peak_mib": _status_kib(text, "VmHWM") // 1024})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conv.onnx"
        _small_onnx(path)
        OnnxReference(path).run([np.zeros((1, 3, 8, 8), np.float32)])   # no graph: NCHW as in the file
        text = reference_worker().call(status)
        rows.append({"model": "conv.onnx (onnxruntime)", "vm_peak_mib": _status_kib(text, "VmPeak") // 1024,
                     "rss_peak_mib": _status_kib(text, "VmHWM") // 1024})
    return rows


def _small_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="commit with the interpreters in-process")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench-out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.before], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        times = verify_times(Path(tmp), args.rounds, args.samples)
    peaks = child_peaks()
    for side in ("before", "after"):
        t = times[side]
        print(f"verify KWS -n {args.samples}, {side:6}: wall median {t['wall_median_s']:.2f} s, "
              f"CPU median {t['cpu_median_s']:.2f} s  (wall {t['wall_s']})")
    for r in peaks:
        print(f"reference child after {r['model']:<32} VmPeak {r['vm_peak_mib']:>5,} MiB, "
              f"VmHWM {r['rss_peak_mib']:>4,} MiB")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "isolate_bench.json").write_text(json.dumps({"before": args.before, "samples": args.samples,
                                                             "verify": times, "child_peaks": peaks}, indent=2))


if __name__ == "__main__":
    main()
