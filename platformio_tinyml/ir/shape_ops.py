"""What the data-movement, reduction and shape ops compute, in numpy.

One definition serves three users: the constant-folding pass
(:mod:`.passes`) evaluates ops whose inputs are all constants with
:func:`evaluate`, the model validator checks each op's declared output
shapes against :func:`output_shapes`, and the importers resolve TFLite's
STRIDED_SLICE masks with :func:`strided_slice`.
"""

from __future__ import annotations

import numpy as np

from . import attrs as A
from .graph import OpKind

K = OpKind


def strided_slice(shape, begin, end, strides, begin_mask: int, end_mask: int,
                  shrink_mask: int) -> tuple[A.Slice, tuple[int, ...]]:
    """TFLite's STRIDED_SLICE (no ellipsis, no new axes, no ``offset``) resolved
    to a :class:`attrs.Slice` and its output shape (shrunk dimensions dropped).
    Indices are clamped as TensorFlow clamps them (``StartForAxis``/``StopForAxis``)."""
    b_out, size, stride, out = [], [], [], []
    for d, n in enumerate(shape):
        s = int(strides[d]) if d < len(strides) else 1
        if s == 0:
            raise ValueError(f"stride 0 on axis {d}")
        if d >= len(begin):
            b, e = (0, n) if s > 0 else (n - 1, -1)
        elif shrink_mask >> d & 1:
            # TFLite Micro's StopForAxis gives start + 1 whatever the stride, so a negative
            # stride copies nothing (the output keeps what the arena held): refused. The begin
            # mask still applies (start 0), as StartForAxis applies it before the shrink.
            if s < 0:
                raise ValueError(f"shrink_axis with stride {s} on axis {d} (TFLite Micro copies "
                                 f"nothing for a negative stride on a shrunk axis)")
            b = 0 if begin_mask >> d & 1 else int(begin[d]) + (n if int(begin[d]) < 0 else 0)
            if not 0 <= b < n:
                raise ValueError(f"index {int(begin[d])} out of range on axis {d} of size {n}")
            e, s = b + 1, 1
        else:
            lo, hi = (0, n) if s > 0 else (-1, n - 1)
            if begin_mask >> d & 1:
                b = lo if s > 0 else hi
            else:
                b = int(begin[d]) + (n if int(begin[d]) < 0 else 0)
                b = min(max(b, lo), hi)
            if end_mask >> d & 1:
                e = hi if s > 0 else lo
            else:
                e = int(end[d]) + (n if int(end[d]) < 0 else 0)
                e = min(max(e, lo), hi)
        k = len(range(b, e, s))
        b_out.append(b if k else 0)
        size.append(k)
        stride.append(s)
        if not (shrink_mask >> d & 1):
            out.append(k)
    return A.Slice(tuple(b_out), tuple(size), tuple(stride)), tuple(out)


def slice_index(a: A.Slice) -> tuple:
    return tuple(slice(b, b + (n - 1) * s + (1 if s > 0 else -1), s) if n else slice(0, 0)
                 for b, n, s in zip(a.begin, a.size, a.stride))


def _take_slice(x: np.ndarray, a: A.Slice) -> np.ndarray:
    idx = []
    for b, n, s in zip(a.begin, a.size, a.stride):
        idx.append(np.arange(n) * s + b)
    return x[np.ix_(*idx)] if idx else x


