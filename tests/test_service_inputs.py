"""Input shapes and bound input values (``--input-shape`` / ``--input-value``) through a real
``tinyml serve``: the artifact is the local ``tinyml compile``'s, byte for byte; they are part
of the content key; a malformed field is one 422 line; ``tinyml remote compile``, the build
front ends' :func:`compile_for_build` and the SCons tool send them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from service_support import module_server, one_line, tinyml, wait_done  # noqa: E402
from test_onnx_bind import _mode_model, _open_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOARD = "nucleo_f446re"


server = module_server("--workers", "2")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"open": _open_model(folder / "open.onnx"), "modes": _mode_model(folder / "modes.onnx")}


@pytest.fixture(scope="module")
def client(server):
    return server.client(server.token("shapes", "compile,read,deploy"))


@pytest.fixture()
def token(client):
    return client.headers["Authorization"].split()[1]


def _submit(client, model: Path, **fields):
    data = {"target": BOARD, **{k: json.dumps(v) if isinstance(v, dict) else v for k, v in fields.items()}}
    return client.post("/v1/compilations", files={"model": (model.name, model.read_bytes())}, data=data)


def _served(client, model: Path, **fields) -> tuple[dict, dict[str, bytes]]:
    """(the finished compilation, its artifact's files)."""
    import io
    import tarfile
    r = _submit(client, model, **fields)
    assert r.status_code in (200, 202), r.text
    done = wait_done(client, r.json()["id"])
    assert done["state"] == "succeeded", done
    artifact = client.get(done["artifact_url"])
    with tarfile.open(fileobj=io.BytesIO(artifact.content), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return {**done, "etag": artifact.headers["etag"]}, files


def _local(model: Path, out: Path, *flags: str) -> dict[str, bytes]:
    """``tinyml compile`` run beside the model, as the service runs it."""
    tinyml("compile", model.name, "-t", BOARD, "-o", out, *flags, cwd=model.parent)
    return {p.name: p.read_bytes() for p in out.iterdir() if p.name != "tinyml-report.html"}


@pytest.mark.parametrize("model, fields, flags", [
    ("open", {"input_shapes": {"x": [1, 8]}}, ("--input-shape", "x=1,8")),
    ("modes", {"input_values": {"mode": [1]}}, ("--input-value", "mode=1")),
], ids=["open-dims", "bound-input"])
def test_served_artifact_is_the_local_compile_and_lookup_finds_it(client, models, tmp_path, model, fields, flags):
    done, served = _served(client, models[model], **fields)
    assert served == _local(models[model], tmp_path / "local", *flags)

    again = _submit(client, models[model], **fields)
    assert again.status_code == 200 and again.json()["cached"] is True, again.text
    from platformio_tinyml.digest import sha256_file
    body = {"model_sha256": sha256_file(models[model]), "model_file": models[model].name, "name": model,
            "target": BOARD}
    hit = client.post("/v1/compilations/lookup", json={**body, **fields})
    assert hit.status_code == 200 and hit.json()["artifact_url"], hit.text
    assert client.post("/v1/compilations/lookup", json=body).status_code == 404   # without them: another key


def test_different_shapes_or_values_never_share_an_artifact(client, models):
    ones = [_served(client, models["modes"], input_values={"mode": [v]}) for v in (1, 0)]
    shapes = [_served(client, models["open"], input_shapes={"x": [1, n]}) for n in (8, 16)]
    for (a, a_files), (b, b_files) in (ones, shapes):
        assert a["id"] != b["id"] and a["etag"] != b["etag"] and a_files != b_files
    # the value's type is kept: 1 (an integer, as --input-value mode=1 parses) and 1.0 are two keys
    float_one = _submit(client, models["modes"], input_values={"mode": [1.0]})
    assert float_one.status_code == 202 and float_one.json()["cached"] is False, float_one.text
    assert wait_done(client, float_one.json()["id"])["state"] == "succeeded"


@pytest.mark.parametrize("fields, needle", [
    ({"input_shapes": "x=1,8"}, "input_shapes: not JSON"),
    ({"input_shapes": '["x", 1]'}, "input_shapes: give a JSON object of graph input names"),
    ({"input_shapes": {"x": [1, 0]}}, "input_shapes: 'x' is not a list of 1 to 8 positive dimensions"),
    ({"input_shapes": {"x": [1, -8]}}, "input_shapes: 'x' is not a list of 1 to 8 positive dimensions"),
    ({"input_shapes": {"x": []}}, "input_shapes: 'x' is not a list of 1 to 8 positive dimensions"),
    ({"input_shapes": {"x": [1, 8.5]}}, "input_shapes: 'x' is not a list"),
    ({"input_shapes": {"x": [1, True]}}, "input_shapes: 'x' is not a list"),
    ({"input_shapes": {"x": [1] * 9}}, "is not a list of 1 to 8 positive"),
    ({"input_shapes": {"x": [1, 2**40]}}, "input_shapes: 'x' has a dimension over 2147483647"),
    ({"input_shapes": {"": [1, 8]}}, "input_shapes: '' is not a graph input name"),
    ({"input_shapes": {" x": [1, 8]}}, "is not a graph input name"),
    ({"input_shapes": {"x" * 201: [1, 8]}}, "at most 200 characters"),
    ({"input_shapes": {"x\n": [1, 8]}}, "is not a graph input name"),
    ({"input_shapes": {f"x{i}": [1] for i in range(17)}}, "input_shapes: 17 inputs named, at most 16"),
    ({"input_values": {"mode": "1"}}, "input_values: 'mode' is not a list of numbers"),
    ({"input_values": {"mode": ["one"]}}, "input_values: 'mode' is not a list of numbers"),
    ({"input_values": {"mode": []}}, "input_values: 'mode' is not a list of numbers"),
    ({"input_values": {"mode": [False]}}, "input_values: 'mode' is not a list of numbers"),
    ({"input_values": '{"mode": [NaN]}'}, "'mode' holds a value that is not a finite number"),
    ({"input_values": {"mode": [2**64]}}, "not a finite number in the int64 range"),
    ({"input_values": {"a": [0] * 3000, "b": [0] * 3000}}, "input_values: more than 4096 values in all"),
    ({"input_values": "[" * 100000}, "input_values: not JSON"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_malformed_shapes_and_values_are_one_422_line(client, models, fields, needle):
    one_line(_submit(client, models["modes"], **fields), 422, needle)
    if all(isinstance(v, dict) for v in fields.values()):   # the same line from a lookup's JSON body
        body = {"model_sha256": "0" * 64, "model_file": "modes.onnx", "name": "modes", "target": BOARD, **fields}
        one_line(client.post("/v1/compilations/lookup", json=body), 422, needle)
    assert client.get("/v1/health").status_code == 200


def test_names_the_model_lacks_fail_the_job_in_one_line_and_the_service_goes_on(client, models):
    r = _submit(client, models["modes"], input_values={"sr": [16000]})
    assert r.status_code == 202, r.text
    done = wait_done(client, r.json()["id"])
    assert done["state"] == "failed" and "'sr', which is not a graph input" in done["error"]["message"], done
    assert _served(client, models["modes"], input_values={"mode": [0]})[0]["state"] == "succeeded"


def test_a_compilation_with_bound_inputs_is_not_packed_as_a_module(client, models):
    done, _ = _served(client, models["modes"], input_values={"mode": [1]})
    one_line(client.post(f"/v1/compilations/{done['id']}/module", data={"version": "1"}), 422,
             "compiled with input shapes or values")


def test_remote_compile_and_compare_send_them(server, token, models, tmp_path):
    model, env = models["modes"], {"TINYML_SERVICE_TOKEN": token}
    tinyml("remote", "compile", model, "-t", BOARD, "-o", tmp_path / "remote", "--input-value", "mode=0",
           "--service", server.url, env=env)
    tinyml("compile", model, "-t", BOARD, "-o", tmp_path / "local", "--input-value", "mode=0")
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == local
    for name in local:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    table = json.loads(tinyml("remote", "compare", model, "-t", BOARD, "--input-value", "mode=1", "--json",
                              "--service", server.url, env=env).stdout)
    assert table["chosen"], table


def test_compile_for_build_through_the_service_is_the_local_compile(server, token, models, tmp_path, monkeypatch):
    """What ``pio run`` with ``custom_tinyml_service`` and SCons with ``TINYML_SERVICE`` call."""
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.integrations.core import ModelSpec, compile_cached
    from platformio_tinyml.integrations.remote import compile_for_build
    monkeypatch.setenv("TINYML_SERVICE_TOKEN", token)
    device = load_profile(BOARD)
    spec = ModelSpec.make(models["open"], input_shapes={"x": (1, 24)})
    remote = compile_for_build(spec, device, tmp_path / "remote" / "entry", server.url, required=True)
    local = compile_cached(spec, device, tmp_path / "local" / "entry")
    assert remote.service == server.url and not remote.cached
    files = sorted(p.name for p in local.outdir.iterdir())
    assert sorted(p.name for p in remote.outdir.iterdir()) == files
    for name in files:
        assert (remote.outdir / name).read_bytes() == (local.outdir / name).read_bytes(), name


def _scons(project: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "SCons", "-C", str(project), "-Q"], capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**os.environ, "TINYML_SCONS_TOOLS": str(REPO / "scons_tools"), **env})
    result.log = result.stdout + result.stderr
    return result


def test_scons_tool_through_the_service(server, token, models, tmp_path):
    pytest.importorskip("SCons")
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy(models["modes"], project)
    (project / "SConstruct").write_text(
        "import os\n"
        "env = Environment(tools=[])\n"
        "env.Tool('tinyml', toolpath=[os.environ['TINYML_SCONS_TOOLS']])\n"
        f"env.TinyMLModel('build/m', 'modes.onnx', TINYML_TARGET='{BOARD}', TINYML_NAME='m',\n"
        "                 TINYML_INPUT_VALUE={'mode': [1]})\n")
    local = _scons(project, {"TINYML_SERVICE_URL": ""})
    assert local.returncode == 0, local.log
    expected = {p.name: p.read_bytes() for p in (project / "build" / "m").iterdir()}
    shutil.rmtree(project / "build")
    shutil.rmtree(project / ".tinyml-cache")
    (project / ".sconsign.dblite").unlink()
    remote = _scons(project, {"TINYML_SERVICE_URL": server.url, "TINYML_SERVICE_TOKEN": token})
    assert remote.returncode == 0 and f"on {server.url}" in remote.log, remote.log
    assert {p.name: p.read_bytes() for p in (project / "build" / "m").iterdir()} == expected
