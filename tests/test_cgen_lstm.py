"""UNIDIRECTIONAL_SEQUENCE_LSTM (cgen/lower_rnn.py, runtime/tml_lstm.c) against TensorFlow Lite Micro.

Keras 3 (the Keras TensorFlow 2.16+ installs) converts an ``LSTM`` layer with
``TFLiteConverter.from_keras_model`` to a ``WHILE`` loop, not to the fused op
(only tf_keras' LSTM carries the annotation the converter fuses; our .keras importer
adds it back, tests/test_keras_import.py). So the models
here are Keras LSTM layers (units 4..32, sequences 1..20, features 1..10,
return_sequences both, stacked, with a Dense head) written as the fused op the
converter emits for them: the layer's kernel, recurrent kernel and bias split
by gate (input, forget, cell, output), the state as two is_variable tensors, a
STRIDED_SLICE of the last step when return_sequences is false. Each model is
checked three ways: TFLite Micro on a fresh interpreter equals the Keras layer
(so the written model is the layer), and the generated C runs a stream of
samples next to TFLite Micro (verify.parity: the state is kept between calls
on both sides, as TFLite Micro keeps its variable tensors) within 1e-5 relative.
Hybrid LSTMs and the variants Keras does not produce are refused in one line (int8:
test_cgen_lstm_int8.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import modelgen
from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.ir import OpKind
from platformio_tinyml.model.tflite import load_tflite
from platformio_tinyml.verify.parity import check_parity
from platformio_tinyml.verify.reference import TFLMReference
from test_cgen_ops_ew import _builder

pytest.importorskip("tflite_micro")

TOL = 1e-5


def keras_model(seq: int, feat: int, layers, dense: int = 0, seed: int = 0):
    """A Keras model: LSTM layers ``[(units, return_sequences), ...]`` then an optional Dense head."""
    tf = modelgen._tf()
    modelgen._seed(seed)
    x = tf.keras.Input(shape=(seq, feat), batch_size=1)
    y = x
    for units, rs in layers:
        y = tf.keras.layers.LSTM(units, return_sequences=rs)(y)
    if dense:
        y = tf.keras.layers.Dense(dense)(y)
    return tf.keras.Model(x, y)


class _Writer:
    """Writes a Keras model's layers as the TFLite ops the converter gives them."""

    def __init__(self):
        self.B = _builder()()
        self.S = self.B.S

    def const(self, data, dtype="float32"):
        data = np.asarray(data, dtype)
        return self.B.tensor(data.shape, dtype, data=data)

    def lstm(self, x: int, shape, kernel, recurrent, bias, return_sequences: bool, cell_clip: float = 0.0,
             extra: dict | None = None, time_major: bool = False):
        B = self.B
        seq, batch = (shape[0], shape[1]) if time_major else (shape[1], shape[0])
        units = recurrent.shape[0]
        gates = lambda m: [np.ascontiguousarray(m[:, q * units:(q + 1) * units].T) for q in range(4)]
        ins = [x, *map(self.const, gates(kernel)), *map(self.const, gates(recurrent)), -1, -1, -1,
               *(self.const(bias[q * units:(q + 1) * units]) for q in range(4)), -1, -1]
        for what in ("h", "c"):
            ins.append(B.tensor((batch, units), "float32", name=f"state_{what}{len(B.tensors)}"))
            B.tensors[ins[-1]].isVariable = True
        ins += [-1] * 4
        for k, t in (extra or {}).items():
            ins[k] = t
        y_shape = (seq, batch, units) if time_major else (batch, seq, units)
        y = B.tensor(y_shape, "float32")
        B.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], B.options(
            "UnidirectionalSequenceLSTMOptions", fusedActivationFunction=self.S.ActivationFunctionType.TANH,
            cellClip=cell_clip, timeMajor=time_major))
        if return_sequences:
            return y, y_shape
        last = B.tensor((batch, units), "float32")
        B.op("STRIDED_SLICE", [y, self.const([0, -1, 0], "int32"), self.const([0, 0, 0], "int32"),
                               self.const([1, 1, 1], "int32")], [last],
             B.options("StridedSliceOptions", beginMask=5, endMask=5, shrinkAxisMask=2))
        return last, (batch, units)

    def dense(self, x: int, shape, kernel, bias):
        y = self.B.tensor((shape[0], kernel.shape[1]), "float32")
        self.B.op("FULLY_CONNECTED", [x, self.const(kernel.T), self.const(bias)], [y],
                  self.B.options("FullyConnectedOptions"))
        return y, (shape[0], kernel.shape[1])


