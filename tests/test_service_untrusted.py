"""Untrusted input and limits: a folder of bad uploads, per-compile time/memory limits, jobs in flight.

Every bad upload gets a 4xx whose body is one line, or (a model that only loading it
shows to be bad: truncated, mutated, an untrusted skops type) a 202 whose job fails with
the one-line error; the service keeps serving.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import random
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import MLPERF, MLPERF_INT8
from service_support import Server, failed_job, one_line, wait_done

KWS, VWW = MLPERF / MLPERF_INT8["kws"], MLPERF / MLPERF_INT8["vww"]
MIB = 1 << 20
ONNX = Path(__file__).resolve().parent / "fuzz_corpus" / "seeds" / "onnx_convnet.onnx"


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _link(name: str, target: str):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def _mutated(data: bytes, seed: int = 0) -> bytes:
    rng, out = random.Random(seed), bytearray(data)
    for _ in range(64):
        out[rng.randrange(0, 2000)] ^= 0xFF
    return bytes(out)


@functools.lru_cache(maxsize=1)
def bad_uploads() -> dict[str, tuple[str, bytes, int, str]]:
    """case -> (file name, bytes, HTTP status, words the one-line answer holds). A corrupt or
    truncated model is refused at once (its structure is checked before a job is queued); what
    needs the model loaded to be seen makes the job fail with that line (test below)."""
    kws = KWS.read_bytes()
    return {
        "truncated": ("kws.tflite", kws[:len(kws) * 2 // 5], 422, "corrupt or truncated TFLite"),
        "mutated": ("kws.tflite", _mutated(kws), 422, "corrupt or truncated TFLite"),
        "onnx_truncated": ("convnet.onnx", ONNX.read_bytes()[:300], 422, "corrupt or truncated ONNX"),
        "not_tflite": ("kws.tflite", kws[:4] + b"XXXX" + kws[8:], 422, "TFL3"),
        "tflite_named_onnx": ("kws.onnx", kws, 422, "kws.onnx"),
        "onnx_named_tflite": ("ad.tflite", b"\x08\x07\x12\x07pytorch" + bytes(64), 422, "TFL3"),
        "not_skops": ("forest.skops", b"\x80\x04K\x01.", 422, "zip archive"),
        "wrong_extension": ("kws.txt", kws, 415, "unsupported model file type"),
        "no_extension": ("kws", kws, 415, "unsupported model file type"),
        "empty": ("empty.tflite", b"", 422, "empty"),
        "oversize": ("big.tflite", kws + bytes(int(1.5 * MIB)), 413, "limit"),
        "pickle": ("forest.pkl", pickle.dumps({"not": "an estimator"}), 415, "skops"),
        "joblib": ("forest.joblib", b"\x80\x04K\x01.", 415, "pickled"),
        "zip_bomb": ("bomb.zip", _zip([("saved_model.pb", b"x"), ("variables/v.data", bytes(40 * MIB))]), 413,
                     "unpacks to more than"),
        "zip_traversal": ("sm.zip", _zip([("saved_model.pb", b"x"), ("../../evil.pb", b"x")]), 422,
                          "points outside"),
        "zip_absolute": ("sm.zip", _zip([("saved_model.pb", b"x"), ("/etc/evil", b"x")]), 422, "points outside"),
        "zip_link": ("sm.zip", _zip([("saved_model.pb", b"x"), _link("variables", "/etc")]), 422, "link"),
        "zip_not_savedmodel": ("sm.zip", _zip([("model.tflite", kws)]), 422, "saved_model.pb"),
        "zip_corrupt": ("sm.zip", b"PK\x03\x04" + bytes(100), 422, "zip"),
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The bad uploads as files, one per case."""
    root = tmp_path_factory.mktemp("bad_uploads")
    for case, (name, data, *_rest) in bad_uploads().items():
        (root / case).mkdir()
        (root / case / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("svc") / "data", "--max-upload-mb", "1", "--max-jobs-in-flight", "1",
                 "--workers", "1", "--job-timeout-s", "2").start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return server.client(server.token("untrusted"))


