"""ONNX Attention (opsets 23-25) as IR ops in float32: scaled dot-product attention with
grouped key/value heads, a key/value cache, an additive or boolean mask, causal and sliding
windows, a soft cap and the optional ``qk_matmul_output``.

Q, K and V are taken in ONNX's order ([B, heads, S, D]; a rank-3 [B, S, heads*D] input is
reshaped and transposed to it), then::

    K, V    = Concat(past, K / V) on the sequence axis        (present_key / present_value)
    S       = BATCH_MATMUL(Q * scale, K, adj_y)               grouped heads: Q reshaped to
                                                              [B, kv_heads, group*Sq, D], no copy
    S       = tanh(S / softcap) * softcap                     (softcap > 0)
    P       = SOFTMAX(S + bias)                               then masked keys and rows zeroed
    Y       = BATCH_MATMUL(P, V)

The bias is the attention mask (run time or constant) plus the causal, window and padding
masks, which are known when the model is compiled (their key offset is the past length).
Masked places are -inf in ONNX. An IR constant must be finite, so the constant masks' -inf is
made at run time as LOG of a constant 0/1 "allowed" tensor (the constant folding pass does not
evaluate LOG); cgen's float ADD, like TFLite's, clamps it to -FLT_MAX, whose exp(x - max) is
0 as exp(-inf) is. ONNX's rule for a row whose every key is masked (probabilities 0, not the
NaN of a softmax over only -inf) is kept: with constant masks such rows are known and zeroed;
with a run-time mask, its -inf entries are found as ``MINIMUM(m - m, 1)`` (-inf - -inf is NaN,
and cgen's MINIMUM, ``a < b ? a : b``, gives 1 for it; 0 for any finite m), the probabilities
of masked keys set to 0 and each row divided by its sum (at least 1e-30: a row with no key
left stays 0). A row whose unmasked keys all have mask values at -FLT_MAX is still computed as
ONNX does. A qk_matmul_output of mode 2 (logits plus bias) holds -FLT_MAX where ONNX has -inf
for a run-time mask's -inf, as every cgen float ADD does; with constant -inf masks it is refused.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import DType, OpKind
from ...ir import attrs as A
from .layout import Layout
from .shape_ops import Fail, cv_attrs

K = OpKind
F32 = DType.FLOAT32


class _Builder:
    """Emits float32 ops of one node into the reader ``cv`` (tensors named after its first
    output and ``tag``; also used by gru.py)."""

    def __init__(self, cv, node, tag: str = "attn"):
        self.cv, self.node, self.tag, self.n = cv, node, tag, 0

    def op(self, kind, ins, shape, attrs=None, dtype=F32) -> int:
        self.n += 1
        t = self.cv._tensor(f"{next(o for o in self.node.output if o)}/{self.tag}{self.n}", shape, dtype)
        self.cv._emit(kind, list(ins), [t], attrs)
        return t

    def const(self, value, hint="k") -> int:
        return self.cv._const(np.asarray(value, np.float32), F32, hint=hint)

    def shape(self, idx) -> tuple[int, ...]:
        return tuple(self.cv.tensors[idx].shape)

    def reshape(self, idx, shape) -> int:
        return idx if self.shape(idx) == tuple(shape) else self.op(K.RESHAPE, [idx], shape)

    def ew(self, kind, a, b) -> int:
        shape = np.broadcast_shapes(self.shape(a), self.shape(b))
        return self.op(kind, [a, b], shape, A.Elementwise())

    def operand(self, name) -> int:
        """Input ``name`` as a float32 tensor in ONNX's order."""
        cv = self.cv
        if name in cv.consts:
            return self.const(cv._const_f(name), "qkv")
        v = cv._source_layout(name)
        if cv.tensors[v.idx].dtype is not F32:
            raise Fail(f"input '{name}' is {cv.tensors[v.idx].dtype.np_name} (Attention compiles in float32)")
        return v.idx

    def bind(self, k: int, idx: int) -> None:
        """Output ``k`` of the node is IR tensor ``idx`` (ONNX's order)."""
        from .reader import Val
        name = self.node.output[k]
        shape = self.cv._shape(name)
        if tuple(self.shape(idx)) != tuple(shape):
            raise Fail(f"output {k} '{name}' has shape {list(shape)}, computed {list(self.shape(idx))}")
        out = self.cv._tensor(name, shape, F32)
        self.cv._emit(K.RESHAPE, [idx], [out])
        self.cv.vals[name] = Val(out, Layout.SAME, shape)


