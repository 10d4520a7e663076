"""Pull delivery of inference modules over object 9, end to end over real UDP on 127.0.0.1.

A real ``tinyml serve`` (its LwM2M server publishes the module at ``coap://.../pkg/<sha256>``),
real agents (:mod:`platformio_tinyml.lwm2m.agent`, in a thread of this process) that fetch it
with Block2 after the server writes that URI to Package URI ``/9/0/3``, and the real C loader
built for the host, which checks the pulled module exactly as a pushed one: the module a device
pulled runs with TensorFlow Lite Micro's outputs bit for bit (what the push tests compare to), a
tampered one is refused with Update Result 53 (``test_device_agent.py``) and one for another ABI
with 54 while the running module stays, and a URI the
device cannot fetch ends the download with 56 (invalid URI) or 52 (no answer). Single pulls
(``POST /v1/devices/{ep}/modules?pull=true``, ``tinyml fleet push --pull``) and deployments with
``mode=pull`` (``tinyml fleet deploy --pull``) take that path.
"""

from __future__ import annotations

import pytest
from agent_support import Loop, agent_config, kws_firmware_module, kws_module, last_output, lwm2m_service, push
from agent_support import start_agents, stop_agents, wait_capabilities
from lwm2m_support import free_udp_port
from module_support import MODEL_A, fixed_key, pack
from service_support import one_line, tinyml, wait_for

from deploy_support import create, finished, on_device

from platformio_tinyml.lwm2m.agent import Agent, probe_input
from platformio_tinyml.module.kernels import Abi


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    srv = lwm2m_service(tmp_path_factory.mktemp("pull") / "data", "fleet", "pull-*")
    srv.loop, srv.agent = Loop(), Agent(agent_config(srv.coap_port, "pull", count=6, request_timeout_s=2))
    try:
        start_agents(srv.loop, srv.agent)
        yield srv
    finally:
        stop_agents(srv.loop, srv.agent)
        srv.stop()


@pytest.fixture(scope="module")
def kws():
    return kws_module()


def _pull(svc, endpoint, data, **params) -> dict:
    wait_capabilities(svc, endpoint)
    return push(svc, endpoint, data, pull="true", **params)


def test_a_pulled_module_is_active_and_computes_what_the_pushed_one_does(svc, kws):
    mod, golden = kws
    st = _pull(svc, "pull-0", mod.data)
    assert st["state"] == "active", st["message"]
    assert (st["mode"], st["bytes_done"], st["size"], st["blocks_done"]) == ("pull", len(mod.data), len(mod.data), 0)
    assert (st["update_result"], st["inference_count"]) == (2, 1)
    assert "fetched by the device from the published package" in st["message"]
    assert last_output(svc, "pull-0") == golden            # the host C executor = TFLite Micro, bit for bit
    dev = svc.agent.device("pull-0")
    assert (dev.mcu.active, dev.mcu.installed_version, dev.inference_count) == (0, 1, 1)

    pushed = push(svc, "pull-1", mod.data)                   # the same module pushed: the same output
    assert (pushed["state"], pushed["mode"]) == ("active", "push") and last_output(svc, "pull-1") == golden

    # the next version, pulled, goes to the other slot; the history keeps both pulls
    v2 = pack(MODEL_A, Abi.LP64_LE, 2, fixed_key())[1]
    st = _pull(svc, "pull-0", v2.data)
    assert st["state"] == "active", st["message"]
    assert (dev.mcu.active, dev.mcu.installed_version, dev.inference_count) == (1, 2, 2)
    assert last_output(svc, "pull-0") == golden
    wait_for(lambda: [(h["module"]["version"], h["state"]) for h in
                      svc.reader.get("/v1/devices/pull-0/modules").json()["history"][:2]] == [(2, "active"),
                                                                                              (1, "active")],
             "both pulls in pull-0's history", 10)


def test_a_pulled_module_for_another_abi_is_refused_with_54_and_the_running_one_stays(svc, kws):
    """(A tampered pulled module, 53: test_device_agent.py, beside the pushed one.)"""
    mod, golden = kws
    assert _pull(svc, "pull-2", mod.data)["state"] == "active"
    st = _pull(svc, "pull-2", kws_firmware_module(3).data)            # packed for 32-bit Cortex-M
    assert (st["state"], st["update_result"], st["reason"]) == ("failed", 54, "kernel_abi"), st
    assert "compile it for the device's profile" in st["message"] and "\n" not in st["message"]
    dev = svc.agent.device("pull-2")
    assert (dev.mcu.active, dev.mcu.installed_version, dev.inference_count) == (0, 1, 1)
    assert dev.mcu.infer(probe_input(sum(d.nbytes for d in mod.header.inputs))) == golden


def test_a_package_uri_the_device_cannot_fetch_ends_the_download_with_56_or_52(svc):
    """Written to /9/0/3 directly: another scheme, a URI without a path, a package the server does
    not publish (4.04): 56, invalid URI; a port nobody answers on (ICMP unreachable): 52."""
    wait_capabilities(svc, "pull-3")
    for uri, result in (("http://127.0.0.1/x.tmm", 56), ("coap://127.0.0.1", 56),
                        (f"coap://127.0.0.1:{svc.coap_port}/pkg/{'0' * 64}", 56),
                        (f"coap://127.0.0.1:{free_udp_port()}/pkg/{'1' * 64}", 52)):
        r = svc.deployer.put("/v1/devices/pull-3/resources/9/0/3", json={"value": uri})
        assert r.status_code == 200, r.text
        values = wait_for(lambda: (v := svc.reader.get("/v1/devices/pull-3/resources/9/0").json()["values"])
                          ["/9/0/7"] != 1 and v, f"pull-3 done with {uri}", 20)
        assert (values["/9/0/7"], values["/9/0/9"]) == (0, result), (uri, values)
    assert svc.agent.device("pull-3").mcu.active == -1          # nothing was installed


