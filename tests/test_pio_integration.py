"""The PlatformIO integration end to end: real ``pio run`` on the example projects.

Each test copies an example of ``example_projects/`` into a temp folder and
runs PlatformIO Core as a subprocess against one offline core dir per session
(``setup_offline``). Firmware runs in QEMU or simavr through ``-t upload``;
the line it prints must equal the TFLite Micro reference interpreter's output
for the same embedded test input.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from platformio_tinyml.integrations.platformio.offline import setup_offline

from conftest import mounted, need_programs

pytest.importorskip("platformio")
pytest.importorskip("SCons")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "example_projects"
SHARED_MODELS = REPO.parent / "shared" / "models" / "mlperf_tiny"

EMULATED = [
    pytest.param("kws-cortex-m4", "mps2-an386", "kws_ref_model.tflite",
                 ("arm-none-eabi-gcc", "qemu-system-arm"), id="kws-cortex-m4"),
    pytest.param("kws-cortex-m55", "mps3-an547", "kws_ref_model.tflite",
                 ("arm-none-eabi-gcc", "qemu-system-arm"), id="kws-cortex-m55"),
    pytest.param("dense-atmega2560", "simavr-atmega2560", "tiny_dense.tflite",
                 ("avr-gcc", "simavr"), id="dense-atmega2560"),
]
KWS_ENV = "mps2-an386"
GEN_DIR = Path(".pio/build") / KWS_ENV / "tinyml" / "kws"


@pytest.fixture(scope="session")
def offline(tmp_path_factory):
    return setup_offline(tmp_path_factory.mktemp("pio-core"))


def _copy(example: str, dest: Path) -> Path:
    project = dest / example
    shutil.copytree(EXAMPLES / example, project, ignore=shutil.ignore_patterns(".pio"))
    return project


def _pio(project: Path, offline, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "platformio", "run", "-d", str(project), *args],
                            env=offline.environ(), capture_output=True, text=True, timeout=240, check=False)
    result.log = result.stdout + result.stderr
    return result


def _printed_output(log: str) -> list[int]:
    match = re.search(r"^output:((?: -?\d+)+)$", log, re.M)
    assert match, log
    return [int(v) for v in match.group(1).split()]


def _reference_output(project: Path, model: str) -> list[int]:
    from platformio_tinyml.verify.reference import TFLMReference
    out = TFLMReference(project / model).run([np.load(project / "test_input.npy")])[0]
    return [int(v) for v in np.asarray(out).reshape(-1)]


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("Error:")]


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="session")
def kws_built(offline, tmp_path_factory):
    """kws-cortex-m4 built once: (project, log of the first `pio run`)."""
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path_factory.mktemp("kws-built"))
    built = _pio(project, offline)
    assert built.returncode == 0, built.log
    return project, built.log


@pytest.mark.parametrize("example, env_name, model, programs", EMULATED)
def test_example_output_matches_reference(offline, tmp_path, example, env_name, model, programs):
    need_programs(*programs)
    project = _copy(example, tmp_path)

    result = _pio(project, offline, "-t", "upload")

    assert result.returncode == 0, result.log
    assert "[compiled]" in result.log and "TinyML: firmware flash" in result.log, result.log
    assert _printed_output(result.log) == _reference_output(project, model)
    assert re.search(r"^instructions: \d+$", result.log, re.M), result.log


def test_no_change_rebuild_reuses_everything(offline, kws_built):
    project, first_log = kws_built
    assert "kws.h [compiled]" in first_log
    before = _mtimes(project / GEN_DIR)

    again = _pio(project, offline)

    assert again.returncode == 0, again.log
    assert "TinyML: kws_ref_model.tflite -> kws.h [up to date]" in again.log, again.log
    assert "Compiling" not in again.log and "Linking" not in again.log, again.log
    assert _mtimes(project / GEN_DIR) == before


def test_report_and_verify_targets(offline, kws_built):
    project, _ = kws_built

    verify = _pio(project, offline, "-t", "tinyml-verify")
    report = _pio(project, offline, "-t", "tinyml-report")

    assert report.returncode == 0, report.log
    import json
    from test_reports import validate
    data = json.loads((project / ".pio" / "build" / KWS_ENV / "tinyml-report.json").read_text())
    validate(data, "pio_report")
    assert data["env"] == KWS_ENV and data["board"]["core"] == "cortex-m4"
    assert [m["name"] for m in data["models"]] == ["kws"]
    fw = data["firmware"]
    assert fw["ok"] is True and 0 < fw["model_flash_bytes"] < fw["flash_bytes"] <= fw["flash_max_bytes"]
    assert f"firmware flash {fw['flash_bytes']:,} B" in fw["summary"][0]     # the numbers the log shows
    page = (project / ".pio" / "build" / KWS_ENV / "tinyml-report.html").read_text()   # the same, drawn
    assert (f'data-bar="flash" data-limit="{fw["flash_max_bytes"]}" data-used="{fw["flash_bytes"]}"' in page
            and f'data-kind="firmware" data-bytes="{fw["flash_bytes"] - fw["model_flash_bytes"]}"' in page), page
    assert [(v["name"], v["backend"], v["ok"]) for v in data["verify"]] == [("kws", "cgen", True)]
    assert verify.returncode == 0, verify.log
    assert re.search(r"Identity\s+int8\s+20/20 .*PASS", verify.log), verify.log


def test_optimize_modes(offline, tmp_path):
    """custom_tinyml_optimize: the default (balanced) runs the hot kernels at -O2 inside the -Os build,
    size keeps -Os everywhere, speed builds the model's sources at -O2; the same outputs from all three,
    and the rest of the firmware keeps the project's flags."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    projects = {}
    for mode in ("balanced", "size", "speed"):
        projects[mode] = _copy("kws-cortex-m4", tmp_path / mode)
        if mode != "balanced":
            ini = projects[mode] / "platformio.ini"
            ini.write_text(ini.read_text() + f"custom_tinyml_optimize = {mode}\n")

    runs = {mode: _pio(p, offline, "-t", "upload", "-v") for mode, p in projects.items()}

    for name, r in runs.items():
        assert r.returncode == 0, r.log
        assert _printed_output(r.log) == _reference_output(projects["size"], "kws_ref_model.tflite"), name
    count = {n: int(re.search(r"^instructions: (\d+)$", r.log, re.M).group(1)) for n, r in runs.items()}
    assert count["balanced"] < 0.6 * count["size"] and count["speed"] < 0.6 * count["size"], count
    size_cmd = next(line for line in runs["size"].log.splitlines() if "tml_conv_s8.c" in line and " -c " in line)
    assert "TML_OPTIMIZE_SIZE" in size_cmd
    kernel_cmd = next(line for line in runs["speed"].log.splitlines() if "tml_conv_s8.c" in line and " -c " in line)
    main_cmd = next(line for line in runs["speed"].log.splitlines() if "main.c" in line and " -c " in line)
    assert kernel_cmd.rindex("-O2") > kernel_cmd.rindex("-Os") and "-O2" not in main_cmd


