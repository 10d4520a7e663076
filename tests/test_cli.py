"""The `tinyml` command line, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import MLPERF, MLPERF_INT8, mounted

KWS = MLPERF / MLPERF_INT8["kws"]


def tinyml(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, out, err, *needles):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyml: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_inspect_reports_ops_weights_and_lower_bound():
    rc, out, err = tinyml("inspect", KWS)
    assert rc == 0, err
    assert "CONV_2D              5" in out and "DEPTHWISE_CONV_2D    4" in out
    assert "weight bytes: 24,368" in out
    assert "lower bound (live tensors, this op order): 16,000 B" in out


def test_compile_writes_sources_header_and_report(tmp_path):
    rc, out, err = tinyml("compile", KWS, "--target", "nucleo_f446re", "--backend", "cgen",
                          "-o", tmp_path, "--name", "kws")
    assert rc == 0, err
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["backend"] == "cgen" and rep["target"]["core"] == "cortex-m4" and rep["target"]["dsp"]
    assert rep["arena_bytes"] == 16000 and rep["weight_bytes"] == 24368
    assert rep["estimated_ram_bytes"] >= rep["arena_bytes"]
    assert rep["estimated_flash_bytes"] > rep["weight_bytes"]
    header = (tmp_path / "kws.h").read_text()
    assert "int kws_invoke(const void *input, void *output);" in header
    assert "#define KWS_INPUT_SHAPE {1, 49, 10, 1}" in header
    assert "#define KWS_INPUT_ZERO_POINT 83" in header and "#define KWS_OUTPUT_SIZE 12" in header
    for f in rep["files"]:
        assert (tmp_path / f["path"]).is_file()


def test_compile_accepts_a_manifest_path(tmp_path):
    manifest = MLPERF.parents[1] / "boards" / "ststm32" / "nucleo_f446re.json"
    rc, out, err = tinyml("compile", MLPERF / MLPERF_INT8["ad"], "-t", manifest, "-o", tmp_path)
    assert rc == 0, err
    assert (tmp_path / "ad01_int8.h").exists()


def test_verify_passes_with_a_parity_table():
    rc, out, err = tinyml("verify", KWS, "--target", "nucleo_f446re", "--samples", "5")
    assert rc == 0, out + err
    assert "Identity" in out and "5/5" in out and "PASS" in out


def test_verify_detects_a_mismatch(monkeypatch, tmp_path):
    # The comparison must be able to fail: a reference whose output is off by one.
    from platformio_tinyml.model.tflite import load_tflite
    from platformio_tinyml.verify import parity
    real = parity.reference_for

    class OffByOne:
        def __init__(self, path, graph=None):
            self.ref = real(path, graph)

        def run(self, xs):
            return [(o.astype(np.int16) + 1).clip(-128, 127).astype(np.int8) for o in self.ref.run(xs)]

    monkeypatch.setattr(parity, "reference_for", OffByOne)
    rep = parity.check_parity(load_tflite(KWS), KWS, samples=3)
    assert not rep.ok and "FAIL" in rep.table()


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "hybrid"])
def test_bad_model_files_give_one_clear_line(case, tmp_path):
    if case == "missing":
        path = tmp_path / "nope.tflite"
        needle = "not found"
    elif case == "garbage":
        path = tmp_path / "model.tflite"
        path.write_bytes(b"this is not a model at all")
        needle = "not a TFLite flatbuffer"
    elif case == "truncated":
        path = tmp_path / "cut.tflite"
        path.write_bytes(KWS.read_bytes()[:4000])
        needle = "corrupt or truncated"
    else:
        path = MLPERF / "kws_ref_model_float32.tflite"
        needle = "hybrid"
    rc, out, err = tinyml("compile", path, "-t", "nucleo_f446re", "-o", tmp_path / "out")
    assert_one_line_error(rc, out, err, str(path.name), needle)


def test_unknown_board_suggests_close_matches(tmp_path):
    rc, out, err = tinyml("compile", KWS, "-t", "nucleo_f446ree", "-o", tmp_path)
    assert_one_line_error(rc, out, err, "nucleo_f446ree", "nucleo_f446re")


def test_model_too_big_for_board_says_by_how_much(tmp_path):
    rc, out, err = tinyml("compile", MLPERF / MLPERF_INT8["vww"], "-t", "uno", "-o", tmp_path)
    assert_one_line_error(rc, out, err, "uno", "RAM", "2,048 B", "flash")


def test_an_op_cgen_lacks_goes_to_a_backend_that_takes_it_or_one_line_per_backend(tmp_path):
    """The importer carries BROADCAST_ARGS as an opaque op; cgen computes it only when both shapes
    are constants (folded) and refuses it with the op and its index when they come at run time.
    TensorFlow Lite Micro (which has the kernel) takes the model, and on a board no backend serves
    the one line names every backend's reason."""
    import json
    from test_opaque_ops import runtime_broadcast_args

    path = runtime_broadcast_args(tmp_path / "bargs.tflite")
    rc, o, err = tinyml("inspect", path)
    assert rc == 0 and "BROADCAST_ARGS" in o, o + err
    rc, o, err = tinyml("compile", path, "-t", "nucleo_f446re", "-o", tmp_path / "out")
    assert rc == 0, o + err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["backend"] in ("tflm", "tvm") and report["candidates"]["tflm"]["ok"]
    assert "BROADCAST_ARGS is not supported (shapes computed at run time" in \
        report["candidates"]["cgen"]["reasons"][0]
    rc, o, err = tinyml("compile", path, "-t", "uno", "-o", tmp_path / "avr")
    assert_one_line_error(rc, o, err, "bargs.tflite", "'uno'", "cgen: ", "operator #0 BROADCAST_ARGS is not supported",
                          "tflm: TensorFlow Lite Micro needs a 32-bit core", "--explain")
    rc, o, err = tinyml("compile", path, "-t", "uno", "-o", tmp_path / "avr", "--explain")
    assert rc != 0 and "Supported operators:" in err and "CONV_2D" in err and "UNPACK" in err, err


