"""Import validation: the named rules every imported model passes before a backend sees it.

A model file is untrusted input (the service compiles files strangers upload).
The readers call, in this order:

* the reader-level checks of their format (``model/tflite/checks.py``,
  ``model/onnx/checks.py``) on the parsed file: what must hold before an IR can
  be built (indices and constant data inside the file, names that decode),
  raising the same rules;
* :func:`validate_graph` on the imported :class:`~platformio_tinyml.ir.Graph`:
  one pass over its I/O, operators and tensors.

A violation raises :class:`InvalidModelError`: one line naming the rule, the
tensor or operator and its index, the model file and what to do. :data:`RULES`
maps each rule name to its statement (docs/model-validation.md lists them).
A graph the validator accepts is well formed: every index resolves, each
operator's output shape is the one its inputs and options give, every number
is finite and every size fits a 32-bit address space. Backends then only
decide whether they *support* it; the board-specific size checks come later
(selection and the memory gate).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, one_line
from ..ir import DType, Graph, Op, OpKind, Tensor
from ..ir import attrs as A
from ..ir.graph import COMPARISON_OPS, MULTI_OUTPUT_OPS
from ..ir.shape_ops import SHAPE_OP_KINDS, output_shapes

MAX_BYTES = (1 << 31) - 1   # a tensor, and all tensors together: a 32-bit address space
MAX_RANK = 8
MAX_PARAM = 65535           # strides, dilations, paddings
SCALE_RANGE = (2.0 ** -126, 2.0 ** 60)   # from float32's smallest normal: converters give dead channels ~1e-30
NAME_LIMIT = 60             # characters of a model-controlled name shown in a message

RULES: dict[str, str] = {}


def rule(name: str, statement: str) -> str:
    """Register rule ``name`` with the statement every valid model satisfies; returns the name."""
    RULES[name] = statement
    return name


CORRUPT = rule("corrupt-file", "the file parses as a TFLite flatbuffer or an ONNX protobuf, every offset "
                               "and length inside the file")
NAME_UTF8 = rule("name-utf8", "every name (graph, tensor, operator, operator code) is valid UTF-8")
BUFFER_INDEX = rule("buffer-index", "a TFLite tensor's buffer index names a buffer of the model")
BUFFER_BOUNDS = rule("buffer-bounds", "constant data lies inside the model file (no ONNX external data, "
                                      "no TFLite buffer offset past the end)")
OPCODE_INDEX = rule("opcode-index", "a TFLite operator's opcode index names an operator code of the model")
CONSTANT_SIZE = rule("constant-size", "a constant's data holds exactly the bytes its shape and type need")
VARIABLE_CONSTANT = rule("variable-constant", "no TFLite constant (a tensor with data) is marked is_variable: "
                                             "TFLite Micro would allocate it in the arena and zero it, dropping "
                                             "its data")
TENSOR_INDEX = rule("tensor-index", "every tensor index of an operator or of the graph's I/O names a "
                                    "tensor of the graph")
GRAPH_INPUTS = rule("graph-inputs", "the graph has at least one input; inputs are distinct and not constants")
GRAPH_OUTPUTS = rule("graph-outputs", "the graph has at least one output; outputs are distinct and computed "
                                      "by an operator (not a constant or a graph input)")
ARITY = rule("operator-arity", "an operator has the inputs, the output and the options its kind needs "
                               "(TFLite options of another type than the operator's count as none)")
ORDER = rule("operator-order", "an operator reads only constants, graph inputs and outputs of earlier "
                               "operators; every tensor is written once")
RANK = rule("tensor-rank", f"a tensor has at most {MAX_RANK} dimensions")
NEGATIVE = rule("negative-dimension", "no tensor dimension is negative (dynamic shapes are not supported)")
ZERO_SIZE = rule("zero-size-tensor", "no tensor dimension is zero")
TOO_LARGE = rule("tensor-too-large", f"a tensor's byte size is at most {MAX_BYTES:,} (32-bit address space)")
MODEL_TOO_LARGE = rule("model-too-large", f"all tensors together take at most {MAX_BYTES:,} bytes")
FINITE = rule("finite-weights", "float constants and float options (softmax beta, pad value, leaky "
                             "relu alpha, and a quantized leaky relu's multipliers) are finite (an ONNX Clip "
                             "bound may be +-inf, and so may a constant that only selections, comparisons, "
                             "max/min and additions read: a mask's -inf)")
# ops that may read a constant holding +-inf (see _Pass._infinity_ok)
INFINITY_READERS = frozenset({OpKind.SELECT_V2, OpKind.EQUAL, OpKind.NOT_EQUAL, OpKind.LESS, OpKind.LESS_EQUAL,
                              OpKind.GREATER, OpKind.GREATER_EQUAL, OpKind.MAXIMUM, OpKind.MINIMUM, OpKind.ADD})
MAX_WEIGHT = 1e30
MAGNITUDE = rule("weight-magnitude", f"float constants are at most {MAX_WEIGHT:g} in magnitude: a product or sum "
                                     "with a larger one overflows float32, and then the result depends on the order "
                                     "of evaluation (two correct interpreters give inf and a finite number); "
                                     "trained weights are many orders smaller")
SCALE = rule("quant-scale", "quantization scales are finite and between 2^-126 (float32's smallest normal) and 2^60")
ZERO_POINT = rule("zero-point-range", "zero points fit the tensor's integer type")
CHANNELS = rule("quant-channels", "a quantization has as many zero points as scales; per-channel "
                                  "quantization has one per channel along an axis of the tensor")
MISSING_QUANT = rule("missing-quantization", "int8, uint8 and int16 tensors that operators use carry "
                                             "quantization parameters")
ELEMENT_TYPE = rule("element-type", "an operator's activation inputs and its output share one element type "
                                    "(QUANTIZE, DEQUANTIZE and SOFTMAX excepted; a comparison reads two of one "
                                    "type and writes bool, SELECT_V2 reads a bool condition and two of its "
                                    "output's type; the weights and bias of convolutions and FULLY_CONNECTED "
                                    "are the backends' to check); no ONNX constant is complex")
STRIDE = rule("stride-range", f"strides, dilations and filter sizes are between 1 and {MAX_PARAM}")
PADDING = rule("padding-range", f"paddings are between 0 and {MAX_PARAM}; a pooling pad is smaller than "
                                "its filter")
PADDING_KIND = rule("padding-kind", "a TFLite convolution or pooling pads SAME or VALID")
SHAPE = rule("shape-mismatch", "an operator's output shape is the one its inputs and options give, its "
                               "weights, bias and count options (depth multiplier, PACK values_count, UNPACK "
                               "num) fit its tensors, and its axes lie within the input's rank")

_HINT = ("The file is malformed or was changed after export: re-export it from the training framework "
         "(see docs/model-validation.md)")


class InvalidModelError(ModelError):
    """A model breaks import rule ``rule`` at ``subject`` (a tensor, an operator or the graph)."""

    def __init__(self, rule_name: str, subject: str, detail: str, model: str, hint: str | None = None):
        self.rule = rule_name
        self.subject = subject
        super().__init__(f"invalid model, rule {rule_name}: {subject} {detail}", where=model,
                         hint=hint or _HINT)


def printable(text: str | bytes, limit: int = NAME_LIMIT) -> str:
    """``text`` (a model-controlled name) made safe for a one-line message: quotes, backslashes
    and non-printable characters escaped, at most ``limit`` characters kept."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    out = one_line(text[:limit].replace("\\", "\\\\").replace("'", "\\'"))
    return out + ("..." if len(text) > limit else "")


