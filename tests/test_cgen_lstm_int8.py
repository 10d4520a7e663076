"""int8 UNIDIRECTIONAL_SEQUENCE_LSTM (cgen/lower_rnn.py, runtime/tml_lstm_s8.c), byte for byte
against TensorFlow Lite Micro.

The models are Keras LSTM layers (units 6..20, sequences 10..49, features 4..10,
return_sequences both, stacked with a Dense head) written as the fused op (test_cgen_lstm's
writer: Keras 3's converter gives a WHILE loop instead), then quantized by the converter's own
post-training path, the one ``TFLiteConverter`` with a representative dataset and int8
input/output runs on a float model (``_quantize``: intermediate tensors added, calibration,
the MLIR quantizer): int8 input, output and hidden state, int16 cell state, int8 per-tensor
weights, int32 biases. Every output of the generated C equals TFLite Micro's (the reference
interpreter, the golden), over a stream of inputs with the state carried between calls as
TFLite Micro carries its variable tensors, then after a reset.
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.ir import DType, OpKind
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.reference import TFLMReference
from test_cgen_lstm import _int8_lstm, fused_tflite, keras_model, require_machine

pytest.importorskip("tflite_micro")

# name -> (seq, features, [(units, return_sequences)], dense units, cell clip)
MODELS = {
    "u8_s10_f4_seq": (10, 4, [(8, True)], 0, 0.0),
    "u8_s10_f4_last": (10, 4, [(8, False)], 0, 0.0),
    "u20_s49_f10_last": (49, 10, [(20, False)], 0, 0.0),
    "u20_s16_f6_seq_clip": (16, 6, [(20, True)], 0, 0.5),
    "stacked_u12_u6_dense": (12, 5, [(12, True), (6, False)], 3, 0.0),
}


def quantize_int8(float_tflite: bytes, shape, seed: int = 0) -> bytes:
    """``float_tflite`` quantized as TFLiteConverter quantizes a model (full int8, int8 I/O)."""
    tf = modelgen._tf()
    from tensorflow.lite.python.convert import mlir_quantize
    from tensorflow.lite.python.optimize import calibrator

    def dataset():
        rng = np.random.default_rng(seed)
        for _ in range(32):
            yield [rng.standard_normal(shape).astype(np.float32)]

    cal = calibrator.Calibrator(calibrator.add_intermediate_tensors(float_tflite))
    return mlir_quantize(cal.calibrate(dataset), False, input_data_type=tf.int8, output_data_type=tf.int8)


def _path(tmp_path_factory, name: str):
    root = tmp_path_factory.getbasetemp() / "lstm_int8_models"
    root.mkdir(exist_ok=True)
    path = root / f"{name}.tflite"
    if not path.exists():
        seq, feat, layers, dense, clip = MODELS[name]
        model = keras_model(seq, feat, layers, dense, seed=len(name))
        path.write_bytes(quantize_int8(fused_tflite(model, cell_clip=clip), (1, seq, feat)))
    return path


def _inputs(g, n: int, seed: int):
    """``n`` int8 inputs: half the input's quantized standard normal, half uniform over int8."""
    x = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 2:
            out.append(rng.integers(-128, 128, x.shape).astype(np.int8))
        else:
            q = np.round(rng.standard_normal(x.shape) / x.quant.s) + x.quant.zp
            out.append(np.clip(q, -128, 127).astype(np.int8))
    return out


def _assert_stream_exact(path, g, tmp_path, n: int = 6, seed: int = 0):
    """The generated C (host build) and TFLite Micro over the same stream, then after a reset."""
    from platformio_tinyml.verify.host import build_host
    host = build_host(generate(g, "m"), g, tmp_path)
    ref = TFLMReference(path)
    xs = _inputs(g, n, seed)
    for k, x in enumerate(xs):
        ours, theirs = host.run([x]), ref.run([x], reset=k == 0)
        for a, b in zip(ours, theirs):
            assert a.dtype == np.int8 and np.array_equal(a.reshape(b.shape), b), f"sample {k}: {a} vs {b}"
    host.reset()
    assert np.array_equal(host.run([xs[0]])[0].reshape(-1), ref.run([xs[0]], reset=True)[0].reshape(-1))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_int8_lstm_is_bit_exact(name, tmp_path_factory, tmp_path):
    path = _path(tmp_path_factory, name)
    g = load_tflite(path)
    lstms = [op for op in g.ops if op.kind is OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM]
    assert lstms and all(g.tensors[op.inputs[0]].dtype is DType.INT8 and g.tensors[op.inputs[14]].dtype is DType.INT16
                         for op in lstms)
    _assert_stream_exact(path, g, tmp_path)


