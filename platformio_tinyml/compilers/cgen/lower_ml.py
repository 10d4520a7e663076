"""Lowering of TREE_ENSEMBLE (float32): the nodes, leaf weights and labels of attrs.TreeEnsemble
as constant tables (flash; a leaf's weight range in its unused child slots, and no target table
when every leaf has one weight per target in order, as skl2onnx writes forests) and one call of
``tml_tree_ensemble`` (runtime/tml_tree_f32.c), which
walks every tree per input row and finalizes the scores (and a classifier's int64 labels) as
onnxruntime does. The kernel needs no arena scratch (its per-target flags are a stack array of
TML_TREE_MAX_TARGETS bytes)."""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from ...ir import attrs as A
from .lowering import Lowering

MAX_TARGETS = 256   # TML_TREE_MAX_TARGETS
_I32 = np.iinfo(np.int32)


def _check(g: Graph, op: Op) -> str | None:
    a = op.attrs
    if g.tensors[op.inputs[0]].dtype is not DType.FLOAT32:
        return "a tree ensemble reads float32 features"
    if a.n_targets > MAX_TARGETS:
        return f"{a.n_targets} targets or classes (cgen takes at most {MAX_TARGETS})"
    if a.labels and (a.n_targets < 2 or any(not _I32.min <= v <= _I32.max for v in a.labels)):
        return "class labels outside int32, or fewer than two classes"
    if a.post_transform not in A.TREE_TRANSFORMS or a.aggregate not in A.TREE_AGGREGATES:
        return f"post transform {a.post_transform} / aggregate {a.aggregate}"
    return None


def _lower(em, op: Op) -> None:
    g = em.graph
    a = op.attrs
    x = g.tensors[op.inputs[0]]

    def i32(v, hint):
        return em.array("int32_t", np.asarray(v, np.int32), hint)

    def f32(v, hint):
        return em.array("float", np.asarray(v, np.float32), hint)

    leaf = A.TREE_MODES.index("LEAF")
    is_leaf = np.asarray(a.mode) == leaf
    true_child = np.where(is_leaf, a.leaf_count, a.true_child)     # a leaf's slots: its weights
    false_child = np.where(is_leaf, a.leaf_first, a.false_child)
    dense = all(a.weight_target[f:f + c] == tuple(range(a.n_targets))
                for f, c in zip(np.asarray(a.leaf_first)[is_leaf], np.asarray(a.leaf_count)[is_leaf]))
    p = em.params("tml_tree_t", dict(
        rows=x.shape[0], features=x.shape[1], n_targets=a.n_targets, n_trees=len(a.roots),
        n_base=len(a.base_values), aggregate=A.TREE_AGGREGATES.index(a.aggregate),
        post=A.TREE_TRANSFORMS.index(a.post_transform), classifier=bool(a.labels), binary=a.binary,
        all_positive=a.all_positive, dense=dense, roots=i32(a.roots, "troot"), feature=i32(a.feature, "tfeat"),
        true_child=i32(true_child, "ttrue"), false_child=i32(false_child, "tfalse"),
        weight_target="0" if dense else i32(a.weight_target, "twt"),
        mode=em.array("uint8_t", np.asarray(a.mode, np.uint8), "tmode"),
        threshold=f32(a.threshold, "tthr"), weight_value=f32(a.weight_value, "twv"),
        base=f32(a.base_values, "tbase") if a.base_values else "0",
        labels=i32(a.labels, "tlab") if a.labels else "0"))
    labels = em.ptr(op.outputs[1]) if a.labels else "0"
    em.call(op, f"tml_tree_ensemble({p}, {em.ptr(op.inputs[0], const=True)}, {em.ptr(op.outputs[0])}, {labels})",
            "tml_tree_f32.c")


LOWERINGS = {(OpKind.TREE_ENSEMBLE, dt): Lowering(_lower, _check) for dt in (DType.FLOAT32, DType.INT8)}
