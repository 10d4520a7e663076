"""Import validation (platformio_tinyml/model/validate.py): one case per rule, valid models, mutants.

Each rule case edits a real model so that it breaks that rule: the MLPerf Tiny KWS int8 model
and the AD float32 model (flatbuffer object API), or a small ONNX net built with onnx.helper
(protobuf). It runs the `tinyml` entry point on the file and expects exit code 2 and one
stderr line that names the rule and the tensor or operator with its index. The modelgen
models are validated on every load in test_cgen_ops (every spec, int8 and float32).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

import modelgen
import mutants
from conftest import MLPERF, MLPERF_INT8
from platformio_tinyml.cli.main import main as tinyml_main
from platformio_tinyml.compilers.cgen.backend import CgenCompiler
from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
from platformio_tinyml.device import load_profile
from platformio_tinyml.errors import ModelError, TinyMLError
from platformio_tinyml.model.loader import load_model
from platformio_tinyml.model.validate import RULES

KWS = MLPERF / MLPERF_INT8["kws"]
AD_F32 = MLPERF / "ad01_fp32.tflite"
NAN = float("nan")


# ---- rule cases: (rule, expected subject, file suffix, builder -> bytes) ------------------------------

def _kws(edit):
    """KWS int8 with ``edit(model, subgraph)`` applied (tensor 0 input, 17 conv weights, 22 the first
    conv's output, 33 FC output, 34 softmax output; op 0 conv, 11 FC, 12 softmax)."""
    def build():
        m = mutants.unpack(KWS.read_bytes())
        edit(m, m.subgraphs[0])
        return modelgen._pack(m)
    return build


def _setattrs(obj, **kw):
    for k, v in kw.items():
        setattr(obj, k, v)


def _tensor(i, **kw):
    return _kws(lambda m, sg: _setattrs(sg.tensors[i], **kw))


def _quant(i, **kw):
    return _kws(lambda m, sg: _setattrs(sg.tensors[i].quantization, **kw))


def _operator(k, **kw):
    return _kws(lambda m, sg: _setattrs(sg.operators[k], **kw))


def _options(k, **kw):
    return _kws(lambda m, sg: _setattrs(sg.operators[k].builtinOptions, **kw))


def _graph(**kw):
    return _kws(lambda m, sg: _setattrs(sg, **kw))


def _nan_weight(m, sg):
    t = sg.tensors[8 + 1]   # ad01: tensor 9, the first FC weights (float32)
    data = np.array(m.buffers[t.buffer].data, np.uint8).view(np.float32).copy()
    data[3] = NAN
    m.buffers[t.buffer].data = data.view(np.uint8)


def _huge_weight(m, sg):
    t = sg.tensors[8 + 1]
    data = np.array(m.buffers[t.buffer].data, np.uint8).view(np.float32).copy()
    data[5] = -3.4e38
    m.buffers[t.buffer].data = data.view(np.uint8)


def _ad(edit):
    def build():
        m = mutants.unpack(AD_F32.read_bytes())
        edit(m, m.subgraphs[0])
        return modelgen._pack(m)
    return build


SEEDS = Path(__file__).resolve().parent / "fuzz_corpus" / "seeds"


def _seed(name, edit):
    """Fuzz seed model ``name`` (tests/fuzz_corpus/seeds, one or two operators) with ``edit(model, subgraph)``."""
    def build():
        m = mutants.unpack((SEEDS / f"{name}.tflite").read_bytes())
        edit(m, m.subgraphs[0])
        return modelgen._pack(m)
    return build


def _mean_axes(*axes):
    def edit(m, sg):   # mean_global_int8: tensor 1 holds MEAN's axes (int32)
        m.buffers[sg.tensors[1].buffer].data = np.frombuffer(np.array(axes, np.int32).tobytes(), np.uint8)
    return _seed("mean_global_int8", edit)


def _onnx_net(mutate=None, outputs=True, raw=False):
    """Conv(3x3) -> Relu on a [1, 3, 6, 6] input; ``mutate(model)`` edits the protobuf."""
    def build():
        w = nh.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
        nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"), h.make_node("Relu", ["c"], ["y"], name="relu")]
        outs = [h.make_tensor_value_info("y", TP.FLOAT, [1, 4, 4, 4])] if outputs else []
        m = h.make_model(h.make_graph(nodes, "net", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])], outs,
                                      [w]), opset_imports=[h.make_opsetid("", 13)])
        m.ir_version = 8
        if mutate:
            mutate(m)
        data = m.SerializeToString()
        return data.replace(b"conv", b"c\xff\xfev") if raw else data
    return build


