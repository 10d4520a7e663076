"""Facts about a .tflite file read from its flatbuffer (not the IR).

The IR importer refuses operators cgen has no kernel for; TFLM and Vela
take many more, so these backends read the operator list themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ...errors import ModelError
from ...model.tflite.checks import builtin_code


@dataclass(frozen=True)
class TfliteFacts:
    ops: tuple[str, ...]              # distinct operators, in order of first use
    op_counts: dict[str, int]
    tensor_types: frozenset[str]      # e.g. {"INT8", "INT32"} over non-constant tensors
    io_types: frozenset[str]          # types of the graph inputs and outputs
    macs: int                         # multiply-accumulates of CONV/DWCONV/FC ops
    subgraphs: int
    unset_padding: tuple[str, ...] = ()   # ops TFLite Micro pads with a value it never sets


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_facts(path: str | Path) -> TfliteFacts:
    """Read operators, tensor types and MAC count of the model at ``path``."""
    import tflite
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a TFLite flatbuffer (no TFL3 identifier)", where=str(path))
    model = tflite.Model.GetRootAsModel(data, 0)
    op_names, type_names = _names(tflite.BuiltinOperator), _names(tflite.TensorType)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = builtin_code(oc)
        name = op_names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode() or b"").decode(errors="replace")
        codes.append(name)
    counts: Counter[str] = Counter()
    types, io_types, macs, unset_padding = set(), set(), 0, []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        const = {i for i in range(sg.TensorsLength())
                 if model.Buffers(sg.Tensors(i).Buffer()).DataLength() > 0}
        for i in range(sg.TensorsLength()):
            if i not in const:
                types.add(type_names.get(sg.Tensors(i).Type(), "?"))
        for i in list(sg.InputsAsNumpy()) + list(sg.OutputsAsNumpy()):
            io_types.add(type_names.get(sg.Tensors(int(i)).Type(), "?"))
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            name = codes[op.OpcodeIndex()]
            counts[name] += 1
            macs += _macs(sg, op, name)
            if name == "SPACE_TO_BATCH_ND" and _float_padded(model, sg, op, type_names):
                unset_padding.append(f"op {k} (SPACE_TO_BATCH_ND) of subgraph {s}")
    return TfliteFacts(ops=tuple(counts), op_counts=dict(counts), tensor_types=frozenset(types),
                       io_types=frozenset(io_types), macs=macs, subgraphs=model.SubgraphsLength(),
                       unset_padding=tuple(unset_padding))


def _float_padded(model, sg, op, type_names: dict[int, str]) -> bool:
    """A float32 SPACE_TO_BATCH_ND whose paddings are not all zero (or not constant).

    TFLite Micro sets the pad value of SPACE_TO_BATCH_ND only for int8 (to the zero
    point); for float32 it reads a field of the op's persistent buffer that nothing
    wrote, so the padded elements are whatever the arena held before: on the host
    interpreter they change with what ran earlier in the process, on a device with
    what the application did. TensorFlow Lite pads float32 with 0, as the op is defined.
    """
    if op.InputsLength() < 3:
        return False
    x = sg.Tensors(int(op.Inputs(0)))
    if type_names.get(x.Type()) != "FLOAT32":
        return False
    pads = sg.Tensors(int(op.Inputs(2)))
    buf = model.Buffers(pads.Buffer())
    if buf.DataLength() == 0:
        return True
    import numpy as np
    return bool(np.frombuffer(buf.DataAsNumpy().tobytes(), dtype="<i4").any())


def _macs(sg, op, name: str) -> int:
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or op.InputsLength() < 2:
        return 0
    w = sg.Tensors(int(op.Inputs(1))).ShapeAsNumpy()
    out = sg.Tensors(int(op.Outputs(0))).ShapeAsNumpy()
    n_out = 1
    for d in out:
        n_out *= max(int(d), 1)
    if name == "CONV_2D":                 # OHWI
        return n_out * int(w[1]) * int(w[2]) * int(w[3])
    if name == "DEPTHWISE_CONV_2D":       # 1HW(C*M)
        return n_out * int(w[1]) * int(w[2])
    return n_out * int(w[-1])             # FC [out, in]