def fused_tflite(model, cell_clip: float = 0.0) -> bytes:
    """``model`` (keras_model's) as a .tflite with UNIDIRECTIONAL_SEQUENCE_LSTM ops."""
    w = _Writer()
    shape = tuple(int(d) for d in model.inputs[0].shape)
    x = first = w.B.tensor(shape, "float32", name="x")
    for layer in model.layers[1:]:
        if layer.__class__.__name__ == "LSTM":
            k, r, b = (np.asarray(v, np.float32) for v in layer.get_weights())
            x, shape = w.lstm(x, shape, k, r, b, layer.return_sequences, cell_clip)
        else:
            k, b = (np.asarray(v, np.float32) for v in layer.get_weights())
            x, shape = w.dense(x, shape, k, b)
    return w.B.finish([first], [x])


# name -> (seq, features, [(units, return_sequences)], dense units)
MODELS = {
    "u4_s1_f1_last": (1, 1, [(4, False)], 0),
    "u8_s5_f3_seq": (5, 3, [(8, True)], 0),
    "u8_s5_f3_last": (5, 3, [(8, False)], 0),
    "u16_s20_f10_last": (20, 10, [(16, False)], 0),
    "u32_s12_f6_seq": (12, 6, [(32, True)], 0),
    "stacked_u12_u6": (10, 4, [(12, True), (6, False)], 0),
    "u16_dense_head": (8, 5, [(16, False)], 3),
}


def _path(tmp_path_factory, name: str, **kw):
    root = tmp_path_factory.getbasetemp() / "lstm_models"
    root.mkdir(exist_ok=True)
    path = root / f"{name}{''.join(f'_{k}{v}' for k, v in kw.items())}.tflite"
    if not path.exists():
        seq, feat, layers, dense = MODELS[name]
        model = keras_model(seq, feat, layers, dense)
        path.write_bytes(fused_tflite(model, **kw))
        x = np.random.default_rng(1).standard_normal((1, seq, feat)).astype(np.float32)
        (path.with_suffix(".npz")).write_bytes(b"")
        np.savez(path.with_suffix(".npz"), x=x, y=np.asarray(model(x)))
    return path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_lstm_matches_tflm(name, tmp_path_factory, tmp_path):
    path = _path(tmp_path_factory, name)
    keras = np.load(path.with_suffix(".npz"))
    ref = TFLMReference(path)
    fresh = ref.run([keras["x"]])[0]   # the written model is the Keras layer (a fresh state)
    assert np.abs(fresh - keras["y"]).max() <= 1e-5 * max(1.0, np.abs(keras["y"]).max())
    g = load_tflite(path)
    assert OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM in {op.kind for op in g.ops}
    report = check_parity(g, path, samples=6, workdir=tmp_path)
    for o in report.outputs:
        assert o.max_rel <= TOL, report.table()
    print(f"{name}: {report.table()}")


def test_state_is_kept_between_invokes_as_tflm(tmp_path_factory, tmp_path):
    """TFLite Micro keeps the LSTM's variable state from one invoke to the next (a stateless
    Keras layer included); the generated code does the same, and NAME_reset starts over."""
    from platformio_tinyml.verify.host import build_host
    path = _path(tmp_path_factory, "u8_s5_f3_last")
    g = load_tflite(path)
    gen = generate(g, "m")
    assert gen.state_bytes == 2 * 8 * 4
    host = build_host(gen, g, tmp_path)
    ref = TFLMReference(path)
    x = np.load(path.with_suffix(".npz"))["x"]
    ours = [host.run([x])[0] for _ in range(3)]
    theirs = [ref.run([x], reset=k == 0)[0] for k in range(3)]
    assert not np.allclose(theirs[0], theirs[1])   # the state carried over
    for a, b in zip(ours, theirs):
        assert np.abs(a - b).max() <= TOL * np.abs(b).max()
    host.reset()
    assert np.abs(host.run([x])[0] - theirs[0]).max() <= TOL * np.abs(theirs[0]).max()