def _external(m):
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")


def _short_raw(m):
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:100]


def _pool_pads(m):
    m.graph.node[1].CopyFrom(h.make_node("AveragePool", ["c"], ["y"], name="pool", kernel_shape=[2, 2],
                                         pads=[2, 2, 2, 2]))
    m.graph.output[0].CopyFrom(h.make_tensor_value_info("y", TP.FLOAT, [1, 4, 7, 7]))


CASES = {
    "truncated": ("corrupt-file", "the file", ".tflite", lambda: KWS.read_bytes()[:4000]),
    "tensor-name": ("name-utf8", "tensor #33", ".tflite", _tensor(33, name=b"dense\xff\xfe")),
    "onnx-node-name": ("name-utf8", "node #0", ".onnx", _onnx_net(raw=True)),
    "buffer-index": ("buffer-index", "tensor #17", ".tflite", _tensor(17, buffer=999)),
    "buffer-offset": ("buffer-bounds", "tensor #17", ".tflite",
                      _kws(lambda m, sg: _setattrs(m.buffers[sg.tensors[17].buffer], data=None, offset=1 << 20,
                                                   size=640))),
    "onnx-external": ("buffer-bounds", "initializer #0 'w'", ".onnx", _onnx_net(_external)),
    "opcode-index": ("opcode-index", "operator #4", ".tflite", _operator(4, opcodeIndex=99)),
    "tflite-data": ("constant-size", "tensor #17", ".tflite",
                    _kws(lambda m, sg: _setattrs(m.buffers[sg.tensors[17].buffer],
                                                 data=m.buffers[sg.tensors[17].buffer].data[:100]))),
    "onnx-data": ("constant-size", "initializer #0 'w'", ".onnx", _onnx_net(_short_raw)),
    "variable-weights": ("variable-constant", "tensor #17", ".tflite", _tensor(17, isVariable=True)),
    "tensor-index": ("tensor-index", "operator #2", ".tflite", _operator(2, inputs=[23, 99, 6])),
    "no-inputs": ("graph-inputs", "graph", ".tflite", _graph(inputs=[])),
    "const-input": ("graph-inputs", "tensor #17", ".tflite", _graph(inputs=[17])),
    "const-output": ("graph-outputs", "tensor #16", ".tflite", _graph(outputs=[16])),
    "onnx-const-output": ("graph-outputs", "graph output 'w'", ".onnx",
                          _onnx_net(lambda m: m.graph.output.append(h.make_tensor_value_info("w", TP.FLOAT,
                                                                                             [4, 3, 3, 3])))),
    "onnx-no-outputs": ("graph-outputs", "graph", ".onnx", _onnx_net(outputs=False)),
    "arity": ("operator-arity", "operator #12 SOFTMAX", ".tflite", _operator(12, inputs=[33, 16])),
    "options-type": ("operator-arity", "operator #0 CONV_2D", ".tflite", _operator(0, builtinOptionsType=0)),
    "order": ("operator-order", "operator #0 CONV_2D", ".tflite", _operator(0, inputs=[23, 17, 3])),
    "rank": ("tensor-rank", "tensor #34", ".tflite", _tensor(34, shape=[1] * 9 + [12])),
    "negative": ("negative-dimension", "tensor #33", ".tflite", _tensor(33, shape=[1, -12])),
    "zero": ("zero-size-tensor", "tensor #33", ".tflite", _tensor(33, shape=[1, 0])),
    "too-large": ("tensor-too-large", "tensor #34", ".tflite", _tensor(34, shape=[4, 1 << 30])),
    "model-too-large": ("model-too-large", "graph", ".tflite",
                        _kws(lambda m, sg: [_setattrs(sg.tensors[i], shape=[1, 1 << 30]) for i in (33, 34)])),
    "nan-weight": ("finite-weights", "tensor #9", ".tflite", _ad(_nan_weight)),
    "onnx-nan-weight": ("finite-weights", "initializer #0 'w'", ".onnx",
                        _onnx_net(lambda m: m.graph.initializer[0].CopyFrom(nh.from_array(
                            np.full((4, 3, 3, 3), NAN, np.float32), "w")))),
    "huge-weight": ("weight-magnitude", "tensor #9", ".tflite", _ad(_huge_weight)),
    "nan-beta": ("finite-weights", "operator #12 SOFTMAX", ".tflite", _options(12, beta=NAN)),
    "nan-scale": ("quant-scale", "tensor #33", ".tflite", _quant(33, scale=[NAN])),
    "zero-scale": ("quant-scale", "tensor #33", ".tflite", _quant(33, scale=[0.0])),
    "zero-point": ("zero-point-range", "tensor #33", ".tflite", _quant(33, zeroPoint=[200])),
    "channel-axis": ("quant-channels", "tensor #17", ".tflite", _quant(17, quantizedDimension=2)),
    "no-quant": ("missing-quantization", "tensor #33", ".tflite", _tensor(33, quantization=None)),
    "reshape-int64": ("element-type", "operator #10 RESHAPE", ".tflite", _tensor(32, type=4)),
    "huge-stride": ("stride-range", "operator #0 CONV_2D", ".tflite", _options(0, strideH=2 ** 31 - 1)),
    "zero-stride": ("stride-range", "operator #0 CONV_2D", ".tflite", _options(0, strideW=0)),
    "padding-kind": ("padding-kind", "operator #0 CONV_2D", ".tflite", _options(0, padding=-1)),
    "pool-pads": ("padding-range", "operator #1 AVERAGE_POOL_2D 'AveragePool pool'", ".onnx", _onnx_net(_pool_pads)),
    "stride-1000": ("shape-mismatch", "operator #0 CONV_2D", ".tflite", _options(0, strideH=1000)),
    "fc-output": ("shape-mismatch", "operator #11 FULLY_CONNECTED", ".tflite", _tensor(33, shape=[1, 13])),
    "concat-axis": ("shape-mismatch", "operator #0 CONCATENATION", ".tflite",
                    _seed("concat_channels_int8", lambda m, sg: _setattrs(sg.operators[0].builtinOptions, axis=255))),
    "mean-axis": ("shape-mismatch", "operator #0 MEAN", ".tflite", _mean_axes(2, (1 << 28) + 1)),
    "dwconv-multiplier": ("shape-mismatch", "operator #0 DEPTHWISE_CONV_2D", ".tflite",
                          _seed("dwconv_same_dm2_int8",
                                lambda m, sg: _setattrs(sg.operators[0].builtinOptions, depthMultiplier=3))),
}


