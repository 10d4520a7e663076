"""Selection shared by compile and `tinyml compare`; broken plugins are named and skipped."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from conftest import MLPERF_INT8
from platformio_tinyml.cli.main import main
from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest, Estimate, Support
from platformio_tinyml.compilers.registry import discover
from platformio_tinyml.compilers.selection import rank_key, select_backend
from platformio_tinyml.device import load_profile

PLUGINS = '''
import time
from platformio_tinyml.compilers.interface import Estimate, Support

class _Base:
    version = "1.0"
    def compile(self, request, outdir):
        raise RuntimeError("not used")

class Raising(_Base):
    name = "fakeraise"
    def supports(self, request):
        raise ZeroDivisionError("boom")

class Junk(_Base):
    name = "fakejunk"
    def supports(self, request):
        return {"ok": True}

class Sleeper(_Base):
    name = "fakesleep"
    def supports(self, request):
        time.sleep(30)
        return Support(True, (), Estimate(1, 1, 1))

class Fast(_Base):
    name = "fakefast"
    def supports(self, request):
        return Support(True, (), Estimate(flash_bytes=100, ram_bytes=100, latency_cycles=1))
'''


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """A real distribution on sys.path whose entry points name the fake backends."""
    (tmp_path / "fake_tinyml_plugins.py").write_text(PLUGINS)
    info = tmp_path / "fake_tinyml_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tinyml-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [platformio_tinyml.compilers]
        fakeraise = fake_tinyml_plugins:Raising
        fakejunk = fake_tinyml_plugins:Junk
        fakesleep = fake_tinyml_plugins:Sleeper
        fakefast = fake_tinyml_plugins:Fast
        fakemissing = fake_tinyml_plugins:DoesNotExist
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("fake_tinyml_plugins", None)


def _request(mlperf_dir, board="nucleo_f446re"):
    from platformio_tinyml.pipeline import load_any
    path = mlperf_dir / MLPERF_INT8["kws"]
    g, fmt = load_any(path)
    return CompileRequest(path, fmt, g, load_profile(board), CompileOptions("kws"))


def test_broken_plugins_are_named_and_skipped(fake_plugins, mlperf_dir):
    reg = discover()
    assert "fakemissing" in reg.problems and "fake-tinyml-plugins" in reg.problems["fakemissing"]
    chosen, support, because = select_backend(_request(mlperf_dir), registry=reg, timeout_s=1.0)
    assert chosen == "fakefast"                      # the one well-behaved fake wins on latency
    assert "fakeraise" in support["fakeraise"].reasons[0] and "ZeroDivisionError" in support["fakeraise"].reasons[0]
    assert "not a Support" in support["fakejunk"].reasons[0]
    assert "did not answer within 1 s" in support["fakesleep"].reasons[0]
    assert not support["fakemissing"].ok
    assert support["cgen"].ok                        # the real backends were still asked


def test_rank_latency_then_flash_then_name():
    fast = Support(True, (), Estimate(900, 10, latency_cycles=5))
    small = Support(True, (), Estimate(100, 10, latency_cycles=None))
    tie_a = Support(True, (), Estimate(100, 10, latency_cycles=None))
    order = sorted([("zz", small), ("aa", tie_a), ("fast", fast)], key=lambda p: rank_key(*p))
    assert [n for n, _ in order] == ["fast", "aa", "zz"]


def test_estimate_over_board_size_is_not_chosen(mlperf_dir):
    """A backend that says ok but whose estimate exceeds the board is overruled."""
    req = _request(mlperf_dir, "megaatmega2560")
    chosen, support, _ = select_backend(req)
    assert chosen is None and not support["cgen"].ok


def test_compare_json_matches_compile(tmp_path, mlperf_dir, capsys):
    model = str(mlperf_dir / MLPERF_INT8["kws"])
    assert main(["compare", model, "-t", "nucleo_f446re", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["backend"]: r for r in data["backends"]}
    assert {"cgen", "tflm", "vela", "emlearn"} <= set(rows)
    assert rows["vela"]["supported"] is False and "no NPU" in rows["vela"]["reasons"][0]
    assert rows["emlearn"]["supported"] is False
    assert main(["compile", model, "-t", "nucleo_f446re", "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["backend"] == data["chosen"] and rows[data["chosen"]]["chosen"]


def test_compare_table_on_npu_board(tmp_path, mlperf_dir, capsys):
    pytest.importorskip("ethosu.vela")
    from conftest import BOARDS
    manifest = json.loads((BOARDS / "ststm32" / "nucleo_h743zi.json").read_text())
    manifest["build"]["tinyml_npu"] = "ethos-u55-128"
    board = tmp_path / "npu_board.json"
    board.write_text(json.dumps(manifest))
    assert main(["compare", str(mlperf_dir / MLPERF_INT8["kws"]), "-t", str(board)]) == 0
    out = capsys.readouterr().out
    assert "* vela" in out and "chosen: vela" in out


def test_expensive_probe_is_asked_only_when_needed_or_exhaustive(mlperf_dir):
    reg = discover()
    assert getattr(reg.compilers["tvm"], "probe_cost", "low") == "high"
    req = _request(mlperf_dir)
    chosen, support, _ = select_backend(req, registry=reg)
    assert chosen == "cgen" and "not asked" in support["tvm"].reasons[0]
    chosen_all, support_all, _ = select_backend(req, registry=reg, exhaustive=True)
    assert chosen_all == chosen and "not asked" not in " ".join(support_all["tvm"].reasons)
    assert support_all["tvm"].estimate is not None   # TVM really lowered the model