@pytest.mark.parametrize("time_major", [False, True])
def test_batch_and_time_major(time_major, tmp_path):
    """Batch 3, batch-major and time-major ([T, B, F]), against TFLite Micro as a stream."""
    model = keras_model(7, 4, [(6, True)], seed=2)
    w = _Writer()
    shape = (7, 3, 4) if time_major else (3, 7, 4)
    x = w.B.tensor(shape, "float32", name="x")
    k, r, b = (np.asarray(v, np.float32) for v in model.layers[1].get_weights())
    y, _ = w.lstm(x, shape, k, r, b, True, time_major=time_major)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(w.B.finish([x], [y]))
    g = load_tflite(path)
    assert next(op for op in g.ops if op.kind is OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM).attrs.time_major is time_major
    report = check_parity(g, path, samples=4, workdir=tmp_path / "b")
    assert all(o.max_rel <= TOL for o in report.outputs), report.table()


@pytest.mark.parametrize("seed", range(8))
def test_random_lstms(seed, tmp_path):
    """Seeded random LSTMs: batch 1-3, either major, 1-12 steps, 1-8 features, 1-12 units, weight
    scales from 0.05 to 5 (saturated gates, cells past the clip), cell clip off or on."""
    rng = np.random.default_rng(100 + seed)
    batch, seq, feat, units = (int(rng.integers(lo, hi)) for lo, hi in ((1, 4), (1, 13), (1, 9), (1, 13)))
    time_major, clip = bool(rng.random() < 0.5), float(rng.choice([0.0, 0.0, rng.uniform(0.1, 3)]))
    scale = float(10 ** rng.uniform(-1.3, 0.7))
    k, r = (scale * rng.standard_normal(s).astype(np.float32) for s in ((feat, 4 * units), (units, 4 * units)))
    b = rng.standard_normal(4 * units).astype(np.float32)
    w = _Writer()
    shape = (seq, batch, feat) if time_major else (batch, seq, feat)
    x = w.B.tensor(shape, "float32", name="x")
    y, _ = w.lstm(x, shape, k, r, b, bool(rng.random() < 0.5) or time_major, cell_clip=clip, time_major=time_major)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(w.B.finish([x], [y]))
    g = load_tflite(path)
    report = check_parity(g, path, samples=4, seed=seed, workdir=tmp_path / "b")
    assert all(o.max_rel <= TOL for o in report.outputs), f"{batch, seq, feat, units, time_major, clip, scale}\n" \
                                                          + report.table()


def test_cell_clip(tmp_path_factory, tmp_path):
    path = _path(tmp_path_factory, "u16_s20_f10_last", cell_clip=0.25)
    g = load_tflite(path)
    report = check_parity(g, path, samples=4, workdir=tmp_path)
    assert report.ok, report.table()


def _variant(tmp_path, extra_of) -> UnsupportedOpError:
    model = keras_model(3, 2, [(4, True)])
    w = _Writer()
    x = w.B.tensor((1, 3, 2), "float32", name="x")
    k, r, b = (np.asarray(v, np.float32) for v in model.layers[1].get_weights())
    y, _ = w.lstm(x, (1, 3, 2), k, r, b, True, extra=extra_of(w))
    path = tmp_path / "variant.tflite"
    path.write_bytes(w.B.finish([x], [y]))
    with pytest.raises(UnsupportedOpError) as e:
        generate(load_tflite(path), "m")
    return e.value


def test_state_that_is_not_a_variable_is_refused(tmp_path):
    def plain_state(w):
        t = w.B.tensor((1, 4), "float32", name="h_in")
        return {18: t}
    e = _variant(tmp_path, plain_state)
    assert "its output state (tensor #" in str(e) and "is not a variable tensor" in str(e)


