"""The LwM2M devices over HTTP: list, show, read, write, execute, observe any resource.

Reads need the ``read`` scope, anything that changes a device the ``deploy``
scope. A project sees only the devices that registered under its endpoint
rules. Values are JSON typed by the object definitions (Opaque as
``{"base64": ...}``, object links as ``"3:0"``). A device that is offline or
asleep answers 409; one that does not answer, answers with an error, or with
a payload we cannot read answers 424 (its own 4.04/4.05/... keep their
meaning); every error is one line.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from ..lwm2m.codec import CodecError, ContentFormat, from_json, to_json
from ..lwm2m.ids import LwM2MError, ResourcePath
from . import pushes
from .auth import Caller
from .deps import caller
from .inputs import fail
from .schemas import errors

router = APIRouter(prefix="/v1/devices", tags=["devices"])

FORMATS = {"tlv": ContentFormat.TLV, "senml-json": ContentFormat.SENML_JSON, "senml-cbor": ContentFormat.SENML_CBOR,
           "text": ContentFormat.TEXT, "opaque": ContentFormat.OPAQUE}
_FORMAT = Query(None, description="content format to ask the device for: " + ", ".join(FORMATS))


def _lwm2m(request: Request):
    server = getattr(request.app.state, "lwm2m", None)
    if server is None:
        raise fail(409, "the LwM2M server is disabled (--lwm2m-port 0). Start tinyml serve with --lwm2m-port")
    return server


def _path(text: str) -> ResourcePath:
    try:
        return ResourcePath.parse(text)
    except LwM2MError as e:
        raise fail(400, str(e)) from None


def _format(name: str | None) -> int | None:
    if name is None:
        return None
    if name not in FORMATS:
        raise fail(400, f"unknown format '{name}'. Formats: {', '.join(FORMATS)}")
    return FORMATS[name]


def _target(request: Request, who: Caller, endpoint: str, path: str):
    """(the LwM2M server, the path); 404 unless ``endpoint`` is a device of the caller's project."""
    server, where = _lwm2m(request), _path(path)
    if server.store.device(who.project_id, endpoint) is None:
        raise fail(404, f"no device '{endpoint}' in project '{who.project}'. GET /v1/devices lists them")
    return server, where


async def _device_call(coro):
    try:
        return await coro
    except LwM2MError as e:
        raise fail(getattr(e, "status", 400), str(e)) from None


@router.get("", responses=errors(401, 403, 409, 422))
def list_devices(request: Request, who: Caller = Depends(caller("read"))) -> list[dict]:
    """The project's devices: endpoint, online, last seen, tags, board, installed modules."""
    return _lwm2m(request).store.list_devices(who.project_id)


@router.get("/{endpoint}", responses=errors(401, 403, 404, 409, 422))
def show_device(endpoint: str, request: Request, who: Caller = Depends(caller("read"))) -> dict:
    """One device: its registration (version, binding, lifetime, address, objects), online state, last
    seen, capabilities and device profile, installed modules, tags, and the content formats it uses."""
    server = _lwm2m(request)
    dev = server.store.device(who.project_id, endpoint)
    if dev is None:
        raise fail(404, f"no device '{endpoint}' in project '{who.project}'. GET /v1/devices lists them")
    return {**dev, "content_formats": server.content_formats(endpoint)}


@router.put("/{endpoint}/tags", responses=errors(400, 401, 403, 404, 409, 422))
def set_tags(endpoint: str, request: Request, body: dict[str, Any] = Body(..., examples=[{"tags": ["canary"]}]),
             who: Caller = Depends(caller("deploy"))) -> dict:
    """Replace the device's tags (what a deployment's ``{"tags": [...]}`` selector matches)."""
    tags = body.get("tags")
    if set(body) != {"tags"} or not isinstance(tags, list) or len(tags) > 50 or \
            not all(isinstance(t, str) and 0 < len(t) <= 100 and t.isprintable() for t in tags):
        raise fail(400, 'send {"tags": [...]}: at most 50 printable names of 1 to 100 characters')
    if not _lwm2m(request).store.set_tags(who.project_id, endpoint, tags):
        raise fail(404, f"no device '{endpoint}' in project '{who.project}'. GET /v1/devices lists them")
    return {"endpoint": endpoint, "tags": sorted(set(tags))}


