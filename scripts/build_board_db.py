#!/usr/bin/env python3
"""Copy the PlatformIO board manifests into the package's fallback board database.

The database is ``platformio_tinyml/device/boards_db/<platform>/<id>.json`` plus
each platform's ``LICENSE`` (all Apache-2.0) and a ``SOURCES.md`` naming where
they came from. It is git-ignored: the manifests are third-party files, so
``scripts/setup.sh`` lays them out at setup time from a folder of manifests
(default ``../shared/boards``), and wheels built afterwards carry them.

    python scripts/build_board_db.py [SOURCE_DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "platformio_tinyml" / "device" / "boards_db"


def build(source: Path, dest: Path = DEST) -> int:
    """Replace ``dest`` with the manifests of ``source``; returns the board count."""
    tmp = Path(tempfile.mkdtemp(prefix=".boards_db.", dir=dest.parent))
    count = 0
    for platform_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        boards = sorted(platform_dir.glob("*.json"))
        if not boards:
            continue
        out = tmp / platform_dir.name
        out.mkdir()
        for b in boards:
            json.loads(b.read_text(encoding="utf-8"))      # only well-formed manifests
            shutil.copyfile(b, out / b.name)
            count += 1
        lic = platform_dir / "LICENSE"
        if lic.is_file():
            shutil.copyfile(lic, out / "LICENSE")
    for name in ("MANIFEST.md",):
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp / "SOURCES.md")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return count


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else REPO.parent / "shared" / "boards"
    if not source.is_dir():
        print(f"[boards] no board manifests at {source}: the fallback board database stays as it is")
        return 0
    n = build(source)
    print(f"[boards] {n} board manifests from {source} -> {DEST.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
