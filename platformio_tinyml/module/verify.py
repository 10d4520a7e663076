"""Check a module the way the device will: structure, CRC, signature, and
(optionally) compatibility with a firmware. Called by ``tinyml module
verify`` and ``inspect``; raises :class:`ModuleError` on the first defect.
"""

from __future__ import annotations

from dataclasses import dataclass

from .format import GraphPayload, Module, ModuleError, PayloadKind, decode_graph, decode_module
from .kernels import Abi, kernel_abi_hash, kernel_by_id


@dataclass(frozen=True)
class VerifiedModule:
    module: Module
    graph: GraphPayload | None


def check_structure(data: bytes, where: str | None = None) -> VerifiedModule:
    """Decode header, trailer and every op record (GRAPH) or the flatbuffer identifier (TFLITE); no
    signature check."""
    mod = decode_module(data, where)
    h = mod.header
    graph = None
    if h.payload_kind is PayloadKind.GRAPH:
        if h.abi not in Abi._value2member_map_:
            raise ModuleError("abi", f"unknown ABI {h.abi}", where)
        graph = decode_graph(mod.payload, h.arena_bytes, where)
        used = 0
        for k, op in enumerate(graph.ops):
            kern = kernel_by_id(op.kernel_id)
            if kern is None:
                raise ModuleError("kernel", f"op {k}: unknown kernel id {op.kernel_id}", where)
            used |= 1 << op.kernel_id
        if used != h.kernel_mask:
            raise ModuleError("kernel", f"kernel mask 0x{h.kernel_mask:x} does not match the ops (0x{used:x})", where)
    elif h.payload_kind is PayloadKind.TFLITE:
        if h.abi or h.kernel_mask or h.kernel_abi_hash:
            raise ModuleError("header", "a TFLITE module has ABI, kernel mask and kernel ABI 0", where)
        if len(mod.payload) < 8 or mod.payload[4:8] != b"TFL3":
            raise ModuleError("tflite", "the TFLITE payload is not a TFLite flatbuffer (no 'TFL3' identifier)", where)
    return VerifiedModule(mod, graph)


def check_signature(mod: Module, public_key, where: str | None = None) -> None:
    from cryptography.exceptions import InvalidSignature
    try:
        public_key.verify(mod.signature, mod.signed)
    except InvalidSignature:
        raise ModuleError("signature", "Ed25519 signature does not match this public key", where,
                          hint="The module was altered or signed with another key") from None


def check_compatible(mod: Module, abi: Abi, kernel_mask: int, installed_version: int = 0,
                     where: str | None = None) -> None:
    """Would a firmware with ``abi`` and ``kernel_mask`` accept this module?"""
    h = mod.header
    if h.payload_kind is not PayloadKind.GRAPH:
        raise ModuleError("kind", f"payload kind {h.payload_kind.name}; this firmware runs GRAPH modules", where)
    if h.abi != abi or h.kernel_abi_hash != kernel_abi_hash(abi):
        raise ModuleError("kernel_abi", f"built for kernel ABI {h.abi}/0x{h.kernel_abi_hash:016x}, the firmware has "
                                        f"{int(abi)}/0x{kernel_abi_hash(abi):016x}", where,
                          hint="Repack the model with the tinyml version the firmware was built with")
    missing = h.kernel_mask & ~kernel_mask
    if missing:
        names = [kernel_by_id(i).name for i in range(64) if missing >> i & 1 and kernel_by_id(i)]
        raise ModuleError("kernel_set", f"needs kernels the firmware lacks: {', '.join(names)}", where)
    if h.module_version < installed_version:
        raise ModuleError("version", f"module version {h.module_version} is older than the installed "
                                     f"{installed_version}", where)


def verify_module(data: bytes, public_key, where: str | None = None) -> VerifiedModule:
    """Structure + CRC + signature; returns the decoded module."""
    v = check_structure(data, where)
    check_signature(v.module, public_key, where)
    return v
