"""ONNX Attention (opsets 23-25) compiled by cgen in float32, against onnxruntime and the onnx
package's reference implementation: rank-3 and rank-4 inputs, grouped key/value heads, a
key/value cache with its present outputs, causal and sliding-window masks, run-time masks with
-inf entries (rows with every key masked give 0, as ONNX defines), soft cap, the
qk_matmul_output modes; and the forms refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP, helper as h  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.errors import UnsupportedOpError  # noqa: E402
from platformio_tinyml.model.onnx import load_onnx, nchw_to_nhwc, nhwc_to_nchw  # noqa: E402
from platformio_tinyml.verify.host import build_host  # noqa: E402
from test_onnx_elementwise import _check  # noqa: E402


def _save(path, inputs: dict, outputs: list[str], attrs: dict, opset=23):
    """One Attention node; ``inputs`` maps its input slots (Q, K, V, attn_mask, past_key,
    past_value) to shapes, '' for an absent optional input."""
    slots = ["Q", "K", "V", "attn_mask", "past_key", "past_value"]
    names = [s if s in inputs else "" for s in slots]
    while names and not names[-1]:
        names.pop()
    node = h.make_node("Attention", names, outputs, **attrs)
    g = h.make_graph([node], "attn", [h.make_tensor_value_info(n, TP.FLOAT, list(inputs[n])) for n in names if n],
                     [h.make_tensor_value_info(o, TP.FLOAT, None) for o in outputs if o])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def _run_both(path, tmp_path, feeds: dict):
    """Our outputs and the onnx reference implementation's, both in ONNX's layout."""
    g = load_onnx(path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ins, outs = g.meta["input_layouts"], g.meta["output_layouts"]
    xs = [nchw_to_nhwc(x) if ins[k] != "same" else x for k, x in enumerate(feeds.values())]
    ours = [nhwc_to_nchw(y) if outs[k] != "same" else y for k, y in enumerate(host.run(xs))]
    theirs = ReferenceEvaluator(str(path)).run(None, feeds)
    return ours, theirs


def _close(ours, theirs):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        b = np.asarray(b, np.float32)
        assert a.shape == b.shape, (k, a.shape, b.shape)
        assert np.all(np.isfinite(a)), k
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"output {k}")


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("inputs, outputs, attrs", [
    ({"Q": (1, 2, 5, 8), "K": (1, 2, 7, 8), "V": (1, 2, 7, 4)}, ["Y"], {}),
    ({"Q": (2, 6, 24), "K": (2, 6, 8), "V": (2, 6, 8)}, ["Y"],
     {"q_num_heads": 6, "kv_num_heads": 2, "is_causal": 1}),
    ({"Q": (1, 4, 3, 8), "K": (1, 2, 3, 8), "V": (1, 2, 3, 8), "attn_mask": (3, 8), "past_key": (1, 2, 5, 8),
      "past_value": (1, 2, 5, 8)}, ["Y", "present_key", "present_value"], {"scale": 0.25}),
    ({"Q": (1, 2, 4, 8), "K": (1, 2, 6, 8), "V": (1, 2, 6, 8), "attn_mask": (1, 1, 4, 6)}, ["Y", "", "", "qk"],
     {"softcap": 2.0, "qk_matmul_output_mode": 3}),
], ids=["4d", "3d-gqa-causal", "cache-mask", "softcap-mode3"])
def test_attention_matches_onnxruntime(inputs, outputs, attrs, tmp_path):
    _check(_save(tmp_path / "a.onnx", inputs, outputs, attrs), tmp_path)


def test_run_time_mask_with_fully_masked_rows(tmp_path):
    """-inf keys get probability 0; a query row whose keys are all -inf gives 0 (ONNX's rule,
    not the NaN of a softmax over only -inf), also combined with a causal mask and a cache."""
    rng = np.random.default_rng(3)
    path = _save(tmp_path / "a.onnx", {"Q": (1, 2, 4, 8), "K": (1, 2, 4, 8), "V": (1, 2, 4, 8), "attn_mask": (4, 7),
                                       "past_key": (1, 2, 3, 8), "past_value": (1, 2, 3, 8)},
                 ["Y", "pk", "pv", "qk"], {"is_causal": 1, "qk_matmul_output_mode": 3})
    mask = _randn(rng, 4, 7)
    mask[0, :4] = -np.inf         # row 0 may see keys 0..3 (causal, past 3): all masked
    mask[2, [1, 4]] = -np.inf
    mask[3] = np.finfo(np.float32).min   # a padding mask as torch writes it: float32's lowest,
    mask[3, 5] = -np.inf                 # beside one -inf: ONNX spreads row 3 over the other 6 keys
    feeds = {"Q": _randn(rng, 1, 2, 4, 8), "K": _randn(rng, 1, 2, 4, 8), "V": _randn(rng, 1, 2, 4, 8),
             "attn_mask": mask, "past_key": _randn(rng, 1, 2, 3, 8), "past_value": _randn(rng, 1, 2, 3, 8)}
    ours, theirs = _run_both(path, tmp_path, feeds)
    _close(ours, theirs)
    assert not ours[0][:, :, 0].any() and not ours[3][:, :, 0].any()
    assert ours[3][0, 0, 2, [1, 4]].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(ours[3][0, :, 3], np.where(np.arange(7) == 5, 0, 1 / 6) * np.ones((2, 7)), rtol=1e-6)


def test_windows_and_constant_bool_mask(tmp_path):
    """Opset 25's sliding window beside a causal mask, and a constant boolean mask (an
    initializer) that masks one query row completely."""
    rng = np.random.default_rng(4)
    path = _save(tmp_path / "a.onnx", {"Q": (1, 2, 5, 4), "K": (1, 2, 5, 4), "V": (1, 2, 5, 4)}, ["Y"],
                 {"is_causal": 1, "left_window_size": 1}, opset=25)
    feeds = {k: _randn(rng, 1, 2, 5, 4) for k in "QKV"}
    _close(*_run_both(path, tmp_path / "w", feeds))

    allowed = np.ones((5, 5), bool)
    allowed[3] = False
    allowed[1, 0] = False
    node = h.make_node("Attention", ["Q", "K", "V", "m"], ["Y"])
    g = h.make_graph([node], "attn", [h.make_tensor_value_info(n, TP.FLOAT, [1, 2, 5, 4]) for n in "QKV"],
                     [h.make_tensor_value_info("Y", TP.FLOAT, None)], [onnx.numpy_helper.from_array(allowed, "m")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 23)])
    m.ir_version = 10
    onnx.save(onnx.shape_inference.infer_shapes(m), str(tmp_path / "b.onnx"))
    ours, theirs = _run_both(tmp_path / "b.onnx", tmp_path / "m", feeds)
    _close(ours, theirs)
    assert not ours[0][:, :, 3].any()


@pytest.mark.parametrize("inputs, attrs, why", [
    ({"Q": (1, 2, 4, 8), "K": (1, 2, 4, 8), "V": (1, 2, 4, 8), "attn_mask": (4, 4)},
     {"is_causal": 1, "qk_matmul_output_mode": 2}, "qk_matmul_output_mode 2 with a causal"),
    ({"Q": (1, 3, 4, 8), "K": (1, 2, 4, 8), "V": (1, 2, 4, 8)}, {}, "query heads a multiple"),
    ({"Q": (1, 4, 10), "K": (1, 4, 10), "V": (1, 4, 10)}, {"q_num_heads": 3, "kv_num_heads": 3}, "not a multiple"),
])
def test_refused_in_one_line(inputs, attrs, why, tmp_path):
    outputs = ["Y", "", "", "qk"] if "qk_matmul_output_mode" in attrs else ["Y"]
    path = _save(tmp_path / "a.onnx", inputs, outputs, attrs)
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_onnx(path), "m")
    assert why in str(e.value) and "\n" not in str(e.value) and "Attention" in str(e.value)
