"""Per-operator attributes: one frozen dataclass per op family.

Spatial padding is explicit (``pad_top``..``pad_right``) so TFLite's
SAME/VALID and ONNX's explicit pads look the same to backends.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Activation


@dataclass(frozen=True)
class Conv2D:
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    activation: Activation = Activation.NONE
    depth_multiplier: int = 1   # DEPTHWISE_CONV_2D only


@dataclass(frozen=True)
class BatchMatMul:
    """BATCH_MATMUL: ``out[..., m, n] = sum_k lhs[..., m, k] * rhs[..., k, n]``, lhs read
    transposed (``[..., K, M]``) when ``adj_x``, rhs (``[..., N, K]``) when ``adj_y``."""
    adj_x: bool = False
    adj_y: bool = False


@dataclass(frozen=True)
class Lstm:
    """UNIDIRECTIONAL_SEQUENCE_LSTM (gate order input, forget, cell, output): per step
    ``c = f*c + i*g`` (clipped to +-cell_clip when > 0), ``h = o * tanh(c)``; the cell gate
    ``g`` uses tanh (the only activation cgen takes: TFLite Micro's Keras default). ``reverse``
    (ONNX's reverse direction) walks the steps last to first; y keeps the time order."""
    time_major: bool = False
    cell_clip: float = 0.0
    reverse: bool = False


@dataclass(frozen=True)
class Pool2D:
    filter_h: int
    filter_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    activation: Activation = Activation.NONE


@dataclass(frozen=True)
class FullyConnected:
    activation: Activation = Activation.NONE
    keep_num_dims: bool = False


@dataclass(frozen=True)
class Elementwise:
    """ADD and MUL (with numpy-style broadcasting)."""
    activation: Activation = Activation.NONE


@dataclass(frozen=True)
class Softmax:
    beta: float = 1.0
    axis: int = -1


@dataclass(frozen=True)
class Concatenation:
    axis: int
    activation: Activation = Activation.NONE


@dataclass(frozen=True)
class Mean:
    axes: tuple[int, ...]
    keep_dims: bool = False


@dataclass(frozen=True)
class Pad:
    paddings: tuple[tuple[int, int], ...]   # (before, after) per dimension
    value: float = 0.0                      # real value; int8 pads with zero_point
    mode: str = "constant"                  # MIRROR_PAD: "reflect" (edge not repeated) or "symmetric"


@dataclass(frozen=True)
class LeakyRelu:
    alpha: float = 0.2


@dataclass(frozen=True)
class Gelu:
    approximate: bool = False   # True: the tanh approximation


@dataclass(frozen=True)
class Opaque:
    """An operator the IR has no kind for, carried as the model file has it: ``op`` is its
    type in the source format (a TFLite builtin such as ``SIN``, ``CUSTOM:name``, or an
    ONNX op type such as ``Erf``), ``options`` its attributes as plain Python values
    (TFLite builtin options by field name, ONNX attributes by name; a custom op's option
    bytes under ``custom_options``), ``domain`` the ONNX domain. Its inputs and outputs are
    in the source format's layout (an ONNX op's are NCHW: the reader transposes back; a
    one-input element-wise function, to which element order does not matter, stays on its
    input as the reader holds it) and
    its output shapes are the file's. No pass looks inside it (but constant folding, for
    the TFLite ops that make constants: ZEROS_LIKE, FILL, BROADCAST_ARGS); a backend that compiles the
    graph refuses it with the op and its index (and ``reason``, when the reader has a converter
    for the op that refused these parameters), one that compiles the file may take it."""
    op: str
    options: tuple[tuple[str, object], ...] = ()
    domain: str = ""
    reason: str = ""


@dataclass(frozen=True)
class TreeEnsemble:
    """TREE_ENSEMBLE: the nodes of all trees in flat arrays (a tree's nodes are consecutive;
    ``roots`` the index of each tree's first node). A branch node ``i`` sends input ``x`` to
    ``true_child[i]`` when ``x[feature[i]] <mode> threshold[i]`` (float32), else to
    ``false_child[i]``; modes are :data:`TREE_MODES` (``LEAF`` ends the walk). Leaf ``i`` adds
    ``weight_value[j]`` to target ``weight_target[j]`` for ``j`` in ``leaf_first[i] ..
    leaf_first[i] + leaf_count[i] - 1``. ``aggregate`` combines the trees (SUM, AVERAGE, MIN, MAX),
    ``base_values`` are added as onnxruntime does, then ``post_transform`` (NONE, LOGISTIC,
    SOFTMAX, SOFTMAX_ZERO). A classifier (``labels`` not empty) also writes the label, with
    onnxruntime's rules for two classes (``binary``: the weights are for one class only;
    ``all_positive``: no weight is negative)."""
    n_targets: int
    roots: tuple[int, ...]
    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    mode: tuple[int, ...]
    true_child: tuple[int, ...]
    false_child: tuple[int, ...]
    leaf_first: tuple[int, ...]
    leaf_count: tuple[int, ...]
    weight_target: tuple[int, ...]
    weight_value: tuple[float, ...]
    aggregate: str = "SUM"
    base_values: tuple[float, ...] = ()
    post_transform: str = "NONE"
    labels: tuple[int, ...] = ()
    binary: bool = False
    all_positive: bool = True


TREE_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "LEAF")
TREE_AGGREGATES = ("SUM", "AVERAGE", "MIN", "MAX")
TREE_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO")


@dataclass(frozen=True)
class VariableRef:
    """READ_VARIABLE / ASSIGN_VARIABLE: the variable, an index into ``Graph.variables``."""
    var: int


def same_padding(in_size: int, filter_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TFLite's SAME scheme for one dimension."""
    eff = (filter_size - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max(0, (out - 1) * stride + eff - in_size)
    return total // 2, total - total // 2


# ---- data movement, reductions, resizing (semantics: ir/shape_ops.py) --------------------------

@dataclass(frozen=True)
class Transpose:
    perm: tuple[int, ...]


@dataclass(frozen=True)
class Slice:
    """SLICE and STRIDED_SLICE, resolved per input dimension: element
    ``begin + k * stride`` for ``k < size`` (the output's shape may drop the
    shrunk dimensions: same elements, same order)."""
    begin: tuple[int, ...]
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class Split:
    """SPLIT, SPLIT_V and UNPACK: consecutive pieces of ``sizes`` along ``axis``."""
    axis: int
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class Tile:
    """TILE and BROADCAST_TO: the input (left-padded with 1s to the output's
    rank) repeated ``multiples`` times per dimension."""
    multiples: tuple[int, ...]


@dataclass(frozen=True)
class Gather:
    axis: int
    indices: tuple[int, ...]          # flattened, non-negative, in range
    indices_shape: tuple[int, ...]


@dataclass(frozen=True)
class Pack:
    axis: int


@dataclass(frozen=True)
class Block:
    """SPACE_TO_DEPTH / DEPTH_TO_SPACE (``size``), SPACE_TO_BATCH_ND /
    BATCH_TO_SPACE_ND (``block`` per spatial dim, ``pads`` = paddings or crops)."""
    size: int = 0
    block: tuple[int, ...] = ()
    pads: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ArgMinMax:
    axis: int


@dataclass(frozen=True)
class Resize:
    size: tuple[int, int]             # output height, width
    align_corners: bool = False
    half_pixel_centers: bool = False
