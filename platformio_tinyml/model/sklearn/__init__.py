"""scikit-learn models saved with pickle, joblib or skops.

These formats have no tensor-op IR: :func:`platformio_tinyml.pipeline.load_any`
returns ``(None, "sklearn")`` for them and backends that understand
estimators (``emlearn``) call :func:`load_estimator` themselves.

Unpickling runs code from the file: only load models you trust. ``.skops``
files are read with skops' safe loader and only the types it trusts by
default.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ...errors import ModelError

SUFFIXES = (".pkl", ".pickle", ".joblib", ".skops")
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


def _load_skops(path: Path) -> Any:
    try:
        from skops import io as sio
    except ImportError:
        raise ModelError("skops is not installed", where=str(path),
                         hint="pip install skops") from None
    untrusted = sio.get_untrusted_types(file=path)
    if untrusted:
        raise ModelError("the .skops file contains types that are not trusted by default: "
                         + ", ".join(untrusted), where=str(path),
                         hint="Re-save the model without custom classes, or use joblib")
    return sio.load(path)


__all__ = ["FORMAT", "SUFFIXES", "is_sklearn_file", "load_estimator"]