def test_module_executor_firmware_runs_modules(offline, tmp_path):
    """custom_tinyml_executor: a pio-built firmware with the loader + executor (no model
    compiled in) installs KWS and AD modules from its slots and gives TFLM's outputs."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    from platformio_tinyml.cli.main import main as cli
    from platformio_tinyml.module.emu import run_slots, slot_defines, slot_main_source
    from platformio_tinyml.module.pack import pack_module
    from platformio_tinyml.verify.reference import TFLMReference
    project = _copy("kws-cortex-m4", tmp_path)
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    (project / "src" / "main.c").write_text(slot_main_source(
        '#include "tml_module_key.h"\n#define pubkey tml_module_pubkey', 32 * 1024))
    ini = project / "platformio.ini"
    head = ini.read_text().split("custom_tinyml_model")[0]
    ini.write_text(head + "custom_tinyml_executor = tml_conv_s8, tml_dwconv_s8, tml_fc_s8, tml_avgpool_s8, "
                   "tml_softmax_s8\ncustom_tinyml_module_pubkey = keys/release.pub\n"
                   f"build_flags = {' '.join(slot_defines())}\n")

    built = _pio(project, offline)
    again = _pio(project, offline)

    assert built.returncode == 0, built.log
    assert "TinyML: module executor (5 kernels) + loader" in built.log, built.log
    assert again.returncode == 0 and "Compiling" not in again.log, again.log
    elf = project / ".pio" / "build" / KWS_ENV / "firmware.elf"
    for version, model in enumerate(("kws_ref_model.tflite", "ad01_int8.tflite"), start=1):
        path = SHARED_MODELS / model
        mod = pack_module(path, KWS_ENV, project / "keys" / "release.key", version)
        x = np.random.default_rng(version).integers(-128, 128, mod.header.inputs[0].shape, dtype=np.int8)
        r = run_slots(elf, tmp_path, mod.data, None, x.tobytes())
        assert (r.boot, r.active, r.version) == (0, 0, version), r.stdout
        assert r.outputs == [np.asarray(TFLMReference(path).run([x])[0], np.int8).tobytes()]


def test_module_example_installs_and_runs(offline, tmp_path):
    """example_projects/module-cortex-m4 as its README says: keygen, pack KWS as a module,
    `pio run -t upload` loads it into slot A; then a signed AD module in slot B is installed
    as an update. Each run prints the reference outputs of the module it runs."""
    import struct
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    from platformio_tinyml.cli.main import main as cli
    from platformio_tinyml.verify.reference import TFLMReference
    project = _copy("module-cortex-m4", tmp_path)
    kws = EXAMPLES / "kws-cortex-m4" / "kws_ref_model.tflite"
    x = np.load(EXAMPLES / "kws-cortex-m4" / "test_input.npy").astype(np.int8)
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    assert cli(["module", "pack", str(kws), "--target", KWS_ENV, "--key", str(project / "keys" / "release.key"),
                "--version", "1", "-o", str(project / "kws.tmm")]) == 0
    (project / "input.bin").write_bytes(struct.pack("<I", x.size) + x.tobytes())

    first = _pio(project, offline, "-t", "upload")

    assert first.returncode == 0, first.log
    assert "slot A: ok" in first.log and "running module version 1" in first.log, first.log
    assert _printed_output(first.log) == [int(v) for v in np.asarray(TFLMReference(kws).run([x])[0]).reshape(-1)]

    ad = SHARED_MODELS / "ad01_int8.tflite"
    y = np.random.default_rng(1).integers(-128, 128, (1, 640), dtype=np.int8)
    assert cli(["module", "pack", str(ad), "--target", KWS_ENV, "--key", str(project / "keys" / "release.key"),
                "--version", "2", "-o", str(project / "ad.tmm")]) == 0
    (project / "input.bin").write_bytes(struct.pack("<I", y.size) + y.tobytes())
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text().replace("input.bin@0x00180000", "input.bin@0x00180000, ad.tmm@0x00300000"))
    update = _pio(project, offline, "-t", "upload")

    assert update.returncode == 0, update.log
    assert "update from slot B: ok" in update.log and "running module version 2" in update.log, update.log
    assert _printed_output(update.log) == [int(v) for v in np.asarray(TFLMReference(ad).run([y])[0]).reshape(-1)]

    ini.write_text(ini.read_text().replace("ad.tmm@0x00300000", "ad.tmm"))
    bad = _pio(project, offline, "-t", "upload")
    assert bad.returncode != 0 and "Traceback" not in bad.log
    assert "'ad.tmm' is not file@address" in bad.log and "board_emulator.load" in bad.log, bad.log


def test_module_target_packs_a_signed_module(offline, tmp_path):
    """`pio run -t tinyml-module` = `tinyml module pack` for the env's board, byte for byte."""
    from platformio_tinyml.cli.main import main as cli
    from platformio_tinyml.module.keys import load_public_key
    from platformio_tinyml.module.verify import verify_module
    project = _copy("kws-cortex-m4", tmp_path)
    ini = project / "platformio.ini"
    text = ini.read_text()

    missing = _pio(project, offline, "-t", "tinyml-module")
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    ini.write_text(text + "custom_tinyml_module_key = keys/release.key\ncustom_tinyml_module_version = 7\n")
    result = _pio(project, offline, "-t", "tinyml-module")

    assert missing.returncode != 0 and "Traceback" not in missing.log
    errors = _error_lines(missing.log)
    assert len(errors) == 1 and "custom_tinyml_module_key" in errors[0] and "keygen" in errors[0], missing.log
    assert result.returncode == 0, result.log
    module = project / ".pio" / "build" / KWS_ENV / "tinyml" / "kws.tmm"
    v = verify_module(module.read_bytes(), load_public_key(project / "keys" / "release.pub"))
    assert v.module.header.module_version == 7 and v.module.header.payload_kind.name == "GRAPH"
    assert cli(["module", "pack", str(project / "kws_ref_model.tflite"), "--target", KWS_ENV, "--key",
                str(project / "keys" / "release.key"), "--version", "7", "-o", str(tmp_path / "cli.tmm")]) == 0
    assert (tmp_path / "cli.tmm").read_bytes() == module.read_bytes()


