"""The module-updatable example firmware (``example_projects/module-cortex-m4``) as a device.

Role: the ``--firmware`` mode of the LwM2M device agent. The example's own
``main.c`` is built once per kernel set and public key (cached, like the host
loader) with the loader, executor and kernels; :class:`QemuDevice` keeps the
two flash slots in Python and boots the firmware in QEMU (mps2-an386) with
both slots in memory for every decision, so the firmware's C loader checks
signature, CRC, version and kernel set, picks the slot and runs inference.
Each run places the running module at slot A and the candidate at slot B (the
firmware boots A, then installs B as an update; with nothing running the
candidate boots at A), and the agent reads what the
firmware printed::

    firmware version <text>
    slot A: <loader word>
    update from slot B: <loader word>
    running module version <n>
    output: <int8> <int8> ...

Same interface as :class:`~platformio_tinyml.module.host.HostDevice`
(``erase``/``write``/``check``/``install``/``boot``/``infer``). The firmware
is deterministic, so a boot with the same slot bytes and input as one of the
last few is answered from what that boot printed (an agent asks the same
question several times per delivery: at the last block, for the slot states,
at Install).
"""

from __future__ import annotations

import hashlib
import re
import struct
import tempfile
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinyMLError
from .emu import INPUT_ADDR, MACHINE, SLOT_ADDR, SLOT_SIZE
from .firmware import KernelSet, write_executor
from .host import cache_dir

EXAMPLE_MAIN = Path(__file__).resolve().parents[2] / "example_projects" / "module-cortex-m4" / "src" / "main.c"
# tml_module_strerror()'s words, index = -code (runtime/tml_module.c).
LOADER_WORDS = ("ok", "bad argument", "misaligned image", "truncated", "bad magic", "unknown format version",
                "bad header", "bad size", "crc mismatch", "bad signature", "unsupported payload kind",
                "kernel ABI mismatch", "kernel missing from firmware", "older than installed", "arena too small",
                "bad tensor descriptor", "bad op table", "big-endian cpu", "not a TFLite flatbuffer",
                "reserved field not zero")
_CODE = {w: -k for k, w in enumerate(LOADER_WORDS)}
# What main.c of the example fixes: its tensor arena, and the core of the machine it runs on.
EXAMPLE_ARENA = 32 * 1024
EXAMPLE_CORE, EXAMPLE_ARCH = "cortex-m4", "armv7e-m"


@dataclass
class FirmwareRun:
    """What one boot of the example firmware printed."""
    boot: int = 1                   # slot A's loader code (1: not printed)
    install: int = 1                # slot B's loader code
    version: int | None = None
    outputs: list[int] = field(default_factory=list)
    stdout: str = ""
    firmware: str = ""              # the version the firmware says it is ("" when it does not say)


def parse_example_output(text: str) -> FirmwareRun:
    run = FirmwareRun(stdout=text)
    for line in text.replace("\r", "").splitlines():
        if line.startswith("firmware version "):
            run.firmware = line[17:].strip()[:64]
        elif line.startswith("slot A: "):
            run.boot = _CODE.get(line[8:].strip(), 1)
        elif line.startswith("update from slot B: "):
            run.install = _CODE.get(line[20:].strip(), 1)
        elif m := re.fullmatch(r"running module version (\d+)", line.strip()):
            run.version = int(m.group(1))
        elif line.startswith("output:"):
            run.outputs = [int(v) for v in line[7:].split()]
    return run


def build_example_firmware(kset: KernelSet, public_key: bytes, main_c: Path = EXAMPLE_MAIN) -> Path:
    """The example firmware for ``kset`` and ``public_key`` (32 raw bytes); cached ELF."""
    from ..emu import build_firmware
    if not Path(main_c).is_file():
        raise TinyMLError("the module-cortex-m4 example firmware source is missing", where=str(main_c),
                          hint="Run from a source checkout of platformio-tinyml, or give --firmware an ELF")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        key_file = Path(tmp) / "module.pub"
        key_file.write_bytes(public_key)
        cfiles = write_executor(src, kset, key_file)
        (src / "main.c").write_bytes(Path(main_c).read_bytes())
        digest = hashlib.sha256(MACHINE.encode())
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
        elf = cache_dir() / f"module-example-{digest.hexdigest()[:20]}.elf"
        if not elf.is_file():
            built = build_firmware([*cfiles, src / "main.c"], [src], Path(tmp) / "fw.elf", MACHINE, opt="-O2")
            elf.parent.mkdir(parents=True, exist_ok=True)
            tmp_elf = elf.with_suffix(".tmp")
            tmp_elf.write_bytes(built.read_bytes())
            tmp_elf.replace(elf)
        return elf


@dataclass(frozen=True)
class FactoryImage:
    """A factory image (``pio run -t tinyml-image``) and what its JSON layout says."""
    path: Path                      # the layout file
    image: bytes                    # raw flash from address ``base``
    base: int
    slots: tuple[int, int]          # slot A and B addresses
    slot_size: int
    module: bytes                   # what slot A holds at the factory (b"": nothing)


