"""Device profiles from real PlatformIO board manifests, and the errors for bad ones.

The manifests are the 1,057 boards under ``../shared/boards`` (beside the
repository in CI). Expected facts for the hand-checked boards come from their
JSON files and the chips' datasheets, not from this package's tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import platformio_tinyml
from platformio_tinyml.device import DeviceProfile, list_boards, load_profile, profile_from_manifest
from platformio_tinyml.device.cores import CORES
from platformio_tinyml.errors import DeviceError

SHARED_BOARDS = Path(__file__).resolve().parents[1].parent / "shared" / "boards"
PLATFORMS = sorted(p.name for p in SHARED_BOARDS.iterdir() if p.is_dir()) if SHARED_BOARDS.is_dir() else []
needs_boards = pytest.mark.skipif(not SHARED_BOARDS.is_dir(), reason=f"{SHARED_BOARDS} not present")

KIB = 1024


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No board search outside the test: empty PlatformIO core, no user dirs."""
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "pio-core"))
    monkeypatch.delenv("TINYML_BOARDS_DIRS", raising=False)


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _minimal(**build) -> dict:
    return {"name": "Test board", "build": {"f_cpu": "64000000L", **build},
            "upload": {"maximum_ram_size": 65536, "maximum_size": 262144}}


# --- every real manifest -------------------------------------------------------

@needs_boards
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_manifest_gives_a_profile_or_a_reason(platform):
    outcomes = []
    for path in sorted((SHARED_BOARDS / platform).glob("*.json")):
        try:
            profile = load_profile(str(path))
        except DeviceError as err:  # any other exception fails the test
            assert path.stem in str(err) and "\n" not in str(err)
            outcomes.append(err)
            continue
        _check_consistent(profile, path, platform)
        outcomes.append(profile)
    assert outcomes, f"no manifests in {platform}"


def _check_consistent(profile: DeviceProfile, path: Path, platform: str) -> None:
    facts = CORES[profile.core]
    assert profile.board == path.stem
    assert profile.platform == platform
    assert (profile.arch, profile.word_bits) == (facts.arch, facts.word_bits)
    assert profile.ram_bytes > 0 and profile.flash_bytes > 0 and profile.clock_hz > 0
    assert profile.has_fpu == (profile.fpu is not None)
    assert json.loads(json.dumps(profile.to_dict())) == profile.to_dict()
    assert len(profile.cache_key()) == 64


@needs_boards
def test_all_1057_manifests_are_listed_and_give_profiles():
    boards = [b for b, path in list_boards([SHARED_BOARDS]).items() if SHARED_BOARDS in path.parents]
    assert len(boards) == 1057
    profiles = [load_profile(board, search_dirs=[SHARED_BOARDS]) for board in boards]
    assert len(profiles) == 1057


def test_bundled_boards_give_profiles():
    bundled = Path(platformio_tinyml.__file__).parent / "platforms"
    for board, path in list_boards().items():
        if bundled in path.parents:
            profile = load_profile(board)
            assert profile.platform == path.parents[1].name and profile.core in CORES


def test_gcc_fpu_name_in_manifest_is_honoured():
    stated = profile_from_manifest(_minimal(mcu="acme", cpu="cortex-m4", fpu="fpv4-sp-d16"), "a")
    assert (stated.fpu, stated.notes) == ("sp", ())
    auto = profile_from_manifest(_minimal(mcu="stm32h743zit6", cpu="cortex-m7", fpu="auto"), "b")
    assert auto.fpu == "dp"
    wrong = profile_from_manifest(_minimal(mcu="acme", cpu="cortex-m4", fpu="fpv5-d16"), "c")
    assert wrong.fpu is None and any("does not fit" in note for note in wrong.notes)


# --- boards checked by hand ----------------------------------------------------

