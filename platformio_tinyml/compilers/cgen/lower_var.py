"""Resource variables (streaming models): state kept between invocations.

Every variable the graph reads or assigns gets a slice of one static buffer,
``NAME_state`` (outside the arena: it must survive between calls, so the
planner never reuses it). Its initial values (what the model's CALL_ONCE init
subgraph assigns; zeros where it assigns none, as TFLite Micro's zero-filled
buffers) are a constant array copied in by ``NAME_reset()``, which the first
invoke calls and the application may call to start a new stream, giving the
state of a newly created TFLite Micro interpreter. READ_VARIABLE copies the
state into its arena tensor; ASSIGN_VARIABLE copies its input into the state,
at the op's place in the order, as TFLite Micro does.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from ...ir.graph import reset_each_invoke
from .lowering import Lowering

ALIGN = 4


def state_layout(g: Graph) -> tuple[dict[int, int], int]:
    """(variable index -> byte offset in the state buffer, total bytes) of the
    variables the graph's ops use."""
    used = sorted({op.attrs.var for op in g.ops if op.kind in (OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE)})
    offsets, total = {}, 0
    for v in used:
        offsets[v] = total
        total += (g.variables[v].nbytes + ALIGN - 1) // ALIGN * ALIGN
    return offsets, total


def state_bytes(g: Graph) -> int:
    return state_layout(g)[1]


def _check(g: Graph, op: Op) -> str | None:
    var = g.variables[op.attrs.var]
    t = g.tensors[op.outputs[0] if op.kind is OpKind.READ_VARIABLE else op.inputs[0]]
    if (tuple(t.shape), t.dtype, t.quant) != (tuple(var.shape), var.dtype, var.quant):
        return f"tensor '{t.name}' does not match variable '{var.name}' in shape, type or quantization"
    return None


def _state_ptr(em, op) -> str:
    off = state_layout(em.graph)[0][op.attrs.var]
    return f"({em.name}_state + {off})"


def _read(em, op):
    n = em.graph.variables[op.attrs.var].nbytes
    em.call(op, f"memcpy({em.ptr(op.outputs[0])}, {_state_ptr(em, op)}, {n})")


def _assign(em, op):
    n = em.graph.variables[op.attrs.var].nbytes
    em.call(op, f"memcpy({_state_ptr(em, op)}, {em.ptr(op.inputs[0], const=True)}, {n})")


def state_source(g: Graph, name: str, literal) -> tuple[list[str], list[str]]:
    """(definitions: the state buffer, its initial values and ``NAME_reset``; the first lines
    of the invoke body) for a graph with variables; two empty lists for one without.
    ``literal(values, ctype)`` writes a C initializer (emit.c_literal)."""
    offsets, total = state_layout(g)
    if not total:
        return [], []
    init = np.zeros(total, np.uint8)
    for v, off in offsets.items():
        var = g.variables[v]
        data = np.ascontiguousarray(var.init, var.dtype.numpy).reshape(-1).view(np.uint8)
        init[off:off + data.size] = data
    defs = [f"static uint8_t {name}_state[{total}] TML_ALIGNED(16);   /* resource variables: kept between calls */",
            f"static uint8_t {name}_state_ready;"]
    if init.any():
        defs += [f"static const uint8_t {name}_state_init[{total}] TML_CONST TML_ALIGNED(4) = "
                 f"{literal(init, 'uint8_t')};", "",
                 f"void {name}_reset(void)", "{", "    uint32_t i;",
                 f"    for (i = 0; i < {total}u; ++i) {name}_state[i] = TML_RDU8(&{name}_state_init[i]);"]
    else:
        defs += ["", f"void {name}_reset(void)", "{", f"    memset({name}_state, 0, {total});"]
    defs += [f"    {name}_state_ready = 1;", "}", ""]
    if reset_each_invoke(g):    # a stateless source model: every call starts from the initial state
        return defs, [f"    {name}_reset();"]
    return defs, [f"    if (!{name}_state_ready) {name}_reset();"]


def reset_decls(g: Graph, name: str) -> list[str]:
    """The header's declaration of ``NAME_reset`` (for a graph with state)."""
    if not state_bytes(g):
        return []
    if reset_each_invoke(g):
        return [f"/* Sets the LSTM state ({state_bytes(g)} B) to its initial values; every invoke calls it first, as",
                " * the source model starts every call from zero state. */", f"void {name}_reset(void);"]
    return [f"/* Sets the model's state (its resource variables, {state_bytes(g)} B) to the initial values:",
            " * call it to start a new stream; the first invoke calls it itself. */",
            f"void {name}_reset(void);"]


LOWERINGS = {}
for _dt in DType:
    LOWERINGS[(OpKind.READ_VARIABLE, _dt)] = Lowering(_read, _check)
    LOWERINGS[(OpKind.ASSIGN_VARIABLE, _dt)] = Lowering(_assign, _check)
