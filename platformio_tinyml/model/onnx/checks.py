"""Reader-level checks of an ``.onnx`` file, before checker and shape inference (rules:
:mod:`..validate`): names decode, the graph has outputs, initializers keep their data inside
the file with the size their shape needs."""

from __future__ import annotations

import numpy as np

from ..validate import (BUFFER_BOUNDS, CONSTANT_SIZE, GRAPH_OUTPUTS, MAX_BYTES, NEGATIVE, TOO_LARGE,
                        InvalidModelError, count, decode_name, printable)


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
        decode_name(vi.name, "a graph value", path)
    if not g.output:
        raise InvalidModelError(GRAPH_OUTPUTS, "graph", "has no outputs", path)
    consts = list(g.initializer)
    consts += [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.HasField("t")]
    for k, t in enumerate(consts):
        subject = f"initializer #{k} '{printable(decode_name(t.name, f'initializer #{k}', path))}'"
        if t.data_location == TensorProto.EXTERNAL or t.external_data:
            raise InvalidModelError(BUFFER_BOUNDS, subject, "keeps its data in an external file", path,
                                    hint="Save the model with its weights inside the .onnx file "
                                         "(onnx.save(model, path, save_as_external_data=False))")
        if any(d < 0 for d in t.dims):
            raise InvalidModelError(NEGATIVE, subject, f"has shape {list(t.dims)}", path)
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except Exception:   # an unknown data type: onnx.checker names it
            continue
        want = count(t.dims) * itemsize
        if want > MAX_BYTES:
            raise InvalidModelError(TOO_LARGE, subject, f"of shape {list(t.dims)} needs {want:,} bytes", path)
        if t.HasField("raw_data") and t.data_type != TensorProto.STRING and len(t.raw_data) != want:
            raise InvalidModelError(CONSTANT_SIZE, subject, f"of shape {list(t.dims)} has {len(t.raw_data):,} "
                                    f"bytes of data", path)
