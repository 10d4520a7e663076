"""Streaming models: resource variables kept between invocations (cgen/lower_var.py).

A tf.Module keeps the last four input frames in a tf.Variable (as a streaming
wake-word front end does), converted with resource variables enabled: the model has
VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE (and CALL_ONCE). One stream of inputs
runs through the generated C (host build) and through TensorFlow Lite Micro's
interpreter without a reset between calls; every output must match (int8 bit-exact,
float32 within 1e-5 relative). ``NAME_reset()`` must give the state of a new
interpreter.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.parity import check_parity
from platformio_tinyml.verify.reference import TFLMReference
from test_cgen_ops import FLOAT_TOL, rel_err

pytest.importorskip("tflite_micro")
tf = pytest.importorskip("tensorflow")

FRAMES, WIDTH, STEPS = 4, 8, 12


def _convert(path, int8: bool) -> None:
    class Stream(tf.Module):
        def __init__(self):
            self.state = tf.Variable(tf.zeros([1, FRAMES, WIDTH]), trainable=False)
            self.w = tf.constant(np.random.default_rng(0).standard_normal((WIDTH, WIDTH)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 1, WIDTH], tf.float32)])
        def __call__(self, x):
            window = tf.concat([self.state[:, 1:, :], x], axis=1)
            self.state.assign(window)
            return tf.nn.relu(tf.matmul(tf.reduce_sum(window, axis=1), self.w))

    m = Stream()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    conv.experimental_enable_resource_variables = True
    if int8:
        def rep():
            r = np.random.default_rng(1)
            for _ in range(50):
                yield [r.standard_normal((1, 1, WIDTH)).astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())


@pytest.fixture(scope="module", params=["float32", "int8"])
def stream_model(request, tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    path = tmp_path_factory.mktemp("stream") / f"stream_{request.param}.tflite"
    _convert(path, request.param == "int8")
    return path, request.param


def _inputs(g, n):
    t = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(7)
    if t.dtype.np_name == "int8":
        return [rng.integers(-128, 128, t.shape).astype(np.int8) for _ in range(n)]
    return [rng.standard_normal(t.shape).astype(np.float32) for _ in range(n)]


def _same(a, b, dtype) -> bool:
    return np.array_equal(a, b) if dtype == "int8" else rel_err(a, b) <= FLOAT_TOL


def test_stream_matches_tflm_without_reset(stream_model, tmp_path):
    path, dtype = stream_model
    g = load_tflite(path)
    kinds = {op.kind.value for op in g.ops}
    assert {"READ_VARIABLE", "ASSIGN_VARIABLE"} <= kinds and g.variables
    host = build_host(generate(g, "stream"), g, tmp_path)
    ref = TFLMReference(path)
    xs = _inputs(g, STEPS)
    host.reset()
    ours = [host.run([x])[0].copy() for x in xs]
    theirs = [ref.run([x], reset=k == 0)[0] for k, x in enumerate(xs)]
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert _same(a, b, dtype), f"step {k}: {a} != {b}"
    # the model is really stateful: the same input gives another output later in the stream
    again = host.run([xs[0]])[0]
    assert not np.array_equal(again, ours[0])
    # NAME_reset() starts a new stream: the first outputs come back
    host.reset()
    assert all(np.array_equal(host.run([x])[0], ours[k]) for k, x in enumerate(xs[:FRAMES + 1]))


def test_verify_checks_streams(stream_model, tmp_path):
    """`tinyml verify`'s parity runs its samples as one stream on both sides."""
    path, _ = stream_model
    report = check_parity(load_tflite(path), path, samples=10, workdir=tmp_path)
    assert report.ok, report.table()
