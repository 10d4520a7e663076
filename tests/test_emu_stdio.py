"""printf/puts/putchar reach the emulator console on every emulated board.

A program writes through the C library's stdio (a formatted number, a
string, a partial line flushed by hand) and through board_puts(); the
emulator's console must show exactly those bytes in that order.
"""

from __future__ import annotations

import pytest

from platformio_tinyml.emu import MACHINES, build_firmware, run

PROGRAM = r"""
#include <stdio.h>
#include "tml_board.h"

int main(void)
{
    board_init();
    printf("printf %d %s %x\n", -42, "ok", 0xbeefu);
    puts("puts line");
    putchar('c');
    putchar('\n');
    fputs("stderr partial", stderr);
    fflush(stderr);
    board_puts(" then board_puts\n");
    fprintf(stdout, "last %u\n", 7u);
    fflush(stdout);
    return 5;
}
"""
EXPECTED = "printf -42 ok beef\nputs line\nc\nstderr partial then board_puts\nlast 7\n"


@pytest.mark.parametrize("machine", list(MACHINES))
def test_stdio_reaches_the_console(machine, tmp_path):
    src = tmp_path / "hello.c"
    src.write_text(PROGRAM)
    elf = build_firmware([src], [], tmp_path / "hello.elf", machine)
    result = run(elf, machine, timeout=30)
    assert not result.timed_out, result
    assert result.stdout == EXPECTED
    assert result.exit_code == 5
