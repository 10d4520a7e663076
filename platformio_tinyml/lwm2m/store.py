"""The LwM2M server's state in the service's database: who may register, devices, registrations, values.

The tables are the service's (:mod:`platformio_tinyml.service.db`, migration
0002); this module only reads and writes them, with plain blocking calls the
server runs in a worker thread. A device belongs to the project whose
endpoint rule (a shell glob over the endpoint name) matched when it first
registered; the REST API shows a project only its own devices.

Several servers may share one database (PostgreSQL; migration 0005): each
registration records the server it was made with (``server_id``), each server
writes a heartbeat (:meth:`DeviceStore.heartbeat`), and the registrations of a
server whose heartbeat is older than its liveness window end (``server
gone``): its devices are offline until they register with another server.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from ..service.db import Device, DeviceValue, EndpointRule, LwM2MServerRow, Project, Registration, utcnow
from .codec import Link

MAX_PATTERN = 200


@dataclass(frozen=True)
class NewRegistration:
    endpoint: str
    project_id: int
    address: str
    lwm2m_version: str
    binding: str
    lifetime_s: int
    objects: list             # [[target, {attrs}], ...]
    server_id: str | None = None     # the server that took the Register


class DeviceStore:
    def __init__(self, session_factory):
        self.Session = session_factory

    # -- who may register -----------------------------------------------------
    def allow(self, project_id: int, pattern: str) -> None:
        """Let ``project_id`` take registrations whose endpoint name matches the glob ``pattern``."""
        with self.Session() as db:
            if db.scalar(select(EndpointRule).where(EndpointRule.project_id == project_id,
                                                    EndpointRule.pattern == pattern)) is None:
                db.add(EndpointRule(project_id=project_id, pattern=pattern[:MAX_PATTERN]))
                db.commit()

    def project_for(self, endpoint: str) -> int | None:
        """The project of a known device, else of the first rule matching ``endpoint``; None: refuse."""
        with self.Session() as db:
            known = db.scalar(select(Device.project_id).where(Device.endpoint == endpoint))
            if known is not None:
                return known
            for rule in db.scalars(select(EndpointRule).order_by(EndpointRule.id)):
                if fnmatch.fnmatchcase(endpoint, rule.pattern):
                    return rule.project_id
        return None

    # -- registrations ------------------------------------------------------------
    def registered(self, reg: NewRegistration) -> str:
        """Record a Register (ending the device's previous registration as replaced); the new id."""
        now = utcnow()
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == reg.endpoint))
            if dev is None:
                dev = Device(endpoint=reg.endpoint, project_id=reg.project_id, tags=[])
                db.add(dev)
                db.flush()
            elif dev.registration_id:
                self._end(db, dev.registration_id, "replaced")
            reg_id = uuid.uuid4().hex[:12]
            db.add(Registration(id=reg_id, device_id=dev.id, address=reg.address, lwm2m_version=reg.lwm2m_version,
                                binding=reg.binding, lifetime_s=reg.lifetime_s, objects=reg.objects,
                                registered_at=now, updated_at=now, server_id=reg.server_id))
            dev.online, dev.registration_id, dev.last_seen = True, reg_id, now
            db.commit()
            return reg_id

    def updated(self, reg_id: str, **changes) -> None:
        """Record an Update (lifetime, binding, objects, address as given)."""
        now = utcnow()
        with self.Session() as db:
            reg = db.get(Registration, reg_id)
            if reg is None:
                return
            for k, v in changes.items():
                setattr(reg, k, v)
            reg.updated_at = now
            dev = db.get(Device, reg.device_id)
            dev.last_seen, dev.online = now, dev.registration_id == reg_id
            db.commit()

    def ended(self, reg_id: str, reason: str) -> None:
        """De-register or lifetime expiry: the device goes offline if this was its registration."""
        with self.Session() as db:
            self._end(db, reg_id, reason)
            db.commit()

    @staticmethod
    def _end(db, reg_id: str, reason: str) -> None:
        reg = db.get(Registration, reg_id)
        if reg is None or reg.ended_at is not None:
            return
        reg.ended_at, reg.end_reason = utcnow(), reason
        dev = db.get(Device, reg.device_id)
        if dev.registration_id == reg_id:
            dev.online, dev.registration_id = False, None

    # -- the servers sharing the database ----------------------------------------------
    def server_started(self, server_id: str, address: str) -> None:
        """At start: this server's earlier registrations (and those of no server, from before 0005)
        are gone with the process that held them; the devices register again."""
        now = utcnow()
        with self.Session() as db:
            row = db.get(LwM2MServerRow, server_id)
            if row is None:
                db.add(LwM2MServerRow(id=server_id, address=address, started_at=now, heartbeat_at=now))
            else:
                row.address, row.started_at, row.heartbeat_at = address, now, now
            self._end_where(db, (Registration.server_id == server_id) | Registration.server_id.is_(None),
                            "server restarted")
            db.commit()

    def heartbeat(self, server_id: str, stale_after_s: float) -> int:
        """This server is alive; the registrations of servers silent for ``stale_after_s`` end
        (``server gone``). Returns how many ended."""
        now = utcnow()
        with self.Session() as db:
            db.execute(update(LwM2MServerRow).where(LwM2MServerRow.id == server_id).values(heartbeat_at=now))
            gone = select(LwM2MServerRow.id).where(LwM2MServerRow.heartbeat_at < now - dt.timedelta(
                seconds=stale_after_s))
            n = self._end_where(db, Registration.server_id.in_(gone), "server gone")
            db.commit()
            return n

    def replaced_since(self, server_id: str, since: dt.datetime) -> list[str]:
        """This server's registrations that another server ended since ``since`` (the device
        registered there): the ids, to forget here."""
        with self.Session() as db:
            return list(db.scalars(select(Registration.id).where(
                Registration.server_id == server_id, Registration.ended_at >= since,
                Registration.end_reason == "replaced")))

    def _end_where(self, db, condition, reason: str) -> int:
        ids = list(db.scalars(select(Registration.id).where(condition, Registration.ended_at.is_(None))))
        for reg_id in ids:
            self._end(db, reg_id, reason)
        return len(ids)

    def online_objects(self, endpoints) -> dict[str, set[int]]:
        """The objects each online device of ``endpoints`` registered, whichever server holds it."""
        wanted, out = set(endpoints), {}
        with self.Session() as db:
            for ep, objects in db.execute(select(Device.endpoint, Registration.objects).join(
                    Registration, Registration.id == Device.registration_id).where(Device.online.is_(True))):
                if ep in wanted:
                    paths = (Link(t, a).path for t, a in objects or ())
                    out[ep] = {p.object for p in paths if p is not None}
        return out

    # -- what the devices told us ---------------------------------------------------
    def set_capabilities(self, endpoint: str, caps: dict | None, error: str | None) -> None:
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == endpoint))
            if dev is not None:
                dev.capabilities, dev.capabilities_error = caps, error
                db.commit()

    def add_values(self, endpoint: str, values: list[tuple[str, object, float | None]], source: str) -> None:
        """Store reported values: ``(path, JSON value, time or None)`` each."""
        now = utcnow()
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == endpoint))
            if dev is None:
                return
            dev.last_seen = now
            db.add_all(DeviceValue(device_id=dev.id, path=p, value={"value": v}, source=source, time=t,
                                   received_at=now) for p, v, t in values)
            db.commit()

    def set_tags(self, project_id: int, endpoint: str, tags: list[str]) -> bool:
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == endpoint, Device.project_id == project_id))
            if dev is None:
                return False
            dev.tags = sorted(set(tags))
            db.commit()
            return True

    # -- the REST API's views -----------------------------------------------------------
    def list_devices(self, project_id: int) -> list[dict]:
        with self.Session() as db:
            rows = db.scalars(select(Device).where(Device.project_id == project_id).order_by(Device.endpoint))
            return [self._view(db, d, detail=False) for d in rows]

    def fleet(self, project_id: int) -> list[dict]:
        """Every device of the project with its tags and capabilities: what a deployment's selector reads."""
        with self.Session() as db:
            return [{"endpoint": d.endpoint, "online": d.online, "tags": list(d.tags or []),
                     "capabilities": d.capabilities, "capabilities_error": d.capabilities_error}
                    for d in db.scalars(select(Device).where(Device.project_id == project_id)
                                        .order_by(Device.endpoint))]

    def device(self, project_id: int, endpoint: str) -> dict | None:
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == endpoint, Device.project_id == project_id))
            return None if dev is None else self._view(db, dev, detail=True)

    def values(self, project_id: int, endpoint: str, limit: int = 100) -> list[dict] | None:
        with self.Session() as db:
            dev = db.scalar(select(Device).where(Device.endpoint == endpoint, Device.project_id == project_id))
            if dev is None:
                return None
            rows = db.scalars(select(DeviceValue).where(DeviceValue.device_id == dev.id)
                              .order_by(DeviceValue.id.desc()).limit(limit))
            return [{"path": r.path, "value": r.value["value"], "source": r.source, "time": r.time,
                     "received_at": _iso(r.received_at)} for r in rows]

    @staticmethod
    def _view(db, dev: Device, detail: bool) -> dict:
        reg = db.get(Registration, dev.registration_id) if dev.registration_id else None
        if reg is None and detail:
            reg = db.scalar(select(Registration).where(Registration.device_id == dev.id)
                            .order_by(Registration.registered_at.desc()).limit(1))
        caps = dev.capabilities or {}
        profile = caps.get("profile") or {}
        view = {"endpoint": dev.endpoint, "online": dev.online, "last_seen": _iso(dev.last_seen),
                "tags": list(dev.tags or []), "board": profile.get("board"), "core": profile.get("core"),
                "ram_bytes": profile.get("ram_bytes"),
                "installed": [s for s in caps.get("slots", ()) if s.get("module")]}
        if detail:
            project = db.get(Project, dev.project_id)
            view.update({
                "project": project.name if project else None,
                "registration": None if reg is None else {
                    "id": reg.id, "lwm2m_version": reg.lwm2m_version, "binding": reg.binding,
                    "lifetime_s": reg.lifetime_s, "address": reg.address, "server": reg.server_id,
                    "objects": [{"path": t, **a} for t, a in reg.objects],
                    "registered_at": _iso(reg.registered_at), "updated_at": _iso(reg.updated_at),
                    "ended_at": _iso(reg.ended_at), "end_reason": reg.end_reason},
                "capabilities": caps or None, "capabilities_error": dev.capabilities_error,
                "profile": caps.get("profile")})
        return view


def _iso(value) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"
