"""Read a ``.tflite`` flatbuffer into the IR with the ``tflite`` schema package.

Every unsupported construct raises :class:`UnsupportedOpError` or
:class:`ModelError` naming the model file and the operator.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tflite

from ...errors import ModelError, UnsupportedOpError
from ...ir import Activation, DType, Graph, Op, OpKind, Quant, Tensor, SUPPORTED_OPS
from ...ir import attrs as A
from ...ir.passes import run_passes
from ..common import read_model_bytes
from ..validate import CORRUPT, PADDING_KIND, SHAPE as SHAPE_RULE, InvalidModelError, decode_name, validate_graph
from .checks import builtin_code, builtin_options as _options, check_tflite, tflite_buffer_bytes
from .shape_attrs import KINDS as SHAPE_KINDS, ParamError, shape_attrs
from .lstm import lstm_ops, stateful
from .variables import VAR_OPS, Variables

_DTYPES = {
    tflite.TensorType.INT8: DType.INT8,
    tflite.TensorType.UINT8: DType.UINT8,
    tflite.TensorType.INT16: DType.INT16,
    tflite.TensorType.INT32: DType.INT32,
    tflite.TensorType.INT64: DType.INT64,
    tflite.TensorType.FLOAT32: DType.FLOAT32,
    tflite.TensorType.BOOL: DType.BOOL,
}

_ACT = {
    tflite.ActivationFunctionType.NONE: Activation.NONE,
    tflite.ActivationFunctionType.RELU: Activation.RELU,
    tflite.ActivationFunctionType.RELU6: Activation.RELU6,
    tflite.ActivationFunctionType.RELU_N1_TO_1: Activation.RELU_N1_TO_1,
}

_CODE_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


class _Ctx:
    def __init__(self, path: Path, model: "tflite.Model", buf: bytes, input_shapes=None):
        self.path = path
        self.model = model
        self.buf = buf
        self.input_shapes = dict(input_shapes or {})
        self.dynamic: dict[int, list[int]] = {}   # tensor index -> shape signature with open dims
        self.float16 = False                        # float16 constants were widened

    def fail(self, op_index: int, name: str, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(str(self.path), op_index, name, detail, SUPPORTED_OPS)


def load_tflite(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Parse ``path`` and return its main subgraph as a validated :class:`Graph`.

    An open batch dimension runs as 1 (the file's static shapes); other open
    dimensions of a graph input need ``input_shapes`` (``--input-shape``), with
    which TensorFlow Lite recomputes every tensor's shape."""
    path = Path(path)
    buf = read_model_bytes(path)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError("not a TFLite flatbuffer (missing 'TFL3' identifier)", where=str(path),
                         hint="Export the model with tf.lite.TFLiteConverter")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        return _read(_Ctx(path, model, buf, input_shapes))
    except (ModelError, UnsupportedOpError):
        raise
    except Exception as e:  # a corrupt flatbuffer makes the generated readers fail anywhere
        raise InvalidModelError(CORRUPT, "the file", f"is a corrupt or truncated TFLite flatbuffer "
                                f"({type(e).__name__}: {str(e)[:200]})", str(path)) from None