def tensor_subject(t: Tensor) -> str:
    return f"tensor #{t.index} '{printable(t.name)}'"


def op_subject(op: Op, position: int | None = None) -> str:
    k = op.index if position is None else position
    named = f" '{printable(op.name)}'" if op.name and op.name not in (op.kind.value, op.type_name) else ""
    return f"operator #{k} {printable(op.type_name)}{named}"


# ---- reader-level checks ------------------------------------------------------------------------

def decode_name(raw: bytes | str | None, what: str, model: str) -> str:
    """A name from the file as text; :data:`NAME_UTF8` when it is not valid UTF-8."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidModelError(NAME_UTF8, what, f"has a name that is not UTF-8 ('{printable(raw)}')",
                                model) from None


def count(shape) -> int:
    """Elements of ``shape`` (Python ints: no overflow)."""
    return math.prod(int(d) for d in shape)


# ---- the IR pass ----------------------------------------------------------------------------------

# kind -> (min inputs, max inputs, attrs class or None); inputs past the first two are optional (-1).
_ARITY: dict[OpKind, tuple[int, int, type | None]] = {
    OpKind.CONV_2D: (2, 3, A.Conv2D), OpKind.DEPTHWISE_CONV_2D: (2, 3, A.Conv2D),
    OpKind.TRANSPOSE_CONV: (2, 3, A.Conv2D), OpKind.BATCH_MATMUL: (2, 2, A.BatchMatMul),
    OpKind.FULLY_CONNECTED: (2, 3, A.FullyConnected),
    OpKind.AVERAGE_POOL_2D: (1, 1, A.Pool2D), OpKind.MAX_POOL_2D: (1, 1, A.Pool2D),
    OpKind.ADD: (2, 2, A.Elementwise), OpKind.MUL: (2, 2, A.Elementwise),
    OpKind.SOFTMAX: (1, 1, A.Softmax), OpKind.PAD: (1, 1, A.Pad), OpKind.MIRROR_PAD: (1, 1, A.Pad),
    OpKind.CONCATENATION: (1, 1 << 16, A.Concatenation), OpKind.MEAN: (1, 1, A.Mean),
    # ops the graph passes (ir/passes.py) rewrite or remove; their extra inputs are shape constants
    OpKind.SHAPE: (1, 1, None), OpKind.EXPAND_DIMS: (2, 2, None), OpKind.SQUEEZE: (1, 1, None),
    # data movement, reductions, resizing: constant parameters are in attrs (ir/shape_ops.py)
    OpKind.STRIDED_SLICE: (1, 1, A.Slice), OpKind.SLICE: (1, 1, A.Slice), OpKind.PACK: (1, 1 << 16, A.Pack),
    OpKind.TRANSPOSE: (1, 1, A.Transpose), OpKind.SPLIT: (1, 1, A.Split), OpKind.SPLIT_V: (1, 1, A.Split),
    OpKind.UNPACK: (1, 1, A.Split), OpKind.TILE: (1, 1, A.Tile), OpKind.BROADCAST_TO: (1, 1, A.Tile),
    OpKind.GATHER: (1, 1, A.Gather), OpKind.SPACE_TO_DEPTH: (1, 1, A.Block),
    OpKind.DEPTH_TO_SPACE: (1, 1, A.Block), OpKind.SPACE_TO_BATCH_ND: (1, 1, A.Block),
    OpKind.BATCH_TO_SPACE_ND: (1, 1, A.Block), OpKind.REDUCE_MAX: (1, 1, A.Mean),
    OpKind.REDUCE_MIN: (1, 1, A.Mean), OpKind.SUM: (1, 1, A.Mean), OpKind.ARG_MAX: (1, 1, A.ArgMinMax),
    OpKind.ARG_MIN: (1, 1, A.ArgMinMax), OpKind.RESIZE_BILINEAR: (1, 1, A.Resize),
    OpKind.RESIZE_NEAREST_NEIGHBOR: (1, 1, A.Resize),
    # element-wise ops (cgen/lower_ew.py)
    OpKind.SUB: (2, 2, A.Elementwise), OpKind.DIV: (2, 2, A.Elementwise),
    OpKind.MAXIMUM: (2, 2, None), OpKind.MINIMUM: (2, 2, None), OpKind.SQUARED_DIFFERENCE: (2, 2, None),
    OpKind.PRELU: (2, 2, None), OpKind.LEAKY_RELU: (1, 1, A.LeakyRelu), OpKind.GELU: (1, 1, A.Gelu),
    # comparisons and logic (cgen/lower_logic.py)
    **{k: (2, 2, None) for k in (*COMPARISON_OPS, OpKind.LOGICAL_AND, OpKind.LOGICAL_OR)},
    OpKind.SELECT_V2: (3, 3, None),
}
_OUTPUTS = {OpKind.ASSIGN_VARIABLE: 0, OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM: 3}   # kinds without one output
_ARITY.update({OpKind.READ_VARIABLE: (0, 0, A.VariableRef), OpKind.ASSIGN_VARIABLE: (1, 1, A.VariableRef),
               OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM: (15, 15, A.Lstm), OpKind.OPAQUE: (0, 1 << 16, A.Opaque),
               OpKind.TREE_ENSEMBLE: (1, 1, A.TreeEnsemble)})
_ZP_RANGE = {DType.INT8: (-128, 127), DType.UINT8: (0, 255), DType.INT16: (-32768, 32767)}
_QUANTIZED = (DType.INT8, DType.UINT8, DType.INT16)
_TYPE_CHANGING = (OpKind.QUANTIZE, OpKind.DEQUANTIZE, OpKind.SOFTMAX, OpKind.SHAPE, OpKind.ARG_MAX, OpKind.ARG_MIN,
                  OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM,   # quantized LSTMs: int8, int16 and int32 tensors
                  OpKind.OPAQUE,                         # its types are its own
                  OpKind.TREE_ENSEMBLE,                  # float32 scores, int64 labels: _tree_shape
                  *COMPARISON_OPS, OpKind.SELECT_V2)     # BOOL results / condition: _logic_types
_DATA_FIRST = (OpKind.EXPAND_DIMS, OpKind.STRIDED_SLICE)    # the other inputs are int32 shape constants
_WEIGHTED = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED, OpKind.TRANSPOSE_CONV)


def validate_graph(g: Graph) -> None:
    """Check every rule on ``g``, as imported (before ``renumber``: tensor and operator
    indices are the file's where the format has them). Raises :class:`InvalidModelError`."""
    _Pass(g).run()


class _Pass:
    def __init__(self, g: Graph):
        self.g = g
        self.model = str(g.source or g.name)

    def fail(self, rule_name: str, subject: str, detail: str, hint: str | None = None) -> InvalidModelError:
        return InvalidModelError(rule_name, subject, detail, self.model, hint)

    def _infinity_ok(self, t: int) -> bool:
        """Whether float constant ``t`` may hold +-inf: a mask value (attention's -inf, a Clip
        bound), read only by ops whose result does not depend on the order of evaluation
        (element-wise selection, comparison, max/min, addition), never a graph output."""
        if t in self.g.outputs:
            return False
        readers = [op for op in self.g.ops if t in op.inputs]
        return bool(readers) and all(op.kind in INFINITY_READERS for op in readers)

    def run(self) -> None:
        g = self.g
        self._io_indices()
        for k, op in enumerate(g.ops):
            self._arity(k, op)
        used = set(g.inputs) | set(g.outputs)
        for op in g.ops:
            used.update(i for i in op.inputs + op.outputs if i >= 0)
        total = 0
        for i in sorted(used):
            total += self._tensor(g.tensors[i])
        if total > MAX_BYTES:
            raise self.fail(MODEL_TOO_LARGE, "graph", f"needs {total:,} bytes for its tensors")
        self._order_and_io()
        for k, op in enumerate(g.ops):
            self._op(k, op)

    # -- structure

    def _io_indices(self) -> None:
        g, n = self.g, len(self.g.tensors)
        for what, idxs, rule_name in (("input", g.inputs, GRAPH_INPUTS), ("output", g.outputs, GRAPH_OUTPUTS)):
            if not idxs:
                raise self.fail(rule_name, "graph", f"has no {what}s")
            bad = [i for i in idxs if not 0 <= i < n]
            if bad:
                raise self.fail(TENSOR_INDEX, "graph", f"{what} is tensor {bad[0]}; the graph has {n}")
            if len(set(idxs)) != len(idxs):
                raise self.fail(rule_name, "graph", f"lists a tensor twice among its {what}s {idxs}")
        for k, op in enumerate(g.ops):
            bad = [i for i in op.inputs if not -1 <= i < n] + [i for i in op.outputs if not 0 <= i < n]
            if bad:
                raise self.fail(TENSOR_INDEX, op_subject(op, k), f"uses tensor {bad[0]}; the graph has {n}")

    def _arity(self, k: int, op: Op) -> None:
        lo, hi, cls = _ARITY.get(op.kind, (1, 1, None))
        ins, subject = op.inputs, op_subject(op, k)
        n_out = _OUTPUTS.get(op.kind, 1)
        n_out_ok = len(op.outputs) >= 1 if op.kind in MULTI_OUTPUT_OPS | {OpKind.OPAQUE} else len(op.outputs) == n_out
        if op.kind is OpKind.TREE_ENSEMBLE:   # scores, and a classifier's labels
            n_out_ok = len(op.outputs) == (2 if isinstance(op.attrs, A.TreeEnsemble) and op.attrs.labels else 1)
        if not lo <= len(ins) <= hi or any(i < 0 for i in ins[:lo]) or not n_out_ok:
            raise self.fail(ARITY, subject, f"has inputs {ins} and outputs {op.outputs} (needs {lo}"
                            f"{'' if hi == lo else f' to {min(hi, 3)}'} inputs and "
                            f"{'one output' if n_out == 1 else 'no outputs'})")
        if cls is not None and not isinstance(op.attrs, cls):
            raise self.fail(ARITY, subject, "has no options")

    def _order_and_io(self) -> None:
        g = self.g
        ready = {i for i, t in enumerate(g.tensors) if t.is_const} | set(g.inputs)
        for i in g.inputs:
            if g.tensors[i].is_const:
                raise self.fail(GRAPH_INPUTS, tensor_subject(g.tensors[i]), "is a graph input and a constant")
        produced = set()
        for k, op in enumerate(g.ops):
            late = [i for i in op.inputs if i >= 0 and i not in ready]
            if late:
                raise self.fail(ORDER, op_subject(op, k), f"reads {tensor_subject(g.tensors[late[0]])} "
                                "before any operator writes it")
            twice = [i for i in op.outputs if i in ready]
            if twice:
                raise self.fail(ORDER, op_subject(op, k), f"writes {tensor_subject(g.tensors[twice[0]])}, "
                                "which is a constant, a graph input or written before")
            ready.update(op.outputs)
            produced.update(op.outputs)
        for i in g.outputs:
            if i not in produced:
                t = g.tensors[i]
                what = "a constant" if t.is_const else "a graph input" if i in g.inputs else "never computed"
                raise self.fail(GRAPH_OUTPUTS, tensor_subject(t), f"is a graph output but {what}")

    # -- tensors

    def _tensor(self, t: Tensor) -> int:
        """Tensor rules; returns the tensor's byte size."""
        s = tensor_subject(t)
        shape = list(t.shape)
        if len(shape) > MAX_RANK:
            raise self.fail(RANK, s, f"has {len(shape)} dimensions")
        if any(d < 0 for d in shape):
            raise self.fail(NEGATIVE, s, f"has shape {shape}", hint="Export the model with fixed shapes")
        if any(d == 0 for d in shape):
            raise self.fail(ZERO_SIZE, s, f"has shape {shape}")
        nbytes = count(shape) * t.dtype.itemsize
        if nbytes > MAX_BYTES:
            raise self.fail(TOO_LARGE, s, f"of shape {shape} needs {nbytes:,} bytes")
        if t.is_const:
            if tuple(t.data.shape) != tuple(shape) or t.data.dtype != t.dtype.numpy:
                raise self.fail(CONSTANT_SIZE, s, f"of shape {shape} {t.dtype.np_name} holds "
                                f"{list(t.data.shape)} {t.data.dtype} data")
            flat = t.data.reshape(-1)
            if t.dtype is DType.FLOAT32 and not np.isfinite(flat).all():
                bad = int(np.flatnonzero(np.isnan(flat) if np.isnan(flat).any() else ~np.isfinite(flat))[0])
                if np.isnan(flat[bad]) or not self._infinity_ok(t.index):
                    raise self.fail(FINITE, s, f"has {flat[bad]} at element {bad}")
            finite = flat[np.isfinite(flat)] if t.dtype is DType.FLOAT32 else flat
            if t.dtype is DType.FLOAT32 and finite.size and float(np.abs(finite).max()) > MAX_WEIGHT:
                bad = int(np.flatnonzero(np.abs(flat) == np.abs(finite).max())[0])
                raise self.fail(MAGNITUDE, s, f"has {float(flat[bad]):g} at element {bad}")
        self._quant(t, s)
        return nbytes

    def _quant(self, t: Tensor, s: str) -> None:
        q = t.quant
        if q is None:
            if t.dtype in _QUANTIZED:
                raise self.fail(MISSING_QUANT, s, f"is {t.dtype.np_name} without scale and zero point")
            return
        if not q.scale or len(q.zero_point) != len(q.scale):
            raise self.fail(CHANNELS, s, f"has {len(q.scale)} scales and {len(q.zero_point)} zero points")
        if len(q.scale) > 1 and not (0 <= q.axis < len(t.shape) and t.shape[q.axis] == len(q.scale)):
            raise self.fail(CHANNELS, s, f"of shape {list(t.shape)} has {len(q.scale)} scales along axis "
                            f"{q.axis}")
        lo_s, hi_s = SCALE_RANGE
        bad = [x for x in q.scale if not (math.isfinite(x) and lo_s <= x <= hi_s)]
        if bad:
            raise self.fail(SCALE, s, f"has scale {bad[0]!r}")
        lo, hi = _ZP_RANGE.get(t.dtype, (-(1 << 31), (1 << 31) - 1))
        bad = [z for z in q.zero_point if not lo <= z <= hi]
        if bad:
            raise self.fail(ZERO_POINT, s, f"is {t.dtype.np_name} with zero point {bad[0]}")

    # -- operators

    def _leaky_relu_multipliers(self, subject: str, op: Op, alpha: float) -> None:
        """A quantized LEAKY_RELU rescales by input scale / output scale and by alpha times
        that, both computed in float32 (as TFLite Micro does): each must be finite."""
        if not op.inputs or op.inputs[0] < 0 or not op.outputs:
            return   # arity is checked with the operator's kind
        qi, qo = self.g.tensors[op.inputs[0]].quant, self.g.tensors[op.outputs[0]].quant
        if qi is None or qo is None or not qi.scale or not qo.scale:
            return
        si, so = np.float32(qi.scale[0]), np.float32(qo.scale[0])
        with np.errstate(over="ignore", invalid="ignore"):
            ratios = (si / so, si * np.float32(alpha) / so)
        if not all(np.isfinite(r) for r in ratios):
            raise self.fail(FINITE, subject, f"has alpha {alpha} and scales {float(si)!r} -> {float(so)!r}: "
                            "its multiplier (alpha x input scale / output scale, in float32) is not finite")

    def _op(self, k: int, op: Op) -> None:
        subject = op_subject(op, k)
        a = op.attrs
        if isinstance(a, A.Softmax) and not math.isfinite(a.beta):
            raise self.fail(FINITE, subject, f"has beta {a.beta}")
        if isinstance(a, A.LeakyRelu) and not math.isfinite(a.alpha):
            raise self.fail(FINITE, subject, f"has alpha {a.alpha}")
        if isinstance(a, A.LeakyRelu):
            self._leaky_relu_multipliers(subject, op, a.alpha)
        if isinstance(a, A.Pad) and not math.isfinite(a.value):
            raise self.fail(FINITE, subject, f"pads with {a.value}")
        if op.kind in COMPARISON_OPS or op.kind is OpKind.SELECT_V2:
            self._logic_types(subject, op)
        elif op.kind not in _TYPE_CHANGING:
            data = op.inputs[:1] if op.kind in _WEIGHTED + _DATA_FIRST else [i for i in op.inputs if i >= 0]
            types = [self.g.tensors[i].dtype.np_name for i in data + op.outputs]
            if len(set(types)) > 1:
                raise self.fail(ELEMENT_TYPE, subject, f"reads {', '.join(types[:-1])} and writes {types[-1]}")
        if isinstance(a, (A.Conv2D, A.Pool2D)):
            self._window(subject, a)
        check = _SHAPES.get(op.kind, _same_shape)
        detail = check(self, op)
        if detail:
            rule_name, text = detail if isinstance(detail, tuple) else (SHAPE, detail)
            raise self.fail(rule_name, subject, text)

    def _logic_types(self, subject: str, op: Op) -> None:
        """A comparison reads two tensors of one type and writes BOOL; SELECT_V2 reads a BOOL
        condition and two tensors of its output's type."""
        t = [self.g.tensors[i].dtype for i in op.inputs if i >= 0] + [self.g.tensors[i].dtype for i in op.outputs]
        if op.kind is OpKind.SELECT_V2:
            ok = len(t) == 4 and t[0] is DType.BOOL and t[1] is t[2] is t[3]
        else:
            ok = len(t) == 3 and t[0] is t[1] and t[2] is DType.BOOL
        if not ok:
            names = [d.np_name for d in t]
            raise self.fail(ELEMENT_TYPE, subject, f"reads {', '.join(names[:-1])} and writes {names[-1]}")

    def _window(self, subject: str, a) -> None:
        params = {"stride": (a.stride_h, a.stride_w)}
        if isinstance(a, A.Conv2D):
            params["dilation"] = (a.dilation_h, a.dilation_w)
        else:
            params["filter size"] = (a.filter_h, a.filter_w)
        for what, (h, w) in params.items():
            if not (1 <= h <= MAX_PARAM and 1 <= w <= MAX_PARAM):
                raise self.fail(STRIDE, subject, f"has {what} {h}x{w}")
        pads = (a.pad_top, a.pad_bottom, a.pad_left, a.pad_right)
        if not all(0 <= p <= MAX_PARAM for p in pads):
            raise self.fail(PADDING, subject, f"has paddings {list(pads)} (top, bottom, left, right)")
        if isinstance(a, A.Pool2D) and (max(a.pad_top, a.pad_bottom) >= a.filter_h
                                        or max(a.pad_left, a.pad_right) >= a.filter_w):
            raise self.fail(PADDING, subject, f"has paddings {list(pads)} (top, bottom, left, right) for a "
                            f"{a.filter_h}x{a.filter_w} filter")


# ---- shape rules: (pass, op) -> None, a detail for shape-mismatch, or (rule, detail) ------------------

def _shapes(p: _Pass, op: Op) -> tuple[list[tuple[int, ...] | None], tuple[int, ...]]:
    return ([p.g.tensors[i].shape if i >= 0 else None for i in op.inputs], p.g.tensors[op.outputs[0]].shape)


def _extent(size: int, k: int, stride: int, dilation: int, before: int, after: int) -> int:
    return (size + before + after - ((k - 1) * dilation + 1)) // stride + 1


def _conv_shape(p: _Pass, op: Op):
    (x, w, *rest), out = _shapes(p, op)
    a = op.attrs
    if len(x) != 4 or len(w) != 4:
        return f"has input {list(x)} and filter {list(w)} (both must be rank 4)"
    n, h, wd, c = x
    if op.kind is OpKind.DEPTHWISE_CONV_2D:
        oc, fits = w[3], w[0] == 1 and a.depth_multiplier >= 1 and w[3] == c * a.depth_multiplier
        if w[0] == 1 and c and w[3] % c == 0 and not fits:
            return f"has depth multiplier {a.depth_multiplier}; its filter {list(w)} and input {list(x)} give " \
                   f"{w[3] // c}"
    else:
        oc, fits = w[0], c % w[3] == 0
    if not fits:
        return f"has filter {list(w)} that does not fit input {list(x)}"
    want = (n, _extent(h, w[1], a.stride_h, a.dilation_h, a.pad_top, a.pad_bottom),
            _extent(wd, w[2], a.stride_w, a.dilation_w, a.pad_left, a.pad_right), oc)
    if rest and rest[0] is not None and count(rest[0]) != oc:
        return f"has bias {list(rest[0])} for {oc} output channels"
    return _expect(out, want)


def _transpose_conv_shape(p: _Pass, op: Op):
    (x, w, *rest), out = _shapes(p, op)
    if len(x) != 4 or len(w) != 4 or len(out) != 4:
        return f"has input {list(x)}, filter {list(w)} and output {list(out)} (all must be rank 4)"
    if w[3] != x[3] or out[0] != x[0] or out[3] != w[0]:
        return f"has filter {list(w)} that does not fit input {list(x)} and output {list(out)}"
    if rest and rest[0] is not None and count(rest[0]) != w[0]:
        return f"has bias {list(rest[0])} for {w[0]} output channels"
    return None


def _batch_matmul_shape(p: _Pass, op: Op):
    (a, b), out = _shapes(p, op)
    if not (2 <= len(a) <= 5 and 2 <= len(b) <= 5):
        return f"has operands {list(a)} and {list(b)} (ranks 2 to 5, as TFLite Micro)"
    m, ka = (a[-1], a[-2]) if op.attrs.adj_x else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if op.attrs.adj_y else (b[-2], b[-1])
    try:
        batch = tuple(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])))
    except ValueError:
        return f"has operands {list(a)} and {list(b)} whose batch dimensions do not broadcast"
    if ka != kb:
        return f"multiplies {list(a)} by {list(b)} (adj_x {op.attrs.adj_x}, adj_y {op.attrs.adj_y}): depths " \
               f"{ka} and {kb} differ"
    return _expect(out, batch + (m, n))


