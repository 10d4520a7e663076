"""Builder of the tinyml-qemu-arm platform: bare C for the QEMU MPS2/MPS3 boards.

Compiles ``src/`` plus the board support of ``platformio_tinyml/emu/support``
with the ``arm-none-eabi-gcc`` found on PATH (newlib-nano as the C library),
links ``firmware.elf`` with the machine's linker script and makes
``firmware.bin``. ``pio run -t upload`` runs the ELF in ``qemu-system-arm``.
"""

import os

from SCons.Script import COMMAND_LINE_TARGETS  # pylint: disable=import-error
from SCons.Script import AlwaysBuild, Builder, Default, DefaultEnvironment

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

env.Tool("emuboard", toolpath=[os.path.dirname(platform.get_dir())])

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-gcc",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    TINYML_MACHINE=board.get("emulator.machine"),
    TINYML_RUN_TIMEOUT=board.get("emulator.timeout", 60),
)

arch = env.ArchFlags(board.get("build.cpu"), board.get("build.fpu", None))
env.Append(
    ASFLAGS=arch + ["-x", "assembler-with-cpp"],
    CCFLAGS=arch + ["-Os", "-g", "-Wall", "-ffunction-sections", "-fdata-sections"],
    CXXFLAGS=["-fno-rtti", "-fno-exceptions"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=arch + [
        "-Os",
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/${PROGNAME}.map",
    ],
    LIBS=["m"],
    BUILDERS=dict(
        ElfToBin=Builder(
            action=env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET", "Building $TARGET"),
            suffix=".bin",
        )
    ),
)
env.BuildBoardSupport(board.get("emulator.machine"))

if "nobuild" in COMMAND_LINE_TARGETS:
    target_elf = os.path.join("$BUILD_DIR", "${PROGNAME}.elf")
    target_bin = os.path.join("$BUILD_DIR", "${PROGNAME}.bin")
else:
    target_elf = env.BuildProgram()
    target_bin = env.ElfToBin(os.path.join("$BUILD_DIR", "${PROGNAME}"), target_elf)

AlwaysBuild(env.Alias("nobuild", target_bin))
Default([env.Alias("buildprog", target_bin, target_bin)])
AlwaysBuild(env.Alias("upload", target_elf, env["TINYML_RUN_ACTION"]))
