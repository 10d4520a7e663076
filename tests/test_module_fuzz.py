"""Bad modules never crash the readers: libFuzzer + ASan/UBSan on the C loader
(bounded runs; every GRAPH module that opens is also executed, every TFLITE
one has its whole flatbuffer read), built twice: with the real CRC and
Ed25519 checks against the key that signed the seed corpus, and with both
skipped (TML_MODULE_FUZZING) so mutants reach the parsers behind them. Then
the Python reader on the same corpus (only ModuleError), and the crash inputs
kept in tests/fuzz_corpus/modules/ replayed through both builds and the
Python reader. Longer runs: benchmarks/fuzz_module.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from module_support import FUZZ_CORPUS, build_loader_fuzzers, fuzz_seeds, opened_count
from platformio_tinyml.module import ModuleError
from platformio_tinyml.module.verify import check_structure

RUNS = int(os.environ.get("TINYML_FUZZ_RUNS", "3000"))


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
def seeds():
    return fuzz_seeds()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, seeds):
    d = tmp_path_factory.mktemp("corpus")
    for k, data in enumerate(seeds + _mutants(seeds)):
        (d / f"seed{k:04d}.tmm").write_bytes(data)
    return d


@pytest.fixture(scope="module")
def fuzzers(tmp_path_factory):
    if shutil.which("clang") is None:
        pytest.skip("needs clang with libFuzzer (apt: clang libclang-rt-14-dev)")
    try:
        return build_loader_fuzzers(tmp_path_factory.mktemp("fuzz"))
    except RuntimeError as e:
        if "fuzzer" in str(e) and "cannot find" in str(e):
            pytest.skip("libFuzzer runtime missing (apt: libclang-rt-14-dev)")
        raise


@pytest.fixture(params=[True, False], ids=["signature", "no-signature"])
def fuzzer(request, fuzzers):
    return request.param, fuzzers[request.param]


def test_c_loader_under_libfuzzer(tmp_path, corpus, seeds, fuzzer):
    signature, exe = fuzzer
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([str(exe), f"-runs={RUNS}", "-seed=1", "-max_len=300000", "-rss_limit_mb=2048",
                        f"-artifact_prefix={tmp_path}/", str(work), str(corpus)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Done" in r.stderr
    opened, ran = opened_count(r.stderr)
    # The signed seeds open in both builds (so with the checks on, the fuzzer starts from modules
    # the real CRC and signature accept); the mutants and fuzzer inputs ran too.
    assert opened >= len(seeds) and ran >= RUNS, r.stderr[-2000:]


def test_crash_corpus_replays_clean(fuzzer):
    _, exe = fuzzer
    files = sorted(FUZZ_CORPUS.glob("*.tmm"))
    assert files, f"{FUZZ_CORPUS} is empty"
    r = subprocess.run([str(exe), *map(str, files)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    # Each kept input ran to its end. (Counting runs is not the check: libFuzzer runs an input a
    # second time when more mallocs than frees were seen during it, which another thread can cause.)
    executed = set(re.findall(r"^Executed (\S+) in ", r.stderr, re.M))
    assert executed == set(map(str, files)), r.stderr[-4000:]
    assert opened_count(r.stderr)[1] >= len(files)


def test_python_reader_refuses_a_written_operand_in_the_blob():
    with pytest.raises(ModuleError, match="output operand in the weight blob"):
        check_structure((FUZZ_CORPUS / "conv_output_in_blob.tmm").read_bytes())


def test_python_reader_on_the_same_corpus(corpus):
    opened = 0
    for path in sorted([*corpus.iterdir(), *FUZZ_CORPUS.glob("*.tmm")]):
        try:
            check_structure(path.read_bytes(), str(path))
            opened += 1
        except ModuleError:
            pass
    assert opened >= 4       # the unmodified seeds