def _lstm_shape(p: _Pass, op: Op):
    ins, _ = _shapes(p, op)
    x = ins[0]
    if len(x) != 3:
        return f"has input {list(x)} (rank 3: batch, time, features; time first when time_major)"
    (t, b, f) = x if op.attrs.time_major else (x[1], x[0], x[2])
    u = ins[5][0] if len(ins[5]) == 2 else -1
    want = [(f"input weight {k}", (u, f)) for k in range(1, 5)] + [(f"recurrent weight {k}", (u, u))
                                                                   for k in range(5, 9)]
    want += [(f"bias {k}", (u,)) for k in range(9, 13)] + [("hidden state", (b, u)), ("cell state", (b, u))]
    for k, (what, shape) in enumerate(want, start=1):
        if tuple(ins[k]) != shape:
            return f"has {what} {list(ins[k])}; the input {list(x)} and {u} units need {list(shape)}"
    outs = [p.g.tensors[i].shape for i in op.outputs]
    seq = (t, b, u) if op.attrs.time_major else (b, t, u)
    return _expect(outs[0], seq) or _expect(outs[1], (b, u)) or _expect(outs[2], (b, u))


def _pool_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    a = op.attrs
    if len(x) != 4:
        return f"has input {list(x)} (must be rank 4)"
    n, h, w, c = x
    return _expect(out, (n, _extent(h, a.filter_h, a.stride_h, 1, a.pad_top, a.pad_bottom),
                         _extent(w, a.filter_w, a.stride_w, 1, a.pad_left, a.pad_right), c))


