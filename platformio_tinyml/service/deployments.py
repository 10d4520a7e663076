"""``/v1/deployments``: staged rollouts of a signed module over LwM2M, with automatic rollback.

Creating, cancelling, pausing, resuming and rolling back need the ``deploy``
scope, reading the ``read`` scope; a project sees only its own deployments.
The runner is :mod:`platformio_tinyml.lwm2m.deployments` (on the service's
event loop, beside the LwM2M server); this module checks the request and
answers with the deployment's view: counts per device state and a row per
device. Every error is one line; bad input is a 4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from ..errors import TinyMLError
from ..lwm2m.deployments import ABI_OF_WORD_BITS, DeploymentError, check_criteria, check_stages, plan
from ..lwm2m.ids import ObjectId
from ..lwm2m.selector import check_selector, select
from ..module.format import decode_module
from .auth import Caller
from .compilations import pack_signed, signed_module
from .core import Service
from .deps import caller, service
from .inputs import device_of, fail, read_upload
from .jobs import JobFailed
from .schemas import errors
from .uploads import UNPACKED_PER_UPLOAD, check_model

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

MAX_MODULE = 4 * 1024 * 1024
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
MODES = ("push", "pull")


def _runner(request: Request):
    runner = getattr(request.app.state, "deployments", None)
    if runner is None:
        raise fail(409, "the LwM2M server is disabled (--lwm2m-port 0): no deployments. Start tinyml serve with "
                        "--lwm2m-port")
    return runner


def _json(name: str, text: str | None, default):
    if text is None or not text.strip():
        return default
    try:
        return json.loads(text)
    except ValueError as e:
        raise fail(422, f"{name}: not JSON ({e})") from None


async def _module(svc: Service, who: Caller, module: UploadFile | None, compilation: str | None,
                  version: int | None) -> bytes:
    if (module is None) == (compilation is None):
        raise fail(422, "give exactly one of module (a signed .tmm file) or compilation (the id of a succeeded "
                        "compilation, with version); POST /v1/deployments also takes model (a model file, with "
                        "version)")
    if module is not None:
        return read_upload(module, MAX_MODULE)
    if version is None:
        raise fail(422, "compilation: give version too (the module version to sign, newer than the devices' "
                        "running module)")
    _, data = await asyncio.to_thread(signed_module, svc, who, compilation, version)
    return data


def _own(request: Request, who: Caller, dep_id: str):
    runner = _runner(request)
    dep = runner.store.get(dep_id, who.project_id)
    if dep is None:
        raise fail(404, f"no deployment '{dep_id[:40]}' in project '{who.project}'. GET /v1/deployments lists them")
    return runner, dep


def explicit_profile(svc: Service, target: str | None, profile: str | None) -> dict | None:
    """The profile (as a dict) a deployment's ``target`` (board id) or ``profile`` (JSON) gives for the
    devices without the TinyML object; None when neither is given."""
    if not target and not profile:
        return None
    return device_of(target, profile, None, svc.cfg.boards_dirs).to_dict()


async def plan_request(runner, who: Caller, sel: dict, stage_list: list[float], data: bytes,
                       explicit: dict | None = None):
    """``(module header, plan rows, project's device count)``: what a deployment of the signed module
    ``data`` to the checked selector ``sel`` would do, device by device (:func:`plan`: the stage, or the
    reason it is skipped). Creating a deployment and its preview (``/match``, API and console) both
    call this; a module that does not decode, an unknown endpoint or an empty pick is a one-line 422.
    ``explicit``: the profile that plans devices without capabilities (:func:`explicit_profile`)."""
    try:
        header = decode_module(data, where="module").header
    except TinyMLError as e:
        raise fail(422, f"{e}. Send a .tmm from tinyml module pack or POST /v1/compilations/{{id}}/module") from None
    picked, online, fleet_size = await _pick(runner, who, sel)
    rows = plan(header, len(data), picked, online, stage_list, explicit)
    return header, rows, fleet_size


async def _pick(runner, who: Caller, sel: dict) -> tuple[list[dict], dict[str, set[int]], int]:
    """(the devices ``sel`` picks, the registered ones' objects, the project's device count)."""
    server = runner.server
    fleet = await asyncio.to_thread(server.store.fleet, who.project_id)
    unknown = sorted(set(sel.get("endpoints") or ()) - {d["endpoint"] for d in fleet})
    if unknown:
        raise fail(422, f"selector: no device {', '.join(repr(u) for u in unknown[:5])} in project "
                        f"'{who.project}'. GET /v1/devices lists them")
    picked = select(sel, fleet)
    if not picked:
        raise fail(422, f"selector: picks none of the project's {len(fleet)} device(s). GET /v1/devices shows "
                        "their tags and capabilities")
    # online with any of the servers sharing the database, with the objects it registered there
    online = await asyncio.to_thread(server.store.online_objects, [d["endpoint"] for d in picked])
    return picked, online, len(fleet)


# modules packed for a device class: (project, model, profile, abi, version) -> module sha256 in the store
_PACKED: OrderedDict[tuple, str] = OrderedDict()


def _pack_for_class(svc: Service, who: Caller, upload, profile: dict, abi: int | None,
                    version: int) -> tuple[str, bytes]:
    """(sha256 in the artifact store, bytes) of the model packed as a module for one device class and
    signed with the project's key (:func:`.compilations.pack_signed`). Packed once per class."""
    memo = (who.project_id, hashlib.sha256(upload.data).hexdigest(), upload.filename,
            json.dumps(profile, sort_keys=True), abi, version)
    sha = _PACKED.get(memo)
    if sha is not None and svc.store.has(sha):
        _PACKED.move_to_end(memo)
        return sha, svc.store.get(sha)
    data = pack_signed(svc, who.project_id,
                       lambda workdir: svc.stage(workdir, upload.data, upload.suffix, upload.filename, None),
                       profile, version, abi=abi)
    sha = svc.store.put(data)
    _PACKED[memo] = sha
    while len(_PACKED) > 256:
        _PACKED.popitem(last=False)
    return sha, data


async def plan_model(svc: Service, runner, who: Caller, sel: dict, stage_list: list[float], upload, version: int,
                     explicit: dict | None = None):
    """A model deployed per device class: the picked devices that are online with object 9 are
    grouped by the profile and executor ABI they report (or ``explicit`` for those without the
    TinyML object); the model is packed once per class; each device is planned with its class's
    module. ``(header of the first class's module, rows, fleet size, classes, endpoint -> module
    sha256)``; a class whose pack fails skips its devices with the one-line reason."""
    picked, online, fleet_size = await _pick(runner, who, sel)
    groups: dict[str, dict] = {}
    for dev in picked:
        ep, caps = dev["endpoint"], dev.get("capabilities")
        if ObjectId.SOFTWARE_MANAGEMENT not in online.get(ep, ()):
            continue
        if caps:
            profile, abi = caps.get("profile") or {}, caps.get("executor_abi")
        elif explicit:
            profile, abi = explicit, ABI_OF_WORD_BITS.get(explicit.get("word_bits"))
        else:
            continue
        group = groups.setdefault(json.dumps([profile, abi], sort_keys=True),
                                  {"profile": profile, "abi": abi, "endpoints": []})
        group["endpoints"].append(ep)
    if not groups:
        raise fail(422, f"model: none of the {len(picked)} selected device(s) is online with object 9 and "
                        "capabilities, so there is no device class to compile for. Give target or profile for "
                        "devices without the TinyML object, or wait for them to register")
    per_device: dict[str, object] = {}
    classes, modules, first = [], {}, None
    for group in sorted(groups.values(), key=lambda g: min(g["endpoints"])):
        board = str(group["profile"].get("board", "?"))[:100]
        entry = {"board": board, "executor_abi": group["abi"], "devices": len(group["endpoints"]),
                 "module_sha256": None, "module_size": None, "error": ""}
        try:
            if group["abi"] not in ABI_OF_WORD_BITS.values():
                raise DeploymentError(f"the devices report executor ABI {group['abi']!r}, which no module "
                                      "executor has")
            sha, data = await asyncio.to_thread(_pack_for_class, svc, who, upload, group["profile"], group["abi"],
                                                version)
            header = decode_module(data).header
        except (JobFailed, TinyMLError) as e:
            entry["error"] = " ".join(str(e).split())[:500]
            for ep in group["endpoints"]:
                per_device[ep] = f"the model does not pack for this device class ('{board}'): {entry['error']}"
            classes.append(entry)
            continue
        entry.update(module_sha256=sha, module_size=len(data))
        first = first or (header, len(data), sha)
        for ep in group["endpoints"]:
            per_device[ep], modules[ep] = (header, len(data)), sha
        classes.append(entry)
    if first is None:
        raise fail(422, f"model: it packs for none of the {len(classes)} device class(es): {classes[0]['error']}")
    rows = plan(first[0], first[1], picked, online, stage_list, explicit, per_device)
    return first, rows, fleet_size, classes, modules


MATCH_ENDPOINTS = 20     # endpoints named per skip reason in a preview


def match_view(header, rows: list[tuple[str, int | None, str]], fleet_size: int) -> dict:
    """A preview of a plan: how many devices it picks and delivers to (per stage), and the skipped
    ones grouped by reason (most common first, at most ``MATCH_ENDPOINTS`` endpoints named each)."""
    groups: dict[str, list[str]] = {}
    for ep, stage, reason in rows:
        if stage is None:
            groups.setdefault(reason, []).append(ep)
    stages: dict[int, int] = {}
    for _, stage, _ in rows:
        if stage is not None:
            stages[stage] = stages.get(stage, 0) + 1
    return {"module": {"name": header.model_name, "version": header.module_version},
            "devices": fleet_size, "picked": len(rows), "deliver": sum(stages.values()),
            "per_stage": [stages.get(k, 0) for k in range(max(stages, default=-1) + 1)],
            "skipped": sum(len(eps) for eps in groups.values()),
            "reasons": [{"reason": r, "count": len(eps), "endpoints": eps[:MATCH_ENDPOINTS]}
                        for r, eps in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))]}


