"""tvm backend: real Apache TVM kernels + generated glue against the reference interpreter.

Small TFLite models (float32 and int8, built with TensorFlow) go through
TVM 0.27; the glue is built with -Wall -Wextra -Werror for the host (TVM's
C kernels and its x86_64 LLVM object) and for Cortex-M4, where it runs in
QEMU mps2-an386. Linux-class boards get NAME.so + NAME.c on the TVM runtime:
built and run on the native host, cross-linked (ELF checked) for linux_arm.
Goldens come from TFLite Micro's host interpreter.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("tflite_micro")

from modelgen import ModelCache  # noqa: E402

from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest  # noqa: E402
from platformio_tinyml.compilers.tvm import TvmCompiler  # noqa: E402
from platformio_tinyml.device import DeviceProfile, load_profile  # noqa: E402
from platformio_tinyml.pipeline import load_any  # noqa: E402
from platformio_tinyml.verify.reference import reference_for  # noqa: E402

HOST = DeviceProfile(board="host", name="x86_64 host", platform="native", arch="x86_64",
                     core="x86-64", word_bits=64, clock_hz=1_000_000_000,
                     flash_bytes=1 << 30, ram_bytes=1 << 30, fpu="dp")
N = 16
SPEC = "conv_pool_fc_softmax"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("tvm_models"))


def _request(path: Path, device, name="net", **options) -> CompileRequest:
    graph, fmt = load_any(path)
    return CompileRequest(model_path=path, model_format=fmt, graph=graph, device=device,
                          options=CompileOptions(name=name, backend_options=options))


def _inputs(graph, n=N, seed=0):
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    if t.dtype.np_name == "float32":
        return [(2.0 * rng.standard_normal(t.shape)).astype(np.float32) for _ in range(n)]
    return [rng.integers(-128, 128, t.shape).astype(t.dtype.numpy) for _ in range(n)]


def _host_lib(outdir: Path, name: str) -> ctypes.CDLL:
    srcs = sorted(str(p) for p in outdir.iterdir() if p.suffix in (".c", ".o"))
    so = outdir / f"lib{name}.so"
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
           "-I", str(outdir), *srcs, "-o", str(so), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(so))


def _run_host(lib, name, graph, xs):
    t = graph.tensors[graph.outputs[0]]
    outs = []
    for x in xs:
        y = np.zeros(t.shape, dtype=t.dtype.numpy)
        rc = getattr(lib, f"{name}_invoke")(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data))
        assert rc == 0
        outs.append(y)
    return outs


def _check(got, want, dtype):
    for g, w in zip(got, want):
        if dtype == "float32":
            rel = np.max(np.abs(g - w)) / max(float(np.max(np.abs(w))), 1e-30)
            assert rel <= 1e-5, (g, w)
        else:
            assert np.max(np.abs(g.astype(np.int32) - w.astype(np.int32))) <= 1, (g, w)


@pytest.mark.parametrize("codegen", ["c", "llvm"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_host_matches_reference(tmp_path, models, dtype, codegen):
    path = models.path(SPEC, dtype)
    req = _request(path, HOST, codegen=codegen)
    be = TvmCompiler()
    sup = be.supports(req)
    assert sup.ok, sup.reasons
    res = be.compile(req, tmp_path / "out")
    assert res.backend == "tvm" and res.backend_version.startswith("0.27")
    assert res.details["codegen"] == codegen
    hdr = (tmp_path / "out" / "net.h").read_text()
    t = req.graph.tensors[req.graph.inputs[0]]
    assert f"#define NET_INPUT_SHAPE {{{', '.join(map(str, t.shape))}}}" in hdr
    assert f"#define NET_INPUT_DTYPE_{dtype.upper()} 1" in hdr
    assert "int net_invoke(const void *input, void *output);" in hdr
    if dtype == "int8":
        assert "#define NET_INPUT_SCALE" in hdr and "#define NET_OUTPUT_ZERO_POINT" in hdr
    assert res.arena_bytes == res.details["activation_arena_bytes"] + res.details["workspace_bytes"]
    lib = _host_lib(tmp_path / "out", "net")
    xs = _inputs(req.graph)
    ref = reference_for(path, req.graph)
    _check(_run_host(lib, "net", req.graph, xs), [ref.run([x])[0] for x in xs], dtype)


def test_two_models_link_together(tmp_path, models):
    """Symbols are prefixed with the model name: two models share one firmware."""
    be = TvmCompiler()
    out = tmp_path / "out"
    for name, dtype in (("a", "float32"), ("b", "int8")):
        be.compile(_request(models.path(SPEC, dtype), HOST, name=name, runtime="none"), out)
    _host_lib(out, "both")


def test_unsupported_boards_and_formats(tmp_path, models):
    be = TvmCompiler()
    uno = load_profile("uno")
    sup = be.supports(_request(models.path(SPEC, "float32"), uno))
    assert not sup.ok and "avr" in sup.reasons[0]
    sup = be.supports(_request(models.path(SPEC, "float32"), load_profile("nucleo_f446re"), codegen="llvm"))
    assert not sup.ok and "codegen=c" in sup.reasons[0]
    sup = be.supports(_request(models.path(SPEC, "float32"), HOST, codegen="wasm"))
    assert not sup.ok and "codegen" in sup.reasons[0]
    fake = CompileRequest(model_path=models.path(SPEC, "float32"), model_format="sklearn", graph=None,
                          device=HOST, options=CompileOptions(name="m"))
    sup = be.supports(fake)
    assert not sup.ok and "sklearn" in sup.reasons[0]


# ---- Cortex-M4 in QEMU ------------------------------------------------------------

def _main_c(graph, xs, name="net") -> str:
    t = graph.tensors[graph.inputs[0]]
    o = graph.tensors[graph.outputs[0]]
    ctype = t.dtype.c_type
    flat = ", ".join("{" + ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v))
                                     for v in x.reshape(-1)) + "}" for x in xs)
    return f"""#include <stdint.h>
