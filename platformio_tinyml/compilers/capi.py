"""The one C API every MCU backend's output exposes.

Firmware includes ``NAME.h`` and calls ``NAME_invoke(input, output)`` (single
input and output) or ``NAME_invoke_multi(inputs, outputs)``, and reads the
``NAME_INPUT*_``/``NAME_OUTPUT*_`` macros (size, bytes, rank, shape, dtype,
scale, zero point): the same whatever backend generated the code, so
switching backends never touches firmware code. Backends describe their I/O
with :class:`IoSpec` and get the header text from :func:`api_header`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ctext import c_float, c_prefix, is_comment_safe

# C type of each numpy dtype a model input/output (or, in tvm's glue, any buffer) can have.
C_TYPES = {"float32": "float", "float64": "double", "int8": "int8_t", "uint8": "uint8_t",
           "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t", "uint32": "uint32_t",
           "int64": "int64_t", "uint64": "uint64_t", "bool": "uint8_t"}


@dataclass(frozen=True)
class IoSpec:
    """One model input/output as the firmware sees it."""
    shape: tuple[int, ...]
    dtype: str                        # numpy name: int8, float32, ...
    scale: float | None = None        # per-tensor quantization, when quantized
    zero_point: int | None = None

    @classmethod
    def of_tensor(cls, t) -> "IoSpec":
        q = t.quant if t.quant is not None and not t.quant.per_channel else None
        return cls(tuple(t.shape), t.dtype.np_name, float(q.s) if q else None, int(q.zp) if q else None)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


def io_macros(prefix: str, s: IoSpec) -> list[str]:
    out = [f"#define {prefix}_SIZE {s.size}",
           f"#define {prefix}_BYTES {s.nbytes}",
           f"#define {prefix}_RANK {len(s.shape)}",
           f"#define {prefix}_SHAPE {{{', '.join(str(d) for d in s.shape)}}}",
           f"#define {prefix}_DTYPE_{s.dtype.upper()} 1",
           f"typedef {C_TYPES[s.dtype]} {prefix.lower()}_t;"]
    if s.scale is not None:
        out += [f"#define {prefix}_SCALE {c_float(s.scale, what=f'the scale of {prefix}')}",
                f"#define {prefix}_ZERO_POINT {s.zero_point}"]
    return out


def api_header(name: str, ins: list[IoSpec], outs: list[IoSpec], arena: int, intro: list[str],
               extra_decls: list[str] = (), invoke_errors: str = "-1 on a NULL input") -> str:
    """``NAME.h``: ``intro`` (comment lines, without the ' * ' prefix) then the common API.

    Any model or user text in ``intro`` must come through ``ctext.c_comment_text``;
    a line that is not comment-safe is refused here (a bug in the backend)."""
    N = c_prefix(name).upper()
    bad = [ln for ln in intro if not is_comment_safe(ln)]
    if bad:
        raise ValueError(f"api_header: intro line is not comment-safe (use ctext.c_comment_text): {bad[0][:80]!r}")
    single = len(ins) == 1 and len(outs) == 1
    lines = [f"/* {intro[0]}"] + [f" * {ln}".rstrip() for ln in intro[1:]] + [" *"]
    if single:
        lines += [f" *   int {name}_invoke(const void *input, void *output);",
                  f" * runs one inference: 'input' holds {N}_INPUT_BYTES bytes, 'output' receives",
                  f" * {N}_OUTPUT_BYTES bytes. Returns 0 on success, {invoke_errors}."]
    lines += [f" *   int {name}_invoke_multi(const void *const inputs[], void *const outputs[]);",
              " * takes one pointer per input/output, in the order of the macros below.",
              " * Quantized tensors: real = SCALE * (q - ZERO_POINT). Not reentrant.", " */",
              f"#ifndef {N}_H", f"#define {N}_H", "", "#include <stdint.h>", "",
              "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
              f"#define {N}_ARENA_BYTES {arena}",
              f"#define {N}_NUM_INPUTS {len(ins)}",
              f"#define {N}_NUM_OUTPUTS {len(outs)}"]
    for k, s in enumerate(ins):
        lines += io_macros(f"{N}_INPUT{k}", s)
    for k, s in enumerate(outs):
        lines += io_macros(f"{N}_OUTPUT{k}", s)
    if single:
        lines += io_macros(f"{N}_INPUT", ins[0]) + io_macros(f"{N}_OUTPUT", outs[0])
    lines += ["", *extra_decls, f"int {name}_invoke_multi(const void *const inputs[], void *const outputs[]);"]
    if single:
        lines.append(f"int {name}_invoke(const void *input, void *output);")
    lines += ["", "#ifdef __cplusplus", "}", "#endif", f"#endif /* {N}_H */", ""]
    return "\n".join(lines)
