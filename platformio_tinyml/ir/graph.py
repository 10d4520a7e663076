"""Graph, tensors and operators of the intermediate representation.

Conventions every importer must follow (and backends rely on):

* activations are NHWC; ``CONV_2D`` filters are OHWI, ``DEPTHWISE_CONV_2D``
  filters are ``[1, H, W, C*M]``, ``FULLY_CONNECTED`` weights are
  ``[out, in]``; biases are int32 for int8 models, float32 otherwise;
* ops are stored in a valid execution order (every tensor is produced before
  it is read);
* parameters that TFLite passes as constant input tensors (pad amounts, mean
  axes, reshape shape) are folded into the op's ``attrs`` and the tensor is
  dropped from ``inputs``;
* quantization follows TFLite: ``real = scale * (q - zero_point)``, per
  channel along ``Quant.axis`` when ``len(scale) > 1``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DType(enum.Enum):
    INT8 = ("int8", "int8_t", 1)
    UINT8 = ("uint8", "uint8_t", 1)
    INT16 = ("int16", "int16_t", 2)
    INT32 = ("int32", "int32_t", 4)
    INT64 = ("int64", "int64_t", 8)
    FLOAT32 = ("float32", "float", 4)
    BOOL = ("bool", "uint8_t", 1)      # 0 or 1 in one byte: comparisons' results, SELECT_V2's condition

    def __init__(self, np_name: str, c_type: str, itemsize: int):
        self.np_name = np_name
        self.c_type = c_type
        self.itemsize = itemsize

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.np_name)

    @classmethod
    def from_numpy(cls, dt: Any) -> "DType":
        name = np.dtype(dt).name
        for member in cls:
            if member.np_name == name:
                return member
        raise KeyError(name)


class Activation(enum.Enum):
    """A fused activation, applied as a clamp on the op's output."""
    NONE = "none"
    RELU = "relu"
    RELU6 = "relu6"
    RELU_N1_TO_1 = "relu_n1_to_1"

    def float_range(self) -> tuple[float, float]:
        return {
            Activation.NONE: (-np.inf, np.inf),
            Activation.RELU: (0.0, np.inf),
            Activation.RELU6: (0.0, 6.0),
            Activation.RELU_N1_TO_1: (-1.0, 1.0),
        }[self]


