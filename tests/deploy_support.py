"""Shared by the deployment tests: device-agent processes, the REST calls that create and follow a
deployment, and what a device itself says it runs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

from module_support import fixed_key

TML = 32100


def public_key(path):
    """The fixed key's public half as PEM at ``path`` (what ``--public-key`` takes)."""
    from cryptography.hazmat.primitives import serialization
    path.write_bytes(fixed_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def agent(pub, coap_ports, *args) -> subprocess.Popen:
    """``tinyml device-agent`` with a ``--server`` per port in ``coap_ports`` (the first, then fail-over)."""
    servers = [a for p in coap_ports for a in ("--server", f"coap://127.0.0.1:{p}")]
    cmd = [sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent", *servers, "--public-key", str(pub),
           *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def wait_capabilities(client, endpoints, timeout=40):
    deadline = time.monotonic() + timeout
    for ep in endpoints:
        while not (client.get(f"/v1/devices/{ep}").json().get("capabilities") or {}):
            assert time.monotonic() < deadline, f"no capabilities for {ep}"
            time.sleep(0.1)


def create(client, module: bytes, selector: dict, **fields):
    """POST /v1/deployments with ``module`` as the file and ``fields`` as JSON form fields."""
    form = {"selector": json.dumps(selector), **{k: v if isinstance(v, str) else json.dumps(v)
                                                 for k, v in fields.items()}}
    return client.post("/v1/deployments", files={"module": ("kws.tmm", module)}, data=form)


def finished(client, dep_id, timeout=40) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep = client.get(f"/v1/deployments/{dep_id}").json()
        if dep["state"] not in ("running", "paused"):
            return dep
        time.sleep(0.1)
    raise AssertionError(f"deployment {dep_id} did not finish: {dep}")


def on_device(client, ep) -> tuple[str, bytes]:
    """(version of the module the device runs, its last output), as the device's TinyML object says.

    A device agent starved of CPU on a loaded CI runner can miss one read's deadline (the service
    answers 424 "no answer within N s"): that read is asked again, twice at most; any other answer
    is final."""
    for _ in range(3):
        r = client.get(f"/v1/devices/{ep}/resources/{TML}/0")
        if not (r.status_code == 424 and "no answer within" in r.text):
            break
    assert r.status_code == 200, r.text
    v = r.json()["values"]
    active = v[f"/{TML}/0/18"]
    version = v.get(f"/{TML}/0/16/{active}", "") if active >= 0 else ""
    return version, base64.b64decode(v[f"/{TML}/0/23"]["base64"])
