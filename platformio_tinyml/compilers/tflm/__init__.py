"""The ``tflm`` backend: a .tflite model for projects that link TensorFlow Lite Micro.

:mod:`.flatbuffer` reads the operators and tensor types straight from the
flatbuffer, :mod:`.emit` writes the aligned model array and the op-resolver
header, :mod:`.backend` is the plugin. The ``vela`` backend reuses the first
two for its optimized model.
"""

from .backend import TflmCompiler

__all__ = ["TflmCompiler"]