# the fields a deployment and its preview (/match) share
_MODULE = File(None, description="a signed inference module (.tmm)")
_MODEL = File(None, description="instead of module: a model file (.tflite, .onnx, ...) with version; packed and "
                                "signed with the project's key once per device class (the profile and executor "
                                "ABI each selected device reports)")
_COMPILATION = Form(None, description="instead of module: a succeeded compilation's id, packed and signed with the "
                                      "project's key")
_VERSION = Form(None, ge=0, le=2**32 - 1, description="the module version (with compilation)")
_SELECTOR = Form(..., description='JSON: {"endpoints": [...]}, {"tags": [...]} and/or {"query": '
                                  '"ram >= 20000 and kernel_set == \\"0x1f\\""}; every part must hold')
_STAGES = Form(None, description="JSON list of cumulative percentages (default [100])")
_TARGET = Form(None, description="a board id whose profile plans the devices without the TinyML object (they are "
                                 "skipped otherwise): executor ABI from its word size, module in its flash, arena "
                                 "in its RAM; the device's loader checks kernels and slot")
_PROFILE = Form(None, description="instead of target: a device profile as JSON (as GET /v1/boards/{id} returns it)")


async def _planned(svc: Service, runner, who: Caller, sel: dict, stage_list: list[float], explicit: dict | None,
                   module: UploadFile | None, compilation: str | None, version: int | None,
                   model: UploadFile | None, store: bool = True):
    """``(header, module size, module sha256, rows, fleet size, classes, endpoint -> module sha256)``
    of a deployment of a module, a compilation or (per device class) a model; ``store``: keep the
    module in the artifact store (a preview does not; a model's class modules are kept)."""
    if model is None:
        data = await _module(svc, who, module, compilation, version)
        header, rows, fleet_size = await plan_request(runner, who, sel, stage_list, data, explicit)
        digest = await asyncio.to_thread(svc.store.put, data) if store else None
        return header, len(data), digest, rows, fleet_size, None, None
    if module is not None or compilation is not None:
        raise fail(422, "give exactly one of module (a signed .tmm file), compilation (an id, with version) or "
                        "model (a model file, with version)")
    if version is None:
        raise fail(422, "model: give version too (the module version to sign, newer than the devices' running "
                        "module)")
    limit = svc.cfg.max_upload_bytes
    upload = check_model(read_upload(model, limit), model.filename, who.allow_pickle, UNPACKED_PER_UPLOAD * limit)
    (header, size, digest), rows, fleet_size, classes, modules = await plan_model(
        svc, runner, who, sel, stage_list, upload, version, explicit)
    return header, size, digest, rows, fleet_size, classes, modules


