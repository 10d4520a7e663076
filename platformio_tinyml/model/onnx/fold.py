"""Constant folding of ONNX shape arithmetic before the model is read.

PyTorch exports ``x.view(x.size(0), -1)`` and ``Flatten`` with a dynamic batch as
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``; onnx shape inference
often cannot see through such chains, so the tensors after them have no
static shape. Once the inputs' shapes are fixed (``--input-shape``, the batch
set to 1), every node whose inputs are initializers, ``Constant`` outputs or
``Shape`` of a statically shaped tensor is evaluated with numpy and replaced
by an initializer; shape inference then runs again, until nothing folds.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def fold_shape_chains(model, table: dict[str, Callable | None], opset: int, infer: Callable):
    """``model`` with the constant nodes folded (``table``: op type -> numpy
    evaluation ``f(arrays, attrs, opset)``; ``infer``: shape inference)."""
    from onnx import helper, numpy_helper
    for _ in range(len(model.graph.node)):
        shapes = {}
        for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
        known = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        keep, folded = [], []
        for n in model.graph.node:
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            ins = [i for i in n.input if i]
            out = None
            try:
                if n.domain not in ("", "ai.onnx") or len(n.output) != 1:
                    pass
                elif n.op_type == "Constant" and "value" in a:
                    out = numpy_helper.to_array(a["value"])
                elif n.op_type == "Shape" and ins and ins[0] in shapes:
                    out = np.array(shapes[ins[0]], np.int64)[a.get("start", 0):a.get("end", None)]
                elif table.get(n.op_type) and ins and all(i in known for i in ins):
                    out = table[n.op_type]([known[i] if i else None for i in n.input], a, opset)
            except Exception:   # left to the reader, which names the node
                out = None
            if out is None:
                keep.append(n)
                continue
            known[n.output[0]] = np.asarray(out)
            folded.append(numpy_helper.from_array(np.asarray(out), n.output[0]))
        if not folded:
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
