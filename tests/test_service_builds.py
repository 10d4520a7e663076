"""Builds that compile through a real ``tinyml serve``: ``pio run`` with ``custom_tinyml_service``
and ``scons`` with ``TINYML_SERVICE``.

The files a build gets from the service are compared byte for byte with what
the same project's local compile wrote; then the service is stopped, and an
unchanged build must still pass with no warning (it asks nothing), a changed
one must fall back to a local compile with one warning line, or fail with one
error line when the service is required or the backend is not installed here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from platformio_tinyml.integrations.platformio.offline import setup_offline

from conftest import need_programs
from service_support import Server

pytest.importorskip("platformio")
pytest.importorskip("SCons")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "example_projects"
KWS_ENV = "mps2-an386"
GEN_DIR = Path(".pio/build") / KWS_ENV / "tinyml" / "kws"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    return setup_offline(tmp_path_factory.mktemp("pio-core"))


@pytest.fixture()
def server(tmp_path):
    srv = Server(tmp_path / "service", "--workers", "1").start()
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    result.log = result.stdout + result.stderr
    return result


def _lines(log: str, word: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(word)]


def _ini(project: Path, **options: str) -> None:
    """Set ``custom_tinyml_<key> = value`` options in the project's environment."""
    ini = project / "platformio.ini"
    text = ini.read_text()
    for key, value in options.items():
        text = re.sub(rf"^custom_tinyml_{key} = .*\n", "", text, flags=re.M)
        text = text.rstrip("\n") + f"\ncustom_tinyml_{key} = {value}\n"
    ini.write_text(text)


def test_pio_run_through_the_service(offline, server, tmp_path):
    need_programs("arm-none-eabi-gcc")
    project = tmp_path / "kws-cortex-m4"
    shutil.copytree(EXAMPLES / "kws-cortex-m4", project, ignore=shutil.ignore_patterns(".pio"))
    pio = [sys.executable, "-m", "platformio", "run", "-d", str(project)]
    token = server.token("firmware", "compile,read")
    env = offline.environ({**os.environ, "TINYML_SERVICE_TOKEN": token})
    gen = project / GEN_DIR

    local = _run(pio + ["-t", "tinyml-report"], env)   # compiles the model here, builds no firmware
    assert local.returncode == 0 and "kws.h [compiled]" in local.log, local.log
    expected = _files(gen)
    assert {"kws.c", "kws.h", "report.json", ".tinyml-key", "kws_test_input.h"} <= expected.keys()

    # the service compiles: one progress line, every file as the local compile wrote it, the firmware links
    shutil.rmtree(project / ".pio")
    _ini(project, service=server.url)
    built = _run(pio, env)
    assert built.returncode == 0, built.log
    assert _lines(built.log, "TinyML: compiling") == [
        f"TinyML: compiling kws_ref_model.tflite for {KWS_ENV} on {server.url} ..."], built.log
    assert f"kws.h [compiled by {server.url}]" in built.log and "TinyML: firmware flash" in built.log
    assert _files(gen) == expected
    assert (project / ".pio" / "build" / KWS_ENV / "firmware.elf").is_file()

    # another checkout of the same project: the service's cache, asked by key, the token from the config file
    shutil.rmtree(gen)
    home = tmp_path / "home"
    (home / ".config" / "platformio-tinyml").mkdir(parents=True)
    (home / ".config" / "platformio-tinyml" / "client.toml").write_text(f'token = "{token}"\n')
    no_env_token = {k: v for k, v in env.items() if k != "TINYML_SERVICE_TOKEN"}
    hit = _run(pio + ["-t", "tinyml-report"], {**no_env_token, "HOME": str(home)})
    assert hit.returncode == 0, hit.log
    assert f"kws.h [from the cache of {server.url}]" in hit.log and "TinyML: compiling" not in hit.log, hit.log
    assert _files(gen) == expected

    # the service stopped: an unchanged build asks nothing, so nothing changes
    assert server.stop() == 0
    again = _run(pio, env)
    assert again.returncode == 0, again.log
    assert "kws.h [up to date]" in again.log and "Compiling" not in again.log, again.log
    assert not _lines(again.log, "Warning") and "service" not in again.log, again.log

    # a build that needs the model and cannot reach the service: one warning, a local compile
    shutil.rmtree(gen)
    fallback = _run(pio + ["-t", "tinyml-report"], env)
    assert fallback.returncode == 0, fallback.log
    warnings = _lines(fallback.log, "Warning")
    assert len(warnings) == 1 and "cannot reach the service" in warnings[0] and server.url in warnings[0], \
        fallback.log
    assert "kws.h [compiled]" in fallback.log
    assert _files(gen) == expected

    # ... or one error line: the service required, or the backend not installed here
    shutil.rmtree(gen)
    _ini(project, service_required="yes")
    required = _run(pio + ["-t", "tinyml-report"], env)
    _ini(project, service_required="no", backend="no_such_backend")
    missing = _run(pio + ["-t", "tinyml-report"], env)
    for result, needle in ((required, "custom_tinyml_service_required is set"),
                           (missing, "backend 'no_such_backend' is not installed here")):
        assert result.returncode != 0
        errors = _lines(result.log, "Error:")
        assert len(errors) == 1 and needle in errors[0] and "cannot reach the service" in errors[0], result.log
        assert "Traceback" not in result.log and not gen.exists()


def test_scons_through_the_service(server, tmp_path):
    need_programs("arm-none-eabi-gcc")
    project = tmp_path / "scons-cortex-m4"
    shutil.copytree(EXAMPLES / "scons-cortex-m4", project,
                    ignore=shutil.ignore_patterns("build", ".tinyml-cache", ".sconsign*"))
    scons = [sys.executable, "-m", "SCons", "-C", str(project), "build/kws"]   # the model's files only
    env = {**os.environ, "TINYML_SCONS_TOOLS": str(REPO / "scons_tools")}
    env.pop("TINYML_SERVICE_URL", None)

    local = _run(scons, env)
    assert local.returncode == 0, local.log
    expected = _files(project / "build" / "kws")
    for leftover in ("build", ".tinyml-cache", ".sconsign.dblite"):
        shutil.rmtree(project / leftover, ignore_errors=True)
        (project / leftover).unlink(missing_ok=True)

    env.update(TINYML_SERVICE_URL=server.url, TINYML_SERVICE_TOKEN=server.token("ci", "compile,read"))
    remote = _run(scons, env)
    assert remote.returncode == 0, remote.log
    assert _lines(remote.log, "TinyML: compiling") == [
        f"TinyML: compiling kws_ref_model.tflite for {KWS_ENV} on {server.url} ..."], remote.log
    assert _files(project / "build" / "kws") == expected

    assert server.stop() == 0
    again = _run(scons, env)
    assert again.returncode == 0 and "is up to date" in again.log, again.log
    assert "Warning" not in again.log and "TinyML:" not in again.log, again.log
