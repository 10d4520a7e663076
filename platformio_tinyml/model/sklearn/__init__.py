"""scikit-learn models saved with pickle, joblib or skops.

These formats have no tensor-op IR: :func:`platformio_tinyml.pipeline.load_any`
returns ``(None, "sklearn")`` for them and backends that understand
estimators (``emlearn``) call :func:`load_estimator` themselves.

Unpickling runs code from the file: only load models you trust. ``.skops``
files are read with skops' safe loader and only the types it trusts by
default, plus :data:`SKOPS_TRUSTED`: scikit-learn's own fitted-state
containers (tree arrays, histogram-boosting predictors, neighbour trees and
distance metrics, MLP optimizers) that skops 0.16 leaves to the caller to
trust. Without them no tree, forest, boosting, k-NN or MLP model saved with
skops would load. They are data classes of scikit-learn restored from
arrays, not functions or arbitrary classes; anything else is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ...errors import ModelError

SUFFIXES = (".pkl", ".pickle", ".joblib", ".skops")
SKOPS_TRUSTED = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.metrics._dist_metrics.EuclideanDistance32",
    "sklearn.metrics._dist_metrics.ManhattanDistance64", "sklearn.metrics._dist_metrics.ManhattanDistance32",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64", "sklearn.metrics._dist_metrics.ChebyshevDistance32",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64", "sklearn.metrics._dist_metrics.MinkowskiDistance32",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
})
FORMAT = "sklearn"


def is_sklearn_file(path: str | Path) -> bool:
    """True when ``path`` has a suffix this loader reads (no file access)."""
    return Path(path).suffix.lower() in SUFFIXES


def load_estimator(path: str | Path) -> Any:
    """Return the estimator stored in ``path``.

    Raises :class:`ModelError` when the file cannot be read, a needed
    package is missing, or it holds no scikit-learn-style estimator.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".skops":
            obj = _load_skops(path)
        elif suffix == ".joblib":
            obj = _load_joblib(path)
        else:
            with path.open("rb") as f:
                obj = pickle.load(f)
    except ModelError:
        raise
    except Exception as e:  # unpickling raises anything a class's __setstate__ raises
        raise ModelError(f"cannot read the model ({type(e).__name__}: {e})", where=str(path),
                         hint="Save the estimator with joblib.dump(model, path) using the same "
                              "scikit-learn version") from None
    if not hasattr(obj, "predict"):
        raise ModelError(f"the file holds a {type(obj).__name__}, not a fitted estimator",
                         where=str(path), hint="Save the fitted estimator itself, not a dict or array")
    return obj


def _load_joblib(path: Path) -> Any:
    try:
        import joblib
    except ImportError:
        raise ModelError("joblib is not installed", where=str(path),
                         hint="pip install 'platformio-tinyml[sklearn]'") from None
    return joblib.load(path)


def _skops():
    try:
        from skops import io as sio
    except ImportError:
        raise ModelError("skops is not installed", hint="pip install 'platformio-tinyml[sklearn]'") from None
    return sio


def check_skops(path: Path) -> list[str]:
    """The types a ``.skops`` file needs trusted, all in :data:`SKOPS_TRUSTED`, or one line naming
    the others. Reads the file's schema only: no object is built. Called before any backend is
    asked, so an untrusted file is refused with this line, not as every backend's reason."""
    path = Path(path)
    try:
        unknown = set(_skops().get_untrusted_types(file=path))
    except ModelError as e:
        raise ModelError(e.what, where=str(path), hint=e.hint) from None
    except Exception as e:  # a damaged archive: zipfile's and json's errors
        raise ModelError(f"cannot read the .skops file ({type(e).__name__}: {str(e)[:160]})", where=str(path),
                         hint="Save the estimator again with skops.io.dump") from None
    untrusted = sorted(unknown - SKOPS_TRUSTED)
    if untrusted:
        raise ModelError("the .skops file contains types that are not trusted by default: "
                         + ", ".join(untrusted), where=str(path),
                         hint="Re-save the model without custom classes, or use joblib")
    return sorted(unknown)


def _load_skops(path: Path) -> Any:
    return _skops().load(path, trusted=check_skops(path))


__all__ = ["FORMAT", "SKOPS_TRUSTED", "SUFFIXES", "check_skops", "is_sklearn_file", "load_estimator"]
