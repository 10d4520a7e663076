"""ONNX data movement, reductions and resizing: Transpose, Split, Slice, Tile,
Expand, Gather, ReduceMax/Min/Sum (and ReduceMean other than over H, W of NCHW with
keepdims, which the reader makes a global average pool), ArgMax/ArgMin, DepthToSpace (DCR),
SpaceToDepth and Resize, as the IR ops of :mod:`platformio_tinyml.ir.shape_ops`.

Layout (see :mod:`.layout`): a rank-4 activation is stored NHWC, so every
ONNX axis is mapped to where it lives in the IR tensor, and an op's output
is rank-4 NHWC or, at other ranks, in ONNX order. Where the IR's element
order of a result would differ from ONNX's (e.g. reducing H alone of an NCHW
tensor without keepdims), the node is refused in one line. int8 (QDQ) runs
through a node only when its output is quantized like its input (pure data
movement, as TFLite Micro requires); otherwise it computes in float.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, OpKind
from ...ir import attrs as A
from . import layout as L
from . import qdq
from .layout import Layout

K = OpKind
# int8 through these only (bytes move unchanged): the others compute in float, as onnxruntime does.
_INT8_SAME = {K.TRANSPOSE, K.SLICE, K.TILE, K.BROADCAST_TO, K.GATHER, K.DEPTH_TO_SPACE, K.SPACE_TO_DEPTH,
              K.REDUCE_MAX, K.REDUCE_MIN, K.RESIZE_NEAREST_NEIGHBOR}


class Fail(Exception):
    """Raised as the reader's _Fail (one line naming the node); ``final``: the node is invalid,
    not to be carried as an opaque op either."""

    def __init__(self, detail: str, final: bool = False):
        super().__init__(detail)
        self.final = final


def _base(cv, name):
    v = cv._get(name)
    return v.src if hasattr(v, "src") else v


def _in_pos(base, axis: int) -> int:
    """Where ONNX axis ``axis`` of ``base`` lives in its IR tensor."""
    return L.ir_axis(axis, len(base.shape), base.layout)


def _out_layout(base, shape) -> Layout:
    """A result of the input's rank keeps its layout; another rank is in ONNX order."""
    if len(shape) == len(base.shape):
        return base.layout
    if len(shape) == 4:
        raise Fail(f"a rank-4 result from a rank-{len(base.shape)} input")
    return Layout.SAME


def _out_map(rank: int, lay: Layout) -> list[int]:
    """For each IR axis of an output in layout ``lay``, its ONNX axis."""
    return list(L.NCHW_TO_NHWC) if lay is Layout.NHWC else list(range(rank))


def _emit(cv, node, kind, attrs, base, out_shape):
    """Emit ``kind`` on ``base`` (int8 when the node is in a QDQ island with equal quantization)."""
    x = node.input[0]
    lay = _out_layout(base, out_shape)
    outq = cv._mode(node, [x])
    if outq is not None and kind in _INT8_SAME and qdq.same_quant(cv.tensors[base.idx].quant, outq.quant):
        src = base.idx
    else:
        outq, src = None, cv._float(x).idx
    out = cv._out(node, lay, outq, shape=out_shape)
    cv._emit(kind, [src], [out.idx], attrs)


def _check_flat(base):
    if base.layout is Layout.FLAT_NHWC:
        raise Fail("a flattened NCHW tensor (its element order differs from ONNX's)")


def _same_order(base, kept_onnx_axes) -> None:
    """A lower-rank result is stored in ONNX order: the kept input axes (ONNX numbering),
    taken in IR order, must come in ONNX order (size-1 axes do not matter)."""
    kept = [a for a in kept_onnx_axes if base.shape[a] != 1]
    if sorted(kept, key=lambda a: _in_pos(base, a)) != kept:
        raise Fail(f"the result's element order in the NHWC layout differs from ONNX's (input "
                   f"{list(base.shape)})")


def transpose(cv, node) -> bool:
    """General Transpose (the reader handles those that only cancel the layout change)."""
    base = _base(cv, node.input[0])
    _check_flat(base)
    rank = len(base.shape)
    perm = [int(p) % rank for p in (cv_attrs(node).get("perm") or range(rank - 1, -1, -1))]
    out_shape = tuple(base.shape[p] for p in perm)
    lay = _out_layout(base, out_shape)
    ir_perm = tuple(_in_pos(base, perm[j]) for j in _out_map(rank, lay))
    _emit(cv, node, K.TRANSPOSE, A.Transpose(ir_perm), base, out_shape)
    return True


