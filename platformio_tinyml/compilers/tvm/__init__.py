"""The ``tvm`` backend: Apache TVM per-operator kernels run by generated C glue.

:mod:`.lower` imports the model with TVM and reads the kernel call order,
:mod:`.emit` writes the kernels, the glue and the common C API,
:mod:`.backend` is the plugin. TVM is imported only when the backend is used.
"""

from .backend import TvmCompiler

__all__ = ["TvmCompiler"]
