"""``tinyml serve``, ``tinyml service token create`` and ``tinyml remote ...``.

The parsers are added to the main ``tinyml`` parser by :func:`add_parsers`;
the service's modules (FastAPI, SQLAlchemy) are imported only when one of
these commands runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="database and artifact folder "
                   "(default ~/.local/share/platformio-tinyml/service)")
    p.add_argument("--database", help="SQLAlchemy URL (default: SQLite under --data)")
    p.add_argument("--config", type=Path, help="TOML settings file (also $TINYML_SERVICE_CONFIG)")


def add_parsers(sub, add_target, add_input_shape) -> None:
    p = sub.add_parser("serve", help="run the compile service (HTTP API, database, workers)")
    _settings(p)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8470)")
    p.add_argument("--workers", type=int, help="compile jobs at once (default 2)")
    p.add_argument("--max-upload-mb", type=float, help="largest request body (default 16)")
    p.add_argument("--max-jobs-in-flight", type=int, help="queued + running jobs per project (default 8)")
    p.add_argument("--job-timeout-s", type=float, help="time limit per compile (default 600)")
    p.add_argument("--job-memory-mb", type=int, help="memory limit per compile (default 8192)")
    p.add_argument("--boards-dir", action="append", dest="boards_dirs", metavar="DIR",
                   help="extra folder of board manifests (repeatable)")
    p.add_argument("--lwm2m-port", type=int, help="UDP port of the LwM2M server, on --host (default 5683; 0 "
                   "disables it)")
    p.add_argument("--lwm2m-dtls-port", type=int, metavar="PORT",
                   help="also serve LwM2M over DTLS with pre-shared keys (coaps://) on this UDP port of --host, "
                        "which must be one address (default 0: off; needs DTLSSocket and --lwm2m-psk-file)")
    p.add_argument("--lwm2m-psk-file", metavar="FILE",
                   help="JSON {\"IDENTITY\": \"HEXKEY\"}: the devices' pre-shared keys; over DTLS the endpoint "
                        "name is the identity, and a name with a key registers over DTLS only (docs/lwm2m.md)")
    p.add_argument("--lwm2m-server-id", metavar="NAME", help="this server among several on one database "
                   "(default HOSTNAME:LWM2M-PORT; a restarted server with the same id takes its leases back at once)")
    p.add_argument("--broker", help="Celery broker URL (redis://HOST:PORT/0): jobs run in `tinyml worker` "
                   "processes instead of this one (use with --database postgresql://...)")

    p = sub.add_parser("worker", help="run compile jobs for `tinyml serve --broker` (Celery on Redis)")
    _settings(p)
    p.add_argument("--broker", help="Celery broker URL, the one the API processes use (redis://HOST:PORT/0)")
    p.add_argument("--queues", help="backend families to take: fast (cgen, emlearn, tflm, auto), slow (tvm, "
                   "vela); default fast,slow")
    p.add_argument("--concurrency", type=int, help="jobs at once (default: the workers setting, 2)")
    p.add_argument("--job-timeout-s", type=float, help="time limit per compile (default 600)")
    p.add_argument("--job-memory-mb", type=int, help="memory limit per compile (default 8192)")

    s = sub.add_parser("service", help="manage the service: tokens, projects")
    ssub = s.add_subparsers(dest="service_cmd", required=True)
    p = ssub.add_parser("project", help="project settings")
    p.add_argument("project")
    p.add_argument("--allow-pickle", choices=("yes", "no"), required=True,
                   help="accept .pkl/.joblib uploads: unpickling runs code from the file (it runs in the "
                        "compile child process, but trust the project's uploaders)")
    _settings(p)
    t = ssub.add_parser("token", help="API tokens").add_subparsers(dest="token_cmd", required=True)
    p = t.add_parser("create", help="create a token (printed once; the service keeps only its hash)")
    p.add_argument("--project", required=True, help="project name (created with its signing key if new)")
    p.add_argument("--scope", default="compile,read", help="comma-separated: compile, read, deploy, admin "
                   "(default compile,read)")
    _settings(p)
    d = ssub.add_parser("devices", help="LwM2M devices").add_subparsers(dest="devices_cmd", required=True)
    p = d.add_parser("allow", help="let a project take LwM2M registrations whose endpoint name matches a pattern")
    p.add_argument("--project", required=True)
    p.add_argument("--pattern", required=True, help="shell glob over endpoint names, e.g. 'kws-*' or "
                   "'urn:dev:mac:0024befffe*'")
    _settings(p)

    r = sub.add_parser("remote", help="compile, compare and fetch through a tinyml service")
    rsub = r.add_subparsers(dest="remote_cmd", required=True)
    p = rsub.add_parser("compile", help="like 'tinyml compile', on the service")
    p.add_argument("model", type=Path)
    add_target(p)
    p.add_argument("--backend", "-b", default="auto")
    p.add_argument("-o", "--output", type=Path, help="output directory (omit with --no-wait)")
    p.add_argument("--name")
    p.add_argument("--calibration", type=Path)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true", help="print the compilation id and return")
    add_input_shape(p)
    p = rsub.add_parser("compare", help="like 'tinyml compare', on the service")
    p.add_argument("model", type=Path)
    add_target(p)
    p.add_argument("--calibration", type=Path)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    add_input_shape(p)
    p.add_argument("--json", action="store_true")
    p = rsub.add_parser("status", help="state, backend, progress and log of a compilation")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = rsub.add_parser("fetch", help="unpack a compilation's files into a folder")
    p.add_argument("id")
    p.add_argument("-o", "--output", type=Path, required=True)
    for p in rsub.choices.values():
        p.add_argument("--service", metavar="URL", help="service URL (or $TINYML_SERVICE_URL); the token "
                       "comes from $TINYML_SERVICE_TOKEN")


def _config(args, **flags):
    from ..service.config import load_config
    return load_config(args.config, data=args.data, database=args.database, **flags)


def cmd_serve(args) -> int:
    import logging

    import uvicorn

    from ..service.app import create_app
    from ..service.core import Service
    cfg = _config(args, host=args.host, port=args.port, workers=args.workers, max_upload_mb=args.max_upload_mb,
                  max_jobs_in_flight=args.max_jobs_in_flight, job_timeout_s=args.job_timeout_s,
                  job_memory_mb=args.job_memory_mb, boards_dirs=args.boards_dirs, lwm2m_port=args.lwm2m_port,
                  lwm2m_server_id=args.lwm2m_server_id, broker=args.broker,
                  lwm2m_dtls_port=args.lwm2m_dtls_port, lwm2m_psk_file=args.lwm2m_psk_file)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    svc_log = logging.getLogger("tinyml.service")
    svc_log.addHandler(handler)
    svc_log.setLevel(logging.INFO)
    _check_port(cfg.host, cfg.port)
    if cfg.lwm2m_port:
        _check_port(cfg.host, cfg.lwm2m_port, udp=True)
    if cfg.lwm2m_dtls_port:
        _check_dtls(cfg)
    if not 1 <= cfg.lwm2m_lease_s <= 3600:
        from ..errors import TinyMLError
        raise TinyMLError(f"lwm2m_lease_s = {cfg.lwm2m_lease_s:g} is out of range",
                          where="settings (--config file or $TINYML_SERVICE_LWM2M_LEASE_S)",
                          hint="Give 1 to 3600 seconds (default 15): how long a silent server keeps its deployments "
                               "and devices")
    svc = Service(cfg)
    lwm2m = f", LwM2M on coap://{cfg.host}:{cfg.lwm2m_port}" if cfg.lwm2m_port else ""
    if cfg.lwm2m_port and cfg.lwm2m_dtls_port:
        lwm2m += f" and coaps://{cfg.host}:{cfg.lwm2m_dtls_port} (DTLS-PSK)"
    jobs = f"jobs to workers via {_redact(cfg.broker)}" if cfg.broker else f"{cfg.workers} workers"
    print(f"tinyml: serving on http://{cfg.host}:{cfg.port}{lwm2m} (data {cfg.data}, {jobs}); "
          "Ctrl-C stops", file=sys.stderr, flush=True)
    # With the LwM2M server, asyncio's own loop: under uvloop, aiocoap's UDP socket stops receiving after
    # one ICMP "port unreachable" (a device gone without De-register), and the server hears no device again.
    uvicorn.run(create_app(svc), host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                loop="asyncio" if cfg.lwm2m_port else "auto")
    print("tinyml: service stopped", file=sys.stderr)
    return 0


def cmd_worker(args) -> int:
    import logging

    from ..errors import TinyMLError
    from ..service.celery_runner import QUEUES, run_worker
    cfg = _config(args, broker=args.broker, queues=args.queues, workers=args.concurrency,
                  job_timeout_s=args.job_timeout_s, job_memory_mb=args.job_memory_mb)
    if not cfg.broker:
        raise TinyMLError("no broker to take jobs from", where="--broker",
                          hint="Give the URL `tinyml serve --broker` uses, e.g. --broker redis://127.0.0.1:6379/0")
    queues = [q.strip() for q in cfg.queues.split(",") if q.strip()]
    if not queues or set(queues) - set(QUEUES):
        raise TinyMLError(f"unknown queue in '{cfg.queues}'", where="--queues", hint="Use fast, slow or fast,slow")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    svc_log = logging.getLogger("tinyml.service")
    svc_log.addHandler(handler)
    svc_log.setLevel(logging.INFO)
    print(f"tinyml: worker taking {','.join(queues)} jobs from {_redact(cfg.broker)} ({cfg.workers} at once, "
          f"data {cfg.data}); Ctrl-C stops", file=sys.stderr, flush=True)
    run_worker(cfg, queues, cfg.workers)
    print("tinyml: worker stopped", file=sys.stderr)
    return 0


def _redact(url: str) -> str:
    """A URL without its password, for log lines."""
    import re
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _check_port(host: str, port: int, udp: bool = False) -> None:
    """One line instead of uvicorn's (or aiocoap's) log when the address is taken or invalid."""
    import os
    import socket

    from ..errors import TinyMLError
    try:
        if udp:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, port))
        else:
            with socket.create_server((host, port)):
                pass
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)
        flag = "--lwm2m-port" if udp else "--port"
        raise TinyMLError(f"cannot listen on {host}:{port}{'/udp' if udp else ''} ({why})", where=f"--host/{flag}",
                          hint=f"Stop the program using it, or give another {flag}") from None


def _check_dtls(cfg) -> None:
    """The DTLS settings make sense before the server starts: a one-line error otherwise."""
    from ..errors import TinyMLError
    from ..lwm2m import dtls
    where = "--lwm2m-dtls-port/--lwm2m-psk-file"
    if not cfg.lwm2m_port:
        raise TinyMLError("DTLS needs the LwM2M server (--lwm2m-port is 0)", where=where)
    if cfg.lwm2m_dtls_port == cfg.lwm2m_port:
        raise TinyMLError("--lwm2m-dtls-port must differ from --lwm2m-port", where=where)
    if cfg.host in ("0.0.0.0", "::", ""):
        raise TinyMLError(f"the DTLS LwM2M server cannot listen on '{cfg.host}' (all addresses): aiocoap's DTLS "
                          "server binds one address", where="--host", hint="Give --host a single address")
    if not cfg.lwm2m_psk_file:
        raise TinyMLError("DTLS needs the devices' keys", where=where, hint="Give --lwm2m-psk-file FILE")
    dtls.require()                          # LwM2MError is a TinyMLError: one line, with its hint
    dtls.load_psk_file(cfg.lwm2m_psk_file)
    _check_port(cfg.host, cfg.lwm2m_dtls_port, udp=True)


def cmd_service(args) -> int:
    from ..service.auth import create_token, parse_scopes, set_allow_pickle
    from ..service.db import open_database
    engine, Session = open_database(_config(args).database_url)
    try:
        with Session() as db:
            if args.service_cmd == "devices":
                return _allow_devices(db, Session, args)
            if args.service_cmd == "project":
                set_allow_pickle(db, args.project, args.allow_pickle == "yes")
                verdict = "accepted" if args.allow_pickle == "yes" else "refused"
                print(f"tinyml: project '{args.project}': pickled models {verdict}", file=sys.stderr)
                return 0
            token = create_token(db, args.project, parse_scopes(args.scope))
    finally:
        engine.dispose()
    print(token)
    print(f"tinyml: token for project '{args.project}' ({args.scope}); it is shown only once", file=sys.stderr)
    return 0


def _allow_devices(db, Session, args) -> int:
    from ..errors import TinyMLError
    from ..lwm2m.store import MAX_PATTERN, DeviceStore
    from ..service.auth import get_or_create_project
    if not args.pattern or len(args.pattern) > MAX_PATTERN or not args.pattern.isprintable():
        raise TinyMLError(f"invalid endpoint pattern {args.pattern[:60]!r}", where="--pattern",
                          hint=f"A shell glob of printable characters, at most {MAX_PATTERN}")
    project = get_or_create_project(db, args.project)
    db.commit()
    DeviceStore(Session).allow(project.id, args.pattern)
    print(f"tinyml: project '{args.project}' takes LwM2M registrations matching '{args.pattern}'", file=sys.stderr)
    return 0


def _client(args):
    from ..integrations.remote import ServiceClient, client_settings
    return ServiceClient(*client_settings(args.service))


def _device(args) -> tuple[dict | None, str]:
    """The board's profile when it resolves here (sent as ``profile``), else None and the id."""
    from ..device import load_profile
    from ..errors import DeviceError
    try:
        return load_profile(str(args.target), search_dirs=args.boards_dir or None).to_dict(), str(args.target)
    except DeviceError:
        return None, str(args.target)


