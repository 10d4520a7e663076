"""The package's board database: board ids work on a fresh, offline install.

Each test runs the real ``tinyml`` command with no ``$TINYML_BOARDS_DIRS`` and an
empty PlatformIO core dir, so only the emulated boards bundled with the
package and the board database (laid out by ``scripts/build_board_db.py`` at
setup) can answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import BOARDS, MLPERF, REPO

DB = REPO / "platformio_tinyml" / "device" / "boards_db"


def _tinyml(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "TINYML_BOARDS_DIRS"}
    env["PLATFORMIO_CORE_DIR"] = str(tmp_path / "empty-core")
    return subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_database_holds_every_shared_manifest_with_its_licence():
    shared = {p.relative_to(BOARDS) for p in BOARDS.glob("*/*.json")}
    db = {p.relative_to(DB) for p in DB.glob("*/*.json")}
    assert len(shared) == 1057 and db == shared
    for platform in {p.parts[0] for p in shared}:
        assert (DB / platform / "LICENSE").read_text().startswith(
            (BOARDS / platform / "LICENSE").read_text()[:200])
        assert "Apache License" in (DB / platform / "LICENSE").read_text()


def test_readme_example_compiles_on_a_fresh_install(tmp_path):
    r = _tinyml(tmp_path, "compile", str(MLPERF / "kws_ref_model.tflite"), "--target", "nucleo_f446re",
                "-o", str(tmp_path / "gen"))
    assert r.returncode == 0, r.stderr
    assert "for nucleo_f446re (cortex-m4" in r.stdout
    target = json.loads((tmp_path / "gen" / "report.json").read_text())["target"]
    assert target["platform"] == "ststm32" and target["ram_bytes"] == 128 * 1024


def test_boards_lists_and_searches(tmp_path):
    r = _tinyml(tmp_path, "boards", "nucleo", "f446")
    assert r.returncode == 0, r.stderr
    ids = [ln.split()[0] for ln in r.stdout.splitlines()[1:-1]]
    assert ids == ["nucleo_f446re", "nucleo_f446ze"] and r.stdout.endswith("2 boards\n")
    r = _tinyml(tmp_path, "boards", "--json", "atmega328p", "uno")
    assert r.returncode == 0, r.stderr
    profs = {p["board"]: p for p in json.loads(r.stdout)}
    assert profs["uno"]["core"] == "avr" and profs["uno"]["ram_bytes"] == 2048
    r = _tinyml(tmp_path, "boards", "no-such-board-anywhere")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no board matches" in r.stderr


def test_unknown_board_points_at_the_search(tmp_path):
    r = _tinyml(tmp_path, "compile", str(MLPERF / "kws_ref_model.tflite"), "--target", "nucleo_f446rx",
                "-o", str(tmp_path / "gen"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "nucleo_f446re" in r.stderr and "tinyml boards" in r.stderr


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`tinyml boards | head -1`: the listing is larger than a pipe buffer, so the
    command writes into a closed pipe; it stops without an 'internal error'."""
    env = {k: v for k, v in os.environ.items() if k != "TINYML_BOARDS_DIRS"}
    p = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "boards"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"board ")
    p.stdout.close()
    assert p.wait(timeout=120) == 141     # as if killed by SIGPIPE
    assert p.stderr.read() == b""