def check_structure(buf: bytes, where: str) -> None:
    """The reader's structural rules alone, without building the IR: the identifier, then every
    table, index and buffer the reader follows is in the file (:func:`.checks.check_tflite`).
    Pure Python and linear in the file's size: the service refuses a corrupt upload with it
    before queueing a job; :func:`load_tflite` gives the same lines for the same files."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError("not a TFLite flatbuffer (missing 'TFL3' identifier)", where=where,
                         hint="Export the model with tf.lite.TFLiteConverter")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise InvalidModelError(CORRUPT, "the file", "has no subgraph", where)
        check_tflite(model, buf, where)
    except (ModelError, UnsupportedOpError):
        raise
    except Exception as e:  # a corrupt flatbuffer makes the generated readers fail anywhere
        raise InvalidModelError(CORRUPT, "the file", f"is a corrupt or truncated TFLite flatbuffer "
                                f"({type(e).__name__}: {str(e)[:200]})", where) from None


def _read(ctx: _Ctx) -> Graph:
    m = ctx.model
    check_tflite(m, ctx.buf, str(ctx.path))
    sg = m.Subgraphs(0)
    tensors = [_tensor(ctx, sg.Tensors(i), i) for i in range(sg.TensorsLength())]
    _fix_shapes(ctx, tensors, [int(x) for x in sg.InputsAsNumpy()])
    variables = Variables(ctx, lambda op: _code_name(ctx, op), lambda k, t: _subgraph_tensor(ctx, k, t))
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = _code_name(ctx, op)
        if name in VAR_OPS:
            ops += [o for o in (variables.op(i, op, name, tensors),) if o is not None]
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            ops += lstm_ops(ctx, op, i, name, tensors, variables)
        elif name == "SVDF" and _svdf_state(ctx, op) is not None:
            ops += _svdf_ops(ctx, op, i, tensors, variables)
        else:
            ops.append(_op(ctx, op, i, tensors))
    other = sorted(set(range(1, m.SubgraphsLength())) - variables.init_subgraphs)
    if other:
        raise ModelError(f"{m.SubgraphsLength()} subgraphs; subgraph {other[0]} is control flow (only the "
                         "init subgraphs of CALL_ONCE are supported)", where=str(ctx.path))
    graph_outputs = [int(x) for x in sg.OutputsAsNumpy()]
    _check_state_tensors(ctx, ops, tensors, graph_outputs)
    name = decode_name(sg.Name(), "subgraph 0", str(ctx.path)) or ctx.path.stem
    g = Graph(name=name, tensors=tensors, ops=ops,
              inputs=[int(x) for x in sg.InputsAsNumpy()],
              outputs=[int(x) for x in sg.OutputsAsNumpy()],
              source=ctx.path, source_format="tflite")
    if ctx.float16:
        g.meta["float16_weights"] = True   # verify: TFLite Micro has no float16 DEQUANTIZE
    g.variables = variables.finish(ops)
    validate_graph(g)
    _check_hybrid(ctx, g)
    g.renumber()
    g.validate()
    return run_passes(g)


def _check_state_tensors(ctx: _Ctx, ops: list[Op], tensors: list[Tensor], graph_outputs: list[int]) -> None:
    """An LSTM's or SVDF's state tensor is a variable that TFLite Micro updates in place while the
    operator runs: read anywhere else (a graph output, another operator) it holds the state of
    before or after that operator depending on the place, which the state as a resource variable
    does not reproduce. Such a model is refused in one line."""
    for read in ops:
        if read.kind is not OpKind.READ_VARIABLE or read.name not in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF"):
            continue
        t = read.outputs[0]
        what = f"its state tensor '{tensors[t].name}'"
        if t in graph_outputs:
            raise ctx.fail(read.index, read.name, f"{what} is a graph output (TFLite Micro updates it in place "
                                                  "while the operator runs); output the operator's results instead")
        if any(t in op.inputs for op in ops if op.index != read.index):
            raise ctx.fail(read.index, read.name, f"{what} is also read by another operator (TFLite Micro "
                                                  "updates it in place while this one runs)")


def _tensor(ctx: _Ctx, t, index: int) -> Tensor:
    name = decode_name(t.Name(), f"tensor #{index}", str(ctx.path))
    ttype = t.Type()
    if ttype not in _DTYPES:
        tname = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}.get(ttype, ttype)
        dtype = None
    else:
        dtype = _DTYPES[ttype]
    shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    if t.ShapeSignatureLength() and any(int(x) < 0 for x in t.ShapeSignatureAsNumpy()[1:]):
        ctx.dynamic[index] = [int(x) for x in t.ShapeSignatureAsNumpy()]
    quant = None
    q = t.Quantization()
    # TFLite Micro quantizes a tensor only when it has both scales and zero points (a scale without a
    # zero point is no quantization there: an int8 MUL then outputs zeros), so neither is it here
    if q is not None and q.ScaleLength() > 0 and q.ZeroPointLength() > 0:
        scale = tuple(float(s) for s in q.ScaleAsNumpy())
        zps = tuple(int(z) for z in q.ZeroPointAsNumpy())
        quant = Quant(scale, zps, int(q.QuantizedDimension()))
    data = None
    buf = ctx.model.Buffers(t.Buffer())
    if buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1):
        if ttype == tflite.TensorType.FLOAT16:
            # float16 weights (converter's float16 quantization): widened to float32, exactly,
            # as the DEQUANTIZE that reads them does; that op then folds away (ir/passes.py)
            raw = tflite_buffer_bytes(ctx.buf, buf)
            if len(raw) != 2 * int(np.prod(shape, dtype=np.int64)):
                raise ModelError(f"constant tensor '{name}' has {len(raw)} B of data for shape {list(shape)} "
                                 "(float16)", where=str(ctx.path))
            data = np.frombuffer(raw, dtype=np.float16).astype(np.float32).reshape(shape)
            ctx.float16 = True
            return Tensor(index=index, name=name, shape=shape, dtype=DType.FLOAT32, quant=quant, data=data)
        if dtype is None:
            raise ModelError(f"constant tensor '{name}' has unsupported type {tname}", where=str(ctx.path))
        raw = tflite_buffer_bytes(ctx.buf, buf)
        data = np.frombuffer(raw, dtype=dtype.numpy).reshape(shape).copy()
    if dtype is None:
        # Only a problem if an op uses it; record as int8 placeholder and let the op check fail.
        dtype = DType.INT8
        name = f"{name} (unsupported type {tname})"
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, quant=quant, data=data)


def _fix_shapes(ctx: _Ctx, tensors: list[Tensor], inputs: list[int]) -> None:
    """Apply ``ctx.input_shapes`` (recomputing all shapes with TensorFlow Lite when one
    differs from the file's), or refuse open dimensions other than the batch in one line."""
    by_name = {tensors[i].name: i for i in inputs}
    for i in inputs:   # Keras exports name inputs serving_default_NAME:0; NAME is enough
        short = re.sub(r"^serving_default_|:\d+$", "", tensors[i].name)
        by_name.setdefault(short, i)
    for name, shape in ctx.input_shapes.items():
        i = by_name.get(name)
        if i is None:
            raise ModelError(f"--input-shape names '{name}', which is not a graph input",
                             where=str(ctx.path), hint="Graph inputs: " + ", ".join(sorted(by_name)))
        sig = ctx.dynamic.get(i, [-1] + list(tensors[i].shape[1:]))
        if len(shape) != len(sig) or any(s >= 0 and s != d for s, d in zip(sig, shape)):
            raise ModelError(f"--input-shape {name}={','.join(map(str, shape))} does not fit the input's "
                             f"shape {sig} (-1: open)", where=str(ctx.path))
    given = {by_name[n]: tuple(shape) for n, shape in ctx.input_shapes.items()}
    changed = {i: shape for i, shape in given.items() if shape != tensors[i].shape}
    if changed:
        for idx, shape in _resized_shapes(ctx, changed).items():
            if idx < len(tensors) and not tensors[idx].is_const:
                tensors[idx].shape = tuple(shape)
        return
    for i in inputs:
        if i in ctx.dynamic and i not in given:
            sig = ctx.dynamic[i]
            dims = ",".join("1" if k == 0 and d < 0 else "N" if d < 0 else str(d) for k, d in enumerate(sig))
            raise ModelError(f"graph input '{tensors[i].name}' has open dimensions {sig}", where=str(ctx.path),
                             hint=f"Set them: --input-shape {tensors[i].name}={dims} (or custom_tinyml_input_shape "
                                  "in platformio.ini), N being the size the application feeds")
    if ctx.dynamic and not ctx.input_shapes:
        i = min(ctx.dynamic)
        raise ModelError(f"tensor '{tensors[i].name}' has a dynamic shape {ctx.dynamic[i]}",
                         where=str(ctx.path), hint="Export the model with fixed input shapes")


def _resized_shapes(ctx: _Ctx, changed: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Every tensor's shape once TensorFlow Lite resizes the inputs in ``changed``."""
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError("setting input shapes of a .tflite model needs TensorFlow", where=str(ctx.path),
                         hint="pip install tensorflow, or export the model with fixed input shapes") from None
    try:
        interp = tf.lite.Interpreter(model_content=bytes(ctx.buf))
        for idx, shape in changed.items():
            interp.resize_tensor_input(idx, list(shape), strict=False)
        interp.allocate_tensors()
        return {d["index"]: tuple(int(x) for x in d["shape"]) for d in interp.get_tensor_details()}
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"TensorFlow Lite cannot resize the inputs to {list(changed.values())} "
                         f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__})",
                         where=str(ctx.path), hint="Check the --input-shape values") from None


