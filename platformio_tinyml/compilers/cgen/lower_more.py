"""Lowerings of TFLite builtins the IR carries as opaque ops (``attrs.Opaque``).

The TFLite reader keeps an operator without an IR kind as the file has it: its
type name, options and input tensors (parameters such as PADV2's paddings or
REVERSE_V2's axes are constant input tensors). cgen takes the ones below, each
exactly as TensorFlow Lite Micro computes it, through the kernels other ops
already use where they fit (the strided copy ``tml_copy_nd``, ``tml_pad``, the
element-wise kernels). Every (OPAQUE, dtype) entry of :data:`LOWERINGS` is one
dispatcher: it picks the op's lowering by its type name (:data:`OPAQUE_OPS`)
and otherwise falls back to the float32 functions of ``lower_ew`` (or refuses
the op in one line).
"""

from __future__ import annotations

import numpy as np

from ...ir import Activation, DType, Graph, Op, OpKind
from .lower_common import per_batch
from .lower_ew import _check_opaque_f32, _opaque_f32, binary_f32_call
from .lower_f32 import act_range_f32
from .lower_s8 import _pad_call
from .lower_shape import Move, _strides, emit_move
from .lowering import Lowering
from .quant import f32, quantize_multiplier

S8, F32, I32, BOOL = DType.INT8, DType.FLOAT32, DType.INT32, DType.BOOL
MORE_C = ("tml_more.c", "tml_fixedpoint.h")     # the runtime files of tml_more.c's kernels


def _const(g: Graph, op: Op, k: int) -> np.ndarray | None:
    """Input ``k``'s constant data (None when absent or computed at run time)."""
    if k >= len(op.inputs) or op.inputs[k] < 0 or not g.tensors[op.inputs[k]].is_const:
        return None
    return np.asarray(g.tensors[op.inputs[k]].data)


def _arity(op: Op, n_in: tuple[int, ...], n_out: int = 1) -> str | None:
    ins = sum(1 for i in op.inputs if i >= 0)
    if ins not in n_in or len(op.outputs) != n_out:
        want = " or ".join(str(n) for n in n_in)
        return f"{ins} input(s) and {len(op.outputs)} output(s) ({want} and {n_out} expected)"
    return None


def _dtypes(g: Graph, op: Op, allowed, ins=(0,)) -> str | None:
    """A reason unless inputs ``ins`` and the output share one type out of ``allowed``."""
    y = g.tensors[op.outputs[0]]
    for k in ins:
        t = g.tensors[op.inputs[k]]
        if t.dtype is not y.dtype:
            return f"input {k} is {t.dtype.np_name}, the output {y.dtype.np_name}"
    if y.dtype not in allowed:
        return (f"{y.dtype.np_name} tensors (TFLite Micro's kernel, and cgen's, take "
                f"{', '.join(d.np_name for d in allowed)})")
    return None


def _same_shape(x, y, what: str = "input") -> str | None:
    if tuple(x.shape) != tuple(y.shape):
        return f"output shape {list(y.shape)} differs from the {what}'s {list(x.shape)}"
    return None


# ---- PADV2 ------------------------------------------------------------------------------------

def _pads(g: Graph, op: Op):
    p = _const(g, op, 1)
    x = g.tensors[op.inputs[0]]
    if p is None or p.shape != (len(x.shape), 2):
        return None
    return [(int(a), int(b)) for a, b in p.reshape(-1, 2)]