def test_changed_model_recompiles(offline, tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    project = _copy("kws-cortex-m4", tmp_path)
    assert _pio(project, offline).returncode == 0
    model = project / "kws_ref_model.tflite"
    model.touch()  # same bytes: the content-addressed cache still hits
    touched = _pio(project, offline)
    assert "[up to date]" in touched.log and "Compiling" not in touched.log, touched.log

    data = bytearray(model.read_bytes())
    data[30000] ^= 0x01  # a weight byte
    model.write_bytes(bytes(data))
    changed = _pio(project, offline, "-t", "upload")

    assert changed.returncode == 0, changed.log
    assert "kws.h [compiled]" in changed.log, changed.log
    assert _printed_output(changed.log) == _reference_output(project, model.name)


def test_changed_name_recompiles(offline, tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    project = _copy("kws-cortex-m4", tmp_path)
    assert _pio(project, offline).returncode == 0
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text().replace("custom_tinyml_name = kws", "custom_tinyml_name = spotter"))
    main = project / "src" / "main.c"
    main.write_text(main.read_text().replace("kws", "spotter").replace("KWS", "SPOTTER"))

    result = _pio(project, offline, "-t", "upload")

    assert result.returncode == 0, result.log
    assert "kws_ref_model.tflite -> spotter.h [compiled]" in result.log, result.log
    assert (project / ".pio/build" / KWS_ENV / "tinyml/spotter/spotter.c").is_file()
    assert _printed_output(result.log) == _reference_output(project, "kws_ref_model.tflite")


def _with_ini_lines(project: Path, *lines: str) -> None:
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + "\n".join(lines) + "\n")


