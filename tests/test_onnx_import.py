"""ONNX import: models built with onnx.helper, generated C compared with onnxruntime.

Float32: max|ours - ort| / max|ort| <= 1e-5 on 10 seeded inputs. int8 (QDQ and
QLinear forms from onnxruntime.quantization.quantize_static): onnxruntime
requantizes in float (round half to even), the kernels in TFLite fixed point,
so outputs may differ by 1 LSB; the exact-match fraction is printed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP, helper as h, numpy_helper as nh  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import ModelError, UnsupportedOpError  # noqa: E402
from platformio_tinyml.ir import Activation, DType, OpKind  # noqa: E402
from platformio_tinyml.model.loader import load_model  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx, nchw_to_nhwc, nhwc_to_nchw  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from platformio_tinyml.verify.reference import OnnxReference  # noqa: E402

N_INPUTS = 10


class _Net:
    """Accumulates initializers and nodes of a small seeded float32 model."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.inits, self.nodes = [], []

    def w(self, name, *shape, scale=0.3):
        t = nh.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name)
        self.inits.append(t)
        return name

    def c(self, name, value):
        self.inits.append(nh.from_array(np.asarray(value), name))
        return name

    def node(self, op, ins, outs, **kw):
        self.nodes.append(h.make_node(op, ins, outs, name=f"{op.lower()}_{len(self.nodes)}", **kw))
        return outs[0]

    def save(self, path, in_shape, out_shape, name="net", opset=13, in_dims=None):
        inp = h.make_tensor_value_info("x", TP.FLOAT, in_dims or list(in_shape))
        out = h.make_tensor_value_info("y", TP.FLOAT, out_shape)
        m = h.make_model(h.make_graph(self.nodes, name, [inp], [out], self.inits),
                         opset_imports=[h.make_opsetid("", opset)])
        m.ir_version = 8
        onnx.save(m, str(path))
        return path


def convnet(path, softmax=True):
    """conv+relu, depthwise+clip(0,6), maxpool, flatten (spatial), gemm, softmax."""
    n = _Net(0)
    x = n.node("Conv", ["x", n.w("w1", 8, 3, 3, 3), n.w("b1", 8)], ["c1"], pads=[1, 1, 1, 1])
    x = n.node("Relu", [x], ["r1"])
    x = n.node("Conv", [x, n.w("w2", 8, 1, 3, 3), n.w("b2", 8)], ["c2"], group=8, strides=[2, 2],
               pads=[1, 1, 1, 1])
    x = n.node("Clip", [x, n.c("lo", np.float32(0)), n.c("hi", np.float32(6))], ["r2"])
    x = n.node("MaxPool", [x], ["p1"], kernel_shape=[2, 2], strides=[2, 2])
    x = n.node("Flatten", [x], ["f"], axis=1)
    x = n.node("Gemm", [x, n.w("w3", 10, 32), n.w("b3", 10)], ["g" if softmax else "y"], transB=1)
    if softmax:
        n.node("Softmax", [x], ["y"], axis=-1)
    return n.save(path, [1, 3, 8, 8], [1, 10], "convnet")


