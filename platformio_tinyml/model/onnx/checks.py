"""Reader-level checks of an ``.onnx`` file, before checker and shape inference (rules:
:mod:`..validate`): names decode, the graph has outputs, initializers keep their data inside
the file with the size their shape needs and float ones are finite (checked here, not on the
IR, because the reader computes with them: transposes, scaling, quantization)."""

from __future__ import annotations

import numpy as np

from ..validate import (BUFFER_BOUNDS, CONSTANT_SIZE, ELEMENT_TYPE, FINITE, GRAPH_OUTPUTS, MAX_BYTES, NEGATIVE,
                        TOO_LARGE, InvalidModelError, count, decode_name, printable)


def check_onnx(model, path: str) -> None:
    """Reader-level rules on a parsed ``onnx.ModelProto`` (before checker and shape inference)."""
    from onnx import TensorProto, helper
    g = model.graph
    decode_name(g.name, "graph", path)
    for k, n in enumerate(g.node):
        subject = f"node #{k}"
        for s in (n.name, n.op_type, n.domain, *n.input, *n.output):
            decode_name(s, subject, path)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        name = decode_name(vi.name, "a graph value", path)
        tt = vi.type.tensor_type
        dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")] if tt.HasField("shape") else []
        if any(d < 0 for d in dims):      # onnx's C++ shape inference aborts (SIGABRT) on some of these
            raise InvalidModelError(NEGATIVE, f"graph value '{printable(name)}'", f"has shape {dims}", path,
                                    hint="Export the model with fixed, non-negative shapes")
    if not g.output:
        raise InvalidModelError(GRAPH_OUTPUTS, "graph", "has no outputs", path)
    clip_bounds = {i for n in g.node if n.op_type == "Clip" for i in n.input[1:3] if i}
    readers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    consts = [(t, t.name) for t in g.initializer]   # (tensor, the name nodes read it by)
    consts += [(a.t, n.output[0] if n.output else "") for n in g.node if n.op_type == "Constant"
               for a in n.attribute if a.HasField("t")]
    for k, (t, value_name) in enumerate(consts):
        name = decode_name(t.name, f"initializer #{k}", path) or value_name   # a Constant's tensor: its output
        subject = f"initializer #{k} '{printable(name)}'"
        if t.data_location == TensorProto.EXTERNAL or t.external_data:
            raise InvalidModelError(BUFFER_BOUNDS, subject, "keeps its data in an external file", path,
                                    hint="Save the model with its weights inside the .onnx file "
                                         "(onnx.save(model, path, save_as_external_data=False))")
        if any(d < 0 for d in t.dims):
            raise InvalidModelError(NEGATIVE, subject, f"has shape {list(t.dims)}", path)
        try:
            np_type = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
        except Exception:   # an unknown data type: onnx.checker names it
            continue
        if np_type.kind == "c":
            raise InvalidModelError(ELEMENT_TYPE, subject, f"is {np_type.name}: no operator here takes complex "
                                    "numbers", path)
        itemsize = np_type.itemsize
        want = count(t.dims) * itemsize
        if want > MAX_BYTES:
            raise InvalidModelError(TOO_LARGE, subject, f"of shape {list(t.dims)} needs {want:,} bytes", path)
        if t.HasField("raw_data") and t.data_type != TensorProto.STRING and len(t.raw_data) != want:
            raise InvalidModelError(CONSTANT_SIZE, subject, f"of shape {list(t.dims)} has {len(t.raw_data):,} "
                                    f"bytes of data", path)
        if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
            _finite(t, subject, path, inf_ok=value_name in clip_bounds or _mask_value(value_name, readers, g))


# ONNX ops that may read a value holding +-inf (a mask's -inf): their result does not depend on
# the order of evaluation; and ops that pass such a value on unchanged in value (the IR validator
# checks the same of the constants the reader makes, see validate.INFINITY_READERS)
_INF_READERS = {"Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Max", "Min", "Add"}
_INF_PASSING = {"Cast", "CastLike", "Identity", "Reshape", "Expand", "Unsqueeze", "Squeeze", "Flatten"}


def _mask_value(name: str, readers: dict, g) -> bool:
    """Whether value ``name`` reaches only :data:`_INF_READERS`, through :data:`_INF_PASSING`
    ops (its first input), and never a graph output."""
    outputs = {o.name for o in g.output}
    todo, seen = [name], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in outputs or not readers.get(v):
            return False
        for n in readers[v]:
            if n.domain not in ("", "ai.onnx"):
                return False
            if n.op_type in _INF_PASSING and n.input and n.input[0] == v:
                todo.extend(o for o in n.output if o)
            elif n.op_type not in _INF_READERS:
                return False
    return True


def _finite(t, subject: str, path: str, inf_ok: bool) -> None:
    """:data:`FINITE` on float initializer ``t`` (a Clip bound may be +-inf: no bound)."""
    from onnx import numpy_helper
    try:
        data = numpy_helper.to_array(t).reshape(-1)
    except Exception:   # data that does not decode: onnx.checker names it
        return
    bad = np.isnan(data) if inf_ok else ~np.isfinite(data)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidModelError(FINITE, subject, f"has {data[k]} at element {k}", path)
