"""The memory gate: does firmware + model fit the board? One line if not."""

from __future__ import annotations

from dataclasses import dataclass, field

from .elf import ElfUsage

WARN_FRACTION = 0.90


@dataclass
class GateResult:
    ok: bool
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)   # the measured sizes, as numbers (reports)


def _pct(used: int, total: int) -> str:
    return f"{100.0 * used / total:.1f}%" if total else "n/a"


def check_budget(usage: ElfUsage, flash_max: int, ram_max: int, *, where: str, board: str,
                 backend: str = "") -> GateResult:
    """Compare ``usage`` with the board limits (0 = unknown, not checked)."""
    res = GateResult(ok=True)
    problems = []
    for what, used, total, model, rest in (
            ("flash", usage.flash_bytes, flash_max, usage.model_flash_bytes, usage.rest_flash_bytes),
            ("RAM", usage.ram_bytes, ram_max, usage.model_ram_bytes, usage.rest_ram_bytes)):
        if not total:
            continue
        if used > total:
            problems.append(f"needs {used:,} B of {what}, board '{board}' has {total:,} B "
                            f"(over by {used - total:,} B; model {model:,} B, rest of firmware {rest:,} B)")
        elif used >= WARN_FRACTION * total:
            res.warnings.append(f"Warning: {where} {what} use {used:,} of {total:,} B ({_pct(used, total)}); "
                                f"model {model:,} B, rest of firmware {rest:,} B")
    if problems:
        other = f"a backend other than '{backend}' (custom_tinyml_backend), " if backend else "another backend, "
        res.ok = False
        res.error = (f"Error: {where} firmware " + "; and ".join(problems) +
                     f". Try {other}a smaller or more quantized model, or a board with more memory.")
    return res
