"""Imported once by the forkserver (see :mod:`.jobs`): every compile child is
forked with the model readers and the backend descriptors already loaded, so
a job pays for the compile, not for imports."""

import gc
import importlib
import importlib.readers  # noqa: F401  (what reading cgen's runtime sources imports)
import importlib.resources.readers  # noqa: F401

from ..compilers.cgen import backend as _cgen, lower_f32, lower_s8, lowering, quant  # noqa: F401
# imported by the first compile (lowering by op kind, the runtime's package): here, so that
# every job's child does not import them again
from ..compilers.cgen import lower_ew, lower_logic, lower_mm, lower_rnn, lower_shape, lower_var, runtime  # noqa: F401
from ..compilers.registry import discover
from ..model import loader, sklearn  # noqa: F401
from ..model.tflite import reader as _tflite  # noqa: F401
from . import tasks  # noqa: F401

# scikit-learn models: skops, scikit-learn's estimator families and emlearn take seconds to
# import; a forest job spent 5 s of its 5.2 s on them. Optional: absent, those jobs fail
# with the loader's own line, as they would have.
for _name in ("skops.io", "sklearn.ensemble", "sklearn.tree", "sklearn.neighbors", "sklearn.neural_network",
              "sklearn.linear_model", "sklearn.svm", "sklearn.naive_bayes", "emlearn", "emlearn.cgen"):
    try:
        importlib.import_module(_name)
    except ImportError:
        pass

discover()
# Everything above is kept for the forkserver's life: moved out of the garbage collector's
# reach, a child's collections do not touch (and so copy) the pages it shares with it.
gc.freeze()
