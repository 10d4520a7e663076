"""The LwM2M loop end to end: a service, three devices running the real firmware in QEMU, one deployment.

    python example_projects/fleet-demo/demo.py [--devices 3] [--keep DIR]

1. makes a signing key and packs the MLPerf keyword-spotting model as a signed inference
   module for the Cortex-M4 firmware (``tinyml module keygen``, ``tinyml module pack``);
2. starts ``tinyml serve`` on free loopback ports (HTTP and the LwM2M server on UDP);
3. starts three ``tinyml device-agent --firmware example_projects/module-cortex-m4``: each
   agent is a device's modem (LwM2M client), the example firmware booted in QEMU its
   microcontroller, with the module loader that checks every module;
4. deploys the module to them (``tinyml fleet deploy --wait``): block-wise push over CoAP,
   Install, Activate, one inference each;
5. prints each device's state and outputs, as the device reports them in its TinyML object,
   beside TensorFlow Lite Micro's on the same input, then stops everything.

Everything lives in a temporary folder (``--keep DIR`` to keep it) and on 127.0.0.1.
Exit status 0 only if every device runs the module and its outputs equal TFLM's.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIRMWARE = REPO / "example_projects" / "module-cortex-m4"
MODEL = REPO / "example_projects" / "kws-cortex-m4" / "kws_ref_model.tflite"
KERNELS = "tml_conv_s8,tml_dwconv_s8,tml_fc_s8,tml_avgpool_s8,tml_softmax_s8"   # the firmware's executor
TINYML_OBJECT = 32100
TINYML = [sys.executable, "-m", "platformio_tinyml.cli.main"]
# This checkout's platformio_tinyml, for the demo and every process it starts.
sys.path.insert(0, str(REPO))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def say(text: str) -> None:
    print(text, flush=True)


def tinyml(*args, env=None) -> str:
    """Run a ``tinyml`` command (printed first); its stdout, or exit with its error line."""
    say("$ tinyml " + " ".join(str(a) for a in args))
    done = subprocess.run([*TINYML, *map(str, args)], capture_output=True, text=True, env={**ENV, **(env or {})})
    if done.returncode != 0:
        sys.exit(f"fleet-demo: `tinyml {args[0]} {args[1]}` failed: {done.stderr.strip()}")
    return done.stdout


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout: float, procs: list[subprocess.Popen]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                sys.exit(f"fleet-demo: {' '.join(map(str, p.args[3:5]))} ended (exit {p.returncode}) "
                         f"while waiting for {what}; its log is in the work folder")
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"fleet-demo: {what} did not happen in {timeout:g} s")


def reference_output() -> list[int]:
    """TFLM's output on the input the device agents run after Activate."""
    import numpy as np

    from platformio_tinyml.lwm2m.agent import probe_input
    from platformio_tinyml.pipeline import load_any
    from platformio_tinyml.verify.reference import TFLMReference
    g, _ = load_any(MODEL)
    shape = g.tensors[g.inputs[0]].shape
    x = np.frombuffer(probe_input(int(np.prod(shape))), np.int8).reshape(shape)
    return [int(v) for v in np.asarray(TFLMReference(MODEL).run([x])[0], np.int8).ravel()]


