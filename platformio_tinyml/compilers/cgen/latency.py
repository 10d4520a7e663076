"""Latency estimate of cgen-generated code, in CPU cycles, before anything is compiled.

An **estimate**, good for ranking backends, not a measurement. The model:

    instructions(op) = a * work(op) + c * output elements(op) + b    (a, c, b = IPW[isa][kernel])
    cycles           = CPI[core] * sum over ops of instructions(op)

``work(op)`` counts the op's inner-loop steps: multiply-accumulates for
CONV_2D (out elements x kh x kw x cin), DEPTHWISE_CONV_2D (out elements x
kh x kw) and FULLY_CONNECTED (out elements x in features), window reads for
pooling (out elements x fh x fw), input elements for MEAN, for
UNIDIRECTIONAL_SEQUENCE_LSTM (float32: an ``fc`` kernel) batch x steps x units x
(4 x (features + units) + ``LSTM_ACT_WORK``) (the gates' multiply-accumulates,
plus its five expf/tanhf per unit and step counted as that many MACs: fitted on one
LSTM, 8 units x 5 steps x 3 features, whose measured counts on Cortex-M4F and RV32
both give 64, AVR 51; the int8 LSTM is its own ``lstm_s8`` kernel whose work is the gates'
multiply-accumulates and whose per-output-element figure covers its integer activations and
requantizations: fitted on two int8 LSTMs, 8 units x 10 steps x 4 features and 20 x 49 x 10,
outside the calibration script), output elements for every element-wise op (ADD, MUL, PAD, activations, quantize, softmax and
log-softmax, L2 normalization, concatenation). RESHAPE costs nothing (cgen aliases the buffer).

``IPW`` (instructions per unit of work, per output element, per op) is **measured**:
``benchmarks/cgen_latency_calibrate.py`` builds each MLPerf Tiny model (int8 and float)
and a streaming wake-word model with cgen at ``-Os`` (PlatformIO's default; the hot
kernel files switch themselves to -O2), runs it on an emulated machine and reads the
exact instruction count between its kernel calls (QEMU ``-icount shift=0``; on AVR the
exact cycle count from simavr), so each op is measured as the model runs it, with the
arena scratch the planner grants it there (which picks the conv kernels' fast paths);
a model too big for the ATmega2560 is cut into single-op graphs. A non-negative
least-squares fit per kernel gives the numbers below. Measured ISAs:

* ``armv7em`` Cortex-M4F (QEMU mps2-an386): DSP SIMD (SMLAD) int8 paths;
* ``armv7m`` Cortex-M3 (mps2-an385): no DSP, soft float;
* ``armv6m`` Cortex-M0/M0+ (the same code built with ``-mcpu=cortex-m0`` and
  run on mps2-an385, an Armv6-M subset of Armv7-M): Thumb-1, soft float;
* ``armv81m`` Cortex-M55 (mps3-an547);
* ``rv32`` rv32imac (QEMU riscv32-virt): no SIMD, soft float;
* ``avr`` ATmega2560 (simavr): **cycles**.

Cycles per instruction are **measured** for the two cores benchmarks/cycle_model.py
prices from an instruction trace (Cortex-M4 and M0+, zero wait states): ``CPI_KERNEL``,
per int8 kernel family and one figure for the float kernels
(``cgen_latency_calibrate.py --cpi``). ``benchmarks/estimate_accuracy.py`` checks the
whole estimate against those runs: within 15 % on every MLPerf Tiny model on
Cortex-M4, M0+ and RV32 (instructions) and on the wake-word model on AVR. For the other
cores ``CPI`` is **not measured**: rough figures from the cores' documented
pipelines: Cortex-M3 1.3 (2-cycle loads, 1-3 cycle branch refill, zero
wait-state memory assumed), M0 1.5, M7 0.8 (dual issue; Arm's
CoreMark/MHz 5.01 vs 3.42 for the M4), M33 1.25, M55 1.0, rv32imac 1.3 (a
simple in-order pipeline such as the E31/ESP32-C3), Xtensa LX6/LX7 1.1,
AVR 1.0 (the table is already in cycles). Cores that were not measured take
the closest measured ISA (``ISA_OF``): Cortex-M7 and M33 with DSP take
``armv7em``, M23 and M0+ take ``armv6m``, ESP32 Xtensa, ESP8266 and RV64 take
``rv32_portable`` (RV32's figures for the portable C kernels: a 32-bit RISC without int8
SIMD, which does not get RV32's own int8 paths), MSP430 takes ``avr`` x 0.6 (16-bit ALU),
Cortex-A application cores take ``armv7em`` x 0.5. Float kernels on a core
without an FPU take the measured soft-float numbers of their ISA.

Flash wait states, caches and external memory are not modelled; the error
against a real board is easily +-50 %. ``estimate_cycles`` returns None
when the model holds an op the tables do not know (the rank then treats the
latency as unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...device import DeviceProfile
from ...ir import DType, Graph, Op, OpKind
from ...ir import attrs as A
from ...ir.shape_ops import MOVES

# ---- work per op --------------------------------------------------------------

_FLOATS = (DType.FLOAT32,)
# Ops that only copy elements (concatenation, slices, a streaming model's variable reads and
# writes): a copy per output element, not the requantizing element-wise kernels' cost.
_MOVES = (MOVES | {OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE}) - {OpKind.RESHAPE}
# The families of TFLite builtins without an IR kind that cgen computes (lower_more.py): those that
# move bytes, L2_POOL_2D a pool, SVDF matrix-vector products; the others (PADV2 as PAD, CAST,
# ADD_N, ...) are element-wise
OPAQUE_FAMILY = {"REVERSE_V2": "move", "GATHER_ND": "move", "EMBEDDING_LOOKUP": "move", "FILL": "move",
                 "ZEROS_LIKE": "move", "DYNAMIC_UPDATE_SLICE": "move", "L2_POOL_2D": "pool", "SVDF": "fc"}
LSTM_ACT_WORK = 64   # 3 logistic + 2 tanh per unit and step, in MACs of the fc_f32 kernel (see above)


def kernel_of(g: Graph, op: Op) -> str:
    """The kernel family of ``op``: ``"<kind>_<s8|f32>"`` (e.g. ``conv_s8``)."""
    t = g.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else g.tensors[op.outputs[0]]
    if op.kind is OpKind.QUANTIZE:       # float in: the cost is float math
        return "quant_f32" if g.tensors[op.inputs[0]].dtype in _FLOATS else "eltwise_s8"
    if op.kind is OpKind.DEQUANTIZE:
        return "quant_f32"
    suffix = "f32" if t.dtype in _FLOATS else "s8"
    family = {
        OpKind.CONV_2D: "conv", OpKind.TRANSPOSE_CONV: "conv", OpKind.DEPTHWISE_CONV_2D: "dwconv", OpKind.FULLY_CONNECTED: "fc",
        OpKind.AVERAGE_POOL_2D: "pool", OpKind.MAX_POOL_2D: "pool", OpKind.MEAN: "pool",
        OpKind.SOFTMAX: "softmax", OpKind.LOGISTIC: "softmax", OpKind.TANH: "softmax",
        OpKind.LOG_SOFTMAX: "softmax",      # an exp per element and a log per row: softmax's cost
        OpKind.RESHAPE: "reshape", OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM: "fc" if suffix == "f32" else "lstm",
    }.get(op.kind, "move" if op.kind in _MOVES else "eltwise")
    if op.kind is OpKind.OPAQUE:
        family = OPAQUE_FAMILY.get(op.attrs.op, "eltwise")
    return f"{family}_{suffix}"


def op_work(g: Graph, op: Op) -> int:
    """Inner-loop steps of ``op`` (see the module docstring)."""
    out = _result(g, op)
    n_out = out.size
    if op.kind is OpKind.TRANSPOSE_CONV:     # OHWI; the gather visits every tap, 1/stride^2 of them hit
        w = g.tensors[op.inputs[1]]
        return n_out * w.shape[1] * w.shape[2] * w.shape[3] // max(1, op.attrs.stride_h * op.attrs.stride_w)
    if op.kind is OpKind.CONV_2D:
        w = g.tensors[op.inputs[1]]          # OHWI
        return n_out * w.shape[1] * w.shape[2] * w.shape[3]
    if op.kind is OpKind.DEPTHWISE_CONV_2D:
        w = g.tensors[op.inputs[1]]          # [1, H, W, C*M]
        return n_out * w.shape[1] * w.shape[2]
    if op.kind is OpKind.FULLY_CONNECTED:
        w = g.tensors[op.inputs[1]]          # [out, in]
        return n_out * w.shape[-1]
    if op.kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        return n_out * op.attrs.filter_h * op.attrs.filter_w
    if op.kind is OpKind.MEAN:
        return g.tensors[op.inputs[0]].size
    if op.kind is OpKind.RESHAPE:
        return 0
    if op.kind is OpKind.TREE_ENSEMBLE:   # per row: every tree's walk (its depth) and the leaf weights
        a = op.attrs
        depth = [1] * len(a.mode)
        for i, m in enumerate(a.mode):   # children come after their parent
            if m != len(A.TREE_MODES) - 1:
                depth[a.true_child[i]] = depth[a.false_child[i]] = depth[i] + 1
        return g.tensors[op.inputs[0]].shape[0] * (len(a.roots) * max(depth) + n_out)
    if op.kind is OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM:   # y: [B, T, U] (or [T, B, U])
        features = g.tensors[op.inputs[0]].shape[-1]
        act = LSTM_ACT_WORK if g.tensors[op.inputs[0]].dtype in _FLOATS else 0   # int8: lstm_s8's c
        return n_out * (4 * (features + out.shape[-1]) + act)
    return n_out


def _result(g: Graph, op: Op):
    """The tensor an op writes (ASSIGN_VARIABLE writes none: the value it stores)."""
    return g.tensors[op.outputs[0] if op.outputs else op.inputs[0]]


def work_by_kernel(g: Graph) -> dict[str, tuple[int, int, int]]:
    """``{kernel: (total work, total output elements, number of ops)}`` of the graph."""
    out: dict[str, tuple[int, int, int]] = {}
    for op in g.ops:
        k = kernel_of(g, op)
        w, e, n = out.get(k, (0, 0, 0))
        out[k] = (w + op_work(g, op), e + _result(g, op).size, n + 1)
    return out


# ---- per-ISA tables --------------------------------------------------------------
# IPW[isa][kernel] = (a, c, b): instructions = a * work + c * output elements + b per op
# (AVR: cycles). Fitted by benchmarks/cgen_latency_calibrate.py (non-negative least
# squares over the ops of the MLPerf Tiny models and a wake-word model measured in the
# running model, -Os, the compilers that scripts/setup.sh installs). Kernels a model never exercised borrow a neighbour
# (FALLBACK) so that every graph cgen accepts gets a number.

IPW: dict[str, dict[str, tuple[float, float, float]]] = {
    # kernel: (a, c, b),  # ops measured, largest relative error of the fit on them
    'armv6m': {
        'conv_f32': (132.637, 656.37, 755160),  # n=23, max err 22%
        'conv_s8': (3.772, 66.2, 15923),  # n=33, max err 23%
        'dwconv_f32': (141.405, 0.0, 0),  # n=13, max err 37%
        'dwconv_s8': (13.974, 0.0, 2800),  # n=21, max err 31%
        'eltwise_f32': (192.535, 0.0, 0),  # n=3, max err 2%
        'eltwise_s8': (166.463, 0.0, 0),  # n=4, max err 4%
        'fc_f32': (150.2, 444.14, 0),  # n=12, max err 21%
        'fc_s8': (3.597, 74.39, 1320),  # n=14, max err 33%
        'lstm_s8': (5.678, 1141.0, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (0.824, 0.0, 105),  # n=24, max err 31%
        'pool_f32': (75.176, 273.1, 0),  # n=2, max err 0%
        'pool_s8': (11.835, 139.91, 0),  # n=3, max err 6%
        'softmax_f32': (4205.305, 0.0, 0),  # n=2, max err 25%
        'softmax_s8': (612.825, 0.0, 562),  # n=4, max err 43%
    },
    'armv7em': {
        'conv_f32': (3.36, 33.28, 0),  # n=23, max err 13%
        'conv_s8': (0.984, 11.16, 9814),  # n=33, max err 49%
        'dwconv_f32': (8.175, 0.0, 0),  # n=13, max err 23%
        'dwconv_s8': (3.511, 0.0, 3781),  # n=21, max err 55%
        'eltwise_f32': (37.389, 0.0, 0),  # n=3, max err 1%
        'eltwise_s8': (60.017, 0.0, 20),  # n=4, max err 0%
        'fc_f32': (3.966, 13.1, 846),  # n=12, max err 21%
        'fc_s8': (2.125, 53.06, 302),  # n=14, max err 9%
        'lstm_s8': (2.154, 703.6, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (0.537, 0.0, 59),  # n=24, max err 59%
        'pool_f32': (10.838, 73.86, 0),  # n=2, max err 0%
        'pool_s8': (9.581, 54.4, 0),  # n=3, max err 5%
        'softmax_f32': (181.956, 0.0, 0),  # n=2, max err 1%
        'softmax_s8': (266.998, 0.0, 276),  # n=4, max err 40%
    },
    'armv7m': {
        'conv_f32': (57.36, 420.48, 274920),  # n=23, max err 28%
        'conv_s8': (2.581, 42.66, 9560),  # n=33, max err 24%
        'dwconv_f32': (67.278, 0.0, 0),  # n=13, max err 36%
        'dwconv_s8': (9.394, 0.0, 2428),  # n=21, max err 21%
        'eltwise_f32': (160.044, 0.0, 10642),  # n=3, max err 1%
        'eltwise_s8': (60.014, 0.0, 20),  # n=4, max err 0%
        'fc_f32': (63.77, 298.88, 0),  # n=12, max err 29%
        'fc_s8': (2.956, 38.11, 825),  # n=14, max err 26%
        'lstm_s8': (2.683, 670.2, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (0.6, 0.0, 49),  # n=24, max err 51%
        'pool_f32': (46.489, 205.98, 0),  # n=2, max err 0%
        'pool_s8': (9.581, 54.4, 0),  # n=3, max err 5%
        'softmax_f32': (1996.554, 0.0, 0),  # n=2, max err 25%
        'softmax_s8': (268.76, 0.0, 274),  # n=4, max err 40%
    },
    'armv81m': {
        'conv_f32': (1.681, 30.08, 0),  # n=23, max err 33%
        'conv_s8': (0.976, 11.32, 9888),  # n=33, max err 50%
        'dwconv_f32': (5.817, 0.0, 0),  # n=13, max err 10%
        'dwconv_s8': (3.53, 0.0, 3374),  # n=21, max err 50%
        'eltwise_f32': (36.465, 0.0, 0),  # n=3, max err 1%
        'eltwise_s8': (69.014, 0.0, 56),  # n=4, max err 0%
        'fc_f32': (1.722, 13.11, 783),  # n=12, max err 48%
        'fc_s8': (2.189, 56.66, 128),  # n=14, max err 3%
        'lstm_s8': (2.278, 706.3, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (0.597, 0.0, 55),  # n=24, max err 45%
        'pool_f32': (16.573, 91.2, 0),  # n=2, max err 0%
        'pool_s8': (8.581, 54.38, 0),  # n=3, max err 5%
        'softmax_f32': (101.5, 0.0, 79),  # n=2, max err 0%
        'softmax_s8': (273.498, 0.0, 292),  # n=4, max err 40%
    },
    'avr': {
        'conv_s8': (28.535, 0.0, 82473),  # n=6, max err 8%
        'dwconv_s8': (124.702, 315.97, 11888),  # n=6, max err 5%
        'eltwise_s8': (1090.0, 0.0, 0),  # n=1, max err 0%
        'fc_f32': (307.407, 268.31, 1684),  # n=4, max err 1%
        'fc_s8': (13.95, 891.88, 1099),  # n=12, max err 3%
        'lstm_s8': (72.351, 12356.2, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (8.616, 0.0, 4),  # n=24, max err 70%
        'pool_s8': (38.769, 1250.66, 0),  # n=2, max err 0%
        'softmax_f32': (5861.709, 0.0, 0),  # n=2, max err 4%
        'softmax_s8': (5990.829, 0.0, 6767),  # n=4, max err 46%
    },
    'rv32': {
        'conv_f32': (137.792, 495.05, 1001401),  # n=23, max err 18%
        'conv_s8': (2.922, 34.42, 12384),  # n=33, max err 27%
        'dwconv_f32': (138.715, 0.0, 0),  # n=13, max err 35%
        'dwconv_s8': (6.802, 0.0, 3974),  # n=21, max err 43%
        'eltwise_f32': (161.084, 0.0, 0),  # n=3, max err 1%
        'eltwise_s8': (55.59, 0.0, 57),  # n=4, max err 0%
        'fc_f32': (150.358, 354.33, 0),  # n=12, max err 18%
        'fc_s8': (3.586, 58.98, 926),  # n=14, max err 24%
        'lstm_s8': (4.643, 787.3, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (6.045, 0.0, 59),  # n=24, max err 21%
        'pool_f32': (72.803, 197.81, 0),  # n=2, max err 0%
        'pool_s8': (7.576, 41.44, 0),  # n=3, max err 6%
        'softmax_f32': (3437.379, 0.0, 0),  # n=2, max err 26%
        'softmax_s8': (299.052, 0.0, 404),  # n=4, max err 38%
    },
    # RV32's figures before its own int8 paths (TML_RV32), the portable C kernels: for the cores
    # that borrow RV32's tables but not that code (Xtensa, ESP8266, RV64)
    'rv32_portable': {
        'conv_f32': (137.792, 495.05, 1001401),  # n=23, max err 18%
        'conv_s8': (4.409, 35.46, 14449),  # n=33, max err 25%
        'dwconv_f32': (138.715, 0.0, 0),  # n=13, max err 35%
        'dwconv_s8': (15.186, 39.27, 214),  # n=21, max err 20%
        'eltwise_f32': (161.084, 0.0, 0),  # n=3, max err 1%
        'eltwise_s8': (55.59, 0.0, 57),  # n=4, max err 0%
        'fc_f32': (150.358, 354.33, 0),  # n=12, max err 18%
        'fc_s8': (4.71, 55.98, 710),  # n=14, max err 14%
        'lstm_s8': (4.643, 787.3, 0),  # n=2 (int8 LSTMs, 80 and 980 outputs), measured apart
        'move_s8': (6.045, 0.0, 59),  # n=24, max err 21%
        'pool_f32': (72.803, 197.81, 0),  # n=2, max err 0%
        'pool_s8': (7.576, 41.44, 0),  # n=3, max err 6%
        'softmax_f32': (3437.379, 0.0, 0),  # n=2, max err 26%
        'softmax_s8': (299.052, 0.0, 404),  # n=4, max err 38%
    },
}
FALLBACK = {
    "conv_f32": "fc_f32", "dwconv_f32": "conv_f32", "pool_f32": "eltwise_f32",
    "softmax_f32": "eltwise_f32", "eltwise_f32": "quant_f32", "quant_f32": "eltwise_s8",
    "dwconv_s8": "conv_s8", "conv_s8": "fc_s8", "pool_s8": "eltwise_s8",
    "softmax_s8": "eltwise_s8", "eltwise_s8": "pool_s8", "fc_f32": "fc_s8",
    "move_f32": "move_s8", "move_s8": "eltwise_s8", "lstm_s8": "fc_s8",
}
# ISAs whose measurements had hardware float / soft float: float kernels on a core
# with the other kind borrow the f32 rows of SOFT_FLOAT_ISA / HARD_FLOAT_ISA.
HARD_FLOAT = {"armv7em", "armv81m"}
SOFT_FLOAT_ISA = "armv7m"
HARD_FLOAT_ISA = "armv7em"

# Cycles per instruction (not measured: see the module docstring).
CPI = {
    "cortex-m0": 1.5, "cortex-m0plus": 1.4, "cortex-m1": 1.5, "cortex-m23": 1.4,
    "cortex-m3": 1.3, "cortex-m4": 1.3, "cortex-m7": 0.8, "cortex-m33": 1.25,
    "cortex-m35p": 1.25, "cortex-m55": 1.0, "cortex-m85": 0.8,
    "arm1176jzf-s": 1.2, "cortex-a7": 1.0, "cortex-a53": 0.9, "cortex-a72": 0.6,
    "avr": 1.0, "msp430": 1.0, "esp8266": 1.2, "xtensa-lx6": 1.1, "xtensa-lx7": 1.1,
    "rv32imc": 1.3, "rv32imac": 1.3, "rv32imafc": 1.2, "rv64gc": 1.0,
}

# Cycles per instruction of each kernel family on the cores the cycle model prices (Cortex-M4
# and M0+, zero wait states), measured on the MLPerf Tiny models and a wake-word model:
# benchmarks/cgen_latency_calibrate.py --cpi. "f32": every float kernel (with its libgcc/libm
# calls). Other families and cores take CPI[core].
CPI_KERNEL: dict[str, dict[str, float]] = {
    'cortex-m4': {'conv_s8': 1.455, 'dwconv_s8': 1.302, 'fc_s8': 1.178, 'pool_s8': 1.49, 'eltwise_s8': 1.25,
                  'move_s8': 1.332, 'f32': 1.928},
    'cortex-m0plus': {'conv_s8': 1.344, 'dwconv_s8': 1.428, 'fc_s8': 1.389, 'pool_s8': 1.334, 'eltwise_s8': 1.243,
                      'move_s8': 1.336, 'f32': 1.348},
}

# (measured ISA, extra factor) per core; Armv7E-M/v8-M cores without DSP use armv7m (isa_of).
ISA_OF: dict[str, tuple[str, float]] = {
    "cortex-m0": ("armv6m", 1.0), "cortex-m0plus": ("armv6m", 1.0), "cortex-m1": ("armv6m", 1.0),
    "cortex-m23": ("armv6m", 1.0),
    "cortex-m3": ("armv7m", 1.0), "cortex-m4": ("armv7em", 1.0), "cortex-m7": ("armv7em", 1.0),
    "cortex-m33": ("armv7em", 1.0), "cortex-m35p": ("armv7em", 1.0),
    "cortex-m55": ("armv81m", 1.0), "cortex-m85": ("armv81m", 1.0),
    "arm1176jzf-s": ("armv7em", 0.7), "cortex-a7": ("armv7em", 0.5), "cortex-a53": ("armv7em", 0.5),
    "cortex-a72": ("armv7em", 0.5),
    "avr": ("avr", 1.0), "msp430": ("avr", 0.6),
    "esp8266": ("rv32_portable", 1.0), "xtensa-lx6": ("rv32_portable", 1.0), "xtensa-lx7": ("rv32_portable", 1.0),
    "rv32imc": ("rv32", 1.0), "rv32imac": ("rv32", 1.0), "rv32imafc": ("rv32", 1.0),
    "rv64gc": ("rv32_portable", 0.9),
}


@dataclass(frozen=True)
class LatencyEstimate:
    cycles: int
    isa: str                       # the measured table used
    by_kernel: dict[str, int]      # cycles per kernel family


def isa_of(device: DeviceProfile) -> tuple[str, float]:
    """The measured instruction table that stands for ``device``'s core, and a factor."""
    isa, factor = ISA_OF.get(device.core, ("armv7m" if device.arch == "arm" else "rv32", 1.0))
    if isa == "armv7em" and device.arch == "arm" and not device.dsp:
        isa = "armv7m"               # Armv8-M Mainline without the DSP extension, M4 without DSP
    return isa, factor


