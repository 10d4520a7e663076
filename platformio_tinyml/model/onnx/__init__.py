"""ONNX import: float32, QDQ and QLinear int8 models, converted to the NHWC IR.

See :mod:`.layout` for the NCHW -> NHWC decision and :mod:`.qdq` for the
quantized forms.
"""
from .layout import nchw_to_nhwc, nhwc_to_nchw
from .reader import SUPPORTED_ONNX_OPS, load_onnx

__all__ = ["SUPPORTED_ONNX_OPS", "load_onnx", "nchw_to_nhwc", "nhwc_to_nchw"]