def _act(ctx, i, name, code) -> Activation:
    if code not in _ACT:
        raise ctx.fail(i, name, f"fused activation {code}")
    return _ACT[code]


def _padding(ctx: _Ctx, i: int, name: str, value: int) -> int:
    """The options' padding kind; anything but SAME or VALID is refused (TFLite Micro would
    pad nothing and size the output its own way: no kernel here may guess)."""
    if value not in (tflite.Padding.SAME, tflite.Padding.VALID):
        raise InvalidModelError(PADDING_KIND, f"operator #{i} {name}", f"has padding kind {value} "
                                "(SAME is 0, VALID is 1)", str(ctx.path))
    return value


def _spatial_pads(padding, in_hw, k_hw, stride, dilation):
    if padding == tflite.Padding.VALID or min(stride) < 1:   # a bad stride: the validator names it
        return (0, 0), (0, 0)
    return (A.same_padding(in_hw[0], k_hw[0], stride[0], dilation[0]),
            A.same_padding(in_hw[1], k_hw[1], stride[1], dilation[1]))


def _axis(a: int, rank: int) -> int:
    """Axis ``a`` of a rank-``rank`` tensor as TFLite Micro resolves it: a negative one counts from
    the end. One outside [-rank, rank) is kept as it is, for the validator to refuse (TFLite Micro
    would index past the shape; wrapping it would compute something else)."""
    return a + rank if -rank <= a < 0 else a


