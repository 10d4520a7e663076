"""What a compile child process runs (see :func:`.jobs.run_limited`).

Each function takes plain data (paths, dicts, strings), returns plain data
and raises :class:`~platformio_tinyml.errors.TinyMLError` for the user's
mistakes, exactly as ``tinyml compile`` would. They run in a fresh child
whose working directory is the job's folder, so the model path the report
records is the bare file name, as for ``tinyml compile NAME.tflite -o out``
run beside the model.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..device import DeviceProfile
from ..pipeline import choose_backend, compare_backends, compile_model, prepare_request


def _enter(workdir: str) -> None:
    os.chdir(workdir)


def check(workdir: str, model: str, device: dict, name: str, backend: str, options: dict,
          calibration: str | None) -> dict:
    """Load and validate the model and choose a backend: the quick answer the API gives at once."""
    _enter(workdir)
    req = prepare_request(Path(model), DeviceProfile.from_dict(device), name=name, backend=backend,
                          calibration=Path(calibration) if calibration else None, backend_options=dict(options))
    chosen, _support, because = choose_backend(req, backend)
    return {"format": req.model_format, "backend": chosen, "because": because}


def compile_to(workdir: str, model: str, device: dict, name: str, backend: str, options: dict,
               calibration: str | None, outdir: str = "out") -> dict:
    """``tinyml compile`` into ``workdir/outdir``; returns the report."""
    import json
    _enter(workdir)
    outcome = compile_model(Path(model), DeviceProfile.from_dict(device), Path(outdir), name=name,
                            backend=backend, calibration=Path(calibration) if calibration else None,
                            backend_options=dict(options))
    return json.loads(outcome.report_path.read_text())


def compare(workdir: str, model: str, device: dict, options: dict, calibration: str | None) -> dict:
    _enter(workdir)
    return compare_backends(Path(model), DeviceProfile.from_dict(device),
                            calibration=Path(calibration) if calibration else None, backend_options=options)


def pack(workdir: str, model: str, device: dict, key_pem: bytes, version: int, kind: str,
         calibration: str | None) -> bytes:
    """A signed inference module; the key is written 0600 in the job folder and removed."""
    from ..module.pack import pack_module
    _enter(workdir)
    key = Path("signing.key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    try:
        return pack_module(Path(model), None, key, version, kind, device=DeviceProfile.from_dict(device),
                           calibration=Path(calibration) if calibration else None).data
    finally:
        key.unlink()
