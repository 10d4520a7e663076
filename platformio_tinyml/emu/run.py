"""Run a firmware ELF in QEMU or simavr and collect its console output.

Role: the last step of a parity test: the ELF from
:func:`platformio_tinyml.emu.toolchain.build_firmware` runs in an emulator
and the caller compares ``RunResult.stdout`` with the reference.

Commands (``<elf>`` is the firmware; see ``support/`` for the board side):

* mps2-an385 / mps2-an386 / mps3-an547::

    qemu-system-arm -M <machine> -nographic -monitor none -serial stdio
        -icount shift=0 -semihosting-config enable=on,target=native
        -kernel <elf>

  UART0 goes to stdout; semihosting SYS_EXIT_EXTENDED sets QEMU's exit
  status; ``-icount shift=0`` (1 ns per instruction) makes the SysTick
  instruction counter exact and repeatable.
* atmega328p / atmega2560::

    simavr -m <mcu> -f 16000000 <elf>

  simavr prints the console register's lines as ``O:<text>`` on stderr;
  the exit code comes from the ``@@tml-exit=<code>`` line that
  ``board_exit`` writes before ``cli; sleep`` (simavr itself exits 0).
* riscv32-virt::

    qemu-system-riscv32 -M virt -m 128M -bios none -nographic -monitor none
        -serial stdio -icount shift=0 -kernel <elf>

  NS16550 UART0 to stdout; the SiFive test device sets the exit status.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinyMLError
from .toolchain import Machine, ToolNotFoundError, get_machine

AVR_FREQUENCY_HZ = 16_000_000
_AVR_EXIT = re.compile(r"^@@tml-exit=(-?\d+)$")


class EmulatorError(TinyMLError):
    """The emulator could not be started or its output makes no sense."""


@dataclass
class RunResult:
    """What one emulator run produced.

    ``stdout``: the firmware's console text (UART / simavr console), with
    emulator chatter removed; ``exit_code``: the firmware's exit code, None
    when it did not exit (timeout, hang, crash without code);
    ``timed_out``: the run was killed after ``timeout`` seconds;
    ``command``: the command line; ``stderr``: the emulator's own messages;
    ``wall_s``: host seconds the run took.
    """

    stdout: str
    exit_code: int | None
    timed_out: bool
    command: list[str]
    stderr: str = ""
    wall_s: float = 0.0
    raw_stdout: str = field(default="", repr=False)


def emulator_command(elf: Path, machine: str) -> list[str]:
    """The command line that runs ``elf`` on ``machine`` (see module doc)."""
    spec = get_machine(machine)
    exe = _find_emulator(spec)
    if spec.family == "arm":
        return [exe, "-M", machine, "-nographic", "-monitor", "none",
                "-serial", "stdio", "-icount", "shift=0",
                "-semihosting-config", "enable=on,target=native",
                "-kernel", str(elf)]
    if spec.family == "avr":
        return [exe, "-m", spec.core, "-f", str(AVR_FREQUENCY_HZ), str(elf)]
    return [exe, "-M", "virt", "-m", "128M", "-bios", "none", "-nographic",
            "-monitor", "none", "-serial", "stdio", "-icount", "shift=0",
            "-kernel", str(elf)]


def _find_emulator(spec: Machine) -> str:
    path = shutil.which(spec.emulator)
    if path is None:
        raise ToolNotFoundError(
            f"{spec.emulator} not found on PATH (needed for machine '{spec.name}')",
            hint=f"Install the Debian package {spec.emulator_package} "
                 "(scripts/setup.sh does)")
    return path


def _parse_simavr(stderr: str) -> tuple[str, int | None, str]:
    """Console text, exit code and leftover messages from simavr's stderr."""
    lines, other, code = [], [], None
    for line in stderr.splitlines():
        if not line.startswith("O:"):
            other.append(line)
            continue
        match = _AVR_EXIT.match(line[2:])
        if match:
            code = int(match.group(1))
        else:
            lines.append(line[2:] + "\n")
    return "".join(lines), code, "\n".join(other)


def run(elf: Path, machine: str, timeout: float = 60,
        stdin_data: bytes | str | None = None, loads: Sequence[tuple[Path, int]] = ()) -> RunResult:
    """Run ``elf`` on ``machine`` until it exits or ``timeout`` seconds pass.

    ``machine``: a key of ``toolchain.MACHINES``; ``stdin_data``: bytes fed
    to the emulated UART's receive side (QEMU machines only); ``loads``:
    (file, address) pairs placed in the emulated memory before the start
    (QEMU machines: ``-device loader``; e.g. inference modules in their
    slots). On timeout the emulator's whole process group is killed and
    ``timed_out`` is set. Raises :class:`ToolNotFoundError` when the
    emulator is missing.
    """
    elf = Path(elf)
    if not elf.is_file():
        raise EmulatorError(f"firmware '{elf}' does not exist",
                            hint="Build it with build_firmware() first")
    spec = get_machine(machine)
    cmd = emulator_command(elf, machine)
    if loads and spec.family == "avr":
        raise EmulatorError(f"machine '{machine}' (simavr) cannot preload files into memory",
                            hint="Use a QEMU machine (mps2-an386, ...) for emulator loads")
    for path, addr in loads:
        if not Path(path).is_file():
            raise EmulatorError(f"file to load at 0x{addr:x} does not exist", where=str(path))
        cmd += ["-device", f"loader,file={Path(path).resolve()},addr=0x{addr:x}"]
    if isinstance(stdin_data, str):
        stdin_data = stdin_data.encode()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(stdin_data or b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    wall = time.monotonic() - start
    out_text = out.decode("utf-8", errors="replace")
    err_text = err.decode("utf-8", errors="replace")
    if spec.family == "avr":
        console, code, rest = _parse_simavr(err_text)
        return RunResult(console, None if timed_out else code, timed_out, cmd,
                         rest, wall, out_text)
    code = None if timed_out else proc.returncode
    return RunResult(out_text, code, timed_out, cmd, err_text, wall, out_text)
