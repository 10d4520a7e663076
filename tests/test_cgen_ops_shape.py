"""Data movement, reductions and resizing in the cgen backend against TensorFlow
Lite Micro (TFLite models, int8 bit-exact, float32 within 1e-5 relative) and
onnxruntime (ONNX models built with onnx.helper, float32).

The TFLite models are few-branch Keras models converted exactly as users
convert theirs; each branch is one op, so a model covers several ops (and
SPLIT/UNPACK with several outputs, some of them unused, through the memory
planner). Integer outputs (ARG_MAX/ARG_MIN) must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.compilers.cgen.planner import plan_memory
from platformio_tinyml.errors import ModelError, UnsupportedOpError
from platformio_tinyml.ir import DType, OpKind
from platformio_tinyml.ir.shape_ops import SHAPE_OP_KINDS
from platformio_tinyml.model.loader import load_model
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference, reference_for

pytest.importorskip("tflite_micro")
FLOAT_TOL = 1e-5
K = OpKind


def _tf():
    return modelgen._tf()


def moves(tf, x):
    return [tf.transpose(x, [0, 2, 3, 1]), tf.slice(x, [0, 1, 2, 0], [1, 3, -1, 2]), x[:, 5:0:-2, 1::3, ::-1],
            x[:, 2, :, 1:3], tf.gather(x, [3, 0, 3, 7], axis=2)]


def split_pack(tf, x):
    a, b, c = tf.split(x, 3, axis=-1)           # b unused: a dead output
    p, q, r = tf.split(x, [1, 3, 2], axis=2)
    rows = tf.unstack(x, axis=1)
    return [tf.stack([a, c], axis=1), tf.concat([r, p], axis=2), q, rows[3]]


def blocks(tf, x):
    s2b = tf.space_to_batch_nd(x, [2, 2], [[0, 0], [0, 0]])   # int8 with padding is refused (TFLM)
    return [tf.nn.depth_to_space(x, 2), tf.nn.space_to_depth(x, 2), s2b,
            tf.batch_to_space(s2b, [2, 2], [[1, 1], [0, 2]])]


def reductions(tf, x):
    return [tf.reduce_max(x, axis=[1, 2]), tf.reduce_min(x, axis=3, keepdims=True), tf.reduce_sum(x, axis=1),
            tf.argmax(x, axis=-1, output_type=tf.int32), tf.argmin(x, axis=1, output_type=tf.int32)]


def resizes(tf, x):
    v1 = tf.compat.v1.image
    return [tf.image.resize(x, (9, 11)), v1.resize_bilinear(x, (8, 13), align_corners=True),
            v1.resize_bilinear(x, (3, 4)), v1.resize_nearest_neighbor(x, (9, 4), align_corners=True),
            tf.image.resize(x, (11, 5), method="nearest"), v1.resize_nearest_neighbor(x, (10, 14))]


def tiles(tf, x):   # TFLite Micro has no TILE kernel: the reference is TensorFlow Lite
    return [tf.tile(x, [1, 2, 1, 3]), tf.broadcast_to(x[:, :, :1, :], [1, 6, 5, 4])]


SPECS = {"moves": (moves, (6, 8, 4)), "split_pack": (split_pack, (4, 6, 6)), "blocks": (blocks, (4, 6, 8)),
         "reductions": (reductions, (5, 6, 4)), "resizes": (resizes, (5, 7, 3)), "tiles": (tiles, (6, 8, 4))}
KINDS = {"moves": {K.TRANSPOSE, K.SLICE, K.STRIDED_SLICE, K.GATHER},
         "split_pack": {K.SPLIT, K.SPLIT_V, K.UNPACK, K.PACK},
         "blocks": {K.DEPTH_TO_SPACE, K.SPACE_TO_DEPTH, K.SPACE_TO_BATCH_ND, K.BATCH_TO_SPACE_ND},
         "reductions": {K.REDUCE_MAX, K.REDUCE_MIN, K.SUM, K.ARG_MAX, K.ARG_MIN},
         "resizes": {K.RESIZE_BILINEAR, K.RESIZE_NEAREST_NEIGHBOR},
         "tiles": {K.TILE, K.BROADCAST_TO}}


def convert(spec: str, int8: bool) -> bytes:
    """The spec's function as a one-input TFLite model (float32, or int8 with int8 I/O)."""
    tf = _tf()
    build, shape = SPECS[spec]
    fn = tf.function(lambda x: build(tf, x))
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function(tf.TensorSpec((1,) + shape, tf.float32))])
    if int8:
        def data():
            rng = np.random.default_rng(0)
            for _ in range(16):
                yield [(2.0 * rng.standard_normal((1,) + shape)).astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = data
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


class TFLiteReference:
    """TensorFlow Lite's interpreter, for ops TFLite Micro has no kernel for (TILE)."""

    def __init__(self, path):
        self.interp = _tf().lite.Interpreter(model_path=str(path))
        self.interp.allocate_tensors()

    def run(self, xs):
        for d, x in zip(self.interp.get_input_details(), xs):
            self.interp.set_tensor(d["index"], x)
        self.interp.invoke()
        return [self.interp.get_tensor(d["index"]) for d in self.interp.get_output_details()]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape_ops")
    cache = {}

    def get(spec: str, dtype: str):
        if (spec, dtype) not in cache:
            path = root / f"{spec}_{dtype}.tflite"
            path.write_bytes(convert(spec, int8=dtype == "int8"))
            cache[spec, dtype] = path
        return cache[spec, dtype]
    return get


def _inputs(g, rng) -> list[np.ndarray]:
    out = []
    for t in (g.tensors[i] for i in g.inputs):
        if t.dtype is DType.INT8:
            out.append(rng.integers(-128, 128, t.shape).astype(np.int8))
        else:
            out.append((3.0 * rng.standard_normal(t.shape)).astype(np.float32))
    return out


def assert_parity(g, ref, tmp_path, samples: int = 8) -> None:
    host = build_host(generate(g, "m"), g, tmp_path)
    rng = np.random.default_rng(0)
    for s in range(samples):
        xs = _inputs(g, rng)
        ours, golden = host.run(xs), ref.run(xs)
        assert len(ours) == len(golden)
        for k, (a, b) in enumerate(zip(ours, golden)):
            a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
            assert a.size == b.size, f"output {k}: {a.size} vs {b.size} values"
            if b.dtype.kind in "iu":
                assert np.array_equal(a.astype(np.int64), b.astype(np.int64)), \
                    f"sample {s} output {k}: {int((a != b).sum())} of {a.size} values differ"
            else:
                err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
                assert err <= FLOAT_TOL, f"sample {s} output {k}: relative error {err:.3g}"


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_tflite_ops_match_tflm(spec, dtype, converted, tmp_path):
    path = converted(spec, dtype)
    g = load_model(path)
    assert KINDS[spec] <= {op.kind for op in g.ops}, [op.kind.value for op in g.ops]
    assert_parity(g, TFLiteReference(path) if spec == "tiles" else TFLMReference(path), tmp_path)
    if spec == "split_pack":
        # several outputs, one unread: the unread one dies with its op, so the plan stays near
        # the live-tensor bound (the planner is a heuristic and the converter's op order varies
        # from run to run: 1,392 B bound, plans of 1,392 or 1,464 B seen)
        plan = plan_memory(g)
        assert plan.arena_bytes <= 1.1 * plan.lower_bound, (plan.arena_bytes, plan.lower_bound)


def test_float_space_to_batch_padding_has_a_reference_that_pads_with_zero(tmp_path):
    """TFLite Micro pads float32 SPACE_TO_BATCH_ND with a value it never sets (what its
    arena held before), so verify's reference for it is TensorFlow Lite, and the tflm
    backend, whose firmware would pad the same way, refuses the model. Checked against
    TensorFlow's own op run eagerly (zeros in the padding)."""
    from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
    from platformio_tinyml.compilers.tflm import TflmCompiler
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.verify import reference as reference_mod
    tf = _tf()
    block, pads = [2, 2], [[1, 1], [0, 2]]
    fn = tf.function(lambda x: tf.space_to_batch_nd(x, block, pads) * 1.5)
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function(tf.TensorSpec((1, 4, 6, 3), tf.float32))])
    path = tmp_path / "s2b_pad.tflite"
    path.write_bytes(conv.convert())
    g = load_model(path)
    assert K.SPACE_TO_BATCH_ND in {op.kind for op in g.ops}
    ref = reference_for(path, g)
    assert isinstance(ref, reference_mod.TFLiteReference)
    x = np.random.default_rng(1).standard_normal((1, 4, 6, 3)).astype(np.float32) + 5.0
    want = tf.space_to_batch_nd(x, block, pads).numpy() * 1.5
    assert np.count_nonzero(want == 0) == (6 * 8 - 4 * 6) * 3   # the padded positions, the rest is >0
    got = np.asarray(ref.run([x])[0]).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert_parity(g, ref, tmp_path)

    req = CompileRequest(path, "tflite", None, load_profile("nucleo_f446re"), CompileOptions("s2b"))
    support = TflmCompiler().supports(req)
    assert not support.ok and "SPACE_TO_BATCH_ND" in support.reasons[0], support.reasons


