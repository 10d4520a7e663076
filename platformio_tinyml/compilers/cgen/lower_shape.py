"""Lowerings of data movement, reductions and resizing (int8 and float32).

Data movement is one strided copy kernel (``tml_copy_nd``, runtime/tml_move.c):
each op becomes one or more copies described by loop extents and input/output
strides, so TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT(_V), UNPACK, PACK, TILE,
BROADCAST_TO, SPACE_TO_DEPTH, DEPTH_TO_SPACE and the batch/space re-arrangements
share one tested loop. Bytes move unchanged, so int8 needs the input's and
output's quantization to be equal, as TensorFlow Lite Micro requires. Reductions
and ARG_MIN/ARG_MAX run over ``[outer][count][inner]`` (contiguous axes);
resizing takes source-index and weight tables computed here with TFLite's
float (or, for int8 bilinear, 10-bit integer) arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lower_s8 import mean_layout, operand_ptr
from .lowering import Lowering
from .quant import f32, quantize_multiplier

K = OpKind
S8, F32 = DType.INT8, DType.FLOAT32
MAX_LOOPS = 8


def _strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return out[::-1]


def _count(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


class Move:
    """One strided copy (element units): ``out[out_base + sum(i*os)] = in[in_base + sum(i*is)]``."""

    def __init__(self, src: int, dst: int, dims, in_steps, out_steps, in_base: int = 0, out_base: int = 0):
        keep = [(int(d), int(a), int(b)) for d, a, b in zip(dims, in_steps, out_steps) if d != 1]
        merged: list[list[int]] = []
        for d, a, b in keep:   # merge a loop into the one outside it when they walk on contiguously
            if merged and merged[-1][1] == a * d and merged[-1][2] == b * d:
                merged[-1] = [merged[-1][0] * d, a, b]
            else:
                merged.append([d, a, b])
        self.loops = merged or [[1, 1, 1]]
        self.src, self.dst, self.in_base, self.out_base = src, dst, int(in_base), int(out_base)
        self.empty = any(d == 0 for d in dims)


def _moves(g: Graph, op: Op) -> list[Move]:
    """The copies that compute ``op`` (see the module docstring)."""
    a, k = op.attrs, op.kind
    x = g.tensors[op.inputs[0]]
    xs, xst = tuple(x.shape), _strides(x.shape)
    y0 = op.outputs[0]
    if k is K.TRANSPOSE:
        dims = [xs[p] for p in a.perm]
        return [Move(op.inputs[0], y0, dims, [xst[p] for p in a.perm], _strides(dims))]
    if k in (K.SLICE, K.STRIDED_SLICE):
        base = sum(b * s for b, s in zip(a.begin, xst))
        return [Move(op.inputs[0], y0, a.size, [s * st for s, st in zip(xst, a.stride)], _strides(a.size), base)]
    if k in (K.SPLIT, K.SPLIT_V, K.UNPACK):
        moves, off = [], 0
        for out, n in zip(op.outputs, a.sizes):
            dims = list(xs)
            dims[a.axis] = n
            moves.append(Move(op.inputs[0], out, dims, xst, _strides(dims), off * xst[a.axis]))
            off += n
        return moves
    if k is K.PACK:
        ys = g.tensors[y0].shape
        full = list(xs[:a.axis]) + [len(op.inputs)] + list(xs[a.axis:])
        fst = _strides(full)
        out_steps = fst[:a.axis] + fst[a.axis + 1:]
        assert _count(full) == _count(ys)
        return [Move(i, y0, xs, xst, out_steps, 0, n * fst[a.axis]) for n, i in enumerate(op.inputs)]
    if k in (K.TILE, K.BROADCAST_TO):
        m = a.multiples
        xp = (1,) * (len(m) - len(xs)) + xs
        pst, ost = _strides(xp), _strides([r * d for r, d in zip(m, xp)])
        dims, ins, outs = [], [], []
        for r, d, s, o in zip(m, xp, pst, ost):
            dims += [r, d]
            ins += [0, s]
            outs += [d * o, o]
        return [Move(op.inputs[0], y0, dims, ins, outs)]
    if k in (K.DEPTH_TO_SPACE, K.SPACE_TO_DEPTH):
        n, h, w, c = xs
        b = a.size
        if k is K.DEPTH_TO_SPACE:
            c2, ow = c // (b * b), w * b
            dims = [n, h, b, w, b, c2]
            ins = [h * w * c, w * c, b * c2, c, c2, 1]
            outs = [h * b * ow * c2, b * ow * c2, ow * c2, b * c2, c2, 1]
        else:
            oh, ow, oc = h // b, w // b, b * b * c
            dims = [n, oh, ow, b, b, c]
            ins = [h * w * c, b * w * c, b * c, w * c, c, 1]
            outs = [oh * ow * oc, ow * oc, oc, b * c, c, 1]
        return [Move(op.inputs[0], y0, dims, ins, outs)]
    if k in (K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND):
        return _space_batch_moves(g, op)
    raise AssertionError(k)


def _span(i: int, b: int, lo: int, n: int) -> tuple[int, int]:
    """Block rows h >= 0 with 0 <= h*b + i - lo < n: (first, count)."""
    first = max(0, -((i - lo) // b))
    end = -((i - lo - n) // b)
    return first, max(0, end - first)


def _space_batch_moves(g: Graph, op: Op) -> list[Move]:
    a = op.attrs
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    bh, bw = a.block
    (pt, _), (pl, _) = a.pads
    moves = []
    if op.kind is K.BATCH_TO_SPACE_ND:   # in[(i*bw + j)*N + n, h, w, c] -> out[n, h*bh + i - ct, w*bw + j - cl, c]
        nb, h, w, c = x.shape
        n, oh, ow = y.shape[0], y.shape[1], y.shape[2]
        for i in range(bh):
            h0, hn = _span(i, bh, pt, oh)
            hn = min(hn, h - h0)
            for j in range(bw):
                w0, wn = _span(j, bw, pl, ow)
                wn = min(wn, w - w0)
                if hn <= 0 or wn <= 0:
                    continue
                src = ((i * bw + j) * n * h + h0) * w * c + w0 * c
                dst = ((h0 * bh + i - pt) * ow + (w0 * bw + j - pl)) * c
                moves.append(Move(op.inputs[0], op.outputs[0], [n, hn, wn, c], [h * w * c, w * c, c, 1],
                                  [oh * ow * c, bh * ow * c, bw * c, 1], src, dst))
        return moves
    n, h, w, c = x.shape   # out[(i*bw + j)*N + n, oh, ow, c] = x[n, oh*bh + i - pt, ow*bw + j - pl, c]
    oh, ow = y.shape[1], y.shape[2]
    for i in range(bh):
        for j in range(bw):
            # output rows r with 0 <= r*bh + i - pt < h
            r0, rn = _span(i, bh, pt, h)
            c0, cn = _span(j, bw, pl, w)
            rn, cn = min(rn, oh - r0), min(cn, ow - c0)
            if rn <= 0 or cn <= 0:
                continue
            src = ((r0 * bh + i - pt) * w + (c0 * bw + j - pl)) * c
            dst = (((i * bw + j) * n) * oh + r0) * ow * c + c0 * c
            moves.append(Move(op.inputs[0], op.outputs[0], [n, rn, cn, c], [h * w * c, bh * w * c, bw * c, 1],
                              [oh * ow * c, ow * c, c, 1], src, dst))
    return moves


# ---- checks ----------------------------------------------------------------------------------

def _same_quant(g: Graph, op: Op) -> str | None:
    x = g.tensors[op.inputs[0]]
    for i in list(op.inputs) + list(op.outputs):
        t = g.tensors[i]
        if t.dtype is not x.dtype:
            return f"tensor '{t.name}' is {t.dtype.np_name}, the input {x.dtype.np_name}"
        if (t.quant is None) != (x.quant is None) or (t.quant is not None and (
                t.quant.per_channel or (f32(t.quant.s), t.quant.zp) != (f32(x.quant.s), x.quant.zp))):
            return (f"tensor '{t.name}' is quantized differently from the input; TFLite Micro needs equal "
                    "input and output quantization for this op (no requantization)")
    return None


def check_move(g: Graph, op: Op) -> str | None:
    reason = _same_quant(g, op)
    if reason:
        return reason
    if op.kind is K.SPACE_TO_BATCH_ND and g.tensors[op.inputs[0]].dtype is S8 \
            and any(p for pair in op.attrs.pads for p in pair):
        return ("int8 with padding: TFLite Micro pads with a value it leaves unset (differs run to run); "
                "pad before the op or use float32")
    if op.kind in (K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND, K.DEPTH_TO_SPACE, K.SPACE_TO_DEPTH) \
            and len(g.tensors[op.inputs[0]].shape) != 4:
        return "needs a 4-D NHWC input"
    for i in op.outputs:
        if g.tensors[i].size != sum(_count([d for d, _, _ in m.loops]) for m in _moves(g, op) if m.dst == i
                                    and not m.empty) and op.kind is not K.SPACE_TO_BATCH_ND:
            return f"output '{g.tensors[i].name}' is not covered by its copies"
    deep = [len(m.loops) for m in _moves(g, op) if len(m.loops) > MAX_LOOPS]
    if deep:
        return f"needs {deep[0]} nested loops (the copy kernel takes {MAX_LOOPS})"
    return None


def lower_move(em, op: Op) -> None:
    g = em.graph
    y = g.tensors[op.outputs[0]]
    e = y.dtype.itemsize
    if op.kind is K.SPACE_TO_BATCH_ND and any(p for pair in op.attrs.pads for p in pair):
        # float32 pads with 0.0 (int8 with padding is refused: see check_move)
        p = em.params("tml_fill_t", dict(n=y.size, elem=e, value=[0, 0, 0, 0]))
        em.call(op, f"tml_fill({p}, 0, {em.ptr(op.outputs[0])})", "tml_move.c")
    for m in _moves(g, op):
        emit_move(em, op, m, e)


def emit_move(em, op: Op, m: Move, e: int) -> None:
    """One ``tml_copy_nd`` call doing ``m`` on elements of ``e`` bytes (nothing for an empty copy)."""
    if m.empty:
        return
    r = len(m.loops)
    pad = [0] * (MAX_LOOPS - r)
    p = em.params("tml_copy_nd_t", dict(
        rank=r, elem=e, dims=[d for d, _, _ in m.loops] + pad, in_step=[s * e for _, s, _ in m.loops] + pad,
        out_step=[s * e for _, _, s in m.loops] + pad, in_base=m.in_base * e, out_base=m.out_base * e))
    em.call(op, f"tml_copy_nd({p}, {operand_ptr(em, m.src)}, {em.ptr(m.dst)})", "tml_move.c")


def check_gather(g: Graph, op: Op) -> str | None:
    return _same_quant(g, op)


def lower_gather(em, op: Op) -> None:
    g = em.graph
    x = g.tensors[op.inputs[0]]
    a = op.attrs
    inner = _count(x.shape[a.axis + 1:]) * x.dtype.itemsize
    p = em.params("tml_gather_t", dict(outer=_count(x.shape[:a.axis]), n_idx=len(a.indices),
                                       axis=x.shape[a.axis], inner=inner,
                                       idx=em.array("int32_t", np.array(a.indices, np.int32), "gi")))
    em.call(op, f"tml_gather({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_move.c")


# ---- reductions ------------------------------------------------------------------------------

def check_reduce(g: Graph, op: Op) -> str | None:
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if y.dtype is not x.dtype:
        return "input and output types differ"
    if mean_layout(g, op) is None:
        return f"reduction axes {list(op.attrs.axes)} are not contiguous"
    if x.dtype is S8 and op.kind is not K.SUM:
        return _same_quant(g, op)
    if x.dtype is S8 and (x.quant.per_channel or y.quant.per_channel):
        return "needs per-tensor quantization"
    return None


def lower_reduce(em, op: Op) -> None:
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    outer, count, inner = mean_layout(g, op)
    src, dst = operand_ptr(em, op.inputs[0]), em.ptr(op.outputs[0])
    if op.kind is K.SUM and x.dtype is S8:
        # TFLM QuantizedMeanOrSum(compute_sum=true): the mean's kernel without 1/count in the multiplier
        mult, shift = quantize_multiplier(f32(x.quant.s) / f32(y.quant.s))
        p = em.params("tml_mean_s8_t", dict(outer=outer, count=count, inner=inner, in_zp=x.quant.zp,
                                            out_zp=y.quant.zp, shift=shift, mult=mult))
        em.call(op, f"tml_mean_s8({p}, {src}, {dst})", "tml_mean_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")
        return
    code = {K.REDUCE_MAX: 0, K.REDUCE_MIN: 1, K.SUM: 2}[op.kind]
    p = em.params("tml_reduce_t", dict(outer=outer, count=count, inner=inner, op=code))
    fn = "tml_reduce_s8" if x.dtype is S8 else "tml_reduce_f32"
    em.call(op, f"{fn}({p}, {src}, {dst})", "tml_reduce.c")


def _arg_layout(g: Graph, op: Op) -> tuple[int, int, int]:
    shape, ax = g.tensors[op.inputs[0]].shape, op.attrs.axis
    return _count(shape[:ax]), int(shape[ax]), _count(shape[ax + 1:])


def check_arg(g: Graph, op: Op) -> str | None:
    y = g.tensors[op.outputs[0]]
    if y.dtype is DType.INT64 and g.source_format == "onnx":   # ONNX's ArgMax gives int64
        return None
    if y.dtype is not DType.INT32:
        return (f"output type {y.dtype.np_name} (TFLite Micro computes int32 indices only: convert with "
                "tf.argmax(..., output_type=tf.int32))")
    return None


def lower_arg(em, op: Op) -> None:
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    outer, count, inner = _arg_layout(g, op)
    p = em.params("tml_arg_t", dict(outer=outer, count=count, inner=inner, is_min=op.kind is K.ARG_MIN,
                                    out64=y.dtype is DType.INT64))
    fn = "tml_arg_s8" if x.dtype is S8 else "tml_arg_f32"
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_reduce.c")


# ---- resizing --------------------------------------------------------------------------------

def nearest_index(out_size: int, in_size: int, align: bool, half: bool) -> list[int]:
    """TFLite's GetNearestNeighbor for every output index, in float32 as it computes."""
    scale = (np.float32(in_size - 1) / np.float32(out_size - 1) if align and out_size > 1
             else np.float32(in_size) / np.float32(out_size))
    off = np.float32(0.5 if half else 0.0)
    out = []
    for v in range(out_size):
        s = np.float32(np.float32(v) + off) * scale
        i = int(math.floor(s + 0.5) if s >= 0 else -math.floor(-s + 0.5)) if align else int(math.floor(s))
        i = min(i, in_size - 1)
        out.append(max(0, i) if half else i)
    return out


