#!/usr/bin/env python3
"""Backend selection (backend = auto) for every shared board manifest x every benchmark model.

    .venv/bin/python benchmarks/selection_all_boards.py [--boards ../shared/boards] [--out bench-out]
                                                        [--models kws,sklearn]

Boards: every manifest under ``--boards`` (1,057 in ../shared/boards), plus two
synthetic NPU boards (an Ethos-U55-128 added by override to a Cortex-M4 board
and to a Cortex-M33 board re-declared as a Cortex-M55), since no shared
manifest declares an NPU. Models: the four MLPerf Tiny int8 reference models,
the float anomaly-detection model and a scikit-learn RandomForestClassifier
(trained here on a seeded synthetic data set, saved with joblib).

Each pair runs the real selection (``compilers.selection.select_backend`` with
the discovered registry) and records the chosen backend, or "does not fit" and
every backend's reasons with byte numbers. A board whose manifest cannot be
turned into a profile is recorded with the DeviceError (not an exception of
the selection). Any other exception is counted; the run fails if there is one.

Prints a table by platform and writes <out>/selection_all_boards.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest  # noqa: E402
from platformio_tinyml.compilers.registry import Registry, discover  # noqa: E402
from platformio_tinyml.compilers.selection import select_backend  # noqa: E402
from platformio_tinyml.device import DeviceProfile, list_boards, load_profile  # noqa: E402
from platformio_tinyml.errors import TinyMLError  # noqa: E402

SHARED = REPO.parent / "shared"
BOARDS_DIR = SHARED / "boards"
MLPERF = SHARED / "models" / "mlperf_tiny"
TFLITE_MODELS = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "resnet8": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
    "ad_f32": "ad01_fp32.tflite",
}
ALL_MODELS = (*TFLITE_MODELS, "sklearn")
# No shared manifest names an NPU: two synthetic Ethos-U55 boards (id, base board, overrides).
NPU_BOARDS = (
    ("nucleo_f446re+u55", "nucleo_f446re", {"build.tinyml_npu": "ethos-u55-128"}),
    ("nucleo_h563zi+m55+u55", "nucleo_h563zi", {"build.cpu": "cortex-m55",
                                                 "build.tinyml_npu": "ethos-u55-128"}),
)
_BYTES = re.compile(r"\d[\d,]* B\b")


def sklearn_model(folder: Path) -> Path:
    """A seeded RandomForestClassifier (8 features, 3 classes, 10 trees) saved with joblib."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    clf = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, y)
    path = Path(folder) / "forest.joblib"
    joblib.dump(clf, path)
    return path


def load_models(names, folder: Path) -> dict[str, tuple[Path, object, str]]:
    """``{name: (path, graph or None, format)}``; each model is loaded once."""
    from platformio_tinyml.pipeline import load_any
    out = {}
    for name in names:
        path = sklearn_model(folder) if name == "sklearn" else MLPERF / TFLITE_MODELS[name]
        graph, fmt = load_any(path)
        out[name] = (path, graph, fmt)
    return out


def board_profiles(boards_dir: Path) -> list[tuple[str, str, DeviceProfile | None, str]]:
    """``(board id, platform, profile or None, why not)`` for every manifest + the NPU boards."""
    root = Path(boards_dir).resolve()
    found = {b: p for b, p in list_boards([root]).items() if root in Path(p).resolve().parents}
    rows = []
    for board, path in found.items():
        platform = Path(path).parent.name
        try:
            dev = load_profile(path)
            rows.append((board, dev.platform or platform, dev, ""))
        except TinyMLError as e:
            rows.append((board, platform, None, f"board profile: {e}"))
    for board, base, overrides in NPU_BOARDS:
        if base in found:
            dev = load_profile(found[base], overrides=overrides)
            rows.append((board, "synthetic-npu", dev, ""))
    return rows


def select_one(model: tuple[Path, object, str], name: str, dev: DeviceProfile, reg: Registry) -> dict:
    path, graph, fmt = model
    req = CompileRequest(path, fmt, graph, dev, CompileOptions(name))
    sel = select_backend(req, registry=reg)
    rec: dict = {"chosen": sel.chosen, "because": sel.because}
    if sel.chosen:
        e = sel.support[sel.chosen].estimate
        if e is not None:
            rec.update(flash_bytes=e.flash_bytes, ram_bytes=e.ram_bytes, latency_cycles=e.latency_cycles)
    else:
        rec["reasons"] = {n: list(s.reasons) for n, s in sorted(sel.support.items())}
        rec["reason"] = no_fit_summary(sel.support, dev)
    return rec


def no_fit_summary(support: dict, dev: DeviceProfile) -> str:
    """One line: 'does not fit: <backend>: <reasons with byte numbers>; ...' or every reason."""
    sized = [f"{n}: {' / '.join(s.reasons)}" for n, s in sorted(support.items())
             if any(_BYTES.search(r) for r in s.reasons)]
    head = f"does not fit {dev.board} ({dev.flash_bytes:,} B flash, {dev.ram_bytes:,} B RAM)"
    if sized:
        return f"{head}: " + "; ".join(sized)
    return f"{head}: no backend takes it: " + "; ".join(
        f"{n}: {' / '.join(s.reasons)}" for n, s in sorted(support.items()))


