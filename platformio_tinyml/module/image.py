"""Factory image: the firmware with the module executor and a signed module already in slot A.

Role: what a manufacturer flashes once (``pio run -t tinyml-image``, SCons
``env.TinyMLImage``); models change over the air afterwards. The image is
raw flash contents from the firmware's lowest load address to the end of
the module in slot A (gaps 0xFF, as erased flash); slot B stays erased. A
JSON layout beside it records addresses, slot sizes and the module (name,
version, size, SHA-256). QEMU boots such an image as is (``-kernel image.bin``
on mps2 loads a raw file at address 0).

The module is checked before it goes in: structure and, when the firmware's
public key and kernel set are known, signature and compatibility, so the
image never holds a module its own firmware would refuse.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from ..errors import TinyMLError
from .format import ModuleError

LAYOUT_FORMAT = "tinyml-factory-image/1"
PT_LOAD = 1


def load_segments(elf: bytes, where: str) -> list[tuple[int, bytes]]:
    """(physical address, bytes) of each loadable segment with file contents (32-bit LE ELF)."""
    if len(elf) < 52 or elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        raise TinyMLError("not a 32-bit little-endian ELF firmware", where=where,
                          hint="Give the linked firmware (.elf) of the build")
    phoff, = struct.unpack_from("<I", elf, 28)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    out = []
    for k in range(phnum):
        base = phoff + k * phentsize
        if base + 32 > len(elf):
            raise TinyMLError("ELF program header table is cut short", where=where)
        ptype, off, _, paddr, filesz = struct.unpack_from("<IIIII", elf, base)
        if ptype == PT_LOAD and filesz:
            if off + filesz > len(elf):
                raise TinyMLError("ELF segment lies past the end of the file", where=where)
            out.append((paddr, elf[off:off + filesz]))
    if not out:
        raise TinyMLError("the ELF has nothing to load", where=where)
    return sorted(out)


def parse_slots(addresses: str | None, size: str | None, where: str) -> list[tuple[int, int]]:
    """``"0x00200000, 0x00300000"`` and ``"0x100000"`` as [(address, size), (address, size)]."""
    items = [a.strip() for a in (addresses or "").replace("\n", ",").split(",") if a.strip()]
    try:
        addrs = [int(a, 0) for a in items]
        nbytes = int((size or "").strip(), 0)
    except ValueError:
        addrs, nbytes = [], 0
    if len(addrs) != 2 or nbytes <= 0:
        raise TinyMLError("the two module slots and their size are not set", where=where,
                          hint="Set the A and B slot addresses and the slot size, e.g. 0x00200000, 0x00300000 "
                               "and 0x100000 (what the firmware's main.c uses)")
    if abs(addrs[0] - addrs[1]) < nbytes:
        raise TinyMLError(f"slots at 0x{addrs[0]:x} and 0x{addrs[1]:x} overlap ({nbytes} bytes each)", where=where)
    return [(a, nbytes) for a in addrs]


def _check_module(module: bytes, public_key, kernel_mask: int | None, abi, where: str):
    from .verify import check_compatible, check_signature, check_structure
    v = check_structure(module, where)
    if public_key is not None:
        check_signature(v.module, public_key, where)
    if kernel_mask is not None and abi is not None:
        check_compatible(v.module, abi, kernel_mask, where=where)
    return v.module.header


def factory_image(elf: bytes, module: bytes, slots: list[tuple[int, int]], public_key=None,
                  kernel_mask: int | None = None, abi=None, where: str = "factory image") -> tuple[bytes, dict]:
    """The image bytes and its layout (without file names)."""
    try:
        header = _check_module(module, public_key, kernel_mask, abi, f"{where}: slot A module")
    except ModuleError as exc:
        raise TinyMLError(f"the module for slot A is refused: {exc.what}", where=exc.where, hint=exc.hint) from None
    (a_addr, slot_size), (b_addr, _) = slots
    if len(module) > slot_size:
        raise TinyMLError(f"the module ({len(module)} bytes) does not fit a {slot_size}-byte slot", where=where)
    segments = load_segments(elf, where)
    base = segments[0][0]
    fw_end = max(addr + len(data) for addr, data in segments)
    for addr, data in segments:
        for name, s in (("A", a_addr), ("B", b_addr)):
            if addr < s + slot_size and s < addr + len(data):
                raise TinyMLError(f"the firmware (0x{addr:x}-0x{addr + len(data):x}) overlaps slot {name} "
                                  f"(0x{s:x})", where=where, hint="Move the slots past the firmware")
    if a_addr < base:
        raise TinyMLError(f"slot A (0x{a_addr:x}) lies below the firmware (0x{base:x})", where=where)
    image = bytearray(b"\xff" * (a_addr + len(module) - base))
    for addr, data in segments:
        image[addr - base:addr - base + len(data)] = data
    image[a_addr - base:] = module
    layout = {
        "format": LAYOUT_FORMAT, "base": base, "size": len(image),
        "sha256": hashlib.sha256(image).hexdigest(),
        "firmware": {"start": base, "end": fw_end},
        "active_slot": "A",
        "slots": [
            {"name": "A", "address": a_addr, "size": slot_size,
             "module": {"name": header.model_name, "version": header.module_version,
                        "kind": header.payload_kind.name, "size": len(module),
                        "sha256": hashlib.sha256(module).hexdigest()}},
            {"name": "B", "address": b_addr, "size": slot_size, "module": None}],
    }
    return bytes(image), layout


def write_factory_image(elf: Path, module: bytes, slots: list[tuple[int, int]], out: Path, **checks) -> dict:
    """Write ``out`` (the image) and ``out`` with ``.json`` (its layout); returns the layout."""
    elf, out = Path(elf), Path(out)
    try:
        elf_bytes = elf.read_bytes()
    except OSError as exc:
        raise TinyMLError(f"cannot read the firmware: {exc.strerror}", where=str(elf)) from None
    image, layout = factory_image(elf_bytes, module, slots, where=str(out), **checks)
    layout = {"image": out.name, "firmware_elf": str(elf), **layout}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image)
    out.with_suffix(".json").write_text(json.dumps(layout, indent=2) + "\n")
    return layout


def summary(layout: dict) -> str:
    """One line for build logs."""
    a = layout["slots"][0]
    m = a["module"]
    return (f"TinyML: factory image {layout['image']} ({layout['size']:,} B at 0x{layout['base']:08x}): "
            f"firmware + module '{m['name']}' v{m['version']} ({m['size']:,} B) in slot A at 0x{a['address']:08x}")
