"""Quantization helpers of the ONNX importer: QDQ and QLinear forms -> TFLite-style int8.

Both quantized ONNX forms map onto IR tensors with :class:`~platformio_tinyml.ir.Quant`:

* QDQ (``onnxruntime.quantization.quantize_static(quant_format=QuantFormat.QDQ)``):
  ``DequantizeLinear -> float op -> QuantizeLinear`` becomes one int8 IR op
  whose output carries the QuantizeLinear's scale and zero point;
  ``DequantizeLinear`` of a constant is a quantized weight/bias;
* QLinear (``QLinearConv``, ``QLinearMatMul``, ``QLinearAdd``/``QLinearMul``,
  ``QGemm``, ``QLinearGlobalAveragePool``): int8 tensors flow between the ops
  and each op names its own scales.

``QuantizeLinear`` of a float activation (graph input) becomes ``QUANTIZE``;
a ``DequantizeLinear`` whose float result is needed (graph output, or an op
that stays float) becomes ``DEQUANTIZE``.

uint8 tensors are shifted to int8: ``q - 128`` with zero point ``zp - 128``
represents exactly the same real values, so this is lossless. Weights must
end up symmetric (zero point 0): uint8 weights are only accepted with zero
point 128. uint8 graph inputs/outputs are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import OpKind, Quant

UINT8_HINT = "uint8 quantization is unsupported here: quantize with QuantType.QInt8 (activation_type and weight_type)"


@dataclass
class QConst:
    """A quantized constant (``DequantizeLinear`` of an initializer), uint8 already shifted."""
    q: np.ndarray            # int8 or int32
    scale: np.ndarray        # float32, scalar or per channel
    zero_point: np.ndarray   # int, same size as scale
    axis: int = 1
    was_uint8: bool = False

    def real(self) -> np.ndarray:
        if self.scale.size == 1:
            return ((self.q.astype(np.float32) - np.float32(self.zero_point.reshape(-1)[0]))
                    * np.float32(self.scale.reshape(-1)[0])).astype(np.float32)
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return ((self.q.astype(np.float32) - self.zero_point.reshape(shape).astype(np.float32))
                * self.scale.reshape(shape).astype(np.float32)).astype(np.float32)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


def shift_uint8(q: np.ndarray, zp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 data and zero points as the equivalent int8 ones."""
    return ((q.astype(np.int16) - 128).astype(np.int8),
            zp.astype(np.int32) - 128)


def make_qconst(q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int) -> QConst:
    """``DequantizeLinear(q, scale, zp, axis)`` of a constant ``q`` (int8, uint8 or int32)."""
    scale = np.asarray(scale, np.float32)
    zp = np.zeros(scale.shape, np.int32) if zp is None else np.asarray(zp)
    was_uint8 = q.dtype == np.uint8
    if was_uint8:
        q, zp = shift_uint8(q, zp)
    if axis < 0:
        axis += max(q.ndim, 1)
    return QConst(q=q, scale=scale.reshape(-1), zero_point=zp.astype(np.int32).reshape(-1),
                  axis=axis, was_uint8=was_uint8)


def quantize_const(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int) -> QConst:
    """``QuantizeLinear`` of a float constant, as onnxruntime computes it (round half to even)."""
    scale = np.asarray(scale, np.float32)
    zdt = np.uint8 if zp is None else np.asarray(zp).dtype
    zp = np.zeros(scale.shape, zdt) if zp is None else np.asarray(zp)
    info = np.iinfo(zdt)
    if scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, z = scale.reshape(shape), zp.reshape(shape).astype(np.float32)
    else:
        s, z = scale.reshape(()), np.float32(zp.reshape(-1)[0])
    q = np.clip(np.rint(x.astype(np.float32) / s) + z, info.min, info.max).astype(zdt)
    return make_qconst(q, scale, zp, axis)


def act_quant(scale: np.ndarray, zp: np.ndarray | None) -> Quant:
    """Per-tensor activation quantization, uint8 zero points shifted to int8."""
    scale = np.asarray(scale, np.float32).reshape(-1)
    z = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
    if zp is None or np.asarray(zp).dtype == np.uint8:
        z -= 128
    return Quant((float(scale[0]),), (z,))


def act_dtype_ok(zp: np.ndarray | None) -> bool:
    return zp is None or np.asarray(zp).dtype in (np.int8, np.uint8)


def same_quant(a: Quant | None, b: Quant | None) -> bool:
    return (a is not None and b is not None and np.float32(a.scale[0]) == np.float32(b.scale[0])
            and a.zero_point == b.zero_point)


_FIXED_OUTPUT = {
    OpKind.SOFTMAX: (1.0 / 256, -128),
    OpKind.LOGISTIC: (1.0 / 256, -128),
    OpKind.TANH: (1.0 / 128, 0),
}
_SAME_QUANT = (OpKind.MAX_POOL_2D, OpKind.AVERAGE_POOL_2D, OpKind.RESHAPE, OpKind.PAD,
               OpKind.CONCATENATION)


def int8_ok(kind: OpKind, ins: list[Quant], out: Quant) -> bool:
    """Whether TFLite's int8 kernel for ``kind`` accepts these quantizations.

    Where it does not (e.g. a softmax output scale other than 1/256), the
    importer keeps the op in float between DEQUANTIZE and QUANTIZE, which is
    also what onnxruntime computes for a QDQ model.
    """
    if kind in _FIXED_OUTPUT:
        s, z = _FIXED_OUTPUT[kind]
        return np.float32(out.scale[0]) == np.float32(s) and out.zero_point[0] == z
    if kind in _SAME_QUANT:
        return all(same_quant(q, out) for q in ins)
    return True


def bias_s32(bias, x_scale: float, w_scale: np.ndarray, n_out: int) -> np.ndarray:
    """An int32 bias with scale ``x_scale * w_scale[c]``, from a QConst or a float array."""
    want = (np.float32(x_scale) * np.asarray(w_scale, np.float32).reshape(-1)).astype(np.float32)
    if want.size == 1:
        want = np.repeat(want, n_out)
    if isinstance(bias, QConst) and bias.q.dtype == np.int32:
        have = np.broadcast_to(bias.scale, (n_out,))
        if np.allclose(have, want, rtol=1e-6, atol=0) and not bias.zero_point.any():
            return bias.q.reshape(-1).astype(np.int32)
        real = bias.real().reshape(-1)
    else:
        real = (bias.real() if isinstance(bias, QConst) else np.asarray(bias, np.float32)).reshape(-1)
    real = np.broadcast_to(real, (n_out,))
    q = np.rint(real.astype(np.float64) / want.astype(np.float64))
    return np.clip(q, -2**31, 2**31 - 1).astype(np.int32)
