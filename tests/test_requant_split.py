"""The requantize helpers of the cgen runtime on cores without a 32x32 -> 64
multiply (TML_NO_SMULL: ARMv6-M), compiled for the host with that path forced,
against gemmlowp's formulas in Python integers (TFLite Micro's
MultiplyByQuantizedMultiplier = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul))
and against the int64 path the other cores compile, bit for bit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

RUNTIME = Path(__file__).resolve().parents[1] / "platformio_tinyml" / "compilers" / "cgen" / "runtime"
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1

HARNESS = r"""
#include <stdio.h>
#include "tml_dot_s8.h"
#include "tml_fixedpoint.h"
/* stdin: (x, m, shift) int32 triples; stdout: tml_requant_s8, tml_srdhm(x, m), tml_requant */
int main(void)
{
    int32_t v[3];
    while (fread(v, 4, 3, stdin) == 3) {
        const int32_t r[3] = {v[1] > 0 ? tml_requant_s8(v[0], v[1], v[2]) : 0, tml_srdhm(v[0], v[1]),
                              tml_requant(v[0], v[1], v[2])};
        fwrite(r, 4, 3, stdout);
    }
    return 0;
}
"""


def _wrap(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    q = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return q >> 31 if q >= 0 else -((-q) >> 31)


def rdbpot(x: int, e: int) -> int:
    """gemmlowp RoundingDivideByPOT."""
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    """TFLite Micro MultiplyByQuantizedMultiplier (int32 wrap of the left shift)."""
    return rdbpot(srdhm(_wrap(x << max(shift, 0)), m), max(-shift, 0))


def _build(tmp: Path, name: str, no_smull: int) -> Path:
    src = tmp / "h.c"
    src.write_text(HARNESS)
    exe = tmp / name
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DTML_NO_SMULL={no_smull}",
                    f"-I{RUNTIME}", str(src), "-o", str(exe)], check=True)
    return exe


def _run(exe: Path, v: np.ndarray) -> np.ndarray:
    out = subprocess.run([str(exe)], input=v.astype("<i4").tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, "<i4").reshape(-1, 3)


def _vectors(rng, n: int) -> np.ndarray:
    """Edge values crossed with every shift, then random ones (x of every
    magnitude, multipliers of quantize_multiplier's range [2^30, 2^31) and
    any other)."""
    xs = [I32_MIN, I32_MIN + 1, -(1 << 30), -(1 << 16), -(1 << 15) - 1, -(1 << 15), -65535, -3, -1, 0, 1, 2,
          (1 << 15) - 1, 1 << 15, 65535, 1 << 16, 1 << 30, I32_MAX - 1, I32_MAX]
    ms = [1, 2, 65535, 1 << 16, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 1518500250, I32_MAX - 1, I32_MAX,
          I32_MIN, -1, -(1 << 30), -65537]
    edge = [(x, m, s) for x in xs for m in ms for s in range(-31, 31)]
    mag = rng.integers(0, 32, n)
    x = (rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64) >> (31 - mag)).clip(I32_MIN, I32_MAX)
    m = np.where(rng.random(n) < 0.7, rng.integers(1 << 30, 1 << 31, n), rng.integers(I32_MIN, I32_MAX, n,
                                                                                       dtype=np.int64))
    s = rng.integers(-31, 31, n)
    return np.concatenate([np.array(edge, np.int64), np.stack([x, m, s], 1)])


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_split_multiply_requant_matches_gemmlowp(tmp_path):
    v = _vectors(np.random.default_rng(11), 60000)
    split = _run(_build(tmp_path, "split", 1), v)
    wide = _run(_build(tmp_path, "wide", 0), v)
    assert np.array_equal(split, wide)
    for (x, m, s), (r8, hm, rq) in zip(v.tolist(), split.tolist()):
        assert hm == _wrap(srdhm(x, m)), (x, m)
        assert rq == _wrap(mbqm(x, m, s)), (x, m, s)
        if m > 0:   # tml_requant_s8: multipliers > 0 (quantize_multiplier's)
            assert r8 == _wrap(mbqm(x, m, s)), (x, m, s)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_split_multiply_equals_int64_path_random(tmp_path):
    """Two million more random triples: the split path against the int64 one."""
    rng = np.random.default_rng(12)
    n = 2_000_000
    v = np.stack([rng.integers(I32_MIN, I32_MAX, n, dtype=np.int64) >> rng.integers(0, 32, n),
                  rng.integers(I32_MIN, I32_MAX, n, dtype=np.int64), rng.integers(-31, 31, n)], 1)
    assert np.array_equal(_run(_build(tmp_path, "split", 1), v), _run(_build(tmp_path, "wide", 0), v))