def _fc_shape(p: _Pass, op: Op):
    (x, w, *rest), out = _shapes(p, op)
    if len(w) != 2 or count(x) % w[1]:
        return f"has weights {list(w)} that do not fit input {list(x)}"
    if rest and rest[0] is not None and count(rest[0]) != w[0]:
        return f"has bias {list(rest[0])} for {w[0]} outputs"
    if not out or out[-1] != w[0] or count(out) != count(x) // w[1] * w[0]:
        return f"has output {list(out)} for input {list(x)} and weights {list(w)}"
    return None


def _tree_shape(p: _Pass, op: Op):
    """TREE_ENSEMBLE: [N, F] float32 in, [N, targets] float32 scores (and [N] int64 labels) out,
    node arrays of one length whose features, children and weights are in range."""
    a, g = op.attrs, p.g
    x = g.tensors[op.inputs[0]]
    if len(x.shape) != 2 or x.dtype is not DType.FLOAT32:
        return f"reads {x.dtype.np_name} {list(x.shape)} (needs float32 [N, features])"
    want = [((x.shape[0], a.n_targets), DType.FLOAT32)] + ([((x.shape[0],), DType.INT64)] if a.labels else [])
    for t, (shape, dt) in zip((g.tensors[i] for i in op.outputs), want):
        if tuple(t.shape) != shape or t.dtype is not dt:
            return f"writes {t.dtype.np_name} {list(t.shape)} (needs {dt.np_name} {list(shape)})"
    n = len(a.mode)
    if any(len(v) != n for v in (a.feature, a.threshold, a.true_child, a.false_child, a.leaf_first, a.leaf_count)) \
            or len(a.weight_target) != len(a.weight_value) or not a.roots or a.n_targets < 1:
        return "has node or weight arrays of different lengths"
    leaf = A.TREE_MODES.index("LEAF")
    for i in range(n):
        if not 0 <= a.mode[i] <= leaf or not 0 <= a.leaf_first[i] <= a.leaf_first[i] + a.leaf_count[i] \
                <= len(a.weight_value) or a.mode[i] != leaf and not (
                    0 <= a.feature[i] < x.shape[1] and i < a.true_child[i] < n and i < a.false_child[i] < n):
            return f"has node {i} out of range"
    if any(not 0 <= r < n for r in a.roots) or any(not 0 <= t < a.n_targets for t in a.weight_target):
        return "has a root or a weight target out of range"
    return None


