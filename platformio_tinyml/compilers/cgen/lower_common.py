"""Lowerings that do not depend on the element type."""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lowering import Lowering


def per_batch(em, op, fn: str, params: str, *runtime_files: str) -> None:
    """``fn(params, in, out)`` once per image of the first (batch) dimension.

    The spatial kernels (conv, depthwise conv, pooling) take one NHWC image;
    TFLite Micro loops over the batch inside them, we call them per image
    with the input and output pointers moved by one image."""
    for b in range(em.graph.tensors[op.inputs[0]].shape[0]):
        em.call(op, f"{fn}({params}, {em.ptr(op.inputs[0], True, b)}, {em.ptr(op.outputs[0], False, b)})",
                *runtime_files)


def expected_shape(g: Graph, op: Op) -> tuple[int, ...] | None:
    """The output shape the kernels compute for ``op`` from its inputs and
    attributes (None where the op does not fix one here). A model whose
    declared output shape differs is refused: the kernels would write (and
    the caller read) a different number of values than the reference."""
    ins = [g.tensors[i] for i in op.inputs if i >= 0]
    x, a, k = ins[0], op.attrs, op.kind
    if k in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        if len(x.shape) != 4:
            return None
        if k in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
            w = ins[1]
            kh, kw, dh, dw = w.shape[1], w.shape[2], a.dilation_h, a.dilation_w
            c = w.shape[0] if k is OpKind.CONV_2D else x.shape[3] * a.depth_multiplier
        else:
            kh, kw, dh, dw, c = a.filter_h, a.filter_w, 1, 1, x.shape[3]
        oh = (x.shape[1] + a.pad_top + a.pad_bottom - (kh - 1) * dh - 1) // a.stride_h + 1
        ow = (x.shape[2] + a.pad_left + a.pad_right - (kw - 1) * dw - 1) // a.stride_w + 1
        return (x.shape[0], oh, ow, c)
    if k in BROADCASTING:
        try:
            return tuple(int(d) for d in np.broadcast_shapes(*(t.shape for t in ins)))
        except ValueError:
            return ()
    if k is OpKind.PAD and len(a.paddings) == len(x.shape):
        return tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, a.paddings))
    if k is OpKind.CONCATENATION:
        return tuple(sum(t.shape[a.axis] for t in ins) if d == a.axis else x.shape[d]
                     for d in range(len(x.shape)))
    return None


def check_shapes(g: Graph, op: Op) -> str | None:
    """A reason when ``op``'s tensors disagree on shapes (see :func:`expected_shape`)."""
    if not op.inputs or not op.outputs:   # READ/ASSIGN_VARIABLE: lower_var checks them
        return None
    y = g.tensors[op.outputs[0]]
    want = expected_shape(g, op)
    if want is not None and tuple(want) != tuple(y.shape):
        return f"output shape {list(y.shape)} does not follow from the inputs and attributes ({list(want)})"
    x = g.tensors[op.inputs[0]]
    if op.kind is OpKind.FULLY_CONNECTED:
        n_out, n_in = g.tensors[op.inputs[1]].shape
        if x.size % n_in or y.size != x.size // n_in * n_out:
            return f"input {list(x.shape)} and output {list(y.shape)} do not fit weights [{n_out}, {n_in}]"
    elif op.kind is OpKind.CONCATENATION:
        if any(len(g.tensors[i].shape) != len(y.shape) for i in op.inputs):
            return "inputs of different ranks"
    elif op.kind is OpKind.MEAN:
        kept = int(np.prod([d for k, d in enumerate(x.shape) if k not in op.attrs.axes], dtype=np.int64))
        if y.size != kept:
            return f"output {list(y.shape)} does not fit a mean of {list(x.shape)} over {list(op.attrs.axes)}"
    elif op.kind in SAME_SIZE and x.size != y.size:
        return f"input {list(x.shape)} and output {list(y.shape)} differ in size"
    return None


def check_quant(g: Graph, op: Op) -> str | None:
    """A reason when a tensor's quantization is per channel where the kernels
    read one scale: anywhere but a conv/fully-connected op's weights (along
    their output channels: axis 0, depthwise 3) and bias."""
    weighted = op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED, OpKind.TRANSPOSE_CONV)
    for k, i in enumerate(list(op.inputs) + list(op.outputs)):
        q = g.tensors[i].quant if i >= 0 else None
        if q is None or not q.per_channel:
            continue
        out_axis = 3 if op.kind is OpKind.DEPTHWISE_CONV_2D else 0
        if weighted and k == 1 and q.axis == out_axis and len(q.scale) == g.tensors[i].shape[out_axis]:
            continue
        if weighted and k == 2 and i in op.inputs[2:3]:
            continue
        return (f"tensor '{g.tensors[i].name}' is quantized per channel along axis {q.axis} "
                f"({len(q.scale)} scales); the kernels take that only for weights along their output channels")
    return None


SAME_SIZE = (OpKind.RESHAPE, OpKind.SOFTMAX, OpKind.QUANTIZE, OpKind.DEQUANTIZE, OpKind.LOGISTIC, OpKind.TANH,
             OpKind.RELU, OpKind.RELU6, OpKind.LEAKY_RELU, OpKind.ELU, OpKind.HARD_SWISH, OpKind.RELU_N1_TO_1,
             OpKind.GELU, OpKind.EXP, OpKind.LOG, OpKind.SQRT, OpKind.RSQRT, OpKind.ABS, OpKind.NEG, OpKind.SQUARE,
             OpKind.LOG_SOFTMAX, OpKind.L2_NORMALIZATION)
BROADCASTING = (OpKind.ADD, OpKind.MUL, OpKind.SUB, OpKind.DIV, OpKind.MAXIMUM, OpKind.MINIMUM,
                OpKind.SQUARED_DIFFERENCE, OpKind.PRELU)


def _reshape(em, op):
    src, dst = op.inputs[0], op.outputs[0]
    if em.plan.root(dst) == em.plan.root(src):
        em.body.append(f"    /* {op.label}: aliases its input, no code */")
        return
    t = em.graph.tensors[dst]
    em.call(op, f"memcpy({em.ptr(dst)}, {em.ptr(src, const=True)}, {t.nbytes})")


LOWERINGS = {(OpKind.RESHAPE, dt): Lowering(_reshape) for dt in DType}
