"""The orchestrator: load -> check IR -> select -> compile -> report.

Front ends (CLI, PlatformIO extra-script, SCons tool) call
:func:`compile_model`; verification is :mod:`platformio_tinyml.verify`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .compilers.base import usage_warnings
from .compilers.interface import CompileOptions, CompileRequest, CompileResult, Support
from .compilers.ctext import c_prefix
from .compilers.registry import Registry, discover
from .compilers.selection import Selection, select_backend   # re-exported for front ends
from .device import DeviceProfile
from .digest import sha256_file
from .errors import CompileError, ModelError, NoBackendError, TinyMLError
from .ir import Graph


from .naming import default_name  # noqa: E402  (re-exported)

# report.json and tinyml-report.json (docs/report.schema.json): bumped when a field changes
# meaning or goes away; fields are only ever added within a version.
REPORT_SCHEMA_VERSION = 1


def load_any(model_path: Path, calibration: Path | None = None,
             input_shapes: dict[str, tuple[int, ...]] | None = None,
             input_values: dict[str, tuple[float, ...]] | None = None) -> tuple[Graph | None, str]:
    """Load a model file into the IR; returns (graph or None, format name).

    ``input_shapes`` (``--input-shape``) sets open dimensions of named inputs;
    ``input_values`` (``--input-value``) binds named ONNX inputs to constants.

    scikit-learn files (.pkl, .joblib, .skops) have no IR: (None, "sklearn");
    the backends that take them load the estimator themselves.
    """
    from .model.sklearn import FORMAT as SKLEARN, check_skops, is_sklearn_file
    if is_sklearn_file(model_path):
        if Path(model_path).suffix.lower() == ".skops":
            check_skops(model_path)       # an untrusted type is one line here, not every backend's reason
        return None, SKLEARN
    from .model.loader import load_model, model_format
    fmt = model_format(model_path)
    return load_model(model_path, calibration=calibration, input_shapes=input_shapes,
                      input_values=input_values), fmt


@dataclass
class CompileOutcome:
    request: CompileRequest
    result: CompileResult
    support: dict[str, Support]
    chosen_because: str
    report_path: Path


def prepare_request(model_path: Path, device: DeviceProfile, *, name: str | None = None,
                    backend: str = "auto", calibration: Path | None = None,
                    backend_options: dict[str, str] | None = None,
                    input_shapes: dict[str, tuple[int, ...]] | None = None,
                    input_values: dict[str, tuple[float, ...]] | None = None) -> CompileRequest:
    """The request every backend is asked about: the model loaded and validated, a
    Keras/SavedModel model replaced by the ``.tflite`` it was converted to. The one
    way ``tinyml compile``/``compare``/``verify``, ``pio run``, SCons and the service
    describe a model to :func:`select_backend`, so they all choose alike."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise ModelError("model file not found", where=str(model_path),
                         hint="Check the path (relative paths are from the project directory)")
    if name is not None:             # it prefixes every C symbol and names the output files
        c_prefix(name, where="name option")
    if backend in ("auto", "tflm") and device.word_bits >= 32:
        # tflm's supports() sizes its arena with the reference interpreter, in a child
        # process: start that now, so it loads while the model does.
        from .verify.reference import warm_up
        warm_up(model_path)
    graph, fmt = load_any(model_path, calibration, input_shapes, input_values)
    if graph is not None:
        graph.validate()
    options = CompileOptions(name=name or default_name(model_path),
                             backend_options=dict(backend_options or {}), calibration=calibration)
    if graph is not None and graph.meta.get("tflite_path"):
        # Keras/SavedModel: backends see the .tflite it was converted (and quantized) to.
        graph.meta.setdefault("source_format", fmt)
        model_path, fmt = Path(graph.meta["tflite_path"]), "tflite"
    return CompileRequest(model_path=model_path, model_format=fmt, graph=graph, device=device,
                          options=options)


def choose_backend(request: CompileRequest, backend: str = "auto", *, registry: Registry | None = None,
                   exhaustive: bool = False) -> Selection:
    """:func:`select_backend`, raising the one-line error when no backend can take the model."""
    reg = registry if registry is not None else discover()
    sel = select_backend(request, backend, registry=reg, exhaustive=exhaustive)
    if sel.chosen is None and not exhaustive:
        if backend != "auto" and backend not in reg.compilers:     # a name that is not installed
            raise CompileError(sel.because, where=user_path(request))
        raise NoBackendError(request.device.board, {n: s.reasons for n, s in sel.support.items()},
                             where=user_path(request))
    return sel


