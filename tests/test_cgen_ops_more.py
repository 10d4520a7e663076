"""TFLite builtins the IR carries as opaque ops, compiled by cgen (cgen/lower_more.py),
against TensorFlow Lite Micro.

One-op models written directly with the flatbuffer schema (benchmarks/difftest.py's
builder, as test_cgen_ops_ew.py), built on the host and run on random inputs:
int8 and integer outputs must be bit-exact, float32 within 1e-5 relative. Variants
TFLite Micro has no kernel for, or cgen does not compute exactly, are refused in
one line with the op and its index.
"""

from __future__ import annotations

import numpy as np
import pytest

from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.model.tflite import load_tflite
from test_cgen_ops import FLOAT_TOL, rel_err
from test_cgen_ops_ew import _builder, built

pytest.importorskip("tflite_micro")

_TYPES = {"uint8": "UINT8", "int16": "INT16", "int64": "INT64"}


class Model:
    """A one-op model being written (tensor types beyond the builder's through ``_TYPES``)."""

    def __init__(self):
        self.b = _builder()()
        self.inputs: list[int] = []

    def t(self, shape, dtype: str, q=None, data=None, name: str = "", inp: bool = False) -> int:
        base = dtype if dtype not in _TYPES else "int8"
        q = q or ((1.0, 0) if dtype in ("uint8", "int16") else None)   # the validator wants one
        i = self.b.tensor(shape, base, ([q[0]], [q[1]], 0) if q else None,
                          None if data is None or dtype in _TYPES else data, name)
        if dtype in _TYPES:
            self.b.tensors[i].type = getattr(self.b.S.TensorType, _TYPES[dtype])
            if data is not None:
                buf = self.b.S.BufferT()
                buf.data = np.ascontiguousarray(data, dtype=dtype).reshape(-1).view(np.uint8).tolist()
                self.b.buffers.append(buf)
                self.b.tensors[i].buffer = len(self.b.buffers) - 1
        if inp:
            self.inputs.append(i)
        return i

    def op(self, name: str, ins, outs, opts=None, **fields):
        self.b.op(name, ins, outs, self.b.options(opts, **fields) if opts else None)

    def finish(self, outs) -> bytes:
        return self.b.finish(self.inputs, outs)


def _inputs(g, rng):
    xs = []
    for t in (g.tensors[j] for j in g.inputs):
        dt = t.dtype.numpy
        if dt.kind == "f":
            xs.append((3.0 * rng.standard_normal(t.shape)).astype(dt))
        elif dt == np.bool_:
            xs.append(rng.integers(0, 2, t.shape).astype(dt))
        else:
            info = np.iinfo(dt)
            xs.append(rng.integers(max(info.min, -1000), min(info.max, 1000) + 1, t.shape).astype(dt))
    return xs


def run(buf: bytes, tmp_path, n: int = 3, inputs=None):
    """Compile, build and compare against TFLite Micro on ``n`` random input sets
    (``inputs(g, rng)`` makes one set where the op needs particular values)."""
    g, host, ref = built(buf, tmp_path)
    rng = np.random.default_rng(0)
    for i in range(n):
        xs = (inputs or _inputs)(g, rng)
        for a, b in zip(host.run(xs), ref.run(xs)):
            assert a.shape == b.shape or a.size == b.size, (a.shape, b.shape)
            if a.dtype.kind == "f":
                assert rel_err(a, b) <= FLOAT_TOL, f"sample {i}: relative error {rel_err(a, b):.3g}"
            else:
                d = a.reshape(-1).astype(np.int64) != b.reshape(-1).astype(np.int64)
                assert not d.any(), f"sample {i}: {int(d.sum())} of {d.size} differ at {np.flatnonzero(d)[:8]}"


def refused(buf: bytes, tmp_path, op: str, *words: str, index: int = 0) -> str:
    """The one-line refusal of op #``index`` (``op``), which must name every one of ``words``."""
    path = tmp_path / "m.tflite"
    path.write_bytes(buf)
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    msg = str(e.value)
    assert "\n" not in msg and f"#{index} {op}" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


