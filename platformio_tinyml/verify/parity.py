"""Parity of generated code with the reference interpreter on random inputs.

int8 (and other integer) outputs must be identical; float outputs must have
a max relative error (max|ours - ref| / max|ref|) of at most ``FLOAT_RTOL``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..compilers.cgen import generate
from ..compilers.ctext import c_comment_text
from ..ir import DType, Graph
from ..ir.graph import reset_each_invoke
from .host import build_host
from .reference import reference_for, warm_up

FLOAT_RTOL = 1e-5


def differences(ours: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float]:
    """(|ours - ref| per element, the scale a relative error divides by: the largest finite
    |ref|). Equal values differ by 0, NaN and NaN and an infinity and the same infinity
    included; NaN against a number, or an infinity against anything else, differ by inf (a
    NaN difference would drop out of every max and pass). Shapes that differ: [inf]."""
    if ours.shape != ref.shape:
        return np.array([np.inf]), 1.0
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, np.abs(a - b))
    d[np.isnan(d)] = np.inf
    finite = np.abs(b[np.isfinite(b)])
    return d, max(float(finite.max()) if finite.size else 0.0, 1e-30)


@dataclass
class OutputParity:
    name: str
    dtype: str
    samples: int = 0
    exact: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    tolerance: int = 0      # integer outputs: the largest difference a backend documents (tvm: 1)

    @property
    def ok(self) -> bool:
        if self.dtype == "float32":
            return self.max_rel <= FLOAT_RTOL
        return self.exact == self.samples or (self.tolerance > 0 and self.max_abs <= self.tolerance)

    @property
    def verdict(self) -> str:
        within = f" (within {self.tolerance})" if self.tolerance and self.dtype != "float32" else ""
        return ("PASS" if self.ok else "FAIL") + within


@dataclass
class ParityReport:
    model: str
    samples: int
    seed: int
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def table(self) -> str:
        rows = [f"{'output':<28} {'dtype':<8} {'exact':>9} {'max abs err':>12} {'max rel err':>12}  result"]
        for o in self.outputs:
            name = c_comment_text(o.name, limit=25)      # the model's text: printable, one line
            rows.append(f"{name:<28} {o.dtype:<8} {o.exact:>4}/{o.samples:<4} {o.max_abs:>12.3g} "
                        f"{o.max_rel:>12.3g}  {o.verdict}")
        return "\n".join(rows)


def random_input(t, rng: np.random.Generator) -> np.ndarray:
    if t.dtype in (DType.INT8, DType.UINT8, DType.INT16):
        info = np.iinfo(t.dtype.numpy)
        return rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype.numpy)
    if t.dtype is DType.BOOL:
        return rng.integers(0, 2, t.shape).astype(np.bool_)
    return rng.standard_normal(t.shape).astype(np.float32)


def check_parity(graph: Graph, model_path: Path, samples: int = 20, seed: int = 0,
                 workdir: Path | None = None, name: str = "vmodel", obj_cache: Path | None = None,
                 cflags: list[str] | None = None) -> ParityReport:
    """Compile ``graph`` for the host, run ``samples`` seeded random inputs, compare
    (``obj_cache``, ``cflags``: see :func:`.host.build_host`)."""
    # A Keras model is verified against the .tflite it was converted to.
    ref_path = graph.meta.get("tflite_path", model_path)
    warm_up(ref_path)   # the reference child loads its interpreter while we compile
    gen = generate(graph, name)
    with tempfile.TemporaryDirectory() as tmp:
        host = build_host(gen, graph, Path(workdir or tmp), extra_cflags=cflags, obj_cache=obj_cache)
        host.reset()
        return compare_with_reference(host.run, graph, ref_path, model_path, samples, seed)


def compare_with_reference(run, graph: Graph, ref_path: Path, model_path: Path, samples: int,
                           seed: int, tolerance: int = 0) -> ParityReport:
    """``run(inputs) -> outputs`` (the generated code) against the reference interpreter
    of ``ref_path`` on ``samples`` seeded random inputs (``tolerance``: see :class:`OutputParity`)."""
    ref = reference_for(ref_path, graph)
    adapt = getattr(ref, "adapt", None)
    rng = np.random.default_rng(seed)
    report = ParityReport(model=str(model_path), samples=samples, seed=seed)
    outs = [OutputParity(graph.tensors[t].name, graph.tensors[t].dtype.np_name, tolerance=tolerance)
            for t in graph.outputs]
    report.outputs = outs
    # A streaming model (resource variables) is checked as one stream: both sides
    # start from their initial state and keep it from sample to sample.
    stateful = bool(graph.variables) and not reset_each_invoke(graph)
    for k in range(samples):
        xs = [random_input(graph.tensors[t], rng) for t in graph.inputs]
        ours = run(xs)
        if adapt is not None:
            theirs = adapt(graph, xs)
        elif stateful:
            theirs = ref.run(xs, reset=k == 0)
        else:
            theirs = ref.run(xs)
        for o, a, b in zip(outs, ours, theirs):
            a = np.asarray(a).reshape(-1)
            b = np.asarray(b).reshape(-1)
            o.samples += 1
            d, denom = differences(a, b)
            if not d.any():
                o.exact += 1
            o.max_abs = max(o.max_abs, float(d.max()) if d.size else 0.0)
            o.max_rel = max(o.max_rel, float(d.max()) / denom if d.size else 0.0)
    return report
