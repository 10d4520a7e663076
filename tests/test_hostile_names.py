"""Hostile names: model-controlled text never becomes code (compilers/ctext.py).

Each backend that reads text from a model gets models whose graph, node and
tensor names (scikit-learn: class labels) are crafted to break out of the
comment, string or line they could be pasted into: a comment close followed
by a constructor that creates a marker file, a string close, newlines with
``#define``/``#include``, a backslash or ``??/`` at the end, a ``/`` next to
the comment delimiter, non-UTF-8 bytes, 100 kB, empty, a C keyword. For each:

(a) the generated sources compile with ``-Wall -Wextra -Werror`` and the
    injected function is in no object's symbol table (``nm``);
(b) ``tinyml verify`` builds the generated code on the host and runs it: the
    constructor never runs (no marker file);
(c) and the outputs still match the reference (PASS).
"""

from __future__ import annotations

import ctypes
import io
import subprocess
import tarfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from modelgen import ModelCache, _pack, _unpack

from platformio_tinyml.cli.main import main as tinyml
from platformio_tinyml.compilers.ctext import (c_comment_text, c_float, c_identifier, c_prefix,
                                               c_string_literal, is_comment_safe)
from platformio_tinyml.device import load_profile
from platformio_tinyml.errors import CompileError, TinyMLError
from platformio_tinyml.pipeline import compile_model

BOARD = "nucleo_f446re"
SYMBOL = "tinyml_pwned"
CFLAGS = ["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror"]


def _payload(marker: Path) -> str:
    """Closes a comment, defines a constructor that creates ``marker``, reopens the comment."""
    return ("*/ int open(const char *, int, ...); __attribute__((constructor)) static void "
            f'{SYMBOL}(void) {{ open("{marker}", 0101, 0644); }} /*')


HOSTILE = {
    "comment_close": lambda m: _payload(m).encode(),
    "string_close": lambda m: ('"); ' + _payload(m)[3:-3] + ' static const char *tinyml_s = ("').encode(),
    "newline_define": lambda m: b'x\n#define int void\n#include "/nonexistent/tinyml_pwn.h"\n',
    "include": lambda m: b'*/\n#include "/nonexistent/tinyml_pwn.h"\n/*',
    "backslash_eol": lambda m: b"tail\\",
    "trigraph": lambda m: b"x ??/",
    "slash_end": lambda m: b"name/",
    "non_utf8": lambda m: b"\xff\xfe*/ \xc3( " + _payload(m).encode(),
    "huge": lambda m: b"A" * 100_000 + _payload(m).encode(),
    "empty": lambda m: b"",
    "keyword": lambda m: b"int",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("hostile_models"))


def hostile_tflite(src: Path, name: bytes, dst: Path) -> Path:
    """``src`` with subgraph name ``name`` and tensor names ``<i>#name``."""
    m = _unpack(src.read_bytes())
    sg = m.subgraphs[0]
    sg.name = name
    for i, t in enumerate(sg.tensors):
        t.name = f"{i}#".encode() + name
    dst.write_bytes(_pack(m))
    return dst


def hostile_onnx(name: bytes, dst: Path) -> Path:
    """A float Gemm + Relu model: graph (the checker wants one: "g" if empty) and Gemm named ``name``,
    Relu ``r<name>``, tensors ``<name>x``..."""
    import onnx
    from onnx import TensorProto, helper as h, numpy_helper as nh
    try:
        text, placeholder = name.decode("utf-8"), None
    except UnicodeDecodeError:       # protobuf's API takes str: patch the bytes in afterwards
        text = placeholder = "Q" * len(name)
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((4, 8)).astype(np.float32), text + "w")
    b = nh.from_array(rng.standard_normal(4).astype(np.float32), text + "b")
    nodes = [h.make_node("Gemm", [text + "x", text + "w", text + "b"], [text + "h"], name=text, transB=1),
             h.make_node("Relu", [text + "h"], [text + "y"], name="r" + text)]
    g = h.make_graph(nodes, text or "g", [h.make_tensor_value_info(text + "x", TensorProto.FLOAT, [1, 8])],
                     [h.make_tensor_value_info(text + "y", TensorProto.FLOAT, [1, 4])], [w, b])
    raw = h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString()
    if placeholder is not None:
        raw = raw.replace(placeholder.encode(), name)
    dst.write_bytes(raw)
    onnx.load(str(dst))              # still a readable model
    return dst


