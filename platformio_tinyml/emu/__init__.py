"""Emulated boards for end-to-end tests: build C, run it, read its output.

Three parts (details in README.md next to this file):

* ``support/``: startup code, linker scripts and the ``tml_board.h`` API
  (console, instruction/cycle counter, exit) for QEMU mps2-an385,
  mps2-an386, mps3-an547, riscv32 virt and simavr atmega328p/atmega2560;
* :mod:`.toolchain`: per-core gcc flags, :func:`build_firmware`,
  :func:`compile_only`;
* :mod:`.run`: :func:`run` starts the emulator and returns a
  :class:`RunResult`.

Typical use::

    elf = build_firmware([Path("test_main.c")], [], tmp / "t.elf", "mps2-an386")
    result = run(elf, "mps2-an386")
    assert result.exit_code == 0 and result.stdout == expected
"""

from .run import EmulatorError, RunResult, emulator_command, run
from .toolchain import (
    MACHINES,
    SUPPORT_DIR,
    FirmwareBuildError,
    Machine,
    ToolNotFoundError,
    arch_flags,
    build_firmware,
    compile_only,
    compiler_for,
    compiler_version,
    get_machine,
    support_include_dirs,
    support_sources,
)

__all__ = [
    "MACHINES",
    "SUPPORT_DIR",
    "EmulatorError",
    "FirmwareBuildError",
    "Machine",
    "RunResult",
    "ToolNotFoundError",
    "arch_flags",
    "build_firmware",
    "compile_only",
    "compiler_for",
    "compiler_version",
    "emulator_command",
    "get_machine",
    "run",
    "support_include_dirs",
    "support_sources",
]
