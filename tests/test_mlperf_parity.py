"""cgen output is byte-identical to the TFLite Micro reference interpreter on
the four MLPerf Tiny int8 models (20 seeded random inputs each), and the
static arena reaches each model's live-tensor lower bound."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import MLPERF, MLPERF_INT8
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import TFLMReference

# Live-tensor lower bounds (max over steps of live activation bytes, I/O
# included) as given by the MLPerf Tiny MANIFEST in shared/.
LOWER_BOUND = {"kws": 16000, "vww": 55296, "resnet8": 49152, "ad": 768}


@pytest.mark.parametrize("key", sorted(MLPERF_INT8))
def test_bit_exact_vs_tflm(key, tmp_path):
    path = MLPERF / MLPERF_INT8[key]
    g = load_tflite(path)
    gen = generate(g, key)
    host = build_host(gen, g, tmp_path)
    ref = TFLMReference(path)
    rng = np.random.default_rng(1234)
    xin = g.tensors[g.inputs[0]]
    for i in range(20):
        x = rng.integers(-128, 128, xin.shape, dtype=np.int64).astype(np.int8)
        ours = host.run([x])[0]
        golden = ref.run([x])[0]
        assert ours.dtype == golden.dtype == np.int8
        assert np.array_equal(ours.reshape(-1), golden.reshape(-1)), f"sample {i} differs"


@pytest.mark.parametrize("key", sorted(MLPERF_INT8))
def test_arena_at_lower_bound(key):
    g = load_tflite(MLPERF / MLPERF_INT8[key])
    gen = generate(g, key)
    assert gen.lower_bound == LOWER_BOUND[key]
    assert gen.arena_bytes <= LOWER_BOUND[key] + 512


def test_generated_code_has_no_dynamic_allocation(tmp_path):
    g = load_tflite(MLPERF / MLPERF_INT8["kws"])
    gen = generate(g, "kws")
    from platformio_tinyml.compilers.cgen import write_output
    for p in write_output(gen, tmp_path):
        text = re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)   # code, not comments
        for banned in ("malloc", "calloc", "realloc", "free(", "stdio.h", "printf"):
            assert banned not in text, f"{banned} in {p.name}"
