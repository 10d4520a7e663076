"""Constant folding of ONNX shape arithmetic before the model is read.

PyTorch exports ``x.view(x.size(0), -1)`` and ``Flatten`` with a dynamic batch as
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``; onnx shape inference
often cannot see through such chains, so the tensors after them have no
static shape. Once the inputs' shapes are fixed (``--input-shape``, the batch
set to 1), every node whose inputs are initializers, ``Constant`` outputs or
``Shape`` of a statically shaped tensor is evaluated with numpy and replaced
by an initializer; shape inference then runs again, until nothing folds. Ops
the numpy table has no entry for (Neg, Range, Equal, Where, Expand, ... of the
function bodies exporters write) are evaluated by the onnx package's reference
implementation when their result is known to stay small (:func:`reference_fold`).
An ``If`` whose condition has folded to a constant is replaced by the branch it
takes (:func:`inline_branch`): exporters write shape checks as ``If`` (a squeeze
only when a dimension is 1), and an input bound to a value (``--input-value
sr=16000``) selects one of a model's variants.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


_CONSTANT_FIELDS = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                    "value_ints": np.int64}


def constant_value(attrs: dict, to_array: Callable):
    """A ``Constant`` node's value from its attributes (``value`` a tensor, or ``value_float(s)`` /
    ``value_int(s)``), or None when it holds something else (a string, a sparse tensor)."""
    if len(attrs) != 1:
        return None
    (name, v), = attrs.items()
    if name == "value":
        return to_array(v)
    if name in _CONSTANT_FIELDS:
        return np.array(list(v) if isinstance(v, (list, tuple)) else v, _CONSTANT_FIELDS[name])
    return None


# Folding an op on constants with the onnx package's reference implementation (the operator's
# definition): ops whose result is no larger than their largest input, ops that broadcast, and
# Range have a size known before they run; cheap data-movement ops need a static inferred
# output shape; nothing else (a Conv's cost is not bounded by its size). At most this many
# elements; never ops that draw random numbers, keep state or hold subgraphs.
REFERENCE_FOLD_LIMIT = 1 << 16
_NEVER_FOLD = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
               "Multinomial", "Dropout", "Loop", "If", "Scan", "SequenceConstruct", "SequenceEmpty",
               "SequenceInsert", "SequenceAt", "SplitToSequence", "ConcatFromSequence", "Optional",
               "OptionalGetElement", "OptionalHasElement", "QuantizeLinear", "DequantizeLinear"}
_SIZE_KEEPING = {"Neg", "Reciprocal", "Abs", "Sqrt", "Exp", "Log", "Floor", "Ceil", "Round", "Sign", "Not",
                 "Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Erf", "Cast", "IsNaN", "IsInf",
                 "Identity", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "ReduceSum", "ReduceMean",
                 "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin", "Size", "NonZero", "CumSum"}
_SHAPED = {"Expand", "Tile", "Gather", "GatherElements", "GatherND", "Slice", "Concat", "Reshape", "Split",
           "ConstantOfShape", "Pad", "OneHot", "EyeLike", "Trilu", "ScatterElements", "ScatterND", "DepthToSpace",
           "SpaceToDepth", "Compress", "ReverseSequence", "Shape"}   # cheap: need a known output shape
_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "LessOrEqual", "Greater",
                 "GreaterOrEqual", "And", "Or", "Xor", "Where", "Max", "Min", "Sum", "Mean", "BitShift"}


def range_length(start, limit, delta) -> float:
    """How many elements ``Range(start, limit, delta)`` has (from its three scalar operands);
    infinite for a zero delta."""
    import math
    start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in (start, limit, delta))
    return max(math.ceil((limit - start) / delta), 0) if delta else math.inf


def reference_fold(node, values: dict, opset: int, out_shapes: list) -> list[np.ndarray] | None:
    """``node``'s outputs computed by ``onnx.reference`` from ``values`` (every input's array),
    or None when the op is not one to fold or its result would not stay small (``out_shapes``:
    the inferred output shapes, None or -1 where unknown)."""
    import math
    import warnings
    from onnx import AttributeProto
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or op in _NEVER_FOLD or \
            any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
        return None
    ins = [n for n in node.input if n]
    if not ins or any(n not in values for n in ins):
        return None
    shapes = [np.shape(values[n]) for n in ins]
    try:
        if op in _SIZE_KEEPING:
            size = max(math.prod(s) for s in shapes)
        elif op in _BROADCASTING:
            size = math.prod(np.broadcast_shapes(*shapes))
        elif op == "Range":
            size = range_length(*(values[n] for n in node.input[:3]))
        elif op in _SHAPED:
            if not out_shapes or any(s is None or any(d < 0 for d in s) for s in out_shapes):
                return None
            size = max(math.prod(s) for s in out_shapes)
        else:               # MatMul, Conv, ...: their cost is not bounded by their size
            return None
    except (ValueError, OverflowError, IndexError, TypeError):
        return None
    if not size <= REFERENCE_FOLD_LIMIT:
        return None
    from onnx.reference import ReferenceEvaluator
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outs = ReferenceEvaluator(node, opsets={"": opset}).run(None, {n: np.asarray(values[n]) for n in ins})
    except Exception:       # left to the reader, whose converter for the op names what is wrong
        return None
    outs = [np.asarray(o) for o in outs]
    if any(o.dtype.kind not in "biuf" or o.size > REFERENCE_FOLD_LIMIT for o in outs):
        return None         # strings, complex numbers: left to the reader's refusal
    return outs


def fold_shape_chains(model, table: dict[str, Callable | None], opset: int, infer: Callable):
    """``model`` with the constant nodes folded (``table``: op type -> numpy
    evaluation ``f(arrays, attrs, opset)``; ``infer``: shape inference)."""
    from onnx import helper, numpy_helper
    rounds = len(model.graph.node)
    while rounds > 0:
        rounds -= 1
        shapes = {}
        for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
        known = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        keep, folded, inlined = [], [], False
        for n in model.graph.node:
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            ins = [i for i in n.input if i]
            out = None
            try:
                if (n.op_type == "If" and n.domain in ("", "ai.onnx") and ins and ins[0] in known
                        and known[ins[0]].size == 1):
                    branch = a["then_branch" if bool(known[ins[0]].reshape(())) else "else_branch"]
                    rounds += len(branch.node) + 1
                    keep.extend(inline_branch(model, n, branch))
                    inlined = True
                    continue
                if n.domain not in ("", "ai.onnx") or len(n.output) != 1:
                    pass
                elif n.op_type == "Constant":
                    out = constant_value(a, numpy_helper.to_array)
                elif n.op_type == "Shape" and ins and ins[0] in shapes:
                    out = np.array(shapes[ins[0]], np.int64)[a.get("start", 0):a.get("end", None)]
                elif table.get(n.op_type) and ins and all(i in known for i in ins):
                    out = table[n.op_type]([known[i] if i else None for i in n.input], a, opset)
                elif n.op_type not in table and ins and all(i in known for i in ins):
                    outs = reference_fold(n, known, opset, [shapes.get(o) for o in n.output if o])
                    if outs is not None:
                        for name, value in zip((o for o in n.output if o), outs):
                            known[name] = value
                            folded.append(numpy_helper.from_array(value, name))
                        continue
            except Exception:   # left to the reader, which names the node
                out = None
            if out is None:
                keep.append(n)
                continue
            known[n.output[0]] = np.asarray(out)
            folded.append(numpy_helper.from_array(np.asarray(out), n.output[0]))
        if not folded and not inlined:
            return model
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(folded)
        names = {t.name for t in folded}
        kept_vi = [vi for vi in model.graph.value_info if vi.name not in names]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept_vi)
        model = infer(model)
    return model


def inline_branch(model, node, branch) -> list:
    """The nodes that replace ``If`` ``node`` by its taken ``branch`` (a GraphProto): the branch's
    nodes, its initializers and value infos moved into ``model``, and an Identity from each branch
    output to the If's output. Names stay as they are: the checker has made every name the model
    defines, in any branch, unique (static single assignment)."""
    from onnx import helper
    model.graph.initializer.extend(branch.initializer)
    model.graph.value_info.extend(branch.value_info)
    nodes = list(branch.node)
    for k, (out, res) in enumerate(zip(node.output, branch.output)):
        if out:
            nodes.append(helper.make_node("Identity", [res.name], [out], name=f"{node.name or out}/out{k}"))
    return nodes