def _check_padv2(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2, 3)) or _dtypes(g, op, (S8, F32))
    if err:
        return err
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    pads = _pads(g, op)
    if pads is None:
        return "paddings must be a constant [rank, 2] tensor"
    if len(x.shape) > 4:
        return f"rank {len(x.shape)} > 4"
    if any(a < 0 or b < 0 for a, b in pads):
        return "negative paddings"
    if tuple(y.shape) != tuple(d + a + b for d, (a, b) in zip(x.shape, pads)):
        return f"output shape {list(y.shape)} does not follow from the paddings"
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        c = g.tensors[op.inputs[2]]
        if _const(g, op, 2) is None or c.size != 1:
            return "the pad value must be a constant scalar"
        if c.dtype is not y.dtype:
            return f"the pad value is {c.dtype.np_name}, the output {y.dtype.np_name}"
        if y.dtype is S8 and (c.quant is None or y.quant is None or (c.quant.scale, c.quant.zero_point) !=
                              (y.quant.scale, y.quant.zero_point)):
            return "the pad value is quantized differently from the output (TFLite Micro requires them equal)"
    return None


def _padv2(em, op: Op) -> None:
    g = em.graph
    y = g.tensors[op.outputs[0]]
    c = _const(g, op, 2)
    if c is not None:         # TFLite Micro pads with the value's bytes (int8: its raw code)
        value = list(np.asarray(c, y.dtype.numpy).reshape(-1)[:1].view(np.uint8))
    elif y.dtype is S8:       # no value: the output zero point, as PAD
        value = [int(np.int8(y.quant.zp).view(np.uint8))]
    else:
        value = [0, 0, 0, 0]
    _pad_call(em, op, "tml_pad", [int(v) for v in value], _pads(g, op))


# ---- REVERSE_V2 -------------------------------------------------------------------------------

_ANY = (S8, DType.UINT8, DType.INT16, I32, DType.INT64, F32, BOOL)


def _axes(g: Graph, op: Op) -> list[int] | None:
    a = _const(g, op, 1)
    rank = len(g.tensors[op.inputs[0]].shape)
    if a is None or a.ndim > 1:
        return None
    out = [int(v) + rank if int(v) < 0 else int(v) for v in a.reshape(-1)]
    return out if all(0 <= v < rank for v in out) else None


def _check_reverse(g: Graph, op: Op) -> str | None:
    axes = _axes(g, op) if len(op.inputs) == 2 else None
    err = _arity(op, (2,)) or _dtypes(g, op, _ANY) or (
        "the axes must be a constant 1-D tensor of axes of the input" if axes is None else None)
    if err:
        return err
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if len(set(axes)) != len(axes):
        return f"axis repeated in {axes}"
    if axes and sorted(axes) != list(range(min(axes), max(axes) + 1)):
        return f"axes {axes} are not contiguous (TFLite Micro reverses contiguous axes only)"
    return _same_shape(x, y)


def _reverse(em, op: Op) -> None:
    """The strided copy walking the reversed axes backwards (bytes unchanged, as TFLite Micro)."""
    g = em.graph
    x = g.tensors[op.inputs[0]]
    axes, st = set(_axes(g, op)), _strides(x.shape)
    steps = [-s if k in axes else s for k, s in enumerate(st)]
    base = sum((int(d) - 1) * s for k, (d, s) in enumerate(zip(x.shape, st)) if k in axes)
    emit_move(em, op, Move(op.inputs[0], op.outputs[0], x.shape, steps, st, base), x.dtype.itemsize)


# ---- CAST -------------------------------------------------------------------------------------

# TML_T_* codes of tml_kernels.h
_CAST_CODES = {S8: 0, DType.UINT8: 1, DType.INT16: 2, I32: 3, F32: 4, BOOL: 5}
# TFLite Micro's CAST converts between any two of these (not uint8)
_CAST_TYPES = (S8, DType.INT16, I32, F32, BOOL)


def _check_cast(g: Graph, op: Op) -> str | None:
    err = _arity(op, (1,))
    if err:
        return err
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x.dtype not in _CAST_TYPES or y.dtype not in _CAST_TYPES:
        return f"{x.dtype.np_name} to {y.dtype.np_name} (TFLite Micro's CAST has no such conversion)"
    if x.size != y.size:
        return f"input {list(x.shape)} and output {list(y.shape)} differ in size"
    return None


