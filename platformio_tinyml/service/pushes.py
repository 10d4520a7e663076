"""Single pushes to a device (``POST /v1/devices/{ep}/modules`` and ``.../firmware``), kept in the
``device_pushes`` table (migration 0006) when each ends, for the device's module history beside the
deployments that included it (``GET /v1/devices/{ep}/modules`` and the console's device page)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging

from sqlalchemy import select

from ..errors import TinyMLError
from ..lwm2m.deployment_store import _iso
from ..module.format import decode_module
from .db import DevicePush

log = logging.getLogger(__name__)


def _utc(t: float | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(tzinfo=None) if t else \
        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def record_when_done(session_factory, project_id: int, task: asyncio.Task, st, kind: str, data: bytes) -> None:
    """Write the push whose delivery ``task`` (state ``st``) runs once it ends, in a worker thread: its
    kind, the bytes' sha256 and size, the module's name and version when its header decodes, the
    delivery's last state, Update Result and message, when it started and ended."""
    name = version = None
    if kind == "module":
        try:
            header = decode_module(data, where="module").header
            name, version = header.model_name[:100], header.module_version
        except TinyMLError:
            pass                               # the device refuses it; its message says why
    what = {"project_id": project_id, "endpoint": st.endpoint, "kind": kind, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "module_name": name, "module_version": version}

    def done(_task) -> None:
        try:
            asyncio.get_running_loop().run_in_executor(None, _write, session_factory, what, st)
        except RuntimeError as e:             # the loop is closing: the push is not kept
            log.warning("service: the push to '%s' is not kept in its history: %s", st.endpoint, e)
    task.add_done_callback(done)


def _write(session_factory, what: dict, st) -> None:
    try:
        with session_factory() as db:
            db.add(DevicePush(**what, state=st.state, update_result=st.update_result,
                              message=(st.message or st.reason or st.result_meaning)[:2000],
                              started_at=_utc(st.started), finished_at=_utc(st.finished)))
            db.commit()
    except Exception as e:                     # a database error must not end the server's loop
        log.warning("service: the push to '%s' is not kept in its history: %s", what["endpoint"], e)


def history(session_factory, project_id: int, endpoint: str, limit: int = 100) -> list[dict]:
    """The device's single pushes, newest first, in the rows of the module history (``deployment``
    None, ``push`` the kind; a firmware image is named by its sha256)."""
    with session_factory() as db:
        rows = db.scalars(select(DevicePush).where(DevicePush.project_id == project_id,
                                                   DevicePush.endpoint == endpoint)
                          .order_by(DevicePush.finished_at.desc(), DevicePush.id.desc()).limit(limit)).all()
    return [{"deployment": None, "push": p.kind, "sha256": p.sha256, "size": p.size,
             "module": {"name": p.module_name, "version": p.module_version},
             "created_at": _iso(p.started_at), "started_at": _iso(p.started_at), "finished_at": _iso(p.finished_at),
             "state": p.state, "activated": p.kind == "module" and p.state == "active",
             "update_result": p.update_result, "reason": p.message}
            for p in rows]
