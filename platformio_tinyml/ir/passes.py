"""Graph passes that run on every imported graph before any backend sees it.

Each pass is a small function ``pass(graph) -> bool`` (True if it changed
the graph) whose docstring states its rule; :func:`run_passes` applies them
in order and checks the IR invariants (:meth:`Graph.validate`) after each
one that changed something, so a faulty pass is caught where it ran.

Why these: ``TFLiteConverter.from_keras_model`` on an ordinary Keras model
(the batch dimension left open) writes ``Flatten`` as
``SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE`` and ``Conv1D`` as
``EXPAND_DIMS -> CONV_2D -> RESHAPE``. The file still carries every
tensor's static shape with the open batch dimension set to 1, which is
what the generated code runs: so the shape arithmetic is dead once
``RESHAPE`` takes its output shape from the file, and ``EXPAND_DIMS`` /
``SQUEEZE`` are reshapes to that shape.
"""

from __future__ import annotations

from typing import Callable

from .graph import SIDE_EFFECT_OPS, Graph, OpKind


def reshape_like_ops(g: Graph) -> bool:
    """EXPAND_DIMS and SQUEEZE become RESHAPE to their output's static shape
    (same element count, same quantization: only the shape changes)."""
    changed = False
    for op in g.ops:
        if op.kind in (OpKind.EXPAND_DIMS, OpKind.SQUEEZE):
            x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
            if x.size == y.size and x.dtype is y.dtype and x.quant == y.quant:
                op.kind, op.inputs, op.attrs = OpKind.RESHAPE, op.inputs[:1], None
                changed = True
    return changed


def remove_dead_ops(g: Graph) -> bool:
    """Drop ops none of whose outputs is read by another op or is a graph
    output (e.g. the SHAPE/STRIDED_SLICE/PACK that computed a RESHAPE's
    shape operand, which the importer drops), until none is left."""
    changed = False
    while True:
        read = set(g.outputs) | {i for op in g.ops for i in op.inputs}
        keep = [op for op in g.ops if op.kind in SIDE_EFFECT_OPS or any(o in read for o in op.outputs)]
        if len(keep) == len(g.ops):
            break
        g.ops = keep
        changed = True
    if changed:
        g.renumber()
    return changed


PASSES: tuple[Callable[[Graph], bool], ...] = (reshape_like_ops, remove_dead_ops)


def run_passes(g: Graph) -> Graph:
    """Apply :data:`PASSES` in order, validating the graph after each change."""
    for p in PASSES:
        if p(g):
            try:
                g.validate()
            except AssertionError as e:
                raise AssertionError(f"after pass {p.__name__}: {e}") from None
    return g