def load_factory_image(layout_path: Path) -> FactoryImage:
    """The image a ``tinyml-image.json`` layout describes, checked against its SHA-256."""
    import json

    from .image import LAYOUT_FORMAT
    where = str(layout_path)
    try:
        layout = json.loads(Path(layout_path).read_text())
        image = (Path(layout_path).parent / layout["image"]).read_bytes()
        (a, b), base = layout["slots"], int(layout["base"])
        slots, slot_size = (int(a["address"]), int(b["address"])), int(a["size"])
        module_size = int(a["module"]["size"]) if a.get("module") else 0
    except OSError as e:
        raise TinyMLError(f"cannot read the factory image ({e.strerror})", where=getattr(e, "filename", where),
                          hint="Give the tinyml-image.json that `pio run -t tinyml-image` wrote") from None
    except (ValueError, KeyError, TypeError):
        raise TinyMLError("not a factory image layout", where=where,
                          hint="Give the tinyml-image.json that `pio run -t tinyml-image` wrote") from None
    if layout.get("format") != LAYOUT_FORMAT or hashlib.sha256(image).hexdigest() != layout.get("sha256"):
        raise TinyMLError(f"the image does not match its layout (format {LAYOUT_FORMAT}, SHA-256)", where=where,
                          hint="Build the image again: pio run -t tinyml-image")
    if base != 0 or slots != SLOT_ADDR or slot_size != SLOT_SIZE:
        raise TinyMLError(f"the image's slots (0x{slots[0]:x}, 0x{slots[1]:x}, {slot_size} bytes, base "
                          f"0x{base:x}) are not where the example's main.c reads them", where=where,
                          hint=f"Use custom_tinyml_slots = 0x{SLOT_ADDR[0]:x}, 0x{SLOT_ADDR[1]:x} and "
                               f"custom_tinyml_slot_size = 0x{SLOT_SIZE:x}")
    if int(layout.get("firmware", {}).get("end", 0)) > INPUT_ADDR:
        raise TinyMLError(f"the image's firmware reaches past 0x{INPUT_ADDR:x}, where the example's main.c "
                          "reads its input vector", where=where)
    module = image[slots[0] - base:slots[0] - base + module_size]
    return FactoryImage(Path(layout_path), image, base, slots, slot_size, module)


def example_firmware(path: Path, kset: KernelSet, public_key: bytes) -> Path | FactoryImage:
    """The firmware ``--firmware PATH`` names: an ELF as is, the example project folder
    (``example_projects/module-cortex-m4``) built for ``kset`` and ``public_key``, or a
    factory image's JSON layout (the image with its slot A module)."""
    path = Path(path)
    if path.suffix == ".json":
        return load_factory_image(path)
    if path.is_dir():
        main_c = path / "src" / "main.c"
        if not main_c.is_file():
            raise TinyMLError("not a firmware project: no src/main.c", where=str(path),
                              hint="Give example_projects/module-cortex-m4 or a firmware ELF built from it")
        return build_example_firmware(kset, public_key, main_c)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise TinyMLError(f"cannot read the firmware ({e.strerror})", where=str(path),
                          hint="Give example_projects/module-cortex-m4 or a firmware ELF built from it") from None
    if magic != b"\x7fELF":
        raise TinyMLError("not an ELF firmware", where=str(path),
                          hint="Give example_projects/module-cortex-m4 or the firmware.elf its build wrote")
    return path