@pytest.mark.parametrize("case", sorted(bad_uploads()))
def test_bad_upload_is_a_one_line_4xx(case, folder, client):
    _, _, status, needle = bad_uploads()[case]
    path = next((folder / case).iterdir())
    r = client.post("/v1/compilations", files={"model": (path.name, path.read_bytes())},
                    data={"target": "nucleo_f446re"})
    one_line(r, status, needle)
    assert client.get("/v1/health").status_code == 200


def _multipart(filename: bytes, data: bytes) -> tuple[bytes, str]:
    b = b"b0undary"
    body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="target"\r\n\r\nnucleo_f446re\r\n--' + b
            + b'\r\nContent-Disposition: form-data; name="model"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + b + b"--\r\n")
    return body, "multipart/form-data; boundary=b0undary"


def test_file_name_that_is_not_utf8_is_refused(client):
    body, ctype = _multipart(b"\xff\xfe\xfa.tflite", KWS.read_bytes())
    one_line(client.post("/v1/compilations", content=body, headers={"Content-Type": ctype}), 400, "not UTF-8")
    body, ctype = _multipart("k\u00e9ws.tflite".encode(), b"")   # UTF-8 names pass that check
    one_line(client.post("/v1/compilations", content=body, headers={"Content-Type": ctype}), 422, "empty")


@pytest.mark.parametrize("fields, status, needle", [
    ({"target": "../../etc/passwd"}, 422, "not a board id"),
    ({"target": "no_such_board"}, 422, "unknown board"),
    ({"target": "nucleo_f446re", "profile": "{}"}, 422, "exactly one of"),
    ({}, 422, "exactly one of"),
    ({"profile": "[1, 2]"}, 422, "not a JSON object"),
    ({"profile": '{"board": "x"}'}, 422, "missing"),
    ({"target": "nucleo_f446re", "options": "not json"}, 422, "options"),
    ({"target": "nucleo_f446re", "name": "1st model"}, 422, "not a C identifier"),
    ({"target": "nucleo_f446re", "backend": "no_such_backend"}, 422, "no_such_backend"),
])
def test_bad_fields_are_one_line_4xx(fields, status, needle, client):
    r = client.post("/v1/compilations", files={"model": (KWS.name, KWS.read_bytes())}, data=fields)
    one_line(r, status, needle)


def test_manifest_and_calibration_uploads_are_checked(client):
    model = {"model": (KWS.name, KWS.read_bytes())}
    one_line(client.post("/v1/compilations", files={**model, "manifest": ("board.json", b"{not json")}), 422,
             "not JSON")
    one_line(client.post("/v1/compilations", files={**model, "manifest": ("board.json", b'{"build": {}}')}), 422,
             "board")
    one_line(client.post("/v1/compilations", files={**model, "calibration": ("cal.pkl", b"x")},
                         data={"target": "nucleo_f446re"}), 415, ".npy")


