"""The ``emlearn`` backend: scikit-learn estimators to C through PyPI emlearn.

emlearn writes the model; this package picks its options so predictions
equal scikit-learn's, and wraps the result in the project's one C API
(``NAME_invoke``). :mod:`.describe` says what an estimator costs,
:mod:`.emit` writes the files, :mod:`.backend` is the plugin.
"""

from .backend import EmlearnCompiler

__all__ = ["EmlearnCompiler"]