def _binary_shape(p: _Pass, op: Op):
    """Two (SELECT_V2: three) inputs broadcast to the output, numpy's way."""
    ins, out = _shapes(p, op)
    try:
        want = tuple(np.broadcast_shapes(*(tuple(x) for x in ins)))
    except ValueError:
        return f"has inputs {' and '.join(str(list(x)) for x in ins)} that do not broadcast"
    return _expect(out, want)


def _reshape_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    return None if count(x) == count(out) else f"reshapes {list(x)} to {list(out)}"


def _same_shape(p: _Pass, op: Op):
    (x, *_), out = _shapes(p, op)
    return _expect(out, tuple(x))


def _softmax_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    if not -len(x) <= op.attrs.axis < max(len(x), 1):
        return f"has axis {op.attrs.axis} on a rank-{len(x)} input"
    return _expect(out, tuple(x))


def _pad_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    pads = op.attrs.paddings
    if len(pads) != len(x) or any(not 0 <= v <= MAX_PARAM for pair in pads for v in pair):
        return PADDING, f"has paddings {[list(pr) for pr in pads]} for a rank-{len(x)} input"
    return _expect(out, tuple(d + lo + hi for d, (lo, hi) in zip(x, pads)))


def _concat_shape(p: _Pass, op: Op):
    xs, out = _shapes(p, op)
    ax = op.attrs.axis
    if not 0 <= ax < len(out):
        return f"has axis {ax} on a rank-{len(out)} output"
    for x in xs:
        if len(x) != len(out) or any(d != o for j, (d, o) in enumerate(zip(x, out)) if j != ax):
            return f"joins input {list(x)} into output {list(out)} along axis {ax}"
    return None if sum(x[ax] for x in xs) == out[ax] else f"has output {list(out)} for inputs {xs}"


