"""The contract between the emitter and per-op lowerings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...ir import Graph, Op


@dataclass(frozen=True)
class Lowering:
    """How one (op kind, dtype) becomes a kernel call.

    ``lower(em, op)`` emits constants and the call; ``check(g, op)`` returns
    a reason string when this op instance cannot be compiled (None if fine);
    ``scratch(g, op)`` returns arena bytes the kernel needs while it runs
    (or a tuple of sizes, preferred first: see planner.plan_memory).
    """
    lower: Callable
    check: Callable[[Graph, Op], str | None] | None = None
    scratch: Callable[[Graph, Op], int | tuple[int, ...]] | None = None
