"""Inference module file format (``.tmm``), version 2: dataclasses, encoder
and a strict decoder. The normative description is
``docs/inference-module-format.md``; the C loader in ``runtime/`` checks
the same rules on the device.

Layout (all integers little-endian)::

    header      128-byte fixed part + 40 bytes per I/O tensor, padded to 16
    payload     payload_size bytes (a multiple of 8)
    trailer     reserved = 0 (4) | CRC-32 (4) | Ed25519 signature (64)

Each check covers every byte before it: the CRC-32 covers header, payload and
the reserved word; the signature covers all of that and the CRC. Reserved
fields must be zero and are checked before the CRC.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TinyMLError

MAGIC = b"TMOD"
FORMAT_VERSION = 2              # 2: trailer reordered, CRC and signature cover every byte
FIXED_HEADER = 128
TENSOR_DESC = 40
TRAILER = 72
SIGNATURE_BYTES = 64
GRAPH_HEADER = 16
OPERAND = 8
RELOC = 12
OP_HEADER = 8
BLOB_REF = 0x8000_0000          # operand/reloc ref: bit 31 set = weight blob, clear = arena
MAX_MODULE = 0x7FFF_0000

_FIXED = struct.Struct("<4sHHBBBBIIIIIQQ32s16s16s16s")
_DESC = struct.Struct("<BBH4IfiIII")
_GRAPH = struct.Struct("<IIII")
_OP = struct.Struct("<BBBBHH")
assert _FIXED.size == FIXED_HEADER and _DESC.size == TENSOR_DESC


class ModuleError(TinyMLError):
    """A module is malformed, tampered with, or not for this firmware.

    ``code`` is the short reason (``truncated``, ``magic``, ``crc``,
    ``signature``, ...), the same words as the C loader's error names.
    """

    def __init__(self, code: str, what: str, where: str | None = None, hint: str | None = None):
        self.code = code
        super().__init__(what, where, hint)


class PayloadKind(enum.IntEnum):
    GRAPH = 1      # op records + weights for the table-driven executor (cgen kernels)
    TFLITE = 2     # a TFLite flatbuffer for firmware with TensorFlow Lite Micro


class DTypeCode(enum.IntEnum):
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    INT32 = 4
    FLOAT32 = 5

    @property
    def itemsize(self) -> int:
        return {1: 1, 2: 1, 3: 2, 4: 4, 5: 4}[int(self)]

    @property
    def numpy(self) -> str:
        return {1: "int8", 2: "uint8", 3: "int16", 4: "int32", 5: "float32"}[int(self)]


@dataclass(frozen=True)
class TensorDesc:
    """One model input or output: type, shape, quantization, arena place."""
    dtype: DTypeCode
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0
    arena_offset: int = 0
    nbytes: int = 0


@dataclass(frozen=True)
class ModuleHeader:
    payload_kind: PayloadKind
    module_version: int
    model_sha256: bytes
    backend: str
    backend_version: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    arena_bytes: int = 0
    abi: int = 0                  # kernels.Abi for GRAPH, 0 for TFLITE
    kernel_mask: int = 0
    kernel_abi_hash: int = 0
    model_name: str = ""
    flags: int = 0
    format_version: int = FORMAT_VERSION

    @property
    def header_size(self) -> int:
        return _align(FIXED_HEADER + TENSOR_DESC * (len(self.inputs) + len(self.outputs)), 16)


@dataclass(frozen=True)
class Module:
    """A decoded module; ``signed`` is the byte range the signature covers (all but the signature)."""
    header: ModuleHeader
    payload: bytes
    crc32: int
    signature: bytes
    signed: bytes = field(repr=False)


@dataclass(frozen=True)
class OpRecord:
    """One executor step: kernel, tensor operands, pointer patches, params.

    ``operands``: (ref, nbytes) in call order (inputs, then the output);
    ``relocs``: (byte offset of a pointer field in ``params``, ref, nbytes);
    ``params``: the parameter struct in the target ABI, pointer fields zero.
    """
    kernel_id: int
    operands: tuple[tuple[int, int], ...]
    relocs: tuple[tuple[int, int, int], ...]
    params: bytes


@dataclass(frozen=True)
class GraphPayload:
    ops: tuple[OpRecord, ...]
    blob: bytes


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _text(s: str, n: int, what: str) -> bytes:
    raw = s.encode("ascii")
    if len(raw) > n:
        raise ModuleError("field", f"{what} '{s}' is longer than {n} bytes")
    return raw.ljust(n, b"\0")


def _untext(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("ascii", errors="replace")


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, as zlib) of ``data``."""
    return zlib.crc32(data) & 0xFFFF_FFFF


def _encode_desc(d: TensorDesc) -> bytes:
    if len(d.shape) > 4:
        raise ModuleError("field", f"tensor rank {len(d.shape)} > 4")
    shape = list(d.shape) + [0] * (4 - len(d.shape))
    return _DESC.pack(int(d.dtype), len(d.shape), 0, *shape, d.scale, d.zero_point, d.arena_offset, d.nbytes, 0)


