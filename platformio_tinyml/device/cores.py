"""What each CPU core can do, independent of the chip it sits in.

A core fixes the architecture, the word size and which floating-point and SIMD
options *may* exist; whether a given chip has the optional ones is decided by
its MCU family (see :mod:`families`). Core names here are the normalized
spelling used in :class:`~platformio_tinyml.device.profile.DeviceProfile.core`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreFacts:
    """Fixed properties of one CPU core.

    ``fpus`` lists the FPU variants an implementation may have (``"sp"``,
    ``"dp"``); empty means the core never has one. ``fpu_always`` is the FPU
    every implementation has (RISC-V "F"/"D" in the ISA string, Cortex-A).
    ``dsp`` is True when the Armv7E-M DSP SIMD instructions are always there,
    None when they are optional (Armv8-M Mainline), False when absent.
    """

    arch: str
    word_bits: int
    fpus: tuple[str, ...] = ()
    fpu_always: str | None = None
    dsp: bool | None = False
    mve: bool = False


_M_NO_FPU = CoreFacts("arm", 32)

CORES: dict[str, CoreFacts] = {
    "cortex-m0": _M_NO_FPU,
    "cortex-m0plus": _M_NO_FPU,
    "cortex-m1": _M_NO_FPU,
    "cortex-m3": _M_NO_FPU,
    "cortex-m23": _M_NO_FPU,
    "cortex-m4": CoreFacts("arm", 32, fpus=("sp",), dsp=True),
    "cortex-m7": CoreFacts("arm", 32, fpus=("sp", "dp"), dsp=True),
    "cortex-m33": CoreFacts("arm", 32, fpus=("sp",), dsp=None),
    "cortex-m35p": CoreFacts("arm", 32, fpus=("sp",), dsp=None),
    # Armv8.1-M: the FPU, when present, does half, single and double precision.
    "cortex-m55": CoreFacts("arm", 32, fpus=("dp",), dsp=True, mve=True),
    "cortex-m85": CoreFacts("arm", 32, fpus=("dp",), dsp=True, mve=True),
    # Application-class ARM (Linux boards): VFP double precision always there.
    "arm1176jzf-s": CoreFacts("arm-a", 32, fpu_always="dp"),
    "cortex-a7": CoreFacts("arm-a", 32, fpu_always="dp"),
    "cortex-a53": CoreFacts("arm-a", 32, fpu_always="dp"),
    "cortex-a72": CoreFacts("arm-a", 32, fpu_always="dp"),
    "avr": CoreFacts("avr", 8),
    "msp430": CoreFacts("msp430", 16),
    "esp8266": CoreFacts("xtensa", 32),
    "xtensa-lx6": CoreFacts("xtensa", 32, fpus=("sp",)),
    "xtensa-lx7": CoreFacts("xtensa", 32, fpus=("sp",)),
    "rv32imc": CoreFacts("riscv", 32),
    "rv32imac": CoreFacts("riscv", 32),
    "rv32imafc": CoreFacts("riscv", 32, fpu_always="sp"),
    "rv64gc": CoreFacts("riscv", 64, fpu_always="dp"),
}

# Spellings seen in manifests and user overrides -> normalized name.
_ALIASES = {
    "cortex-m0+": "cortex-m0plus",
    "cortex-m0p": "cortex-m0plus",
    "cortex-m4f": "cortex-m4",
    "cortex-m7f": "cortex-m7",
    "cortex-m33f": "cortex-m33",
    "cortex-m33+nodsp": "cortex-m33",
    "arm1176jzf": "arm1176jzf-s",
    "lx6": "xtensa-lx6",
    "lx7": "xtensa-lx7",
    "lx106": "esp8266",
    "xtensa-lx106": "esp8266",
}


def normalize_core(name: str) -> str:
    """Return the normalized core name for ``name`` (``"Cortex-M0+"`` -> ``"cortex-m0plus"``).

    Unknown names come back lowercased and stripped; check them against
    :data:`CORES`.
    """
    key = name.strip().lower().replace("_", "-")
    if key.startswith("cm") and key[2:].isdigit():
        key = "cortex-m" + key[2:]
    return _ALIASES.get(key, key)