def _mean_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    axes = op.attrs.axes
    if not axes or len(set(axes)) != len(axes) or not all(0 <= a < len(x) for a in axes):
        return f"reduces axes {list(axes)} of a rank-{len(x)} input"
    kept = [d for j, d in enumerate(x) if j not in axes]
    if op.attrs.keep_dims:
        return _expect(out, tuple(1 if j in axes else d for j, d in enumerate(x)))
    return None if count(out) == count(kept) else f"has output {list(out)} for input {list(x)} " \
                                                      f"reduced over {list(axes)}"


def _expect(out: tuple[int, ...], want: tuple[int, ...]):
    return None if tuple(out) == tuple(want) else f"has output {list(out)}; its inputs give {list(want)}"


def _shape_of_shape(p: _Pass, op: Op):
    (x,), out = _shapes(p, op)
    return _expect(out, (len(x),))


def _count_kept(p: _Pass, op: Op):
    (x, *_), out = _shapes(p, op)
    return None if count(x) == count(out) else f"turns {list(x)} into {list(out)}"


# ops whose declared output may drop or add dimensions of size 1 (STRIDED_SLICE's shrink mask,
# ONNX ArgMax's keepdims); nothing downstream sees another layout, as both interpreters keep it
_ONES_DROPPED = {OpKind.STRIDED_SLICE, OpKind.ARG_MAX, OpKind.ARG_MIN}


