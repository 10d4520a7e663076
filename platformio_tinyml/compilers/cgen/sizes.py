"""Flash estimates of cgen's code, used before anything is compiled.

``KERNEL_BYTES`` is each runtime kernel file's object (code, rodata, data) built at -Os
for the core that stands for each ISA of :mod:`.latency` (the hot kernel files switch
themselves to -O2: runtime/tml_speed.h), and ``MODEL_CODE`` the generated model file's
code beyond its constant data, per op, fitted over the MLPerf Tiny models and a
streaming wake-word model. Both are measured by ``benchmarks/measure_kernels.py``
(rerun it when a kernel changes); ``benchmarks/estimate_accuracy.py`` compares the
whole estimate with linked firmware. The memory gate measures the real ELF after
linking; these figures rank backends and warn early. With ``custom_tinyml_optimize =
size`` the DSP kernels are smaller than the table says (the estimate stays high).
"""

from __future__ import annotations

from ...device import DeviceProfile
from .latency import isa_of

# Measured by benchmarks/measure_kernels.py (arm-none-eabi-gcc, riscv64-unknown-elf-gcc and
# avr-gcc as scripts/setup.sh installs them); keys are runtime file names without "tml_" and ".c".
KERNEL_BYTES: dict[str, dict[str, int]] = {
    'armv7em': {'act_s8': 678, 'binary_s8': 1448, 'bmm': 644, 'concat_s8': 68, 'conv_f32': 2432,
        'conv_s8': 11468, 'dwconv_s8': 11436, 'elementwise_f32': 422, 'ew_f32': 1686, 'ew_s8': 1264,
        'fc_f32': 372, 'fc_s8': 696, 'fixedpoint': 876, 'logic': 854, 'lstm': 532, 'lstm_s8': 2672, 'mean_s8': 238,
        'move': 340, 'pad_s8': 504, 'pool_f32': 484, 'pool_s8': 372, 'quant_f32': 180, 'reduce': 650,
        'resize': 678, 'softmax_f32': 188, 'softmax_s8': 418, 'tconv': 816, 'tree_f32': 1386,
        'l2norm_s8': 696, 'log_softmax_s8': 1466, 'more': 1666},
    'armv7m': {'act_s8': 678, 'binary_s8': 1464, 'bmm': 686, 'concat_s8': 68, 'conv_f32': 2772,
        'conv_s8': 4248, 'dwconv_s8': 2344, 'elementwise_f32': 446, 'ew_f32': 1754, 'ew_s8': 1264,
        'fc_f32': 460, 'fc_s8': 460, 'fixedpoint': 876, 'logic': 810, 'lstm': 568, 'lstm_s8': 2476, 'mean_s8': 238,
        'move': 340, 'pad_s8': 500, 'pool_f32': 540, 'pool_s8': 372, 'quant_f32': 174, 'reduce': 688,
        'resize': 786, 'softmax_f32': 188, 'softmax_s8': 416, 'tconv': 850, 'tree_f32': 1360,
        'l2norm_s8': 696, 'log_softmax_s8': 1466, 'more': 1666},
    'armv6m': {'act_s8': 808, 'binary_s8': 2364, 'bmm': 822, 'concat_s8': 64, 'conv_f32': 2616,
        'conv_s8': 4564, 'dwconv_s8': 4152, 'elementwise_f32': 476, 'ew_f32': 1784, 'ew_s8': 1586,
        'fc_f32': 476, 'fc_s8': 644, 'fixedpoint': 1344, 'logic': 888, 'lstm': 552, 'lstm_s8': 2732, 'mean_s8': 332,
        'move': 342, 'pad_s8': 510, 'pool_f32': 604, 'pool_s8': 416, 'quant_f32': 174, 'reduce': 766,
        'resize': 760, 'softmax_f32': 194, 'softmax_s8': 552, 'tconv': 986, 'tree_f32': 1356,
        'l2norm_s8': 780, 'log_softmax_s8': 1712, 'more': 1900},
    'armv81m': {'act_s8': 692, 'binary_s8': 1472, 'bmm': 630, 'concat_s8': 68, 'conv_f32': 2472,
        'conv_s8': 11856, 'dwconv_s8': 11524, 'elementwise_f32': 430, 'ew_f32': 1732, 'ew_s8': 1350,
        'fc_f32': 396, 'fc_s8': 812, 'fixedpoint': 896, 'logic': 894, 'lstm': 534, 'lstm_s8': 2732, 'mean_s8': 240,
        'move': 328, 'pad_s8': 508, 'pool_f32': 504, 'pool_s8': 376, 'quant_f32': 158, 'reduce': 690,
        'resize': 680, 'softmax_f32': 188, 'softmax_s8': 416, 'tconv': 806, 'tree_f32': 1446,
        'l2norm_s8': 724, 'log_softmax_s8': 1508, 'more': 1726},
    'rv32': {'act_s8': 1062, 'binary_s8': 1702, 'bmm': 870, 'concat_s8': 104, 'conv_f32': 3140,
        'conv_s8': 7862, 'dwconv_s8': 5096, 'elementwise_f32': 728, 'ew_f32': 2634, 'ew_s8': 1706,
        'fc_f32': 578, 'fc_s8': 824, 'fixedpoint': 1220, 'logic': 1182, 'lstm': 768, 'lstm_s8': 2926, 'mean_s8': 348,
        'move': 444, 'pad_s8': 644, 'pool_f32': 682, 'pool_s8': 388, 'quant_f32': 312, 'reduce': 794,
        'resize': 942, 'softmax_f32': 262, 'softmax_s8': 584, 'tconv': 1040, 'tree_f32': 1884,
        'l2norm_s8': 886, 'log_softmax_s8': 1946, 'more': 2300},
    # the rv32 row before RV32's own int8 paths (measure_kernels.py at 6d506b8): Xtensa, ESP8266, RV64
    'rv32_portable': {'act_s8': 1062, 'binary_s8': 1702, 'bmm': 870, 'concat_s8': 104, 'conv_f32': 3140,
        'conv_s8': 4966, 'dwconv_s8': 3504, 'elementwise_f32': 728, 'ew_f32': 2634, 'ew_s8': 1706,
        'fc_f32': 578, 'fc_s8': 544, 'fixedpoint': 1220, 'logic': 1182, 'lstm': 768, 'lstm_s8': 2926, 'mean_s8': 348,
        'move': 444, 'pad_s8': 644, 'pool_f32': 682, 'pool_s8': 388, 'quant_f32': 312, 'reduce': 794,
        'resize': 942, 'softmax_f32': 262, 'softmax_s8': 584, 'tconv': 1040, 'tree_f32': 1884,
        'l2norm_s8': 886, 'log_softmax_s8': 1946, 'more': 2300},
    'avr': {'act_s8': 3024, 'binary_s8': 4378, 'bmm': 4004, 'concat_s8': 248, 'conv_f32': 3546,
        'conv_s8': 5320, 'dwconv_s8': 11490, 'elementwise_f32': 1810, 'ew_f32': 5502, 'ew_s8': 4490,
        'fc_f32': 572, 'fc_s8': 2224, 'fixedpoint': 2250, 'logic': 5154, 'lstm': 1638, 'lstm_s8': 7254, 'mean_s8': 1344,
        'move': 1546, 'pad_s8': 2096, 'pool_f32': 2042, 'pool_s8': 1656, 'quant_f32': 532, 'reduce': 2210,
        'resize': 3462, 'softmax_f32': 520, 'softmax_s8': 1692, 'tconv': 4892, 'tree_f32': 4854,
        'l2norm_s8': 1848, 'log_softmax_s8': 3750, 'more': 7220},
}
# isa: (bytes per op, base bytes) of the generated model file beyond its constant data
MODEL_CODE: dict[str, tuple[float, int]] = {'armv7em': (140.0, 0), 'armv7m': (140.0, 0), 'armv6m': (139.4, 0), 'armv81m': (140.0, 0), 'rv32': (147.3, 0), 'rv32_portable': (147.3, 0), 'avr': (175.6, 0)}
DEFAULT_BYTES = 1024      # a kernel file the table does not know yet


def estimate_code_bytes(runtime_files: list[str], device: DeviceProfile, n_ops: int) -> int:
    """Flash of the kernels in ``runtime_files`` and of the generated model code (not its constants)."""
    isa, _ = isa_of(device)
    sizes = KERNEL_BYTES.get(isa, KERNEL_BYTES["armv7m"])
    per_op, base = MODEL_CODE.get(isa, MODEL_CODE["armv7m"])
    text = sum(sizes.get(f[4:-2], DEFAULT_BYTES) for f in runtime_files if f.endswith(".c"))
    return int(text + per_op * n_ops + base)
