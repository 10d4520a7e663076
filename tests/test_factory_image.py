"""Factory images: `pio run -t tinyml-image` and SCons `env.TinyMLImage` on the module-cortex-m4
example write the firmware with the signed KWS module in slot A as one file; QEMU boots that file
alone, the firmware's loader opens slot A, and its output equals the TFLite Micro reference."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import need_programs
from platformio_tinyml.module.emu import INPUT_ADDR

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_projects" / "module-cortex-m4"
KWS = REPO / "example_projects" / "kws-cortex-m4" / "kws_ref_model.tflite"
KWS_INPUT = REPO / "example_projects" / "kws-cortex-m4" / "test_input.npy"
MACHINE = "mps2-an386"


def _boot(image: Path, x: np.ndarray | None = None):
    """Run the image in QEMU as the only file; with ``x``, a copy carries the input vector at
    INPUT_ADDR (where a sensor driver would leave it; the image's gap there is erased flash)."""
    from platformio_tinyml.emu import run
    if x is not None:
        data = bytearray(image.read_bytes())
        vec = struct.pack("<I", x.size) + x.tobytes()
        data[INPUT_ADDR:INPUT_ADDR + len(vec)] = vec
        image = image.with_name("with_input.bin")
        image.write_bytes(data)
    return run(image, MACHINE)


def _reference(x) -> list[int]:
    from platformio_tinyml.verify.reference import TFLMReference
    return [int(v) for v in np.asarray(TFLMReference(KWS).run([x])[0]).reshape(-1)]


def _printed(stdout: str) -> list[int]:
    line = [ln for ln in stdout.splitlines() if ln.startswith("output:")]
    assert line, stdout
    return [int(v) for v in line[0][7:].split()]


def _check_image(image: Path, module: Path):
    layout = json.loads(image.with_suffix(".json").read_text())
    data = image.read_bytes()
    mod = module.read_bytes()
    a, b = layout["slots"]
    assert (layout["base"], layout["size"], layout["active_slot"]) == (0, len(data), "A")
    assert (a["address"], a["size"], b["address"], b["module"]) == (0x200000, 0x100000, 0x300000, None)
    assert a["module"]["version"] == 1 and a["module"]["size"] == len(mod) and a["module"]["kind"] == "GRAPH"
    assert data[a["address"]:] == mod and len(data) == a["address"] + len(mod)
    assert layout["firmware"]["end"] < a["address"]

    alone = _boot(image)
    assert "slot A: ok" in alone.stdout and "running module version 1" in alone.stdout, alone.stdout
    x = np.load(KWS_INPUT).astype(np.int8)
    assert _printed(_boot(image, x).stdout) == _reference(x)


@pytest.fixture(scope="module")
def keyed_example(tmp_path_factory):
    """A copy of the example with a key pair and KWS packed as kws.tmm (version 1)."""
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    from platformio_tinyml.cli.main import main as cli
    project = tmp_path_factory.mktemp("image") / "module-cortex-m4"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".pio"))
    assert cli(["module", "keygen", "-o", str(project / "keys" / "release")]) == 0
    assert cli(["module", "pack", str(KWS), "--target", MACHINE, "--key", str(project / "keys" / "release.key"),
                "--version", "1", "-o", str(project / "kws.tmm")]) == 0
    assert cli(["module", "keygen", "-o", str(project / "keys" / "other")]) == 0
    return project


def test_pio_tinyml_image_boots_alone(keyed_example, tmp_path_factory):
    pytest.importorskip("platformio")
    from platformio_tinyml.integrations.platformio.offline import setup_offline
    from platformio_tinyml.cli.main import main as cli
    offline = setup_offline(tmp_path_factory.mktemp("pio-core"))
    project = keyed_example

    def pio(*args):
        r = subprocess.run([sys.executable, "-m", "platformio", "run", "-d", str(project), *args],
                           env=offline.environ(), capture_output=True, text=True, timeout=240, check=False)
        r.log = r.stdout + r.stderr
        return r

    built = pio("-t", "tinyml-image")
    assert built.returncode == 0, built.log
    assert "TinyML: factory image tinyml-image.bin" in built.log, built.log
    _check_image(project / ".pio" / "build" / MACHINE / "tinyml-image.bin", project / "kws.tmm")

    assert cli(["module", "pack", str(KWS), "--target", MACHINE, "--key", str(project / "keys" / "other.key"),
                "--version", "1", "-o", str(project / "stranger.tmm")]) == 0
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text().replace("custom_tinyml_image_module = kws.tmm",
                                           "custom_tinyml_image_module = stranger.tmm"))
    refused = pio("-t", "tinyml-image")
    errors = [ln for ln in refused.log.splitlines() if ln.startswith("Error:")]
    assert refused.returncode != 0 and "Traceback" not in refused.log
    assert len(errors) == 1 and "slot A" in errors[0] and "signature" in errors[0], refused.log


SCONSTRUCT = r"""
import os
from pathlib import Path
from platformio_tinyml import emu
MACHINE = "mps2-an386"
KERNELS = ["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"]
env = Environment(ENV={"PATH": os.environ["PATH"]}, tools=["default"])
env.Tool("tinyml", toolpath=[os.environ["TINYML_SCONS_TOOLS"]])
arch = emu.arch_flags("cortex-m4", "fpv4-sp-d16")
support = emu.SUPPORT_DIR
env.Replace(CC="arm-none-eabi-gcc", AS="arm-none-eabi-gcc", PROGSUFFIX=".elf")
env.Append(CCFLAGS=arch + ["-O2", "-ffunction-sections", "-fdata-sections"],
           LINKFLAGS=arch + ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                             "-T", str(support / "machines" / MACHINE / "link.ld"),
                             "-L", str(support / "cortexm"), "-Wl,--gc-sections"],
           CPPPATH=[str(d) for d in emu.support_include_dirs(MACHINE)] + ["build/executor"], LIBS=["m"])
executor = env.TinyMLExecutor("build/executor", KERNELS, "keys/release.pub")
board = [env.Object("build/board/" + src.stem, str(src)) for src in emu.support_sources(MACHINE)]
firmware = env.Program("build/firmware", [env.Object("build/main", "src/main.c")] + board + executor)
module = env.TinyMLModule("build/kws.tmm", "kws_ref_model.tflite", TINYML_TARGET=MACHINE,
                          TINYML_MODULE_KEY="keys/release.key", TINYML_MODULE_VERSION=1)
env.TinyMLImage("build/factory.bin", [firmware, module], TINYML_SLOTS=[0x200000, 0x300000],
                TINYML_SLOT_SIZE=0x100000, TINYML_MODULE_PUBKEY="keys/release.pub", TINYML_EXECUTOR=KERNELS,
                TINYML_TARGET=MACHINE)
"""


def test_scons_tinyml_image_boots_alone(keyed_example, tmp_path):
    pytest.importorskip("SCons")
    project = tmp_path / "scons-image"
    shutil.copytree(keyed_example, project, ignore=shutil.ignore_patterns(".pio"))
    shutil.copyfile(KWS, project / "kws_ref_model.tflite")
    (project / "SConstruct").write_text(SCONSTRUCT)
    env = dict(os.environ, TINYML_SCONS_TOOLS=str(REPO / "scons_tools"))

    built = subprocess.run([sys.executable, "-m", "SCons", "-C", str(project), "build/factory.bin"], env=env,
                           capture_output=True, text=True, timeout=240, check=False)

    assert built.returncode == 0, built.stdout + built.stderr
    _check_image(project / "build" / "factory.bin", project / "build" / "kws.tmm")