@pytest.mark.parametrize("what,extra", [
    ("peephole connections are not supported", lambda w: {9: w.const(np.ones(4))}),
    ("a projection layer is not supported", lambda w: {16: w.const(np.ones((4, 4)))}),
    ("layer normalization is not supported", lambda w: {20: w.const(np.ones(4))}),
    ("coupled input and forget gates (CIFG) are not supported", lambda w: {1: -1}),
])
def test_variants_are_refused_in_one_line(what, extra, tmp_path):
    e = _variant(tmp_path, extra)
    msg = str(e)
    assert e.op_name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and f"({what};" in msg and "\n" not in msg, msg


def _int8_lstm(tmp_path, hybrid: bool, extra=None, weight_zp: int = 0, cell_clip: float = 0.0):
    """A quantized LSTM as TFLite writes one: int8 weights; full-integer also int8 input and
    output, int8 hidden and int16 cell state (scale 0.01), int32 biases. ``extra``: {input index:
    function of the builder giving a tensor} (the variants); ``weight_zp``: the weights' zero point."""
    w = _Writer()
    B = w.B
    q = lambda s: ([s], [0], 0)
    act = "float32" if hybrid else "int8"
    x = B.tensor((1, 3, 2), act, None if hybrid else q(0.05), name="x")
    rng = np.random.default_rng(0)
    wt = lambda shape: B.tensor(shape, "int8", ([0.01], [weight_zp], 0),
                                data=rng.integers(-127, 128, shape).astype(np.int8))
    bias = lambda: (B.tensor((4,), "float32", data=np.zeros(4, np.float32)) if hybrid
                    else B.tensor((4,), "int32", q(0.0005), data=np.zeros(4, np.int32)))
    ins = [x, *(wt((4, 2)) for _ in range(4)), *(wt((4, 4)) for _ in range(4)), -1, -1, -1,
           *(bias() for _ in range(4)), -1, -1]
    for dt in (act, "float32" if hybrid else "int8"):
        ins.append(B.tensor((1, 4), dt, None if hybrid else q(0.01)))
        B.tensors[ins[-1]].isVariable = True
    if not hybrid:   # the cell state is int16
        S = B.S
        B.tensors[ins[-1]].type = S.TensorType.INT16
    ins += [-1] * 4
    for k, make in (extra or {}).items():
        ins[k] = make(B)
    y = B.tensor((1, 3, 4), act, None if hybrid else q(0.01))
    B.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], B.options(
        "UnidirectionalSequenceLSTMOptions", fusedActivationFunction=B.S.ActivationFunctionType.TANH,
        cellClip=cell_clip))
    path = tmp_path / f"lstm_{'hybrid' if hybrid else 'int8'}.tflite"
    path.write_bytes(B.finish([x], [y]))
    return path


def test_hybrid_lstm_is_refused_in_one_line(tmp_path):
    """Hybrid (float32 activations, int8 weights) is refused; full-integer int8 compiles
    (tests/test_cgen_lstm_int8.py)."""
    g = load_tflite(_int8_lstm(tmp_path, hybrid=True))
    with pytest.raises(UnsupportedOpError) as e:
        generate(g, "m")
    msg = str(e.value)
    assert "\n" not in msg and ": operator #2 UNIDIRECTIONAL_SEQUENCE_LSTM is not supported (a hybrid LSTM " \
                                "(float32 activations, int8 weights) is not supported by cgen; use float, " \
                                "full-integer int8 or --backend tflm)" in msg, msg


# ---- ONNX LSTM ---------------------------------------------------------------------------------