def compile_and_nm(files: list[Path], tmp: Path, cc: str = "gcc", flags=CFLAGS) -> str:
    """(a): every source compiles warning-free; the symbol table of all objects."""
    symbols = []
    for k, src in enumerate(files):
        obj = tmp / f"obj{k}.o"
        proc = subprocess.run([cc, *flags, "-I", str(src.parent), "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name} does not compile:\n{proc.stderr[-3000:]}"
        symbols.append(subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout)
    return "\n".join(symbols)


def model_sources(result) -> list[Path]:
    """The generated C of the model (``hm*.c``; the runtime files are copies, the same for every model)."""
    return [f.path for f in result.files if f.path.suffix == ".c" and f.path.name.startswith("hm")]


def run_verify(model: Path, samples: int = 3) -> tuple[int, str]:
    """``tinyml verify`` in this process, so an injected constructor would run here."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = tinyml(["verify", str(model), "-t", BOARD, "-n", str(samples)])
    return rc, out.getvalue() + err.getvalue()


def assert_verify_passes(model: Path, marker: Path) -> None:
    rc, text = run_verify(model)
    assert not marker.exists(), "the injected constructor ran during tinyml verify"
    assert rc == 0 and "PASS" in text and "FAIL" not in text, text[-2000:]
    assert all(is_comment_safe(line) for line in text.splitlines()), "raw model text printed"


# Names an importer may refuse (one line) instead of compiling: import validation refuses
# names that are not UTF-8 (rule name-utf8, both readers), and may refuse empty ones.
REFUSABLE = {"empty", "non_utf8"}


def _compile_or_refuse(model: Path, outdir: Path, backend: str, case: str):
    """The compile result, or None when the model is refused with one line (``REFUSABLE``)."""
    try:
        return compile_model(model, load_profile(BOARD), outdir, name="hm", backend=backend)
    except TinyMLError as e:
        assert case in REFUSABLE and "\n" not in str(e), e
        return None


# ---- cgen, from .tflite and .onnx: compile, nm, then tinyml verify -------------------------

@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_cgen_tflite(tmp_path, models, case):
    _cgen_case(tmp_path, case, lambda name: hostile_tflite(models.path("fc", "int8"), name, tmp_path / "hostile.tflite"))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_cgen_onnx(tmp_path, case):
    _cgen_case(tmp_path, case, lambda name: hostile_onnx(name, tmp_path / "hostile.onnx"))


def _cgen_case(tmp_path, case, make_model):
    """cgen on a model carrying a hostile name: refused in one line, or compiled with nothing injected."""
    marker = tmp_path / "PWNED"
    model = make_model(HOSTILE[case](marker))
    out = _compile_or_refuse(model, tmp_path / "out", "cgen", case)
    if out is None:
        return
    syms = compile_and_nm(model_sources(out.result), tmp_path)
    assert SYMBOL not in syms
    assert_verify_passes(model, marker)


# ---- tflm: C parts built as C and C++; the C++ glue is the benign model's, byte for byte ----

@pytest.mark.parametrize("case", ["comment_close", "non_utf8", "huge", "backslash_eol"])
def test_tflm(tmp_path, models, case):
    pytest.importorskip("tflite_micro")
    src = models.path("fc", "int8")
    name = HOSTILE[case](tmp_path / "PWNED")
    model = hostile_tflite(src, name, tmp_path / "hostile.tflite")
    benign = hostile_tflite(src, b"plain", tmp_path / "benign.tflite")
    dev = load_profile(BOARD)
    if _compile_or_refuse(model, tmp_path / "out", "tflm", case) is None:
        return
    compile_model(benign, dev, tmp_path / "ref", name="hm", backend="tflm")
    for f in ("hm.h", "hm_ops.h", "hm_tflm.cc"):
        assert (tmp_path / "out" / f).read_text() == (tmp_path / "ref" / f).read_text(), f
    main = tmp_path / "out" / "main.c"
    main.write_text('#include "hm.h"\n#include "hm_model_data.h"\n'
                    "int hm_main(void) { return hm_model_len == HM_MODEL_LEN ? HM_INPUT_BYTES : 0; }\n")
    syms = compile_and_nm([tmp_path / "out" / "hm_model_data.c", main], tmp_path)
    syms += compile_and_nm([main], tmp_path, cc="g++", flags=["-x", "c++", "-std=c++11", "-Wall", "-Werror"])
    assert SYMBOL not in syms


# ---- tvm: one small model, kernels + glue built and run on the host ----------------------

@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_tvm(tmp_path, models, fmt):
    pytest.importorskip("tvm")
    from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
    from platformio_tinyml.compilers.tvm import TvmCompiler
    from platformio_tinyml.device import DeviceProfile
    from platformio_tinyml.pipeline import load_any
    from platformio_tinyml.verify.parity import random_input
    from platformio_tinyml.verify.reference import reference_for
    host = DeviceProfile(board="host", name="x86_64 host", platform="native", arch="x86_64", core="x86-64",
                         word_bits=64, clock_hz=10**9, flash_bytes=1 << 30, ram_bytes=1 << 30, fpu="dp")
    marker = tmp_path / "PWNED"
    name = HOSTILE["comment_close"](marker)
    model = (hostile_tflite(models.path("fc", "int8"), name, tmp_path / "h.tflite") if fmt == "tflite"
             else hostile_onnx(name, tmp_path / "h.onnx"))
    graph, fmt = load_any(model)
    req = CompileRequest(model, fmt, graph, host, CompileOptions("hm", {"codegen": "c", "runtime": "none"}))
    res = TvmCompiler().compile(req, tmp_path / "out")
    srcs = [f.path for f in res.files if f.path.suffix == ".c"]
    assert SYMBOL not in compile_and_nm(srcs, tmp_path)
    so = tmp_path / "libhm.so"
    subprocess.run(["gcc", *CFLAGS, "-fPIC", "-shared", "-I", str(tmp_path / "out"), *map(str, srcs),
                    "-o", str(so), "-lm"], check=True)
    lib = ctypes.CDLL(str(so))
    assert not marker.exists(), "the injected constructor ran when the TVM build was loaded"
    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    ref = reference_for(model, graph)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = random_input(t_in, rng)
        y = np.zeros(t_out.shape, t_out.dtype.numpy)
        assert lib.hm_invoke(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data)) == 0
        want = np.asarray(ref.run([x])[0]).reshape(y.shape).astype(np.float64)
        assert np.max(np.abs(y - want)) <= (1 if y.dtype == np.int8 else 1e-5 * np.max(np.abs(want)))


# ---- emlearn: scikit-learn class labels ---------------------------------------------------

@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"empty"}))
def test_emlearn_class_labels(tmp_path, case):
    import joblib
    from sklearn.tree import DecisionTreeClassifier
    marker = tmp_path / "PWNED"
    label = HOSTILE[case](marker).decode("utf-8", errors="surrogateescape")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, label, "zz_other")
    model = tmp_path / "hostile.joblib"
    joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), model)
    out = compile_model(model, load_profile(BOARD), tmp_path / "out", name="hm", backend="emlearn")
    syms = compile_and_nm(model_sources(out.result), tmp_path)
    assert SYMBOL not in syms
    assert_verify_passes(model, marker)


# ---- Keras: layer and model names ---------------------------------------------------------

def test_keras_names(tmp_path):
    """Keras refuses '/' in names and TensorFlow's converter refuses '*', '\\', quotes and
    newlines (name scopes), so little but letters, digits, '_', '.' and '-' reaches the .tflite:
    a model named with those and C keywords compiles with cgen and emlearn."""
    import keras
    keras.utils.set_random_seed(0)
    x = keras.Input(shape=(6,), batch_size=1, name="void")
    h = keras.layers.Dense(5, activation="relu", name="d..-")(x)
    m = keras.Model(x, keras.layers.Dense(3, name="int")(h), name="static")
    model = tmp_path / "hostile.keras"
    m.save(model)
    for backend in ("cgen", "emlearn"):
        out = compile_model(model, load_profile(BOARD), tmp_path / backend, name="hm", backend=backend)
        assert SYMBOL not in compile_and_nm(model_sources(out.result), tmp_path)
    assert_verify_passes(model, tmp_path / "PWNED")


# ---- the module packer: the model's name goes into an ASCII header field -----------------

@pytest.mark.parametrize("case", ["non_ascii", "huge", "comment_close"])
def test_module_name_is_printable(tmp_path, models, case):
    from platformio_tinyml.module.format import decode_module
    from platformio_tinyml.module.kernels import Abi
    from platformio_tinyml.module.pack import pack_graph
    from platformio_tinyml.pipeline import load_any
    name = "modèle-ü-名".encode() if case == "non_ascii" else HOSTILE[case](tmp_path / "PWNED")
    model = hostile_tflite(models.path("fc", "int8"), name, tmp_path / "h.tflite")
    g, _ = load_any(model)
    res = pack_graph(g, model.read_bytes(), Abi.LP64_LE, 1, lambda b: bytes(64))
    name = decode_module(res.data).header.model_name
    assert 0 < len(name) <= 16 and all(" " <= c <= "~" for c in name)


# ---- tinyml inspect: names and op types printed as one escaped line each ---------

def _inspect_lines(model: Path) -> list[str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        rc = tinyml(["inspect", str(model)])
    return rc, out.getvalue().splitlines()


def _opaque_onnx(op_type: bytes, dst: Path) -> Path:
    """One node of domain com.microsoft (the checker takes any type there) typed ``op_type``:
    the reader carries it as an opaque op, whose type inspect prints."""
    import onnx
    from onnx import TensorProto, helper as h
    text = op_type.decode("utf-8", "replace") or "T"
    g = h.make_graph([h.make_node(text, ["x"], ["y"], domain="com.microsoft", name=text)], "g",
                     [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13), h.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    onnx.save(m, str(dst))
    return dst


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_inspect_prints_model_text_escaped(tmp_path, models, case):
    """Graph, tensor and (opaque) op type names reach the terminal escaped: no forged lines,
    no control characters, as many lines as for a model with plain names."""
    name = HOSTILE[case](tmp_path / "PWNED")
    for make in (lambda n, d: hostile_tflite(models.path("fc", "int8"), n, d / "m.tflite"),
                 lambda n, d: hostile_onnx(n, d / "m.onnx"), lambda n, d: _opaque_onnx(n, d / "o.onnx")):
        (tmp_path / "plain").mkdir(exist_ok=True)
        (tmp_path / "hostile").mkdir(exist_ok=True)
        rc_plain, plain = _inspect_lines(make(b"plain", tmp_path / "plain"))
        rc, lines = _inspect_lines(make(name, tmp_path / "hostile"))
        assert rc_plain == 0
        if rc != 0:
            assert case in REFUSABLE, lines
            continue
        assert len(lines) == len(plain), lines
        assert all(c.isprintable() for line in lines for c in line), lines


# ---- the service: its compile job runs this same pipeline in a limited child -----

@pytest.mark.parametrize("case", ["comment_close", "string_close", "newline_define"])
def test_service_compile_job(tmp_path, models, case):
    """The service's own job function (``service.tasks.compile_to``), in a ``run_limited`` child as
    the service runs it: the hostile model is loaded, checked and compiled in that one child, its
    sources compile with no injected symbol, and nothing the model carried ran (the service builds
    no C of its own)."""
    from platformio_tinyml.service import tasks
    from platformio_tinyml.service.jobs import run_limited
    marker = tmp_path / "PWNED"
    work = tmp_path / "job"
    work.mkdir()
    hostile_tflite(models.path("fc", "int8"), HOSTILE[case](marker), work / "model.tflite")
    device, limits = load_profile(BOARD).to_dict(), {"timeout_s": 300, "memory_bytes": 8 << 30}

    report, artifact = run_limited(tasks.compile_to, str(work), "model.tflite", device, "hm", "auto", {}, None,
                                   **limits)

    assert report["backend"] == "cgen", report["backend"]
    with tarfile.open(fileobj=io.BytesIO(artifact)) as tar:   # the artifact holds exactly what was written
        assert sorted(tar.getnames()) == sorted(p.name for p in (work / "out").iterdir())
    sources = [work / "out" / f["path"] for f in report["files"]
               if f["path"].endswith(".c") and f["path"].startswith("hm")]
    assert sources, report["files"]
    assert SYMBOL not in compile_and_nm(sources, tmp_path)
    assert not marker.exists()


# ---- the user's name option: checked before anything is written -------------------------

def test_name_option_is_checked(tmp_path, models):
    """The pipeline checks it for every backend, before a backend writes a file."""
    for bad in ["x(void){} int y", "../escape", "int", "a\nb", ""]:
        with pytest.raises(CompileError, match="name option") as e:
            compile_model(models.path("fc", "int8"), load_profile(BOARD), tmp_path / "out", name=bad,
                          backend="tflm")
        assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


# ---- the escaping functions themselves ---------------------------------------------------

def test_c_comment_text_is_inert(tmp_path):
    names = [HOSTILE[c](tmp_path / "PWNED") for c in HOSTILE] + [b"/x/", b"*", b"??=??/", "\u00e9\n".encode()]
    lines = []
    for n in names:
        text = c_comment_text(n, limit=80)
        assert is_comment_safe(text) and len(text) <= 83 and "\n" not in text
        lines += [f"/*{text}*/", f"// {text}", f"/* {text} */ int ok{len(lines)};"]
    src = tmp_path / "c.c"
    src.write_text("\n".join(lines) + "\nint tinyml_end;\n")
    syms = compile_and_nm([src], tmp_path, flags=[*CFLAGS, "-trigraphs", "-Wtrigraphs"])
    assert "tinyml_end" in syms and SYMBOL not in syms and "ok" in syms


def test_c_string_literal_round_trips(tmp_path):
    names = [HOSTILE[c](tmp_path / "PWNED") for c in HOSTILE if c != "huge"] + [bytes(range(256))]
    src = tmp_path / "s.c"
    decls = ",\n".join(c_string_literal(n) for n in names)
    src.write_text(f"#include <stdio.h>\nstatic const char *const s[] = {{\n{decls}\n}};\n"
                   "static const unsigned n[] = {" + ", ".join(str(len(n)) for n in names) + "};\n"
                   "int main(void) { for (unsigned i = 0; i < sizeof n / sizeof *n; i++) {"
                   " fwrite(s[i], 1, n[i], stdout); putchar(0); } return 0; }\n")
    exe = tmp_path / "s"
    subprocess.run(["gcc", *CFLAGS, "-trigraphs", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    assert out == b"".join(n + b"\0" for n in names)


def test_identifiers_and_prefixes():
    for text in ["int", "main", "new", "__x", "_Bool", "tml_kws", "1st", "", "*/", "a" * 100, "\xff", "a__b",
                 "math", "String", "stdint"]:
        ident = c_identifier(text)
        assert c_prefix(ident) == ident
    # NAME.h beside the runtime: "math" would hide <math.h> from every kernel (the build fails)
    assert (c_identifier("math"), c_identifier("stdint")) == ("math_m", "stdint_m")
    with pytest.raises(CompileError, match=r"math.h would hide <math.h>"):
        c_prefix("math")
    for bad in ["int", "class", "_x", "a__b", "tml_x", "a-b", "x" * 41, "", "a\n", "string", "Math", "arm_acle"]:
        with pytest.raises(CompileError):
            c_prefix(bad)


@pytest.mark.parametrize("damage", ["threshold_inf", "leaf_nan"])
def test_emlearn_non_finite_refused(tmp_path, damage):
    """A damaged tree (NaN/Inf): one line, never C with 'nan' in it or a traceback."""
    import joblib
    from sklearn.tree import DecisionTreeRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    est = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X, X[:, 0])
    if damage == "threshold_inf":
        est.tree_.threshold[0] = np.inf
    else:
        est.tree_.value[np.flatnonzero(est.tree_.children_left == -1)[0]] = np.nan
    model = tmp_path / "damaged.joblib"
    joblib.dump(est, model)
    with pytest.raises(CompileError) as e:
        compile_model(model, load_profile(BOARD), tmp_path / "out", name="hm", backend="emlearn")
    assert "\n" not in str(e.value) and ("nan" in str(e.value).lower() or "inf" in str(e.value))


def test_non_finite_numbers_refused():
    from platformio_tinyml.compilers.cgen.emit import c_literal
    assert c_float(0.1) == "0.10000000149011612f" and c_float(1) == "1.0f"
    for v in (float("nan"), float("inf"), -float("inf"), 1e39):
        with pytest.raises(CompileError, match="cannot hold"):
            c_float(v)
    with pytest.raises(CompileError, match="nan"):
        c_literal(np.array([1.0, np.nan], np.float32), "float")