Q_IN, Q_OUT = (0.05, 3), (0.05, 3)


# ---- PADV2 ----------------------------------------------------------------------------------

def _padv2(dtype: str, pads, value=None, shape=(1, 4, 5, 3), vq=Q_OUT) -> bytes:
    m = Model()
    q = Q_IN if dtype == "int8" else None
    x = m.t(shape, dtype, q, name="x", inp=True)
    p = m.t((len(shape), 2), "int32", data=np.array(pads, np.int32))
    ins = [x, p]
    if value is not None:
        ins.append(m.t((), dtype, vq if dtype == "int8" else None, data=np.array(value, dtype)))
    y = m.t(tuple(d + a + b for d, (a, b) in zip(shape, pads)), dtype, q, name="y")
    m.op("PADV2", ins, [y], "PadV2Options")
    return m.finish([y])


@pytest.mark.parametrize("dtype,value", [("int8", -77), ("int8", None), ("float32", 2.5), ("float32", None)])
def test_padv2(dtype, value, tmp_path):
    run(_padv2(dtype, [[0, 0], [1, 2], [0, 3], [2, 1]], value), tmp_path)


def test_padv2_rank2(tmp_path):
    run(_padv2("float32", [[1, 0], [2, 2]], -1.5, shape=(3, 4)), tmp_path)


def test_padv2_refusals(tmp_path):
    refused(_padv2("int8", [[0, 0], [1, 1], [1, 1], [0, 0]], 5, vq=(0.1, 3)), tmp_path, "PADV2",
            "quantized differently")


# ---- REVERSE_V2 -----------------------------------------------------------------------------

def _reverse(dtype: str, axes, shape=(2, 3, 4, 5)) -> bytes:
    m = Model()
    q = Q_IN if dtype == "int8" else None
    x = m.t(shape, dtype, q, name="x", inp=True)
    a = m.t((len(axes),), "int32", data=np.array(axes, np.int32))
    y = m.t(shape, dtype, q, name="y")
    m.op("REVERSE_V2", [x, a], [y], "ReverseV2Options")
    return m.finish([y])


@pytest.mark.parametrize("dtype,axes", [("float32", [1]), ("int8", [3]), ("int8", [1, 0]), ("float32", [-1, 2]),
                                        ("int32", [0]), ("bool", [2])])
def test_reverse_v2(dtype, axes, tmp_path):
    run(_reverse(dtype, axes), tmp_path)


def test_reverse_v2_refusals(tmp_path):
    refused(_reverse("float32", [1, 1]), tmp_path, "REVERSE_V2", "repeated")
    refused(_reverse("int8", [0, 2]), tmp_path, "REVERSE_V2", "not contiguous")


# ---- CAST -----------------------------------------------------------------------------------

def _cast(src: str, dst: str, shape=(2, 3, 7)) -> bytes:
    m = Model()
    qs = lambda d: (1.0, 0) if d == "int8" else None  # noqa: E731
    x = m.t(shape, src, qs(src), name="x", inp=True)
    y = m.t(shape, dst, qs(dst), name="y")
    m.op("CAST", [x], [y])
    return m.finish([y])


def _cast_inputs(g, rng):
    t = g.tensors[g.inputs[0]]
    if t.dtype.np_name == "float32":   # within every target type's range (C leaves the rest undefined)
        x = rng.uniform(-120.0, 120.0, t.shape).astype(np.float32)
        x.reshape(-1)[:3] = [0.0, -0.75, 0.5]
        return [x]
    return _inputs(g, rng)


CASTS = [(a, b) for a in ("int8", "int16", "int32", "float32", "bool") for b in ("int8", "int16", "int32", "float32",
                                                                               "bool") if a != b]


@pytest.mark.parametrize("src,dst", CASTS, ids=[f"{a}-{b}" for a, b in CASTS])
def test_cast(src, dst, tmp_path):
    run(_cast(src, dst), tmp_path, n=2, inputs=_cast_inputs)


def test_cast_refusals(tmp_path):
    refused(_cast("float32", "uint8"), tmp_path, "CAST", "float32 to uint8")


