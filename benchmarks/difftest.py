"""Differential test of the cgen backend: random small models, each either
compiled with exact parity or refused with one clear line.

```
.venv/bin/python benchmarks/difftest.py --count 2000 --seed 0 [--samples 5] [--keep DIR] [-v]
```

Model ``seed`` (one integer: every choice below is drawn from it) is one of

* ``tflite-int8``: a full-integer TFLite model written directly with the
  flatbuffer schema (random per-tensor activation and per-channel weight
  quantization within TFLite's kernel constraints, sometimes float I/O with
  QUANTIZE/DEQUANTIZE at the edges), reference: the TensorFlow Lite Micro
  interpreter, outputs must be bit-exact;
* ``tflite-f32``: the same generator without quantization, reference TFLite
  Micro, max relative error 1e-5;
* ``onnx-f32``: an ONNX float model built with ``onnx.helper`` (NCHW),
  reference onnxruntime, max relative error 1e-5 (see ``FLOAT_ABS``);

a chain of 1 to 3 ops drawn from op x shape x batch x stride/padding/dilation
x activation x quantization, plus now and then an element-wise op
(SUB, LEAKY_RELU, HARD_SWISH, ABS) or a matrix op (TRANSPOSE_CONV with any
output size its stride maps back, BATCH_MATMUL with broadcast batch dims;
ONNX also draws Min, Max, Neg, Abs, Elu). Each model is loaded with
:func:`platformio_tinyml.model.loader.load_model`, compiled with cgen, built
for the host (odd seeds with the kernels' microcontroller code paths:
``PORTABLE_CFLAGS``) and run on seeded random inputs next to the reference
(:func:`platformio_tinyml.verify.parity.check_parity`).

Outcomes: ``parity``; ``refused`` (a :class:`TinyMLError` whose message is
one line; grouped by reason); ``mismatch`` (compiled, outputs differ);
``crash`` (any other exception, or a multi-line error); ``invalid`` (the
reference itself rejects the model: a generator bug). The run fails (exit 1)
on any mismatch, crash or invalid model. Writing flatbuffers directly keeps a
model at a few milliseconds; the time goes into the host C build.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FORMATS = ("tflite-int8", "tflite-f32", "onnx-f32")
# Float outputs: max|ours - ref| <= 1e-5 * max(max|ref|, 1). Inputs are standard normal
# and weights scaled by 1/sqrt(fan-in), so outputs are of unit scale; the floor keeps a
# sum whose terms nearly cancel (a mean close to 0: onnxruntime adds in another order)
# from counting as a mismatch, while a wrong kernel is off by far more.
FLOAT_ABS = 1e-5
# Element-wise ops the generator adds now and then (cgen/lower_ew.py), and the matrix ops
# of cgen/lower_mm.py.
TFLITE_EXTRA_OPS = ("SUB", "LEAKY_RELU", "HARD_SWISH", "ABS", "TRANSPOSE_CONV", "BATCH_MATMUL")
ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


# ---- TFLite flatbuffers -------------------------------------------------------------

def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S
    return S


class TfliteBuilder:
    """A single-subgraph .tflite model assembled tensor by tensor (schema object API)."""

    def __init__(self):
        S = self.S = _schema()
        self.tensors, self.ops, self.codes = [], [], []
        self.buffers = [S.BufferT()]

    def tensor(self, shape, dtype: str, quant=None, data=None, name: str = "") -> int:
        S = self.S
        t = S.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = {"int8": S.TensorType.INT8, "float32": S.TensorType.FLOAT32,
                  "int32": S.TensorType.INT32, "bool": S.TensorType.BOOL}[dtype]
        t.name = (name or f"t{len(self.tensors)}").encode()
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.ascontiguousarray(data, dtype=dtype).reshape(-1).view(np.uint8).tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = S.QuantizationParametersT()
            scales, zps, axis = quant
            q.scale = [float(s) for s in scales]
            q.zeroPoint = [int(z) for z in zps]
            q.quantizedDimension = int(axis)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, ins, outs, options=None) -> None:
        S = self.S
        code = getattr(S.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = S.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = [int(i) for i in ins], [int(i) for i in outs]
        if options is not None:
            o.builtinOptionsType = getattr(S.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.ops.append(o)

    def options(self, cls: str, **fields):
        o = getattr(self.S, cls + "T")()
        for k, v in fields.items():
            setattr(o, k, v)
        return o

    def finish(self, inputs, outputs) -> bytes:
        import flatbuffers
        S = self.S
        codes = []
        for c in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            codes.append(oc)
        sg = S.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.ops
        sg.inputs, sg.outputs = list(inputs), list(outputs)
        sg.name = b"main"
        m = S.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [sg], self.buffers
        m.description = b"difftest"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


@dataclass
class Act:
    """An activation tensor being built: index, NHWC shape, (scale, zero point) or None."""
    idx: int
    shape: tuple[int, ...]
    q: tuple[float, int] | None


def _out_hw(size: int, k: int, s: int, d: int, same: bool) -> int:
    return -(-size // s) if same else (size - (k - 1) * d - 1) // s + 1


class TfliteGen:
    """Random op chains written into a :class:`TfliteBuilder`."""

    def __init__(self, rng: np.random.Generator, int8: bool):
        self.rng, self.int8 = rng, int8
        self.b = TfliteBuilder()
        self.inputs: list[int] = []
        self.desc: list[str] = []

    # -- helpers
    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def qact(self) -> tuple[float, int] | None:
        if not self.int8:
            return None
        zp = int(self.rng.integers(-100, 101)) if self.rng.random() < 0.9 else self.pick((-128, 127, 0))
        return float(10 ** self.rng.uniform(-2.5, -0.7)), zp

    def out_scale(self, x_scale: float, w_scale: float, fan_in: int) -> float:
        """An output scale near the accumulator's spread; now and then far off it
        (saturated outputs, requantization multipliers above 1)."""
        spread = 1.0 if self.rng.random() < 0.8 else 10 ** self.rng.uniform(-2, 2)
        return float(x_scale * w_scale * 70 * np.sqrt(fan_in) * 3 / 128 * 10 ** self.rng.uniform(-0.5, 0.5)
                     * spread)

    def int8_weights(self, shape, n_out: int, axis: int, per_channel: bool):
        """(weights tensor, scales): symmetric int8, per channel along ``axis`` or per
        tensor; now and then an all-zero output channel (a dead channel)."""
        r = self.rng
        ws = 10 ** r.uniform(-3, -1.5, n_out if per_channel else 1)
        w = r.integers(-127, 128, shape).astype(np.int8)
        if r.random() < 0.1:
            np.moveaxis(w, axis, 0)[int(r.integers(n_out))] = 0
        return self.const(w, "int8", (ws, [0] * len(ws), axis)), (ws if per_channel else ws.repeat(n_out))

    def int8_bias(self, x_scale: float, ws: np.ndarray):
        r = self.rng
        n = len(ws)
        b = r.standard_normal(n) * 3000
        if r.random() < 0.1:   # trained models carry extreme biases (on dead channels, too)
            b[int(r.integers(n))] = self.pick((-1, 1)) * 10 ** r.uniform(6, 9)
        return self.const(b.astype(np.int32), "int32", (x_scale * ws, [0] * n, 0))

    def act_tensor(self, shape, q, name="") -> Act:
        dt = "int8" if q is not None else "float32"
        quant = ([q[0]], [q[1]], 0) if q is not None else None
        return Act(self.b.tensor(shape, dt, quant, name=name), tuple(shape), q)

    def graph_input(self, shape) -> Act:
        a = self.act_tensor(shape, self.qact(), name=f"in{len(self.inputs)}")
        self.inputs.append(a.idx)
        return a

    def const(self, data, dtype="int32", quant=None) -> int:
        data = np.asarray(data)
        return self.b.tensor(data.shape, dtype, quant, data=data)

    def other_operand(self, shape, q_like: tuple | None, same_quant: bool) -> Act:
        """A second operand: another graph input, or a constant of ``shape``."""
        q = q_like if same_quant else self.qact()
        if self.rng.random() < 0.5:
            a = self.act_tensor(shape, q, name=f"in{len(self.inputs)}")
            self.inputs.append(a.idx)
            return a
        if q is None:
            data = self.rng.standard_normal(shape).astype(np.float32)
            return Act(self.const(data, "float32"), tuple(shape), None)
        data = self.rng.integers(-128, 128, shape).astype(np.int8)
        return Act(self.const(data, "int8", ([q[0]], [q[1]], 0)), tuple(shape), q)

    # -- ops
    def conv(self, x: Act, depthwise: bool) -> Act:
        r = self.rng
        n, h, w, c = x.shape
        kh, kw = int(r.integers(1, 4)), int(r.integers(1, 4))
        sh, sw = self.pick((1, 1, 2)), self.pick((1, 1, 2))
        dh = dw = 1
        if r.random() < 0.25:
            dh, dw = self.pick((1, 2)), self.pick((1, 2))
        same = bool(r.random() < 0.5)
        oh, ow = _out_hw(h, kh, sh, dh, same), _out_hw(w, kw, sw, dw, same)
        if oh < 1 or ow < 1:
            kh = kw = dh = dw = 1
            oh, ow = _out_hw(h, 1, sh, 1, same), _out_hw(w, 1, sw, 1, same)
        mult = self.pick((1, 1, 2)) if depthwise else 1
        oc = c * mult if depthwise else int(r.integers(1, 9))
        act = self.pick(ACTS)
        wshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
        fan_in = kh * kw * (1 if depthwise else c)
        if self.int8:
            wt, ws = self.int8_weights(wshape, oc, 3 if depthwise else 0, r.random() < 0.8)
            bt = self.int8_bias(x.q[0], ws)
            q = (self.out_scale(x.q[0], ws.mean(), fan_in), int(r.integers(-100, 101)))
        else:
            wt = self.const((r.standard_normal(wshape) / np.sqrt(fan_in)).astype(np.float32), "float32")
            bt = self.const((0.1 * r.standard_normal(oc)).astype(np.float32), "float32")
            q = None
        y = self.act_tensor((n, oh, ow, oc), q)
        B = self.b
        pad = B.S.Padding.SAME if same else B.S.Padding.VALID
        fa = getattr(B.S.ActivationFunctionType, act)
        if depthwise:
            o = B.options("DepthwiseConv2DOptions", padding=pad, strideH=sh, strideW=sw, depthMultiplier=mult,
                          fusedActivationFunction=fa, dilationHFactor=dh, dilationWFactor=dw)
        else:
            o = B.options("Conv2DOptions", padding=pad, strideH=sh, strideW=sw, fusedActivationFunction=fa,
                          dilationHFactor=dh, dilationWFactor=dw)
        B.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x.idx, wt, bt], [y.idx], o)
        self.desc.append(f"{'dw' if depthwise else 'conv'}{kh}x{kw}/s{sh}{sw}/d{dh}{dw}/"
                         f"{'same' if same else 'valid'}/{act.lower()}")
        return y

    def transpose_conv(self, x: Act) -> Act:
        """TRANSPOSE_CONV with a fused activation: any output size the stride maps back onto the
        input (SAME: ceil(out / stride) = in; VALID: up to stride - 1 rows of output padding)."""
        r = self.rng
        n, h, w, c = x.shape
        kh, kw = int(r.integers(1, 5)), int(r.integers(1, 5))
        sh, sw = self.pick((1, 2, 2)), self.pick((1, 2, 2))
        same = bool(r.random() < 0.5)
        if same:
            oh, ow = h * sh - int(r.integers(sh)), w * sw - int(r.integers(sw))
        else:
            oh, ow = (h - 1) * sh + kh + int(r.integers(sh)), (w - 1) * sw + kw + int(r.integers(sw))
        oc = int(r.integers(1, 9))
        wshape, fan_in = (oc, kh, kw, c), kh * kw * c
        bias = r.random() < 0.7
        if self.int8:
            wt, ws = self.int8_weights(wshape, oc, 0, r.random() < 0.8)
            bt = self.int8_bias(x.q[0], ws) if bias else None
            q = (self.out_scale(x.q[0], ws.mean(), fan_in), int(r.integers(-100, 101)))
        else:
            wt = self.const((r.standard_normal(wshape) / np.sqrt(fan_in)).astype(np.float32), "float32")
            bt = self.const((0.1 * r.standard_normal(oc)).astype(np.float32), "float32") if bias else None
            q = None
        y = self.act_tensor((n, oh, ow, oc), q)
        B = self.b
        act = self.pick(ACTS)
        o = B.options("TransposeConvOptions", padding=B.S.Padding.SAME if same else B.S.Padding.VALID,
                      strideH=sh, strideW=sw, fusedActivationFunction=getattr(B.S.ActivationFunctionType, act))
        shape = self.const(np.array([n, oh, ow, oc], np.int32))
        B.op("TRANSPOSE_CONV", [shape, wt, x.idx] + ([bt] if bt is not None else []), [y.idx], o)
        self.desc.append(f"tconv{kh}x{kw}/s{sh}{sw}/{'same' if same else 'valid'}/{oh}x{ow}{'' if bias else '/nob'}/"
                         f"{act.lower()}")
        return y

    def batch_matmul(self, x: Act) -> Act:
        """BATCH_MATMUL with ``x`` as lhs (its last two dims the matrix; rank 2: one row per
        batch) times another operand [.., K, N] (adj_y: [.., N, K]) with broadcast batch dims."""
        r = self.rng
        k, nn = x.shape[-1], int(r.integers(1, 9))
        adj_y = bool(r.random() < 0.5)
        mat = (nn, k) if adj_y else (k, nn)
        lead = x.shape[:-2]
        batch = self.pick([(), lead, tuple(1 for _ in lead), lead[-1:]]) if lead else ()
        other = self.other_operand(tuple(batch) + mat, None if x.q is None else x.q, False)
        q = None if x.q is None else (self.out_scale(x.q[0], other.q[0] * 40, k), int(r.integers(-100, 101)))
        out_batch = tuple(np.broadcast_shapes(tuple(lead), tuple(batch)))
        y = self.act_tensor(out_batch + (x.shape[-2], nn), q)
        self.b.op("BATCH_MATMUL", [x.idx, other.idx], [y.idx], self.b.options("BatchMatMulOptions", adjY=adj_y))
        self.desc.append(f"bmm{list(other.shape)}/adj_y{int(adj_y)}")
        return y

    def pool(self, x: Act, kind: str) -> Act:
        r = self.rng
        n, h, w, c = x.shape
        same = bool(r.random() < 0.5)
        kh, kw = int(r.integers(1, (4 if same else min(h, 3)) + 1)), int(r.integers(1, (4 if same else min(w, 3)) + 1))
        sh, sw = self.pick((1, 2)), self.pick((1, 2))
        act = self.pick(ACTS[:3])
        y = self.act_tensor((n, _out_hw(h, kh, sh, 1, same), _out_hw(w, kw, sw, 1, same), c), x.q)
        S = self.b.S
        o = self.b.options("Pool2DOptions", padding=S.Padding.SAME if same else S.Padding.VALID, strideH=sh,
                           strideW=sw, filterHeight=kh, filterWidth=kw,
                           fusedActivationFunction=getattr(S.ActivationFunctionType, act))
        self.b.op(kind, [x.idx], [y.idx], o)
        self.desc.append(f"{kind.lower()}{kh}x{kw}/s{sh}{sw}/{'same' if same else 'valid'}")
        return y

    def fc(self, x: Act) -> Act:
        r = self.rng
        n = x.shape[0]
        k = int(np.prod(x.shape[1:]))
        oc = int(r.integers(1, 13))
        act = self.pick(ACTS)
        if self.int8:
            wt, ws = self.int8_weights((oc, k), oc, 0, r.random() < 0.3)
            bt = self.int8_bias(x.q[0], ws)
            q = (self.out_scale(x.q[0], ws.mean(), k), int(r.integers(-100, 101)))
        else:
            wt = self.const((r.standard_normal((oc, k)) / np.sqrt(k)).astype(np.float32), "float32")
            bt = self.const((0.1 * r.standard_normal(oc)).astype(np.float32), "float32")
            q = None
        y = self.act_tensor((n, oc), q)
        o = self.b.options("FullyConnectedOptions",
                           fusedActivationFunction=getattr(self.b.S.ActivationFunctionType, act))
        self.b.op("FULLY_CONNECTED", [x.idx, wt, bt], [y.idx], o)
        self.desc.append(f"fc{k}x{oc}/{act.lower()}")
        return y

    def binary(self, x: Act, kind: str) -> Act:
        r = self.rng
        shapes = [x.shape, (x.shape[-1],), (1,) * (len(x.shape) - 1) + (x.shape[-1],)]
        if len(x.shape) == 4:
            shapes += [(x.shape[0], 1, 1, x.shape[3]), (1, x.shape[1], 1, 1)]
        other = self.other_operand(self.pick(shapes), x.q, False)
        pair = [x, other] if r.random() < 0.7 else [other, x]
        act = self.pick(ACTS[:3])
        y = self.act_tensor(x.shape, self.qact())
        opts = {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}[kind]
        o = self.b.options(opts, fusedActivationFunction=getattr(self.b.S.ActivationFunctionType, act))
        self.b.op(kind, [pair[0].idx, pair[1].idx], [y.idx], o)
        self.desc.append(f"{kind.lower()}{list(other.shape)}/{act.lower()}")
        return y

    def unary(self, x: Act, kind: str) -> Act:
        q = x.q
        if q is not None:
            q = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0), "SOFTMAX": (1 / 256, -128),
                 "RELU6": x.q, "ABS": x.q, "TRANSPOSE": x.q}.get(kind) or self.qact()
        if kind == "TRANSPOSE":
            perm = self.rng.permutation(len(x.shape))
            y = self.act_tensor(tuple(x.shape[p] for p in perm), q)
            self.b.op(kind, [x.idx, self.const(perm.astype(np.int32))], [y.idx])
        else:
            y = self.act_tensor(x.shape, q)
            o = None
            if kind == "SOFTMAX":
                o = self.b.options("SoftmaxOptions", beta=float(self.pick((1.0, 0.5, 2.0))))
            elif kind == "LEAKY_RELU":
                o = self.b.options("LeakyReluOptions", alpha=0.2)
            self.b.op(kind, [x.idx], [y.idx], o)
        self.desc.append(kind.lower())
        return y

    def pad(self, x: Act) -> Act:
        pads = self.rng.integers(0, 3, (len(x.shape), 2))
        if self.rng.random() < 0.7:
            pads[0] = 0
        y = self.act_tensor(tuple(int(d + a + b) for d, (a, b) in zip(x.shape, pads)), x.q)
        self.b.op("PAD", [x.idx, self.const(pads.astype(np.int32))], [y.idx])
        self.desc.append(f"pad{pads.tolist()}")
        return y

    def concat(self, x: Act) -> Act:
        axis = int(self.rng.integers(len(x.shape)))
        shape = list(x.shape)
        shape[axis] = int(self.rng.integers(1, 4))
        other = self.other_operand(tuple(shape), x.q, True)   # TFLM: equal int8 quantization
        ys = list(x.shape)
        ys[axis] += shape[axis]
        y = self.act_tensor(ys, x.q)
        o = self.b.options("ConcatenationOptions", axis=axis if self.rng.random() < 0.5 else axis - len(ys))
        self.b.op("CONCATENATION", [x.idx, other.idx] if self.rng.random() < 0.5 else [other.idx, x.idx],
                  [y.idx], o)
        self.desc.append(f"concat/axis{axis}")
        return y

    def mean(self, x: Act) -> Act:
        rank = len(x.shape)
        choices = [(1, 2), (1,), (2,), (3,), (1, 2, 3), (1, 3)] if rank == 4 else [(1,), (0,), (0, 1)]
        axes = self.pick(choices)
        keep = bool(self.rng.random() < 0.5) or rank - len(axes) < 2
        shape = tuple((1 if k in axes else d) for k, d in enumerate(x.shape) if keep or k not in axes)
        y = self.act_tensor(shape, (x.q if self.rng.random() < 0.3 else self.qact()) if self.int8 else None)
        o = self.b.options("ReducerOptions", keepDims=keep)
        self.b.op("MEAN", [x.idx, self.const(np.array(axes, np.int32))], [y.idx], o)
        self.desc.append(f"mean{list(axes)}/keep{int(keep)}")
        return y

    def reshape(self, x: Act) -> Act:
        n = x.shape[0]
        rest = int(np.prod(x.shape[1:]))
        shape = self.pick([(n, rest), (n, 1, 1, rest), (n, rest, 1, 1)])
        y = self.act_tensor(shape, x.q)
        o = self.b.options("ReshapeOptions", newShape=list(shape))
        self.b.op("RESHAPE", [x.idx, self.const(np.array(shape, np.int32))], [y.idx], o)
        self.desc.append(f"reshape{list(shape)}")
        return y

    def move(self, x: Act) -> Act:
        """Data movement (int8: the input's quantization, as TFLite Micro requires)."""
        r, shape, rank = self.rng, x.shape, len(x.shape)
        kind = self.pick(("TRANSPOSE", "STRIDED_SLICE", "SLICE", "SPLIT", "GATHER", "REDUCE_MAX", "REDUCE_MIN",
                          "SUM") + (("DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR",
                                     "RESIZE_BILINEAR", "SPACE_TO_BATCH_ND") if rank == 4 else ()))
        if kind == "TRANSPOSE":
            perm = [int(p) for p in r.permutation(rank)]
            y = self.act_tensor([shape[p] for p in perm], x.q)
            self.b.op(kind, [x.idx, self.const(np.array(perm, np.int32))], [y.idx])
            self.desc.append(f"transpose{perm}")
            return y
        if kind in ("STRIDED_SLICE", "SLICE"):
            begin = [int(r.integers(d)) for d in shape]
            if kind == "SLICE":
                size = [int(r.integers(1, d - b + 1)) for d, b in zip(shape, begin)]
                y = self.act_tensor(size, x.q)
                self.b.op(kind, [x.idx, self.const(np.array(begin, np.int32)), self.const(np.array(size, np.int32))],
                          [y.idx])
                self.desc.append(f"slice{begin}/{size}")
                return y
            strides = [int(self.pick((1, 1, 2, -1, -2))) for _ in shape]
            end = [int(r.integers(-d - 1, d + 2)) for d in shape]
            bm, em = int(r.integers(1 << rank)), int(r.integers(1 << rank))
            from platformio_tinyml.ir.shape_ops import strided_slice
            _, out = strided_slice(shape, begin, end, strides, bm, em, 0)
            if 0 in out:
                return x
            y = self.act_tensor(out, x.q)
            o = self.b.options("StridedSliceOptions", beginMask=bm, endMask=em)
            self.b.op(kind, [x.idx] + [self.const(np.array(v, np.int32)) for v in (begin, end, strides)], [y.idx], o)
            self.desc.append(f"strided_slice{begin}:{end}:{strides}/m{bm},{em}")
            return y
        if kind == "SPLIT":
            axis = int(r.integers(rank))
            n = self.pick([k for k in (1, 2, 3) if shape[axis] % k == 0])
            part = list(shape)
            part[axis] //= n
            ys = [self.act_tensor(part, x.q) for _ in range(n)]
            self.b.op(kind, [self.const(np.array(axis, np.int32)), x.idx], [y.idx for y in ys],
                      self.b.options("SplitOptions", numSplits=n))
            k = int(r.integers(n))
            self.desc.append(f"split{n}/axis{axis}/take{k}")
            return ys[k]
        if kind == "GATHER":
            axis = int(r.integers(rank))
            idx = r.integers(0, shape[axis], int(r.integers(1, 5))).astype(np.int32)
            out = list(shape)
            out[axis] = len(idx)
            y = self.act_tensor(out, x.q)
            self.b.op(kind, [x.idx, self.const(idx)], [y.idx], self.b.options("GatherOptions", axis=axis))
            self.desc.append(f"gather/axis{axis}{idx.tolist()}")
            return y
        if kind in ("REDUCE_MAX", "REDUCE_MIN", "SUM"):
            choices = [(1, 2), (1,), (3,), (1, 2, 3)] if rank == 4 else [(1,)]
            axes = self.pick(choices)
            shape_out = tuple(1 if k in axes else d for k, d in enumerate(shape))
            q = x.q if kind != "SUM" or not self.int8 else self.qact()
            y = self.act_tensor(shape_out, q)
            self.b.op(kind, [x.idx, self.const(np.array(axes, np.int32))], [y.idx],
                      self.b.options("ReducerOptions", keepDims=True))
            self.desc.append(f"{kind.lower()}{list(axes)}")
            return y
        n, h, w, c = shape
        if kind in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
            b = 2
            if kind == "SPACE_TO_DEPTH" and (h % 2 or w % 2) or kind == "DEPTH_TO_SPACE" and c % 4:
                return x
            out = (n, h * 2, w * 2, c // 4) if kind == "DEPTH_TO_SPACE" else (n, h // 2, w // 2, c * 4)
            y = self.act_tensor(out, x.q)
            cls = "DepthToSpaceOptions" if kind == "DEPTH_TO_SPACE" else "SpaceToDepthOptions"
            self.b.op(kind, [x.idx], [y.idx], self.b.options(cls, blockSize=b))
            self.desc.append(kind.lower())
            return y
        if kind == "SPACE_TO_BATCH_ND":
            pads = r.integers(0, 2, 4)
            pads[1] += (h + pads[0] + pads[1]) % 2
            pads[3] += (w + pads[2] + pads[3]) % 2
            out = (n * 4, (h + pads[0] + pads[1]) // 2, (w + pads[2] + pads[3]) // 2, c)
            y = self.act_tensor(out, x.q)
            self.b.op(kind, [x.idx, self.const(np.array([2, 2], np.int32)),
                             self.const(pads.reshape(2, 2).astype(np.int32))], [y.idx])
            self.desc.append(f"space_to_batch{pads.tolist()}")
            return y
        size = [int(r.integers(1, 12)), int(r.integers(1, 12))]
        align = bool(r.random() < 0.3)
        half = not align and bool(r.random() < 0.5)
        y = self.act_tensor((n, size[0], size[1], c), x.q)
        cls = "ResizeBilinearOptions" if kind == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
        self.b.op(kind, [x.idx, self.const(np.array(size, np.int32))], [y.idx],
                  self.b.options(cls, alignCorners=align, halfPixelCenters=half))
        self.desc.append(f"{kind.lower()}{size}/a{int(align)}h{int(half)}")
        return y

    def requantize(self, x: Act) -> Act:
        y = self.act_tensor(x.shape, self.qact())
        self.b.op("QUANTIZE", [x.idx], [y.idx])
        self.desc.append("requantize")
        return y

    def step(self, x: Act) -> Act:
        r = self.rng
        if r.random() < 0.05:
            kind = self.pick(TFLITE_EXTRA_OPS)
            if kind == "TRANSPOSE_CONV":
                return self.transpose_conv(x) if len(x.shape) == 4 else x
            if kind == "BATCH_MATMUL":
                return self.batch_matmul(x)
            return self.binary(x, kind) if kind == "SUB" else self.unary(x, kind)
        rank4 = len(x.shape) == 4
        choices = ["fc", "add", "mul", "softmax", "logistic", "tanh", "relu", "relu6", "concat", "mean",
                   "reshape", "pad", "move", "move", "move"]
        if rank4:
            choices += ["conv", "conv", "conv", "dw", "dw", "avg", "max"]
        if self.int8:
            choices.append("requant")
        kind = self.pick(choices)
        if kind in ("conv", "dw"):
            return self.conv(x, kind == "dw")
        if kind in ("avg", "max"):
            return self.pool(x, "AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D")
        if kind in ("add", "mul"):
            return self.binary(x, kind.upper())
        if kind in ("softmax", "logistic", "tanh", "relu", "relu6"):
            return self.unary(x, kind.upper())
        return {"fc": self.fc, "concat": self.concat, "mean": self.mean, "reshape": self.reshape,
                "pad": self.pad, "requant": self.requantize, "move": self.move}[kind](x)

    def build(self) -> bytes:
        r = self.rng
        batch = self.pick((1, 1, 1, 2, 3))
        self.desc.append(f"b{batch}")
        shape = (batch, int(r.integers(1, 10)), int(r.integers(1, 10)), int(r.integers(1, 9)))
        if r.random() < 0.15:
            shape = (batch, int(r.integers(1, 17)))
        float_io = self.int8 and r.random() < 0.2
        if float_io:
            f = self.act_tensor(shape, None, name="in0")
            self.inputs.append(f.idx)
            x = self.act_tensor(shape, self.qact())
            self.b.op("QUANTIZE", [f.idx], [x.idx])
            self.desc.append("quantize")
        else:
            x = self.graph_input(shape)
        for _ in range(int(r.integers(1, 4))):
            x = self.step(x)
        if float_io:
            y = self.act_tensor(x.shape, None)
            self.b.op("DEQUANTIZE", [x.idx], [y.idx])
            self.desc.append("dequantize")
            x = y
        return self.b.finish(self.inputs, [x.idx])


# ---- ONNX ---------------------------------------------------------------------------

def _pool_out(size: int, k: int, s: int, ceil: bool, pad_begin: int = 0) -> int:
    """ONNX pooling output size over ``size`` (input plus both pads); with
    ceil_mode the last window must start inside the input or its begin pad."""
    out = (-(-(size - k) // s) if ceil else (size - k) // s) + 1
    return out - 1 if ceil and (out - 1) * s >= size - pad_begin else out


class OnnxGen:
    """Random float op chains in NCHW built with ``onnx.helper``."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes, self.inits, self.inputs = [], [], []
        self.desc: list[str] = []
        self._n = 0

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def name(self, hint="t") -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def init(self, data: np.ndarray) -> str:
        from onnx import numpy_helper
        n = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(data), n))
        return n

    def node(self, op: str, ins, **attrs) -> str:
        from onnx import helper
        out = self.name()
        self.nodes.append(helper.make_node(op, list(ins), [out], **attrs))
        return out

    def graph_input(self, shape) -> str:
        n = f"in{len(self.inputs)}"
        self.inputs.append((n, tuple(shape)))
        return n

    def operand(self, shape) -> str:
        if self.rng.random() < 0.4:
            return self.graph_input(shape)
        return self.init(self.rng.standard_normal(shape).astype(np.float32))

    def conv(self, x, shape):
        r = self.rng
        n, c, h, w = shape
        kh, kw = int(r.integers(1, 4)), int(r.integers(1, 4))
        s = [self.pick((1, 1, 2)), self.pick((1, 1, 2))]
        d = [self.pick((1, 1, 1, 2)), self.pick((1, 1, 1, 2))]
        kind = self.pick(("plain", "plain", "depthwise", "grouped"))
        group = c if kind == "depthwise" else (self.pick([g for g in (2, 3) if c % g == 0] or [1])
                                                if kind == "grouped" else 1)
        oc = c * self.pick((1, 2)) if kind == "depthwise" else group * int(r.integers(1, 4))
        pads = [int(p) for p in r.integers(0, 2, 4)]
        oh = (h + pads[0] + pads[2] - (kh - 1) * d[0] - 1) // s[0] + 1
        ow = (w + pads[1] + pads[3] - (kw - 1) * d[1] - 1) // s[1] + 1
        if oh < 1 or ow < 1:
            kh = kw = 1
            d = [1, 1]
            oh = (h + pads[0] + pads[2] - 1) // s[0] + 1
            ow = (w + pads[1] + pads[3] - 1) // s[1] + 1
        wt = self.init((r.standard_normal((oc, c // group, kh, kw)) / np.sqrt(kh * kw * c / group))
                       .astype(np.float32))
        ins = [x, wt] + ([self.init((0.1 * r.standard_normal(oc)).astype(np.float32))] if r.random() < 0.8 else [])
        y = self.node("Conv", ins, kernel_shape=[kh, kw], strides=s, dilations=d, pads=pads, group=group)
        self.desc.append(f"conv{kh}x{kw}/s{s[0]}{s[1]}/d{d[0]}{d[1]}/g{group}")
        return y, (n, oc, oh, ow)

    def pool(self, x, shape):
        r = self.rng
        n, c, h, w = shape
        op = self.pick(("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"))
        if op.startswith("Global"):
            self.desc.append(op)
            return self.node(op, [x]), (n, c, 1, 1)
        kh, kw = int(r.integers(1, min(h, 3) + 1)), int(r.integers(1, min(w, 3) + 1))
        s = [self.pick((1, 2)), self.pick((1, 2))]
        pads = [int(p) for p in r.integers(0, 2, 4)] if r.random() < 0.4 else [0, 0, 0, 0]
        pads = [min(p, k - 1) for p, k in zip(pads, (kh, kw, kh, kw))]
        attrs = dict(kernel_shape=[kh, kw], strides=s, pads=pads)
        if op == "AveragePool" and r.random() < 0.5:
            attrs["count_include_pad"] = 1
        ceil = int(r.random() < 0.2)
        if ceil:   # onnx shape inference and onnxruntime disagree on ceil_mode with pads
            pads = attrs["pads"] = [0, 0, 0, 0]
            attrs["ceil_mode"] = 1
        oh = _pool_out(h + pads[0] + pads[2], kh, s[0], ceil, pads[2])
        ow = _pool_out(w + pads[1] + pads[3], kw, s[1], ceil, pads[3])
        self.desc.append(f"{op}{kh}x{kw}/s{s[0]}{s[1]}/p{sum(pads)}/{'ceil' if ceil else ''}")
        return self.node(op, [x], **attrs), (n, c, oh, ow)

    def gemm(self, x, shape):
        r = self.rng
        if len(shape) != 2:
            x = self.node("Flatten", [x], axis=1)
            shape = (shape[0], int(np.prod(shape[1:])))
            self.desc.append("flatten")
        k, oc = shape[1], int(r.integers(1, 13))
        if r.random() < 0.5:
            trans = int(r.random() < 0.5)
            wt = self.init((r.standard_normal((oc, k) if trans else (k, oc)) / np.sqrt(k)).astype(np.float32))
            ins = [x, wt] + ([self.init((0.1 * r.standard_normal(oc)).astype(np.float32))] if r.random() < 0.8
                             else [])
            self.desc.append(f"gemm{k}x{oc}/t{trans}")
            return self.node("Gemm", ins, transB=trans), (shape[0], oc)
        self.desc.append(f"matmul{k}x{oc}")
        return self.node("MatMul", [x, self.init((r.standard_normal((k, oc)) / np.sqrt(k)).astype(np.float32))]), \
            (shape[0], oc)

    def binary(self, x, shape):
        op = self.pick(("Add", "Mul", "Sub", "Div", "Min", "Max"))
        shapes = [shape, (shape[-1],)]
        if len(shape) == 4:
            shapes += [(1, shape[1], 1, 1), (shape[1], 1, 1)]
        other_shape = self.pick(shapes)
        other = self.operand(other_shape)
        if op == "Div" and other.startswith("c"):
            self.inits[-1].CopyFrom(__import__("onnx").numpy_helper.from_array(
                (1.0 + self.rng.random(other_shape)).astype(np.float32), other))
        ins = [x, other] if self.rng.random() < 0.7 else [other, x]
        self.desc.append(f"{op}{list(other_shape)}")
        return self.node(op, ins), shape

    def unary(self, x, shape):
        op = self.pick(("Relu", "Sigmoid", "Tanh", "Clip", "Softmax", "LeakyRelu", "HardSwish", "Neg", "Abs", "Elu"))
        self.desc.append(op)
        if op == "Clip":
            lo, hi = self.pick(((0.0, 6.0), (-1.0, 1.0), (0.0, 1.0)))
            return self.node("Clip", [x, self.init(np.float32(lo)), self.init(np.float32(hi))]), shape
        if op == "Softmax":
            return self.node("Softmax", [x], axis=self.pick((-1, 1))), shape
        return self.node(op, [x]), shape

    def reduce(self, x, shape):
        axes = self.pick([(2, 3), (1,), (3,)] if len(shape) == 4 else [(1,)])
        keep = int(self.rng.random() < 0.5 or len(shape) - len(axes) < 2)
        self.desc.append(f"ReduceMean{list(axes)}/keep{keep}")
        y = self.node("ReduceMean", [x], axes=list(axes), keepdims=keep)
        return y, tuple((1 if k in axes else d) for k, d in enumerate(shape) if keep or k not in axes)

    def shape_op(self, x, shape):
        op = self.pick(("Flatten", "Reshape", "Transpose", "Concat", "Pad", "Slice", "Split", "Gather", "Tile",
                        "ReduceMax", "ReduceSum") + (("DepthToSpace", "Resize") if len(shape) == 4 else ()))
        self.desc.append(op)
        if op in ("Slice", "Split", "Gather", "Tile", "ReduceMax", "ReduceSum", "DepthToSpace", "Resize"):
            return self.move(op, x, shape)
        if op == "Flatten":
            return self.node("Flatten", [x], axis=1), (shape[0], int(np.prod(shape[1:])))
        if op == "Reshape":
            to = (shape[0], -1) if self.rng.random() < 0.5 else (shape[0], int(np.prod(shape[1:])), 1, 1)
            out = (shape[0], int(np.prod(shape[1:]))) if len(to) == 2 else to
            return self.node("Reshape", [x, self.init(np.array(to, np.int64))]), out
        if op == "Transpose":
            perm = [int(p) for p in self.rng.permutation(len(shape))]
            return self.node("Transpose", [x], perm=perm), tuple(shape[p] for p in perm)
        if op == "Concat":
            axis = 1
            other = list(shape)
            other[axis] = int(self.rng.integers(1, 4))
            y = self.node("Concat", [x, self.operand(tuple(other))], axis=axis)
            out = list(shape)
            out[axis] += other[axis]
            return y, tuple(out)
        pads = [int(p) for p in self.rng.integers(0, 2, 2 * len(shape))]
        pads[0] = pads[len(shape)] = 0
        out = tuple(d + pads[k] + pads[k + len(shape)] for k, d in enumerate(shape))
        return self.node("Pad", [x, self.init(np.array(pads, np.int64))]), out

    def move(self, op, x, shape):
        r, rank = self.rng, len(shape)
        axis = int(r.integers(1, rank))
        if op == "Slice":
            starts = [int(r.integers(-d, d)) for d in shape]
            steps = [int(self.pick((1, 1, 2, -1))) for _ in shape]
            ends = [int(r.integers(-d - 2, d + 2)) for d in shape]
            out = tuple(len(range(*slice(b, e, s).indices(d))) for b, e, s, d in zip(starts, ends, steps, shape))
            if 0 in out:
                return x, shape
            ins = [x] + [self.init(np.array(v, np.int64)) for v in (starts, ends, list(range(rank)), steps)]
            self.desc[-1] = f"Slice{starts}:{ends}:{steps}"
            return self.node("Slice", ins), out
        if op == "Split":
            n = self.pick([k for k in (1, 2) if shape[axis] % k == 0])
            from onnx import helper
            outs = [self.name() for _ in range(n)]
            sizes = self.init(np.array([shape[axis] // n] * n, np.int64))
            self.nodes.append(helper.make_node("Split", [x, sizes], outs, axis=axis))
            out = list(shape)
            out[axis] //= n
            return outs[int(r.integers(n))], tuple(out)
        if op == "Gather":
            idx = r.integers(-shape[axis], shape[axis], int(r.integers(1, 4))).astype(np.int64)
            out = list(shape)
            out[axis] = len(idx)
            return self.node("Gather", [x, self.init(idx)], axis=axis), tuple(out)
        if op == "Tile":
            reps = [1] + [int(r.integers(1, 3)) for _ in shape[1:]]
            return self.node("Tile", [x, self.init(np.array(reps, np.int64))]), tuple(d * k for d, k in zip(shape, reps))
        if op in ("ReduceMax", "ReduceSum"):
            axes = [axis] if r.random() < 0.5 or rank < 4 else [2, 3]
            out = tuple(1 if k in axes else d for k, d in enumerate(shape))
            if op == "ReduceMax":
                return self.node(op, [x], axes=axes, keepdims=1), out
            return self.node(op, [x, self.init(np.array(axes, np.int64))], keepdims=1), out
        n, c, h, w = shape
        if op == "DepthToSpace":
            if c % 4:
                return x, shape
            return self.node("DepthToSpace", [x], blocksize=2, mode="DCR"), (n, c // 4, h * 2, w * 2)
        size = [n, c, int(r.integers(1, 12)), int(r.integers(1, 12))]
        mode = self.pick(("linear", "nearest"))
        ctm = "asymmetric" if mode == "nearest" else self.pick(("asymmetric", "align_corners", "half_pixel"))
        extra = dict(nearest_mode="floor") if mode == "nearest" else {}
        self.desc[-1] = f"Resize/{mode}/{ctm}{size[2:]}"
        return self.node("Resize", [x, "", "", self.init(np.array(size, np.int64))], mode=mode,
                         coordinate_transformation_mode=ctm, **extra), tuple(size)

    def build(self) -> bytes:
        import onnx
        from onnx import TensorProto, helper
        r = self.rng
        batch = self.pick((1, 1, 1, 2, 3))
        self.desc.append(f"b{batch}")
        shape = (batch, int(r.integers(1, 9)), int(r.integers(1, 10)), int(r.integers(1, 10)))
        if r.random() < 0.15:
            shape = (batch, int(r.integers(1, 17)))
        x = self.graph_input(shape)
        for _ in range(int(r.integers(1, 4))):
            if len(shape) == 4:
                f = self.pick((self.conv, self.conv, self.conv, self.pool, self.pool, self.gemm, self.binary,
                               self.unary, self.reduce, self.shape_op))
            else:
                f = self.pick((self.gemm, self.binary, self.unary, self.reduce, self.shape_op))
            x, shape = f(x, shape)
        g = helper.make_graph(self.nodes, "difftest",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in self.inputs],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="difftest")
        m.ir_version = 8
        return m.SerializeToString()


# ---- one case -----------------------------------------------------------------------

@dataclass
class Outcome:
    seed: int
    fmt: str
    kind: str            # parity | refused | mismatch | crash | invalid
    detail: str = ""
    desc: str = ""
    reason: str = ""     # refused: the message with file names and numbers generalized


def build_model(seed: int, outdir: Path) -> tuple[Path, str, str]:
    """Write model ``seed`` into ``outdir``: (path, format, op chain)."""
    rng = np.random.default_rng(seed)
    fmt = FORMATS[int(rng.integers(len(FORMATS)))]
    if fmt == "onnx-f32":
        gen = OnnxGen(rng)
        path = outdir / f"dt{seed}.onnx"
    else:
        gen = TfliteGen(rng, int8=fmt == "tflite-int8")
        path = outdir / f"dt{seed}.tflite"
    path.write_bytes(gen.build())
    return path, fmt, " > ".join(gen.desc)


def _reason(msg: str) -> str:
    m = re.search(r"operator #\d+ (.*?) is not supported \((.*?)\)\. Supported", msg)
    text = f"{m.group(1)}: {m.group(2)}" if m else msg.split(": ", 1)[-1].split(". ")[0]
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text)[:90]


def _reference_accepts(path: Path) -> str | None:
    """None if the reference interpreter runs the model, else why not."""
    try:
        if path.suffix == ".onnx":
            import onnxruntime as ort
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            from tflite_micro.python.tflite_micro import runtime
            runtime.Interpreter.from_file(str(path), arena_size=8 << 20)
    except Exception as e:   # the reference's own errors: any type
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
    return None


# Odd seeds build the kernels' portable paths (those microcontrollers run) on the host,
# even seeds the host's own vectorizable paths (tml_dot_s8.h).
PORTABLE_CFLAGS = ["-DTML_HOST_STACK=0", "-DTML_F32_VEC=0"]


def run_case(seed: int, workdir: Path, samples: int = 5, obj_cache: Path | None = None) -> Outcome:
    """Build, load, compile and compare model ``seed`` (``obj_cache``: the runtime
    kernels' object files, compiled once per run: see verify.host.build_host)."""
    from platformio_tinyml.errors import TinyMLError
    from platformio_tinyml.model.loader import load_model
    from platformio_tinyml.verify.parity import check_parity
    path, fmt, desc = build_model(seed, workdir)
    bad_ref = _reference_accepts(path)
    if bad_ref:
        return Outcome(seed, fmt, "invalid", bad_ref, desc)
    try:
        graph = load_model(path)
        report = check_parity(graph, path, samples=samples, seed=seed, workdir=workdir / "build", name="dt",
                              obj_cache=obj_cache, cflags=PORTABLE_CFLAGS if seed % 2 else None)
    except TinyMLError as e:
        msg = str(e)
        if "\n" in msg or "Traceback" in msg:
            return Outcome(seed, fmt, "crash", f"multi-line error: {msg[:300]!r}", desc)
        return Outcome(seed, fmt, "refused", msg, desc, _reason(msg))
    except Exception as e:   # anything else escaping is a bug in the tool
        return Outcome(seed, fmt, "crash", f"{type(e).__name__}: {e}"[:300], desc)
    bad = [o for o in report.outputs if not (o.ok or (o.dtype == "float32" and o.max_abs <= FLOAT_ABS))]
    if not bad:
        return Outcome(seed, fmt, "parity", "", desc)
    worst = bad[0]
    return Outcome(seed, fmt, "mismatch",
                   f"{worst.name}: exact {worst.exact}/{worst.samples}, max abs {worst.max_abs:.3g}, "
                   f"max rel {worst.max_rel:.3g}", desc)


# ---- the run ------------------------------------------------------------------------

@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in ("mismatch", "crash", "invalid")]

    def table(self) -> str:
        rows = [f"{'format':<12} {'models':>6} {'parity':>6} {'refused':>7} {'mismatch':>8} {'crash':>5} "
                f"{'invalid':>7}"]
        for fmt in FORMATS + ("all",):
            sel = [o for o in self.outcomes if fmt in ("all", o.fmt)]
            c = Counter(o.kind for o in sel)
            rows.append(f"{fmt:<12} {len(sel):>6} {c['parity']:>6} {c['refused']:>7} {c['mismatch']:>8} "
                        f"{c['crash']:>5} {c['invalid']:>7}")
        reasons = Counter(o.reason for o in self.outcomes if o.kind == "refused")
        if reasons:
            rows += ["", "refused, by reason:"]
            rows += [f"  {n:>5}  {r}" for r, n in reasons.most_common()]
        for o in self.failures:
            rows.append(f"{o.kind.upper()} seed {o.seed} ({o.fmt}: {o.desc}): {o.detail}")
        return "\n".join(rows)


def run(seeds, samples: int = 5, keep: Path | None = None, verbose: bool = False) -> Summary:
    summary = Summary()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            work = root / f"s{seed}"
            work.mkdir(exist_ok=True)
            o = run_case(seed, work, samples, root / "obj")
            summary.outcomes.append(o)
            if verbose:
                print(f"{seed:>7} {o.fmt:<12} {o.kind:<9} {o.desc}  {o.reason or o.detail}", flush=True)
            if keep is None:
                import shutil
                shutil.rmtree(work, ignore_errors=True)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200, help="number of random models")
    ap.add_argument("--seed", type=int, default=0, help="first seed (models are seed .. seed+count-1)")
    ap.add_argument("--samples", type=int, default=5, help="random inputs per model")
    ap.add_argument("--keep", type=Path, help="keep the models and builds in this folder")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per model")
    a = ap.parse_args(argv)
    t0 = time.time()
    s = run(range(a.seed, a.seed + a.count), a.samples, a.keep, a.verbose)
    print(s.table())
    print(f"\n{a.count} models in {time.time() - t0:.0f} s")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