def test_gate_fails_when_firmware_does_not_fit(offline, tmp_path):
    """The model fits 32 KiB of RAM, model + a 40 KB application buffer does not."""
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    main = project / "src" / "main.c"
    text = main.read_text().replace("static int8_t scores", "volatile uint8_t app_buffer[40000];\nstatic int8_t scores")
    main.write_text(text.replace("board_puts(\"output:\");", "app_buffer[0] = 1;\n    board_puts(\"output:\");"))
    _with_ini_lines(project, "board_upload.maximum_ram_size = 32768")

    result = _pio(project, offline)

    assert result.returncode != 0
    errors = _error_lines(result.log)
    assert len(errors) == 1, result.log
    assert errors[0].startswith(f"Error: [env:{KWS_ENV}] firmware needs "), errors
    assert "of RAM, board 'mps2-an386' has 32,768 B" in errors[0] and "Try " in errors[0], errors
    assert "Traceback" not in result.log


def test_gate_warns_near_the_limit(offline, tmp_path):
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    # the model estimate (16,512 B with the stack) fits with the 870 B safety margin
    _with_ini_lines(project, "board_upload.maximum_ram_size = 17400")

    result = _pio(project, offline)

    assert result.returncode == 0, result.log
    assert "TinyML:   warning: the model is estimated to use RAM 16,512 B of 17,400 B (94.9 %)" in result.log
    assert re.search(r"^Warning: \[env:mps2-an386\] RAM use [\d,]+ of 17,400 B \(9\d\.\d%\)", result.log,
                     re.M), result.log


