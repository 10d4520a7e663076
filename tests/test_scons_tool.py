"""The SCons tool end to end: real ``scons`` on example_projects/scons-cortex-m4.

Builds the firmware, runs it in QEMU (``platformio_tinyml.emu.run``) and
compares its ``output:`` line with the TFLite Micro reference; then checks
that a no-change build does nothing, that a changed model rebuilds and that a
user mistake is one ``scons: ***`` line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import mounted, need_programs

pytest.importorskip("SCons")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_projects" / "scons-cortex-m4"
MACHINE = "mps2-an386"


def _scons(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(__import__("os").environ, TINYML_SCONS_TOOLS=str(REPO / "scons_tools"))
    result = subprocess.run([sys.executable, "-m", "SCons", "-C", str(project), *args], env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    result.log = result.stdout + result.stderr
    return result


def _scons_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("scons: ***")]


def _run_output(project: Path) -> list[int]:
    from platformio_tinyml.emu import run
    result = run(project / "build" / "firmware.elf", MACHINE)
    assert result.exit_code == 0, result.stdout
    match = re.search(r"^output:((?: -?\d+)+)$", result.stdout, re.M)
    assert match, result.stdout
    return [int(v) for v in match.group(1).split()]


def _reference(project: Path) -> list[int]:
    from platformio_tinyml.verify.reference import TFLMReference
    out = TFLMReference(project / "kws_ref_model.tflite").run([np.load(project / "test_input.npy")])[0]
    return [int(v) for v in np.asarray(out).reshape(-1)]


def _copy(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", ".tinyml-cache", ".sconsign*"))
    return dest


@pytest.fixture()
def project(tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    return _copy(tmp_path / "scons-cortex-m4")


def test_build_run_rebuild(project):
    built = _scons(project)
    assert built.returncode == 0, built.log
    assert "TinyML: kws_ref_model.tflite -> build/kws for mps2-an386" in built.log
    assert "TinyML: firmware flash" in built.log
    assert _run_output(project) == _reference(project)
    generated = project / "build" / "kws" / "kws.c"
    stamp = generated.stat().st_mtime_ns

    again = _scons(project)
    assert again.returncode == 0, again.log
    assert "`.' is up to date." in again.log or "is up to date" in again.log, again.log
    assert "TinyML:" not in again.log and "arm-none-eabi-gcc" not in again.log, again.log
    assert generated.stat().st_mtime_ns == stamp

    model = project / "kws_ref_model.tflite"
    data = bytearray(model.read_bytes())
    data[30000] ^= 0x01
    model.write_bytes(bytes(data))
    changed = _scons(project)
    assert changed.returncode == 0, changed.log
    assert "TinyML: kws_ref_model.tflite -> build/kws" in changed.log, changed.log
    assert _run_output(project) == _reference(project)


def test_emitter_declares_every_output(project):
    listed = _scons(project, "-n", "--tree=prune", "build/kws")
    assert listed.returncode == 0, listed.log
    for name in ("kws.c", "kws.h", "report.json", "kws_test_input.h", "tml_conv_s8.c"):
        assert f"build/kws/{name}" in listed.log, listed.log


def test_unknown_board_is_one_scons_error(project):
    sconstruct = project / "SConstruct"
    sconstruct.write_text(sconstruct.read_text().replace('TINYML_TARGET=MACHINE', 'TINYML_TARGET="no-such-board"'))

    result = _scons(project)

    assert result.returncode != 0
    errors = [line for line in result.log.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "no-such-board" in errors[0], result.log
    assert "Traceback" not in result.log


def test_gate_fails_with_one_scons_error(project):
    sconstruct = project / "SConstruct"
    sconstruct.write_text(sconstruct.read_text().replace("env.TinyMLGate(firmware, kws)",
                                                         "env.TinyMLGate(firmware, kws)\n"
                                                         "env['TINYML_RAM_MAX'] = 8192"))

    result = _scons(project)

    assert result.returncode != 0
    errors = [line for line in result.log.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1, result.log
    assert "firmware needs" in errors[0] and "of RAM" in errors[0] and "8,192 B" in errors[0], errors
    assert "Traceback" not in result.log


def test_module_builder_matches_the_cli(project, tmp_path):
    """env.TinyMLModule gives the bytes of `tinyml module pack`; a new version rebuilds it."""
    from platformio_tinyml.cli.main import main as cli
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    sconstruct = project / "SConstruct"
    sconstruct.write_text(sconstruct.read_text() + (
        'module = env.TinyMLModule("build/kws.tmm", "kws_ref_model.tflite", TINYML_TARGET=MACHINE,\n'
        '                          TINYML_MODULE_KEY="keys/release.key",\n'
        '                          TINYML_MODULE_VERSION=ARGUMENTS.get("version", "3"))\n'))

    built = _scons(project, "build/kws.tmm")
    again = _scons(project, "build/kws.tmm")
    bumped = _scons(project, "build/kws.tmm", "version=4")

    assert built.returncode == 0, built.log
    assert "TinyML: kws_ref_model.tflite -> build/kws.tmm (module version 3)" in built.log, built.log
    assert again.returncode == 0 and "TinyML:" not in again.log, again.log
    assert bumped.returncode == 0 and "(module version 4)" in bumped.log, bumped.log
    assert cli(["module", "pack", str(project / "kws_ref_model.tflite"), "--target", MACHINE, "--key",
                str(project / "keys" / "release.key"), "--version", "4", "-o", str(tmp_path / "cli.tmm")]) == 0
    assert (tmp_path / "cli.tmm").read_bytes() == (project / "build" / "kws.tmm").read_bytes()


def test_module_builder_without_key_is_one_scons_error(project):
    sconstruct = project / "SConstruct"
    sconstruct.write_text(sconstruct.read_text() +
                          'env.TinyMLModule("build/kws.tmm", "kws_ref_model.tflite", TINYML_TARGET=MACHINE,\n'
                          '                 TINYML_MODULE_VERSION=1)\n')
    result = _scons(project, "build/kws.tmm")
    errors = [line for line in result.log.splitlines() if line.startswith("scons: ***")]
    assert result.returncode != 0 and "Traceback" not in result.log, result.log
    assert len(errors) == 1 and "TINYML_MODULE_KEY" in errors[0] and "keygen" in errors[0], result.log


def test_executor_firmware_runs_modules(project, tmp_path):
    """env.TinyMLExecutor: a firmware built by SCons with the loader + executor installs a KWS
    module from its slot and gives TFLM's outputs; a rebuild with nothing changed does nothing."""
    from platformio_tinyml.cli.main import main as cli
    from platformio_tinyml.module.emu import run_slots, slot_defines, slot_main_source
    from platformio_tinyml.module.pack import pack_module
    from platformio_tinyml.verify.reference import TFLMReference
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    (project / "src" / "main.c").write_text(slot_main_source(
        '#include "tml_module_key.h"\n#define pubkey tml_module_pubkey', 32 * 1024))
    sconstruct = project / "SConstruct"
    text = sconstruct.read_text()
    text = text[:text.index("kws = env.TinyMLModel(")] + (
        'env.Append(CPPDEFINES=[d[2:] for d in %r], CPPPATH=["build/executor"])\n'
        'executor = env.TinyMLExecutor("build/executor", ["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8",\n'
        '                              "tml_avgpool_s8", "tml_softmax_s8"], "keys/release.pub")\n'
        'board = [env.Object("build/board/" + src.stem, str(src)) for src in emu.support_sources(MACHINE)]\n'
        'firmware = env.Program("build/firmware", [env.Object("build/main", "src/main.c")] + board + executor)\n'
        'Default(firmware)\n') % (slot_defines(),)
    sconstruct.write_text(text)

    built = _scons(project)
    again = _scons(project)

    assert built.returncode == 0, built.log
    assert again.returncode == 0 and "arm-none-eabi-gcc" not in again.log, again.log
    path = project / "kws_ref_model.tflite"
    mod = pack_module(path, MACHINE, project / "keys" / "release.key", 1)
    x = np.random.default_rng(3).integers(-128, 128, mod.header.inputs[0].shape, dtype=np.int8)
    r = run_slots(project / "build" / "firmware.elf", tmp_path, mod.data, None, x.tobytes())
    assert (r.boot, r.active, r.version) == (0, 0, 1), r.stdout
    assert r.outputs == [np.asarray(TFLMReference(path).run([x])[0], np.int8).tobytes()]


