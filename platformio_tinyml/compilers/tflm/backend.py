"""The ``tflm`` plugin: hand a .tflite to TensorFlow Lite Micro, sized for the board.

The arena is measured, not guessed: the TFLM host interpreter (PyPI
``tflite-micro``, reference kernels) allocates the model and reports its
total. That host build is 64-bit, so its persistent part is larger than on
a 32-bit MCU, but optimized kernels (CMSIS-NN) ask for scratch buffers the
reference kernels do not; ``ARENA_MARGIN`` covers those:
``arena = align16(measured + max(1 KiB, measured / 10))``.

Backend option ``lib_deps`` replaces the default library reference
(``DEFAULT_LIB_DEPS``), for projects that vendor TFLM or use a port.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ...errors import CompileError, TinyMLError
from ..base import generated_files, lib_deps_option, support_from_estimate
from ..interface import CompileRequest, CompileResult, Estimate, Support
from ..capi import IoSpec
from ...ir.graph import reset_each_invoke
from .emit import resolver_method, write_tflm_files
from .flatbuffer import TfliteFacts, read_facts

# Git reference of the Arduino build of TFLM (it carries library.properties, so PlatformIO
# can build it as a library). Not checked against the PlatformIO registry from here.
DEFAULT_LIB_DEPS = ("https://github.com/tensorflow/tflite-micro-arduino-examples",)
MIN_MARGIN = 1024
CODE_BASE = 40_000       # interpreter, allocator, flatbuffer reader (Cortex-M, -Os)
CODE_PER_OP = 4_000      # one kernel with its CMSIS-NN variant
RAM_OVERHEAD = 2_048     # interpreter object, resolver, stack


def arena_with_margin(measured: int) -> int:
    """Arena for a 32-bit target from the host measurement (see the module docstring)."""
    total = measured + max(MIN_MARGIN, measured // 10)
    return (total + 15) // 16 * 16


@functools.lru_cache(maxsize=32)
def _measure(path: str, mtime_ns: int) -> int:
    from ...verify.reference import tflm_arena_bytes
    return tflm_arena_bytes(path)


def measured_arena(path: Path) -> int:
    """TFLM's arena total for the model at ``path`` (cached per file version)."""
    return _measure(str(path), Path(path).stat().st_mtime_ns)


# Latency (an estimate, for ranking only): TFLM's kernels do the same arithmetic as
# cgen's, behind an interpreter. On the host, the TFLM interpreter (reference kernels)
# took 1.1x-2.2x the time of cgen's portable C on the four MLPerf Tiny int8 models
# (bench-out/cgen_bench.json: tflm_us / host_us; geometric mean 1.5), so:
#   cycles = KERNEL_FACTOR * cgen's estimate for the same core + PER_OP_CYCLES per op
# PER_OP_CYCLES is the interpreter's dispatch and tensor lookup per op (a guess, not measured).
# The Arm build of the TFLM Arduino library uses CMSIS-NN kernels, which the factor
# does not single out; a measured TFLM latency on the board replaces all of this.
KERNEL_FACTOR = 1.5
PER_OP_CYCLES = 2_000


def latency_estimate(request: CompileRequest) -> int | None:
    """Estimated CPU cycles of one TFLM inference (None without an IR graph)."""
    if request.graph is None:
        return None
    from ..cgen.latency import estimate_cycles
    est = estimate_cycles(request.graph, request.device)
    if est is None:
        return None
    return round(KERNEL_FACTOR * est.cycles + PER_OP_CYCLES * len(request.graph.ops))


def _tflm_version() -> str:
    try:
        from importlib.metadata import version
        return version("tflite-micro")
    except Exception:
        return "unknown"


def io_specs(request: CompileRequest) -> tuple[list[IoSpec], list[IoSpec]]:
    """The model's inputs/outputs for the common C API (from the IR)."""
    g = request.graph
    return ([IoSpec.of_tensor(g.tensors[t]) for t in g.inputs],
            [IoSpec.of_tensor(g.tensors[t]) for t in g.outputs])


class TflmCompiler:
    name = "tflm"
    formats = ("tflite", "keras")   # input formats, as GET /v1/backends lists them

    def __init__(self) -> None:
        self.version = _tflm_version()

    def _facts(self, request: CompileRequest) -> TfliteFacts | str:
        if request.model_format != "tflite":
            return f"tflm takes .tflite models; this is a '{request.model_format}' model"
        if request.device.word_bits < 32:
            return (f"TensorFlow Lite Micro needs a 32-bit core; {request.device.board} is "
                    f"{request.device.core} ({request.device.word_bits}-bit)")
        facts = read_facts(request.model_path)
        if facts.unset_padding:
            return (f"TensorFlow Lite Micro pads float32 SPACE_TO_BATCH_ND with a value it never sets "
                    f"({facts.unset_padding[0]} has padding), so its output would be wrong; "
                    "use --backend cgen, or quantize the model to int8")
        for op in facts.ops:
            try:
                resolver_method(op)
            except ValueError as e:
                return str(e)
        return facts

    def supports(self, request: CompileRequest) -> Support:
        facts = self._facts(request)
        if isinstance(facts, str):
            return Support(False, (facts,))
        try:
            arena = arena_with_margin(measured_arena(request.model_path))
        except TinyMLError as e:   # interpreter missing, model refused, or TFLM crashed on it
            hint = [e.hint[:1].lower() + e.hint[1:]] if e.hint else []    # a refusal may come without one
            return Support(False, ("; ".join([e.what, *hint]),))
        except Exception as e:
            return Support(False, (f"TFLM host interpreter could not allocate the model "
                                   f"({type(e).__name__}: {str(e)[:160]})",))
        est = self._estimate(request, facts, arena)
        return support_from_estimate(est, request.device)

    def _estimate(self, request: CompileRequest, facts: TfliteFacts, arena: int) -> Estimate:
        size = Path(request.model_path).stat().st_size
        flash = size + CODE_BASE + CODE_PER_OP * len(facts.ops)
        return Estimate(flash_bytes=flash, ram_bytes=arena + RAM_OVERHEAD,
                        latency_cycles=latency_estimate(request))

    def lib_deps(self, request: CompileRequest) -> tuple[str, ...]:
        return lib_deps_option(request.options.backend_options, DEFAULT_LIB_DEPS)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        facts = self._facts(request)
        if isinstance(facts, str):
            raise CompileError(facts, where=str(request.model_path))
        measured = measured_arena(request.model_path)
        arena = arena_with_margin(measured)
        data = Path(request.model_path).read_bytes()
        ins, outs = io_specs(request)
        paths = write_tflm_files(request.options.name, data, facts.ops, arena, Path(outdir), self.name,
                                 ins, outs, reset_each_invoke=reset_each_invoke(request.graph))
        files = generated_files(paths)
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files,
            include_dirs=(Path(outdir),), estimate=self._estimate(request, facts, arena),
            arena_bytes=arena, weight_bytes=len(data), lib_deps=self.lib_deps(request),
            details={"arena_measured_bytes": measured, "arena_margin_bytes": arena - measured,
                     "ops": list(facts.ops), "op_counts": facts.op_counts, "macs": facts.macs})