def _cast(em, op: Op) -> None:
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    p = em.params("tml_cast_t", dict(n=x.size, **{"from": _CAST_CODES[x.dtype]}, to=_CAST_CODES[y.dtype]))
    em.call(op, f"tml_cast({p}, {_in(em, op)}, {em.ptr(op.outputs[0])})", *MORE_C)


def _in(em, op: Op, k: int = 0) -> str:
    return em.ptr(op.inputs[k], const=True)


# ---- ADD_N, FLOOR_DIV, FLOOR_MOD -----------------------------------------------------------------

def _check_add_n(g: Graph, op: Op) -> str | None:
    n = len(op.inputs)
    err = _arity(op, (n,) if n >= 2 else (2,)) or _dtypes(g, op, (S8, F32), range(n))
    if err:
        return err
    y = g.tensors[op.outputs[0]]
    for k, i in enumerate(op.inputs):
        t = g.tensors[i]
        if tuple(t.shape) != tuple(y.shape):
            return f"input {k} is {list(t.shape)}, the output {list(y.shape)} (ADD_N does not broadcast)"
        x = g.tensors[op.inputs[0]]
        if y.dtype is S8 and (t.quant.zp, f32(t.quant.s)) != (x.quant.zp, f32(x.quant.s)):
            return f"input {k} is quantized differently from input 0 (TFLite Micro requires them equal)"
    return None


def _add_n(em, op: Op) -> None:
    g = em.graph
    y = g.tensors[op.outputs[0]]
    if y.dtype is F32:        # ((in0 + in1) + in2) + ...: TFLite's sum order, into the output
        binary_f32_call(em, op, "tml_add_f32", op.inputs[0], op.inputs[1], runtime="tml_elementwise_f32.c")
        for i in op.inputs[2:]:
            binary_f32_call(em, op, "tml_add_f32", op.outputs[0], i, runtime="tml_elementwise_f32.c")
        return
    p = em.params("tml_add_n_s8_t", dict(n=len(op.inputs), count=y.size,
                                         **_sum_s8(g.tensors[op.inputs[0]], y)))
    ins = em.fresh("ins")
    em.consts.append(f"static const int8_t *const {ins}[{len(op.inputs)}] = "
                     f"{{{', '.join(_in(em, op, k) for k in range(len(op.inputs)))}}};")
    em.call(op, f"tml_add_n_s8({p}, {ins}, {em.ptr(op.outputs[0])})", *MORE_C)


def _sum_s8(x, y) -> dict:
    """The rescaling fields of TFLite Micro's int8 ADD_N and CUMSUM (20 bits of headroom)."""
    s_in = float(f32(x.quant.s))
    in_mult, in_shift = quantize_multiplier(s_in / (2 * s_in))                # as TFLite Micro: in double
    out_mult, out_shift = quantize_multiplier(2 * s_in / ((1 << 20) * float(f32(y.quant.s))))
    return dict(in_offset=-x.quant.zp, out_offset=y.quant.zp, in_mult=in_mult, out_mult=out_mult,
                in_shift=in_shift, out_shift=out_shift)


def _check_floor(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2,)) or _dtypes(g, op, (F32,), (0, 1))
    if err:
        return err
    shapes = [g.tensors[i].shape for i in op.inputs]
    try:
        want = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return f"inputs {[list(s) for s in shapes]} do not broadcast"
    y = g.tensors[op.outputs[0]]
    if want != tuple(y.shape) or len(want) > 4:
        return f"output {list(y.shape)} (the inputs broadcast to {list(want)}; at most 4-D)"
    return None


def _floor(em, op: Op) -> None:
    fn = "tml_floordiv_f32" if op.attrs.op == "FLOOR_DIV" else "tml_floormod_f32"
    binary_f32_call(em, op, fn, op.inputs[0], op.inputs[1])