def _edit(project: Path, old: str, new: str) -> None:
    sconstruct = project / "SConstruct"
    assert old in sconstruct.read_text()
    sconstruct.write_text(sconstruct.read_text().replace(old, new))


def test_unknown_variable_warns_with_the_closest_name(project):
    _edit(project, 'TINYML_NAME="kws"', 'TINYML_NAME="kws", TINYML_BAKEND="cgen"')

    result = _scons(project, "build/kws")

    assert result.returncode == 0, result.log
    assert ("scons: warning: TinyML: unknown construction variable TINYML_BAKEND ignored; "
            "did you mean TINYML_BACKEND?") in result.log, result.log
    assert result.log.count("TINYML_BAKEND") == 1, result.log


def test_misspelt_target_is_one_did_you_mean_error(project):
    _edit(project, "TINYML_TARGET=MACHINE", "TINYML_TARGT=MACHINE")

    result = _scons(project, "build/kws")

    errors = _scons_errors(result.log)
    assert result.returncode != 0 and "Traceback" not in result.log, result.log
    assert len(errors) == 1 and "TINYML_TARGET is not set but TINYML_TARGT is: did you mean TINYML_TARGET?" \
        in errors[0], result.log


def test_project_path_with_spaces_and_non_ascii(tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    project = _copy(tmp_path / "my prøject ü" / "scons kws")

    built = _scons(project)

    assert built.returncode == 0, built.log
    assert _run_output(project) == _reference(project)


@pytest.mark.parametrize("kind, expected", [
    pytest.param("ro", "cannot write here (Read-only file system). Make the folder writable, or set "
                 "TINYML_CACHE_DIR to another folder", id="read-only"),
    pytest.param("full", "no space left on the device. Free disk space there, or set TINYML_CACHE_DIR to "
                 "another folder", id="disk-full"),
])
def test_read_only_or_full_cache_is_one_scons_error(project, kind, expected):
    with mounted(project / ".tinyml-cache", kind):
        result = _scons(project, "build/kws")

    errors = _scons_errors(result.log)
    assert result.returncode != 0 and "Traceback" not in result.log, result.log
    assert len(errors) == 1, result.log
    assert f"{project / '.tinyml-cache'}: {expected}" in errors[0], errors



def test_two_models_with_one_name_is_one_scons_error(project):
    shutil.copyfile(project / "kws_ref_model.tflite", project / "copy.tflite")
    _edit(project, "firmware = env.Program(", 'kws += env.TinyMLModel("build/copy", "copy.tflite", '
          'TINYML_TARGET=MACHINE, TINYML_NAME="kws")\nfirmware = env.Program(')

    result = _scons(project, "-n")

    errors = _scons_errors(result.log)
    assert result.returncode != 0 and "Traceback" not in result.log, result.log
    assert len(errors) == 1 and "two models are named 'kws' (build/kws and build/copy)" in errors[0], result.log


def _model_project(folder: Path, model: Path, variables: str) -> Path:
    """A project whose SConstruct only generates ``model``'s C (no toolchain needed), with ``variables``."""
    folder.mkdir()
    shutil.copyfile(model, folder / model.name)
    (folder / "SConstruct").write_text(
        "import os\nenv = Environment(tools=[])\n"
        "env.Tool('tinyml', toolpath=[os.environ['TINYML_SCONS_TOOLS']])\n"
        f"env.TinyMLModel('build/m', '{model.name}', TINYML_TARGET='{MACHINE}', TINYML_NAME='m', {variables})\n")
    return folder


def test_input_shapes_and_values_compile_as_the_cli_does(tmp_path):
    """TINYML_INPUT_SHAPE / TINYML_INPUT_VALUE are --input-shape / --input-value (strings, lists or
    dicts); a changed value rebuilds; a malformed one is one ``scons: ***`` line."""
    pytest.importorskip("onnx")
    from test_onnx_bind import _mode_model, _open_model
    from test_cli import tinyml
    models = tmp_path / "models"
    models.mkdir()
    cases = [(_open_model(models / "open.onnx"), "TINYML_INPUT_SHAPE=['x=1,12']", ("--input-shape", "x=1,12")),
             (_mode_model(models / "modes.onnx"), "TINYML_INPUT_VALUE={'mode': [0]}", ("--input-value", "mode=0"))]
    for model, variables, flags in cases:
        project = _model_project(tmp_path / model.stem, model, variables)
        built = _scons(project)
        assert built.returncode == 0, built.log
        rc, _, err = tinyml("compile", model, "-t", MACHINE, "--name", "m", "-o", tmp_path / f"{model.stem}-cli",
                            *flags)
        assert rc == 0, err
        for generated in (tmp_path / f"{model.stem}-cli").glob("*.[ch]"):
            assert (project / "build" / "m" / generated.name).read_bytes() == generated.read_bytes(), generated

    stamp = (project / "build" / "m" / "m.c").read_bytes()
    _edit(project, "{'mode': [0]}", "'mode=1'")
    changed = _scons(project)
    assert changed.returncode == 0 and "TinyML: modes.onnx -> build/m" in changed.log, changed.log
    assert (project / "build" / "m" / "m.c").read_bytes() != stamp

    _edit(project, "TINYML_INPUT_VALUE='mode=1'", "TINYML_INPUT_SHAPE='x=1,0'")
    bad = _scons(project)
    errors = _scons_errors(bad.log)
    assert bad.returncode != 0 and "Traceback" not in bad.log, bad.log
    assert len(errors) == 1 and "TINYML_INPUT_SHAPE: 'x=1,0' is not NAME=D0,D1,... with positive dimensions" \
        in errors[0], bad.log
