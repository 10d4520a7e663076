"""tvm backend: real Apache TVM kernels + generated glue against the reference interpreter.

Small TFLite models (float32 and int8, built with TensorFlow) go through
TVM 0.27; the glue is built with -Wall -Wextra -Werror for the host (TVM's
C kernels and its x86_64 LLVM object) and for Cortex-M4, where it runs in
QEMU mps2-an386. Goldens come from TFLite Micro's host interpreter.
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
        be.compile(_request(models.path(SPEC, dtype), HOST, name=name), out)
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
