"""Long runs of the module loader fuzzer: N executions of the C loader +
executor under libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer,
with the real CRC and Ed25519 checks (seed corpus signed with the key the
build trusts) and with both skipped (mutants reach the parsers behind them).
Goal (issue 14): 10^6 executions in each mode, 0 findings.

    .venv/bin/python benchmarks/fuzz_module.py --count 1000000 [--seed 1] [--mode both]
        [--out bench-out/fuzz_module] [--keep]

Seeds: the tiny FC+softmax and conv modules, KWS as TFLITE, and the crash
corpus tests/fuzz_corpus/modules/ (the MLPerf GRAPH modules of the test
seeds cost 1,000x more per execution). A finding (crash, UB, leak, hang over
10 s, over 2 GB) is copied to OUT/findings/ and, with --keep, into the crash
corpus as crash-<sha1>.tmm, which tests/test_module_fuzz.py replays; libFuzzer
then continues with the next seed until N executions ran. Exit 1 if anything
was found. Shared helpers: tests/module_support.py (also used by the test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from module_support import FUZZ_CORPUS, build_loader_fuzzers, fuzz_seeds, opened_count  # noqa: E402

ARTIFACTS = ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")
_built: dict[Path, dict[bool, Path]] = {}     # build folders built by this process (never a stale binary)


def _mode(signature: bool) -> str:
    return "signature" if signature else "no-signature"


def _executed(log: str) -> int:
    """Executions libFuzzer reports: 'Done N runs', else its last '#N' status line, else the target's count."""
    done = re.findall(r"Done (\d+) runs", log)
    if done:
        return int(done[-1])
    status = re.findall(r"^#(\d+)\s", log, re.M)
    return max(int(status[-1]) if status else 0, opened_count(log)[1])


def _what(log: str) -> str:
    """The sanitizer's or libFuzzer's first line about a finding."""
    for line in log.splitlines():
        if "runtime error:" in line or "ERROR: " in line or "==ERROR" in line:
            return line.strip()[:300]
    return "unknown (see the log)"


def run(count: int, seed: int, out_dir: Path, signature: bool, keep: bool = False) -> dict:
    """Run ``count`` loader executions in one mode (``signature``: real CRC + Ed25519 checks).

    Builds the libFuzzer target in ``out_dir``/build, seeds a corpus, and restarts libFuzzer with
    the next seed after each finding until ``count`` executions ran. Returns the figures: mode,
    executions, seconds, executions per second, inputs opened (the last libFuzzer round), findings
    (kind, file, first sanitizer line). ``keep``: copy findings into tests/fuzz_corpus/modules/.
    """
    out_dir = Path(out_dir)
    mode = _mode(signature)
    build = (out_dir / "build").resolve()
    if build not in _built:
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        _built[build] = build_loader_fuzzers(build)
    exes = _built[build]
    seeds = out_dir / f"seeds-{mode}"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)
    for k, data in enumerate(fuzz_seeds(mlperf_graphs=False)):
        (seeds / f"seed{k}.tmm").write_bytes(data)
    for p in FUZZ_CORPUS.glob("*.tmm"):
        shutil.copy(p, seeds / p.name)
    work, art, found = out_dir / f"corpus-{mode}", out_dir / f"artifacts-{mode}", out_dir / "findings"
    for d in (work, art, found):
        d.mkdir(parents=True, exist_ok=True)
    findings, executed, opened, start, round_ = [], 0, 0, time.monotonic(), 0
    while executed < count:
        before = set(art.iterdir())
        log_path = out_dir / f"{mode}-{round_}.log"
        with open(log_path, "w") as log:
            r = subprocess.run([str(exes[signature]), f"-runs={count - executed}", f"-seed={seed + round_}",
                                "-max_len=300000", "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1",
                                f"-artifact_prefix={art}/", str(work), str(seeds)], stdout=log, stderr=subprocess.STDOUT)
        text = log_path.read_text(errors="replace")
        executed += max(_executed(text), 1)
        opened = opened_count(text)[0] or opened
        for path in sorted(set(art.iterdir()) - before):
            if not path.name.startswith(ARTIFACTS):
                continue
            data = path.read_bytes()
            name = f"crash-{hashlib.sha1(data).hexdigest()}.tmm"
            shutil.copy(path, found / name)
            if keep:
                shutil.copy(path, FUZZ_CORPUS / name)
            findings.append({"kind": path.name.split("-")[0], "file": str(found / name), "what": _what(text),
                             "log": str(log_path)})
        if r.returncode != 0 and not findings:
            raise RuntimeError(f"libFuzzer exited {r.returncode} without an artifact: see {log_path}")
        round_ += 1
    seconds = time.monotonic() - start
    return {"mode": mode, "executions": executed, "seconds": round(seconds, 1),
            "executions_per_s": round(executed / seconds, 1) if seconds else 0.0, "opened_last_round": opened,
            "findings": findings}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="loader executions per mode")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("both", "signature", "no-signature"), default="both")
    ap.add_argument("--out", type=Path, default=Path("bench-out/fuzz_module"))
    ap.add_argument("--keep", action="store_true", help="copy findings into tests/fuzz_corpus/modules/")
    args = ap.parse_args(argv)
    modes = {"both": (True, False), "signature": (True,), "no-signature": (False,)}[args.mode]
    results = []
    for signature in modes:
        res = run(args.count, args.seed, args.out, signature, keep=args.keep)
        results.append(res)
        print(f"{res['mode']:<13} {res['executions']:>10,} executions in {res['seconds']:>8,.0f} s "
              f"({res['executions_per_s']:,.0f}/s): {len(res['findings'])} findings", flush=True)
        for f in res["findings"]:
            print(f"  {f['kind']}: {f['what']}\n    input {f['file']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"fuzz_module-{args.mode}.json").write_text(json.dumps(results, indent=2))
    return 1 if any(r["findings"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
