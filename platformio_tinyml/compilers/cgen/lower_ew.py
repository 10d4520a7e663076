"""Lowerings of the element-wise ops: SUB, DIV, MAXIMUM, MINIMUM,
SQUARED_DIFFERENCE, PRELU, the activations LEAKY_RELU, ELU, HARD_SWISH,
RELU_N1_TO_1, GELU, the functions EXP, LOG, SQRT, RSQRT, ABS, NEG, SQUARE,
and LOG_SOFTMAX / L2_NORMALIZATION in float32 (int8: lower_norms.py); and the float32 functions of
opaque ops (ONNX Floor, Sin, Erf, Softplus, HardSigmoid, ..., TFLite FLOOR, SIN,
...: ``OPAQUE_F32``).

int8 unary ops become a 256-entry table (``tml_lut_s8``): each entry is what
TFLite Micro's kernel computes for that input code, reproduced here in
Python with its exact integer (or float32) arithmetic, so the table is
bit-exact by construction and the tests compare all 256 codes against the
interpreter. int8 binary ops run TFLite Micro's integer arithmetic in C
(``tml_ew_s8.c``). Where TFLite Micro has no int8 kernel for an op (EXP,
LOG, SQRT, NEG, SQUARE, GELU, RELU_N1_TO_1) the int8 op is refused in one
line: there is no reference to be exact to.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import DType, Graph, Op, OpKind
from .lower_f32 import act_range_f32
from .lower_s8 import broadcast_strides, operand_ptr
from .lowering import Lowering
from .quant import activation_range_s8, f32, quantize_multiplier, tfl_round

S8, F32 = DType.INT8, DType.FLOAT32
FLT_MAX = float(np.finfo(np.float32).max)
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1

BINARY = (OpKind.SUB, OpKind.DIV, OpKind.MAXIMUM, OpKind.MINIMUM, OpKind.SQUARED_DIFFERENCE, OpKind.PRELU)
LUT_S8 = (OpKind.LEAKY_RELU, OpKind.ELU, OpKind.HARD_SWISH, OpKind.ABS, OpKind.RSQRT)
NO_TFLM_S8 = (OpKind.EXP, OpKind.LOG, OpKind.SQRT, OpKind.NEG, OpKind.SQUARE, OpKind.GELU, OpKind.RELU_N1_TO_1)
MAP_F32 = {OpKind.ELU: 1, OpKind.HARD_SWISH: 2, OpKind.LEAKY_RELU: 3, OpKind.GELU: 4, OpKind.EXP: 6,
           OpKind.LOG: 7, OpKind.SQRT: 8, OpKind.RSQRT: 9, OpKind.ABS: 10, OpKind.NEG: 11, OpKind.SQUARE: 12}
GELU_TANH = 5
_FN = {OpKind.SUB: "sub", OpKind.DIV: "div", OpKind.MAXIMUM: "max", OpKind.MINIMUM: "min",
       OpKind.SQUARED_DIFFERENCE: "sqdiff", OpKind.PRELU: "prelu"}


# ---- TFLite's integer helpers, on Python ints (int32 semantics) ------------------------

def _wrap32(x: int) -> int:
    return (x + 2 ** 31) % 2 ** 32 - 2 ** 31


def srdhm(a: int, b: int, bits: int = 32) -> int:
    """SaturatingRoundingDoublingHighMul on int32 (or int16 with bits=16)."""
    lo = -(1 << (bits - 1))
    if a == b == lo:
        return -lo - 1
    ab = a * b
    q = ab + ((1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2)))
    return q >> (bits - 1) if q >= 0 else -((-q) >> (bits - 1))


def rdbpot(x: int, e: int) -> int:
    """RoundingDivideByPOT: x / 2^e rounded half away from zero."""
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (TFLite's double rounding)."""
    return rdbpot(srdhm(_wrap32(x << max(shift, 0)), m), max(-shift, 0))


def _sat_shl(x: int, n: int, bits: int = 32) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(x * (1 << n), lo), hi)


