"""Cross-compiler flags and firmware builds for the emulated test boards.

Role: turn generated C (plus a test ``main()``) into an ELF that
:func:`platformio_tinyml.emu.run.run` can execute, with the board support
from ``support/`` (startup, linker script, ``tml_board.h``) for the chosen
machine. Also compile-only checks for cores we cannot run (Cortex-M0+,
M7, M33, RISC-V when only compiled).

Compilers (Debian packages, installed by ``scripts/setup.sh``):

* ``arm-none-eabi-gcc`` (gcc-arm-none-eabi + libnewlib-arm-none-eabi)
* ``avr-gcc`` (gcc-avr + avr-libc)
* ``riscv64-unknown-elf-gcc`` (gcc-riscv64-unknown-elf +
  picolibc-riscv64-unknown-elf), used with ``-march=rv32imac -mabi=ilp32``

Every build writes ``<elf>.build.json`` next to the ELF: machine, compiler
path and ``--version`` line, and every command line run.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import TinyMLError

SUPPORT_DIR = Path(__file__).resolve().parent / "support"

WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
COMMON_CFLAGS = ("-std=c99", "-ffunction-sections", "-fdata-sections", "-g")

# gcc executable and the Debian package that provides it, per core family.
_COMPILERS = {
    "arm": ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    "avr": ("avr-gcc", "gcc-avr avr-libc"),
    "riscv": ("riscv64-unknown-elf-gcc",
              "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"),
}

# Allowed ``fpu`` values per Arm core; None always means soft float.
_ARM_FPUS = {
    "cortex-m0plus": (),
    "cortex-m3": (),
    "cortex-m4": ("fpv4-sp-d16",),
    "cortex-m7": ("fpv5-d16", "fpv5-sp-d16"),
    "cortex-m33": ("fpv5-sp-d16",),
    # M55: the FPU comes with the CPU extension set (FP64 + MVE-F); gcc
    # picks it with -mfpu=auto, so every name here means the same thing.
    "cortex-m55": ("auto", "fpv5-d16", "mve"),
}
_AVR_MCUS = ("atmega328p", "atmega2560")
_RISCV_CORES = {"rv32imac": ("-march=rv32imac", "-mabi=ilp32")}


class FirmwareBuildError(TinyMLError):
    """The cross-compiler or linker rejected a firmware build."""

    def __init__(self, what: str, where: str | None = None,
                 hint: str | None = None, output: str = "",
                 command: Sequence[str] = ()):
        self.output = output
        self.command = list(command)
        super().__init__(what, where, hint)

    def format(self) -> str:
        text = super().format()
        if self.output:
            text += "\n" + self.output.rstrip()
        return text


class ToolNotFoundError(TinyMLError):
    """A cross-compiler or emulator is not on PATH."""


@dataclass(frozen=True)
class Machine:
    """One emulated board: its core, FPU, support files and emulator."""

    name: str
    core: str
    fpu: str | None
    family: str          # "arm" | "avr" | "riscv": compiler family
    emulator: str        # executable run.py starts
    emulator_package: str  # Debian package providing it
    counter: str         # what board_instructions() counts
    description: str


MACHINES: dict[str, Machine] = {
    m.name: m for m in (
        Machine("mps2-an385", "cortex-m3", None, "arm", "qemu-system-arm",
                "qemu-system-arm", "instructions",
                "Arm MPS2 AN385, Cortex-M3 at 25 MHz, 4 MiB code + 4 MiB SRAM"),
        Machine("mps2-an386", "cortex-m4", "fpv4-sp-d16", "arm",
                "qemu-system-arm", "qemu-system-arm", "instructions",
                "Arm MPS2 AN386, Cortex-M4F at 25 MHz, 4 MiB code + 4 MiB SRAM"),
        Machine("mps3-an547", "cortex-m55", "auto", "arm", "qemu-system-arm",
                "qemu-system-arm", "instructions",
                "Arm MPS3 AN547, Cortex-M55 (FPU+MVE) at 32 MHz, "
                "8 MiB QSPI code + 4 MiB SRAM"),
        Machine("atmega328p", "atmega328p", None, "avr", "simavr", "simavr",
                "cycles", "ATmega328P at 16 MHz, 32 KiB flash, 2 KiB SRAM"),
        Machine("atmega2560", "atmega2560", None, "avr", "simavr", "simavr",
                "cycles", "ATmega2560 at 16 MHz, 256 KiB flash, 8 KiB SRAM"),
        Machine("riscv32-virt", "rv32imac", None, "riscv",
                "qemu-system-riscv32", "qemu-system-misc", "instructions",
                "QEMU RISC-V virt, rv32imac, 16 MiB code + 16 MiB RAM"),
    )
}


def get_machine(machine: str) -> Machine:
    """The :class:`Machine` called ``machine``; a clear error if unknown."""
    try:
        return MACHINES[machine]
    except KeyError:
        raise TinyMLError(f"unknown emulated machine '{machine}'",
                          hint="Known machines: " + ", ".join(MACHINES)) from None


def core_family(core: str) -> str:
    """Compiler family ("arm", "avr" or "riscv") of a core name."""
    if core in _ARM_FPUS:
        return "arm"
    if core in _AVR_MCUS or core.startswith(("atmega", "attiny", "atxmega")):
        return "avr"
    if core in _RISCV_CORES:
        return "riscv"
    known = list(_ARM_FPUS) + list(_AVR_MCUS) + list(_RISCV_CORES)
    raise TinyMLError(f"unknown core '{core}'", hint="Known cores: " + ", ".join(known))


def arch_flags(core: str, fpu: str | None = None) -> list[str]:
    """gcc flags selecting ``core`` (and its FPU) for compiling and linking.

    ``core``: ``cortex-m0plus``, ``cortex-m3``, ``cortex-m4``, ``cortex-m7``,
    ``cortex-m33``, ``cortex-m55``, an AVR MCU such as ``atmega328p``, or
    ``rv32imac``. ``fpu``: None for soft float, else one of
    ``fpv4-sp-d16`` (M4), ``fpv5-d16``/``fpv5-sp-d16`` (M7),
    ``fpv5-sp-d16`` (M33), ``auto`` (M55: FP64 and MVE-F).

    >>> arch_flags("cortex-m4", "fpv4-sp-d16")
    ['-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16']
    >>> arch_flags("atmega328p")
    ['-mmcu=atmega328p']
    """
    family = core_family(core)
    if family != "arm":
        if fpu is not None:
            raise TinyMLError(f"core '{core}' has no FPU option (got fpu='{fpu}')")
        return [f"-mmcu={core}"] if family == "avr" else list(_RISCV_CORES[core])
    if fpu is not None and fpu not in _ARM_FPUS[core]:
        allowed = ", ".join(_ARM_FPUS[core]) or "none"
        raise TinyMLError(f"core '{core}' cannot use fpu '{fpu}'",
                          hint=f"Use one of: {allowed} (or no FPU for soft float)")
    if core == "cortex-m55":
        if fpu is None:
            return ["-mcpu=cortex-m55+nofp+nomve", "-mthumb", "-mfloat-abi=soft"]
        return ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-mfpu=auto"]
    flags = [f"-mcpu={core}", "-mthumb"]
    if fpu is None:
        return flags + ["-mfloat-abi=soft"]
    return flags + ["-mfloat-abi=hard", f"-mfpu={fpu}"]


def compiler_for(core: str) -> str:
    """Absolute path of the gcc for ``core``; raises if it is not installed."""
    name, package = _COMPILERS[core_family(core)]
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(f"{name} not found on PATH",
                                hint=f"Install the Debian package(s) {package} "
                                     "(scripts/setup.sh does)")
    return path


@functools.lru_cache(maxsize=None)
def compiler_version(gcc: str) -> str:
    """First line of ``gcc --version``, e.g. 'avr-gcc (GCC) 5.4.0'."""
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True,
                         check=False).stdout
    return out.splitlines()[0] if out else "unknown"


def _run_gcc(cmd: list[str], log: list[list[str]], what: str, where: str) -> None:
    log.append(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FirmwareBuildError(what, where=where,
                                 hint="Compiler output follows",
                                 output=(proc.stdout + proc.stderr), command=cmd)


def _compile_objects(gcc: str, sources: Iterable[Path], cflags: list[str],
                     obj_dir: Path, log: list[list[str]]) -> list[Path]:
    obj_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    for index, src in enumerate(sources):
        src = Path(src)
        obj = obj_dir / f"{index:03d}_{src.stem}.o"
        _run_gcc([gcc, *cflags, "-c", str(src), "-o", str(obj)], log,
                 f"compiling {src.name} failed", str(src))
        objects.append(obj)
    return objects


def support_sources(machine: str, nostdlib: bool = False) -> list[Path]:
    """The board-support C/assembly files built into ``machine``'s firmware."""
    family = get_machine(machine).family
    common = [SUPPORT_DIR / "common" / "tml_board_print.c"]
    if nostdlib and family != "avr":
        common.append(SUPPORT_DIR / "common" / "tml_mem.c")
    else:   # printf/puts to the console through the board's C library
        common.append(SUPPORT_DIR / "common" / "tml_stdio.c")
    per_family = {
        "arm": ["cortexm/startup.c", "cortexm/board_cmsdk.c"],
        "avr": ["avr/board_avr.c"],
        "riscv": ["riscv32/startup.S", "riscv32/board_virt.c"],
    }[family]
    return common + [SUPPORT_DIR / rel for rel in per_family]


