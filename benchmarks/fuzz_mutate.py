"""Seed models and seeded mutators for the model-import fuzzer (``benchmarks/fuzz.py``).

Three mutators, each a pure function of (seed bytes, ``random.Random``):

- :func:`mutate_tflite`: edits the flatbuffer through the TFLite object API
  (``ModelT``: shapes, dtypes, buffers, quantization, builtin options, op codes,
  operator and graph input/output lists, names) and packs it again;
- :func:`mutate_onnx`: edits the ONNX protobuf (attributes, dims, initializer
  data, graph inputs/outputs, node inputs, op types and domains, opset);
- :func:`mutate_bytes`: bit flips, byte stores, truncation, chunk deletion and
  splices with another seed of the same format.

Seeds (:func:`build_seeds`): small int8 and float models from
``tests/modelgen.py``, tiny float ONNX models built here, and (``mlperf=True``)
the MLPerf Tiny int8 models from ``../shared``.
"""

from __future__ import annotations

import copy
import importlib.util
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO.parent / "shared" / "models" / "mlperf_tiny"

# modelgen specs used as seeds: int8 unless named in FLOAT_SEEDS.
TFLITE_SEEDS = ("conv_same_s2_relu6", "dwconv_same_dm2", "fc_relu6", "avgpool_same_s2", "maxpool_valid",
                "add_broadcast_relu", "mul_broadcast", "softmax", "pad", "concat_channels", "mean_global",
                "logistic", "reshape", "conv_pool_fc_softmax", "branches_concat", "float_io_conv")
FLOAT_SEEDS = ("conv_valid", "fc", "tanh")
MLPERF_SEEDS = ("kws_ref_model.tflite", "ad01_int8.tflite", "pretrainedResnet_quant.tflite")

# Values that break assumptions: zero, negative, off-by-one, type limits, huge.
INTS = (0, -1, -2, 1, 2, 3, 7, 127, 128, 255, 256, 1000, 65535, 65536, 1 << 20, (1 << 31) - 1, -(1 << 31))
FLOATS = (float("nan"), float("inf"), float("-inf"), 0.0, -0.0, -1.0, 1e-45, 1e-38, 1e38, 3.4e38, 1.0, 0.5)
HOSTILE = (b"", b"*/ int evil; /*", b'"\\n#include <x>', b"a\nb", b"\xff\xfe\x80", b"x" * 5000,
           "\u00e9\u4e2d".encode(), b"\x00hidden", b"%s%n", b"con", b"0abc", b"int")


@dataclass(frozen=True)
class Seed:
    name: str
    path: Path
    kind: str          # "tflite" or "onnx"
    verify: bool = True


