"""NCHW (ONNX) to NHWC (IR) layout conversion.

The layout decision
-------------------
ONNX models are channels-first (activations ``[N, C, H, W]``, conv weights
``[O, I/group, kH, kW]``); the IR and every cgen kernel are channels-last.
The importer converts the whole graph once, at import time, instead of
inserting transposes:

* every rank-4 activation is stored NHWC (:attr:`Layout.NHWC`); weights are
  transposed to OHWI (conv), ``[1, kH, kW, C*M]`` (depthwise) and
  ``[out, in]`` (Gemm/MatMul); axes of Concat/Pad/Softmax/Mean are remapped;
  constants broadcast against an NHWC activation are transposed too;
* ``Flatten``/``Reshape`` of an ``[N, C, H, W]`` tensor to ``[N, C*H*W]``
  keeps the NHWC element order (:attr:`Layout.FLAT_NHWC`); the Gemm/MatMul
  that consumes it gets its input columns permuted to match, so no data is
  moved at run time;
* the generated C API is NHWC too: a rank-4 graph input ``[N, C, H, W]``
  becomes ``[N, H, W, C]``, and so does a rank-4 graph output. The graph
  records this as ``graph.meta['input_layout'] = 'NCHW->NHWC'`` (and
  ``'output_layout'``, plus per-tensor lists ``'input_layouts'`` /
  ``'output_layouts'`` holding ``'NCHW->NHWC'`` or ``'same'``), so
  verification transposes the onnxruntime inputs with
  :func:`nhwc_to_nchw` and its outputs with :func:`nchw_to_nhwc`;
* ops that compute in ONNX's order (MatMul/Gemm as BATCH_MATMUL, binary ops
  and Concat mixing an NHWC activation with one in ONNX's order) read NHWC
  operands through a TRANSPOSE back and give :attr:`Layout.SAME` results, at
  rank 4 too; such a graph output keeps ONNX's order (``'same'``);
* a model whose rank-4 input is only read by ``Transpose(perm=[0,3,1,2])``
  (an NHWC model exported from TensorFlow) keeps its NHWC input unchanged and
  the transpose disappears; ``Transpose`` is otherwise supported only where it
  cancels the layout change.
"""

from __future__ import annotations

import enum

import numpy as np

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)
CONVERTED = "NCHW->NHWC"
SAME = "same"


class Layout(enum.Enum):
    SAME = "same"            # IR tensor has ONNX's shape and element order
    NHWC = "nhwc"            # ONNX [N,C,H,W] stored as [N,H,W,C]
    FLAT_NHWC = "flat_nhwc"  # ONNX [N, C*H*W] stored in NHWC flatten order


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """An ONNX-side rank-4 array in the IR's layout."""
    return np.ascontiguousarray(np.transpose(x, NCHW_TO_NHWC))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """An IR-side rank-4 array in ONNX's layout."""
    return np.ascontiguousarray(np.transpose(x, NHWC_TO_NCHW))


def ir_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    if layout is Layout.NHWC:
        return tuple(shape[i] for i in NCHW_TO_NHWC)
    return tuple(shape)


def ir_axis(axis: int, rank: int, layout: Layout) -> int:
    """Where ONNX axis ``axis`` of a rank-``rank`` tensor lives in the IR tensor."""
    axis %= rank
    if layout is Layout.NHWC:
        return NCHW_TO_NHWC.index(axis)
    return axis


def spatial_is_trivial(shape: tuple[int, ...]) -> bool:
    """True if NCHW and NHWC orders of ``shape`` coincide (H*W == 1 or C == 1)."""
    return len(shape) == 4 and (shape[2] * shape[3] == 1 or shape[1] == 1)


def broadcast_const(c: np.ndarray, layout: Layout) -> np.ndarray:
    """A constant broadcast against an activation of ``layout``, in IR order."""
    if layout is Layout.NHWC and c.ndim > 0 and c.size > 1:
        c = c.reshape((1,) * (4 - c.ndim) + c.shape)
        return nchw_to_nhwc(c)
    if layout is Layout.FLAT_NHWC and c.size > 1:
        raise ValueError("per-element constant on a flattened NCHW tensor")
    return c


def conv_filter(w: np.ndarray) -> np.ndarray:
    """``[O, I, kH, kW]`` -> OHWI."""
    return np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1)))


def depthwise_filter(w: np.ndarray) -> np.ndarray:
    """``[C*M, 1, kH, kW]`` -> ``[1, kH, kW, C*M]`` (output channel c*M+m reads input c in both)."""
    return np.ascontiguousarray(np.transpose(w, (1, 2, 3, 0)))


def flat_columns(chw: tuple[int, int, int]) -> np.ndarray:
    """For each NHWC-flatten position, the NCHW-flatten index holding the same element."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
