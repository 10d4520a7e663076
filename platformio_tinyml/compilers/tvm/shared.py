"""Linux-class boards: TVM's normal flow, a shared library and a C API that loads it.

For ``native`` (x86_64) and ``linux_arm`` (Cortex-A, AArch32 or AArch64)
boards the model is built the way TVM deploys to a CPU: ``tvm.compile`` (the
Relax VM executable plus LLVM kernels for the board's triple) exported as
``NAME.so``. :func:`loader_source` writes ``NAME.c``, the common API
(``NAME_invoke``/``NAME_invoke_multi``) implemented in plain C on the TVM-FFI
C API (``tvm/ffi/c_api.h``): it loads ``NAME.so`` with
``ffi.ModuleLoadFromFile``, creates the Relax VM (``vm_load_executable``,
``vm_initialization``) and calls its ``main``. The program links
``libtvm_runtime`` (which registers the VM) and ``libtvm_ffi``.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...errors import CompileError
from ..capi import C_TYPES
from ..ctext import c_comment_text, c_string_literal
from .emit import IoSpec, _dl_dtype, _transpose, header, io_specs
from .lower import Program, Unsupported

LINUX_ARCHES = ("x86_64", "aarch64", "arm-a")
TENSOR_ALIGN = 64             # TVM's kernels assume 64-byte aligned tensors (kAllocAlignment)


def is_linux_class(device) -> bool:
    return device.arch in LINUX_ARCHES


@dataclass(frozen=True)
class LinuxTarget:
    target: dict                # TVM llvm target
    cc: str | None              # gcc that links NAME.so; None: the host's default
    machine: str                # ELF e_machine name, as pyelftools spells it
    host: bool                  # the board is this machine's architecture: the wheel's runtime runs it


def linux_target(device) -> LinuxTarget:
    """The llvm target and linker for a Linux-class DeviceProfile."""
    host_x86 = platform.machine() in ("x86_64", "AMD64") and platform.system() == "Linux"
    host_arm64 = platform.machine() in ("aarch64", "arm64") and platform.system() == "Linux"
    if device.arch == "x86_64":
        return LinuxTarget({"kind": "llvm", "mtriple": "x86_64-linux-gnu"},
                           None if host_x86 else "x86_64-linux-gnu-gcc", "EM_X86_64", host_x86)
    if device.arch == "aarch64" or (device.arch == "arm-a" and device.word_bits == 64):
        t = {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}
        if device.core.startswith("cortex-a"):
            t["mcpu"] = device.core
        return LinuxTarget(t, None if host_arm64 else "aarch64-linux-gnu-gcc", "EM_AARCH64", host_arm64)
    if device.arch == "arm-a":
        # Raspberry Pi OS (32-bit) style: AArch32, hard-float ABI, VFP always there.
        if device.core == "arm1176jzf-s":
            t = {"kind": "llvm", "mtriple": "armv6kz-linux-gnueabihf", "mcpu": "arm1176jzf-s",
                 "mfloat-abi": "hard"}
        else:
            t = {"kind": "llvm", "mtriple": "armv7a-linux-gnueabihf", "mfloat-abi": "hard",
                 "mattr": ["+neon", "+vfp4"]}
            if device.core.startswith("cortex-a"):
                t["mcpu"] = device.core
        return LinuxTarget(t, "arm-linux-gnueabihf-gcc", "EM_ARM", False)
    raise Unsupported(f"'{device.arch}' is not a Linux-class architecture")


def check_toolchain(lt: LinuxTarget) -> None:
    """Refuse (cheaply) when the gcc that links NAME.so for the board is missing."""
    cc = lt.cc or "gcc"
    if shutil.which(cc) is None:
        pkg = {"arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf",
               "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
               "x86_64-linux-gnu-gcc": "gcc-x86-64-linux-gnu"}.get(cc, "gcc")
        raise Unsupported(f"linking the TVM shared library for {lt.target['mtriple']} needs {cc} "
                          f"(apt install {pkg}); or use runtime=none (no TVM runtime, no .so)")


def runtime_paths() -> dict[str, list[Path]]:
    """Headers and libraries of the installed apache-tvm / tvm-ffi wheels (this machine's arch)."""
    import tvm
    import tvm_ffi.libinfo as ffi_info
    tvm_lib = Path(tvm.__file__).parent / "lib"
    ffi_lib = Path(ffi_info.find_libtvm_ffi()).parent
    incs = [Path(ffi_info.find_include_path()), Path(ffi_info.find_dlpack_include_path())]
    return {"include": list(dict.fromkeys(incs)), "libdirs": [tvm_lib, ffi_lib],
            "libs": [tvm_lib / "libtvm_runtime.so", Path(ffi_info.find_libtvm_ffi())]}


def link_flags(lt: LinuxTarget) -> tuple[str, ...]:
    """Link flags for a program using NAME.c. ``--no-as-needed``: nothing in NAME.c calls into
    libtvm_runtime directly, but loading it registers the Relax VM that NAME.so needs."""
    libs = ("-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi")
    if not lt.host:
        return libs
    dirs = runtime_paths()["libdirs"]
    return (*(f"-L{d}" for d in dirs), *(f"-Wl,-rpath,{d}" for d in dirs), *libs)


def build_shared(path: Path, fmt: str, lt: LinuxTarget, so_path: Path) -> None:
    """tvm.compile the model for ``lt`` and export it as a shared library."""
    import tvm
    from .lower import import_model
    mod = import_model(path, fmt)
    try:
        ex = tvm.compile(mod, target=tvm.target.Target(lt.target))
    except Exception as e:
        raise CompileError(f"TVM failed to build the model for {lt.target['mtriple']}: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:400]) from None
    try:
        if lt.cc is None:
            ex.export_library(str(so_path))
        else:
            from tvm.support import cc
            ex.export_library(str(so_path), fcompile=cc.cross_compiler(lt.cc))
    except Exception as e:
        raise CompileError(f"linking {so_path.name} for {lt.target['mtriple']} failed: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:400]) from None


def loader_source(name: str, prog: Program, ins: list[IoSpec], outs: list[IoSpec], library: str,
                  tvm_version: str, source: str) -> str:
    """``NAME.c``: the common API on the TVM-FFI C API, loading ``library`` on first use."""
    N = name.upper()
    nin, nout = len(ins), len(outs)
    tvm_version, source = c_comment_text(tvm_version, limit=40), c_comment_text(source, limit=60)
    L = [f"/* {name}.c - C API of '{source}' on the Apache TVM {tvm_version} runtime (Relax VM),",
         " * generated by platformio-tinyml (tvm backend, runtime=tvm). It loads the shared library",
         f" * {name}.so on first use: the path {N}_TVM_LIBRARY (a macro, or the environment variable of",
         f" * that name, which wins), and runs its 'main'. Link with libtvm_runtime and libtvm_ffi.",
         " * Not reentrant (one VM, static staging buffers). Do not edit. */",
         "#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>",
         "#include <string.h>", "", "#include <tvm/ffi/c_api.h>", "", f'#include "{name}.h"', "",
         f"#ifndef {N}_TVM_LIBRARY", f'#define {N}_TVM_LIBRARY {c_string_literal(library)}', "#endif", "",
         f"static TVMFFIObjectHandle {name}_vm;        /* the Relax VM module */",
         f"static TVMFFIObjectHandle {name}_main;      /* its 'main' */",
         f"static TVMFFIObjectHandle {name}_getitem;   /* ffi.ArrayGetItem */",
         f"static char {name}_error[512];", ""]
    for k, b in enumerate(prog.inputs):
        buf = prog.bufs[b]
        shp = buf.shape or (1,)
        L.append(f"static int64_t {name}_in{k}_shape[{len(shp)}] = {{{', '.join(f'INT64_C({d})' for d in shp)}}};")
        L.append(f"static uint8_t {name}_in{k}[{max(buf.nbytes, 1)}] __attribute__((aligned({TENSOR_ALIGN})));")
    L += ["",
          f"const char *{name}_tvm_last_error(void)", "{", f"    return {name}_error;", "}", "",
          f"static int {name}_fail(const char *what)", "{",
          "    TVMFFIObjectHandle err = NULL;",
          "    TVMFFIErrorMoveFromRaised(&err);",
          "    if (err != NULL) {",
          "        const TVMFFIErrorCell *cell = (const TVMFFIErrorCell *)((const char *)err + sizeof(TVMFFIObject));",
          f"        snprintf({name}_error, sizeof {name}_error, \"%s: %.*s: %.*s\", what,",
          "                 (int)cell->kind.size, cell->kind.data, (int)cell->message.size, cell->message.data);",
          "        TVMFFIObjectDecRef(err);",
          "    } else {",
          f"        snprintf({name}_error, sizeof {name}_error, \"%s\", what);",
          "    }", "    return -1;", "}", "",
          f"static void {name}_release(TVMFFIAny *v)", "{",
          "    if (v->type_index >= kTVMFFIStaticObjectBegin && v->v_obj != NULL) TVMFFIObjectDecRef(v->v_obj);",
          "    v->type_index = kTVMFFINone;", "    v->v_int64 = 0;", "}", "",
          f"static TVMFFIAny {name}_any(int32_t type_index)", "{",
          "    TVMFFIAny a;", "    memset(&a, 0, sizeof a);", "    a.type_index = type_index;", "    return a;", "}", "",
          f"static int {name}_call(TVMFFIObjectHandle f, TVMFFIAny *args, int32_t n, TVMFFIAny *ret,",
          "                  const char *what)", "{",
          f"    *ret = {name}_any(kTVMFFINone);",
          f"    return TVMFFIFunctionCall(f, args, n, ret) == 0 ? 0 : {name}_fail(what);", "}", "",
          f"static int {name}_global(const char *fname, TVMFFIObjectHandle *out)", "{",
          "    TVMFFIByteArray s = {fname, strlen(fname)};",
          "    *out = NULL;",
          f"    if (TVMFFIFunctionGetGlobal(&s, out) != 0) return {name}_fail(fname);",
          "    if (*out == NULL) {",
          f"        snprintf({name}_error, sizeof {name}_error, \"%s: not registered (is libtvm_runtime linked?)\", fname);",
          "        return -1;", "    }", "    return 0;", "}", "",
          "/* A function of a module (a TVMFFIAny holding the module); NULL when it has none. */",
          f"static TVMFFIObjectHandle {name}_function(TVMFFIObjectHandle get, TVMFFIAny *mod, const char *fname)", "{",
          f"    TVMFFIAny args[3], ret;",
          "    args[0] = *mod;",
          f"    args[1] = {name}_any(kTVMFFIRawStr);", "    args[1].v_c_str = fname;",
          f"    args[2] = {name}_any(kTVMFFIBool);", "    args[2].v_int64 = 1;",
          f"    if ({name}_call(get, args, 3, &ret, fname) != 0) return NULL;",
          "    if (ret.type_index != kTVMFFIFunction) {",
          f"        {name}_release(&ret);",
          f"        snprintf({name}_error, sizeof {name}_error, \"the module has no function %s\", fname);",
          "        return NULL;", "    }", "    return ret.v_obj;", "}", "",
          f"int {name}_tvm_load(const char *path)", "{",
          "    TVMFFIObjectHandle load = NULL, get = NULL, f = NULL;",
          "    TVMFFIAny lib, vm, ret, args[3];",
          "    int rc = -1;",
          f"    if ({name}_main != NULL) return 0;",
          "    if (path == NULL) {",
          f"        path = getenv(\"{N}_TVM_LIBRARY\");",
          f"        if (path == NULL || path[0] == '\\0') path = {N}_TVM_LIBRARY;", "    }",
          f"    lib = {name}_any(kTVMFFINone);", f"    vm = {name}_any(kTVMFFINone);",
          f"    if ({name}_global(\"ffi.ModuleLoadFromFile\", &load) != 0) goto done;",
          f"    if ({name}_global(\"ffi.ModuleGetFunction\", &get) != 0) goto done;",
          f"    if ({name}_getitem == NULL && {name}_global(\"ffi.ArrayGetItem\", &{name}_getitem) != 0) goto done;",
          f"    args[0] = {name}_any(kTVMFFIRawStr);", "    args[0].v_c_str = path;",
          f"    if ({name}_call(load, args, 1, &lib, path) != 0) goto done;",
          f"    if ((f = {name}_function(get, &lib, \"vm_load_executable\")) == NULL) goto done;",
          f"    if ({name}_call(f, NULL, 0, &vm, \"vm_load_executable\") != 0) goto done;",
          "    TVMFFIObjectDecRef(f);",
          f"    if ((f = {name}_function(get, &vm, \"vm_initialization\")) == NULL) goto done;",
          "    /* CPU (kDLCPU = 1), device 0, pooled allocator (2), as tvm.runtime.VirtualMachine */",
          "    for (int k = 0; k < 3; ++k) {",
          f"        args[k] = {name}_any(kTVMFFIInt);", "        args[k].v_int64 = k == 0 ? 1 : k == 1 ? 0 : 2;",
          "    }",
          f"    if ({name}_call(f, args, 3, &ret, \"vm_initialization\") != 0) goto done;",
          f"    {name}_release(&ret);",
          f"    if (({name}_main = {name}_function(get, &vm, \"main\")) == NULL) goto done;",
          f"    {name}_vm = vm.v_obj;", f"    vm = {name}_any(kTVMFFINone);",
          "    rc = 0;",
          "done:",
          "    if (f != NULL) TVMFFIObjectDecRef(f);",
          f"    {name}_release(&vm);", f"    {name}_release(&lib);",
          "    if (load != NULL) TVMFFIObjectDecRef(load);",
          "    if (get != NULL) TVMFFIObjectDecRef(get);",
          "    return rc;", "}", "",
          "static void noop_deleter(DLManagedTensor *self) { (void)self; }", "",
          "/* Copy one VM result tensor out, after checking its dtype and size. */",
          f"static int {name}_copy_out(TVMFFIAny *v, void *dst, int8_t code, uint8_t bits, uint64_t nbytes, int nchw_k)", "{",
          "    const DLTensor *t;", "    uint64_t n = 1;",
          "    if (v->type_index != kTVMFFITensor) {",
          f"        snprintf({name}_error, sizeof {name}_error, \"main returned type %d, not a tensor\", (int)v->type_index);",
          "        return -1;", "    }",
          "    t = (const DLTensor *)((const char *)v->v_obj + sizeof(TVMFFIObject));",
          "    for (int32_t i = 0; i < t->ndim; ++i) n *= (uint64_t)t->shape[i];",
          "    if (t->dtype.code != (uint8_t)code || t->dtype.bits != bits || t->dtype.lanes != 1 ||",
          "        n * (bits / 8u) != nbytes || t->device.device_type != kDLCPU) {",
          f"        snprintf({name}_error, sizeof {name}_error, \"main returned an unexpected tensor\");",
          "        return -1;", "    }",
          "    const uint8_t *src = (const uint8_t *)t->data + t->byte_offset;",
          "    switch (nchw_k) {"]
    for k, s in enumerate(outs):
        if s.nchw:
            L.append(f"    case {k}:")
            L += ["    " + x for x in _transpose("dst", "src", s.shape, C_TYPES[s.dtype], to_nchw=False)]
            L.append("        return 0;")
    L += ["    default:", "        memcpy(dst, src, (size_t)nbytes);", "        return 0;", "    }", "}", ""]
    L += [f"int {name}_invoke_multi(const void *const inputs[], void *const outputs[])", "{",
          f"    DLManagedTensor dl[{nin}];",
          f"    TVMFFIAny args[{nin}], ret, item, idx[2];",
          "    TVMFFIObjectHandle h = NULL;",
          "    int rc = -1, made = 0;",
          "    if (inputs == NULL || outputs == NULL) return -1;",
          f"    if ({name}_main == NULL && {name}_tvm_load(NULL) != 0) return -1;",
          "    memset(dl, 0, sizeof dl);"]
    for k, (b, s) in enumerate(zip(prog.inputs, ins)):
        buf = prog.bufs[b]
        code, bits = _dl_dtype(buf.dtype)
        L.append(f"    if (inputs[{k}] == NULL) goto done;")
        if s.nchw:
            L += _transpose(f"{name}_in{k}", f"inputs[{k}]", s.shape, C_TYPES[s.dtype], to_nchw=True)
        else:
            L.append(f"    memcpy({name}_in{k}, inputs[{k}], {buf.nbytes});")
        L += [f"    dl[{k}].dl_tensor.data = {name}_in{k};",
              f"    dl[{k}].dl_tensor.device.device_type = kDLCPU;",
              f"    dl[{k}].dl_tensor.ndim = {max(len(buf.shape), 1)};",
              f"    dl[{k}].dl_tensor.dtype.code = {code};",
              f"    dl[{k}].dl_tensor.dtype.bits = {bits};",
              f"    dl[{k}].dl_tensor.dtype.lanes = 1;",
              f"    dl[{k}].dl_tensor.shape = {name}_in{k}_shape;",
              f"    dl[{k}].deleter = noop_deleter;",
              f"    if (TVMFFITensorFromDLPack(&dl[{k}], {TENSOR_ALIGN}, 1, &h) != 0) {{",
              f"        {name}_fail(\"input {k}\");", "        goto done;", "    }",
              f"    args[{k}] = {name}_any(kTVMFFITensor);",
              f"    args[{k}].v_obj = (TVMFFIObject *)h;",
              "    made++;"]
    L += [f"    if ({name}_call({name}_main, args, {nin}, &ret, \"main\") != 0) goto done;"]
    single_ok = "ret.type_index == kTVMFFITensor" if nout == 1 else "0"
    L += [f"    if ({single_ok}) {{"]
    if nout == 1:
        b, s = prog.outputs[0], outs[0]
        code, bits = _dl_dtype(prog.bufs[b].dtype)
        L += [f"        rc = outputs[0] == NULL ? 0 : {name}_copy_out(&ret, outputs[0], {code}, {bits}, "
              f"{prog.bufs[b].nbytes}u, {0 if s.nchw else -1});"]
    L += ["    } else {", "        rc = 0;",
          f"        for (int k = 0; k < {nout} && rc == 0; ++k) {{",
          "            if (outputs[k] == NULL) continue;",
          "            idx[0] = ret;",
          f"            idx[1] = {name}_any(kTVMFFIInt);", "            idx[1].v_int64 = k;",
          f"            if ({name}_call({name}_getitem, idx, 2, &item, \"main's result\") != 0) {{ rc = -1; break; }}",
          "            switch (k) {"]
    for k, (b, s) in enumerate(zip(prog.outputs, outs)):
        code, bits = _dl_dtype(prog.bufs[b].dtype)
        L.append(f"            case {k}: rc = {name}_copy_out(&item, outputs[{k}], {code}, {bits}, "
                 f"{prog.bufs[b].nbytes}u, {k if s.nchw else -1}); break;")
    L += ["            default: break;", "            }", f"            {name}_release(&item);", "        }", "    }",
          f"    {name}_release(&ret);",
          "done:",
          "    for (int k = 0; k < made; ++k) TVMFFIObjectDecRef(args[k].v_obj);",
          "    return rc;", "}", ""]
    if nin == 1 and nout == 1:
        L += [f"int {name}_invoke(const void *input, void *output)", "{",
              "    const void *const in[1] = {input};", "    void *const out[1] = {output};",
              "    if (input == NULL || output == NULL) return -1;",
              f"    return {name}_invoke_multi(in, out);", "}", ""]
    return "\n".join(L)


def write_shared(name: str, prog: Program, graph, path: Path, fmt: str, lt: LinuxTarget, outdir: Path,
                 tvm_version: str) -> list[Path]:
    """Build ``NAME.so`` and write ``NAME.h``/``NAME.c``; returns the files."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    so = outdir / f"{name}.so"
    build_shared(path, fmt, lt, so)
    ins, outs = io_specs(prog, graph)
    library = str(so.resolve()) if lt.host else f"./{name}.so"
    h = header(name, ins, outs, prog.arena_bytes, Path(path).name, runtime=True)
    c = loader_source(name, prog, ins, outs, library, tvm_version, Path(path).name)
    (outdir / f"{name}.h").write_text(h)
    (outdir / f"{name}.c").write_text(c)
    return [outdir / f"{name}.h", outdir / f"{name}.c", so]