@router.post("", status_code=201, responses=errors(400, 401, 403, 404, 409, 413, 422))
async def create_deployment(
        request: Request,
        module: UploadFile | None = _MODULE, compilation: str | None = _COMPILATION, version: int | None = _VERSION,
        model: UploadFile | None = _MODEL,
        selector: str = _SELECTOR, stages: str | None = _STAGES, target: str | None = _TARGET,
        profile: str | None = _PROFILE, criteria: str | None = Form(None, description='JSON: {"activated": true, "inferences": N, "within_s": T}'),
        max_failure_ratio: float = Form(0.0, ge=0.0, le=1.0, description="failed / devices in a stage above this "
                                        "stops the deployment and rolls back what it activated"),
        block_size: int = Form(1024, description="largest Block1 size (16, 32, ..., 1024)"),
        mode: str = Form("push", description="push: Block1 writes to /9/0/2; pull: the module is published and "
                                             "its coap:// URI written to /9/0/3, each device fetches it (Block2)"),
        who: Caller = Depends(caller("deploy")), svc: Service = Depends(service)) -> dict:
    """Start a deployment: deliver the module to the devices the selector picks, stage by stage.

    ``mode`` ``push`` (default) writes the module block-wise to each device; ``pull`` writes the
    URI of the published module and each device fetches it; either way Install and Activate follow.
    With ``model`` (and ``version``) instead of a module, the service packs the model once per
    device class among the selected devices and delivers each device its class's module
    (``classes`` in the answer). Devices that cannot take it are ``skipped`` with the reason;
    GET /v1/deployments/{id} follows it."""
    runner = _runner(request)
    if block_size not in BLOCK_SIZES:
        raise fail(422, f"block_size {block_size}: a CoAP block size (16, 32, ..., 1024)")
    if mode not in MODES:
        raise fail(422, f"mode {mode[:20]!r}: give push (Block1 writes to /9/0/2) or pull (the device fetches the "
                        "module's URI from /9/0/3)")
    sel = check_selector(_json("selector", selector, None))
    stage_list = check_stages(_json("stages", stages, [100]))
    crit = check_criteria(_json("criteria", criteria, None))
    explicit = explicit_profile(svc, target, profile)
    header, size, digest, rows, _, classes, modules = await _planned(
        svc, runner, who, sel, stage_list, explicit, module, compilation, version, model)
    dep_id = await asyncio.to_thread(
        runner.store.create, who.project_id,
        {"module_sha256": digest, "module_size": size, "module_name": header.model_name[:100],
         "module_version": header.module_version}, sel, stage_list, crit, max_failure_ratio, block_size, rows,
        runner.me, runner.lease_s, mode, profile=explicit, classes=classes, modules=modules)
    runner.start(dep_id)
    return await asyncio.to_thread(lambda: runner.store.view(runner.store.get(dep_id)))