def inv_sqrt_multiplier(x: int) -> tuple[int, int]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp(x, reverse_shift=-1): 1/sqrt(x) as
    (multiplier, shift), by the same fixed-point Newton-Raphson iteration."""
    if x <= 1:
        return INT32_MAX, 0
    shift = 11
    while x >= 1 << 29:
        x //= 4
        shift += 1
    pairs = (32 - x.bit_length() - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs
    half_x = rdbpot(x >> 1, 1)                       # Q3
    half_three = (1 << 28) + (1 << 27)               # 1.5 in Q3
    y = 1 << 28                                      # 1.0 in Q3
    for _ in range(5):
        y3 = _sat_shl(srdhm(srdhm(y, y), y), 6)      # Q9 -> Q3
        y = _sat_shl(_wrap32(srdhm(half_three, y) - srdhm(half_x, y3)), 3)   # Q6 -> Q3
    y = srdhm(y, 1518500250)                         # * sqrt(2)/2
    if shift < 0:
        y, shift = _wrap32(y << -shift), 0
    return y, -shift


def _clamp8(v: int) -> int:
    return min(max(int(v), -128), 127)


# ---- int8 tables ----------------------------------------------------------------------

def _q(t):
    return f32(t.quant.s), int(t.quant.zp)


def lut_s8(op: Op, x, y) -> np.ndarray:
    """The 256 outputs of int8 ``op`` for the input codes -128..127 (TFLite Micro's arithmetic)."""
    (si, zi), (so, zo) = _q(x), _q(y)
    codes = range(-128, 128)
    k = op.kind
    if k is OpKind.LEAKY_RELU:
        m_id, s_id = quantize_multiplier(float(np.float32(si) / np.float32(so)))
        alpha = np.float32(op.attrs.alpha)
        m_a, s_a = quantize_multiplier(float(np.float32(si) * alpha / np.float32(so)))

        def one(q):
            v = q - zi
            if v >= 0:
                return zo + mbqm(v, m_id, s_id)
            r = mbqm(v, abs(m_a), s_a)
            return zo + (-r if m_a < 0 else r)
        return np.array([_clamp8(one(q)) for q in codes], np.int8)
    if k is OpKind.ELU:
        inv = np.float32(1) / np.float32(so)

        def one(q):
            d = np.float32(si) * np.float32(q - zi)
            t = np.float32(math.exp(float(d))) - np.float32(1) if d < 0 else d
            r = np.float32(tfl_round(float(np.float32(t * inv))))
            return int(r + np.float32(zo))
        return np.array([_clamp8(one(q)) for q in codes], np.int8)
    if k is OpKind.HARD_SWISH:
        return np.array([_clamp8(v) for v in _hard_swish(x, y)], np.int8)
    if k is OpKind.ABS:
        rescale = np.float32(si) != np.float32(so)
        m, s = quantize_multiplier(si / so)
        return np.array([_clamp8((mbqm(abs(q - zi), m, s) if rescale else abs(q - zi)) + zo) for q in codes],
                        np.int8)
    if k is OpKind.RSQRT:
        m, s = quantize_multiplier(1.0 / (math.sqrt(si) * so))

        def one(q):
            v = q - zi
            if v <= 0:     # 0: the largest output (as TFLite Micro); < 0: TFLite Micro stops with an error
                return 127
            im, ish = inv_sqrt_multiplier(v)
            return mbqm(mbqm(1, im, ish + 20), m, s - 20) + zo
        return np.array([_clamp8(one(q)) for q in codes], np.int8)
    raise AssertionError(k)


def _hard_swish_params(x, y):
    (si, _), (so, _) = _q(x), _q(y)
    hires = np.float32(1.0 / 128.0) * np.float32(si)
    out_m, out_e = quantize_multiplier(float(hires / np.float32(so)))
    rel_m, rel_e = quantize_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    return _to_int16_multiplier(out_m), out_e, _to_int16_multiplier(rel_m), rel_e


def _to_int16_multiplier(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def _hard_swish(x, y) -> list[int]:
    """TFLite's int8 HardSwish (16-bit fixed point) for every input code."""
    zi, zo = int(x.quant.zp), int(y.quant.zp)
    out_m, out_e, rel_m, rel_e = _hard_swish_params(x, y)
    out = []
    for q in range(-128, 128):
        hires = (q - zi) * 128
        pre_out = srdhm(hires, out_m, 16)
        rel = hires
        if rel_e > 0:
            rel = _sat_shl(rel, rel_e - 1, 16)
        rel = srdhm(rel, rel_m, 16)
        if rel_e > 0:
            rel = _sat_shl(rel, 1, 16)
        if rel_e < 0:
            rel = rdbpot(rel, -rel_e)
        rel = (rel + (1 << 15)) >> 1
        prod = rel * pre_out
        pre = 32767 if rel == pre_out == -32768 else (prod >> 15 if prod >= 0 else -((-prod) >> 15))
        out.append(rdbpot(pre, -out_e) + zo)
    return out


# ---- checks ---------------------------------------------------------------------------

def _per_tensor(g: Graph, op: Op) -> str | None:
    for i in list(op.inputs) + list(op.outputs):
        t = g.tensors[i]
        if t.dtype is not S8:
            return f"all operands must be int8 (tensor '{t.name}' is {t.dtype.np_name})"
        if t.quant is None:
            return f"tensor '{t.name}' has no quantization"
    return None


def _check_unary_s8(g: Graph, op: Op) -> str | None:
    if op.kind in NO_TFLM_S8:
        return f"TFLite Micro has no int8 {op.kind.value} kernel (float32 only): keep this op in float32"
    err = _per_tensor(g, op)
    if err:
        return err
    if op.kind is OpKind.HARD_SWISH and _hard_swish_params(g.tensors[op.inputs[0]], g.tensors[op.outputs[0]])[1] > 0:
        return "the output scale is below input scale / 128 (TFLite Micro's HARD_SWISH refuses that)"
    return None


def _check_rank(g: Graph, op: Op) -> str | None:
    y = g.tensors[op.outputs[0]]
    if len(y.shape) > 4:
        return f"rank {len(y.shape)} > 4"
    return None


def _check_binary_s8(g: Graph, op: Op) -> str | None:
    return _per_tensor(g, op) or _check_rank(g, op)


def _check_f32(g: Graph, op: Op) -> str | None:
    for i in list(op.inputs) + list(op.outputs):
        if g.tensors[i].dtype is not F32:
            return f"all operands must be float32 (tensor '{g.tensors[i].name}' is {g.tensors[i].dtype.np_name})"
    return _check_rank(g, op) if op.kind in BINARY else None


def _check_last_axis_f32(g: Graph, op: Op) -> str | None:
    return _check_f32(g, op)


# ---- int8 lowerings -------------------------------------------------------------------

def _lut(em, op):
    g = em.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    table = lut_s8(op, x, y)
    # Index by (uint8_t)code: codes 0..127 first, then -128..-1.
    table = np.concatenate([table[128:], table[:128]])
    p = em.params("tml_lut_s8_t", dict(size=x.size, table=em.array("int8_t", table, "lut")))
    em.call(op, f"tml_lut_s8({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_ew_s8.c",
            "tml_fixedpoint.h", "tml_fixedpoint.c")


def _smaller_than_one(s1: float, s2: float, so: float, left_shift: int) -> dict:
    """ADD-style input and output multipliers of TFLite Micro's SUB (float32 arithmetic)."""
    tm = np.float32(2) * max(np.float32(s1), np.float32(s2))
    f = {}
    f["in1_mult"], f["in1_shift"] = quantize_multiplier(float(np.float32(s1) / tm))
    f["in2_mult"], f["in2_shift"] = quantize_multiplier(float(np.float32(s2) / tm))
    f["out_mult"], f["out_shift"] = quantize_multiplier(float(tm / (np.float32(1 << left_shift) * np.float32(so))))
    return f


def _binary_s8(em, op):
    g = em.graph
    a_t, b_t, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    out4 = (1,) * (4 - len(y.shape)) + tuple(y.shape)
    act = getattr(op.attrs, "activation", None)
    lo, hi = activation_range_s8(act, y) if act is not None else (-128, 127)
    (s1, z1), (s2, z2), (so, zo) = _q(a_t), _q(b_t), _q(y)
    f = dict(dims=list(out4), s1=broadcast_strides(a_t.shape, out4), s2=broadcast_strides(b_t.shape, out4),
             in1_offset=-z1, in2_offset=-z2, out_offset=zo, act_min=lo, act_max=hi, left_shift=0,
             in1_shift=0, in2_shift=0, out_shift=0, in1_mult=0, in2_mult=0, out_mult=0)
    k = op.kind
    if k is OpKind.SUB:
        f["left_shift"] = 20
        f.update(_smaller_than_one(s1, s2, so, 20))
    elif k is OpKind.SQUARED_DIFFERENCE:
        f["left_shift"] = 7
        tm = 2.0 * float(max(np.float32(s1), np.float32(s2)))     # double, as TFLite Micro
        f["in1_mult"], f["in1_shift"] = quantize_multiplier(s1 / tm)
        f["in2_mult"], f["in2_shift"] = quantize_multiplier(s2 / tm)
        f["out_mult"], f["out_shift"] = quantize_multiplier(tm * tm / float(np.float32(1 << 14) * np.float32(so)))
    elif k is OpKind.DIV:
        f["out_mult"], f["out_shift"] = quantize_multiplier(
            float(np.float32(s1) / (np.float32(s2) * np.float32(so))))
    elif k is OpKind.PRELU:
        f["in1_mult"], f["in1_shift"] = quantize_multiplier(s1 / so)
        f["out_mult"], f["out_shift"] = quantize_multiplier(s1 * s2 / so)
    p = em.params("tml_binary_s8_t", f)
    em.call(op, f"tml_{_FN[k]}_s8({p}, {operand_ptr(em, op.inputs[0])}, {operand_ptr(em, op.inputs[1])}, "
                f"{em.ptr(op.outputs[0])})", "tml_ew_s8.c", "tml_fixedpoint.h", "tml_fixedpoint.c")


# ---- float32 lowerings ----------------------------------------------------------------

def _binary_f32(em, op):
    binary_f32_call(em, op, f"tml_{_FN[op.kind]}_f32", op.inputs[0], op.inputs[1],
                    getattr(op.attrs, "activation", None))


def binary_f32_call(em, op, fn: str, a: int, b: int, act=None, runtime: str = "tml_ew_f32.c") -> None:
    """``fn`` on tml_binary_f32_t: tensors ``a`` and ``b`` broadcast to ``op``'s output."""
    g = em.graph
    a_t, b_t, y = g.tensors[a], g.tensors[b], g.tensors[op.outputs[0]]
    out4 = (1,) * (4 - len(y.shape)) + tuple(y.shape)
    lo, hi = act_range_f32(act) if act is not None else (-FLT_MAX, FLT_MAX)
    p = em.params("tml_binary_f32_t", dict(
        dims=list(out4), s1=broadcast_strides(a_t.shape, out4), s2=broadcast_strides(b_t.shape, out4),
        act_min=lo, act_max=hi))
    em.call(op, f"{fn}({p}, {operand_ptr(em, a)}, {operand_ptr(em, b)}, {em.ptr(op.outputs[0])})", runtime)


def _map_f32(em, op):
    x = em.graph.tensors[op.inputs[0]]
    code = MAP_F32[op.kind]
    if op.kind is OpKind.GELU and op.attrs is not None and op.attrs.approximate:
        code = GELU_TANH
    alpha = float(op.attrs.alpha) if op.kind is OpKind.LEAKY_RELU else 0.0
    p = em.params("tml_map_f32_t", dict(size=x.size, op=code, alpha=alpha, beta=0.0))
    em.call(op, f"tml_map_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_ew_f32.c")


# ---- float32 functions of opaque ops ------------------------------------------------------
# An op the IR has no kind for (attrs.Opaque) that is one float32 function of each element:
# its type (ONNX, or a TFLite builtin) -> (TML_MAP_* code, {option: default}); alpha and beta
# are the options in that order. An option not listed, or one that is not a finite number,
# is refused.
_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875
OPAQUE_F32 = {
    "Floor": (13, {}), "Ceil": (14, {}), "Round": (15, {}), "Sign": (16, {}), "Sin": (17, {}),
    "Cos": (18, {}), "Tan": (19, {}), "Asin": (20, {}), "Acos": (21, {}), "Atan": (22, {}),
    "Sinh": (23, {}), "Cosh": (24, {}), "Asinh": (25, {}), "Acosh": (26, {}), "Atanh": (27, {}),
    "Erf": (28, {}), "Softplus": (29, {}), "Softsign": (30, {}),
    "Selu": (31, {"alpha": _SELU_ALPHA, "gamma": _SELU_GAMMA}), "ThresholdedRelu": (32, {"alpha": 1.0}),
    "HardSigmoid": (33, {"alpha": 0.2, "beta": 0.5}), "Celu": (34, {"alpha": 1.0}), "Mish": (35, {}),
    "Swish": (36, {"alpha": 1.0}), "Elu": (37, {"alpha": 1.0}),
    # TFLite builtins with float32 kernels in TFLite Micro's op resolver (the verify reference)
    "FLOOR": (13, {}), "CEIL": (14, {}), "ROUND": (15, {}), "SIN": (17, {}), "COS": (18, {}),
}
_ONNX_DOMAINS = ("", "ai.onnx")


def _opaque_map(op: Op) -> tuple[int, float, float] | str:
    """(code, alpha, beta) of an opaque float32 function, or why cgen does not take it."""
    a = op.attrs
    if a.reason:        # the reader has a converter for the op, which refused these parameters
        return a.reason
    entry = OPAQUE_F32.get(a.op) if a.domain in _ONNX_DOMAINS else None
    if entry is None:
        return "cgen has no kernel for this operator"
    code, defaults = entry
    options = dict(a.options)
    if a.op.isupper():            # a TFLite builtin: its options table carries nothing these use
        options = {}
    extra = sorted(set(options) - set(defaults))
    if extra:
        return f"{a.op} with attribute {extra[0]!r} (cgen's kernel takes {sorted(defaults) or 'none'})"
    values = []
    for name, default in defaults.items():
        v = options.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"{a.op} attribute {name!r} must be a finite number"
        values.append(float(v))
    if code == 34 and values[0] == 0.0:
        return "Celu with alpha 0 (it divides by alpha)"
    values += [0.0] * (2 - len(values))
    return code, values[0], values[1]


def _check_opaque_f32(g: Graph, op: Op) -> str | None:
    found = _opaque_map(op)
    if isinstance(found, str):
        return found
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        return f"{op.attrs.op} with {len(op.inputs)} input(s) and {len(op.outputs)} output(s) (one of each expected)"
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if tuple(x.shape) != tuple(y.shape):
        return f"output shape {list(y.shape)} differs from the input's {list(x.shape)}"
    return _check_f32(g, op)


def _opaque_f32(em, op):
    code, alpha, beta = _opaque_map(op)
    x = em.graph.tensors[op.inputs[0]]
    p = em.params("tml_map_f32_t", dict(size=x.size, op=code, alpha=alpha, beta=beta))
    em.call(op, f"tml_map_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_ew_f32.c")


def _relu_n1_f32(em, op):
    x = em.graph.tensors[op.inputs[0]]
    p = em.params("tml_unary_f32_t", dict(size=x.size, lo=-1.0, hi=1.0))
    em.call(op, f"tml_clamp_f32({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})",
            "tml_elementwise_f32.c")


def _last_axis_f32(em, op):
    x = em.graph.tensors[op.inputs[0]]
    depth = x.shape[-1] if x.shape else 1
    p = em.params("tml_softmax_f32_t", dict(outer=x.size // depth, depth=depth, beta=1.0))
    fn = "tml_log_softmax_f32" if op.kind is OpKind.LOG_SOFTMAX else "tml_l2norm_f32"
    em.call(op, f"{fn}({p}, {operand_ptr(em, op.inputs[0])}, {em.ptr(op.outputs[0])})", "tml_ew_f32.c")


LOWERINGS = {}
for _k in BINARY:
    LOWERINGS[(_k, S8)] = Lowering(_binary_s8, _check_binary_s8)
    LOWERINGS[(_k, F32)] = Lowering(_binary_f32, _check_f32)
for _k in LUT_S8 + NO_TFLM_S8:
    LOWERINGS[(_k, S8)] = Lowering(_lut, _check_unary_s8)
for _k in MAP_F32:
    LOWERINGS[(_k, F32)] = Lowering(_map_f32, _check_f32)
LOWERINGS[(OpKind.RELU_N1_TO_1, F32)] = Lowering(_relu_n1_f32, _check_f32)
LOWERINGS[(OpKind.OPAQUE, F32)] = Lowering(_opaque_f32, _check_opaque_f32)
LOWERINGS[(OpKind.LOG_SOFTMAX, F32)] = Lowering(_last_axis_f32, _check_last_axis_f32)
LOWERINGS[(OpKind.L2_NORMALIZATION, F32)] = Lowering(_last_axis_f32, _check_last_axis_f32)
