"""Latency estimate of cgen-generated code, in CPU cycles, before anything is compiled.

An **estimate**, good for ranking backends, not a measurement. The model:

    instructions(op) = a * work(op) + c * output elements(op) + b    (a, c, b = IPW[isa][kernel])
    cycles           = CPI[core] * sum over ops of instructions(op)

``work(op)`` counts the op's inner-loop steps: multiply-accumulates for
CONV_2D (out elements x kh x kw x cin), DEPTHWISE_CONV_2D (out elements x
kh x kw) and FULLY_CONNECTED (out elements x in features), window reads for
pooling (out elements x fh x fw), input elements for MEAN, for
UNIDIRECTIONAL_SEQUENCE_LSTM (an ``fc`` kernel) batch x steps x units x
(4 x (features + units) + ``LSTM_ACT_WORK``) (the gates' multiply-accumulates,
plus its five expf/tanhf per unit and step counted as that many MACs: fitted on one
LSTM, 8 units x 5 steps x 3 features, whose measured counts on Cortex-M4F and RV32
both give 64, AVR 51), output elements for every element-wise op (ADD, MUL, PAD, activations, quantize, softmax,
concatenation). RESHAPE costs nothing (cgen aliases the buffer).

``IPW`` (instructions per unit of work, per output element, per op) is **measured**:
``benchmarks/cgen_latency_calibrate.py`` cuts each MLPerf Tiny model into
single-op graphs, builds each with cgen at ``-Os`` (PlatformIO's default)
and reads the exact instruction count of one inference from QEMU
(``-icount shift=0``) or, on AVR, the exact cycle count from simavr; a
non-negative least-squares fit per kernel gives the numbers below (on the
single-op graphs it was fitted to: within 2-36 %; the sum over ops of one
model matches the whole-model count to a few %). Measured ISAs:

* ``armv7em`` Cortex-M4F (QEMU mps2-an386): DSP SIMD (SMLAD) int8 paths;
* ``armv7m`` Cortex-M3 (mps2-an385): no DSP, soft float;
* ``armv6m`` Cortex-M0/M0+ (the same code built with ``-mcpu=cortex-m0`` and
  run on mps2-an385, an Armv6-M subset of Armv7-M): Thumb-1, soft float;
* ``armv81m`` Cortex-M55 (mps3-an547);
* ``rv32`` rv32imac (QEMU riscv32-virt): no SIMD, soft float;
* ``avr`` ATmega2560 (simavr): **cycles**, the only exact cycle counts here.

``CPI`` turns instructions into cycles and is **not measured** (QEMU counts
instructions, not cycles). The figures are rough, from the cores' documented
pipelines: Cortex-M3/M4 1.3 (2-cycle loads, 1-3 cycle branch refill, zero
wait-state memory assumed), M0+ 1.4 and M0 1.5 (2-cycle loads and taken
branches, the single-cycle multiplier option), M7 0.8 (dual issue; Arm's
CoreMark/MHz 5.01 vs 3.42 for the M4), M33 1.25, M55 1.0, rv32imac 1.3 (a
simple in-order pipeline such as the E31/ESP32-C3), Xtensa LX6/LX7 1.1,
AVR 1.0 (the table is already in cycles). Cores that were not measured take
the closest measured ISA (``ISA_OF``): Cortex-M7 and M33 with DSP take
``armv7em``, M23 and M0+ take ``armv6m``, ESP32 Xtensa takes ``rv32``
(a 32-bit RISC without int8 SIMD), MSP430 takes ``avr`` x 0.6 (16-bit ALU),
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

# ---- work per op --------------------------------------------------------------

_FLOATS = (DType.FLOAT32,)
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
        OpKind.RESHAPE: "reshape", OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM: "fc",
    }.get(op.kind, "eltwise")
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
        return n_out * (4 * (features + out.shape[-1]) + LSTM_ACT_WORK)
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
# squares over single-op graphs of the MLPerf Tiny models, -Os, the compilers that
# scripts/setup.sh installs). Kernels a model never exercised borrow a neighbour
# (FALLBACK) so that every graph cgen accepts gets a number.

IPW: dict[str, dict[str, tuple[float, float, float]]] = {
    # kernel: (a, c, b),  # ops measured, largest relative error of the fit on them
    'armv6m': {
        'conv_f32': (89.483, 527.23, 0),  # n=14, max err 10%
        'conv_s8': (9.802, 67.21, 0),  # n=28, max err 24%
        'dwconv_f32': (114.237, 0.0, 0),  # n=9, max err 21%
        'dwconv_s8': (25.616, 0.0, 0),  # n=17, max err 2%
        'eltwise_f32': (181.501, 0.0, 0),  # n=2, max err 0%
        'eltwise_s8': (277.666, 0.0, 263),  # n=3, max err 0%
        'fc_f32': (96.03, 144.69, 0),  # n=12, max err 1%
        'fc_s8': (8.29, 87.38, 0),  # n=13, max err 32%
        'pool_f32': (74.134, 366.7, 0),  # n=2, max err 0%
        'pool_s8': (16.599, 69.96, 0),  # n=3, max err 3%
        'softmax_s8': (267.508, 0.0, 1859),  # n=3, max err 17%
    },
    'armv7em': {
        'conv_f32': (6.877, 83.54, 0),  # n=14, max err 10%
        'conv_s8': (2.989, 51.2, 0),  # n=28, max err 36%
        'dwconv_f32': (33.502, 0.0, 0),  # n=9, max err 15%
        'dwconv_s8': (14.004, 0.0, 0),  # n=17, max err 15%
        'eltwise_f32': (37.27, 0.0, 0),  # n=2, max err 0%
        'eltwise_s8': (133.663, 0.0, 7007),  # n=3, max err 0%
        'fc_f32': (7.028, 27.58, 0),  # n=12, max err 2%
        'fc_s8': (2.42, 67.23, 0),  # n=13, max err 35%
        'pool_f32': (10.847, 73.94, 0),  # n=2, max err 0%
        'pool_s8': (12.17, 51.57, 0),  # n=3, max err 3%
        'softmax_s8': (150.412, 0.0, 1079),  # n=3, max err 16%
    },
    'armv7m': {
        'conv_f32': (90.324, 515.4, 0),  # n=14, max err 10%
        'conv_s8': (8.475, 46.48, 0),  # n=28, max err 18%
        'dwconv_f32': (107.916, 0.0, 0),  # n=9, max err 21%
        'dwconv_s8': (13.784, 0.0, 0),  # n=17, max err 14%
        'eltwise_f32': (162.758, 0.0, 0),  # n=2, max err 0%
        'eltwise_s8': (133.663, 0.0, 7007),  # n=3, max err 0%
        'fc_f32': (97.019, 132.72, 0),  # n=12, max err 1%
        'fc_s8': (3.908, 66.57, 0),  # n=13, max err 37%
        'pool_f32': (69.119, 331.99, 0),  # n=2, max err 0%
        'pool_s8': (12.172, 51.39, 0),  # n=3, max err 3%
        'softmax_s8': (150.412, 0.0, 1079),  # n=3, max err 16%
    },
    'armv81m': {
        'conv_f32': (5.933, 80.64, 0),  # n=14, max err 10%
        'conv_s8': (2.99, 55.12, 0),  # n=28, max err 36%
        'dwconv_f32': (36.222, 0.0, 0),  # n=9, max err 15%
        'dwconv_s8': (14.331, 0.0, 0),  # n=17, max err 17%
        'eltwise_f32': (36.319, 0.0, 0),  # n=2, max err 0%
        'eltwise_s8': (130.665, 0.0, 7001),  # n=3, max err 0%
        'fc_f32': (6.031, 26.45, 0),  # n=12, max err 2%
        'fc_s8': (2.358, 79.36, 0),  # n=13, max err 33%
        'pool_f32': (16.571, 91.35, 0),  # n=2, max err 0%
        'pool_s8': (19.016, 61.65, 0),  # n=3, max err 3%
        'softmax_s8': (155.488, 0.0, 1116),  # n=3, max err 16%
    },
    'avr': {
        'conv_s8': (104.391, 0.0, 0),  # n=1, max err 0%
        'dwconv_s8': (208.129, 0.0, 0),  # n=2, max err 3%
        'fc_f32': (311.832, 277.52, 0),  # n=4, max err 1%
        'fc_s8': (85.914, 824.71, 0),  # n=11, max err 7%
        'pool_s8': (166.879, 995.82, 0),  # n=2, max err 0%
        'softmax_f32': (5861.709, 0.0, 0),  # n=2, max err 4%
        'softmax_s8': (3957.839, 0.0, 29148),  # n=3, max err 19%
    },
    'rv32': {
        'conv_f32': (195.052, 809.67, 0),  # n=14, max err 13%
        'conv_s8': (6.153, 40.4, 0),  # n=28, max err 23%
        'dwconv_f32': (190.938, 0.0, 0),  # n=9, max err 25%
        'dwconv_s8': (24.716, 0.0, 0),  # n=17, max err 11%
        'eltwise_f32': (163.222, 0.0, 0),  # n=2, max err 0%
        'eltwise_s8': (187.216, 0.0, 6232),  # n=3, max err 0%
        'fc_f32': (193.466, 151.92, 0),  # n=12, max err 1%
        'fc_s8': (5.476, 71.3, 0),  # n=13, max err 40%
        'pool_f32': (92.889, 233.32, 0),  # n=2, max err 0%
        'pool_s8': (10.737, 35.46, 0),  # n=3, max err 2%
        'softmax_f32': (3014.474, 0.0, 0),  # n=2, max err 35%
        'softmax_s8': (168.222, 0.0, 1292),  # n=3, max err 16%
    },
}
FALLBACK = {
    "conv_f32": "fc_f32", "dwconv_f32": "conv_f32", "pool_f32": "eltwise_f32",
    "softmax_f32": "eltwise_f32", "eltwise_f32": "quant_f32", "quant_f32": "eltwise_s8",
    "dwconv_s8": "conv_s8", "conv_s8": "fc_s8", "pool_s8": "eltwise_s8",
    "softmax_s8": "eltwise_s8", "eltwise_s8": "pool_s8", "fc_f32": "fc_s8",
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
    "esp8266": ("rv32", 1.0), "xtensa-lx6": ("rv32", 1.0), "xtensa-lx7": ("rv32", 1.0),
    "rv32imc": ("rv32", 1.0), "rv32imac": ("rv32", 1.0), "rv32imafc": ("rv32", 1.0),
    "rv64gc": ("rv32", 0.9),
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
            isa = HARD_FLOAT_ISA if isa.startswith("armv") or isa == "rv32" else isa
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
    by_kernel: dict[str, int] = {}
    total = 0.0
    for kernel, (work, outs, n_ops) in work_by_kernel(g).items():
        if kernel.startswith("reshape"):
            continue
        row = _row(isa, kernel, device.has_fpu)
        if row is None:
            return None
        a, c, b = row
        cyc = (a * work + c * outs + b * n_ops) * cpi
        by_kernel[kernel] = round(cyc)
        total += cyc
    return LatencyEstimate(cycles=round(total), isa=isa, by_kernel=by_kernel)
