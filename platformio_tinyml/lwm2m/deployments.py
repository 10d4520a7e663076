"""Deployments: one signed module to a selection of devices, stage by stage, rolled back on failure.

A deployment is planned once, when it is created (:func:`plan`): the devices
the selector picks are sorted by endpoint name; those that cannot take the
module are ``skipped`` with the reason (offline, no object 9, no
capabilities, another executor ABI, kernels the firmware lacks, module
larger than the slot, arena larger than the RAM it leaves), the others get the
stage whose cumulative percentage first covers them. :class:`Deployments`
then runs each deployment as an asyncio task in the service process:

- a stage's devices are delivered to at once, through the server's
  :class:`~.delivery.Deliveries` (at most 32 transfers at a time, and never
  two to one device), and each delivery's progress is written to the
  database on every state change (and its block count at most every second);
- an ``active`` device must then meet the criteria: ``inferences`` more
  inferences on the TinyML object's counter, without a last error, within
  ``within_s`` seconds (0 inferences: activation is enough);
- when the failed devices of a stage are more than ``max_failure_ratio`` of
  the stage, the deployment stops (``failed``) and every device it activated,
  in any stage, is rolled back: Execute Deactivate (``/9/0/11``), which
  makes the device boot the module that ran before (or none, when there was
  none); later stages stay ``pending``, never delivered.

Everything lives in the ``deployments`` and ``deployment_devices`` tables
(migration 0004), so a restarted service resumes its ``running`` deployments
(:meth:`Deployments.resume`): a device that was mid-transfer gets its
delivery again, from the last block the database has acknowledged (the
device answers 4.08 with the block it expects when it holds less or more,
and the transfer goes on there), one that was ``active`` is checked against
the criteria again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

from sqlalchemy import func, select

from ..errors import TinyMLError
from ..module.firmware import KernelSet
from ..service.db import Deployment, DeploymentDevice, utcnow
from .delivery import DeliveryError
from .ids import LwM2MError, ObjectId, ResourcePath, SoftwareManagement as Sw, TinyML
from .selector import SelectorError

log = logging.getLogger("tinyml.service.lwm2m")

DEPLOYMENT_STATES = ("running", "paused", "succeeded", "failed", "cancelled", "rolled_back")
DEVICE_STATES = ("pending", "skipped", "transferring", "delivered", "installed", "active", "succeeded", "failed",
                 "rolled_back")
DONE = frozenset(("skipped", "succeeded", "failed", "rolled_back"))
IN_FLIGHT = frozenset(("transferring", "delivered", "installed"))
MAX_STAGES = 20


class DeploymentError(TinyMLError):
    """A deployment request or operation that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, what: str, status: int = 422, hint: str | None = None):
        self.status = status
        super().__init__(what, hint=hint)


# -- checking what the caller asked for -------------------------------------------------

def check_stages(stages) -> list[float]:
    """Cumulative percentages, increasing, the last one 100: ``[10, 50, 100]``."""
    if not isinstance(stages, list) or not stages or len(stages) > MAX_STAGES:
        raise SelectorError(f"stages: give a list of 1 to {MAX_STAGES} cumulative percentages ending with 100, "
                            "e.g. [10, 50, 100]")
    if any(isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 100 for s in stages):
        raise SelectorError("stages: every stage is a percentage above 0 and at most 100")
    if any(b <= a for a, b in zip(stages, stages[1:])) or stages[-1] != 100:
        raise SelectorError(f"stages {stages}: percentages are cumulative (each larger than the one before) and "
                            "the last is 100")
    return list(stages)


def check_criteria(criteria) -> dict:
    """``{"activated": true, "inferences": N, "within_s": T}`` with defaults 0 inferences and 60 s."""
    if criteria is None:
        criteria = {}
    if not isinstance(criteria, dict) or not set(criteria) <= {"activated", "inferences", "within_s"}:
        raise SelectorError('criteria: give {"activated": true, "inferences": N, "within_s": T}')
    if criteria.get("activated", True) is not True:
        raise SelectorError("criteria: activated must be true (a deployment activates the module it installs)")
    n, t = criteria.get("inferences", 0), criteria.get("within_s", 60)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10 ** 6:
        raise SelectorError("criteria: inferences must be a whole number from 0 to 1000000")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 86400:
        raise SelectorError("criteria: within_s must be a number of seconds above 0 and at most 86400")
    return {"activated": True, "inferences": n, "within_s": t}