HAND_CHECKED = {
    # STM32F446RE: Cortex-M4F at 180 MHz, 128 KiB SRAM, 512 KiB flash.
    "nucleo_f446re": dict(platform="ststm32", arch="arm", core="cortex-m4", word_bits=32,
                          fpu="sp", dsp=True, mve=False, clock_hz=180_000_000,
                          ram_bytes=128 * KIB, flash_bytes=512 * KIB, mcu="stm32f446ret6"),
    # ATmega328P: 2 KiB SRAM, 32 KiB flash less the 512 B Optiboot bootloader.
    "uno": dict(platform="atmelavr", arch="avr", core="avr", word_bits=8, fpu=None,
                dsp=False, clock_hz=16_000_000, ram_bytes=2048, flash_bytes=32256),
    # ESP32 (Xtensa LX6 with single-precision FPU); manifest caps RAM at 320 KiB.
    "esp32dev": dict(platform="espressif32", arch="xtensa", core="xtensa-lx6", word_bits=32,
                     fpu="sp", dsp=False, clock_hz=240_000_000, ram_bytes=320 * KIB,
                     flash_bytes=4 * 1024 * KIB),
    # nRF52840: Cortex-M4F at 64 MHz, 256 KiB RAM, 1 MiB flash.
    "nrf52840_dk": dict(platform="nordicnrf52", core="cortex-m4", fpu="sp", dsp=True,
                        clock_hz=64_000_000, ram_bytes=256 * KIB, flash_bytes=1024 * KIB),
    # i.MX RT1062: Cortex-M7 with double-precision FPU at 600 MHz.
    "teensy41": dict(platform="teensy", core="cortex-m7", fpu="dp", dsp=True,
                     clock_hz=600_000_000, ram_bytes=512 * KIB, mcu="imxrt1062"),
    # SAMD21G18A: Cortex-M0+ at 48 MHz, 32 KiB SRAM, 256 KiB flash, no FPU/DSP.
    "zero": dict(platform="atmelsam", core="cortex-m0plus", fpu=None, dsp=False,
                 clock_hz=48_000_000, ram_bytes=32 * KIB, flash_bytes=256 * KIB),
    # RP2040: dual Cortex-M0+, 264 KiB SRAM, no FPU.
    "pico": dict(platform="raspberrypi", core="cortex-m0plus", fpu=None, dsp=False,
                 clock_hz=133_000_000, ram_bytes=264 * KIB, flash_bytes=2 * 1024 * KIB),
    # SiFive FE310-G002: RV32IMAC, 16 KiB DTIM, no FPU.
    "hifive1-revb": dict(platform="sifive", arch="riscv", core="rv32imac", word_bits=32,
                         fpu=None, clock_hz=320_000_000, ram_bytes=16 * KIB),
    # TM4C123GH6PM: Cortex-M4F at 80 MHz, 32 KiB SRAM, 256 KiB flash.
    "lptm4c123gh6pm": dict(platform="titiva", core="cortex-m4", fpu="sp", dsp=True,
                           clock_hz=80_000_000, ram_bytes=32 * KIB, flash_bytes=256 * KIB),
    # BCM2836 (Raspberry Pi 2): Cortex-A7 with VFPv4 (double precision), Linux board.
    "raspberrypi_2b": dict(platform="linux_arm", arch="arm-a", core="cortex-a7",
                           word_bits=32, fpu="dp", clock_hz=900_000_000),
    # MSP430G2553: 16-bit, 512 B RAM, 16 KiB flash, 16 MHz.
    "lpmsp430g2553": dict(platform="timsp430", arch="msp430", core="msp430", word_bits=16,
                          fpu=None, clock_hz=16_000_000, ram_bytes=512, flash_bytes=16 * KIB),
    # STM32H743: Cortex-M7 with double-precision FPU at 400 MHz (manifest rating).
    "nucleo_h743zi": dict(core="cortex-m7", fpu="dp", dsp=True, clock_hz=400_000_000),
    # STM32WLE5: Cortex-M4 *without* FPU.
    "lora_e5_dev_board": dict(core="cortex-m4", fpu=None, dsp=True),
    # ESP32-C3: RV32IMC, no FPU; ESP32-S2: Xtensa LX7 without FPU.
    "esp32-c3-devkitm-1": dict(arch="riscv", core="rv32imc", fpu=None, word_bits=32),
    "esp32-s2-saola-1": dict(arch="xtensa", core="xtensa-lx7", fpu=None),
    # FU540: RV64GC application processor.
    "hifive-unleashed": dict(arch="riscv", core="rv64gc", word_bits=64, fpu="dp"),
}