def test_specs_cover_every_shape_op():
    assert set().union(*KINDS.values()) == SHAPE_OP_KINDS


# ---- ONNX (NCHW models as PyTorch exports them), float32 against onnxruntime ----------------------

def _onnx_model(path, nodes, in_shape, out_names, inits=(), opset: int = 13):
    import onnx
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    graph = h.make_graph(nodes, "ops", [h.make_tensor_value_info("x", TP.FLOAT, list(in_shape))],
                         [h.make_tensor_value_info(n, TP.UNDEFINED, None) for n in out_names],
                         initializer=[nh.from_array(np.asarray(v), k) for k, v in inits])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.save(model, str(path))
    return path


def _i64(*v):
    return np.array(v, np.int64)


def onnx_cases():
    from onnx import helper as h
    n = h.make_node
    return {
        "moves": ([n("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), n("Relu", ["t"], ["a"]),
                   n("Slice", ["x", "st", "en", "ax", "sp"], ["b"]),
                   n("Split", ["x", "sizes"], ["s0", "s1"], axis=1),
                   n("Tile", ["x", "reps"], ["c"]),
                   n("Gather", ["x", "gi"], ["d"], axis=3),
                   n("Gather", ["x", "g0"], ["e"], axis=1),
                   n("Expand", ["s0", "eshape"], ["f"])],
                  (1, 4, 6, 8), ["a", "b", "s1", "c", "d", "e", "f"],
                  [("st", _i64(1, 5, 0)), ("en", _i64(3, -100, 8)), ("ax", _i64(1, 2, 3)), ("sp", _i64(1, -2, 3)),
                   ("sizes", _i64(1, 3)), ("reps", _i64(1, 2, 1, 2)), ("gi", _i64(7, 0, -1)),
                   ("g0", np.array(2, np.int64)), ("eshape", _i64(1, 3, 6, 8))]),
        "reduce": ([n("ReduceMax", ["x"], ["a"], axes=[2, 3], keepdims=1),
                    n("ReduceMin", ["x"], ["b"], axes=[1], keepdims=1),
                    n("ReduceSum", ["x", "axes"], ["c"], keepdims=0),
                    n("ArgMax", ["x"], ["d"], axis=1, keepdims=1),
                    n("ArgMin", ["x"], ["e"], axis=3, keepdims=1)],
                   (1, 4, 5, 6), ["a", "b", "c", "d", "e"], [("axes", _i64(2, 3))]),
        "blocks": ([n("DepthToSpace", ["x"], ["a"], blocksize=2, mode="DCR"),
                    n("SpaceToDepth", ["x"], ["b"], blocksize=2),
                    n("Resize", ["x", "", "sc"], ["c"], mode="nearest", coordinate_transformation_mode="asymmetric",
                      nearest_mode="floor"),
                    n("Resize", ["x", "", "", "sz"], ["d"], mode="linear",
                      coordinate_transformation_mode="half_pixel"),
                    n("Resize", ["x", "", "", "sz2"], ["e"], mode="linear",
                      coordinate_transformation_mode="align_corners")],
                   (1, 8, 4, 6), ["a", "b", "c", "d", "e"],
                   [("sc", np.array([1, 1, 2, 2], np.float32)), ("sz", _i64(1, 8, 7, 9)), ("sz2", _i64(1, 8, 5, 11))]),
    }


@pytest.mark.parametrize("case", ["moves", "reduce", "blocks"])
def test_onnx_ops_match_onnxruntime(case, tmp_path):
    nodes, shape, outs, inits = onnx_cases()[case]
    path = _onnx_model(tmp_path / f"{case}.onnx", nodes, shape, outs, inits)
    g = load_model(path)
    assert_parity(g, reference_for(path, g), tmp_path)


@pytest.mark.parametrize("node, detail", [
    (("DepthToSpace", dict(blocksize=2, mode="CRD")), "mode 'CRD'"),
    (("Resize", dict(mode="cubic")), "mode 'cubic'"),
    (("ArgMax", dict(axis=1, select_last_index=1)), "select_last_index=1"),
])
def test_onnx_refusals_are_one_line(node, detail, tmp_path):
    from onnx import helper as h
    op, attrs = node
    ins = ["x", "", "sc"] if op == "Resize" else ["x"]
    inits = [("sc", np.array([1, 1, 2, 2], np.float32))] if op == "Resize" else []
    path = _onnx_model(tmp_path / "bad.onnx", [h.make_node(op, ins, ["y"], **attrs)], (1, 8, 4, 6), ["y"], inits)
    with pytest.raises(UnsupportedOpError) as e:   # carried as an opaque op: cgen refuses with the reason
        generate(load_model(path), "m")
    assert "\n" not in str(e.value) and detail in str(e.value) and f"{op}" in str(e.value), str(e.value)


def test_tflite_refusals_are_one_line(tmp_path):
    """ARG_MAX with an int64 output (tf.argmax's default): TFLite Micro computes int32 only."""
    tf = _tf()
    fn = tf.function(lambda x: tf.argmax(x, axis=-1))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(tf.TensorSpec((1, 4, 5)))])
    path = tmp_path / "argmax64.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_model(path), "m")
    assert "\n" not in str(e.value) and "output_type=tf.int32" in str(e.value) and "ARG_MAX" in str(e.value)


