"""Build the fuzzer's second seed set, ``tests/fuzz_corpus/seeds_ops/``: models carrying the
operators the first set (``tests/fuzz_corpus/seeds``, convolution/pooling/dense/element-wise
CNN pieces) lacks, so that ``benchmarks/fuzz.py --seed-set ops`` mutates them too.

    .venv/bin/python benchmarks/fuzz_seeds_ops.py [--start 500000] [--limit 4000]

The set is written once and committed (a seeded fuzz run must mutate the same bytes whatever
the generators produce later); rerun this only to change the set, then rerun the fuzz. It holds

* models of ``benchmarks/difftest.py`` (its seeds, from ``--start`` upwards), picked greedily
  until every (operator, format) pair of :data:`TFLITE_OPS` x {int8, float32} and
  :data:`ONNX_OPS` is covered where the generator draws it;
* Keras ``LayerNormalization`` converted as users convert it (int8 and float32), a Keras LSTM
  written as the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (``tests/test_cgen_lstm.py``), and ONNX
  ``LSTM``, ``LayerNormalization``, ``ConvTranspose`` and ``Gelu`` nodes.

Every model kept compiles with cgen and passes ``check_parity`` against its reference (TensorFlow
Lite Micro or onnxruntime), so the fuzzer's verify stage starts from models that verify.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

OUT = REPO / "tests" / "fuzz_corpus" / "seeds_ops"
TFLITE_OPS = ("TRANSPOSE_CONV", "BATCH_MATMUL", "STRIDED_SLICE", "SLICE", "SPLIT", "GATHER", "TRANSPOSE",
              "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "RESIZE_BILINEAR",
              "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MAX", "REDUCE_MIN", "SUM", "LEAKY_RELU", "HARD_SWISH", "ABS",
              "SUB")
ONNX_OPS = ("Div", "Elu", "Gather", "HardSwish", "LeakyRelu", "Max", "Min", "Neg", "Abs", "ReduceMax",
            "ReduceSum", "Resize", "Slice", "Split", "Sub", "Tile", "Transpose", "DepthToSpace", "MatMul")


def model_ops(path: Path) -> set[str]:
    """Operator names in a .tflite (builtin names) or .onnx (op types) file."""
    if path.suffix == ".onnx":
        import onnx
        return {n.op_type for n in onnx.load(str(path)).graph.node}
    import tflite
    from platformio_tinyml.model.tflite.checks import builtin_code
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    codes = [builtin_code(m.OperatorCodes(i))
             for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    return {names.get(codes[sg.Operators(i).OpcodeIndex()], "?") for i in range(sg.OperatorsLength())}


def verifies(path: Path, work: Path, seed: int = 0) -> bool:
    """cgen compiles ``path`` and its outputs match the reference (difftest's criterion)."""
    from difftest import FLOAT_ABS
    from platformio_tinyml.errors import TinyMLError
    from platformio_tinyml.model.loader import load_model
    from platformio_tinyml.verify.parity import check_parity
    try:
        # a build folder per model: a host library loaded again from one path would be the old one
        report = check_parity(load_model(path), path, samples=3, seed=seed, workdir=work / f"build-{path.stem}",
                              name="seed")
    except TinyMLError as e:
        print(f"  {path.name}: refused ({str(e)[:120]})")
        return False
    ok = all(o.ok or (o.dtype == "float32" and o.max_abs <= FLOAT_ABS) for o in report.outputs)
    print(f"  {path.name}: {'parity' if ok else 'MISMATCH'}")
    return ok


def difftest_seeds(start: int, limit: int, work: Path, out: Path) -> list[str]:
    """Greedy cover of the (operator, format) pairs by difftest models that verify."""
    from difftest import build_model
    want = {(op, f) for op in TFLITE_OPS for f in ("tflite-int8", "tflite-f32")} | {(op, "onnx-f32") for op in ONNX_OPS}
    kept = []
    for seed in range(start, start + limit):
        if not want:
            break
        path, fmt, _ = build_model(seed, work)
        new = {(op, fmt) for op in model_ops(path)} & want
        if new and verifies(path, work, seed):
            want -= new
            name = f"dt{seed}_{fmt.replace('-', '_')}{path.suffix}"
            shutil.copyfile(path, out / name)
            kept.append(name)
        path.unlink()
    if want:
        print(f"not covered within {limit} difftest seeds: {sorted(want)}")
    return kept


def _onnx(path: Path, nodes, shape, inits, opset: int) -> Path:
    import onnx
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    g = h.make_graph(nodes, path.stem, [h.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)],
                     [nh.from_array(np.asarray(v, np.float32), n) for n, v in inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


def handmade(work: Path) -> dict[str, Path]:
    """The Keras and ONNX models of the operators difftest does not generate."""
    from onnx import helper as h
    import modelgen
    from test_cgen_lstm import _onnx_lstm, fused_tflite, keras_model
    rng = np.random.default_rng(7)
    w = lambda *s: (rng.standard_normal(s) * 0.4).astype(np.float32)
    made: dict[str, Path] = {}
    tf = modelgen._tf()
    for dtype in ("int8", "float32"):
        modelgen._seed(0)
        x = tf.keras.Input(shape=(4, 8), batch_size=1)
        y = tf.keras.layers.LayerNormalization()(tf.keras.layers.Dense(8)(x))
        p = work / f"keras_layernorm_{dtype}.tflite"
        p.write_bytes(modelgen.convert(tf.keras.Model(x, y), int8=dtype == "int8"))
        made[p.name] = p
    p = work / "keras_lstm_u8_s5_f3_float32.tflite"
    p.write_bytes(fused_tflite(keras_model(5, 3, [(8, False)], 0)))
    made[p.name] = p
    made["onnx_lstm.onnx"] = _onnx_lstm(work / "onnx_lstm.onnx", outputs=("y", "h"))
    made["onnx_layernorm.onnx"] = _onnx(
        work / "onnx_layernorm.onnx", [h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)],
        (1, 6, 8), [("g", w(8)), ("b", w(8))], 17)
    made["onnx_convtranspose.onnx"] = _onnx(
        work / "onnx_convtranspose.onnx",
        [h.make_node("ConvTranspose", ["x", "wt", "bt"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
         h.make_node("Relu", ["c"], ["y"])], (1, 3, 5, 5), [("wt", w(3, 4, 3, 3)), ("bt", w(4))], 13)
    made["onnx_gelu.onnx"] = _onnx(
        work / "onnx_gelu.onnx", [h.make_node("MatMul", ["x", "m"], ["a"]), h.make_node("Gelu", ["a"], ["y"])],
        (1, 4, 6), [("m", w(6, 5))], 20)
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=500000, help="first difftest seed to consider")
    ap.add_argument("--limit", type=int, default=4000, help="difftest seeds to consider at most")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinyml-seeds-") as tmp:
        work = Path(tmp)
        kept = difftest_seeds(args.start, args.limit, work, args.out)
        for name, path in handmade(work).items():
            if verifies(path, work):
                shutil.copyfile(path, args.out / name)
                kept.append(name)
    print(f"{len(kept)} seeds in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