# ---- ADD_N, FLOOR_DIV, FLOOR_MOD ------------------------------------------------------------

def _add_n(dtype: str, n: int, qout=(0.11, -9), q1=Q_IN) -> bytes:
    m = Model()
    shape = (2, 5, 3)
    q = lambda k: (q1 if k == 1 else Q_IN) if dtype == "int8" else None  # noqa: E731
    ins = [m.t(shape, dtype, q(k), name=f"x{k}", inp=True) for k in range(n)]
    y = m.t(shape, dtype, qout if dtype == "int8" else None, name="y")
    m.op("ADD_N", ins, [y])
    return m.finish([y])


@pytest.mark.parametrize("dtype,n", [("int8", 2), ("int8", 4), ("float32", 2), ("float32", 5)])
def test_add_n(dtype, n, tmp_path):
    run(_add_n(dtype, n), tmp_path)


def test_add_n_refusals(tmp_path):
    refused(_add_n("int8", 3, q1=(0.07, 3)), tmp_path, "ADD_N", "quantized differently")


def _floor_op(op: str, shape_b, dtype="float32") -> bytes:
    m = Model()
    a = m.t((2, 3, 4), dtype, name="a", inp=True)
    b = m.t(shape_b, dtype, name="b", inp=True)
    y = m.t((2, 3, 4), dtype, name="y")
    m.op(op, [a, b], [y])
    return m.finish([y])


def _divisors(g, rng):
    a, b = _inputs(g, rng)
    b = np.where(np.abs(b) < 0.25, 0.7, b).astype(b.dtype)
    if b.size > 3:
        b.reshape(-1)[:3] = [-2.0, 2.0, 1.5]      # exact quotients, both signs
    return [a, b]


@pytest.mark.parametrize("op", ["FLOOR_DIV", "FLOOR_MOD"])
@pytest.mark.parametrize("shape_b", [(2, 3, 4), (3, 1)])
def test_floor_div_mod(op, shape_b, tmp_path):
    run(_floor_op(op, shape_b), tmp_path, inputs=_divisors)


def test_floor_refusals(tmp_path):
    refused(_floor_op("FLOOR_MOD", (2, 3, 4), "int32"), tmp_path, "FLOOR_MOD", "int32")


# ---- ZEROS_LIKE, FILL, BROADCAST_ARGS ---------------------------------------------------------

def _zeros_like(dtype: str, folded: bool) -> bytes:
    m = Model()
    q = Q_IN if dtype == "int8" else None
    x = m.t((2, 3, 4), dtype, q, name="x", inp=True)
    z = m.t((2, 3, 4), dtype, q, name="z")
    m.op("ZEROS_LIKE", [x], [z])
    if not folded:
        return m.finish([z])
    y = m.t((2, 3, 4), dtype, q, name="y")
    m.op("ADD", [x, z], [y], "AddOptions")
    return m.finish([y])


@pytest.mark.parametrize("dtype", ["float32", "int32", "int8", "int64"])
def test_zeros_like(dtype, tmp_path):
    run(_zeros_like(dtype, folded=False), tmp_path, n=1)


def _fill(dtype: str, value=None, out: bool = True, shape=(3, 2, 5)) -> bytes:
    """FILL of a constant ``value`` (a graph input when None): the output, or added to an input."""
    m = Model()
    q = Q_IN if dtype == "int8" else None
    dims = m.t((len(shape),), "int32", data=np.array(shape, np.int32))
    v = m.t((), dtype, q, name="v", inp=value is None, data=None if value is None else np.array(value, dtype))
    f = m.t(shape, dtype, q, name="f")
    m.op("FILL", [dims, v], [f])
    x = m.t(shape, dtype, q, name="x", inp=True)   # (unused by an output FILL: a model has an input)
    if out:
        return m.finish([f])
    y = m.t(shape, dtype, q, name="y")
    m.op("ADD", [x, f], [y], "AddOptions")
    return m.finish([y])


@pytest.mark.parametrize("dtype,value", [("float32", None), ("int8", None), ("int32", None), ("float32", -2.25),
                                         ("int32", 7)])
