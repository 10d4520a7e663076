"""Static memory planner: an offset in one arena for every activation tensor.

Lifetimes come from the op order; two tensors may share bytes only if their
lifetimes do not overlap. Aliases (RESHAPE) share their input's buffer, and
element-wise ops may write in place over an input that dies at that op.
Graph inputs and outputs live in the arena too (inputs from before the first
op, outputs until after the last), so the caller can write its input in place
and the input's bytes are reused once it is dead, as in TFLite Micro.
The placement tries several orders (greedy first fit) and keeps the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...ir import Graph, OpKind

ALIGN = 4


@dataclass
class Buffer:
    tensor: int          # representative tensor index
    size: int
    first: int           # op index that writes it (-1: before the first op)
    last: int            # last op index that reads it
    offset: int = -1


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: dict[int, int]        # tensor index -> arena offset (arena tensors only)
    aliases: dict[int, int]        # tensor index -> tensor whose buffer it uses
    lower_bound: int               # max over steps of live arena bytes
    scratch_bytes: dict[int, int] = field(default_factory=dict)   # scratch key -> bytes granted

    def root(self, t: int) -> int:
        while t in self.aliases:
            t = self.aliases[t]
        return t


INPLACE_OK = {OpKind.RELU, OpKind.RELU6, OpKind.LOGISTIC, OpKind.TANH}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(g: Graph, scratch: dict[int, int] | None = None) -> MemoryPlan:
    """Place every non-constant tensor that is not a graph input/output.

    ``scratch`` maps an op index to bytes of scratch it would like while it
    runs, or a tuple of sizes in order of preference (the first that fits is
    granted). Scratch is placed after the tensors, only into a gap that is free
    at that op, so it never raises the arena: an op whose request does not
    fit gets none (its kernel must then do without). Granted buffers get
    tensor index ``-(op_index + 2)`` in ``offsets`` and their size in
    ``scratch_bytes``.
    """
    aliases: dict[int, int] = {}
    for op in g.ops:
        if op.kind is OpKind.RESHAPE:
            aliases[op.outputs[0]] = op.inputs[0]

    def root(t: int) -> int:
        while t in aliases:
            t = aliases[t]
        return t

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for op in g.ops:
        for t in op.outputs:
            r = root(t)
            first.setdefault(r, op.index)
            last[r] = max(last.get(r, op.index), op.index)
        for t in op.inputs:
            if t < 0 or g.tensors[t].is_const:
                continue
            r = root(t)
            last[r] = max(last.get(r, op.index), op.index)
    for t in g.inputs:
        first[root(t)] = -1
    end = len(g.ops)
    for t in g.outputs:
        last[root(t)] = end

    bufs: dict[int, Buffer] = {}
    for r, f in first.items():
        bufs[r] = Buffer(r, _align(g.tensors[r].nbytes), f, last.get(r, f))

    # In place: element-wise op whose input dies here and has the same size.
    for op in g.ops:
        if op.kind in INPLACE_OK:
            src, dst = root(op.inputs[0]), op.outputs[0]
            if (src in bufs and dst in bufs and bufs[src].last == op.index
                    and bufs[src].size == bufs[dst].size):
                aliases[dst] = src
                bufs[src].last = bufs[dst].last
                del bufs[dst]

    lower = 0
    for step in range(-1, len(g.ops) + 1):
        live = sum(b.size for b in bufs.values() if b.first <= step <= b.last)
        lower = max(lower, live)

    best = None
    orders = [
        sorted(bufs.values(), key=lambda b: (-b.size, b.first)),
        sorted(bufs.values(), key=lambda b: (b.first, -b.size)),
        sorted(bufs.values(), key=lambda b: (-(b.last - b.first), -b.size)),
    ]
    for order in orders:
        offsets = _first_fit(order)
        total = max((offsets[b.tensor] + b.size for b in order), default=0)
        if best is None or total < best[0]:
            best = (total, offsets)
    total, offsets = best
    sizes = {}
    for op_index, wants in sorted((scratch or {}).items()):
        for nbytes in (wants if isinstance(wants, tuple) else (wants,)):
            off = _gap(list(bufs.values()), offsets, op_index, total, _align(nbytes))
            if off is not None:
                key = -(op_index + 2)
                offsets[key] = off
                sizes[key] = _align(nbytes)
                break
    return MemoryPlan(arena_bytes=total, offsets=offsets, aliases=aliases, lower_bound=lower,
                      scratch_bytes=sizes)


def _gap(bufs: list[Buffer], offsets: dict[int, int], step: int, total: int, size: int) -> int | None:
    """Offset of the smallest free gap of at least ``size`` bytes at ``step``, else None.

    Scratch lives only while its op runs, so it goes into bytes that no live
    tensor holds at that step: it never makes the arena bigger.
    """
    live = sorted((offsets[b.tensor], offsets[b.tensor] + b.size) for b in bufs if b.first <= step <= b.last)
    best, cur = None, 0
    for o, e in live + [(total, total)]:
        if o - cur >= size and (best is None or o - cur < best[1]):
            best = (cur, o - cur)
        cur = max(cur, e)
    return best[0] if best else None


def _first_fit(order: list[Buffer]) -> dict[int, int]:
    placed: list[tuple[int, int, Buffer]] = []   # (offset, end, buffer)
    offsets: dict[int, int] = {}
    for b in order:
        conflicts = sorted((o, e) for o, e, p in placed if not (p.last < b.first or b.last < p.first))
        off = 0
        for o, e in conflicts:
            if off + b.size <= o:
                break
            off = max(off, e)
        offsets[b.tensor] = off
        placed.append((off, off + b.size, b))
    return offsets
