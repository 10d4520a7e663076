"""Range checks of kernel parameter blocks against their C member types in ``tml_kernels.h``.

A value its member cannot hold is refused, never truncated: a stride of 1000 in a
``uint8_t`` member would silently become 232 and the generated code compute garbage.
(The module packer range-checks the same members when it encodes them.)
"""

from __future__ import annotations

import functools
import re

_RANGES = {"uint8_t": (0, 255), "int8_t": (-128, 127), "uint16_t": (0, 65535), "int16_t": (-32768, 32767),
           "uint32_t": (0, (1 << 32) - 1), "int32_t": (-(1 << 31), (1 << 31) - 1)}


@functools.lru_cache(maxsize=1)
def member_types() -> dict[str, dict[str, str]]:
    """struct name -> {scalar member: C type} (pointer members left out)."""
    from .emit import runtime_text
    text = re.sub(r"/\*.*?\*/", "", runtime_text("tml_kernels.h"), flags=re.S)
    return {name: {member: ctype for ctype, names in re.findall(r"(?:const\s+)?(\w+)\s+([^;*]+);", body)
                   for member in re.findall(r"(\w+)\s*(?:\[\d+\])?\s*(?:,|$)", names.strip())}
            for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", text, re.S)}


def out_of_range(ctype: str, fields: dict[str, object]) -> str | None:
    """Why parameter block ``ctype`` cannot hold ``fields`` (None when every integer fits)."""
    types = member_types().get(ctype, {})
    for name, value in fields.items():
        lo, hi = _RANGES.get(types.get(name, ""), (None, None))
        if lo is None or isinstance(value, (str, bool)):
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (int, float)) and not lo <= v <= hi:
                return f"{ctype}.{name} = {v} does not fit its {types[name]} member"
    return None