def _cdiv(a: int, b: int) -> int:
    """C's truncating integer division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def bilinear_s8_tables(out_size: int, in_size: int, align: bool, half: bool):
    """(lo, hi, weight of hi in 1/1024) per output index: TFLite's ResizeBilinearInteger."""
    scale = ((1 << 10) * in_size + out_size // 2) // out_size
    if align and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    lo, hi, w = [], [], []
    for v in range(out_size):
        s = v * scale + scale // 2 - (1 << 9) if half else v * scale
        l0 = max(_cdiv(s, 1 << 10), 0)
        lo.append(l0)
        hi.append(min(_cdiv(s + (1 << 10) - 1, 1 << 10), in_size - 1))
        w.append(s - (1 << 10) * l0)
    return lo, hi, w


def bilinear_f32_tables(out_size: int, in_size: int, align: bool, half: bool):
    """(lo, hi, fraction input - lo) per output index: TFLite's float ResizeBilinear."""
    scale = np.float32(in_size) / np.float32(out_size)
    if align and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    lo, hi, frac = [], [], []
    for v in range(out_size):
        s = (np.float32(np.float32(v) + np.float32(0.5)) * scale - np.float32(0.5) if half
             else np.float32(v) * scale)
        s = np.float32(s)
        lo.append(max(int(math.floor(s)), 0))
        hi.append(min(int(math.ceil(s)), in_size - 1))
        frac.append(np.float32(s - np.float32(lo[-1])))
    return lo, hi, frac


def check_resize(g: Graph, op: Op) -> str | None:
    x = g.tensors[op.inputs[0]]
    if len(x.shape) != 4:
        return "needs a 4-D NHWC input"
    if op.attrs.align_corners and op.attrs.half_pixel_centers:
        return "align_corners together with half_pixel_centers (TFLite Micro refuses it)"
    return _same_quant(g, op)


def lower_resize(em, op: Op) -> None:
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    a = op.attrs
    n, ih, iw, c = x.shape
    oh, ow = a.size
    dims = dict(batches=n, in_h=ih, in_w=iw, out_h=oh, out_w=ow)
    arr = lambda v, h: em.array("int32_t", np.array(v, np.int32), h)  # noqa: E731
    if op.kind is K.RESIZE_NEAREST_NEIGHBOR:
        ys = nearest_index(oh, ih, a.align_corners, a.half_pixel_centers)
        xs = nearest_index(ow, iw, a.align_corners, a.half_pixel_centers)
        p = em.params("tml_resize_nearest_t", dict(dims, depth=c * y.dtype.itemsize, ys=arr(ys, "ry"),
                                                   xs=arr(xs, "rx")))
        em.call(op, f"tml_resize_nearest({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
                "tml_resize.c")
        return
    if x.dtype is S8:
        (yl, yh, dy), (xl, xh, dx) = (bilinear_s8_tables(oh, ih, a.align_corners, a.half_pixel_centers),
                                      bilinear_s8_tables(ow, iw, a.align_corners, a.half_pixel_centers))
        fields = dict(dy=arr(dy, "rdy"), dx=arr(dx, "rdx"), fy="0", fx="0")
        fn = "tml_resize_bilinear_s8"
    else:
        (yl, yh, fy), (xl, xh, fx) = (bilinear_f32_tables(oh, ih, a.align_corners, a.half_pixel_centers),
                                      bilinear_f32_tables(ow, iw, a.align_corners, a.half_pixel_centers))
        fields = dict(dy="0", dx="0", fy=em.array("float", np.array(fy, np.float32), "rfy"),
                      fx=em.array("float", np.array(fx, np.float32), "rfx"))
        fn = "tml_resize_bilinear_f32"
    p = em.params("tml_resize_bilinear_t", dict(dims, depth=c, y_lo=arr(yl, "ryl"), y_hi=arr(yh, "ryh"),
                                                x_lo=arr(xl, "rxl"), x_hi=arr(xh, "rxh"), **fields))
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_resize.c")


_MOVES = (K.TRANSPOSE, K.SLICE, K.STRIDED_SLICE, K.SPLIT, K.SPLIT_V, K.UNPACK, K.PACK, K.TILE, K.BROADCAST_TO,
          K.DEPTH_TO_SPACE, K.SPACE_TO_DEPTH, K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND)

LOWERINGS = {}
for _dt in DType:
    LOWERINGS.update({(k, _dt): Lowering(lower_move, check_move) for k in _MOVES})
    LOWERINGS[(K.GATHER, _dt)] = Lowering(lower_gather, check_gather)
    LOWERINGS[(K.RESIZE_NEAREST_NEIGHBOR, _dt)] = Lowering(lower_resize, check_resize)
for _dt in (S8, F32):
    LOWERINGS.update({(k, _dt): Lowering(lower_reduce, check_reduce) for k in (K.REDUCE_MAX, K.REDUCE_MIN, K.SUM)})
    LOWERINGS.update({(k, _dt): Lowering(lower_arg, check_arg) for k in (K.ARG_MAX, K.ARG_MIN)})
    LOWERINGS[(K.RESIZE_BILINEAR, _dt)] = Lowering(lower_resize, check_resize)