def _heads(b: _Builder, idx: int, heads: int, what: str) -> int:
    """A rank-3 [B, S, heads*D] operand as [B, heads, S, D]."""
    bs, s, hidden = b.shape(idx)
    if heads <= 0 or hidden % heads:
        raise Fail(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    x = b.reshape(idx, (bs, s, heads, hidden // heads))
    return b.op(K.TRANSPOSE, [x], (bs, heads, s, hidden // heads), A.Transpose((0, 2, 1, 3)))


def _static_bias(sq: int, skv: int, offset: int, causal: bool, left: int, right: int) -> np.ndarray:
    """The causal and window masks as 0 / -inf, shape [Sq, Skv]; query i is key position i+offset."""
    diff = (np.arange(sq)[:, None] + offset) - np.arange(skv)[None, :]
    allowed = np.ones((sq, skv), bool)
    if causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    return np.where(allowed, np.float32(0), np.float32(-np.inf))


def _mask_values(mask: np.ndarray, skv: int) -> np.ndarray:
    """A constant attn_mask as an additive float32 mask padded with -inf to ``skv`` keys."""
    if mask.dtype == np.bool_:
        mask = np.where(mask, np.float32(0), np.float32(-np.inf))
    mask = mask.astype(np.float32)
    pad = skv - mask.shape[-1]
    if pad < 0:
        raise Fail(f"attn_mask has {mask.shape[-1]} keys, more than the {skv} of K")
    if pad:
        mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=-np.inf)
    return mask


def attention(cv, node) -> None:
    a = cv_attrs(node)
    names = list(node.input) + [""] * (7 - len(node.input))
    q_name, k_name, v_name, mask_name, past_k, past_v, nonpad = names[:7]
    if nonpad:
        raise Fail("nonpad_kv_seqlen (per-batch key lengths) is not supported")
    if bool(past_k) != bool(past_v):
        raise Fail("past_key and past_value must be given together")
    if a.get("softmax_precision", 1) != 1:
        raise Fail(f"softmax_precision {a['softmax_precision']} (float32 only)")
    mode = int(a.get("qk_matmul_output_mode", 0))
    if mode not in (0, 1, 2, 3):
        raise Fail(f"qk_matmul_output_mode {mode}")
    softcap = float(a.get("softcap", 0.0))
    causal = bool(a.get("is_causal", 0))
    left, right = int(a.get("left_window_size", -1)), int(a.get("right_window_size", -1))
    b = _Builder(cv, node)

    q, k, v = (b.operand(n) for n in (q_name, k_name, v_name))
    rank = len(b.shape(q))
    if rank not in (3, 4) or len(b.shape(k)) != rank or len(b.shape(v)) != rank:
        raise Fail(f"Q, K, V of shapes {[list(b.shape(x)) for x in (q, k, v)]} (rank 3 or 4 each)")
    if rank == 3:
        if "q_num_heads" not in a or "kv_num_heads" not in a:
            raise Fail("rank-3 inputs need q_num_heads and kv_num_heads")
        q = _heads(b, q, int(a["q_num_heads"]), "Q")
        k = _heads(b, k, int(a["kv_num_heads"]), "K")
        v = _heads(b, v, int(a["kv_num_heads"]), "V")
    bs, hq, sq, d = b.shape(q)
    past = 0
    if past_k:
        pk, pv = b.operand(past_k), b.operand(past_v)
        past = b.shape(pk)[2]
        k = b.op(K.CONCATENATION, [pk, k], np.add(b.shape(k), (0, 0, past, 0)), A.Concatenation(2))
        v = b.op(K.CONCATENATION, [pv, v], np.add(b.shape(v), (0, 0, b.shape(pv)[2], 0)), A.Concatenation(2))
    _, hk, skv, dk = b.shape(k)
    dv = b.shape(v)[3]
    if dk != d or b.shape(v)[:3] != (bs, hk, skv) or b.shape(k)[0] != bs or hk == 0 or hq % hk:
        raise Fail(f"Q {[bs, hq, sq, d]}, K {list(b.shape(k))}, V {list(b.shape(v))} do not fit "
                   "(query heads a multiple of key/value heads, equal batch and head size)")
    for out_k, idx in ((1, k), (2, v)):
        if len(node.output) > out_k and node.output[out_k]:
            b.bind(out_k, idx)

    scale = a.get("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    root = np.float32(math.sqrt(scale))   # ONNX scales Q and K by sqrt(scale) each
    qs = b.ew(K.MUL, q, b.const([root * root]))
    group = hq // hk
    s = b.op(K.BATCH_MATMUL, [b.reshape(qs, (bs, hk, group * sq, d)), k], (bs, hk, group * sq, skv),
             A.BatchMatMul(adj_y=True))
    s = b.reshape(s, (bs, hq, sq, skv))
    if softcap > 0:
        t = b.op(K.TANH, [b.ew(K.DIV, s, b.const([softcap]))], (bs, hq, sq, skv))
        s = b.ew(K.MUL, t, b.const([softcap]))

    # the bias: the run-time mask, a constant mask's finite values, and the masked places
    static = np.zeros((sq, skv), np.float32)
    if causal or left >= 0 or right >= 0:
        static = static + _static_bias(sq, skv, past, causal, left, right)
    runtime = runtime_inf = None
    if mask_name and mask_name in cv.consts:
        static = static + _mask_values(np.asarray(cv._const_f(mask_name)), skv)
    elif mask_name:
        runtime = b.operand(mask_name)
        mshape = b.shape(runtime)
        if len(mshape) > 4 or mshape[-1] > skv:
            raise Fail(f"attn_mask of shape {list(mshape)} for {skv} keys")
        # 1 where the mask is -inf (m - m is NaN there, and MINIMUM(NaN, 1) is 1), else 0
        runtime_inf = b.ew(K.MINIMUM, b.ew(K.SUB, runtime, runtime), b.const([1.0]))
        if mshape[-1] < skv:   # padded with masked keys
            pad = mshape[:-1] + (skv - mshape[-1],)
            runtime, runtime_inf = (b.op(K.CONCATENATION, [x, b.const(np.zeros(pad), "pad")], mshape[:-1] + (skv,),
                                         A.Concatenation(len(mshape) - 1)) for x in (runtime, runtime_inf))
            static = static + np.concatenate([np.zeros(mshape, np.float32), np.full(pad, -np.inf, np.float32)], -1)
    masked = np.isneginf(static)
    if mode == 2 and masked.any():
        raise Fail("qk_matmul_output_mode 2 with a causal, window or padding mask (its -inf entries)")
    parts = [] if runtime is None else [runtime]
    if np.where(masked, 0, static).any():
        parts.append(b.const(np.where(masked, 0, static), "bias"))
    if masked.any():   # log(0) = -inf, made at run time (IR constants are finite); ADD clamps it to -FLT_MAX
        parts.append(b.op(K.LOG, [b.const(~masked, "allowed")], masked.shape))
    raw = None
    for part in parts:
        raw = part if raw is None else b.ew(K.ADD, raw, part)
    logits = s if raw is None else b.ew(K.ADD, s, raw)
    p = b.op(K.SOFTMAX, [logits], b.shape(logits), A.Softmax(1.0))

    # masked keys get probability 0, and rows with every key masked 0 everywhere
    if runtime is not None:   # renormalized over the keys not masked (0 / tiny for rows of none)
        masked_any = runtime_inf if not masked.any() else \
            b.ew(K.MAXIMUM, runtime_inf, b.const(masked, "masked"))
        p = b.ew(K.MUL, p, b.ew(K.SUB, b.const([1.0]), masked_any))
        shape = b.shape(p)
        total = b.op(K.SUM, [p], shape[:-1] + (1,), A.Mean((len(shape) - 1,), True))
        p = b.ew(K.DIV, p, b.ew(K.MAXIMUM, total, b.const([1e-30])))
    elif masked.all(axis=-1).any():
        p = b.ew(K.MUL, p, b.const(~masked.all(axis=-1, keepdims=True), "rows"))
    if mode == 2:
        qk_out = logits
    elif mode == 3:
        qk_out = p
    else:
        qk_out = s
    if len(node.output) > 3 and node.output[3]:
        b.bind(3, qk_out)

    y = b.op(K.BATCH_MATMUL, [b.reshape(p, (bs, hk, group * sq, skv)), v], (bs, hk, group * sq, dv),
             A.BatchMatMul())
    y = b.reshape(y, (bs, hq, sq, dv))
    if rank == 3:
        y = b.op(K.TRANSPOSE, [y], (bs, sq, hq, dv), A.Transpose((0, 2, 1, 3)))
        y = b.reshape(y, (bs, sq, hq * dv))
    b.bind(0, y)