def _code_name(ctx: _Ctx, op) -> str:
    oc = ctx.model.OperatorCodes(op.OpcodeIndex())
    code = builtin_code(oc)
    if code == tflite.BuiltinOperator.CUSTOM:
        return f"CUSTOM '{decode_name(oc.CustomCode(), 'operator code', str(ctx.path))}'"
    return _CODE_NAMES.get(code, f"builtin {code}")


def _subgraph_tensor(ctx: _Ctx, k: int, i: int) -> Tensor:
    """Tensor ``i`` of subgraph ``k`` (an init subgraph: see variables.py), after the reader checks."""
    check_tflite(ctx.model, ctx.buf, str(ctx.path), subgraph=k)
    return _tensor(ctx, ctx.model.Subgraphs(k).Tensors(i), i)


_OPTIONS_CLASSES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
_NOT_FIELDS = ("Init", "GetRootAs", "BufferHasIdentifier")


def _opaque_options(op) -> tuple[tuple[str, object], ...]:
    """An operator's builtin options as (field, value) pairs, read through the schema's
    generated class (scalars, and vectors as tuples), and a custom op's option bytes."""
    out: list[tuple[str, object]] = []
    cls = getattr(tflite, _OPTIONS_CLASSES.get(op.BuiltinOptionsType(), ""), None)
    table = op.BuiltinOptions()
    if isinstance(cls, type) and table is not None:
        o = cls()
        o.Init(table.Bytes, table.Pos)
        for field in sorted(vars(cls)):
            if field.startswith(("_",) + _NOT_FIELDS) or field.endswith(("Length", "IsNone", "AsNumpy")):
                continue
            try:
                value = getattr(o, field)()
            except TypeError:        # a vector field: read whole
                as_numpy, absent = getattr(o, field + "AsNumpy", None), getattr(o, field + "IsNone", None)
                value = (() if absent is not None and absent() else
                         tuple(np.asarray(as_numpy()).reshape(-1).tolist()) if as_numpy else None)
            if isinstance(value, (bool, int, float, bytes, tuple)):
                out.append((field, value))
    if op.CustomOptionsLength():
        out.append(("custom_options", bytes(op.CustomOptionsAsNumpy())))
    return tuple(out)


