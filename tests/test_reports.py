"""Machine-readable output for CI: report.json, `verify --json` and `compare --json` carry
schema_version, validate against docs/report.schema.json and hold the real figures."""

from __future__ import annotations

import contextlib
import io
import json
import re

import jsonschema
import pytest

from conftest import MLPERF, MLPERF_INT8, REPO
from platformio_tinyml.cli.main import main
from platformio_tinyml.device import load_profile

SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
KWS = MLPERF / MLPERF_INT8["kws"]


def validate(doc: dict, definition: str | None = None) -> None:
    schema = dict(SCHEMA, **({"$ref": f"#/$defs/{definition}"} if definition else {}))
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.fixture(scope="module")
def kws_outputs(tmp_path_factory):
    """compile, compare --json and verify --json of KWS on the F446RE."""
    out = tmp_path_factory.mktemp("kws")
    docs = {}       # main prints: stdout captured by hand (capsys is per test)
    for key, argv in (("compare", ["compare", KWS, "-t", "nucleo_f446re", "--json"]),
                      ("verify", ["verify", KWS, "-t", "nucleo_f446re", "-n", "3", "--json"])):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main([str(a) for a in argv]) == 0
        docs[key] = json.loads(buf.getvalue())
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["compile", str(KWS), "-t", "nucleo_f446re", "-o", str(out / "gen"), "--name", "kws"]) == 0
    docs["report"] = json.loads((out / "gen" / "report.json").read_text())
    docs["header"] = (out / "gen" / "kws.h").read_text()
    return docs


def test_report_json_is_versioned_and_holds_the_real_figures(kws_outputs):
    rep = kws_outputs["report"]
    validate(rep)
    assert rep["schema_version"] == 1 and rep["backend"] == "cgen"
    # the arena is the planner's figure, the one the generated header reserves
    arena = int(re.search(r"#define KWS_ARENA_BYTES (\d+)", kws_outputs["header"]).group(1))
    assert rep["arena_bytes"] == arena == 16_000      # KWS's live-tensor lower bound (tinyml inspect)
    assert rep["weight_bytes"] == 24_368
    dev = load_profile("nucleo_f446re")
    cycles = rep["estimated_latency_cycles"]
    assert isinstance(cycles, int) and cycles > 0
    assert rep["estimated_latency_ms"] == round(1000.0 * cycles / dev.clock_hz, 3)
    assert rep["candidates"]["cgen"]["latency_cycles"] == cycles
    assert rep["model"]["path"] == str(KWS) and "converted_to" not in rep["model"]


def test_compare_json_has_the_profile_and_compile_figures(kws_outputs):
    table, rep = kws_outputs["compare"], kws_outputs["report"]
    validate(table, "compare")
    assert table["profile"] == load_profile("nucleo_f446re").to_dict() == rep["target"]
    row = next(r for r in table["backends"] if r["chosen"])
    assert table["chosen"] == rep["backend"] and table["because"] == rep["chosen_because"]
    assert (row["flash_bytes"], row["ram_bytes"], row["latency_cycles"]) == (
        rep["estimated_flash_bytes"], rep["estimated_ram_bytes"], rep["estimated_latency_cycles"])


def test_verify_json_parses_with_the_parity_figures(kws_outputs):
    v = kws_outputs["verify"]
    validate(v, "verify")
    assert v["ok"] and v["backend"] == "cgen" and v["samples"] == 3 and v["board"] == "nucleo_f446re"
    (out,) = v["outputs"]
    assert out["name"] == "Identity" and out["dtype"] == "int8"
    assert out["exact"] == 3 and out["max_abs_error"] == 0 and out["tolerance"] == 0


def test_schema_rejects_what_ci_must_not_accept(kws_outputs):
    """The schema is not a blank cheque: a figure as text, a missing version, an unknown field."""
    rep = dict(kws_outputs["report"])
    for broken in (dict(rep, arena_bytes=f"{rep['arena_bytes']:,} B"),
                   {k: v for k, v in rep.items() if k != "schema_version"},
                   dict(rep, surprise=1)):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_keras_report_names_the_users_file(tmp_path, capsys):
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    path = tmp_path / "dense.keras"
    tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]).save(path)
    assert main(["compile", str(path), "-t", "nucleo_f446re", "-o", str(tmp_path / "gen")]) == 0
    rep = json.loads((tmp_path / "gen" / "report.json").read_text())
    validate(rep)
    assert rep["model"]["path"] == str(path) and rep["model"]["format"] == "keras"
    assert rep["model"]["converted_to"].endswith(".tflite")
