"""Inference modules: a signed file holding one model, installed on a device
without reflashing its firmware (spec: ``docs/inference-module-format.md``).

* :mod:`.format` encodes/decodes the ``.tmm`` container and graph payload;
* :mod:`.kernels` numbers the executor's kernels and lays out their params;
* :mod:`.graph` records cgen's lowerings into op records;
* :mod:`.pack`, :mod:`.verify`, :mod:`.keys` back ``tinyml module ...``;
* :mod:`.firmware` gives the C loader/executor sources for a kernel set;
* ``runtime/`` holds that C (portable C99, no malloc).
"""

from .format import (GraphPayload, Module, ModuleError, ModuleHeader, OpRecord, PayloadKind, TensorDesc,
                     decode_graph, decode_module, encode_graph, encode_module)
from .kernels import Abi
from .pack import PackResult, pack_graph, pack_module
from .verify import check_compatible, check_structure, verify_module

__all__ = ["Abi", "GraphPayload", "Module", "ModuleError", "ModuleHeader", "OpRecord", "PackResult",
           "PayloadKind", "TensorDesc", "check_compatible", "check_structure", "decode_graph", "decode_module",
           "encode_graph", "encode_module", "pack_graph", "pack_module", "verify_module"]