def test_model_too_big_for_board_is_one_error(offline, tmp_path):
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    _with_ini_lines(project, "board_upload.maximum_ram_size = 4096")

    result = _pio(project, offline)

    assert result.returncode != 0
    errors = _error_lines(result.log)
    assert len(errors) == 1 and errors[0].startswith(f"Error: [env:{KWS_ENV}] "), result.log
    assert "board has 4,096 B" in errors[0], errors
    assert "Traceback" not in result.log


@pytest.mark.parametrize("edit, expected", [
    pytest.param(("custom_tinyml_model = kws_ref_model.tflite", "custom_tinyml_model = models/missing.tflite"),
                 ["models/missing.tflite: model file not found", "custom_tinyml_model"], id="missing-model"),
    pytest.param(("custom_tinyml_model = kws_ref_model.tflite", "custom_tinyml_model = hybrid.tflite"),
                 ["hybrid.tflite: operator #0 CONV_2D is hybrid", "full-integer"], id="unsupported-model"),
    pytest.param(("custom_tinyml_name = kws", "custom_tinyml_name = kws\ncustom_tinyml_backend = nosuch"),
                 ["backend 'nosuch' is not available", "available: "], id="unknown-backend"),
    pytest.param(("custom_tinyml_name = kws", "custom_tinyml_name = kws\ncustom_tinyml_executor = all"),
                 ["module executor needs the public key", "custom_tinyml_module_pubkey"], id="executor-no-key"),
    pytest.param(("custom_tinyml_name = kws", "custom_tinyml_name = kws\ncustom_tinyml_executor = tml_nope\n"
                  "custom_tinyml_module_pubkey = kws_ref_model.tflite"),
                 ["unknown kernel 'tml_nope'"], id="executor-bad-kernel"),
    pytest.param(("custom_tinyml_name = kws", "custom_tinyml_name = kws\ncustom_tinyml_optimize = fast"),
                 ["'fast' is not balanced, size or speed", "custom_tinyml_optimize"], id="bad-optimize"),
    pytest.param(("custom_tinyml_test_input = test_input.npy", "custom_tinyml_test_input = kws_ref_model.tflite"),
                 ["kws_ref_model.tflite: test input has ", "custom_tinyml_test_input"], id="bad-test-input"),
    pytest.param(("custom_tinyml_model =", "custom_tinyml_modle ="),
                 ["custom_tinyml_modle: unknown option", "did you mean custom_tinyml_model?"], id="model-typo"),
    pytest.param(("custom_tinyml_model = kws_ref_model.tflite\ncustom_tinyml_name = kws\n"
                  "custom_tinyml_test_input = test_input.npy",
                  "custom_tinyml_model = kws_ref_model.tflite, copy.tflite\ncustom_tinyml_name = kws, kws"),
                 ["two models are named 'kws': kws_ref_model.tflite and copy.tflite", "custom_tinyml_name"],
                 id="same-name-twice"),
    pytest.param(("custom_tinyml_model = kws_ref_model.tflite\ncustom_tinyml_name = kws\n"
                  "custom_tinyml_test_input = test_input.npy",
                  "custom_tinyml_model = kws_ref_model.tflite\n  models/kws_ref_model.tflite"),
                 ["two models are named 'kws_ref_model': kws_ref_model.tflite and models/kws_ref_model.tflite"],
                 id="same-default-name"),
])
def test_bad_input_is_one_error_line(offline, tmp_path, edit, expected):
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    shutil.copyfile(SHARED_MODELS / "kws_ref_model_float32.tflite", project / "hybrid.tflite")
    shutil.copyfile(project / "kws_ref_model.tflite", project / "copy.tflite")
    (project / "models").mkdir()
    shutil.copyfile(project / "kws_ref_model.tflite", project / "models" / "kws_ref_model.tflite")
    ini = project / "platformio.ini"
    assert edit[0] in ini.read_text()
    ini.write_text(ini.read_text().replace(*edit))

    result = _pio(project, offline)

    assert result.returncode != 0
    errors = _error_lines(result.log)
    assert len(errors) == 1 and errors[0].startswith(f"Error: [env:{KWS_ENV}] "), result.log
    assert errors[0].count("[env:") == 1, errors
    for text in expected:
        assert text.lower() in errors[0].lower(), errors
    assert "Traceback" not in result.log


