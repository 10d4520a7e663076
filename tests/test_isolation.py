"""Native code that a model can crash runs in a child process (platformio_tinyml.isolate).

The crashing models in tests/fuzz_corpus/models/ (built by tests/crashers.py)
are first shown to kill a plain Python process running TFLite Micro, then the
reference interpreter and the tflm backend are shown to survive them (an error
naming the signal, and the next model in the same process still verifies); the
CLI refuses them at import validation before any interpreter runs. The time and memory
limits are exercised with a real sleep and a real allocation.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import crashers
from conftest import MLPERF, MLPERF_INT8
from platformio_tinyml.errors import ModelError, TinyMLError
from platformio_tinyml.isolate import (ChildCrashed, ChildOutOfMemory, ChildTimedOut, Worker,
                                       run_isolated)
from platformio_tinyml.verify.reference import ReferenceFailed, TFLMReference, reference_worker

pytest.importorskip("tflite_micro")

KWS = MLPERF / MLPERF_INT8["kws"]

_RAW_TFLM = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
ip = runtime.Interpreter.from_file(sys.argv[1], arena_size=8 << 20)
d = ip.get_input_details(0)
ip.set_input(np.zeros(d["shape"], d["dtype"]), 0)
ip.invoke()
"""


def tinyml(*args):
    proc = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(rc, out, err) -> str:
    assert rc == 2, (rc, out, err)
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinyml: error: "), out + err
    return lines[0]


@pytest.mark.parametrize("name", sorted(crashers.CRASHES))
def test_corpus_models_are_the_generators_output(name):
    assert crashers.path(name).read_bytes() == crashers.build(name)


@pytest.mark.parametrize("name", sorted(crashers.CRASHES))
def test_corpus_models_really_crash_tflm_in_process(name):
    # Without isolation the interpreter takes the whole Python process down.
    sig = getattr(signal, crashers.CRASHES[name][0])
    r = subprocess.run([sys.executable, "-c", _RAW_TFLM, str(crashers.path(name))], capture_output=True, timeout=60)
    assert r.returncode == -sig, (r.returncode, r.stderr[-500:])


@pytest.mark.parametrize("name", sorted(crashers.CRASHES))
def test_reference_crash_is_an_error_and_the_child_comes_back(name):
    signame, when, shape = crashers.CRASHES[name]
    path = crashers.path(name)
    with pytest.raises(ChildCrashed) as e:
        ref = TFLMReference(path)
        assert when == "invoke", "the interpreter opened a model it crashes on while allocating"
        ref.run([np.zeros(shape, np.int8)])
    assert e.value.signal == getattr(signal, signame)
    assert str(e.value) == (f"{path}: reference interpreter crashed on this model "
                            f"(signal {e.value.signal}, {signame}). The model is probably malformed")
    # The next model runs in a fresh child, which then serves every input.
    kws = TFLMReference(KWS)
    pid = reference_worker().call(os.getpid)
    x = np.random.default_rng(0).integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)
    first, again = kws.run([x]), kws.run([x])
    assert first[0].shape == (1, 12) and np.array_equal(first[0], again[0])
    assert reference_worker().call(os.getpid) == pid != os.getpid()