def print_compiled(model: Path, output: Path, r: dict) -> None:
    """The lines ``tinyml compile`` prints, from the compile's report.json."""
    t = r["target"]
    print(f"{model.name} -> {output}/ for {t['board']} ({t['core']}, {t['ram_bytes']:,} B RAM, "
          f"{t['flash_bytes']:,} B flash)")
    print(f"  backend {r['backend']} {r['backend_version']} ({r['chosen_because']})")
    print(f"  arena {r['arena_bytes']:,} B, weights {r['weight_bytes']:,} B, "
          f"estimated flash {r['estimated_flash_bytes']:,} B, RAM {r['estimated_ram_bytes']:,} B")
    print(f"  files: {', '.join(f['path'] for f in r['files'])}, report.json, tinyml-report.html")


def _remote_compile(args, options) -> int:
    from ..integrations.core import ModelSpec
    from ..integrations.remote import fetch_as_local
    from .main import _input_shapes, _input_values
    shapes, values = _input_shapes(args), _input_values(args)
    client = _client(args)
    profile, target = _device(args)
    spec = ModelSpec.make(args.model, args.name, args.backend, args.calibration, options, shapes, values)
    comp = (client.lookup(spec, profile, target)    # by key first: no upload when the service has it
            or client.submit(args.model, profile, target, args.backend, args.name, options, args.calibration,
                             shapes, values))
    if args.no_wait:
        print(comp["id"])
        return 0
    if args.output is None:
        from ..errors import TinyMLError
        raise TinyMLError("-o DIR is needed unless --no-wait is given")
    shown = []

    def progress(c):
        if not shown:
            print(f"tinyml: {args.model.name}: {c['state']} on the service (compilation {c['id']}) ...",
                  file=sys.stderr, flush=True)
            shown.append(True)

    comp = client.wait(comp, progress)
    from .main import fill_output_folder      # the same -o folder rules as `tinyml compile`
    report = fill_output_folder(args.output, lambda folder: fetch_as_local(client, comp["id"], folder, args.model))
    print_compiled(args.model, args.output, report)
    return 0


