"""int8 SOFTMAX on rows whose Q12 sum of exponentials leaves TFLite's
comfortable range, built with -fsanitize=undefined -fno-sanitize-recover
(any undefined shift or overflow aborts the run):

* 8192 equal values sum to exactly 2^32, which wraps to 0 in TFLite's int32
  sum (found by the module loader fuzzer: a shift by 32 in tml_softmax_s8.c);
  the outputs must equal the TFLite Micro reference bit for bit;
* 512 or more values at the row maximum need a divisor of 2^32 or more:
  TFLite Micro aborts on its own assertion there, so the outputs are checked
  against the softmax computed in float (within one step).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate, write_output
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.reference import TFLMReference

DEPTH = 8192
ROWS = 2

DRIVER = r"""
#include <stdio.h>
#include "m.h"
static signed char x[%(n)d], y[%(n)d];
int main(void)
{
    while (fread(x, 1, sizeof x, stdin) == sizeof x) {
        if (m_invoke(x, y) != 0) return 1;
        fwrite(y, 1, sizeof y, stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    tf = modelgen._tf()
    modelgen._seed(0)
    x = modelgen._inp((ROWS, DEPTH))
    d = tmp_path_factory.mktemp("softmax")
    path = d / "softmax_wide.tflite"
    path.write_bytes(modelgen.convert(modelgen._model(x, tf.keras.layers.Softmax()(x)), int8=True))
    g = load_tflite(path)
    write_output(generate(g, "m"), d / "src")
    (d / "src" / "main.c").write_text(DRIVER % {"n": ROWS * DEPTH})
    exe = d / "softmax"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined",
                        "-fno-sanitize-recover=all", "-I", str(d / "src"), *map(str, sorted((d / "src").glob("*.c"))),
                        "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return path, g, exe


def _run(exe, xs: list[np.ndarray]) -> list[np.ndarray]:
    r = subprocess.run([str(exe)], input=b"".join(x.tobytes() for x in xs), capture_output=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr.decode(errors="replace")[-2000:]
    out = np.frombuffer(r.stdout, np.int8)
    assert out.size == len(xs) * ROWS * DEPTH
    return list(out.reshape(len(xs), ROWS, DEPTH))


def test_sum_wrapping_to_zero_is_bit_exact(softmax_model):
    path, g, exe = softmax_model
    rng = np.random.default_rng(3)
    random_row = rng.integers(-128, 128, DEPTH).astype(np.int8)
    xs = [np.zeros((ROWS, DEPTH), np.int8),                      # both rows: 8192 x exp(0) = 2^32 -> 0
          np.stack([np.full(DEPTH, 5, np.int8), random_row]),    # one wrapping row, one ordinary
          np.stack([np.full(DEPTH, -128, np.int8), np.full(DEPTH, 127, np.int8)])]
    ref = TFLMReference(path)
    for x, ours in zip(xs, _run(exe, xs)):
        golden = np.asarray(ref.run([x.reshape(g.tensors[g.inputs[0]].shape)])[0], np.int8)
        assert np.array_equal(ours.reshape(-1), golden.reshape(-1))


def test_divisor_beyond_2_pow_31_matches_float_softmax(softmax_model):
    path, g, exe = softmax_model
    tin, tout = g.tensors[g.inputs[0]].quant, g.tensors[g.outputs[0]].quant
    xs = []
    for n_max in (512, 600, 4095):            # Q12 sum 2^28 .. 2^31 - 2^19: divisor 2^32 .. 2^35
        row = np.full(DEPTH, -128, np.int8)
        row[:n_max] = 127
        xs.append(np.stack([row, row[::-1]]))
    for x, ours in zip(xs, _run(exe, xs)):
        real = tin.s * (x.astype(np.float64) - tin.zp)
        e = np.exp(real - real.max(axis=1, keepdims=True))
        want = np.clip(np.round(e / e.sum(axis=1, keepdims=True) / tout.s + tout.zp), -128, 127)
        assert np.abs(ours.astype(np.int32) - want).max() <= 1
