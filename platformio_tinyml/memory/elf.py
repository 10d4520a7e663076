"""Read flash and RAM use from a linked ELF with pyelftools.

Flash: allocated sections that occupy the image (code, read-only data and the
initial values of .data). RAM: allocated writable sections (.data, .bss and
any reserved stack/heap sections). A symbol belongs to the model when its
name starts with one of the model prefixes, or when it is a local symbol of
a generated source file (the ``STT_FILE`` entry before it in the symbol
table names that file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from ..errors import TinyMLError


@dataclass
class ElfUsage:
    flash_bytes: int
    ram_bytes: int
    model_flash_bytes: int = 0
    model_ram_bytes: int = 0
    sections: dict[str, tuple[int, str]] = field(default_factory=dict)   # name -> (size, "flash"|"ram"|"both")
    model_symbols: dict[str, int] = field(default_factory=dict)

    @property
    def rest_flash_bytes(self) -> int:
        return self.flash_bytes - self.model_flash_bytes

    @property
    def rest_ram_bytes(self) -> int:
        return self.ram_bytes - self.model_ram_bytes


def _kind(sec) -> str | None:
    flags = sec["sh_flags"]
    if not flags & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
        return None
    writable = bool(flags & SH_FLAGS.SHF_WRITE)
    nobits = sec["sh_type"] == "SHT_NOBITS"
    if writable:
        return "ram" if nobits else "both"
    return "flash"


def analyze_elf(elf_path: Path, model_prefixes: list[str] = (), model_files: list[str] = ()) -> ElfUsage:
    """Flash/RAM totals of ``elf_path`` and the part of them that is the model's."""
    try:
        f = open(elf_path, "rb")
    except OSError as e:
        raise TinyMLError(f"cannot read firmware ELF ({e.strerror})", where=str(elf_path)) from None
    with f:
        try:
            elf = ELFFile(f)
            return _analyze(elf, tuple(model_prefixes), {Path(m).name for m in model_files})
        except Exception as e:
            raise TinyMLError(f"not a valid ELF file ({type(e).__name__}: {e})", where=str(elf_path)) from None


def _analyze(elf, prefixes: tuple[str, ...], files: set[str]) -> ElfUsage:
    usage = ElfUsage(0, 0)
    kinds = {}
    for idx, sec in enumerate(elf.iter_sections()):
        k = _kind(sec)
        kinds[idx] = k
        if k is None:
            continue
        size = sec["sh_size"]
        usage.sections[sec.name] = (size, k)
        if k in ("flash", "both"):
            usage.flash_bytes += size
        if k in ("ram", "both"):
            usage.ram_bytes += size
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return usage
    current_file = ""
    seen = set()
    for sym in symtab.iter_symbols():
        st = sym["st_info"]["type"]
        if st == "STT_FILE":
            current_file = Path(sym.name).name
            continue
        if st not in ("STT_OBJECT", "STT_FUNC") or sym["st_size"] == 0:
            continue
        shndx = sym["st_shndx"]
        if not isinstance(shndx, int):
            continue
        local = sym["st_info"]["bind"] == "STB_LOCAL"
        mine = sym.name.startswith(prefixes) if prefixes else False
        if not mine and local and current_file in files:
            mine = True
        key = (sym.name, sym["st_value"])
        if not mine or key in seen:
            continue
        seen.add(key)
        k = kinds.get(shndx)
        size = sym["st_size"]
        usage.model_symbols[sym.name] = size
        if k in ("flash", "both"):
            usage.model_flash_bytes += size
        if k in ("ram", "both"):
            usage.model_ram_bytes += size
    return usage