#include <string.h>
#include "tml_board.h"
#include "{name}.h"
static const {ctype} inputs[{len(xs)}][{t.size}] = {{{flat}}};
static {o.dtype.c_type} out[{o.size}];
int main(void) {{
    board_init();
    for (int k = 0; k < {len(xs)}; ++k) {{
        if ({name}_invoke(inputs[k], out) != 0) {{ board_puts("fail\\n"); return 1; }}
        for (int i = 0; i < {o.size}; ++i) {{
            uint32_t w = 0;
            memcpy(&w, &out[i], sizeof out[i]);
            board_print_u32_hex(w);
            board_putc(' ');
        }}
        board_putc('\\n');
    }}
    return 0;
}}
"""


def _parse(stdout: str, graph):
    o = graph.tensors[graph.outputs[0]]
    rows = [line.split() for line in stdout.strip().splitlines() if line.strip()]
    words = np.array([[int(w, 16) for w in r] for r in rows], dtype=np.uint32)
    if o.dtype.np_name == "float32":
        vals = words.view(np.float32)
    else:
        vals = (words & 0xFF).astype(np.uint8).view(np.int8)
    return [v.reshape(o.shape) for v in vals]


def _need_qemu():
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")


def _m4_firmware(tmp_path: Path, sources: list[Path], objects: list[Path]) -> Path:
    """Cross-build for mps2-an386 (Cortex-M4F) and link with libm.

    ``emu.build_firmware`` has no way to add ``-lm`` or foreign objects at
    link time, so this links with the flags its README documents.
    """
    from platformio_tinyml.emu import (SUPPORT_DIR, arch_flags, compile_only, support_include_dirs,
                                       support_sources)
    machine = "mps2-an386"
    srcs = [*sources, *support_sources(machine)]
    incs = [tmp_path / "out", *support_include_dirs(machine)]
    objs = compile_only(srcs, incs, "cortex-m4", "fpv4-sp-d16", out_dir=tmp_path / "obj", opt="-O2")
    elf = tmp_path / "fw.elf"
    cmd = ["arm-none-eabi-gcc", *arch_flags("cortex-m4", "fpv4-sp-d16"), "-O2", *map(str, objs),
           *map(str, objects), "-nostartfiles",
           "-T", str(SUPPORT_DIR / "machines" / machine / "link.ld"), "-L", str(SUPPORT_DIR / "cortexm"),
           "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs", "-lm", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return elf


@pytest.mark.parametrize("codegen,dtype", [("c", "float32"), ("c", "int8")])
def test_cortex_m4_in_qemu(tmp_path, models, codegen, dtype):
    """TVM's kernels (C source, or its thumbv7em LLVM object) + the glue, run in QEMU."""
    _need_qemu()
    from platformio_tinyml.emu import run
    path = models.path(SPEC, dtype)
    req = _request(path, load_profile("nucleo_f446re"), codegen=codegen)
    res = TvmCompiler().compile(req, tmp_path / "out")
    if codegen == "llvm":
        assert res.details["target"]["mtriple"] == "thumbv7em-none-eabihf"
    xs = _inputs(req.graph, n=4)
    (tmp_path / "main.c").write_text(_main_c(req.graph, xs))
    elf = _m4_firmware(tmp_path, [tmp_path / "main.c", *sorted((tmp_path / "out").glob("*.c"))],
                       sorted((tmp_path / "out").glob("*.o")))
    r = run(elf, "mps2-an386", timeout=60)
    assert r.exit_code == 0, r.stdout + r.stderr
    ref = reference_for(path, req.graph)
    _check(_parse(r.stdout, req.graph), [ref.run([x])[0] for x in xs], dtype)


