"""Compiling through a ``tinyml serve`` service: its HTTP client, standard library only.

Used by ``tinyml remote ...`` and by :func:`compile_remote`, the service
counterpart of :func:`.core.compile_cached` for the build front ends. Every
4xx/5xx answer becomes a :class:`ServiceError` carrying the service's
one-line message; an unreachable service is :class:`ServiceUnreachable`, so
a front end can fall back to a local compile.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

from ..device import DeviceProfile
from ..digest import sha256_file
from ..errors import TinyMLError

from .core import (SOURCE_SUFFIXES, CompiledModel, ModelSpec, _backend_versions, cache_key, cached_entry,
                   compile_cached, entry_lock, fresh_dir_beside, publish_entry)

ENV_URL, ENV_TOKEN = "TINYML_SERVICE_URL", "TINYML_SERVICE_TOKEN"
CLIENT_CONFIG = Path.home() / ".config" / "platformio-tinyml" / "client.toml"


class ServiceError(TinyMLError):
    """The service refused a request or its job failed."""


class ServiceUnreachable(ServiceError):
    """No answer from the service (connection refused, DNS, timeout)."""


def client_settings(url: str | None, config: Path = CLIENT_CONFIG) -> tuple[str, str]:
    """(service URL, token): ``--service`` / ``$TINYML_SERVICE_URL`` / the config file's ``service``;
    ``$TINYML_SERVICE_TOKEN`` / the config file's ``token``."""
    saved = {}
    if config.is_file():
        try:
            import tomllib
        except ImportError:   # Python 3.10
            import tomli as tomllib
        try:
            saved = tomllib.loads(config.read_text())
        except (OSError, ValueError) as e:
            raise TinyMLError(f"cannot read the client settings ({e})", where=str(config)) from None
    url = url or os.environ.get(ENV_URL) or saved.get("service")
    token = os.environ.get(ENV_TOKEN) or saved.get("token")
    if not url:
        raise TinyMLError("no service URL", hint=f"Give --service URL or set ${ENV_URL}")
    if not token:
        raise TinyMLError("no service token", where=url,
                          hint=f"Set ${ENV_TOKEN}, or token = \"...\" in {config} (from: tinyml service token create)")
    return url.rstrip("/"), token


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (filename, data) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def model_upload(path: Path) -> tuple[str, bytes]:
    """(file name, bytes) to send for a model; a SavedModel folder goes as a .zip."""
    path = Path(path)
    if not path.is_dir():
        try:
            return path.name, path.read_bytes()
        except OSError as e:
            raise TinyMLError(f"cannot read the model ({e.strerror})", where=str(path)) from None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            zf.write(f, f.relative_to(path).as_posix())
    return path.name + ".zip", buf.getvalue()


