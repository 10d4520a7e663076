"""C source emission: constant arrays, parameter blocks, the invoke body and
the public header. Op lowerings (``lower_s8``, ``lower_f32``) call into an
:class:`Emitter`; :func:`generate` drives them and returns the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ...errors import CompileError, UnsupportedOpError
from ...ir import DType, Graph, Op, OpKind, SUPPORTED_OPS
from ..capi import IoSpec, api_header
from ..ctext import c_comment_text, c_float, c_prefix
from .lower_common import check_quant, check_shapes
from .lower_var import reset_decls, state_bytes, state_source
from .planner import MemoryPlan, plan_memory
from .structs import out_of_range

RUNTIME_PKG = "platformio_tinyml.compilers.cgen.runtime"
COMMON_RUNTIME = ("tml_port.h", "tml_kernels.h", "tml_speed.h")


def c_literal(values: np.ndarray, ctype: str, per_line: int = 16, what: str = "a constant") -> str:
    flat = values.reshape(-1)
    if ctype == "float":
        if np.isnan(flat).any():
            c_float(flat[np.isnan(flat)][0], what=f"an element of {what}")   # raises: one line
        # +-inf only where the validator lets it through (a mask value): <math.h>'s INFINITY
        items = [c_float(v) if np.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY") for v in flat]
    elif ctype == "int32_t":
        items = [f"{int(v)}" if int(v) != -2**31 else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}" if lines else "{0}"


class ParamRangeError(ValueError):
    """A lowering's parameter value does not fit its kernel struct member."""


def batch_slice(tensor, batch: int | None) -> tuple[int, int]:
    """(byte offset, bytes) of image ``batch`` of ``tensor`` (the whole tensor for None)."""
    if batch is None:
        return 0, tensor.nbytes
    n = tensor.nbytes // tensor.shape[0]
    return batch * n, n


@dataclass
class Emitter:
    graph: Graph
    name: str
    plan: MemoryPlan | None = None
    device: object = None          # DeviceProfile or None (host / unknown target)
    consts: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    runtime: set[str] = field(default_factory=set)
    const_bytes: int = 0
    _n: int = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{self.name}_{hint}{self._n}"

    def array(self, ctype: str, values, hint: str = "w") -> str:
        values = np.asarray(values)
        sym = self.fresh(hint)
        self.consts.append(f"static const {ctype} {sym}[{max(values.size, 1)}] TML_CONST TML_ALIGNED(4) = "
                           f"{c_literal(values, ctype)};")
        self.const_bytes += values.size * np.dtype(values.dtype).itemsize
        return sym

    def params(self, ctype: str, fields: dict[str, object], hint: str = "p") -> str:
        bad = out_of_range(runtime_text("tml_kernels.h"), ctype, fields)
        if bad:
            raise ParamRangeError(bad)
        sym = self.fresh(hint)
        init = ",\n    ".join(f".{k} = {self._fmt(v)}" for k, v in fields.items())
        self.consts.append(f"static const {ctype} {sym} TML_CONST = {{\n    {init}\n}};")
        return "&" + sym

    @staticmethod
    def _fmt(v) -> str:
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, (list, tuple)):
            return "{" + ", ".join(Emitter._fmt(x) for x in v) + "}"
        if isinstance(v, (float, np.floating)):
            return c_float(v, what="an operator parameter")
        if isinstance(v, (int, np.integer)):
            v = int(v)
            return "INT32_MIN" if v == -2**31 else str(v)
        return str(v)

    def ptr(self, t: int, const: bool = False, batch: int | None = None) -> str:
        """A C expression pointing at tensor ``t``'s data (at image ``batch`` of
        its first dimension when given: see :func:`lower_common.per_batch`)."""
        tensor = self.graph.tensors[t]
        ctype = tensor.dtype.c_type
        q = "const " if const else ""
        off, nbytes = batch_slice(tensor, batch)
        if tensor.is_const:
            # An operand, read by kernels with plain loads: not TML_CONST, since on
            # AVR that is PROGMEM, which plain loads cannot reach.
            data = tensor.data.reshape(-1).view(np.uint8)[off:off + nbytes].view(tensor.dtype.numpy)
            sym = self.fresh("k")
            self.consts.append(f"static const {ctype} {sym}[{max(data.size, 1)}] TML_ALIGNED(4) = "
                               f"{c_literal(data, ctype)};")
            self.const_bytes += nbytes
            return f"(const {ctype} *){sym}"
        r = self.plan.root(t)
        off += self.plan.offsets[r]
        return f"({q}{ctype} *)({self.name}_arena + {off})"

    def scratch(self, op: Op, offset: int = 0, nbytes: int | None = None, ctype: str | None = None) -> str:
        """The op's arena scratch (+ ``offset`` bytes; ``nbytes`` long), cast to ``ctype *`` if given."""
        off = self.plan.offsets[-(op.index + 2)] + offset
        return f"({ctype} *)({self.name}_arena + {off})" if ctype else f"({self.name}_arena + {off})"

    def call(self, op: Op, text: str, *runtime_files: str) -> None:
        name = f" {c_comment_text(op.name, limit=60)}" if op.name and op.name != op.kind.value else ""
        self.body.append(f"    /* {op.label}{name} */")
        self.body.append(f"    {text};")
        self.runtime.update(runtime_files)


