"""Model -> Relax -> per-operator TIR kernels, plus what the glue needs.

:func:`lower` imports a .tflite/.onnx file with TVM's Relax frontends,
legalizes and fuses it into TIR PrimFuncs and reads the call order of the
Relax ``main`` into a :class:`Program`: one :class:`Call` per kernel, the
buffers they read and write, the constants, and a static arena plan.
:func:`build_kernels` turns the PrimFuncs into C source or an LLVM object
for a target and measures the workspace each kernel asks for.

Nothing here runs on the device; the TVM runtime is never needed there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import CompileError

ALIGN = 16                    # arena slot and workspace alignment (bytes)
FRONTENDS = ("tflite", "onnx")


class Unsupported(Exception):
    """The model cannot go through TVM here; the message says why."""


@dataclass(frozen=True)
class Buf:
    """One tensor the kernels touch.

    ``kind``: ``"input"`` / ``"output"`` (model I/O, living in the arena),
    ``"temp"`` (an intermediate in the arena) or ``"const"`` (weights).
    """

    index: int
    shape: tuple[int, ...]
    dtype: str                  # numpy dtype name: float32, int8, int32, ...
    kind: str
    data: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Call:
    func: str                   # PrimFunc name (before prefixing)
    args: tuple[int, ...]       # Buf indices: inputs then outputs, the PrimFunc's parameter order


@dataclass
class Program:
    tir: object                 # tvm.IRModule of PrimFuncs with global symbols
    bufs: list[Buf]
    calls: list[Call]
    inputs: list[int]
    outputs: list[int]
    offsets: dict[int, int] = field(default_factory=dict)   # arena offset of each input/output/temp
    arena_bytes: int = 0

    @property
    def const_bytes(self) -> int:
        return sum(b.nbytes for b in self.bufs if b.kind == "const")


def tvm_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("apache-tvm")
    except Exception:
        return None


def check_format(fmt: str) -> None:
    """Raises :class:`Unsupported` unless a Relax frontend used here reads ``fmt`` models."""
    if fmt not in FRONTENDS:
        raise Unsupported(f"TVM's Relax frontends used here take {' or '.join(FRONTENDS)}; "
                          f"this is a '{fmt}' model")


def import_model(path: Path, fmt: str):
    """The Relax IRModule of a .tflite or .onnx file."""
    check_format(fmt)
    try:
        if fmt == "tflite":
            import tflite
            from tvm.relax.frontend.tflite import from_tflite
            buf = Path(path).read_bytes()
            return _rename_inputs(from_tflite(tflite.Model.GetRootAsModel(buf, 0)))
        import onnx
        from tvm.relax.frontend.onnx import from_onnx
        return _rename_inputs(from_onnx(onnx.load(str(path)), keep_params_in_input=False))
    except Unsupported:
        raise
    except Exception as e:  # the frontends raise many kinds (OpNotImplemented, TVMError, ...)
        msg = str(e).strip().splitlines()
        raise Unsupported(f"TVM's {fmt} frontend cannot import the model: "
                          f"{type(e).__name__}: {msg[-1] if msg else ''}"[:300]) from None


def _rename_inputs(mod):
    """``mod`` with main's parameters named ``in0``, ``in1``, ...

    The frontends name them after the model's input tensors, and TVM's C codegen
    prints those names as identifiers of the kernels' parameters, unescaped: a
    model-chosen name would be pasted into the generated C (see compilers/ctext.py).
    The intermediate values get TVM's own names (lv, gv)."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    main = mod["main"]
    new = {p: relax.Var(f"in{k}", p.ty) for k, p in enumerate(main.params)}

    @mutator
    class _Rename(PyExprMutator):
        def visit_var_(self, op):
            return new.get(op, op)

    body = _Rename().visit_expr(main.body)
    mod["main"] = relax.Function(list(new.values()), body, main.ret_ty, main.is_pure, main.attrs)
    return mod