# ---- Linux-class boards: NAME.so on the TVM runtime ------------------------------------

NATIVE = DeviceProfile(board="native", name="native (x86_64 Linux)", platform="native", arch="x86_64",
                       core="x86-64", word_bits=64, clock_hz=1_000_000_000,
                       flash_bytes=1 << 30, ram_bytes=1 << 30, fpu="dp")
AARCH64 = DeviceProfile(board="rpi4_64", name="AArch64 Linux board", platform="linux_arm", arch="aarch64",
                        core="cortex-a72", word_bits=64, clock_hz=1_500_000_000,
                        flash_bytes=1 << 30, ram_bytes=1 << 30, fpu="dp")

_IO_MAIN = r"""#include <stdio.h>
#include "{name}.h"
int main(int argc, char **argv) {{
    static {name}_input_t in[{N}_INPUT_SIZE];
    static {name}_output_t out[{N}_OUTPUT_SIZE];
    FILE *f, *g;
    if (argc != 3 || (f = fopen(argv[1], "rb")) == NULL || (g = fopen(argv[2], "wb")) == NULL) return 2;
    while (fread(in, 1, {N}_INPUT_BYTES, f) == {N}_INPUT_BYTES) {{
        if ({name}_invoke(in, out) != 0) {{ fprintf(stderr, "%s\n", {name}_tvm_last_error()); return 1; }}
        fwrite(out, 1, {N}_OUTPUT_BYTES, g);
    }}
    fclose(f);
    return fclose(g) != 0;
}}
"""


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_native_shared_library_on_tvm_runtime(tmp_path, models, dtype):
    """native board: TVM's normal flow (relax build, export_library) + NAME.c on the TVM-FFI C API,
    built with gcc into a program that runs here."""
    from platformio_tinyml.compilers.interface import FileRole
    path = models.path(SPEC, dtype)
    req = _request(path, NATIVE)
    be = TvmCompiler()
    sup = be.supports(req)
    assert sup.ok, sup.reasons
    out = tmp_path / "out"
    res = be.compile(req, out)
    assert res.details["runtime"] == "tvm" and res.details["target"]["mtriple"] == "x86_64-linux-gnu"
    roles = {f.path.name: f.role for f in res.files}
    assert roles == {"net.so": FileRole.DATA, "net.c": FileRole.SOURCE, "net.h": FileRole.HEADER}
    assert "-ltvm_runtime" in res.build_flags and "-ltvm_ffi" in res.build_flags
    assert any((d / "tvm" / "ffi" / "c_api.h").is_file() for d in res.include_dirs)
    hdr = (out / "net.h").read_text()
    t = req.graph.tensors[req.graph.inputs[0]]
    assert f"#define NET_INPUT_SHAPE {{{', '.join(map(str, t.shape))}}}" in hdr
    assert "int net_invoke(const void *input, void *output);" in hdr
    (tmp_path / "main.c").write_text(_IO_MAIN.format(name="net", N="NET"))
    exe = tmp_path / "net_main"
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", *(f"-I{d}" for d in res.include_dirs),
           str(tmp_path / "main.c"), str(out / "net.c"), "-o", str(exe), *res.build_flags]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    xs = _inputs(req.graph)
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in xs))
    # Run from elsewhere: the default library path is absolute (this build folder).
    proc = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                          capture_output=True, text=True, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr
    o = req.graph.tensors[req.graph.outputs[0]]
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), dtype=o.dtype.numpy).reshape(len(xs), *o.shape)
    ref = reference_for(path, req.graph)
    _check(list(got), [ref.run([x])[0] for x in xs], dtype)
    # A wrong library path is reported, not crashed on.
    proc = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out2.bin")], capture_output=True,
                          text=True, timeout=120, env={"NET_TVM_LIBRARY": str(tmp_path / "missing.so")})
    assert proc.returncode == 1 and "missing.so" in proc.stderr


