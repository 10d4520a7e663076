#!/usr/bin/env python3
"""AVR cycles per MAC of cgen's int8 layers (simavr, ATmega2560 at 16 MHz).

    .venv/bin/python benchmarks/avr_bench.py [--layers fc256x64,conv3x3_16to16,...] [--out bench-out]

Single-layer int8 Keras models (converted with TFLiteConverter and a representative
dataset, as users make them) that fit the ATmega2560's 8 KiB of RAM, compiled by cgen,
built at -Os (the default build) and run once in simavr. The count is simavr's cycle
counter around ``<model>_invoke`` (the harness's board_instructions()); MACs are the
layer's multiply-accumulates (``latency.op_work``). Each output is checked against the
TensorFlow Lite Micro interpreter (bit-exact). Writes <out>/avr_bench.json.
About 1 minute (needs avr-gcc, simavr, tflite-micro, tensorflow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from modelgen import _inp, _model, _seed, _tf, convert  # noqa: E402

from platformio_tinyml.compilers.cgen import generate  # noqa: E402
from platformio_tinyml.compilers.cgen.latency import op_work  # noqa: E402
from platformio_tinyml.ir import OpKind  # noqa: E402
from platformio_tinyml.model.tflite import load_tflite  # noqa: E402
from platformio_tinyml.verify.firmware import run_model  # noqa: E402
from platformio_tinyml.verify.reference import TFLMReference  # noqa: E402

# name -> (input shape, layer); dense and conv layers, then a depthwise one for comparison
LAYERS = {
    "fc256x64": ((256,), lambda L, x: L.Dense(64)(x)),
    "fc100x10": ((100,), lambda L, x: L.Dense(10, activation="relu")(x)),
    "conv3x3_16to16": ((10, 10, 16), lambda L, x: L.Conv2D(16, 3, padding="same", activation="relu")(x)),
    "conv3x3_valid_16to16": ((10, 10, 16), lambda L, x: L.Conv2D(16, 3, padding="valid")(x)),
    "conv1x1_64to32": ((6, 6, 64), lambda L, x: L.Conv2D(32, 1)(x)),
    "conv3x3_8to16": ((12, 12, 8), lambda L, x: L.Conv2D(16, 3, padding="same", activation="relu")(x)),
    "conv1x1_16to24": ((8, 8, 16), lambda L, x: L.Conv2D(24, 1)(x)),
    "conv3x3_s2_3to8": ((16, 16, 3), lambda L, x: L.Conv2D(8, 3, strides=2, padding="same")(x)),
    "dw3x3_16": ((10, 10, 16), lambda L, x: L.DepthwiseConv2D(3, padding="same")(x)),
}
MAC_OPS = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)


def bench(name: str, work: Path) -> dict:
    shape, layer = LAYERS[name]
    _seed(1)
    x = _inp(shape)
    path = work / f"{name}.tflite"
    path.write_bytes(convert(_model(x, layer(_tf().keras.layers, x)), int8=True))
    g = load_tflite(path)
    gen = generate(g, "m")
    macs = sum(op_work(g, op) for op in g.ops if op.kind in MAC_OPS)
    inp = np.random.default_rng(0).integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
    golden = TFLMReference(path).run([inp])[0]
    r = run_model(gen, g, [[inp]], work / name, "atmega2560", opt="-Os", timeout=300)
    exact = bool(np.array_equal(np.asarray(r.outputs[0][0]).reshape(-1), golden.reshape(-1)))
    return {"layer": name, "macs": macs, "cycles": r.instructions[0], "cycles_per_mac": r.instructions[0] / macs,
            "outputs": int(golden.size), "exact": exact}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tml-avr-") as tmp:
        rows = [bench(n, Path(tmp)) for n in args.layers.split(",")]
    print(f"{'layer':<22} {'MACs':>8} {'outputs':>8} {'cycles':>11} {'cycles/MAC':>10}  TFLM")
    for r in rows:
        print(f"{r['layer']:<22} {r['macs']:>8,} {r['outputs']:>8,} {r['cycles']:>11,} {r['cycles_per_mac']:>10.1f}  "
              f"{'exact' if r['exact'] else 'DIFFERS'}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "avr_bench.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