def _remote_compare(args, options) -> int:
    from ..device import DeviceProfile
    from ..integrations.remote import model_upload, named_inputs
    from .main import _input_shapes, _input_values, print_compare
    named = named_inputs(_input_shapes(args), _input_values(args), json.dumps)
    client = _client(args)
    profile, target = _device(args)
    files = {"model": model_upload(args.model)}
    if args.calibration:
        files["calibration"] = (args.calibration.name, args.calibration.read_bytes())
    table = client.json("POST", "/v1/compare", files=files,
                        fields={"options": json.dumps(options) if options else None,
                                "profile": json.dumps(profile) if profile else None,
                                "target": None if profile else target, **named})
    table["model"] = str(args.model)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        dev = DeviceProfile.from_dict(profile or client.json("GET", f"/v1/boards/{target}"))
        print_compare(args.model, table, dev)
    return 0 if table["chosen"] else 1


def cmd_remote(args) -> int:
    from .main import _options
    if args.remote_cmd == "compile":
        return _remote_compile(args, _options(args.option))
    if args.remote_cmd == "compare":
        return _remote_compare(args, _options(args.option))
    client = _client(args)
    if args.remote_cmd == "fetch":
        names = client.fetch(args.id, args.output)
        print(f"{args.id} -> {args.output}/: {', '.join(names)}")
        return 0
    comp = client.json("GET", f"/v1/compilations/{args.id}")
    if args.json:
        print(json.dumps(comp, indent=2))
    else:
        print(f"{comp['id']}: {comp['state']}{' (cached)' if comp['cached'] else ''}, {comp['name']} for "
              f"{comp['target']}, backend {comp['backend'] or comp['backend_requested']}"
              + (f" ({comp['chosen_because']})" if comp["chosen_because"] else ""))
        for line in comp["log"]:
            print(f"  {line}")
        if comp["error"]:
            e = comp["error"]
            print(f"  error: {(e['where'] + ': ') if e['where'] else ''}{e['message']}"
                  + (f". {e['hint']}" if e["hint"] else ""))
    return 1 if comp["state"] == "failed" else 0