def seal(body: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """``body`` (header + payload) followed by the trailer: reserved word 0, the
    CRC-32 of everything before it, and ``sign`` of everything before the signature."""
    crc_covered = body + b"\0" * 4
    signed = crc_covered + struct.pack("<I", crc32(crc_covered))
    sig = sign(signed)
    if len(sig) != SIGNATURE_BYTES:
        raise ModuleError("signature", f"signer returned {len(sig)} bytes, expected 64")
    return signed + sig


def encode_module(h: ModuleHeader, payload: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """Header + payload (zero-padded to 8) + the trailer of :func:`seal`."""
    payload = payload + b"\0" * (_align(len(payload), 8) - len(payload))
    if len(h.model_sha256) != 32:
        raise ModuleError("field", "model_sha256 must be 32 bytes")
    total = h.header_size + len(payload) + TRAILER
    fixed = _FIXED.pack(MAGIC, h.format_version, h.header_size, int(h.payload_kind), h.abi,
                        len(h.inputs), len(h.outputs), h.flags, h.module_version, total, len(payload),
                        h.arena_bytes, h.kernel_mask, h.kernel_abi_hash, h.model_sha256,
                        _text(h.backend, 16, "backend"), _text(h.backend_version, 16, "backend version"),
                        _text(h.model_name[:16], 16, "model name"))
    head = fixed + b"".join(_encode_desc(d) for d in (*h.inputs, *h.outputs))
    return seal(head.ljust(h.header_size, b"\0") + payload, sign)


def _reserved_defect(data: bytes, n_tensors: int, hsize: int, end: int) -> str | None:
    """The first reserved field of the header or trailer that is not zero (spec section 2)."""
    for k in range(n_tensors):
        at = FIXED_HEADER + k * TENSOR_DESC
        _, rank, r16, *shape = struct.unpack_from("<BBH4I", data, at)
        if r16 or struct.unpack_from("<I", data, at + 36)[0]:
            return f"tensor descriptor {k}: reserved field not zero"
        if any(shape[rank:]):
            return f"tensor descriptor {k}: shape entries past rank {rank} not zero"
    if any(data[FIXED_HEADER + n_tensors * TENSOR_DESC:hsize]):
        return "header padding not zero"
    if any(data[end:end + 4]):
        return "trailer reserved word not zero"
    return None


def decode_module(data: bytes, where: str | None = None) -> Module:
    """Parse and structurally check ``data``; the signature is not checked here.

    Raises :class:`ModuleError` naming the first defect (same order as the C loader).
    """
    data = bytes(data)

    def bad(code, what):
        return ModuleError(code, what, where)

    if len(data) < FIXED_HEADER + TRAILER:
        raise bad("truncated", f"{len(data)} bytes is shorter than the smallest module ({FIXED_HEADER + TRAILER})")
    f = _FIXED.unpack_from(data)
    (magic, fver, hsize, kind, abi, n_in, n_out, flags, mver, total, psize, arena, kmask, khash,
     sha, backend, bver, mname) = f
    if magic != MAGIC:
        raise bad("magic", f"not an inference module (magic {magic!r}, expected {MAGIC!r})")
    if fver != FORMAT_VERSION:
        raise bad("format_version", f"format version {fver} (this reader knows {FORMAT_VERSION})")
    if total != len(data):
        raise bad("truncated" if total > len(data) else "size",
                  f"header says {total} bytes, the file has {len(data)}")
    need = _align(FIXED_HEADER + TENSOR_DESC * (n_in + n_out), 16)
    if hsize != need:
        raise bad("header", f"header size {hsize}, expected {need} for {n_in}+{n_out} tensors")
    if flags:
        raise bad("header", f"unknown flags 0x{flags:x}")
    if psize % 8 or hsize + psize + TRAILER != total:
        raise bad("size", f"payload size {psize} does not fill the module ({total} bytes, header {hsize})")
    end = hsize + psize
    defect = _reserved_defect(data, n_in + n_out, hsize, end)
    if defect:
        raise bad("reserved", defect)
    computed, stored_crc = crc32(data[:end + 4]), struct.unpack_from("<I", data, end + 4)[0]
    if stored_crc != computed:
        raise bad("crc", f"CRC-32 mismatch (stored 0x{stored_crc:08x}, computed 0x{computed:08x}): "
                         "corrupted in transport")
    if kind not in PayloadKind._value2member_map_:
        raise bad("kind", f"unknown payload kind {kind}")
    descs = []
    for k in range(n_in + n_out):
        dt, rank, _, s0, s1, s2, s3, scale, zp, aoff, nbytes, _r = _DESC.unpack_from(data, FIXED_HEADER + k * TENSOR_DESC)
        if dt not in DTypeCode._value2member_map_ or rank > 4:
            raise bad("tensor", f"tensor descriptor {k}: dtype {dt}, rank {rank}")
        shape = (s0, s1, s2, s3)[:rank]
        count = 1
        for d in shape:
            count *= d
        if count * DTypeCode(dt).itemsize != nbytes or (kind == PayloadKind.GRAPH and aoff + nbytes > arena):
            raise bad("tensor", f"tensor descriptor {k}: {nbytes} bytes at arena offset {aoff} does not match "
                                f"shape {list(shape)} or the arena ({arena} bytes)")
        descs.append(TensorDesc(DTypeCode(dt), shape, scale, zp, aoff, nbytes))
    header = ModuleHeader(PayloadKind(kind), mver, sha, _untext(backend), _untext(bver),
                          tuple(descs[:n_in]), tuple(descs[n_in:]), arena, abi, kmask, khash,
                          _untext(mname), flags, fver)
    return Module(header, data[hsize:end], stored_crc, data[end + 8:], data[:end + 8])


def encode_graph(g: GraphPayload) -> bytes:
    """Graph payload: 16-byte header, op records, then the weight blob (16-aligned)."""
    recs = []
    for op in g.ops:
        body = b"".join(struct.pack("<II", r, n) for r, n in op.operands)
        body += b"".join(struct.pack("<HHII", fo, 0, r, n) for fo, r, n in op.relocs)
        body += op.params
        size = _align(OP_HEADER + len(body), 4)
        recs.append((_OP.pack(op.kernel_id, len(op.operands), len(op.relocs), 0, len(op.params), size)
                     + body).ljust(size, b"\0"))
    ops = b"".join(recs)
    blob_off = _align(GRAPH_HEADER + len(ops), 16)
    head = _GRAPH.pack(len(g.ops), len(ops), blob_off, len(g.blob))
    return (head + ops).ljust(blob_off, b"\0") + g.blob


def decode_graph(payload: bytes, arena_bytes: int, where: str | None = None) -> GraphPayload:
    """Parse a graph payload, checking every record and extent against its region."""
    def bad(what):
        return ModuleError("graph", what, where)

    if len(payload) < GRAPH_HEADER:
        raise bad("graph payload shorter than its header")
    n_ops, ops_size, blob_off, blob_size = _GRAPH.unpack_from(payload)
    if (GRAPH_HEADER + ops_size > blob_off or blob_off % 16 or blob_off > len(payload)
            or blob_size > len(payload) - blob_off):
        raise bad(f"regions do not fit: ops {ops_size} B, blob {blob_size} B at {blob_off}, payload {len(payload)} B")
    if any(payload[GRAPH_HEADER + ops_size:blob_off]) or any(payload[blob_off + blob_size:]):
        raise bad("padding around the weight blob not zero")
    blob = payload[blob_off:blob_off + blob_size]

    def check_ref(ref, n, what):
        space, off = (blob_size, ref & ~BLOB_REF) if ref & BLOB_REF else (arena_bytes, ref)
        if off % 4:   # kernels load int32/float words (spec section 1)
            raise bad(f"{what}: {'blob' if ref & BLOB_REF else 'arena'} offset {off} is not 4-byte aligned")
        if off > space or n > space - off:
            raise bad(f"{what}: {n} bytes at {'blob' if ref & BLOB_REF else 'arena'} offset {off} "
                      f"outside its region ({space} bytes)")

    ops, pos, end = [], GRAPH_HEADER, GRAPH_HEADER + ops_size
    for k in range(n_ops):
        if end - pos < OP_HEADER:
            raise bad(f"op {k}: record header past the op table")
        kid, n_opnd, n_rel, reserved, psize, rsize = _OP.unpack_from(payload, pos)
        need = OP_HEADER + OPERAND * n_opnd + RELOC * n_rel + psize
        if rsize % 4 or rsize < need or rsize > end - pos:
            raise bad(f"op {k}: record size {rsize} (needs {need}, {end - pos} left)")
        if reserved or any(payload[pos + need:pos + rsize]):
            raise bad(f"op {k}: reserved byte or record padding not zero")
        q = pos + OP_HEADER
        operands = []
        for j in range(n_opnd):
            r, n = struct.unpack_from("<II", payload, q + OPERAND * j)
            check_ref(r, n, f"op {k} operand {j}")
            operands.append((r, n))
        if operands and operands[-1][0] & BLOB_REF:
            raise bad(f"op {k}: output operand in the weight blob (outputs are written: arena only)")
        q += OPERAND * n_opnd
        relocs = []
        for j in range(n_rel):
            fo, reserved, r, n = struct.unpack_from("<HHII", payload, q + RELOC * j)
            if reserved:
                raise bad(f"op {k} pointer {j}: reserved field not zero")
            check_ref(r, n, f"op {k} pointer {j}")
            if fo % 4 or fo + 4 > psize:
                raise bad(f"op {k} pointer {j}: field offset {fo} outside the {psize}-byte parameter block")
            relocs.append((fo, r, n))
        q += RELOC * n_rel
        ops.append(OpRecord(kid, tuple(operands), tuple(relocs), payload[q:q + psize]))
        pos += rsize
    if pos != end:
        raise bad(f"op table has {end - pos} bytes after the last record")
    return GraphPayload(tuple(ops), blob)
