"""Backend discovery through the ``platformio_tinyml.compilers`` entry points.

Built-in backends are registered in this package's own pyproject exactly like
third-party ones. A backend that fails to import or does not satisfy the
interface is reported (``Registry.problems``) and skipped, never fatal.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata

from .interface import Compiler

GROUP = "platformio_tinyml.compilers"


@dataclass
class Registry:
    compilers: dict[str, Compiler] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _entry_points(path: tuple[str, ...]) -> tuple:
    """The group's entry points for this ``sys.path``: reading every installed distribution's
    metadata took 15-65 ms, paid by each compile (a service job's child included). Kept per
    ``sys.path``, so a distribution added to the path is seen; one installed into a running
    process's site-packages is seen after a restart."""
    return tuple(sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name))


def _path_key() -> tuple[str, ...]:
    """``sys.path`` as the places it names: ``""`` is the working folder, a repeat counts once.
    The service's forkserver (``python -c``, path ``""``) and its children (given the parent's
    path, the same folder spelled out) then share the entry points read once at preload."""
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    return tuple(dict.fromkeys(p or here for p in sys.path))


def discover() -> Registry:
    reg = Registry()
    for ep in _entry_points(_path_key()):
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