def _onnx_lstm(path, seq=6, batch=1, feat=3, hidden=5, layout=0, bias=True, init_state=None, outputs=("y",),
               head=False, squeeze=False, opset=14, **attrs):
    """An ONNX LSTM node (onnx.helper) with seeded weights; ``init_state``: None, "const" or "input"."""
    import onnx
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    rng = np.random.default_rng(seq * 31 + hidden)
    w = lambda *s: nh.from_array((0.5 * rng.standard_normal(s)).astype(np.float32), f"i{rng.integers(1 << 30)}")
    nd = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = [w(nd, 4 * hidden, feat), w(nd, 4 * hidden, hidden)] + ([w(nd, 8 * hidden)] if bias else [])
    names = ["x", inits[0].name, inits[1].name, inits[2].name if bias else "", ""]
    x_shape = [seq, batch, feat] if layout == 0 else [batch, seq, feat]
    ins = [h.make_tensor_value_info("x", TP.FLOAT, x_shape)]
    if init_state == "const":
        inits += [w(nd, batch, hidden), w(nd, batch, hidden)]
        names += [inits[-2].name, inits[-1].name]
    elif init_state == "input":
        names += ["h0", "c0"]
        ins += [h.make_tensor_value_info(n, TP.FLOAT, [nd, batch, hidden]) for n in ("h0", "c0")]
    outs = {"y": "Y", "h": "Y_h", "c": "Y_c"}
    node_outs = [outs[k] if k in outputs else "" for k in ("y", "h", "c")]
    while node_outs and not node_outs[-1]:
        node_outs.pop()
    nodes = [h.make_node("LSTM", names, node_outs, name="lstm", hidden_size=hidden, layout=layout, **attrs)]
    graph_outs = [outs[k] for k in outputs]
    if head:   # Y_h [1, B, H] -> Gemm head on [B, H]
        inits += [nh.from_array(np.array([batch, hidden], np.int64), "shape"), w(hidden, 2)]
        nodes += [h.make_node("Reshape", ["Y_h", "shape"], ["hb"]), h.make_node("MatMul", ["hb", inits[-1].name],
                                                                                   ["logits"])]
        graph_outs = ["logits"]
    if squeeze:   # PyTorch's nn.LSTM export: Y [T, 1, B, H] squeezed to [T, B, H]
        inits.append(nh.from_array(np.array([1], np.int64), "axes"))
        nodes.append(h.make_node("Squeeze", ["Y", "axes"], ["seq"]))
        graph_outs = ["seq"]
    m = h.make_model(h.make_graph(nodes, "lstm", ins, [h.make_tensor_value_info(o, TP.FLOAT, None)
                                                         for o in graph_outs], inits),
                     opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(m), str(path))
    return path


ONNX_CASES = {
    "seq_major_all_outputs": dict(outputs=("y", "h", "c")),
    "no_bias_const_state": dict(bias=False, init_state="const", seq=1, hidden=4),
    "state_inputs_batch3": dict(init_state="input", batch=3, seq=12, feat=10, hidden=16, outputs=("y", "c")),
    "y_h_dense_head": dict(head=True, seq=20, feat=2, hidden=32, outputs=("h",)),
    "torch_style_squeeze_batch2": dict(squeeze=True, bias=True, init_state="const", batch=2, seq=7, hidden=6),
    "reverse_state_inputs": dict(direction="reverse", init_state="input", seq=8, batch=2, outputs=("y", "h", "c")),
    "bidirectional_all_outputs": dict(direction="bidirectional", seq=9, batch=2, feat=4, hidden=7,
                                      outputs=("y", "h", "c")),
    "bidirectional_const_state_y_h": dict(direction="bidirectional", init_state="const", seq=5, hidden=16,
                                          outputs=("h",), activations=["Sigmoid", "Tanh", "Tanh"] * 2),
    "explicit_default_activations": dict(activations=["Sigmoid", "Tanh", "Tanh"], direction="forward"),
}


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_lstm_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    from platformio_tinyml.model.onnx import load_onnx
    path = _onnx_lstm(tmp_path / "lstm.onnx", **ONNX_CASES[name])
    g = load_onnx(path)
    assert OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM in {op.kind for op in g.ops} and not g.variables
    report = check_parity(g, path, samples=5, workdir=tmp_path / "b")
    for o in report.outputs:
        assert o.max_rel <= TOL, report.table()
    print(f"{name}: {report.table()}")


