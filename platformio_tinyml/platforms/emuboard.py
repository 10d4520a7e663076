"""SCons tool shared by the bundled platforms' builders (``*/builder/main.py``).

Loaded with ``env.Tool("emuboard", toolpath=[<this folder>])`` inside
PlatformIO's SCons run. It adds to ``env``:

* ``BuildBoardSupport(machine)``: compiles the board-support files of
  ``platformio_tinyml/emu/support`` (startup, UART console, exit) for the
  emulated ``machine`` into the program, adds ``tml_board.h`` to the include
  path and selects the machine's linker script when it has one;
* ``ArchFlags(core, fpu)``: the compiler flags for a CPU, from
  ``platformio_tinyml.emu.toolchain.arch_flags``;
* ``UseGccToolchain(prefix, arch, cxxflags, linkflags)``: the GCC tools
  ``<prefix>-gcc``, ``<prefix>-objcopy``, ... found on PATH, the emulator
  settings of the board manifest and the flags every bundled platform
  builds with (``-Os``, sections, ``-lm``), plus the platform's own;
* ``BuildFirmware(image_command, image_suffix)``: ``firmware.elf`` from the
  program, the image ``image_command`` makes of it (``firmware.bin``,
  ``firmware.hex``), and the ``nobuild``, ``buildprog`` and ``upload``
  aliases PlatformIO expects;
* ``$TINYML_RUN_ACTION``: the ``upload`` action (``RunInEmulator``): runs
  the ELF with ``platformio_tinyml.emu.run.run`` in QEMU or simavr, prints
  the firmware's console output and fails the upload when the firmware
  exits non-zero or does not finish in time.

Errors from ``platformio_tinyml.emu`` become ``SCons.Errors.UserError``: one
``*** [env:NAME] ...`` line, no traceback. Construction variables read:
``TINYML_MACHINE`` (emulator machine, e.g. ``mps2-an386``) and
``TINYML_RUN_TIMEOUT`` (seconds, default 60); the builders set both from the
board manifest's ``emulator`` section.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import SCons.Builder
import SCons.Errors

# The platforms live inside the platformio_tinyml package; the builder runs in
# PlatformIO's Python, which may not have the package installed, so make the
# copy this file belongs to importable.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def _import_emu(module: str):
    """Import ``platformio_tinyml.emu.<module>`` from the copy this file belongs to."""
    spec = importlib.util.find_spec("platformio_tinyml")
    if spec is None or Path(spec.origin).resolve().parents[1] != _PACKAGE_PARENT:
        sys.path.insert(0, str(_PACKAGE_PARENT))
    try:
        return importlib.import_module(f"platformio_tinyml.emu.{module}")
    except ImportError as exc:
        raise SCons.Errors.UserError(
            f"cannot import platformio_tinyml.emu.{module} from {_PACKAGE_PARENT} ({exc}); "
            "reinstall platformio-tinyml."
        ) from exc


def _user_error(env, exc) -> SCons.Errors.UserError:
    """Our TinyMLError as the one-line SCons error a PlatformIO user reads."""
    text = exc.format() if hasattr(exc, "format") else str(exc)
    return SCons.Errors.UserError(f"[env:{env['PIOENV']}] {text}")


def BuildBoardSupport(env, machine: str) -> None:
    """Add the board support of emulated ``machine`` to the program.

    Compiles the files of ``toolchain.support_sources(machine)`` (startup,
    console, exit) into ``$BUILD_DIR/tinyml_board``, adds the
    ``tml_board.h`` include dirs and, for QEMU machines, the machine's
    ``link.ld``. Call before ``env.BuildProgram()``.
    """
    toolchain = _import_emu("toolchain")
    try:
        sources = toolchain.support_sources(machine)
        include_dirs = toolchain.support_include_dirs(machine)
    except toolchain.TinyMLError as exc:
        raise _user_error(env, exc) from exc
    env.Append(CPPPATH=[str(d) for d in include_dirs])
    support_dir = Path(toolchain.SUPPORT_DIR)
    link_script = support_dir / "machines" / machine / "link.ld"
    if toolchain.get_machine(machine).family == "arm" and link_script.is_file():
        env.Replace(LDSCRIPT_PATH=str(link_script))
        env.Append(LIBPATH=[str(support_dir / "cortexm")])  # INCLUDE sections.ld
    objects = [
        env.Object(f"$BUILD_DIR/tinyml_board/{src.relative_to(support_dir).with_suffix('')}",
                   str(src))
        for src in sources
    ]
    env.Append(PIOBUILDFILES=objects)


def ArchFlags(env, core: str, fpu: str | None) -> list[str]:
    """Compiler flags that select ``core`` (and ``fpu``, or None for soft float)."""
    toolchain = _import_emu("toolchain")
    try:
        return list(toolchain.arch_flags(core, fpu))
    except toolchain.TinyMLError as exc:
        raise _user_error(env, exc) from exc


def UseGccToolchain(env, prefix: str, arch: list[str], cxxflags: list[str],
                    linkflags: list[str]) -> None:
    """Build with the GCC cross toolchain ``prefix`` (e.g. ``arm-none-eabi``) from PATH.

    ``arch`` (from ``ArchFlags``) goes to the assembler, compiler and linker;
    ``cxxflags`` and ``linkflags`` follow the common C++ and link flags.
    Also sets ``$TINYML_MACHINE`` and ``$TINYML_RUN_TIMEOUT`` from the board
    manifest's ``emulator`` section. Call before ``BuildBoardSupport``.
    """
    board = env.BoardConfig()
    env.Replace(
        AR=f"{prefix}-gcc-ar", AS=f"{prefix}-gcc", CC=f"{prefix}-gcc", CXX=f"{prefix}-g++",
        GDB=f"{prefix}-gdb", OBJCOPY=f"{prefix}-objcopy", RANLIB=f"{prefix}-gcc-ranlib",
        SIZETOOL=f"{prefix}-size",
        PROGNAME="firmware",
        PROGSUFFIX=".elf",
        TINYML_MACHINE=board.get("emulator.machine"),
        TINYML_RUN_TIMEOUT=board.get("emulator.timeout", 60),
        TINYML_RUN_LOADS=board.get("emulator.load", ""),
    )
    env.Append(
        ASFLAGS=arch + ["-x", "assembler-with-cpp"],
        CCFLAGS=arch + ["-Os", "-g", "-Wall", "-ffunction-sections", "-fdata-sections"],
        CXXFLAGS=["-fno-rtti", "-fno-exceptions"] + cxxflags,
        CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
        LINKFLAGS=arch + ["-Os"] + linkflags
        + ["-Wl,--gc-sections", '-Wl,-Map,"${BUILD_DIR}/${PROGNAME}.map"'],  # quoted: paths with spaces
        LIBS=["m"],
    )


def BuildFirmware(env, image_command: str, image_suffix: str) -> None:
    """Declare ``firmware.elf``, its image (``firmware<image_suffix>``, made from the
    ELF by ``image_command``) and the ``nobuild``/``buildprog``/``upload`` aliases
    PlatformIO expects. The last call of a builder."""
    from SCons.Script import COMMAND_LINE_TARGETS  # pylint: disable=import-error
    if "nobuild" in COMMAND_LINE_TARGETS:
        target_elf = os.path.join("$BUILD_DIR", "${PROGNAME}.elf")
        target_image = os.path.join("$BUILD_DIR", "${PROGNAME}" + image_suffix)
    else:
        target_elf = env.BuildProgram()
        image = SCons.Builder.Builder(action=env.VerboseAction(image_command, "Building $TARGET"),
                                      suffix=image_suffix)
        target_image = image(env, os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)
    env.AlwaysBuild(env.Alias("nobuild", target_image))
    env.Default([env.Alias("buildprog", target_image, target_image)])
    env.AlwaysBuild(env.Alias("upload", target_elf, env["TINYML_RUN_ACTION"]))


def parse_loads(text: str, project_dir: Path) -> list[tuple[Path, int]]:
    """``board_emulator.load``: ``file@address`` items (comma or newline separated;
    files relative to the project) placed in the emulated memory before the start."""
    _emu = _import_emu("run")
    loads = []
    for item in (i.strip() for i in str(text or "").replace("\n", ",").split(",")):
        if not item:
            continue
        path, sep, addr = item.rpartition("@")
        try:
            address = int(addr, 0)
        except ValueError:
            address = -1
        if not sep or not path or address < 0:
            raise _emu.TinyMLError(f"'{item}' is not file@address", where="board_emulator.load",
                                   hint="Write e.g. board_emulator.load = kws.tmm@0x00200000")
        loads.append((project_dir / path, address))
    return loads


def RunInEmulator(target, source, env) -> None:
    """SCons action: run ``source[0]`` in the emulator; raise UserError unless it exits 0."""
    emu_run = _import_emu("run")
    elf = Path(str(source[0]))
    machine = env.subst("$TINYML_MACHINE")
    timeout = float(env.get("TINYML_RUN_TIMEOUT", 60))
    try:
        loads = parse_loads(env.get("TINYML_RUN_LOADS", ""), Path(env.subst("$PROJECT_DIR")))
        result = emu_run.run(elf, machine, timeout, loads=loads)
    except emu_run.TinyMLError as exc:
        raise _user_error(env, exc) from exc
    sys.stdout.write(result.stdout)
    if result.stdout and not result.stdout.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    where = f"[env:{env['PIOENV']}] {elf.name} on emulated {machine}"
    if result.timed_out:
        raise SCons.Errors.UserError(
            f"{where} did not finish within {timeout:g} s. Return from main() or call "
            "board_exit(); for longer runs set board_emulator.timeout in platformio.ini."
        )
    if result.exit_code != 0:
        raise SCons.Errors.UserError(
            f"{where} exited with code {result.exit_code} (its console output is above)."
        )


def generate(env) -> None:
    env.SetDefault(TINYML_RUN_TIMEOUT=60)
    env.AddMethod(BuildBoardSupport)
    env.AddMethod(ArchFlags)
    env.AddMethod(UseGccToolchain)
    env.AddMethod(BuildFirmware)
    env.Replace(TINYML_RUN_ACTION=env.VerboseAction(
        RunInEmulator, "Running $SOURCE on emulated $TINYML_MACHINE"))


def exists(env) -> bool:
    return (_PACKAGE_PARENT / "platformio_tinyml" / "emu" / "toolchain.py").is_file()
