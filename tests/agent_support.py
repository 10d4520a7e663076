"""Shared by the device-agent tests: an event loop in a thread for in-process agents, the KWS module
and its reference output, and the REST calls that push a module and read what the device computed."""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
import time

from module_support import fixed_key, kws_probe_modules

from platformio_tinyml.lwm2m.agent import AgentConfig
from platformio_tinyml.module.firmware import KernelSet
from platformio_tinyml.module.keys import public_key_bytes

KWS_KERNELS = ("tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8")
OCTETS = {"content-type": "application/octet-stream"}


class Loop:
    """An asyncio loop in a daemon thread: the agents run there, the tests stay synchronous."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def lwm2m_service(data, project: str, pattern: str, *args, timeout_s: str = "3", **env):
    """A started ``tinyml serve --data DATA [ARGS]`` whose LwM2M server is on a free UDP port (``coap_port``),
    letting endpoints matching ``pattern`` into ``project``; ``reader`` and ``deployer`` are its clients
    with the ``read`` and ``read,deploy`` scopes (``deploy_token`` the latter's token)."""
    from lwm2m_support import free_udp_port
    from service_support import Server, tinyml
    port = free_udp_port()
    srv = Server(data, "--lwm2m-port", port, *args, env={"TINYML_SERVICE_LWM2M_TIMEOUT_S": timeout_s, **env})
    srv.coap_port = port
    tokens = {s: srv.token(project, s) for s in ("read", "read,deploy")}
    tinyml("service", "devices", "allow", "--project", project, "--pattern", pattern, "--data", srv.data)
    srv.start()
    srv.reader, srv.deployer = srv.client(tokens["read"]), srv.client(tokens["read,deploy"])
    srv.read_token, srv.deploy_token = tokens["read"], tokens["read,deploy"]
    return srv


def start_agents(loop: Loop, *agents, timeout: float = 10) -> None:
    """Start each agent in ``loop`` and wait until all its devices registered."""
    for a in agents:
        loop.run(a.start())
        assert loop.run(a.wait_registered(timeout), timeout=timeout + 20)


def stop_agents(loop: Loop, *agents, close: bool = True) -> None:
    for a in agents:
        loop.run(a.stop(), timeout=60)
    if close:
        loop.close()


def agent_config(coap_port: int, endpoint: str, **kw) -> AgentConfig:
    """Devices with the KWS kernels that trust :func:`fixed_key`, for the server at ``coap_port``."""
    return AgentConfig(server=f"coap://127.0.0.1:{coap_port}", endpoint=endpoint, kernels=KernelSet.of(KWS_KERNELS),
                       public_key=public_key_bytes(fixed_key().public_key()), **kw)


@functools.lru_cache(maxsize=1)
def kws_module():
    """(signed LP64 module v1, TFLM's output on the agent's probe input)."""
    mods, golden = kws_probe_modules(1)
    return mods[1], golden


def wait_capabilities(svc, endpoint, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dev = svc.reader.get(f"/v1/devices/{endpoint}").json()
        if dev.get("capabilities"):
            return dev
        time.sleep(0.1)
    raise AssertionError(f"no capabilities for {endpoint}")


def push(svc, endpoint, data, timeout: float = 30, what: str = "modules", **params) -> dict:
    """POST the module (``what="firmware"``: a firmware image) to ``endpoint`` and follow the
    delivery until it ends (module active or firmware updated, or failed)."""
    r = svc.deployer.post(f"/v1/devices/{endpoint}/{what}", content=data, headers=OCTETS, params=params)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = svc.reader.get(f"/v1/devices/{endpoint}/{what}").json()["delivery"]
        if state["state"] in ("active", "updated", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"delivery to {endpoint} did not end: {state}")


def last_output(svc, endpoint, tries: int = 1) -> bytes:
    """The output the device reports in /32100/0/23, read over LwM2M (asked again on 424, up to ``tries``)."""
    for _ in range(tries):
        r = svc.reader.get(f"/v1/devices/{endpoint}/resources/32100/0/23")
        if r.status_code != 424:
            break
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["values"]["/32100/0/23"]["base64"])


def public_key_pem(path):
    """The fixed key's public half as PEM at ``path`` (what ``--public-key`` takes)."""
    from cryptography.hazmat.primitives import serialization
    path.write_bytes(fixed_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def kws_firmware_module(version: int, key=None):
    """The KWS module signed for 32-bit Cortex-M (what the QEMU firmware of ``--firmware`` runs)."""
    from module_support import MODEL_A, pack

    from platformio_tinyml.module.kernels import Abi
    return pack(MODEL_A, Abi.ILP32_LE, version, key or fixed_key())[1]
