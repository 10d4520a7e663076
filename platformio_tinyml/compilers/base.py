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


# RAM kept free for what no estimate sees: the application's own variables and
# stack, the C library, interrupt frames (docs/compiler-plugin-interface.md).
RAM_MARGIN_MIN = 256
RAM_MARGIN_PERCENT = 5
WARN_PERCENT = 90     # estimated use from which compile warns


def ram_margin(device: DeviceProfile) -> int:
    """Safety margin that counts against ``device``'s RAM: max(256 B, 5 % of RAM)."""
    return max(RAM_MARGIN_MIN, device.ram_bytes * RAM_MARGIN_PERCENT // 100)


def budget_reasons(estimate: Estimate, device: DeviceProfile, needs: str = "needs about") -> tuple[str, ...]:
    """Why ``estimate`` does not fit ``device``: one sentence per memory that overflows.

    ``needs`` opens each sentence ("needs about" for a backend's rough
    estimate, "needs" for a computed one). RAM must also leave
    :func:`ram_margin` free. Empty when both flash and RAM fit.
    """
    reasons = []
    if estimate.flash_bytes > device.flash_bytes:
        reasons.append(f"{needs} {estimate.flash_bytes:,} B of flash, board has {device.flash_bytes:,} B")
    margin = ram_margin(device)
    if estimate.ram_bytes + margin > device.ram_bytes:
        reasons.append(f"{needs} {estimate.ram_bytes:,} B of RAM + {margin:,} B safety margin, "
                       f"board has {device.ram_bytes:,} B")
    return tuple(reasons)


def usage_warnings(estimate: Estimate, device: DeviceProfile) -> tuple[str, ...]:
    """One line when the estimated RAM or flash use is >= 90 % of the board's, else nothing."""
    parts = [f"{what} {used:,} B of {have:,} B ({100 * used / have:.1f} %)"
             for what, used, have in (("RAM", estimate.ram_bytes, device.ram_bytes),
                                      ("flash", estimate.flash_bytes, device.flash_bytes))
             if have > 0 and used * 100 >= WARN_PERCENT * have]
    if not parts:
        return ()
    return (f"warning: the model is estimated to use {' and '.join(parts)} of board '{device.board}'; "
            "little is left for the application (check the firmware's measured use)",)


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