def device_report(api: httpx.Client, endpoint: str) -> tuple[str, list[int]]:
    """(one line of what the device says it runs, its last output), read from the device."""
    dev = api.get(f"/v1/devices/{endpoint}").json()
    caps = dev.get("capabilities") or {}
    slots = ", ".join(f"slot {s['index']} {s['module']} v{s['version']} {s['state']}" if s["module"] else
                      f"slot {s['index']} {s['state']}" for s in caps.get("slots", []))
    r = api.get(f"/v1/devices/{endpoint}/resources/{TINYML_OBJECT}/0/23")
    out = list(base64.b64decode(r.json()["values"][f"/{TINYML_OBJECT}/0/23"]["base64"])) if r.status_code == 200 else []
    out = [v - 256 if v > 127 else v for v in out]
    line = (f"{endpoint}: {'online' if dev.get('online') else 'offline'}, {caps.get('profile', {}).get('board')} "
            f"{caps.get('profile', {}).get('core')}, active slot {caps.get('active_slot')} ({slots}), "
            f"{caps.get('inference_count')} inference(s), last error {caps.get('last_error') or 'none'}")
    return line, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=3, help="device agents to start (default 3)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (default: a temp folder)")
    args = ap.parse_args(argv)
    if not 1 <= args.devices <= 20:
        sys.exit("fleet-demo: --devices takes 1 to 20")
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            sys.exit(f"fleet-demo: {tool} is not on PATH; run scripts/setup.sh first")
    work = args.keep or Path(tempfile.mkdtemp(prefix="tinyml-fleet-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    data, procs = work / "data", []
    try:
        return run(work, data, args.devices, procs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        say(f"stopped {len(procs)} process(es)")
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def start(name: str, work: Path, *args) -> subprocess.Popen:
    say("$ tinyml " + " ".join(str(a) for a in args) + " &")
    return subprocess.Popen([*TINYML, *map(str, args)], stdout=open(work / f"{name}.out", "w"),
                            stderr=open(work / f"{name}.log", "w"), env=ENV)


def run(work: Path, data: Path, n: int, procs: list[subprocess.Popen]) -> int:
    say("== 1. a signing key and the KWS model as a signed module for the Cortex-M4 firmware")
    tinyml("module", "keygen", "-o", work / "release")
    tinyml("module", "pack", MODEL, "--target", "mps2-an386", "--key", work / "release.key", "--version", 1,
           "-o", work / "kws.tmm")

    say("== 2. tinyml serve on 127.0.0.1 (HTTP and LwM2M)")
    http, coap = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    tinyml("service", "devices", "allow", "--project", "demo", "--pattern", "demo-*", "--data", data)
    token = tinyml("service", "token", "create", "--project", "demo", "--scope", "read,deploy",
                   "--data", data).strip()
    procs.append(start("serve", work, "serve", "--data", data, "--port", http, "--lwm2m-port", coap))
    url = f"http://127.0.0.1:{http}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    wait_for(lambda: api.get("/v1/health").status_code == 200, "the service to answer", 60, procs)

    say(f"== 3. {n} device agents, each booting {FIRMWARE.relative_to(REPO)} in QEMU as its MCU")
    endpoints = [f"demo-{i}" for i in range(n)]
    for i, ep in enumerate(endpoints):
        procs.append(start(ep, work, "device-agent", "--server", f"coap://127.0.0.1:{coap}", "--endpoint", ep,
                           "--public-key", work / "release.pub", "--kernels", KERNELS, "--firmware", FIRMWARE,
                           "-v"))
        if i == 0:        # the first one builds the firmware (cached for the others)
            wait_for(lambda: (api.get("/v1/devices/demo-0").json().get("capabilities")), "demo-0 to register",
                     120, procs)
    wait_for(lambda: all(api.get(f"/v1/devices/{ep}").json().get("capabilities") for ep in endpoints),
             "every device to register", 60, procs)
    for ep in endpoints:
        say("   " + device_report(api, ep)[0])

    say("== 4. deploy the module to them")
    t0 = time.monotonic()
    env = {"TINYML_SERVICE_URL": url, "TINYML_SERVICE_TOKEN": token}
    say(tinyml("fleet", "deploy", work / "kws.tmm", "--endpoints", ",".join(endpoints), "--inferences", 1,
               "--within", 30, "--wait", env=env).rstrip())
    say(f"   deployed in {time.monotonic() - t0:.1f} s")

    say("== 5. what each device reports (read over LwM2M from its TinyML object)")
    golden = reference_output()
    say("   TensorFlow Lite Micro: " + " ".join(map(str, golden)))
    ok = True
    for ep in endpoints:
        line, out = device_report(api, ep)
        same = out == golden
        say(f"   {line}")
        say(f"   {ep} outputs: {' '.join(map(str, out))}  {'= TFLM' if same else '!= TFLM'}")
        said = [ln.split("firmware: ", 1)[1] for ln in (work / f"{ep}.log").read_text().splitlines()
                if "firmware: " in ln]
        if said:          # the agent's -v log: what the firmware printed in QEMU at its last boot
            say(f"   {ep} firmware printed: {said[-1]}")
        ok = ok and same
    say("fleet-demo: every device runs the module, outputs equal to TFLM's" if ok else
        "fleet-demo: FAILED: a device does not run the module or its outputs differ from TFLM's")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
