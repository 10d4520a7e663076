"""The API's form fields turned into checked values, or a one-line 4xx.

Shared by ``POST /v1/compilations`` and ``POST /v1/compare``: the device
(a board id, a device profile as JSON, or a board manifest file), the
backend options, the C name, the calibration file, and the input shapes and
values (``--input-shape`` / ``--input-value``).
"""

from __future__ import annotations

import functools
import json
import math
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
# input_shapes / input_values: bounded, so a request cannot make the job (or the key) huge
MAX_NAMED_INPUTS = 16        # named inputs per field
MAX_INPUT_NAME = 200         # characters of a graph input's name
MAX_RANK = 8                 # dimensions of one shape
MAX_DIM = 2**31 - 1          # one dimension (a TFLite shape is int32)
MAX_INPUT_VALUES = 4096      # bound values, all inputs together
_INT64 = 2**63
INPUT_SHAPES_FORM = ('open dimensions of graph inputs set, as a JSON object: {"x": [1, 49, 10, 1]} '
                     "(--input-shape x=1,49,10,1)")
INPUT_VALUES_FORM = ('graph inputs of an ONNX model bound to constants, as a JSON object: {"sr": [16000]} '
                     "(--input-value sr=16000)")


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


def input_shapes_of(text: str | None) -> dict[str, tuple[int, ...]]:
    """The ``input_shapes`` form field: a JSON object ``{"x": [1, 49, 10, 1]}`` (``--input-shape x=1,49,10,1``)."""
    return input_shapes_from(_json_field(text, "input_shapes"))


def input_values_of(text: str | None) -> dict[str, tuple[int | float, ...]]:
    """The ``input_values`` form field: a JSON object ``{"sr": [16000]}`` (``--input-value sr=16000``)."""
    return input_values_from(_json_field(text, "input_values"))


def _json_field(text: str | None, field: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise fail(422, f"{field}: not JSON ({str(e)[:100]})") from None


def input_shapes_from(data) -> dict[str, tuple[int, ...]]:
    """Shapes sent as a JSON object of lists of positive dimensions, as
    :func:`..model.loader.parse_input_shapes` gives them (the cache key hashes this form)."""
    def shape(name: str, dims) -> tuple[int, ...]:
        if (not isinstance(dims, list) or not 1 <= len(dims) <= MAX_RANK
                or not all(type(d) is int and d >= 1 for d in dims)):
            raise fail(422, f"input_shapes: '{name}' is not a list of 1 to {MAX_RANK} positive dimensions. "
                            'For example {"x": [1, 49, 10, 1]}')
        if max(dims) > MAX_DIM:
            raise fail(422, f"input_shapes: '{name}' has a dimension over {MAX_DIM}")
        return tuple(dims)
    return _named(data, "input_shapes", shape, '{"x": [1, 49, 10, 1]}')


def input_values_from(data) -> dict[str, tuple[int | float, ...]]:
    """Bound values sent as a JSON object of lists of numbers, as
    :func:`..model.loader.parse_input_values` gives them: integers stay integers."""
    total = [0]

    def values(name: str, items) -> tuple[int | float, ...]:
        if (not isinstance(items, list) or not items
                or not all(type(v) in (int, float) for v in items)):
            raise fail(422, f"input_values: '{name}' is not a list of numbers. For example {{\"sr\": [16000]}}")
        total[0] += len(items)
        if total[0] > MAX_INPUT_VALUES:
            raise fail(422, f"input_values: more than {MAX_INPUT_VALUES} values in all")
        if not all(-_INT64 <= v < _INT64 if type(v) is int else math.isfinite(v) for v in items):
            raise fail(422, f"input_values: '{name}' holds a value that is not a finite number in the int64 range")
        return tuple(items)
    return _named(data, "input_values", values, '{"sr": [16000]}')


def _named(data, field: str, convert, example: str) -> dict:
    """``{name: convert(name, value)}`` of a JSON object of graph input names (None or {}: none)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(422, f"{field}: give a JSON object of graph input names, e.g. {example}")
    if len(data) > MAX_NAMED_INPUTS:
        raise fail(422, f"{field}: {len(data)} inputs named, at most {MAX_NAMED_INPUTS}")
    out = {}
    for name, value in data.items():
        if not name or name != name.strip() or len(name) > MAX_INPUT_NAME or not name.isprintable():
            raise fail(422, f"{field}: {name[:MAX_INPUT_NAME]!r} is not a graph input name (printable, "
                            f"no surrounding spaces, at most {MAX_INPUT_NAME} characters)")
        out[name] = convert(name, value)
    return out


def stored(named: dict[str, tuple]) -> dict[str, list] | None:
    """Input shapes or values as a build stores them (JSON lists); None for none."""
    return {k: list(v) for k, v in named.items()} or None