def unfit_reason(header, size: int, caps: dict | None, capabilities_error: str | None) -> str:
    """Why a device with capabilities ``caps`` cannot take the module (``""``: it can): what it cannot
    run (executor ABI, kernels) before what does not fit (slot, arena)."""
    if not caps:
        return ("no capabilities (" + (capabilities_error or "the TinyML object was not read yet") + "): cannot "
                "check that the module fits")
    if header.abi and header.abi != caps.get("executor_abi"):
        return (f"module built for executor ABI {header.abi}, the device's firmware runs ABI "
                f"{caps.get('executor_abi')}")
    try:
        have = int(str(caps.get("kernel_set", "0")), 0)
    except ValueError:
        return f"kernel set {caps.get('kernel_set')!r} is not a number"
    lacking = header.kernel_mask & ~have
    if lacking:
        return "the device's firmware lacks kernel(s) " + ", ".join(KernelSet(lacking).names() or [hex(lacking)])
    if size > caps.get("slot_size", 0):
        return f"module of {size:,} bytes does not fit the device's {caps.get('slot_size', 0):,}-byte slot"
    ram = (caps.get("profile") or {}).get("ram_bytes") or 0
    if header.arena_bytes > ram:
        return f"module needs a {header.arena_bytes:,}-byte arena, the device leaves {ram:,} bytes"
    return ""


def plan(header, size: int, devices: list[dict], online: dict[str, set[int]], stages: list[float]) \
        -> list[tuple[str, int | None, str]]:
    """``(endpoint, stage or None, skip reason)`` per selected device (views with capabilities);
    ``online`` maps the registered endpoints to the objects they registered."""
    out, fit = [], []
    for dev in sorted(devices, key=lambda d: d["endpoint"]):
        ep = dev["endpoint"]
        if ep not in online:
            reason = "offline (not registered)"
        elif ObjectId.SOFTWARE_MANAGEMENT not in online[ep]:
            reason = "no Software Management object (9) registered"
        else:
            reason = unfit_reason(header, size, dev.get("capabilities"), dev.get("capabilities_error"))
        if reason:
            out.append((ep, None, reason))
        else:
            fit.append(ep)
    start = 0
    for k, pct in enumerate(stages):
        upto = len(fit) if pct >= 100 else min(len(fit), math.ceil(len(fit) * pct / 100))
        out += [(ep, k, "") for ep in fit[start:upto]]
        start = max(start, upto)
    return sorted(out)


# -- the database ----------------------------------------------------------------------

def _iso(value) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