def support_include_dirs(machine: str) -> list[Path]:
    """Include directories for ``tml_board.h`` (and ``tml_machine.h``)."""
    dirs = [SUPPORT_DIR / "include"]
    machine_dir = SUPPORT_DIR / "machines" / machine
    if machine_dir.is_dir():
        dirs.append(machine_dir)
    return dirs


def _libc_flags(family: str, nostdlib: bool, link: bool) -> list[str]:
    """Flags choosing the C library (or none) for compiling / linking."""
    if family == "riscv":
        if nostdlib:
            return ["-nostdlib", "-lgcc"] if link else ["-ffreestanding"]
        return ["--specs=picolibc.specs"]
    if family == "arm" and link:
        if nostdlib:
            return ["-nostdlib", "-lgcc"]
        return ["--specs=nano.specs", "--specs=nosys.specs"]
    return []


def _link_flags(machine: Machine, out_elf: Path) -> list[str]:
    flags = ["-Wl,--gc-sections", f"-Wl,-Map={out_elf.with_suffix('.map')}"]
    if machine.family == "avr":
        # Keep simavr's console tag and park it outside flash (see board_avr.c).
        return flags + ["-Wl,--undefined=tml_simavr_mmcu",
                        "-Wl,--section-start=.mmcu=0x910000"]
    machine_dir = SUPPORT_DIR / "machines" / machine.name
    flags += ["-nostartfiles", "-T", str(machine_dir / "link.ld")]
    if machine.family == "arm":
        flags += ["-L", str(SUPPORT_DIR / "cortexm")]  # for INCLUDE sections.ld
    return flags


