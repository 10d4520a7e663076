"""Builder of the tinyml-qemu-arm platform: bare C for the QEMU MPS2/MPS3 boards.

Compiles ``src/`` plus the board support of ``platformio_tinyml/emu/support``
with the ``arm-none-eabi-gcc`` found on PATH (newlib-nano as the C library),
links ``firmware.elf`` with the machine's linker script and makes
``firmware.bin``. ``pio run -t upload`` runs the ELF in ``qemu-system-arm``.
"""

import os

from SCons.Script import DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
env.Tool("emuboard", toolpath=[os.path.dirname(env.PioPlatform().get_dir())])  # platforms/emuboard.py
board = env.BoardConfig()

env.UseGccToolchain(
    "arm-none-eabi",
    env.ArchFlags(board.get("build.cpu"), board.get("build.fpu", None)),
    cxxflags=[],
    linkflags=["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs"],
)
env.BuildBoardSupport(board.get("emulator.machine"))
env.BuildFirmware("$OBJCOPY -O binary $SOURCES $TARGET", ".bin")
