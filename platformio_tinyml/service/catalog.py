"""What the service offers: backends, boards, ``compare``, the project's public key."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from ..device import list_boards, load_profile
from ..errors import TinyMLError
from . import tasks
from .auth import Caller
from .core import Service
from .db import Project
from .deps import caller, service
from .inputs import (BOARD_ID, INPUT_SHAPES_FORM, INPUT_VALUES_FORM, calibration_of, device_of, fail,
                     input_shapes_of, input_values_of, options_of, read_upload, stored)
from .jobs import JobFailed
from .schemas import BackendOut, BoardsOut, CompareOut, PublicKeyOut, errors
from .uploads import UNPACKED_PER_UPLOAD, check_model

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/backends", response_model=list[BackendOut], responses=errors(401, 403))
def backends(who: Caller = Depends(caller("read")), svc: Service = Depends(service)):
    """Every registered backend: name, version, whether it is usable here, the model formats it takes."""
    from ..compilers.registry import discover
    reg = discover()
    out = [BackendOut(name=n, version=str(getattr(c, "version", "?")),
                      installed=not str(getattr(c, "version", "")).startswith("missing"),
                      inputs=list(getattr(c, "formats", ())), probe_cost=getattr(c, "probe_cost", "low"))
           for n, c in sorted(reg.compilers.items())]
    out += [BackendOut(name=n, version="?", installed=False, inputs=[], probe_cost="low", problem=why)
            for n, why in sorted(reg.problems.items())]
    return out


@router.get("/boards", response_model=BoardsOut, responses=errors(401, 403, 422))
def boards(q: str = Query("", max_length=100, description="substring of the board id"),
           limit: int = Query(100, ge=1, le=10000), who: Caller = Depends(caller("read")),
           svc: Service = Depends(service)):
    """Board ids the service knows (its manifests), optionally filtered by ``q``."""
    ids = [b for b in list_boards(list(svc.cfg.boards_dirs) or None) if q.lower() in b.lower()]
    return {"boards": [{"id": b} for b in ids[:limit]], "total": len(ids)}


@router.get("/boards/{board_id}", responses=errors(401, 403, 404))
def board(board_id: str, who: Caller = Depends(caller("read")), svc: Service = Depends(service)) -> dict:
    """The device profile of one board (what ``profile`` takes in ``POST /v1/compilations``)."""
    if not BOARD_ID.match(board_id) or board_id.endswith(".json"):
        raise fail(404, f"unknown board '{board_id[:100]}'")
    try:
        return load_profile(board_id, search_dirs=list(svc.cfg.boards_dirs) or None).to_dict()
    except TinyMLError as e:
        raise fail(404, str(e)) from None


@router.post("/compare", response_model=CompareOut, responses=errors(400, 401, 403, 413, 415, 422))
def compare(model: UploadFile = File(...), target: str | None = Form(None), profile: str | None = Form(None),
            manifest: UploadFile | None = File(None), options: str | None = Form(None),
            calibration: UploadFile | None = File(None),
            input_shapes: str | None = Form(None, description=INPUT_SHAPES_FORM),
            input_values: str | None = Form(None, description=INPUT_VALUES_FORM),
            who: Caller = Depends(caller("read")), svc: Service = Depends(service)):
    """The ``tinyml compare`` table: every backend's answer and estimates for the model on the board."""
    limit = svc.cfg.max_upload_bytes
    upload = check_model(read_upload(model, limit), model.filename, who.allow_pickle, UNPACKED_PER_UPLOAD * limit)
    device = device_of(target, profile, manifest, svc.cfg.boards_dirs)
    opts, cal = options_of(options), calibration_of(calibration, limit)
    shapes, values = input_shapes_of(input_shapes), input_values_of(input_values)
    workdir = svc.scratch()
    try:
        model_rel, cal_rel = svc.stage(workdir, upload.data, upload.suffix, upload.filename, cal)
        try:
            return svc.isolated(tasks.compare, str(workdir), model_rel, device.to_dict(), opts, cal_rel,
                                stored(shapes), stored(values))
        except JobFailed as e:
            raise fail(422, str(e)) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@router.get("/projects/current/public-key", response_model=PublicKeyOut, responses=errors(401, 403))
def public_key(who: Caller = Depends(caller("read")), svc: Service = Depends(service)):
    """The public half of the project's module signing key (the firmware embeds the 32 raw bytes)."""
    from ..module.keys import public_key_bytes
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    with svc.Session() as db:
        pem = db.get(Project, who.project_id).public_key_pem
    return {"project": who.project, "algorithm": "Ed25519", "public_key_pem": pem.decode(),
            "public_key_hex": public_key_bytes(load_pem_public_key(pem)).hex()}
