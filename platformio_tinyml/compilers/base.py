"""Steps every backend shares, written once.

Backends call these from :meth:`Compiler.supports` and
:meth:`Compiler.compile` instead of repeating them; third-party plugins may
use them too, but nothing in the plugin interface requires it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..device import DeviceProfile
from .interface import Estimate, FileRole, GeneratedFile, Support


def budget_reasons(estimate: Estimate, device: DeviceProfile, needs: str = "needs about") -> tuple[str, ...]:
    """Why ``estimate`` does not fit ``device``: one sentence per memory that overflows.

    ``needs`` opens each sentence ("needs about" for a backend's rough
    estimate, "needs" for a computed one). Empty when both flash and RAM fit.
    """
    reasons = []
    if estimate.flash_bytes > device.flash_bytes:
        reasons.append(f"{needs} {estimate.flash_bytes:,} B of flash, board has {device.flash_bytes:,} B")
    if estimate.ram_bytes > device.ram_bytes:
        reasons.append(f"{needs} {estimate.ram_bytes:,} B of RAM, board has {device.ram_bytes:,} B")
    return tuple(reasons)


def support_from_estimate(estimate: Estimate, device: DeviceProfile,
                          needs: str = "needs about") -> Support:
    """The answer of ``supports()`` once the model compiles: ok when ``estimate`` fits the board."""
    reasons = budget_reasons(estimate, device, needs)
    return Support(not reasons, reasons, estimate)


def generated_files(paths: Iterable[Path],
                    sources: tuple[str, ...] = (".c", ".cc")) -> tuple[GeneratedFile, ...]:
    """``paths`` written by a backend as ``GeneratedFile``: a source when its suffix
    is in ``sources``, a header otherwise."""
    return tuple(GeneratedFile(p, FileRole.SOURCE if p.suffix in sources else FileRole.HEADER)
                 for p in paths)


def lib_deps_option(options: dict[str, str], default: tuple[str, ...]) -> tuple[str, ...]:
    """The ``lib_deps`` backend option (comma-separated library references) or ``default``."""
    opt = options.get("lib_deps")
    return tuple(s.strip() for s in opt.split(",") if s.strip()) if opt else default
