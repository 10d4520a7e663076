"""Build and sign an inference module from a model file.

Called by ``tinyml module pack``. Payload kinds per backend (see the spec):
``cgen`` -> GRAPH (op records + weights for the table-driven executor),
``tflm`` -> TFLITE (the flatbuffer itself, for TensorFlow Lite Micro).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import TinyMLError
from ..ir import Graph
from .format import DTypeCode, GraphPayload, ModuleHeader, PayloadKind, TensorDesc, encode_graph, encode_module
from .graph import lower_graph
from .kernels import Abi, kernel_abi_hash
from .keys import load_private_key

HOST_TARGET = "host"    # LP64 firmware simulated on the build machine (tests)
_DTYPES = {"int8": DTypeCode.INT8, "uint8": DTypeCode.UINT8, "int16": DTypeCode.INT16,
           "int32": DTypeCode.INT32, "float32": DTypeCode.FLOAT32}


@dataclass(frozen=True)
class PackResult:
    """What ``pack_module`` produced: the bytes and the numbers worth printing."""
    data: bytes
    header: ModuleHeader
    payload_bytes: int
    weight_bytes: int          # the model's own constant tensors
    blob_bytes: int            # what the payload carries as weights + kernel tables
    n_ops: int
    graph: GraphPayload | None = None


def abi_for_target(target: str, boards_dir=()) -> Abi:
    """The firmware ABI of a board id / manifest path, or ``host``."""
    if target == HOST_TARGET:
        return Abi.LP64_LE
    from ..device import load_profile
    return abi_for_device(load_profile(str(target), search_dirs=list(boards_dir) or None), where=str(target))


def abi_for_device(dev, where: str | None = None) -> Abi:
    """The firmware ABI of a device profile (32-bit little-endian cores only)."""
    if dev.word_bits != 32:
        raise TinyMLError(f"board '{dev.board}' is a {dev.word_bits}-bit core; the module executor needs a 32-bit one",
                          where=where or dev.board, hint="Compile the model into the firmware instead")
    return Abi.ILP32_LE


def parse_module_version(text, where: str | None = None) -> int:
    """A module version given as text by a build option: a 32-bit unsigned number."""
    text = str(text).strip()
    if not text.isdigit() or int(text) >= 1 << 32:
        raise TinyMLError(f"module version '{text}' is not a 32-bit unsigned number", where=where,
                          hint="Give the module version, higher than the version installed on the devices")
    return int(text)


def _printable(text: str) -> str:
    """The model's own name for the header's ASCII field: other characters become '_'."""
    return "".join(c if " " <= c <= "~" else "_" for c in text)


def _desc(g: Graph, t: int, arena_offset: int) -> TensorDesc:
    tensor = g.tensors[t]
    q = tensor.quant if tensor.quant is not None and not tensor.quant.per_channel else None
    return TensorDesc(_DTYPES[tensor.dtype.np_name], tuple(int(d) for d in tensor.shape),
                      float(q.s) if q else 0.0, int(q.zp) if q else 0, arena_offset, int(tensor.nbytes))


def pack_graph(g: Graph, model_bytes: bytes, abi: Abi, module_version: int, sign, name: str = "") -> PackResult:
    """A GRAPH module for ``g`` (cgen kernels); ``sign(bytes) -> 64-byte signature``."""
    payload, plan, mask = lower_graph(g, abi, device=None)
    header = ModuleHeader(
        PayloadKind.GRAPH, module_version, hashlib.sha256(model_bytes).digest(), "cgen", __version__,
        tuple(_desc(g, t, plan.offsets[plan.root(t)]) for t in g.inputs),
        tuple(_desc(g, t, plan.offsets[plan.root(t)]) for t in g.outputs),
        arena_bytes=plan.arena_bytes, abi=int(abi), kernel_mask=mask, kernel_abi_hash=kernel_abi_hash(abi),
        model_name=name or _printable(g.name)[:16])
    raw = encode_graph(payload)
    return PackResult(encode_module(header, raw, sign), header, len(raw), g.weight_bytes, len(payload.blob),
                      len(payload.ops), payload)


def pack_tflite(g: Graph, model_bytes: bytes, module_version: int, sign, arena_bytes: int = 0,
                name: str = "") -> PackResult:
    """A TFLITE module: the flatbuffer for firmware embedding TensorFlow Lite Micro."""
    header = ModuleHeader(
        PayloadKind.TFLITE, module_version, hashlib.sha256(model_bytes).digest(), "tflm", __version__,
        tuple(_desc(g, t, 0) for t in g.inputs), tuple(_desc(g, t, 0) for t in g.outputs),
        arena_bytes=arena_bytes, model_name=name or _printable(g.name)[:16])
    return PackResult(encode_module(header, model_bytes, sign), header, len(model_bytes), g.weight_bytes,
                      len(model_bytes), len(g.ops))


def pack_module(model: Path, target: str | None, key: Path, module_version: int, kind: str = "graph",
                boards_dir=(), device=None, calibration: Path | None = None, abi: Abi | None = None) -> PackResult:
    """Load ``model``, lower it for ``target`` (a board id or manifest; or the
    :class:`~platformio_tinyml.device.DeviceProfile` ``device``) and sign it
    with the private ``key``. ``abi``: the executor ABI a device reported (LwM2M capabilities),
    instead of the one its profile implies."""
    from ..pipeline import load_any
    if not 0 <= module_version < 1 << 32:
        raise TinyMLError(f"module version {module_version} is not a 32-bit unsigned number")
    private = load_private_key(key)
    if kind not in ("graph", "tflite"):
        raise TinyMLError(f"unknown module kind '{kind}'", hint="Use graph (cgen executor) or tflite (TFLM firmware)")
    g, fmt = load_any(Path(model), calibration)
    if g is None:
        raise TinyMLError(f"{fmt} models have no graph the module executor can run", where=str(model))
    model_bytes = Path(model).read_bytes()
    if kind == "tflite":
        if fmt != "tflite":
            raise TinyMLError("a TFLITE module needs a .tflite model", where=str(model))
        arena = 0
        from ..verify.reference import ReferenceUnavailable, tflm_arena_bytes
        try:
            arena = tflm_arena_bytes(model)
        except ReferenceUnavailable:
            pass   # reference interpreter not installed: the firmware's arena decides
        return pack_tflite(g, model_bytes, module_version, private.sign, arena)
    if abi is None:
        abi = abi_for_device(device) if device is not None else abi_for_target(target, boards_dir)
    return pack_graph(g, model_bytes, abi, module_version, private.sign)
