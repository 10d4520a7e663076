"""Operator-level parity of the cgen backend with TensorFlow Lite Micro.

Every operator (and a few parameter variants: stride 2, SAME/VALID padding,
depth multiplier 2, broadcasting ADD/MUL, concatenation on the channel axis,
fused RELU/RELU6) is built as a small TensorFlow model (tests/modelgen.py),
converted to float32 and to full-integer int8, compiled to C, built for the
host and run on 20 seeded random inputs next to the TFLite Micro reference
interpreter.

* int8 outputs must be bit-exact (np.array_equal).
* float32 outputs must be within a max relative error of 1e-5, where the
  relative error of one output tensor is
  max|ours - ref| / max(max|ref|, 1e-30).
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from conftest import MLPERF
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.compilers.cgen.emit import _lowerings
from platformio_tinyml.compilers.cgen.lower_ew import LOWERINGS as EW_LOWERINGS
from platformio_tinyml.compilers.cgen.lower_logic import LOWERINGS as LOGIC_LOWERINGS
from platformio_tinyml.compilers.cgen.lower_mm import LOWERINGS as MM_LOWERINGS
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.ir import DType, OpKind
from platformio_tinyml.ir.graph import GRAPH_PASS_OPS
from platformio_tinyml.ir.shape_ops import SHAPE_OP_KINDS
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference

FLOAT_TOL = 1e-5
EW_KINDS = {k for k, _ in EW_LOWERINGS}     # element-wise ops: tests/test_cgen_ops_ew.py
VARIABLE_KINDS = {OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE}   # tests/test_cgen_stateful.py
MM_KINDS = {k for k, _ in MM_LOWERINGS}      # TRANSPOSE_CONV, ...: tests/test_cgen_ops_mm.py
RNN_KINDS = {OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM}   # float32 (int8 refused): tests/test_cgen_lstm.py
LOGIC_KINDS = {k for k, _ in LOGIC_LOWERINGS}     # comparisons, logic, SELECT_V2: tests/test_logic_ops.py
MIRROR_KINDS = {OpKind.MIRROR_PAD}                  # tests/test_mirror_pad.py
ML_KINDS = {OpKind.TREE_ENSEMBLE}                   # ONNX-ML tree ensembles: tests/test_onnx_ml.py
BOOL_FIRST = {k for k, dt in LOGIC_LOWERINGS if dt is DType.BOOL}   # their first input is a bool tensor
N_SAMPLES = 20


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    """max|ours - ref| / max(max|ref|, 1e-30) over one output tensor."""
    ours = ours.astype(np.float64).reshape(-1)
    ref = ref.astype(np.float64).reshape(-1)
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def _inputs(g, rng, sample: int) -> list[np.ndarray]:
    xs = []
    for t in (g.tensors[i] for i in g.inputs):
        if t.dtype is DType.INT8:
            n = t.size
            if sample * n < 256:
                # The first samples sweep every int8 code once (e.g. LOGISTIC/TANH tables).
                x = ((np.arange(n) + sample * n) % 256 - 128).astype(np.int8).reshape(t.shape)
            else:
                x = rng.integers(-128, 128, t.shape, dtype=np.int64).astype(np.int8)
        elif t.dtype is DType.UINT8:
            x = rng.integers(0, 256, t.shape, dtype=np.int64).astype(np.uint8)
        else:
            x = (3.0 * rng.standard_normal(t.shape)).astype(np.float32)
        xs.append(x)
    return xs


def check_parity(path, tmp_path, n: int = N_SAMPLES, seed: int = 0) -> float:
    """Compile ``path``, run n inputs through ours and TFLM; return the worst float rel. error."""
    g = load_tflite(path)
    gen = generate(g, "m")
    host = build_host(gen, g, tmp_path)
    ref = TFLMReference(path)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for i in range(n):
        xs = _inputs(g, rng, i)
        ours, golden = host.run(xs), ref.run(xs)
        assert len(ours) == len(golden)
        for k, (a, b) in enumerate(zip(ours, golden)):
            assert a.dtype == b.dtype, f"output {k}: dtype {a.dtype} vs {b.dtype}"
            assert a.size == b.size
            if a.dtype.kind in "iu":     # int8, uint8: bit-exact
                d = np.abs(a.astype(np.int32).reshape(-1) - b.astype(np.int32).reshape(-1))
                assert np.array_equal(a.reshape(-1), b.reshape(-1)), \
                    f"sample {i} output {k}: {int((d > 0).sum())} of {d.size} values differ (max {int(d.max())})"
            else:
                e = rel_err(a, b)
                assert e <= FLOAT_TOL, f"sample {i} output {k}: relative error {e:.3g} > {FLOAT_TOL}"
                worst = max(worst, e)
    return worst


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> modelgen.ModelCache:
    return modelgen.ModelCache(tmp_path_factory.mktemp("tflite_ops"))


@pytest.mark.parametrize("spec", sorted(modelgen.SPECS))
def test_int8_bit_exact(spec, models, tmp_path):
    check_parity(models.path(spec, "int8"), tmp_path)


@pytest.mark.parametrize("spec", ["fc", "conv_pool_fc_softmax"])
def test_uint8_io_bit_exact(spec, models, tmp_path):
    """uint8 input and output: QUANTIZE uint8 -> int8 first, int8 -> uint8 last (TFLM Requantize)."""
    path = models.path(spec, "uint8io")
    g = load_tflite(path)
    assert [g.tensors[t].dtype for t in (*g.inputs, *g.outputs)] == [DType.UINT8, DType.UINT8]
    assert g.ops[0].kind is OpKind.QUANTIZE and g.ops[-1].kind is OpKind.QUANTIZE
    check_parity(path, tmp_path)


@pytest.mark.parametrize("spec", sorted(modelgen.SPECS))
def test_float32_within_tolerance(spec, models, tmp_path):
    check_parity(models.path(spec, "float32"), tmp_path)


@pytest.mark.parametrize("name", sorted(n for n in modelgen.EDITED if n != "concat_mismatch"))
def test_edited_int8_bit_exact(name, models, tmp_path):
    check_parity(modelgen.edited_path(models, name), tmp_path)


def test_int8_concat_with_different_quantization_is_refused(models):
    g = load_tflite(modelgen.edited_path(models, "concat_mismatch"))
    with pytest.raises(UnsupportedOpError, match="quantization"):
        generate(g, "m")


def test_specs_cover_every_op_kind(models):
    """Each op kind runs in some int8 and some float32 test model (DEQUANTIZE/QUANTIZE
    cross the types: they are covered by the int8 model with float I/O)."""
    seen: dict[str, set] = {"int8": set(), "float32": set()}
    for spec in modelgen.SPECS:
        for dt in seen:
            seen[dt] |= {op.kind for op in load_tflite(models.path(spec, dt)).ops}
    for name in modelgen.EDITED:
        seen["int8"] |= {op.kind for op in load_tflite(modelgen.edited_path(models, name)).ops}
    # the passes remove some; test_cgen_ops_shape.py / _ew.py / _mm.py cover the shape, element-wise and matrix ops
    # (OPAQUE: an op without a kind, which no cgen kernel takes: tests/test_opaque_ops.py)
    kernel_kinds = (set(OpKind) - GRAPH_PASS_OPS - SHAPE_OP_KINDS - EW_KINDS - VARIABLE_KINDS - MM_KINDS - RNN_KINDS
                    - LOGIC_KINDS - MIRROR_KINDS - ML_KINDS - {OpKind.OPAQUE})
    assert seen["int8"] == kernel_kinds
    assert seen["float32"] >= kernel_kinds - {OpKind.QUANTIZE, OpKind.DEQUANTIZE}


def test_every_op_kind_has_float_and_int8_lowerings():
    table = _lowerings()
    for kind in set(OpKind) - GRAPH_PASS_OPS - {OpKind.OPAQUE}:    # OPAQUE: no kernel, by definition
        if kind in BOOL_FIRST:
            assert (kind, DType.BOOL) in table, kind
            continue
        if kind is not OpKind.DEQUANTIZE:     # DEQUANTIZE takes int8 input only (int8 EXP etc.: a refusal)
            assert (kind, DType.FLOAT32) in table, kind
        assert (kind, DType.INT8) in table, kind


MLPERF_FLOAT = ["vww_96_float.tflite", "pretrainedResnet.tflite", "ad01_fp32.tflite"]


@pytest.mark.parametrize("fname", MLPERF_FLOAT)
def test_mlperf_float_models_within_tolerance(fname, tmp_path):
    path = MLPERF / fname
    assert path.is_file(), f"{path} missing"
    check_parity(path, tmp_path, n=5)