def test_fill(dtype, value, tmp_path):
    run(_fill(dtype, value), tmp_path, n=2)


def test_constant_fill_and_zeros_fold(tmp_path):
    """With constant inputs both become constants: the graph keeps only the ADD."""
    for k, buf in enumerate([_fill("float32", 1.5, out=False), _zeros_like("float32", folded=True)]):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(buf)
        assert [op.kind for op in load_tflite(path).ops] == [OpKind.ADD]
        (tmp_path / str(k)).mkdir()
        run(buf, tmp_path / str(k), n=1)


def _broadcast_args(const: bool) -> bytes:
    """FILL of the shape BROADCAST_ARGS computes, with a value from the input."""
    m = Model()
    a = m.t((3,), "int32", name="a", data=np.array([2, 1, 4], np.int32))
    b = m.t((2,), "int32", name="b", inp=not const, data=np.array([3, 1], np.int32) if const else None)
    s = m.t((3,), "int32", name="s")
    m.op("BROADCAST_ARGS", [a, b], [s])
    v = m.t((), "float32", name="v", inp=True)
    y = m.t((2, 3, 4), "float32", name="y")
    m.op("FILL", [s, v], [y])
    return m.finish([y])


def test_broadcast_args_folds(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_broadcast_args(True))
    g = load_tflite(path)
    assert [op.attrs.op for op in g.ops] == ["FILL"]
    assert g.tensors[g.ops[0].inputs[0]].data.tolist() == [2, 3, 4]   # (TFLM's FILL wants constant dims)
    (tmp_path / "r").mkdir()
    refused(_broadcast_args(False), tmp_path / "r", "BROADCAST_ARGS", "constant")
    refused(_fill("int16", None), tmp_path, "FILL", "int16")


# ---- GATHER_ND, EMBEDDING_LOOKUP ----------------------------------------------------------------

def _gather_nd(dtype: str, idx_shape, x_shape=(4, 3, 5), op="GATHER_ND", out_dtype=None, q=Q_IN,
               const: bool = False) -> bytes:
    m = Model()
    qx = q if dtype == "int8" else None
    emb = op == "EMBEDDING_LOOKUP"
    depth = 1 if emb else idx_shape[-1]
    out_shape = (tuple(idx_shape) if emb else tuple(idx_shape[:-1])) + tuple(x_shape[depth:])
    i = m.t(idx_shape, "int32", name="i", inp=True)
    data = np.random.default_rng(1).integers(-128, 128, x_shape).astype(dtype) if const else None
    x = m.t(x_shape, dtype, qx, name="x", inp=not const, data=data)
    y = m.t(out_shape, out_dtype or dtype, qx if (out_dtype or dtype) == "int8" else None, name="y")
    m.op(op, [i, x] if emb else [x, i], [y])
    return m.finish([y])


def _indices(g, rng):
    """In-range indices for the int32 input (ids / index tuples), random values for the rest."""
    op = g.ops[0]
    emb = op.attrs.op == "EMBEDDING_LOOKUP"
    xt = g.tensors[op.inputs[1] if emb else op.inputs[0]]
    xs = []
    for t in (g.tensors[j] for j in g.inputs):
        if t.dtype.np_name == "int32":
            hi = np.array(xt.shape[:1] if emb else xt.shape[:t.shape[-1]])
            xs.append((rng.random(t.shape) * hi).astype(np.int32))
        else:
            xs.append(_inputs(g, rng)[len(xs)])
    return xs


@pytest.mark.parametrize("dtype,idx_shape", [("float32", (2, 2)), ("int8", (3, 1)), ("int8", (2, 2, 3)),
                                             ("float32", (5, 3))])
def test_gather_nd(dtype, idx_shape, tmp_path):
    run(_gather_nd(dtype, idx_shape), tmp_path, inputs=_indices)


@pytest.mark.parametrize("dtype,out", [("float32", None), ("int8", None), ("int8", "float32")])
def test_embedding_lookup(dtype, out, tmp_path):
    """int8 into float32: TFLite Micro's hybrid lookup of constant rows (zero point 0)."""
    run(_gather_nd(dtype, (6,), (5, 4, 2), "EMBEDDING_LOOKUP", out, q=(0.03, 0), const=out is not None), tmp_path,
        inputs=_indices)


