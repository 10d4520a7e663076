"""Imported once by the forkserver (see :mod:`.jobs`): every compile child is
forked with the model readers and the backend descriptors already loaded, so
a job pays for the compile, not for imports."""

import gc
import importlib.readers  # noqa: F401  (what reading cgen's runtime sources imports)
import importlib.resources.readers  # noqa: F401

from ..compilers.cgen import backend as _cgen, lower_f32, lower_s8, lowering, quant  # noqa: F401
# imported by the first compile (lowering by op kind, the runtime's package): here, so that
# every job's child does not import them again
from ..compilers.cgen import lower_ew, lower_mm, lower_rnn, lower_shape, lower_var, runtime  # noqa: F401
from ..compilers.registry import discover
from ..model import loader, sklearn  # noqa: F401
from ..model.tflite import reader as _tflite  # noqa: F401
from . import tasks  # noqa: F401

discover()
# Everything above is kept for the forkserver's life: moved out of the garbage collector's
# reach, a child's collections do not touch (and so copy) the pages it shares with it.
gc.freeze()
