"""Handlers of ``tinyml module keygen|pack|inspect|verify`` (the parser is in
``cli/main.py``). They print; the library modules do not."""

from __future__ import annotations

import sys
from pathlib import Path

from .format import ModuleError, PayloadKind
from .kernels import kernel_by_id


def _keygen(args) -> int:
    from .keys import generate_keypair
    key, pub = generate_keypair(args.output)
    print(f"private key: {key} (mode 0600, keep it secret)\npublic key:  {pub}")
    return 0


def _pack(args) -> int:
    from .pack import pack_module
    r = pack_module(args.model, args.target, args.key, args.module_version, args.kind, args.boards_dir)
    args.output.write_bytes(r.data)
    h = r.header
    print(f"{args.model.name} -> {args.output} ({len(r.data):,} B, {h.payload_kind.name}, version {h.module_version})")
    print(f"  {r.n_ops} ops, weights {r.weight_bytes:,} B, payload {r.payload_bytes:,} B, arena {h.arena_bytes:,} B")
    return 0


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ModuleError("io", f"cannot read the module: {e.strerror}", where=str(path)) from None


def _inspect(args) -> int:
    from .keys import load_public_key
    from .verify import check_structure, verify_module
    data = _read(args.file)
    if args.pubkey is None:
        v = check_structure(data, str(args.file))
        signature = ("NOT checked (no --pubkey): nothing here proves who made this module; "
                     "the CRC-32 only catches transport errors")
    else:
        v = verify_module(data, load_public_key(args.pubkey), str(args.file))
        signature = f"OK (Ed25519, {args.pubkey})"
    h = v.module.header
    print(f"{args.file}: inference module, format {h.format_version}, {len(data):,} B")
    print(f"  signature    {signature}")
    print(f"  payload      {h.payload_kind.name}, {len(v.module.payload):,} B")
    print(f"  backend      {h.backend} {h.backend_version}")
    print(f"  model        {h.model_name} sha256 {h.model_sha256.hex()}")
    print(f"  version      {h.module_version}")
    print(f"  arena        {h.arena_bytes:,} B")
    if h.payload_kind is PayloadKind.GRAPH:
        names = [kernel_by_id(i).name for i in range(64) if h.kernel_mask >> i & 1]
        print(f"  abi          {h.abi}, kernel ABI 0x{h.kernel_abi_hash:016x}")
        print(f"  kernels      {', '.join(names)}")
    graph = h.payload_kind is PayloadKind.GRAPH
    for label, descs in (("input", h.inputs), ("output", h.outputs)):
        for k, d in enumerate(descs):
            where = f"at arena +{d.arena_offset}" if graph else "placed by TFLM"
            print(f"  {label} {k:<6} {d.dtype.numpy} {list(d.shape)} scale {d.scale:.6g} zp {d.zero_point} "
                  f"{where} ({d.nbytes} B)")
    if v.graph is not None:
        print(f"  ops          {len(v.graph.ops)}, weight blob {len(v.graph.blob):,} B")
        for k, op in enumerate(v.graph.ops):
            print(f"    {k:3d} {kernel_by_id(op.kernel_id).name:<22} params {len(op.params)} B, "
                  f"{len(op.relocs)} pointers, operands {[n for _, n in op.operands]}")
    return 0


def _verify(args) -> int:
    from .keys import load_public_key
    from .verify import verify_module
    try:
        v = verify_module(_read(args.file), load_public_key(args.pubkey), str(args.file))
    except ModuleError as e:
        print(f"tinyml: error: module rejected ({e.code}): {e}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK (structure, CRC-32, Ed25519 signature; version {v.module.header.module_version})")
    return 0


def run(args) -> int:
    return {"keygen": _keygen, "pack": _pack, "inspect": _inspect, "verify": _verify}[args.module_cmd](args)
