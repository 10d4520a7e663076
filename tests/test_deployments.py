"""Deployments (staged rollouts with automatic rollback), end to end over real UDP on 127.0.0.1.

A real ``tinyml serve`` and real ``tinyml device-agent`` processes (the C module
loader built for the host checks and runs every module): the KWS module is
deployed stage by stage through ``POST /v1/deployments``; every device ends up
running it with TensorFlow Lite Micro's outputs, bit for bit. A device that
refuses the module (it already runs a newer version: Update Result 58) fails
the first stage, and the device that stage activated is rolled back: the
device itself reports its previous module active again, and the later stage
was never delivered. What a device runs is read from the device (its TinyML
object), not from the service's bookkeeping.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from lwm2m_support import free_udp_port
from module_support import fixed_key, kws_probe_modules, resign
from service_support import Server, interrupt, one_line, tinyml, wait_for

from deploy_support import create, finished, on_device, wait_capabilities
from deploy_support import agent as start_agent
from deploy_support import public_key as _public_key

from platformio_tinyml.lwm2m.selector import SelectorError, matches, parse_query, select

FLEET = [f"dep-{i}" for i in range(4)]
OCTETS = {"content-type": "application/octet-stream"}


def _agent(svc, *args) -> subprocess.Popen:
    return start_agent(svc.pub, [svc.coap_port], *args)


def _wait_capabilities(svc, endpoints, timeout=40):
    wait_capabilities(svc.reader, endpoints, timeout)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    """The service, 4 fitting devices (one process), one with too small a slot, one lacking kernels."""
    tmp = tmp_path_factory.mktemp("deploy")
    port = free_udp_port()
    srv = Server(tmp / "data", "--lwm2m-port", port, env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "3"})
    srv.coap_port = port
    tokens = {s: srv.token("fleet", s) for s in ("read", "read,deploy", "compile,read,deploy")}
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "dep-*", "--data", srv.data)
    srv.start()
    srv.reader, srv.deployer, srv.anonymous = (srv.client(tokens["read"]), srv.client(tokens["read,deploy"]),
                                               srv.client(None))
    srv.deploy_token, srv.compiler = tokens["read,deploy"], srv.client(tokens["compile,read,deploy"])
    srv.pub = _public_key(tmp / "key.pub")
    agents = [_agent(srv, "--endpoint", "dep", "--count", 4),
              _agent(srv, "--endpoint", "dep-small", "--slot-size", 16384),
              _agent(srv, "--endpoint", "dep-fc", "--kernels", "tml_fc_s8")]
    try:
        _wait_capabilities(srv, FLEET + ["dep-small", "dep-fc"])
        yield srv
    finally:
        interrupt(*agents)
        srv.stop()


@pytest.fixture(scope="module")
def kws():
    """({version: signed LP64 module}, TFLM's output on the agent's probe input)."""
    mods, golden = kws_probe_modules(1, 2, 3)
    return {v: m.data for v, m in mods.items()}, golden


def _create(svc, module: bytes, selector: dict, client=None, **fields):
    return create(client or svc.deployer, module, selector, **fields)


def _finished(svc, dep_id, timeout=40) -> dict:
    return finished(svc.reader, dep_id, timeout)


def _on_device(svc, ep) -> tuple[str, bytes]:
    return on_device(svc.reader, ep)


def test_staged_deployment_reaches_every_fitting_device_and_runs_like_tflm(svc, kws):
    modules, golden = kws
    r = _create(svc, modules[1], {"query": "ram >= 20000 and slot_count == 2"}, stages=[25, 100],
                criteria={"activated": True, "inferences": 1, "within_s": 10})
    assert r.status_code == 201, r.text
    dep = r.json()
    assert dep["module"]["version"] == 1 and dep["total"] == 6 and dep["counts"]["skipped"] == 2
    skipped = {d["endpoint"]: d["reason"] for d in dep["devices"] if d["state"] == "skipped"}
    assert "does not fit the device's 16,384-byte slot" in skipped["dep-small"]
    assert "lacks kernel(s)" in skipped["dep-fc"] and "tml_conv_s8" in skipped["dep-fc"]
    assert {d["endpoint"]: d["stage"] for d in dep["devices"] if d["stage"] is not None} == \
        {"dep-0": 0, "dep-1": 1, "dep-2": 1, "dep-3": 1}

    dep = _finished(svc, dep["id"])
    assert dep["state"] == "succeeded", dep["message"]
    assert dep["counts"]["succeeded"] == 4 and dep["stage"] == 1
    blocks = -(-len(modules[1]) // 1024)
    for row in dep["devices"]:
        if row["stage"] is not None:
            assert (row["state"], row["activated"], row["update_result"], row["blocks_done"]) == \
                ("succeeded", True, 2, blocks), row
    for ep in FLEET:
        assert _on_device(svc, ep) == ("1", golden)       # the host C executor = TFLite Micro, bit for bit
    listed = svc.reader.get("/v1/deployments").json()
    assert listed[0]["id"] == dep["id"] and "devices" not in listed[0]


def test_refusing_device_fails_the_stage_and_the_activated_device_is_rolled_back(svc, kws):
    modules, golden = kws
    # dep-1 already runs v3: the loader refuses v2 at Install (Update Result 58)
    r = svc.deployer.post("/v1/devices/dep-1/modules", content=modules[3], headers=OCTETS)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while svc.reader.get("/v1/devices/dep-1/modules").json()["delivery"]["state"] not in ("active", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _on_device(svc, "dep-1")[0] == "3"

    r = _create(svc, modules[2], {"endpoints": FLEET}, stages=[50, 100], max_failure_ratio="0")
    assert r.status_code == 201, r.text
    dep = _finished(svc, r.json()["id"])
    assert dep["state"] == "failed"
    assert "stage 1: 1 of 2 device(s) failed" in dep["message"] and "1 activated device(s) rolled back" in \
        dep["message"], dep["message"]
    rows = {d["endpoint"]: d for d in dep["devices"]}
    assert (rows["dep-1"]["state"], rows["dep-1"]["update_result"], rows["dep-1"]["activated"]) == ("failed", 58, False)
    assert rows["dep-1"]["result_meaning"] and "raise the module version" in rows["dep-1"]["reason"]
    assert (rows["dep-0"]["state"], rows["dep-0"]["activated"]) == ("rolled_back", True)
    for ep in ("dep-2", "dep-3"):             # the later stage: never started
        assert (rows[ep]["state"], rows[ep]["blocks_done"], rows[ep]["started_at"]) == ("pending", 0, None)
    assert dep["counts"] == {**dep["counts"], "rolled_back": 1, "failed": 1, "pending": 2}
    # on the devices: dep-0 runs v1 again, dep-1 still v3, the later stage still v1
    assert [_on_device(svc, ep)[0] for ep in FLEET] == ["1", "3", "1", "1"]
    installed = svc.reader.get("/v1/devices/dep-0").json()["installed"]
    assert {s["version"]: s["state"] for s in installed}["1"] == "active"

    r = svc.deployer.post(f"/v1/deployments/{dep['id']}/cancel")
    one_line(r, 409, "is failed", "cannot cancel")


def test_rollback_and_cancel_through_the_api(svc, kws):
    modules, golden = kws
    r = svc.deployer.put("/v1/devices/dep-2/tags", json={"tags": ["canary", "eu"]})
    assert r.status_code == 200 and r.json()["tags"] == ["canary", "eu"], r.text
    one_line(svc.reader.put("/v1/devices/dep-2/tags", json={"tags": ["x"]}), 403, "deploy")
    one_line(svc.deployer.put("/v1/devices/dep-2/tags", json={"tags": "canary"}), 400, "tags")
    r = _create(svc, modules[2], {"tags": ["canary"]})
    assert [d["endpoint"] for d in r.json()["devices"]] == ["dep-2"], r.text
    dep = _finished(svc, r.json()["id"])
    assert dep["state"] == "succeeded" and _on_device(svc, "dep-2")[0] == "2", dep
    r = svc.deployer.post(f"/v1/deployments/{dep['id']}/rollback")
    assert r.status_code == 200, r.text
    dep = r.json()
    assert dep["state"] == "rolled_back" and dep["counts"]["rolled_back"] == 1, dep
    assert _on_device(svc, "dep-2")[0] == "1"
    one_line(svc.deployer.post(f"/v1/deployments/{dep['id']}/rollback"), 409, "rolled_back")

    r = _create(svc, modules[2], {"endpoints": ["dep-3"]}, criteria={"inferences": 5, "within_s": 30})
    dep_id = r.json()["id"]
    r = svc.deployer.post(f"/v1/deployments/{dep_id}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    time.sleep(0.5)
    assert svc.reader.get(f"/v1/deployments/{dep_id}").json()["state"] == "cancelled"
    one_line(svc.reader.post(f"/v1/deployments/{dep_id}/rollback"), 403, "deploy")
    one_line(svc.deployer.get("/v1/deployments/nope"), 404, "no deployment 'nope'")


def test_fleet_cli_deploys_follows_and_rolls_back(svc, kws, tmp_path):
    modules, golden = kws
    tmm = tmp_path / "kws-v3.tmm"
    tmm.write_bytes(modules[3])
    env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
    out = tinyml("fleet", "deploy", tmm, "--endpoints", "dep-3", "--stages", "100", "--inferences", "1",
                 "--within", "30", "--wait", env=env).stdout
    dep_id = out.split(":")[0]
    assert ": succeeded, stage 1 of 1, module" in out and "v3, 1 device(s) (1 succeeded)" in out, out
    assert _on_device(svc, "dep-3") == ("3", golden)
    rows = tinyml("fleet", "devices", dep_id, env=env).stdout.splitlines()
    assert rows[0].split()[:3] == ["endpoint", "stage", "state"] and rows[1].split()[:4] == \
        ["dep-3", "1", "succeeded", str(-(-len(modules[3]) // 1024))], rows
    out = tinyml("fleet", "rollback", dep_id, env=env).stdout
    assert ": rolled_back," in out and "1 rolled_back" in out, out
    assert _on_device(svc, "dep-3")[0] != "3"
    assert dep_id in tinyml("fleet", "status", env=env).stdout
    assert json.loads(tinyml("fleet", "status", dep_id, "--json", env=env).stdout)["state"] == "rolled_back"
    # --wait on a deployment that does not succeed: exit 1, the summary on stdout, why on one stderr line
    r = tinyml("fleet", "deploy", tmm, "--endpoints", "dep-3", "--inferences", "1000000", "--within", "1",
               "--wait", env=env, check=False)
    assert r.returncode == 1 and "1 rolled_back" in r.stdout, (r.stdout, r.stderr)
    assert r.stderr.startswith("tinyml: error: deployment ") and "ended failed: stage 1: 1 of 1 device(s) failed" in r.stderr and \
        "criteria not met" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = tinyml("fleet", "deploy", tmm, "--query", "nope > 1", env=env, check=False)
    assert r.returncode == 2 and "unknown field 'nope'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = tinyml("fleet", "cancel", dep_id, env={**env, "TINYML_SERVICE_TOKEN": "bad"}, check=False)
    assert r.returncode == 2 and "401" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_compilation_is_packed_signed_and_its_abi_checked(svc):
    """A compilation id instead of a file: the service packs and signs it for the compiled board (a
    32-bit core), so the host agents (LP64 executor) skip it, each with the reason."""
    from module_support import MODEL_B
    from service_support import wait_done
    r = svc.compiler.post("/v1/compilations", files={"model": (MODEL_B.name, MODEL_B.read_bytes())},
                          data={"target": "nucleo_f446re", "backend": "cgen"})
    assert r.status_code in (200, 202), r.text
    comp = wait_done(svc.compiler, r.json()["id"])
    assert comp["state"] == "succeeded", comp
    r = svc.deployer.post("/v1/deployments", data={"compilation": comp["id"], "version": "7",
                                                   "selector": json.dumps({"endpoints": FLEET})})
    assert r.status_code == 201, r.text
    dep = r.json()
    assert dep["module"]["version"] == 7 and dep["counts"]["skipped"] == 4, dep
    assert all("module built for executor ABI 1, the device's firmware runs ABI 2" in d["reason"]
               for d in dep["devices"]), dep["devices"]
    assert _finished(svc, dep["id"])["state"] == "succeeded"


def test_pause_and_resume(svc, kws):
    """Paused in the middle of a transfer (16-byte blocks: about 1,800 of them), resumed: the transfer
    starts again and the deployment succeeds; pausing twice or resuming a running one is 409."""
    modules, golden = kws
    r = _create(svc, modules[3], {"endpoints": ["dep-0"]}, block_size="16")
    dep_id = r.json()["id"]
    deadline = time.monotonic() + 20
    while (row := svc.reader.get(f"/v1/deployments/{dep_id}").json()["devices"][0])["state"] != "transferring":
        assert time.monotonic() < deadline and row["state"] == "pending", row
        time.sleep(0.02)
    r = svc.deployer.post(f"/v1/deployments/{dep_id}/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused", r.text
    assert r.json()["devices"][0]["state"] == "transferring"
    one_line(svc.deployer.post(f"/v1/deployments/{dep_id}/pause"), 409, "is paused")
    r = svc.deployer.post(f"/v1/deployments/{dep_id}/resume")
    assert r.status_code == 200 and r.json()["state"] == "running", r.text
    one_line(svc.deployer.post(f"/v1/deployments/{dep_id}/resume"), 409, "is running")
    dep = _finished(svc, dep_id, timeout=60)
    assert dep["state"] == "succeeded" and dep["devices"][0]["blocks_done"] == -(-len(modules[3]) // 16), dep
    assert _on_device(svc, "dep-0") == ("3", golden)


def test_a_device_that_does_not_meet_the_criteria_is_rolled_back(svc, kws):
    """The agent runs one inference after Activate; two are asked within 2 s: the device fails after
    activation, and is rolled back like one that refused."""
    modules, golden = kws
    assert _on_device(svc, "dep-2")[0] == "1"
    r = _create(svc, modules[2], {"endpoints": ["dep-2"]}, criteria={"inferences": 2, "within_s": 2})
    dep = _finished(svc, r.json()["id"])
    row = dep["devices"][0]
    assert dep["state"] == "failed" and (row["state"], row["activated"]) == ("rolled_back", True), dep
    assert "criteria not met: 1 inference(s) of the 2 required within 2 s" in dep["message"], dep["message"]
    assert _on_device(svc, "dep-2")[0] == "1"


def test_rolling_back_an_old_deployment_leaves_newer_modules_alone(svc):
    """The first deployment (v1 everywhere) rolled back after later ones: every device's object 9
    holds a later package now, so nothing is deactivated and each row says why."""
    first = svc.reader.get("/v1/deployments", params={"limit": 1000}).json()[-1]
    assert first["module"]["version"] == 1 and first["state"] == "succeeded"
    before = [_on_device(svc, ep)[0] for ep in FLEET]
    dep = svc.deployer.post(f"/v1/deployments/{first['id']}/rollback").json()
    assert dep["state"] == "rolled_back" and dep["counts"]["rolled_back"] == 0, dep
    assert dep["message"] == "rolled back by the API: 0 device(s) run their previous module again"
    for row in dep["devices"]:
        if row["endpoint"] in FLEET:
            assert row["state"] == "succeeded" and "not rolled back: the device's object 9 now holds" in \
                row["reason"], row
    assert [_on_device(svc, ep)[0] for ep in FLEET] == before


@pytest.mark.parametrize("fields, needles", [
    ({"selector": '{"query": "__import__(\'os\').system(\'id\')"}'}, ["unknown field '__import__'"]),
    ({"selector": '{"query": "flash_size > 3"}'}, ["unknown field 'flash_size'", "fields: endpoint"]),
    ({"selector": '{"query": "ram >= "}'}, ["ends too early"]),
    ({"selector": '{"query": "ram >= 1 ; drop table"}'}, ["unexpected ';"]),
    ({"selector": '{"query": "ram == \\"big\\""}'}, ["'ram' is a number"]),
    ({"selector": '{"query": "(ram > 1"}'}, ["ends too early"]),
    ({"selector": "{not json"}, ["selector: not JSON"]),
    ({"selector": '{"hosts": ["x"]}'}, ["unknown key(s) hosts"]),
    ({"selector": '{"endpoints": ["dep-9"]}'}, ["no device 'dep-9'"]),
    ({"selector": '{"query": "ram > 100000000"}'}, ["picks none"]),
    ({"selector": '{"tags": ["x"]}', "stages": "[50, 20, 100]"}, ["cumulative"]),
    ({"selector": '{"tags": ["x"]}', "stages": "[50]"}, ["the last is 100"]),
    ({"selector": '{"tags": ["x"]}', "criteria": '{"inferences": -1}'}, ["inferences"]),
    ({"selector": '{"tags": ["x"]}', "max_failure_ratio": "2"}, ["max_failure_ratio"]),
    ({"selector": '{"tags": ["x"]}', "block_size": "1000"}, ["block_size 1000"]),
    ({"selector": "[]"}, ["selector: give a JSON object"]),
    ({"selector": '{"endpoints": "dep-0"}'}, ['"endpoints" must be a non-empty list']),
    ({"selector": '{"query": 5}'}, ["query: must be a string"]),
    ({"selector": '{"tags": ["x"]}', "stages": "[NaN]"}, ["stages"]),
    ({"selector": '{"tags": ["x"]}', "stages": "[true]"}, ["stages"]),
    ({"selector": '{"tags": ["x"]}', "criteria": '{"within_s": 0}'}, ["within_s"]),
    ({"selector": '{"tags": ["x"]}', "criteria": '{"activated": false}'}, ["activated must be true"]),
    ({"selector": '{"tags": ["x"]}', "max_failure_ratio": "nan"}, ["max_failure_ratio"]),
], ids=["injection", "unknown-field", "truncated", "garbage", "type", "paren", "json", "key", "endpoint", "none",
        "stages-order", "stages-end", "criteria", "ratio", "block", "selector-list", "endpoints-str", "query-int",
        "stages-nan", "stages-bool", "within-0", "not-activated", "ratio-nan"])
def test_bad_requests_are_one_line_422(svc, kws, fields, needles):
    modules, _ = kws
    r = svc.deployer.post("/v1/deployments", files={"module": ("kws.tmm", modules[1])}, data=fields)
    one_line(r, 422, *needles)


def test_module_and_auth_are_checked(svc, kws):
    modules, _ = kws
    sel = {"selector": '{"endpoints": ["dep-0"]}'}
    one_line(svc.deployer.post("/v1/deployments", files={"module": ("x.tmm", b"\x7fELF" + bytes(200))}, data=sel),
             422, "module")
    one_line(svc.deployer.post("/v1/deployments", data=sel), 422, "exactly one of module")
    one_line(svc.deployer.post("/v1/deployments", data={**sel, "compilation": "c1"}), 422, "give version")
    one_line(svc.deployer.post("/v1/deployments", data={**sel, "compilation": "nope", "version": "2"}), 404)
    one_line(svc.anonymous.post("/v1/deployments", files={"module": ("k.tmm", modules[1])}, data=sel), 401, "token")
    one_line(svc.reader.post("/v1/deployments", files={"module": ("k.tmm", modules[1])}, data=sel), 403, "deploy")
    one_line(svc.anonymous.get("/v1/deployments"), 401)


def test_the_match_preview_names_the_skipped_devices_without_deploying(svc, kws):
    """POST /v1/deployments/match: the plan a deployment would make (the same function), grouped by
    skip reason, and no deployment started; its bad input is the create route's one-line 422."""
    modules, _ = kws
    before = len(svc.reader.get("/v1/deployments").json())
    form = {"selector": json.dumps({"query": "ram >= 20000"}), "stages": "[50, 100]"}
    r = svc.deployer.post("/v1/deployments/match", files={"module": ("kws.tmm", modules[2])}, data=form)
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["picked"], m["deliver"], m["per_stage"], m["skipped"]) == (6, 4, [2, 2], 2), m
    reasons = {g["endpoints"][0]: (g["count"], g["reason"]) for g in m["reasons"]}
    assert reasons["dep-small"][0] == 1 and "16,384-byte slot" in reasons["dep-small"][1], reasons
    assert reasons["dep-fc"][0] == 1 and "tml_conv_s8" in reasons["dep-fc"][1], reasons
    assert len(svc.reader.get("/v1/deployments").json()) == before
    created = _create(svc, modules[2], {"endpoints": ["dep-small", "dep-fc"]}).json()      # the same reasons
    assert {d["endpoint"]: d["reason"] for d in created["devices"]} == \
        {ep: reason for ep, (_, reason) in reasons.items()}
    one_line(svc.deployer.post("/v1/deployments/match", files={"module": ("k.tmm", modules[2])},
                               data={"selector": '{"query": "ram >"}'}), 422, "query")
    one_line(svc.deployer.post("/v1/deployments/match", files={"module": ("k.tmm", modules[2])},
                               data={"selector": '{"tags": ["nobody"]}'}), 422, "picks none")
    one_line(svc.deployer.post("/v1/deployments/match", data=form), 422, "exactly one of module")
    one_line(svc.reader.post("/v1/deployments/match", files={"module": ("k.tmm", modules[2])}, data=form),
             403, "deploy")