@router.get("/{endpoint}/values", responses=errors(401, 403, 404, 409, 422))
def reported_values(endpoint: str, request: Request, limit: int = Query(100, ge=1, le=10000),
                    who: Caller = Depends(caller("read"))) -> list[dict]:
    """Values the device reported (Observe notifications and LwM2M Send), newest first."""
    rows = _lwm2m(request).store.values(who.project_id, endpoint, limit)
    if rows is None:
        raise fail(404, f"no device '{endpoint}' in project '{who.project}'")
    return rows


@router.get("/{endpoint}/resources/{path:path}", responses=errors(400, 401, 403, 404, 405, 406, 409, 424, 422))
async def read_resource(endpoint: str, path: str, request: Request, format: str | None = _FORMAT,
                        who: Caller = Depends(caller("read"))) -> dict:
    """Read ``/object[/instance[/resource[/index]]]`` on the device now: ``{"values": {path: value}}``."""
    server, where = _target(request, who, endpoint, path)
    values = await _device_call(server.read(endpoint, where, _format(format)))
    return {"path": str(where), "values": {str(p): to_json(v) for p, v in sorted(values.items())}}


@router.put("/{endpoint}/resources/{path:path}", responses=errors(400, 401, 403, 404, 405, 409, 415, 424, 422))
async def write_resource(endpoint: str, path: str, request: Request,
                         body: dict[str, Any] = Body(..., examples=[{"value": "+01:00"},
                                                                    {"values": {"/1/0/1": 300}, "partial": True}]),
                         format: str | None = _FORMAT, who: Caller = Depends(caller("deploy"))) -> dict:
    """Write: ``{"value": V}`` for the resource at ``path``, or ``{"values": {path: V, ...}}`` below it;
    ``"partial": true`` is a partial update (CoAP POST) instead of a replace (PUT)."""
    server, where = _target(request, who, endpoint, path)
    if ("value" in body) == ("values" in body) or not set(body) <= {"value", "values", "partial"}:
        raise fail(400, 'send {"value": V} or {"values": {"/o/i/r": V, ...}} (and optionally "partial": true)')
    raw = {str(where): body["value"]} if "value" in body else body["values"]
    if not isinstance(raw, dict) or not raw:
        raise fail(400, '"values" must be a non-empty object of path -> value')
    try:
        values = {p: from_json(v, p, server.defs) for p, v in ((_path(k), v) for k, v in raw.items())}
    except CodecError as e:
        raise fail(400, str(e)) from None
    await _device_call(server.write(endpoint, where, values, replace=not body.get("partial"),
                                    fmt=_format(format)))
    return {"path": str(where), "written": len(values)}


@router.post("/{endpoint}/execute/{path:path}", responses=errors(400, 401, 403, 404, 405, 409, 424, 422))
async def execute_resource(endpoint: str, path: str, request: Request,
                           body: dict[str, Any] | None = Body(None, examples=[{"args": "0"}]),
                           who: Caller = Depends(caller("deploy"))) -> dict:
    """Execute a resource (``/3/0/4`` reboots); ``{"args": "..."}`` passes the Execute arguments."""
    server, where = _target(request, who, endpoint, path)
    args = (body or {}).get("args")
    if args is not None and not isinstance(args, str):
        raise fail(400, '"args" must be a string (LwM2M Execute arguments, e.g. "0=\'1\'")')
    await _device_call(server.execute(endpoint, where, args))
    return {"path": str(where), "executed": True}


@router.get("/{endpoint}/discover/{path:path}", responses=errors(400, 401, 403, 404, 409, 424, 422))
async def discover(endpoint: str, path: str, request: Request, who: Caller = Depends(caller("read"))) -> dict:
    """Discover: the resources the device has under ``path`` and their attributes."""
    server, where = _target(request, who, endpoint, path)
    links = await _device_call(server.discover(endpoint, where))
    return {"path": str(where), "links": [{"path": lk.target, **lk.attrs} for lk in links]}


