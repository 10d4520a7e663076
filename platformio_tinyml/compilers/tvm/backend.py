"""The ``tvm`` plugin: Apache TVM (PyPI ``apache-tvm`` 0.27) per-operator kernels + generated glue.

TVM 0.27 has no microTVM/AOT/CRT, so this backend does what they did: TVM
imports the model (Relax frontends), legalizes and fuses it, and generates
one kernel per fused operator; :mod:`.emit` writes the call sequence, the
static memory plan and the argument structures in C, so nothing of TVM's
runtime runs on the board. The firmware sees the same ``NAME.h`` as with
cgen.

Backend options (``custom_tinyml_backend_options`` / ``--option``):
``codegen=c`` (default: TVM's C source, builds with any C99 compiler) or
``codegen=llvm`` (an LLVM object ``NAME_kernels.o`` for x86_64 or
Armv7-A Linux boards; link it yourself; refused for microcontrollers, see
``_target``).

Linux-class boards (``native`` x86_64, ``linux_arm`` Cortex-A, AArch64) get
TVM's normal flow by default (``runtime=tvm``, see :mod:`.shared`): the model
as a shared library ``NAME.so`` and a ``NAME.c`` that loads it with the TVM
runtime. ``runtime=none`` (or giving ``codegen=``) gives them the runtime-free glue above instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ...errors import CompileError
from ...isolate import ChildTimedOut, IsolationError, env_number, shared_worker
from ..base import support_from_estimate
from ..interface import (CompileRequest, CompileResult, Estimate, FileRole, GeneratedFile,
                         Support)
from .lower import Program, Unsupported, check_format, tvm_version

CODE_BYTES_PER_KERNEL = 1_200      # rough: a scalar TIR loop nest for a Cortex-M at -Os
GLUE_BYTES = 600                   # invoke + workspace allocator
GLUE_BYTES_PER_CALL = 48           # one DLTensor/argument block and one call
STACK_ESTIMATE = 256
ARCHES = ("arm", "riscv", "x86_64", "arm-a", "aarch64")
# supports() lowers the model in a child process (TVM can hang or crash on a model);
# past this many seconds the probe is stopped and tvm skipped (selection waits 60 s).
PROBE_TIMEOUT_S = 45.0
PROBE_TIMEOUT_ENV = "TINYML_TVM_PROBE_TIMEOUT_S"


class Sizes(NamedTuple):
    """What the estimate needs from a lowered model."""
    const_bytes: int
    kernels: int
    calls: int
    arena_bytes: int
    workspace_bytes: int

    @staticmethod
    def of(prog: Program, workspace: int) -> "Sizes":
        return Sizes(prog.const_bytes, len(prog.tir.functions), len(prog.calls), prog.arena_bytes, workspace)


def probe(path: str, fmt: str, target: dict, name: str) -> Sizes | str:
    """Run in the probe child: lower the model and its kernels; their sizes, or why not."""
    from .lower import lower, lower_tir
    try:
        prog = lower(Path(path), fmt)
        return Sizes.of(prog, lower_tir(prog, target, name)[1])
    except (Unsupported, CompileError) as e:
        return str(e)


def _target_reason(device) -> str | None:
    if device.arch not in ARCHES:
        return (f"the tvm backend targets Cortex-M, 32-bit RISC-V, x86_64, Cortex-A and AArch64; this board is "
                f"'{device.arch}' ({device.core})")
    if device.arch == "arm" and not device.core.startswith("cortex-m"):
        return f"the tvm backend targets Cortex-M cores on 'arm' boards, not {device.core}"
    if device.arch == "riscv" and device.word_bits != 32:
        return f"the tvm backend targets 32-bit RISC-V; {device.core} is {device.word_bits}-bit"
    return None


class TvmCompiler:
    name = "tvm"
    formats = ("tflite", "onnx", "keras")   # input formats, as GET /v1/backends lists them
    # supports() imports TVM and lowers the model: auto selection asks it only
    # when no cheaper backend fits (see compilers/selection.py).
    probe_cost = "high"
    int_tolerance = 1      # int8 outputs within 1 of TFLite Micro's (TVM's requantize rounding)

    def __init__(self) -> None:
        self.version = tvm_version() or "missing"
        self._cache: dict[tuple, Program] = {}
        self._lowered: dict[tuple, int] = {}
        self._probed: dict[tuple, Sizes | str] = {}

    def _codegen(self, request: CompileRequest) -> str:
        cg = request.options.backend_options.get("codegen", "c")
        if cg not in ("c", "llvm"):
            raise Unsupported(f"option codegen must be 'c' or 'llvm', not '{cg}'")
        return cg

    def _runtime(self, request: CompileRequest) -> str:
        from .shared import is_linux_class
        linux = is_linux_class(request.device)
        opts = request.options.backend_options
        # codegen= is an option of the runtime-free glue: asking for it without runtime= means that.
        rt = opts.get("runtime", "tvm" if linux and "codegen" not in opts else "none")
        if rt not in ("tvm", "none"):
            raise Unsupported(f"option runtime must be 'tvm' or 'none', not '{rt}'")
        if rt == "tvm" and not linux:
            raise Unsupported("runtime=tvm (a shared library run by the TVM runtime) is for Linux-class "
                              f"boards, not {request.device.core}; use runtime=none")
        if rt == "tvm" and request.options.backend_options.get("codegen", "llvm") != "llvm":
            raise Unsupported("runtime=tvm builds the shared library with LLVM; codegen=c needs runtime=none")
        return rt

    def _linux(self, request: CompileRequest):
        from .shared import check_toolchain, linux_target
        lt = linux_target(request.device)
        check_toolchain(lt)
        return lt

    def _target(self, request: CompileRequest, codegen: str) -> dict:
        from .lower import llvm_target
        if codegen == "c":
            return {"kind": "c"}
        if request.device.arch in ("arm", "riscv"):
            # TVM 0.27 always generates PIC: the kernels reach the workspace hooks
            # (__TVMBackendAllocWorkspace/FreeWorkspace, weak globals of the object) through
            # R_ARM_GOT_PREL. A static link puts the GOT in an orphan .got section in RAM,
            # which Cortex-M startup code (copying .data only) never fills: the kernel loads a
            # zero GOT entry and calls through it, a HardFault. With .got copied with .data the
            # same object runs and matches (tests/test_backend_tvm.py), but board linker
            # scripts do not do that, and no llvm target option of TVM 0.27 sets a static
            # relocation model.
            raise Unsupported("codegen=llvm is refused for microcontrollers: TVM's object reaches data "
                              "through the GOT (R_ARM_GOT_PREL), which MCU linker scripts leave "
                              "uninitialized in RAM (HardFault); use codegen=c")
        t = llvm_target(request.device)
        if t is None:
            raise Unsupported(f"no LLVM target for {request.device.core}; use codegen=c")
        return t

    def _check(self, request: CompileRequest) -> None:
        """What can be refused without TVM: raises :class:`Unsupported`."""
        if tvm_version() is None:
            raise Unsupported("Apache TVM is not installed (pip install 'platformio-tinyml[tvm]')")
        reason = _target_reason(request.device)
        if reason:
            raise Unsupported(reason)
        self._codegen(request)
        check_format(request.model_format)
        bound = request.graph.meta.get("bound_inputs") if request.graph is not None else None
        if bound:
            raise Unsupported(f"TVM imports the model file, whose input(s) {', '.join(sorted(bound))} "
                              "--input-value binds only in our IR")

    def _program(self, request: CompileRequest) -> Program:
        self._check(request)
        key = self._model_key(request)
        if key not in self._cache:
            from .lower import lower
            self._cache = {key: lower(Path(request.model_path), request.model_format)}
        return self._cache[key]

    @staticmethod
    def _model_key(request: CompileRequest) -> tuple:
        path = Path(request.model_path)
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns, request.model_format)

    def _workspace(self, prog: Program, target: dict, name: str) -> int:
        """Scratch bytes of the lowered kernels; cached, since boards of one kind share a target."""
        key = (id(prog), repr(sorted(target.items())), name)
        if key not in self._lowered:
            from .lower import lower_tir
            self._lowered = {key: lower_tir(prog, target, name)[1]}
        return self._lowered[key]

    def supports(self, request: CompileRequest) -> Support:
        try:
            self._check(request)
            cg = self._codegen(request)
            if self._runtime(request) == "tvm":
                target = self._linux(request).target
            else:
                target = self._target(request, cg)
        except (Unsupported, CompileError) as e:
            return Support(False, (str(e),))
        key = (*self._model_key(request), repr(sorted(target.items())), request.options.name)
        limit = env_number(PROBE_TIMEOUT_ENV, PROBE_TIMEOUT_S)
        if key not in self._probed:
            try:
                self._probed[key] = shared_worker("TVM probe").call(
                    probe, str(request.model_path), request.model_format, target, request.options.name,
                    timeout_s=limit, where=str(request.model_path))
            except ChildTimedOut:
                return Support(False, (f"skipped, probe took too long (over {limit:g} s; "
                                       f"{PROBE_TIMEOUT_ENV} sets the limit)",))
            except IsolationError as e:
                return Support(False, (e.what,))
        sizes = self._probed[key]
        if isinstance(sizes, str):
            return Support(False, (sizes,))
        return support_from_estimate(self._estimate(sizes), request.device)

    @staticmethod
    def _estimate(sizes: Sizes) -> Estimate:
        code = GLUE_BYTES + CODE_BYTES_PER_KERNEL * sizes.kernels + GLUE_BYTES_PER_CALL * sizes.calls
        return Estimate(flash_bytes=sizes.const_bytes + code,
                        ram_bytes=sizes.arena_bytes + sizes.workspace_bytes + STACK_ESTIMATE)

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        from .emit import write
        from .lower import build_kernels
        try:
            prog = self._program(request)
            cg = self._codegen(request)
            runtime = self._runtime(request)
            if runtime == "tvm":
                lt = self._linux(request)
            else:
                target = self._target(request, cg)
        except Unsupported as e:
            raise CompileError(str(e), where=str(request.model_path)) from None
        name = request.options.name
        from ..ctext import c_prefix
        c_prefix(name, str(request.model_path))
        if runtime == "tvm":
            return self._compile_shared(request, prog, lt, Path(outdir))
        kernels = build_kernels(prog, target, name)
        try:
            emitted = write(name, prog, kernels, request.graph, Path(outdir), self.version,
                            Path(request.model_path).name)
        except ValueError as e:
            raise CompileError(str(e), where=str(request.model_path)) from None
        files = []
        for p in emitted.files:
            role = {".c": FileRole.SOURCE, ".h": FileRole.HEADER}.get(p.suffix, FileRole.DATA)
            files.append(GeneratedFile(p, role))
        diagnostics = []
        if cg == "llvm":
            diagnostics.append(f"link {name}_kernels.o (TVM's LLVM object for {target['mtriple']}) "
                               "into the firmware")
        if request.device.arch == "arm-a":
            diagnostics.append("Linux board: kernels and glue are built in, without the TVM runtime")
        return CompileResult(
            backend=self.name, backend_version=self.version, files=tuple(files),
            include_dirs=(Path(outdir),), estimate=self._estimate(Sizes.of(prog, emitted.workspace_bytes)),
            arena_bytes=emitted.arena_bytes, weight_bytes=emitted.const_bytes,
            build_flags=("-lm",), diagnostics=tuple(diagnostics),
            details={"codegen": cg, "runtime": "none", "target": target, "kernels": sorted(kernels.symbols),
                     "calls": [c.func for c in prog.calls],
                     "activation_arena_bytes": prog.arena_bytes,
                     "workspace_bytes": emitted.workspace_bytes})

    def _compile_shared(self, request: CompileRequest, prog: Program, lt, outdir: Path) -> CompileResult:
        """Linux-class board, runtime=tvm: NAME.so + NAME.c/NAME.h on the TVM runtime."""
        from .shared import link_flags, runtime_paths, write_shared
        name = request.options.name
        h, c, so = write_shared(name, prog, request.graph, Path(request.model_path), request.model_format,
                                lt, outdir, self.version)
        workspace = self._workspace(prog, lt.target, name)
        est = self._estimate(Sizes.of(prog, workspace))
        est = Estimate(flash_bytes=so.stat().st_size, ram_bytes=est.ram_bytes)
        incs = (outdir, *runtime_paths()["include"])
        diagnostics = [f"{so.name} ({lt.target['mtriple']}) is loaded at run time from the path "
                       f"{name.upper()}_TVM_LIBRARY (default {'this build folder' if lt.host else './' + so.name}; "
                       "a -D macro or an environment variable of that name overrides it)"]
        if not lt.host:
            diagnostics.append(f"link {name}.c with libtvm_runtime and libtvm_ffi built for "
                               f"{lt.target['mtriple']} (the apache-tvm wheel has only this machine's); "
                               f"copy {so.name} to the board")
        return CompileResult(
            backend=self.name, backend_version=self.version,
            files=(GeneratedFile(h, FileRole.HEADER), GeneratedFile(c, FileRole.SOURCE),
                   GeneratedFile(so, FileRole.DATA)),
            include_dirs=incs, estimate=est, arena_bytes=prog.arena_bytes,
            weight_bytes=prog.const_bytes, build_flags=link_flags(lt), diagnostics=tuple(diagnostics),
            details={"codegen": "llvm", "runtime": "tvm", "target": lt.target, "shared_library": str(so),
                     "elf_machine": lt.machine, "library_default": str(so.resolve()) if lt.host
                     else f"./{so.name}", "calls": [c.func for c in prog.calls],
                     "activation_arena_bytes": prog.arena_bytes, "workspace_bytes": workspace})
