"""The typed intermediate representation every importer produces and every
backend consumes. See :mod:`platformio_tinyml.ir.graph`."""

from .graph import (Activation, DType, Graph, Op, OpKind, Quant, Tensor,
                    SUPPORTED_OPS)
from . import attrs

__all__ = ["Activation", "DType", "Graph", "Op", "OpKind", "Quant", "Tensor",
           "SUPPORTED_OPS", "attrs"]