def cv_attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def keepdims(a: dict) -> bool:
    """A reduction's ``keepdims``: 0 or 1. ONNX (and onnxruntime) keep the dimensions only for 1,
    so any other value is refused rather than read as true."""
    v = a.get("keepdims", 1)
    if v not in (0, 1):
        raise Fail(f"keepdims {v} is not 0 or 1", final=True)
    return bool(v)


def _int_array(cv, name, what: str) -> np.ndarray:
    """The constant ``name`` as int64; ONNX gives indices, shapes and axes as integers, so a
    float or complex one is refused (not truncated)."""
    if name not in cv.consts:
        raise Fail(f"{what} must be constant")
    arr = np.asarray(cv.consts[name])
    if not np.issubdtype(arr.dtype, np.integer):
        raise Fail(f"{what} must be integers, not {arr.dtype}", final=True)   # an invalid model
    return arr.astype(np.int64)


def _const_ints(cv, name, what: str) -> list[int]:
    return [int(v) for v in _int_array(cv, name, what).reshape(-1)]


def split(cv, node) -> bool:
    base = _base(cv, node.input[0])
    _check_flat(base)
    a = cv_attrs(node)
    rank = len(base.shape)
    axis = int(a.get("axis", 0)) % rank
    n = len(node.output)
    sizes = a.get("split")
    if sizes is None and cv._opt(node, 1):
        sizes = _const_ints(cv, node.input[1], "split")
    if sizes is None:
        d = base.shape[axis]
        sizes = [-(-d // n)] * (n - 1) + [d - (-(-d // n)) * (n - 1)]
    if len(sizes) != n or sum(sizes) != base.shape[axis] or min(sizes) < 1:
        raise Fail(f"split {list(sizes)} of an axis of size {base.shape[axis]}")
    xf = cv._float(node.input[0])   # several outputs: computed in float
    lay = base.layout
    outs = []
    for k, s in enumerate(sizes):
        shape = list(base.shape)
        shape[axis] = s
        outs.append(cv._out(node, lay, None, shape=tuple(shape), k=k).idx)
    cv._emit(K.SPLIT, [xf.idx], outs, A.Split(_in_pos(base, axis), tuple(int(s) for s in sizes)))
    return True


def slice_(cv, node) -> bool:
    base = _base(cv, node.input[0])
    _check_flat(base)
    shape, rank = base.shape, len(base.shape)
    if cv.opset < 10:
        a = cv_attrs(node)
        starts, ends, axes, steps = list(a["starts"]), list(a["ends"]), a.get("axes"), None
    else:
        starts, ends = _const_ints(cv, node.input[1], "starts"), _const_ints(cv, node.input[2], "ends")
        axes = _const_ints(cv, node.input[3], "axes") if cv._opt(node, 3) else None
        steps = _const_ints(cv, node.input[4], "steps") if cv._opt(node, 4) else None
    axes = list(range(len(starts))) if axes is None else [int(x) % rank for x in axes]
    steps = steps or [1] * len(starts)
    begin, size, stride = [0] * rank, list(shape), [1] * rank
    for ax, b, e, s in zip(axes, starts, ends, steps):
        n = shape[ax]
        if s == 0:
            raise Fail("step 0")
        b, e = b + n if b < 0 else b, e + n if e < 0 else e
        if s > 0:
            b, e = min(max(b, 0), n), min(max(e, 0), n)
        else:
            b, e = min(max(b, 0), n - 1), min(max(e, -1), n - 1)
        idx = range(b, e, s)
        begin[ax], size[ax], stride[ax] = (idx[0] if len(idx) else 0), len(idx), s
    if 0 in size:
        raise Fail("an empty slice")
    m = _out_map(rank, base.layout)
    _emit(cv, node, K.SLICE, A.Slice(tuple(begin[j] for j in m), tuple(size[j] for j in m),
                                     tuple(stride[j] for j in m)), base, tuple(size))
    return True


def tile(cv, node) -> bool:
    base = _base(cv, node.input[0])
    _check_flat(base)
    reps = _const_ints(cv, node.input[1], "repeats")
    if len(reps) != len(base.shape) or min(reps) < 1:
        raise Fail(f"repeats {reps} for a rank-{len(base.shape)} input")
    out_shape = tuple(d * r for d, r in zip(base.shape, reps))
    m = _out_map(len(out_shape), base.layout)
    _emit(cv, node, K.TILE, A.Tile(tuple(reps[j] for j in m)), base, out_shape)
    return True


def expand(cv, node) -> bool:
    base = _base(cv, node.input[0])
    _check_flat(base)
    shape = _const_ints(cv, node.input[1], "shape")
    try:
        out_shape = tuple(int(d) for d in np.broadcast_shapes(tuple(base.shape), tuple(shape)))
    except ValueError:
        raise Fail(f"input {list(base.shape)} does not broadcast to {shape}") from None
    if len(out_shape) != len(base.shape):
        raise Fail(f"Expand from rank {len(base.shape)} to rank {len(out_shape)}")
    m = _out_map(len(out_shape), base.layout)
    reps = [o // d for o, d in zip(out_shape, base.shape)]
    _emit(cv, node, K.BROADCAST_TO, A.Tile(tuple(reps[j] for j in m)), base, out_shape)
    return True


def gather(cv, node) -> bool:
    base = _base(cv, node.input[0])
    _check_flat(base)
    rank = len(base.shape)
    axis = int(cv_attrs(node).get("axis", 0)) % rank
    idx = _int_array(cv, node.input[1], "indices")
    n = base.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise Fail(f"indices outside an axis of size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    out_shape = tuple(base.shape[:axis]) + tuple(idx.shape) + tuple(base.shape[axis + 1:])
    if idx.ndim > 1 and base.layout is not Layout.SAME:
        raise Fail(f"{idx.ndim}-D indices on an NCHW tensor")
    if idx.ndim == 0:
        _same_order(base, [a for a in range(rank) if a != axis])
    ir_axis = _in_pos(base, axis)
    _emit(cv, node, K.GATHER, A.Gather(ir_axis, tuple(int(i) for i in idx.reshape(-1)), tuple(idx.shape)),
          base, out_shape)
    return True


def _axes(cv, node, rank: int) -> list[int]:
    a = cv_attrs(node)
    axes = a.get("axes")
    if axes is None and cv._opt(node, 1):
        axes = _const_ints(cv, node.input[1], "axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            raise Fail("noop_with_empty_axes")
        axes = range(rank)
    return sorted({int(x) % rank for x in axes})


def reduce(cv, node) -> bool:
    kind = {"ReduceMax": K.REDUCE_MAX, "ReduceMin": K.REDUCE_MIN, "ReduceSum": K.SUM,
            "ReduceMean": K.MEAN}[node.op_type]
    base = _base(cv, node.input[0])
    _check_flat(base)
    rank = len(base.shape)
    axes = _axes(cv, node, rank)
    keep = keepdims(cv_attrs(node))
    out_shape = tuple(1 if a in axes else d for a, d in enumerate(base.shape)) if keep else \
        tuple(d for a, d in enumerate(base.shape) if a not in axes)
    if not keep:
        _same_order(base, [a for a in range(rank) if a not in axes])
    ir_axes = sorted(_in_pos(base, a) for a in axes)
    _emit(cv, node, kind, A.Mean(tuple(ir_axes), keep), base, out_shape)
    return True


def argminmax(cv, node) -> bool:
    kind = K.ARG_MAX if node.op_type == "ArgMax" else K.ARG_MIN
    base = _base(cv, node.input[0])
    _check_flat(base)
    a = cv_attrs(node)
    if a.get("select_last_index", 0):
        raise Fail("select_last_index=1")
    rank = len(base.shape)
    axis = int(a.get("axis", 0)) % rank
    keep = keepdims(a)
    out_shape = tuple(1 if k == axis else d for k, d in enumerate(base.shape)) if keep else \
        tuple(d for k, d in enumerate(base.shape) if k != axis)
    if not keep:
        _same_order(base, [k for k in range(rank) if k != axis])
    xf = cv._float(node.input[0])
    lay = _out_layout(base, out_shape)
    out = cv._tensor(node.output[0], L.ir_shape(out_shape, lay), DType.INT64)
    from .reader import Val
    cv.vals[node.output[0]] = Val(out, lay, out_shape)
    cv._emit(kind, [xf.idx], [out], A.ArgMinMax(_in_pos(base, axis)))
    return True


def depth_space(cv, node) -> bool:
    base = _base(cv, node.input[0])
    if base.layout is not Layout.NHWC:
        raise Fail("needs a rank-4 NCHW input")
    a = cv_attrs(node)
    b = int(a.get("blocksize", 0))
    mode = a.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    n, c, h, w = base.shape
    if node.op_type == "DepthToSpace":
        if mode != "DCR":
            raise Fail(f"mode '{mode}' (only DCR, TensorFlow's order)")
        if b < 1 or c % (b * b):
            raise Fail(f"blocksize {b} for {c} channels")
        kind, out_shape = K.DEPTH_TO_SPACE, (n, c // (b * b), h * b, w * b)
    else:
        if mode != "DCR":        # opset 28 added CRD to SpaceToDepth; the kernel has TensorFlow's order
            raise Fail(f"mode '{mode}' (only DCR, TensorFlow's order)")
        if b < 1 or h % b or w % b:
            raise Fail(f"blocksize {b} for a {h}x{w} input")
        kind, out_shape = K.SPACE_TO_DEPTH, (n, c * b * b, h // b, w // b)
    _emit(cv, node, kind, A.Block(size=b), base, out_shape)
    return True


def resize(cv, node) -> bool:
    base = _base(cv, node.input[0])
    if base.layout is not Layout.NHWC:
        raise Fail("needs a rank-4 NCHW input")
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in cv_attrs(node).items()}
    mode = a.get("mode", "nearest")
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    n, c, h, w = base.shape
    out_shape = cv._shape(node.output[0])
    if tuple(out_shape[:2]) != (n, c):
        raise Fail("resizing other axes than H and W")
    oh, ow = out_shape[2], out_shape[3]
    for k, what in ((2, "scales"), (3, "sizes")):     # a run-time roi only matters to tf_crop_and_resize
        if cv.opset >= 11 and cv._opt(node, k) and node.input[k] not in cv.consts:
            raise Fail(f"{what} given at run time (input '{node.input[k]}'); only constant {what} "
                       "compile (export with a fixed scale factor or output size)")
    scales = None
    if cv.opset >= 11 and cv._opt(node, 2) and node.input[2] in cv.consts and np.asarray(cv.consts[node.input[2]]).size:
        scales = [float(s) for s in np.asarray(cv.consts[node.input[2]]).reshape(-1)]
    if scales and (abs(scales[2] * h - oh) > 1e-6 or abs(scales[3] * w - ow) > 1e-6):
        raise Fail(f"scales {scales} that do not give the output size exactly")
    if a.get("antialias", 0) or a.get("exclude_outside", 0) or a.get("axes") is not None:
        raise Fail("antialias, exclude_outside or axes")
    if mode == "nearest":
        if ctm != "asymmetric" or a.get("nearest_mode", "round_prefer_floor") != "floor":
            raise Fail(f"nearest with coordinate_transformation_mode '{ctm}' and nearest_mode "
                       f"'{a.get('nearest_mode', 'round_prefer_floor')}' (only asymmetric + floor, as "
                       "PyTorch's Upsample exports)")
        kind, attrs = K.RESIZE_NEAREST_NEIGHBOR, A.Resize((oh, ow), False, False)
    elif mode == "linear":
        table = {"asymmetric": (False, False), "align_corners": (True, False), "half_pixel": (False, True),
                 "pytorch_half_pixel": (False, True)}
        if ctm not in table or (ctm == "pytorch_half_pixel" and min(oh, ow) < 2):
            raise Fail(f"linear with coordinate_transformation_mode '{ctm}'")
        kind, attrs = K.RESIZE_BILINEAR, A.Resize((oh, ow), *table[ctm])
    else:
        raise Fail(f"mode '{mode}'")
    _emit(cv, node, kind, attrs, base, tuple(out_shape))
    return True


HANDLERS = {"Split": split, "Slice": slice_, "Tile": tile, "Expand": expand, "Gather": gather,
            "ReduceMax": reduce, "ReduceMin": reduce, "ReduceSum": reduce, "ArgMax": argminmax,
            "ArgMin": argminmax, "DepthToSpace": depth_space, "SpaceToDepth": depth_space, "Resize": resize}


def adapt(fn, fail_cls):
    """``fn`` as a reader handler: its :class:`Fail` becomes the reader's one-line failure."""
    def handler(cv, node):
        try:
            return fn(cv, node)
        except Fail as e:
            raise fail_cls(str(e), e.final) from None
    return handler
