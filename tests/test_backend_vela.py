"""vela backend: Ethos-U55-128 on the MLPerf Tiny int8 models; no NPU, no vela."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

pytest.importorskip("ethosu.vela")

from conftest import MLPERF_INT8  # noqa: E402

from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest  # noqa: E402
from platformio_tinyml.compilers.vela import VelaCompiler  # noqa: E402
from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.pipeline import compile_model  # noqa: E402


@pytest.fixture(scope="module")
def npu_board():
    return replace(load_profile("nucleo_h743zi"), npu="ethos-u55-128")


@pytest.mark.parametrize("model", sorted(MLPERF_INT8))
def test_mlperf_on_u55_128(tmp_path, mlperf_dir, npu_board, model):
    out = compile_model(mlperf_dir / MLPERF_INT8[model], npu_board, tmp_path, name="net")
    r = out.result
    assert r.backend == "vela", out.support        # an NPU board picks the NPU
    d = r.details
    assert d["accelerator"] == "ethos-u55-128" and d["npu_ops"] > 0
    assert d["sram_bytes"] > 0 and d["flash_bytes"] > 0 and d["npu_cycles"] > 0
    assert r.estimate.latency_cycles > 0
    blob = tmp_path / "net_vela.tflite"
    src = (tmp_path / "net_model_data.c").read_text()
    body = src.split("= {", 1)[1]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body)) == blob.read_bytes()
    assert "r.AddEthosU()" in (tmp_path / "net_ops.h").read_text()
    assert any("ethos-u-core-driver" in dep for dep in r.lib_deps)
    assert r.arena_bytes >= d["sram_bytes"]


def test_board_without_npu_is_refused(mlperf_dir):
    board = load_profile("nucleo_h743zi")
    req = CompileRequest(mlperf_dir / MLPERF_INT8["kws"], "tflite", None, board, CompileOptions("kws"))
    s = VelaCompiler().supports(req)
    assert not s.ok and "no NPU" in s.reasons[0]


def test_float_model_is_refused(mlperf_dir, npu_board):
    req = CompileRequest(mlperf_dir / "ad01_fp32.tflite", "tflite", None, npu_board,
                         CompileOptions("ad"))
    s = VelaCompiler().supports(req)
    assert not s.ok and "int8" in s.reasons[0]


def test_unknown_npu_is_refused(mlperf_dir, npu_board):
    req = CompileRequest(mlperf_dir / MLPERF_INT8["kws"], "tflite", None,
                         replace(npu_board, npu="hexagon"), CompileOptions("kws"))
    s = VelaCompiler().supports(req)
    assert not s.ok and "Ethos-U" in s.reasons[0]