def _row(isa: str, kernel: str, fpu: bool) -> tuple[float, float, float] | None:
    if kernel.endswith("_f32") and isa != "avr":
        if fpu and isa not in HARD_FLOAT:
            isa = HARD_FLOAT_ISA if isa.startswith("armv") or isa.startswith("rv32") else isa
        elif not fpu and isa in HARD_FLOAT:
            isa = SOFT_FLOAT_ISA
    table = IPW.get(isa, {})
    seen = set()
    while kernel not in table and kernel in FALLBACK and kernel not in seen:
        seen.add(kernel)
        kernel = FALLBACK[kernel]
    return table.get(kernel)


def estimate_cycles(g: Graph, device: DeviceProfile) -> LatencyEstimate | None:
    """Cycles of one inference of ``g`` as cgen generates it, on ``device`` (estimate)."""
    isa, factor = isa_of(device)
    if isa not in IPW:
        return None
    cpi = CPI.get(device.core, 1.3) * factor
    measured_cpi = CPI_KERNEL.get(device.core, {})
    by_kernel: dict[str, int] = {}
    total = 0.0
    for kernel, (work, outs, n_ops) in work_by_kernel(g).items():
        if kernel.startswith("reshape"):
            continue
        row = _row(isa, kernel, device.has_fpu)
        if row is None:
            return None
        a, c, b = row
        k_cpi = measured_cpi.get("f32" if kernel.endswith("_f32") else kernel, cpi / factor) * factor
        cyc = (a * work + c * outs + b * n_ops) * k_cpi
        by_kernel[kernel] = round(cyc)
        total += cyc
    return LatencyEstimate(cycles=round(total), isa=isa, by_kernel=by_kernel)