def _run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = tinyml_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_rule_line(rc, out, err, rule, subject, path):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tinyml: error: {path}: invalid model, rule {rule}: {subject} "), lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_names_itself_and_the_index(case, tmp_path, capsys):
    rule, subject, suffix, build = CASES[case]
    path = tmp_path / f"{case}{suffix}"
    path.write_bytes(build())
    rc, out, err = _run_cli(capsys, "inspect", path)
    _assert_rule_line(rc, out, err, rule, subject, path)


def test_every_rule_has_a_case():
    assert {c[0] for c in CASES.values()} == set(RULES)


def test_rule_list_in_docs_matches_the_code():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "model-validation.md").read_text()
    listed = {ln.split("`")[1] for ln in doc.splitlines() if ln.startswith("| `")}
    assert listed == set(RULES)


@pytest.mark.parametrize("command", ["inspect", "compile", "verify"])
def test_commands_refuse_in_one_line(command, tmp_path):
    """The real `tinyml` process, each command, on the issue's cases: a NaN scale (the C did not
    build), a 2^31-1 stride (uint8 overflow), a constant graph output."""
    case = {"inspect": "nan-scale", "compile": "huge-stride", "verify": "const-output"}[command]
    rule, subject, suffix, build = CASES[case]
    path = tmp_path / f"{case}{suffix}"
    path.write_bytes(build())
    extra = [] if command == "inspect" else ["-t", "nucleo_f446re"] + (["-o", tmp_path / "out"]
                                                                      if command == "compile" else [])
    proc = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", command, str(path), *map(str, extra)],
                          capture_output=True, text=True)
    _assert_rule_line(proc.returncode, proc.stdout, proc.stderr, rule, subject, path)


def test_hostile_names_stay_on_one_escaped_line(tmp_path, capsys):
    name = b"a\nFAKE LINE */ \x1b[31m" + b"n" * 5000
    path = tmp_path / "hostile.tflite"
    path.write_bytes(_kws(lambda m, sg: (_setattrs(sg.tensors[33], name=name, shape=[1, 0])))())
    rc, out, err = _run_cli(capsys, "inspect", path)
    _assert_rule_line(rc, out, err, "zero-size-tensor", r"tensor #33 'a\nFAKE LINE */ \x1b[31m" + "n" * 40 + "...'",
                      path)
    assert len(err) < 600