def branchnet(path, tanh=True):
    """two conv branches joined by Add and Concat, same-padded conv, GAP, MatMul+Add, Tanh."""
    n = _Net(1)
    a = n.node("Conv", ["x", n.w("wa", 4, 4, 3, 3), n.w("ba", 4)], ["a"], auto_pad="SAME_UPPER")
    a = n.node("Relu", [a], ["ar"])
    b = n.node("Conv", ["x", n.w("wb", 4, 4, 1, 1), n.w("bb", 4)], ["b"])
    s = n.node("Add", [a, b], ["s"])
    s = n.node("Relu", [s], ["sr"])
    k = n.node("Concat", [s, "x"], ["k"], axis=1)
    k = n.node("Mul", [k, n.w("m", 8, 1, 1, scale=1.0)], ["km"])
    k = n.node("Pad", [k, n.c("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], ["kp"])
    k = n.node("AveragePool", [k], ["ap"], kernel_shape=[3, 3], strides=[2, 2])
    k = n.node("GlobalAveragePool", [k], ["gp"])
    k = n.node("Flatten", [k], ["f"])
    k = n.node("MatMul", [k, n.w("wm", 8, 5)], ["mm"])
    k = n.node("Add", [k, n.w("bm", 5)], ["mb" if tanh else "y"])
    if tanh:
        n.node("Tanh", [k], ["y"])
    return n.save(path, [1, 4, 6, 6], [1, 5], "branchnet")


def sigmoidnet(path):
    """NHWC model (input Transpose cancels the layout change), depthwise multiplier 2, Sigmoid."""
    n = _Net(2)
    x = n.node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2])
    x = n.node("Conv", [x, n.w("w", 6, 1, 3, 3), n.w("b", 6)], ["c"], group=3)
    x = n.node("Sigmoid", [x], ["s"])
    n.node("Transpose", [x], ["y"], perm=[0, 2, 3, 1])
    return n.save(path, [1, 5, 5, 3], [1, 3, 3, 6], "sigmoidnet")


FLOAT_MODELS = {"convnet": convnet, "branchnet": branchnet, "sigmoidnet": sigmoidnet}
# A float softmax after an int8 layer turns a 1 LSB logit difference into up to 2 LSB of
# probability, so the QDQ comparisons (where softmax stays float) end at the logits.
INT8_MODELS = {"convnet_logits": lambda p: convnet(p, softmax=False),
               "branchnet_logits": lambda p: branchnet(p, tanh=False), **FLOAT_MODELS}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {k: f(root / f"{k}.onnx") for k, f in INT8_MODELS.items()}


def _run_both(path, tmp_path, n=N_INPUTS, seed=0):
    g = load_onnx(path)
    hm = build_host(generate(g, "m"), g, tmp_path)
    ref = OnnxReference(path)
    rng = np.random.default_rng(seed)
    x_t = g.tensors[g.inputs[0]]
    for _ in range(n):
        x = rng.standard_normal(x_t.shape).astype(np.float32)
        ours = hm.run([x])[0]
        x_ref = nhwc_to_nchw(x) if g.meta["input_layouts"][0] == "NCHW->NHWC" else x
        theirs = ref.run([x_ref])[0]
        if g.meta["output_layouts"][0] == "NCHW->NHWC":
            theirs = nchw_to_nhwc(theirs)
        yield g, ours, theirs.reshape(ours.shape)


# ---- IR structure ----------------------------------------------------------------------------

def test_convnet_ir_is_nhwc_with_fused_activations(models):
    g = load_onnx(models["convnet"])
    assert [op.kind for op in g.ops] == [OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.MAX_POOL_2D,
                                         OpKind.RESHAPE, OpKind.FULLY_CONNECTED, OpKind.SOFTMAX]
    conv, dw = g.ops[0], g.ops[1]
    assert conv.attrs.activation is Activation.RELU and dw.attrs.activation is Activation.RELU6
    assert g.tensors[g.inputs[0]].shape == (1, 8, 8, 3)
    assert g.tensors[conv.inputs[1]].shape == (8, 3, 3, 3)          # OHWI
    assert g.tensors[dw.inputs[1]].shape == (1, 3, 3, 8)            # [1, H, W, C*M]
    assert (dw.attrs.stride_h, dw.attrs.pad_top, dw.attrs.pad_right) == (2, 1, 1)
    assert g.meta["input_layout"] == "NCHW->NHWC" and g.meta["output_layout"] == "same"
    assert g.source_format == "onnx"


def test_nhwc_input_model_keeps_its_layout(models):
    g = load_onnx(models["sigmoidnet"])
    assert g.meta["input_layouts"] == ["same"] and g.meta["output_layouts"] == ["same"]
    assert [op.kind for op in g.ops] == [OpKind.DEPTHWISE_CONV_2D, OpKind.LOGISTIC]
    assert g.ops[0].attrs.depth_multiplier == 2


def test_loader_dispatches_on_suffix(models, tmp_path):
    assert load_model(models["convnet"]).source_format == "onnx"
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"unknown model format '\.pt'.*\.tflite, \.onnx, \.keras"):
        load_model(bad)