def test_unknown_option_warns_with_the_closest_name(offline, tmp_path):
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    _with_ini_lines(project, "custom_tinyml_bakend = cgen", "custom_tinyml_colour = blue")

    result = _pio(project, offline)

    assert result.returncode == 0, result.log
    warnings = [line for line in result.log.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: [env:{KWS_ENV}] unknown option custom_tinyml_bakend ignored; "
        "did you mean custom_tinyml_backend?",
        f"Warning: [env:{KWS_ENV}] unknown option custom_tinyml_colour ignored; valid: model, name, backend, "
        "calibration, options, npu, test_input, optimize, verify_samples, executor, module_pubkey, module_key, "
        "module_version, module_kind, input_shape, input_value, service, service_required, image_module, slots, "
        "slot_size"], result.log


def test_project_path_with_spaces_and_non_ascii(offline, tmp_path):
    """Every path on the command lines is quoted: the project builds, links (with its
    map file) and runs in QEMU from a folder named with spaces and non-ASCII letters."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    project = _copy("kws-cortex-m4", tmp_path / "my prøject ü")

    result = _pio(project, offline, "-t", "upload")

    assert result.returncode == 0, result.log
    assert (project / ".pio" / "build" / KWS_ENV / "firmware.map").is_file()
    assert _printed_output(result.log) == _reference_output(project, "kws_ref_model.tflite")


@pytest.mark.parametrize("kind, expected", [
    pytest.param("ro", "cannot write here (Read-only file system). Make the folder writable, or set build_dir",
                 id="read-only"),
    pytest.param("full", "no space left on the device. Free disk space there, or set build_dir", id="disk-full"),
])
def test_unwritable_build_folder_is_one_error_line(offline, tmp_path, kind, expected):
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    assert _pio(project, offline, "-t", "tinyml-report").returncode == 0  # PlatformIO's own files
    build_dir = project / ".pio" / "build" / KWS_ENV

    with mounted(build_dir, kind):
        result = _pio(project, offline)

    assert result.returncode != 0
    errors = _error_lines(result.log)
    assert len(errors) == 1 and errors[0].startswith(f"Error: [env:{KWS_ENV}] {build_dir}"), result.log
    assert expected in errors[0], errors
    assert "Traceback" not in result.log and "File \"" not in result.log, result.log


def test_damaged_cache_entry_is_rebuilt(offline, tmp_path):
    """A generated file changed on disk is not reused as [up to date]: the entry is
    checked against the hashes recorded with it, rebuilt once and then reused."""
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    assert _pio(project, offline).returncode == 0
    generated = project / GEN_DIR / "kws.c"
    good = generated.read_bytes()
    generated.write_bytes(good.replace(b"kws_invoke", b"kws_invokf", 1))

    rebuilt = _pio(project, offline)
    again = _pio(project, offline)

    assert rebuilt.returncode == 0, rebuilt.log
    assert rebuilt.log.count("is damaged") == 1, rebuilt.log
    assert f"TinyML: cache entry {project / GEN_DIR} is damaged (kws.c differs from the compiled one); " \
           "rebuilding it" in rebuilt.log, rebuilt.log
    assert "kws.h [compiled]" in rebuilt.log and generated.read_bytes() == good
    assert "kws.h [up to date]" in again.log and "damaged" not in again.log, again.log


def _registry_reachable() -> bool:
    try:
        socket.create_connection(("api.registry.platformio.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


def test_real_board_nucleo_f446re_builds(offline, tmp_path):
    if not _registry_reachable():
        pytest.skip("PlatformIO registry unreachable: platform ststm32 and framework stm32cube "
                    "cannot be installed (needs network once)")
    project = _copy("nucleo-f446re", tmp_path)

    result = subprocess.run([sys.executable, "-m", "platformio", "run", "-d", str(project)],
                            env=offline.environ(), capture_output=True, text=True, timeout=1200, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "TinyML: firmware flash" in result.stdout


def test_scikit_learn_forest_on_atmega2560(offline, tmp_path):
    """A scikit-learn model in platformio.ini: auto picks emlearn for the AVR
    board, the firmware runs in simavr and predicts what scikit-learn does."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    need_programs("avr-gcc", "simavr")
    project = tmp_path / "forest-avr"
    (project / "src").mkdir(parents=True)
    shutil.copy(EXAMPLES / "dense-atmega2560" / "tinyml_pio.py", project)
    X, y = make_classification(300, 5, n_classes=3, n_informative=3, random_state=1)
    est = RandomForestClassifier(8, max_depth=6, random_state=0).fit(X, y)
    joblib.dump(est, project / "forest.joblib")
    samples = (np.random.default_rng(2).standard_normal((6, 5)) * 2).astype(np.float32)
    np.save(project / "test_input.npy", samples[0])
    (project / "platformio.ini").write_text(
        "[env:avr]\nplatform = tinyml-simavr\nboard = simavr-atmega2560\nextra_scripts = pre:tinyml_pio.py\n"
        "custom_tinyml_model = forest.joblib\ncustom_tinyml_name = forest\n"
        "custom_tinyml_test_input = test_input.npy\n")
    (project / "src" / "main.c").write_text(
        '#include <stdint.h>\n#include "tml_board.h"\n#include "forest.h"\n#include "forest_test_input.h"\n'
        "int main(void)\n{\n    int32_t cls = -1;\n    int rc = forest_invoke(forest_test_input, &cls);\n"
        '    board_puts("output: ");\n    board_print_i32(cls);\n    board_puts("\\n");\n    return rc;\n}\n')

    result = _pio(project, offline, "-t", "upload")

    assert result.returncode == 0, result.log
    assert "backend emlearn" in result.log, result.log
    assert _printed_output(result.log) == [int(est.predict(samples[:1].astype(np.float64))[0])]
    verify = _pio(project, offline, "-t", "tinyml-verify")
    assert verify.returncode == 0 and "PASS" in verify.log, verify.log


