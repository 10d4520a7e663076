"""ONNX GRU and RNN in float32, unrolled over the time steps (the sequence length is static)
into IR ops; cgen has no fused kernel for either.

Per direction, the input projections of all steps are computed at once from X and W (with the
biases that do not depend on the state), and each step, on the state h (the initial one, or
zeros), with x_t its step's STRIDED_SLICE of the projections::

    GRU    zr = LOGISTIC(x_t[z, r] + FC(h, R[z, r]))        z, r: STRIDED_SLICEs of zr
           n  = TANH(x_t[h] + r * FC(h, R[h], Rb[h]))        linear_before_reset = 1
           n  = TANH(x_t[h] + FC(r * h, R[h]))               linear_before_reset = 0 (Rb[h] in x_t)
           h  = n + z * (h - n)                              ONNX's (1 - z) * n + z * h
    RNN    h  = TANH(x_t + FC(h, R))

A reverse direction walks the steps last to first. Y is the CONCATENATION of every step's h in
Y's element order (step, direction for layout 0; the same per batch row for layout 1), Y_h of
each direction's last h, each RESHAPEd to ONNX's shape. Products with constant W / R are
FULLY_CONNECTED; W, R or B given at run time are STRIDED_SLICEd by direction and gate, their
products BATCH_MATMUL (adj_y) and their biases ADDed. Only the default activations are
compiled; clip, sequence_lens shorter than the sequence and sequences longer than MAX_STEPS
(code size grows with each step) are refused.
"""

from __future__ import annotations

import numpy as np

from ...ir import OpKind
from ...ir import attrs as A
from .attention import _Builder
from .layout import Layout
from .shape_ops import Fail, cv_attrs