def _lowerings():
    from . import (lower_s8, lower_f32, lower_common, lower_shape, lower_ew, lower_var, lower_mm, lower_rnn, lower_logic,
                   lower_ml, lower_norms, lower_more)
    table = {}
    for mod in (lower_common, lower_s8, lower_f32, lower_shape, lower_ew, lower_var, lower_mm, lower_rnn, lower_logic,
                lower_ml, lower_norms, lower_more):   # lower_more after lower_ew: it dispatches opaque ops
        table.update(mod.LOWERINGS)
    return table


def _supported() -> tuple[str, ...]:
    """What cgen compiles, for a refusal's list: the IR's op kinds, then the source-format ops
    without a kind that it computes (float32 functions of opaque ops)."""
    from .lower_ew import OPAQUE_F32
    return SUPPORTED_OPS + tuple(sorted(OPAQUE_F32, key=lambda n: (not n.isupper(), n)))


def _named(op: Op) -> str:
    """The op's type and, when the model names it, its name (ONNX labels are "type name")."""
    name = op.name[len(op.type_name) + 1:] if op.name.startswith(op.type_name + " ") else op.name
    return f"{op.type_name} '{name}'" if name and name not in (op.type_name, op.kind.value) else op.type_name


def _dtype_of(g: Graph, op: Op) -> DType:
    """The element type that picks an op's lowering: its first input's."""
    t = g.tensors[op.inputs[0]] if op.inputs else g.tensors[op.outputs[0]]
    return t.dtype


@dataclass
class Generated:
    name: str
    files: dict[str, str]            # relative path -> text
    runtime_files: list[str]         # file names from the runtime package
    arena_bytes: int
    weight_bytes: int
    const_bytes: int                 # weights + parameter arrays emitted
    lower_bound: int
    plan: MemoryPlan
    uses_math: bool
    state_bytes: int = 0             # resource variables' static buffer (outside the arena)


def scratch_needs(g: Graph, table=None) -> dict[int, int | tuple[int, ...]]:
    table = table if table is not None else _lowerings()
    out = {}
    for op in g.ops:
        entry = table.get((op.kind, _dtype_of(g, op)))
        if entry is not None and entry.scratch is not None:
            n = entry.scratch(g, op)
            if n:
                out[op.index] = n
    return out


def lower_into(g: Graph, make_emitter) -> tuple[MemoryPlan, Emitter]:
    """Check every op has a lowering that accepts it, plan the arena, then
    lower each op into ``make_emitter(plan)``: the one driver behind the
    generated C (:func:`generate`) and the inference-module recorder."""
    table = _lowerings()
    where = g.where
    for op in g.ops:
        key = (op.kind, _dtype_of(g, op))
        if key not in table:
            raise UnsupportedOpError(where, op.index, _named(op),
                                     (op.attrs.reason or "cgen has no kernel for this operator")
                                     if op.kind is OpKind.OPAQUE
                                     else f"no {key[1].np_name} kernel", _supported())
        err = check_shapes(g, op) or check_quant(g, op) or (table[key].check(g, op) if table[key].check else None)
        if err:
            raise UnsupportedOpError(where, op.index, _named(op), err, _supported())
    plan = plan_memory(g, scratch_needs(g, table))
    em = make_emitter(plan)
    for op in g.ops:
        try:
            table[(op.kind, _dtype_of(g, op))].lower(em, op)
        except ParamRangeError as e:
            raise UnsupportedOpError(where, op.index, _named(op), str(e), _supported()) from None
    return plan, em


def generate(g: Graph, name: str, device=None) -> Generated:
    """Lower every op of ``g`` and return the model's C sources and header.

    ``device`` (a DeviceProfile) lets lowerings pick target-specific layouts;
    the code stays portable C99 whatever it is.
    """
    c_prefix(name, where=str(g.source) if g.source else None)
    plan, em = lower_into(g, lambda plan: Emitter(graph=g, name=name, plan=plan, device=device))
    runtime = sorted(set(COMMON_RUNTIME) | em.runtime)
    uses_math = any("_f32" in f for f in runtime)
    files = {
        f"{name}.h": _header(g, name, plan.arena_bytes),
        f"{name}.c": _source(em, name, plan.arena_bytes),
    }
    return Generated(name=name, files=files, runtime_files=runtime, arena_bytes=plan.arena_bytes,
                     weight_bytes=g.weight_bytes, const_bytes=em.const_bytes,
                     lower_bound=plan.lower_bound, plan=plan, uses_math=uses_math, state_bytes=state_bytes(g))