def test_gather_refusals(tmp_path):
    refused(_gather_nd("int32", (2, 2)), tmp_path, "GATHER_ND", "int32 values")
    refused(_gather_nd("int8", (3,), (5, 4), "EMBEDDING_LOOKUP", "float32", const=True), tmp_path,
            "EMBEDDING_LOOKUP", "zero point 0")


# ---- CUMSUM -------------------------------------------------------------------------------------

def _cumsum(dtype: str, axis: int, exclusive: bool, reverse: bool) -> bytes:
    m = Model()
    q = Q_IN if dtype == "int8" else None
    x = m.t((2, 5, 3), dtype, q, name="x", inp=True)
    a = m.t((), "int32", data=np.array(axis, np.int32))
    y = m.t((2, 5, 3), dtype, (0.2, -5) if q else None, name="y")
    m.op("CUMSUM", [x, a], [y], "CumsumOptions", exclusive=exclusive, reverse=reverse)
    return m.finish([y])


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("axis,exclusive,reverse", [(1, False, False), (-1, True, False), (0, False, True),
                                                    (1, True, True)])
def test_cumsum(dtype, axis, exclusive, reverse, tmp_path):
    run(_cumsum(dtype, axis, exclusive, reverse), tmp_path, n=2)


# ---- REDUCE_ALL ---------------------------------------------------------------------------------

def _reduce_all(axes, keep: bool, out_shape) -> bytes:
    m = Model()
    x = m.t((3, 4, 2), "bool", name="x", inp=True)
    a = m.t((len(axes),), "int32", data=np.array(axes, np.int32))
    y = m.t(out_shape, "bool", name="y")
    m.op("REDUCE_ALL", [x, a], [y], "ReducerOptions", keepDims=keep)
    return m.finish([y])


def _mostly_true(g, rng):
    t = g.tensors[g.inputs[0]]
    return [rng.random(t.shape) < 0.8]


@pytest.mark.parametrize("axes,keep,out_shape", [([1], False, (3, 2)), ([0, 1], True, (1, 1, 2)),
                                                 ([-1], False, (3, 4))])
def test_reduce_all(axes, keep, out_shape, tmp_path):
    run(_reduce_all(axes, keep, out_shape), tmp_path, n=3, inputs=_mostly_true)


def test_reduce_all_refusals(tmp_path):
    refused(_reduce_all([0, 2], False, (4,)), tmp_path, "REDUCE_ALL", "contiguous")


# ---- L2_POOL_2D ---------------------------------------------------------------------------------

