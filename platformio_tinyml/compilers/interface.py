"""The compiler plugin interface: what goes into a backend and what comes out.

A backend is any object satisfying :class:`Compiler`. It is found through the
entry-point group ``platformio_tinyml.compilers`` (built-ins included) and
asked :meth:`Compiler.supports` before :meth:`Compiler.compile`, so choosing
a backend never needs a compile. Fields are only ever added, with defaults;
``INTERFACE_VERSION`` changes when that is not enough.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..device import DeviceProfile
from ..ir import Graph

INTERFACE_VERSION = 1


@dataclass(frozen=True)
class CompileOptions:
    """How to compile, independent of the hardware (that is the DeviceProfile)."""
    name: str                                   # C symbol prefix of the generated API
    backend_options: dict[str, str] = field(default_factory=dict)
    calibration: Path | None = None             # representative data (.npy) for quantization


@dataclass(frozen=True)
class CompileRequest:
    model_path: Path
    model_format: str                           # "tflite" | "onnx" | "keras" | "sklearn" ...
    graph: Graph | None                         # None when the format has no IR (e.g. sklearn)
    device: DeviceProfile
    options: CompileOptions


@dataclass(frozen=True)
class Estimate:
    """Resource estimate (before compiling) or measurement (after)."""
    flash_bytes: int
    ram_bytes: int
    latency_cycles: int | None = None
    measured: bool = False


@dataclass(frozen=True)
class Support:
    ok: bool
    reasons: tuple[str, ...] = ()
    estimate: Estimate | None = None


class FileRole(enum.Enum):
    SOURCE = "source"        # compiled into the firmware
    HEADER = "header"        # on the include path
    DATA = "data"            # e.g. an optimized model blob
    REPORT = "report"


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    role: FileRole


@dataclass(frozen=True)
class CompileResult:
    backend: str
    backend_version: str
    files: tuple[GeneratedFile, ...]
    include_dirs: tuple[Path, ...]
    estimate: Estimate
    arena_bytes: int
    weight_bytes: int
    build_flags: tuple[str, ...] = ()
    lib_deps: tuple[str, ...] = ()
    module_payload: bytes | None = None
    diagnostics: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Compiler(Protocol):
    """What every backend implements.

    Optional attributes, read with ``getattr``: ``formats`` (the model formats
    it takes, e.g. ``("tflite", "onnx")``, listed by ``GET /v1/backends``) and
    ``probe_cost`` (see :mod:`.selection`).
    """

    name: str
    version: str

    def supports(self, request: CompileRequest) -> Support:
        """Can this backend compile ``request`` for its device, and at what cost?

        Called for every candidate backend during selection; must be cheap (no
        compiling) and must not raise for models it cannot handle: say why in
        ``Support.reasons``.
        """
        ...

    def compile(self, request: CompileRequest, outdir: Path) -> CompileResult:
        """Write the generated files into ``outdir`` and describe them."""
        ...