def test_tflm_backend_needs_its_library_in_one_line(offline, tmp_path):
    """custom_tinyml_backend = tflm without TensorFlow Lite Micro in the project (offline: no
    lib_deps to install): one line naming the library and both ways to provide it, before
    anything compiles (it used to fail at link time with an undefined NAME_invoke)."""
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + "custom_tinyml_backend = tflm\n")
    result = _pio(project, offline)
    assert result.returncode != 0
    errors = _error_lines(result.log)
    assert len(errors) == 1, result.log
    assert "needs the TensorFlow Lite Micro library" in errors[0]
    assert "lib_deps = https://github.com/tensorflow/tflite-micro-arduino-examples" in errors[0]
    assert "lib_extra_dirs" in errors[0] and "Traceback" not in result.log
    assert "Linking" not in result.log


def test_tflm_glue_is_compiled_when_a_library_folder_has_tflm(offline, tmp_path):
    """With a library folder that provides TFLM's interpreter header (lib_extra_dirs), the check
    passes and the generated C++ glue (kws_tflm.cc) is compiled into the program. TFLite Micro's
    sources are not obtainable here, so the folder holds that header alone and the C++ compile
    stops at another TFLM header: the test shows the .cc reaches the C++ compiler with the
    library's include folder, not a working TFLM."""
    need_programs("arm-none-eabi-gcc")
    project = _copy("kws-cortex-m4", tmp_path)
    header = tmp_path / "libs" / "tflite-micro" / "src" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h"
    header.parent.mkdir(parents=True)
    header.write_text("#pragma once\n")
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + f"custom_tinyml_backend = tflm\nlib_extra_dirs = {tmp_path / 'libs'}\n")
    result = _pio(project, offline)
    assert result.returncode != 0
    assert not _error_lines(result.log), result.log
    assert re.search(r"Compiling \S*tinyml_obj/kws/kws_tflm\.o", result.log), result.log
    assert re.search(r"tensorflow/lite/\S+\.h: No such file", result.log), result.log
