"""TFLite options and constant parameter operands of the data-movement,
reduction and resize ops, folded into IR attrs (the operands are dropped,
as the IR's conventions ask). A parameter that is not a constant is refused
in one line: no kernel here takes computed shapes."""

from __future__ import annotations

import tflite

from ...ir import OpKind, Tensor
from ...ir import attrs as A
from ...ir.shape_ops import SHAPE_OP_KINDS, strided_slice
from ..validate import SHAPE
from .checks import builtin_options as _opts

K = OpKind
KINDS = SHAPE_OP_KINDS


class ParamError(Exception):
    """A parameter the kernels cannot take; the message is the reader's detail text. With ``rule``
    (of :mod:`..validate`), one that breaks an import rule: the file is malformed."""

    def __init__(self, detail: str, rule: str | None = None):
        super().__init__(detail)
        self.rule = rule


def _const(tensors: list[Tensor], idx: int, what: str) -> list[int]:
    if idx < 0 or not tensors[idx].is_const:
        raise ParamError(f"{what} must be a constant tensor")
    return [int(v) for v in tensors[idx].data.reshape(-1)]


def _axis(a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise ParamError(f"axis {a} of a rank-{rank} tensor")
    return a % max(rank, 1)


def _count_option(name: str, value: int, have: int, what: str) -> None:
    """PACK's values_count and UNPACK's num: TFLite Micro loops over the option, not the operator's
    tensors (past them, or leaving some unwritten, when the two differ)."""
    if value != have:
        raise ParamError(f"has option {name} = {value} for {have} {what}", SHAPE)


def shape_attrs(op, kind: OpKind, ins: list[int], outs: list[int], tensors: list[Tensor]):
    """(attrs, data inputs) of a TFLite op of ``kind`` in :data:`KINDS`; raises :class:`ParamError`."""
    T = tflite
    x = tensors[ins[0]] if ins and ins[0] >= 0 else None
    rank = len(x.shape) if x is not None else 0
    if kind is K.TRANSPOSE:
        perm = [_axis(p, rank) for p in _const(tensors, ins[1], "perm")]
        if sorted(perm) != list(range(rank)):
            raise ParamError(f"perm {perm} is not a permutation of {rank} axes")
        return A.Transpose(tuple(perm)), ins[:1]
    if kind is K.SPLIT:
        data = tensors[ins[1]]
        axis = _axis(_const(tensors, ins[0], "axis")[0], len(data.shape))
        n = len(outs)
        if data.shape[axis] % n:
            raise ParamError(f"{n} splits of an axis of size {data.shape[axis]}")
        return A.Split(axis, (data.shape[axis] // n,) * n), ins[1:2]
    if kind is K.SPLIT_V:
        axis = _axis(_const(tensors, ins[2], "axis")[0], rank)
        sizes = _const(tensors, ins[1], "size_splits")
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
        if len(sizes) != len(outs) or any(s < 0 for s in sizes) or sum(sizes) != x.shape[axis]:
            raise ParamError(f"size_splits {sizes} for an axis of size {x.shape[axis]}")
        return A.Split(axis, tuple(sizes)), ins[:1]
    if kind is K.UNPACK:
        o = _opts(op, T.UnpackOptions)
        _count_option("num", o.Num() if o else 0, len(outs), "outputs")
        axis = _axis(o.Axis() if o else 0, rank)
        return A.Split(axis, (1,) * x.shape[axis]), ins[:1]
    if kind is K.SLICE:
        begin, size = _const(tensors, ins[1], "begin"), _const(tensors, ins[2], "size")
        if len(begin) != rank or len(size) != rank:
            raise ParamError(f"begin {begin} and size {size} for a rank-{rank} input")
        size = [n - b if s == -1 else s for b, s, n in zip(begin, size, x.shape)]
        if any(b < 0 or s < 0 or b + s > n for b, s, n in zip(begin, size, x.shape)):
            raise ParamError(f"begin {begin} and size {size} outside the input {list(x.shape)}")
        return A.Slice(tuple(begin), tuple(size), (1,) * rank), ins[:1]
    if kind is K.STRIDED_SLICE:
        o = _opts(op, T.StridedSliceOptions)
        masks = (o.BeginMask(), o.EndMask(), o.EllipsisMask(), o.NewAxisMask(), o.ShrinkAxisMask(),
                 bool(o.Offset()) if hasattr(o, "Offset") else False) if o else (0,) * 6
        if masks[2] or masks[3] or masks[5]:
            raise ParamError("ellipsis_mask, new_axis_mask or offset (TFLite Micro takes none of them)")
        begin, end = _const(tensors, ins[1], "begin"), _const(tensors, ins[2], "end")
        strides = _const(tensors, ins[3], "strides")
        if not len(begin) == len(end) == len(strides) <= rank:
            raise ParamError(f"begin {begin}, end {end}, strides {strides} for a rank-{rank} input")
        try:
            a, _ = strided_slice(x.shape, begin, end, strides, masks[0], masks[1], masks[4])
        except ValueError as e:
            raise ParamError(str(e)) from None
        return a, ins[:1]
    if kind is K.TILE:
        m = _const(tensors, ins[1], "multiples")
        if len(m) != rank or any(v < 1 for v in m):
            raise ParamError(f"multiples {m} for a rank-{rank} input")
        return A.Tile(tuple(m)), ins[:1]
    if kind is K.BROADCAST_TO:
        shape = _const(tensors, ins[1], "shape")
        xs = (1,) * (len(shape) - rank) + tuple(x.shape)
        if len(shape) < rank or any(d != s and d != 1 for d, s in zip(xs, shape)):
            raise ParamError(f"input {list(x.shape)} does not broadcast to {shape}")
        return A.Tile(tuple(s // d for d, s in zip(xs, shape))), ins[:1]
    if kind is K.GATHER:
        o = _opts(op, T.GatherOptions)
        if o is not None and o.BatchDims():
            raise ParamError(f"batch_dims {o.BatchDims()}")
        axis = _axis(o.Axis() if o else 0, rank)
        idx = _const(tensors, ins[1], "indices")
        if any(not 0 <= v < x.shape[axis] for v in idx):
            raise ParamError(f"indices {idx[:8]} outside an axis of size {x.shape[axis]}")
        return A.Gather(axis, tuple(idx), tuple(tensors[ins[1]].shape)), ins[:1]
    if kind is K.PACK:
        o = _opts(op, T.PackOptions)
        _count_option("values_count", o.ValuesCount() if o else 0, len(ins), "inputs")
        return A.Pack(_axis(o.Axis() if o else 0, rank + 1)), ins
    if kind in (K.SPACE_TO_DEPTH, K.DEPTH_TO_SPACE):
        o = _opts(op, T.SpaceToDepthOptions if kind is K.SPACE_TO_DEPTH else T.DepthToSpaceOptions)
        b = o.BlockSize() if o else 0
        if b < 1 or rank != 4:
            raise ParamError(f"block size {b} on a rank-{rank} input")
        return A.Block(size=b), ins[:1]
    if kind in (K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND):
        block = _const(tensors, ins[1], "block_shape")
        pads = _const(tensors, ins[2], "paddings" if kind is K.SPACE_TO_BATCH_ND else "crops")
        if rank != 4 or len(block) != 2 or len(pads) != 4 or min(block) < 1 or min(pads) < 0:
            raise ParamError(f"block {block} and paddings/crops {pads} on a rank-{rank} input (needs NHWC "
                             "and 2 spatial dimensions)")
        return A.Block(block=tuple(block), pads=((pads[0], pads[1]), (pads[2], pads[3]))), ins[:1]
    if kind in (K.REDUCE_MAX, K.REDUCE_MIN, K.SUM):
        o = _opts(op, T.ReducerOptions)
        axes = sorted({_axis(a, rank) for a in _const(tensors, ins[1], "axes")})
        return A.Mean(tuple(axes), bool(o.KeepDims()) if o else False), ins[:1]
    if kind in (K.ARG_MAX, K.ARG_MIN):
        axis = _const(tensors, ins[1], "axis")
        return A.ArgMinMax(_axis(axis[0], rank)), ins[:1]
    o = _opts(op, T.ResizeBilinearOptions if kind is K.RESIZE_BILINEAR else T.ResizeNearestNeighborOptions)
    size = _const(tensors, ins[1], "size")
    if rank != 4 or len(size) != 2:
        raise ParamError(f"size {size} on a rank-{rank} input")
    return A.Resize(tuple(size), bool(o.AlignCorners()) if o else False, bool(o.HalfPixelCenters()) if o else False), ins[:1]

