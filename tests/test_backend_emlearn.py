"""emlearn backend: generated C predicts exactly what scikit-learn predicts.

Goldens come from scikit-learn itself; the C is built with -Wall -Wextra
-Werror for the host and cross-compiled for Cortex-M4 and AVR.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")
pytest.importorskip("emlearn")

from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from platformio_tinyml.compilers.emlearn_backend import EmlearnCompiler  # noqa: E402
from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest  # noqa: E402
from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.pipeline import compile_model, load_any  # noqa: E402

SEED = 1234
N_TEST = 200


def _data():
    X, y = make_classification(n_samples=400, n_features=10, n_informative=6, n_classes=3,
                               random_state=SEED)
    return X * 37.0 + 5.0, y   # unscaled features on purpose


def _inputs(X):
    rng = np.random.default_rng(SEED)
    lo, hi = X.min(axis=0), X.max(axis=0)
    return rng.uniform(lo, hi, size=(N_TEST, X.shape[1])).astype(np.float32)


@pytest.fixture(scope="module")
def m4():
    return load_profile("nucleo_f446re")


def _build(outdir: Path, name: str) -> ctypes.CDLL:
    so = outdir / f"lib{name}.so"
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
           "-I", str(outdir), str(outdir / f"{name}.c"), "-o", str(so), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(so))


def _run(lib, name, X, out_dtype, n_out):
    fn = getattr(lib, f"{name}_invoke")
    outs = []
    for x in X:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros(n_out, dtype=out_dtype)
        assert fn(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data)) == 0
        outs.append(y.copy())
    return np.array(outs)


def _compile(tmp_path, est, dev, options=None, name="m"):
    path = tmp_path / f"{name}.joblib"
    joblib.dump(est, path)
    out = compile_model(path, dev, tmp_path / "out", name=name, backend="emlearn",
                        backend_options=options)
    return out, tmp_path / "out"


CLASSIFIERS = {
    "decision_tree": lambda: DecisionTreeClassifier(max_depth=6, random_state=SEED),
    "random_forest": lambda: RandomForestClassifier(n_estimators=10, random_state=SEED),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=10, random_state=SEED),
    "mlp": lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=SEED),
}


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_classes_equal_sklearn(tmp_path, m4, kind):
    X, y = _data()
    if kind == "mlp":
        X = X / 37.0      # MLP needs scaled inputs to train; the C still gets raw floats
    est = CLASSIFIERS[kind]().fit(X, y)
    out, outdir = _compile(tmp_path, est, m4)
    assert out.result.backend == "emlearn"
    lib = _build(outdir, "m")
    Xt = _inputs(X)
    got = _run(lib, "m", Xt, np.int32, 1)[:, 0]
    np.testing.assert_array_equal(got, est.predict(Xt))


def test_forest_of_pure_leaves_is_exact_on_training_points(tmp_path, m4):
    """Inputs equal to split values are where '<=' versus '<' would differ."""
    X, y = _data()
    X32 = X.astype(np.float32)
    est = RandomForestClassifier(n_estimators=5, random_state=SEED).fit(X32, y)
    _, outdir = _compile(tmp_path, est, m4)
    lib = _build(outdir, "m")
    got = _run(lib, "m", X32[:N_TEST], np.int32, 1)[:, 0]
    np.testing.assert_array_equal(got, est.predict(X32[:N_TEST]))


def test_iris_labels_and_proba(tmp_path, m4):
    X, y = load_iris(return_X_y=True)
    y = np.array([10, 20, 30])[y]               # labels that are not indices
    est = RandomForestClassifier(n_estimators=8, random_state=SEED).fit(X, y)
    _, outdir = _compile(tmp_path, est, m4, name="iris")
    Xt = _inputs(X)
    got = _run(_build(outdir, "iris"), "iris", Xt, np.int32, 1)[:, 0]
    np.testing.assert_array_equal(got, est.predict(Xt))
    _, outdir = _compile(tmp_path / "p", est, m4, {"output": "proba"}, name="irisp") if \
        (tmp_path / "p").mkdir() is None else (None, None)
    proba = _run(_build(outdir, "irisp"), "irisp", Xt, np.float32, 3)
    np.testing.assert_allclose(proba, est.predict_proba(Xt), atol=1e-6)
    assert "#define IRISP_OUTPUT_DTYPE_FLOAT32 1" in (outdir / "irisp.h").read_text()


def test_mlp_proba_close(tmp_path, m4):
    X, y = _data()
    X = X / 37.0
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=SEED).fit(X, y)
    _, outdir = _compile(tmp_path, est, m4, {"output": "proba"})
    Xt = _inputs(X)
    proba = _run(_build(outdir, "m"), "m", Xt, np.float32, 3)
    np.testing.assert_allclose(proba, est.predict_proba(Xt), atol=1e-4)


def test_regressor_values_close(tmp_path, m4):
    X, y = make_regression(n_samples=300, n_features=6, random_state=SEED)
    est = RandomForestRegressor(n_estimators=5, random_state=SEED).fit(X, y)
    _, outdir = _compile(tmp_path, est, m4)
    Xt = _inputs(X)
    got = _run(_build(outdir, "m"), "m", Xt, np.float32, 1)[:, 0]
    np.testing.assert_allclose(got, est.predict(Xt), rtol=1e-5, atol=1e-3)


def test_gaussian_nb_mostly_agrees(tmp_path, m4):
    X, y = _data()
    est = GaussianNB().fit(X, y)
    out, outdir = _compile(tmp_path, est, m4)
    assert any("Q16" in d for d in out.result.diagnostics)
    Xt = _inputs(X)
    got = _run(_build(outdir, "m"), "m", Xt, np.int32, 1)[:, 0]
    assert (got == est.predict(Xt)).mean() >= 0.9


@pytest.mark.parametrize("core", ["cortex-m4", "atmega2560"])
def test_cross_compiles_warning_free(tmp_path, m4, core):
    from platformio_tinyml.emu import compile_only
    if shutil.which("arm-none-eabi-gcc" if core.startswith("cortex") else "avr-gcc") is None:
        pytest.skip(f"no compiler for {core}")
    X, y = _data()
    for kind in ("random_forest", "mlp"):
        est = CLASSIFIERS[kind]().fit(X / 37.0 if kind == "mlp" else X, y)
        _, outdir = _compile(tmp_path / kind, est, m4) if (tmp_path / kind).mkdir() is None else (0, 0)
        fpu = "fpv4-sp-d16" if core == "cortex-m4" else None
        objs = compile_only([outdir / "m.c"], [outdir], core, fpu, out_dir=tmp_path / kind / "obj")
        assert objs and objs[0].stat().st_size > 0


def test_supports_says_why_not(tmp_path, m4):
    X, y = _data()
    path = tmp_path / "svc.joblib"
    joblib.dump(SVC().fit(X[:50], y[:50]), path)
    graph, fmt = load_any(path)
    assert (graph, fmt) == (None, "sklearn")
    req = CompileRequest(path, fmt, None, m4, CompileOptions("svc"))
    s = EmlearnCompiler().supports(req)
    assert not s.ok and "SVC" in s.reasons[0]
    tfl = CompileRequest(Path("x.tflite"), "tflite", None, m4, CompileOptions("x"))
    assert not EmlearnCompiler().supports(tfl).ok


def test_estimate_and_ram_gate_on_tiny_board(tmp_path, m4):
    X, y = _data()
    est = RandomForestClassifier(n_estimators=50, random_state=SEED).fit(X, y)
    path = tmp_path / "big.joblib"
    joblib.dump(est, path)
    req = CompileRequest(path, "sklearn", None, m4, CompileOptions("big"))
    s = EmlearnCompiler().supports(req)
    assert s.ok and s.estimate.flash_bytes > 10_000
    tiny = replace(m4, flash_bytes=4096)
    s = EmlearnCompiler().supports(replace(req, device=tiny))
    assert not s.ok and "flash" in s.reasons[0]