def test_selector_query_language():
    dev = {"endpoint": "a", "online": True, "tags": ["kws", "eu"],
           "capabilities": {"profile": {"ram_bytes": 32768, "core": "cortex-m4"}, "kernel_set": "0x1f",
                            "slot_size": 131072, "executor_abi": 2}}
    bare = {"endpoint": "b", "online": False, "tags": [], "capabilities": None}
    for q, want in (('ram >= 20000 and kernel_set == "0x1f"', True), ("ram < 20000 or slot_size > 1e6", False),
                    ("(ram > 1 or core == 'x') and online == true", True), ('core != "cortex-m4"', False),
                    ("((executor_abi == 2))", True), ("online == false", False)):
        assert matches(parse_query(q), dev) is want, q
        assert matches(parse_query(q), bare) is (q == "online == false"), q
    assert [d["endpoint"] for d in select({"tags": ["kws"], "query": "ram > 1"}, [dev, bare])] == ["a"]
    assert [d["endpoint"] for d in select({"endpoints": ["b"]}, [dev, bare])] == ["b"]
    for bad in ("eval('1')", "ram >= 1 and", "ram = 1", "ram >= 1 or or ram < 2", "online > true", ")",
                "ram >= 1 " + "and ram >= 1 " * 2 + "extra", "(" * 30 + "ram > 1" + ")" * 30, "", "x" * 1001):
        with pytest.raises(SelectorError) as e:
            parse_query(bad)
        assert "\n" not in str(e.value) and str(e.value).startswith("query:"), bad


