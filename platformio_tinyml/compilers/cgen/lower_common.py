"""Lowerings that do not depend on the element type."""

from __future__ import annotations

from ...ir import DType, OpKind
from .lowering import Lowering


def _reshape(em, op):
    src, dst = op.inputs[0], op.outputs[0]
    if em.plan.root(dst) == em.plan.root(src):
        em.body.append(f"    /* {op.label}: aliases its input, no code */")
        return
    t = em.graph.tensors[dst]
    em.call(op, f"memcpy({em.ptr(dst)}, {em.ptr(src, const=True)}, {t.nbytes})")


LOWERINGS = {(OpKind.RESHAPE, dt): Lowering(_reshape) for dt in DType}
