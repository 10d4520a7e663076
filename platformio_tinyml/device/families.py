"""MCU families: which core, FPU and DSP a chip has, keyed by its part number.

PlatformIO manifests state ``build.mcu`` (and ``build.cpu`` on Cortex-M) but
never the FPU or the DSP extension, so they are looked up here from public
datasheets. A family is matched by a regular expression at the start of the
lowercased ``build.mcu``; the first match in :data:`FAMILIES` wins, so more
specific patterns come first (``stm32f7[67]`` before ``stm32f7``).

``sram`` is the largest on-chip RAM of the family in bytes: a manifest RAM size
above it includes external PSRAM/SDRAM and gets a note. ``other_cores`` lists
the additional cores of multi-core parts with their FPU, so a manifest that
targets the second core (``build.cpu``) is still understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KIB = 1024


@dataclass(frozen=True)
class Family:
    """Facts shared by every part whose ``build.mcu`` matches ``pattern``."""

    pattern: str
    name: str
    core: str
    fpu: str | None = None
    dsp: bool | None = None  # None: as the core says (see cores.CoreFacts.dsp)
    platform: str = ""
    sram: int | None = None
    other_cores: tuple[tuple[str, str | None], ...] = ()
    note: str = ""


def _f(pattern, name, core, fpu=None, **kw) -> Family:
    return Family(pattern, name, core, fpu, **kw)


_ST = {"platform": "ststm32"}
_H7_DUAL = {"other_cores": (("cortex-m4", "sp"),),
            "note": "dual-core part (Cortex-M7 + Cortex-M4); build.cpu selects the core"}

FAMILIES: tuple[Family, ...] = (
    # --- ST STM32 (RM/datasheet "Arm Cortex-M.. with FPU") ---
    _f(r"stm32c0", "stm32c0", "cortex-m0plus", **_ST),
    _f(r"stm32f0", "stm32f0", "cortex-m0", **_ST),
    _f(r"stm32f[12]", "stm32f1/f2", "cortex-m3", **_ST),
    _f(r"stm32f3", "stm32f3", "cortex-m4", "sp", **_ST),
    _f(r"stm32f4", "stm32f4", "cortex-m4", "sp", **_ST),
    _f(r"stm32f7[67]", "stm32f76x/f77x", "cortex-m7", "dp", **_ST),
    _f(r"stm32f7", "stm32f7", "cortex-m7", "sp", **_ST),
    _f(r"stm32g0", "stm32g0", "cortex-m0plus", **_ST),
    _f(r"stm32g4", "stm32g4", "cortex-m4", "sp", **_ST),
    _f(r"stm32h5", "stm32h5", "cortex-m33", "sp", dsp=True, **_ST),
    _f(r"stm32h7[45]7", "stm32h7 dual-core", "cortex-m7", "dp", **_ST, **_H7_DUAL),
    _f(r"stm32h7[45]5", "stm32h7 dual-core", "cortex-m7", "dp", **_ST, **_H7_DUAL),
    _f(r"stm32h7", "stm32h7", "cortex-m7", "dp", **_ST),
    _f(r"stm32l0", "stm32l0", "cortex-m0plus", **_ST),
    _f(r"stm32l1", "stm32l1", "cortex-m3", **_ST),
    _f(r"stm32l4", "stm32l4", "cortex-m4", "sp", **_ST),
    _f(r"stm32l5", "stm32l5", "cortex-m33", "sp", dsp=True, **_ST),
    _f(r"stm32u0", "stm32u0", "cortex-m0plus", **_ST),
    _f(r"stm32u5", "stm32u5", "cortex-m33", "sp", dsp=True, **_ST),
    _f(r"stm32wba", "stm32wba", "cortex-m33", "sp", dsp=True, **_ST),
    _f(r"stm32wb0", "stm32wb0", "cortex-m0plus", **_ST),
    _f(r"stm32wb", "stm32wb", "cortex-m4", "sp", **_ST),
    _f(r"stm32wl3", "stm32wl3", "cortex-m0plus", **_ST),
    # STM32WL's Cortex-M4 has no FPU (datasheet DS13293).
    _f(r"stm32wl", "stm32wl", "cortex-m4", None, **_ST),
    _f(r"stm32mp1", "stm32mp1", "cortex-m4", "sp", **_ST,
       note="profile describes the Cortex-M4 coprocessor, not the Cortex-A7"),
    _f(r"stm32n6", "stm32n6", "cortex-m55", "dp", **_ST),
    # --- Arm MPS2/MPS3 FPGA images (as emulated by QEMU) ---
    _f(r"mps2-an385", "mps2-an385", "cortex-m3"),
    _f(r"mps2-an386", "mps2-an386", "cortex-m4", "sp"),
    _f(r"mps2-an500", "mps2-an500", "cortex-m7", "dp"),
    _f(r"mps2-an50[5]|mps2-an521|mps3-an524", "mps2/mps3 cortex-m33", "cortex-m33", "sp", dsp=True),
    _f(r"mps3-an54[7]|mps3-an552", "mps3 cortex-m55", "cortex-m55", "dp"),
    _f(r"mps3-an555", "mps3-an555", "cortex-m85", "dp"),
    # --- Nordic nRF ---
    _f(r"nrf51", "nrf51", "cortex-m0", platform="nordicnrf51"),
    _f(r"nrf52(805|810|811|820)", "nrf52 (no FPU)", "cortex-m4", None, platform="nordicnrf52"),
    _f(r"nrf52", "nrf52", "cortex-m4", "sp", platform="nordicnrf52"),
    _f(r"nrf53", "nrf53", "cortex-m33", "sp", dsp=True, platform="nordicnrf53",
       note="profile describes the application core"),
    _f(r"nrf91", "nrf91", "cortex-m33", "sp", dsp=True, platform="nordicnrf91"),
    # --- Microchip/Atmel SAM ---
    _f(r"(at91)?sam3", "sam3", "cortex-m3", platform="atmelsam"),
    _f(r"(at91)?sam4e", "sam4e", "cortex-m4", "sp", platform="atmelsam"),
    _f(r"(at91)?sam4", "sam4", "cortex-m4", None, platform="atmelsam"),
    _f(r"sam(d09|d1|d2|da1|c2|l2|r2|r3)", "samd21 class", "cortex-m0plus", platform="atmelsam"),
    _f(r"saml1", "saml1", "cortex-m23", platform="atmelsam"),
    _f(r"sam(d5|e5)", "samd51/same5x", "cortex-m4", "sp", platform="atmelsam"),
    _f(r"sam(e7|s7|v7)", "same70/samv7", "cortex-m7", "dp", platform="atmelsam"),
    # --- NXP i.MX RT and Kinetis (Teensy) ---
    _f(r"mimxrt101", "i.mx rt1010", "cortex-m7", "dp", platform="nxpimxrt", sram=128 * KIB),
    _f(r"mimxrt102", "i.mx rt1020", "cortex-m7", "dp", platform="nxpimxrt", sram=256 * KIB),
    _f(r"mimxrt105", "i.mx rt1050", "cortex-m7", "dp", platform="nxpimxrt", sram=512 * KIB),
    _f(r"m?imxrt106", "i.mx rt1060", "cortex-m7", "dp", platform="nxpimxrt", sram=1024 * KIB),
    _f(r"mimxrt11", "i.mx rt1170", "cortex-m7", "dp", platform="nxpimxrt",
       other_cores=(("cortex-m4", "sp"),)),
    _f(r"mimxrt[56]", "i.mx rt500/600", "cortex-m33", "sp", dsp=True, platform="nxpimxrt"),
    _f(r"mk20dx", "kinetis k20", "cortex-m4", None, platform="teensy"),
    _f(r"mk(6[46]|22f)", "kinetis k64/k66", "cortex-m4", "sp", platform="teensy"),
    _f(r"mkl", "kinetis l", "cortex-m0plus", platform="teensy"),
    # --- Raspberry Pi ---
    _f(r"rp2040", "rp2040", "cortex-m0plus", platform="raspberrypi", sram=264 * KIB),
    _f(r"rp2350", "rp2350", "cortex-m33", "sp", dsp=True, platform="raspberrypi",
       sram=520 * KIB),
    # --- TI Tiva / Stellaris (PlatformIO prefixes the LaunchPad ids with "lp") ---
    _f(r"(lp)?(lm4f|tm4c)", "tiva c", "cortex-m4", "sp", platform="titiva"),
    # --- Silicon Labs EFM32/EFR32 ---
    _f(r"efm32(zg|hg|tg11)", "efm32 zero/happy/tiny11", "cortex-m0plus", platform="siliconlabsefm32"),
    _f(r"efm32gg1[12]", "efm32 giant gecko s1", "cortex-m4", "sp", platform="siliconlabsefm32"),
    _f(r"efm32(pg|bg|mg|fg)2", "efm32 series 2", "cortex-m33", "sp", dsp=True,
       platform="siliconlabsefm32"),
    _f(r"efm32(wg|pg|jg)", "efm32 wonder/pearl/jade", "cortex-m4", "sp", platform="siliconlabsefm32"),
    _f(r"efm32(g|lg|tg|gg)", "efm32 gecko (cortex-m3)", "cortex-m3", platform="siliconlabsefm32"),
    _f(r"efr32[a-z]g1", "efr32 series 1", "cortex-m4", "sp", platform="siliconlabsefm32"),
    _f(r"efr32[a-z]g2", "efr32 series 2", "cortex-m33", "sp", dsp=True, platform="siliconlabsefm32"),
    # --- Espressif (ESP-IDF -march per target) ---
    _f(r"esp32s2", "esp32-s2", "xtensa-lx7", None, platform="espressif32", sram=320 * KIB),
    _f(r"esp32s3", "esp32-s3", "xtensa-lx7", "sp", platform="espressif32", sram=512 * KIB,
       note="ESP32-S3 PIE vector instructions are not modelled"),
    _f(r"esp32c[23]", "esp32-c2/c3", "rv32imc", platform="espressif32", sram=400 * KIB),
    _f(r"esp32c6", "esp32-c6", "rv32imac", platform="espressif32", sram=512 * KIB),
    _f(r"esp32(c5|c61|h2)", "esp32-c5/h2", "rv32imac", platform="espressif32"),
    _f(r"esp32p4", "esp32-p4", "rv32imafc", "sp", platform="espressif32"),
    _f(r"esp32$", "esp32", "xtensa-lx6", "sp", platform="espressif32", sram=520 * KIB),
    _f(r"esp82(66|85)", "esp8266", "esp8266", platform="espressif8266", sram=160 * KIB),
    # --- RISC-V ---
    _f(r"fe310", "sifive fe310", "rv32imac", platform="sifive", sram=16 * KIB),
    _f(r"fu[57]40", "sifive fu540/fu740", "rv64gc", platform="sifive",
       note="application processor running Linux; ram_bytes is the board's DDR"),
    _f(r"gd32vf103", "gd32vf103", "rv32imac", platform="gd32v"),
    # --- Broadcom (Raspberry Pi running Linux; platform linux_arm builds armhf) ---
    _f(r"bcm2835", "bcm2835", "arm1176jzf-s", "dp", platform="linux_arm"),
    _f(r"bcm2836", "bcm2836", "cortex-a7", "dp", platform="linux_arm"),
    _f(r"bcm2837", "bcm2837", "cortex-a53", "dp", platform="linux_arm",
       note="Cortex-A53 is 64-bit capable; linux_arm builds 32-bit (armhf) code"),
    _f(r"bcm2711", "bcm2711", "cortex-a72", "dp", platform="linux_arm",
       note="Cortex-A72 is 64-bit capable; linux_arm builds 32-bit (armhf) code"),
    # --- AVR: classic parts (atmelavr) and the megaAVR-0 / tinyAVR-0/1/2 / AVR-Dx ---
    _f(r"attiny[24]313", "tinyavr classic", "avr", platform="atmelavr"),
    _f(r"atmega(8|16|32|48)0[89]$", "megaavr-0", "avr", platform="atmelmegaavr"),
    _f(r"attiny\d*(0[2-7]|1[2-7]|2[4-7])$", "tinyavr 0/1/2", "avr", platform="atmelmegaavr"),
    _f(r"avr\d+d[abdu]", "avr dx", "avr", platform="atmelmegaavr"),
    _f(r"(atmega|attiny|at90|atxmega)", "avr", "avr", platform="atmelavr"),
    # --- TI MSP430 ---
    _f(r"msp430(f5|f6|fr)", "msp430x", "msp430", platform="timsp430",
       note="MSP430X CPU (20-bit address extension)"),
    _f(r"msp430", "msp430", "msp430", platform="timsp430"),
)

_COMPILED = tuple((re.compile(f.pattern), f) for f in FAMILIES)

# Platforms whose every board has the same core, for manifests without build.mcu.
PLATFORM_CORES = {
    "atmelavr": "avr",
    "atmelmegaavr": "avr",
    "timsp430": "msp430",
    "espressif8266": "esp8266",
}


def find_family(mcu: str) -> Family | None:
    """Return the first :class:`Family` whose pattern matches ``mcu``, or None."""
    key = mcu.strip().lower()
    for regex, family in _COMPILED:
        if regex.match(key):
            return family
    return None


def fpu_for_core(family: Family, core: str) -> tuple[bool, str | None]:
    """Return ``(known, fpu)`` for ``core`` inside ``family``.

    ``known`` is False when ``core`` is neither the family's main core nor one
    of its ``other_cores`` (the manifest then disagrees with the table).
    """
    if core == family.core:
        return True, family.fpu
    for other, fpu in family.other_cores:
        if other == core:
            return True, fpu
    return False, None
