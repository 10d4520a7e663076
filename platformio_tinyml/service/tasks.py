"""What a compile child process runs (see :func:`.jobs.run_limited`).

A job is one child: :func:`compile_to` loads and checks the model (a bad
model fails the job with the line ``tinyml compile`` prints), compiles it
and packs the artifact, so the API process never loads a model. Each function takes plain data (paths, dicts, strings), returns plain data
and raises :class:`~platformio_tinyml.errors.TinyMLError` for the user's
mistakes, exactly as ``tinyml compile`` would. They run in a fresh child
whose working directory is the job's folder, so the model path the report
records is the bare file name, as for ``tinyml compile NAME.tflite -o out``
run beside the model.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from ..device import DeviceProfile
from ..pipeline import choose_backend, compare_backends, compile_model, prepare_request


def _enter(workdir: str) -> None:
    os.chdir(workdir)


def pack_dir(folder: Path) -> bytes:
    """A reproducible .tar.gz of the files in ``folder`` (sorted, zero times and owners). Level 4:
    on the KWS sources level 6 took 8 ms more (12.6 against 4.3 ms) for 6.8 % fewer bytes, level 9
    75 ms more for 7 % fewer; the pack is on the path of every cold compile."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=4) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            data = f.read_bytes()
            info = tarfile.TarInfo(f.name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compile_to(workdir: str, model: str, device: dict, name: str, backend: str, options: dict,
               calibration: str | None, outdir: str = "out", input_shapes: dict | None = None,
               input_values: dict | None = None) -> tuple[dict, bytes]:
    """``tinyml compile`` into ``workdir/outdir``: load and check the model, choose the backend,
    compile. ``input_shapes`` / ``input_values``: ``{name: [dims]}`` / ``{name: [values]}``
    (``--input-shape`` / ``--input-value``). Returns (the report, the artifact: :func:`pack_dir` of ``outdir``)."""
    import json
    _enter(workdir)
    outcome = compile_model(Path(model), DeviceProfile.from_dict(device), Path(outdir), name=name,
                            backend=backend, calibration=Path(calibration) if calibration else None,
                            backend_options=dict(options), input_shapes=_tuples(input_shapes),
                            input_values=_tuples(input_values))
    return json.loads(outcome.report_path.read_text()), pack_dir(Path(outdir))


def _tuples(named: dict | None) -> dict[str, tuple]:
    """``{name: [...]}`` as stored (JSON) -> ``{name: (...)}`` as the loader takes it."""
    return {k: tuple(v) for k, v in (named or {}).items()}


def compare(workdir: str, model: str, device: dict, options: dict, calibration: str | None,
            input_shapes: dict | None = None, input_values: dict | None = None) -> dict:
    _enter(workdir)
    return compare_backends(Path(model), DeviceProfile.from_dict(device),
                            calibration=Path(calibration) if calibration else None, backend_options=options,
                            input_shapes=_tuples(input_shapes), input_values=_tuples(input_values))


def pack(workdir: str, model: str, device: dict, key_pem: bytes, version: int, kind: str,
         calibration: str | None, abi: int | None = None) -> bytes:
    """A signed inference module; the key is written 0600 in the job folder and removed. ``abi``:
    the executor ABI the device reported (else the profile's)."""
    from ..module.kernels import Abi
    from ..module.pack import pack_module
    _enter(workdir)
    key = Path("signing.key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    try:
        return pack_module(Path(model), None, key, version, kind, device=DeviceProfile.from_dict(device),
                           calibration=Path(calibration) if calibration else None,
                           abi=Abi(abi) if abi is not None else None).data
    finally:
        key.unlink()