def _svdf_state(ctx: _Ctx, op) -> int | None:
    """SVDF's activation state (input 4) when it is a variable tensor, as TFLite Micro keeps it."""
    ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
    if len(ins) != 5 or ins[4] < 0 or not ctx.model.Subgraphs(0).Tensors(ins[4]).IsVariable():
        return None
    return ins[4]


def _svdf_ops(ctx: _Ctx, op, i: int, tensors: list[Tensor], variables) -> list[Op]:
    """[READ_VARIABLE state, SVDF (opaque; outputs the output and the next state), ASSIGN_VARIABLE]."""
    ins = [int(x) for x in op.InputsAsNumpy()]
    outs = [int(x) for x in op.OutputsAsNumpy()]
    carried = _op(ctx, op, i, tensors)
    return stateful(i, "SVDF", tensors, variables, (ins[4],), lambda nxt: Op(
        index=i, kind=OpKind.OPAQUE, inputs=ins, outputs=outs[:1] + nxt, attrs=carried.attrs, name=carried.name))


def _op(ctx: _Ctx, op, i: int, tensors: list[Tensor]) -> Op:
    name = _code_name(ctx, op)
    if name == "WHILE":
        raise ctx.fail(i, name, "control flow; Keras 3 converts an LSTM or GRU layer to it: give the .keras "
                                "file itself (its LSTM layers become UNIDIRECTIONAL_SEQUENCE_LSTM, GRU layers "
                                "are unrolled), or build the layer with unroll=True")
    ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
    outs = [int(x) for x in op.OutputsAsNumpy()]
    for t in ins + outs:
        if t >= 0 and "unsupported type" in tensors[t].name:
            raise ctx.fail(i, name, f"tensor {tensors[t].name}")
    if name not in OpKind.__members__ or name == OpKind.OPAQUE.value:
        # carried as the file has it: a backend that compiles the file (tflm) may take it
        op_type = name.replace("CUSTOM '", "CUSTOM:").rstrip("'") if name.startswith("CUSTOM '") else name
        return Op(index=i, kind=OpKind.OPAQUE, inputs=ins, outputs=outs,
                  attrs=A.Opaque(op_type, _opaque_options(op)), name=name)
    kind = OpKind(name)
    attrs = None
    T = tflite
    # Options missing (or of another type) leave attrs None where TFLite Micro's zero defaults mean
    # no valid operator (stride 0, padding unknown): the validator refuses them (operator-arity).
    # Elsewhere the defaults below are TFLite Micro's zeros.
    if kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
        is_dw = kind is OpKind.DEPTHWISE_CONV_2D
        o = _options(op, T.DepthwiseConv2DOptions if is_dw else T.Conv2DOptions)
        if o is None:
            return Op(index=i, kind=kind, inputs=ins, outputs=outs, attrs=None, name=name)
        x, w = tensors[ins[0]], tensors[ins[1]]
        stride = (o.StrideH(), o.StrideW())
        dil = (o.DilationHFactor(), o.DilationWFactor())
        (pt, pb), (pl, pr) = _spatial_pads(_padding(ctx, i, name, o.Padding()), x.shape[1:3], w.shape[1:3],
                                           stride, dil)
        # TFLite Micro's depthwise kernels take the multiplier from the options, not from the shapes:
        # the validator refuses one that disagrees with them
        dm = o.DepthMultiplier() if is_dw else 1
        attrs = A.Conv2D(stride[0], stride[1], dil[0], dil[1], pt, pl, pb, pr,
                         _act(ctx, i, name, o.FusedActivationFunction()), dm)
    elif kind is OpKind.BATCH_MATMUL:
        o = _options(op, T.BatchMatMulOptions)   # none: TFLite Micro's defaults (no adjoints)
        attrs = A.BatchMatMul(bool(o.AdjX()), bool(o.AdjY())) if o else A.BatchMatMul()
    elif kind is OpKind.TRANSPOSE_CONV:
        attrs, ins = _transpose_conv(ctx, op, i, name, ins, outs, tensors)
    elif kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        o = _options(op, T.Pool2DOptions)
        if o is None:
            return Op(index=i, kind=kind, inputs=ins, outputs=outs, attrs=None, name=name)
        x = tensors[ins[0]]
        k = (o.FilterHeight(), o.FilterWidth())
        stride = (o.StrideH(), o.StrideW())
        (pt, pb), (pl, pr) = _spatial_pads(_padding(ctx, i, name, o.Padding()), x.shape[1:3], k, stride, (1, 1))
        attrs = A.Pool2D(k[0], k[1], stride[0], stride[1], pt, pl, pb, pr,
                         _act(ctx, i, name, o.FusedActivationFunction()))
    elif kind is OpKind.FULLY_CONNECTED:
        o = _options(op, T.FullyConnectedOptions)
        if o is not None and o.WeightsFormat() != 0:
            raise ctx.fail(i, name, "shuffled weights format")
        attrs = A.FullyConnected(_act(ctx, i, name, o.FusedActivationFunction() if o else 0),
                                 bool(o.KeepNumDims()) if o else False)
    elif kind in (OpKind.ADD, OpKind.MUL):
        o = _options(op, T.AddOptions if kind is OpKind.ADD else T.MulOptions)
        attrs = A.Elementwise(_act(ctx, i, name, o.FusedActivationFunction() if o else 0))
    elif kind in (OpKind.SUB, OpKind.DIV):
        o = _options(op, T.SubOptions if kind is OpKind.SUB else T.DivOptions)
        attrs = A.Elementwise(_act(ctx, i, name, o.FusedActivationFunction() if o else 0))
    elif kind is OpKind.LEAKY_RELU:
        o = _options(op, T.LeakyReluOptions)
        attrs = A.LeakyRelu(float(o.Alpha()) if o else 0.0)
    elif kind is OpKind.GELU:
        o = _options(op, T.GeluOptions)
        attrs = A.Gelu(bool(o.Approximate()) if o else False)
    elif kind is OpKind.L2_NORMALIZATION:
        o = _options(op, T.L2NormOptions)
        if o is not None and o.FusedActivationFunction() != 0:
            raise ctx.fail(i, name, f"fused activation {o.FusedActivationFunction()}")
    elif kind is OpKind.SOFTMAX:
        o = _options(op, T.SoftmaxOptions)
        attrs = A.Softmax(beta=float(o.Beta()) if o else 0.0)
    elif kind is OpKind.CONCATENATION:
        o = _options(op, T.ConcatenationOptions)
        rank = len(tensors[outs[0]].shape)
        attrs = A.Concatenation(_axis(o.Axis() if o else 0, rank),
                                _act(ctx, i, name, o.FusedActivationFunction() if o else 0))
    elif kind is OpKind.MEAN:
        o = _options(op, T.ReducerOptions)
        axes_t = tensors[ins[1]]
        if not axes_t.is_const:
            raise ctx.fail(i, name, "axes must be a constant tensor")
        rank = len(tensors[ins[0]].shape)
        axes = tuple(sorted(_axis(int(a), rank) for a in axes_t.data.reshape(-1)))
        attrs = A.Mean(axes, bool(o.KeepDims()) if o else False)
        ins = ins[:1]
    elif kind in (OpKind.PAD, OpKind.MIRROR_PAD):
        p = tensors[ins[1]]
        if not p.is_const:
            raise ctx.fail(i, name, "paddings must be a constant tensor")
        pads = tuple((int(a), int(b)) for a, b in p.data.reshape(-1, 2))
        if kind is OpKind.MIRROR_PAD:
            o = _options(op, T.MirrorPadOptions)
            attrs = A.Pad(pads, mode="symmetric" if o is not None and o.Mode() == 1 else "reflect")
        else:
            attrs = A.Pad(pads)
        ins = ins[:1]
    elif kind is OpKind.RESHAPE:
        ins = ins[:1]
    elif kind in SHAPE_KINDS:
        try:
            attrs, ins = shape_attrs(op, kind, ins, outs, tensors)
        except ParamError as e:
            if e.rule:
                raise InvalidModelError(e.rule, f"operator #{i} {name}", str(e), str(ctx.path)) from None
            raise ctx.fail(i, name, str(e)) from None
    return Op(index=i, kind=kind, inputs=ins, outputs=outs, attrs=attrs, name=name)