K = OpKind
MAX_STEPS = 512
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class _Recurrence:
    """The checked operands of one GRU / RNN node (``gates`` weight blocks per direction)."""

    def __init__(self, cv, node, gates: int, activations: list[str]):
        a = cv_attrs(node)
        self.cv, self.node, self.b = cv, node, _Builder(cv, node, node.op_type.lower())
        b = self.b
        direction = _text(a.get("direction", "forward"))
        if direction not in _DIRECTIONS:
            raise Fail(f"direction '{direction}'")
        self.dirs = _DIRECTIONS[direction]
        nd = len(self.dirs)
        acts = [_text(x) for x in a.get("activations", [])]
        if acts and [x.lower() for x in acts] != [x.lower() for x in activations] * nd:
            raise Fail(f"activations {acts} (only the default {', '.join(activations)} are supported)")
        for what, bad in (("clip", "clip" in a),
                          ("activation_alpha/beta", "activation_alpha" in a or "activation_beta" in a)):
            if bad:
                raise Fail(f"{what} is not supported")
        self.wrb = [None] + [self._operand(cv._opt(node, k)) for k in (1, 2, 3)]
        w, r, bias = (self._shape(x) for x in self.wrb[1:])
        hs = self.hs = r[-1] if len(r) == 3 else 0
        if len(w) != 3 or r != (nd, gates * hs, hs) or w[:2] != (nd, gates * hs) \
                or int(a.get("hidden_size", hs)) != hs or bias not in ((), (nd, 2 * gates * hs)):
            raise Fail(f"W {list(w)}, R {list(r)} (for {nd} direction(s) of {gates} gates: "
                       f"[{nd}, {gates}*hidden, input], [{nd}, {gates}*hidden, hidden], B [{nd}, {2 * gates}*hidden])")
        self.layout = int(a.get("layout", 0))
        if self.layout not in (0, 1):
            raise Fail(f"layout {self.layout}")
        self.x = b.operand(node.input[0])
        xs = b.shape(self.x)
        if len(xs) != 3 or xs[2] != w[2]:
            raise Fail(f"input X {list(xs)} for W {list(w)} (a rank-3 sequence is needed)")
        self.seq, self.batch = (xs[0], xs[1]) if self.layout == 0 else (xs[1], xs[0])
        if self.seq > MAX_STEPS:
            raise Fail(f"{self.seq} time steps (at most {MAX_STEPS}: each step is unrolled into code)")
        lens = cv._opt(node, 4)
        if lens and not (lens in cv.consts and np.all(np.asarray(cv.consts[lens]) == self.seq)):
            raise Fail("sequence_lens other than the full sequence is not supported")

    def _operand(self, name: str | None):
        """Input ``name`` as a float32 numpy array when constant, else an IR tensor (None if absent)."""
        if name is None:
            return None
        return np.asarray(self.cv._const_f(name), np.float32) if name in self.cv.consts else self.b.operand(name)

    def _shape(self, x) -> tuple[int, ...]:
        """The shape of an :meth:`_operand` (() for an absent one)."""
        if x is None:
            return ()
        return tuple(x.shape) if isinstance(x, np.ndarray) else self.b.shape(x)

    def data(self, idx: int) -> np.ndarray | None:
        """The values of IR tensor ``idx`` when it is a constant."""
        return self.cv.tensors[idx].data

    def rows(self, k: int, d: int, lo: int, n: int) -> int | None:
        """Rows ``lo:lo+n`` of direction ``d`` of input ``k`` (1: W, 2: R, 3: B; None for an absent B)."""
        src = self.wrb[k]
        if src is None:
            return None
        if isinstance(src, np.ndarray):
            return self.b.const(src[d, lo:lo + n], "w")
        rest = self.b.shape(src)[2:]
        return self.b.op(K.STRIDED_SLICE, [src], (n,) + rest, A.Slice((d, lo) + (0,) * len(rest), (1, n) + rest,
                                                              (1,) * (2 + len(rest))))

    def add(self, x: int | None, y: int | None) -> int | None:
        """``x + y``, folded when both are constants (None: an absent operand)."""
        if x is None or y is None:
            return y if x is None else x
        cx, cy = self.data(x), self.data(y)
        if cx is not None and cy is not None:
            return self.b.const(cx + cy, "b")
        return self.b.ew(K.ADD, x, y)

    def linear(self, x: int, w: int, bias: int | None = None) -> int:
        """``x`` times ``w`` ([out, in]) transposed, plus ``bias``: FULLY_CONNECTED for constant
        ``w`` and ``bias``, else BATCH_MATMUL (adj_y) and ADD."""
        b = self.b
        shape = b.shape(x)[:-1] + b.shape(w)[:1]
        if self.data(w) is not None and (bias is None or self.data(bias) is not None):
            ins = [x, w] + ([] if bias is None else [bias])
            return b.op(K.FULLY_CONNECTED, ins, shape, A.FullyConnected(keep_num_dims=len(shape) > 2))
        y = b.op(K.BATCH_MATMUL, [x, w], shape, A.BatchMatMul(adj_y=True))
        return y if bias is None else b.ew(K.ADD, y, bias)

    def step(self, proj: int, t: int) -> int:
        """Step ``t`` of the projections ``proj``, as [batch, n]."""
        n = self.b.shape(proj)[2]
        begin, size = ((t, 0, 0), (1, self.batch, n)) if self.layout == 0 else ((0, t, 0), (self.batch, 1, n))
        return self.b.op(K.STRIDED_SLICE, [proj], (self.batch, n), A.Slice(begin, size, (1, 1, 1)))

    def columns(self, idx: int, lo: int, n: int) -> int:
        """Columns ``lo:lo+n`` of a [batch, ...] tensor."""
        return self.b.op(K.STRIDED_SLICE, [idx], (self.batch, n), A.Slice((0, lo), (self.batch, n), (1, 1)))

    def initial(self, d: int) -> int:
        """Direction ``d``'s initial state as [batch, hidden] (zeros when absent)."""
        cv, b, nd = self.cv, self.b, len(self.dirs)
        name = cv._opt(self.node, 5)
        shape = (nd, self.batch, self.hs) if self.layout == 0 else (self.batch, nd, self.hs)
        if name is None:
            return b.const(np.zeros((self.batch, self.hs)), "h0")
        if name in cv.consts:
            c = np.asarray(cv._const_f(name), np.float32).reshape(shape)
            return b.const(c[d] if self.layout == 0 else c[:, d], "h0")
        v = b.operand(name)
        if b.shape(v) != shape:
            raise Fail(f"initial_h of shape {list(b.shape(v))}, expected {list(shape)}")
        begin, size = ((d, 0, 0), (1, self.batch, self.hs)) if self.layout == 0 else \
            ((0, d, 0), (self.batch, 1, self.hs))
        return b.op(K.STRIDED_SLICE, [v], (self.batch, self.hs), A.Slice(begin, size, (1, 1, 1)))

    def run(self, project, cell) -> None:
        """Unrolls ``cell(d, proj, t, h) -> h`` over the steps of each direction (``proj``:
        ``project(d)``, its input projections) and binds Y and Y_h."""
        ys, last = [], []
        for d, reverse in enumerate(self.dirs):
            proj = project(d)
            h, hs = self.initial(d), [0] * self.seq
            for t in (reversed(range(self.seq)) if reverse else range(self.seq)):
                h = hs[t] = cell(d, proj, t, h)
            ys.append(hs)
            last.append(h)
        nd = len(self.dirs)
        shapes = ((self.seq, nd, self.batch, self.hs), (nd, self.batch, self.hs)) if self.layout == 0 else \
            ((self.batch, self.seq, nd, self.hs), (self.batch, nd, self.hs))
        for k, pieces in ((0, [ys[d][t] for t in range(self.seq) for d in range(nd)]), (1, last)):
            if len(self.node.output) > k and self.node.output[k]:
                self.bind(k, pieces, shapes[k])

    def bind(self, k: int, pieces: list[int], shape) -> None:
        """Output ``k`` as the [batch, hidden] ``pieces`` in its element order: concatenated along
        axis 0 (layout 0: pieces outermost) or 1 (layout 1: batch outermost), then reshaped."""
        b = self.b
        whole = pieces[0]
        if len(pieces) > 1:
            axis = self.layout
            cat = (self.batch * len(pieces), self.hs) if axis == 0 else (self.batch, self.hs * len(pieces))
            whole = b.op(K.CONCATENATION, pieces, cat, A.Concatenation(axis))
        out = self.cv._out(self.node, Layout.SAME, None, shape=shape, k=k)
        self.cv._emit(K.RESHAPE, [whole], [out.idx])


