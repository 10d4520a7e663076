"""The ``vela`` plugin: supported only on boards whose profile names an Ethos-U NPU.

The NPU comes from ``DeviceProfile.npu`` (``board_build.tinyml_npu`` or
``custom_tinyml_npu``, e.g. ``ethos-u55-128``). The model must be an int8
TFLite model. Estimates come from Vela's own summary: SRAM (plus the TFLM
overhead), flash (the optimized model plus TFLM and the NPU driver) and
latency (Vela's NPU cycle total, converted to CPU cycles when the board's
clock is known).

Backend options: ``system_config``, ``memory_mode``, ``config``,
``optimise`` are passed to Vela; ``lib_deps`` replaces the default libraries.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import CompileError
from ..base import generated_files, lib_deps_option, support_from_estimate
from ..ctext import c_prefix, c_string_literal
from ..interface import (CompileRequest, CompileResult, Estimate, FileRole, GeneratedFile,
                         Support)
from ..tflm.backend import CODE_BASE, CODE_PER_OP, DEFAULT_LIB_DEPS, RAM_OVERHEAD
from ..tflm.backend import io_specs
from ...ir.graph import reset_each_invoke
from ..tflm.emit import write_tflm_files
from ..tflm.flatbuffer import read_facts
from .run import ACCELERATORS, VelaRun, run_vela, vela_version

DRIVER_CODE = 12_000           # Ethos-U core driver + TFLM ethos-u kernel
ETHOS_U_DRIVER = "https://github.com/ARM-software/ethos-u-core-driver"
_VELA_KEYS = ("system_config", "memory_mode", "config", "optimise")


class VelaCompiler:
    name = "vela"
    formats = ("tflite", "keras")   # input formats, as GET /v1/backends lists them

    def __init__(self) -> None:
        self.version = vela_version() or "missing"

    def _check(self, request: CompileRequest) -> str | None:
        npu = request.device.npu
        if not npu:
            return (f"board '{request.device.board}' has no NPU (set board_build.tinyml_npu = "
                    "ethos-u55-128 or custom_tinyml_npu for an Ethos-U board)")
        if npu not in ACCELERATORS:
            return f"NPU '{npu}' is not an Ethos-U configuration Vela knows ({', '.join(ACCELERATORS)})"
        if request.model_format != "tflite":
            return f"vela takes int8 .tflite models; this is a '{request.model_format}' model"
        if vela_version() is None:
            return "ethos-u-vela is not installed (pip install 'platformio-tinyml[vela]')"
        facts = read_facts(request.model_path)
        if facts.io_types != {"INT8"} or "FLOAT32" in facts.tensor_types:
            return ("the model is not fully int8 (inputs/outputs "
                    f"{', '.join(sorted(facts.io_types))}); quantize it to int8 for the NPU")
        return None

    def _run(self, request: CompileRequest) -> VelaRun:
        opts = {k: v for k, v in request.options.backend_options.items() if k in _VELA_KEYS}
        return run_vela(request.model_path, request.device.npu, opts)

    def supports(self, request: CompileRequest) -> Support:
        why = self._check(request)
        if why:
            return Support(False, (why,))
        try:
            run = self._run(request)
        except CompileError as e:
            return Support(False, (str(e),))
        est = self._estimate(request, run)
        return support_from_estimate(est, request.device)

    def _estimate(self, request: CompileRequest, run: VelaRun) -> Estimate:
        n_ops = 1 + max(run.cpu_ops, 0)
        flash = len(run.optimized) + CODE_BASE + CODE_PER_OP * n_ops + DRIVER_CODE
        clock = request.device.clock_hz
        cycles = round(run.npu_cycles * clock / run.npu_clock_hz) if clock else run.npu_cycles
        return Estimate(flash_bytes=flash, ram_bytes=_arena(run) + RAM_OVERHEAD, latency_cycles=cycles)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        why = self._check(request)
        if why:
            raise CompileError(why, where=str(request.model_path))
        run = self._run(request)
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        name = c_prefix(request.options.name, str(request.model_path))
        blob = outdir / f"{name}_vela.tflite"
        blob.write_bytes(run.optimized)
        ops = read_facts(blob).ops
        arena = _arena(run)
        extra = (f"#define {name.upper()}_NPU {c_string_literal(request.device.npu)}",
                 f"#define {name.upper()}_NPU_CYCLES {run.npu_cycles}")
        ins, outs = io_specs(request)
        paths = write_tflm_files(name, run.optimized, ops, arena, outdir, self.name, ins, outs, extra,
                                 reset_each_invoke=reset_each_invoke(request.graph))
        files = generated_files(paths) + (GeneratedFile(blob, FileRole.DATA),)
        lib_deps = lib_deps_option(request.options.backend_options, DEFAULT_LIB_DEPS + (ETHOS_U_DRIVER,))
        diags = ((f"{run.cpu_ops} operator(s) stay on the CPU",) if run.cpu_ops > 0 else ())
        return CompileResult(
            backend=self.name, backend_version=self.version, files=files, include_dirs=(outdir,),
            estimate=self._estimate(request, run), arena_bytes=arena, weight_bytes=len(run.optimized),
            build_flags=("-DETHOSU",), lib_deps=lib_deps, diagnostics=diags,
            details={"accelerator": request.device.npu, "sram_bytes": run.sram_bytes,
                     "flash_bytes": run.flash_bytes, "npu_cycles": run.npu_cycles,
                     "npu_clock_hz": run.npu_clock_hz, "inference_s": run.inference_s,
                     "npu_ops": run.npu_ops, "cpu_ops": run.cpu_ops, "ops": list(ops),
                     "system_config": run.summary.get("system_config"),
                     "memory_mode": run.summary.get("memory_mode")})


def _arena(run: VelaRun) -> int:
    # Vela's SRAM is the NPU tensor area; TFLM keeps its own persistent data in the same arena.
    return (run.sram_bytes + RAM_OVERHEAD + 15) // 16 * 16