def test_verify_survives_a_crash_and_then_verifies_the_next_model(capsys):
    """In one process: the reference crashes on a model, then `tinyml verify` of KWS passes.
    (Through the CLI these models no longer reach the interpreter: import validation refuses
    them first, see test_cli_refuses_the_crashers_before_any_interpreter_runs.)"""
    from platformio_tinyml.cli.main import main
    with pytest.raises(ChildCrashed):
        TFLMReference(crashers.path("tflm_segv_zero_size_input")).run([np.zeros((1, 0), np.int8)])
    assert main(["verify", str(KWS), "-t", "nucleo_f446re", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "3/3" in out and "PASS" in out


@pytest.mark.parametrize("name", sorted(crashers.CRASHES))
def test_cli_refuses_the_crashers_before_any_interpreter_runs(name, tmp_path):
    line = one_error_line(*tinyml("verify", crashers.path(name), "-t", "nucleo_f446re"))
    assert "invalid model, rule " in line and "crashed" not in line


def test_tflm_backend_reports_a_crash_sizing_the_arena():
    """The tflm backend measures its arena with the interpreter in supports(): a crash there is
    the backend's reason (the request carries no IR graph, as for a model given straight to it)."""
    from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
    from platformio_tinyml.compilers.tflm import TflmCompiler
    from platformio_tinyml.device import load_profile
    path = crashers.path("tflm_abort_add_int8_int32")
    req = CompileRequest(path, "tflite", None, load_profile("nucleo_f446re"), CompileOptions("m"))
    s = TflmCompiler().supports(req)
    assert not s.ok
    assert s.reasons == ("reference interpreter crashed on this model (signal 6, SIGABRT); "
                         "the model is probably malformed",)


def _sleep_then(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def test_time_limit_kills_the_call_and_the_worker_starts_again():
    with Worker("slow thing", timeout_s=1) as w:
        pid = w.call(os.getpid)
        t0 = time.monotonic()
        with pytest.raises(ChildTimedOut) as e:
            w.call(time.sleep, 30, where="m.tflite")
        assert time.monotonic() - t0 < 10
        assert str(e.value).startswith("m.tflite: slow thing ran past 1 s on this model. ")
        assert "TINYML_ISOLATE_TIMEOUT_S" in str(e.value)
        assert w.call(os.getpid) != pid
        assert w.call(math.factorial, 5, timeout_s=5) == 120


def test_memory_limit_stops_a_real_allocation():
    with pytest.raises(ChildOutOfMemory) as e:
        run_isolated(np.ones, 1 << 30, what="allocation", memory_mb=512)   # 8 GiB of float64
    assert str(e.value).startswith("allocation ran out of memory on this model (limit 512 MiB)")
    assert run_isolated(np.ones, 1 << 20, memory_mb=512).sum() == 1 << 20   # 8 MiB fits


def test_native_crash_and_exit_status_are_reported():
    with pytest.raises(ChildCrashed) as e:
        run_isolated(os.abort, what="native code", hint="Report it")
    assert e.value.signal == signal.SIGABRT
    assert str(e.value) == "native code crashed on this model (signal 6, SIGABRT). Report it"
    with pytest.raises(ChildCrashed, match=r"crashed on this model \(exit status 3\)"):
        run_isolated(os._exit, 3)


def test_exceptions_come_back_as_themselves():
    from platformio_tinyml.model.tflite import load_tflite
    with pytest.raises(ModelError) as e:
        run_isolated(load_tflite, __file__)
    assert isinstance(e.value, TinyMLError) and e.value.where == __file__
    with pytest.raises(ValueError, match="math domain error"):
        run_isolated(math.sqrt, -1)


def test_the_worker_serves_many_calls_from_one_child():
    with Worker() as w:
        pids = {w.call(os.getpid) for _ in range(5)}
        assert len(pids) == 1 and os.getpid() not in pids
        assert w.call(_sleep_then, 0, 7) == 7


def test_tvm_probe_past_its_time_limit_skips_tvm(monkeypatch):
    pytest.importorskip("tvm")
    from platformio_tinyml.compilers.interface import CompileOptions, CompileRequest
    from platformio_tinyml.compilers.tvm import TvmCompiler
    from platformio_tinyml.compilers.tvm.backend import PROBE_TIMEOUT_ENV
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.isolate import shared_worker
    from platformio_tinyml.pipeline import load_any
    graph, fmt = load_any(KWS)
    req = CompileRequest(model_path=KWS, model_format=fmt, graph=graph, device=load_profile("nucleo_f446re"),
                         options=CompileOptions(name="kws"))
    shared_worker("TVM probe").close()   # a fresh child: importing TVM alone takes longer than the limit
    monkeypatch.setenv(PROBE_TIMEOUT_ENV, "0.3")
    t0 = time.monotonic()
    sup = TvmCompiler().supports(req)
    assert time.monotonic() - t0 < 10
    assert not sup.ok and sup.reasons == (f"skipped, probe took too long (over 0.3 s; {PROBE_TIMEOUT_ENV} sets "
                                          "the limit)",)


def test_a_model_tflm_refuses_is_one_line_with_its_reason(tmp_path):
    path = tmp_path / "softmax_int32.tflite"
    path.write_bytes(crashers.one_op_model("SOFTMAX", [("x", "INT32", [1, 4], None, None, None),
                                                       ("y", "INT32", [1, 4], None, None, None)], [0], [1]))
    with pytest.raises(ReferenceFailed) as e:
        TFLMReference(path)
    assert str(e.value) == (f"{path}: the reference interpreter (TFLite Micro) cannot run this model: RuntimeError: "
                            "TFLM failed to allocate tensors (Node SOFTMAX (number 0) failed to prepare with status 1)")