def _moved_shape(p: _Pass, op: Op):
    """Data movement, reductions, resizing (:func:`ir.shape_ops.output_shapes`): each output's
    shape is the computed one (for :data:`_ONES_DROPPED`, up to dimensions of size 1). A GATHER
    declared [3, 6, 8, 3] where its indices give [3, 6, 8, 1, 3] is refused: TFLite Micro runs
    it with the computed shape, so a later reduction over axis 3 would differ."""
    xs = [p.g.tensors[i].shape for i in op.inputs if i >= 0]
    try:
        want = output_shapes(op.kind, op.attrs, xs)
    except ValueError as e:
        return f"has inputs {[list(x) for x in xs]} its options do not fit ({e})"
    outs = [p.g.tensors[i].shape for i in op.outputs]
    if want is None or len(want) != len(outs):
        return f"has {len(outs)} outputs; its inputs and options give {len(want or [])}"
    for w, o in zip(want, outs):
        if tuple(w) != tuple(o) and (op.kind not in _ONES_DROPPED
                                     or [d for d in w if d != 1] != [d for d in o if d != 1]):
            return f"has output {list(o)}; its inputs and options give {list(w)}"
    return None


_SHAPES = {
    OpKind.SHAPE: _shape_of_shape, OpKind.EXPAND_DIMS: _count_kept, OpKind.SQUEEZE: _count_kept,
    **{k: _moved_shape for k in SHAPE_OP_KINDS},
    OpKind.CONV_2D: _conv_shape, OpKind.DEPTHWISE_CONV_2D: _conv_shape, OpKind.TRANSPOSE_CONV: _transpose_conv_shape,
    OpKind.BATCH_MATMUL: _batch_matmul_shape, OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM: _lstm_shape,
    OpKind.AVERAGE_POOL_2D: _pool_shape, OpKind.MAX_POOL_2D: _pool_shape,
    OpKind.FULLY_CONNECTED: _fc_shape, OpKind.ADD: _binary_shape, OpKind.MUL: _binary_shape,
    OpKind.RESHAPE: _reshape_shape, OpKind.SOFTMAX: _softmax_shape, OpKind.PAD: _pad_shape,
    OpKind.MIRROR_PAD: _pad_shape,
    OpKind.CONCATENATION: _concat_shape, OpKind.MEAN: _mean_shape,
    **{k: _binary_shape for k in (OpKind.SUB, OpKind.DIV, OpKind.MAXIMUM, OpKind.MINIMUM,
                                  OpKind.SQUARED_DIFFERENCE, OpKind.PRELU, OpKind.LOGICAL_AND, OpKind.LOGICAL_OR,
                                  *COMPARISON_OPS)},
    OpKind.SELECT_V2: _binary_shape,
    OpKind.TREE_ENSEMBLE: _tree_shape,
}
def _variable(p: _Pass, op: Op):
    """READ_VARIABLE / ASSIGN_VARIABLE: the importer (tflite/variables.py) binds the tensor
    to its variable; cgen checks shape, type and quantization match (lower_var.py)."""
    return None


def _declared(p: _Pass, op: Op):
    """OPAQUE: its output shapes are the file's (the tensor rules still hold for them); a
    backend that compiles it checks them against its own semantics of the op."""
    return None


_SHAPES.update({OpKind.READ_VARIABLE: _variable, OpKind.ASSIGN_VARIABLE: _variable, OpKind.OPAQUE: _declared})

__all__ = ["InvalidModelError", "RULES", "count", "decode_name", "printable", "rule", "validate_graph"]