def test_onnx_float_gather_indices_are_refused_not_truncated(tmp_path):
    """ONNX gives indices, shapes and axes as integers; a float constant there is refused in one
    line instead of being cast (1.9 read as 1). A complex one is refused at import (rule
    element-type: tests/fuzz_corpus/models/element-type__onnx_complex_gather_indices.onnx)."""
    from onnx import helper as h
    path = _onnx_model(tmp_path / "bad.onnx", [h.make_node("Gather", ["x", "gi"], ["y"], axis=3)], (1, 8, 4, 6),
                       ["y"], [("gi", np.array([1.9, 0.0], np.float32))])
    with pytest.raises(UnsupportedOpError) as e:
        load_model(path)
    assert "\n" not in str(e.value) and "indices must be integers, not float32" in str(e.value), str(e.value)


def _strided_model(shape, begin, end, strides, begin_mask, end_mask, shrink_mask, out_shape) -> bytes:
    from test_cgen_ops_ew import _builder
    B = _builder()()
    x = B.tensor(shape, "float32", name="x")
    y = B.tensor(out_shape, "float32", name="y")
    consts = [B.tensor((len(v),), "int32", data=np.array(v, np.int32)) for v in (begin, end, strides)]
    B.op("STRIDED_SLICE", [x, *consts], [y], B.options("StridedSliceOptions", beginMask=begin_mask,
                                                         endMask=end_mask, shrinkAxisMask=shrink_mask))
    return B.finish([x], [y])


