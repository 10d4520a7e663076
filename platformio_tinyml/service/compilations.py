"""``/v1/compilations``: submit a model, follow the job, fetch the artifact or a signed module."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from . import tasks
from .auth import Caller
from .core import Service
from .db import ACTIVE_STATES, Build, Compilation, Project
from .deps import caller, service
from .inputs import (INPUT_SHAPES_FORM, INPUT_VALUES_FORM, backend_of, calibration_of, device_of, fail,
                     input_shapes_from, input_shapes_of, input_values_from, input_values_of, name_of, options_from,
                     options_of, read_upload, stored)
from .jobs import JobFailed
from .schemas import CompilationOut, LookupIn, errors
from .uploads import UNPACKED_PER_UPLOAD, check_model, check_name, model_file_name

router = APIRouter(prefix="/v1", tags=["compilations"])
_REREAD_S = 0.25   # a long poll reads the state again this often (a build in another process)


def _iso(t) -> str | None:
    return t.isoformat() + "Z" if t is not None else None


def view(c: Compilation, b: Build) -> dict:
    """What a project sees of its compilation (never the build's other requesters)."""
    error = ({"message": b.error_message, "where": b.error_where, "hint": b.error_hint}
             if b.state == "failed" else None)
    return CompilationOut(
        id=c.id, state=b.state, cached=c.cached, name=b.name, target=c.target, model_sha256=b.model_sha256,
        backend_requested=b.backend_requested, backend=b.backend, backend_version=b.backend_version,
        chosen_because=b.chosen_because, progress=b.progress, log=list(b.log), report=b.report, error=error,
        created_at=_iso(c.created_at), started_at=_iso(b.started_at), finished_at=_iso(b.finished_at),
        seconds=b.seconds,
        artifact_url=f"/v1/compilations/{c.id}/artifact" if b.state == "succeeded" else None).model_dump()


def _own(svc: Service, db, who: Caller, comp_id: str) -> tuple[Compilation, Build]:
    row = db.execute(select(Compilation, Build).join(Build, Compilation.build_id == Build.id)
                     .where(Compilation.id == comp_id, Compilation.project_id == who.project_id)).first()
    if row is None:
        raise fail(404, f"compilation '{comp_id[:64]}' not found in project '{who.project}'")
    return row


def _check_in_flight(svc: Service, who: Caller) -> None:
    """429 when the project has its limit of queued and running jobs (cache hits are not jobs)."""
    with svc.Session() as db:
        in_flight = db.scalar(select(func.count()).select_from(Compilation)
                              .join(Build, Compilation.build_id == Build.id)
                              .where(Compilation.project_id == who.project_id, Build.state.in_(ACTIVE_STATES)))
    if in_flight >= svc.cfg.max_jobs_in_flight:
        raise fail(429, f"project '{who.project}' has {in_flight} jobs in flight (limit "
                        f"{svc.cfg.max_jobs_in_flight}). Wait for one to finish")


@router.post("/compilations", status_code=202, response_model=CompilationOut,
             responses={200: {"model": CompilationOut, "description": "an identical compilation exists"},
                        **errors(400, 401, 403, 413, 415, 422, 429)})
def create_compilation(model: UploadFile = File(..., description="the model file"),
                       target: str | None = Form(None, description="board id"),
                       profile: str | None = Form(None, description="device profile as JSON"),
                       manifest: UploadFile | None = File(None, description="board manifest .json"),
                       backend: str = Form("auto"), name: str | None = Form(None),
                       options: str | None = Form(None, description="backend options as a JSON object"),
                       calibration: UploadFile | None = File(None, description="representative data .npy"),
                       input_shapes: str | None = Form(None, description=INPUT_SHAPES_FORM),
                       input_values: str | None = Form(None, description=INPUT_VALUES_FORM),
                       who: Caller = Depends(caller("compile")), svc: Service = Depends(service)):
    """Compile ``model`` for a board: 202 with the new job, or 200 with ``cached: true``.

    What needs no model load is checked before answering (file name and type, size, the
    file's first bytes, archive paths, board, options, name, backend, the form of input shapes
    and values); the job's child process loads the model first, and a model it cannot take
    fails the job with the one-line error ``tinyml compile`` prints (``GET /v1/compilations/{id}``:
    ``error``)."""
    limit = svc.cfg.max_upload_bytes
    upload = check_model(read_upload(model, limit), model.filename, who.allow_pickle, UNPACKED_PER_UPLOAD * limit)
    device = device_of(target, profile, manifest, svc.cfg.boards_dirs)
    opts, cname, backend = options_of(options), name_of(name, upload.filename), backend_of(backend)
    cal = calibration_of(calibration, limit)
    shapes, values = input_shapes_of(input_shapes), input_values_of(input_values)
    key = svc.key_of(upload.data, upload.suffix, model_file_name(upload.filename, upload.suffix), cname, backend,
                     opts, cal, device, shapes, values)
    with svc.Session() as db:
        build = svc.live_build(db, key)
        if build is not None and build.state == "succeeded":   # a cache hit: no job, one session
            return _answer(svc, db, who, build, device.board)
    _check_in_flight(svc, who)
    with svc.Session() as db:
        if build is None:
            build, _ = svc.find_or_create_build(
                db, key, model_sha256=svc.store.put(upload.data), model_file=upload.filename,
                calibration_sha256=svc.store.put(cal) if cal is not None else None,
                device=device.to_dict(), name=cname, backend_requested=backend, options=opts,
                input_shapes=stored(shapes), input_values=stored(values))
        return _answer(svc, db, who, build, device.board)


def _answer(svc: Service, db, who: Caller, build: Build, target: str) -> JSONResponse:
    """The project's own compilation row for ``build``: 200 for a finished build, else 202."""
    cached = build.state == "succeeded"
    svc.metrics.count_cache(cached)
    comp = Compilation(id=uuid.uuid4().hex, project_id=who.project_id, build_id=build.id, cached=cached,
                       target=target)
    db.add(comp)
    db.commit()
    return JSONResponse(view(comp, build), status_code=200 if cached else 202)


@router.post("/compilations/lookup", response_model=CompilationOut, responses=errors(400, 401, 403, 404, 422))
async def lookup_compilation(body: LookupIn, who: Caller = Depends(caller("read")),
                             svc: Service = Depends(service)):
    """The finished compilation of these inputs (the model by its sha256, no upload), or 404.

    The key is the one ``POST /v1/compilations`` gives the same model: a client
    asks here first and uploads only on a 404. A hit answers the project's own
    compilation id (the same one each time) with ``cached: true``.
    """
    device = device_of(body.target, body.profile, None, svc.cfg.boards_dirs)
    key = svc.key_from(body.model_sha256, check_name(body.model_file, "model_file"), body.name, body.backend, options_from(body.options),
                       body.calibration_sha256, device, input_shapes_from(body.input_shapes),
                       input_values_from(body.input_values))
    # A succeeded build and the project's compilation of it never change: the answer is
    # kept in memory, so a repeated hit does not touch the database.
    memo = (who.project_id, key, device.board)
    answer = svc.hits.get(memo)
    if answer is None:
        with svc.Session() as db:
            found = svc.finished_for(db, key, who, device.board)
        if found is None:
            raise fail(404, "no finished compilation of these inputs. Upload the model: POST /v1/compilations")
        answer = svc.hits.put(memo, json.dumps({**view(*found), "cached": True}, ensure_ascii=False,
                                                  separators=(",", ":")).encode())
    svc.metrics.count_cache(True)
    return Response(answer, media_type="application/json")


@router.get("/compilations/{comp_id}", response_model=CompilationOut, responses=errors(401, 403, 404, 422))
async def get_compilation(comp_id: str,
                          wait: float = Query(0, ge=0, le=60, description="Seconds to hold the answer while the "
                                              "compilation is queued or running: it comes as soon as it ends"),
                          who: Caller = Depends(caller("read")), svc: Service = Depends(service)):
    """State, backend and why, report, progress and log; on failure the one-line error.

    With ``wait``, a long poll: the answer is sent when the compilation ends, or after
    ``wait`` seconds with its state then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        answer, build_id = await run_in_threadpool(own_view, svc, who, comp_id)
        state = answer["state"]
        left = deadline - loop.time()
        if state not in ACTIVE_STATES or left <= 0:
            return answer
        # ends at once when this process finishes the build; a worker process's is read again
        await svc.until_finished(build_id, min(left, _REREAD_S))


def own_view(svc: Service, who: Caller, comp_id: str) -> tuple[dict, str]:
    """(:func:`view` of the caller's compilation ``comp_id``, its build's id); 404 outside the project."""
    with svc.Session() as db:
        comp, build = _own(svc, db, who, comp_id)
        return view(comp, build), build.id


def _finished(svc: Service, who: Caller, comp_id: str) -> Build:
    with svc.Session() as db:
        _, build = _own(svc, db, who, comp_id)
    if build.state != "succeeded":
        raise fail(409, f"compilation '{comp_id}' is {build.state}; there is no artifact"
                        + (f" ({build.error_message})" if build.error_message else ". Poll it until it succeeds"))
    return build


@router.get("/compilations/{comp_id}/artifact", response_class=Response,
            responses={200: {"content": {"application/gzip": {}}}, **errors(401, 403, 404, 409)})
def get_artifact(comp_id: str, who: Caller = Depends(caller("read")), svc: Service = Depends(service)):
    """A .tar.gz of exactly the files ``tinyml compile -o DIR`` writes, report.json included."""
    build = _finished(svc, who, comp_id)
    return Response(svc.store.get(build.artifact_sha256), media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{build.name}.tar.gz"',
                             "ETag": f'"{build.artifact_sha256}"'})


@router.post("/compilations/{comp_id}/module", response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}, **errors(400, 401, 403, 404, 409, 422)})
def create_module(comp_id: str, version: int = Form(..., ge=0, le=2**32 - 1),
                  kind: str = Form("graph", pattern="^(graph|tflite)$"),
                  who: Caller = Depends(caller("deploy")), svc: Service = Depends(service)):
    """The compiled model as a signed inference module (.tmm), signed with the project's key."""
    build, data = signed_module(svc, who, comp_id, version, kind)
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{build.name}-v{version}.tmm"'})


def signed_module(svc: Service, who: Caller, comp_id: str, version: int, kind: str = "graph") -> tuple[Build, bytes]:
    """(the build, its model packed as a module signed with the project's key); also what
    ``POST /v1/deployments`` deploys when given a compilation id. Blocking (a child process packs it)."""
    build = _finished(svc, who, comp_id)
    if build.input_shapes or build.input_values:
        raise fail(422, f"compilation '{comp_id}' was compiled with input shapes or values; a module is packed "
                        "from the model as uploaded, without them. Export the model with fixed shapes and "
                        "constant inputs to deploy it as a module")
    try:
        data = pack_signed(svc, who.project_id, lambda workdir: svc.inputs_into(build, workdir), build.device,
                           version, kind)
    except JobFailed as e:
        raise fail(422, str(e)) from None
    return build, data


def pack_signed(svc: Service, project_id: int, stage, device: dict, version: int, kind: str = "graph",
                abi: int | None = None) -> bytes:
    """A model packed as a module for ``device`` and signed with the project's key, in a child process
    (:func:`.tasks.pack`); ``stage(workdir)`` writes the model (and calibration) into the job folder and
    returns their relative paths. Raises :class:`.jobs.JobFailed` with the child's one line."""
    with svc.Session() as db:
        key_pem = db.get(Project, project_id).signing_key_pem
    workdir = svc.scratch()
    try:
        model_rel, cal_rel = stage(workdir)
        return svc.isolated(tasks.pack, str(workdir), model_rel, device, key_pem, version, kind, cal_rel, abi)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