def _relax_passes():
    from tvm import relax, transform
    return transform.Sequential([
        relax.transform.FoldConstant(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])


def lower(path: Path, fmt: str) -> Program:
    """Import, legalize and fuse; read the kernel call order and plan the arena."""
    import tvm
    from tvm import relax

    mod = import_model(path, fmt)
    try:
        mod = _relax_passes()(mod)
    except Exception as e:
        raise Unsupported(f"TVM could not legalize the model: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]) from None
    main = mod["main"]
    prims = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    others = [gv.name_hint for gv, f in mod.functions.items()
              if not isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint != "main"]
    if others:
        raise Unsupported(f"the model lowers to Relax functions other than main ({', '.join(others)})")

    bufs: list[Buf] = []
    env: dict[object, object] = {}          # relax Var -> buf index or tuple of them

    def new_buf(sinfo, kind, data=None) -> int:
        if not isinstance(sinfo, relax.TensorType):
            raise Unsupported(f"a value of type {sinfo} is not a tensor")
        shape = sinfo.shape
        if shape is None or not hasattr(shape, "values") or any(not isinstance(d, tvm.tirx.IntImm) for d in shape.values):
            raise Unsupported("dynamic tensor shapes are not supported (every shape must be static)")
        bufs.append(Buf(len(bufs), tuple(int(d) for d in shape.values), str(sinfo.dtype), kind, data))
        return len(bufs) - 1

    def value(expr):
        if isinstance(expr, relax.Var):
            if expr not in env:
                raise Unsupported(f"unbound Relax variable {expr.name_hint}")
            return env[expr]
        if isinstance(expr, tvm.ir.expr.Constant):
            data = expr.value.numpy()
            return new_buf(expr.ty, "const", np.ascontiguousarray(data))
        if isinstance(expr, relax.Tuple):
            return tuple(value(f) for f in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            return value(expr.tuple_value)[expr.index]
        raise Unsupported(f"unexpected Relax expression {type(expr).__name__} in main")

    inputs = [new_buf(p.ty, "input") for p in main.params]
    for p, i in zip(main.params, inputs):
        env[p] = i
    calls: list[Call] = []
    call_tir = tvm.ir.Op.get("relax.call_tir")
    body = main.body
    for block in body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call) and v.op.same_as(call_tir):
                fname = v.args[0].name_hint
                if fname not in prims:
                    raise Unsupported(f"call_tir of unknown function {fname}")
                ins = value(v.args[1])
                ins = ins if isinstance(ins, tuple) else (ins,)
                if len(v.args) > 2:
                    raise Unsupported(f"kernel {fname} takes symbolic shape arguments")
                sinfo = v.ty
                if isinstance(sinfo, relax.TupleType):
                    outs = tuple(new_buf(s, "temp") for s in sinfo.fields)
                    env[b.var] = outs
                else:
                    outs = (new_buf(sinfo, "temp"),)
                    env[b.var] = outs[0]
                calls.append(Call(fname, tuple(ins) + outs))
            elif isinstance(v, relax.Call):
                raise Unsupported(f"operator {v.op} stayed in Relax after legalization "
                                  "(TVM has no TIR lowering for it)")
            else:
                env[b.var] = value(v)
    result = value(body.body)
    outs = list(result) if isinstance(result, tuple) else [result]
    if any(isinstance(o, tuple) for o in outs):
        raise Unsupported("nested tuple outputs are not supported")
    outputs = []
    for o in outs:
        if bufs[o].kind != "temp" or o in outputs:
            # An output that is an input, a constant or repeated: give it its own slot.
            src = bufs[o]
            nb = new_buf_like(bufs, src)
            calls.append(Call("__copy__", (o, nb)))
            o = nb
        outputs.append(o)
    for o in outputs:
        bufs[o] = Buf(o, bufs[o].shape, bufs[o].dtype, "output")
    tir = tvm.IRModule({tvm.ir.GlobalVar(n): f.with_attr("global_symbol", n) for n, f in prims.items()})
    prog = Program(tir=tir, bufs=bufs, calls=calls, inputs=inputs, outputs=outputs)
    plan_arena(prog)
    return prog


def new_buf_like(bufs: list[Buf], src: Buf) -> int:
    bufs.append(Buf(len(bufs), src.shape, src.dtype, "temp"))
    return len(bufs) - 1


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_arena(prog: Program) -> None:
    """Give every non-constant buffer an arena offset (greedy by size, first fit).

    A buffer lives from the call that writes it (inputs: before the first
    call) to its last reader (outputs: to the end). Two buffers whose
    lifetimes overlap never share bytes, so a kernel's output never aliases
    its inputs.
    """
    n = len(prog.calls)
    first: dict[int, int] = {i: -1 for i in prog.inputs}
    last: dict[int, int] = {i: -1 for i in prog.inputs}
    for k, c in enumerate(prog.calls):
        for a in c.args:
            if prog.bufs[a].kind == "const":
                continue
            first.setdefault(a, k)
            last[a] = max(last.get(a, k), k)
    for o in prog.outputs:
        first.setdefault(o, -1)
        last[o] = n
    order = sorted(first, key=lambda i: (-prog.bufs[i].nbytes, i))
    placed: list[tuple[int, int, int, int]] = []     # (offset, size, first, last)
    offsets: dict[int, int] = {}
    for i in order:
        size = _align(max(prog.bufs[i].nbytes, 1))
        busy = sorted((o, s) for o, s, f, l in placed if not (l < first[i] or last[i] < f))
        off = 0
        for o, s in busy:
            if off + size <= o:
                break
            off = max(off, o + s)
        offsets[i] = off
        placed.append((off, size, first[i], last[i]))
    prog.offsets = offsets
    prog.arena_bytes = max((o + s for o, s, _, _ in placed), default=0)


# ---- kernels -----------------------------------------------------------------------

@dataclass
class Kernels:
    kind: str                        # "c" (C source text) or "llvm" (object bytes)
    c_source: str = ""
    object_bytes: bytes = b""
    workspace_bytes: int = 0         # the most any one kernel holds at once
    symbols: dict[str, str] = field(default_factory=dict)   # PrimFunc name -> C symbol


def llvm_target(device) -> dict | None:
    """The LLVM target dict for a DeviceProfile, or None when there is none here."""
    arch, core = device.arch, device.core
    if arch == "arm" and core.startswith("cortex-m"):
        triple = {"cortex-m0": "thumbv6m", "cortex-m0plus": "thumbv6m", "cortex-m1": "thumbv6m",
                  "cortex-m3": "thumbv7m", "cortex-m4": "thumbv7em", "cortex-m7": "thumbv7em",
                  "cortex-m23": "thumbv8m.base", "cortex-m33": "thumbv8m.main",
                  "cortex-m35p": "thumbv8m.main", "cortex-m55": "thumbv8.1m.main",
                  "cortex-m85": "thumbv8.1m.main"}.get(core)
        if triple is None:
            return None
        abi = "eabihf" if device.fpu else "eabi"
        t = {"kind": "llvm", "mtriple": f"{triple}-none-{abi}", "mcpu": core,
             "mfloat-abi": "hard" if device.fpu else "soft"}
        if not device.fpu and core in ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55",
                                       "cortex-m85"):
            t["mattr"] = ["-fpregs"]
        return t
    if arch == "riscv" and device.word_bits == 32:
        return {"kind": "llvm", "mtriple": "riscv32-unknown-elf",
                "mattr": ["+m", "+a", "+c"] + (["+f"] if device.fpu else [])}
    if arch == "x86_64":
        return {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}
    if arch == "arm-a":
        return {"kind": "llvm", "mtriple": "armv7a-linux-gnueabihf"}
    return None


def lower_tir(prog: Program, target: dict, prefix: str):
    """Run TVM's TIR pipeline for ``target`` (no code generation).

    Returns the lowered host module, the workspace bytes the kernels need
    and the Target.
    """
    import tvm
    tb = importlib.import_module("tvm.tirx.build")
    mod = tvm.IRModule({tvm.ir.GlobalVar(f"{prefix}_{gv.name_hint}"):
                        f.with_attr("global_symbol", f"{prefix}_{gv.name_hint}")
                        for gv, f in prog.tir.functions.items()})
    try:
        tgt = tvm.target.Target(target)
        with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
            tmod = tvm.tirx.transform.BindTarget(tgt.with_host(tgt))(mod)
            pipeline, fin_host, _ = tvm.tirx.get_default_tir_pipeline(tgt)
            tmod = pipeline(tmod)
            host_mod, device_mods = tb.split_host_device_mods(tmod)
            if any(len(m.functions) for m in device_mods.values()):
                raise CompileError("TVM split kernels onto a device other than the CPU")
            host_mod = fin_host()(host_mod)
    except CompileError:
        raise
    except Exception as e:
        raise CompileError(f"TVM failed to lower the kernels for {target}: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:400]) from None
    return host_mod, _workspace_bytes(host_mod), tgt


def build_kernels(prog: Program, target: dict, prefix: str) -> Kernels:
    """Compile every PrimFunc for ``target`` with symbols ``__tvm_ffi_<prefix>_<func>``.

    Asserts are compiled out (``tirx.disable_assert``), so the kernels read
    only ``DLTensor.data`` from their arguments and call nothing but
    ``TVMBackendAllocWorkspace``/``TVMBackendFreeWorkspace`` and libm.
    """
    import tvm
    host_mod, workspace, tgt = lower_tir(prog, target, prefix)
    tb = importlib.import_module("tvm.tirx.build")
    try:
        with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
            rt = tb.tir_to_runtime(host_mod, {}, tgt)
    except Exception as e:
        raise CompileError(f"TVM failed to generate code for {target}: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:400]) from None
    symbols = {gv.name_hint: f"__tvm_ffi_{prefix}_{gv.name_hint}" for gv in prog.tir.functions}
    if target["kind"] == "c":
        return Kernels("c", c_source=rt.inspect_source(), workspace_bytes=workspace, symbols=symbols)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        obj = Path(d) / "k.o"
        rt.write_to_file(str(obj))
        return Kernels("llvm", object_bytes=obj.read_bytes(), workspace_bytes=workspace, symbols=symbols)


def _workspace_bytes(host_mod) -> int:
    """Largest sum of TVMBackendAllocWorkspace sizes within one kernel (each 16-aligned).

    TVM 0.27 has no Python TIR visitor, so the printed TIR is scanned.
    """
    import re
    worst = 0
    for gv, f in host_mod.functions.items():
        text = f.script()
        calls = re.findall(r"TVMBackendAllocWorkspace\(([^\n]*)", text)
        sizes = []
        for args in calls:
            m = re.match(r"\s*[^,]+,\s*[^,]+,\s*(?:T\.u?int(?:32|64))?\(?(\d+)\)?\s*,", args)
            if m is None:
                raise CompileError(f"kernel {gv.name_hint} asks for a workspace of non-constant size: "
                                   f"{args.strip()[:120]}")
            sizes.append(_align(int(m.group(1))))
        worst = max(worst, sum(sizes))
    return worst