def gru(cv, node) -> None:
    lbr = int(cv_attrs(node).get("linear_before_reset", 0))
    rc = _Recurrence(cv, node, 3, ["Sigmoid", "Tanh"])
    b, hs = rc.b, rc.hs
    weights = {}   # per direction: R's z, r rows, R's h rows and the h bias used at each step

    def project(d):
        weights[d] = (rc.rows(2, d, 0, 2 * hs), rc.rows(2, d, 2 * hs, hs), rc.rows(3, d, 5 * hs, hs) if lbr else None)
        zr = rc.linear(rc.x, rc.rows(1, d, 0, 2 * hs), rc.add(rc.rows(3, d, 0, 2 * hs), rc.rows(3, d, 3 * hs, 2 * hs)))
        h_bias = rc.rows(3, d, 2 * hs, hs)
        n = rc.linear(rc.x, rc.rows(1, d, 2 * hs, hs), h_bias if lbr else rc.add(h_bias, rc.rows(3, d, 5 * hs, hs)))
        return zr, n

    def cell(d, proj, t, h):
        r_zr, r_h, rb_h = weights[d]
        zr = b.op(K.LOGISTIC, [b.ew(K.ADD, rc.step(proj[0], t), rc.linear(h, r_zr))], (rc.batch, 2 * hs))
        z, r = rc.columns(zr, 0, hs), rc.columns(zr, hs, hs)
        n = b.ew(K.MUL, r, rc.linear(h, r_h, rb_h)) if lbr else rc.linear(b.ew(K.MUL, r, h), r_h)
        n = b.op(K.TANH, [b.ew(K.ADD, rc.step(proj[1], t), n)], (rc.batch, hs))
        return b.ew(K.ADD, n, b.ew(K.MUL, z, b.ew(K.SUB, h, n)))

    rc.run(project, cell)


def rnn(cv, node) -> None:
    rc = _Recurrence(cv, node, 1, ["Tanh"])
    b, hs = rc.b, rc.hs
    weights = {}

    def project(d):
        weights[d] = rc.rows(2, d, 0, hs)
        return rc.linear(rc.x, rc.rows(1, d, 0, hs), rc.add(rc.rows(3, d, 0, hs), rc.rows(3, d, hs, hs)))

    def cell(d, proj, t, h):
        return b.op(K.TANH, [b.ew(K.ADD, rc.step(proj, t), rc.linear(h, weights[d]))], (rc.batch, hs))

    rc.run(project, cell)


HANDLERS = {"GRU": gru, "RNN": rnn}