@needs_boards
@pytest.mark.parametrize("board", sorted(HAND_CHECKED))
def test_hand_checked_board(board):
    profile = load_profile(board, search_dirs=[SHARED_BOARDS])
    actual = {key: getattr(profile, key) for key in HAND_CHECKED[board]}
    assert actual == HAND_CHECKED[board]


@needs_boards
def test_odd_manifests_give_notes_not_errors():
    # STM32F303 is a Cortex-M4F, the manifest says cortex-m3.
    f303 = load_profile("olimexino_stm32f3", search_dirs=[SHARED_BOARDS])
    assert (f303.core, f303.fpu) == ("cortex-m4", "sp")
    assert any("build.cpu = cortex-m3" in note for note in f303.notes)
    # M5Stack Fire: 4.3 MiB of "RAM" is mostly PSRAM.
    fire = load_profile("m5stack-fire", search_dirs=[SHARED_BOARDS])
    assert any("includes PSRAM" in note for note in fire.notes)
    # Portenta H7 M4 core of a dual-core STM32H747.
    m4 = load_profile("portenta_h7_m4", search_dirs=[SHARED_BOARDS])
    assert (m4.core, m4.fpu) == ("cortex-m4", "sp")


# --- overrides and search --------------------------------------------------------

@needs_boards
def test_overrides_win_over_the_manifest():
    overrides = {"build.f_cpu": "80000000L", "upload.maximum_ram_size": 65536,
                 "board_upload.maximum_size": "0x40000", "build.tinyml_npu": "Ethos-U55-128",
                 "build.tinyml_fpu": "none"}
    profile = load_profile("nucleo_f446re", overrides, search_dirs=[SHARED_BOARDS])
    assert (profile.clock_hz, profile.ram_bytes, profile.flash_bytes) == (80_000_000, 65536, 0x40000)
    assert (profile.npu, profile.fpu, profile.has_fpu) == ("ethos-u55-128", None, False)
    assert profile.cache_key() != load_profile("nucleo_f446re", search_dirs=[SHARED_BOARDS]).cache_key()


def test_overriding_mcu_changes_the_inferred_core():
    manifest = _minimal(mcu="stm32f103c8t6", cpu="cortex-m3")
    profile = profile_from_manifest(manifest, "x", {"build.mcu": "stm32h743zit6",
                                                    "build.cpu": "cortex-m7"})
    assert (profile.core, profile.fpu, profile.platform) == ("cortex-m7", "dp", "ststm32")
    assert manifest["build"]["mcu"] == "stm32f103c8t6"  # the input is not modified


def test_unknown_mcu_with_cpu_assumes_no_fpu_and_says_so():
    profile = profile_from_manifest(_minimal(mcu="acme9000", cpu="cortex-m4"), "acme")
    assert (profile.core, profile.fpu, profile.dsp) == ("cortex-m4", None, True)
    assert any("FPU unknown" in note and "tinyml_fpu" in note for note in profile.notes)