def test_a_valid_stride_beyond_the_cgen_kernels_is_refused_not_truncated(tmp_path, capsys):
    """A stride of 300 is well formed (validation passes: the output shape agrees), but the cgen
    kernels keep strides in uint8_t: cgen refuses in one line instead of emitting 300 & 255."""
    m = mutants.unpack(mutants.cut(KWS.read_bytes(), 0, 0))   # KWS's first conv alone, SAME padding
    sg = m.subgraphs[0]
    sg.operators[0].builtinOptions.strideH = 300
    sg.tensors[int(sg.outputs[0])].shape = [1, 1, 5, 64]
    path = tmp_path / "stride300.tflite"
    path.write_bytes(modelgen._pack(m))
    g = load_model(path)
    assert g.ops[0].attrs.stride_h == 300
    rc, out, err = _run_cli(capsys, "compile", path, "-t", "nucleo_f446re", "--backend", "cgen", "-o", tmp_path / "o")
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "stride_h = 300 does not fit the kernel's uint8_t (max 255)" in err


# ---- valid models --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.name for p in MLPERF.glob("*.tflite")))
def test_mlperf_models_pass(name):
    if name == "kws_ref_model_float32.tflite":   # hybrid: refused by the reader, after validation
        with pytest.raises(ModelError, match="hybrid"):
            load_model(MLPERF / name)
        return
    g = load_model(MLPERF / name)
    assert g.ops and g.inputs and g.outputs


def test_an_activation_marked_variable_is_an_activation(tmp_path):
    """is_variable on a tensor without data (TFLite Micro keeps it in the arena for the whole run, and
    its operator writes it before anything reads it) changes nothing: accepted, unlike a constant."""
    path = tmp_path / "var_activation.tflite"
    path.write_bytes(_tensor(22, isVariable=True)())
    g = load_model(path)
    assert g.ops and g.tensors[g.ops[0].outputs[0]].shape == (1, 25, 5, 64)


def test_negative_axes_count_from_the_end(tmp_path):
    """TFLite Micro adds the rank to a negative axis (in [-rank, 0)): so does the reader; an axis
    outside [-rank, rank) is refused (cases concat-axis, mean-axis), never wrapped."""
    path = tmp_path / "mean.tflite"
    path.write_bytes(_mean_axes(-2, -3)())
    assert load_model(path).ops[0].attrs.axes == (1, 2)
    g = load_model(SEEDS / "concat_channels_int8.tflite")   # axis -1 in the file
    assert g.ops[0].attrs.axis == 3


@pytest.mark.parametrize("options_type", [None, 1])
def test_missing_or_mistyped_options_are_tflite_micros_zeros(tmp_path, options_type):
    """Options absent, or a table whose union type is not the operator's (case options-type), are read
    as TFLite Micro reads them: not at all, leaving zero parameters (softmax beta 0, not 1)."""
    def edit(m, sg):
        op = sg.operators[0]
        if options_type is None:
            op.builtinOptions, op.builtinOptionsType = None, 0
        else:   # Conv2DOptions' type on SoftmaxOptions(beta=1)
            op.builtinOptionsType = options_type
    path = tmp_path / "softmax.tflite"
    path.write_bytes(_seed("softmax_int8", edit)())
    assert load_model(path).ops[0].attrs.beta == 0.0
    assert load_model(SEEDS / "softmax_int8.tflite").ops[0].attrs.beta == 1.0


def test_valid_onnx_net_passes(tmp_path):
    path = tmp_path / "net.onnx"
    path.write_bytes(_onnx_net()())
    g = load_model(path)
    assert [op.kind.value for op in g.ops] == ["CONV_2D"] and g.tensors[g.outputs[0]].shape == (1, 4, 4, 4)


# ---- mutants: nothing but TinyMLError from load, validation and cgen ------------------------------------

@pytest.fixture(scope="module")
def device():
    return load_profile("nucleo_f446re")


