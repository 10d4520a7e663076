"""tflm backend on the MLPerf Tiny int8 models: array bytes, resolver ops, arena."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

pytest.importorskip("tflite_micro")

from conftest import MLPERF_INT8  # noqa: E402

from platformio_tinyml.compilers.tflm.backend import arena_with_margin  # noqa: E402
from platformio_tinyml.compilers.tflm.emit import resolver_method  # noqa: E402
from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.pipeline import compile_model  # noqa: E402

# From /work/shared/models/mlperf_tiny/MANIFEST.md (TFLM host interpreter, print_allocations).
ARENA = {"kws": 24_272, "vww": 103_680, "resnet8": 55_984, "ad": 3_984}


def _array_bytes(source: str) -> bytes:
    body = source.split("= {", 1)[1].split("};", 1)[0]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


@pytest.fixture(scope="module")
def board():
    return load_profile("nucleo_h743zi")


@pytest.mark.parametrize("model", sorted(MLPERF_INT8))
def test_mlperf(tmp_path, mlperf_dir, board, model):
    path = mlperf_dir / MLPERF_INT8[model]
    out = compile_model(path, board, tmp_path, name="net", backend="tflm")
    r = out.result
    # 1. the array is the model file, aligned
    src = (tmp_path / "net_model_data.c").read_text()
    assert _array_bytes(src) == path.read_bytes()
    assert "__attribute__((aligned(16)))" in src and "alignas(16)" in src
    # 2. the resolver registers exactly the model's ops (golden: the IR importer)
    ops = [op.kind.value for op in out.request.graph.ops]
    hdr = (tmp_path / "net_ops.h").read_text()
    registered = re.findall(r"r\.(Add\w+)\(\)", hdr)
    assert sorted(registered) == sorted(resolver_method(o) for o in set(ops))
    assert f"MicroMutableOpResolver<{len(set(ops))}>" in hdr
    assert r.details["op_counts"] == dict(Counter(ops))
    # 3. the arena is what the TFLM interpreter reports, plus the documented margin
    assert r.details["arena_measured_bytes"] == ARENA[model]
    assert r.arena_bytes == arena_with_margin(ARENA[model])
    assert f"#define NET_ARENA_BYTES {r.arena_bytes}" in (tmp_path / "net.h").read_text()
    assert r.lib_deps and "tflite-micro" in r.lib_deps[0]


def test_model_array_compiles_as_c(tmp_path, mlperf_dir, board):
    compile_model(mlperf_dir / MLPERF_INT8["kws"], board, tmp_path, name="kws", backend="tflm")
    main = tmp_path / "main.c"
    main.write_text('#include "kws.h"\n#include "kws_model_data.h"\n'
                    'int main(void) { return kws_model[4] == \'T\' && kws_model_len == KWS_MODEL_LEN '
                    '&& KWS_INPUT_BYTES == 490 ? 0 : 1; }\n')
    exe = tmp_path / "a.out"
    proc = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path),
                           str(main), str(tmp_path / "kws_model_data.c"), "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(exe)]).returncode == 0
    nm = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout
    addr = int(next(ln.split()[0] for ln in nm.splitlines() if ln.endswith(" kws_model")), 16)
    assert addr % 16 == 0


def test_avr_is_refused(mlperf_dir):
    from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
    from platformio_tinyml.compilers.tflm import TflmCompiler
    uno = load_profile("megaatmega2560")
    req = CompileRequest(mlperf_dir / MLPERF_INT8["ad"], "tflite", None, uno, CompileOptions("ad"))
    s = TflmCompiler().supports(req)
    assert not s.ok and "32-bit" in s.reasons[0]


def test_same_c_api_as_cgen(tmp_path, mlperf_dir, board):
    """Firmware does not change with the backend: identical I/O macros and entry points."""
    import re
    compile_model(mlperf_dir / MLPERF_INT8["kws"], board, tmp_path / "tflm", name="kws", backend="tflm")
    compile_model(mlperf_dir / MLPERF_INT8["kws"], board, tmp_path / "cgen", name="kws", backend="cgen")

    def api(path):
        text = (path / "kws.h").read_text()
        return ([ln for ln in text.splitlines() if re.match(r"#define KWS_(INPUT|OUTPUT|NUM)", ln)],
                [ln for ln in text.splitlines() if ln.startswith(("int kws_", "void *kws_"))])

    assert api(tmp_path / "tflm") == api(tmp_path / "cgen")
    cc = (tmp_path / "tflm" / "kws_tflm.cc").read_text()
    for needle in ('extern "C" int kws_invoke(const void *input, void *output)', "AllocateTensors()",
                   "new (interp_storage)", "Invoke()"):
        assert needle in cc
    assert "malloc" not in cc