class OpKind(enum.Enum):
    CONV_2D = "CONV_2D"
    # inputs [x, filter OHWI, bias?] (TFLite's output_shape operand dropped: the output tensor's
    # static shape is the one TFLite Micro runs); attrs.Conv2D with TFLite's padding of the output
    TRANSPOSE_CONV = "TRANSPOSE_CONV"
    # [lhs, rhs] (activations or constants, ranks 2..5, batch dims broadcast); attrs.BatchMatMul
    BATCH_MATMUL = "BATCH_MATMUL"
    # float32 LSTM over a sequence: inputs [x, W_i, W_f, W_c, W_o, R_i, R_f, R_c, R_o, b_i, b_f, b_c,
    # b_o, h, c] (x [B, T, F] or [T, B, F] when time_major; W [U, F], R [U, U], b [U] constants; h, c
    # [B, U] the state at the start), outputs [y ([B, T, U] or [T, B, U]), h, c at the end];
    # attrs.Lstm. TFLite's state variables become READ_VARIABLE/ASSIGN_VARIABLE around it.
    UNIDIRECTIONAL_SEQUENCE_LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    ADD = "ADD"
    MUL = "MUL"
    RESHAPE = "RESHAPE"
    SOFTMAX = "SOFTMAX"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    PAD = "PAD"
    CONCATENATION = "CONCATENATION"
    MEAN = "MEAN"
    LOGISTIC = "LOGISTIC"
    TANH = "TANH"
    RELU = "RELU"
    RELU6 = "RELU6"
    # Shape plumbing that the passes in ir/passes.py rewrite or remove before any
    # backend sees the graph (a backend refuses what is left of them).
    SHAPE = "SHAPE"
    STRIDED_SLICE = "STRIDED_SLICE"
    PACK = "PACK"
    EXPAND_DIMS = "EXPAND_DIMS"
    SQUEEZE = "SQUEEZE"
    # Data movement, reductions and resizing (kernels: cgen/lower_shape.py); their
    # constant parameter operands are folded into attrs (ir/shape_ops.py).
    TRANSPOSE = "TRANSPOSE"
    SPLIT = "SPLIT"
    SPLIT_V = "SPLIT_V"
    SLICE = "SLICE"
    TILE = "TILE"
    BROADCAST_TO = "BROADCAST_TO"
    GATHER = "GATHER"
    UNPACK = "UNPACK"
    SPACE_TO_DEPTH = "SPACE_TO_DEPTH"
    DEPTH_TO_SPACE = "DEPTH_TO_SPACE"
    SPACE_TO_BATCH_ND = "SPACE_TO_BATCH_ND"
    BATCH_TO_SPACE_ND = "BATCH_TO_SPACE_ND"
    REDUCE_MAX = "REDUCE_MAX"
    REDUCE_MIN = "REDUCE_MIN"
    SUM = "SUM"
    ARG_MAX = "ARG_MAX"
    ARG_MIN = "ARG_MIN"
    RESIZE_BILINEAR = "RESIZE_BILINEAR"
    RESIZE_NEAREST_NEIGHBOR = "RESIZE_NEAREST_NEIGHBOR"
    # element-wise binary ops (attrs.Elementwise; MAXIMUM/MINIMUM/SQUARED_DIFFERENCE/PRELU: no fused activation)
    SUB = "SUB"
    DIV = "DIV"
    MAXIMUM = "MAXIMUM"
    MINIMUM = "MINIMUM"
    SQUARED_DIFFERENCE = "SQUARED_DIFFERENCE"
    PRELU = "PRELU"
    # element-wise unary ops and activations (LEAKY_RELU: attrs.LeakyRelu; GELU: attrs.Gelu)
    LEAKY_RELU = "LEAKY_RELU"
    ELU = "ELU"
    HARD_SWISH = "HARD_SWISH"
    RELU_N1_TO_1 = "RELU_N1_TO_1"
    GELU = "GELU"
    EXP = "EXP"
    LOG = "LOG"
    SQRT = "SQRT"
    RSQRT = "RSQRT"
    ABS = "ABS"
    NEG = "NEG"
    SQUARE = "SQUARE"
    # normalizations over the last axis
    LOG_SOFTMAX = "LOG_SOFTMAX"
    L2_NORMALIZATION = "L2_NORMALIZATION"
    # Resource variables (streaming models): VAR_HANDLE and CALL_ONCE are resolved by the
    # importer into Graph.variables; these two read and write one (attrs.VariableRef).
    # comparisons [a, b] (float32, broadcast) -> BOOL; logical ops on BOOL; SELECT_V2 [condition
    # (BOOL), x, y] -> x where the condition holds, else y (all three broadcast)
    LESS = "LESS"
    LESS_EQUAL = "LESS_EQUAL"
    GREATER = "GREATER"
    GREATER_EQUAL = "GREATER_EQUAL"
    EQUAL = "EQUAL"
    NOT_EQUAL = "NOT_EQUAL"
    LOGICAL_AND = "LOGICAL_AND"
    LOGICAL_OR = "LOGICAL_OR"
    LOGICAL_NOT = "LOGICAL_NOT"
    SELECT_V2 = "SELECT_V2"
    MIRROR_PAD = "MIRROR_PAD"    # attrs.Pad with mode "reflect" or "symmetric" (the pads mirror the input)
    READ_VARIABLE = "READ_VARIABLE"
    ASSIGN_VARIABLE = "ASSIGN_VARIABLE"
    # a forest of decision trees (ONNX-ML TreeEnsembleRegressor / TreeEnsembleClassifier): input
    # [N, F] float32, outputs [scores [N, T] float32] or, for a classifier, [scores, labels [N]
    # int64]; attrs.TreeEnsemble holds the nodes, the leaf weights and onnxruntime's finalization
    TREE_ENSEMBLE = "TREE_ENSEMBLE"
    # Any other operator of the source model, kept with its attributes (attrs.Opaque): the
    # IR carries every op; whether a backend takes it is that backend's supports() answer.
    OPAQUE = "OPAQUE"


GRAPH_PASS_OPS = frozenset({OpKind.SHAPE, OpKind.EXPAND_DIMS, OpKind.SQUEEZE})
COMPARISON_OPS = frozenset({OpKind.LESS, OpKind.LESS_EQUAL, OpKind.GREATER, OpKind.GREATER_EQUAL, OpKind.EQUAL,
                            OpKind.NOT_EQUAL})