def space_to_batch(x: np.ndarray, a: A.Block, pad_value) -> np.ndarray:
    bh, bw = a.block
    (pt, pb), (pl, pr) = a.pads
    x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    n, h, w, c = x.shape
    y = x.reshape(n, h // bh, bh, w // bw, bw, c).transpose(2, 4, 0, 1, 3, 5)
    return y.reshape(bh * bw * n, h // bh, w // bw, c)


def batch_to_space(x: np.ndarray, a: A.Block) -> np.ndarray:
    bh, bw = a.block
    (ct, cb), (cl, cr) = a.pads
    nb, h, w, c = x.shape
    n = nb // (bh * bw)
    y = x.reshape(bh, bw, n, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, h * bh, w * bw, c)
    return y[:, ct:h * bh - cb, cl:w * bw - cr, :]


def depth_to_space(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, c // (b * b))


def space_to_depth(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, b * b * c)


def tile(x: np.ndarray, multiples) -> np.ndarray:
    x = x.reshape((1,) * (len(multiples) - x.ndim) + x.shape)
    return np.tile(x, multiples)


def _reduce(fn, x: np.ndarray, a: A.Mean) -> np.ndarray:
    return fn(x, axis=tuple(a.axes), keepdims=a.keep_dims)


_MOVE = {
    K.TRANSPOSE: lambda xs, a: [np.transpose(xs[0], a.perm)],
    K.SLICE: lambda xs, a: [_take_slice(xs[0], a)],
    K.STRIDED_SLICE: lambda xs, a: [_take_slice(xs[0], a)],
    K.SPLIT: lambda xs, a: np.split(xs[0], np.cumsum(a.sizes)[:-1], axis=a.axis),
    K.SPLIT_V: lambda xs, a: np.split(xs[0], np.cumsum(a.sizes)[:-1], axis=a.axis),
    K.UNPACK: lambda xs, a: [np.squeeze(p, a.axis) for p in np.split(xs[0], len(a.sizes), axis=a.axis)],
    K.TILE: lambda xs, a: [tile(xs[0], a.multiples)],
    K.BROADCAST_TO: lambda xs, a: [tile(xs[0], a.multiples)],
    K.GATHER: lambda xs, a: [np.take(xs[0], np.array(a.indices, np.int64).reshape(a.indices_shape),
                                     axis=a.axis)],
    K.PACK: lambda xs, a: [np.stack(xs, axis=a.axis)],
    K.CONCATENATION: lambda xs, a: [np.concatenate(xs, axis=a.axis)],
    K.SPACE_TO_DEPTH: lambda xs, a: [space_to_depth(xs[0], a.size)],
    K.DEPTH_TO_SPACE: lambda xs, a: [depth_to_space(xs[0], a.size)],
    K.SPACE_TO_BATCH_ND: lambda xs, a: [space_to_batch(xs[0], a, 0)],
    K.BATCH_TO_SPACE_ND: lambda xs, a: [batch_to_space(xs[0], a)],
    K.REDUCE_MAX: lambda xs, a: [_reduce(np.max, xs[0], a)],
    K.REDUCE_MIN: lambda xs, a: [_reduce(np.min, xs[0], a)],
    K.SUM: lambda xs, a: [_reduce(np.sum, xs[0], a)],
    K.ARG_MAX: lambda xs, a: [np.argmax(xs[0], axis=a.axis)],
    K.ARG_MIN: lambda xs, a: [np.argmin(xs[0], axis=a.axis)],
    K.RESIZE_BILINEAR: lambda xs, a: [np.empty(xs[0].shape[:1] + tuple(a.size) + xs[0].shape[3:])],
    K.RESIZE_NEAREST_NEIGHBOR: lambda xs, a: [np.empty(xs[0].shape[:1] + tuple(a.size) + xs[0].shape[3:])],
}

# The ops this module defines (CONCATENATION keeps its own rules).
SHAPE_OP_KINDS = frozenset(_MOVE) - {K.CONCATENATION}

# Pure data movement: the output's elements are some of the input's (int8: same quantization).
MOVES = frozenset({K.TRANSPOSE, K.SLICE, K.STRIDED_SLICE, K.SPLIT, K.SPLIT_V, K.UNPACK, K.TILE,
                   K.BROADCAST_TO, K.GATHER, K.PACK, K.CONCATENATION, K.SPACE_TO_DEPTH,
                   K.DEPTH_TO_SPACE, K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND, K.RESHAPE,
                   K.EXPAND_DIMS, K.SQUEEZE})

# Arithmetic folded on (integer or float) constants, by op name: ops other
# importers or kernels add to OpKind are picked up when they exist.
_ARITH = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "MAXIMUM": np.maximum,
          "MINIMUM": np.minimum, "FLOOR_DIV": np.floor_divide, "LESS": np.less, "LESS_EQUAL": np.less_equal,
          "GREATER": np.greater, "GREATER_EQUAL": np.greater_equal, "EQUAL": np.equal, "NOT_EQUAL": np.not_equal,
          "LOGICAL_AND": np.logical_and, "LOGICAL_OR": np.logical_or}


def evaluate(kind: OpKind, a, xs: list[np.ndarray]) -> list[np.ndarray] | None:
    """The op's outputs for constant inputs ``xs`` (None where not defined here)."""
    if kind in (K.RESIZE_BILINEAR, K.RESIZE_NEAREST_NEIGHBOR):
        return None
    if kind in _MOVE:
        return [np.asarray(y) for y in _MOVE[kind](xs, a)]
    if kind.value in _ARITH and len(xs) == 2 and getattr(getattr(a, "activation", None), "value", "none") == "none":
        return [_ARITH[kind.value](xs[0], xs[1])]
    if kind.value == "LOGICAL_NOT" and len(xs) == 1:
        return [np.logical_not(xs[0])]
    if kind.value == "SELECT_V2" and len(xs) == 3:
        return [np.where(xs[0].astype(bool), xs[1], xs[2])]
    if kind.value == "DIV" and len(xs) == 2:
        if xs[0].dtype.kind == "f":
            return [xs[0] / xs[1]]
        return [np.trunc(xs[0] / xs[1]).astype(xs[0].dtype)]
    if kind in (K.RESHAPE, K.EXPAND_DIMS, K.SQUEEZE, K.QUANTIZE, K.DEQUANTIZE) or kind.value == "CAST":
        return [xs[0]]   # the caller reshapes/casts to the output tensor
    return None


def evaluate_opaque(a, ins, outs) -> list[np.ndarray] | None:
    """The outputs of an opaque TFLite op that makes constants (``a``: its attrs.Opaque) from
    tensors ``ins`` into ``outs`` (None where not defined here, or not constant): ZEROS_LIKE
    (from the input's static shape alone), FILL and BROADCAST_ARGS of constant inputs."""
    if a.domain or a.reason or len(outs) != 1:
        return None
    const = bool(ins) and all(t.is_const for t in ins)
    if a.op == "ZEROS_LIKE" and len(ins) == 1:
        return [np.zeros(outs[0].shape)]
    if a.op == "FILL" and len(ins) == 2 and const and ins[1].size == 1:
        return [np.full(outs[0].shape, np.asarray(ins[1].data).reshape(-1)[0])]
    if a.op == "BROADCAST_ARGS" and len(ins) == 2 and const:
        return [np.array(np.broadcast_shapes(*(tuple(int(d) for d in t.data.reshape(-1)) for t in ins)))]
    return None


def output_shapes(kind: OpKind, a, in_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]] | None:
    """The output shapes ``kind`` computes from inputs of ``in_shapes`` (None where not defined here).

    Evaluated on zero-stride views, so no input data is allocated."""
    if kind not in _MOVE or a is None:
        return None
    xs = [np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=s, strides=(0,) * len(s))
          for s in in_shapes]
    try:
        return [tuple(int(d) for d in y.shape) for y in _MOVE[kind](xs, a)]
    except (ValueError, IndexError, TypeError, np.AxisError) as e:
        raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
