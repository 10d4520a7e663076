"""Finding a board's manifest by id and turning it into a ``DeviceProfile``.

Board ids are looked up, first hit wins, in: the ``search_dirs`` given by the
caller, the folders in ``$TINYML_BOARDS_DIRS`` (``os.pathsep``-separated),
PlatformIO's installed platforms (``$PLATFORMIO_CORE_DIR`` or
``~/.platformio``, ``platforms/*/boards/*.json``), the emulated boards bundled
with this package (``platformio_tinyml/platforms/*/boards/*.json``) and, last,
the package's board database (``platformio_tinyml/device/boards_db/<platform>/``:
PlatformIO's own manifests, Apache-2.0, laid out at setup time by
``scripts/build_board_db.py``), so a board id works on a fresh, offline install
with no vendor platform. A folder may hold manifests directly, in
per-platform subfolders, or in ``<platform>/boards/``.
"""

from __future__ import annotations

import difflib
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DeviceError
from .manifest import read_manifest
from .profile import DeviceProfile, profile_from_manifest

ENV_DIRS = "TINYML_BOARDS_DIRS"
_BUNDLED = Path(__file__).resolve().parents[1] / "platforms"
BOARD_DB = Path(__file__).resolve().parent / "boards_db"
# JSON files that live beside manifests in platform checkouts but are not boards.
_NOT_BOARDS = {"platform.json", "package.json", "library.json"}


@dataclass(frozen=True)
class _Root:
    """A folder to search and the glob patterns that find manifests under it."""

    path: Path
    patterns: tuple[str, ...]


_USER_PATTERNS = ("{id}.json", "*/{id}.json", "*/boards/{id}.json")
_PLATFORM_PATTERNS = ("*/boards/{id}.json",)
_DB_PATTERNS = ("*/{id}.json",)


def load_profile(target: str | os.PathLike, overrides: dict | None = None,
                 search_dirs: Iterable[str | os.PathLike] | None = None) -> DeviceProfile:
    """Return the :class:`DeviceProfile` of ``target``.

    ``target`` is a board id (``nucleo_f446re``) or the path of a manifest
    ``.json``. ``overrides`` are the dotted ``board_*`` keys from
    ``platformio.ini`` and win over the manifest. ``search_dirs`` are searched
    before the default locations. Raises DeviceError (one line, with a hint)
    for an unknown board or an unusable manifest.
    """
    text = str(target).strip()
    if not text:
        raise DeviceError("no board given", hint="Set board = <id> in platformio.ini")
    if _looks_like_path(text):
        path = Path(text).expanduser()
    else:
        path = _find_board(text, _roots(search_dirs))
    manifest = read_manifest(path)
    return profile_from_manifest(manifest, path.stem, overrides, _platform_from_path(path),
                                 source=str(path))


def list_boards(search_dirs: Iterable[str | os.PathLike] | None = None) -> dict[str, Path]:
    """Return every board id that :func:`load_profile` can find, sorted, with its manifest path.

    When an id exists in several folders, the one searched first is kept.
    """
    found: dict[str, Path] = {}
    for path in _all_manifests(_roots(search_dirs)):
        found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".json") or "/" in text or os.sep in text


def _roots(search_dirs: Iterable[str | os.PathLike] | None) -> list[_Root]:
    roots = [_Root(Path(d).expanduser(), _USER_PATTERNS) for d in search_dirs or ()]
    env = os.environ.get(ENV_DIRS, "")
    roots += [_Root(Path(d).expanduser(), _USER_PATTERNS) for d in env.split(os.pathsep) if d.strip()]
    core_dir = os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio"
    roots.append(_Root(Path(core_dir).expanduser() / "platforms", _PLATFORM_PATTERNS))
    roots.append(_Root(_BUNDLED, _PLATFORM_PATTERNS))
    roots.append(_Root(BOARD_DB, _DB_PATTERNS))
    return roots


def _glob(root: _Root, name_glob: str) -> Iterator[Path]:
    for pattern in root.patterns:
        for hit in sorted(glob.glob(str(root.path / pattern.format(id=name_glob)))):
            path = Path(hit)
            if path.name not in _NOT_BOARDS and path.is_file():
                yield path


def _all_manifests(roots: list[_Root]) -> Iterator[Path]:
    for root in roots:
        yield from _glob(root, "*")


def _find_board(board_id: str, roots: list[_Root]) -> Path:
    for root in roots:
        for hit in _glob(root, glob.escape(board_id)):
            return hit
    raise _unknown_board(board_id, roots)


def _unknown_board(board_id: str, roots: list[_Root]) -> DeviceError:
    known = {p.stem for p in _all_manifests(roots)}
    close = difflib.get_close_matches(board_id, known, n=3, cutoff=0.6)
    suggestion = f"Did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    looked = [str(r.path) for r in roots if r.path.is_dir()] or ["no existing folder"]
    shown = ", ".join(looked[:4]) + (f" and {len(looked) - 4} more" if len(looked) > 4 else "")
    return DeviceError(
        f"unknown board '{board_id}' (looked in {shown})",
        hint=f"{suggestion}Search the known boards with 'tinyml boards QUERY'; add the folder holding "
             f"{board_id}.json to {ENV_DIRS}, or give the path to the manifest .json",
    )


def _platform_from_path(path: Path) -> str:
    """Guess the platform from ``<platform>/boards/<id>.json`` or ``<platform>/<id>.json``.

    Under ``boards/`` (an installed platform, maybe ``ststm32@src-...``) the
    folder name is taken as is; a bare folder counts only if it is a platform
    name we know, so ``~/my-boards/x.json`` does not become platform "my-boards".
    """
    parent = path.resolve().parent
    if parent.parent == BOARD_DB.resolve():
        return parent.name
    if parent.name == "boards":
        return parent.parent.name.split("@", 1)[0]
    return parent.name if parent.name in _KNOWN_PLATFORMS else ""


_KNOWN_PLATFORMS = {
    "atmelavr", "atmelmegaavr", "atmelsam", "espressif32", "espressif8266", "linux_arm",
    "nordicnrf51", "nordicnrf52", "nordicnrf53", "nordicnrf91", "nxpimxrt", "nxplpc",
    "raspberrypi", "sifive", "siliconlabsefm32", "ststm32", "teensy", "timsp430", "titiva",
    "gd32v", "freescalekinetis", "native",
}