def test_stateful_stream_carries_the_state(tmp_path_factory, tmp_path):
    """The same sample three times: the state carries over (the outputs change) on both sides."""
    from platformio_tinyml.verify.host import build_host
    path = _path(tmp_path_factory, "u8_s10_f4_last")
    g = load_tflite(path)
    gen = generate(g, "m")
    assert gen.state_bytes >= 8 + 2 * 8   # int8 h and int16 c
    host = build_host(gen, g, tmp_path)
    ref = TFLMReference(path)
    x = _inputs(g, 1, 5)[0]
    ours = [host.run([x])[0] for _ in range(3)]
    theirs = [ref.run([x], reset=k == 0)[0] for k in range(3)]
    assert not np.array_equal(theirs[0], theirs[1])
    for a, b in zip(ours, theirs):
        assert np.array_equal(a.reshape(b.shape), b)


def test_quantized_model_is_the_keras_layer(tmp_path_factory):
    """The quantized model computes the Keras layer (within int8 and Q3.12 gate rounding, which
    add up over the steps): the models tested above are what a user's converted LSTM is."""
    seq, feat, layers, dense, _ = MODELS["u8_s10_f4_seq"]
    model = keras_model(seq, feat, layers, dense, seed=len("u8_s10_f4_seq"))
    path = _path(tmp_path_factory, "u8_s10_f4_seq")
    g = load_tflite(path)
    xq, yq = g.tensors[g.inputs[0]].quant, g.tensors[g.outputs[0]].quant
    xi = _inputs(g, 1, 7)[0]
    want = np.asarray(model((xi.astype(np.float32) - xq.zp) * xq.s))
    got = (TFLMReference(path).run([xi])[0].astype(np.float32) - yq.zp) * yq.s
    err = np.abs(got - want)
    assert err.mean() <= 0.01 and err.max() <= 0.1, (err.mean(), err.max())   # outputs in (-1, 1)


def test_non_power_of_two_cell_scale_and_clip(tmp_path):
    """A cell scale that is not a power of two (TFLite Micro's tanh takes its rounded log2,
    the multiplies the scale itself), saturating weights and a cell clip."""
    for clip in (0.0, 0.3):
        path = _int8_lstm(tmp_path, hybrid=False, cell_clip=clip)
        _assert_stream_exact(path, load_tflite(path), tmp_path / f"c{clip}", n=4, seed=3)


def _random_int8_lstm(path, seed: int):
    """A seeded random full-integer LSTM as TFLite lays one out: batch 1-3, either major, 1-12
    steps, 1-9 features, 1-12 units, random scales and zero points, a cell scale that is a power
    of two from 2^-9 to 2^-15 or not one, biases up to saturating gates, a cell clip or none."""
    from test_cgen_lstm import _Writer
    rng = np.random.default_rng(200 + seed)
    batch, seq, feat, units = (int(rng.integers(lo, hi)) for lo, hi in ((1, 4), (1, 13), (1, 10), (1, 13)))
    time_major = bool(rng.random() < 0.4)
    B = _Writer().B
    q = lambda s, zp=0: ([float(s)], [int(zp)], 0)
    shape = (seq, batch, feat) if time_major else (batch, seq, feat)
    x = B.tensor(shape, "int8", q(10 ** rng.uniform(-2.5, -0.5), rng.integers(-128, 128)), name="x")
    weights = [B.tensor((units, n), "int8", q(10 ** rng.uniform(-3, -1)),
                        data=rng.integers(-127, 128, (units, n)).astype(np.int8))
               for n in [feat] * 4 + [units] * 4]
    biases = [B.tensor((units,), "int32", q(1e-5), data=rng.integers(-2 ** int(rng.integers(8, 20)),
                                                                     2 ** 19, units).astype(np.int32))
              for _ in range(4)]
    cell_scale = 2.0 ** -int(rng.integers(9, 16)) * (1.0 if rng.random() < 0.7 else rng.uniform(0.75, 1.4))
    hq = q(10 ** rng.uniform(-2.5, -1.5), rng.integers(-20, 21))
    h = B.tensor((batch, units), "int8", hq, name="h")
    c = B.tensor((batch, units), "int8", q(cell_scale), name="c")
    B.tensors[c].type = B.S.TensorType.INT16   # the builder writes no int16; c has no data
    for t in (h, c):
        B.tensors[t].isVariable = True
    ins = [x, *weights, -1, -1, -1, *biases, -1, -1, h, c, -1, -1, -1, -1]
    y = B.tensor(shape[:2] + (units,), "int8", hq)
    clip = float(rng.choice([0.0, rng.uniform(0.05, 2.0)]))
    B.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], B.options(
        "UnidirectionalSequenceLSTMOptions", fusedActivationFunction=B.S.ActivationFunctionType.TANH,
        cellClip=clip, timeMajor=time_major))
    path.write_bytes(B.finish([x], [y]))
    return path


@pytest.mark.parametrize("seed", range(10))
def test_random_int8_lstms(seed, tmp_path):
    path = _random_int8_lstm(tmp_path / "lstm.tflite", seed)
    _assert_stream_exact(path, load_tflite(path), tmp_path / "b", n=4, seed=seed)