def build_firmware(sources: Sequence[Path], include_dirs: Sequence[Path],
                   out_elf: Path, machine: str, extra_cflags: Sequence[str] = (),
                   opt: str = "-Os", nostdlib: bool = False, ldflags: Sequence[str] = ()) -> Path:
    """Compile ``sources`` with ``machine``'s board support into ``out_elf``.

    Called by tests and benchmarks that run generated C in an emulator.
    ``sources``: C files, one of which defines ``main()``; ``include_dirs``:
    extra ``-I`` paths (the support include dirs are always added);
    ``machine``: a key of :data:`MACHINES`; ``extra_cflags``: appended to
    the compile flags (and its -mcpu/-march/-mfpu/-mfloat-abi/-mabi flags to
    the link, so they pick the C library and libgcc); ``opt``: optimisation flag; ``nostdlib``: link no C
    library at all (Arm/RISC-V; the support code then provides
    memcpy/memset/memmove/memcmp); ``ldflags``: appended to the link
    command (``-lm``). Sources are compiled with
    ``-Wall -Wextra -Werror -std=c99 -ffunction-sections -fdata-sections``
    and linked with ``--gc-sections``. Objects go to ``<elf stem>.obj/``;
    a map file and ``<elf>.build.json`` (compiler, version, commands) are
    written next to the ELF. Returns ``out_elf``; raises
    :class:`FirmwareBuildError` with the compiler output on failure.
    """
    spec = get_machine(machine)
    out_elf = Path(out_elf)
    out_elf.parent.mkdir(parents=True, exist_ok=True)
    gcc = compiler_for(spec.core)
    arch = arch_flags(spec.core, spec.fpu)
    incs = [f"-I{d}" for d in [*support_include_dirs(machine), *include_dirs]]
    cflags = [*arch, opt, *WARNING_FLAGS, *COMMON_CFLAGS, *incs,
              *_libc_flags(spec.family, nostdlib, link=False), *extra_cflags]
    log: list[list[str]] = []
    all_sources = [*map(Path, sources), *support_sources(machine, nostdlib)]
    objects = _compile_objects(gcc, all_sources, cflags,
                               out_elf.with_name(out_elf.stem + ".obj"), log)
    # The core flags among extra_cflags (-mcpu=cortex-m0plus on the Cortex-M3
    # machine) choose the C library and libgcc multilib too: linked with the
    # machine's own, ARMv6-M code got the ARMv7-M __aeabi_lmul (UMULL), memcpy, ...
    core_flags = [f for f in extra_cflags if f.startswith(("-mcpu=", "-march=", "-mfpu=", "-mfloat-abi=", "-mabi="))]
    link = [gcc, *arch, *core_flags, opt, *(str(o) for o in objects), *_link_flags(spec, out_elf),
            *_libc_flags(spec.family, nostdlib, link=True), *ldflags, "-o", str(out_elf)]
    _run_gcc(link, log, f"linking {out_elf.name} for {machine} failed", str(out_elf))
    record = {"machine": machine, "core": spec.core, "fpu": spec.fpu, "gcc": gcc,
              "gcc_version": compiler_version(gcc), "commands": log}
    out_elf.with_name(out_elf.name + ".build.json").write_text(
        json.dumps(record, indent=1))
    return out_elf