class DeploymentStore:
    """Blocking reads and writes of the two tables (the runner calls them in worker threads)."""

    def __init__(self, session_factory):
        self.Session = session_factory

    def create(self, project_id: int, module: dict, selector: dict, stages: list, criteria: dict,
               max_failure_ratio: float, block_size: int, rows: list[tuple[str, int | None, str]]) -> str:
        dep_id = uuid.uuid4().hex[:16]
        now = utcnow()
        with self.Session() as db:
            db.add(Deployment(id=dep_id, project_id=project_id, selector=selector, stages=stages, criteria=criteria,
                              max_failure_ratio=max_failure_ratio, block_size=block_size, state="running", stage=0,
                              message="", created_at=now, updated_at=now, **module))
            db.flush()
            db.add_all(DeploymentDevice(deployment_id=dep_id, endpoint=ep, stage=stage,
                                        state="pending" if stage is not None else "skipped", reason=reason,
                                        activated=False, result_meaning="", blocks_done=0, bytes_done=0,
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

    def set(self, dep_id: str, **changes) -> None:
        with self.Session() as db:
            dep = db.get(Deployment, dep_id)
            for k, v in changes.items():
                setattr(dep, k, v)
            dep.updated_at = utcnow()
            if changes.get("state") in ("succeeded", "failed", "cancelled", "rolled_back"):
                dep.finished_at = dep.updated_at
            db.commit()

    def set_device(self, dep_id: str, endpoint: str, **changes) -> None:
        with self.Session() as db:
            row = db.scalar(select(DeploymentDevice).where(DeploymentDevice.deployment_id == dep_id,
                                                           DeploymentDevice.endpoint == endpoint))
            now = utcnow()
            for k, v in changes.items():
                setattr(row, k, v)
            if changes.get("state") == "transferring" and row.started_at is None:
                row.started_at = now
            row.updated_at = now
            if row.state in DONE:
                row.finished_at = now
            db.commit()

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
               "block_size": dep.block_size, "message": dep.message,
               "counts": {s: counts.get(s, 0) for s in DEVICE_STATES}, "total": sum(counts.values()),
               "created_at": _iso(dep.created_at), "updated_at": _iso(dep.updated_at),
               "finished_at": _iso(dep.finished_at)}
        if devices:
            out["devices"] = [{"endpoint": r.endpoint, "stage": r.stage, "state": r.state, "activated": r.activated,
                               "reason": r.reason, "update_result": r.update_result,
                               "result_meaning": r.result_meaning, "blocks_done": r.blocks_done,
                               "bytes_done": r.bytes_done, "inference_count": r.inference_count,
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


# -- running them -------------------------------------------------------------------------

class Deployments:
    """The deployments this service process runs (one task each), on the LwM2M server's loop."""

    def __init__(self, server, deliveries, session_factory, blobs, poll_s: float = 0.2,
                 online_wait_s: float = 60.0, rollback_wait_s: float = 30.0):
        self.server, self.deliveries, self.blobs = server, deliveries, blobs
        self.store = DeploymentStore(session_factory)
        self.poll_s, self.online_wait_s, self.rollback_wait_s = poll_s, online_wait_s, rollback_wait_s
        self.tasks: dict[str, asyncio.Task] = {}
        self._stopping: set[asyncio.Task] = set()       # deliveries cancelled with their deployment's runner

    async def _db(self, fn, *args, **kw):
        return await asyncio.to_thread(fn, *args, **kw)

    # -- lifecycle ------------------------------------------------------------------
    async def resume(self) -> None:
        """At service start: continue every deployment left ``running``."""
        for dep_id in await self._db(self.store.running):
            log.info("deployment %s: resumed after a restart", dep_id)
            self.start(dep_id)

    def start(self, dep_id: str) -> None:
        if dep_id in self.tasks and not self.tasks[dep_id].done():
            return
        self.tasks[dep_id] = asyncio.get_running_loop().create_task(self._run(dep_id))

    async def stop(self) -> None:
        """Service shutdown: stop the tasks, leave the states (``running`` ones resume at the next start)."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _halt(self, dep_id: str) -> None:
        """Stop the runner and wait until its deliveries have stopped too (a resume may start them again)."""
        task = self.tasks.pop(dep_id, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        stopping, self._stopping = self._stopping, set()
        await asyncio.gather(*stopping, return_exceptions=True)

    # -- the operations of the REST API ------------------------------------------------
    async def cancel(self, dep: Deployment) -> None:
        """Stop: pending devices stay pending, done ones as they are, transfers stop (``failed``)."""
        self._must_be(dep, ("running", "paused"), "cancel")
        await self._halt(dep.id)
        for row in await self._db(self.store.devices, dep.id):
            if row.state in IN_FLIGHT:
                await self._db(self.store.set_device, dep.id, row.endpoint, state="failed",
                               reason="deployment cancelled during the delivery")
        await self._db(self.store.set, dep.id, state="cancelled", message="cancelled by the API")

    async def pause(self, dep: Deployment) -> None:
        self._must_be(dep, ("running",), "pause")
        await self._halt(dep.id)
        await self._db(self.store.set, dep.id, state="paused", message="paused: POST .../resume continues it "
                                                                      "(a cut transfer at its last recorded block)")

    async def resume_one(self, dep: Deployment) -> None:
        self._must_be(dep, ("paused",), "resume")
        await self._db(self.store.set, dep.id, state="running", message="resumed")
        self.start(dep.id)

    async def rollback(self, dep: Deployment) -> int:
        """Stop it if it runs, and roll back every device it activated; the number rolled back."""
        self._must_be(dep, ("running", "paused", "succeeded", "failed", "cancelled"), "roll back")
        await self._halt(dep.id)
        n = await self._roll_back_all(dep)
        await self._db(self.store.set, dep.id, state="rolled_back",
                       message=f"rolled back by the API: {n} device(s) run their previous module again")
        return n

    @staticmethod
    def _must_be(dep: Deployment, states: tuple, what: str) -> None:
        if dep.state not in states:
            raise DeploymentError(f"deployment {dep.id} is {dep.state}: it cannot {what} (only when "
                                  f"{' or '.join(states)})", status=409)

    # -- the runner ---------------------------------------------------------------------
    async def _run(self, dep_id: str) -> None:
        try:
            await self._stages(dep_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:          # our bug: the deployment stops with a line saying so, the service goes on
            log.exception("deployment %s: internal error", dep_id)
            await self._db(self.store.set, dep_id, state="failed", message=f"internal error: {e}"[:2000])

    async def _stages(self, dep_id: str) -> None:
        dep = await self._db(self.store.get, dep_id)
        module = await self._db(self.blobs.get, dep.module_sha256)
        for k in range(dep.stage, len(dep.stages)):
            rows = [r for r in await self._db(self.store.devices, dep_id) if r.stage == k]
            await self._db(self.store.set, dep_id, stage=k, message=f"stage {k + 1} of {len(dep.stages)} "
                           f"({dep.stages[k]:g} %): {len(rows)} device(s)")
            await asyncio.gather(*(self._device(dep, r, module) for r in rows if r.state not in DONE))
            rows = [r for r in await self._db(self.store.devices, dep_id) if r.stage == k]
            failed = sum(r.state == "failed" for r in rows)
            if rows and failed / len(rows) > dep.max_failure_ratio:
                n = await self._roll_back_all(dep)
                first = next(r for r in rows if r.state == "failed")
                msg = (f"stage {k + 1}: {failed} of {len(rows)} device(s) failed, more than max_failure_ratio "
                       f"{dep.max_failure_ratio:g} (first: '{first.endpoint}': {first.reason}); {n} activated "
                       "device(s) rolled back, later stages not started")
                log.info("deployment %s: %s", dep_id, msg)
                await self._db(self.store.set, dep_id, state="failed", message=msg[:2000])
                return
        done = await self._db(self.store.devices, dep_id)
        ok = sum(r.state == "succeeded" for r in done)
        await self._db(self.store.set, dep_id, state="succeeded",
                       message=f"{ok} device(s) run module {dep.module_name} v{dep.module_version}, "
                               f"{sum(r.state == 'skipped' for r in done)} skipped, "
                               f"{sum(r.state == 'failed' for r in done)} failed")

    async def _device(self, dep: Deployment, row: DeploymentDevice, module: bytes) -> None:
        """Deliver to one device and check the criteria; never raises but CancelledError."""
        ep, set_row = row.endpoint, self.store.set_device
        try:
            if row.state != "active":
                if not await self._online(ep):
                    await self._db(set_row, dep.id, ep, state="failed", reason=f"offline: not registered within "
                                   f"{self.online_wait_s:g} s")
                    return
                base = await self._counter(ep)
                resume_at = row.bytes_done if row.state == "transferring" else 0
                if resume_at:
                    log.info("deployment %s: the transfer to '%s' goes on at byte %d", dep.id, ep, resume_at)
                await self._db(set_row, dep.id, ep, state="transferring", inference_base=base)
                st = await self._deliver(dep, ep, module, resume_at)
                fields = dict(update_result=st.update_result, result_meaning=st.result_meaning,
                              blocks_done=st.blocks_done, bytes_done=st.bytes_done)
                if st.state != "active":
                    activated = st.update_result is not None and "after Activate" in st.message
                    await self._db(set_row, dep.id, ep, state="failed", reason=st.message, activated=activated,
                                   **fields)
                    return
                await self._db(set_row, dep.id, ep, state="active", activated=True, reason="",
                               inference_count=st.inference_count, **fields)
            else:
                base = row.inference_base
            why, count = await self._criteria(dep.criteria, ep, base)
            await self._db(set_row, dep.id, ep, state="failed" if why else "succeeded", reason=why,
                           inference_count=count)
        except DeliveryError as e:
            await self._db(set_row, dep.id, ep, state="failed", reason=str(e))
        except Exception as e:        # our bug: this device fails with the line, the others go on
            log.exception("deployment %s: internal error on '%s'", dep.id, ep)
            await self._db(set_row, dep.id, ep, state="failed", reason=f"internal error: {e}"[:2000])

    async def _online(self, endpoint: str) -> bool:
        deadline = time.monotonic() + self.online_wait_s
        while endpoint not in self.server.regs:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)
        return True

    async def _deliver(self, dep: Deployment, endpoint: str, module: bytes, resume_at: int = 0):
        """The delivery's final state; its progress is persisted while it runs."""
        st = self.deliveries.start(endpoint, module, max_block=dep.block_size,     # DeliveryError: one runs
                                   start_offset=resume_at)
        task = self.deliveries.tasks[endpoint]
        shown, written = (st.state, st.blocks_done), time.monotonic()
        while not task.done():
            try:
                await asyncio.wait({task}, timeout=self.poll_s)
            except asyncio.CancelledError:        # the runner stops (pause, cancel, shutdown): so does the transfer
                task.cancel()
                self._stopping.add(task)
                raise
            now = (st.state, st.blocks_done)
            if now != shown and st.state not in ("failed", "active") and \
                    (now[0] != shown[0] or time.monotonic() - written >= 1.0):
                await self._db(self.store.set_device, dep.id, endpoint, state=st.state, blocks_done=st.blocks_done,
                               bytes_done=st.bytes_done)
                shown, written = now, time.monotonic()
        return task.result()

    async def _counter(self, endpoint: str) -> int | None:
        values = await self._tinyml(endpoint)
        return None if values is None else values.get(TinyML.INFERENCE_COUNT)

    async def _tinyml(self, endpoint: str) -> dict | None:
        tml = self.server.defs.tinyml_object_id
        try:
            values = await self.server.read(endpoint, ResourcePath(tml, 0))
        except LwM2MError:
            return None
        return {p.resource: v for p, v in values.items() if p.instance == 0 and p.resource_instance is None}

    async def _criteria(self, criteria: dict, endpoint: str, base: int | None) -> tuple[str, int | None]:
        """("", counter) when the device ran ``inferences`` more inferences without error in time; else why."""
        need, within = criteria.get("inferences", 0), criteria.get("within_s", 60)
        if not need:
            return "", None
        deadline, count, base = time.monotonic() + within, None, base or 0
        while True:
            values = await self._tinyml(endpoint)
            if values is not None:
                count, error = values.get(TinyML.INFERENCE_COUNT), str(values.get(TinyML.LAST_ERROR) or "")
                if error:
                    return f"the device reports an inference error after activation: {error}", count
                if count is not None and count - base >= need:
                    return "", count
            if time.monotonic() > deadline:
                seen = "no inference counter read" if count is None else f"{count - base} inference(s)"
                return (f"criteria not met: {seen} of the {need} required within {within:g} s after activation",
                        count)
            await asyncio.sleep(min(1.0, within / 10))

    # -- rollback -------------------------------------------------------------------------
    async def _roll_back_all(self, dep: Deployment) -> int:
        rows = [r for r in await self._db(self.store.devices, dep.id) if r.activated and r.state != "rolled_back"]
        done = await asyncio.gather(*(self._roll_back(dep, r.endpoint) for r in rows))
        return sum(done)

    async def _sw(self, endpoint: str) -> dict:
        values = await self.server.read(endpoint, ResourcePath(ObjectId.SOFTWARE_MANAGEMENT, 0))
        return {p.resource: v for p, v in values.items()}

    async def _roll_back(self, dep: Deployment, endpoint: str) -> bool:
        """Execute Deactivate (/9/0/11): the device boots the module that ran before this one. Only
        while object 9 still holds this deployment's package: a module delivered later is not ours to
        roll back (the row says so instead)."""
        deactivate = ResourcePath(ObjectId.SOFTWARE_MANAGEMENT, 0, Sw.DEACTIVATE)
        ours = (dep.module_name, str(dep.module_version))
        deadline, set_row = time.monotonic() + self.rollback_wait_s, self.store.set_device
        while True:
            try:
                v = await self._sw(endpoint)
                held = (str(v.get(Sw.PKG_NAME) or ""), str(v.get(Sw.PKG_VERSION) or ""))
                if held != ours:
                    await self._db(set_row, dep.id, endpoint, reason=f"not rolled back: the device's object 9 now "
                                   f"holds {held[0] or '?'} v{held[1] or '?'}, delivered after this deployment")
                    return False
                if v.get(Sw.ACTIVATION_STATE) is True:
                    await self.server.execute(endpoint, deactivate)
                    if (await self._sw(endpoint)).get(Sw.ACTIVATION_STATE) is True:
                        raise LwM2MError(f"device '{endpoint}' still reports the module active after Deactivate")
                break
            except LwM2MError as e:
                if getattr(e, "status", None) not in (409, 424) or time.monotonic() > deadline:
                    log.info("deployment %s: rollback of '%s' failed: %s", dep.id, endpoint, e)
                    await self._db(set_row, dep.id, endpoint, reason=f"rollback failed: {e}; Execute /9/0/11 on "
                                                                     "the device once it answers"[:2000])
                    return False
                await asyncio.sleep(1.0)
        try:
            await self.server._read_capabilities(self.server._reg(endpoint))   # its slots as they are now
        except LwM2MError:
            pass
        await self._db(set_row, dep.id, endpoint, state="rolled_back",
                       reason="rolled back: Deactivate made the device run its previous module")
        return True
