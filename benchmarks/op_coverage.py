"""Operator coverage: TFLite Micro's op resolver against what our import and cgen take.

    .venv/bin/python benchmarks/op_coverage.py [--markdown]

TFLite Micro's registered builtin operators are read from the installed tflite-micro wheel
itself (the ``Register_<OP>()`` functions its interpreter library defines, listed by ``nm``),
not from a list of ours; custom and signal-library kernels (FFT, filter banks, ...) and
``ETHOSU`` are left out. For each builtin, the row says how our TFLite reader carries it
(an IR kind, a graph pass, the variable prologue, an opaque op, or refused at import) and
whether cgen has an int8 and a float32 kernel for it: ``yes`` where a lowering exists (its
check may still refuse some parameters in one line, as the op's tests show), ``pass`` where
a graph pass removes it before any backend. An opaque op (no IR kind) that cgen computes
(``cgen/lower_more.py``) counts as both where its types are neither int8 nor float32 (CAST,
REDUCE_ALL on bool: either model has them). The tflm backend takes every op of the resolver
on a 32-bit core; the tvm backend compiles the file with TVM's own importer.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# TFLite Micro's kernels that are not TFLite builtins (the signal library, the NPU op, ...)
_NOT_BUILTIN = {"BASIC_CLASSIFIER", "DECODE", "DELAY", "ENERGY", "ETHOSU", "FFT_AUTO_SCALE", "FILTER_BANK",
                "FILTER_BANK_LOG", "FILTER_BANK_SPECTRAL_SUBTRACTION", "FILTER_BANK_SQUARE_ROOT", "FRAMER",
                "IRFFT", "IRFFT_FLOAT", "IRFFT_INT16", "IRFFT_INT32", "L2NORM_REF", "OVERLAP_ADD",
                "OVERLAP_ADD_FLOAT", "OVERLAP_ADD_INT16", "PCAN", "RFFT", "RFFT_FLOAT", "RFFT_INT16", "RFFT_INT32",
                "STACKER", "WINDOW"}
_PROLOGUE = {"VAR_HANDLE", "CALL_ONCE"}       # model/tflite/variables.py: a static state buffer
_REFUSED = {"WHILE": "control flow (one line: give the .keras file, or unroll)",
            "IF": "control flow (subgraphs are not carried in the IR)"}


def tflm_builtins() -> list[str]:
    import tflite_micro
    lib = next(Path(tflite_micro.__file__).parent.rglob("_runtime*.so"))
    nm = shutil.which("nm")
    if nm is None:
        raise SystemExit("needs nm (binutils)")
    syms = subprocess.run([nm, "-C", str(lib)], capture_output=True, text=True, check=True).stdout
    from tflite.BuiltinOperator import BuiltinOperator
    builtins = {n for n in dir(BuiltinOperator) if not n.startswith("_")}
    found = set(re.findall(r"Register_([A-Z][A-Z_0-9]*)\(\)", syms)) - _NOT_BUILTIN
    return sorted(found & builtins)


def rows() -> list[dict]:
    from platformio_tinyml.compilers.cgen.emit import _lowerings
    from platformio_tinyml.compilers.cgen.lower_ew import NO_TFLM_S8, OPAQUE_F32
    from platformio_tinyml.compilers.cgen.lower_more import OPAQUE_DTYPES, OPAQUE_FOLDED
    from platformio_tinyml.ir import DType, OpKind
    from platformio_tinyml.ir.graph import GRAPH_PASS_OPS
    table = _lowerings()
    # lowerings whose check refuses every int8 op, in one line (no TFLite Micro int8 kernel to be
    # exact to, or not implemented in cgen yet)
    refused_s8 = set(NO_TFLM_S8) | {OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM}
    out = []
    for name in tflm_builtins():
        kind = OpKind.__members__.get(name)
        if name in _REFUSED:
            carried, s8, f32 = f"refused: {_REFUSED[name]}", "-", "-"
        elif name in _PROLOGUE:
            carried, s8, f32 = "variable prologue", "yes", "yes"
        elif kind is not None and kind is not OpKind.OPAQUE:
            if kind in GRAPH_PASS_OPS:
                carried, s8, f32 = "IR kind", "pass", "pass"
            elif (kind, DType.BOOL) in table:   # on bool tensors (logic; SELECT_V2's condition): either model
                carried, s8, f32 = "IR kind", "yes", "yes"
            else:
                carried = "IR kind"
                s8 = "yes" if (kind, DType.INT8) in table and kind not in refused_s8 else "no"
                f32 = "yes" if (kind, DType.FLOAT32) in table else "no"
        elif name in OPAQUE_FOLDED:       # a graph pass folds it (constant shapes); never a kernel
            carried, s8, f32 = "opaque", "pass", "pass"
        else:
            carried = "opaque"
            dts = OPAQUE_DTYPES.get(name, ())
            s8 = "yes" if DType.INT8 in dts or (dts and DType.FLOAT32 not in dts) else "no"
            f32 = "yes" if name in OPAQUE_F32 or DType.FLOAT32 in dts or (dts and DType.INT8 not in dts) else "no"
        out.append({"op": name, "carried": carried, "cgen_int8": s8, "cgen_float32": f32})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="a markdown table")
    args = ap.parse_args()
    rs = rows()
    if args.markdown:
        print("| TFLite Micro op | our import | cgen int8 | cgen float32 |\n|---|---|---|---|")
        for r in rs:
            print(f"| `{r['op']}` | {r['carried']} | {r['cgen_int8']} | {r['cgen_float32']} |")
    else:
        for r in rs:
            print(f"{r['op']:<32} {r['carried']:<20} int8 {r['cgen_int8']:<5} float32 {r['cgen_float32']}")
    n = len(rs)
    either = sum(r["cgen_int8"] in ("yes", "pass") or r["cgen_float32"] in ("yes", "pass") for r in rs)
    both = sum(r["cgen_int8"] in ("yes", "pass") and r["cgen_float32"] in ("yes", "pass") for r in rs)
    carried = sum(not r["carried"].startswith("refused") for r in rs)
    print(f"\n{n} builtin operators in TFLite Micro's resolver: {carried} imported (an IR kind, a pass, "
          f"the variable prologue or an opaque op), cgen compiles {either} in int8 or float32, {both} in both")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