@router.put("/{endpoint}/attributes/{path:path}", responses=errors(400, 401, 403, 404, 409, 424, 422))
async def write_attributes(endpoint: str, path: str, request: Request,
                           body: dict[str, Any] = Body(..., examples=[{"pmin": 10, "pmax": 60}]),
                           who: Caller = Depends(caller("deploy"))) -> dict:
    """Write-Attributes: notification attributes (pmin, pmax, gt, lt, st, epmin, epmax) of ``path``."""
    server, where = _target(request, who, endpoint, path)
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in body.values()):
        raise fail(400, "attribute values must be numbers (or null to clear one)")
    await _device_call(server.write_attributes(endpoint, where, body))
    return {"path": str(where), "attributes": body}


@router.post("/{endpoint}/observe/{path:path}", responses=errors(400, 401, 403, 404, 409, 424, 422))
async def observe(endpoint: str, path: str, request: Request, who: Caller = Depends(caller("deploy"))) -> dict:
    """Observe ``path``: its current values; notifications are stored (GET .../values)."""
    server, where = _target(request, who, endpoint, path)
    values = await _device_call(server.observe(endpoint, where))
    return {"path": str(where), "values": {str(p): to_json(v) for p, v in sorted(values.items())}}


@router.delete("/{endpoint}/observe/{path:path}", responses=errors(400, 401, 403, 404, 409, 422))
async def cancel_observe(endpoint: str, path: str, request: Request,
                         who: Caller = Depends(caller("deploy"))) -> dict:
    """Cancel an observation: no more notifications are stored."""
    server, where = _target(request, who, endpoint, path)
    return {"path": str(where), "cancelled": await _device_call(server.cancel_observe(endpoint, where))}


MAX_MODULE = 4 * 1024 * 1024


def _deliveries(request: Request, server):
    from ..lwm2m.delivery import Deliveries
    if getattr(request.app.state, "deliveries", None) is None:
        request.app.state.deliveries = Deliveries(server)
    return request.app.state.deliveries


@router.post("/{endpoint}/modules", status_code=202, responses=errors(400, 401, 403, 404, 409, 413, 422))
async def deliver_module(endpoint: str, request: Request, block_size: int = Query(1024, description="largest "
                         "Block1 size (16, 32, ..., 1024); a device answering 4.13 gets smaller blocks"),
                         pull: bool = Query(False, description="publish the module and write its coap:// "
                                            "URI to /9/0/3: the device fetches it (Block2)"),
                         who: Caller = Depends(caller("deploy"))) -> dict:
    """Push a signed inference module (.tmm, sent as application/octet-stream) to the device over object 9.

    Block-wise Write to /9/0/2, Install, Activate; answers at once with the delivery state,
    GET .../modules follows it. With ``pull=true`` the module is published and its URI written
    to Package URI /9/0/3 instead: the device fetches it and checks it as a pushed one (Update
    Result 56: it could not fetch the URI, 52: no answer)."""
    server, _ = _target(request, who, endpoint, "/9/0")
    data = await request.body()
    if not data[:4] == b"TMOD":
        raise fail(400, "the body is not an inference module (no TMOD magic). Send a .tmm from tinyml module pack "
                        "or POST /v1/compilations/{id}/module, as application/octet-stream")
    return _start_delivery(request, who, server, endpoint, data, "module", MAX_MODULE, max_block=block_size,
                           pull=pull)


def _start_delivery(request: Request, who: Caller, server, endpoint: str, data: bytes, what: str, limit: int,
                    **kw) -> dict:
    """Start a delivery of ``data`` (``what``: module or firmware) to ``endpoint``: 413 over
    ``limit``, 409 while it is offline or another delivery to it runs, 400 for a bad block size.
    The push is written to the device's history when it ends."""
    from ..lwm2m.delivery import Delivery, DeliveryError, FirmwareDelivery
    if len(data) > limit:
        raise fail(413, f"{what} of {len(data):,} bytes (at most {limit:,})")
    if endpoint not in server.regs:
        raise fail(409, f"device '{endpoint}' is offline (not registered). Deliver once it registers")
    kind = FirmwareDelivery if what == "firmware image" else Delivery
    deliveries = _deliveries(request, server)
    try:
        st = deliveries.start(endpoint, data, kind=kind, **kw)
    except DeliveryError as e:
        raise fail(409 if "running" in str(e) else 400, str(e)) from None
    pushes.record_when_done(request.app.state.service.Session, who.project_id, deliveries.tasks[endpoint], st,
                            kind.KIND, data)
    return st.to_dict()