def test_onnx_lstm_layout1_matches_onnxruntime_layout0(tmp_path):
    """layout 1 (batch first), bidirectional: onnxruntime refuses layout 1, so the reference is
    the same LSTM with layout 0 on the transposed sequence."""
    from platformio_tinyml.model.onnx import load_onnx
    from platformio_tinyml.verify.host import build_host
    from platformio_tinyml.verify.reference import OnnxReference
    kw = dict(batch=2, seq=9, feat=4, hidden=8, outputs=("y", "h", "c"), direction="bidirectional")
    ours_path = _onnx_lstm(tmp_path / "l1.onnx", layout=1, **kw)
    ref_path = _onnx_lstm(tmp_path / "l0.onnx", layout=0, **kw)   # the same seeded weights
    g = load_onnx(ours_path)
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ref = OnnxReference(ref_path, load_onnx(ref_path))
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = rng.standard_normal((2, 9, 4)).astype(np.float32)
        y, hs, cs = host.run([x])
        assert y.shape == (2, 9, 2, 8) and hs.shape == cs.shape == (2, 2, 8)
        ry, rh, rc = ref.run([x.transpose(1, 0, 2)])
        ry = np.asarray(ry).transpose(2, 0, 1, 3)   # [T, 2, B, H] -> [B, T, 2, H]
        for a, b in ((y, ry), (hs, rh), (cs, rc)):
            b = np.asarray(b).reshape(a.shape)
            assert np.abs(a - b).max() <= TOL * np.abs(b).max()


@pytest.mark.parametrize("attrs,what", [
    (dict(direction="bidirectional", init_state="input"), "initial state 'h0' of a bidirectional LSTM is not a "
                                                          "constant"),
    (dict(activations=["Sigmoid", "Relu", "Tanh"]), "activations ['Sigmoid', 'Relu', 'Tanh'] (only Sigmoid, Tanh, "
                                                    "Tanh are supported)"),
    (dict(clip=3.0), "clip is not supported"),
    (dict(input_forget=1), "input_forget is not supported"),
])
def test_onnx_lstm_variants_are_refused_in_one_line(attrs, what, tmp_path):
    from platformio_tinyml.model.onnx import load_onnx
    path = _onnx_lstm(tmp_path / "lstm.onnx", **attrs)
    with pytest.raises(UnsupportedOpError) as e:   # carried as an opaque op: cgen gives the reason
        generate(load_onnx(path), "m")
    msg = str(e.value)
    assert "\n" not in msg and f"operator #0 LSTM 'lstm' is not supported ({what})" in msg, msg


# ---- other cores -------------------------------------------------------------------------------

CROSS = [("cortex-m0plus", None), ("cortex-m4", "fpv4-sp-d16"), ("rv32imac", None), ("atmega2560", None)]


def test_cross_compile_warning_free(tmp_path_factory, tmp_path):
    """tml_lstm.c builds with -Wall -Wextra -Werror for Cortex-M0+ (soft float), Cortex-M4F, RV32
    and AVR (16-bit int, constants in PROGMEM)."""
    import shutil
    from platformio_tinyml.compilers.cgen import write_output
    from platformio_tinyml.emu import compile_only
    if not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "riscv64-unknown-elf-gcc", "avr-gcc")):
        pytest.skip("cross toolchains not installed")
    src = tmp_path / "src"
    files = write_output(generate(load_tflite(_path(tmp_path_factory, "stacked_u12_u6")), "m"), src)
    for core, fpu in CROSS:
        objs = compile_only([p for p in files if p.suffix == ".c"], [src], core, fpu, out_dir=tmp_path / core)
        assert objs and all(o.is_file() for o in objs)


def require_machine(machine: str) -> None:
    """Skips the test unless ``machine``'s cross compiler and emulator are installed."""
    import shutil
    tools = {"atmega2560": ("avr-gcc", "simavr"), "riscv32-virt": ("riscv64-unknown-elf-gcc", "qemu-system-riscv32"),
             "mps2-an386": ("arm-none-eabi-gcc", "qemu-system-arm")}[machine]
    if not all(shutil.which(t) for t in tools):
        pytest.skip(f"not installed: {tools}")