def _linux_arm(board: str):
    from conftest import BOARDS
    return load_profile(str(BOARDS / "linux_arm" / f"{board}.json"))


@pytest.mark.parametrize("board,cc,machine,triple", [
    ("raspberrypi_3b", "arm-linux-gnueabihf-gcc", "EM_ARM", "armv7a-linux-gnueabihf"),
    ("raspberrypi_zero", "arm-linux-gnueabihf-gcc", "EM_ARM", "armv6kz-linux-gnueabihf"),
    ("aarch64", "aarch64-linux-gnu-gcc", "EM_AARCH64", "aarch64-linux-gnu"),
])
def test_linux_arm_shared_library_cross_built(tmp_path, models, board, cc, machine, triple):
    """linux_arm boards: NAME.so cross-linked for the board (checked, not run) and NAME.c compiling
    for it against the TVM-FFI headers."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    elftools = pytest.importorskip("elftools.elf.elffile")
    device = AARCH64 if board == "aarch64" else _linux_arm(board)
    req = _request(models.path(SPEC, "float32"), device)
    be = TvmCompiler()
    sup = be.supports(req)
    assert sup.ok, sup.reasons
    res = be.compile(req, tmp_path / "out")
    assert res.details["target"]["mtriple"] == triple
    so = tmp_path / "out" / "net.so"
    with so.open("rb") as f:
        elf = elftools.ELFFile(f)
        assert elf["e_machine"] == machine and elf["e_type"] == "ET_DYN"
        assert elf.elfclass == (64 if machine == "EM_AARCH64" else 32)
        if machine == "EM_ARM":
            assert elf["e_flags"] & 0x400      # EF_ARM_ABI_FLOAT_HARD
        syms = {s.name for s in elf.get_section_by_name(".dynsym").iter_symbols()}
    assert "__tvm_ffi__library_bin" in syms      # the Relax VM executable, embedded
    assert "./net.so" in (tmp_path / "out" / "net.c").read_text()
    assert any("libtvm_runtime" in d for d in res.diagnostics)
    proc = subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-c",
                           *(f"-I{d}" for d in res.include_dirs), str(tmp_path / "out" / "net.c"),
                           "-o", str(tmp_path / "net.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_runtime_option(tmp_path, models):
    be = TvmCompiler()
    path = models.path(SPEC, "float32")
    sup = be.supports(_request(path, load_profile("nucleo_f446re"), runtime="tvm"))
    assert not sup.ok and "Linux-class" in sup.reasons[0]
    sup = be.supports(_request(path, NATIVE, runtime="jit"))
    assert not sup.ok and "runtime" in sup.reasons[0]
    sup = be.supports(_request(path, NATIVE, runtime="tvm", codegen="c"))
    assert not sup.ok and "runtime=none" in sup.reasons[0]
    # runtime=none (or naming a codegen) keeps the runtime-free glue on a Linux board.
    res = be.compile(_request(path, NATIVE, runtime="none"), tmp_path / "out")
    assert res.details["runtime"] == "none"
    assert {p.path.name for p in res.files} >= {"net.c", "net.h", "net_kernels.c"}


def test_cortex_m4_llvm_object_needs_initialized_got(tmp_path, models):
    """Why codegen=llvm is refused for Cortex-M: TVM's thumbv7em object is PIC and reads the
    workspace hooks through the GOT. Linked with the stock startup (which copies .data only) it
    HardFaults at the first kernel call; with .got copied along with .data it matches."""
    _need_qemu()
    from platformio_tinyml.compilers.tvm import emit, lower
    from platformio_tinyml.emu import SUPPORT_DIR, run
    elftools = pytest.importorskip("elftools.elf.relocation")
    path = models.path(SPEC, "float32")
    req = _request(path, load_profile("nucleo_f446re"))
    prog = lower.lower(path, "tflite")
    target = lower.llvm_target(req.device)
    assert target["mtriple"] == "thumbv7em-none-eabihf"
    k = lower.build_kernels(prog, target, "net")
    emit.write("net", prog, k, req.graph, tmp_path / "out", "0.27", path.name)
    obj = tmp_path / "out" / "net_kernels.o"
    from elftools.elf.elffile import ELFFile
    with obj.open("rb") as f:
        elf = ELFFile(f)
        rel = elf.get_section_by_name(".rel.text")
        syms = elf.get_section(rel["sh_link"])
        got = {syms.get_symbol(r["r_info_sym"]).name for r in rel.iter_relocations()
               if r["r_info_type"] == 96}           # R_ARM_GOT_PREL
    assert got == {"__TVMBackendAllocWorkspace", "__TVMBackendFreeWorkspace"}
    assert not TvmCompiler().supports(_request(path, req.device, codegen="llvm")).ok
    xs = _inputs(req.graph, n=2)
    (tmp_path / "main.c").write_text(_main_c(req.graph, xs))
    elf_path = _m4_firmware(tmp_path, [tmp_path / "main.c", tmp_path / "out" / "net.c"], [obj])
    r = run(elf_path, "mps2-an386", timeout=60)
    assert r.exit_code != 0                          # HardFault: the GOT in RAM is all zeros
    # The same objects with a sections.ld that copies .got with .data.
    alt = tmp_path / "ld"
    alt.mkdir()
    stock = (SUPPORT_DIR / "cortexm" / "sections.ld").read_text()
    assert "*(.data .data.*)" in stock
    (alt / "sections.ld").write_text(stock.replace("*(.data .data.*)", "*(.data .data.*)\n        *(.got .got.*)"))
    fixed = tmp_path / "fixed.elf"
    from platformio_tinyml.emu import arch_flags
    cmd = ["arm-none-eabi-gcc", *arch_flags("cortex-m4", "fpv4-sp-d16"), "-O2",
           *map(str, sorted((tmp_path / "obj").glob("*.o"))), str(obj), "-nostartfiles",
           "-T", str(SUPPORT_DIR / "machines" / "mps2-an386" / "link.ld"), "-L", str(alt),
           "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs", "-lm", "-o", str(fixed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = run(fixed, "mps2-an386", timeout=60)
    assert r.exit_code == 0, r.stdout + r.stderr
    ref = reference_for(path, req.graph)
    _check(_parse(r.stdout, req.graph), [ref.run([x])[0] for x in xs], "float32")
