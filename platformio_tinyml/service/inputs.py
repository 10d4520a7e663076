"""The API's form fields turned into checked values, or a one-line 4xx.

Shared by ``POST /v1/compilations`` and ``POST /v1/compare``: the device
(a board id, a device profile as JSON, or a board manifest file), the
backend options, the C name and the calibration file.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import MISSING, fields
from pathlib import PurePosixPath

from fastapi import HTTPException, UploadFile

from ..device import DeviceProfile, load_profile, profile_from_manifest
from ..errors import TinyMLError
from .uploads import check_name

BOARD_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
C_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
BACKEND = re.compile(r"^[a-z0-9_-]{1,50}$")
MAX_MANIFEST_BYTES = 1 << 20


def fail(status: int, message: str) -> HTTPException:
    """An HTTP error whose body is ``{"detail": message}`` (one line)."""
    return HTTPException(status, " ".join(str(message).split()))


def read_upload(f: UploadFile, limit: int) -> bytes:
    data = f.file.read(limit + 1)
    if len(data) > limit:
        raise fail(413, f"{f.filename or 'upload'}: larger than the limit of {limit:,} bytes")
    return data


def device_of(target: str | None, profile: str | dict | None, manifest: UploadFile | None,
              boards_dirs: tuple[str, ...]) -> DeviceProfile:
    given = [n for n, v in (("target", target), ("profile", profile), ("manifest", manifest)) if v]
    if len(given) != 1:
        raise fail(422, "give exactly one of target (a board id), profile (JSON) or manifest (a file); "
                        f"got {', '.join(given) or 'none'}")
    try:
        if target:
            if not BOARD_ID.match(target) or target.endswith(".json"):
                raise fail(422, f"target: '{target[:100]}' is not a board id. Use an id such as nucleo_f446re, "
                                "or send the manifest as a file")
            return _board(target, boards_dirs)
        if profile:
            return _profile_from_json(profile) if isinstance(profile, str) else profile_of(profile)
        name = check_name(manifest.filename, "manifest")
        try:
            data = json.loads(read_upload(manifest, MAX_MANIFEST_BYTES))
        except (ValueError, UnicodeDecodeError) as e:
            raise fail(422, f"manifest {name}: not JSON ({e})") from None
        stem = PurePosixPath(name).stem
        if not BOARD_ID.match(stem):
            raise fail(422, f"manifest: '{name}' does not name a board id (letters, digits, _ . + -)")
        return profile_from_manifest(data, stem, source=name)
    except TinyMLError as e:
        raise fail(422, str(e)) from None


@functools.lru_cache(maxsize=512)
def _board(target: str, boards_dirs: tuple[str, ...]) -> DeviceProfile:
    """A board's profile, read once per process (profiles are frozen)."""
    return load_profile(target, search_dirs=list(boards_dirs) or None)


_KINDS = {"str": str, "int": int, "bool": bool, "str | None": (str, type(None)), "tuple[str, ...]": list}


def _profile_from_json(text: str) -> DeviceProfile:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise fail(422, f"profile: not JSON ({e})") from None
    return profile_of(data)


def profile_of(data) -> DeviceProfile:
    """A device profile sent as data (as ``GET /v1/boards/{id}`` returns it), checked field by field."""
    if not isinstance(data, dict):
        raise fail(422, "profile: not a JSON object (send a device profile as GET /v1/boards/{id} returns it)")
    for f in fields(DeviceProfile):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise fail(422, f"profile: field '{f.name}' is missing")
            continue
        kind, value = _KINDS[str(f.type)], data[f.name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (
                kind is list and not all(isinstance(v, str) for v in value)):
            raise fail(422, f"profile: field '{f.name}' has the wrong type ({type(value).__name__})")
    if min(data["flash_bytes"], data["ram_bytes"], data["word_bits"], data["clock_hz"]) <= 0:
        raise fail(422, "profile: flash_bytes, ram_bytes, word_bits and clock_hz must be positive")
    try:
        return DeviceProfile.from_dict(data)
    except (TypeError, ValueError) as e:
        raise fail(422, f"profile: {e}") from None


def options_of(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise fail(422, f"options: not JSON ({e})") from None
    return options_from(data)


def options_from(data) -> dict[str, str]:
    """Backend options sent as a JSON object, as the build front ends hold them (strings)."""
    if not isinstance(data, dict) or not all(isinstance(v, (str, int, float, bool)) for v in data.values()):
        raise fail(422, 'options: give a JSON object of backend options, e.g. {"speed": "fast"}')
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


def name_of(name: str | None, filename: str) -> str:
    from ..naming import default_name
    name = name or default_name(PurePosixPath(filename))
    if not C_NAME.match(name):
        raise fail(422, f"name: '{name[:100]}' is not a C identifier (letters, digits, _; at most 64)")
    return name


def backend_of(backend: str | None) -> str:
    """``auto`` or the name of an installed backend (an entry point; nothing is imported). A
    backend that is installed but cannot be used fails its job with the reason."""
    backend = backend or "auto"
    if not BACKEND.match(backend):
        raise fail(422, f"backend: '{backend[:60]}' is not a backend name. See GET /v1/backends")
    if backend != "auto" and backend not in _installed_backends():
        raise fail(422, f"backend: '{backend}' is not installed here; available: "
                        f"{', '.join(sorted(_installed_backends()))} or auto. See GET /v1/backends")
    return backend


@functools.lru_cache(maxsize=1)
def _installed_backends() -> frozenset[str]:
    from importlib import metadata
    from ..compilers.registry import GROUP
    return frozenset({ep.name for ep in metadata.entry_points(group=GROUP)} | {"cgen"})   # cgen: as discover()


def calibration_of(f: UploadFile | None, limit: int) -> bytes | None:
    if f is None:
        return None
    name = check_name(f.filename, "calibration")
    if not name.lower().endswith(".npy"):
        raise fail(415, f"calibration {name}: send a NumPy .npy array of representative inputs")
    data = read_upload(f, limit)
    if not data:
        raise fail(422, f"calibration {name}: the file is empty")
    return data
