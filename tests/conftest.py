"""Shared test fixtures: where the shared board manifests and models live.

CI clones the repository with ../shared beside it; the tests read board
manifests and the MLPerf Tiny models from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MLPERF = SHARED / "models" / "mlperf_tiny"
BOARDS = SHARED / "boards"

# Board ids given to the CLI and the pipeline resolve against the shared manifests.
os.environ.setdefault("TINYML_BOARDS_DIRS", str(BOARDS))

MLPERF_INT8 = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "resnet8": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
}


@pytest.fixture(scope="session")
def mlperf_dir() -> Path:
    assert MLPERF.is_dir(), f"{MLPERF} missing: clone the repository next to shared/"
    return MLPERF


def need_programs(*programs: str) -> None:
    """Skip the calling test unless every one of ``programs`` is on PATH."""
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        pytest.skip("not on PATH: " + ", ".join(missing))
