"""The kernel set of the module executor: stable kernel ids and the byte
layout of each kernel's parameter block for a target ABI.

Role: the graph payload of an inference module carries, per op, a kernel id
and that kernel's parameter struct as raw bytes, laid out exactly as the
firmware's compiler lays out the struct declared in ``tml_kernels.h``. The
layouts are computed here from that header (parsed at pack time, so a field
added to a kernel struct is picked up without editing a table), for one of
two ABIs (see :class:`Abi`). ``tests/test_module_format.py`` compiles
``offsetof``/``sizeof`` static asserts generated from these layouts with the
Arm and host compilers, so a parsing mistake cannot go unnoticed.

Kernel ids are part of the format: append new kernels, never renumber.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from ..compilers.cgen.emit import runtime_text
from ..compilers.cgen.structs import SCALARS, encode_scalar, parse_structs, strip_comments


class Abi(enum.IntEnum):
    """Data model of the firmware the module is for (header field ``abi``).

    ILP32: 4-byte pointers, natural alignment, little-endian (Arm EABI on
    Cortex-M, RISC-V ilp32). LP64: 8-byte pointers (x86-64 / AArch64 hosts:
    simulation and tests).
    """
    ILP32_LE = 1
    LP64_LE = 2

    @property
    def pointer_size(self) -> int:
        return 4 if self is Abi.ILP32_LE else 8


class IoClass(enum.IntEnum):
    """How the executor passes tensor operands to a kernel."""
    UNARY = 1     # k(p, in, out)
    BINARY = 2    # k(p, in1, in2, out)
    NARY = 3      # k(p, (const void *const[]){in...}, out)
    COPY = 4      # memcpy(out, in, p->n)


@dataclass(frozen=True)
class Kernel:
    id: int
    name: str
    io: IoClass
    param_type: str


# id -> (C function, io class). The executor (runtime/tml_exec.c) has the same
# ids in TML_K_* constants; test_module_format checks they agree.
_KERNELS = [
    (0, "tml_copy", IoClass.COPY),
    (1, "tml_conv_s8", IoClass.UNARY),
    (2, "tml_dwconv_s8", IoClass.UNARY),
    (3, "tml_fc_s8", IoClass.UNARY),
    (4, "tml_avgpool_s8", IoClass.UNARY),
    (5, "tml_maxpool_s8", IoClass.UNARY),
    (6, "tml_add_s8", IoClass.BINARY),
    (7, "tml_mul_s8", IoClass.BINARY),
    (8, "tml_softmax_s8", IoClass.UNARY),
    (9, "tml_pad", IoClass.UNARY),
    (10, "tml_concat", IoClass.NARY),
    (11, "tml_mean_s8", IoClass.UNARY),
    (12, "tml_relu_s8", IoClass.UNARY),
    (13, "tml_relu6_s8", IoClass.UNARY),
    (14, "tml_requantize_s8", IoClass.UNARY),
    (15, "tml_logistic_s8", IoClass.UNARY),
    (16, "tml_tanh_s8", IoClass.UNARY),
    (17, "tml_quantize_f32_s8", IoClass.UNARY),
    (18, "tml_dequantize_s8_f32", IoClass.UNARY),
    (19, "tml_conv_f32", IoClass.UNARY),
    (20, "tml_dwconv_f32", IoClass.UNARY),
    (21, "tml_fc_f32", IoClass.UNARY),
    (22, "tml_avgpool_f32", IoClass.UNARY),
    (23, "tml_maxpool_f32", IoClass.UNARY),
    (24, "tml_mean_f32", IoClass.UNARY),
    (25, "tml_add_f32", IoClass.BINARY),
    (26, "tml_mul_f32", IoClass.BINARY),
    (27, "tml_clamp_f32", IoClass.UNARY),
    (28, "tml_logistic_f32", IoClass.UNARY),
    (29, "tml_tanh_f32", IoClass.UNARY),
    (30, "tml_softmax_f32", IoClass.UNARY),
]

# The executor's own parameter block for plain copies (RESHAPE into a new buffer).
_COPY_STRUCT = "typedef struct {\n    uint32_t n;\n} tml_copy_t;\n"
_COPY_PROTO = "void tml_copy(const tml_copy_t *p, const void *in, void *out);\n"



@dataclass(frozen=True)
class Field:
    """One member of a parameter struct: ``count`` elements at ``offset``."""
    name: str
    ctype: str          # scalar C type, or the pointee type when is_pointer
    is_pointer: bool
    count: int          # array length (1 for a plain member)
    offset: int
    size: int           # bytes of one element


@dataclass(frozen=True)
class StructLayout:
    name: str
    fields: tuple[Field, ...]
    size: int
    align: int

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def _parse_prototypes(text: str) -> dict[str, str]:
    """Kernel function -> its parameter struct type (first argument)."""
    return dict((fn, t) for fn, t in re.findall(r"void\s+(tml_\w+)\s*\(\s*const\s+(\w+)\s*\*", text))


def _layout(name: str, members, abi: Abi) -> StructLayout:
    off, align, fields = 0, 1, []
    for ctype, is_ptr, member, count in members:
        size = abi.pointer_size if is_ptr else SCALARS[ctype][0]
        off = (off + size - 1) // size * size          # natural alignment = size for these types
        fields.append(Field(member, ctype, is_ptr, count, off, size))
        off += size * count
        align = max(align, size)
    return StructLayout(name, tuple(fields), (off + align - 1) // align * align, align)


@lru_cache(maxsize=None)
def _header_text() -> str:
    return runtime_text("tml_kernels.h")


@lru_cache(maxsize=None)
def kernel_table(header_text: str | None = None) -> tuple[Kernel, ...]:
    """Every kernel the executor knows, with its parameter struct name."""
    text = (header_text or _header_text()) + _COPY_STRUCT + _COPY_PROTO
    protos = _parse_prototypes(strip_comments(text))
    out = []
    for kid, name, io in _KERNELS:
        if name not in protos:
            raise ValueError(f"kernel {name} (id {kid}) is not declared in tml_kernels.h")
        out.append(Kernel(kid, name, io, protos[name]))
    return tuple(out)


def kernel_by_name(name: str) -> Kernel | None:
    return next((k for k in kernel_table() if k.name == name), None)


def kernel_by_id(kid: int) -> Kernel | None:
    return next((k for k in kernel_table() if k.id == kid), None)


@lru_cache(maxsize=None)
def struct_layouts(abi: Abi, header_text: str | None = None) -> dict[str, StructLayout]:
    """Layouts of every parameter struct in ``tml_kernels.h`` (+ tml_copy_t)."""
    parsed = parse_structs((header_text or _header_text()) + _COPY_STRUCT)
    return {name: _layout(name, members, abi) for name, members in parsed.items()}


def kernel_abi_hash(abi: Abi, header_text: str | None = None) -> int:
    """64-bit identity of (kernel ids, functions, parameter layouts) for ``abi``.

    The firmware is built with the same number (``tml_exec_config.h``); the
    loader refuses a module whose number differs, because its parameter
    blocks would be read with the wrong layout.
    """
    layouts = struct_layouts(abi, header_text)
    # 2: float CONV_2D filters HWIO and FULLY_CONNECTED weights [in, out] (were OHWI, [out, in])
    h = hashlib.sha256(f"tmm-kernel-abi-2 {abi.name}\n".encode())
    for k in kernel_table(header_text):
        lay = layouts[k.param_type]
        h.update(f"{k.id} {k.name} {k.io.name} {lay.name} {lay.size}\n".encode())
        for f in lay.fields:
            h.update(f"  {f.name} {f.ctype}{'*' if f.is_pointer else ''} {f.count} {f.offset}\n".encode())
    return int.from_bytes(h.digest()[:8], "little")


def static_assert_source(abi: Abi) -> str:
    """C99 source asserting the computed layouts (compiled by the tests)."""
    lines = ['#include <stddef.h>', '#include "tml_kernels.h"', _COPY_STRUCT,
             "#define TMM_CHECK(c, n) typedef char n[(c) ? 1 : -1]"]
    n = 0
    for lay in struct_layouts(abi).values():
        n += 1
        lines.append(f"TMM_CHECK(sizeof({lay.name}) == {lay.size}, tmm_size_{n});")
        for f in lay.fields:
            n += 1
            lines.append(f"TMM_CHECK(offsetof({lay.name}, {f.name}) == {f.offset}, tmm_off_{n});")
    lines.append(f"TMM_CHECK(sizeof(void *) == {abi.pointer_size}, tmm_ptr);")
    return "\n".join(lines) + "\n"
