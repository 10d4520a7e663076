"""Imported once by the forkserver (see :mod:`.jobs`): every compile child is
forked with the model readers and the backend descriptors already loaded, so
a job pays for the compile, not for imports."""

from ..compilers.cgen import backend as _cgen, lower_f32, lower_s8, lowering, quant  # noqa: F401
from ..compilers.registry import discover
from ..model import loader, sklearn  # noqa: F401
from ..model.tflite import reader as _tflite  # noqa: F401
from . import tasks  # noqa: F401

discover()
