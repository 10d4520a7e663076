"""The ``vela`` backend: int8 TFLite models for Arm Ethos-U NPUs via ethos-u-vela.

:mod:`.run` calls the Vela compiler in a subprocess and parses its summary
CSV; :mod:`.backend` is the plugin. The optimized model is written with the
``tflm`` backend's emitter, since TFLM runs it (the NPU part as one
``ethos-u`` custom operator).
"""

from .backend import VelaCompiler

__all__ = ["VelaCompiler"]