# (begin, end, strides, begin_mask, end_mask, shrink_mask, output shape) on a (3, 5, 4) input.
# A shrunk axis takes begin, or 0 when its begin-mask bit is set (TFLite Micro's StartForAxis
# applies the mask before the shrink): the fuzz finding strided-slice-shrink__*.
SHRINKS = [([0, -1, 0], [0, 0, 0], [1, 1, 1], 5, 5, 2, (3, 4)),
           ([0, -1, 0], [0, 0, 0], [1, 1, 1], 7, 5, 2, (3, 4)),
           ([0, 3, 0], [0, 0, 0], [1, 2, 1], 6, 5, 2, (3, 4)),
           ([2, 1, 0], [0, 0, 0], [1, 1, 1], 1, 4, 3, (4,)),
           ([1, -2, 3], [3, 0, 0], [1, -1, -1], 0, 4, 1, (3, 4))]


@pytest.mark.parametrize("case", SHRINKS, ids=[f"bm{c[3]}-sm{c[5]}-s{c[2][1]}" for c in SHRINKS])
def test_tflite_strided_slice_shrink_matches_tflm(case, tmp_path):
    from test_cgen_ops_ew import _run
    _run(_strided_model((3, 5, 4), *case), tmp_path)


def test_tflite_strided_slice_shrink_with_negative_stride_is_refused(tmp_path):
    """TFLite Micro copies nothing for a shrunk axis walked backwards (stop = start + 1)."""
    path = tmp_path / "m.tflite"
    path.write_bytes(_strided_model((3, 5, 4), [0, 2, 0], [0, 0, 0], [1, -1, 1], 5, 5, 2, (3, 4)))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_model(path), "m")
    assert "\n" not in str(e.value) and "negative stride on a shrunk axis" in str(e.value), str(e.value)
