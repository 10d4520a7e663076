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

import numpy as np

from .graph import SIDE_EFFECT_OPS, Graph, OpKind
from .shape_ops import MOVES, evaluate, evaluate_opaque


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


def fold_constants(g: Graph) -> bool:
    """An op whose inputs are all constants (SHAPE: whose input has a static
    shape) becomes constant data in its outputs, in op order, so chains fold
    whole: the ``SHAPE -> STRIDED_SLICE -> PACK`` / ``GATHER`` / ``CONCATENATION``
    / arithmetic of shape computations, and ONNX ``Shape``/``Gather``/``Slice``
    chains the reader left, and the TFLite builtins without an IR kind that make
    constants (ZEROS_LIKE, FILL, BROADCAST_ARGS: shape_ops.evaluate_opaque). Only
    exact cases: quantized values fold only through pure data movement with one
    quantization; graph outputs stay computed."""
    changed = False
    keep = []
    for op in g.ops:
        outs = [g.tensors[i] for i in op.outputs]
        ins = [g.tensors[i] for i in op.inputs if i >= 0]
        vals = None
        if not any(i in g.outputs for i in op.outputs) and _foldable(op, ins, outs):
            if op.kind is OpKind.SHAPE:
                vals = [np.array(ins[0].shape, np.int64)]
            elif op.kind is OpKind.OPAQUE:
                vals = evaluate_opaque(op.attrs, ins, outs) if g.source_format == "tflite" else None
            elif ins and all(t.is_const for t in ins):
                try:
                    vals = evaluate(op.kind, op.attrs, [t.data for t in ins])
                except (ValueError, IndexError, TypeError, ZeroDivisionError, FloatingPointError):
                    vals = None
        if vals is None or len(vals) != len(outs) or any(np.size(v) != t.size for v, t in zip(vals, outs)):
            keep.append(op)
            continue
        for v, t in zip(vals, outs):
            t.data = np.asarray(v).astype(t.dtype.numpy).reshape(t.shape)
        changed = True
    if changed:
        g.ops = keep
        g.renumber()
    return changed


def _foldable(op, ins, outs) -> bool:
    quants = {t.quant for t in ins + outs}
    if quants == {None}:
        return True
    return op.kind in MOVES and len(quants) == 1 and len({t.dtype for t in ins + outs}) == 1


PASSES: tuple[Callable[[Graph], bool], ...] = (fold_constants, reshape_like_ops, remove_dead_ops)


def run_passes(g: Graph) -> Graph:
    """Apply :data:`PASSES` in order, validating the graph after each change."""
    for p in PASSES:
        if p(g):
            try:
                g.validate()
            except AssertionError as e:
                raise AssertionError(f"after pass {p.__name__}: {e}") from None
    return g
