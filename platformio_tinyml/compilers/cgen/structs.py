"""The kernels' parameter structs as declared in ``runtime/tml_kernels.h``.

Parsed from the header (so the emitter and the module packer never keep a
second copy of it): member types and array lengths, and the range check
that keeps a value from being truncated silently when a C initializer
converts it to a narrow member (a ``uint16_t`` dimension of 70,000 would
compile with a warning and give wrong results).
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache

SCALARS = {"uint8_t": (1, "B"), "int8_t": (1, "b"), "uint16_t": (2, "H"), "int16_t": (2, "h"),
           "uint32_t": (4, "I"), "int32_t": (4, "i"), "float": (4, "f")}


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_structs(text: str) -> dict[str, list[tuple[str, bool, str, int]]]:
    """``typedef struct {...} name;`` -> [(ctype, is_pointer, member, count)]."""
    out = {}
    for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", strip_comments(text), re.S):
        members = []
        for decl in (d.strip() for d in body.split(";")):
            if not decl:
                continue
            m = re.fullmatch(r"(?:const\s+)?(\w+)\s+(.*)", decl, re.S)
            if not m or (m.group(1) not in SCALARS and not (m.group(1) == "void" and "*" in m.group(2))):
                raise ValueError(f"tml_kernels.h: cannot lay out member '{decl}' of {name}")
            for part in (p.strip() for p in m.group(2).split(",")):
                pm = re.fullmatch(r"(\*\s*(?:const\s+)?)?(\w+)\s*(?:\[(\d+)\])?", part)
                if not pm:
                    raise ValueError(f"tml_kernels.h: cannot lay out member '{part}' of {name}")
                members.append((m.group(1), bool(pm.group(1)), pm.group(2), int(pm.group(3) or 1)))
        out[name] = members
    return out


def scalar_range(ctype: str) -> tuple[int, int] | None:
    """(min, max) of an integer member type (None for float)."""
    size, code = SCALARS[ctype]
    if code == "f":
        return None
    if code.islower():
        return -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    return 0, (1 << (8 * size)) - 1


def encode_scalar(ctype: str, value) -> bytes:
    """Little-endian bytes of one struct member value (range-checked)."""
    size, code = SCALARS[ctype]
    if code == "f":
        return struct.pack("<f", float(value))
    v = int(value)
    lo, hi = scalar_range(ctype)
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {ctype}")
    return struct.pack("<" + code, v)


@lru_cache(maxsize=None)
def _member_types(header_text: str) -> dict[str, dict[str, str]]:
    return {name: {member: ctype for ctype, is_ptr, member, _ in members if not is_ptr}
            for name, members in parse_structs(header_text).items()}


def out_of_range(header_text: str, ctype: str, fields: dict) -> str | None:
    """Why a value of ``fields`` does not fit its member of struct ``ctype`` (None if all fit)."""
    types = _member_types(header_text).get(ctype, {})
    for member, value in fields.items():
        t = types.get(member)
        if t is None or scalar_range(t) is None:
            continue
        lo, hi = scalar_range(t)
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, (int,)) or hasattr(v, "__index__"):
                if not lo <= int(v) <= hi:
                    return f"{member} = {int(v)} does not fit the kernel's {t} (max {hi})"
    return None
