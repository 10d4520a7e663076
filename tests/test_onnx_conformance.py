"""The onnx package's own conformance tests (benchmarks/onnx_conformance.py), against the
outputs the onnx authors recorded: the PyTorch-exported modules and operators and the small
graphs the onnx wheel ships, and the single-operator tests of the operators where our reader
once compiled wrong code. Every counted test must pass or be refused in one line: never a
mismatch (wrong code), never an error. The whole node suite (1,884 tests, about 6 min) is the
benchmark's; docs/benchmarks.md has its figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import onnx_conformance as oc  # noqa: E402

pytest.importorskip("onnxruntime")

# Node tests of the operators that compiled to wrong code before (run-time Resize scales,
# SpaceToDepth's CRD mode of opset 28) and their neighbours.
NODE_PREFIXES = ("test_resize_", "test_spacetodepth", "test_depthtospace", "test_attention")
# and the operators each compiled since through a composition of IR ops: counted passes when written
COMPOSED = {"matmul": 7, "gemm": 11, "clip": 18, "rms_normalization": 38, "layer_normalization": 53,
            "l1normalization": 3, "l2normalization": 2, "lpnormalization": 1, "sum_": 3, "mean_": 3, "max_": 4,
            "min_": 4, "concat": 12, "hardmax": 7, "leakyrelu": 6, "prelu": 4, "shrink": 2, "gru_": 6,
            "simple_rnn": 5, "rnn_seq_length": 1, "lppool_2d": 5, "averagepool_2d_pads_count_include_pad": 1,
            "averagepool_2d_precomputed_pads_count_include_pad": 1}
# and those of the one-input functions carried as opaque ops that cgen computes, LogSoftmax and
# BatchNormalization (their "_expanded" forms too: the function body as ONNX defines it)
FUNCTION_PREFIXES = tuple(f"test_{n}" for n in (
    "acos", "asin", "atan", "cos", "sin", "tan", "floor", "ceil", "round", "sign", "erf", "softplus",
    "softsign", "selu", "thresholdedrelu", "hardsigmoid", "celu", "mish", "elu", "swish", "logsoftmax",
    "batchnorm"))


@pytest.fixture(scope="module")
def summary():
    tests = oc.collect(("pytorch-converted", "pytorch-operator", "simple"))
    prefixes = NODE_PREFIXES + FUNCTION_PREFIXES + tuple(f"test_{n}" for n in COMPOSED)
    tests += [t for t in oc.collect(("node",)) if t["name"].startswith(prefixes)]
    return oc.run(tests, jobs=2)


def test_no_wrong_code_and_no_errors(summary):
    bad = {k: r for k, r in summary["results"].items() if r["cls"] in ("mismatch", "error")}
    assert not bad, oc.table(summary)


def test_pytorch_exports_compile(summary):
    """PyTorch modules exported by torch.onnx: Conv2d (strided, padded, dilated, depthwise, no
    bias), Conv1d, ConvTranspose2d, pooling, padding, Linear, activations, with batch 2 among them."""
    results = summary["results"]
    for name in ("test_Conv2d", "test_Conv2d_depthwise_padded", "test_Conv2d_dilated", "test_Conv2d_strided",
                 "test_ConvTranspose2d", "test_MaxPool2d", "test_AvgPool2d", "test_ZeroPad2d", "test_Linear",
                 "test_LeakyReLU", "test_PReLU_2d", "test_GLU", "test_Conv1d", "test_Conv1d_stride",
                 "test_Conv1d_dilated", "test_Conv1d_pad2"):
        assert results[f"pytorch-converted/{name}"]["cls"] == "pass", (name, results[f"pytorch-converted/{name}"])
    passed = sum(r["cls"] == "pass" for k, r in results.items() if not k.startswith("node/"))
    assert passed >= 58, oc.table(summary)        # 39 + 18 + 1 when this test was written


def test_run_time_resize_scales_and_crd_space_to_depth_are_refused(summary):
    r = summary["results"]
    scales = r["node/test_resize_downsample_scales_linear"]
    assert scales["cls"] == "refused" and "scales given at run time" in scales["detail"], scales
    crd = r["node/test_spacetodepth_crd_mode_example"]
    assert crd["cls"] == "refused" and "SpaceToDepth: mode" in crd["detail"], crd
    assert r["node/test_spacetodepth_example"]["cls"] == "pass"


def test_element_wise_functions_match_the_recorded_outputs(summary):
    """Each operator's own examples (Acosh on [1, 10), Round's halves, Elu with alpha 2, Selu's
    default constants, ...) and, where the IR can hold it, the function body ONNX defines."""
    r = summary["results"]
    for name in ("acos", "acosh", "asinh", "atanh", "cosh", "tan", "round", "sign", "erf", "selu", "selu_default",
                 "hardsigmoid", "thresholdedrelu", "celu", "mish", "softplus", "softsign", "elu", "elu_default",
                 "logsoftmax_default_axis", "logsoftmax_large_number", "softplus_expanded_ver18", "celu_expanded",
                 "hardsigmoid_expanded_ver18", "mish_expanded"):
        assert r[f"node/test_{name}"]["cls"] == "pass", (name, r[f"node/test_{name}"])
    functions = [v for k, v in r.items() if k[len("node/"):].startswith(FUNCTION_PREFIXES)]
    assert sum(v["cls"] == "pass" for v in functions) >= 79, oc.table(summary)   # 79 when this was written


def test_attention_matches_the_recorded_outputs(summary):
    """Attention (opsets 23-25) as the onnx authors test it: grouped heads, caches, causal and
    window masks, run-time masks with -inf (fully masked rows included), soft cap."""
    r = summary["results"]
    for name in ("4d_gqa_causal", "3d_gqa_with_past_and_present", "4d_softcap_neginf_mask",
                 "4d_softcap_neginf_mask_poison", "4d_with_past_and_present_qk_matmul_bias_4d_mask",
                 "3d_with_past_and_present_qk_matmul_softmax", "local_window_with_past", "bidirectional_window"):
        assert r[f"node/test_attention_{name}"]["cls"] == "pass", (name, r[f"node/test_attention_{name}"])
    attention = [v for k, v in r.items() if k.startswith("node/test_attention")]
    assert sum(v["cls"] == "pass" for v in attention) >= 63, oc.table(summary)   # 63 when this was written


@pytest.mark.parametrize("family", sorted(COMPOSED))
def test_composed_operators_match_the_recorded_outputs(family, summary):
    """MatMul/Gemm with activation operands and NCHW layouts, Clip with run-time bounds, the
    normalizations (RMS, layer with its statistics, Lp), variadic Sum/Mean/Max/Min, Hardmax, GRU
    and RNN unrolled over their steps, LpPool and counted padding (an explicit PAD), and the _expanded function bodies of LeakyRelu, PRelu, Shrink (Less and Where on bool tensors)."""
    r = {k: v for k, v in summary["results"].items() if k.startswith(f"node/test_{family}")}
    assert sum(v["cls"] == "pass" for v in r.values()) >= COMPOSED[family], oc.table(summary)
