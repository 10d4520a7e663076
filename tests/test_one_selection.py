"""One selection path: `tinyml compile`, `compare`, `verify`, the PlatformIO/SCons cache
(`compile_cached`) and the service's check give the same backend and the same reason
for the same model and board, and `verify` checks that backend's code."""

from __future__ import annotations

import json

import pytest

from conftest import MLPERF, MLPERF_INT8
from platformio_tinyml.cli.main import main
from platformio_tinyml.device import load_profile
from platformio_tinyml.integrations.core import ModelSpec, compile_cached
from platformio_tinyml.service import tasks


def _dense_keras(path):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.Dense(8, activation="relu"),
                         tf.keras.layers.Dense(3)]).save(path)
    return path


def _forest(path):
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(200, 5, random_state=0)
    joblib.dump(RandomForestClassifier(4, max_depth=4, random_state=0).fit(X, y), path)
    return path


MODELS = {"kws": lambda tmp: MLPERF / MLPERF_INT8["kws"],
          "dense.keras": lambda tmp: _dense_keras(tmp / "dense.keras"),
          "forest.joblib": lambda tmp: _forest(tmp / "forest.joblib")}


def _json(capsys, *argv) -> tuple[int, dict]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr().out
    return rc, json.loads(out)


# (model, board, the backend every front end must choose)
CASES = [("kws", "nucleo_h743zi", "cgen"),         # tvm fits too: compare asks it, the choice stays
         ("dense.keras", "nucleo_f446re", "emlearn"),
         ("forest.joblib", "uno", "emlearn")]


@pytest.mark.parametrize("model,board,expected", CASES)
def test_every_front_end_chooses_alike(tmp_path, capsys, monkeypatch, model, board, expected):
    path = MODELS[model](tmp_path)
    dev = load_profile(board)
    answers = {}

    assert main(["compile", str(path), "-t", board, "-o", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    answers["compile"] = (report["backend"], report["chosen_because"])

    rc, table = _json(capsys, "compare", path, "-t", board, "--json")
    assert rc == 0
    answers["compare"] = (table["chosen"], table["because"])
    rows = {r["backend"]: r for r in table["backends"]}
    ranked = [n for n, r in rows.items() if r["supported"] and not any("not ranked" in x for x in r["reasons"])]
    assert f"first of {len(ranked)} supporting" in table["because"]
    if board == "nucleo_h743zi":    # tvm fits, but auto asks it only when nothing cheaper fits
        assert rows["tvm"]["supported"] and rows["tvm"]["flash_bytes"] > 0
        assert any(r.startswith("not ranked:") for r in rows["tvm"]["reasons"]) and len(ranked) == 2

    rc, verdict = _json(capsys, "verify", path, "-t", board, "-n", "3", "--json")
    assert rc == 0 and verdict["ok"], verdict
    answers["verify"] = (verdict["backend"], verdict["because"])

    built = compile_cached(ModelSpec.make(path), dev, tmp_path / "cache" / "m")
    answers["pio run / SCons"] = (built.report["backend"], built.report["chosen_because"])

    monkeypatch.chdir(tmp_path)     # the service's child changes into its job folder
    got, _artifact = tasks.compile_to(str(tmp_path), str(path), dev.to_dict(), "m", "auto", {}, None, "svc")
    answers["service"] = (got["backend"], got["chosen_because"])

    assert set(answers.values()) == {answers["compile"]}, answers
    assert answers["compile"][0] == expected
    assert "fits flash and RAM" in answers["compile"][1]


def test_verify_checks_the_requested_backend(capsys):
    """--backend tvm: tvm's own code for the board is built for the host and run (int8
    within its documented 1); --backend tflm: the embedded array is the model file."""
    ad = MLPERF / MLPERF_INT8["ad"]
    rc, v = _json(capsys, "verify", ad, "-t", "nucleo_h743zi", "-n", "2", "--backend", "tvm", "--json")
    assert rc == 0 and v["backend"] == "tvm" and v["because"] == "requested"
    assert v["method"].startswith("tvm code (host build)")
    (out,) = v["outputs"]
    assert out["samples"] == 2 and out["tolerance"] == 1 and out["max_abs_error"] <= 1 and out["ok"]
    rc, v = _json(capsys, "verify", ad, "-t", "nucleo_h743zi", "--backend", "tflm", "--json")
    assert rc == 0 and v["backend"] == "tflm"
    assert f"{ad.stat().st_size:,} B, identical to the model file" in v["method"]


def test_integer_tolerance_is_stated_and_bounded():
    """A backend's documented integer tolerance (tvm: 1) passes differences up to it, not beyond."""
    from platformio_tinyml.verify.parity import OutputParity
    assert OutputParity("y", "int8", samples=3, exact=0, max_abs=1, tolerance=1).verdict == "PASS (within 1)"
    assert OutputParity("y", "int8", samples=3, exact=0, max_abs=2, tolerance=1).verdict == "FAIL (within 1)"
    assert not OutputParity("y", "int8", samples=3, exact=2, max_abs=1).ok    # cgen: exact only
