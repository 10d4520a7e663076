"""Fuzz the model importers and everything behind them: mutated models through
``tinyml inspect``, ``compile`` (auto and cgen) and ``verify``.

    .venv/bin/python benchmarks/fuzz.py --count 100000 [--seed 0] [--jobs 2] [--out bench-out/fuzz]
        [--board nucleo_f446re] [--kinds tflite,onnx] [--full-every 1] [--mlperf] [--target models|modules|all]
        [--seed-set base|ops|ml]

Each mutant (``benchmarks/fuzz_mutate.py``: flatbuffer object API, ONNX
protobuf, byte-level) runs in a pool of worker processes that call the real
CLI entry point (``platformio_tinyml.cli.main.main``) in-process; a worker has
a memory limit (RLIMIT_AS), a per-mutant time limit, and is restarted when it
dies, so a crash or hang is recorded, not fatal. Every mutant ends in one
class (:data:`CLASSES`); findings are kept once per signature under
``OUT/findings/<class>/`` (the mutant, its stage and its first error line)
and the table goes to stdout and ``OUT/summary.json``.

``--target modules`` runs ``benchmarks/fuzz_module.py`` (the module fuzzer)
instead, ``all`` runs both.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# Outcome classes, worst first: a mutant's class is the worst of its stages.
BAD = ("crash", "hang", "oom", "traceback", "c-compile", "mismatch", "multiline-error")
GOOD = ("verified", "compiled", "refused")
CLASSES = BAD + GOOD
DEFAULT_BOARD = "nucleo_f446re"
# A worker is replaced after this many mutants: every verify maps one more host .so (never
# unloaded) into it, and hundreds of them exhaust its address-space limit.
RECYCLE_AFTER = 100
# Seed models, committed so a seeded run mutates the same bytes whatever TensorFlow converts today
# (fuzz_mutate.build_seeds rebuilds a missing one from tests/modelgen.py).
SEEDS = REPO / "tests" / "fuzz_corpus" / "seeds"
# The second set (``--seed-set ops``): models of the operators the first lacks (TRANSPOSE_CONV,
# BATCH_MATMUL, slicing, resizing, reductions, LayerNorm, LSTM, ...), from benchmarks/fuzz_seeds_ops.py.
SEEDS_OPS = REPO / "tests" / "fuzz_corpus" / "seeds_ops"
# The third (``--seed-set ml``): scikit-learn models exported with skl2onnx (the ai.onnx.ml operators),
# from benchmarks/fuzz_seeds_ml.py.
SEEDS_ML = REPO / "tests" / "fuzz_corpus" / "seeds_ml"


# ---- worker side -----------------------------------------------------------------------------------

def _cli(argv: list[str]) -> tuple[int, str, str]:
    from platformio_tinyml.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def _traceback_sig(err: str) -> str:
    """Exception type and innermost platformio_tinyml frame of a saved CLI traceback."""
    m = re.search(r"traceback saved to (\S+?)\. ", err)
    if not m or not Path(m.group(1)).is_file():
        return err.strip().splitlines()[0] if err.strip() else "?"
    text = Path(m.group(1)).read_text(errors="replace")
    Path(m.group(1)).unlink()
    return _frames_sig(text) + " " + (text.strip().splitlines() or ["?"])[-1].split(":")[0]


def _frames_sig(text: str) -> str:
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    ours = [f for f in frames if "platformio_tinyml" in f[0]] or frames
    if not ours:
        return "?"
    path, _, fn = ours[-1]
    return f"{path.split('platformio_tinyml/')[-1]}:{fn}"


def _stage_result(stage: str, rc: int, err: str) -> dict | None:
    """None when the stage passed, else {cls, stage, line, sig} (cls may be 'refused')."""
    if rc == 0:
        return None
    text = err.strip()
    line = text.splitlines()[0][:300] if text else f"exit {rc}"
    if rc == 1 and stage == "verify":
        return {"cls": "mismatch", "stage": stage, "line": line, "sig": "parity FAIL"}
    if rc == 3 or rc not in (1, 2):
        return {"cls": "traceback", "stage": stage, "line": line, "sig": _traceback_sig(err)}
    if "host compile of generated code failed" in text:
        first = next((ln for ln in text.splitlines()[1:] if "error:" in ln), line)
        return {"cls": "c-compile", "stage": stage, "line": first[:300], "sig": first.split("error:", 1)[-1]}
    if len(text.splitlines()) > 1:
        return {"cls": "multiline-error", "stage": stage, "line": line, "sig": line}
    return {"cls": "refused", "stage": stage, "line": line, "sig": ""}


def _syntax_check(src: Path) -> dict | None:
    """The generated model source alone compiles cleanly (-fsyntax-only, the verify flags)."""
    model_c = [p for p in src.glob("*.c") if not p.name.startswith("tml_")]
    for c in model_c:
        p = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I", str(src),
                            str(c)], capture_output=True, text=True)
        if p.returncode:
            first = next((ln for ln in p.stderr.splitlines() if "error" in ln), p.stderr[:200])
            return {"cls": "c-compile", "stage": "cc", "line": first[:300],
                    "sig": first.split("error:", 1)[-1]}
    return None


def run_job(job: dict, progress=lambda stage: None, times: Counter | None = None) -> list[dict]:
    """Run one model through inspect, compile auto, compile cgen (+ syntax check) and verify;
    ``times`` (stage -> seconds) is added to when given."""
    path, board, work = job["path"], job["board"], Path(job["work"])
    found = []
    times = Counter() if times is None else times

    def stage(name, argv):
        progress(name)
        t0 = time.monotonic()
        rc, _, err = _cli(argv)
        r = _stage_result(name, rc, err)
        times[name] += time.monotonic() - t0
        if r:
            found.append(r)
        return r

    if stage("inspect", ["inspect", path]):
        return found
    for backend in ("auto", "cgen") if job.get("full", True) else ("cgen",):
        out = work / backend
        shutil.rmtree(out, ignore_errors=True)
        r = stage(f"compile-{backend}", ["compile", path, "-t", board, "-b", backend, "-o", str(out)])
        if r is None and backend == "cgen":
            progress("cc")
            t0 = time.monotonic()
            cc = _syntax_check(out)
            times["cc"] += time.monotonic() - t0
            if cc:
                found.append(cc)
                return found
            if not job.get("full", True):
                found.append({"cls": "compiled", "stage": "compile-cgen", "line": "", "sig": ""})
            elif stage("verify", ["verify", path, "-t", board, "-n", str(job.get("samples", 2))]) is None:
                found.append({"cls": "verified", "stage": "verify", "line": "", "sig": ""})
    if not found:   # both compiles refused with no line (cannot happen: a refusal has a line)
        found.append({"cls": "refused", "stage": "compile", "line": "", "sig": ""})
    return found


def _worker(result_fd: int, mem_mb: int) -> None:
    import ctypes
    import faulthandler
    import resource
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG: no orphan when the fuzzer is killed
    if mem_mb:
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1)
    out = os.fdopen(result_fd, "w", buffering=1)
    for line in sys.stdin:
        os.ftruncate(2, 0)
        os.lseek(2, 0, os.SEEK_SET)
        job = json.loads(line)
        times: Counter = Counter()
        res = run_job(job, lambda s: out.write(json.dumps({"stage": s}) + "\n"), times)
        out.write(json.dumps({"done": res, "times": times}) + "\n")


# ---- parent side -----------------------------------------------------------------------------------

class _Slot:
    """One worker process and its result pipe; restarted after a crash or hang."""

    def __init__(self, k: int, root: Path, mem_mb: int):
        self.k, self.mem_mb = k, mem_mb
        self.dir = root / f"slot{k}"
        self.tmp = self.dir / "tmp"
        self.proc = None
        self.times: Counter = Counter()

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        r, w = os.pipe()
        env = dict(os.environ, TMPDIR=str(self.tmp), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
                   OMP_NUM_THREADS="1")
        env.setdefault("TINYML_BOARDS_DIRS", str(REPO.parent / "shared" / "boards"))
        self.err_path = self.dir / "stderr.txt"
        with open(self.err_path, "wb") as errf:
            self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(w), "--mem-mb", str(self.mem_mb)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf,
                                         pass_fds=(w,), env=env, text=True, cwd=str(REPO))
        os.close(w)
        self.rfd, self.buf = r, b""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            os.close(self.rfd)
        self.proc = None

    def _lines(self, deadline: float):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                yield json.loads(line)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                yield None       # timed out
                return
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                yield "eof"
                return
            self.buf += chunk

    def run(self, job: dict, timeout: float) -> list[dict]:
        if self.proc is not None and self.jobs >= RECYCLE_AFTER:
            self.stop()
        if self.proc is None:
            self.start()
            self.jobs = 0
        self.jobs += 1
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        stage = "start"
        for msg in self._lines(time.monotonic() + timeout):
            if isinstance(msg, dict) and "stage" in msg:
                stage = msg["stage"]
            elif isinstance(msg, dict):
                self.times.update(msg["times"])
                return msg["done"]
            elif msg is None:
                return [self._hang(stage, timeout)]
            else:
                return [self._crash(stage)]
        return [self._crash(stage)]

    def _hang(self, stage: str, timeout: float) -> dict:
        self.proc.send_signal(signal.SIGUSR1)       # faulthandler: where it was
        time.sleep(0.5)
        self.stop()
        text = self.err_path.read_text(errors="replace")
        return {"cls": "hang", "stage": stage, "line": f"no result after {timeout:g} s",
                "sig": _frames_sig(_python_dump(text))}

    def _crash(self, stage: str) -> dict:
        self.proc.wait()
        rc = self.proc.returncode
        text = self.err_path.read_text(errors="replace")
        self.stop()
        if "MemoryError" in text or rc == -signal.SIGKILL:
            cls, line = "oom", f"worker killed or out of memory (exit {rc})"
        else:
            name = signal.Signals(-rc).name if rc < 0 else f"exit {rc}"
            cls, line = "crash", f"worker died: {name}"
        # the first line the native code printed before dying, not faulthandler's own lines
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and not ln.startswith(("Fatal Python", "  File", "Current", "Thread", "Extension"))]
        sig = f"{line} {_frames_sig(_python_dump(text))}"
        if lines and cls == "crash":
            line += f" ({lines[0].strip()[:200]})"
        return {"cls": cls, "stage": stage, "line": line, "sig": sig}


def _python_dump(text: str) -> str:
    """faulthandler prints the innermost frame first; turn it around for :func:`_frames_sig`."""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', text)
    return "\n".join(f'File "{p}", line {n}, in {f}' for p, n, f in reversed(frames))


def classify(found: list[dict]) -> dict:
    """The worst stage result of a mutant (verified when nothing went wrong at verify)."""
    if not found:
        return {"cls": "verified", "stage": "verify", "line": "", "sig": ""}
    return min(found, key=lambda f: CLASSES.index(f["cls"]))


def signature(kind: str, res: dict) -> str:
    text = f"{res['cls']}|{res['stage']}|{res['sig']}"
    text = re.sub(r"/\S*/", "", text)
    return f"{kind}|" + re.sub(r"\d+", "N", text)


class Findings:
    """Counts per class and the first mutant of every bad signature."""

    def __init__(self, out: Path):
        self.out = out
        self.counts: Counter = Counter()
        self.by_kind: dict[str, Counter] = {}
        self.sigs: dict[str, dict] = {}
        self.lock = threading.Lock()

    def add(self, name: str, kind: str, data: bytes, suffix: str, res: dict, what: str) -> None:
        with self.lock:
            self.counts[res["cls"]] += 1
            self.by_kind.setdefault(kind, Counter())[res["cls"]] += 1
            if res["cls"] not in BAD:
                return
            sig = signature(suffix, res)
            if sig in self.sigs:
                self.sigs[sig]["count"] += 1
                return
            h = hashlib.sha256(sig.encode()).hexdigest()[:10]
            d = self.out / "findings" / res["cls"]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{h}{suffix}").write_bytes(data)
            self.sigs[sig] = {**res, "signature": sig, "mutant": name, "mutation": what, "count": 1,
                              "file": str((d / f"{h}{suffix}").relative_to(self.out))}

    def summary(self) -> dict:
        return {"counts": dict(self.counts), "by_kind": {k: dict(v) for k, v in self.by_kind.items()},
                "findings": sorted(self.sigs.values(), key=lambda s: (CLASSES.index(s["cls"]), -s["count"]))}


def run_pool(jobs_iter, n_jobs: int, out: Path, timeout: float, mem_mb: int, on_result) -> Counter:
    """Feed (job, context) pairs to ``n_jobs`` workers; on_result(context, class result).
    Returns the seconds spent per stage, all workers together."""
    q: queue.Queue = queue.Queue(maxsize=4 * n_jobs)

    errors: list[BaseException] = []

    def loop(slot: _Slot):
        slot.dir.mkdir(parents=True, exist_ok=True)
        while (item := q.get()) is not None:
            if errors:          # a harness bug: drain the queue so the feeder never blocks
                continue
            job, ctx = item
            try:
                job = dict(job, work=str(slot.dir / "work"))
                if "data" in ctx:
                    p = slot.dir / f"m{ctx['suffix']}"
                    p.write_bytes(ctx["data"])
                    job["path"] = str(p)
                on_result(ctx, classify(slot.run(job, timeout)))
            except BaseException as e:  # noqa: BLE001  (re-raised below, in the caller's thread)
                errors.append(e)
        slot.stop()

    slots = [_Slot(k, out / "work", mem_mb) for k in range(n_jobs)]
    threads = [threading.Thread(target=loop, args=(s,), daemon=True) for s in slots]
    for t in threads:
        t.start()
    for item in jobs_iter:
        q.put(item)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum((s.times for s in slots), Counter())


def fuzz_models(count: int, seed: int, out: Path, *, jobs: int = 2, board: str = DEFAULT_BOARD,
                kinds=("tflite", "onnx"), full_every: int = 1, mlperf: bool = False,
                timeout: float = 120.0, mem_mb: int = 4096, progress: bool = False, seed_set: str = "base") -> dict:
    """Run ``count`` seeded mutants; returns the summary (also written to OUT/summary.json)."""
    from fuzz_mutate import build_seeds, committed_seeds, make_mutant
    out = Path(out)
    seeds = (build_seeds(SEEDS, mlperf=mlperf, kinds=kinds) if seed_set == "base"
             else committed_seeds(SEEDS_ML if seed_set == "ml" else SEEDS_OPS, kinds=kinds))
    data = {s.name: s.path.read_bytes() for s in seeds}
    findings = Findings(out)
    t0 = time.monotonic()
    done = [0]
    bad: list[dict] = []

    def jobs_iter():
        for i in range(count):
            s, blob, what = make_mutant(seeds, data, seed, i)
            yield ({"board": board, "full": s.verify and i % full_every == 0},
                   {"index": i, "name": f"{seed}:{i} {s.name}", "kind": s.kind, "data": blob, "suffix": f".{s.kind}",
                    "what": what})

    def on_result(ctx, res):
        findings.add(ctx["name"], ctx["kind"], ctx["data"], ctx["suffix"], res, ctx["what"])
        if res["cls"] in BAD:
            bad.append({"index": ctx["index"], **res, "mutation": ctx["what"]})
        done[0] += 1
        if progress and done[0] % 100 == 0:
            print(f"  {done[0]}/{count} {dict(findings.counts)} {time.monotonic() - t0:.0f} s", flush=True)

    times = run_pool(jobs_iter(), jobs, out, timeout, mem_mb, on_result)
    summary = {"count": count, "seed": seed, "seed_set": seed_set, "board": board, "kinds": list(kinds),
               "full_every": full_every,
               "seconds": round(time.monotonic() - t0, 1), "stage_seconds": {k: round(v, 1) for k, v in times.items()},
               "seeds": [s.name for s in seeds], **findings.summary(),
               "bad": sorted(bad, key=lambda b: b["index"])}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out / "work", ignore_errors=True)
    return summary


def replay(paths: list[Path], out: Path, *, board: str = DEFAULT_BOARD, jobs: int = 2, timeout: float = 120.0,
           mem_mb: int = 4096) -> dict[str, dict]:
    """Run existing model files (a regression corpus) through the same pipeline; {file name: result}."""
    results: dict[str, dict] = {}
    # under a neutral file name: the model name (from the file name) is not what is being replayed
    items = (({"board": board}, {"name": Path(p).name, "data": Path(p).read_bytes(), "suffix": Path(p).suffix})
             for p in paths)
    run_pool(items, jobs, Path(out), timeout, mem_mb, lambda ctx, res: results.__setitem__(ctx["name"], res))
    shutil.rmtree(Path(out) / "work", ignore_errors=True)
    return results


def table(summary: dict) -> str:
    kinds = sorted(summary["by_kind"])
    rows = [f"{'class':<16} {'mutants':>8} " + " ".join(f"{k:>8}" for k in kinds) + f" {'signatures':>10}"]
    sig_counts = Counter(f["cls"] for f in summary["findings"])
    for c in CLASSES:
        rows.append(f"{c:<16} {summary['counts'].get(c, 0):>8} "
                    + " ".join(f"{summary['by_kind'][k].get(c, 0):>8}" for k in kinds)
                    + f" {sig_counts.get(c, 0) if c in BAD else '':>10}")
    rows.append(f"{'total':<16} {summary['count']:>8}   ({summary['seconds']} s; worker seconds per stage: "
                f"{', '.join(f'{k} {v:g}' for k, v in summary['stage_seconds'].items())})")
    for f in summary["findings"]:
        rows.append(f"  [{f['cls']}] x{f['count']} {f['stage']}: {f['line'][:150]}  ({f['file']})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench-out" / "fuzz")
    ap.add_argument("--board", default=DEFAULT_BOARD, help="board the models are compiled for")
    ap.add_argument("--kinds", default="tflite,onnx")
    ap.add_argument("--target", choices=("models", "modules", "all"), default="models")
    ap.add_argument("--full-every", type=int, default=1,
                    help="compile auto + verify every K-th mutant (the others: inspect, compile cgen, syntax check)")
    ap.add_argument("--mlperf", action="store_true", help="also mutate the MLPerf Tiny int8 models")
    ap.add_argument("--seed-set", choices=("base", "ops", "ml"), default="base",
                    help="base: the CNN seeds (tests/fuzz_corpus/seeds); ops: the newer operators (seeds_ops); "
                         "ml: skl2onnx exports (seeds_ml)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant before it counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=4096, help="address-space limit of a worker")
    ap.add_argument("--no-signature", action="store_true", help="modules: fuzz with signature checks off")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        _worker(args.worker, args.mem_mb)
        return 0
    rc = 0
    if args.target in ("models", "all"):
        s = fuzz_models(args.count, args.seed, args.out / "models" if args.target == "all" else args.out,
                        jobs=args.jobs, board=args.board, kinds=tuple(args.kinds.split(",")),
                        full_every=args.full_every, mlperf=args.mlperf, timeout=args.timeout,
                        mem_mb=args.mem_mb, progress=True, seed_set=args.seed_set)
        print(table(s))
        rc |= any(s["counts"].get(c) for c in BAD)
    if args.target in ("modules", "all"):
        if not (REPO / "benchmarks" / "fuzz_module.py").is_file():
            print("benchmarks/fuzz_module.py not found: no module fuzzer in this checkout", file=sys.stderr)
            return 2
        import fuzz_module
        r = fuzz_module.run(args.count, args.seed, args.out / "modules", signature=not args.no_signature)
        print(json.dumps(r, indent=2, default=str))
        rc |= bool(r.get("findings"))
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
