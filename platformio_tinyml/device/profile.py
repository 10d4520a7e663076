"""``DeviceProfile``: what the target hardware is, parsed once from a board manifest.

Every layer above ``device/`` sees the board only through this frozen
dataclass; none of them reads a manifest dict. How to compile (backend,
quantization, options) is kept elsewhere, in ``CompileOptions``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from ..errors import DeviceError
from . import manifest as mf
from .infer import CpuChoice, CpuInputs, infer_cpu

# Bump when the meaning of a field that enters cache_key() changes.
_CACHE_KEY_VERSION = 1
_CODEGEN_FIELDS = ("arch", "core", "word_bits", "fpu", "dsp", "mve", "npu",
                   "flash_bytes", "ram_bytes")
_KIB = 1024


@dataclass(frozen=True)
class DeviceProfile:
    """One board, as code generation and the memory gate need it.

    ``board`` is the manifest's file stem, ``platform`` the PlatformIO platform
    (``ststm32``), ``core`` a normalized name from :mod:`cores`, ``fpu`` is
    ``"sp"``, ``"dp"`` or None, ``dsp`` means the Armv7E-M DSP SIMD
    instructions, ``mve`` Arm Helium, ``npu`` an accelerator such as
    ``"ethos-u55-128"``. ``notes`` lists every inference the manifest did not
    state outright and every oddity found in it.
    """

    board: str
    name: str
    platform: str
    arch: str
    core: str
    word_bits: int
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    fpu: str | None = None
    dsp: bool = False
    mve: bool = False
    npu: str | None = None
    mcu: str = ""
    notes: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fpu not in (None, "sp", "dp"):
            raise ValueError(f"DeviceProfile.fpu must be 'sp', 'dp' or None, not {self.fpu!r}")
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "frameworks", tuple(self.frameworks))

    @property
    def has_fpu(self) -> bool:
        """True when the core has a hardware floating-point unit."""
        return self.fpu is not None

    def to_dict(self) -> dict:
        """Return the profile as JSON-safe data (tuples become lists)."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["frameworks"] = list(self.frameworks)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DeviceProfile":
        """Rebuild a profile from :meth:`to_dict` output; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def cache_key(self) -> str:
        """Return a sha256 hex digest of the fields that change generated code.

        The board id, name, clock, notes and frameworks are left out: two
        boards with the same chip and memory share compiled artifacts.
        """
        payload = {name: getattr(self, name) for name in _CODEGEN_FIELDS}
        payload["version"] = _CACHE_KEY_VERSION
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def profile_from_manifest(manifest: dict, board_id: str, overrides: dict | None = None,
                          platform: str = "", *, source: str | None = None) -> DeviceProfile:
    """Build the :class:`DeviceProfile` of one board.

    ``manifest`` is the parsed ``boards/<board_id>.json``; ``overrides`` are
    dotted keys set with ``board_*`` options in ``platformio.ini``
    (``{"build.f_cpu": "80000000L"}``) and win over the manifest. ``platform``
    is used when the manifest names none (usually the folder it was found
    in). ``source`` (the manifest path) names the board in error messages.
    Raises DeviceError when a size is missing or invalid or the core cannot be
    told.
    """
    if not isinstance(manifest, dict):
        raise DeviceError("board manifest is not a JSON object", where=source or board_id)
    where = f"board '{board_id}' ({source})" if source else f"board '{board_id}'"
    data = mf.apply_overrides(manifest, overrides)
    notes: list[str] = []
    platform = _platform_of(data) or platform
    mcu = str(mf.get(data, "build.mcu") or "").strip().lower()
    cpu = infer_cpu(_cpu_inputs(data, mcu, platform, overrides), where)
    notes.extend(cpu.notes)
    ram = _size(data, "upload.maximum_ram_size", "RAM", where)
    notes.extend(_ram_notes(data, cpu, ram))
    return DeviceProfile(
        board=board_id,
        name=str(mf.get(data, "name") or board_id),
        platform=platform or (cpu.family.platform if cpu.family else ""),
        arch=cpu.facts.arch,
        core=cpu.core,
        word_bits=cpu.facts.word_bits,
        clock_hz=_clock(data, where, notes),
        flash_bytes=_size(data, "upload.maximum_size", "flash", where),
        ram_bytes=ram,
        fpu=cpu.fpu,
        dsp=cpu.dsp,
        mve=cpu.facts.mve,
        npu=_npu(data),
        mcu=mcu,
        notes=tuple(notes),
        frameworks=_frameworks(data),
    )


def _cpu_inputs(data: dict, mcu: str, platform: str, overrides: dict | None) -> CpuInputs:
    keys = {str(k).removeprefix("board_") for k in (overrides or {})}
    cpu = mf.get(data, "build.cpu")
    return CpuInputs(
        mcu=mcu,
        cpu=str(cpu) if cpu else None,
        platform=platform,
        cpu_overridden="build.cpu" in keys,
        fpu_override=mf.get(data, "build.tinyml_fpu"),
        gcc_fpu=mf.get(data, "build.fpu"),
        dsp_override=mf.get(data, "build.tinyml_dsp"),
    )


def _platform_of(data: dict) -> str:
    value = data.get("platforms", data.get("platform"))
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def _size(data: dict, key: str, what: str, where: str) -> int:
    raw = mf.get(data, key)
    option = "board_" + key
    if raw is None:
        raise DeviceError(f"manifest has no {what} size ({key})", where=where,
                          hint=f"Set {option} = <bytes> in platformio.ini")
    value = mf.parse_int(raw)
    if value is None or value <= 0:
        raise DeviceError(f"invalid {what} size {key} = {raw!r}", where=where,
                          hint=f"Set {option} to a positive number of bytes")
    return value


def _clock(data: dict, where: str, notes: list[str]) -> int:
    raw = mf.get(data, "build.f_cpu")
    if raw is None:
        notes.append("build.f_cpu missing; clock_hz unknown (0)")
        return 0
    value = mf.parse_int(raw)
    if value is None or value <= 0:
        raise DeviceError(f"invalid clock build.f_cpu = {raw!r}", where=where,
                          hint="Set board_build.f_cpu to the frequency in Hz, e.g. 80000000L")
    return value


def _ram_notes(data: dict, cpu: CpuChoice, ram: int) -> list[str]:
    family = cpu.family
    if family is None or family.sram is None:
        return []
    kind = "PSRAM" if family.platform == "espressif32" else "external RAM"
    if ram > family.sram:
        return [f"ram_bytes includes {kind} (on-chip SRAM of {family.name} is "
                f"{family.sram // _KIB} KiB)"]
    if "BOARD_HAS_PSRAM" in mf.flags_text(mf.get(data, "build.extra_flags")):
        return ["board has PSRAM that ram_bytes does not count"]
    return []


def _npu(data: dict) -> str | None:
    value = str(mf.get(data, "build.tinyml_npu") or "").strip().lower()
    return None if value in ("", "none", "no") else value


def _frameworks(data: dict) -> tuple[str, ...]:
    value = data.get("frameworks") or ()
    if isinstance(value, str):
        value = [value]
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()
