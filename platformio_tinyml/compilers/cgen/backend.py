"""The ``cgen`` backend: the project's own generator behind the plugin interface."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ... import __version__
from ...device import DeviceProfile
from ...errors import TinyMLError
from ..base import generated_files, support_from_estimate
from ..interface import CompileRequest, CompileResult, Estimate, Support
from .emit import Generated, generate, write_output
from .latency import estimate_cycles
from .sizes import estimate_code_bytes

# Worst-case stack of one inference (bytes) per core family: the maximum over the
# MLPerf Tiny models at -Os and -O2, from gcc's -fstack-usage over the call graph
# of <model>_invoke. Regenerate with benchmarks/cgen_stack.py (it prints this table).
# (AVR: KWS only; the other three models do not build for AVR.) The Cortex-M23
# (ARMv8-M Baseline) compiles the generic C kernels, not the ARMv6-M ones
# (TML_V6M), so it takes the Cortex-M3's figure.
STACK_BYTES = {"cortex-m0plus": 512, "cortex-m3": 532, "cortex-m4": 512, "cortex-m7": 520,
               "rv32": 528, "avr": 458}
_STACK_FAMILY = {"cortex-m0": "cortex-m0plus", "cortex-m0plus": "cortex-m0plus", "cortex-m1": "cortex-m0plus",
                 "cortex-m23": "cortex-m3", "cortex-m3": "cortex-m3", "cortex-m4": "cortex-m4",
                 "cortex-m7": "cortex-m7"}
# AVR: pgm_read_byte and memcpy_P take 16-bit addresses, so every constant the
# kernels read from PROGMEM must lie in the first 64 KiB of flash. The linker puts
# .progmem after the vector table, with the core's and the application's own
# PROGMEM data; AVR_NEAR_RESERVE is left to those.
AVR_NEAR_FLASH = 64 * 1024
AVR_NEAR_RESERVE = 4 * 1024
AVR_MAX_ARRAY = 32_767   # avr-gcc: "size of array is too large" above this (16-bit ptrdiff_t)
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
        fit = support_from_estimate(est, request.device, needs="needs")
        problem = avr_constant_problem(request, gen)
        return Support(False, fit.reasons + (problem,), est) if problem else fit

    def _estimate(self, request: CompileRequest, gen: Generated) -> Estimate:
        code = estimate_code_bytes(gen.runtime_files, request.device, n_ops=len(request.graph.ops))
        lat = estimate_cycles(request.graph, request.device)   # an estimate: see latency.py
        return Estimate(flash_bytes=gen.const_bytes + code,
                        ram_bytes=gen.arena_bytes + gen.state_bytes + stack_bytes(request.device),
                        latency_cycles=lat.cycles if lat else None)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        gen = self._generate(request)
        problem = avr_constant_problem(request, gen)
        if problem:
            raise TinyMLError(problem, where=str(request.model_path))
        paths = write_output(gen, outdir)
        files = generated_files(paths)
        build_flags = ("-lm",) if gen.uses_math else ()
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=self._estimate(request, gen),
            arena_bytes=gen.arena_bytes, weight_bytes=gen.weight_bytes, build_flags=build_flags,
            details={"lower_bound_bytes": gen.lower_bound, "const_bytes": gen.const_bytes,
                     "state_bytes": gen.state_bytes,
                     "runtime_files": gen.runtime_files})


def stack_bytes(device: DeviceProfile) -> int:
    """Worst-case stack of one inference on ``device``'s core (:data:`STACK_BYTES`);
    the largest figure of any family for a core not measured."""
    if device.arch == "avr":
        return STACK_BYTES["avr"]
    if device.arch == "riscv":
        return STACK_BYTES["rv32"]
    family = _STACK_FAMILY.get(device.core)
    return STACK_BYTES[family] if family else max(STACK_BYTES.values())


def avr_constant_problem(request: CompileRequest, gen: Generated) -> str | None:
    """Why the model's PROGMEM constants cannot be built or read on this AVR board (one
    line): past the first 64 KiB of flash, or one array over avr-gcc's limit; None when
    they can (or the board is not an AVR)."""
    dev, g = request.device, request.graph
    if dev.arch != "avr" or g is None:
        return None
    consts = [(op, g.tensors[i]) for op in g.ops for i in op.inputs if i >= 0 and g.tensors[i].is_const]
    if not consts:
        return None
    op, t = max(consts, key=lambda ot: ot[1].nbytes)
    largest = f"tensor '{t.name}' of op {op.label}, {t.nbytes:,} B"
    limit = AVR_NEAR_FLASH - AVR_NEAR_RESERVE
    if dev.flash_bytes > AVR_NEAR_FLASH and gen.const_bytes > limit:
        return (f"the model's constant data is {gen.const_bytes:,} B (weights and kernel parameters in PROGMEM; "
                f"largest: {largest}), but AVR's pgm_read_byte reads only the first 64 KiB of flash, so at most "
                f"{limit:,} B can be used: use a smaller model or a board with a 32-bit core")
    if t.nbytes > AVR_MAX_ARRAY:
        return (f"{largest} is larger than the {AVR_MAX_ARRAY:,} B that avr-gcc allows for one array: "
                "use a smaller layer or a board with a 32-bit core")
    return None