@router.get("/{endpoint}/modules", responses=errors(401, 403, 404, 409, 422))
def module_state(endpoint: str, request: Request, who: Caller = Depends(caller("read"))) -> dict:
    """The modules in the device's slots, the latest delivery to it, and its module history.

    ``installed`` as last read; ``delivery``: the latest single push's state (kept in memory);
    ``history``: every deployment that included the device and every single push to it (module
    or firmware, ``push`` naming which; ``deployment`` null), newest first (module, version or
    the image's sha256, times, result, message)."""
    server, _ = _target(request, who, endpoint, "/9/0")
    deliveries = getattr(request.app.state, "deliveries", None)     # made at start, beside the LwM2M server
    state = deliveries.state(endpoint) if deliveries is not None else None
    return {"installed": server.store.device(who.project_id, endpoint).get("installed", []),
            "delivery": state.to_dict() if state else None, "history": module_history(request, who, endpoint)}


MAX_FIRMWARE = 8 * 1024 * 1024


@router.post("/{endpoint}/firmware", status_code=202, responses=errors(400, 401, 403, 404, 409, 413, 422))
async def deliver_firmware(endpoint: str, request: Request, block_size: int = Query(1024, description="largest "
                           "Block1 size (16, 32, ..., 1024); a device answering 4.13 gets smaller blocks"),
                           pull: bool = Query(False, description="publish the image and write its coap:// "
                                              "URI to /5/0/1: the device fetches it (Block2)"),
                           who: Caller = Depends(caller("deploy"))) -> dict:
    """Push a whole firmware image (sent as application/octet-stream) to the device over object 5 (FOTA).

    Block-wise Write to /5/0/0, State DOWNLOADED, Execute Update /5/0/2, State and Update Result
    followed until IDLE, then Firmware Version /3/0/3 read; answers at once with the delivery
    state, GET .../firmware follows it. The device checks the image (Update Results 2, 5, 6, 8).
    With ``pull=true`` the image is published and its URI written to /5/0/1 instead."""
    server, _ = _target(request, who, endpoint, "/5/0")
    data = await request.body()
    if not data:
        raise fail(400, "the body is empty: send the firmware image (the firmware.elf the build wrote) as "
                        "application/octet-stream")
    return _start_delivery(request, who, server, endpoint, data, "firmware image", MAX_FIRMWARE, max_block=block_size,
                           pull=pull)


@router.get("/{endpoint}/firmware", responses=errors(401, 403, 404, 409, 422))
def firmware_state(endpoint: str, request: Request, who: Caller = Depends(caller("read"))) -> dict:
    """The device's Firmware Version as last read, and the latest firmware delivery to it (kept in memory)."""
    server, _ = _target(request, who, endpoint, "/5/0")
    deliveries = getattr(request.app.state, "deliveries", None)
    state = deliveries.state(endpoint, "firmware") if deliveries is not None else None
    device = server.store.device(who.project_id, endpoint)
    return {"version": ((device.get("capabilities") or {}).get("device") or {}).get("firmware"),
            "delivery": state.to_dict() if state else None}


def module_history(request: Request, who: Caller, endpoint: str, limit: int = 100) -> list[dict]:
    """The device's rows in the project's deployments (none when deployments are off) and its single
    pushes, newest first by when each began."""
    runner = getattr(request.app.state, "deployments", None)
    rows = [{**r, "push": None} for r in runner.store.history(who.project_id, endpoint, limit)] \
        if runner is not None else []
    rows += pushes.history(request.app.state.service.Session, who.project_id, endpoint, limit)
    rows.sort(key=lambda h: h["created_at"] or "", reverse=True)      # stable: deployments keep their order
    return rows[:limit]
