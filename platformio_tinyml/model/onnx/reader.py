"""Read an ``.onnx`` model into the IR with the ``onnx`` package.

The file is parsed with ``onnx.load``, checked with ``onnx.checker`` and
shape-inferred; nodes whose inputs are all constant (``Constant``, ``Shape``
of a static tensor, the ``Shape -> Gather -> Concat -> Reshape`` chains of
PyTorch exports, ``DequantizeLinear`` of weights, ...) are folded with numpy.
The remaining nodes become IR ops in the file's (topological) order.

Layout: see :mod:`.layout` (NCHW is converted to NHWC at import; the C API
is NHWC and ``graph.meta['input_layout']`` says so). Quantization: see
:mod:`.qdq`. Every unsupported construct raises :class:`UnsupportedOpError`
or :class:`ModelError` naming the model file, the node's index, op type and
name, and listing the supported ONNX operators.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...errors import ModelError, UnsupportedOpError
from ...ir import Activation, DType, Graph, Op, OpKind, Quant, Tensor
from ...ir import attrs as A
from ..common import read_model_bytes
from ..validate import CORRUPT, GRAPH_OUTPUTS, InvalidModelError, printable, validate_graph
from .checks import check_onnx
from .fold import constant_value, fold_shape_chains, range_length, reference_fold
from . import attention
from . import gru
from . import layout as L
from . import logic
from . import ml
from . import qdq
from . import shape_ops
from .layout import Layout
from .qdq import QConst


_FUSABLE = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED, OpKind.ADD, OpKind.MUL)


@dataclass
class Val:
    """An activation: IR tensor ``idx`` holding ONNX tensor of ``shape`` in ``layout``."""
    idx: int
    layout: Layout
    shape: tuple[int, ...]
    chw: tuple[int, int, int] | None = None   # FLAT_NHWC only


@dataclass
class DQ:
    """``DequantizeLinear`` of an int8 activation: float on demand (DEQUANTIZE), int8 for int8 ops."""
    src: Val
    as_float: Val | None = None


@dataclass
class OutQ:
    """Output quantization of an op computed in int8, and the QuantizeLinear nodes it absorbs."""
    quant: Quant
    qnodes: list[int]


class _Fail(Exception):
    def __init__(self, detail: str, final: bool = False):
        self.detail = detail
        self.final = final   # not even as an opaque op (the IR cannot hold it)


class _Carry(Exception):
    """Node ``index``'s converter refused it (``error``): convert the graph again carrying that
    node as an opaque op, for a backend that compiles the file to take."""
    def __init__(self, index: int, error: UnsupportedOpError, detail: str):
        self.index, self.error, self.detail = index, error, detail


_MAX_CARRIED = 32   # nodes carried this way before the first refusal is final (each costs a conversion)


def load_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
              input_values: dict[str, tuple[float, ...]] | None = None) -> Graph:
    """Parse ``path`` and return it as a validated, NHWC :class:`Graph`.

    Open dimensions of the graph inputs are set from ``input_shapes``
    (``--input-shape``), an open first (batch) dimension to 1, before shape
    inference, so every tensor gets a static shape. The inputs named in
    ``input_values`` (``--input-value``) become constants first; the graph's
    ``meta['bound_inputs']`` keeps them for the reference interpreter."""
    import onnx
    path = Path(path)
    buf = read_model_bytes(path)
    try:
        model = onnx.load_from_string(buf)
    except Exception as e:
        raise InvalidModelError(CORRUPT, "the file", f"is a corrupt or truncated ONNX file ({type(e).__name__})",
                                str(path)) from None
    if not model.graph.node:
        raise ModelError("not an ONNX model (no graph nodes; corrupt or truncated file?)",
                         where=str(path), hint="Re-export the model")
    check_onnx(model, str(path))
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ModelError(f"invalid ONNX model ({_first_line(e)})", where=str(path),
                         hint="Re-export the model; onnx.checker.check_model shows the details") from None
    bound = _bind_inputs(model, input_values or {}, str(path))
    _set_input_shapes(model, input_shapes or {}, str(path))
    try:
        model = _infer_shapes(model)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        model = fold_shape_chains(model, _FOLDABLE, opset, _infer_shapes)
    except Exception as e:
        raise ModelError(f"ONNX shape inference failed ({_first_line(e)})",
                         where=str(path), hint="Export the model with fixed input shapes") from None
    carried: dict[int, str] = {}
    first: UnsupportedOpError | None = None     # the first converter's refusal
    while True:
        try:
            graph = _Converter(path, model, carried).run()
            if bound:
                graph.meta["bound_inputs"] = bound
            return graph
        except _Carry as c:
            if len(carried) >= _MAX_CARRIED:
                raise c.error from None
            carried[c.index] = c.detail
            first = first or c.error
        except InvalidModelError:   # the graph with opaque ops does not hold: the converter's reason
            if first is not None:
                raise first from None
            raise
        except ModelError:
            raise
        except Exception as e:   # a malformed graph outside any one node: still one line
            raise InvalidModelError(CORRUPT, "the graph", f"cannot be converted ({type(e).__name__}: "
                                    f"{str(e)[:200]})", str(path)) from None


_BINDABLE = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}   # onnx elem types


def _bind_inputs(model, values: dict[str, tuple[float, ...]], path: str) -> dict[str, dict]:
    """Make the graph inputs named in ``values`` initializers holding them (in place); returns
    ``{name: {dtype, shape, values}}``, what the reference interpreter is fed for them."""
    from onnx import numpy_helper
    inits = {t.name for t in model.graph.initializer}
    inputs = {vi.name: vi for vi in model.graph.input if vi.name not in inits}
    bound = {}
    for name, vals in values.items():
        vi = inputs.get(name)
        if vi is None:
            raise ModelError(f"--input-value names '{name}', which is not a graph input", where=path,
                             hint="Graph inputs: " + ", ".join(sorted(inputs)))
        tt = vi.type.tensor_type
        dtype = _BINDABLE.get(tt.elem_type)
        if dtype is None:
            raise ModelError(f"--input-value {name}: the input's element type ({tt.elem_type}) cannot be bound",
                             where=path, hint="Bind float, int32, int64 or bool inputs")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim] if tt.HasField("shape") else []
        shape = tuple(dims) if dims and min(dims) > 0 else (() if len(vals) == 1 and not dims else None)
        if shape is None or int(np.prod(shape, dtype=np.int64)) != len(vals):
            raise ModelError(f"--input-value {name} gives {len(vals)} value(s) for an input of shape "
                             f"{[d.dim_param or d.dim_value or '?' for d in tt.shape.dim]}", where=path,
                             hint="Give one value per element of a fixed-shape input")
        array = np.array(vals, dtype=np.float64).astype(dtype).reshape(shape)
        if np.issubdtype(dtype, np.integer) and not np.array_equal(array, np.array(vals, np.float64).reshape(shape)):
            raise ModelError(f"--input-value {name}: the input holds {np.dtype(dtype).name}, and "
                             f"{','.join(map(str, vals))} is not", where=path)
        model.graph.input.remove(vi)
        model.graph.initializer.append(numpy_helper.from_array(array, name))
        bound[name] = {"dtype": np.dtype(dtype).name, "shape": list(shape), "values": array.reshape(-1).tolist()}
    return bound


def _set_input_shapes(model, input_shapes: dict[str, tuple[int, ...]], path: str) -> None:
    """Fix the graph inputs' open dimensions in place: the named ones to ``input_shapes``,
    an open first dimension (the batch) to 1."""
    inits = {t.name for t in model.graph.initializer}
    inputs = {vi.name: vi for vi in model.graph.input if vi.name not in inits}
    for name, shape in input_shapes.items():
        vi = inputs.get(name)
        if vi is None:
            raise ModelError(f"--input-shape names '{name}', which is not a graph input", where=path,
                             hint="Graph inputs: " + ", ".join(sorted(inputs)))
        dims = vi.type.tensor_type.shape.dim
        fixed = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        if len(dims) != len(shape) or any(f > 0 and f != s for f, s in zip(fixed, shape)):
            raise ModelError(f"--input-shape {name}={','.join(map(str, shape))} does not fit the input's "
                             f"shape {[d.dim_param or d.dim_value or '?' for d in dims]}", where=path)
        for d, s in zip(dims, shape):
            d.dim_value = int(s)
    for name, vi in inputs.items():
        dims = vi.type.tensor_type.shape.dim
        if name not in input_shapes and len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    for vi in list(model.graph.output) + list(model.graph.value_info):   # inferred again from the inputs
        tt = vi.type.tensor_type
        if tt.HasField("shape") and not all(d.HasField("dim_value") for d in tt.shape.dim):
            tt.ClearField("shape")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _infer_shapes(model):
    """onnx shape inference, plus the output shapes of the com.microsoft QLinear ops and the
    ai.onnx.ml ops it skips (added as value_info, then inference runs again until nothing new
    is learnt)."""
    import onnx
    from onnx import helper
    for _ in range(len(model.graph.node) + 1):
        model = onnx.shape_inference.infer_shapes(model, data_prop=_ranges_are_small(model))
        known = {}
        for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                known[vi.name] = ([d.dim_value for d in tt.shape.dim], tt.elem_type)
        for t in model.graph.initializer:
            known[t.name] = (list(t.dims), t.data_type)
        added = False
        for n in model.graph.node:
            if n.domain == "ai.onnx.ml" and n.input and n.input[0] in known:   # inference skips them too
                for name, shape, et in ml.output_types(n, [known.get(i) for i in n.input], _attrs(n)):
                    if name and name not in known:   # replaces a partial one ([1, -1] of ArrayFeatureExtractor)
                        old = [vi for vi in model.graph.value_info if vi.name == name]
                        for vi in old:
                            model.graph.value_info.remove(vi)
                        model.graph.value_info.append(helper.make_tensor_value_info(name, et, shape))
                        added = True
                continue
            if n.domain != "com.microsoft" or not n.output or n.output[0] in known or n.input[0] not in known:
                continue
            shape, et = known[n.input[0]]
            if n.op_type in ("QLinearAdd", "QLinearMul") and n.input[3] in known:
                shape = list(np.broadcast_shapes(tuple(shape), tuple(known[n.input[3]][0])))
            elif n.op_type == "QLinearGlobalAveragePool":
                shape = shape[:2] + [1] * (len(shape) - 2)
            elif n.op_type == "QGemm" and n.input[3] in known:
                a = _attrs(n)
                shape = [shape[0], known[n.input[3]][0][0 if a.get("transB", 0) else 1]]
                if len(n.input) <= 7 or not n.input[7]:
                    et = onnx.TensorProto.FLOAT
            elif n.op_type not in ("QLinearSoftmax", "QLinearSigmoid", "QLinearLeakyRelu"):
                continue
            model.graph.value_info.append(helper.make_tensor_value_info(n.output[0], et, shape))
            added = True
        if not added:
            return model
    return model


def _ranges_are_small(model) -> bool:
    """Whether onnx's data propagation may run: it computes a Range's values, so one of 10^9
    elements (from constants, or from a declared dimension through Shape) would take all memory.
    True when every Range's start, limit and delta are constants and it has at most
    ``_FOLD_LIMIT`` elements (without propagation, a Range's length is still inferred)."""
    from onnx import numpy_helper
    ranges = [n for n in model.graph.node if n.op_type == "Range"]
    if not ranges:
        return True
    consts = {t.name: t for t in model.graph.initializer}
    consts.update({n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant" and n.output
                   for a in n.attribute if a.name == "value"})
    for n in ranges:
        if len(n.input) != 3 or any(i not in consts for i in n.input):
            return False
        try:
            if not range_length(*(numpy_helper.to_array(consts[i]) for i in n.input)) <= _FOLD_LIMIT:
                return False
        except (ValueError, OverflowError, IndexError, TypeError):
            return False
    return True


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _opaque_attrs(node, reason: str = "") -> A.Opaque:
    """An ONNX node as an opaque op's attributes: its type, its attributes as plain values, its
    domain, and why its converter refused it (if it has one)."""
    return A.Opaque(node.op_type, tuple((k, _plain(v)) for k, v in sorted(_attrs(node).items())), node.domain,
                    reason)


def _carried_dtype(elem_type: int) -> DType | None:
    from onnx import TensorProto as TP
    return {TP.FLOAT: DType.FLOAT32, TP.INT8: DType.INT8, TP.UINT8: DType.UINT8, TP.INT16: DType.INT16,
            TP.INT32: DType.INT32, TP.INT64: DType.INT64, TP.BOOL: DType.BOOL}.get(elem_type)


def _plain(value):
    """An ONNX attribute value as plain Python (lists as tuples, tensors as arrays)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "dims") and hasattr(value, "data_type"):   # a TensorProto
        from onnx import numpy_helper
        return numpy_helper.to_array(value)
    return value


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:/\-]", "_", text)[:60]


class _Converter:
    def __init__(self, path: Path, model, carried: dict[int, str] | None = None):
        from onnx import numpy_helper
        self.nh = numpy_helper
        self.path = path
        self.model = model
        self.g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.op_node: dict[int, int] = {}          # id(op) -> ONNX node index
        self.consts: dict[str, np.ndarray | QConst] = {
            t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.vals: dict[str, Val | DQ] = {}
        self.shapes: dict[str, tuple] = {}
        self.elem_types: dict[str, int] = {}
        for vi in list(self.g.input) + list(self.g.value_info) + list(self.g.output):
            tt = vi.type.tensor_type
            self.elem_types[vi.name] = tt.elem_type
            if tt.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1
                                             for d in tt.shape.dim)
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.g.node):
            for name in n.input:
                if name:
                    self.consumers.setdefault(name, []).append(i)
        self.graph_outputs = {o.name for o in self.g.output}
        self.skip: set[int] = set()
        self.i = -1
        self.node = None
        self.meta: dict = {}
        self.carried = carried or {}   # node index -> why its converter refused it: an opaque op

    # ---- errors ------------------------------------------------------------------------------

    def _error(self, detail: str, i: int | None = None) -> UnsupportedOpError:
        i = self.i if i is None else i
        node = self.g.node[i]
        label = f"{node.op_type} '{node.name}'" if node.name else node.op_type
        return UnsupportedOpError(str(self.path), i, label, detail, SUPPORTED_ONNX_OPS)

    # ---- driver --------------------------------------------------------------------------------

    def run(self) -> Graph:
        in_layouts = self._inputs()
        for i, node in enumerate(self.g.node):
            if i in self.skip:
                continue
            self.i, self.node = i, node
            try:
                if i in self.carried:
                    self._opaque(node, self.carried[i])
                else:
                    self._convert(node)
            except _Fail as f:
                if i in self.carried:   # it cannot be carried either: the converter's reason
                    raise self._error(self.carried[i]) from None
                if f.final:
                    raise self._error(f.detail) from None
                raise _Carry(i, self._error(f.detail), f.detail) from None
            except (ModelError, UnsupportedOpError):
                raise
            except Exception as e:   # a malformed node: still one line naming it
                raise self._error(f"cannot convert ({type(e).__name__}: {e})") from None
        outputs, out_layouts = self._outputs()
        self._fuse_activations()
        g = Graph(name=_clean(self.g.name or self.path.stem) or self.path.stem, tensors=self.tensors,
                  ops=self.ops, inputs=[v.idx for v in in_layouts], outputs=outputs,
                  source=self.path, source_format="onnx")
        ins = [L.CONVERTED if v.layout is Layout.NHWC else L.SAME for v in in_layouts]
        g.meta.update(input_layouts=ins, output_layouts=out_layouts,
                      input_layout=L.CONVERTED if L.CONVERTED in ins else L.SAME,
                      output_layout=L.CONVERTED if L.CONVERTED in out_layouts else L.SAME,
                      onnx_opset=self.opset)
        validate_graph(g)
        g.renumber()
        g.validate()
        return g

    def _inputs(self) -> list[Val]:
        vals = []
        for vi in self.g.input:
            if vi.name in self.consts:
                continue   # an initializer listed as input (IR version < 4)
            tt = vi.type.tensor_type
            shape = self.shapes.get(vi.name)
            if shape is None:
                raise ModelError(f"graph input '{vi.name}' has no shape", where=str(self.path),
                                 hint="Export the model with fixed input shapes")
            dims = list(shape)
            if any(d <= 0 for d in dims):
                raise ModelError(f"graph input '{vi.name}' has open dimensions "
                                 f"{[d.dim_param or d.dim_value for d in tt.shape.dim]}", where=str(self.path),
                                 hint=f"Set them: --input-shape {vi.name}="
                                      + ",".join(str(d) if d > 0 else (p.dim_param or "N").upper()
                                                 for d, p in zip(dims, tt.shape.dim))
                                      + " (or custom_tinyml_input_shape in platformio.ini) with the sizes "
                                        "the application feeds")
            dims = tuple(dims)
            self.shapes[vi.name] = dims
            dtype = self._dtype(tt.elem_type, f"graph input '{vi.name}'")
            lay = Layout.SAME
            if len(dims) == 4 and not self._nhwc_input(vi.name):
                lay = Layout.NHWC
            idx = self._tensor(vi.name, L.ir_shape(dims, lay), dtype)
            v = Val(idx, lay, dims)
            self.vals[vi.name] = v
            vals.append(v)
        return vals

    def _nhwc_input(self, name: str) -> bool:
        users = [self.g.node[i] for i in self.consumers.get(name, [])]
        return bool(users) and all(u.op_type == "Transpose" and tuple(_attrs(u).get("perm", ())) == L.NHWC_TO_NCHW
                                   for u in users)

    def _dtype(self, elem_type: int, what: str) -> DType:
        from onnx import TensorProto as TP
        table = {TP.FLOAT: DType.FLOAT32, TP.INT8: DType.INT8}
        if elem_type == TP.UINT8:
            raise ModelError(f"{what} is uint8", where=str(self.path), hint=qdq.UINT8_HINT)
        if elem_type not in table:
            from onnx import helper
            hint = "Supported model I/O types: float32, int8"
            if elem_type == TP.DOUBLE:
                hint += " (skl2onnx: convert with a float32 sample, to_onnx(model, X[:1].astype(numpy.float32)))"
            elif what.startswith("graph input '") and elem_type in (TP.INT64, TP.INT32, TP.BOOL):
                name = what.split("'", 2)[1]
                hint += (f"; an input that is a setting (a sample rate, a mode) can be bound to its value: "
                         f"--input-value {name}=V")
            raise ModelError(f"{what} has unsupported type {helper.tensor_dtype_to_np_dtype(elem_type)}",
                             where=str(self.path), hint=hint)
        return table[elem_type]

    def _outputs(self) -> tuple[list[int], list[str]]:
        idxs, lays = [], []
        inputs = {self.vals[i.name].idx for i in self.g.input if i.name not in self.consts}
        for o in self.g.output:
            v = self.vals.get(o.name)
            producer = self._producer_index(o.name)
            if v is None:
                raise InvalidModelError(GRAPH_OUTPUTS, f"graph output '{printable(o.name)}'",
                                        "is a constant or not computed by a node", str(self.path))
            self.i = producer
            try:
                if isinstance(v, DQ):
                    v = self._materialize(v)
                if v.layout is Layout.FLAT_NHWC:
                    raise _Fail(f"graph output '{o.name}' is a flattened NCHW tensor: its element order "
                                "would need a transpose")
            except _Fail as f:
                raise self._error(f.detail) from None
            if v.idx in idxs or v.idx in inputs:   # the same tensor twice, or an input: its own copy
                t = self.tensors[v.idx]
                n = self._tensor(o.name, t.shape, t.dtype, t.quant)
                self._emit(OpKind.RESHAPE, [v.idx], [n])
                v = Val(n, v.layout, v.shape)
            idxs.append(v.idx)
            lays.append(L.CONVERTED if v.layout is Layout.NHWC else L.SAME)
        # an output reached through Identity (or an inlined If) keeps the name the graph gives it
        taken = {t.name for t in self.tensors}
        for o, idx in zip(self.g.output, idxs):
            if self.tensors[idx].name != o.name and o.name not in taken:
                taken.add(o.name)
                self.tensors[idx] = replace(self.tensors[idx], name=o.name)
        return idxs, lays

    def _producer_index(self, name: str) -> int:
        for i, n in enumerate(self.g.node):
            if name in n.output:
                return i
        return 0

    # ---- IR building --------------------------------------------------------------------------

    def _tensor(self, name, shape, dtype: DType, quant: Quant | None = None, data=None) -> int:
        t = Tensor(index=len(self.tensors), name=name, shape=tuple(int(d) for d in shape), dtype=dtype,
                   quant=quant, data=data)
        self.tensors.append(t)
        return t.index

    def _const(self, data: np.ndarray, dtype: DType, quant: Quant | None = None, hint: str = "c") -> int:
        data = np.ascontiguousarray(np.asarray(data).astype(dtype.numpy))
        return self._tensor(f"{self.node.name or self.node.op_type}/{hint}", data.shape, dtype, quant, data)

    def _emit(self, kind: OpKind, ins: list[int], outs: list[int], attrs=None) -> Op:
        label = f"{self.node.op_type} {_clean(self.node.name)}".strip() if self.node is not None else kind.value
        op = Op(index=len(self.ops), kind=kind, inputs=ins, outputs=outs, attrs=attrs, name=label)
        self.ops.append(op)
        self.op_node[id(op)] = self.i
        return op

    def _shape(self, name: str) -> tuple[int, ...]:
        s = self.shapes.get(name)
        if s is None or any(d < 0 for d in s):
            raise _Fail(f"tensor '{name}' has no static shape {list(s) if s else ''} (dynamic shapes are "
                        "not supported)")
        return s

    # ---- values --------------------------------------------------------------------------------

    def _get(self, name: str) -> Val | DQ:
        if name in self.vals:
            return self.vals[name]
        if name in self.consts:
            raise _Fail(f"input '{name}' is a constant where an activation is expected")
        raise _Fail(f"input '{name}' is not produced by a supported node")

    def _is_int8(self, v: Val | DQ) -> bool:
        return isinstance(v, DQ) or self.tensors[v.idx].dtype is DType.INT8

    def _materialize(self, v: DQ) -> Val:
        if v.as_float is None:
            src = self.tensors[v.src.idx]
            n = self._tensor(src.name + "/dequant", src.shape, DType.FLOAT32)
            self._emit(OpKind.DEQUANTIZE, [v.src.idx], [n])
            v.as_float = Val(n, v.src.layout, v.src.shape, v.src.chw)
        return v.as_float

    def _float(self, name: str) -> Val:
        v = self._get(name)
        if isinstance(v, DQ):
            return self._materialize(v)
        if self.tensors[v.idx].dtype is not DType.FLOAT32:
            raise _Fail(f"input '{name}' is {self.tensors[v.idx].dtype.np_name}; this op needs float32 "
                        "or a QDQ (DequantizeLinear -> op -> QuantizeLinear) pattern")
        return v

    def _int8(self, name: str) -> Val:
        v = self._get(name)
        return v.src if isinstance(v, DQ) else v

    def _const_f(self, name: str) -> np.ndarray:
        c = self.consts[name]
        return c.real() if isinstance(c, QConst) else np.asarray(c)

    def _opt(self, node, k: int) -> str | None:
        return node.input[k] if len(node.input) > k and node.input[k] else None

    def _mode(self, node, names: list[str]) -> OutQ | None:
        """int8 output quantization if ``node`` computes in int8, else None (float)."""
        vals = [self._get(n) for n in names]
        if not vals or not all(self._is_int8(v) for v in vals):
            return None
        out = node.output[0]
        users = self.consumers.get(out, [])
        qs = [self.g.node[u] for u in users]
        if users and out not in self.graph_outputs and all(q.op_type == "QuantizeLinear" for q in qs):
            quants = set()
            for q in qs:
                zp = self._opt(q, 2)
                if self._opt(q, 1) not in self.consts or (zp and zp not in self.consts):
                    return None
                s = self.consts[q.input[1]]
                z = self.consts[zp] if zp else None
                if np.asarray(s).size != 1 or not qdq.act_dtype_ok(z):
                    return None
                quants.add(qdq.act_quant(s, z))
            if len(quants) == 1:
                return OutQ(quants.pop(), users)
            return None
        if all(isinstance(v, Val) for v in vals):   # QLinear form: int8 flows through
            return OutQ(self.tensors[vals[0].idx].quant, [])
        return None

    def _out(self, node, layout: Layout, outq: OutQ | None, shape=None, chw=None, k: int = 0) -> Val:
        name = node.output[k]
        shape = self._shape(name) if shape is None else tuple(shape)
        if outq is None:
            idx = self._tensor(name, L.ir_shape(shape, layout), DType.FLOAT32)
        else:
            idx = self._tensor(name, L.ir_shape(shape, layout), DType.INT8, outq.quant)
        v = Val(idx, layout, shape, chw)
        self.vals[name] = v
        if outq is not None:
            for u in outq.qnodes:
                self.vals[self.g.node[u].output[0]] = v
                self.skip.add(u)
        return v

    def _bind_quant(self, v: Val, q: Quant) -> None:
        t = self.tensors[v.idx]
        if t.quant is None:
            t.quant = q
        elif not qdq.same_quant(t.quant, q):
            raise _Fail(f"tensor '{t.name}' is read with quantization {q.scale[0]:g}/{q.zero_point[0]} "
                        f"but was quantized with {t.quant.scale[0]:g}/{t.quant.zero_point[0]}")

    # ---- dispatch ------------------------------------------------------------------------------

    def _convert(self, node) -> None:
        op = node.op_type
        if node.domain == "ai.onnx.ml":
            if op not in ml.HANDLERS:
                raise _Fail(f"ONNX-ML operator {op} (taken: {', '.join(sorted(ml.HANDLERS))})")
            return shape_ops.adapt(ml.HANDLERS[op], _Fail)(self, node)
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise _Fail(f"operator domain '{node.domain}'")
        inputs = [n for n in node.input if n]
        if op in _FOLDABLE and inputs and all(n in self.consts for n in inputs):
            return self._fold(node)
        if op == "Constant" or op == "CastLike" and len(inputs) == 2 and inputs[0] in self.consts and \
                self.elem_types.get(inputs[1], 0) in _CAST_TARGETS:
            return self._fold(node)    # CastLike of a constant: the dtype of the other input
        if op == "Shape":
            return self._shape_of(node)
        if inputs and all(n in self.consts for n in inputs) and self._fold_by_reference(node):
            return
        if op in ("Div", "Mul") and self._gelu_erf(node):
            return
        handler = _HANDLERS.get(op)
        if handler is None:
            return self._opaque(node)
        handler(self, node)

    def _opaque(self, node, reason: str = "") -> None:
        """An op the IR has no kind for, or whose converter refused it (``reason``): carried as
        attrs.Opaque in ONNX's own layout (inputs the reader holds as NHWC are transposed back
        to NCHW) with the inferred output shapes and types, for a backend that compiles the file
        to take; cgen refuses it."""
        from onnx import AttributeProto
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            raise _Fail("control flow (its subgraphs are not carried in the IR)", final=True)
        ins = []
        for k, name in enumerate(node.input):
            if not name:
                ins.append(-1)
            elif name in self.consts:
                data = np.asarray(self._const_f(name))
                try:
                    dtype = DType.from_numpy(data.dtype)
                except KeyError:
                    raise _Fail(f"input {k} '{name}' is a {data.dtype} constant", final=True) from None
                ins.append(self._const(data, dtype, hint=f"in{k}"))
            else:
                ins.append(self._source_layout(name).idx)
        outs, back = [], []
        for name in (n for n in node.output if n):
            shape = self._shape(name)
            dtype = _carried_dtype(self.elem_types.get(name, 0))
            if dtype is None:
                from onnx import helper
                elem = self.elem_types.get(name, 0)
                raise _Fail(f"output '{name}' is {helper.tensor_dtype_to_np_dtype(elem) if elem else 'untyped'}"
                            " (the IR carries float32, integer and bool tensors)", final=True)
            if len(shape) == 4:   # rank-4 activations are NHWC in the IR: transposed after the op
                idx = self._tensor(f"{name}/nchw", shape, dtype)
                back.append((idx, name, shape, dtype))
            else:
                idx = self._tensor(name, shape, dtype)
                self.vals[name] = Val(idx, Layout.SAME, shape)
            outs.append(idx)
        self._emit(OpKind.OPAQUE, ins, outs, _opaque_attrs(node, reason))
        for idx, name, shape, dtype in back:
            nhwc = self._tensor(name, L.ir_shape(shape, Layout.NHWC), dtype)
            self._emit(OpKind.TRANSPOSE, [idx], [nhwc], A.Transpose(L.NCHW_TO_NHWC))
            self.vals[name] = Val(nhwc, Layout.NHWC, shape)

    def _source_layout(self, name: str) -> Val:
        """Activation ``name`` in ONNX's own element order (a TRANSPOSE back from NHWC)."""
        v = self._get(name)
        if isinstance(v, DQ):
            v = self._materialize(v)
        if v.layout is Layout.FLAT_NHWC:
            raise _Fail(f"input '{name}' is a flattened NCHW tensor the reader keeps in NHWC order")
        if v.layout is Layout.SAME:
            return v
        t = self.tensors[v.idx]
        idx = self._tensor(f"{name}/nchw", v.shape, t.dtype, t.quant)
        self._emit(OpKind.TRANSPOSE, [v.idx], [idx], A.Transpose(L.NHWC_TO_NCHW))
        return Val(idx, Layout.SAME, v.shape)

    def _float_source(self, name: str) -> Val:
        """Activation ``name`` as float32 in ONNX's own element order."""
        self._float(name)   # refuses other types; dequantizes a QDQ input
        return self._source_layout(name)

    def _fold(self, node) -> None:
        a = _attrs(node)
        op = node.op_type
        x = [self.consts[n] if n else None for n in (node.input[:1] if op == "CastLike" else node.input)]
        f = [c.real() if isinstance(c, QConst) else c for c in x]
        if op == "Constant":
            out = constant_value(a, self.nh.to_array)
            if out is None:
                raise _Fail(f"Constant attribute {sorted(a)} (a tensor, float(s) or int(s) compile)")
        elif op == "CastLike":
            from onnx import helper
            out = np.asarray(f[0]).astype(helper.tensor_dtype_to_np_dtype(self.elem_types[node.input[1]]))
        elif op == "DequantizeLinear":
            zp = x[2] if len(x) > 2 else None
            out = qdq.make_qconst(np.asarray(x[0]), np.asarray(x[1]), None if zp is None else np.asarray(zp),
                                  int(a.get("axis", 1)))
        elif op == "QuantizeLinear":
            zp = x[2] if len(x) > 2 else None
            out = qdq.quantize_const(np.asarray(f[0]), np.asarray(x[1]), None if zp is None else np.asarray(zp),
                                     int(a.get("axis", 1)) % max(np.asarray(f[0]).ndim, 1))
        else:
            out = _FOLDABLE[op](f, a, self.opset)
        self.consts[node.output[0]] = out

    def _fold_by_reference(self, node) -> bool:
        """An op whose inputs are all constants, evaluated by the onnx reference implementation
        when its result is known to stay small (fold.reference_fold); False: converted as usual."""
        vals = {n: np.asarray(c.real() if isinstance(c, QConst) else c)
                for n, c in ((n, self.consts[n]) for n in node.input if n)}
        outs = reference_fold(node, vals, self.opset, [self.shapes.get(n) for n in node.output if n])
        if outs is None:
            return False
        for name, value in zip((n for n in node.output if n), outs):
            self.consts[name] = value
        return True

    def _shape_of(self, node) -> None:
        shape = self._shape(node.input[0])
        a = _attrs(node)
        s = np.array(shape, np.int64)[a.get("start", 0):a.get("end", len(shape))]
        self.consts[node.output[0]] = s

    # ---- ops: convolution and fully connected ------------------------------------------------

    def _conv_operands(self, node, what: str = "convolution"):
        """(attributes, x, w, b, x's shape) of a Conv / ConvTranspose: constant weights and bias,
        a 2-D (rank-4 NCHW) input."""
        a = _attrs(node)
        x, w, b = node.input[0], node.input[1], self._opt(node, 2)
        if w not in self.consts or (b and b not in self.consts):
            raise _Fail("weights and bias must be constant")
        xs = self._shape(x)
        if len(xs) != 4:
            raise _Fail(f"{len(xs) - 2}-D {what} (only 2-D is supported)")
        xv = self._get(x)
        if (xv.src if isinstance(xv, DQ) else xv).layout is not Layout.NHWC:
            raise _Fail("input is not in NCHW layout")
        return a, x, w, b, xs

    def _conv(self, node) -> None:
        if node.input[0] in self.shapes and len(self._shape(node.input[0])) == 3:
            return self._conv1d(node)
        a, x, w, b, xs = self._conv_operands(node)
        wc = self.consts[w]
        wshape = wc.q.shape if isinstance(wc, QConst) else np.asarray(wc).shape
        group = int(a.get("group", 1))
        if group == 1:
            kind = OpKind.CONV_2D
        elif group == xs[1] and wshape[1] == 1 and wshape[0] % group == 0:
            kind = OpKind.DEPTHWISE_CONV_2D
        else:
            kind = OpKind.CONV_2D   # grouped: one CONV_2D per group (_grouped_conv)
            if group < 1 or xs[1] % group or wshape[0] % group or wshape[1] * group != xs[1]:
                raise _Fail(f"grouped convolution with group={group}, weights {list(wshape)} and "
                            f"{xs[1]} input channels")
        attrs = self._conv_attrs(a, xs[2:], wshape[2:], kind, wshape[0] // xs[1])
        outq = self._mode(node, [x])
        if group > 1 and kind is OpKind.CONV_2D:
            if outq is not None or isinstance(wc, QConst):
                raise _Fail(f"int8 grouped convolution with group={group} (float32 only)")
            out = self._out(node, Layout.NHWC, None)
            return self._grouped_conv(self._float(x).idx, self._const_f(w), self._const_f(b) if b else None,
                                      group, attrs, out.idx, node.output[0])
        if outq is not None and isinstance(wc, QConst):
            bias = self.consts[b] if b else None
            self._conv_s8(kind, attrs, self._int8(x), wc, bias, outq, node)
            return
        wf = self._const_f(w)
        wt = L.conv_filter(wf) if kind is OpKind.CONV_2D else L.depthwise_filter(wf)
        ins = [self._float(x).idx, self._const(wt, DType.FLOAT32, hint="w")]
        if b:
            ins.append(self._const(self._const_f(b).reshape(-1), DType.FLOAT32, hint="b"))
        out = self._out(node, Layout.NHWC, None)
        self._emit(kind, ins, [out.idx], attrs)

    def _conv1d(self, node) -> None:
        """Conv over ``[N, C, L]`` (PyTorch's Conv1d), float32, as a CONV_2D or DEPTHWISE_CONV_2D of
        height 1: the input transposed to ``[N, L, C]`` and viewed as NHWC ``[N, 1, L, C]``, the
        output ``[N, 1, L', C']`` viewed as ``[N, L', C']`` and transposed back to ``[N, C', L']``."""
        a = _attrs(node)
        x, w, b = node.input[0], node.input[1], self._opt(node, 2)
        if w not in self.consts or (b and b not in self.consts):
            raise _Fail("weights and bias must be constant")
        v = self._get(x)
        if isinstance(v, DQ) or isinstance(self.consts[w], QConst) or self._mode(node, [x]) is not None:
            raise _Fail("int8 1-D convolution (float32 only)")
        if v.layout is not Layout.SAME:
            raise _Fail("input is not an [N, C, L] tensor")
        n, c, length = self._shape(x)
        wf = np.asarray(self._const_f(w), np.float32)
        group = int(a.get("group", 1))
        if wf.ndim != 3 or wf.shape[1] * group != c:
            raise _Fail(f"weights of shape {list(wf.shape)} for input {[n, c, length]} and group {group}")
        if group == 1:
            kind = OpKind.CONV_2D
        elif group == c and wf.shape[0] % group == 0:
            kind = OpKind.DEPTHWISE_CONV_2D
        elif wf.shape[0] % group == 0:
            kind = OpKind.CONV_2D   # grouped: one CONV_2D per group (_grouped_conv)
        else:
            raise _Fail(f"grouped convolution with group={group} and {wf.shape[0]} output channels")
        pads = list(a.get("pads", [0, 0]))
        if len(pads) != 2 or len(list(a.get("strides", [1]))) != 1 or len(list(a.get("dilations", [1]))) != 1:
            raise _Fail(f"pads {pads}, strides or dilations that are not those of a 1-D convolution")
        a2 = {"strides": [1, *a.get("strides", [1])], "dilations": [1, *a.get("dilations", [1])],
              "pads": [0, pads[0], 0, pads[1]]}
        if "auto_pad" in a:
            a2["auto_pad"] = a["auto_pad"]
        attrs = self._conv_attrs(a2, (1, length), (1, wf.shape[2]), kind, wf.shape[0] // c)
        w4 = wf[:, :, None, :]
        bias = self._const_f(b).astype(np.float32).reshape(-1) if b else None
        if group > 1 and kind is OpKind.CONV_2D:
            return self._height_one(node, None, [], attrs, grouped=(w4, bias, group))
        wt = L.conv_filter(w4) if kind is OpKind.CONV_2D else L.depthwise_filter(w4)
        ins = [self._const(wt, DType.FLOAT32, hint="w")]
        if bias is not None:
            ins.append(self._const(bias, DType.FLOAT32, hint="b"))
        self._height_one(node, kind, ins, attrs)

    def _grouped_conv(self, x: int, w: np.ndarray, bias: np.ndarray | None, group: int, attrs, out: int,
                      name: str) -> None:
        """A float32 convolution of ``group`` groups (ONNX ``group``, 1 < group < channels) over NHWC
        ``x`` into ``out``: the input's channels SPLIT into the groups, one CONV_2D of each group's
        filters (``w``: ONNX ``[M, C/group, kh, kw]``) on its piece, the results concatenated."""
        f32 = DType.FLOAT32
        xt, yt = self.tensors[x], self.tensors[out]
        cin, cout = xt.shape[3] // group, yt.shape[3] // group
        pieces = [self._tensor(f"{name}/in{g}", (*xt.shape[:3], cin), f32) for g in range(group)]
        self._emit(OpKind.SPLIT, [x], pieces, A.Split(3, (cin,) * group))
        outs = []
        for g, piece in enumerate(pieces):
            sl = slice(g * cout, (g + 1) * cout)
            ins = [piece, self._const(L.conv_filter(np.asarray(w[sl], np.float32)), f32, hint="w")]
            if bias is not None:
                ins.append(self._const(np.asarray(bias, np.float32).reshape(-1)[sl], f32, hint="b"))
            outs.append(self._tensor(f"{name}/out{g}", (*yt.shape[:3], cout), f32))
            self._emit(OpKind.CONV_2D, ins, [outs[-1]], attrs)
        self._emit(OpKind.CONCATENATION, outs, [out], A.Concatenation(3))

    def _height_one(self, node, kind: OpKind | None, consts: list[int], attrs, grouped=None) -> None:
        """``kind`` (an NHWC op) over the float32 ``[N, C, L]`` input of ``node`` as an op of height 1:
        the input transposed to ``[N, L, C]`` and viewed as ``[N, 1, L, C]``, the output
        ``[N, 1, L', C']`` viewed as ``[N, L', C']`` and transposed back to ``[N, C', L']``.
        ``grouped``: (weights, bias, group) of a grouped convolution instead of ``kind``."""
        x = node.input[0]
        n, c, length = self._shape(x)
        yn, yc, yl = self._shape(node.output[0])
        f32 = DType.FLOAT32
        nlc = self._tensor(f"{x}/nlc", (n, length, c), f32)
        self._emit(OpKind.TRANSPOSE, [self._float(x).idx], [nlc], A.Transpose((0, 2, 1)))
        x4 = self._tensor(f"{x}/n1lc", (n, 1, length, c), f32)
        self._emit(OpKind.RESHAPE, [nlc], [x4])
        y4 = self._tensor(f"{node.output[0]}/n1lc", (yn, 1, yl, yc), f32)
        if grouped is not None:
            self._grouped_conv(x4, *grouped, attrs, y4, node.output[0])
        else:
            self._emit(kind, [x4, *consts], [y4], attrs)
        ylc = self._tensor(f"{node.output[0]}/nlc", (yn, yl, yc), f32)
        self._emit(OpKind.RESHAPE, [y4], [ylc])
        out = self._out(node, Layout.SAME, None)
        self._emit(OpKind.TRANSPOSE, [ylc], [out.idx], A.Transpose((0, 2, 1)))

    def _conv_transpose(self, node) -> None:
        """ConvTranspose (2-D, group 1, no dilation, explicit pads or VALID) as TRANSPOSE_CONV in
        float32: output row ``iy * stride + ky - pad_begin`` takes input row ``iy`` times filter row
        ``ky``, as cgen's kernel; the output size (output_padding included) is the inferred shape."""
        a, x, w, b, xs = self._conv_operands(node, "transposed convolution")
        if int(a.get("group", 1)) != 1 or list(a.get("dilations", [1, 1])) != [1, 1]:
            raise _Fail(f"group {a.get('group', 1)}, dilations {list(a.get('dilations', [1, 1]))} (only 1 and [1, 1])")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID") or "output_shape" in a:
            raise _Fail(f"auto_pad {_clean(str(auto))}{' with output_shape' if 'output_shape' in a else ''} "
                        "(only explicit pads or VALID)")
        p = [0, 0, 0, 0] if auto == "VALID" else list(a.get("pads", [0, 0, 0, 0]))
        if any(v < 0 for v in p):
            raise _Fail(f"negative pads {p}")
        strides = list(a.get("strides", [1, 1]))
        wf = self._const_f(w).astype(np.float32)          # [C_in, C_out, kH, kW]
        if wf.ndim != 4 or wf.shape[0] != xs[1]:
            raise _Fail(f"weights of shape {list(wf.shape)} for input {list(xs)}")
        opad = list(a.get("output_padding", [0, 0]))
        want = [strides[d] * (xs[2 + d] - 1) + opad[d] + wf.shape[2 + d] - p[d] - p[d + 2] for d in (0, 1)] \
            if len(strides) == 2 and len(opad) == 2 and len(p) == 4 else None
        declared = list(self._shape(node.output[0])[2:])
        if want != declared:     # onnxruntime computes the size from the attributes, not from the declared shape
            raise _Fail(f"declared output size {declared} does not follow from the input, kernel, strides, pads "
                        f"and output_padding ({want})")
        ins = [self._float(x).idx, self._const(np.transpose(wf, (1, 2, 3, 0)), DType.FLOAT32, hint="w")]
        if b:
            ins.append(self._const(self._const_f(b).reshape(-1), DType.FLOAT32, hint="b"))
        out = self._out(node, Layout.NHWC, None)
        self._emit(OpKind.TRANSPOSE_CONV, ins, [out.idx],
                   A.Conv2D(strides[0], strides[1], 1, 1, p[0], p[1], p[2], p[3], Activation.NONE))

    def _conv_attrs(self, a: dict, in_hw, k_hw, kind: OpKind, mult: int) -> A.Conv2D:
        strides = list(a.get("strides", [1, 1]))
        dil = list(a.get("dilations", [1, 1]))
        pt, pl, pb, pr = self._pads(a, in_hw, k_hw, strides, dil)
        return A.Conv2D(strides[0], strides[1], dil[0], dil[1], pt, pl, pb, pr, Activation.NONE,
                        mult if kind is OpKind.DEPTHWISE_CONV_2D else 1)

    def _pads(self, a: dict, in_hw, k_hw, strides, dil) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            (t, bt), (l, r) = (A.same_padding(in_hw[0], k_hw[0], strides[0], dil[0]),
                               A.same_padding(in_hw[1], k_hw[1], strides[1], dil[1]))
            if auto == "SAME_LOWER":
                t, bt, l, r = bt, t, r, l
            return t, l, bt, r
        if auto == "VALID":
            return 0, 0, 0, 0
        p = list(a.get("pads", [0, 0, 0, 0]))
        if any(v < 0 for v in p):
            raise _Fail(f"negative pads {p}")
        return p[0], p[1], p[2], p[3]

    def _conv_s8(self, kind, attrs, xv: Val, wq: QConst, bias, outq: OutQ, node) -> None:
        x_t = self.tensors[xv.idx]
        if wq.q.dtype != np.int8:
            raise _Fail(f"{wq.q.dtype} weights. {qdq.UINT8_HINT}")
        if wq.zero_point.any():
            raise _Fail("asymmetric weights (non-zero zero point)" +
                        (f". {qdq.UINT8_HINT}" if wq.was_uint8 else ""))
        if wq.per_channel and wq.axis != 0:
            raise _Fail(f"per-channel weight quantization along axis {wq.axis} (expected 0)")
        n_out = wq.q.shape[0]
        if kind is OpKind.CONV_2D:
            wt, axis = L.conv_filter(wq.q), 0
        else:
            wt, axis = L.depthwise_filter(wq.q), 3
        wquant = Quant(tuple(float(s) for s in wq.scale), (0,) * wq.scale.size, axis)
        ins = [xv.idx, self._const(wt, DType.INT8, wquant, "w")]
        if bias is not None:
            bq = qdq.bias_s32(bias, x_t.quant.s, wq.scale, n_out)
            bscale = tuple(float(np.float32(x_t.quant.s) * np.float32(s)) for s in np.broadcast_to(wq.scale, (n_out,)))
            ins.append(self._const(bq, DType.INT32, Quant(bscale, (0,) * n_out, 0), "b"))
        out = self._out(node, Layout.NHWC, outq)
        self._emit(kind, ins, [out.idx], attrs)

    def _gemm(self, node) -> None:
        a = _attrs(node)
        x, w = node.input[0], node.input[1]
        c = self._opt(node, 2) if node.op_type == "Gemm" else None
        if node.op_type == "Gemm":
            if a.get("transA", 0) or x in self.consts or w not in self.consts or (c and c not in self.consts):
                return self._gemm_general(node, a)
            trans_b, alpha, beta = bool(a.get("transB", 0)), float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        else:
            trans_b, alpha, beta = False, 1.0, 1.0
        if node.op_type == "MatMul" and (w not in self.consts or x in self.consts or np.ndim(self._const_f(w)) != 2
                                         or len(self._shape(x)) < 2 or self._layout_of(x) is Layout.NHWC):
            return self._batch_matmul(node)
        wc = self.consts[w]
        if (wc.q if isinstance(wc, QConst) else np.asarray(wc)).ndim != 2:
            raise _Fail("weights must be 2-D")
        xv = self._get(x)
        base = xv.src if isinstance(xv, DQ) else xv
        xs = self._shape(x)
        if base.layout is Layout.NHWC or (node.op_type == "Gemm" and len(xs) != 2):
            raise _Fail(f"input of shape {list(xs)}: flatten it to 2-D first")
        cols = L.flat_columns(base.chw) if base.layout is Layout.FLAT_NHWC else None
        keep = len(xs) > 2
        outq = self._mode(node, [x])
        if outq is not None and isinstance(wc, QConst) and alpha == 1.0 and beta == 1.0:
            if wc.q.dtype != np.int8 or wc.zero_point.any():
                raise _Fail("uint8 or asymmetric weights. " + qdq.UINT8_HINT)
            if wc.per_channel and wc.axis != (0 if trans_b else 1):
                raise _Fail(f"per-channel weights along axis {wc.axis} (expected the output axis)")
            wt = wc.q if trans_b else wc.q.T
            if cols is not None:
                wt = wt[:, cols]
            wquant = Quant(tuple(float(s) for s in wc.scale), (0,) * wc.scale.size, 0)
            xi = self._int8(x)
            ins = [xi.idx, self._const(wt, DType.INT8, wquant, "w")]
            if c:
                n_out = wt.shape[0]
                xq = self.tensors[xi.idx].quant.s
                bq = qdq.bias_s32(self.consts[c], xq, wc.scale, n_out)
                ins.append(self._const(bq, DType.INT32, None, "b"))
            out = self._out(node, Layout.SAME, outq)
            self._emit(OpKind.FULLY_CONNECTED, ins, [out.idx], A.FullyConnected(keep_num_dims=keep))
            return
        wf = self._const_f(w)
        wt = (wf if trans_b else wf.T) * np.float32(alpha)
        if cols is not None:
            wt = wt[:, cols]
        ins = [self._float(x).idx, self._const(wt, DType.FLOAT32, hint="w")]
        if c:
            bias = np.broadcast_to(self._const_f(c).reshape(-1) * np.float32(beta), (wt.shape[0],))
            ins.append(self._const(bias, DType.FLOAT32, hint="b"))
        out = self._out(node, Layout.SAME, None)
        self._emit(OpKind.FULLY_CONNECTED, ins, [out.idx], A.FullyConnected(keep_num_dims=keep))

    def _layout_of(self, name: str) -> Layout:
        """The layout the reader holds activation ``name`` in (a QDQ one: its int8 source's)."""
        v = self._get(name)
        return (v.src if isinstance(v, DQ) else v).layout

    def _batch_matmul(self, node) -> None:
        """MatMul other than activations times 2-D constant weights (attention's q @ k^T, a
        constant left operand, stacked weights, rank-4 activations): BATCH_MATMUL in float32 on
        the operands in ONNX's order (an NHWC activation is transposed back), numpy's
        broadcasting of the batch dimensions (ranks 2 to 5) and of rank-1 operands (a left one
        is [1, K], a right one [K, 1], the added dimension dropped from the result by a
        RESHAPE). The result is in ONNX's order (Layout.SAME) at every rank."""
        lhs, rhs = self._mm_operand(node.input[0], (1, -1)), self._mm_operand(node.input[1], (-1, 1))
        ls, rs = self.tensors[lhs].shape, self.tensors[rhs].shape
        shape = tuple(np.broadcast_shapes(ls[:-2], rs[:-2])) + (ls[-2], rs[-1])
        out = self._out(node, Layout.SAME, None)
        if shape == self.tensors[out.idx].shape:
            self._emit(OpKind.BATCH_MATMUL, [lhs, rhs], [out.idx], A.BatchMatMul())
            return
        y = self._tensor(f"{node.output[0]}/matrix", shape, DType.FLOAT32)
        self._emit(OpKind.BATCH_MATMUL, [lhs, rhs], [y], A.BatchMatMul())
        self._emit(OpKind.RESHAPE, [y], [out.idx])

    def _mm_operand(self, name: str, vector: tuple[int, int]) -> int:
        """A MatMul / Gemm operand as a float32 IR tensor in ONNX's order; a rank-1 one viewed as
        the matrix ``vector`` ((1, -1): a row, (-1, 1): a column)."""
        if name in self.consts:
            c = self._const_f(name).astype(np.float32)
            return self._const(c.reshape(vector) if c.ndim == 1 else c, DType.FLOAT32, hint="k")
        v = self._float_source(name)
        if len(v.shape) != 1:
            return v.idx
        t = self._tensor(f"{name}/matrix", np.empty(v.shape).reshape(vector).shape, DType.FLOAT32)
        self._emit(OpKind.RESHAPE, [v.idx], [t])
        return t

    def _gemm_general(self, node, a: dict) -> None:
        """Gemm other than an activation times constant weights (B an activation, transA=1, a
        constant A, a run-time C): BATCH_MATMUL of the 2-D operands in ONNX's order (adj_x =
        transA, adj_y = transB), then MUL by alpha and ADD beta * C (broadcast as ONNX's
        unidirectional broadcasting to [M, N]), in float32."""
        shapes = [np.shape(self._const_f(n)) if n in self.consts else self._shape(n) for n in node.input[:2]]
        if any(len(s) != 2 for s in shapes):
            raise _Fail(f"operands of shapes {[list(s) for s in shapes]} (Gemm takes 2-D)")
        ins = [self._mm_operand(n, (1, -1)) for n in node.input[:2]]
        alpha, beta, c = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0)), self._opt(node, 2)
        steps = [(OpKind.MUL, self._const(np.array([alpha], np.float32), DType.FLOAT32, hint="alpha"))] \
            if alpha != 1.0 else []
        if c in self.consts:
            steps.append((OpKind.ADD, self._const(self._const_f(c).astype(np.float32) * np.float32(beta),
                                                  DType.FLOAT32, hint="c")))
        elif c:
            bias = self._float_source(c).idx
            if beta != 1.0:
                scaled = self._tensor(f"{c}/beta", self.tensors[bias].shape, DType.FLOAT32)
                self._emit(OpKind.MUL, [bias, self._const(np.array([beta], np.float32), DType.FLOAT32,
                                                          hint="beta")], [scaled], A.Elementwise())
                bias = scaled
            steps.append((OpKind.ADD, bias))
        out = self._out(node, Layout.SAME, None)
        y = self._tensor(f"{node.output[0]}/matmul", out.shape, DType.FLOAT32) if steps else out.idx
        self._emit(OpKind.BATCH_MATMUL, ins, [y],
                   A.BatchMatMul(bool(a.get("transA", 0)), bool(a.get("transB", 0))))
        self._chain(y, steps, out.idx)

    # ---- ops: recurrent -----------------------------------------------------------------------

    _LSTM_GATES = (0, 2, 3, 1)   # ONNX's gate blocks are i, o, f, c; the IR's i, f, c, o
    _LSTM_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}

    def _lstm(self, node) -> None:
        """LSTM with the default activations (sigmoid, tanh, tanh), no peepholes or clip: one
        UNIDIRECTIONAL_SEQUENCE_LSTM per direction in float32 (time-major for layout 0; reverse
        walks the steps last to first) with W and R split by gate, the two biases summed, the
        initial state (zeros when absent) as operands; their outputs reshaped (and concatenated
        along num_directions when bidirectional) to ONNX's Y, Y_h and Y_c."""
        a = _attrs(node)
        direction = a.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        acts = [x.decode() if isinstance(x, bytes) else str(x) for x in a.get("activations", [])]
        if direction not in self._LSTM_DIRECTIONS:
            raise _Fail(f"direction '{direction}'")
        dirs = self._LSTM_DIRECTIONS[direction]
        if acts and [x.lower() for x in acts] != ["sigmoid", "tanh", "tanh"] * len(dirs):
            raise _Fail(f"activations {acts} (only Sigmoid, Tanh, Tanh are supported)")
        for what, bad in (("clip", "clip" in a), ("input_forget", a.get("input_forget", 0)),
                          ("peepholes (input P)", self._opt(node, 7)),
                          ("activation_alpha/beta", "activation_alpha" in a or "activation_beta" in a)):
            if bad:
                raise _Fail(f"{what} is not supported")
        for k in (1, 2) + ((3,) if self._opt(node, 3) else ()):
            if node.input[k] not in self.consts:
                raise _Fail(f"input '{_clean(node.input[k])}' must be a constant")
        w, r = (self._const_f(node.input[k]).astype(np.float32) for k in (1, 2))
        nd = len(dirs)
        if w.ndim != 3 or r.ndim != 3 or w.shape[0] != nd or r.shape[0] != nd:
            raise _Fail(f"W {list(w.shape)} and R {list(r.shape)} ({nd} direction(s): [{nd}, 4*hidden, ...])")
        hs = r.shape[-1]
        bias = (self._const_f(node.input[3]).astype(np.float32).reshape(nd, 8 * hs) if self._opt(node, 3)
                else np.zeros((nd, 8 * hs), np.float32))
        bias = bias[:, :4 * hs] + bias[:, 4 * hs:]
        layout = int(a.get("layout", 0))
        xv = self._float(node.input[0])
        xs = self._shape(node.input[0])
        if xv.layout is not Layout.SAME or len(xs) != 3:
            raise _Fail(f"input {list(xs)} (a rank-3 sequence is needed)")
        seq, batch = (xs[0], xs[1]) if layout == 0 else (xs[1], xs[0])
        lens = self._opt(node, 4)
        if lens and not (lens in self.consts and np.all(np.asarray(self.consts[lens]) == seq)):
            raise _Fail("sequence_lens other than the full sequence is not supported")
        gate = lambda m, q: m[q * hs:(q + 1) * hs]
        parts = []   # per direction: its y, h and c tensors
        for d, reverse in enumerate(dirs):
            ins = [xv.idx]
            for m in (w[d], r[d], bias[d]):
                ins += [self._const(gate(m, q), DType.FLOAT32, hint="w") for q in self._LSTM_GATES]
            for k in (5, 6):   # initial_h, initial_c: [num_directions, B, H] -> [B, H]
                ins.append(self._lstm_state(node, k, d, nd, batch, hs))
            outs = [self._tensor(f"{node.name or 'lstm'}/{what}{d}", shape, DType.FLOAT32) for what, shape in
                    (("y", (seq, batch, hs) if layout == 0 else (batch, seq, hs)), ("h", (batch, hs)),
                     ("c", (batch, hs)))]
            self._emit(OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM, ins, outs, A.Lstm(time_major=layout == 0, reverse=reverse))
            parts.append(outs)
        y_shape, y_axis = ((seq, 1, batch, hs), 1) if layout == 0 else ((batch, seq, 1, hs), 2)
        for k, (shape, axis) in enumerate(((y_shape, y_axis), ((1, batch, hs), 0), ((1, batch, hs), 0))):
            if len(node.output) <= k or not node.output[k]:
                continue
            if nd == 1:
                self._emit(OpKind.RESHAPE, [parts[0][k]], [self._out(node, Layout.SAME, None, shape=shape, k=k).idx])
                continue
            pieces = []
            for d in range(nd):
                pieces.append(self._tensor(f"{node.output[k]}/{d}", shape, DType.FLOAT32))
                self._emit(OpKind.RESHAPE, [parts[d][k]], [pieces[-1]])
            whole = tuple(n * nd if j == axis else n for j, n in enumerate(shape))
            out = self._out(node, Layout.SAME, None, shape=whole, k=k)
            self._emit(OpKind.CONCATENATION, pieces, [out.idx], A.Concatenation(axis))

    def _lstm_state(self, node, k: int, d: int, nd: int, batch: int, hs: int) -> int:
        """Direction ``d``'s initial state from ONNX input ``k`` ([num_directions, B, H])."""
        name = self._opt(node, k)
        if name is None:
            return self._const(np.zeros((batch, hs), np.float32), DType.FLOAT32, hint="state")
        if name in self.consts:
            return self._const(self._const_f(name).reshape(nd, batch, hs)[d], DType.FLOAT32, hint="state")
        if nd > 1:
            raise _Fail(f"initial state '{_clean(name)}' of a bidirectional LSTM is not a constant")
        v = self._float(name)
        t = self._tensor(f"{_clean(name)}/state", (batch, hs), DType.FLOAT32)
        self._emit(OpKind.RESHAPE, [v.idx], [t])
        return t

    # ---- ops: elementwise ----------------------------------------------------------------------

    def _act_layout(self, acts: list[str]) -> tuple[list[Val], Layout, bool]:
        """The activations ``acts`` (their DQ sources), the layout they are held in, and whether
        they differ (``mixed``: then the op computes in ONNX's order, Layout.SAME)."""
        bases = [v.src if isinstance(v, DQ) else v for v in (self._get(n) for n in acts)]
        lays = {b.layout for b in bases}
        mixed = len(lays) > 1
        return bases, Layout.SAME if mixed else lays.pop(), mixed

    def _binary(self, node) -> None:
        op = node.op_type
        kind = OpKind.ADD if op in ("Add", "Sub") else OpKind.MUL
        names = list(node.input[:2])
        acts = [n for n in names if n not in self.consts]
        if op in ("Sub", "Div") and (names[0] in self.consts or len(acts) == 2):
            # no ADD/MUL with a negated / inverted constant: the float SUB/DIV kernels
            return self._float_binary(node, OpKind.SUB if op == "Sub" else OpKind.DIV, A.Elementwise())
        bases, lay, mixed = self._act_layout(acts)
        if mixed:
            return self._float_binary(node, kind, A.Elementwise())
        outq = self._mode(node, acts)
        if op in ("Sub", "Div") and (names[0] in self.consts or outq is not None):
            outq = None
            if names[0] in self.consts:
                raise _Fail(f"{op} with a constant first operand")
        if outq is not None:
            ins = []
            for n in names:
                if n in self.consts:
                    c = self.consts[n]
                    if not isinstance(c, QConst) or c.per_channel or c.q.dtype != np.int8:
                        outq = None
                        break
                    ins.append(self._const(self._bcast(c.q, lay), DType.INT8,
                                           Quant((float(c.scale[0]),), (int(c.zero_point[0]),)), "k"))
                else:
                    ins.append(self._int8(n).idx)
            if outq is not None:
                out = self._out(node, lay, outq, chw=bases[0].chw)
                self._emit(kind, ins, [out.idx], A.Elementwise())
                return
        ins = []
        for n in names:
            if n in self.consts:
                c = self._const_f(n).astype(np.float32)
                if op == "Sub":
                    c = -c
                elif op == "Div":
                    c = (np.float32(1.0) / c).astype(np.float32)
                ins.append(self._const(self._bcast(c, lay), DType.FLOAT32, hint="k"))
            else:
                ins.append(self._float(n).idx)
        out = self._out(node, lay, None, chw=bases[0].chw)
        self._emit(kind, ins, [out.idx], A.Elementwise())

    def _float_binary(self, node, kind: OpKind, attrs=None, count: int = 1) -> None:
        """An op of two or more operands computed in float32 (QDQ operands dequantized), numpy-broadcast:
        constants broadcast into the activations' layout; activations in different layouts (an NCHW one
        held as NHWC with a lower-rank one) computed in ONNX's order (Layout.SAME), the NHWC ones
        transposed back; more than two operands chained left to right (ONNX Sum, Max and Min are
        variadic); ``count`` > 1 divides the result by it (Mean)."""
        names = list(node.input)
        if len(names) < 2 or not all(names):
            raise _Fail(f"{len(names)} operands (two or more are supported)")
        bases, lay, mixed = self._act_layout([n for n in names if n not in self.consts])
        if mixed and any(b.layout is Layout.FLAT_NHWC for b in bases):
            raise _Fail("operands in different layouts (a flattened NCHW activation with another activation)")
        act = self._float_source if mixed else self._float
        ins = [self._const(self._bcast(self._const_f(n).astype(np.float32), lay), DType.FLOAT32, hint="k")
               if n in self.consts else act(n).idx for n in names]
        shape = self._shape(node.output[0])
        chw = None if mixed else next((b.chw for b in bases if tuple(b.shape) == tuple(shape)), bases[0].chw)
        out = self._out(node, lay, None, chw=chw)
        acc, part = ins[0], ()
        for k, n in enumerate(names):   # each partial result numpy-broadcast in ONNX order, held in ``lay``
            part = np.broadcast_shapes(part, np.shape(self._const_f(n)) if n in self.consts else self._shape(n))
            if k == 0:
                continue
            if k == len(names) - 1 and count == 1:
                self._emit(kind, [acc, ins[k]], [out.idx], attrs)
                return
            ir = L.ir_shape((1,) * (4 - len(part)) + part, lay) if lay is Layout.NHWC else part
            acc = self._step(node.output[0], kind, [acc, ins[k]], ir, attrs, f"part{k}")
        n = self._const(np.array([count], np.float32), DType.FLOAT32, hint="count")
        self._emit(OpKind.DIV, [acc, n], [out.idx], A.Elementwise())

    def _variadic(self, node) -> None:
        """Sum, Mean, Max or Min: of one operand, a copy of it (it may be a graph input, and the
        result a graph output); of more, :meth:`_float_binary`."""
        if len(node.input) == 1:
            xf = self._float(node.input[0])
            self._emit(OpKind.RESHAPE, [xf.idx], [self._out(node, xf.layout, None, chw=xf.chw).idx])
            return
        kind = {"Sum": OpKind.ADD, "Mean": OpKind.ADD, "Max": OpKind.MAXIMUM, "Min": OpKind.MINIMUM}[node.op_type]
        self._float_binary(node, kind, A.Elementwise() if kind is OpKind.ADD else None,
                           len(node.input) if node.op_type == "Mean" else 1)

    def _gelu_erf(self, node) -> bool:
        """GELU as torch.onnx writes nn.GELU() below opset 20: Div(x, sqrt 2) (or Mul by 1/sqrt 2)
        -> Erf -> Add 1 -> Mul x -> Mul 0.5, each the only reader of the one before. Found from its
        first node, emitted as one GELU (float32); the other four nodes are skipped. False when
        ``node`` does not start that pattern (then it converts as itself)."""
        def const_is(name, value) -> bool:
            c = self.consts.get(name)
            return c is not None and np.asarray(self._const_f(name)).size == 1 and \
                abs(float(np.asarray(self._const_f(name)).reshape(-1)[0]) - value) < 1e-4

        def only_user(n, op_type):
            users = self.consumers.get(n.output[0], [])
            if len(users) != 1 or n.output[0] in self.graph_outputs or self.g.node[users[0]].op_type != op_type:
                return None
            return users[0]

        def other(n, name):
            ins = list(n.input)
            return ins[1] if len(ins) == 2 and ins[0] == name else ins[0] if len(ins) == 2 and ins[1] == name else None

        x = node.input[0]
        if x in self.consts or len(node.input) != 2 or not const_is(
                node.input[1], math.sqrt(2.0) if node.op_type == "Div" else math.sqrt(0.5)):
            return False
        chain, cur = [], node
        for op_type in ("Erf", "Add", "Mul", "Mul"):
            k = only_user(cur, op_type)
            if k is None:
                return False
            prev, cur = cur, self.g.node[k]
            chain.append(k)
            second = other(cur, prev.output[0]) if op_type != "Erf" else None
            if op_type == "Add" and not (second and const_is(second, 1.0)):
                return False
            if op_type == "Mul" and len(chain) == 3 and second != x:
                return False
            if op_type == "Mul" and len(chain) == 4 and not (second and const_is(second, 0.5)):
                return False
        xf = self._float(x)
        out = self._out(cur, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.GELU, [xf.idx], [out.idx], A.Gelu(False))
        self.skip.update(chain)
        return True

    def _float_unary(self, node, kind: OpKind, attrs=None) -> None:
        """A one-operand op computed in float32 (a QDQ operand is dequantized, its QuantizeLinear
        stays a QUANTIZE): the ONNX functions cgen has float kernels for."""
        xf = self._float(node.input[0])
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(kind, [xf.idx], [out.idx], attrs)

    def _elementwise_opaque(self, node) -> None:
        """A one-input element-wise ONNX function the IR has no kind for (Sin, Floor, Erf,
        Softplus, ...): carried as an opaque op on its float32 input in whatever layout the
        reader holds it (element order does not matter to it), for a backend to take or refuse."""
        from onnx import AttributeProto
        if len([n for n in node.input if n]) != 1 or len([n for n in node.output if n]) != 1 or \
                any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            return self._opaque(node)
        xf = self._float(node.input[0])
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.OPAQUE, [xf.idx], [out.idx], _opaque_attrs(node))

    def _pow(self, node) -> None:
        e = node.input[1]
        if e not in self.consts or np.asarray(self._const_f(e)).size != 1:
            raise _Fail("Pow with an exponent that is not one constant")
        v = float(np.asarray(self._const_f(e)).reshape(-1)[0])
        kinds = {2.0: OpKind.SQUARE, 0.5: OpKind.SQRT, -0.5: OpKind.RSQRT}
        if v not in kinds:
            raise _Fail(f"Pow with exponent {v:g} (only 2, 0.5 and -0.5 have kernels)")
        self._float_unary(node, kinds[v])

    def _elu(self, node) -> None:
        alpha = float(_attrs(node).get("alpha", 1.0))
        if alpha != 1.0:
            return self._elementwise_opaque(node)
        self._float_unary(node, OpKind.ELU)

    def _gelu(self, node) -> None:
        approx = _attrs(node).get("approximate", "none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        if approx not in ("none", "tanh"):
            raise _Fail(f"Gelu with approximate '{_clean(str(approx))}'")
        self._float_unary(node, OpKind.GELU, A.Gelu(approx == "tanh"))

    def _reciprocal(self, node) -> None:
        xf = self._float(node.input[0])
        one = self._const(np.ones((1,), np.float32), DType.FLOAT32, hint="one")
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.DIV, [one, xf.idx], [out.idx], A.Elementwise())

    def _bcast(self, c: np.ndarray, lay: Layout) -> np.ndarray:
        try:
            return L.broadcast_const(np.asarray(c), lay)
        except ValueError as e:
            raise _Fail(str(e)) from None

    def _unary(self, node, kind: OpKind, attrs=None) -> None:
        x = node.input[0]
        v = self._get(x)
        base = v.src if isinstance(v, DQ) else v
        outq = self._mode(node, [x])
        if outq is not None and qdq.int8_ok(kind, [self.tensors[base.idx].quant], outq.quant):
            out = self._out(node, base.layout, outq, chw=base.chw)
            self._emit(kind, [base.idx], [out.idx], attrs)
            return
        xf = self._float(x)
        out = self._out(node, base.layout, None, chw=base.chw)
        self._emit(kind, [xf.idx], [out.idx], attrs)

    def _relu(self, node) -> None:
        self._unary(node, OpKind.RELU, Activation.RELU)

    def _clip(self, node) -> None:
        a = _attrs(node)
        if self.opset < 11:
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            lo_n, hi_n = self._opt(node, 1), self._opt(node, 2)
            if any(n and n not in self.consts for n in (lo_n, hi_n)):
                return self._clip_bounds(node, lo_n, hi_n)
            lo = float(self._const_f(lo_n)) if lo_n else -np.inf
            hi = float(self._const_f(hi_n)) if hi_n else np.inf
            if (lo, hi) == (-np.inf, np.inf):   # no bound (Clip-6's defaults are +-FLT_MAX instead)
                return self._identity(node)
        table = {(0.0, np.inf): (OpKind.RELU, Activation.RELU), (0.0, 6.0): (OpKind.RELU6, Activation.RELU6),
                 (-1.0, 1.0): (OpKind.RELU, Activation.RELU_N1_TO_1)}
        if (lo, hi) not in table:   # other bounds: MAXIMUM and MINIMUM in float32 (min > max gives max)
            xf = self._float(node.input[0])
            steps = [(kind, self._const(np.array([v], np.float32), DType.FLOAT32, hint="bound"))
                     for kind, v, none in ((OpKind.MAXIMUM, lo, -np.inf), (OpKind.MINIMUM, hi, np.inf)) if v != none]
            return self._chain(xf.idx, steps, self._out(node, xf.layout, None, chw=xf.chw).idx)
        kind, act = table[(lo, hi)]
        self._unary(node, kind, act)

    def _clip_bounds(self, node, lo: str | None, hi: str | None) -> None:
        """Clip with a run-time bound: MAXIMUM with min, then MINIMUM with max, in float32 (as
        numpy.clip, ONNX's reference: when min > max every element is max). A bound is one
        element (ONNX: a scalar); an infinite constant one is no bound."""
        bounds = []
        for kind, n, inf in ((OpKind.MAXIMUM, lo, -np.inf), (OpKind.MINIMUM, hi, np.inf)):
            if n in self.consts:
                c = np.asarray(self._const_f(n), np.float32)
                if c.size == 1 and c.reshape(-1)[0] != inf:
                    bounds.append((kind, self._const(c.reshape(1), DType.FLOAT32, hint="bound")))
                elif c.size != 1:
                    raise _Fail(f"a bound of shape {list(c.shape)} (min and max are scalars)")
            elif n:
                if math.prod(self._shape(n)) != 1:
                    raise _Fail(f"a bound of shape {list(self._shape(n))} (min and max are scalars)")
                bounds.append((kind, self._float(n).idx))
        xf = self._float(node.input[0])
        self._chain(xf.idx, bounds, self._out(node, xf.layout, None, chw=xf.chw).idx)

    def _chain(self, y: int, steps: list[tuple[OpKind, int]], out: int) -> None:
        """Float32 element-wise ``steps`` ((kind, second operand)) applied in turn to tensor ``y``,
        the last one writing ``out``."""
        for k, (kind, operand) in enumerate(steps):
            nxt = out if k == len(steps) - 1 else self._tensor(f"{self.tensors[out].name}/{k}",
                                                               self.tensors[out].shape, DType.FLOAT32)
            self._emit(kind, [y, operand], [nxt], A.Elementwise())
            y = nxt

    # ---- ops: pooling, reductions --------------------------------------------------------------

    def _pool(self, node) -> None:
        a = _attrs(node)
        op = node.op_type
        if len(node.output) > 1 and node.output[1]:
            raise _Fail("the Indices output of MaxPool")
        x = node.input[0]
        xs = self._shape(x)
        if len(xs) == 3:
            return self._pool1d(node)
        if len(xs) != 4:
            raise _Fail(f"{len(xs) - 2}-D pooling (only 1-D and 2-D are supported)")
        kind = OpKind.MAX_POOL_2D if "Max" in op else OpKind.AVERAGE_POOL_2D
        if op.startswith("Global"):
            k, strides, pads = list(xs[2:]), [1, 1], (0, 0, 0, 0)
        else:
            k = list(a["kernel_shape"])
            strides = list(a.get("strides", [1, 1]))
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise _Fail("dilated pooling")
            pads = self._pads(a, xs[2:], k, strides, [1, 1])
            if op == "LpPool" or kind is OpKind.AVERAGE_POOL_2D and a.get("count_include_pad", 0) and any(pads):
                return self._padded_average(node, k, strides, pads)
            if a.get("ceil_mode", 0):
                pads = self._ceil_pads(xs[2:], k, strides, pads)
        attrs = A.Pool2D(k[0], k[1], strides[0], strides[1], pads[0], pads[1], pads[2], pads[3])
        self._pool_like(node, kind, attrs, global_=op.startswith("Global"))

    def _padded_average(self, node, k, strides, pads) -> None:
        """AveragePool with count_include_pad=1 and LpPool (p 1 to 8), float32: the padding made
        explicit zeros (a PAD), then a VALID average over the whole window; LpPool's
        ``(sum |x|^p) ^ (1/p)`` is that average of ``|x|`` multiplied p - 1 times by itself, times
        the window size, then SQRT (p = 2) or exp(log(.) / p)."""
        a, x, name = _attrs(node), node.input[0], node.output[0]
        if a.get("ceil_mode", 0):
            raise _Fail("ceil_mode=1 with count_include_pad=1 or LpPool")
        xf = self._float(x)
        if xf.layout is not Layout.NHWC:
            raise _Fail("input is not in NCHW layout")
        y, shape = xf.idx, tuple(self.tensors[xf.idx].shape)
        p = int(a.get("p", 2)) if node.op_type == "LpPool" else 0
        if node.op_type == "LpPool":
            if not 1 <= p <= 8:
                raise _Fail(f"p={p} (1 to 8 are supported)")
            mag = y = self._step(name, OpKind.ABS, [y], shape)
            for q in range(p - 1):      # |x| ** p as p - 1 products
                y = self._step(name, OpKind.MUL, [y, mag], shape, A.Elementwise(), f"pow{q + 2}")
        if any(pads):
            shape = (shape[0], shape[1] + pads[0] + pads[2], shape[2] + pads[1] + pads[3], shape[3])
            y = self._step(name, OpKind.PAD, [y], shape, A.Pad(((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0))))
        out = self._out(node, Layout.NHWC, None)
        pool = A.Pool2D(k[0], k[1], strides[0], strides[1], 0, 0, 0, 0)
        if not p:
            self._emit(OpKind.AVERAGE_POOL_2D, [y], [out.idx], pool)
            return
        avg = self._step(name, OpKind.AVERAGE_POOL_2D, [y], tuple(self.tensors[out.idx].shape), pool)
        window = self._const(np.array([k[0] * k[1]], np.float32), DType.FLOAT32, hint="k")
        if p == 1:
            self._emit(OpKind.MUL, [avg, window], [out.idx], A.Elementwise())
            return
        oshape = tuple(self.tensors[out.idx].shape)
        total = self._step(name, OpKind.MUL, [avg, window], oshape, A.Elementwise(), "sum")
        if p == 2:
            self._emit(OpKind.SQRT, [total], [out.idx])
            return
        # the p-th root as exp(log(sum) / p): a zero sum gives log -inf, clamped, and exp 0
        inv = self._const(np.array([1.0 / p], np.float32), DType.FLOAT32, hint="k")
        scaled = self._step(name, OpKind.MUL, [self._step(name, OpKind.LOG, [total], oshape), inv], oshape,
                            A.Elementwise(), "logroot")
        self._emit(OpKind.EXP, [scaled], [out.idx])

    def _pool1d(self, node) -> None:
        """MaxPool / AveragePool (and their Global forms) over ``[N, C, L]``, float32, as pooling of height 1."""
        a, op, x = _attrs(node), node.op_type, node.input[0]
        if op == "LpPool":
            raise _Fail("1-D LpPool (2-D is supported)")
        v = self._get(x)
        if isinstance(v, DQ) or self._mode(node, [x]) is not None:
            raise _Fail("int8 1-D pooling (float32 only)")
        if v.layout is not Layout.SAME:
            raise _Fail("input is not an [N, C, L] tensor")
        length = self._shape(x)[2]
        kind = OpKind.MAX_POOL_2D if "Max" in op else OpKind.AVERAGE_POOL_2D
        if op.startswith("Global"):
            k, strides, pads = [1, length], [1, 1], (0, 0, 0, 0)
        else:
            p = list(a.get("pads", [0, 0]))
            if len(list(a["kernel_shape"])) != 1 or len(p) != 2 or len(list(a.get("strides", [1]))) != 1:
                raise _Fail(f"kernel_shape, pads {p} or strides that are not those of 1-D pooling")
            if any(d != 1 for d in a.get("dilations", [1])):
                raise _Fail("dilated pooling")
            k, strides = [1, *a["kernel_shape"]], [1, *a.get("strides", [1])]
            a2 = {"pads": [0, p[0], 0, p[1]], **({"auto_pad": a["auto_pad"]} if "auto_pad" in a else {})}
            pads = self._pads(a2, (1, length), k, strides, [1, 1])
            if kind is OpKind.AVERAGE_POOL_2D and a.get("count_include_pad", 0) and any(pads):
                raise _Fail("count_include_pad=1 with padding (padding is excluded from averages)")
            if a.get("ceil_mode", 0):
                pads = self._ceil_pads((1, length), k, strides, pads)
        self._height_one(node, kind, [], A.Pool2D(k[0], k[1], strides[0], strides[1], *pads))

    @staticmethod
    def _ceil_pads(hw, k, strides, pads):
        pads = list(pads)
        for d, (lo, hi) in enumerate(((0, 2), (1, 3))):
            total = hw[d] + pads[lo] + pads[hi]
            out = -(-(total - k[d]) // strides[d]) + 1
            if (out - 1) * strides[d] >= hw[d] + pads[lo]:
                out -= 1
            pads[hi] += max(0, (out - 1) * strides[d] + k[d] - total)
        return tuple(pads)

    def _pool_like(self, node, kind, attrs, global_: bool) -> None:
        x = node.input[0]
        v = self._get(x)
        base = v.src if isinstance(v, DQ) else v
        if base.layout is not Layout.NHWC:
            raise _Fail("input is not in NCHW layout")
        outq = self._mode(node, [x])
        if outq is not None:
            in_q = self.tensors[base.idx].quant
            if qdq.int8_ok(kind, [in_q], outq.quant):
                out = self._out(node, Layout.NHWC, outq)
                self._emit(kind, [base.idx], [out.idx], attrs)
                return
            if global_ and kind is OpKind.AVERAGE_POOL_2D:   # requantizing average: MEAN
                out = self._out(node, Layout.NHWC, outq)
                self._emit(OpKind.MEAN, [base.idx], [out.idx], A.Mean((1, 2), True))
                return
        out = self._out(node, Layout.NHWC, None)
        self._emit(kind, [self._float(x).idx], [out.idx], attrs)

    def _reduce_mean(self, node) -> None:
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and self._opt(node, 1):
            if node.input[1] not in self.consts:
                raise _Fail("axes must be constant")
            axes = [int(v) for v in np.asarray(self.consts[node.input[1]]).reshape(-1)]
        xs = self._shape(node.input[0])
        axes = sorted(int(d) % len(xs) for d in (axes or range(len(xs))))
        if len(xs) != 4 or axes != [2, 3] or a.get("keepdims", 1) != 1 or \
                self._layout_of(node.input[0]) is not Layout.NHWC:   # (keepdims: refused there unless 0 or 1)
            # any other axes (e.g. the last one of a layer norm): MEAN, in float32 (shape_ops.reduce
            # maps the axes to the IR's layout; cgen's MEAN takes contiguous ones)
            shape_ops.adapt(shape_ops.reduce, _Fail)(self, node)
            return
        self._pool_like(node, OpKind.AVERAGE_POOL_2D, A.Pool2D(xs[2], xs[3]), global_=True)

    def _layer_norm(self, node) -> None:
        """LayerNormalization (opset 17): normalized over ONNX axes ``axis`` .. rank - 1, scale and
        bias of those axes' shape; its Mean and InvStdDev outputs when used (see :meth:`_normalize`)."""
        a = _attrs(node)
        if any(node.output[1:]) and int(a.get("stash_type", 1)) != 1:
            raise _Fail(f"the Mean / InvStdDev outputs with stash_type {a['stash_type']} (only 1, float32)")
        rank = len(self._shape(node.input[0]))
        first = int(a.get("axis", -1)) % rank
        self._normalize(node, range(first, rank), self._operand(node.input[1]),
                        self._operand(self._opt(node, 2)), a.get("epsilon", 1e-5))

    def _rms_norm(self, node) -> None:
        """RMSNormalization (opset 23): x / sqrt(mean(x^2) + epsilon) * scale over ONNX axes
        ``axis`` .. rank - 1 (see :meth:`_normalize`)."""
        a = _attrs(node)
        rank = len(self._shape(node.input[0]))
        first = int(a.get("axis", -1)) % rank
        self._normalize(node, range(first, rank), self._operand(node.input[1]), None, a.get("epsilon", 1e-5),
                        centered=False)

    def _operand(self, name: str | None):
        """A scale or bias input: its value if constant, else its name (an activation); None: absent."""
        return None if name is None else self._const_f(name) if name in self.consts else name

    def _instance_norm(self, node) -> None:
        """InstanceNormalization: normalized over the spatial axes (2 ..) of each image and channel,
        scale and bias per channel (see :meth:`_normalize`)."""
        x, scale, bias = node.input[0], node.input[1], node.input[2]
        if scale not in self.consts or bias not in self.consts:
            raise _Fail("scale and bias must be constant")
        rank = len(self._shape(x))
        if rank < 3:
            raise _Fail(f"a rank-{rank} input (needs N, C and at least one spatial axis)")
        per_channel = (-1,) + (1,) * (rank - 2)
        self._normalize(node, range(2, rank), self._const_f(scale).reshape(per_channel),
                        self._const_f(bias).reshape(per_channel), _attrs(node).get("epsilon", 1e-5))

    def _normalize(self, node, onnx_axes, scale, bias, eps, centered: bool = True) -> None:
        """(x - mean) * rsqrt(var + eps) * scale (+ bias) over ``onnx_axes`` (mapped to the IR's
        layout) in float32, as the ops TFLite's converter writes for a layer norm: MEAN,
        SQUARED_DIFFERENCE, MEAN, ADD epsilon, RSQRT, SUB, MUL, MUL scale, ADD bias; not ``centered``
        (RMS normalization), x * rsqrt(mean(x^2) + eps) * scale. ``scale`` and ``bias`` (None: none)
        are constants or names of activations (then the whole computation runs in ONNX order, x
        transposed back from NHWC), broadcast against x in ONNX order. Outputs 1 and 2 of the node,
        when used, are the mean and the rsqrt (LayerNormalization's Mean and InvStdDev)."""
        x = node.input[0]
        acts = [c for c in (scale, bias) if isinstance(c, str)]
        xf = self._float(x)
        if acts:
            for n in acts:
                self._float(n)   # float32 (or QDQ) only
            xf = self._source_layout(x)
        if xf.layout is Layout.FLAT_NHWC:
            raise _Fail("a flattened NCHW input (its element order differs from ONNX's)")
        rank = len(xf.shape)
        axes = tuple(sorted(L.ir_axis(k, rank, xf.layout) for k in onnx_axes))
        ir = self.tensors[xf.idx].shape
        stat = tuple(1 if k in axes else d for k, d in enumerate(ir))
        name = node.output[0]

        def statistic(k, kind, ins, attrs=None, hint=""):
            """Output ``k`` of the node when used, else a tensor of the node's own."""
            if len(node.output) <= k or not node.output[k]:
                return self._step(name, kind, ins, stat, attrs, hint)
            out = self._out(node, xf.layout, None, k=k, shape=tuple(
                1 if j in onnx_axes else d for j, d in enumerate(xf.shape)))
            self._emit(kind, ins, [out.idx], attrs)
            return out.idx

        if centered:
            mean = statistic(1, OpKind.MEAN, [xf.idx], A.Mean(axes, True))
            dev = self._step(name, OpKind.SQUARED_DIFFERENCE, [xf.idx, mean], ir)
            diff = self._step(name, OpKind.SUB, [xf.idx, mean], ir, A.Elementwise())
        else:
            dev, diff = self._step(name, OpKind.SQUARE, [xf.idx], ir), xf.idx
        var = self._step(name, OpKind.MEAN, [dev], stat, A.Mean(axes, True), "variance")
        eps = self._const(np.array([eps], np.float32), DType.FLOAT32, hint="epsilon")
        inv = statistic(2, OpKind.RSQRT, [self._step(name, OpKind.ADD, [var, eps], stat, A.Elementwise())])
        y = self._step(name, OpKind.MUL, [diff, inv], ir, A.Elementwise())
        ins = [self._norm_operand(c, xf, h) for c, h in ((scale, "scale"), (bias, "bias")) if c is not None]
        if bias is not None:
            y = self._step(name, OpKind.MUL, [y, ins[0]], ir, A.Elementwise(), "scaled")
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.ADD if bias is not None else OpKind.MUL, [y, ins[-1]], [out.idx], A.Elementwise())

    def _norm_operand(self, c, xf: Val, what: str) -> int:
        """Scale or bias ``c`` (a constant, or an activation's name) as an IR operand against ``xf``."""
        if isinstance(c, str):
            v = self._source_layout(c)
            idx, shape = v.idx, tuple(v.shape)
        else:
            c = np.asarray(c, np.float32)
            idx, shape = self._const(self._bcast(c, xf.layout), DType.FLOAT32, hint=what), c.shape
        if len(shape) > len(xf.shape) or any(d not in (1, e) for d, e in zip(shape[::-1], xf.shape[::-1])):
            raise _Fail(f"{what} of shape {list(shape)} does not broadcast to the input's {list(xf.shape)}")
        return idx

    def _lp_norm(self, node) -> None:
        """LpNormalization: x / ||x||_p along ``axis`` in float32, the norm SUM(ABS x) (p=1) or
        SQRT(SUM(SQUARE x)) (p=2). ONNX adds no epsilon; a norm of 0 (an all-zero slice, or squares
        that underflow) divides by 1 instead, so y is 0 there as in the onnx reference and
        onnxruntime, not NaN: the divisor is MAXIMUM(norm, 1 - norm * 2^150), which is the norm
        itself for any norm above 0 (the smallest, 2^-149, times 2^150 is 2)."""
        a = _attrs(node)
        p = int(a.get("p", 2))
        if p not in (1, 2):
            raise _Fail(f"p={p} (only 1 and 2)")
        xf = self._float(node.input[0])
        if xf.layout is Layout.FLAT_NHWC:
            raise _Fail("a flattened NCHW input (its element order differs from ONNX's)")
        axis = L.ir_axis(int(a.get("axis", -1)), len(xf.shape), xf.layout)
        ir = self.tensors[xf.idx].shape
        stat = tuple(1 if k == axis else d for k, d in enumerate(ir))
        name, ew = node.output[0], A.Elementwise()
        mag = self._step(name, OpKind.ABS if p == 1 else OpKind.SQUARE, [xf.idx], ir)
        norm = self._step(name, OpKind.SUM, [mag], stat, A.Mean((axis,), True))
        if p == 2:
            norm = self._step(name, OpKind.SQRT, [norm], stat)

        def scalar(v):
            return self._const(np.array([v], np.float32), DType.FLOAT32, hint="k")

        big = self._step(name, OpKind.MUL, [norm, scalar(2.0 ** 75)], stat, ew)
        big = self._step(name, OpKind.MUL, [big, scalar(2.0 ** 75)], stat, ew, "mul2")
        zero = self._step(name, OpKind.SUB, [scalar(1.0), big], stat, ew, "if_zero")
        div = self._step(name, OpKind.MAXIMUM, [norm, zero], stat, None, "divisor")
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.DIV, [xf.idx, div], [out.idx], ew)

    def _step(self, name: str, kind: OpKind, ins: list[int], shape, attrs=None, hint: str = "") -> int:
        """One op of a decomposition into a float32 tensor of its own (named after ``name``)."""
        t = self._tensor(f"{name}/{hint or kind.value.lower()}", shape, DType.FLOAT32)
        self._emit(kind, ins, [t], attrs)
        return t

    # ---- ops: data movement --------------------------------------------------------------------

    def _reshape(self, node) -> None:
        x = node.input[0]
        v = self._get(x)
        base = v.src if isinstance(v, DQ) else v
        out_shape = self._reshape_target(node)
        xs = base.shape
        lay, chw = Layout.SAME, None
        if base.layout is Layout.NHWC:
            if len(out_shape) == 2 and out_shape[0] == xs[0] and node.output[0] not in self.graph_outputs:
                if not L.spatial_is_trivial(xs):
                    lay, chw = Layout.FLAT_NHWC, (xs[1], xs[2], xs[3])
            elif not L.spatial_is_trivial(xs):
                return self._reshape_in_onnx_order(node, out_shape)
        elif base.layout is Layout.FLAT_NHWC:
            if len(out_shape) == 4 and tuple(out_shape[1:]) == base.chw:
                lay = Layout.NHWC
            else:
                raise _Fail(f"reshape of a flattened NCHW tensor to {list(out_shape)}")
        if isinstance(v, DQ) and self._mode(node, [x]) is None:
            base = self._materialize(v)
        outq = self._mode(node, [x]) if self._is_int8(v) else None
        if outq is not None and not qdq.same_quant(self.tensors[base.idx].quant, outq.quant):
            outq, base = None, self._float(x)
        out = self._out(node, lay, outq, shape=out_shape, chw=chw)
        self._emit(OpKind.RESHAPE, [base.idx], [out.idx])

    def _reshape_in_onnx_order(self, node, out_shape: tuple[int, ...]) -> None:
        """A reshape of an activation the IR holds as NHWC to anything but [N, C*H*W] (a 5-D
        channel shuffle, Flatten at another axis, a view as [N, C, H*W]): transposed back to
        ONNX's element order, reshaped there, and a rank-4 result transposed to NHWC again."""
        src = self._source_layout(node.input[0])
        dtype = self.tensors[src.idx].dtype
        name = node.output[0]
        if len(out_shape) == 4:
            flat = self._tensor(f"{name}/nchw", out_shape, dtype, self.tensors[src.idx].quant)
            self._emit(OpKind.RESHAPE, [src.idx], [flat])
            nhwc = self._tensor(name, L.ir_shape(out_shape, Layout.NHWC), dtype, self.tensors[src.idx].quant)
            self._emit(OpKind.TRANSPOSE, [flat], [nhwc], A.Transpose(L.NCHW_TO_NHWC))
            self.vals[name] = Val(nhwc, Layout.NHWC, out_shape)
            return
        idx = self._tensor(name, out_shape, dtype, self.tensors[src.idx].quant)
        self._emit(OpKind.RESHAPE, [src.idx], [idx])
        self.vals[name] = Val(idx, Layout.SAME, out_shape)

    def _reshape_target(self, node) -> tuple[int, ...]:
        s = self.shapes.get(node.output[0])
        if s is not None and all(d >= 0 for d in s):
            return s
        xs = self._shape(node.input[0])
        n = int(np.prod(xs))
        if node.op_type == "Flatten":
            ax = _attrs(node).get("axis", 1) % max(len(xs), 1)
            s = (int(np.prod(xs[:ax])), int(np.prod(xs[ax:])))
        elif node.op_type == "Reshape" and node.input[1] in self.consts:
            t = [int(d) for d in np.asarray(self.consts[node.input[1]]).reshape(-1)]
            t = [xs[k] if d == 0 and not _attrs(node).get("allowzero", 0) else d for k, d in enumerate(t)]
            if -1 in t:
                known = int(np.prod([d for d in t if d != -1]))
                t[t.index(-1)] = n // max(known, 1)
            s = tuple(t)
        else:
            raise _Fail("output shape is not static")
        self.shapes[node.output[0]] = tuple(s)
        return tuple(s)

    def _identity(self, node) -> None:
        self.vals[node.output[0]] = self._get(node.input[0])
        for known in (self.shapes, self.elem_types):   # when inference did not reach it (ONNX-ML outputs)
            if node.input[0] in known:
                known.setdefault(node.output[0], known[node.input[0]])

    def _cast(self, node) -> None:
        """Cast / CastLike of an activation to the type it already has (LayerNormalization's
        function body casts to its stash type, float32): an identity; any other is carried."""
        src = self.elem_types.get(node.input[0], 0)
        to = (_attrs(node).get("to") if node.op_type == "Cast" else
              self.elem_types.get(node.input[1], 0) if len(node.input) > 1 else None)
        if src and src == to:
            return self._identity(node)
        if not shape_ops.adapt(logic.cast, _Fail)(self, node):
            self._opaque(node)

    def _transpose(self, node) -> None:
        perm = tuple(_attrs(node).get("perm", ()))
        v = self._get(node.input[0])
        base = v.src if isinstance(v, DQ) else v
        if base.layout is Layout.NHWC and perm == L.NCHW_TO_NHWC:
            new = Val(base.idx, Layout.SAME, L.ir_shape(base.shape, Layout.NHWC))
        elif base.layout is Layout.SAME and len(base.shape) == 4 and perm == L.NHWC_TO_NCHW:
            s = base.shape
            new = Val(base.idx, Layout.NHWC, (s[0], s[3], s[1], s[2]))
        else:
            return shape_ops.adapt(shape_ops.transpose, _Fail)(self, node)
        self.vals[node.output[0]] = DQ(new) if isinstance(v, DQ) else new

    def _concat(self, node) -> None:
        """Concatenation along the ONNX axis mapped to the IR's layout. Constant inputs become
        float32 constant tensors in the activations' layout; activations in different layouts
        (NHWC with a rank-4 one in ONNX's order) are concatenated in ONNX's order, in float32."""
        names = [n for n in node.input if n]
        acts = [n for n in names if n not in self.consts]
        bases, lay, mixed = self._act_layout(acts)
        if any(b.layout is Layout.FLAT_NHWC for b in bases):
            raise _Fail("a flattened NCHW input (its element order differs from ONNX's)")
        rank = len(bases[0].shape)
        attrs = A.Concatenation(L.ir_axis(int(_attrs(node)["axis"]), rank, lay))
        outq = self._mode(node, names) if len(acts) == len(names) and not mixed else None
        if outq is not None and qdq.int8_ok(OpKind.CONCATENATION, [self.tensors[b.idx].quant for b in bases],
                                            outq.quant):
            ins = [b.idx for b in bases]
        else:
            act = self._float_source if mixed else self._float
            outq, ins = None, [self._concat_const(n, lay) if n in self.consts else act(n).idx for n in names]
        out = self._out(node, lay, outq)
        self._emit(OpKind.CONCATENATION, ins, [out.idx], attrs)

    def _concat_const(self, name: str, lay: Layout) -> int:
        """A constant Concat input as a float32 IR tensor in layout ``lay`` (the activations are float32,
        so ONNX's one input type makes it a float)."""
        c = np.asarray(self._const_f(name))
        if c.dtype.kind != "f":
            raise _Fail(f"constant input '{_clean(name)}' of type {c.dtype}")
        c = c.astype(np.float32)
        return self._const(L.nchw_to_nhwc(c) if lay is Layout.NHWC else c, DType.FLOAT32, hint="k")

    def _pad(self, node) -> None:
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("constant", "reflect"):
            raise _Fail(f"mode '{mode}' (only 'constant' and 'reflect')")
        if self.opset < 11:
            pads, value = list(a["pads"]), float(a.get("value", 0.0))
        else:
            if self._opt(node, 3):
                raise _Fail("the axes input")
            p, c = node.input[1], self._opt(node, 2)
            if p not in self.consts or (c and c not in self.consts):
                raise _Fail("pads and constant_value must be constant")
            pads = [int(d) for d in np.asarray(self.consts[p]).reshape(-1)]
            value = float(self._const_f(c).reshape(-1)[0]) if c else 0.0
        if any(d < 0 for d in pads):
            raise _Fail(f"negative pads {pads}")
        x = node.input[0]
        v = self._get(x)
        base = v.src if isinstance(v, DQ) else v
        rank = len(base.shape)
        if base.layout is Layout.FLAT_NHWC:
            raise _Fail("padding a flattened NCHW tensor")
        pairs = [(pads[d], pads[d + rank]) for d in range(rank)]
        if base.layout is Layout.NHWC:
            pairs = [pairs[d] for d in L.NCHW_TO_NHWC]
        if mode == "reflect":    # MIRROR_PAD: each side at most the dimension less one, as numpy's reflect once
            dims = self.tensors[base.idx].shape
            if any(max(lo, hi) >= d for d, (lo, hi) in zip(dims, pairs)):
                raise _Fail(f"reflect pads {pads} of a {list(base.shape)} input (at most each dimension less one)")
            outq = self._mode(node, [x])
            same = outq is not None and qdq.same_quant(self.tensors[base.idx].quant, outq.quant)
            out = self._out(node, base.layout, outq if same else None)
            self._emit(OpKind.MIRROR_PAD, [base.idx if same else self._float(x).idx], [out.idx],
                       A.Pad(tuple(pairs), mode="reflect"))
            return
        attrs = A.Pad(tuple(pairs), value)
        outq = self._mode(node, [x])
        if (outq is not None and value == 0.0
                and qdq.int8_ok(OpKind.PAD, [self.tensors[base.idx].quant], outq.quant)):
            out = self._out(node, base.layout, outq)
            self._emit(OpKind.PAD, [base.idx], [out.idx], attrs)
            return
        out = self._out(node, base.layout, None)
        self._emit(OpKind.PAD, [self._float(x).idx], [out.idx], attrs)

    def _softmax(self, node, kind: OpKind = OpKind.SOFTMAX) -> None:
        """Softmax, or LogSoftmax (float32: cgen's LOG_SOFTMAX), over the last axis in the IR's layout."""
        xs = self._shape(node.input[0])
        v = self._get(node.input[0])
        base = v.src if isinstance(v, DQ) else v
        rank = len(xs)
        axis = int(_attrs(node).get("axis", -1 if self.opset >= 13 else 1)) % rank
        if base.layout is Layout.FLAT_NHWC:
            raise _Fail("softmax over a flattened NCHW tensor")
        ok = L.ir_axis(axis, rank, base.layout) == rank - 1
        if self.opset < 13:   # softmax over the flattened dims [axis:]: last-axis only if the rest are 1
            ok = all(d == 1 for d in xs[axis:-1]) and (base.layout is Layout.SAME or axis == 1 and
                                                        L.spatial_is_trivial(xs))
        if not ok:
            raise _Fail(f"{node.op_type} over axis {axis} of {list(xs)} (only the channel/last axis)")
        if kind is OpKind.LOG_SOFTMAX:
            return self._float_unary(node, kind)
        self._unary(node, OpKind.SOFTMAX, A.Softmax(1.0))

    def _batch_norm(self, node) -> None:
        """BatchNormalization in inference form (one output, constant statistics): y = x k + c per
        channel (axis 1) with k = scale / sqrt(var + eps) and c = bias - mean k, a float32 MUL and
        ADD. (Exporters fold it into a preceding Conv; it stays after Linear, or on inputs.)"""
        a = _attrs(node)
        if len([o for o in node.output if o]) != 1 or int(a.get("training_mode", 0)):
            raise _Fail("training mode (running statistics as outputs)")
        names = list(node.input[1:5])
        if len(names) != 4 or not all(n and n in self.consts for n in names):
            raise _Fail("scale, bias, mean and variance must be constant")
        xs = self._shape(node.input[0])
        if len(xs) < 2:
            raise _Fail(f"a rank-{len(xs)} input (needs N and C)")
        scale, bias, mean, var = (np.asarray(self._const_f(n), np.float64) for n in names)
        for n, v in zip(("scale", "bias", "mean", "var"), (scale, bias, mean, var)):
            if v.shape != (xs[1],):
                raise _Fail(f"{n} has shape {list(v.shape)}, not [C] = [{xs[1]}]")
        eps = float(a.get("epsilon", 1e-5))
        if not np.all(var + eps > 0):
            raise _Fail("a variance + epsilon that is not positive")
        k = scale / np.sqrt(var + eps)
        c = bias - mean * k
        xf = self._float(node.input[0])
        if xf.layout is Layout.FLAT_NHWC:
            raise _Fail("a flattened NCHW input (its element order differs from ONNX's)")
        per_channel = (-1,) + (1,) * (len(xs) - 2)
        kc, cc = (self._const(self._bcast(v.reshape(per_channel).astype(np.float32), xf.layout), DType.FLOAT32,
                              hint=h) for v, h in ((k, "bn_scale"), (c, "bn_shift")))
        t = self._tensor(f"{node.output[0]}/scaled", self.tensors[xf.idx].shape, DType.FLOAT32)
        self._emit(OpKind.MUL, [xf.idx, kc], [t], A.Elementwise())
        out = self._out(node, xf.layout, None, chw=xf.chw)
        self._emit(OpKind.ADD, [t, cc], [out.idx], A.Elementwise())

    # ---- ops: QLinear form ---------------------------------------------------------------------

    def _qparams(self, node, k: int) -> Quant:
        s, z = node.input[k], self._opt(node, k + 1)
        if s not in self.consts or (z and z not in self.consts):
            raise _Fail("scales and zero points must be constant")
        sc, zc = np.asarray(self.consts[s]), (np.asarray(self.consts[z]) if z else None)
        if sc.size != 1:
            raise _Fail("per-channel activation quantization")
        if not qdq.act_dtype_ok(zc):
            raise _Fail(f"{zc.dtype} activations (only int8; uint8 is shifted to int8)")
        return qdq.act_quant(sc, zc)

    def _qweights(self, node, k: int, axis: int) -> QConst:
        w, s, z = node.input[k], node.input[k + 1], self._opt(node, k + 2)
        if any(n not in self.consts for n in (w, s) + ((z,) if z else ())):
            raise _Fail("weights, scales and zero points must be constant")
        return qdq.make_qconst(np.asarray(self.consts[w]), np.asarray(self.consts[s]),
                               np.asarray(self.consts[z]) if z else None, axis)

    def _qin(self, node, k: int) -> Val:
        v = self._get(node.input[k])
        if isinstance(v, DQ) or self.tensors[v.idx].dtype is not DType.INT8:
            raise _Fail(f"input '{node.input[k]}' is not an int8 tensor")
        self._bind_quant(v, self._qparams(node, k + 1))
        return v

    def _qlinear_conv(self, node) -> None:
        a = _attrs(node)
        xv = self._qin(node, 0)
        wq = self._qweights(node, 3, 0)
        yq = self._qparams(node, 6)
        xs = self._shape(node.input[0])
        group = int(a.get("group", 1))
        if group == 1:
            kind = OpKind.CONV_2D
        elif group == xs[1] and wq.q.shape[1] == 1:
            kind = OpKind.DEPTHWISE_CONV_2D
        else:
            raise _Fail(f"grouped convolution with group={group}")
        b = self._opt(node, 8)
        attrs = self._conv_attrs(a, xs[2:], wq.q.shape[2:], kind, wq.q.shape[0] // xs[1])
        bias = self._raw_bias(b, xv, wq) if b else None
        self._conv_s8(kind, attrs, xv, wq, bias, OutQ(yq, []), node)

    def _raw_bias(self, name: str, xv: Val, wq: QConst) -> QConst:
        """A QLinear op's int32 bias: already in units of x_scale * w_scale."""
        q = np.asarray(self.consts[name])
        if q.dtype != np.int32:
            raise _Fail(f"{q.dtype} bias (expected int32)")
        scale = (np.float32(self.tensors[xv.idx].quant.s) * wq.scale).astype(np.float32)
        return QConst(q=q.reshape(-1), scale=scale, zero_point=np.zeros(scale.size, np.int32), axis=0)

    def _qlinear_matmul(self, node) -> None:
        xv = self._qin(node, 0)
        if node.input[3] not in self.consts:
            raise _Fail("the second operand must be constant weights")
        trans_b = bool(_attrs(node).get("transB", 0)) if node.op_type == "QGemm" else False
        wq = self._qweights(node, 3, 0 if trans_b else 1)
        if node.op_type == "QGemm":
            a = _attrs(node)
            if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0:
                raise _Fail("transA=1 or alpha != 1")
            bias, yk = self._opt(node, 6), 7
            if len(node.input) <= 7 or not node.input[7]:
                raise _Fail("float output (no y_scale)")
        else:
            bias, yk = None, 6
        yq = self._qparams(node, yk)
        if wq.q.dtype != np.int8 or wq.zero_point.any():
            raise _Fail("uint8 or asymmetric weights. " + qdq.UINT8_HINT)
        wt = wq.q if trans_b else wq.q.T
        if xv.layout is Layout.FLAT_NHWC:
            wt = wt[:, L.flat_columns(xv.chw)]
        elif xv.layout is Layout.NHWC:
            raise _Fail("rank-4 input: flatten it to 2-D first")
        wquant = Quant(tuple(float(s) for s in wq.scale), (0,) * wq.scale.size, 0)
        ins = [xv.idx, self._const(wt, DType.INT8, wquant, "w")]
        if bias:
            bq = qdq.bias_s32(self._raw_bias(bias, xv, wq), self.tensors[xv.idx].quant.s, wq.scale, wt.shape[0])
            ins.append(self._const(bq, DType.INT32, None, "b"))
        out = self._out(node, Layout.SAME, OutQ(yq, []))
        self._emit(OpKind.FULLY_CONNECTED, ins, [out.idx],
                   A.FullyConnected(keep_num_dims=len(self._shape(node.input[0])) > 2))

    def _qlinear_binary(self, node) -> None:
        kind = OpKind.ADD if node.op_type == "QLinearAdd" else OpKind.MUL
        ins, lays = [], set()
        for k in (0, 3):
            n = node.input[k]
            if n in self.consts:
                q = self._qparams(node, k + 1)
                c = np.asarray(self.consts[n])
                if c.dtype == np.uint8:
                    c = (c.astype(np.int16) - 128).astype(np.int8)
                ins.append(("c", c, q))
            else:
                v = self._qin(node, k)
                lays.add(v.layout)
                ins.append(("v", v, None))
        if len(lays) != 1:
            raise _Fail("operands in different layouts")
        lay = lays.pop()
        yq = self._qparams(node, 6)
        idx = [self._const(self._bcast(x, lay), DType.INT8, q, "k") if t == "c" else x.idx for t, x, q in ins]
        chw = next(x.chw for t, x, _ in ins if t == "v")
        out = self._out(node, lay, OutQ(yq, []), chw=chw)
        self._emit(kind, idx, [out.idx], A.Elementwise())

    def _qlinear_gap(self, node) -> None:
        if _attrs(node).get("channels_last", 0):
            raise _Fail("channels_last=1")
        xv = self._qin(node, 0)
        yq = self._qparams(node, 3)
        xs = self._shape(node.input[0])
        kind = OpKind.AVERAGE_POOL_2D
        out = self._out(node, Layout.NHWC, OutQ(yq, []))
        if qdq.same_quant(self.tensors[xv.idx].quant, yq):
            self._emit(kind, [xv.idx], [out.idx], A.Pool2D(xs[2], xs[3]))
        else:
            self._emit(OpKind.MEAN, [xv.idx], [out.idx], A.Mean((1, 2), True))

    def _qlinear_unary(self, node) -> None:
        """QLinearSoftmax / QLinearSigmoid (com.microsoft): int8 if TFLite's kernel takes the
        output quantization, else DEQUANTIZE -> float op -> QUANTIZE."""
        kind = OpKind.SOFTMAX if node.op_type == "QLinearSoftmax" else OpKind.LOGISTIC
        xs = self._shape(node.input[0])
        attrs = None
        if kind is OpKind.SOFTMAX:
            axis = int(_attrs(node).get("axis", -1)) % len(xs)
            if axis != len(xs) - 1 or self._get(node.input[0]).layout is not Layout.SAME:
                raise _Fail(f"softmax over axis {axis} of {list(xs)} (only the last axis)")
            attrs = A.Softmax(1.0)
        xv = self._qin(node, 0)
        yq = self._qparams(node, 3)
        if qdq.int8_ok(kind, [self.tensors[xv.idx].quant], yq):
            out = self._out(node, xv.layout, OutQ(yq, []), chw=xv.chw)
            self._emit(kind, [xv.idx], [out.idx], attrs)
            return
        xf = self._materialize(DQ(xv))
        t = self._tensor(node.output[0] + "/float", self.tensors[xv.idx].shape, DType.FLOAT32)
        self._emit(kind, [xf.idx], [t], attrs)
        out = self._out(node, xv.layout, OutQ(yq, []), chw=xv.chw)
        self._emit(OpKind.QUANTIZE, [t], [out.idx])

    def _quantize(self, node) -> None:
        zp = self._opt(node, 2)
        if node.input[1] not in self.consts or (zp and zp not in self.consts):
            raise _Fail("scale and zero point must be constant")
        z = np.asarray(self.consts[zp]) if zp else None
        if not qdq.act_dtype_ok(z):
            raise _Fail(f"{z.dtype} output (only int8; uint8 is shifted to int8)")
        if np.asarray(self.consts[node.input[1]]).size != 1:
            raise _Fail("per-channel quantization of an activation")
        q = qdq.act_quant(self.consts[node.input[1]], z)
        x = self._float(node.input[0])
        out = self._out(node, x.layout, OutQ(q, []), shape=x.shape, chw=x.chw)
        self._emit(OpKind.QUANTIZE, [x.idx], [out.idx])

    def _dequantize(self, node) -> None:
        v = self._get(node.input[0])
        if isinstance(v, DQ) or self.tensors[v.idx].dtype is not DType.INT8:
            raise _Fail("input is not an int8 activation")
        self._bind_quant(v, self._qparams(node, 1))
        self.vals[node.output[0]] = DQ(v)

    # ---- fusion --------------------------------------------------------------------------------

    def _fuse_activations(self) -> None:
        producer = {o: op for op in self.ops for o in op.outputs}
        uses: dict[int, int] = {}
        for op in self.ops:
            for t in op.inputs:
                uses[t] = uses.get(t, 0) + 1
        outs = {v.idx for v in self.vals.values() if isinstance(v, Val)}
        graph_outs = {self.vals[o.name].idx for o in self.g.output
                      if isinstance(self.vals.get(o.name), Val)}
        del outs
        keep = []
        for op in self.ops:
            if op.kind in (OpKind.RELU, OpKind.RELU6) and isinstance(op.attrs, Activation):
                act, src = op.attrs, op.inputs[0]
                p = producer.get(src)
                if (p is not None and p.kind in _FUSABLE and p.attrs.activation is Activation.NONE
                        and uses.get(src) == 1 and src not in graph_outs
                        and self.tensors[src].dtype is self.tensors[op.outputs[0]].dtype):
                    p.attrs = replace(p.attrs, activation=act)
                    p.outputs = [op.outputs[0]]
                    producer[op.outputs[0]] = p
                    continue
                if act is Activation.RELU_N1_TO_1:
                    raise self._error("Clip(-1, 1) that does not follow a Conv, Gemm, MatMul, Add or Mul",
                                      self.op_node[id(op)])
                op.attrs = None
            keep.append(op)
        for k, op in enumerate(keep):
            op.index = k
        self.ops = keep


def _np_cast(f, a, _):
    from onnx import helper
    return np.asarray(f[0]).astype(helper.tensor_dtype_to_np_dtype(a["to"]))


def _np_reshape(f, a, _):
    x, s = np.asarray(f[0]), [int(d) for d in np.asarray(f[1]).reshape(-1)]
    s = [x.shape[k] if d == 0 and not a.get("allowzero", 0) else d for k, d in enumerate(s)]
    return x.reshape(s)


def _np_unsqueeze(f, a, opset):
    axes = a.get("axes") if opset < 13 else [int(v) for v in np.asarray(f[1]).reshape(-1)]
    x = np.asarray(f[0])
    for ax in sorted(int(d) % (x.ndim + len(axes)) for d in axes):
        x = np.expand_dims(x, ax)
    return x


def _np_squeeze(f, a, opset):
    axes = a.get("axes") if opset < 13 else (
        [int(v) for v in np.asarray(f[1]).reshape(-1)] if len(f) > 1 and f[1] is not None else None)
    x = np.asarray(f[0])
    return np.squeeze(x, axis=tuple(axes) if axes is not None else None)


def _np_constant_of_shape(f, a, _):
    """ConstantOfShape of a constant shape: the tensor it fills (float32 0 unless ``value``)."""
    from onnx import numpy_helper
    shape = tuple(int(d) for d in np.asarray(f[0]).reshape(-1))
    if any(d < 0 for d in shape) or math.prod(shape) > _FOLD_LIMIT:
        raise _Fail(f"ConstantOfShape of shape {list(shape)}")
    value = numpy_helper.to_array(a["value"]).reshape(-1) if "value" in a else np.zeros(1, np.float32)
    return np.full(shape, value[0] if value.size else 0, dtype=value.dtype)


_CAST_TARGETS = (1, 2, 3, 5, 6, 7, 10, 11)   # TensorProto FLOAT, UINT8, INT8, INT16, INT32, INT64, FLOAT16, DOUBLE
_FOLD_LIMIT = 1 << 24     # elements a folded constant may have (the validator refuses far less)


def _np_slice(f, a, opset):
    x = np.asarray(f[0])
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = np.asarray(f[1]).reshape(-1), np.asarray(f[2]).reshape(-1)
        axes = np.asarray(f[3]).reshape(-1) if len(f) > 3 and f[3] is not None else None
        steps = np.asarray(f[4]).reshape(-1) if len(f) > 4 and f[4] is not None else None
    axes = range(len(starts)) if axes is None else axes
    sl = [slice(None)] * x.ndim
    for k, ax in enumerate(axes):
        sl[int(ax)] = slice(int(starts[k]), int(ends[k]), int(steps[k]) if steps is not None else 1)
    return x[tuple(sl)]


_FOLDABLE = {
    "Identity": lambda f, a, _: np.asarray(f[0]),
    "ConstantOfShape": _np_constant_of_shape,
    "Cast": _np_cast,
    "Reshape": _np_reshape,
    "Flatten": lambda f, a, _: np.asarray(f[0]).reshape(
        int(np.prod(np.asarray(f[0]).shape[:a.get("axis", 1)])), -1),
    "Transpose": lambda f, a, _: np.transpose(np.asarray(f[0]), a.get("perm")),
    "Unsqueeze": _np_unsqueeze,
    "Squeeze": _np_squeeze,
    "Concat": lambda f, a, _: np.concatenate([np.asarray(x) for x in f if x is not None], axis=a["axis"]),
    "Gather": lambda f, a, _: np.take(np.asarray(f[0]), np.asarray(f[1]), axis=a.get("axis", 0)),
    "Slice": _np_slice,
    "Add": lambda f, a, _: np.asarray(f[0] + f[1]),
    "Sub": lambda f, a, _: np.asarray(f[0] - f[1]),
    "Mul": lambda f, a, _: np.asarray(f[0] * f[1]),
    "Div": lambda f, a, _: np.asarray(f[0] / f[1]) if np.asarray(f[0]).dtype.kind == "f"
    else np.asarray(f[0] // f[1]),
    "Sqrt": lambda f, a, _: np.sqrt(f[0]),
    "DequantizeLinear": None,   # handled in _fold
    "QuantizeLinear": None,
}

_HANDLERS = {
    "Conv": _Converter._conv,
    "ConvTranspose": _Converter._conv_transpose,
    "LayerNormalization": _Converter._layer_norm,
    "RMSNormalization": _Converter._rms_norm,
    "LpNormalization": _Converter._lp_norm,
    "InstanceNormalization": _Converter._instance_norm,
    "Gemm": _Converter._gemm,
    "LSTM": _Converter._lstm,
    "MatMul": _Converter._gemm,
    "Add": _Converter._binary,
    "Sub": _Converter._binary,
    "Mul": _Converter._binary,
    "Div": _Converter._binary,
    "Relu": _Converter._relu,
    "Clip": _Converter._clip,
    "Sigmoid": lambda self, n: self._unary(n, OpKind.LOGISTIC),
    # element-wise functions and binary ops with float32 kernels (cgen/lower_ew.py); more below
    "LeakyRelu": lambda self, n: self._float_unary(n, OpKind.LEAKY_RELU,
                                                   A.LeakyRelu(float(_attrs(n).get("alpha", 0.01)))),
    "Elu": _Converter._elu,
    "Gelu": _Converter._gelu,
    "Pow": _Converter._pow,
    "Reciprocal": _Converter._reciprocal,
    "Tanh": lambda self, n: self._unary(n, OpKind.TANH),
    "MaxPool": _Converter._pool,
    "AveragePool": _Converter._pool,
    "LpPool": _Converter._pool,
    "GlobalAveragePool": _Converter._pool,
    "GlobalMaxPool": _Converter._pool,
    "ReduceMean": _Converter._reduce_mean,
    "Reshape": _Converter._reshape,
    "Flatten": _Converter._reshape,
    "Squeeze": _Converter._reshape,
    "Unsqueeze": _Converter._reshape,
    "Identity": _Converter._identity,
    "Cast": _Converter._cast,
    "CastLike": _Converter._cast,
    "Dropout": _Converter._identity,
    "Transpose": _Converter._transpose,
    "Concat": _Converter._concat,
    "Pad": _Converter._pad,
    "Softmax": _Converter._softmax,
    "LogSoftmax": lambda self, n: self._softmax(n, OpKind.LOG_SOFTMAX),
    "BatchNormalization": _Converter._batch_norm,
    "QuantizeLinear": _Converter._quantize,
    "DequantizeLinear": _Converter._dequantize,
    "QLinearConv": _Converter._qlinear_conv,
    "QLinearMatMul": _Converter._qlinear_matmul,
    "QGemm": _Converter._qlinear_matmul,
    "QLinearAdd": _Converter._qlinear_binary,
    "QLinearMul": _Converter._qlinear_binary,
    "QLinearGlobalAveragePool": _Converter._qlinear_gap,
    "QLinearSoftmax": _Converter._qlinear_unary,
    "QLinearSigmoid": _Converter._qlinear_unary,
}
_HANDLERS.update({op: shape_ops.adapt(fn, _Fail) for op, fn in shape_ops.HANDLERS.items()})
_HANDLERS["Attention"] = shape_ops.adapt(attention.attention, _Fail)
_HANDLERS.update({op: shape_ops.adapt(fn, _Fail) for op, fn in gru.HANDLERS.items()})
_HANDLERS.update({op: shape_ops.adapt(fn, _Fail) for op, fn in logic.HANDLERS.items()})
_HANDLERS.update({op: (lambda self, n, k=kind: self._float_unary(n, k)) for op, kind in (
    ("Sqrt", OpKind.SQRT), ("Exp", OpKind.EXP), ("Log", OpKind.LOG), ("Neg", OpKind.NEG), ("Abs", OpKind.ABS),
    ("HardSwish", OpKind.HARD_SWISH))})
_HANDLERS.update({op: _Converter._elementwise_opaque for op in (   # one float function of each element
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
    "Acosh", "Atanh", "Erf", "Softplus", "Softsign", "Selu", "ThresholdedRelu", "HardSigmoid", "Celu", "Mish",
    "Swish")})
_HANDLERS.update({op: _Converter._variadic for op in ("Sum", "Mean", "Max", "Min")})
_HANDLERS["PRelu"] = lambda self, n: self._float_binary(n, OpKind.PRELU)

# what the reader converts (the rest is carried as opaque ops, or folded when constant)
SUPPORTED_ONNX_OPS: tuple[str, ...] = tuple(sorted({*_HANDLERS, "Constant", "Shape"}))