def _transpose_conv(ctx: _Ctx, op, i: int, name: str, ins: list[int], outs: list[int], tensors: list[Tensor]):
    """TRANSPOSE_CONV (inputs output_shape, filter, x, bias?) as attrs.Conv2D and [x, filter, bias?].

    TFLite Micro computes the padding from the *output's* height and width (ComputePaddingHeightWidth
    with the output as its input size) and scatters each input pixel to ``in * stride - pad + k``;
    the output_shape operand is dropped (a constant one must equal the output's shape; a computed one,
    e.g. from SHAPE with an open batch, is dead code once the batch is 1)."""
    o = _options(op, tflite.TransposeConvOptions)
    if o is None or len(ins) not in (3, 4) or len(outs) != 1 or min(ins[:3]) < 0:
        return None, ins
    shape_t, w, y = tensors[ins[0]], tensors[ins[1]], tensors[outs[0]]
    if shape_t.is_const and [int(v) for v in shape_t.data.reshape(-1)] != list(y.shape):
        raise InvalidModelError(SHAPE_RULE, f"operator #{i} {name}", f"has output_shape "
                                f"{[int(v) for v in shape_t.data.reshape(-1)]} but output {list(y.shape)}",
                                str(ctx.path))
    stride = (o.StrideH(), o.StrideW())
    padding = _padding(ctx, i, name, o.Padding())
    pads = [(0, 0), (0, 0)]
    if len(y.shape) == 4 and len(w.shape) == 4 and min(stride) >= 1:
        for d in range(2):
            size, k, s = y.shape[1 + d], w.shape[1 + d], stride[d]
            n = (size + s - 1) // s if padding == tflite.Padding.SAME else int((size + s - k) / s)
            total = max(0, (n - 1) * s + k - size)
            pads[d] = (total // 2, total - total // 2)
    attrs = A.Conv2D(stride[0], stride[1], 1, 1, pads[0][0], pads[1][0], pads[0][1], pads[1][1],
                     _act(ctx, i, name, o.FusedActivationFunction()))
    bias = ins[3:4] if len(ins) == 4 and ins[3] >= 0 else []
    return attrs, [ins[2], ins[1]] + bias


def _check_hybrid(ctx: _Ctx, g: Graph) -> None:
    for op in g.ops:
        if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED, OpKind.TRANSPOSE_CONV):
            x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
            if x.dtype is DType.FLOAT32 and w.dtype is not DType.FLOAT32:
                raise ModelError(
                    f"operator #{op.index} {op.kind.value} is hybrid (float activations, "
                    f"{w.dtype.np_name} weights): dynamic-range quantized models are not supported",
                    where=str(ctx.path),
                    hint="Export a float32 model or a full-integer (int8) model with a representative dataset")