@router.post("/match", responses=errors(400, 401, 403, 404, 409, 413, 422))
async def match_deployment(
        request: Request, module: UploadFile | None = _MODULE, compilation: str | None = _COMPILATION,
        version: int | None = _VERSION, model: UploadFile | None = _MODEL, selector: str = _SELECTOR,
        stages: str | None = _STAGES, target: str | None = _TARGET, profile: str | None = _PROFILE,
        who: Caller = Depends(caller("deploy")), svc: Service = Depends(service)) -> dict:
    """What POST /v1/deployments would do with this module and selector, without starting it.

    How many devices it picks, how many it delivers to in each stage, and the skipped devices
    grouped by the reason (offline, no object 9, no capabilities, executor ABI, missing kernels,
    slot, arena): the plan a deployment makes, from the same function."""
    runner = _runner(request)
    sel = check_selector(_json("selector", selector, None))
    stage_list = check_stages(_json("stages", stages, [100]))
    explicit = explicit_profile(svc, target, profile)
    header, _, _, rows, fleet_size, classes, _ = await _planned(
        svc, runner, who, sel, stage_list, explicit, module, compilation, version, model, store=False)
    return {**match_view(header, rows, fleet_size), **({"classes": classes} if classes is not None else {})}


@router.get("", responses=errors(401, 403, 409, 422))
def list_deployments(request: Request, limit: int = Query(100, ge=1, le=1000),
                     who: Caller = Depends(caller("read"))) -> list[dict]:
    """The project's deployments, newest first: state, stage, counts per device state (no device rows)."""
    return _runner(request).store.list(who.project_id, limit)


@router.get("/{dep_id}", responses=errors(401, 403, 404, 409, 422))
def show_deployment(dep_id: str, request: Request, who: Caller = Depends(caller("read"))) -> dict:
    """One deployment: state, stage, message, counts per device state and a row per device.

    A row: stage, state, whether it was activated, blocks done, Update Result and its meaning, reason."""
    runner, dep = _own(request, who, dep_id)
    return runner.store.view(dep)


def _operation_route(name: str, op: str, doc: str) -> None:
    """``POST /v1/deployments/{id}/<name>``: the runner's ``op`` on the caller's deployment, then its view."""
    async def route(dep_id: str, request: Request, who: Caller = Depends(caller("deploy"))) -> dict:
        runner, dep = await asyncio.to_thread(_own, request, who, dep_id)
        try:
            await getattr(runner, op)(dep)
        except DeploymentError as e:
            raise fail(e.status, str(e)) from None
        return await asyncio.to_thread(lambda: runner.store.view(runner.store.get(dep_id)))

    route.__name__, route.__doc__ = f"{name}_deployment", doc
    router.post(f"/{{dep_id}}/{name}", responses=errors(401, 403, 404, 409, 422))(route)


_operation_route("cancel", "cancel", "Stop it: pending devices stay pending, finished ones as they are, a transfer "
                                     "under way stops.")
_operation_route("rollback", "rollback", "Stop it if it runs and roll back every device it activated (Deactivate: "
                                         "the previous module runs).")
_operation_route("pause", "pause", "Pause it: transfers under way stop; resume goes on from their last "
                                   "recorded block.")
_operation_route("resume", "resume_one", "Resume a paused deployment where it stopped.")
