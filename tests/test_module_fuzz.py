"""Bad modules never crash the readers: libFuzzer + AddressSanitizer on the C
loader (bounded run, CRC/signature bypassed with TML_MODULE_FUZZING so the
fuzzer reaches the parsers behind them; GRAPH and TFLITE seeds, TFLITE
accepted as in firmware embedding TFLM; every GRAPH module that opens is also
executed, every TFLITE one has its whole flatbuffer read), then the Python reader on the same corpus (only ModuleError).
Signed overflow in kernel arithmetic on crafted weights is not sanitized: it
wraps on every target, touches no memory, and a signed module is trusted data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from module_support import MODEL_A, MODEL_B, fixed_key, pack
from platformio_tinyml.module import ModuleError
from platformio_tinyml.module.firmware import KernelSet, write_runtime
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.pack import pack_tflite
from platformio_tinyml.module.verify import check_structure
from platformio_tinyml.pipeline import load_any

RUNS = int(os.environ.get("TINYML_FUZZ_RUNS", "5000"))

FUZZ_TARGET = r"""
#include <stdlib.h>
#include <string.h>
#include "tml_module.h"
static uint8_t arena[64 * 1024] __attribute__((aligned(16)));
static const uint8_t key[32];
volatile unsigned sink;
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_module_t m;
    /* an exact-size heap copy: ASan flags any read past the module's end */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    if (tml_module_open(&m, copy, (uint32_t)size, key, 0, arena, sizeof arena) == 0) {
        uint32_t n, i;
        unsigned s = 0;
        const uint8_t *fb = tml_module_tflite(&m, &n);
        if (fb)                              /* TFLITE: all of the flatbuffer lies in the module */
            for (i = 0; i < n; ++i) s += fb[i];
        else
            tml_module_invoke(&m);
        sink = s;
    }
    free(copy);
    return 0;
}
"""


def _seed_modules():
    key = fixed_key()
    g, _ = load_any(MODEL_A)
    return [*(pack(p, Abi.LP64_LE, 1, key)[1].data for p in (MODEL_A, MODEL_B)),
            pack_tflite(g, MODEL_A.read_bytes(), 1, key.sign, arena_bytes=32 * 1024).data]


def _mutants(seeds, n=300, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        d = bytearray(seeds[k % len(seeds)])
        if k % 3 == 0:
            d = d[:int(rng.integers(0, len(d)))]
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, min(len(d), 4096))) if d else 0
            if d:
                d[pos] = int(rng.integers(0, 256))
        out.append(bytes(d))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for k, data in enumerate(_seed_modules() + _mutants(_seed_modules())):
        (d / f"seed{k:04d}.tmm").write_bytes(data)
    return d


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang with libFuzzer (apt: clang libclang-rt-14-dev)")
def test_c_loader_under_libfuzzer(tmp_path, corpus):
    kset = KernelSet.of(["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"])
    cfiles = write_runtime(tmp_path / "rt", kset)
    (tmp_path / "fuzz.c").write_text(FUZZ_TARGET)
    exe = tmp_path / "fuzz"
    r = subprocess.run(["clang", "-g", "-O1", "-std=c99", "-fsanitize=fuzzer,address,undefined",
                        "-fno-sanitize-recover=all", "-fno-sanitize=signed-integer-overflow",
                        "-DTML_MODULE_FUZZING", "-DTML_MODULE_TFLITE", f"-I{tmp_path / 'rt'}",
                        str(tmp_path / "fuzz.c"), *map(str, cfiles), "-o", str(exe), "-lm"],
                       capture_output=True, text=True)
    if r.returncode != 0 and "fuzzer" in r.stderr and "cannot find" in r.stderr:
        pytest.skip("libFuzzer runtime missing (apt: libclang-rt-14-dev)")
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([str(exe), f"-runs={RUNS}", "-seed=1", "-max_len=300000", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/",
                        str(work), str(corpus)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Done" in r.stderr


def test_python_reader_on_the_same_corpus(corpus):
    opened = 0
    for path in sorted(corpus.iterdir()):
        try:
            check_structure(path.read_bytes(), str(path))
            opened += 1
        except ModuleError:
            pass
    assert opened >= 3       # the unmodified seeds
