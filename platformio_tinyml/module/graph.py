"""Lower an IR graph into a graph payload: the cgen lowerings, recorded.

Role: the executor in the firmware must call the very kernels, with the very
parameters, that cgen's generated C would call. So instead of re-deriving
them, :class:`RecordingEmitter` runs cgen's own op lowerings with an emitter
whose ``array``/``params``/``ptr`` return opaque tokens instead of C text;
``call`` then parses the kernel name and the tokens back out of the call
text and keeps (kernel, parameter fields, operands) as an op record. The
parameter struct is laid out for the target ABI by :mod:`.kernels`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..compilers.cgen.emit import Emitter, batch_slice, lower_into
from ..errors import CompileError
from ..ir import Graph, Op
from .format import BLOB_REF, GraphPayload, ModuleError, OpRecord
from .kernels import Abi, IoClass, encode_scalar, kernel_by_name, struct_layouts

_NP = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "int32_t": np.int32, "float": np.float32}
_TOKEN = re.compile(r"@([BRP])(\d+):(\d+)@")


@dataclass
class _Pending:
    op: Op
    kernel: str
    param: int | None
    operands: list[tuple[int, int]]


@dataclass
class RecordingEmitter(Emitter):
    """An :class:`Emitter` that records kernel calls instead of writing C."""
    blob: bytearray = field(default_factory=bytearray)
    _seen: dict = field(default_factory=dict)        # array bytes -> blob offset (identical arrays shared)
    param_blocks: list[tuple[str, dict]] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    _op: Op | None = None

    def _add_blob(self, values: np.ndarray) -> str:
        raw = np.ascontiguousarray(values).tobytes()
        off = self._seen.get(raw)
        if off is None:
            off = self._seen[raw] = len(self.blob)
            self.blob += raw + b"\0" * (-len(raw) % 4)
            self.const_bytes += len(raw)
        return f"@B{off}:{len(raw)}@"

    def array(self, ctype: str, values, hint: str = "w") -> str:
        return self._add_blob(np.asarray(values).astype(_NP[ctype]))

    def params(self, ctype: str, fields: dict[str, object], hint: str = "p") -> str:
        self.param_blocks.append((ctype, dict(fields)))
        return f"&@P{len(self.param_blocks) - 1}:0@"

    def ptr(self, t: int, const: bool = False, batch: int | None = None) -> str:
        tensor = self.graph.tensors[t]
        off, nbytes = batch_slice(tensor, batch)
        if tensor.is_const:
            raw = np.ascontiguousarray(tensor.data, tensor.dtype.numpy).reshape(-1).view(np.uint8)
            return self._add_blob(raw[off:off + nbytes].view(tensor.dtype.numpy))
        return f"@R{self.plan.offsets[self.plan.root(t)] + off}:{nbytes}@"

    def scratch(self, op: Op, offset: int = 0, nbytes: int | None = None, ctype: str | None = None) -> str:
        """A relocation token for the op's scratch (+ ``offset``; ``nbytes`` long); no casts in tokens."""
        off = self.plan.offsets[-(op.index + 2)]
        size = getattr(self.plan, "scratch_bytes", {}).get(-(op.index + 2), self.plan.arena_bytes - off)
        return f"@R{off + offset}:{size - offset if nbytes is None else nbytes}@"

    def call(self, op: Op, text: str, *runtime_files: str) -> None:
        fn = text[:text.index("(")].strip()
        tokens = [(kind, int(a), int(b)) for kind, a, b in _TOKEN.findall(text)]
        params = [a for kind, a, _ in tokens if kind == "P"]
        operands = [(a if kind == "R" else BLOB_REF | a, b) for kind, a, b in tokens if kind != "P"]
        if fn == "memcpy":
            n = int(text.rstrip(") ;").rsplit(",", 1)[1])
            self.param_blocks.append(("tml_copy_t", {"n": n}))
            # memcpy(dst, src, n): the executor's tml_copy takes (in, out)
            self.pending.append(_Pending(op, "tml_copy", len(self.param_blocks) - 1, operands[::-1]))
        else:
            self.pending.append(_Pending(op, fn, params[0] if params else None, operands))
        self.runtime.update(runtime_files)


def _pack_params(ctype: str, fields: dict, abi: Abi, where: str) -> tuple[bytes, list[tuple[int, int, int]]]:
    """Parameter struct bytes for ``abi`` (pointer fields zero) and its relocations."""
    lay = struct_layouts(abi).get(ctype)
    if lay is None:
        raise CompileError(f"parameter struct {ctype} is not declared in tml_kernels.h", where=where)
    unknown = set(fields) - {f.name for f in lay.fields}
    if unknown:
        raise CompileError(f"{ctype} has no member(s) {sorted(unknown)} (tml_kernels.h and the lowering disagree)",
                           where=where)
    buf, relocs = bytearray(lay.size), []
    for f in lay.fields:
        v = fields.get(f.name, 0)
        if f.is_pointer:
            m = _TOKEN.fullmatch(str(v).strip())
            if m:
                relocs.append((f.offset, BLOB_REF | int(m.group(2)) if m.group(1) == "B" else int(m.group(2)),
                               int(m.group(3))))
            elif str(v).strip() not in ("0", "NULL"):
                raise CompileError(f"{ctype}.{f.name} = {v!r} is not a module-relative pointer", where=where)
            continue
        values = v if isinstance(v, (list, tuple)) else [v]
        if len(values) > f.count:
            raise CompileError(f"{ctype}.{f.name}: {len(values)} values for {f.count} elements", where=where)
        for j, x in enumerate(values):
            try:
                buf[f.offset + j * f.size: f.offset + (j + 1) * f.size] = encode_scalar(f.ctype, x)
            except ValueError as e:
                raise CompileError(f"{ctype}.{f.name}: {e}", where=where) from None
    return bytes(buf), relocs


def lower_graph(g: Graph, abi: Abi, name: str = "m", device=None):
    """(GraphPayload, MemoryPlan, kernel mask) for ``g`` on a firmware of ``abi``."""
    where = g.where
    if g.variables:
        raise ModuleError("state", "the model keeps state between invocations (resource variables); an "
                                   "inference module carries none", where=where,
                          hint="Compile the model to C with the cgen backend instead")
    plan, em = lower_into(g, lambda plan: RecordingEmitter(graph=g, name=name, plan=plan, device=device))
    ops, mask = [], 0
    for p in em.pending:
        k = kernel_by_name(p.kernel)
        if k is None:
            raise ModuleError("kernel", f"op #{p.op.index} {p.op.type_name} calls {p.kernel}, which the module "
                                        "executor has no id for", where=where,
                              hint="Add it to platformio_tinyml/module/kernels.py and runtime/tml_exec.c")
        ctype, fields = em.param_blocks[p.param] if p.param is not None else ("", {})
        if ctype != k.param_type:
            raise CompileError(f"{p.kernel} takes {k.param_type}, the lowering gave {ctype}", where=where)
        params, relocs = _pack_params(ctype, fields, abi, f"{where} op #{p.op.index}")
        want = {IoClass.UNARY: 2, IoClass.BINARY: 3, IoClass.COPY: 2}.get(k.io)
        if (want is not None and len(p.operands) != want) or len(p.operands) < 2:
            raise CompileError(f"{p.kernel}: {len(p.operands)} tensor operands", where=where)
        ops.append(OpRecord(k.id, tuple(p.operands), tuple(relocs), params))
        mask |= 1 << k.id
    return GraphPayload(tuple(ops), bytes(em.blob)), plan, mask
