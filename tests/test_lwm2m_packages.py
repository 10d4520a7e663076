"""The pull URI's Block2 answers (platformio_tinyml.lwm2m.packages), in-process: sizes, options, refusals.

The same code over real UDP, fetched by libcoap, is in test_lwm2m_interop.py.
"""

from __future__ import annotations

import hashlib

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from platformio_tinyml.lwm2m.packages import PackageError, Packages, coap_response
from platformio_tinyml.service.store import BlobStore


def get(packages, digest, block=None) -> Message:
    req = Message(code=Code.GET, uri_path=["pkg", digest])
    if block is not None:
        req.opt.block2 = block
    return coap_response(packages, req, digest)


def test_blocks_sizes_and_options():
    pk = Packages()
    data = bytes(range(256)) * 10 + b"tail"                      # 2,564 bytes: 1024 + 1024 + 516
    digest = pk.publish(data)
    assert digest == hashlib.sha256(data).hexdigest()
    first = get(pk, digest)                                       # no Block2: block 0 of 1024
    assert (first.code, first.opt.block2, first.opt.size2, first.opt.content_format) == (
        Code.CONTENT, (0, True, 6), len(data), 42)
    assert first.payload == data[:1024] and first.opt.etag == bytes.fromhex(digest[:16])
    last = get(pk, digest, (2, False, 6))
    assert last.payload == data[2048:] and last.opt.block2 == (2, False, 6) and last.opt.size2 is None
    small = get(pk, digest, (5, False, 2))                       # the client's 64-byte blocks
    assert small.payload == data[320:384] and small.opt.block2 == (5, True, 2)
    assert b"".join(get(pk, digest, (n, False, 4)).payload for n in range(11)) == data

    tiny = pk.publish(b"x" * 1024)                               # fits one block: no Block2 at all
    whole = get(pk, tiny)
    assert whole.payload == b"x" * 1024 and whole.opt.block2 is None


@pytest.mark.parametrize("block, code, text", [((3, False, 6), Code.BAD_OPTION, "starts past the end of 2,564"),
                                               ((0, False, 7), Code.BAD_REQUEST, "SZX 7 is reserved")])
def test_bad_blocks_are_refused(block, code, text):
    pk = Packages()
    digest = pk.publish(bytes(2564))
    with pytest.raises(PackageError) as e:
        get(pk, digest, block)
    assert e.value.code == code and text in e.value.line


def test_only_published_blobs_are_served(tmp_path):
    blobs = BlobStore(tmp_path)
    secret = blobs.put(b"an uploaded model")                    # in the store, never published
    pk = Packages(blobs)
    digest = pk.publish(b"a module")
    assert pk.get(digest) == b"a module" and blobs.get(digest) == b"a module"
    assert pk.get(secret) is None
    assert pk.file(digest) == blobs.path(digest) and pk.file(secret) is None     # HTTP ranges read the file
    in_memory = Packages()
    assert in_memory.file(in_memory.publish(b"x")) is None and in_memory.get(hashlib.sha256(b"x").hexdigest())
    for name in (secret, "0" * 64, "NOT-A-DIGEST"):
        with pytest.raises(PackageError) as e:
            get(pk, name)
        assert e.value.code == Code.NOT_FOUND
    big = bytes(range(251)) * 12                                  # 3,012 bytes, read block by block from the file
    big_digest = pk.publish(big)
    blocks = [get(pk, big_digest, (n, False, 6)) for n in range(3)]
    assert b"".join(m.payload for m in blocks) == big and [m.opt.block2.more for m in blocks] == [True, True, False]
    assert blocks[0].opt.size2 == 3012
    pk.withdraw(digest)
    assert pk.get(digest) is None


def test_server_publish_gives_the_pull_uri():
    from platformio_tinyml.lwm2m.ids import LwM2MError
    from platformio_tinyml.lwm2m.server import LwM2MServer, Settings
    data = b"module bytes"
    digest = hashlib.sha256(data).hexdigest()
    server = LwM2MServer(None, None, Settings(host="127.0.0.1", port=5999))
    assert server.publish(data) == f"coap://127.0.0.1:5999/pkg/{digest}"
    assert server.packages.get(digest) == data
    assert LwM2MServer(None, None, Settings(host="::1", port=5683)).publish(data) == f"coap://[::1]:5683/pkg/{digest}"
    wildcard = LwM2MServer(None, None, Settings(host="0.0.0.0", port=5683))
    with pytest.raises(LwM2MError, match="listens on '0.0.0.0'"):
        wildcard.publish(data)
    assert wildcard.packages.get(digest) is None                # refused before anything was published
    wildcard.cfg.public_host = "10.0.0.5"
    assert wildcard.publish(data) == f"coap://10.0.0.5:5683/pkg/{digest}"
