"""Selection (backend = auto) over every shared board manifest, KWS int8 and a scikit-learn model.

The fast half of benchmarks/selection_all_boards.py: every pair gets a backend
or a "does not fit" reason with byte numbers, no exception, the same answer
twice, and a few facts checked by hand.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOARDS = REPO.parent / "shared" / "boards"
KWS = REPO.parent / "shared" / "models" / "mlperf_tiny" / "kws_ref_model.tflite"

pytestmark = pytest.mark.skipif(not (BOARDS.is_dir() and KWS.is_file()),
                                reason="needs ../shared/boards and the MLPerf Tiny models")
pytest.importorskip("sklearn")


def _bench():
    spec = importlib.util.spec_from_file_location("selection_all_boards",
                                                  REPO / "benchmarks" / "selection_all_boards.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sweep():
    bench = _bench()
    first = bench.run(BOARDS, ("kws", "sklearn"), npu=False)
    # the second run (determinism) on every 7th board keeps the test fast
    second = bench.run(BOARDS, ("kws", "sklearn"), npu=False, every=7)
    return first, second


def _pair(result, board, model):
    return next(p for p in result["pairs"] if p["board"] == board and p["model"] == model)


def test_every_pair_has_an_answer(sweep):
    result, _ = sweep
    assert result["exceptions"] == 0, result["exception_pairs"][:3]
    assert result["board_errors"] == 0
    assert result["boards"] == 1057
    assert len(result["pairs"]) == 2 * 1057
    for p in result["pairs"]:
        if p["chosen"] is None:
            assert re.search(r"\d[\d,]* B\b", p["reason"]), p      # numbers, in bytes
            assert "does not fit" in p["reason"]
        else:
            assert p["chosen"] in result["backends"]
            assert p["ram_bytes"] <= p["ram"] and p["flash_bytes"] <= p["flash"], p


def test_deterministic(sweep):
    first, second = sweep
    again = {(p["board"], p["model"]): p for p in second["pairs"]}
    assert len(again) > 250
    for p in first["pairs"]:
        if (p["board"], p["model"]) in again:
            assert again[(p["board"], p["model"])] == p


def test_hand_checked_facts(sweep):
    result, _ = sweep
    uno = _pair(result, "uno", "kws")
    assert uno["chosen"] is None
    assert "2,048 B" in uno["reason"] and "RAM" in uno["reason"]
    f446 = _pair(result, "nucleo_f446re", "kws")
    assert f446["chosen"] == "cgen"
    assert f446["latency_cycles"] and f446["latency_cycles"] > 1_000_000
    # the forest is small: emlearn takes it on an Uno (2 KiB RAM, 32 KiB flash)
    assert _pair(result, "uno", "sklearn")["chosen"] == "emlearn"
    # no 8-bit or 16-bit board runs TFLM
    assert not any(p["chosen"] == "tflm" for p in result["pairs"]
                   if p["platform"] in ("atmelavr", "atmelmegaavr", "timsp430"))