MULTI_OUTPUT_OPS = frozenset({OpKind.SPLIT, OpKind.SPLIT_V, OpKind.UNPACK})
# Ops kept although no other op reads their outputs (they change the model's state).
SIDE_EFFECT_OPS = frozenset({OpKind.ASSIGN_VARIABLE})
SUPPORTED_OPS: tuple[str, ...] = tuple(k.value for k in OpKind if k not in GRAPH_PASS_OPS | {OpKind.OPAQUE})


@dataclass(frozen=True)
class Quant:
    """Affine quantization: ``real = scale * (q - zero_point)``."""
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (error if per-channel)."""
        assert not self.per_channel
        return self.scale[0]

    @property
    def zp(self) -> int:
        return self.zero_point[0]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quant | None = None
    data: np.ndarray | None = None   # constant tensors only

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


@dataclass
class Variable:
    """A resource variable: state kept between invocations (a static buffer in generated
    code), set to ``init`` before the first one (zeros where the model gives none)."""
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quant | None = None
    init: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


RESET_EACH_INVOKE = "reset_state_each_invoke"


def reset_each_invoke(graph: "Graph | None") -> bool:
    """True for a graph whose resource variables are not the model's own state but the
    converter's (a stateless Keras LSTM fused into TFLite's LSTM op, whose hidden and cell
    state are variables): generated code must start every invoke from their initial values,
    as the source model starts every call from zero state."""
    return bool(graph is not None and graph.variables and graph.meta.get(RESET_EACH_INVOKE))


@dataclass
class Op:
    index: int
    kind: OpKind
    inputs: list[int]          # tensor indices; -1 marks an absent optional input
    outputs: list[int]
    attrs: Any = None          # one of the dataclasses in ir.attrs
    name: str = ""             # for messages: source op name or type

    @property
    def type_name(self) -> str:
        """The operator's type as messages name it: its kind, or an opaque op's source type."""
        return self.attrs.op if self.kind is OpKind.OPAQUE and self.attrs is not None else self.kind.value

    @property
    def label(self) -> str:
        return f"#{self.index} {self.type_name}"


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    source: Path | None = None
    source_format: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    variables: list[Variable] = field(default_factory=list)   # READ/ASSIGN_VARIABLE's attrs.var indexes it

    @property
    def where(self) -> str:
        """The model file messages about this graph name: the one the user gave (a Keras
        model, not the .tflite it was converted to)."""
        if self.meta.get("converted_from"):
            return f"{self.meta['converted_from']} (converted to TFLite)"
        return str(self.source or self.name)

    def tensor(self, idx: int) -> Tensor:
        return self.tensors[idx]

    def op_inputs(self, op: Op) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    @property
    def weight_bytes(self) -> int:
        used = {i for op in self.ops for i in op.inputs if i >= 0}
        return sum(t.nbytes for t in self.tensors if t.is_const and t.index in used)

    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for op in self.ops:
            for i in op.inputs:
                if i >= 0:
                    out.setdefault(i, []).append(op.index)
        return out

    def validate(self) -> None:
        """Check the invariants listed in the module docstring.

        Raises AssertionError: a violation is a bug in an importer or pass,
        not a user mistake.
        """
        n = len(self.tensors)
        for i, t in enumerate(self.tensors):
            assert t.index == i, f"tensor {i} has index {t.index}"
            if t.is_const:
                assert tuple(t.data.shape) == tuple(t.shape), f"tensor {t.name}: data shape"
        ready = {i for i, t in enumerate(self.tensors) if t.is_const} | set(self.inputs)
        for k, op in enumerate(self.ops):
            assert op.index == k, f"op {k} has index {op.index}"
            for i in op.inputs:
                assert -1 <= i < n, f"{op.label}: bad input {i}"
                assert i < 0 or i in ready, f"{op.label}: reads tensor {i} before it is produced"
            for i in op.outputs:
                assert 0 <= i < n and i not in ready, f"{op.label}: output {i} produced twice"
                ready.add(i)
        for i in self.outputs:
            assert i in ready, f"graph output {i} is never produced"

    def renumber(self) -> "Graph":
        """Drop tensors no op or graph I/O uses and renumber the rest."""
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(i for i in op.inputs if i >= 0)
            used.update(op.outputs)
        remap = {old: new for new, old in enumerate(sorted(used))}
        tensors = []
        for old in sorted(used):
            t = self.tensors[old]
            t.index = remap[old]
            tensors.append(t)
        for k, op in enumerate(self.ops):
            op.index = k
            op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
        self.tensors = tensors
        self.inputs = [remap[i] for i in self.inputs]
        self.outputs = [remap[i] for i in self.outputs]
        return self
