"""Flash estimates of the runtime kernels, used before anything is compiled.

Figures are .text bytes of each runtime file measured with arm-none-eabi-gcc
-Os -mcpu=cortex-m4 (Thumb-2); other cores are scaled by a rough code-density
factor. The memory gate measures the real ELF after linking; these numbers
only rank backends and warn early.
"""

from __future__ import annotations

from ...device import DeviceProfile

# bytes of .text at -Os on Cortex-M4 (refresh with benchmarks/measure_kernels.py)
KERNEL_TEXT = {
    "tml_conv_s8.c": 520, "tml_dwconv_s8.c": 480, "tml_fc_s8.c": 220, "tml_pool_s8.c": 260,
    "tml_binary_s8.c": 420, "tml_softmax_s8.c": 300, "tml_fixedpoint.c": 560,
    "tml_lstm.c": 512,   # -mfloat-abi=hard -mfpu=fpv4-sp-d16
    "tml_tree_f32.c": 1388,   # -mfloat-abi=hard -mfpu=fpv4-sp-d16
}
DEFAULT_TEXT = 400
PER_OP_CALL = 12
DENSITY = {8: 2.5, 16: 1.6, 32: 1.0, 64: 1.3}


def estimate_code_bytes(runtime_files: list[str], device: DeviceProfile, n_ops: int) -> int:
    text = sum(KERNEL_TEXT.get(f, DEFAULT_TEXT) for f in runtime_files if f.endswith(".c"))
    text += PER_OP_CALL * n_ops + 64
    return int(text * DENSITY.get(device.word_bits, 1.0))
