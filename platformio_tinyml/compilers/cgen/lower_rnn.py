"""Lowering of UNIDIRECTIONAL_SEQUENCE_LSTM (float32): TFLite Micro's float kernel in C.

The importers give the op its gates' weights as twelve constants (input, forget,
cell, output: W [U, F], R [U, U], bias [U]), stacked here into three arrays, and
the state at the start and the end as tensors (TFLite's variable state becomes
READ_VARIABLE / ASSIGN_VARIABLE around the op: see model/tflite/lstm.py). The
kernel needs no scratch (a step's new h goes to its row of the output first), so
the arena is the live tensors'. Quantized LSTMs (int8 full-integer and hybrid)
are refused in one line.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lowering import Lowering

F32 = DType.FLOAT32
INT8_REFUSAL = "int8 LSTM is not supported by cgen; use float or --backend tflm"


def _check(g: Graph, op: Op) -> str | None:
    if any(g.tensors[i].dtype is not F32 for i in op.inputs + op.outputs if i >= 0):
        return INT8_REFUSAL
    if not all(g.tensors[i].is_const for i in op.inputs[1:13]):
        return "the weights and biases must be constants"
    return None


def _stacked(g: Graph, op: Op, first: int) -> np.ndarray:
    return np.concatenate([g.tensors[i].data.astype(np.float32).reshape(-1) for i in op.inputs[first:first + 4]])


def _lstm(em, op):
    g = em.graph
    x = g.tensors[op.inputs[0]]
    tm = op.attrs.time_major
    steps, batches = (x.shape[0], x.shape[1]) if tm else (x.shape[1], x.shape[0])
    p = em.params("tml_lstm_f32_t", dict(
        batches=batches, steps=steps, features=x.shape[2], units=g.tensors[op.inputs[5]].shape[0],
        time_major=int(tm), reverse=int(op.attrs.reverse), cell_clip=float(op.attrs.cell_clip),
        w=em.array("float", _stacked(g, op, 1), "w"), r=em.array("float", _stacked(g, op, 5), "r"),
        bias=em.array("float", _stacked(g, op, 9), "b")))
    y, h, c = (em.ptr(t) for t in op.outputs)
    em.call(op, f"tml_lstm_f32({p}, {em.ptr(op.inputs[0], const=True)}, {em.ptr(op.inputs[13], const=True)}, "
                f"{em.ptr(op.inputs[14], const=True)}, {y}, {h}, {c})",
            "tml_lstm.c", "tml_elementwise_f32.c")


LOWERINGS = {(OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM, dt): Lowering(_lstm, _check)
             for dt in (F32, DType.INT8, DType.INT16, DType.UINT8)}
