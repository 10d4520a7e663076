"""Build the fuzzer's third seed set, ``tests/fuzz_corpus/seeds_ml/``: scikit-learn models exported
with skl2onnx as users export them, so that ``benchmarks/fuzz.py --seed-set ml`` mutates the
``ai.onnx.ml`` operators (tree ensembles' node arrays, linear and SVM coefficients, scalers, label
lists): the operators a service compiles from strangers' files.

    .venv/bin/python benchmarks/fuzz_seeds_ml.py

The set is written once and committed (a seeded fuzz run must mutate the same bytes whatever
scikit-learn or skl2onnx produce later); rerun this only to change the set. Every model kept
compiles with cgen and passes ``check_parity`` against onnxruntime.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fuzz_seeds_ops import verifies  # noqa: E402

OUT = REPO / "tests" / "fuzz_corpus" / "seeds_ml"


def estimators() -> dict:
    """Small models of each operator family skl2onnx emits (fixed seeds, 6 features)."""
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, Normalizer, StandardScaler
    from sklearn.svm import SVC, SVR
    from sklearn.tree import DecisionTreeClassifier
    Xc, yc = make_classification(200, 6, n_informative=4, n_classes=3, random_state=0)
    Xb, yb = make_classification(200, 6, n_informative=3, random_state=1)
    Xr, yr = make_regression(200, 6, noise=0.1, random_state=2)
    return {
        "gb_classifier_3": (GradientBoostingClassifier(n_estimators=4, max_depth=3, random_state=0).fit(Xc, yc), Xc),
        "tree_classifier_2": (DecisionTreeClassifier(max_depth=4, random_state=0).fit(Xb, yb), Xb),
        "forest_regressor": (RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(Xr, yr), Xr),
        "scaler_logistic_3": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(Xc, yc), Xc),
        "minmax_logistic_2": (make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=500)).fit(Xb, yb), Xb),
        "svc_rbf_3": (SVC(kernel="rbf", C=2.0).fit(Xc[:90], yc[:90]), Xc),
        "normalizer_linear_regression": (make_pipeline(Normalizer(), LinearRegression()).fit(Xr, yr), Xr),
        "svr_rbf": (SVR(kernel="rbf", C=3.0).fit(Xr[:60], yr[:60]), Xr),
    }


def main() -> int:
    from skl2onnx import to_onnx
    OUT.mkdir(parents=True, exist_ok=True)
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (est, X) in estimators().items():
            opts = {id(est): {"zipmap": False}} if hasattr(est, "predict_proba") or hasattr(est, "classes_") else None
            try:
                model = to_onnx(est, X[:1].astype(np.float32), options=opts)
            except NameError:                          # an estimator without the zipmap option
                model = to_onnx(est, X[:1].astype(np.float32))
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(model.SerializeToString())
            if verifies(path, Path(tmp) / name):
                shutil.copy(path, OUT / path.name)
                kept.append(name)
            else:
                print(f"{name}: does not verify, not kept", file=sys.stderr)
    print(f"{len(kept)} seeds in {OUT}: {', '.join(kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
