"""Builder of the tinyml-simavr platform: bare C for AVR ATmega boards under simavr.

Compiles ``src/`` plus the board support of ``platformio_tinyml/emu/support``
with the ``avr-gcc``/``avr-libc`` found on PATH, links ``firmware.elf`` and
makes ``firmware.hex``. ``pio run -t upload`` runs the ELF in ``simavr``.
"""

import os

from SCons.Script import COMMAND_LINE_TARGETS  # pylint: disable=import-error
from SCons.Script import AlwaysBuild, Builder, Default, DefaultEnvironment

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

env.Tool("emuboard", toolpath=[os.path.dirname(platform.get_dir())])

env.Replace(
    AR="avr-gcc-ar",
    AS="avr-gcc",
    CC="avr-gcc",
    CXX="avr-g++",
    GDB="avr-gdb",
    OBJCOPY="avr-objcopy",
    RANLIB="avr-gcc-ranlib",
    SIZETOOL="avr-size",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    TINYML_MACHINE=board.get("emulator.machine"),
    TINYML_RUN_TIMEOUT=board.get("emulator.timeout", 60),
)

arch = env.ArchFlags(board.get("build.mcu"), None)
env.Append(
    ASFLAGS=arch + ["-x", "assembler-with-cpp"],
    CCFLAGS=arch + ["-Os", "-g", "-Wall", "-ffunction-sections", "-fdata-sections"],
    CXXFLAGS=["-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=arch + [
        "-Os",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/${PROGNAME}.map",
        # simavr reads its console-register tag from the ELF's .mmcu section
        # (see emu/support/avr/board_avr.c): keep it, and out of flash and RAM.
        "-Wl,--undefined=tml_simavr_mmcu",
        "-Wl,--section-start=.mmcu=0x910000",
    ],
    LIBS=["m"],
    BUILDERS=dict(
        ElfToHex=Builder(
            action=env.VerboseAction(
                "$OBJCOPY -O ihex -R .eeprom $SOURCES $TARGET", "Building $TARGET"
            ),
            suffix=".hex",
        )
    ),
)
env.BuildBoardSupport(board.get("emulator.machine"))

if "nobuild" in COMMAND_LINE_TARGETS:
    target_elf = os.path.join("$BUILD_DIR", "${PROGNAME}.elf")
    target_hex = os.path.join("$BUILD_DIR", "${PROGNAME}.hex")
else:
    target_elf = env.BuildProgram()
    target_hex = env.ElfToHex(os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)

AlwaysBuild(env.Alias("nobuild", target_hex))
Default([env.Alias("buildprog", target_hex, target_hex)])
AlwaysBuild(env.Alias("upload", target_elf, env["TINYML_RUN_ACTION"]))
