"""Distinct compile jobs through the service: jobs/s with 1 and 2 workers, embedded and scaled out, 0 lost.

    .venv/bin/python benchmarks/service_jobs_bench.py [--jobs 200] [--mix cgen=150,emlearn=40,tvm=10]
                                                      [--setups embedded,scaleout] [--workers 1,2]

Each setup starts from an empty ``--data``:

* ``embedded``: ``tinyml serve`` alone (SQLite, its in-process pool of ``--workers N``);
* ``scaleout``: a real ``redis-server`` and a throw-away PostgreSQL cluster (as the
  scale-out tests start them), one ``tinyml serve --database postgresql://... --broker
  redis://...`` and N ``tinyml worker --concurrency 1`` processes taking both queues.

``--jobs`` uploads are sent as fast as one client can (each POST checks the upload's
bytes, stores it and queues the job; the job's child loads the model), every one
distinct: the same model under a new C name is a new content key, so nothing is a
cache hit. The mix:
``cgen`` compiles the MLPerf KWS int8 model for nucleo_f446re, ``emlearn`` a 10-tree
random forest saved with skops for the same board, ``tvm`` the MLPerf AD int8 model for
nucleo_h743zi. The clock runs from the first POST to the last job finished; a job that
has not finished ``--timeout-s`` after the last POST counts as lost. Prints one table and
writes ``bench-out/service_jobs_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models" / "mlperf_tiny"
os.environ.setdefault("TINYML_BOARDS_DIRS", str(SHARED / "boards"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from service_support import Server, Worker, postgres_cluster, redis_server  # noqa: E402

TARGETS = {"cgen": "nucleo_f446re", "emlearn": "nucleo_f446re", "tvm": "nucleo_h743zi"}


def forest(folder: Path) -> Path:
    """A small random forest (4 features, 3 classes, 10 trees of depth 5), saved with skops."""
    import numpy as np
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier
    rng = np.random.default_rng(0)
    x = rng.random((300, 4))
    y = (x[:, 0] * 3).astype(int)
    path = folder / "forest.skops"
    sio.dump(RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(x, y), path)
    return path


def plan(mix: dict[str, int], folder: Path) -> list[tuple[str, Path]]:
    """(backend, model) per job, the backends interleaved as a team's builds would arrive."""
    models = {"cgen": MODELS / "kws_ref_model.tflite", "emlearn": forest(folder),
              "tvm": MODELS / "ad01_int8.tflite"}
    left = dict(mix)
    jobs = []
    while any(left.values()):
        for backend in mix:
            if left[backend]:
                jobs.append((backend, models[backend]))
                left[backend] -= 1
    return jobs


def run_jobs(server: Server, token: str, jobs: list[tuple[str, Path]], timeout_s: float) -> dict:
    client = server.client(token)
    uploads = {path: path.read_bytes() for _, path in jobs}
    t0 = time.perf_counter()
    pending: dict[str, str] = {}
    refused = []
    for k, (backend, path) in enumerate(jobs):
        r = client.post("/v1/compilations", files={"model": (path.name, uploads[path])},
                        data={"target": TARGETS[backend], "backend": backend, "name": f"job{k}"})
        if r.status_code not in (200, 202):
            refused.append(f"job{k} ({backend}): {r.status_code} {r.text[:200]}")
            continue
        pending[r.json()["id"]] = backend
    submitted = time.perf_counter() - t0
    done: dict[str, tuple[str, str, float]] = {}
    deadline = time.perf_counter() + timeout_s
    while pending and time.perf_counter() < deadline:
        for comp_id in list(pending):
            state = client.get(f"/v1/compilations/{comp_id}").json()
            if state["state"] in ("succeeded", "failed"):
                done[comp_id] = (pending.pop(comp_id), state["state"], time.perf_counter() - t0)
                if state["state"] == "failed":
                    refused.append(f"{comp_id} ({done[comp_id][0]}): {state.get('error')}")
        time.sleep(0.25)
    wall = max((t for _, _, t in done.values()), default=0.0)
    by_backend = {b: sum(1 for bb, s, _ in done.values() if bb == b and s == "succeeded") for b in TARGETS}
    return {"jobs": len(jobs), "submitted_s": round(submitted, 2), "wall_s": round(wall, 2),
            "jobs_per_s": round(len(done) / wall, 2) if wall else 0.0,
            "succeeded": sum(1 for _, s, _ in done.values() if s == "succeeded"),
            "failed": sum(1 for _, s, _ in done.values() if s == "failed"), "lost": len(pending),
            "succeeded_by_backend": by_backend, "problems": refused[:10]}


def embedded(root: Path, jobs, workers: int, timeout_s: float) -> dict:
    server = Server(root / "data", "--workers", str(workers), "--max-jobs-in-flight", str(len(jobs) + 10))
    server.start()
    try:
        return run_jobs(server, server.token("bench", "compile,read"), jobs, timeout_s)
    finally:
        server.stop()


def scaleout(root: Path, jobs, workers: int, timeout_s: float) -> dict:
    with ExitStack() as stack:
        (root / "redis").mkdir()
        (root / "pg").mkdir()
        broker = stack.enter_context(redis_server(root / "redis"))
        database = stack.enter_context(postgres_cluster(root / "pg"))
        data = root / "data"
        data.mkdir()
        server = Server(data, "--database", database, "--broker", broker,
                        "--max-jobs-in-flight", str(len(jobs) + 10))
        server.start()
        stack.callback(server.stop)
        from platformio_tinyml.service.auth import create_token
        from platformio_tinyml.service.db import open_database
        engine, session = open_database(database)
        with session() as db:
            token = create_token(db, "bench", ("compile", "read"))
        engine.dispose()
        for _ in range(workers):
            w = Worker(data, database, broker, "--concurrency", "1")
            stack.callback(w.stop)
        return run_jobs(server, token, jobs, timeout_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--mix", default="cgen=150,emlearn=40,tvm=10",
                    help="backend=share,...: the shares are scaled to --jobs")
    ap.add_argument("--setups", default="embedded,scaleout")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--timeout-s", type=float, default=1800)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args()
    shares = {k: int(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    total = sum(shares.values())
    mix = {k: round(v * args.jobs / total) for k, v in shares.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyml-jobs-bench-") as tmp:
        jobs = plan(mix, Path(tmp))
        for setup in args.setups.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                root = Path(tmp) / f"{setup}-{workers}"
                root.mkdir()
                load = os.getloadavg()[0]
                result = {"embedded": embedded, "scaleout": scaleout}[setup](root, jobs, workers, args.timeout_s)
                result.update(setup=setup, workers=workers, load_before=round(load, 1), mix=mix)
                rows.append(result)
                print(json.dumps(result), flush=True)
    print("\n| setup | workers | jobs (" + ", ".join(f"{b} {n}" for b, n in mix.items()) +
          ") | submitted in | all done in | jobs/s | succeeded | failed | lost |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setup']} | {r['workers']} | {r['jobs']} | {r['submitted_s']} s | {r['wall_s']} s | "
              f"{r['jobs_per_s']} | {r['succeeded']} | {r['failed']} | {r['lost']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_jobs_bench.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["lost"] == 0 and r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
