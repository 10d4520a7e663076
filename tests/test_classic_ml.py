"""Classical ML beyond emlearn: scaler Pipelines, linear models, kernel SVMs, boosting,
IsolationForest and MLPRegressor compile to C that predicts what scikit-learn predicts.

Goldens are scikit-learn's own predict(): classes must be identical, values within 1e-5
relative (the C output is float32). The C is built with -Werror for the host, cross-compiled
warning-free for Cortex-M0+ and AVR, and one model runs in QEMU on a Cortex-M3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from sklearn.ensemble import (AdaBoostClassifier, GradientBoostingClassifier,  # noqa: E402
                              GradientBoostingRegressor, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor, IsolationForest, RandomForestClassifier)
from sklearn.linear_model import (Lasso, LinearRegression, LogisticRegression, Ridge,  # noqa: E402
                                  RidgeClassifier, SGDClassifier)
from sklearn.neural_network import MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR, NuSVC  # noqa: E402

from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.emu import build_firmware, compile_only, run  # noqa: E402
from platformio_tinyml.pipeline import compile_model  # noqa: E402
from test_backend_emlearn import _build, _run  # noqa: E402

SEED = 7
_rng = np.random.default_rng(SEED)
X = _rng.standard_normal((300, 6)) * [1, 2, 0.5, 3, 1, 10] + [0, 1, -2, 0, 5, 0]   # unscaled on purpose
Y3 = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > -2).astype(int)
Y2 = (X[:, 0] * X[:, 3] > 0).astype(int) * 5 + 2            # labels 2 and 7
YR = X[:, 0] * 2 + np.sin(X[:, 1]) + 0.1 * X[:, 5]
S = StandardScaler

MODELS = {
    "logreg_multi": (lambda: make_pipeline(S(), LogisticRegression(max_iter=500)), Y3),
    "logreg_binary": (lambda: LogisticRegression(max_iter=500), Y2),
    "ridge_classifier": (lambda: make_pipeline(MinMaxScaler(), RidgeClassifier()), Y3),
    "linear_svc": (lambda: make_pipeline(S(), LinearSVC()), Y2),
    "sgd": (lambda: make_pipeline(RobustScaler(), SGDClassifier(random_state=SEED)), Y3),
    "ridge": (lambda: make_pipeline(S(), Ridge()), YR),
    "linear_regression": (lambda: LinearRegression(), YR),
    "lasso": (lambda: make_pipeline(MaxAbsScaler(), Lasso(alpha=0.01)), YR),
    "linear_svr": (lambda: make_pipeline(S(), LinearSVR(max_iter=5000)), YR),
    "svc_rbf": (lambda: make_pipeline(S(), SVC()), Y3),
    "svc_rbf_binary": (lambda: make_pipeline(S(), SVC(C=10)), Y2),
    "svc_poly": (lambda: make_pipeline(S(), SVC(kernel="poly")), Y3),
    "nu_svc": (lambda: make_pipeline(S(), NuSVC()), Y3),
    "svr": (lambda: make_pipeline(S(), SVR()), YR),
    "gradient_boosting": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=SEED), Y3),
    "gradient_boosting_binary": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=SEED), Y2),
    "gradient_boosting_regressor": (lambda: GradientBoostingRegressor(n_estimators=20, random_state=SEED), YR),
    "hist_gradient_boosting": (lambda: HistGradientBoostingClassifier(max_iter=20), Y3),
    "hist_gradient_boosting_binary": (lambda: HistGradientBoostingClassifier(max_iter=20), Y2),
    "hist_gradient_boosting_regressor": (lambda: HistGradientBoostingRegressor(max_iter=20), YR),
    "adaboost": (lambda: AdaBoostClassifier(n_estimators=20, random_state=SEED), Y3),
    "adaboost_binary": (lambda: AdaBoostClassifier(n_estimators=20, random_state=SEED), Y2),
    "isolation_forest": (lambda: IsolationForest(n_estimators=20, random_state=SEED), None),
    "mlp_regressor": (lambda: make_pipeline(S(), MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=300, random_state=SEED)), YR),
    "scaled_random_forest": (lambda: make_pipeline(S(), RandomForestClassifier(n_estimators=5, random_state=SEED)), Y3),
}


def _fit(kind):
    make, y = MODELS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # convergence warnings of the short fits
        return make().fit(X) if y is None else make().fit(X, y)


def _inputs(n=300):
    rng = np.random.default_rng(SEED + 1)
    lo, hi = X.min(axis=0), X.max(axis=0)
    return rng.uniform(lo - 1, hi + 1, size=(n, X.shape[1])).astype(np.float32)


@pytest.fixture(scope="module")
def m4():
    return load_profile("nucleo_f446re")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_predictions_equal_sklearn(tmp_path, m4, kind):
    est = _fit(kind)
    joblib.dump(est, tmp_path / "m.joblib")
    out = compile_model(tmp_path / "m.joblib", m4, tmp_path / "out", name="m")
    assert out.result.backend == "emlearn"
    lib = _build(tmp_path / "out", "m")
    Xt = _inputs()
    want = est.predict(Xt.astype(np.float64))
    regressor = MODELS[kind][1] is YR
    got = _run(lib, "m", Xt, np.float32 if regressor else np.int32, 1)[:, 0]
    if regressor:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)
        assert len(set(want.tolist())) > 1    # the inputs reach more than one class


@pytest.mark.parametrize("core,fpu", [("cortex-m0plus", None), ("atmega2560", None)])
def test_cross_compiles_warning_free(tmp_path, m4, core, fpu):
    for kind in ("svc_rbf", "hist_gradient_boosting", "logreg_multi", "isolation_forest", "mlp_regressor"):
        joblib.dump(_fit(kind), tmp_path / f"{kind}.joblib")
        outdir = tmp_path / kind
        compile_model(tmp_path / f"{kind}.joblib", m4, outdir, name="m")
        objs = compile_only([outdir / "m.c"], [outdir], core, fpu, out_dir=outdir / "obj")
        assert objs and objs[0].stat().st_size > 0


def test_runs_on_cortex_m3_in_qemu(tmp_path, m4):
    """The SVC pipeline on an emulated Cortex-M3 (soft double): the same classes as scikit-learn."""
    est = _fit("svc_rbf")
    joblib.dump(est, tmp_path / "m.joblib")
    compile_model(tmp_path / "m.joblib", m4, tmp_path / "out", name="m")
    Xt = _inputs(24)
    rows = ",\n".join("{" + ", ".join(f"{float(v)!r}f" for v in x) + "}" for x in Xt)
    main = tmp_path / "main.c"
    main.write_text(f"""#include <stdint.h>
#include "m.h"
#include "tml_board.h"
static const float xs[{len(Xt)}][6] = {{{rows}}};
int main(void)
{{
    for (int i = 0; i < {len(Xt)}; i++) {{
        int32_t c;
        if (m_invoke(xs[i], &c) != 0) {{
            return 1;
        }}
        board_print_i32(c);
        board_putc(' ');
    }}
    board_putc('\\n');
    return 0;
}}
""")
    elf = build_firmware([main, tmp_path / "out" / "m.c"], [tmp_path / "out"], tmp_path / "fw.elf", "mps2-an385",
                         ldflags=["-lm"])
    result = run(elf, "mps2-an385", timeout=60)
    assert result.exit_code == 0, result
    assert result.stdout.split() == [str(v) for v in est.predict(Xt.astype(np.float64))]
