"""The ``cgen`` backend: the project's own generator behind the plugin interface."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ... import __version__
from ...errors import TinyMLError
from ..base import generated_files, support_from_estimate
from ..interface import CompileRequest, CompileResult, Estimate, Support
from .emit import Generated, generate, write_output
from .latency import estimate_cycles
from .sizes import estimate_code_bytes

STACK_ESTIMATE = 256   # kernels keep scratch in the arena; measured worst case in the benchmark
SUPPORTS_CACHE = 8     # models whose generated code supports() keeps (selection over many boards)


class CgenCompiler:
    name = "cgen"
    formats = ("tflite", "onnx", "keras")   # input formats, as GET /v1/backends lists them
    version = __version__

    def __init__(self) -> None:
        # supports() for the same model on board after board: the generated code does not
        # depend on the board (lowerings ignore the device today; key on the device fields
        # they start to read if that changes), only the size/latency comparison does.
        self._cache: OrderedDict[tuple[int, str], tuple[object, Generated | str]] = OrderedDict()
        self._lock = threading.Lock()

    def _generate(self, request: CompileRequest) -> Generated:
        return generate(request.graph, request.options.name, request.device)

    def _generate_cached(self, request: CompileRequest) -> Generated | str:
        """``_generate`` for supports() (or why it failed), reused per (graph object, name).

        compile() always regenerates."""
        key = (id(request.graph), request.options.name)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is request.graph:   # same object, not a reused id
                self._cache.move_to_end(key)
                value = hit[1]
            else:
                value = None
        if value is None:
            try:
                value = self._generate(request)
            except TinyMLError as e:
                value = str(e)
            with self._lock:
                self._cache[key] = (request.graph, value)
                while len(self._cache) > SUPPORTS_CACHE:
                    self._cache.popitem(last=False)
        return value

    def supports(self, request: CompileRequest) -> Support:
        if request.graph is None:
            return Support(False, (f"cgen compiles neural networks; '{request.model_format}' models are "
                                   "not a graph of tensor ops",))
        gen = self._generate_cached(request)
        if isinstance(gen, str):
            return Support(False, (gen,))
        est = self._estimate(request, gen)
        return support_from_estimate(est, request.device, needs="needs")

    def _estimate(self, request: CompileRequest, gen: Generated) -> Estimate:
        code = estimate_code_bytes(gen.runtime_files, request.device, n_ops=len(request.graph.ops))
        lat = estimate_cycles(request.graph, request.device)   # an estimate: see latency.py
        return Estimate(flash_bytes=gen.const_bytes + code, ram_bytes=gen.arena_bytes + STACK_ESTIMATE,
                        latency_cycles=lat.cycles if lat else None)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        gen = self._generate(request)
        paths = write_output(gen, outdir)
        files = generated_files(paths)
        build_flags = ("-lm",) if gen.uses_math else ()
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=self._estimate(request, gen),
            arena_bytes=gen.arena_bytes, weight_bytes=gen.weight_bytes, build_flags=build_flags,
            details={"lower_bound_bytes": gen.lower_bound, "const_bytes": gen.const_bytes,
                     "runtime_files": gen.runtime_files})
