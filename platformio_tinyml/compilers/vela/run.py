"""Run Vela on a model and read its summary.

Vela runs in a child process (``python -m``-style through its ``main``) so a
crash or a hang cannot take the build down; ``timeout_s`` bounds it.
Results are cached per (model contents, options) for the life of the
process, so ``supports()`` and ``compile()`` run Vela once.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...errors import CompileError

ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
                "ethos-u65-256", "ethos-u65-512", "ethos-u85-128", "ethos-u85-256",
                "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
TIMEOUT_S = 300
_KIB = 1024
_CACHE: dict[str, "VelaRun"] = {}


@dataclass(frozen=True)
class VelaRun:
    optimized: bytes                 # the optimized .tflite
    sram_bytes: int                  # SRAM Vela allocates (tensor arena part)
    flash_bytes: int                 # off-chip + on-chip flash Vela places (weights, command stream)
    npu_cycles: int                  # cycles_total at the NPU clock
    npu_clock_hz: float
    inference_s: float
    cpu_ops: int
    npu_ops: int
    summary: dict[str, str]          # the CSV row as Vela wrote it


def vela_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("ethos-u-vela")
    except Exception:
        return None


def run_vela(model: Path, accelerator: str, options: dict[str, str] | None = None,
             timeout_s: float = TIMEOUT_S) -> VelaRun:
    """Compile ``model`` for ``accelerator``; raise CompileError with Vela's message on failure."""
    options = dict(options or {})
    data = Path(model).read_bytes()
    key = hashlib.sha256(data + repr((accelerator, sorted(options.items()), vela_version())).encode()).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    with tempfile.TemporaryDirectory(prefix="tinyml-vela-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; sys.exit(main())",
               "--accelerator-config", accelerator, "--output-dir", str(out)]
        for opt in ("system_config", "memory_mode", "config", "optimise"):
            if opt in options:
                cmd += [f"--{opt.replace('_', '-')}", options[opt]]
        cmd.append(str(src))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CompileError(f"Vela did not finish within {timeout_s:.0f} s", where=str(model)) from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise CompileError("Vela failed: " + " | ".join(tail), where=str(model))
        result = _parse(out, proc.stdout)
    _CACHE[key] = result
    return result


def _parse(out: Path, stdout: str) -> VelaRun:
    optimized = next(out.glob("*_vela.tflite"))
    summary_csv = next(out.glob("*_summary_*.csv"))
    with summary_csv.open(newline="") as f:
        row = next(csv.DictReader(f))
    kib = lambda k: int(round(float(row.get(k) or 0) * _KIB))  # noqa: E731
    ops = {m.group(1): int(m.group(2)) for m in re.finditer(r"(CPU|NPU) operators = (\d+)", stdout)}
    return VelaRun(optimized=optimized.read_bytes(), sram_bytes=kib("sram_memory_used"),
                   flash_bytes=kib("off_chip_flash_memory_used") + kib("on_chip_flash_memory_used"),
                   npu_cycles=int(float(row["cycles_total"])), npu_clock_hz=float(row["core_clock"]),
                   inference_s=float(row["inference_time"]), cpu_ops=ops.get("CPU", -1),
                   npu_ops=ops.get("NPU", -1), summary=dict(row))


def vela_available() -> bool:
    return vela_version() is not None or shutil.which("vela") is not None
