"""Counters for ``GET /metrics`` (Prometheus text exposition format 0.0.4).

Jobs by state are read from the database at each scrape (they survive
restarts); cache hits and misses and the compile-time histogram count what
this process has seen since it started.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cache = {"hit": 0, "miss": 0}
        self._hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sum: dict[str, float] = defaultdict(float)

    def count_cache(self, hit: bool) -> None:
        with self._lock:
            self.cache["hit" if hit else "miss"] += 1

    def observe_compile(self, backend: str, seconds: float) -> None:
        with self._lock:
            counts = self._hist[backend]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sum[backend] += seconds

    def render(self, jobs_by_state: dict[str, int]) -> str:
        out = ["# HELP tinyml_jobs Compile jobs (builds) by state.", "# TYPE tinyml_jobs gauge"]
        for state in ("queued", "running", "succeeded", "failed"):
            out.append(f'tinyml_jobs{{state="{state}"}} {jobs_by_state.get(state, 0)}')
        out += ["# HELP tinyml_cache_requests_total Compilation requests answered from the store (hit) or not.",
                "# TYPE tinyml_cache_requests_total counter"]
        with self._lock:
            out += [f'tinyml_cache_requests_total{{result="{k}"}} {v}' for k, v in self.cache.items()]
            out += ["# HELP tinyml_compile_seconds Wall time of compile jobs per backend.",
                    "# TYPE tinyml_compile_seconds histogram"]
            for backend, counts in sorted(self._hist.items()):
                for bound, n in zip(BUCKETS, counts):
                    out.append(f'tinyml_compile_seconds_bucket{{backend="{backend}",le="{bound:g}"}} {n}')
                out.append(f'tinyml_compile_seconds_bucket{{backend="{backend}",le="+Inf"}} {counts[-1]}')
                out.append(f'tinyml_compile_seconds_sum{{backend="{backend}"}} {self._sum[backend]:.6f}')
                out.append(f'tinyml_compile_seconds_count{{backend="{backend}"}} {counts[-1]}')
        return "\n".join(out) + "\n"