class QemuDevice:
    """Two slots held here; every check, switch and inference is a boot of ``elf`` in QEMU."""

    MEMO = 16      # boots remembered

    def __init__(self, elf: Path | FactoryImage, workdir: Path, slot_size: int = SLOT_SIZE, timeout: float = 120):
        self.image = elf if isinstance(elf, FactoryImage) else None
        self.elf = self.image.path if self.image else Path(elf)
        self.workdir, self.slot_size, self.timeout = Path(workdir), slot_size, timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._slots: list[bytearray] = [bytearray(), bytearray()]
        self.active = -1
        self.installed_version = 0
        self.last: FirmwareRun | None = None
        self.boots = 0                  # QEMU runs started (the memo answers the others)
        self.boot_s = 0.0               # host seconds of the last QEMU run
        self.printed: deque[str] = deque(maxlen=self.MEMO)     # what the last QEMU runs printed
        self._memo: OrderedDict[bytes, FirmwareRun] = OrderedDict()

    def erase(self, slot: int) -> None:
        self._slots[slot] = bytearray()

    def write(self, slot: int, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > self.slot_size:
            raise TinyMLError(f"{len(data)} bytes at offset {offset} do not fit a {self.slot_size}-byte slot")
        buf = self._slots[slot]
        if len(buf) < offset + len(data):
            buf.extend(b"\xff" * (offset + len(data) - len(buf)))
        buf[offset:offset + len(data)] = data

    def read(self, slot: int, size: int) -> bytes:
        """``size`` bytes of ``slot`` (at most the slot); never written bytes read 0xFF, as erased flash."""
        size = min(size, self.slot_size)
        data = bytes(self._slots[slot][:size])
        return data + b"\xff" * (size - len(data))

    def run(self, slot_a: int | None, slot_b: int | None, inputs: bytes = b"") -> FirmwareRun:
        """Boot the firmware with these slots at A and B (None: erased) and an input vector."""
        from ..emu import run
        contents = [bytes(self._slots[s]) if s is not None else b"" for s in (slot_a, slot_b)]
        key = hashlib.sha256(b"\0".join(hashlib.sha256(c).digest() for c in (*contents, inputs))).digest()
        if key in self._memo:
            self._memo.move_to_end(key)
            self.last = self._memo[key]
            return self.last
        vector = struct.pack("<I", len(inputs)) + inputs
        if self.image is not None:
            firmware, loads = self._flash(contents, vector), []
        else:
            firmware, loads = self.elf, []
            for name, data, addr in (("a", contents[0], SLOT_ADDR[0]), ("b", contents[1], SLOT_ADDR[1])):
                if data:
                    path = self.workdir / f"slot_{name}.bin"
                    path.write_bytes(data)
                    loads.append((path, addr))
            inp = self.workdir / "input.bin"
            inp.write_bytes(vector)
            loads.append((inp, INPUT_ADDR))
        res = run(firmware, MACHINE, timeout=self.timeout, loads=loads)
        self.boots, self.boot_s = self.boots + 1, res.wall_s
        if res.timed_out:
            raise TinyMLError(f"the firmware did not finish in {self.timeout} s", where=str(self.elf))
        self.last = parse_example_output(res.stdout)
        self.printed.append(res.stdout)
        self._memo[key] = self.last
        if len(self._memo) > self.MEMO:
            self._memo.popitem(last=False)
        return self.last

    def _flash(self, contents: list[bytes], vector: bytes) -> Path:
        """The factory image with these slot contents written at the layout's addresses (the rest
        of each slot erased) and the input vector at INPUT_ADDR, as one raw file QEMU boots."""
        img = self.image
        flash = bytearray(img.image[:img.slots[0] - img.base])
        flash[INPUT_ADDR - img.base:INPUT_ADDR - img.base + len(vector)] = vector
        for addr, data in zip(img.slots, contents):
            flash.extend(b"\xff" * (addr - img.base - len(flash)))
            flash[addr - img.base:] = data
        path = self.workdir / "flash.bin"
        path.write_bytes(flash)
        return path

    def reflash(self, elf: Path) -> tuple[bool, FirmwareRun | None]:
        """Replace the firmware by the ELF ``elf`` and reboot it with the running module (if
        any) at slot A. Kept when it booted (printed its loader's word on slot A) and, with a
        module running, its loader accepted that module; else the old firmware is back.
        Returns (kept, what the new firmware's boot printed; None when it did not finish)."""
        old = self.image, self.elf, self._memo, self.active, self.installed_version
        self.image, self.elf, self._memo = None, Path(elf), OrderedDict()
        try:
            run = self.run(self.active if self.active >= 0 else None, None)
        except TinyMLError:
            run = None
        kept = run is not None and (run.boot == 0 if self.active >= 0 else run.boot != 1)
        if kept and self.active >= 0:
            self.installed_version = run.version or 0
        if not kept:
            self.image, self.elf, self._memo, self.active, self.installed_version = old
        return kept, run

    def _verdict(self, slot: int) -> int:
        """``slot``'s loader code as the successor of the running module (at A, ``slot`` at B);
        with nothing running, ``slot`` boots at A (an invalid A falls back to B in the firmware)."""
        if self.active < 0:
            return self.run(slot, None).boot
        return self.run(self.active, slot).install

    def check(self, slot: int, min_version: int = 0) -> int:
        """The firmware's verdict on ``slot``: alone at A (booted with version 0) when
        ``min_version`` is 0, else as the successor of the running module (its version is the
        minimum), as the host loader's ``tml_module_open(..., min_version)``."""
        if min_version == 0 or self.active < 0:
            return self.run(slot, None).boot
        return self._verdict(slot)

    def install(self, slot: int) -> int:
        code = self._verdict(slot)
        if code == 0:
            self.active, self.installed_version = slot, self.last.version or 0
        return code

    def boot(self, slot: int, installed_version: int = 0) -> int:
        r = self.run(slot, None)
        self.active = slot if r.boot == 0 else -1
        self.installed_version = r.version or 0 if r.boot == 0 else 0
        return r.boot

    def infer(self, inputs: bytes) -> bytes:
        r = self.run(self.active if self.active >= 0 else None, None, inputs)
        if self.active < 0 or not r.outputs:
            raise TinyMLError("no module runs" if self.active < 0 else "the firmware printed no output",
                              hint=r.stdout[-300:])
        return bytes(v & 0xFF for v in r.outputs)
