"""The ``emlearn`` plugin: scikit-learn estimators for any board with a C compiler.

Backend options (``custom_tinyml_backend_options`` / ``--option``):
``output=class`` (default, int32 class label) or ``output=proba`` (float32
class probabilities).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import CompileError
from ..interface import (CompileRequest, CompileResult, Estimate, FileRole, GeneratedFile,
                         Support)
from .describe import ModelInfo, Unsupported, describe, estimate_sizes


def _emlearn_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("emlearn")
    except Exception:
        return None


class EmlearnCompiler:
    name = "emlearn"

    def __init__(self) -> None:
        self.version = _emlearn_version() or "missing"

    def _info(self, request: CompileRequest) -> ModelInfo:
        if request.model_format != "sklearn":
            raise Unsupported(f"emlearn compiles scikit-learn estimators; this is a "
                              f"'{request.model_format}' model")
        if _emlearn_version() is None:
            raise Unsupported("the emlearn package is not installed (pip install emlearn)")
        from ...model.sklearn import load_estimator
        est = load_estimator(request.model_path)
        return describe(est, request.options.backend_options.get("output", "class"))

    def supports(self, request: CompileRequest) -> Support:
        try:
            info = self._info(request)
        except Unsupported as e:
            return Support(False, (str(e),))
        est = self._estimate(info, request)
        dev = request.device
        reasons = []
        if est.flash_bytes > dev.flash_bytes:
            reasons.append(f"needs about {est.flash_bytes:,} B of flash, board has {dev.flash_bytes:,} B")
        if est.ram_bytes > dev.ram_bytes:
            reasons.append(f"needs about {est.ram_bytes:,} B of RAM, board has {dev.ram_bytes:,} B")
        return Support(not reasons, tuple(reasons), est)

    def _estimate(self, info: ModelInfo, request: CompileRequest) -> Estimate:
        flash, ram, cycles = estimate_sizes(info, request.device.arch, request.device.has_fpu)
        return Estimate(flash_bytes=flash, ram_bytes=ram, latency_cycles=cycles)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        from ...model.sklearn import load_estimator
        from .emit import write
        try:
            info = self._info(request)
        except Unsupported as e:
            raise CompileError(str(e), where=str(request.model_path)) from None
        est = load_estimator(request.model_path)
        emitted = write(est, info, request.options.name, Path(outdir))
        files = tuple(GeneratedFile(p, FileRole.SOURCE if p.suffix == ".c" else FileRole.HEADER)
                      for p in emitted.files)
        estimate = self._estimate(info, request)
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=estimate, arena_bytes=emitted.static_bytes,
            weight_bytes=4 * info.weights if info.weights else 0,
            build_flags=("-lm",) if info.family == "mlp" else (),
            diagnostics=info.notes,
            details={"estimator": info.kind, "family": info.family, "output": info.output,
                     "n_features": info.n_features, "leaf_bits": info.leaf_bits,
                     "decision_nodes": info.decision_nodes, "leaves": info.leaves,
                     "trees": info.n_trees, "classes": list(map(str, info.classes or ()))})