def test_compile_over_its_time_limit_fails_that_job_and_the_service_lives_on(client):
    # a TVM build of VWW takes tens of seconds here: it certainly overruns the 2 s limit
    r = client.post("/v1/compilations", files={"model": (VWW.name, VWW.read_bytes())},
                    data={"target": "nucleo_f767zi", "backend": "tvm"})
    assert r.status_code == 202, r.text
    # one project, one job in flight: a second, different request waits its turn
    one_line(client.post("/v1/compilations", files={"model": (KWS.name, KWS.read_bytes())},
                         data={"target": "nucleo_f446re"}), 429, "jobs in flight")
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/compilations/{r.json()['id']}").json())["state"] != "failed":
        assert job["state"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["error"]["message"] == "the compile did not finish within its time limit (2 s)"
    assert "job_timeout_s" in job["error"]["hint"]
    assert client.get("/v1/health").json()["jobs"]["failed"] >= 1


def test_child_limits_time_memory_and_crash():
    """The child-process call itself: a hang, a memory hog and a hard crash each fail with one line."""
    from platformio_tinyml.service.jobs import JobFailed, run_limited
    with pytest.raises(JobFailed, match=r"did not finish within its time limit \(0.5 s\)"):
        run_limited(time.sleep, 60, timeout_s=0.5, memory_bytes=0)
    with pytest.raises(JobFailed, match=r"needed more than its memory limit \(2048 MiB\)"):
        run_limited(bytearray, 4 << 30, timeout_s=60, memory_bytes=2 << 30)
    with pytest.raises(JobFailed, match=r"the compiler process died \(killed by SIGABRT\)"):
        run_limited(os.abort, timeout_s=60, memory_bytes=0)
    assert run_limited(os.getpid, timeout_s=60, memory_bytes=0) != os.getpid()


def _not_imported(names: list[str]) -> tuple[list[str], int]:
    import gc
    return [n for n in names if n not in sys.modules], gc.get_freeze_count()


def test_a_job_child_starts_with_the_compilers_imported():
    """A job's child is forked from a forkserver that imported what a compile needs (cgen's
    lowering, skops, scikit-learn's estimators, emlearn: seconds of imports otherwise) and froze
    it out of the garbage collector's reach."""
    from platformio_tinyml.service.jobs import run_limited
    wanted = ["platformio_tinyml.compilers.cgen.lower_mm", "platformio_tinyml.compilers.cgen.runtime",
              "platformio_tinyml.model.tflite.reader", "skops.io", "sklearn.ensemble", "emlearn"]
    missing, frozen = run_limited(_not_imported, wanted, timeout_s=120, memory_bytes=0)
    assert missing == [] and frozen > 10000, (missing, frozen)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(server, client):
    """Property-based requests from the OpenAPI document (bounded, fixed seed), with a valid token."""
    token = client.headers["Authorization"]
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", server.url + "/v1/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                     "content_type_conformance",
         "--phases", "coverage,fuzzing", "--max-examples", "10", "--seed", "1", "--request-timeout", "120",
         "-H", f"Authorization: {token}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout.split("SUMMARY")[-1]
    assert client.get("/v1/health").status_code == 200


def test_pickles_only_for_a_project_that_opted_in(server, client, tmp_path):
    import joblib
    from sklearn.tree import DecisionTreeClassifier
    from service_support import tinyml
    rng = random.Random(0)
    X = [[rng.random() for _ in range(4)] for _ in range(60)]
    est = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, [int(x[0] > 0.5) for x in X])
    joblib.dump(est, tmp_path / "tree.joblib")
    upload = {"model": ("tree.joblib", (tmp_path / "tree.joblib").read_bytes())}
    one_line(client.post("/v1/compilations", files=upload, data={"target": "nucleo_f446re"}), 415, "skops")
    tinyml("service", "project", "pickles-ok", "--allow-pickle", "yes", "--data", server.data)
    trusted = server.client(server.token("pickles-ok"))
    r = trusted.post("/v1/compilations", files=upload, data={"target": "nucleo_f446re"})
    assert r.status_code == 202, r.text   # queued: its job's child unpickles it


class _Sneaky:
    """A class of the test's own: skops does not trust it by default."""


def test_skops_models_need_no_opt_in_and_untrusted_types_are_refused(tmp_path):
    """scikit-learn through the service without pickles: a .skops tree compiles (emlearn) for any
    project; a .skops file holding a type skops does not trust by default fails its job in one line.
    (A server of its own: the module's server has a 2 s job limit.)"""
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier
    rng = random.Random(1)
    X = [[rng.random() for _ in range(4)] for _ in range(60)]
    sio.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, [int(x[1] > 0.5) for x in X]),
             tmp_path / "tree.skops")
    sio.dump({"model": _Sneaky()}, tmp_path / "sneaky.skops")
    srv = Server(tmp_path / "data").start()
    try:
        client = srv.client(srv.token("skops"))
        r = client.post("/v1/compilations", files={"model": ("tree.skops", (tmp_path / "tree.skops").read_bytes())},
                        data={"target": "nucleo_f446re"})
        assert r.status_code == 202, r.text
        done = wait_done(client, r.json()["id"])
        assert done["state"] == "succeeded" and done["backend"] == "emlearn", (done.get("error"), done.get("log"))
        sneaky = {"model": ("sneaky.skops", (tmp_path / "sneaky.skops").read_bytes())}
        failed_job(client, client.post("/v1/compilations", files=sneaky, data={"target": "nucleo_f446re"}),
                   "not trusted", "_Sneaky")
    finally:
        srv.stop()