def runtime_text(fname: str) -> str:
    return resources.files(RUNTIME_PKG).joinpath(fname).read_text()


def _source(em: Emitter, name: str, arena: int) -> str:
    g = em.graph
    lines = [
        f"/* {name}.c - generated by platformio-tinyml (cgen) from {_source_name(g)}.",
        " * Do not edit: regenerated when the model, the board or the options change. */",
        f'#include "{name}.h"',
        '#include "tml_kernels.h"',
        "",
    ]
    lines.append(f"static uint8_t {name}_arena[{max(arena, 1)}] TML_ALIGNED(16);")
    state_defs, state_start = state_source(g, name, c_literal)
    if any("INFINITY" in c for c in em.consts):   # a mask constant's -inf (see c_literal)
        lines.insert(lines.index('#include "tml_kernels.h"') + 1, "#include <math.h>")
    lines += ["", *em.consts, "", *state_defs]
    ins = [(g.tensors[t].nbytes, em.plan.offsets[em.plan.root(t)]) for t in g.inputs]
    outs = [(g.tensors[t].nbytes, em.plan.offsets[em.plan.root(t)]) for t in g.outputs]
    lines += [f"void *{name}_input_ptr(int index)", "{",
              f"    static const uint32_t offsets[{len(ins)}] = {{{', '.join(str(o) for _, o in ins)}}};",
              f"    return (index >= 0 && index < {len(ins)}) ? (void *)({name}_arena + offsets[index]) : (void *)0;",
              "}", "",
              f"void *{name}_output_ptr(int index)", "{",
              f"    static const uint32_t offsets[{len(outs)}] = {{{', '.join(str(o) for _, o in outs)}}};",
              f"    return (index >= 0 && index < {len(outs)}) ? (void *)({name}_arena + offsets[index]) : (void *)0;",
              "}", "",
              f"int {name}_invoke_multi(const void *const inputs[], void *const outputs[])", "{"]
    lines += state_start
    for k, (n, off) in enumerate(ins):
        lines += [f"    if (inputs[{k}] == 0) return -1;",
                  f"    if (inputs[{k}] != {name}_arena + {off}) memcpy({name}_arena + {off}, inputs[{k}], {n});"]
    lines += em.body
    for k, (n, off) in enumerate(outs):
        lines += [f"    if (outputs[{k}] != 0 && outputs[{k}] != {name}_arena + {off})",
                  f"        memcpy(outputs[{k}], {name}_arena + {off}, {n});"]
    lines += ["    return 0;", "}", ""]
    if len(g.inputs) == 1 and len(g.outputs) == 1:
        lines += [f"int {name}_invoke(const void *input, void *output)", "{",
                  "    const void *const in[1] = {input};",
                  "    void *const out[1] = {output};",
                  f"    return {name}_invoke_multi(in, out);", "}", ""]
    return "\n".join(lines)


def _source_name(g: Graph) -> str:
    """The model's file name (or graph name), escaped for a comment."""
    return c_comment_text(g.source.name if g.source else g.name, limit=60)


def _header(g: Graph, name: str, arena: int) -> str:
    single = len(g.inputs) == 1 and len(g.outputs) == 1
    intro = [f"{name}.h - C API of model '{c_comment_text(g.name, limit=60)}' generated by platformio-tinyml (cgen).",
             "", f"Source: {_source_name(g)} ({c_comment_text(g.source_format, limit=20)})",
             f"Inputs: {len(g.inputs)}, outputs: {len(g.outputs)}; arena {arena} bytes (static, no malloc)."]
    if single:
        intro += [f"Zero copy: write the input at {name}_input_ptr(0) and pass that pointer;",
                  f"pass {name}_output_ptr(0) (valid until the next call) to skip the output copy.",
                  "The model has one static arena that holds its I/O tensors."]
    return api_header(name, [IoSpec.of_tensor(g.tensors[t]) for t in g.inputs],
                      [IoSpec.of_tensor(g.tensors[t]) for t in g.outputs], arena, intro,
                      extra_decls=[f"void *{name}_input_ptr(int index);", f"void *{name}_output_ptr(int index);",
                                   *reset_decls(g, name)])


def write_output(gen: Generated, outdir) -> list:
    """Write the model sources, header and the runtime files it needs to ``outdir``."""
    from pathlib import Path
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, text in gen.files.items():
        (outdir / rel).write_text(text)
        written.append(outdir / rel)
    for fname in gen.runtime_files:
        (outdir / fname).write_text(runtime_text(fname))
        written.append(outdir / fname)
    return written
