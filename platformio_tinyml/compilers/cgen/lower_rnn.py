"""Lowering of UNIDIRECTIONAL_SEQUENCE_LSTM: TFLite Micro's float and int8 kernels in C.

The importers give the op its gates' weights as twelve constants (input, forget,
cell, output: W [U, F], R [U, U], bias [U]), stacked here into three arrays, and
the state at the start and the end as tensors (TFLite's variable state becomes
READ_VARIABLE / ASSIGN_VARIABLE around the op: see model/tflite/lstm.py). The
kernel needs no scratch (a step's new h goes to its row of the output first), so
the arena is the live tensors'.

The full-integer int8 LSTM (int8 input, hidden state and output, int16 cell state,
int8 per-tensor weights, int32 biases: what TFLite's converter writes for a Keras
LSTM with int8 post-training quantization) gets TFLite Micro's integer kernel
(runtime/tml_lstm_s8.c) with the multipliers its Prepare computes: every gate's
two products requantized to Q3.12 (2^-12, whatever the model's intermediate
tensors say: TFLite Micro ignores them), the gate and cell multiplies at Q0.15,
the cell's tanh scaled by the cell scale's rounded power of two. Hybrid LSTMs
(float32 activations, int8 weights) and other integer forms are refused in one line.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lowering import Lowering
from .quant import f32, quantize_multiplier, tfl_round

F32 = DType.FLOAT32
S8, S16, S32 = DType.INT8, DType.INT16, DType.INT32
HYBRID_REFUSAL = "a hybrid LSTM (float32 activations, int8 weights) is not supported by cgen; use float, " \
                 "full-integer int8 or --backend tflm"
INT_FORM_REFUSAL = "only the full-integer int8 LSTM is supported (int8 input, hidden state and output, int16 " \
                   "cell state, int8 weights, int32 biases); use --backend tflm"
GATE_SCALE, ACT_SCALE = 2.0 ** -12, 2.0 ** -15   # TFLite Micro: gate products Q3.12, activations Q0.15


def _check(g: Graph, op: Op) -> str | None:
    if not all(g.tensors[i].is_const for i in op.inputs[1:13]):
        return "the weights and biases must be constants"
    types = [g.tensors[i].dtype for i in op.inputs + op.outputs]
    if all(t is F32 for t in types):
        return None
    if types[0] is F32:
        return HYBRID_REFUSAL
    return _check_s8(g, op)


def _check_s8(g: Graph, op: Op) -> str | None:
    t = [g.tensors[i] for i in op.inputs]
    want = [S8] * 9 + [S32] * 4 + [S8, S16]
    if [x.dtype for x in t] != want or [g.tensors[i].dtype for i in op.outputs] != [S8, S8, S16]:
        return INT_FORM_REFUSAL
    if any(x.quant is None or x.quant.per_channel for x in t[:9] + t[13:]):
        return "per-channel LSTM weights (TFLite Micro's integer LSTM takes per-tensor scales)"
    if any(x.quant.zp for x in t[1:9]):
        return "asymmetric (non-zero zero point) LSTM weights"
    if t[14].quant.zp or not t[14].quant.s > 0:
        return f"cell state zero point {t[14].quant.zp} and scale {t[14].quant.s} (needs 0 and a positive scale)"
    if not -20 <= _tanh_shift(t[14].quant.s) <= 14:
        return f"cell state scale {t[14].quant.s:g} is out of the integer tanh's range"
    return None


def _tanh_shift(cell_scale: float) -> int:
    """TFLite Micro's tanh(c) input shift: 15 + round(log2(cell scale)) - 3."""
    return 12 + int(tfl_round(math.log(f32(cell_scale)) / math.log(2.0)))


def _mul(a: float, b: float, out: float) -> tuple[int, int]:
    """An element-wise multiply's multiplier (TFLite Micro's CreateInterGateMulParams)."""
    return quantize_multiplier(f32(a) * f32(b) / f32(out))


def _fc_mult(x, w) -> tuple[int, int]:
    """A gate product's multiplier to Q3.12: the scales' product in float32, as TFLite's
    GetQuantizedConvolutionMultipler, then divided in double."""
    return quantize_multiplier(float(np.float32(x.quant.s) * np.float32(w.quant.s)) / GATE_SCALE)


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


def _lstm_s8(em, op):
    g = em.graph
    x, h, c = (g.tensors[op.inputs[k]] for k in (0, 13, 14))
    ws = [g.tensors[i] for i in op.inputs[1:9]]
    tm = op.attrs.time_major
    steps, batches = (x.shape[0], x.shape[1]) if tm else (x.shape[1], x.shape[0])
    mults = [_fc_mult(x, w) for w in ws[:4]] + [_fc_mult(h, w) for w in ws[4:]]
    mults += [_mul(ACT_SCALE, c.quant.s, c.quant.s), _mul(ACT_SCALE, ACT_SCALE, c.quant.s),
              _mul(ACT_SCALE, ACT_SCALE, h.quant.s)]
    rows = lambda w: w.data.astype(np.int64).sum(axis=1)
    biases = [g.tensors[i].data.astype(np.int64).reshape(-1) for i in op.inputs[9:13]]
    fold = np.concatenate([b - x.quant.zp * rows(w) for b, w in zip(biases, ws[:4])]
                          + [-h.quant.zp * rows(w) for w in ws[4:]])
    clip = float(np.float32(op.attrs.cell_clip))
    p = em.params("tml_lstm_s8_t", dict(
        batches=batches, steps=steps, features=x.shape[2], units=ws[4].shape[0], time_major=int(tm),
        reverse=int(op.attrs.reverse), has_clip=int(clip > 0), tanh_shift=_tanh_shift(c.quant.s),
        cell_clip=int(min(max(clip / f32(c.quant.s), -32768.0), 32767.0)), hidden_zp=h.quant.zp,
        mult=[m for m, _ in mults], shift=[s for _, s in mults],
        w=em.array("int8_t", np.concatenate([w.data.reshape(-1) for w in ws[:4]]), "w"),
        r=em.array("int8_t", np.concatenate([w.data.reshape(-1) for w in ws[4:]]), "r"),
        fold=em.array("int32_t", fold.astype(np.int32), "bf")))
    y, hn, cn = (em.ptr(t) for t in op.outputs)
    em.call(op, f"tml_lstm_s8({p}, {em.ptr(op.inputs[0], const=True)}, {em.ptr(op.inputs[13], const=True)}, "
                f"{em.ptr(op.inputs[14], const=True)}, {y}, {hn}, {cn})",
            "tml_lstm_s8.c", "tml_fixedpoint.h", "tml_dot_s8.h")


def _lower(em, op):
    (_lstm if em.graph.tensors[op.inputs[0]].dtype is F32 else _lstm_s8)(em, op)


LOWERINGS = {(OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM, dt): Lowering(_lower, _check)
             for dt in (F32, DType.INT8, DType.INT16, DType.UINT8)}
