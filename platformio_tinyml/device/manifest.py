"""Reading PlatformIO board manifests: the JSON file, dotted keys, overrides.

A manifest is the ``boards/<id>.json`` of a PlatformIO platform. Values are
addressed with PlatformIO's dotted keys (``upload.maximum_ram_size``), the
same keys a user overrides in ``platformio.ini`` as ``board_upload.*`` and
``board_build.*`` options. Everything here raises
:class:`~platformio_tinyml.errors.DeviceError` for bad input.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from ..errors import DeviceError

_MISSING = object()
_INT_RE = re.compile(r"^\s*(0x[0-9a-f]+|\d+)\s*(ul|lu|l|u)?\s*$", re.IGNORECASE)


def read_manifest(path: Path) -> dict:
    """Load and return the JSON object stored in ``path``.

    Raises DeviceError naming the file when it cannot be read, is not JSON
    (with line and column) or is not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviceError("board manifest not found", where=str(path),
                          hint="Check the path, or give a board id instead") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceError(f"cannot read board manifest ({exc.__class__.__name__}: {exc})",
                          where=str(path), hint="Check the file's permissions and encoding") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeviceError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                          where=str(path),
                          hint="Fix the manifest (compare with a board of the same platform)") from None
    if not isinstance(data, dict):
        raise DeviceError(f"board manifest is a JSON {type(data).__name__}, not an object",
                          where=str(path), hint="A PlatformIO board manifest is an object with "
                          "'build', 'upload' and 'name' keys")
    return data


def get(manifest: dict, key: str, default: Any = None) -> Any:
    """Return the value at dotted ``key`` (``"build.f_cpu"``) or ``default``."""
    node: Any = manifest
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(manifest: dict, overrides: dict | None) -> dict:
    """Return a copy of ``manifest`` with dotted-key ``overrides`` set on it.

    Keys may carry PlatformIO's option prefix (``board_build.f_cpu``); it is
    dropped. The input manifest is not modified.
    """
    merged = copy.deepcopy(manifest)
    for raw_key, value in (overrides or {}).items():
        key = str(raw_key).strip()
        if key.startswith("board_"):
            key = key[len("board_"):]
        node = merged
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return merged


def parse_int(value: Any) -> int | None:
    """Parse an integer the way manifests write them: 65536, "168000000L", "0x8000".

    Returns None when ``value`` is not an integer in one of these forms.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _INT_RE.match(value)
        if match:
            digits = match.group(1)
            return int(digits, 16) if digits[:2].lower() == "0x" else int(digits)
    return None


def flags_text(value: Any) -> str:
    """Return ``build.extra_flags`` as one string (manifests use a string or a list)."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value) if value else ""