def test_unsupported_operator_refusal_is_brief_unless_explained():
    """An importer's refusal names the first supported operators and how to see them all."""
    from platformio_tinyml.cli.main import _error_text
    from platformio_tinyml.errors import UnsupportedOpError
    ops = [f"OP{k:02d}" for k in range(40)]
    e = UnsupportedOpError("m.tflite", 3, "SIN", "no kernel for this operator", ops)
    brief = _error_text(e, explain=False)
    assert brief.startswith("m.tflite: operator #3 SIN is not supported (no kernel for this operator)")
    assert "OP09, ..." in brief and "OP10" not in brief and "40 in all; --explain lists them" in brief
    assert _error_text(e, explain=True) == str(e) and "OP39" in str(e)


def _small_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B"),
             numpy_helper.from_array(rng.standard_normal((8 * 6 * 6, 4)).astype(np.float32), "W2"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]), helper.make_node("MatMul", ["f", "W2"], ["m"]),
             helper.make_node("Softmax", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_onnx_model_through_compile_and_verify(tmp_path):
    model = _small_onnx(tmp_path / "small.onnx")
    rc, out, err = tinyml("verify", model, "-t", "nucleo_f446re", "-n", "5")
    assert rc == 0, out + err
    assert "5/5" in out or "PASS" in out
    rc, out, err = tinyml("compile", model, "-t", "nucleo_f446re", "-o", tmp_path / "gen")
    assert rc == 0, err
    rep = json.loads((tmp_path / "gen" / "report.json").read_text())
    assert rep["model"]["format"] == "onnx" and rep["backend"] == "cgen"
    assert "#define SMALL_INPUT_SHAPE {1, 8, 8, 3}" in (tmp_path / "gen" / "small.h").read_text()   # NHWC API


def test_keras_model_with_calibration_through_verify(tmp_path):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((6, 6, 2)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
                                 tf.keras.layers.Flatten(), tf.keras.layers.Dense(3)])
    path = tmp_path / "tiny.keras"
    model.save(path)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((16, 6, 6, 2)).astype(np.float32))
    rc, out, err = tinyml("verify", path, "-t", "nucleo_f446re", "-n", "5", "--calibration", calib)
    assert rc == 0, out + err
    assert "int8" in out and "5/5" in out   # int8 after quantization, bit-exact to TFLM


def test_sklearn_model_through_inspect_and_verify(tmp_path):
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(300, 6, random_state=0)
    path = tmp_path / "forest.joblib"
    joblib.dump(RandomForestClassifier(6, max_depth=5, random_state=0).fit(X, y), path)
    rc, out, err = tinyml("inspect", path)
    assert rc == 0, err
    assert "RandomForestClassifier" in out and "features: 6" in out and "trees: 6" in out
    rc, out, err = tinyml("verify", path, "-t", "uno", "-n", "100")
    assert rc == 0, out + err
    assert "prediction" in out and "100/100" in out and "PASS" in out


