"""Content-addressed blob store: a blob's name is the sha256 of its bytes.

Blobs (uploaded models, calibration sets, artifact archives) live under
``ROOT/ab/cdef...``. A write goes to a temporary file in the same folder,
is flushed to disk and renamed into place, so a reader never sees half a
blob and two writers of the same bytes cannot collide.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its sha256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.is_file():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def put_file(self, path: Path) -> str:
        return self.put(Path(path).read_bytes())

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()