# ---- float32 end to end ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FLOAT_MODELS))
def test_float_matches_onnxruntime(models, tmp_path, name):
    worst = 0.0
    for _, ours, theirs in _run_both(models[name], tmp_path):
        worst = max(worst, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
    print(f"{name}: max relative error {worst:.2e}")
    assert worst <= 1e-5


# ---- int8 ----------------------------------------------------------------------------------------

def _quantize(src, dst, fmt, per_channel):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    m = onnx.load(str(src))
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(123)
            self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(str(src), str(dst), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return dst


INT8_CASES = [("convnet_logits", "qdq", True), ("convnet_logits", "qdq", False),
              ("convnet_logits", "qop", False), ("branchnet_logits", "qdq", True)]


@pytest.mark.parametrize("name,fmt,per_channel", INT8_CASES)
def test_int8_within_one_lsb_of_onnxruntime(models, tmp_path, name, fmt, per_channel):
    path = _quantize(models[name], tmp_path / f"{name}_{fmt}.onnx", fmt, per_channel)
    g = load_onnx(path)
    assert sum(g.tensors[op.outputs[0]].dtype is DType.INT8 for op in g.ops) >= 3
    last = [op for op in g.ops if op.kind is OpKind.DEQUANTIZE and op.outputs[0] == g.outputs[0]]
    q = g.tensors[last[0].inputs[0]].quant
    diffs = []
    for _, ours, theirs in _run_both(path, tmp_path):
        diffs.append(np.abs(np.rint(ours / q.s) - np.rint(theirs / q.s)).reshape(-1))
    d = np.concatenate(diffs)
    print(f"{name} {fmt} per_channel={per_channel}: exact {100 * np.mean(d == 0):.1f}% of "
          f"{d.size} outputs, max diff {int(d.max())} LSB")
    assert d.max() <= 1


def test_qdq_ops_become_int8_ir_ops(models, tmp_path):
    g = load_onnx(_quantize(models["convnet"], tmp_path / "q.onnx", "qdq", True))
    kinds = [(op.kind, g.tensors[op.outputs[0]].dtype) for op in g.ops]
    assert kinds[:6] == [(OpKind.QUANTIZE, DType.INT8), (OpKind.CONV_2D, DType.INT8),
                         (OpKind.DEPTHWISE_CONV_2D, DType.INT8), (OpKind.MAX_POOL_2D, DType.INT8),
                         (OpKind.RESHAPE, DType.INT8), (OpKind.FULLY_CONNECTED, DType.INT8)]
    conv = g.ops[1]
    w = g.tensors[conv.inputs[1]]
    assert w.quant.per_channel and len(w.quant.scale) == 8 and set(w.quant.zero_point) == {0}
    assert g.tensors[conv.inputs[2]].dtype is DType.INT32


# ---- bad inputs ----------------------------------------------------------------------------------

def test_truncated_file(models, tmp_path):
    data = models["convnet"].read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated.onnx") as e:
        load_onnx(bad)
    assert "Traceback" not in str(e.value)


def test_unsupported_op_names_file_index_and_node(tmp_path):
    n = _Net(3)
    x = n.node("Reshape", ["x", n.c("s", np.array([1, 3, 5], np.int64))], ["seq"])
    n.node("LRN", [x], ["y"], size=3)
    path = n.save(tmp_path / "lrn.onnx", [5, 3], [1, 3, 5], "lrn")
    g = load_onnx(path)                  # carried as an opaque op; cgen refuses it
    assert [op.type_name for op in g.ops] == ["RESHAPE", "LRN"]
    with pytest.raises(UnsupportedOpError) as e:
        generate(g, "lrn")
    msg = str(e.value)
    assert e.value.op_index == 1 and "LRN 'lrn_1'" in msg and "lrn.onnx" in msg
    assert "Supported operators:" in msg and "CONV_2D" in msg


def test_dynamic_input_shape(tmp_path):
    n = _Net(4)
    n.node("Relu", ["x"], ["y"])
    path = n.save(tmp_path / "dyn.onnx", None, [1, 3, "h", "w"], in_dims=[1, 3, "h", "w"])
    with pytest.raises(ModelError, match=r"dyn.onnx: graph input 'x' has open dimensions \[1, 3, 'h', 'w'\]\. "
                                         r"Set them: --input-shape x=1,3,H,W "):
        load_onnx(path)
    g = load_onnx(path, {"x": (1, 3, 5, 7)})
    assert g.tensors[g.inputs[0]].shape == (1, 5, 7, 3) == g.tensors[g.outputs[0]].shape


@pytest.mark.parametrize("const_node", [False, True])
def test_clip_to_inf_stays_a_relu_nonfinite_weights_are_refused(tmp_path, const_node):
    """A Clip bound may be inf (an initializer or a Constant node: no bound), and Clip(0, inf) is a
    RELU (fused); any other non-finite float constant, a NaN bound too, is refused in one line by the reader
    (rule finite-weights) before it computes with it: no numpy RuntimeWarning for a signalling NaN."""
    def net(hi, w_value=0.5):
        n = _Net(6)
        if const_node:
            n.nodes.append(h.make_node("Constant", [], ["hi"], value=nh.from_array(np.float32(hi))))
        x = n.node("MatMul", ["x", n.c("w", np.full((4, 4), w_value, np.float32))], ["m"])
        n.node("Clip", [x, n.c("lo", np.float32(0)), "hi" if const_node else n.c("hi", np.float32(hi))], ["y"])
        return n.save(tmp_path / "clip.onnx", [1, 4], [1, 4])
    (fc,) = load_onnx(net(np.inf)).ops   # the RELU fused
    assert fc.kind is OpKind.FULLY_CONNECTED and fc.attrs.activation is Activation.RELU
    with pytest.raises(ModelError, match=r"rule finite-weights: initializer #2 'hi' has nan at element 0"):
        load_onnx(net(np.nan))
    snan = np.array([0x7F800001], np.uint32).view(np.float32)[0]   # numpy warns on arithmetic with it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelError, match=r"rule finite-weights: initializer #0 'w' has nan at element 0"):
            load_onnx(net(np.inf, w_value=snan))


@pytest.mark.parametrize("lo, hi", [(-2.0, 2.0), (0.5, np.inf), (1.0, -1.0)])
def test_clip_with_other_constant_bounds(lo, hi, tmp_path):
    """Bounds that are no fused activation: MAXIMUM then MINIMUM (min > max gives max, as numpy)."""
    n = _Net(5)
    n.node("Clip", ["x", n.c("lo", np.float32(lo)), n.c("hi", np.float32(hi))], ["y"])
    path = n.save(tmp_path / "clip.onnx", [1, 3, 4, 5], [1, 3, 4, 5])
    g = _check(path, tmp_path)
    assert [op.kind for op in g.ops] == [OpKind.MAXIMUM, OpKind.MINIMUM][:2 if np.isfinite(hi) else 1]


@pytest.mark.parametrize("op, attrs", [("ReduceMax", dict(axes=[2, 3])), ("ReduceMean", dict(axes=[2, 3])),
                                       ("ArgMax", dict(axis=1))])
def test_keepdims_other_than_0_or_1_is_refused(tmp_path, op, attrs):
    """ONNX and onnxruntime keep the reduced dimensions only for keepdims=1. The reader took any
    non-zero value as 1, and verify then died with an internal error transposing onnxruntime's
    rank-2 output (found by fuzzing operators the fuzz seeds lack)."""
    n = _Net(7)
    n.node(op, ["x"], ["y"], keepdims=256, **attrs)
    path = n.save(tmp_path / "keep.onnx", [1, 3, 4, 5], [1, 3, 1, 1])
    with pytest.raises(UnsupportedOpError, match=rf"operator #0 {op} '{op.lower()}_0' is not supported "
                                                 r"\(keepdims 256 is not 0 or 1\)") as e:
        load_onnx(path)
    assert "\n" not in str(e.value)


def test_reference_output_of_another_rank_is_one_line(tmp_path):
    """Should the importer and onnxruntime ever read a model differently, verify reports it in one
    line instead of failing to transpose onnxruntime's output."""
    from platformio_tinyml.model.onnx.layout import CONVERTED
    from platformio_tinyml.verify.reference import ReferenceFailed
    n = _Net(8)
    n.node("ReduceMax", ["x"], ["y"], axes=[2, 3], keepdims=0)
    path = n.save(tmp_path / "r.onnx", [1, 3, 4, 5], [1, 3])
    g = load_onnx(path)
    g.meta["output_layouts"] = [CONVERTED]   # as if the importer had kept the dimensions
    ref = OnnxReference(path, g)
    with pytest.raises(ReferenceFailed, match=r"onnxruntime's output #0 has shape \[1, 3\], not the rank-4 output"):
        ref.run([np.zeros((1, 4, 5, 3), np.float32)])