def test_a_service_killed_mid_deployment_resumes_it_after_a_restart(tmp_path, kws):
    """SIGKILL while the first device's transfer runs (16-byte blocks: about 1,800); the service
    started again on the same data folder continues the deployment once the devices register again
    (lifetime 30 s: they notice the restart at their next Update, within 15 s): the cut transfer goes
    on from the last block the database recorded, and the deployment finishes."""
    modules, golden = kws
    port = free_udp_port()
    srv = Server(tmp_path / "data", "--lwm2m-port", port, env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": "3"})
    srv.coap_port, srv.pub = port, _public_key(tmp_path / "key.pub")
    token = srv.token("fleet", "read,deploy")
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "rs-*", "--data", srv.data)
    srv.start()
    agent = _agent(srv, "--endpoint", "rs", "--count", 2, "--lifetime", 30, "--max-block", 16)
    try:
        srv.reader = srv.deployer = srv.client(token)
        _wait_capabilities(srv, ["rs-0", "rs-1"])
        r = _create(srv, modules[1], {"endpoints": ["rs-0", "rs-1"]}, stages=[50, 100],
                    criteria={"inferences": 1, "within_s": 20})
        assert r.status_code == 201, r.text
        dep_id = r.json()["id"]
        deadline = time.monotonic() + 20
        while not (row := srv.reader.get(f"/v1/deployments/{dep_id}").json()["devices"][0])["bytes_done"]:
            assert time.monotonic() < deadline and row["state"] in ("pending", "transferring"), row
            time.sleep(0.02)
        srv.proc.kill()                                   # no shutdown: the database says "running"
        cut_at = row["bytes_done"]
        assert row["state"] == "transferring" and 0 < cut_at < len(modules[1]), row
        srv.proc.wait(10)
        srv.start()
        srv.reader = srv.deployer = srv.client(token)
        dep = _finished(srv, dep_id, timeout=120)      # re-registration, 1,800 blocks each, criteria: slow at load 10
        assert dep["state"] == "succeeded", dep
        assert [(d["state"], d["bytes_done"], d["blocks_done"]) for d in dep["devices"]] == \
            [("succeeded", len(modules[1]), -(-len(modules[1]) // 16))] * 2
        assert [_on_device(srv, ep) for ep in ("rs-0", "rs-1")] == [("1", golden)] * 2
        log = srv.log.read_text()
        assert "resumed after a restart" in log
        resumed_at = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
                      if "the transfer to 'rs-0' goes on at byte" in line]
        assert resumed_at == [cut_at], (resumed_at, cut_at)     # not from byte 0
    finally:
        interrupt(agent)
        if srv.proc.poll() is None:
            srv.stop()


def test_plan_puts_fitting_devices_into_cumulative_stages_and_skips_the_others():
    from types import SimpleNamespace

    from platformio_tinyml.lwm2m.deployments import plan
    header = SimpleNamespace(abi=2, kernel_mask=0b11, arena_bytes=1000)
    caps = {"slot_size": 4096, "executor_abi": 2, "kernel_set": "0x7", "profile": {"ram_bytes": 2000}}
    devices = [{"endpoint": f"d{i}", "capabilities": caps} for i in range(7)]
    devices += [{"endpoint": "e-abi", "capabilities": {**caps, "executor_abi": 1}},
                {"endpoint": "e-ram", "capabilities": {**caps, "profile": {"ram_bytes": 999}}},
                {"endpoint": "e-none", "capabilities": None, "capabilities_error": "no TinyML object /32100"},
                {"endpoint": "e-off", "capabilities": caps}, {"endpoint": "e-no9", "capabilities": caps}]
    online = {d["endpoint"]: {3, 9, 32100} for d in devices if d["endpoint"] != "e-off"}
    online["e-no9"] = {3, 32100}
    rows = {ep: (stage, why) for ep, stage, why in plan(header, 3000, devices, online, [1, 50, 100])}
    assert [rows[f"d{i}"][0] for i in range(7)] == [0, 1, 1, 1, 2, 2, 2]     # ceil(7 %) = 1, ceil(3.5) = 4
    assert rows["e-abi"] == (None, "module built for executor ABI 2, the device's firmware runs ABI 1")
    assert rows["e-ram"] == (None, "module needs a 1,000-byte arena, the device leaves 999 bytes")
    assert rows["e-none"][1].startswith("no capabilities (no TinyML object /32100)")
    assert rows["e-off"] == (None, "offline (not registered)")
    assert rows["e-no9"] == (None, "no Software Management object (9) registered")
    assert plan(header, 5000, devices[:1], online, [100]) == \
        [("d0", None, "module of 5,000 bytes does not fit the device's 4,096-byte slot")]


def _console(svc):
    """An HTTP client signed in to the console with the deploy token (its cookie kept)."""
    c = svc.client(None)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/signin").text).group(1)
    assert c.post("/signin", data={"token": svc.deploy_token, "csrf": csrf}).status_code == 303
    return c


def test_the_console_match_preview_refuses_bad_input_with_one_line(svc, kws):
    """The form's preview route: CSRF, a session, a module that is not one, a selector's error."""
    from platformio_tinyml.service.console.base import csrf_of
    modules, _ = kws
    c = _console(svc)
    csrf = csrf_of(svc.deploy_token)
    ok = c.post("/deployments/match", data={"csrf": csrf, "endpoints": "dep-0, dep-small"},
                files={"module": ("kws.tmm", modules[1])})
    assert ok.status_code == 200 and ok.json()["text"].startswith("picks 2 of "), ok.text
    assert [g["endpoints"] for g in ok.json()["reasons"]] == [["dep-small"]]
    one_line(c.post("/deployments/match", data={"endpoints": "dep-0"}), 403, "CSRF")
    one_line(svc.client(None).post("/deployments/match", data={"csrf": csrf, "endpoints": "dep-0"}), 401)
    one_line(c.post("/deployments/match", data={"csrf": csrf, "endpoints": "dep-0"},
                    files={"module": ("x.tmm", b"TMOD" + bytes(100))}), 422, "module")
    one_line(c.post("/deployments/match", data={"csrf": csrf, "query": "ram >"}), 422, "query")
    one_line(c.post("/deployments/match", data={"csrf": csrf, "tags": "nobody"},
                    files={"module": ("kws.tmm", modules[1])}), 422, "picks none")


def test_the_console_shows_a_deployment_and_its_devices(svc, kws):
    """The console's pages (server-rendered, escaped) read the same deployment the API answers."""
    modules, _ = kws
    r = _create(svc, modules[1], {"endpoints": ["dep-small"]})
    assert r.status_code == 201, r.text
    dep = _finished(svc, r.json()["id"])
    assert dep["counts"]["skipped"] == 1, dep
    c = _console(svc)
    listing = c.get("/deployments")
    assert listing.status_code == 200 and f'href="/deployments/{dep["id"]}"' in listing.text, listing.text
    page = c.get(f"/deployments/{dep['id']}")
    assert page.status_code == 200, page.text
    row = re.search(r'<a href="/devices/dep-small">dep-small</a></td><td>[^<]*</td><td><span class="state skipped">'
                    r'skipped</span></td><td>([^<]*)</td>', page.text)
    assert row and row.group(1), page.text


def _signed_in_browser(svc):
    """Headless Chromium signed in to the console with the deploy token."""
    from console_support import chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser = chromium()
    try:
        browser.get(svc.url + "/signin")
        browser.find_element(By.ID, "token").send_keys(svc.deploy_token)
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        WebDriverWait(browser, 20).until(lambda b: "/signin" not in b.current_url)
    except Exception:
        browser.quit()
        raise
    return browser


def test_the_console_follows_a_deployment_live_and_rolls_it_back(svc, kws):
    """In headless Chromium: a deployment's page follows it while it runs without reloading (its
    device becomes active, then the criteria time out and the runner rolls it back), and the
    Roll back button of a finished deployment rolls its device back; a form without the CSRF
    token is refused."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    modules, _ = kws
    # never two inferences on our agent: active for ~8 s, then failed and rolled back by the runner
    r = _create(svc, modules[3], {"endpoints": ["dep-3"]}, criteria={"inferences": 2, "within_s": 8})
    assert r.status_code == 201, r.text
    dep_id = r.json()["id"]
    browser = _signed_in_browser(svc)
    try:
        browser.get(f"{svc.url}/deployments/{dep_id}")
        assert browser.find_element(By.ID, "dep-state").text == "running"
        browser.execute_script("window.tinymlMarker = 42;")        # gone if the page reloads
        state = lambda b: [e.text for e in b.find_elements(By.CSS_SELECTOR, "#dep-devices .state")]  # noqa: E731
        WebDriverWait(browser, 30).until(lambda b: state(b) == ["active"])
        WebDriverWait(browser, 40).until(lambda b: b.find_element(By.ID, "dep-state").text == "failed")
        WebDriverWait(browser, 10).until(lambda b: state(b) == ["rolled_back"])
        assert browser.execute_script("return window.tinymlMarker;") == 42
        assert int(browser.find_element(By.ID, "dep-live").get_attribute("data-updates")) >= 3
        assert _on_device(svc, "dep-3")[0] != "3"

        r = _create(svc, modules[3], {"endpoints": ["dep-3"]})
        done = _finished(svc, r.json()["id"])
        assert done["state"] == "succeeded" and _on_device(svc, "dep-3")[0] == "3", done
        browser.get(f"{svc.url}/deployments/{done['id']}")
        labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "div.actions button")]
        assert labels == ["Roll back"], labels
        browser.find_element(By.CSS_SELECTOR, "div.actions button").click()
        # the page is replaced when the POST answers: an element found just before is stale, look again
        WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda b: b.find_element(By.ID, "dep-state").text == "rolled_back")
        assert state(browser) == ["rolled_back"] and _on_device(svc, "dep-3")[0] != "3"
        assert browser.find_elements(By.CSS_SELECTOR, "div.actions button") == []

        # the device's page: its module history, newest first, as the API's GET .../modules has it
        history = svc.reader.get("/v1/devices/dep-3/modules").json()["history"]
        assert [(h["deployment"], h["state"], h["activated"]) for h in history[:2]] == \
            [(done["id"], "rolled_back", True), (dep_id, "rolled_back", True)], history
        assert history[0]["module"]["version"] == 3 and history[0]["finished_at"], history
        browser.find_element(By.LINK_TEXT, "dep-3").click()
        WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#history tbody tr"))
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
        assert len(rows) == len(history) >= 2, rows
        assert rows[0][2:6] == ["3", done["id"], "rolled_back", "yes"] and rows[0][0] == history[0]["finished_at"]
        assert rows[1][3:5] == [dep_id, "rolled_back"] and "rolled back" in rows[1][6], rows
        browser.find_element(By.LINK_TEXT, dep_id).click()           # back to that deployment
        WebDriverWait(browser, 20).until(lambda b: b.current_url.endswith(f"/deployments/{dep_id}"))
    finally:
        browser.quit()
    c = _console(svc)
    refused = c.post(f"/deployments/{done['id']}/rollback", data={})
    assert refused.status_code == 403 and "CSRF" in refused.text


def test_a_deployment_started_from_the_console_form(svc, kws, tmp_path):
    """The New deployment form in Chromium: the selector's match count as you type, a bad field
    as one line on the form, then a deployment that runs to the end on its page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    modules, _ = kws
    (tmp_path / "kws-v3.tmm").write_bytes(modules[3])
    browser = _signed_in_browser(svc)
    try:
        browser.get(svc.url + "/deployments")
        browser.find_element(By.LINK_TEXT, "New deployment").click()
        WebDriverWait(browser, 20).until(lambda b: b.current_url.endswith("/deployments/new"))
        match = lambda b: b.find_element(By.ID, "match").text  # noqa: E731
        browser.find_element(By.ID, "query").send_keys("ram >")
        WebDriverWait(browser, 10).until(lambda b: "ends too early" in match(b))
        browser.find_element(By.ID, "query").clear()
        browser.find_element(By.ID, "query").send_keys('endpoint == "dep-3"')
        WebDriverWait(browser, 10).until(lambda b: match(b).startswith("picks 1 of 6 device(s), 1 online"))
        # with the module chosen, the devices it would skip, and why, before anything is created
        before = len(svc.reader.get("/v1/deployments").json())
        browser.find_element(By.ID, "query").clear()
        browser.find_element(By.ID, "endpoints").send_keys("dep-3, dep-small, dep-fc")
        browser.find_element(By.ID, "module").send_keys(str(tmp_path / "kws-v3.tmm"))
        WebDriverWait(browser, 10).until(lambda b: "would go to 1, 2 skipped" in match(b))
        assert match(browser).startswith("picks 3 of 6 device(s): "), match(browser)
        skipped = sorted(li.text for li in browser.find_elements(By.CSS_SELECTOR, "#skipped li"))
        assert len(skipped) == 2 and skipped[0].startswith("1 skipped: module of ") and \
            skipped[0].endswith("does not fit the device's 16,384-byte slot (dep-small)"), skipped
        assert "lacks kernel(s)" in skipped[1] and skipped[1].endswith("(dep-fc)"), skipped
        assert len(svc.reader.get("/v1/deployments").json()) == before
        browser.find_element(By.ID, "endpoints").clear()
        browser.find_element(By.ID, "query").send_keys('endpoint == "dep-3"')
        WebDriverWait(browser, 10).until(lambda b: match(b).startswith("picks 1 of 6 device(s): ") and
                                         not b.find_elements(By.CSS_SELECTOR, "#skipped li"))
        browser.find_element(By.ID, "stages").send_keys("ten")
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "p.error"))
        assert "are numbers" in browser.find_element(By.CSS_SELECTOR, "p.error").text
        assert browser.find_element(By.ID, "query").get_attribute("value") == 'endpoint == "dep-3"'
        browser.find_element(By.ID, "module").send_keys(str(tmp_path / "kws-v3.tmm"))
        browser.find_element(By.ID, "stages").clear()
        browser.find_element(By.ID, "stages").send_keys("100")
        Select(browser.find_element(By.ID, "mode")).select_by_value("pull")     # the device fetches it
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        WebDriverWait(browser, 20).until(lambda b: not b.current_url.endswith("/deployments/new"))
        WebDriverWait(browser, 40).until(lambda b: b.find_element(By.ID, "dep-state").text == "succeeded")
        assert browser.find_element(By.XPATH, "//dt[text()='delivery']/following-sibling::dd[1]").text == "pull"
        dep_id = browser.current_url.rsplit("/", 1)[1]
    finally:
        browser.quit()
    dep = svc.reader.get(f"/v1/deployments/{dep_id}").json()
    assert dep["state"] == "succeeded" and [d["endpoint"] for d in dep["devices"]] == ["dep-3"], dep
    assert dep["mode"] == "pull" and dep["devices"][0]["bytes_done"] == len(modules[3]), dep
    assert _on_device(svc, "dep-3")[0] == "3"


