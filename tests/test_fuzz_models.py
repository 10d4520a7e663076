"""Model-import fuzzing in the default suite (``benchmarks/fuzz.py``, issue 14 item 5).

``test_fuzz_sample``: ``SAMPLE`` seeded mutants (run seed 0) of the committed seeds in
``tests/fuzz_corpus/seeds`` (.tflite edited through the flatbuffer object API, .onnx through
the protobuf, both also byte-mutated) run in worker processes with a time and memory limit
through ``tinyml inspect``, ``tinyml compile -b cgen`` and a ``-Werror`` syntax check of the
generated model source; every ``FULL_EVERY``-th mutant also through ``tinyml compile`` (auto:
every backend's ``supports()``) and ``tinyml verify`` (host build, 2 inputs against TFLite
Micro / onnxruntime). Verify costs a gcc -O3 build (seconds on a loaded machine), too slow for
all of them here; ``benchmarks/fuzz.py --count 100000`` runs every stage on every mutant.
No mutant may crash, hang, exhaust memory, print a traceback or internal error, produce C
that does not compile, or make verify disagree with the reference. Cost: 5 to 8 minutes on 2
shared cores (293 s at load 4, 474 s at load 12); ``TINYML_FUZZ_MODELS=N`` runs the first N
mutants only (a few hundred at least: with 50, mutants 0 and 25 are the only ones verified, and
both are refused, so the check that some mutant verified fails).

``test_corpus``: every file in ``tests/fuzz_corpus/models`` (findings of earlier runs, named by
the rule or fix they need) through all stages; each must be refused in one line or verified.

Nothing is tolerated. Until import validation (``model/validate.py``) and the reference
interpreters in a child process (``platformio_tinyml.isolate``) closed them, 20 corpus files and
43 sample mutants were listed here as known gaps; every one is closed, and the corpus files stay
as regression models.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fuzz_corpus" / "models"
SAMPLE = int(os.environ.get("TINYML_FUZZ_MODELS", "2000"))
FULL_EVERY = 25


def _fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_bench", REPO / "benchmarks" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fuzz_sample(tmp_path):
    fuzz = _fuzz()
    s = fuzz.fuzz_models(SAMPLE, 0, tmp_path, jobs=2, full_every=FULL_EVERY)
    print(fuzz.table(s))
    assert sum(s["counts"].values()) == SAMPLE
    assert s["counts"].get("refused", 0) < SAMPLE * 0.95, "the mutants hardly reach the compilers"
    assert s["counts"].get("verified", 0) > 0 and s["counts"].get("compiled", 0) > 0
    assert not s["bad"], "\n".join(f"mutant {b['index']} ({b['mutation']}): {b['cls']} at {b['stage']}: "
                                   f"{b['line']}" for b in s["bad"])


def _corpus():
    return sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".tflite", ".onnx"))


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory):
    return _fuzz().replay([CORPUS / n for n in _corpus()], tmp_path_factory.mktemp("fuzz_corpus"))


@pytest.mark.parametrize("name", _corpus())
def test_corpus(corpus_results, name):
    """A corpus file (a finding of an earlier run) is refused in one line or verified."""
    res = corpus_results[name]
    assert res["cls"] in ("refused", "verified"), f"{res['cls']} at {res['stage']}: {res['line']}"
