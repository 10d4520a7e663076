"""The database side of deployments: the ``deployments`` and ``deployment_devices`` tables (migrations
0004 and 0005), their views for the REST API and the console, and the leases that let several servers
share them (see :mod:`.deployments`).

Blocking calls: the runner calls them in worker threads. A lease is a holder and an expiry on a row,
taken with one conditional UPDATE (``... WHERE holder IS NULL OR holder = me OR expiry < now``): on
PostgreSQL the second of two racing servers re-reads the row once the first committed and takes
nothing; SQLite has one writer at a time. A holder's writes are fenced: they apply only while the row
still names it (the row is read ``FOR UPDATE`` on PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, or_, select, update

from ..service.db import Deployment, DeploymentDevice, utcnow

DEPLOYMENT_STATES = ("running", "paused", "succeeded", "failed", "cancelled", "rolled_back")
DEVICE_STATES = ("pending", "skipped", "transferring", "delivered", "installed", "active", "succeeded", "failed",
                 "rolled_back")
DONE = frozenset(("skipped", "succeeded", "failed", "rolled_back"))
IN_FLIGHT = frozenset(("transferring", "delivered", "installed"))
ANY = object()                  # a write not fenced by a holder (the REST API's operations)


def _iso(value) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def _free(holder, until, me: str, now: dt.datetime):
    """The lease held by ``holder`` until ``until`` may be taken by ``me``."""
    return or_(holder.is_(None), holder == me, until < now)


class DeploymentStore:
    """Blocking reads and writes of the two tables (the runner calls them in worker threads)."""

    def __init__(self, session_factory):
        self.Session = session_factory

    def create(self, project_id: int, module: dict, selector: dict, stages: list, criteria: dict,
               max_failure_ratio: float, block_size: int, rows: list[tuple[str, int | None, str]],
               owner: str | None = None, lease_s: float = 0.0, mode: str = "push",
               profile: dict | None = None, classes: list | None = None,
               modules: dict[str, str] | None = None) -> str:
        """A new running deployment and its device rows; ``classes`` and ``modules`` (endpoint ->
        module sha256) when a model is deployed per device class."""
        modules = modules or {}
        dep_id = uuid.uuid4().hex[:16]
        now = utcnow()
        with self.Session() as db:
            db.add(Deployment(id=dep_id, project_id=project_id, selector=selector, stages=stages, criteria=criteria,
                              max_failure_ratio=max_failure_ratio, block_size=block_size, mode=mode, profile=profile,
                              classes=classes,
                              state="running", stage=0,
                              message="", created_at=now, updated_at=now, owner=owner,
                              lease_until=now + dt.timedelta(seconds=lease_s) if owner else None, **module))
            db.flush()
            db.add_all(DeploymentDevice(deployment_id=dep_id, endpoint=ep, stage=stage,
                                        state="pending" if stage is not None else "skipped", reason=reason,
                                        activated=False, result_meaning="", blocks_done=0, bytes_done=0,
                                        module_sha256=modules.get(ep),
                                        updated_at=now, finished_at=None if stage is not None else now)
                       for ep, stage, reason in rows)
            db.commit()
        return dep_id

    def get(self, dep_id: str, project_id: int | None = None) -> Deployment | None:
        with self.Session() as db:
            dep = db.get(Deployment, dep_id)
            return dep if dep is not None and project_id in (None, dep.project_id) else None

    def devices(self, dep_id: str) -> list[DeploymentDevice]:
        with self.Session() as db:
            return list(db.scalars(select(DeploymentDevice).where(DeploymentDevice.deployment_id == dep_id)
                                   .order_by(DeploymentDevice.endpoint)))

    def device(self, dep_id: str, endpoint: str) -> DeploymentDevice | None:
        with self.Session() as db:
            return db.scalar(self._row(dep_id, endpoint))

    @staticmethod
    def _row(dep_id: str, endpoint: str):
        return select(DeploymentDevice).where(DeploymentDevice.deployment_id == dep_id,
                                              DeploymentDevice.endpoint == endpoint)

    def set(self, dep_id: str, as_owner=ANY, **changes) -> bool:
        """Change the deployment; with ``as_owner``, only while that server holds its lease (False: it
        does not, nothing changed)."""
        with self.Session() as db:
            dep = db.scalar(select(Deployment).where(Deployment.id == dep_id).with_for_update())
            if as_owner is not ANY and dep.owner != as_owner:
                return False
            for k, v in changes.items():
                setattr(dep, k, v)
            dep.updated_at = utcnow()
            if changes.get("state") in ("succeeded", "failed", "cancelled", "rolled_back"):
                dep.finished_at = dep.updated_at
                dep.owner = dep.lease_until = None
            db.commit()
            return True

    def set_device(self, dep_id: str, endpoint: str, as_driver=ANY, **changes) -> bool:
        """Change a device's row; with ``as_driver``, only while that server drives it (False: it does
        not, nothing changed)."""
        with self.Session() as db:
            row = db.scalar(self._row(dep_id, endpoint).with_for_update())
            if as_driver is not ANY and row.driver != as_driver:
                return False
            now = utcnow()
            for k, v in changes.items():
                setattr(row, k, v)
            if changes.get("state") == "transferring" and row.started_at is None:
                row.started_at = now
            row.updated_at = now
            if row.state in DONE:
                row.finished_at = now
            db.commit()
            return True

    # -- leases (see the module's docstring) ---------------------------------------------
    def take(self, dep_id: str, me: str, lease_s: float) -> str | None:
        """Take a running deployment's lease if it is free for ``me`` (nobody's, expired, or already
        ``me``'s): the previous owner ("" for none), or None when another server holds it."""
        now = utcnow()
        with self.Session() as db:
            before = db.scalar(select(Deployment.owner).where(Deployment.id == dep_id))
            taken = db.execute(update(Deployment).where(
                Deployment.id == dep_id, Deployment.state == "running",
                _free(Deployment.owner, Deployment.lease_until, me, now)).values(
                owner=me, lease_until=now + dt.timedelta(seconds=lease_s))).rowcount
            db.commit()
        return (before or "") if taken else None

    def renew(self, me: str, dep_ids: list[str], lease_s: float) -> set[str]:
        """Extend ``me``'s leases on ``dep_ids``; the ids still ``me``'s and running."""
        until = utcnow() + dt.timedelta(seconds=lease_s)
        mine = (Deployment.owner == me, Deployment.state == "running", Deployment.id.in_(dep_ids))
        with self.Session() as db:
            db.execute(update(Deployment).where(*mine).values(lease_until=until))
            kept = set(db.scalars(select(Deployment.id).where(*mine)))
            db.commit()
        return kept

    def orphans(self, me: str) -> list[str]:
        """Running deployments whose lease ``me`` may take."""
        with self.Session() as db:
            return list(db.scalars(select(Deployment.id).where(
                Deployment.state == "running", _free(Deployment.owner, Deployment.lease_until, me, utcnow()))
                .order_by(Deployment.created_at)))

    def drivable(self, me: str) -> list[tuple[str, str]]:
        """(deployment, endpoint) of the undone devices in the running stages that ``me`` may drive."""
        with self.Session() as db:
            return [tuple(r) for r in db.execute(
                select(DeploymentDevice.deployment_id, DeploymentDevice.endpoint)
                .join(Deployment, Deployment.id == DeploymentDevice.deployment_id)
                .where(Deployment.state == "running", DeploymentDevice.stage <= Deployment.stage,
                       DeploymentDevice.state.not_in(DONE),
                       _free(DeploymentDevice.driver, DeploymentDevice.driver_until, me, utcnow())))]

    def waiting(self, dep_id: str, stage: int) -> list[tuple[str, str | None, dt.datetime | None]]:
        """(endpoint, driver, driver_until) of the devices of ``stage`` not done yet (the owner polls this)."""
        with self.Session() as db:
            return [tuple(r) for r in db.execute(
                select(DeploymentDevice.endpoint, DeploymentDevice.driver, DeploymentDevice.driver_until).where(
                    DeploymentDevice.deployment_id == dep_id, DeploymentDevice.stage == stage,
                    DeploymentDevice.state.not_in(DONE)))]

    def claim(self, dep_id: str, endpoint: str, me: str, lease_s: float) -> bool:
        """Drive a device's row if it is free for ``me`` and not done."""
        now = utcnow()
        with self.Session() as db:
            running = select(Deployment.id).where(Deployment.id == dep_id, Deployment.state == "running")
            n = db.execute(update(DeploymentDevice).where(
                DeploymentDevice.deployment_id.in_(running), DeploymentDevice.endpoint == endpoint,
                DeploymentDevice.state.not_in(DONE),
                _free(DeploymentDevice.driver, DeploymentDevice.driver_until, me, now)).values(
                driver=me, driver_until=now + dt.timedelta(seconds=lease_s))).rowcount
            db.commit()
        return bool(n)

    def renew_rows(self, me: str, keys: list[tuple[str, str]], lease_s: float) -> set[tuple[str, str]]:
        """Extend ``me``'s claims on the rows ``keys``; those still ``me``'s, undone, of a running deployment."""
        until = utcnow() + dt.timedelta(seconds=lease_s)
        running = select(Deployment.id).where(Deployment.state == "running")
        mine = (DeploymentDevice.driver == me, DeploymentDevice.state.not_in(DONE),
                DeploymentDevice.deployment_id.in_(running),
                DeploymentDevice.deployment_id.in_({d for d, _ in keys}))
        with self.Session() as db:
            db.execute(update(DeploymentDevice).where(*mine).values(driver_until=until))
            held = {tuple(r) for r in db.execute(select(DeploymentDevice.deployment_id, DeploymentDevice.endpoint)
                                                 .where(*mine))}
            db.commit()
        return held & set(keys)

    def release(self, dep_id: str, endpoint: str | None = None, me: str | None = None) -> None:
        """Give up the claims on a deployment's rows (one row; only ``me``'s when given)."""
        cond = [DeploymentDevice.deployment_id == dep_id]
        if endpoint is not None:
            cond.append(DeploymentDevice.endpoint == endpoint)
        if me is not None:
            cond.append(DeploymentDevice.driver == me)
        with self.Session() as db:
            db.execute(update(DeploymentDevice).where(*cond).values(driver=None, driver_until=None))
            db.commit()

    # -- rollbacks of devices registered with another server ---------------------------------
    def want_rollback(self, dep_id: str, endpoints: list[str]) -> None:
        """Ask the servers the ``endpoints`` are registered with to roll them back."""
        with self.Session() as db:
            db.execute(update(DeploymentDevice).where(DeploymentDevice.deployment_id == dep_id,
                                                      DeploymentDevice.endpoint.in_(endpoints))
                       .values(rollback_wanted=True, driver=None, driver_until=None))
            db.commit()

    def rollbacks(self, me: str) -> list[tuple[str, str]]:
        """(deployment, endpoint) of the rollbacks asked for that ``me`` may take."""
        with self.Session() as db:
            return [tuple(r) for r in db.execute(
                select(DeploymentDevice.deployment_id, DeploymentDevice.endpoint).where(
                    DeploymentDevice.rollback_wanted.is_(True),
                    _free(DeploymentDevice.driver, DeploymentDevice.driver_until, me, utcnow())))]

    def rollbacks_left(self, dep_id: str) -> list[str]:
        """The endpoints of ``dep_id`` whose rollback no server has done yet."""
        with self.Session() as db:
            return list(db.scalars(select(DeploymentDevice.endpoint).where(
                DeploymentDevice.deployment_id == dep_id, DeploymentDevice.rollback_wanted.is_(True))))

    def claim_rollback(self, dep_id: str, endpoint: str, me: str, lease_s: float) -> bool:
        now = utcnow()
        with self.Session() as db:
            n = db.execute(update(DeploymentDevice).where(
                DeploymentDevice.deployment_id == dep_id, DeploymentDevice.endpoint == endpoint,
                DeploymentDevice.rollback_wanted.is_(True),
                _free(DeploymentDevice.driver, DeploymentDevice.driver_until, me, now)).values(
                driver=me, driver_until=now + dt.timedelta(seconds=lease_s))).rowcount
            db.commit()
        return bool(n)

    def release_all(self, me: str) -> None:
        """Shutdown: ``me``'s leases and claims are free at once for the other servers."""
        with self.Session() as db:
            db.execute(update(Deployment).where(Deployment.owner == me).values(lease_until=None, owner=None))
            db.execute(update(DeploymentDevice).where(DeploymentDevice.driver == me)
                       .values(driver=None, driver_until=None))
            db.commit()

    def fail_unclaimed(self, dep_id: str, endpoint: str, reason: str) -> bool:
        """Fail a device no server drives (its claim is free): it is registered nowhere."""
        now = utcnow()
        with self.Session() as db:
            n = db.execute(update(DeploymentDevice).where(
                DeploymentDevice.deployment_id == dep_id, DeploymentDevice.endpoint == endpoint,
                DeploymentDevice.state.not_in(DONE),
                or_(DeploymentDevice.driver.is_(None), DeploymentDevice.driver_until < now)).values(
                state="failed", reason=reason, updated_at=now, finished_at=now)).rowcount
            db.commit()
        return bool(n)

    def running(self) -> list[str]:
        with self.Session() as db:
            return list(db.scalars(select(Deployment.id).where(Deployment.state == "running")
                                   .order_by(Deployment.created_at)))

    def view(self, dep: Deployment, devices: bool = True) -> dict:
        with self.Session() as db:
            counts = dict(db.execute(select(DeploymentDevice.state, func.count()).where(
                DeploymentDevice.deployment_id == dep.id).group_by(DeploymentDevice.state)).all())
        out = {"id": dep.id, "state": dep.state, "stage": dep.stage, "stages": dep.stages,
               "module": {"sha256": dep.module_sha256, "size": dep.module_size, "name": dep.module_name,
                          "version": dep.module_version},
               "selector": dep.selector, "criteria": dep.criteria, "max_failure_ratio": dep.max_failure_ratio,
               "block_size": dep.block_size, "mode": dep.mode, "profile": dep.profile, "classes": dep.classes,
               "message": dep.message, "owner": dep.owner,
               "counts": {s: counts.get(s, 0) for s in DEVICE_STATES}, "total": sum(counts.values()),
               "created_at": _iso(dep.created_at), "updated_at": _iso(dep.updated_at),
               "finished_at": _iso(dep.finished_at)}
        if devices:
            out["devices"] = [{"endpoint": r.endpoint, "stage": r.stage, "state": r.state, "activated": r.activated,
                               "reason": r.reason, "update_result": r.update_result,
                               "result_meaning": r.result_meaning, "blocks_done": r.blocks_done,
                               "bytes_done": r.bytes_done, "inference_count": r.inference_count,
                               "driver": r.driver, "module_sha256": r.module_sha256 or dep.module_sha256,
                               "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at)}
                              for r in self.devices(dep.id)]
        return out

    def history(self, project_id: int, endpoint: str, limit: int = 100) -> list[dict]:
        """The device's part in the project's deployments, newest first: the module (name,
        version), the deployment, when its delivery started and ended, the row's state (``succeeded``,
        ``failed``, ``rolled_back``, ``skipped``, ...), whether the module was activated, and the
        reason or Update Result meaning. (Reads ``deployment_devices`` by endpoint without an index:
        a scan of the project's rows, fine for a page, not for a fleet-wide report.)"""
        with self.Session() as db:
            rows = db.execute(select(DeploymentDevice, Deployment).join(
                Deployment, Deployment.id == DeploymentDevice.deployment_id).where(
                Deployment.project_id == project_id, DeploymentDevice.endpoint == endpoint).order_by(
                Deployment.created_at.desc(), Deployment.id).limit(limit)).all()
        return [{"deployment": dep.id, "module": {"name": dep.module_name, "version": dep.module_version},
                 "created_at": _iso(dep.created_at), "started_at": _iso(r.started_at),
                 "finished_at": _iso(r.finished_at), "state": r.state, "activated": r.activated,
                 "update_result": r.update_result, "reason": r.reason or r.result_meaning}
                for r, dep in rows]

    def list(self, project_id: int, limit: int = 100) -> list[dict]:
        with self.Session() as db:
            deps = list(db.scalars(select(Deployment).where(Deployment.project_id == project_id)
                                   .order_by(Deployment.created_at.desc()).limit(limit)))
        return [self.view(d, devices=False) for d in deps]