# ---- ZEROS_LIKE, FILL -------------------------------------------------------------------------
# With constant inputs a graph pass folds both into constants (ir/passes.py): these run only for a
# graph output, a quantized tensor or a value computed at run time.

_ZEROS_TYPES = (S8, I32, DType.INT64, F32)      # what TFLite Micro's kernels take
_FILL_TYPES = (S8, I32, F32)


def _check_zeros_like(g: Graph, op: Op) -> str | None:
    return _arity(op, (1,)) or _dtypes(g, op, _ZEROS_TYPES)


def _zeros_like(em, op: Op) -> None:
    y = em.graph.tensors[op.outputs[0]]
    p = em.params("tml_fill_t", dict(n=y.nbytes, elem=1, value=[0, 0, 0, 0]))
    em.call(op, f"tml_fill({p}, 0, {em.ptr(op.outputs[0])})", "tml_move.c")


def _check_fill(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2,)) or _dtypes(g, op, _FILL_TYPES, (1,))
    if err:
        return err
    v, y = g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if v.size != 1:
        return f"the value is {list(v.shape)}, not a scalar"
    dims = _const(g, op, 0)
    if dims is not None and tuple(int(d) for d in dims.reshape(-1)) != tuple(y.shape):
        return f"dims {dims.reshape(-1).tolist()} differ from the output shape {list(y.shape)}"
    return None


def _fill(em, op: Op) -> None:
    """The value copied to every element: one strided copy reading it with step 0."""
    y = em.graph.tensors[op.outputs[0]]
    emit_move(em, op, Move(op.inputs[1], op.outputs[0], [y.size], [0], [1]), y.dtype.itemsize)


def _check_broadcast_args(g: Graph, op: Op) -> str | None:
    return ("shapes computed at run time, or a graph output (cgen takes BROADCAST_ARGS of constant shapes, "
            "folded into a constant)")


# ---- GATHER_ND, EMBEDDING_LOOKUP ----------------------------------------------------------------

def _gather_io(op: Op) -> tuple[int, int]:
    """(params, indices) tensor indices: EMBEDDING_LOOKUP takes the ids first."""
    return (op.inputs[1], op.inputs[0]) if op.attrs.op == "EMBEDDING_LOOKUP" else (op.inputs[0], op.inputs[1])


def _check_gather_nd(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2,))
    if err:
        return err
    emb = op.attrs.op == "EMBEDDING_LOOKUP"
    (x, i), y = (g.tensors[t] for t in _gather_io(op)), g.tensors[op.outputs[0]]
    if i.dtype is not I32:
        return f"indices are {i.dtype.np_name} (TFLite Micro takes int32)"
    if x.dtype not in (S8, F32) or not (y.dtype is x.dtype or (emb and (x.dtype, y.dtype) == (S8, F32))):
        return (f"{x.dtype.np_name} values into a {y.dtype.np_name} output (TFLite Micro takes int8 or float32"
                f"{', and int8 into float32' if emb else ''})")
    depth = 1 if emb else (i.shape[-1] if i.shape else 0)
    if emb and (len(i.shape) != 1 or len(x.shape) < 2):
        return "needs 1-D ids and values of rank 2 or more"
    if not 1 <= depth <= min(5, len(x.shape)):
        return f"index depth {depth} (1 to min(5, rank of the values) expected)"
    want = (tuple(i.shape) if emb else tuple(i.shape[:-1])) + tuple(x.shape[depth:])
    if tuple(y.shape) != want:
        return f"output shape {list(y.shape)} (expected {list(want)})"
    if x.dtype is S8 and y.dtype is F32 and (x.quant is None or x.quant.per_channel or x.quant.zp != 0):
        return "int8 values need one scale and zero point 0 (TFLite Micro's hybrid lookup)"
    return None