class ServiceClient:
    def __init__(self, url: str, token: str, timeout_s: float = 120):
        self.url, self.token, self.timeout_s = url.rstrip("/"), token, timeout_s

    def request(self, method: str, path: str, fields: dict | None = None, files: dict | None = None,
                body: dict | None = None, raw: bytes | None = None) -> bytes:
        """The answer's bytes; ``fields``/``files`` go as a multipart form, ``body`` as JSON,
        ``raw`` as application/octet-stream."""
        if raw is not None:
            body, ctype = raw, "application/octet-stream"
        elif body is not None:
            body, ctype = json.dumps(body).encode(), "application/json"
        else:
            body, ctype = (_multipart({k: str(v) for k, v in (fields or {}).items() if v is not None}, files or {})
                           if fields is not None or files else (None, None))
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              **({"Content-Type": ctype} if ctype else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("detail")
            except ValueError:
                detail = None
            err = ServiceError(f"service answered {e.code}: {detail or e.reason}", where=self.url)
            err.status = e.code
            raise err from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ServiceUnreachable(f"cannot reach the service ({reason})", where=self.url,
                                     hint="Start it with 'tinyml serve' or check --service") from None

    def json(self, method: str, path: str, **kw) -> dict:
        return json.loads(self.request(method, path, **kw))

    def submit(self, model: Path, device: dict | None, target: str | None = None, backend: str = "auto",
               name: str | None = None, options: dict | None = None, calibration: Path | None = None,
               input_shapes: dict | None = None, input_values: dict | None = None) -> dict:
        """``POST /v1/compilations``; ``input_shapes`` / ``input_values`` as
        :func:`..model.loader.parse_input_shapes` / ``parse_input_values`` give them."""
        files = {"model": model_upload(model)}
        if calibration is not None:
            files["calibration"] = (Path(calibration).name, Path(calibration).read_bytes())
        fields = {"backend": backend, "name": name, "options": json.dumps(options) if options else None,
                  "profile": json.dumps(device) if device else None, "target": None if device else target,
                  **named_inputs(input_shapes, input_values, json.dumps)}
        return self.json("POST", "/v1/compilations", fields=fields, files=files)

    def lookup(self, spec: ModelSpec, device: dict | None, target: str | None = None) -> dict | None:
        """The finished compilation of ``spec`` for the board, asked by its digests (no upload); None when
        the service has none (404: then :meth:`submit`). A SavedModel folder's digest is its files'."""
        body = {"model_sha256": _digest(spec.path), "model_file": spec.path.name, "name": spec.name, "backend": spec.backend,
                "options": dict(spec.options),
                "calibration_sha256": _digest(spec.calibration) if spec.calibration else None,
                **named_inputs(dict(spec.input_shapes), dict(spec.input_values)),
                **({"profile": device} if device else {"target": target})}
        try:
            return self.json("POST", "/v1/compilations/lookup", body=body)
        except ServiceError as e:
            if getattr(e, "status", None) == 404:
                return None
            raise

    def wait(self, comp: dict, on_progress=None, poll_s: float = 0.1, hold_s: float = 2.0) -> dict:
        """Long-poll until the compilation ends (the service answers as it ends, or after
        ``hold_s`` with its progress); raises ServiceError with the job's one-line error. A
        service without long polls answers at once: then ``poll_s`` paces the asking."""
        while comp["state"] in ("queued", "running"):
            if on_progress is not None:
                on_progress(comp)
            asked = time.monotonic()
            comp = self.json("GET", f"/v1/compilations/{comp['id']}?wait={hold_s:g}")
            if comp["state"] in ("queued", "running") and time.monotonic() - asked < poll_s:
                time.sleep(poll_s)
                poll_s = min(poll_s * 1.5, hold_s)
        if comp["state"] == "failed":
            e = comp.get("error") or {}
            raise ServiceError(e.get("message") or "the compile failed", where=e.get("where"), hint=e.get("hint"))
        return comp

    def fetch(self, comp_id: str, outdir: Path) -> list[str]:
        """Unpack the artifact into ``outdir``; the file names."""
        data = self.request("GET", f"/v1/compilations/{comp_id}/artifact")
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        names = []
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                if not m.isfile() or "/" in m.name or m.name in ("", ".", ".."):
                    raise ServiceError(f"the artifact holds an unexpected entry '{m.name}'", where=self.url)
                (outdir / m.name).write_bytes(tar.extractfile(m).read())
                names.append(m.name)
        return names


def named_inputs(input_shapes: dict | None, input_values: dict | None, encode=lambda v: v) -> dict:
    """The ``input_shapes`` / ``input_values`` fields of a request (``{name: [...]}``, each ``encode``d),
    those given only: a request without them is the one an older service understands."""
    out = {}
    for field, named in (("input_shapes", input_shapes), ("input_values", input_values)):
        if named:
            out[field] = encode({k: list(v) for k, v in named.items()})
    return out


def _digest(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        raise TinyMLError(f"cannot read the file ({e.strerror})", where=str(path)) from None


def fetch_as_local(client: ServiceClient, comp_id: str, outdir: Path, model: Path) -> dict:
    """Unpack a compilation into ``outdir`` as ``tinyml compile MODEL -o OUTDIR`` writes it
    (``report.json`` names ``model`` as given); returns the report."""
    client.fetch(comp_id, outdir)
    report_path = Path(outdir) / "report.json"
    report = json.loads(report_path.read_text())
    report["model"]["path"] = str(model)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def compile_remote(client: ServiceClient, spec: ModelSpec, device: DeviceProfile, outdir: Path,
                   on_progress=None, key: str | None = None) -> CompiledModel:
    """Compile ``spec`` for ``device`` on the service into ``outdir``, as
    :func:`.core.compile_cached` would locally: the same files, byte for byte
    (``report.json`` names the model path of ``spec``), and the local cache key
    (``key``, computed when not given) written beside them, so the next
    unchanged build asks nothing. The service is asked by key first (no upload);
    ``on_progress(message)`` is called once if the service has to compile.
    """
    outdir = Path(outdir)
    key = key or cache_key(spec, device, outdir.parent)
    comp = client.lookup(spec, device.to_dict())
    if comp is None:
        comp = client.submit(spec.path, device.to_dict(), backend=spec.backend, name=spec.name,
                             options=dict(spec.options), calibration=spec.calibration,
                             input_shapes=dict(spec.input_shapes), input_values=dict(spec.input_values))
        announced = []

        def progress(c):
            if on_progress is not None and not announced:
                on_progress(f"TinyML: compiling {spec.path.name} for {device.board} on {client.url} ...")
                announced.append(True)

        comp = client.wait(comp, progress)
    with entry_lock(outdir):    # the same entry, published the same way as a local compile's
        fresh = fresh_dir_beside(outdir)
        try:
            report = fetch_as_local(client, comp["id"], fresh, spec.path)
            publish_entry(fresh, outdir, key, [f["path"] for f in report["files"]])
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    sources = [outdir / f["path"] for f in report["files"] if f["path"].endswith(SOURCE_SUFFIXES)]
    return CompiledModel(spec, outdir, report, False, sources, service=client.url,
                         service_cached=comp["cached"])


def compile_for_build(spec: ModelSpec, device: DeviceProfile, outdir: Path, service: str | None,
                      required: bool = False, on_compile=None, on_warning=None,
                      options: tuple[str, str] = ("custom_tinyml_service", "custom_tinyml_service_required"),
                      ) -> CompiledModel:
    """What a build front end calls for one model: :func:`.core.compile_cached`, or with
    ``service`` (a URL) the same through the service.

    The local entry is checked first: a valid one makes no request. An
    unreachable service is one ``on_warning(line)`` and a local compile when
    the backend is installed here, else a :class:`ServiceUnreachable`; with
    ``required`` always the latter. ``options`` names the front end's two
    settings in those lines.
    """
    if not service:
        return compile_cached(spec, device, outdir, on_compile=on_compile)
    outdir = Path(outdir)
    key = cache_key(spec, device, outdir.parent)
    found = cached_entry(spec, outdir, key)
    if found is not None:
        return found
    client = ServiceClient(*client_settings(service))
    try:
        return compile_remote(client, spec, device, outdir, on_progress=on_compile, key=key)
    except ServiceUnreachable as e:
        url_option, required_option = options
        if required:
            raise ServiceUnreachable(f"{e.what}; {required_option} is set, so no local compile", where=e.where,
                                     hint=f"Start the service or fix {url_option}") from None
        if not backend_installed(spec.backend, outdir.parent):
            raise ServiceUnreachable(f"{e.what}, and backend '{spec.backend}' is not installed here",
                                     where=e.where, hint=f"Start the service or fix {url_option}, or install the "
                                                         "backend here") from None
        if on_warning is not None:
            on_warning(f"Warning: {e.where}: {e.what}; compiling {spec.path.name} here")
        return compile_cached(spec, device, outdir, on_compile=on_compile)


def backend_installed(backend: str, memo_dir: Path | None = None) -> bool:
    """True when ``backend`` (``auto``: any backend) can compile here."""
    versions = _backend_versions(memo_dir / ".backends.json" if memo_dir else None)
    ready = [n for n, v in versions.items() if not v.startswith(("missing", "broken"))]
    return bool(ready) if backend == "auto" else backend in ready
