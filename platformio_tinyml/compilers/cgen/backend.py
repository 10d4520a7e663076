"""The ``cgen`` backend: the project's own generator behind the plugin interface."""

from __future__ import annotations

from pathlib import Path

from ... import __version__
from ...errors import TinyMLError
from ..interface import (CompileRequest, CompileResult, Estimate, FileRole, GeneratedFile,
                         Support)
from .emit import Generated, generate, write_output
from .sizes import estimate_code_bytes

STACK_ESTIMATE = 256   # kernels keep scratch in the arena; measured worst case in the benchmark


class CgenCompiler:
    name = "cgen"
    version = __version__

    def _generate(self, request: CompileRequest) -> Generated:
        return generate(request.graph, request.options.name, request.device)

    def supports(self, request: CompileRequest) -> Support:
        if request.graph is None:
            return Support(False, (f"cgen compiles neural networks; '{request.model_format}' models are "
                                   "not a graph of tensor ops",))
        try:
            gen = self._generate(request)
        except TinyMLError as e:
            return Support(False, (str(e),))
        est = self._estimate(request, gen)
        reasons = []
        dev = request.device
        if est.flash_bytes > dev.flash_bytes:
            reasons.append(f"needs {est.flash_bytes:,} B of flash, board has {dev.flash_bytes:,} B")
        if est.ram_bytes > dev.ram_bytes:
            reasons.append(f"needs {est.ram_bytes:,} B of RAM, board has {dev.ram_bytes:,} B")
        return Support(not reasons, tuple(reasons), est)

    def _estimate(self, request: CompileRequest, gen: Generated) -> Estimate:
        code = estimate_code_bytes(gen.runtime_files, request.device, n_ops=len(request.graph.ops))
        return Estimate(flash_bytes=gen.const_bytes + code, ram_bytes=gen.arena_bytes + STACK_ESTIMATE)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        gen = self._generate(request)
        paths = write_output(gen, outdir)
        files = tuple(GeneratedFile(p, FileRole.SOURCE if p.suffix == ".c" else FileRole.HEADER)
                      for p in paths)
        build_flags = ("-lm",) if gen.uses_math else ()
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=self._estimate(request, gen),
            arena_bytes=gen.arena_bytes, weight_bytes=gen.weight_bytes, build_flags=build_flags,
            details={"lower_bound_bytes": gen.lower_bound, "const_bytes": gen.const_bytes,
                     "runtime_files": gen.runtime_files})
