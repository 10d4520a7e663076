"""Packages for pull delivery: bytes served by their sha256, over CoAP (Block2) and HTTP.

The delivery code publishes a package (a signed inference module, a firmware
image) with :meth:`Packages.publish` and writes the URI it gets back into
``/9/x/3`` or ``/5/0/1``; the device then fetches

* ``coap://HOST:PORT/pkg/<sha256>`` from the LwM2M server's own UDP socket,
  block-wise (Block2, RFC 7959): 1024-byte blocks, or the smaller size the
  client asks for; or
* ``http://HOST:PORT/v1/packages/<sha256>`` from the service's HTTP API.

Only published digests are served, never any other blob of the service's
store (uploaded models stay private). Published bytes live in the service's
content-addressed blob store when there is one (else in memory), so the name
of a package is its content: any block of it can be asked for at any time,
in any order, which is what lets a cut transfer resume where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from aiocoap import Message
from aiocoap.numbers.codes import Code

from .codec import ContentFormat

PATH = "pkg"
DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_SZX = 6                     # 1024-byte blocks: the largest RFC 7959 size (7 is reserved)


class PackageError(Exception):
    """A request for a package we answer with ``code`` (one log line)."""

    def __init__(self, code: Code, line: str):
        self.code, self.line = code, line
        super().__init__(line)


class Packages:
    """The published packages: sha256 hex digest -> bytes (from ``blobs``, the service's BlobStore, if given)."""

    def __init__(self, blobs=None):
        self.blobs = blobs
        self._memory: dict[str, bytes] = {}
        self._published: set[str] = set()

    def publish(self, data: bytes) -> str:
        """Serve ``data`` from now on; returns its sha256 hex digest (the last part of its URIs)."""
        data = bytes(data)
        if self.blobs is not None:
            digest = self.blobs.put(data)
        else:
            digest = hashlib.sha256(data).hexdigest()
            self._memory[digest] = data
        self._published.add(digest)
        return digest

    def withdraw(self, digest: str) -> None:
        self._published.discard(digest)
        self._memory.pop(digest, None)

    def file(self, digest: str) -> Path | None:
        """The file holding a published package (in the blob store), for HTTP range requests; else None."""
        if digest not in self._published or self.blobs is None or digest in self._memory:
            return None
        path = self.blobs.path(digest)
        return path if path.is_file() else None

    def read(self, digest: str, start: int, size: int) -> tuple[bytes, int] | None:
        """``size`` bytes of a published package from ``start``, and its total size (a block reads just its
        bytes, not the whole package: firmware images are megabytes); None if not published."""
        if digest not in self._published:
            return None
        data = self._memory.get(digest)
        if data is not None:
            return data[start:start + size], len(data)
        if self.blobs is None:
            return None
        try:
            with open(self.blobs.path(digest), "rb") as f:
                total = os.fstat(f.fileno()).st_size
                f.seek(start)
                return f.read(size), total
        except (OSError, ValueError):
            return None

    def get(self, digest: str) -> bytes | None:
        if digest not in self._published:
            return None
        data = self._memory.get(digest)
        if data is None and self.blobs is not None:
            try:
                data = self.blobs.get(digest)
            except (OSError, ValueError):
                return None
        return data


def coap_response(packages: Packages, request: Message, digest: str) -> Message:
    """The answer to ``GET /pkg/<digest>``: the whole package when it fits in one 1024-byte block and no Block2
    was asked for, else the block the request's Block2 names (block 0 when none) with Size2 on the first."""
    if not DIGEST.match(digest):
        raise PackageError(Code.NOT_FOUND, f"GET /pkg/{digest[:70]}: not a sha256 digest (64 lowercase hex digits)")
    block = request.opt.block2
    if block is not None and block.size_exponent == 7:
        raise PackageError(Code.BAD_REQUEST, f"GET /pkg/{digest[:16]}...: Block2 SZX 7 is reserved (RFC 7959 2.2)")
    szx, number = (MAX_SZX, 0) if block is None else (block.size_exponent, block.block_number)
    size = 16 << szx                                             # the client's size: 16 to 1024 bytes
    start = number * size
    got = packages.read(digest, start, size)
    if got is None:
        raise PackageError(Code.NOT_FOUND, f"GET /pkg/{digest[:16]}...: no such package published")
    chunk, total = got
    etag = bytes.fromhex(digest[:16])
    if block is None and total <= size:
        return Message(code=Code.CONTENT, payload=chunk, content_format=ContentFormat.OPAQUE, etag=etag)
    if start >= total and start > 0:
        raise PackageError(Code.BAD_OPTION, f"GET /pkg/{digest[:16]}...: Block2 block {number} (size {size}) "
                                            f"starts past the end of {total:,} bytes")
    msg = Message(code=Code.CONTENT, payload=chunk, content_format=ContentFormat.OPAQUE, etag=etag)
    msg.opt.block2 = (number, start + len(chunk) < total, szx)
    if number == 0:
        msg.opt.size2 = total
    return msg