def test_single_pushes_are_kept_in_the_module_history(svc, kws):
    """A module pushed with ``POST /v1/devices/{ep}/modules`` and a firmware image pushed with
    ``.../firmware`` (one the device refuses: not an Arm ELF) each become a row of the device's
    module history in the database once they end: in ``GET .../modules`` and on its console page."""
    import hashlib
    module = resign(kws[0][3], fixed_key(), module_version=50)      # newer than any deployment's module
    octets = {"content-type": "application/octet-stream"}

    def pushes():
        return [h for h in svc.reader.get("/v1/devices/dep-0/modules").json()["history"] if h["push"]]
    before = len(pushes())
    r = svc.deployer.post("/v1/devices/dep-0/modules", content=module, headers=octets)
    assert r.status_code == 202, r.text
    st = wait_for(lambda: (s := svc.reader.get("/v1/devices/dep-0/modules").json()["delivery"])["state"]
                  in ("active", "failed") and s, "the module push's end", 40)
    assert st["state"] == "active", st["message"]
    firmware = b"not an Arm ELF image " * 50
    r = svc.deployer.post("/v1/devices/dep-0/firmware", content=firmware, headers=octets)
    assert r.status_code == 202, r.text
    fw = wait_for(lambda: (s := svc.reader.get("/v1/devices/dep-0/firmware").json()["delivery"])["state"]
                  in ("updated", "failed") and s, "the firmware push's end", 40)
    assert fw["state"] == "failed", fw
    new = wait_for(lambda: len(pushes()) == before + 2 and pushes(), "both pushes in the history", 10)
    f, m = new[0], new[1]                                  # newest first
    assert (f["push"], f["deployment"], f["sha256"], f["size"], f["state"], f["update_result"]) == \
        ("firmware", None, hashlib.sha256(firmware).hexdigest(), len(firmware), "failed", fw["update_result"]), f
    assert f["reason"] == fw["message"] and f["finished_at"] >= m["finished_at"], f
    assert (m["push"], m["module"]["version"], m["sha256"], m["state"], m["activated"]) == \
        ("module", 50, hashlib.sha256(module).hexdigest(), "active", True), m
    assert m["reason"] == st["message"] and m["module"]["name"], m

    page = _console(svc).get("/devices/dep-0").text
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="history"', 1)[1].split("</table>", 1)[0])[1:]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    assert cells[0][1:4] == ["firmware", f"sha256 {f['sha256'][:12]}", "firmware push"], cells[0]
    assert cells[1][1:4] == [m["module"]["name"], "50", "single push"] and cells[1][5] == "yes", cells[1]


