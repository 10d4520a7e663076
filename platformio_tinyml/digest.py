"""Content hashes of input files (no heavy imports: used on the fast build path)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """SHA-256 of the file at ``path``, or of the contents of every file under a
    directory (a SavedModel), in sorted path order."""
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()
