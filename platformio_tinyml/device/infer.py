"""Deciding the core, FPU and DSP of a board from what its manifest states.

Manifests give ``build.mcu`` and, on Cortex-M, ``build.cpu``; the rest comes
from the tables in :mod:`cores` and :mod:`families`. A manifest may also state
``build.fpu`` as a GCC ``-mfpu`` name (``fpv4-sp-d16``; ``auto`` means "infer").
The user can settle what the tables cannot with ``board_build.cpu``,
``board_build.tinyml_fpu`` (``sp``/``dp``/``none``) and
``board_build.tinyml_dsp`` (``yes``/``no``).
Every guess that could be wrong is recorded as a note, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeviceError
from .cores import CORES, CoreFacts, normalize_core
from .families import PLATFORM_CORES, Family, find_family, fpu_for_core

_FPU_WORDS = {"sp": "sp", "single": "sp", "dp": "dp", "double": "dp",
              "none": None, "no": None, "": None}
_UNSTATED = object()  # build.fpu absent, "auto" or not an -mfpu name
_BOOL_WORDS = {"1": True, "yes": True, "true": True, "on": True,
               "0": False, "no": False, "false": False, "off": False}


@dataclass(frozen=True)
class CpuChoice:
    """The outcome of inference: what :class:`DeviceProfile` needs about the CPU."""

    core: str
    facts: CoreFacts
    family: Family | None
    fpu: str | None
    dsp: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class CpuInputs:
    """What the (overridden) manifest says; ``None`` where it says nothing."""

    mcu: str
    cpu: str | None
    platform: str
    cpu_overridden: bool = False
    fpu_override: object = None
    gcc_fpu: object = None
    dsp_override: object = None


def infer_cpu(given: CpuInputs, where: str) -> CpuChoice:
    """Return the :class:`CpuChoice` for ``given``; ``where`` names the board in errors."""
    family = find_family(given.mcu) if given.mcu else None
    notes: list[str] = []
    core = _choose_core(given, family, where, notes)
    facts = CORES[core]
    fpu = _choose_fpu(given, family, core, facts, where, notes)
    dsp = _choose_dsp(given, family, core, facts, where, notes)
    if family and family.note:
        notes.append(family.note)
    return CpuChoice(core, facts, family, fpu, dsp, tuple(notes))


def _choose_core(given: CpuInputs, family: Family | None, where: str, notes: list[str]) -> str:
    if given.cpu:
        core = normalize_core(given.cpu)
        if core not in CORES:
            raise DeviceError(f"unknown CPU core '{given.cpu}' (build.cpu)", where=where,
                              hint="Set board_build.cpu to one of: " + ", ".join(CORES))
        if family is None or fpu_for_core(family, core)[0]:
            return core
        if given.cpu_overridden:
            notes.append(f"build.cpu override {core} is not a core of MCU family "
                         f"{family.name}; FPU/DSP not taken from the family table")
            return core
        notes.append(f"manifest says build.cpu = {given.cpu} but MCU family {family.name} "
                     f"is {family.core}; using {family.core}")
        return family.core
    if family is not None:
        return family.core
    if given.platform in PLATFORM_CORES:
        return PLATFORM_CORES[given.platform]
    mcu = f"MCU '{given.mcu}'" if given.mcu else "a board without build.mcu"
    raise DeviceError(f"cannot tell the CPU core of {mcu} (no build.cpu, unknown MCU family)",
                      where=where, hint="Set board_build.cpu (e.g. cortex-m4) in platformio.ini")


def _choose_fpu(given: CpuInputs, family: Family | None, core: str, facts: CoreFacts,
                where: str, notes: list[str]) -> str | None:
    if given.fpu_override is not None:
        return _fpu_from_override(given.fpu_override, core, facts, where)
    if facts.fpu_always or not facts.fpus:
        return facts.fpu_always
    stated = _fpu_from_gcc_name(given.gcc_fpu)
    if stated is None or stated in _allowed_fpus(facts):
        return stated
    if stated is not _UNSTATED:
        notes.append(f"build.fpu = {given.gcc_fpu} does not fit a {core}; ignored")
    known, fpu = fpu_for_core(family, core) if family else (False, None)
    if known:
        notes.append(f"FPU ({fpu or 'none'}) inferred from MCU family {family.name}")
        return fpu
    notes.append(f"FPU unknown for MCU '{given.mcu}'; assuming none "
                 "(set board_build.tinyml_fpu = sp if it has one)")
    return None


def _fpu_from_gcc_name(value: object) -> object:
    """Map a GCC ``-mfpu`` name to "sp"/"dp"/None; ``_UNSTATED`` for auto or unknown."""
    name = str(value or "auto").strip().lower()
    if name in ("none", "softvfp"):
        return None
    if name == "auto" or not name.startswith(("fpv", "vfp", "fp-", "neon")):
        return _UNSTATED
    return "sp" if "-sp-" in name or name.endswith("-sp") else "dp"


def _allowed_fpus(facts: CoreFacts) -> set[str]:
    allowed = set(facts.fpus) | ({facts.fpu_always} if facts.fpu_always else set())
    if "dp" in allowed:
        allowed.add("sp")  # a double-precision FPU also does single precision
    return allowed


def _fpu_from_override(value: object, core: str, facts: CoreFacts, where: str) -> str | None:
    word = str(value).strip().lower()
    if word not in _FPU_WORDS:
        raise DeviceError(f"invalid build.tinyml_fpu '{value}'", where=where,
                          hint="Use sp, dp or none")
    fpu = _FPU_WORDS[word]
    if fpu is not None and fpu not in _allowed_fpus(facts):
        raise DeviceError(f"build.tinyml_fpu = {word} but a {core} has no such FPU",
                          where=where, hint="Remove the override or fix board_build.cpu")
    return fpu


def _choose_dsp(given: CpuInputs, family: Family | None, core: str, facts: CoreFacts,
                where: str, notes: list[str]) -> bool:
    if given.dsp_override is not None:
        word = str(given.dsp_override).strip().lower()
        if word not in _BOOL_WORDS:
            raise DeviceError(f"invalid build.tinyml_dsp '{given.dsp_override}'",
                              where=where, hint="Use yes or no")
        if _BOOL_WORDS[word] and facts.dsp is False:
            raise DeviceError(f"build.tinyml_dsp = yes but a {core} has no DSP extension",
                              where=where, hint="Remove the override or fix board_build.cpu")
        return _BOOL_WORDS[word]
    if facts.dsp is not None:
        return facts.dsp
    if family is not None and family.core == core and family.dsp is not None:
        return family.dsp
    notes.append(f"DSP extension unknown for MCU '{given.mcu}' ({core}); assuming none "
                 "(set board_build.tinyml_dsp = yes if it has one)")
    return False
