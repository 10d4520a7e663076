"""Prepare a PlatformIO core directory so that ``pio run`` works with no network.

PlatformIO downloads three kinds of things on first use: its ``tool-scons``
package, development platforms and their toolchains. None of them can be
fetched on an air-gapped machine, so :func:`setup_offline` puts local
stand-ins into the core directory, the way ``pio pkg install`` would record a
``symlink://`` package:

* ``packages/tool-scons.pio-link`` points at a stub package kept inside the
  core dir (``tinyml-offline/tool-scons``), whose ``scons.py`` starts the SCons
  that is pip-installed next to PlatformIO;
* ``platforms/<name>.pio-link`` for each platform bundled in
  ``platformio_tinyml/platforms`` (``tinyml-qemu-arm``, ``tinyml-simavr``), so a
  project's ``platformio.ini`` names them as ``platform = tinyml-qemu-arm``,
  the same on every machine. Their toolchains come from ``PATH`` (Debian's
  ``gcc-arm-none-eabi``, ``gcc-avr``), so they list no packages to download.

:func:`main` is the body of ``tinyml setup-offline``. Running it again is safe:
it rewrites the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "OfflineSetup",
    "bundled_platforms",
    "default_core_dir",
    "main",
    "platform_uris",
    "setup_offline",
]

# What PlatformIO Core 6.x asks for (platformio/dependencies.py); read from the
# installed core when possible, so a newer core gets a matching stub version.
_FALLBACK_SCONS_REQUIREMENT = "~4.41101.0"
_STUB_DIRNAME = "tinyml-offline"

_SCONS_STUB = '''\
"""tool-scons stand-in written by `tinyml setup-offline`: runs the SCons that
is pip-installed for this interpreter (PlatformIO starts this file with its own
Python), falling back to the copy found when the stub was written."""
import sys

try:
    import SCons.Script
except ImportError:
    sys.path.insert(0, {fallback!r})
    import SCons.Script

SCons.Script.main()
'''


@dataclass(frozen=True)
class OfflineSetup:
    """What :func:`setup_offline` prepared.

    ``env`` holds only the variables to export (core dir, telemetry and
    upgrade check off); :meth:`environ` merges them over the current
    environment for ``subprocess`` calls.
    """

    core_dir: Path
    scons_stub_dir: Path
    platforms: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    written: tuple[Path, ...] = ()

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Return ``base`` (default: ``os.environ``) updated with :attr:`env`."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged

    def shell_exports(self) -> str:
        """The ``export NAME=value`` lines for a POSIX shell."""
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in self.env.items())


def default_core_dir() -> Path:
    """The core dir PlatformIO would use: ``$PLATFORMIO_CORE_DIR`` or ``~/.platformio``."""
    configured = os.environ.get("PLATFORMIO_CORE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".platformio"


def bundled_platforms() -> dict[str, Path]:
    """Map each bundled platform's name to its directory (one with ``platform.json``)."""
    root = Path(__file__).resolve().parents[2] / "platforms"
    found = {}
    for manifest in sorted(root.glob("*/platform.json")):
        found[json.loads(manifest.read_text(encoding="utf-8"))["name"]] = manifest.parent
    return found


def platform_uris() -> dict[str, str]:
    """Map each bundled platform's name to ``symlink:///abs/dir``.

    Usable directly as ``platform = <uri>`` in ``platformio.ini`` when the
    core dir has not been set up with the platforms linked by name.
    """
    return {name: "symlink://" + path.as_posix() for name, path in bundled_platforms().items()}


def setup_offline(core_dir: Path | None = None, link_platforms: bool = True) -> OfflineSetup:
    """Write the offline stand-ins into ``core_dir`` and return what to export.

    ``core_dir`` defaults to :func:`default_core_dir`. With ``link_platforms``
    the bundled platforms are registered by name in ``<core_dir>/platforms``
    (a project's own ``platforms`` entries are left as they are).
    """
    core = Path(core_dir).expanduser().resolve() if core_dir else default_core_dir()
    stub_dir = core / _STUB_DIRNAME / "tool-scons"
    written = list(_write_scons_stub(stub_dir))
    written.append(_write_link(core / "packages", "platformio", "tool-scons", stub_dir))
    uris = platform_uris()
    if link_platforms:
        for name, path in bundled_platforms().items():
            written.append(_write_link(core / "platforms", None, name, path))
    env = {
        "PLATFORMIO_CORE_DIR": str(core),
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
        "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    }
    return OfflineSetup(core, stub_dir, uris, env, tuple(written))


def _scons_requirement() -> str:
    try:
        from platformio.dependencies import get_core_dependencies
    except ImportError:
        return _FALLBACK_SCONS_REQUIREMENT
    return get_core_dependencies().get("tool-scons", _FALLBACK_SCONS_REQUIREMENT)


def _scons_search_path() -> str:
    """The directory that holds the ``SCons`` package, or "" when none is installed."""
    try:
        import SCons  # noqa: F401  (only its location matters)
    except ImportError:
        return ""
    return str(Path(SCons.__file__).resolve().parents[1])


def _write_scons_stub(stub_dir: Path) -> list[Path]:
    # The lowest version the core accepts: "~4.41101.0" -> "4.41101.0".
    version = _scons_requirement().lstrip("~^=<>! ")
    manifest = {
        "name": "tool-scons",
        "version": version,
        "description": "SCons from the Python environment (platformio-tinyml offline stand-in)",
        "keywords": ["build tools"],
    }
    stub_dir.mkdir(parents=True, exist_ok=True)
    package_json = stub_dir / "package.json"
    scons_py = stub_dir / "scons.py"
    package_json.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    scons_py.write_text(_SCONS_STUB.format(fallback=_scons_search_path()), encoding="utf-8")
    return [package_json, scons_py]


def _write_link(package_dir: Path, owner: str | None, name: str, target: Path) -> Path:
    """Record ``target`` as an installed package, as ``pio pkg install symlink://`` does."""
    package_dir.mkdir(parents=True, exist_ok=True)
    spec = {"owner": owner, "id": None, "name": name, "requirements": None,
            "uri": "symlink://" + target.as_posix()}
    link = package_dir / f"{name}.pio-link"
    link.write_text(json.dumps({"cwd": str(target), "spec": spec}) + "\n", encoding="utf-8")
    return link


def main(argv: list[str] | None = None) -> int:
    """``tinyml setup-offline [--core-dir DIR] [--no-platforms]``: prepare, report, print exports."""
    parser = argparse.ArgumentParser(
        prog="tinyml setup-offline",
        description="Prepare a PlatformIO core dir so that `pio run` works without network.",
    )
    parser.add_argument("--core-dir", type=Path, default=None,
                        help="PlatformIO core dir (default: $PLATFORMIO_CORE_DIR or ~/.platformio)")
    parser.add_argument("--no-platforms", action="store_true",
                        help="do not register the bundled platforms by name")
    args = parser.parse_args(argv)
    if not _scons_search_path():
        print("Error: SCons is not installed for this Python; run `pip install scons` "
              "(or `pip install platformio-tinyml[platformio]`) and retry.", file=sys.stderr)
        return 1
    setup = setup_offline(args.core_dir, link_platforms=not args.no_platforms)
    print(f"PlatformIO core dir: {setup.core_dir}")
    for path in setup.written:
        print(f"  wrote {path}")
    if not args.no_platforms:
        print("Projects can now use: " + ", ".join(f"platform = {n}" for n in setup.platforms))
    print("Export these before `pio run`:")
    print(setup.shell_exports())
    return 0


if __name__ == "__main__":
    sys.exit(main())
