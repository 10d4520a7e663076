"""Write TVM's kernels and the runtime-free glue around them.

Output for model ``NAME`` (one folder, nothing else needed to build):

* ``NAME.h``: the common API (``NAME_invoke``, ``NAME_invoke_multi`` and
  the ``NAME_INPUT_*``/``NAME_OUTPUT_*`` macros), the same as cgen's;
* ``NAME.c``: the glue: one static arena (the plan of :mod:`.lower`), the
  weights as const arrays, a ``DLTensor`` per buffer and a ``TVMFFIAny``
  argument array per kernel call, all static; ``NAME_invoke_multi`` copies
  the inputs in, calls the kernels in the order of the Relax ``main`` and
  copies the outputs out. A LIFO allocator over a static buffer stands in
  for ``TVMBackendAllocWorkspace``;
* ``NAME_tvm_abi.h``: the few TVM-FFI/DLPack types the kernels use;
* ``NAME_kernels.c`` (``codegen=c``): TVM's C source for every kernel, or
  ``NAME_kernels.o`` (``codegen=llvm``): TVM's LLVM object for the target.

The kernels use TVM's packed calling convention
``int32_t f(void *self, TVMFFIAny *args, int32_t num_args, TVMFFIAny *ret)``
with asserts compiled out, so each reads only ``DLTensor.data`` of its
arguments (type index 7, ``kTVMFFIDLTensorPtr``). No TVM runtime is linked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import capi
from ..capi import C_TYPES
from ..ctext import c_comment_text, c_float
from .lower import ALIGN, Kernels, Program

DL_CODE = {"int": 0, "uint": 1, "float": 2}
# TVM's C output leaves unused shape/stride locals and parameters behind.
_QUIET = ("-Wunused-parameter", "-Wunused-variable", "-Wunused-but-set-variable", "-Wunused-function",
          "-Wsign-compare", "-Wunused-label", "-Wmissing-field-initializers")


@dataclass(frozen=True)
class IoSpec(capi.IoSpec):
    """One model input/output as the firmware sees it (the IR's view when there is one)."""
    nchw: bool = False          # the firmware's NHWC buffer is NCHW for the kernels


@dataclass(frozen=True)
class Emitted:
    files: tuple[Path, ...]
    arena_bytes: int
    workspace_bytes: int
    const_bytes: int


def io_specs(prog: Program, graph) -> tuple[list[IoSpec], list[IoSpec]]:
    """The public I/O: the IR graph's shapes and quantization when they match TVM's tensors."""
    def from_bufs(ids):
        return [IoSpec(prog.bufs[i].shape, prog.bufs[i].dtype) for i in ids]
    if graph is None or len(graph.inputs) != len(prog.inputs) or len(graph.outputs) != len(prog.outputs):
        return from_bufs(prog.inputs), from_bufs(prog.outputs)
    from ...model.onnx.layout import CONVERTED

    def pick(ids, tids, layouts):
        out = []
        for k, (i, t) in enumerate(zip(ids, tids)):
            b, t = prog.bufs[i], graph.tensors[t]
            nchw = k < len(layouts) and layouts[k] == CONVERTED and len(b.shape) == 4
            want = (b.shape[0], b.shape[2], b.shape[3], b.shape[1]) if nchw else b.shape
            if tuple(t.shape) != tuple(want) or t.dtype.np_name != b.dtype:
                return None
            out.append(replace(IoSpec.of_tensor(t), nchw=nchw))
        return out
    ins = pick(prog.inputs, graph.inputs, list(graph.meta.get("input_layouts") or []))
    outs = pick(prog.outputs, graph.outputs, list(graph.meta.get("output_layouts") or []))
    if ins is None or outs is None:
        return from_bufs(prog.inputs), from_bufs(prog.outputs)
    return ins, outs


def _dl_dtype(dtype: str) -> tuple[int, int]:
    if dtype == "bool":
        return 1, 8
    m = re.fullmatch(r"(u?int|float)(\d+)", dtype)
    if m is None:
        raise ValueError(f"no DLPack type for {dtype}")
    return DL_CODE[m.group(1)], int(m.group(2))


def _c_literal(values: np.ndarray, dtype: str) -> str:
    flat = values.reshape(-1)
    if dtype.startswith("float"):
        items = [c_float(v, what="a weight") for v in flat.astype(np.float32)]
    elif dtype == "int64":
        items = [f"INT64_C({int(v)})" for v in flat]
    elif dtype == "int32":
        items = [f"{int(v)}" if int(v) != -2**31 else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    lines = [", ".join(items[i:i + 12]) for i in range(0, len(items), 12)]
    return "{\n    " + ",\n    ".join(lines) + "\n}" if lines else "{0}"


def abi_header(name: str, tvm_version: str) -> str:
    g = f"{name.upper()}_TVM_ABI_H"
    tvm_version = c_comment_text(tvm_version, limit=40)
    return f"""/* {name}_tvm_abi.h - the TVM-FFI / DLPack types the TVM {tvm_version} kernels of '{name}' use.
 * Written by platformio-tinyml (tvm backend) from the documented ABI; no TVM runtime is needed. */
#ifndef {g}
#define {g}

#include <stdint.h>

typedef struct {{ int32_t device_type; int32_t device_id; }} DLDevice;
typedef struct {{ uint8_t code; uint8_t bits; uint16_t lanes; }} DLDataType;
typedef struct {{
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
}} DLTensor;

/* A packed-call argument: 16 bytes on every target (the union holds an int64). */
typedef struct {{
    int32_t type_index;
    uint32_t zero_padding;
    __extension__ union {{ int64_t v_int64; double v_float64; void *v_ptr; }};
}} TVMFFIAny;

#define {name.upper()}_TVM_DLTENSOR_PTR 7   /* kTVMFFIDLTensorPtr */

#endif /* {g} */
"""


def kernels_source(name: str, k: Kernels, tvm_version: str) -> str:
    """TVM's C output with its runtime includes replaced by the ABI header and its
    workspace calls routed to the glue's allocator."""
    src = k.c_source
    src = re.sub(r'#include "tvm/[^"]+"\n', "", src)
    src = src.replace("#define TVM_EXPORTS\n", "")
    src = re.sub(r"\bvoid\* __tvm_ffi__library_ctx = NULL;", "", src)
    src = re.sub(r"\bTVMBackendAllocWorkspace\b", f"{name}_tvm_alloc_workspace", src)
    src = re.sub(r"\bTVMBackendFreeWorkspace\b", f"{name}_tvm_free_workspace", src)
    src = re.sub(r"\bTVM_DLL\b\s*", "", src)
    leftover = sorted(set(re.findall(r"\b(TVM(?:FFI|Backend)\w+)\s*\(", src)))
    if leftover:
        raise ValueError(f"TVM's kernels call runtime functions the glue does not provide: {', '.join(leftover)}")
    quiet = "\n".join(f'#pragma GCC diagnostic ignored "{w}"' for w in _QUIET)
    return (f"/* {name}_kernels.c - per-operator kernels generated by Apache TVM "
            f"{c_comment_text(tvm_version, limit=40)} (target c)\n"
            " * for platformio-tinyml's tvm backend. Do not edit. */\n"
            f"{quiet}\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n"
            f'#include "{name}_tvm_abi.h"\n'
            f"void *{name}_tvm_alloc_workspace(int device_type, int device_id, uint64_t nbytes,\n"
            f"                                 int dtype_code_hint, int dtype_bits_hint);\n"
            f"int {name}_tvm_free_workspace(int device_type, int device_id, void *ptr);\n\n"
            + src)


def header(name: str, ins: list[IoSpec], outs: list[IoSpec], arena: int, source: str,
           runtime: bool = False) -> str:
    """``NAME.h``: the common C API (``capi.api_header``); ``runtime`` for the
    TVM-runtime variant of :mod:`.shared`, which adds its loader functions."""
    intro = [f"{name}.h - C API of '{c_comment_text(source, limit=60)}' generated by platformio-tinyml (tvm backend:"]
    extra: list[str] = []
    if runtime:
        intro += [f"{name}.so run by the Apache TVM runtime's Relax VM; link libtvm_runtime and libtvm_ffi).",
                  f"Inputs: {len(ins)}, outputs: {len(outs)}; about {arena} bytes of activations, allocated",
                  "by the TVM runtime. The first call loads the library; errors: see",
                  f"{name}_tvm_last_error(). {name}_tvm_load(path) loads it explicitly (NULL: the default)."]
        extra = [f"int {name}_tvm_load(const char *path);", f"const char *{name}_tvm_last_error(void);"]
    else:
        intro += ["Apache TVM kernels, no TVM runtime).",
                  f"Inputs: {len(ins)}, outputs: {len(outs)}; {arena} bytes of static RAM (arena + workspace)."]
    return capi.api_header(name, ins, outs, arena, intro, extra_decls=extra,
                           invoke_errors="-1 on a NULL pointer or a kernel error")


def _transpose(dst: str, src: str, shape: tuple[int, ...], ctype: str, to_nchw: bool) -> list[str]:
    """Copy an NHWC buffer to NCHW (or back); ``shape`` is the NHWC shape."""
    n, h, w, c = shape
    nhwc = "((b * %d + y) * %d + x) * %d + ch" % (h, w, c)
    nchw = "((b * %d + ch) * %d + y) * %d + x" % (c, h, w)
    d, s = (nchw, nhwc) if to_nchw else (nhwc, nchw)
    return [f"    for (uint32_t b = 0; b < {n}u; ++b)",
            f"        for (uint32_t y = 0; y < {h}u; ++y)",
            f"            for (uint32_t x = 0; x < {w}u; ++x)",
            f"                for (uint32_t ch = 0; ch < {c}u; ++ch)",
            f"                    (({ctype} *)({dst}))[{d}] = ((const {ctype} *)({src}))[{s}];"]


def glue_source(name: str, prog: Program, k: Kernels, ins: list[IoSpec], outs: list[IoSpec],
                tvm_version: str, source: str) -> str:
    arena, ws = prog.arena_bytes, k.workspace_bytes
    tvm_version, source = c_comment_text(tvm_version, limit=40), c_comment_text(source, limit=60)
    bad = [s for s in k.symbols.values() if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s)]
    if bad:
        raise ValueError(f"TVM named a kernel {c_comment_text(bad[0], limit=60)!r}, not a C identifier")
    L = [f"/* {name}.c - glue for the Apache TVM {tvm_version} kernels of '{source}' ({k.kind} codegen),",
         " * generated by platformio-tinyml (tvm backend): static memory plan, argument structures",
         " * and the call order of the compiled Relax main. No TVM runtime. Do not edit. */",
         '#include <stddef.h>', '#include <stdint.h>', '#include <string.h>', "",
         f'#include "{name}.h"', f'#include "{name}_tvm_abi.h"', "",
         "#if defined(__GNUC__) || defined(__clang__)",
         f"#define {name.upper()}_ALIGNED __attribute__((aligned({ALIGN})))",
         "#else", f"#define {name.upper()}_ALIGNED", "#endif",
         f"#define ALIGNED_ {name.upper()}_ALIGNED", ""]
    L.append(f"static uint8_t {name}_arena[{max(arena, 1)}] ALIGNED_;")
    L.append(f"static uint8_t {name}_ws[{max(ws, 1)}] ALIGNED_;")
    L.append(f"static uint32_t {name}_ws_top;")
    L.append("")
    # workspace: LIFO, as TVM frees in reverse order of allocation within a kernel
    L += [f"void *{name}_tvm_alloc_workspace(int device_type, int device_id, uint64_t nbytes,",
          "                                 int dtype_code_hint, int dtype_bits_hint)", "{",
          "    (void)device_type; (void)device_id; (void)dtype_code_hint; (void)dtype_bits_hint;",
          f"    uint64_t size = (nbytes + {ALIGN - 1}u) & ~(uint64_t){ALIGN - 1}u;",
          f"    if (size > (uint64_t)({max(ws, 1)}u - {name}_ws_top)) return NULL;",
          f"    void *p = {name}_ws + {name}_ws_top;",
          f"    {name}_ws_top += (uint32_t)size;", "    return p;", "}", "",
          f"int {name}_tvm_free_workspace(int device_type, int device_id, void *ptr)", "{",
          "    (void)device_type; (void)device_id;",
          f"    uint8_t *p = (uint8_t *)ptr;",
          f"    if (p < {name}_ws || p >= {name}_ws + {max(ws, 1)}) return -1;",
          f"    {name}_ws_top = (uint32_t)(p - {name}_ws);", "    return 0;", "}", ""]
    if k.kind == "llvm" and ws:
        # LLVM kernels call the workspace functions through these pointers (weak, in the object).
        L += ["extern void *(*__TVMBackendAllocWorkspace)(int, int, uint64_t, int, int);",
              "extern int (*__TVMBackendFreeWorkspace)(int, int, void *);", ""]
    # constants
    for b in prog.bufs:
        if b.kind == "const":
            L.append(f"static const {C_TYPES[b.dtype]} {name}_c{b.index}[{max(int(b.data.size), 1)}] ALIGNED_ = "
                     f"{_c_literal(b.data, b.dtype)};")
    L.append("")
    # shapes and tensors
    used = sorted({a for c in prog.calls for a in c.args} | set(prog.inputs) | set(prog.outputs))
    index = {b: j for j, b in enumerate(used)}
    for b in used:
        shp = prog.bufs[b].shape or (1,)
        L.append(f"static int64_t {name}_s{b}[{len(shp)}] = {{{', '.join(f'INT64_C({d})' for d in shp)}}};")
    L.append(f"static DLTensor {name}_t[{len(used)}] = {{")
    for b in used:
        buf = prog.bufs[b]
        code, bits = _dl_dtype(buf.dtype)
        data = f"(void *){name}_c{b}" if buf.kind == "const" else f"{name}_arena + {prog.offsets[b]}"
        L.append(f"    {{{data}, {{1, 0}}, {max(len(buf.shape), 1)}, {{{code}, {bits}, 1}}, {name}_s{b}, NULL, 0}},"
                 f" /* {buf.kind} {buf.dtype}{list(buf.shape)} */")
    L += ["};", ""]
    for j, c in enumerate(prog.calls):
        if c.func == "__copy__":
            continue
        items = ", ".join(f"{{{name.upper()}_TVM_DLTENSOR_PTR, 0, {{.v_ptr = &{name}_t[{index[a]}]}}}}" for a in c.args)
        L.append(f"static TVMFFIAny {name}_a{j}[{len(c.args)}] = {{{items}}};")
    L.append("")
    for f in sorted({c.func for c in prog.calls if c.func != "__copy__"}):
        L.append(f"int32_t {k.symbols[f]}(void *self, void *args, int32_t num_args, void *result);")
    L.append("")
    L += [f"int {name}_invoke_multi(const void *const inputs[], void *const outputs[])", "{",
          "    TVMFFIAny ret;"]
    if k.kind == "llvm" and ws:
        L += [f"    __TVMBackendAllocWorkspace = {name}_tvm_alloc_workspace;",
              f"    __TVMBackendFreeWorkspace = {name}_tvm_free_workspace;"]
    L += ["    if (inputs == NULL || outputs == NULL) return -1;"]
    for kk, (b, s) in enumerate(zip(prog.inputs, ins)):
        dst = f"{name}_arena + {prog.offsets[b]}"
        L.append(f"    if (inputs[{kk}] == NULL) return -1;")
        if s.nchw:
            L += _transpose(dst, f"inputs[{kk}]", s.shape, C_TYPES[s.dtype], to_nchw=True)
        else:
            L.append(f"    memcpy({dst}, inputs[{kk}], {prog.bufs[b].nbytes});")
    L.append(f"    {name}_ws_top = 0;")
    for j, c in enumerate(prog.calls):
        if c.func == "__copy__":
            src, dst = c.args
            L.append(f"    memcpy({name}_t[{index[dst]}].data, {name}_t[{index[src]}].data, {prog.bufs[dst].nbytes});")
            continue
        L += [f"    /* {c_comment_text(c.func, limit=60)} */",
              f"    if ({k.symbols[c.func]}(NULL, {name}_a{j}, {len(c.args)}, &ret) != 0) return -1;"]
    for kk, (b, s) in enumerate(zip(prog.outputs, outs)):
        src = f"{name}_arena + {prog.offsets[b]}"
        L.append(f"    if (outputs[{kk}] != NULL) {{")
        if s.nchw:
            L += ["    " + x for x in _transpose(f"outputs[{kk}]", src, s.shape, C_TYPES[s.dtype], to_nchw=False)]
        else:
            L.append(f"        memcpy(outputs[{kk}], {src}, {prog.bufs[b].nbytes});")
        L.append("    }")
    L += ["    (void)ret;", "    return 0;", "}", ""]
    if len(ins) == 1 and len(outs) == 1:
        L += [f"int {name}_invoke(const void *input, void *output)", "{",
              "    const void *const in[1] = {input};", "    void *const out[1] = {output};",
              "    if (input == NULL || output == NULL) return -1;",
              f"    return {name}_invoke_multi(in, out);", "}", ""]
    return "\n".join(L)


def write(name: str, prog: Program, k: Kernels, graph, outdir: Path, tvm_version: str,
          source: str) -> Emitted:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ins, outs = io_specs(prog, graph)
    total = prog.arena_bytes + k.workspace_bytes
    files = {f"{name}.h": header(name, ins, outs, total, source),
             f"{name}_tvm_abi.h": abi_header(name, tvm_version),
             f"{name}.c": glue_source(name, prog, k, ins, outs, tvm_version, source)}
    if k.kind == "c":
        files[f"{name}_kernels.c"] = kernels_source(name, k, tvm_version)
    written = []
    for rel, text in files.items():
        (outdir / rel).write_text(text)
        written.append(outdir / rel)
    if k.kind == "llvm":
        (outdir / f"{name}_kernels.o").write_bytes(k.object_bytes)
        written.append(outdir / f"{name}_kernels.o")
    return Emitted(tuple(written), total, k.workspace_bytes, prog.const_bytes)
