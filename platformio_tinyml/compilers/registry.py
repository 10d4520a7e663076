"""Backend discovery through the ``platformio_tinyml.compilers`` entry points.

Built-in backends are registered in this package's own pyproject exactly like
third-party ones. A backend that fails to import or does not satisfy the
interface is reported (``Registry.problems``) and skipped, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

from .interface import Compiler

GROUP = "platformio_tinyml.compilers"


@dataclass
class Registry:
    compilers: dict[str, Compiler] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def discover() -> Registry:
    reg = Registry()
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        try:
            obj = ep.load()
            inst = obj() if isinstance(obj, type) else obj
        except Exception as e:  # a broken plugin must not break the build
            reg.problems[ep.name] = f"{dist}: failed to load ({type(e).__name__}: {e})"
            continue
        if not isinstance(inst, Compiler):
            reg.problems[ep.name] = f"{dist}: {ep.value} does not implement the Compiler interface"
            continue
        reg.compilers[ep.name] = inst
    if "cgen" not in reg.compilers and "cgen" not in reg.problems:
        # Running from a source tree without an installed distribution.
        from .cgen.backend import CgenCompiler
        reg.compilers["cgen"] = CgenCompiler()
    return reg