def test_cli_pushes_and_pulls_a_module_and_waits(svc, kws, tmp_path):
    mod, golden = kws
    path = tmp_path / "kws.tmm"
    path.write_bytes(mod.data)
    env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
    wait_capabilities(svc, "pull-4")
    size = len(mod.data)
    out = tinyml("fleet", "push", "pull-4", path, "--wait", env=env).stdout
    assert out.startswith(f"pull-4: module active, {size:,} of {size:,} bytes, Update Result 2"), out
    path.write_bytes(pack(MODEL_A, Abi.LP64_LE, 2, fixed_key())[1].data)
    size = path.stat().st_size
    out = tinyml("fleet", "push", "pull-4", path, "--pull", "--wait", env=env).stdout
    assert out.startswith(f"pull-4: module active, {size:,} of {size:,} bytes, Update Result 2") and \
        "fetched by the device" in out, out
    assert last_output(svc, "pull-4") == golden and svc.agent.device("pull-4").mcu.installed_version == 2
    path.write_bytes(pack(MODEL_A, Abi.LP64_LE, 3, fixed_key(8))[1].data)     # a key the device does not trust
    r = tinyml("fleet", "push", "pull-4", path, "--wait", env=env, check=False)
    assert r.returncode == 1 and "pull-4: module failed" in r.stdout, (r.stdout, r.stderr)
    assert r.stderr.startswith("tinyml: error: pull-4: the module ended failed: ") and \
        len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert svc.agent.device("pull-4").mcu.installed_version == 2
    r = tinyml("fleet", "push", "pull-4", tmp_path / "nope.tmm", "--pull", env=env, check=False)
    assert r.returncode == 2 and "cannot read the module" in r.stderr and \
        len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_pull_deployment_reaches_active_on_every_device(svc, kws, tmp_path):
    mod, golden = kws
    loop, fleet = svc.loop, Agent(agent_config(svc.coap_port, "pull-dep", count=3))
    try:
        start_agents(loop, fleet)
        endpoints = [d.endpoint for d in fleet.devices]
        for ep in endpoints:
            wait_capabilities(svc, ep)
        r = create(svc.deployer, mod.data, {"endpoints": endpoints}, stages=[34, 100], mode="pull")
        assert r.status_code == 201, r.text
        assert r.json()["mode"] == "pull"
        dep = finished(svc.reader, r.json()["id"])
        assert (dep["state"], dep["counts"]["succeeded"]) == ("succeeded", 3), dep
        for row in dep["devices"]:
            assert (row["state"], row["activated"], row["update_result"], row["bytes_done"]) == \
                ("succeeded", True, 2, len(mod.data)), row
        for ep in endpoints:
            assert on_device(svc.reader, ep) == ("1", golden)        # what the device says it runs
        assert all(d.inference_count == 1 for d in fleet.devices)

        # tinyml fleet deploy --pull: the next version, every device again
        path = tmp_path / "kws-2.tmm"
        path.write_bytes(pack(MODEL_A, Abi.LP64_LE, 2, fixed_key())[1].data)
        env = {"TINYML_SERVICE_URL": svc.url, "TINYML_SERVICE_TOKEN": svc.deploy_token}
        out = tinyml("fleet", "deploy", path, "--endpoints", ",".join(endpoints), "--pull", "--wait", "--json",
                     env=env).stdout
        assert '"mode": "pull"' in out and '"state": "succeeded"' in out, out
        assert [on_device(svc.reader, ep)[0] for ep in endpoints] == ["2", "2", "2"]
    finally:
        stop_agents(loop, fleet, close=False)


def test_a_deployment_mode_other_than_push_or_pull_is_one_line_422(svc, kws):
    mod, _ = kws
    wait_capabilities(svc, "pull-5")
    r = create(svc.deployer, mod.data, {"endpoints": ["pull-5"]}, mode="bogus")
    one_line(r, 422, "mode 'bogus'", "push", "pull")
    assert svc.reader.get("/v1/deployments").json() == [] or \
        all(d["selector"] != {"endpoints": ["pull-5"]} for d in svc.reader.get("/v1/deployments").json())
    r = create(svc.deployer, mod.data, {"endpoints": ["pull-5"]})           # no mode: push
    assert r.status_code == 201 and r.json()["mode"] == "push", r.text
    assert finished(svc.reader, r.json()["id"])["state"] == "succeeded"


def test_a_pull_the_device_cannot_fetch_fails_the_delivery_with_52(tmp_path, kws):
    """A service whose package URIs name a host the devices cannot reach (lwm2m_public_host
    127.0.0.2: nothing listens there): the device's fetch gets no answer, Update Result 52, and
    the delivery fails with a line saying what to check."""
    mod, _ = kws
    srv = lwm2m_service(tmp_path / "data", "fleet", "far-*", TINYML_SERVICE_LWM2M_PUBLIC_HOST="127.0.0.2")
    loop, agent = Loop(), Agent(agent_config(srv.coap_port, "far-0", request_timeout_s=2))
    try:
        start_agents(loop, agent)
        st = _pull(srv, "far-0", mod.data)
        assert (st["state"], st["update_result"], st["bytes_done"]) == ("failed", 52, 0), st
        assert "connection lost while downloading" in st["result_meaning"], st
        assert "public host" in st["message"] and "\n" not in st["message"], st["message"]
        assert agent.device("far-0").mcu.active == -1
        st = push(srv, "far-0", mod.data)                   # pushing still works
        assert st["state"] == "active", st["message"]
    finally:
        stop_agents(loop, agent)
        srv.stop()