def compile_only(sources: Sequence[Path], include_dirs: Sequence[Path], core: str,
                 fpu: str | None = None, cflags: Sequence[str] = (),
                 out_dir: Path | None = None, opt: str = "-Os") -> list[Path]:
    """Compile ``sources`` for ``core``/``fpu`` without linking; return objects.

    Used to prove generated C builds warning-free for cores we do not run
    (cortex-m0plus, cortex-m7, cortex-m33, rv32imac, ...). Flags are
    :func:`arch_flags` plus the strict set of :func:`build_firmware`; the
    ``tml_board.h`` include dir is added. Objects go to ``out_dir`` (default:
    a ``tinyml-obj`` folder beside the first source). Raises
    :class:`FirmwareBuildError` with the compiler output on failure.
    """
    gcc = compiler_for(core)
    family = core_family(core)
    incs = [f"-I{d}" for d in [SUPPORT_DIR / "include", *include_dirs]]
    flags = [*arch_flags(core, fpu), opt, *WARNING_FLAGS, *COMMON_CFLAGS, *incs,
             *_libc_flags(family, nostdlib=False, link=False), *cflags]
    if out_dir is None:
        out_dir = Path(sources[0]).parent / "tinyml-obj"
    return _compile_objects(gcc, sources, flags, Path(out_dir), [])
