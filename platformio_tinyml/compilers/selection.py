"""Choosing a backend: ask every plugin ``supports()``, guard it, rank the answers.

The one place a backend is chosen: :func:`platformio_tinyml.pipeline.compile_model`
(``tinyml compile``, ``pio run``, the SCons tool, the service),
:func:`~platformio_tinyml.pipeline.compare_backends` (``tinyml compare``) and
:func:`platformio_tinyml.verify.chosen.verify_model` (``tinyml verify``,
``tinyml-verify``) all call :func:`select_backend` on a request built by
:func:`~platformio_tinyml.pipeline.prepare_request`, so they always agree. A plugin that raises, returns
something other than a well-formed :class:`Support`, or does not answer
within ``timeout_s`` is recorded as unsupported with its name and the
problem; selection goes on with the others.

Rank (documented in docs/compiler-plugin-interface.md), among backends
whose answer is ``ok`` and whose estimate fits the board's RAM and flash:

1. estimated latency, lowest first; an unknown latency ranks after every
   known one;
2. estimated flash, lowest first;
3. backend name, alphabetically (deterministic tie-break).

Backends whose capability query is expensive (``probe_cost = "high"``, e.g.
tvm, which imports TVM and lowers the model to answer) are asked in ``auto``
mode only when no cheap backend fits. ``exhaustive`` (``tinyml compare``)
asks them anyway, for the table only: the choice and its reason stay those
of ``tinyml compile``, ``pio run``, ``tinyml verify`` and the service. They
can always be requested by name.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from .base import budget_reasons
from .interface import CompileRequest, Estimate, Support
from .registry import Registry, discover

SUPPORTS_TIMEOUT_S = 60.0
_UNKNOWN = float("inf")
_NOT_RANKED = "a backend with a cheaper capability check fits"


class Selection(NamedTuple):
    chosen: str | None                 # None when no backend can take the model
    support: dict[str, Support]        # every backend asked (and every broken plugin)
    because: str                       # why ``chosen`` won, or why nothing did


def select_backend(request: CompileRequest, backend: str = "auto", *,
                   registry: Registry | None = None,
                   timeout_s: float = SUPPORTS_TIMEOUT_S, exhaustive: bool = False) -> Selection:
    """Pick the backend for ``request``.

    ``backend`` is ``"auto"`` or a backend name (then only that one is
    asked). Returns :class:`Selection`; ``chosen`` is None when nothing
    fits, and ``because`` then lists every backend's reasons.
    """
    reg = registry if registry is not None else discover()
    if backend != "auto" and backend not in reg.compilers:
        why = reg.problems.get(backend) or ("not installed; available: "
                                            + ", ".join(sorted(reg.compilers)) + " or auto")
        return Selection(None, {backend: Support(False, (why,))}, f"backend '{backend}' is not available ({why})")
    names = [backend] if backend != "auto" else sorted(reg.compilers)
    cheap = [n for n in names if getattr(reg.compilers[n], "probe_cost", "low") != "high"]
    support = {n: _fit(ask(n, reg.compilers[n], request, timeout_s), request) for n in cheap}
    considered = [n for n in names if n in support]
    if not any(s.ok for s in support.values()):     # the expensive probes only when nothing cheap fits
        considered = names
    for n in names:
        if n in support:
            continue
        if n in considered or exhaustive:
            support[n] = _fit(ask(n, reg.compilers[n], request, timeout_s), request)
        else:
            support[n] = Support(False, (f"not asked: {_NOT_RANKED} (request it with "
                                         f"custom_tinyml_backend = {n} or tinyml compare)",))
    if backend == "auto":
        for n, why in sorted(reg.problems.items()):
            support[n] = Support(False, (why,))
    ok = sorted((n for n in considered if support[n].ok), key=lambda n: rank_key(n, support[n]))
    for n in names:   # asked only for the comparison (exhaustive): shown, never ranked
        if n not in considered and support[n].ok:
            support[n] = Support(True, support[n].reasons + (f"not ranked: {_NOT_RANKED}",), support[n].estimate)
    if not ok:
        lines = "; ".join(f"{n}: {' / '.join(s.reasons) or 'not supported'}" for n, s in support.items())
        return Selection(None, support,
                         f"no backend can compile this model for board '{request.device.board}' ({lines})")
    if backend != "auto":
        return Selection(ok[0], support, "requested")
    return Selection(ok[0], support,
                     f"fits flash and RAM; first of {len(ok)} supporting backend(s) by estimated "
                     "latency, then flash, then name")


def rank_key(name: str, s: Support) -> tuple:
    """Sort key of a supporting backend (see the module docstring)."""
    e = s.estimate
    latency = e.latency_cycles if e is not None and e.latency_cycles is not None else _UNKNOWN
    flash = e.flash_bytes if e is not None else _UNKNOWN
    return (latency, flash, name)


def ask(name: str, compiler, request: CompileRequest, timeout_s: float) -> Support:
    """``compiler.supports(request)``, never raising, bounded by ``timeout_s``."""
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["value"] = compiler.supports(request)
        except BaseException as e:  # a plugin's bug is reported, not propagated
            box["error"] = e

    who = f"backend '{name}' ({type(compiler).__module__})"
    t = threading.Thread(target=call, name=f"tinyml-supports-{name}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        return Support(False, (f"{who}: supports() did not answer within {timeout_s:g} s",))
    if "error" in box:
        e = box["error"]
        return Support(False, (f"{who}: supports() raised {type(e).__name__}: {e}",))
    problem = malformed(box.get("value"))
    if problem:
        return Support(False, (f"{who}: supports() returned {problem}",))
    return box["value"]  # type: ignore[return-value]


def malformed(value: object) -> str | None:
    """Why ``value`` is not a well-formed Support, or None when it is."""
    if not isinstance(value, Support):
        return f"{type(value).__name__}, not a Support"
    if not isinstance(value.ok, bool):
        return f"Support.ok = {value.ok!r}, not a bool"
    if not isinstance(value.reasons, tuple) or not all(isinstance(r, str) for r in value.reasons):
        return "Support.reasons that is not a tuple of strings"
    e = value.estimate
    if e is not None:
        if not isinstance(e, Estimate):
            return f"Support.estimate of type {type(e).__name__}"
        sizes = (e.flash_bytes, e.ram_bytes)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes):
            return f"an Estimate with invalid sizes {sizes!r}"
        if e.latency_cycles is not None and (not isinstance(e.latency_cycles, int) or e.latency_cycles < 0):
            return f"an Estimate with invalid latency {e.latency_cycles!r}"
    return None


def _fit(s: Support, request: CompileRequest) -> Support:
    """Hold every backend to the board's sizes, whatever its own answer says."""
    e, dev = s.estimate, request.device
    if not s.ok or e is None:
        return s
    reasons = budget_reasons(e, dev, needs="estimate needs")
    return Support(False, s.reasons + reasons, e) if reasons else s
