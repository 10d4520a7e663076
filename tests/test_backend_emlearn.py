"""emlearn backend: generated C predicts exactly what scikit-learn predicts.

Goldens come from scikit-learn (and Keras) themselves; the C is built with
-Wall -Wextra -Werror for the host and cross-compiled for Cortex-M4 and AVR.
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
with np.errstate():                  # emlearn's import runs numpy.seterr(all="raise"); undo it
    pytest.importorskip("emlearn")

from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
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


def test_gaussian_nb_equals_sklearn(tmp_path, m4):
    """Generated C of scikit-learn's joint log-likelihood (not emlearn's Q16 runtime): exact classes."""
    X, y = _data()
    est = GaussianNB().fit(X, y)
    out, outdir = _compile(tmp_path, est, m4)
    assert out.result.details["family"] == "classic"
    Xt = _inputs(X)
    got = _run(_build(outdir, "m"), "m", Xt, np.int32, 1)[:, 0]
    want = est.predict(Xt)
    np.testing.assert_array_equal(got, want)
    assert len(set(want.tolist())) == 3


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
    joblib.dump(SVC(kernel="precomputed").fit(X[:50] @ X[:50].T, y[:50]), path)
    graph, fmt = load_any(path)
    assert (graph, fmt) == (None, "sklearn")
    req = CompileRequest(path, fmt, None, m4, CompileOptions("svc"))
    s = EmlearnCompiler().supports(req)
    assert not s.ok and "SVC kernel 'precomputed' is not supported" in s.reasons[0]
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


# ---- KNeighborsClassifier: brute-force search in double (or float), not emlearn's int16 runtime

@pytest.mark.parametrize("metric,k,precision", [("euclidean", 5, "double"), ("euclidean", 4, "float"),
                                                ("manhattan", 7, "double")])
def test_knn_equals_sklearn(tmp_path, m4, metric, k, precision):
    X, y = _data()                                  # unscaled floats, not float32 values
    est = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(X, np.array([3, 7, 9])[y])
    Xt = _inputs(X)
    out, outdir = _compile(tmp_path, est, m4, {"precision": precision})
    assert out.result.details["family"] == "knn"
    got = _run(_build(outdir, "m"), "m", Xt, np.int32, 1)[:, 0]
    np.testing.assert_array_equal(got, est.predict(Xt))
    (tmp_path / "p").mkdir()
    _, outdir = _compile(tmp_path / "p", est, m4, {"precision": precision, "output": "proba"}, name="kp")
    proba = _run(_build(outdir, "kp"), "kp", Xt, np.float32, 3)
    np.testing.assert_array_equal(proba, est.predict_proba(Xt).astype(np.float32))


def test_knn_training_points_stored_as_float_when_exact(tmp_path, m4):
    X, y = _data()
    X32 = X.astype(np.float32)
    est = KNeighborsClassifier(n_neighbors=3).fit(X32, y)
    out, outdir = _compile(tmp_path, est, m4)
    src = (outdir / "m.c").read_text()
    assert "static const float m_eml_data[" in src and "double best[" in src
    got = _run(_build(outdir, "m"), "m", X32[:N_TEST], np.int32, 1)[:, 0]
    np.testing.assert_array_equal(got, est.predict(X32[:N_TEST]))


@pytest.mark.parametrize("params,why", [({"metric": "cosine"}, "metric 'cosine'"),
                                        ({"weights": "distance"}, "weights='distance'"),
                                        ({"metric": "minkowski", "p": 3}, "metric 'minkowski'")])
def test_knn_unsupported_variants_say_why(tmp_path, m4, params, why):
    X, y = _data()
    path = tmp_path / "knn.joblib"
    joblib.dump(KNeighborsClassifier(**params).fit(X, y), path)
    s = EmlearnCompiler().supports(CompileRequest(path, "sklearn", None, m4, CompileOptions("knn")))
    assert not s.ok and why in s.reasons[0], s.reasons


# ---- GaussianMixture: emlearn's float32 runtime (parameters printed exactly)

def _gmm_data():
    X, _ = make_classification(n_samples=400, n_features=6, n_informative=6, n_redundant=0,
                               n_classes=3, random_state=SEED)
    return X * 37.0 + 5.0


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_gmm_component_proba_and_score(tmp_path, m4, cov):
    X = _gmm_data()
    est = GaussianMixture(n_components=4, covariance_type=cov, random_state=SEED).fit(X)
    Xt = _inputs(X)
    X64 = Xt.astype(np.float64)
    results = {}
    for output, dt, n in (("class", np.int32, 1), ("proba", np.float32, 4), ("score", np.float32, 1)):
        (tmp_path / output).mkdir()
        out, outdir = _compile(tmp_path / output, est, m4, {"output": output}, name="g")
        assert out.result.details["components"] == 4
        results[output] = _run(_build(outdir, "g"), "g", Xt, dt, n)
    np.testing.assert_array_equal(results["class"][:, 0], est.predict(X64))
    np.testing.assert_allclose(results["proba"], est.predict_proba(X64), atol=1e-5)
    np.testing.assert_allclose(results["score"][:, 0], est.score_samples(X64), rtol=1e-5)


def test_gmm_ill_conditioned_covariance_is_flagged(tmp_path, m4):
    X, _ = _data()                                  # has redundant (linearly dependent) features
    est = GaussianMixture(n_components=3, random_state=SEED).fit(X)
    path = tmp_path / "g.joblib"
    joblib.dump(est, path)
    out = compile_model(path, m4, tmp_path / "out", name="g", backend="emlearn")
    assert any("ill-conditioned" in d for d in out.result.diagnostics)


def test_output_options_checked(tmp_path, m4):
    X, y = _data()
    for est, opts, why in ((GaussianNB().fit(X, y), {"output": "score"}, "output=score"),
                           (KNeighborsClassifier().fit(X, y), {"precision": "half"}, "precision")):
        path = tmp_path / "m.joblib"
        joblib.dump(est, path)
        req = CompileRequest(path, "sklearn", None, m4, CompileOptions("m", backend_options=opts))
        s = EmlearnCompiler().supports(req)
        assert not s.ok and why in s.reasons[0], s.reasons


# ---- Keras Dense-only models (reach backends as the converted .tflite)

def _keras_model(kind: str):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(SEED)
    L = keras.layers
    if kind == "softmax":
        return keras.Sequential([keras.Input((10,)), L.Dense(16, activation="relu"), L.Dropout(0.2),
                                 L.Dense(12, activation="tanh"), L.Dense(3, activation="softmax")])
    if kind == "logits":
        return keras.Sequential([keras.Input((10,)), L.Dense(16, activation="sigmoid"), L.Dense(4)])
    if kind == "functional":
        inp = keras.Input((10,))
        h = L.ReLU()(L.Dense(16)(inp))
        return keras.Model(inp, L.Softmax()(L.Dense(3)(h)))
    if kind == "conv":
        return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3), L.Flatten(), L.Dense(3)])
    if kind == "single":
        return keras.Sequential([keras.Input((10,)), L.Dense(3, activation="softmax")])
    raise ValueError(kind)


@pytest.mark.parametrize("kind,suffix", [("softmax", ".keras"), ("logits", ".keras"), ("functional", ".h5")])
def test_keras_dense_scores_match_keras(tmp_path, m4, kind, suffix):
    model = _keras_model(kind)
    path = tmp_path / f"k{suffix}"
    model.save(path)
    out = compile_model(path, m4, tmp_path / "out", name="k", backend="emlearn")
    assert out.request.model_format == "tflite"       # cgen & co. still get the converted graph
    assert out.result.details["output"] == "scores"
    X, _ = _data()
    Xt = _inputs(X)                                   # unscaled inputs: values up to ~200
    n = model.outputs[0].shape[-1]
    got = _run(_build(tmp_path / "out", "k"), "k", Xt, np.float32, n)
    ref = model.predict(Xt, verbose=0)
    scale = np.abs(ref).max(axis=1, keepdims=True)
    # float32 in both; only the summation order differs
    assert np.all(np.abs(got - ref) <= 1e-5 * np.abs(ref) + 2e-6 * scale)
    assert "#define K_OUTPUT_DTYPE_FLOAT32 1" in (tmp_path / "out" / "k.h").read_text()


def test_keras_unsupported_models_say_why(tmp_path, m4):
    for kind, why in (("conv", "Dense layers"), ("single", "at least 2 Dense")):
        path = tmp_path / f"{kind}.keras"
        _keras_model(kind).save(path)
        graph, fmt = load_any(path)
        req = CompileRequest(Path(graph.meta["tflite_path"]), "tflite", graph, m4, CompileOptions(kind))
        s = EmlearnCompiler().supports(req)
        assert not s.ok and why in s.reasons[0], s.reasons


@pytest.mark.parametrize("core", ["cortex-m4", "atmega2560"])
def test_knn_gmm_keras_cross_compile_warning_free(tmp_path, m4, core):
    from platformio_tinyml.emu import compile_only
    if shutil.which("arm-none-eabi-gcc" if core.startswith("cortex") else "avr-gcc") is None:
        pytest.skip(f"no compiler for {core}")
    X, y = _data()
    fpu = "fpv4-sp-d16" if core == "cortex-m4" else None
    models = {"knn": KNeighborsClassifier(n_neighbors=5).fit(X[:100], y[:100]),
              "gmm": GaussianMixture(n_components=3, random_state=SEED).fit(_gmm_data())}
    for kind, est in models.items():
        (tmp_path / kind).mkdir()
        _, outdir = _compile(tmp_path / kind, est, m4)
        objs = compile_only([outdir / "m.c"], [outdir], core, fpu, out_dir=tmp_path / kind / "obj")
        assert objs and objs[0].stat().st_size > 0
    if core == "cortex-m4":
        path = tmp_path / "k.keras"
        _keras_model("softmax").save(path)
        compile_model(path, m4, tmp_path / "kout", name="k", backend="emlearn")
        objs = compile_only([tmp_path / "kout" / "k.c"], [tmp_path / "kout"], core, fpu,
                            out_dir=tmp_path / "kobj")
        assert objs and objs[0].stat().st_size > 0
