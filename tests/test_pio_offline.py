"""End to end through the real ``pio run`` with no network.

Each test works in a fresh PlatformIO core dir prepared by
``setup_offline``, writes a small project and runs PlatformIO Core as a
subprocess, then checks what a firmware engineer would see: the ELF, the
RAM/Flash summary and the firmware's console output from ``-t upload``
(which runs the firmware in QEMU or simavr).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from platformio_tinyml.integrations.platformio.offline import (
    bundled_platforms,
    platform_uris,
    setup_offline,
)

from conftest import need_programs

pytest.importorskip("platformio")
pytest.importorskip("SCons")

# Computed at run time so the line proves the firmware ran: 1^2 + ... + 20^2.
MAIN_C = """\
#include <stdint.h>
#include <stdio.h>
#include "tml_board.h"

static volatile int32_t limit = 20;

int main(void)
{
    int32_t sum = 0;
    for (int32_t i = 1; i <= limit; i++) {
        sum += i * i;
    }
    board_puts("tinyml-offline: sum of squares = ");
    board_print_i32(sum);
    board_puts("\\n");
    printf("printf: %%d squares\\n", (int)limit);
    return %s;
}
"""
EXPECTED_LINE = "tinyml-offline: sum of squares = 2870"

BOARDS = [
    pytest.param("tinyml-qemu-arm", "mps2-an386", ("arm-none-eabi-gcc", "qemu-system-arm"),
                 id="mps2-an386"),
    pytest.param("tinyml-qemu-arm", "mps3-an547", ("arm-none-eabi-gcc", "qemu-system-arm"),
                 id="mps3-an547"),
    pytest.param("tinyml-qemu-arm", "mps2-an385", ("arm-none-eabi-gcc", "qemu-system-arm"),
                 id="mps2-an385"),
    pytest.param("tinyml-simavr", "simavr-atmega2560", ("avr-gcc", "simavr"),
                 id="simavr-atmega2560"),
    pytest.param("tinyml-simavr", "simavr-atmega328p", ("avr-gcc", "simavr"),
                 id="simavr-atmega328p"),
]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """A core dir set up for offline use, shared by the tests of this module."""
    return setup_offline(tmp_path_factory.mktemp("pio-core"))


def _project(root: Path, platform: str, board: str, exit_code: str = "0",
             main_c: str | None = None) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "platformio.ini").write_text(
        f"[env:{board}]\nplatform = {platform}\nboard = {board}\n", encoding="utf-8")
    (root / "src" / "main.c").write_text(main_c or MAIN_C % exit_code, encoding="utf-8")
    return root


def _pio(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platformio", "run", "-d", str(project), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("platform, board, programs", BOARDS)
def test_build_then_upload_runs_firmware(offline, tmp_path, platform, board, programs):
    need_programs(*programs)
    project = _project(tmp_path / board, platform, board)
    env = offline.environ()

    built = _pio(project, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (project / ".pio" / "build" / board / "firmware.elf").is_file()
    assert "RAM:   [" in built.stdout and "Flash: [" in built.stdout, built.stdout

    uploaded = _pio(project, env, "-t", "upload")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert EXPECTED_LINE in uploaded.stdout, uploaded.stdout
    assert "printf: 20 squares\n" in uploaded.stdout, uploaded.stdout   # the C library's stdio too
    assert "Compiling" not in uploaded.stdout  # nothing changed since `pio run`


def test_upload_fails_when_firmware_exits_nonzero(offline, tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    project = _project(tmp_path / "fails", "tinyml-qemu-arm", "mps2-an385", exit_code="3")

    result = _pio(project, offline.environ(), "-t", "upload")

    assert result.returncode != 0
    assert EXPECTED_LINE in result.stdout, result.stdout
    assert "exited with code 3" in result.stdout + result.stderr


def test_compile_error_fails_with_compiler_message(offline, tmp_path):
    need_programs("arm-none-eabi-gcc")
    broken = "int main(void)\n{\n    return undeclared_thing;\n}\n"
    project = _project(tmp_path / "broken", "tinyml-qemu-arm", "mps2-an386", main_c=broken)

    result = _pio(project, offline.environ())

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "src/main.c:3" in output and "'undeclared_thing' undeclared" in output, output
    assert "[FAILED]" in output


def test_platform_by_sysenv_path_without_linking(tmp_path):
    """The alternative to linking by name: ``symlink://${sysenv.VAR}/<platform>``."""
    need_programs("arm-none-eabi-gcc")
    setup = setup_offline(tmp_path / "core", link_platforms=False)
    assert not (tmp_path / "core" / "platforms").exists()
    project = _project(tmp_path / "proj", "symlink://${sysenv.TINYML_PLATFORMS}/tinyml-qemu-arm",
                       "mps2-an385")
    env = setup.environ()
    env["TINYML_PLATFORMS"] = str(bundled_platforms()["tinyml-qemu-arm"].parent)

    result = _pio(project, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / ".pio" / "build" / "mps2-an385" / "firmware.elf").is_file()


def test_setup_offline_writes_links_and_env(tmp_path):
    setup = setup_offline(tmp_path / "core")

    assert (tmp_path / "core" / "packages" / "tool-scons.pio-link").is_file()
    assert (setup.scons_stub_dir / "scons.py").is_file()
    assert setup.scons_stub_dir.is_relative_to(setup.core_dir)
    assert set(setup.platforms) == {"tinyml-qemu-arm", "tinyml-simavr"}
    for name in setup.platforms:
        assert (tmp_path / "core" / "platforms" / f"{name}.pio-link").is_file()
    assert setup.env == {
        "PLATFORMIO_CORE_DIR": str(setup.core_dir),
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
        "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    }
    assert platform_uris()["tinyml-simavr"].startswith("symlink:///")
    # Idempotent: a second run rewrites the same files.
    assert setup_offline(tmp_path / "core").written == setup.written


def test_main_prints_exports(tmp_path, capsys):
    from platformio_tinyml.integrations.platformio.offline import main

    assert main(["--core-dir", str(tmp_path / "core")]) == 0
    out = capsys.readouterr().out
    assert f"export PLATFORMIO_CORE_DIR={tmp_path / 'core'}" in out
    assert "platform = tinyml-qemu-arm" in out
