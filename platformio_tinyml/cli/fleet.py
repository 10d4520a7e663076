"""``tinyml fleet ...``: deployments on a tinyml service, a thin client of ``/v1/deployments``, and
single deliveries to one device (``push``: a module, ``POST /v1/devices/{ep}/modules``;
``firmware``: an image, ``.../firmware``), pushed block-wise or, with ``--pull``, fetched by the
device from the URI the service publishes.

The service URL and token come as for ``tinyml remote``: ``--service`` or
``$TINYML_SERVICE_URL``, ``$TINYML_SERVICE_TOKEN`` (a token with the
``deploy`` scope for anything that changes a deployment). Every check is the
service's: this only builds the form and prints the answer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import TinyMLError

ENDED = ("succeeded", "failed", "cancelled", "rolled_back")


def add_parser(sub) -> None:
    f = sub.add_parser("fleet", help="staged deployments of a signed module to LwM2M devices, on a tinyml service")
    fsub = f.add_subparsers(dest="fleet_cmd", required=True)
    p = fsub.add_parser("deploy", help="start a deployment (prints its id; --wait follows it to the end)")
    p.add_argument("module", nargs="?", type=Path, help="a signed module (.tmm); or a model file (.tflite, .onnx, "
                   "...) with --version N, packed and signed by the service once per device class; or "
                   "--compilation ID --version N")
    p.add_argument("--compilation", metavar="ID", help="deploy a succeeded compilation, packed and signed by the "
                   "service with the project's key")
    p.add_argument("--version", type=int, help="module version with --compilation")
    p.add_argument("--endpoints", metavar="A,B", help="the devices by endpoint name")
    p.add_argument("--tags", metavar="T1,T2", help="devices carrying every one of these tags")
    p.add_argument("--query", metavar="EXPR", help='capability query, e.g. \'ram >= 20000 and kernel_set == "0x1f"\'')
    p.add_argument("--stages", default="100", metavar="P1,P2", help="cumulative percentages (default 100)")
    p.add_argument("--inferences", type=int, default=0, metavar="N",
                   help="inferences each device must report after activation, without error (default 0)")
    p.add_argument("--within", type=float, default=60, metavar="S", help="... within S seconds (default 60)")
    p.add_argument("--max-failure-ratio", type=float, default=0.0, metavar="R",
                   help="failed / devices of a stage above R stops it and rolls back (default 0)")
    p.add_argument("--block-size", type=int, default=1024, help="largest CoAP block (default 1024)")
    p.add_argument("--target", metavar="BOARD", help="plan the devices without the TinyML object with this "
                   "board's profile (otherwise they are skipped)")
    p.add_argument("--profile", type=Path, metavar="FILE", help="instead of --target: a device profile JSON "
                   "file (as GET /v1/boards/{id} answers)")
    p.add_argument("--pull", action="store_true", help="publish the module and let each device fetch it "
                   "(Package URI /9/0/3) instead of pushing it")
    p.add_argument("--wait", action="store_true", help="follow it until it ends; exit 1 unless it succeeded")
    p = fsub.add_parser("status", help="one deployment (state, counts) or, without an id, the latest ones")
    p.add_argument("id", nargs="?")
    p = fsub.add_parser("devices", help="a deployment's devices: stage, state, blocks, result, reason")
    p.add_argument("id")
    for name, text in (("cancel", "stop it; devices done stay as they are"),
                       ("rollback", "stop it and make every device it activated run its previous module"),
                       ("pause", "pause it"), ("resume", "resume a paused deployment")):
        p = fsub.add_parser(name, help=text)
        p.add_argument("id")
    for name, what, text, uri, done in (
            ("push", "module", "push a signed module (.tmm) to one device over LwM2M object 9", "/9/0/3",
             "the module is active"),
            ("firmware", "image", "push a whole firmware image (ELF) to one device over LwM2M object 5 (FOTA)",
             "/5/0/1", "the firmware was updated")):
        p = fsub.add_parser(name, help=f"{text}; --wait follows it to the end")
        p.add_argument("endpoint", help="the device")
        p.add_argument(what, type=Path, help="the signed module (.tmm)" if what == "module" else
                       "the firmware image (the firmware.elf its build wrote)")
        p.add_argument("--block-size", type=int, default=1024, help="largest CoAP block (default 1024)")
        p.add_argument("--pull", action="store_true", help=f"publish it and let the device fetch it (Package URI "
                       f"{uri}) instead of pushing it")
        p.add_argument("--wait", action="store_true", help=f"follow it until it ends; exit 1 unless {done}")
    for p in fsub.choices.values():
        p.add_argument("--json", action="store_true", help="print the service's JSON answer")
        p.add_argument("--service", metavar="URL", help="service URL (or $TINYML_SERVICE_URL); the token "
                       "comes from $TINYML_SERVICE_TOKEN")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _deploy(client, args) -> dict:
    selector = {k: v for k, v in (("endpoints", _names(args.endpoints)), ("tags", _names(args.tags)),
                                  ("query", args.query)) if v}
    if not selector:
        raise TinyMLError("say which devices: --endpoints, --tags and/or --query")
    try:
        stages = [float(s) if "." in s else int(s) for s in args.stages.split(",")]
    except ValueError:
        raise TinyMLError(f"--stages {args.stages!r}: comma-separated percentages, e.g. 10,50,100") from None
    fields = {"selector": json.dumps(selector), "stages": json.dumps(stages),
              "criteria": json.dumps({"inferences": args.inferences, "within_s": args.within}),
              "max_failure_ratio": args.max_failure_ratio, "block_size": args.block_size,
              "mode": "pull" if args.pull else "push",
              "compilation": args.compilation, "version": args.version, "target": args.target}
    if args.profile is not None:
        try:
            fields["profile"] = args.profile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TinyMLError(f"cannot read the profile ({getattr(e, 'strerror', None) or e})",
                              where=str(args.profile)) from None
    files = {}
    if args.module is not None:
        try:
            field = "module" if args.module.suffix.lower() == ".tmm" else "model"
            files[field] = (args.module.name, args.module.read_bytes())
        except OSError as e:
            raise TinyMLError(f"cannot read the module ({e.strerror})", where=str(args.module)) from None
    return client.json("POST", "/v1/deployments", fields=fields, files=files)


def _summary(dep: dict) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in dep["counts"].items() if n)
    return (f"{dep['id']}: {dep['state']}, stage {dep['stage'] + 1} of {len(dep['stages'])}, module "
            f"{dep['module']['name']} v{dep['module']['version']}, {dep['total']} device(s) ({counts or 'none'})"
            + (f"\n  {dep['message']}" if dep.get("message") else ""))


def _devices(dep: dict) -> None:
    print(f"{'endpoint':<24} {'stage':>5} {'state':<12} {'blocks':>6} {'result':>6}  reason")
    for d in dep["devices"]:
        stage = "-" if d["stage"] is None else str(d["stage"] + 1)
        result = "" if d["update_result"] is None else str(d["update_result"])
        print(f"{d['endpoint']:<24} {stage:>5} {d['state']:<12} {d['blocks_done']:>6} {result:>6}  {d['reason']}")


_SINGLE = {  # fleet push / firmware: (route, the file's argument, what it is, ended states, success, hint)
    "push": ("modules", "module", "module", ("active", "failed"), "active",
             "Give a signed .tmm from tinyml module pack"),
    "firmware": ("firmware", "image", "firmware image", ("updated", "failed"), "updated",
                 "Give the firmware.elf its build wrote"),
}


def _single(client, args) -> int:
    """``tinyml fleet push`` / ``firmware``: POST the file, follow the delivery with --wait, one line at the end."""
    from urllib.parse import quote
    route, arg, what, ended, success, hint = _SINGLE[args.fleet_cmd]
    path_arg = getattr(args, arg)
    try:
        data = path_arg.read_bytes()
    except OSError as e:
        raise TinyMLError(f"cannot read the {what} ({e.strerror})", where=str(path_arg), hint=hint) from None
    path = f"/v1/devices/{quote(args.endpoint, safe='')}/{route}"
    st = client.json("POST", f"{path}?block_size={args.block_size}&pull={str(args.pull).lower()}", raw=data)
    while args.wait and st["state"] not in ended:
        time.sleep(0.5)
        st = client.json("GET", path)["delivery"]
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"{st['endpoint']}: {'firmware' if route == 'firmware' else 'module'} {st['state']}, "
              f"{st['bytes_done']:,} of {st['size']:,} bytes"
              + (f", Update Result {st['update_result']} ({st['result_meaning']})" if st["update_result"] else "")
              + (f"\n  {st['message']}" if st.get("message") else ""))
    sys.stdout.flush()
    if args.wait and st["state"] != success:
        print(f"tinyml: error: {st['endpoint']}: the {what} ended {st['state']}"
              + (f": {_one_line(st['message'])}" if st.get("message") else ""), file=sys.stderr)
        return 1
    return 0


def cmd_fleet(args) -> int:
    from .service import _client
    client = _client(args)
    cmd = args.fleet_cmd
    if cmd in _SINGLE:
        return _single(client, args)
    if cmd == "deploy":
        dep = _deploy(client, args)
        while args.wait and dep["state"] not in ENDED:
            time.sleep(0.5)
            dep = client.json("GET", f"/v1/deployments/{dep['id']}")
    elif cmd == "status" and args.id is None:
        deps = client.json("GET", "/v1/deployments")
        if args.json:
            print(json.dumps(deps, indent=2))
        for dep in deps if not args.json else ():
            print(_summary(dep))
        return 0
    elif cmd in ("status", "devices"):
        dep = client.json("GET", f"/v1/deployments/{args.id}")
    else:
        dep = client.json("POST", f"/v1/deployments/{args.id}/{cmd}")
    if args.json:
        print(json.dumps(dep, indent=2))
    elif cmd == "devices":
        _devices(dep)
    else:
        print(_summary(dep))
    sys.stdout.flush()
    if cmd == "deploy" and args.wait and dep["state"] != "succeeded":
        print(f"tinyml: error: deployment {dep['id']} ended {dep['state']}: {_why(dep)}", file=sys.stderr)
        return 1
    return 0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _why(dep: dict) -> str:
    """The deployment's own message, else the first device's reason that is not a skip; one line."""
    if dep.get("message"):
        return _one_line(dep["message"])
    for state in ("failed", "rolled_back", "skipped"):
        for d in dep.get("devices", ()):
            if d["state"] == state and d.get("reason"):
                return _one_line(f"'{d['endpoint']}' {state}: {d['reason']}")
    return "no device reported a reason; see tinyml fleet devices " + dep["id"]