def _gather_nd(em, op: Op) -> None:
    g = em.graph
    xi, ii = _gather_io(op)
    x, i, y = g.tensors[xi], g.tensors[ii], g.tensors[op.outputs[0]]
    depth = 1 if op.attrs.op == "EMBEDDING_LOOKUP" else i.shape[-1]
    st = _strides(x.shape)
    hybrid = y.dtype is not x.dtype
    p = em.params("tml_gather_nd_t", dict(
        n=i.size // depth, depth=depth, slice=int(np.prod(x.shape[depth:], dtype=np.int64)), elem=x.dtype.itemsize,
        dims=[int(d) for d in x.shape[:depth]] + [0] * (5 - depth),
        step=[s * x.dtype.itemsize for s in st[:depth]] + [0] * (5 - depth),
        scale=float(f32(x.quant.s)) if hybrid else 0.0))
    em.call(op, f"tml_gather_nd({p}, {em.ptr(xi, const=True)}, {em.ptr(ii, const=True)}, {em.ptr(op.outputs[0])})",
            *MORE_C)


# ---- CUMSUM -----------------------------------------------------------------------------------

def _cumsum_axis(g: Graph, op: Op) -> int | None:
    a, rank = _const(g, op, 1), len(g.tensors[op.inputs[0]].shape)
    if a is None or a.size != 1 or not -rank <= int(a.reshape(-1)[0]) < rank:
        return None
    return int(a.reshape(-1)[0]) % rank


def _check_cumsum(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2,)) or _dtypes(g, op, (S8, F32))
    if err:
        return err
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if _cumsum_axis(g, op) is None:
        return "the axis must be a constant scalar axis of the input"
    return _same_shape(x, y)


def _cumsum(em, op: Op) -> None:
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    ax, o = _cumsum_axis(g, op), dict(op.attrs.options)
    f = dict(outer=int(np.prod(x.shape[:ax], dtype=np.int64)), count=x.shape[ax],
             inner=int(np.prod(x.shape[ax + 1:], dtype=np.int64)), exclusive=bool(o.get("Exclusive")),
             reverse=bool(o.get("Reverse")))
    f.update(_sum_s8(x, y) if x.dtype is S8 else dict(in_offset=0, out_offset=0, in_mult=0, out_mult=0,
                                                      in_shift=0, out_shift=0))
    p = em.params("tml_cumsum_t", f)
    em.call(op, f"tml_cumsum_{'s8' if x.dtype is S8 else 'f32'}({p}, {_in(em, op)}, {em.ptr(op.outputs[0])})",
            *MORE_C)


# ---- REDUCE_ALL ---------------------------------------------------------------------------------

def _all_layout(g: Graph, op: Op) -> tuple[int, int, int] | None:
    """(outer, count, inner) of the reduced axes when constant and contiguous."""
    a, shape = _const(g, op, 1), g.tensors[op.inputs[0]].shape
    if a is None or not all(-len(shape) <= int(v) < len(shape) for v in a.reshape(-1)):
        return None
    axes = sorted({int(v) % len(shape) for v in a.reshape(-1)})
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        return None
    n = lambda dims: int(np.prod(dims, dtype=np.int64))  # noqa: E731
    return n(shape[:axes[0]]), n(shape[axes[0]:axes[-1] + 1]), n(shape[axes[-1] + 1:])


def _check_all(g: Graph, op: Op) -> str | None:
    err = _arity(op, (2,)) or _dtypes(g, op, (BOOL,))
    if err:
        return err
    lay = _all_layout(g, op)
    if lay is None:
        return "the axes must be constant, contiguous axes of the input"
    if lay[1] == 0:
        return "empty reduction"
    if g.tensors[op.outputs[0]].size != lay[0] * lay[2]:
        return f"output {list(g.tensors[op.outputs[0]].shape)} does not fit the reduction"
    return None


def _reduce_all(em, op: Op) -> None:
    """The minimum of the 0/1 bytes: tml_reduce_s8's MIN."""
    outer, count, inner = _all_layout(em.graph, op)
    p = em.params("tml_reduce_t", dict(outer=outer, count=count, inner=inner, op=1))
    em.call(op, f"tml_reduce_s8({p}, (const int8_t *){_in(em, op)}, (int8_t *){em.ptr(op.outputs[0])})",
            "tml_reduce.c")