def _schema():
    """TFLite's generated flatbuffer module (object API), loaded without importing TensorFlow."""
    import tflite  # noqa: F401  (same flatbuffers runtime the reader uses)
    spec = importlib.util.find_spec("tensorflow")
    path = Path(spec.origin).parent / "lite" / "python" / "schema_py_generated.py"
    mod_spec = importlib.util.spec_from_file_location("tfl_schema_object_api", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


_S = None


def schema():
    global _S
    if _S is None:
        _S = _schema()
    return _S


# ---- seeds ---------------------------------------------------------------------------------------

def build_seeds(root: Path, *, mlperf: bool = False, kinds=("tflite", "onnx")) -> list[Seed]:
    """Write (or reuse) the seed models under ``root``; returns them in a fixed order."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    seeds: list[Seed] = []
    if "tflite" in kinds:
        import sys
        sys.path.insert(0, str(REPO / "tests"))
        import modelgen
        cache = modelgen.ModelCache(root)
        seeds += [Seed(f"{s}_int8", cache.path(s, "int8"), "tflite") for s in TFLITE_SEEDS]
        seeds += [Seed(f"{s}_float32", cache.path(s, "float32"), "tflite") for s in FLOAT_SEEDS]
        if mlperf:
            seeds += [Seed(Path(f).stem, MLPERF / f, "tflite") for f in MLPERF_SEEDS if (MLPERF / f).is_file()]
    if "onnx" in kinds:
        for name, build in ONNX_SEEDS.items():
            p = root / f"{name}.onnx"
            if not p.exists():
                p.write_bytes(build())
            seeds.append(Seed(name, p, "onnx"))
    return seeds


def committed_seeds(root: Path, kinds=("tflite", "onnx")) -> list[Seed]:
    """Every model file under ``root`` (a committed seed set, e.g. ``seeds_ops``), in name order."""
    return [Seed(p.stem, p, p.suffix[1:]) for p in sorted(Path(root).iterdir()) if p.suffix[1:] in kinds]


def _onnx_model(nodes, inits, in_shape, out_shape, name):
    import onnx
    from onnx import TensorProto as TP, helper as h
    g = h.make_graph(nodes, name, [h.make_tensor_value_info("x", TP.FLOAT, in_shape)],
                     [h.make_tensor_value_info("y", TP.FLOAT, out_shape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _w(rng, name, *shape):
    from onnx import numpy_helper as nh
    return nh.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def _onnx_convnet() -> bytes:
    from onnx import helper as h
    rng = np.random.default_rng(0)
    inits = [_w(rng, "w1", 4, 3, 3, 3), _w(rng, "b1", 4), _w(rng, "w2", 5, 16), _w(rng, "b2", 5)]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w2", "b2"], ["g"], name="gemm", transB=1),
             h.make_node("Softmax", ["g"], ["y"], name="softmax", axis=-1)]
    return _onnx_model(nodes, inits, [1, 3, 8, 8], [1, 5], "convnet")


def _onnx_dwnet() -> bytes:
    from onnx import helper as h
    rng = np.random.default_rng(1)
    inits = [_w(rng, "w", 6, 1, 3, 3), _w(rng, "b", 6), _w(rng, "m", 6, 1, 1)]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="dw", group=3, auto_pad="SAME_UPPER"),
             h.make_node("Mul", ["c", "m"], ["k"], name="mul"),
             h.make_node("AveragePool", ["k"], ["a"], name="avg", kernel_shape=[3, 3], strides=[1, 1]),
             h.make_node("Sigmoid", ["a"], ["y"], name="sig")]
    return _onnx_model(nodes, inits, [1, 3, 5, 5], [1, 6, 3, 3], "dwnet")


def _onnx_mlp() -> bytes:
    from onnx import helper as h
    rng = np.random.default_rng(2)
    inits = [_w(rng, "w1", 12, 8), _w(rng, "b1", 8), _w(rng, "w2", 8, 4)]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m"], name="mm1"),
             h.make_node("Add", ["m", "b1"], ["a"], name="add"),
             h.make_node("Tanh", ["a"], ["t"], name="tanh"),
             h.make_node("MatMul", ["t", "w2"], ["y"], name="mm2")]
    return _onnx_model(nodes, inits, [1, 12], [1, 4], "mlp")


ONNX_SEEDS = {"onnx_convnet": _onnx_convnet, "onnx_dwnet": _onnx_dwnet, "onnx_mlp": _onnx_mlp}


# ---- TFLite: object API --------------------------------------------------------------------------

def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))] if len(seq) else None


def _int_like(rng: random.Random, old=None) -> int:
    if old is not None and rng.random() < 0.3:
        return int(old) + rng.choice((-1, 1))
    return rng.choice(INTS)


def _index(rng: random.Random, n: int) -> int:
    """A tensor/buffer index: usually valid, sometimes -1, n, or huge."""
    return rng.randrange(n) if n and rng.random() < 0.6 else rng.choice((-1, n, n + 1, 1 << 20, -(1 << 31)))


def _t_shape(m, sg, rng):
    t = _pick(rng, sg.tensors)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    r = rng.random()
    if r < 0.6 and shape:
        shape[rng.randrange(len(shape))] = _int_like(rng)
    elif r < 0.8:
        shape.insert(rng.randrange(len(shape) + 1), rng.choice((1, 2, 0)))
    elif shape:
        del shape[rng.randrange(len(shape))]
    t.shape = shape
    return f"shape {shape}"


def _t_dtype(m, sg, rng):
    t = _pick(rng, sg.tensors)
    t.type = rng.randrange(18)
    return f"dtype {t.type}"


def _t_buffer(m, sg, rng):
    t = _pick(rng, sg.tensors)
    t.buffer = _index(rng, len(m.buffers))
    return f"buffer index {t.buffer}"


def _buf_data(m, sg, rng):
    bufs = [b for b in m.buffers if b.data is not None and len(b.data)] or m.buffers
    b = _pick(rng, bufs)
    data = np.asarray(b.data if b.data is not None else [], dtype=np.uint8).copy()
    r = rng.random()
    if r < 0.25 and len(data):
        data = data[:rng.randrange(len(data))]
    elif r < 0.4:
        data = np.concatenate([data, np.frombuffer(rng.randbytes(rng.randrange(1, 64)), np.uint8)])
    elif r < 0.55:
        b.data = None
        return "buffer data removed"
    elif len(data) >= 4:     # a special float32 at an aligned position
        k = rng.randrange(len(data) // 4) * 4
        data[k:k + 4] = np.frombuffer(struct.pack("<f", rng.choice(FLOATS)), np.uint8)
    elif len(data):
        data[rng.randrange(len(data))] = rng.randrange(256)
    b.data = data
    return f"buffer data {len(data)} B"


def _quant(m, sg, rng):
    t = _pick(rng, [t for t in sg.tensors if t.quantization is not None] or sg.tensors)
    q = t.quantization or schema().QuantizationParametersT()
    t.quantization = q
    r = rng.random()
    if r < 0.45:
        scale = [float(x) for x in (q.scale if q.scale is not None else [1.0])]
        scale[rng.randrange(len(scale))] = rng.choice(FLOATS)
        q.scale = scale
        return f"scale {scale[:4]}"
    if r < 0.75:
        zp = [int(x) for x in (q.zeroPoint if q.zeroPoint is not None else [0])]
        zp[rng.randrange(len(zp))] = rng.choice((128, -129, 255, 256, -1, 1 << 40, 127, -128))
        q.zeroPoint = zp
        return f"zero point {zp[:4]}"
    if r < 0.85:
        q.quantizedDimension = rng.choice((-1, 1, 3, 4, 100))
        return f"quantized dim {q.quantizedDimension}"
    if r < 0.93:
        n = rng.choice((0, 2, 3))
        q.scale = [0.1] * n if n else None
        q.zeroPoint = [0] * n if n else None
        return f"quant length {n}"
    t.quantization = None
    return "quantization removed"


def _options(m, sg, rng):
    op = _pick(rng, [o for o in sg.operators if o.builtinOptions is not None] or sg.operators)
    if op.builtinOptions is None or rng.random() < 0.1:
        op.builtinOptions, op.builtinOptionsType = None, rng.choice((0, op.builtinOptionsType, 1, 9))
        return f"options removed (type {op.builtinOptionsType})"
    fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, bool, float, np.ndarray, list))]
    if not fields:
        return "options untouched"
    k = rng.choice(fields)
    v = getattr(op.builtinOptions, k)
    if isinstance(v, bool):
        new = not v
    elif isinstance(v, float):
        new = rng.choice(FLOATS)
    elif isinstance(v, (np.ndarray, list)):
        new = [_int_like(rng) for _ in range(rng.randrange(0, 6))]
    elif "activation" in k.lower():
        new = rng.randrange(8)
    else:
        new = _int_like(rng, v)
    setattr(op.builtinOptions, k, new)
    return f"option {k}={new}"


def _opcode(m, sg, rng):
    r = rng.random()
    if r < 0.5:
        oc = _pick(rng, m.operatorCodes)
        code = rng.randrange(210)
        oc.builtinCode, oc.deprecatedBuiltinCode = code, min(code, 127)
        return f"opcode {code}"
    if r < 0.7:
        oc = _pick(rng, m.operatorCodes)
        oc.version = rng.choice((0, -1, 99))
        return f"opcode version {oc.version}"
    op = _pick(rng, sg.operators)
    op.opcodeIndex = _index(rng, len(m.operatorCodes))
    return f"opcode index {op.opcodeIndex}"


def _op_io(m, sg, rng):
    op = _pick(rng, sg.operators)
    which = rng.choice(("inputs", "outputs"))
    lst = [int(i) for i in (getattr(op, which) if getattr(op, which) is not None else [])]
    r = rng.random()
    if r < 0.4 and lst:
        lst[rng.randrange(len(lst))] = _index(rng, len(sg.tensors))
    elif r < 0.6 and lst:
        del lst[rng.randrange(len(lst))]
    elif r < 0.8:
        lst.append(_index(rng, len(sg.tensors)))
    elif lst:
        lst.append(lst[0])
    setattr(op, which, lst)
    return f"op {which} {lst}"


def _graph_io(m, sg, rng):
    which = rng.choice(("inputs", "outputs"))
    lst = [int(i) for i in (getattr(sg, which) if getattr(sg, which) is not None else [])]
    const = [i for i, t in enumerate(sg.tensors)
             if 0 <= t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None]
    r = rng.random()
    if r < 0.2:
        lst = []
    elif r < 0.4 and const:
        lst = [rng.choice(const)] if rng.random() < 0.5 else lst + [rng.choice(const)]
    elif r < 0.55 and lst:
        lst = lst + [lst[0]]
    elif r < 0.8:
        lst.append(rng.randrange(len(sg.tensors)))
    else:
        lst = [_index(rng, len(sg.tensors))]
    setattr(sg, which, lst)
    return f"graph {which} {lst}"


def _ops_list(m, sg, rng):
    ops = sg.operators
    r = rng.random()
    if r < 0.4 and len(ops) > 1:
        del ops[rng.randrange(len(ops))]
        return "op deleted"
    if r < 0.7:
        ops.insert(rng.randrange(len(ops) + 1), copy.deepcopy(_pick(rng, ops)))
        return "op duplicated"
    if len(ops) > 1:
        i, j = rng.sample(range(len(ops)), 2)
        ops[i], ops[j] = ops[j], ops[i]
        return f"ops {i},{j} swapped"
    sg.operators = []
    return "no ops"


def _hostile_name(rng, graph, parts, labels, decode=False):
    """The graph's name (sometimes) or one of its parts' names becomes hostile text."""
    text = rng.choice(HOSTILE)
    text = text.decode("utf-8", "replace") if decode else text
    obj, label = (graph, labels[0]) if rng.random() < 0.4 else (_pick(rng, parts), labels[1])
    obj.name = text
    return f"{label} name {text[:20]!r}"


def _names(m, sg, rng):
    return _hostile_name(rng, sg, sg.tensors, ("subgraph", "tensor"))


def _subgraphs(m, sg, rng):
    if rng.random() < 0.5:
        m.subgraphs.append(copy.deepcopy(sg))
        return "second subgraph"
    t = _pick(rng, sg.tensors)
    t.isVariable = not t.isVariable
    return "isVariable flipped"


TFLITE_EDITS = ((_t_shape, 5), (_t_dtype, 3), (_t_buffer, 2), (_buf_data, 4), (_quant, 6), (_options, 6),
                (_opcode, 3), (_op_io, 3), (_graph_io, 3), (_ops_list, 2), (_names, 1), (_subgraphs, 1))


def _weighted(rng: random.Random, table):
    return rng.choices([f for f, _ in table], weights=[w for _, w in table])[0]


def mutate_tflite(buf: bytes, rng: random.Random) -> tuple[bytes, str]:
    """1-3 structural edits of a .tflite; returns (new bytes, description)."""
    import flatbuffers
    S = schema()
    m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        sg = m.subgraphs[0]
        if not sg.tensors or not sg.operators:
            break
        done.append(_weighted(rng, TFLITE_EDITS)(m, sg, rng))
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), "; ".join(done)


# ---- ONNX: protobuf ------------------------------------------------------------------------------

ONNX_OPS = ("Conv", "Relu", "Gemm", "MatMul", "Add", "Mul", "Softmax", "MaxPool", "AveragePool", "Flatten",
            "Reshape", "Transpose", "Concat", "Clip", "Sigmoid", "Tanh", "Pad", "GlobalAveragePool",
            "QuantizeLinear", "DequantizeLinear", "QLinearConv", "BatchNormalization", "Identity", "Loop", "Foo")


def _o_attr(g, rng):
    from onnx import helper as h
    node = _pick(rng, [n for n in g.node if n.attribute] or list(g.node))
    if not node.attribute or rng.random() < 0.15:
        node.attribute.append(h.make_attribute(rng.choice(("axis", "group", "strides", "pads", "perm", "bogus")),
                                               rng.choice(([0], [-1, 5], 1 << 31, 0, -3, "VALID"))))
        return f"{node.op_type}: attribute added"
    a = _pick(rng, node.attribute)
    r = rng.random()
    if r < 0.15:
        node.attribute.remove(a)
        return f"{node.op_type}.{a.name} removed"
    if a.ints or a.type == a.INTS:
        vals = list(a.ints)
        if vals and r < 0.7:
            vals[rng.randrange(len(vals))] = _int_like(rng)
        else:
            vals = [_int_like(rng) for _ in range(rng.randrange(0, 6))]
        del a.ints[:]
        a.ints.extend(max(min(v, (1 << 62)), -(1 << 62)) for v in vals)
        return f"{node.op_type}.{a.name}={vals}"
    if a.floats or a.type == a.FLOATS:     # e.g. a tree ensemble's thresholds and leaf weights
        vals = list(a.floats)
        if vals and r < 0.7:
            vals[rng.randrange(len(vals))] = rng.choice(FLOATS)
        else:
            vals = [rng.choice(FLOATS) for _ in range(rng.randrange(0, 6))]
        del a.floats[:]
        a.floats.extend(vals)
        return f"{node.op_type}.{a.name}={vals[:6]}"
    if a.strings or a.type == a.STRINGS:   # e.g. a tree ensemble's node modes, string class labels
        vals = list(a.strings)
        pick = rng.choice((b"LEAF", b"BRANCH_LT", b"BRANCH_MEMBER", b"bogus", b"", b"*/ int evil; /*"))
        if vals:
            vals[rng.randrange(len(vals))] = pick
        else:
            vals = [pick]
        del a.strings[:]
        a.strings.extend(vals)
        return f"{node.op_type}.{a.name}[*]={pick!r}"
    if a.type == a.INT:
        a.i = _int_like(rng, a.i)
        return f"{node.op_type}.{a.name}={a.i}"
    if a.type == a.FLOAT:
        a.f = rng.choice(FLOATS)
        return f"{node.op_type}.{a.name}={a.f}"
    if a.type == a.STRING:
        a.s = rng.choice((b"VALID", b"SAME_LOWER", b"NOTSET", b"bogus", b""))
        return f"{node.op_type}.{a.name}={a.s!r}"
    a.type = rng.choice((a.INT, a.FLOAT, a.INTS, a.STRING, a.TENSOR))
    return f"{node.op_type}.{a.name} type {a.type}"


def _o_dims(g, rng):
    vis = list(g.input) + list(g.output)
    if rng.random() < 0.5 and g.initializer:
        t = _pick(rng, g.initializer)
        dims = list(t.dims)
        if dims:
            dims[rng.randrange(len(dims))] = _int_like(rng)
        else:
            dims = [rng.choice(INTS)]
        del t.dims[:]
        t.dims.extend(dims)
        return f"initializer {t.name} dims {dims}"
    v = _pick(rng, vis)
    dims = v.type.tensor_type.shape.dim
    if dims and rng.random() < 0.8:
        d = _pick(rng, dims)
        if rng.random() < 0.2:
            d.dim_param = "N"
        else:
            d.dim_value = _int_like(rng)
        return f"value {v.name} dim -> {d.dim_value or d.dim_param}"
    if dims and rng.random() < 0.5:
        del dims[rng.randrange(len(dims))]
        return f"value {v.name} dim dropped"
    v.type.tensor_type.elem_type = rng.randrange(0, 17)
    return f"value {v.name} elem type {v.type.tensor_type.elem_type}"


def _o_init(g, rng):
    from onnx import numpy_helper as nh
    t = _pick(rng, g.initializer)
    if t is None:
        return "no initializer"
    r = rng.random()
    if r < 0.2:
        t.data_type = rng.randrange(0, 17)
        return f"initializer {t.name} data type {t.data_type}"
    a = nh.to_array(t).copy() if t.data_type == 1 and t.dims and not r < 0.4 else None
    if a is not None and a.size:
        a.reshape(-1)[rng.randrange(a.size)] = rng.choice(FLOATS)
        t.CopyFrom(nh.from_array(a, t.name))
        return f"initializer {t.name} value special"
    raw = bytearray(t.raw_data)
    if raw:
        raw = raw[:rng.randrange(len(raw))] if rng.random() < 0.6 else raw + rng.randbytes(rng.randrange(1, 16))
    t.raw_data = bytes(raw)
    return f"initializer {t.name} raw {len(raw)} B"


def _o_graph_io(g, rng):
    r = rng.random()
    if r < 0.2:
        del g.output[:]
        return "no graph outputs"
    if r < 0.35 and g.initializer:
        g.output[0].name = _pick(rng, g.initializer).name
        return "graph output is an initializer"
    if r < 0.5:
        g.output.append(copy.deepcopy(g.output[0]) if g.output else copy.deepcopy(g.input[0]))
        return "graph output duplicated"
    if r < 0.65:
        g.input.append(copy.deepcopy(_pick(rng, g.input)))
        return "graph input duplicated"
    if r < 0.8 and g.initializer:
        from onnx import helper as h
        t = _pick(rng, g.initializer)
        g.input.append(h.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        return "initializer listed as graph input"
    v = _pick(rng, list(g.input) + list(g.output))
    v.name = rng.choice(("nope", "", "x", "y"))
    return f"graph value renamed {v.name!r}"


def _o_node_io(g, rng):
    node = _pick(rng, g.node)
    lst = node.input if rng.random() < 0.7 else node.output
    names = [n for v in g.node for n in v.output] + [t.name for t in g.initializer] + ["x", "", "missing"]
    r = rng.random()
    if r < 0.45 and lst:
        lst[rng.randrange(len(lst))] = rng.choice(names)
    elif r < 0.7 and lst:
        del lst[rng.randrange(len(lst))]
    else:
        lst.append(rng.choice(names))
    return f"{node.op_type} io {list(lst)}"


def _o_op(g, rng):
    node = _pick(rng, g.node)
    r = rng.random()
    if r < 0.6:
        node.op_type = rng.choice(ONNX_OPS)
        return f"op type {node.op_type}"
    if r < 0.75:
        node.domain = rng.choice(("com.microsoft", "ai.onnx.ml", "bogus"))
        return f"domain {node.domain}"
    if r < 0.9 and len(g.node) > 1:
        g.node.remove(node)
        return "node removed"
    nodes = list(g.node)
    rng.shuffle(nodes)
    del g.node[:]
    g.node.extend(nodes)
    return "nodes shuffled"


def _o_names(g, rng):
    return _hostile_name(rng, g, g.node, ("graph", "node"), decode=True)


ONNX_EDITS = ((_o_attr, 6), (_o_dims, 5), (_o_init, 4), (_o_graph_io, 3), (_o_node_io, 3), (_o_op, 3),
              (_o_names, 1))


def mutate_onnx(buf: bytes, rng: random.Random) -> tuple[bytes, str]:
    """1-3 protobuf edits of an .onnx model (or its opset); returns (new bytes, description)."""
    import onnx
    m = onnx.load_from_string(buf)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if rng.random() < 0.05:
            m.opset_import[0].version = rng.choice((1, 6, 9, 11, 25, 99))
            done.append(f"opset {m.opset_import[0].version}")
        elif not m.graph.node:
            break
        else:
            done.append(_weighted(rng, ONNX_EDITS)(m.graph, rng))
    return m.SerializeToString(), "; ".join(done)


# ---- bytes ---------------------------------------------------------------------------------------

def mutate_bytes(buf: bytes, rng: random.Random, other: bytes) -> tuple[bytes, str]:
    """Bit flips, byte stores, truncation, deletion or a splice with ``other``."""
    d = bytearray(buf)
    r = rng.random()
    if r < 0.35:
        n = rng.randrange(1, 9)
        for _ in range(n):
            k = rng.randrange(len(d))
            d[k] ^= 1 << rng.randrange(8)
        return bytes(d), f"{n} bit flips"
    if r < 0.6:
        n = rng.randrange(1, 5)
        for _ in range(n):
            k = rng.randrange(len(d))
            d[k] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        return bytes(d), f"{n} byte stores"
    if r < 0.75:
        k = rng.randrange(len(d))
        return bytes(d[:k]), f"truncated at {k}"
    if r < 0.85:
        k = rng.randrange(len(d))
        n = rng.randrange(1, 64)
        return bytes(d[:k] + d[k + n:]), f"deleted {n} B at {k}"
    k, j = rng.randrange(len(d)), rng.randrange(len(other))
    return bytes(d[:k]) + other[j:], f"spliced at {k} with other@{j}"


def make_mutant(seeds: list[Seed], data: dict[str, bytes], run_seed: int, index: int) -> tuple[Seed, bytes, str]:
    """Mutant ``index`` of a run: a pure function of (seeds, run_seed, index)."""
    rng = random.Random(run_seed * 1_000_003 + index)
    seed = seeds[rng.randrange(len(seeds))]
    buf = data[seed.name]
    for _ in range(5):       # an edit the object API cannot pack is retried with fresh choices
        try:
            if rng.random() < 0.3:
                same = [s for s in seeds if s.kind == seed.kind]
                out, what = mutate_bytes(buf, rng, data[rng.choice(same).name])
            elif seed.kind == "tflite":
                out, what = mutate_tflite(buf, rng)
            else:
                out, what = mutate_onnx(buf, rng)
        except Exception as e:  # noqa: BLE001  (struct/protobuf range errors while packing)
            what = f"unpackable ({type(e).__name__})"
            continue
        return seed, out, what
    return seed, buf, what