def _l2_pool(same: bool, k, s, act: int = 0, shape=(2, 7, 6, 3)) -> bytes:
    m = Model()
    x = m.t(shape, "float32", name="x", inp=True)
    out = [-(-d // st) if same else (d - kk) // st + 1 for d, kk, st in zip(shape[1:3], k, s)]
    y = m.t((shape[0], *out, shape[3]), "float32", name="y")
    m.op("L2_POOL_2D", [x], [y], "Pool2DOptions", padding=0 if same else 1, strideH=s[0], strideW=s[1],
         filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=act)
    return m.finish([y])


@pytest.mark.parametrize("same,k,s,act", [(True, (3, 3), (2, 2), 0), (False, (2, 3), (1, 2), 1),
                                          (True, (2, 2), (1, 1), 3)])
def test_l2_pool(same, k, s, act, tmp_path):
    run(_l2_pool(same, k, s, act), tmp_path, n=2)


def test_latency_families(tmp_path):
    """The latency model costs the new ops as the kernels they share: a pool, a copy, element-wise."""
    from platformio_tinyml.compilers.cgen.latency import kernel_of
    for k, (buf, want) in enumerate([(_l2_pool(True, (2, 2), (1, 1)), "pool_f32"), (_reverse("int8", [1]), "move_s8"),
                                     (_cast("int8", "float32"), "eltwise_s8")]):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(buf)
        g = load_tflite(path)
        assert kernel_of(g, g.ops[0]) == want


def test_l2_pool_refusals(tmp_path):
    refused(_l2_pool(True, (2, 2), (1, 1), act=4), tmp_path, "L2_POOL_2D", "fused activation 4")


# ---- DYNAMIC_UPDATE_SLICE -------------------------------------------------------------------------

def _update_slice(dtype: str, upd_shape, idx_dtype="int32", x_shape=(3, 5, 4)) -> bytes:
    m = Model()
    q = Q_IN if dtype == "int8" else None
    x = m.t(x_shape, dtype, q, name="x", inp=True)
    u = m.t(upd_shape, dtype, q, name="u", inp=True)
    i = m.t((len(x_shape),), idx_dtype, name="i", inp=True)
    y = m.t(x_shape, dtype, q, name="y")
    m.op("DYNAMIC_UPDATE_SLICE", [x, u, i], [y])
    return m.finish([y])


def _starts(g, rng):
    """Start indices from -2 to past the end: TFLite Micro clamps them."""
    xs = _inputs(g, rng)
    op = g.ops[0]
    shape = g.tensors[op.inputs[0]].shape
    xs[2] = np.array([rng.integers(-2, d + 2) for d in shape], g.tensors[op.inputs[2]].dtype.numpy)
    return xs


@pytest.mark.parametrize("dtype,upd,idx", [("float32", (2, 3, 4), "int32"), ("int8", (1, 2, 3), "int32"),
                                           ("int32", (3, 1, 2), "int64"), ("float32", (3, 5, 4), "int32")])
def test_dynamic_update_slice(dtype, upd, idx, tmp_path):
    run(_update_slice(dtype, upd, idx), tmp_path, n=4, inputs=_starts)


def test_dynamic_update_slice_refusals(tmp_path):
    refused(_update_slice("float32", (2, 6, 4)), tmp_path, "DYNAMIC_UPDATE_SLICE", "does not fit")


# ---- SVDF ---------------------------------------------------------------------------------------

def _svdf(rank: int = 2, n_in: int = 6, n_filter: int = 8, n_mem: int = 5, bias: bool = True) -> bytes:
    """int8 SVDF with int16 time weights and state (a variable tensor), as TFLite's converter writes it."""
    m = Model()
    rng = np.random.default_rng(5)
    s_state, s_wt = 0.02, 0.0008
    x = m.t((1, n_in), "int8", (0.05, -3), name="x", inp=True)
    wf = m.t((n_filter, n_in), "int8", (0.01, 0), data=rng.integers(-127, 128, (n_filter, n_in)).astype(np.int8))
    wt = m.t((n_filter, n_mem), "int16", (s_wt, 0), data=rng.integers(-3000, 3000, (n_filter, n_mem)).astype(np.int16))
    b = m.t((n_filter // rank,), "int32", (s_state * s_wt, 0),
            data=rng.integers(-20000, 20000, n_filter // rank).astype(np.int32)) if bias else -1
    st = m.t((1, n_mem * n_filter), "int16", (s_state, 0), name="state")
    m.b.tensors[st].isVariable = True
    y = m.t((1, n_filter // rank), "int8", (0.4, 4), name="y")
    m.op("SVDF", [x, wf, wt, b, st], [y], "SVDFOptions", rank=rank)
    return m.finish([y])


@pytest.mark.parametrize("rank", [1, 2])
def test_svdf_int8_streams_bit_exact(rank, tmp_path):
    """Eight calls in a row: the state carries over, as in TFLite Micro invoked again without a reset."""
    g, host, ref = built(_svdf(rank), tmp_path)
    rng = np.random.default_rng(1)
    for i in range(8):
        xs = _inputs(g, rng)
        a, b = host.run(xs)[0], ref.run(xs, reset=i == 0)[0]
        assert np.array_equal(a.reshape(-1), b.reshape(-1)), f"call {i}: {a} != {b}"


def test_svdf_refusals(tmp_path):
    refused(_svdf(bias=False), tmp_path, "SVDF", "no bias", index=1)
