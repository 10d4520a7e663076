"""Builder of the tinyml-simavr platform: bare C for AVR ATmega boards under simavr.

Compiles ``src/`` plus the board support of ``platformio_tinyml/emu/support``
with the ``avr-gcc``/``avr-libc`` found on PATH, links ``firmware.elf`` and
makes ``firmware.hex``. ``pio run -t upload`` runs the ELF in ``simavr``.
"""

import os

from SCons.Script import DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
env.Tool("emuboard", toolpath=[os.path.dirname(env.PioPlatform().get_dir())])  # platforms/emuboard.py
board = env.BoardConfig()

env.UseGccToolchain(
    "avr",
    env.ArchFlags(board.get("build.mcu"), None),
    cxxflags=["-fno-threadsafe-statics"],
    linkflags=[
        # simavr reads its console-register tag from the ELF's .mmcu section
        # (see emu/support/avr/board_avr.c): keep it, and out of flash and RAM.
        "-Wl,--undefined=tml_simavr_mmcu",
        "-Wl,--section-start=.mmcu=0x910000",
    ],
)
env.BuildBoardSupport(board.get("emulator.machine"))
env.BuildFirmware("$OBJCOPY -O ihex -R .eeprom $SOURCES $TARGET", ".hex")