@pytest.mark.parametrize("machine", ["atmega2560", "riscv32-virt", "mps2-an386"])
def test_stream_on_emulated_targets(machine, tmp_path_factory, tmp_path):
    """A stream of three samples (the state carried between them) on AVR in simavr (PROGMEM
    weights, avr-libc's float math), RV32 and Cortex-M4F in QEMU, against TFLite Micro on the host."""
    from platformio_tinyml.verify.firmware import run_model
    require_machine(machine)
    path = _path(tmp_path_factory, "u8_s5_f3_last")
    g = load_tflite(path)
    rng = np.random.default_rng(4)
    samples = [[rng.standard_normal(g.tensors[i].shape).astype(np.float32) for i in g.inputs] for _ in range(3)]
    r = run_model(generate(g, "m"), g, samples, tmp_path, machine, opt="-Os", timeout=120)
    ref = TFLMReference(path)
    worst = 0.0
    for k, (s, ours) in enumerate(zip(samples, r.outputs)):
        want = ref.run(s, reset=k == 0)[0].reshape(-1)
        worst = max(worst, float(np.abs(ours[0].reshape(-1) - want).max() / np.abs(want).max()))
    print(f"{machine}: max rel err {worst:.3g}, instructions per invoke {r.instructions}")
    assert worst <= TOL


def test_estimates(tmp_path_factory):
    """The latency estimate counts the gates' MACs (and the activations), not the output size;
    the flash estimate knows the kernel; a model with state gets a latency figure."""
    from platformio_tinyml.compilers.cgen.latency import op_work
    from platformio_tinyml.compilers.cgen.sizes import KERNEL_BYTES
    g = load_tflite(_path(tmp_path_factory, "u16_s20_f10_last"))
    lstm = next(op for op in g.ops if op.kind is OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM)
    assert op_work(g, lstm) == 20 * 16 * (4 * (10 + 16) + 64)
    assert "lstm" in KERNEL_BYTES["armv7em"] and "tml_lstm.c" in generate(g, "m").runtime_files
    from platformio_tinyml.compilers.cgen.latency import estimate_cycles
    from platformio_tinyml.device import load_profile
    est = estimate_cycles(g, load_profile("nucleo_f446re"))   # READ/ASSIGN_VARIABLE included
    assert est is not None and est.by_kernel["fc_f32"] > 7 * op_work(g, lstm)


# ---- Keras 3 through from_keras_model ------------------------------------------------------------

def _keras3(tmp_path_factory, name: str, **kw):
    root = tmp_path_factory.getbasetemp() / "lstm_keras3"
    root.mkdir(exist_ok=True)
    path = root / f"{name}.tflite"
    if not path.exists():
        tf = modelgen._tf()
        modelgen._seed(0)
        x = tf.keras.Input(shape=(6, 3), batch_size=1)
        path.write_bytes(modelgen.convert(tf.keras.Model(x, tf.keras.layers.LSTM(8, **kw)(x)), int8=False))
    return path


@pytest.mark.parametrize("return_sequences", [False, True])
def test_keras3_unrolled_lstm(return_sequences, tmp_path_factory, tmp_path):
    """The recipe for Keras 3: LSTM(unroll=True) converts to plain ops (UNPACK, FULLY_CONNECTED,
    SPLIT, LOGISTIC, TANH, MUL, ADD) that cgen compiles."""
    path = _keras3(tmp_path_factory, f"unrolled_{return_sequences}", unroll=True,
                   return_sequences=return_sequences)
    g = load_tflite(path)
    assert OpKind.UNPACK in {op.kind for op in g.ops}
    report = check_parity(g, path, samples=5, workdir=tmp_path)
    assert report.ok and all(o.max_rel <= TOL for o in report.outputs), report.table()


def test_keras3_while_lstm_is_refused_with_the_recipe(tmp_path_factory):
    with pytest.raises(UnsupportedOpError) as e:
        load_tflite(_keras3(tmp_path_factory, "while"))
    msg = str(e.value)
    assert "\n" not in msg and "WHILE is not supported (control flow; Keras 3 converts an LSTM" in msg
    assert "give the .keras file itself" in msg and "unroll=True" in msg