def run(boards_dir: Path = BOARDS_DIR, models=ALL_MODELS, npu: bool = True, every: int = 1) -> dict:
    """The whole sweep; returns the JSON-safe result (see the module docstring).

    ``every`` > 1 keeps every n-th board only (a quicker sample)."""
    t0 = time.time()
    reg = discover()
    with tempfile.TemporaryDirectory(prefix="tml-sel-") as td:
        loaded = load_models(models, Path(td))
        profiles = board_profiles(boards_dir)
        if not npu:
            profiles = [p for p in profiles if p[1] != "synthetic-npu"]
        profiles = profiles[::every]
        t_load = time.time() - t0
        pairs, exceptions = [], []
        per_model_s = Counter()
        for mname in models:
            tm = time.time()
            for board, platform, dev, why in profiles:
                rec = {"board": board, "platform": platform, "model": mname}
                if dev is None:
                    rec.update(chosen=None, reason=why, board_error=True)
                else:
                    rec.update(core=dev.core, flash=dev.flash_bytes, ram=dev.ram_bytes)
                    try:
                        rec.update(select_one(loaded[mname], f"m_{mname}", dev, reg))
                    except Exception as e:  # a bug: counted, reported, and the run fails
                        rec.update(chosen=None, exception=f"{type(e).__name__}: {e}")
                        exceptions.append(rec)
                pairs.append(rec)
            per_model_s[mname] = round(time.time() - tm, 2)
    return {"boards": len(profiles), "models": list(models), "backends": sorted(reg.compilers),
            "registry_problems": reg.problems, "pairs": pairs, "exceptions": len(exceptions),
            "exception_pairs": exceptions, "board_errors": sum(1 for p in profiles if p[2] is None),
            "seconds": {"load": round(t_load, 2), "per_model": dict(per_model_s),
                        "total": round(time.time() - t0, 2)}}


def outcome(rec: dict) -> str:
    if rec.get("exception"):
        return "EXCEPTION"
    if rec.get("board_error"):
        return "bad manifest"
    return rec["chosen"] or "no fit"


def by_platform(result: dict) -> dict[str, dict[str, Counter]]:
    table: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for rec in result["pairs"]:
        table[rec["platform"]][rec["model"]][outcome(rec)] += 1
    return table


def markdown(result: dict) -> str:
    table = by_platform(result)
    models = result["models"]
    n_boards = {p: sum(c.values()) for p, m in table.items() for c in [m[models[0]]]}
    npu = sum(1 for p in result["pairs"] if p["platform"] == "synthetic-npu" and p["model"] == models[0])
    lines = [f"# Backend selection over {result['boards'] - npu:,} board manifests"
             f"{f' + {npu} synthetic NPU boards' if npu else ''} x {len(models)} models",
             "", f"Backends: {', '.join(result['backends'])}. Exceptions: **{result['exceptions']}**. "
             f"Manifests without a usable profile: {result['board_errors']}. "
             f"Time: {result['seconds']['total']} s.", "",
             "Cells: boards per chosen backend; `no fit` = no backend fits (reason with byte numbers "
             "in the JSON).", "",
             "| platform | boards | " + " | ".join(models) + " |",
             "|---|---:|" + "---|" * len(models)]
    total: dict[str, Counter] = defaultdict(Counter)
    for platform in sorted(table):
        cells = []
        for m in models:
            c = table[platform][m]
            total[m].update(c)
            cells.append(", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))
        lines.append(f"| {platform} | {n_boards[platform]} | " + " | ".join(cells) + " |")
    lines.append(f"| **all** | {result['boards']} | " + " | ".join(
        ", ".join(f"{k} {v}" for k, v in sorted(total[m].items(), key=lambda kv: (-kv[1], kv[0])))
        for m in models) + " |")
    lines += ["", "## Examples of 'does not fit'", ""]
    seen = set()
    for rec in result["pairs"]:
        if rec["chosen"] is None and not rec.get("board_error") and (rec["model"], rec["platform"]) not in seen:
            seen.add((rec["model"], rec["platform"]))
            if len(seen) > 12:
                break
            lines.append(f"* {rec['model']} on {rec['board']}: {rec.get('reason') or rec.get('exception')}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default=str(BOARDS_DIR))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--models", default=",".join(ALL_MODELS))
    args = ap.parse_args(argv)
    result = run(Path(args.boards), tuple(args.models.split(",")))
    md = markdown(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection_all_boards.json").write_text(json.dumps(result, indent=1))
    (out / "selection_all_boards.md").write_text(md)
    print(md)
    for rec in result["exception_pairs"][:20]:
        print(f"EXCEPTION {rec['model']} on {rec['board']}: {rec['exception']}")
    print(f"{len(result['pairs'])} pairs, {result['exceptions']} exceptions, "
          f"{result['seconds']} -> {out / 'selection_all_boards.md'}")
    return 1 if result["exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