HOST_PROFILE = {"board": "gateway-host", "name": "modem-side host loader", "platform": "native", "arch": "x86_64",
                "core": "x86-64", "word_bits": 64, "clock_hz": 1_000_000_000, "flash_bytes": 1 << 20,
                "ram_bytes": 65536}


def test_devices_without_the_tinyml_object_are_planned_by_an_explicit_profile(svc, kws, tmp_path):
    """An LwM2M client without our TinyML object (objects 0-9 only) is skipped unless the deployment
    gives a target or profile; a board id whose core is 32-bit skips the host-built module for its
    ABI; a matching profile plans it, and the device's own loader installs and activates it."""
    modules, _ = kws
    agent = _agent(svc, "--endpoint", "dep-plain", "--without-tinyml-object")
    try:
        deadline = time.monotonic() + 30
        while not (dev := svc.reader.get("/v1/devices/dep-plain").json()).get("capabilities_error"):
            assert time.monotonic() < deadline, dev
            time.sleep(0.1)
        assert not dev.get("capabilities"), dev

        def match(**fields):
            r = svc.deployer.post("/v1/deployments/match", files={"module": ("kws.tmm", modules[1])},
                                  data={"selector": '{"endpoints": ["dep-plain"]}', **fields})
            assert r.status_code == 200, r.text
            return r.json()

        m = match()
        assert m["skipped"] == 1 and "give the deployment a target or profile" in m["reasons"][0]["reason"], m
        m = match(target="nucleo_l476rg")
        assert m["skipped"] == 1, m
        assert "executor ABI 2, the explicit profile 'nucleo_l476rg' is a 32-bit core (ABI 1)" in \
            m["reasons"][0]["reason"], m
        small = {**HOST_PROFILE, "ram_bytes": 1024}
        assert "the explicit profile 'gateway-host' has 1,024 bytes of RAM" in \
            match(profile=json.dumps(small))["reasons"][0]["reason"]
        one_line(svc.deployer.post("/v1/deployments/match", files={"module": ("kws.tmm", modules[1])},
                                   data={"selector": '{"endpoints": ["dep-plain"]}', "target": "no_such_board"}),
                 422, "no_such_board")

        (tmp_path / "kws.tmm").write_bytes(modules[1])
        (tmp_path / "host.json").write_text(json.dumps(HOST_PROFILE))
        env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
        out = tinyml("fleet", "deploy", tmp_path / "kws.tmm", "--endpoints", "dep-plain", "--target",
                     "nucleo_l476rg", env=env).stdout
        assert "1 device(s) (1 skipped)" in out, out
        skipped = svc.reader.get(f"/v1/deployments/{out.split(':')[0]}").json()
        assert skipped["profile"]["board"] == "nucleo_l476rg" and "32-bit core" in skipped["devices"][0]["reason"]
        out = tinyml("fleet", "deploy", tmp_path / "kws.tmm", "--endpoints", "dep-plain", "--profile",
                     tmp_path / "host.json", "--wait", env=env).stdout
        dep = svc.reader.get(f"/v1/deployments/{out.split(':')[0]}").json()
        assert dep["profile"]["board"] == "gateway-host" and dep["devices"][0]["stage"] == 0, dep
        assert dep["state"] == "succeeded" and dep["devices"][0]["update_result"] == 2, dep
        v = svc.reader.get("/v1/devices/dep-plain/resources/9/0").json()["values"]
        assert (v["/9/0/7"], v["/9/0/12"], v["/9/0/1"]) == (4, True, "1"), v     # INSTALLED, active, version 1
    finally:
        interrupt(agent)