def test_board_id_found_through_env_dirs(monkeypatch, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _write(first / "myboard.json", _minimal(mcu="nrf52840", cpu="cortex-m4"))
    _write(second / "ststm32" / "other.json", _minimal(mcu="stm32l476rgt6", cpu="cortex-m4"))
    monkeypatch.setenv("TINYML_BOARDS_DIRS", f"{first}{os.pathsep}{second}")
    assert load_profile("myboard").fpu == "sp"
    other = load_profile("other")
    assert (other.platform, other.core) == ("ststm32", "cortex-m4")
    assert {"myboard", "other"} <= set(list_boards())


def test_search_dirs_come_before_env_dirs_and_pio_layout_gives_platform(monkeypatch, tmp_path):
    _write(tmp_path / "env" / "dup.json", _minimal(mcu="rp2040"))
    _write(tmp_path / "mine" / "dup.json", _minimal(mcu="rp2350"))
    _write(tmp_path / "pio-core" / "platforms" / "nordicnrf52@src-1234" / "boards" / "pioboard.json",
           _minimal(mcu="nrf52832", cpu="cortex-m4"))
    monkeypatch.setenv("TINYML_BOARDS_DIRS", str(tmp_path / "env"))
    assert load_profile("dup", search_dirs=[tmp_path / "mine"]).core == "cortex-m33"
    assert load_profile("pioboard").platform == "nordicnrf52"


# --- bad input: one DeviceError line each, naming the file or board and what to do ---

def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_manifest_file(tmp_path):
    with pytest.raises(DeviceError) as err:
        load_profile(str(tmp_path / "nope.json"))
    assert "nope.json" in _one_line(err) and "not found" in str(err.value)


def test_invalid_json_names_file_and_position(tmp_path):
    path = _write(tmp_path / "broken.json", '{"build": {"mcu": "rp2040",}\n}')
    with pytest.raises(DeviceError) as err:
        load_profile(str(path))
    text = _one_line(err)
    assert "broken.json" in text and "line 1 column" in text


def test_manifest_that_is_not_an_object(tmp_path):
    with pytest.raises(DeviceError, match="not an object"):
        load_profile(str(_write(tmp_path / "list.json", "[1, 2]")))


def test_missing_ram_names_key_file_and_override(tmp_path):
    manifest = _minimal(mcu="rp2040")
    del manifest["upload"]["maximum_ram_size"]
    path = _write(tmp_path / "noram.json", manifest)
    with pytest.raises(DeviceError) as err:
        load_profile(str(path))
    text = _one_line(err)
    assert "noram" in text and "upload.maximum_ram_size" in text
    assert "board_upload.maximum_ram_size" in text


def test_invalid_clock_and_sizes(tmp_path):
    with pytest.raises(DeviceError, match="build.f_cpu"):
        profile_from_manifest(_minimal(mcu="rp2040", f_cpu="fast"), "x")
    with pytest.raises(DeviceError, match="maximum_size"):
        profile_from_manifest(_minimal(mcu="rp2040"), "x", {"upload.maximum_size": -1})


@needs_boards
def test_unknown_board_suggests_close_match_and_how_to_add():
    with pytest.raises(DeviceError) as err:
        load_profile("nucleo_f446", search_dirs=[SHARED_BOARDS])
    text = _one_line(err)
    assert "'nucleo_f446'" in text and "nucleo_f446re" in text
    assert "TINYML_BOARDS_DIRS" in text and str(SHARED_BOARDS) in text


def test_core_that_cannot_be_told(tmp_path):
    with pytest.raises(DeviceError, match="board_build.cpu"):
        profile_from_manifest(_minimal(mcu="acme9000"), "acme")
    with pytest.raises(DeviceError, match="unknown CPU core"):
        profile_from_manifest(_minimal(mcu="acme9000", cpu="cortex-m99"), "acme")
    with pytest.raises(DeviceError, match="no such FPU"):
        profile_from_manifest(_minimal(mcu="rp2040"), "pico", {"build.tinyml_fpu": "sp"})


def test_profile_round_trips_and_cache_key_ignores_board_identity():
    profile = profile_from_manifest(_minimal(mcu="samd21g18a", cpu="cortex-m0plus"), "one")
    renamed = profile_from_manifest(_minimal(mcu="samd21g18a", cpu="cortex-m0plus"), "two")
    assert DeviceProfile.from_dict(profile.to_dict()) == profile
    assert profile.cache_key() == renamed.cache_key()
