"""Element-wise ops of the cgen backend (cgen/lower_ew.py) against TensorFlow Lite Micro.

One-op models written directly with the flatbuffer schema (benchmarks/difftest.py's
builder): int8 unary ops get a 256-element input, so every input code is compared
(the int8 kernels are tables computed at compile time: this checks every entry);
binary ops run on random codes with broadcasting and fused activations. int8 must
be bit-exact, float32 within 1e-5 relative (test_cgen_ops.rel_err). Ops that
TFLite Micro has no int8 kernel for are refused in one line.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import REPO
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference
from test_cgen_ops import FLOAT_TOL, rel_err

pytest.importorskip("tflite_micro")


def _builder():
    spec = importlib.util.spec_from_file_location("difftest", REPO / "benchmarks" / "difftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    return mod.TfliteBuilder


# (op, options class or None, option fields, int8 input quant (scale, zp), int8 output quant)
UNARY = [
    ("LEAKY_RELU", "LeakyReluOptions", dict(alpha=0.2), (0.05, 3), (0.04, -20)),
    ("LEAKY_RELU", "LeakyReluOptions", dict(alpha=-0.3), (0.02, -10), (0.03, 5)),
    ("ELU", None, {}, (0.04, 10), (0.03, -30)),
    ("HARD_SWISH", None, {}, (0.05, -5), (0.04, -40)),
    ("HARD_SWISH", None, {}, (0.003, 20), (0.0025, 0)),
    ("ABS", None, {}, (0.05, 7), (0.05, 7)),
    ("ABS", None, {}, (0.05, 7), (0.03, -100)),
    ("RSQRT", None, {}, (0.02, -128), (0.05, -120)),
]
FLOAT_ONLY = ["EXP", "LOG", "SQRT", "NEG", "SQUARE",   # TFLite Micro has no RELU_N1_TO_1, GELU
              "FLOOR", "CEIL", "ROUND", "SIN", "COS"]    # ops without an IR kind: opaque, tml_map_f32
BINARY = ["SUB", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU"]
_OPTS = {"SUB": "SubOptions", "DIV": "DivOptions"}


def _unary_model(op, opts, fields, qin, qout, int8: bool) -> bytes:
    B = _builder()()
    shape = (1, 16, 16) if int8 else (2, 3, 5, 4)
    x = B.tensor(shape, "int8" if int8 else "float32", ([qin[0]], [qin[1]], 0) if int8 else None, name="x")
    y = B.tensor(shape, "int8" if int8 else "float32", ([qout[0]], [qout[1]], 0) if int8 else None, name="y")
    B.op(op, [x], [y], B.options(opts, **fields) if opts else None)
    return B.finish([x], [y])


def _binary_model(op, shape_b, act: str, int8: bool, const_b: bool = False) -> bytes:
    B = _builder()()
    rng = np.random.default_rng(len(op))
    dt = "int8" if int8 else "float32"
    q = (lambda s, z: ([s], [z], 0)) if int8 else (lambda s, z: None)
    x = B.tensor((1, 4, 5, 3), dt, q(0.05, 3), name="in0")
    if const_b:
        data = (rng.integers(-128, 128, shape_b).astype(np.int8) if int8
                else (1.0 + rng.random(shape_b)).astype(np.float32))
        b = B.tensor(shape_b, dt, q(0.02, -7), data=data)
    else:
        b = B.tensor(shape_b, dt, q(0.03, -7), name="in1")
    y = B.tensor((1, 4, 5, 3), dt, q(0.07 if op != "SQUARED_DIFFERENCE" else 0.2, -12), name="y")
    opts = None
    if op in _OPTS:
        opts = B.options(_OPTS[op], fusedActivationFunction=getattr(B.S.ActivationFunctionType, act))
    B.op(op, [x, b], [y], opts)
    return B.finish([x] if const_b else [x, b], [y])


def built(buf: bytes, tmp_path):
    """(graph, host build, TFLite Micro reference) of the model ``buf``."""
    path = tmp_path / "m.tflite"
    path.write_bytes(buf)
    g = load_tflite(path)
    return g, build_host(generate(g, "m"), g, tmp_path / "b"), TFLMReference(path)


def _run(buf: bytes, tmp_path, n: int = 4, positive: bool = False, nonzero_b: bool = False):
    g, host, ref = built(buf, tmp_path)
    rng = np.random.default_rng(0)
    for i in range(n):
        xs = []
        for k, t in enumerate(g.tensors[j] for j in g.inputs):
            if t.dtype.np_name == "int8":
                lo = t.quant.zp if positive else -128
                x = (np.arange(t.size) % 256 - 128).astype(np.int8) if i == 0 and not positive \
                    else rng.integers(lo, 128, t.shape).astype(np.int8)
                if nonzero_b and k == 1:
                    x[x == t.quant.zp] = np.int8(t.quant.zp + 1)
                xs.append(x.reshape(t.shape))
            else:
                x = (3.0 * rng.standard_normal(t.shape)).astype(np.float32)
                xs.append(np.abs(x) + 0.1 if positive or (nonzero_b and k == 1) else x)
        ours, golden = host.run(xs), ref.run(xs)
        for a, b in zip(ours, golden):
            if a.dtype == np.int8:
                d = a.astype(int).reshape(-1) - b.astype(int).reshape(-1)
                assert not d.any(), f"sample {i}: {int((d != 0).sum())} of {d.size} differ; codes " \
                                    f"{np.flatnonzero(d)[:8]}"
            else:
                assert rel_err(a, b) <= FLOAT_TOL, f"sample {i}: relative error {rel_err(a, b):.3g}"


@pytest.mark.parametrize("case", UNARY, ids=[f"{c[0]}-{k}" for k, c in enumerate(UNARY)])
def test_int8_unary_every_code_bit_exact(case, tmp_path):
    op, opts, fields, qin, qout = case
    _run(_unary_model(op, opts, fields, qin, qout, True), tmp_path, n=1 if op != "RSQRT" else 3,
         positive=op == "RSQRT")


@pytest.mark.parametrize("op", sorted({c[0] for c in UNARY} | set(FLOAT_ONLY)))
def test_float32_unary(op, tmp_path):
    opts, fields = next(((c[1], c[2]) for c in UNARY if c[0] == op), (None, {}))
    _run(_unary_model(op, opts, fields, None, None, False), tmp_path,
         positive=op in ("LOG", "SQRT", "RSQRT"))


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float32"])
def test_binary(op, int8, tmp_path):
    act = "RELU" if op in _OPTS else "NONE"
    shape_b = (1, 1, 1, 3) if op == "PRELU" else (1, 4, 1, 3)
    _run(_binary_model(op, shape_b, act, int8), tmp_path, nonzero_b=op == "DIV")


@pytest.mark.parametrize("op", ["SUB", "PRELU", "MAXIMUM"])
def test_binary_with_constant(op, tmp_path):
    _run(_binary_model(op, (3,), "NONE", True, const_b=True), tmp_path)
    (tmp_path / "f").mkdir()
    _run(_binary_model(op, (3,), "NONE", False, const_b=True), tmp_path / "f")


@pytest.mark.parametrize("op", ["LOG_SOFTMAX", "L2_NORMALIZATION"])
def test_float32_last_axis(op, tmp_path):
    _run(_unary_model(op, None, {}, None, None, False), tmp_path)


@pytest.mark.parametrize("op", ["EXP", "SQUARE"])   # int8 LOG_SOFTMAX: test_cgen_int8_norms.py
def test_int8_without_kernel_is_refused_in_one_line(op, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_unary_model(op, None, {}, (0.05, 0), (16 / 256, 127), True))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    assert "\n" not in str(e.value) and f"#0 {op}" in str(e.value) and "float32" in str(e.value)