def test_a_device_that_infers_periodically_meets_an_inferences_criterion(svc, kws):
    """``--infer-every``: the device's application runs the active module periodically, so a criterion
    of 5 inferences within 20 s is met (the agent without it runs one, see the rollback test above)."""
    modules, golden = kws
    agent = _agent(svc, "--endpoint", "dep-often", "--infer-every", "0.3")
    try:
        _wait_capabilities(svc, ["dep-often"])
        r = _create(svc, modules[1], {"endpoints": ["dep-often"]}, criteria={"inferences": 5, "within_s": 20})
        dep = _finished(svc, r.json()["id"], timeout=60)
        row = dep["devices"][0]
        assert dep["state"] == "succeeded" and row["state"] == "succeeded", dep
        assert row["inference_count"] >= 5, row
        assert _on_device(svc, "dep-often") == ("1", golden)
    finally:
        interrupt(agent)


def test_a_model_is_packed_once_per_device_class_and_each_device_gets_its_own(svc, kws, tmp_path):
    """``model`` instead of a module: the service groups the selected devices by the profile and
    executor ABI they report, packs and signs the model once per class with the project's key, and
    delivers each device its class's module; the devices run it with TFLite Micro's output."""
    from module_support import MODEL_A
    _, golden = kws
    pem = svc.reader.get("/v1/projects/current/public-key").json()["public_key_pem"]
    (tmp_path / "project.pub").write_text(pem)
    agents = [start_agent(tmp_path / "project.pub", [svc.coap_port], "--endpoint", "cls-a"),
              start_agent(tmp_path / "project.pub", [svc.coap_port], "--endpoint", "cls-b", "--arena", 65536),
              start_agent(tmp_path / "project.pub", [svc.coap_port], "--endpoint", "cls-c", "--kernels",
                          "tml_fc_s8")]
    try:
        tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "cls-*", "--data", svc.data)
        eps = ["cls-a", "cls-b", "cls-c"]
        _wait_capabilities(svc, eps)
        model = {"model": (MODEL_A.name, MODEL_A.read_bytes())}
        sel = {"selector": json.dumps({"endpoints": eps}), "criteria": '{"inferences": 1, "within_s": 20}'}
        one_line(svc.deployer.post("/v1/deployments", files=model, data=sel), 422, "give version too")
        one_line(svc.deployer.post("/v1/deployments", files={**model, "module": ("m.tmm", b"x")},
                                   data={**sel, "version": "5"}), 422, "exactly one of module")
        env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
        out = tinyml("fleet", "deploy", MODEL_A, "--version", "5", "--endpoints", ",".join(eps), "--inferences", "1",
                     "--within", "20", env=env).stdout
        dep = svc.reader.get(f"/v1/deployments/{out.split(':')[0]}").json()
        classes = sorted((c["devices"], c["board"], c["executor_abi"], c["error"]) for c in dep["classes"])
        assert classes == [(1, "host-loader", 2, ""), (2, "host-loader", 2, "")], dep["classes"]
        rows = {d["endpoint"]: d for d in dep["devices"]}
        assert rows["cls-c"]["stage"] is None and "lacks kernel(s)" in rows["cls-c"]["reason"], rows
        assert rows["cls-a"]["module_sha256"] == rows["cls-c"]["module_sha256"]     # one class, one module
        assert {rows[e]["module_sha256"] for e in eps} == {c["module_sha256"] for c in dep["classes"]}
        dep = _finished(svc, dep["id"], timeout=60)
        assert dep["state"] == "succeeded" and dep["counts"]["succeeded"] == 2, dep
        assert _on_device(svc, "cls-a") == ("5", golden) and _on_device(svc, "cls-b") == ("5", golden)
    finally:
        interrupt(*agents)