def user_path(request: CompileRequest) -> str:
    """The model file the user named (not the ``.tflite`` a Keras model was converted to)."""
    g = request.graph
    return str(g.meta.get("converted_from", request.model_path)) if g is not None else str(request.model_path)


def compile_model(model_path: Path, device: DeviceProfile, outdir: Path, *, name: str | None = None,
                  backend: str = "auto", calibration: Path | None = None,
                  backend_options: dict[str, str] | None = None,
                  input_shapes: dict[str, tuple[int, ...]] | None = None,
                  input_values: dict[str, tuple[float, ...]] | None = None) -> CompileOutcome:
    request = prepare_request(model_path, device, name=name, backend=backend, calibration=calibration,
                              backend_options=backend_options, input_shapes=input_shapes,
                              input_values=input_values)
    reg = discover()
    chosen, support, because = choose_backend(request, backend, registry=reg)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    result = reg.compilers[chosen].compile(request, outdir)
    warnings = usage_warnings(result.estimate, device)
    if warnings:
        result = dataclasses.replace(result, diagnostics=result.diagnostics + warnings)
    report_path = outdir / "report.json"
    report_path.write_text(json.dumps(_report(request, result, support, chosen, because), indent=2))
    return CompileOutcome(request, result, support, because, report_path)


def compare_backends(model_path: Path, device: DeviceProfile, *, calibration: Path | None = None,
                     backend_options: dict[str, str] | None = None,
                     input_shapes: dict[str, tuple[int, ...]] | None = None,
                     input_values: dict[str, tuple[float, ...]] | None = None) -> dict:
    """Every backend's answer for ``model_path`` on ``device`` (``tinyml compare --json``
    and ``POST /v1/compare``): model, format, board, chosen, because and one row per backend."""
    req = prepare_request(model_path, device, calibration=calibration, backend_options=backend_options,
                          input_shapes=input_shapes, input_values=input_values)
    chosen, support, because = choose_backend(req, exhaustive=True)
    rows = [{"backend": n, "supported": s.ok, "chosen": n == chosen, "reasons": list(s.reasons),
             "flash_bytes": s.estimate.flash_bytes if s.estimate else None,
             "ram_bytes": s.estimate.ram_bytes if s.estimate else None,
             "latency_cycles": s.estimate.latency_cycles if s.estimate else None}
            for n, s in sorted(support.items())]
    fmt = req.graph.meta.get("source_format", req.model_format) if req.graph else req.model_format
    return {"schema_version": REPORT_SCHEMA_VERSION, "model": str(model_path), "format": fmt,
            "board": device.board, "profile": device.to_dict(), "chosen": chosen, "because": because,
            "backends": rows}


def _report(req: CompileRequest, res: CompileResult, support: dict[str, Support], chosen: str,
            because: str) -> dict:
    g = req.graph
    source = user_path(req)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": f"platformio-tinyml {__version__}",
        "model": {"path": source, "format": g.meta.get("source_format", req.model_format) if g else req.model_format,
                  "sha256": sha256_file(source),
                  **({"converted_to": str(req.model_path)} if source != str(req.model_path) else {}),
                  "ops": len(g.ops) if g else None},
        "target": req.device.to_dict(),
        "backend": res.backend,
        "backend_version": res.backend_version,
        "chosen_because": because,
        "name": req.options.name,
        "arena_bytes": res.arena_bytes,
        "weight_bytes": res.weight_bytes,
        "estimated_flash_bytes": res.estimate.flash_bytes,
        "estimated_ram_bytes": res.estimate.ram_bytes,
        "estimated_latency_cycles": res.estimate.latency_cycles,
        "estimated_latency_ms": (round(1000.0 * res.estimate.latency_cycles / req.device.clock_hz, 3)
                                 if res.estimate.latency_cycles is not None and req.device.clock_hz else None),
        "files": [{"path": f.path.name, "role": f.role.value} for f in res.files],
        "diagnostics": list(res.diagnostics),
        "build_flags": list(res.build_flags),
        "lib_deps": list(res.lib_deps),
        "details": res.details,
        "candidates": {n: {"ok": s.ok, "reasons": list(s.reasons),
                           "flash": s.estimate.flash_bytes if s.estimate else None,
                           "ram": s.estimate.ram_bytes if s.estimate else None,
                           "latency_cycles": s.estimate.latency_cycles if s.estimate else None}
                       for n, s in support.items()},
    }


__all__ = ["choose_backend", "compare_backends", "compile_model", "prepare_request", "default_name", "load_any", "select_backend", "Selection", "CompileOutcome",
           "TinyMLError"]