def _onnx_convnet() -> bytes:
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax, float32, as a mutation base."""
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w", (4, 3, 3, 3)), ("b", (4,)), ("fw", (5, 16)), ("fb", (5,)))]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
             h.make_node("Gemm", ["f", "fw", "fb"], ["g"], name="gemm", transB=1),
             h.make_node("Softmax", ["g"], ["y"], name="softmax", axis=-1)]
    m = h.make_model(h.make_graph(nodes, "convnet", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, [1, 5])], inits),
                     opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


BASES = {
    "tflite-conv-dwconv-conv": (".tflite", lambda: mutants.cut(KWS.read_bytes(), 0, 2), mutants.mutant, 200),
    "tflite-pool-reshape-fc-softmax": (".tflite", lambda: mutants.cut(KWS.read_bytes(), 9, 12), mutants.mutant, 200),
    "onnx-convnet": (".onnx", _onnx_convnet, mutants.onnx_mutant, 300),
}


@pytest.mark.parametrize("base", sorted(BASES))
def test_mutants_raise_nothing_but_tinyml_errors(base, tmp_path, device):
    """Seeded mutants through load (reader + validation) and, where accepted, the cgen backend's
    supports() and compile(): anything but a TinyMLError is a failure, named by its seed and edit."""
    suffix, make, mutate, count = BASES[base]
    data0 = make()
    assert load_model(_write(tmp_path / f"base{suffix}", data0)).ops   # the unmutated base is valid
    path, out = tmp_path / f"mutant{suffix}", tmp_path / "out"
    escaped, rules, compiled = [], set(), 0
    for seed in range(count):
        data, what = mutate(data0, seed)
        _write(path, data)
        try:
            g = load_model(path)
        except TinyMLError as e:
            rules.add(getattr(e, "rule", type(e).__name__))
            continue
        except Exception as e:   # noqa: BLE001  (the point: nothing else may escape)
            escaped.append(f"seed {seed} ({what}): load raised {type(e).__name__}: {e}")
            continue
        req = CompileRequest(path, suffix[1:], g, device, CompileOptions(name="m"))
        cgen = CgenCompiler()
        try:
            if cgen.supports(req).ok:
                cgen.compile(req, out)
                compiled += 1
        except TinyMLError:
            pass
        except Exception as e:   # noqa: BLE001
            escaped.append(f"seed {seed} ({what}): cgen raised {type(e).__name__}: {e}")
    assert not escaped, "\n".join(escaped[:10])
    # The mutants reach the rules and the backend, not only the file parser.
    assert len(rules & set(RULES)) >= 6 and compiled >= 10, (sorted(rules), compiled)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- options TFLite Micro trusts over the tensors ------------------------------------------------------

def _pack(values_count, axis=0):
    import crashers
    S = crashers._schema()
    o = S.PackOptionsT()
    o.valuesCount, o.axis = values_count, axis
    return crashers.one_op_model("PACK", [("x", "FLOAT32", [1, 3], None, None, None),
                                          ("c", "FLOAT32", [1, 3], np.ones((1, 3), np.float32), None, None),
                                          ("y", "FLOAT32", [2, 1, 3], None, None, None)],
                                 [0, 1], [2], (S.BuiltinOptions.PackOptions, o))


def _unpack(num):
    import crashers
    S = crashers._schema()
    o = S.UnpackOptionsT()
    o.num, o.axis = num, 1
    return crashers.one_op_model("UNPACK", [("x", "FLOAT32", [1, 2, 3], None, None, None),
                                            ("y0", "FLOAT32", [1, 3], None, None, None),
                                            ("y1", "FLOAT32", [1, 3], None, None, None)],
                                 [0], [1, 2], (S.BuiltinOptions.UnpackOptions, o))


@pytest.mark.parametrize("case", ["pack", "unpack"])
def test_pack_counts_must_match_the_tensors(tmp_path, capsys, case):
    """PACK's values_count and UNPACK's num are what TFLite Micro loops over: one that differs from the
    operator's inputs / outputs is refused in one line; a matching one loads."""
    build, good, bad = {"pack": (_pack, 2, 3), "unpack": (_unpack, 2, 1)}[case]
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(build(good))
    assert load_model(path).ops
    path.write_bytes(build(bad))
    rc, out, err = _run_cli(capsys, "inspect", path)
    _assert_rule_line(rc, out, err, "shape-mismatch", f"operator #0 {case.upper()}", path)
    assert f"has option {'values_count' if case == 'pack' else 'num'} = {bad} for 2 " in err, err


def test_operator_code_is_read_as_tflite_micro_reads_it():
    """A fuzz finding (10^5 run on b3a9b7e): an OperatorCode with builtin_code 18 (MUL) and
    deprecated_builtin_code 0 (ADD). TensorFlow Lite Micro runs the larger, MUL; the PyPI
    tflite package's BuiltinCode() answered ADD, so cgen compiled an ADD: wrong code, caught by
    verify. The corpus replay (test_fuzz_models.py) verifies the file against TFLite Micro."""
    from platformio_tinyml.compilers.tflm.flatbuffer import read_facts
    from platformio_tinyml.ir import OpKind
    from platformio_tinyml.model.loader import load_model
    path = Path(__file__).parent / "fuzz_corpus" / "models" / "opcode-fields__builtin_mul_deprecated_add.tflite"
    assert [op.kind for op in load_model(path).ops] == [OpKind.MUL]
    assert read_facts(path).ops == ("MUL",)