@pytest.mark.parametrize("what,kw", [
    ("asymmetric (non-zero zero point) LSTM weights", dict(weight_zp=3)),
    ("peephole connections are not supported", dict(extra={9: lambda B: B.tensor(
        (4,), "int8", ([0.01], [0], 0), data=np.ones(4, np.int8))})),
])
def test_int8_variants_are_refused_in_one_line(what, kw, tmp_path):
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(_int8_lstm(tmp_path, hybrid=False, **kw)), "m")
    msg = str(e.value)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in msg and f"({what}" in msg and "\n" not in msg, msg


def test_sigmoid_table_is_the_formula():
    """tml_lstm_s8.c's LUT is quant.sigmoid_lut_q16(), entry for entry (the kernel tests above
    show that this is the table TFLite Micro's integer LSTM interpolates)."""
    import re
    from platformio_tinyml.compilers.cgen.emit import runtime_text
    from platformio_tinyml.compilers.cgen.quant import sigmoid_lut_q16
    text = runtime_text("tml_lstm_s8.c")
    body = text[text.index("tml_sig_lut[256] TML_CONST = {"):]
    body = body[body.index("{") + 1:body.index("}")]
    assert [int(v) for v in re.findall(r"\d+", body)] == sigmoid_lut_q16()
    table = sigmoid_lut_q16()
    assert len(table) == 256 and table[0] == 32768 and table[-1] == 65535 and table == sorted(table)


# ---- other cores -------------------------------------------------------------------------------

def test_cross_compile_warning_free(tmp_path_factory, tmp_path):
    """tml_lstm_s8.c builds with -Wall -Wextra -Werror for Cortex-M0+, Cortex-M4F, RV32 and AVR
    (16-bit int, the weights and the LUT in PROGMEM)."""
    import shutil
    from platformio_tinyml.compilers.cgen import write_output
    from platformio_tinyml.emu import compile_only
    from test_cgen_lstm import CROSS
    if not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "riscv64-unknown-elf-gcc", "avr-gcc")):
        pytest.skip("cross toolchains not installed")
    src = tmp_path / "src"
    files = write_output(generate(load_tflite(_path(tmp_path_factory, "stacked_u12_u6_dense")), "m"), src)
    assert any(p.name == "tml_lstm_s8.c" for p in files)
    for core, fpu in CROSS:
        objs = compile_only([p for p in files if p.suffix == ".c"], [src], core, fpu, out_dir=tmp_path / core)
        assert objs and all(o.is_file() for o in objs)


@pytest.mark.parametrize("machine", ["atmega2560", "riscv32-virt", "mps2-an386"])
def test_stream_on_emulated_targets(machine, tmp_path_factory, tmp_path):
    """Three samples streamed (the state carried) on AVR in simavr, RV32 and Cortex-M4F in QEMU:
    the same bytes as TFLite Micro on the host."""
    from platformio_tinyml.verify.firmware import run_model
    require_machine(machine)
    path = _path(tmp_path_factory, "u8_s10_f4_last")
    g = load_tflite(path)
    samples = [[x] for x in _inputs(g, 3, 11)]
    r = run_model(generate(g, "m"), g, samples, tmp_path, machine, opt="-Os", timeout=120)
    ref = TFLMReference(path)
    for k, (s, ours) in enumerate(zip(samples, r.outputs)):
        want = ref.run(s, reset=k == 0)[0].reshape(-1)
        assert np.array_equal(np.asarray(ours[0]).reshape(-1).astype(np.int8), want), f"{machine} sample {k}"
    print(f"{machine}: instructions per invoke {r.instructions}")


def test_estimates(tmp_path_factory):
    """The int8 LSTM is priced as its own kernel (the gates' MACs, plus per output element its
    integer activations), on every ISA, and the flash estimate knows tml_lstm_s8.c."""
    from platformio_tinyml.compilers.cgen.latency import IPW, estimate_cycles, kernel_of, op_work
    from platformio_tinyml.compilers.cgen.sizes import KERNEL_BYTES
    from platformio_tinyml.device import load_profile
    g = load_tflite(_path(tmp_path_factory, "u20_s49_f10_last"))
    lstm = next(op for op in g.ops if op.kind is OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM)
    assert kernel_of(g, lstm) == "lstm_s8" and op_work(g, lstm) == 49 * 20 * 4 * (10 + 20)
    assert all("lstm_s8" in IPW[isa] and "lstm_s8" in KERNEL_BYTES[isa] for isa in KERNEL_BYTES)
    est = estimate_cycles(g, load_profile("nucleo_f446re"))
    assert est is not None and est.by_kernel["lstm_s8"] > 49 * 20 * 4 * 30 * 5
    assert "tml_lstm_s8.c" in generate(g, "m").runtime_files