# ---- L2_POOL_2D ---------------------------------------------------------------------------------

_ACTS = {0: Activation.NONE, 1: Activation.RELU, 2: Activation.RELU_N1_TO_1, 3: Activation.RELU6}


def _l2_geometry(g: Graph, op: Op) -> dict | str:
    """tml_pool_f32_t's fields but the clamp, from Pool2DOptions (TFLite's SAME/VALID padding)."""
    o = dict(op.attrs.options)
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4:
        return "needs a 4-D NHWC input"
    k = (int(o.get("FilterHeight", 0)), int(o.get("FilterWidth", 0)))
    s = (int(o.get("StrideH", 0)), int(o.get("StrideW", 0)))
    if min(k + s) < 1 or o.get("Padding") not in (0, 1):
        return f"filter {list(k)}, strides {list(s)}, padding {o.get('Padding')} (positive sizes, SAME or VALID)"
    same = o["Padding"] == 0
    out = [-(-d // st) if same else (d - kk) // st + 1 for d, kk, st in zip(x.shape[1:3], k, s)]
    if [y.shape[0], *out, x.shape[3]] != [x.shape[0], *y.shape[1:3], y.shape[3]]:
        return f"output shape {list(y.shape)} (the pool gives {[x.shape[0], *out, x.shape[3]]})"
    pads = [max(0, (n - 1) * st + kk - d) // 2 if same else 0 for n, d, kk, st in zip(out, x.shape[1:3], k, s)]
    return dict(in_h=x.shape[1], in_w=x.shape[2], c=x.shape[3], out_h=out[0], out_w=out[1], k_h=k[0], k_w=k[1],
                stride_h=s[0], stride_w=s[1], pad_t=pads[0], pad_l=pads[1])


def _check_l2_pool(g: Graph, op: Op) -> str | None:
    err = _arity(op, (1,)) or _dtypes(g, op, (F32,))
    if err:
        return err
    act = dict(op.attrs.options).get("FusedActivationFunction", 0)
    if act not in _ACTS:
        return f"fused activation {act} (cgen clamps NONE, RELU, RELU_N1_TO_1, RELU6)"
    geo = _l2_geometry(g, op)
    return geo if isinstance(geo, str) else None


def _l2_pool(em, op: Op) -> None:
    lo, hi = act_range_f32(_ACTS[dict(op.attrs.options).get("FusedActivationFunction", 0)])
    p = em.params("tml_pool_f32_t", dict(_l2_geometry(em.graph, op), act_min=lo, act_max=hi))
    per_batch(em, op, "tml_l2pool_f32", p, "tml_pool_f32.c")


# ---- DYNAMIC_UPDATE_SLICE -------------------------------------------------------------------------

def _check_update_slice(g: Graph, op: Op) -> str | None:
    err = _arity(op, (3,)) or _dtypes(g, op, (S8, I32, F32), (0, 1))
    if err:
        return err
    x, u, i, y = (g.tensors[t] for t in (*op.inputs, op.outputs[0]))
    if i.dtype not in (I32, DType.INT64) or tuple(i.shape) != (len(x.shape),):
        return f"start indices {i.dtype.np_name} {list(i.shape)} (int32 or int64 [{len(x.shape)}] expected)"
    if not 1 <= len(x.shape) <= 6 or len(u.shape) != len(x.shape) or any(a > b for a, b in zip(u.shape, x.shape)):
        return f"update {list(u.shape)} does not fit in the operand {list(x.shape)} (rank 1 to 6)"
    return _same_shape(x, y, "operand")


def _update_slice(em, op: Op) -> None:
    g = em.graph
    x, u, i = (g.tensors[t] for t in op.inputs)
    e, n = x.dtype.itemsize, x.size
    if u.size == n:           # TFLite Micro: the update replaces the whole operand, whatever the start
        emit_move(em, op, Move(op.inputs[1], op.outputs[0], [n], [1], [1]), e)
        return
    emit_move(em, op, Move(op.inputs[0], op.outputs[0], [n], [1], [1]), e)
    if u.size == 0:
        return
    pad = [0] * (6 - len(x.shape))
    p = em.params("tml_update_slice_t", dict(rank=len(x.shape), elem=e, idx64=i.dtype is DType.INT64,
                                             out_dims=[int(d) for d in x.shape] + pad,
                                             upd_dims=[int(d) for d in u.shape] + pad))
    em.call(op, f"tml_update_slice({p}, {_in(em, op, 1)}, {_in(em, op, 2)}, {em.ptr(op.outputs[0])})", *MORE_C)


# ---- SVDF -------------------------------------------------------------------------------------
# The reader makes its activation state a variable: inputs [x, weights_feature, weights_time,
# bias, the state read], outputs [output, the next state] (model/tflite/reader.py _svdf_ops).

def _check_svdf(g: Graph, op: Op) -> str | None:
    if len(op.inputs) != 5 or len(op.outputs) != 2:
        return "its activation state must be a variable tensor (TFLite Micro keeps it in one)"
    x, wf, wt, bias, st, y = (g.tensors[t] if t >= 0 else None for t in (*op.inputs, op.outputs[0]))
    if bias is None:
        return "no bias (TFLite Micro's int8 SVDF needs one)"
    types = tuple(t.dtype for t in (x, wf, wt, bias, st, y))
    if types != (S8, S8, DType.INT16, I32, DType.INT16, S8):
        return (f"types {[t.np_name for t in types]} (cgen takes int8 input and output, int8 feature "
                "weights, int16 time weights and state, int32 bias)")
    if not (wf.is_const and wt.is_const and bias.is_const):
        return "the weights and bias must be constant"
    if any(t.quant is None or t.quant.per_channel for t in (x, wf, wt, bias, st, y)) or st.quant.zp:
        return "needs per-tensor quantization and a state with zero point 0"
    rank = int(dict(op.attrs.options).get("Rank", 0))
    (b, n_in), (nf, n_mem) = x.shape if len(x.shape) == 2 else (0, 0), wt.shape if len(wt.shape) == 2 else (0, 0)
    if rank < 1 or nf % rank or tuple(wf.shape) != (nf, n_in) or tuple(st.shape) != (b, n_mem * nf) \
            or tuple(y.shape) != (b, nf // rank) or tuple(bias.shape) != (nf // rank,):
        return (f"shapes input {list(x.shape)}, weights {list(wf.shape)} and {list(wt.shape)}, state "
                f"{list(st.shape)}, output {list(y.shape)} with rank {rank} do not fit TFLite Micro's SVDF")
    if abs(float(np.float32(bias.quant.s)) - float(np.float32(st.quant.s) * np.float32(wt.quant.s))) >= 1e-5:
        return "the bias scale is not the state's times the time weights' (TFLite Micro requires it)"
    return None


def _svdf(em, op: Op) -> None:
    g = em.graph
    x, wf, wt, bias, st, y = (g.tensors[t] for t in (*op.inputs, op.outputs[0]))
    s = [np.float32(t.quant.s) for t in (x, wf, wt, st, y)]     # TFLite Micro multiplies in float
    mult1, shift1 = quantize_multiplier(float(s[0] * s[1] / s[3]))
    mult2, shift2 = quantize_multiplier(float(s[3] * s[2] / s[4]))
    p = em.params("tml_svdf_s8_t", dict(
        batch=x.shape[0], n_input=x.shape[1], n_filter=wf.shape[0], n_memory=wt.shape[1],
        rank=int(dict(op.attrs.options)["Rank"]), in_zp=x.quant.zp, out_zp=y.quant.zp, mult1=mult1,
        mult2=mult2, shift1=shift1, shift2=shift2, wf=em.array("int8_t", wf.data, "sf"),
        wt=em.array("int16_t", wt.data, "st"), bias=em.array("int32_t", bias.data, "sb")))
    em.call(op, f"tml_svdf_s8({p}, {_in(em, op)}, {_in(em, op, 4)}, {em.ptr(op.outputs[0])}, "
                f"{em.ptr(op.outputs[1])})", *MORE_C)


# ---- the dispatcher ---------------------------------------------------------------------------

OPAQUE_OPS: dict[str, Lowering] = {
    "PADV2": Lowering(_padv2, _check_padv2),
    "REVERSE_V2": Lowering(_reverse, _check_reverse),
    "CAST": Lowering(_cast, _check_cast),
    "ADD_N": Lowering(_add_n, _check_add_n),
    "FLOOR_DIV": Lowering(_floor, _check_floor),
    "FLOOR_MOD": Lowering(_floor, _check_floor),
    "ZEROS_LIKE": Lowering(_zeros_like, _check_zeros_like),
    "FILL": Lowering(_fill, _check_fill),
    "BROADCAST_ARGS": Lowering(_zeros_like, _check_broadcast_args),   # folded: the check always refuses
    "GATHER_ND": Lowering(_gather_nd, _check_gather_nd),
    "EMBEDDING_LOOKUP": Lowering(_gather_nd, _check_gather_nd),
    "CUMSUM": Lowering(_cumsum, _check_cumsum),
    "REDUCE_ALL": Lowering(_reduce_all, _check_all),
    "L2_POOL_2D": Lowering(_l2_pool, _check_l2_pool),
    "DYNAMIC_UPDATE_SLICE": Lowering(_update_slice, _check_update_slice),
    "SVDF": Lowering(_svdf, _check_svdf),
}

# Folded into constants by a graph pass (ir/passes.py), never computed by a kernel here.
OPAQUE_FOLDED = frozenset({"BROADCAST_ARGS"})

# The element types each op computes, for benchmarks/op_coverage.py's int8 / float32 columns.
OPAQUE_DTYPES: dict[str, tuple[DType, ...]] = {
    "PADV2": (S8, F32),
    "REVERSE_V2": _ANY,
    "CAST": _CAST_TYPES,
    "ADD_N": (S8, F32),
    "FLOOR_DIV": (F32,),
    "FLOOR_MOD": (F32,),
    "ZEROS_LIKE": _ZEROS_TYPES,
    "FILL": _FILL_TYPES,
    "GATHER_ND": (S8, F32),
    "EMBEDDING_LOOKUP": (S8, F32),
    "CUMSUM": (S8, F32),
    "REDUCE_ALL": (BOOL,),
    "L2_POOL_2D": (F32,),
    "DYNAMIC_UPDATE_SLICE": (S8, I32, F32),
    "SVDF": (S8,),
}


def _entry(g: Graph, op: Op) -> Lowering | None:
    a = op.attrs
    return OPAQUE_OPS.get(a.op) if g.source_format == "tflite" and not a.domain and not a.reason else None


def _check(g: Graph, op: Op) -> str | None:
    entry = _entry(g, op)
    if entry is not None:
        return entry.check(g, op)
    if op.inputs and g.tensors[op.inputs[0]].dtype is F32:
        return _check_opaque_f32(g, op)
    return op.attrs.reason or "cgen has no kernel for this operator"


def _lower(em, op: Op) -> None:
    entry = _entry(em.graph, op)
    (entry.lower if entry is not None else _opaque_f32)(em, op)


def _scratch(g: Graph, op: Op):
    entry = _entry(g, op)
    return entry.scratch(g, op) if entry is not None and entry.scratch is not None else 0


LOWERINGS = {(OpKind.OPAQUE, dt): Lowering(_lower, _check, _scratch) for dt in DType}