def test_compile_replaces_the_output_of_another_model(tmp_path):
    """-o belongs to the command: a second compile leaves exactly its own files there,
    written into a fresh folder beside it and renamed into place."""
    out = tmp_path / "gen"
    assert tinyml("compile", KWS, "-t", "nucleo_f446re", "-o", out, "--name", "kws")[0] == 0
    rc, _, err = tinyml("compile", MLPERF / MLPERF_INT8["ad"], "-t", "nucleo_f446re", "-o", out, "--name", "ad")

    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["name"] == "ad"
    assert sorted(p.name for p in out.iterdir()) == sorted([f["path"] for f in report["files"]]
                                                           + ["report.json", "tinyml-report.html"])
    assert "TinyML report: ad on nucleo_f446re" in (out / "tinyml-report.html").read_text()
    assert not (out / "kws.c").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]   # no temporary folder left


def test_compile_refuses_a_folder_with_files_it_did_not_write(tmp_path):
    out = tmp_path / "src"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }\n")

    rc, o, err = tinyml("compile", KWS, "-t", "nucleo_f446re", "-o", out)

    assert_one_line_error(rc, o, err, f"{out}: holds files tinyml did not write (main.c)", "new or empty")
    assert sorted(p.name for p in out.iterdir()) == ["main.c"]


def test_compile_into_a_read_only_folder_is_one_line(tmp_path):
    with mounted(tmp_path / "ro", "ro") as ro:
        rc, o, err = tinyml("compile", KWS, "-t", "nucleo_f446re", "-o", ro / "gen")

    assert_one_line_error(rc, o, err, f"{tmp_path / 'ro'}: cannot write here (Read-only file system)",
                          "give -o a folder elsewhere")


def test_compile_onto_a_full_disk_is_one_line(tmp_path):
    """KWS's sources do not fit a 64 KiB file system: one line, and no half-written folder left."""
    with mounted(tmp_path / "full", "full") as full:
        rc, o, err = tinyml("compile", KWS, "-t", "nucleo_f446re", "-o", full / "gen")
        left = sorted(p.name for p in full.iterdir())

    assert_one_line_error(rc, o, err, f"{tmp_path / 'full'}: no space left on the device",
                          "Free disk space there, or give -o a folder elsewhere")
    assert left == [], left


def test_failed_compile_leaves_the_previous_output_untouched(tmp_path):
    """-o is replaced only by a complete compile: a refused model changes nothing there."""
    out = tmp_path / "gen"
    assert tinyml("compile", MLPERF / MLPERF_INT8["ad"], "-t", "nucleo_f446re", "-o", out, "--name", "ad")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" + bytes(60))

    rc, o, err = tinyml("compile", bad, "-t", "nucleo_f446re", "-o", out, "--name", "bad")

    assert_one_line_error(rc, o, err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite", "gen"]   # no temporary folder left


def test_paths_with_spaces_and_non_ascii(tmp_path):
    """verify's host build and compile -o take a model and folders named with spaces and non-ASCII."""
    folder = tmp_path / "my prøject ü"
    folder.mkdir()
    model = folder / "ad model é.tflite"
    model.write_bytes((MLPERF / MLPERF_INT8["ad"]).read_bytes())

    rc, out, err = tinyml("verify", model, "-t", "nucleo_f446re", "-n", "2")
    assert rc == 0 and "PASS" in out, out + err
    rc, out, err = tinyml("compile", model, "-t", "nucleo_f446re", "-o", folder / "gen ü", "--name", "ad")
    assert rc == 0, err
    assert (folder / "gen ü" / "ad.c").is_file() and (folder / "gen ü" / "report.json").is_file()


def test_output_into_a_closed_pipe_is_not_an_internal_error():
    """`tinyml inspect m | head -1`: the reader leaves early; no 'internal error', no traceback
    (found while triaging fuzzer findings)."""
    p = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "inspect", str(KWS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait() == 141, err
    assert err == "", err


def test_no_backend_error_is_one_brief_line_and_explain_lists_every_reason(tmp_path, mlperf_dir):
    """The KWS model on an Arduino Uno (2 KiB RAM, 8-bit): no backend takes it. The error names
    each backend with its first reason, briefly; --explain adds every reason in full."""
    model = mlperf_dir / "kws_ref_model.tflite"
    rc, o, err = tinyml("compile", model, "-t", "uno", "-o", tmp_path / "out")
    assert_one_line_error(rc, o, err, "no backend can compile this model for board 'uno'", "cgen: needs",
                          "tflm: TensorFlow Lite Micro needs a 32-bit core", "--explain")
    assert len(err) < 1000 and "Supported operators" not in err
    rc, o, err = tinyml("compile", model, "-t", "uno", "-o", tmp_path / "out", "--explain")
    assert rc == 2 and "Traceback" not in o + err
    lines = err.splitlines()
    assert "no backend can compile" in lines[0]
    named = {ln.split(":")[0].strip() for ln in lines[1:]}
    assert {"cgen", "tflm", "tvm", "emlearn", "vela"} <= named, lines
