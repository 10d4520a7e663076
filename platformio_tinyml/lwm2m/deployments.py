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
(migrations 0004 and 0005, :mod:`.deployment_store`), so a restarted service resumes its ``running``
deployments (:meth:`Deployments.resume`): a device that was mid-transfer gets
its delivery again, from the last block the database has acknowledged (the
device answers 4.08 with the block it expects when it holds less or more,
and the transfer goes on there), one that was ``active`` is checked against
the criteria again.

Several servers may share the database (PostgreSQL), each with its own LwM2M
port. Two kinds of lease, each a row's holder and an expiry that its holder
renews every second (every ``lease_s / 3`` when that is shorter), taken with one
conditional UPDATE (``... WHERE holder IS NULL OR holder = me OR expiry <
now``: on PostgreSQL the second of two racing servers re-reads the row and
takes nothing; SQLite has one writer), decide who does what:

- the **owner** of a deployment runs its stages: it opens a stage, waits
  until every device of the stage is done (whoever delivered to it), fails a
  device no server has claimed for ``online_wait_s`` (offline everywhere),
  judges the failure ratio and rolls back (a device registered with another
  server through that server: the row's ``rollback_wanted`` flag, which its
  watcher takes);
- the **driver** of a device row is the server the device is registered to
  (requests must leave from the socket it registered to): each server's
  watcher claims the undone rows of the running stages whose devices are
  registered with it, and delivers and checks the criteria as above.

Every write of a holder is fenced (it applies only while the row still names
that holder), so a server that lost its lease (it stalled, or the deployment
was paused or cancelled through another server) changes nothing. When a
server dies, its leases run out after ``lease_s``; its devices register with
another server, whose watcher claims their rows and resumes each transfer at
its recorded block, and which takes the deployment's lease and finishes it.
A server restarted under the same id takes its own leases back at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import time

from ..errors import TinyMLError
from ..module.firmware import KernelSet
from ..module.kernels import Abi
from ..service.db import Deployment, DeploymentDevice, utcnow
from .delivery import DeliveryError
from .deployment_store import DONE, IN_FLIGHT, DeploymentStore
from .ids import LwM2MError, ObjectId, ResourcePath, SoftwareManagement as Sw, TinyML
from .selector import SelectorError

MAX_STAGES = 20

log = logging.getLogger("tinyml.service.lwm2m")


class _Lost(Exception):
    """This server no longer holds the lease it wrote under: it stops, leaving the row to the holder."""


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


# the executor ABI of a core of this many bits
ABI_OF_WORD_BITS = {32: int(Abi.ILP32_LE), 64: int(Abi.LP64_LE)}


def explicit_unfit_reason(header, size: int, profile: dict) -> str:
    """Why a device planned by an explicit profile (it has no TinyML object) cannot take the module:
    only what the profile tells (executor ABI from the word size, module in flash, arena in RAM);
    the kernels and the slot are checked by the device's loader (Update Result 54, 57)."""
    board = profile.get("board", "?")
    abi = ABI_OF_WORD_BITS.get(profile.get("word_bits"))
    if header.abi and header.abi != abi:
        return (f"module built for executor ABI {header.abi}, the explicit profile '{board}' is a "
                f"{profile.get('word_bits')}-bit core" + (f" (ABI {abi})" if abi else " (no module executor)"))
    if size > profile.get("flash_bytes", 0):
        return f"module of {size:,} bytes is larger than the explicit profile '{board}''s flash"
    if header.arena_bytes > profile.get("ram_bytes", 0):
        return (f"module needs a {header.arena_bytes:,}-byte arena, the explicit profile '{board}' has "
                f"{profile.get('ram_bytes', 0):,} bytes of RAM")
    return ""


def unfit_reason(header, size: int, caps: dict | None, capabilities_error: str | None,
                 explicit: dict | None = None) -> str:
    """Why a device with capabilities ``caps`` cannot take the module (``""``: it can): what it cannot
    run (executor ABI, kernels) before what does not fit (slot, arena). A device without
    capabilities is planned by ``explicit`` (a profile's dict) when the deployment gives one."""
    if not caps and explicit:
        return explicit_unfit_reason(header, size, explicit)
    if not caps:
        return ("no capabilities (" + (capabilities_error or "the TinyML object was not read yet") + "): cannot "
                "check that the module fits; give the deployment a target or profile for such devices")
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


def plan(header, size: int, devices: list[dict], online: dict[str, set[int]], stages: list[float],
         explicit: dict | None = None, per_device: dict | None = None) -> list[tuple[str, int | None, str]]:
    """``(endpoint, stage or None, skip reason)`` per selected device (views with capabilities);
    ``online`` maps the registered endpoints to the objects they registered; ``explicit`` (a
    profile's dict) plans the devices without capabilities (no TinyML object). ``per_device``
    (a model deployed per device class): endpoint -> its class's ``(header, size)``, or the
    reason its class has no module; it replaces ``header`` and ``size`` for those devices."""
    out, fit = [], []
    for dev in sorted(devices, key=lambda d: d["endpoint"]):
        ep = dev["endpoint"]
        if ep not in online:
            reason = "offline (not registered)"
        elif ObjectId.SOFTWARE_MANAGEMENT not in online[ep]:
            reason = "no Software Management object (9) registered"
        else:
            mod = (per_device or {}).get(ep, (header, size))
            reason = mod if isinstance(mod, str) else \
                unfit_reason(*mod, dev.get("capabilities"), dev.get("capabilities_error"), explicit)
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


# -- running them -------------------------------------------------------------------------

class Deployments:
    """The deployments this service process runs, on the LwM2M server's loop: the stage runners of
    those whose lease it holds, and the deliveries to the devices registered with it."""

    def __init__(self, server, deliveries, session_factory, blobs, lease_s: float = 15.0, poll_s: float = 0.2,
                 online_wait_s: float = 60.0, rollback_wait_s: float = 30.0):
        self.server, self.deliveries, self.blobs = server, deliveries, blobs
        self.store = DeploymentStore(session_factory)
        self.me, self.lease_s = server.id, lease_s
        self.poll_s, self.online_wait_s, self.rollback_wait_s = poll_s, online_wait_s, rollback_wait_s
        self.tick_s = min(1.0, lease_s / 3)
        self.tasks: dict[str, asyncio.Task] = {}                    # stage runners (we own the deployment)
        self.drives: dict[tuple[str, str], asyncio.Task] = {}       # (deployment, endpoint) we deliver to
        self.undoing: dict[tuple[str, str], asyncio.Task] = {}      # rollbacks another server's owner asked for
        self._stopping: set[asyncio.Task] = set()       # deliveries cancelled with their deployment's runner
        self._watcher: asyncio.Task | None = None
        self._kick = asyncio.Event()
        self._modules: dict[str, bytes] = {}
        self._halting: set[str] = set()                 # deployments the REST API is stopping here

    async def _db(self, fn, *args, **kw):
        return await asyncio.to_thread(fn, *args, **kw)

    # -- lifecycle ------------------------------------------------------------------
    async def resume(self) -> None:
        """At service start: take back this server's own leases (it was restarted), then keep watching
        the database for leases to take and devices of this server to deliver to."""
        await self._tick()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def start(self, dep_id: str) -> None:
        """Run the stages of ``dep_id``, whose lease this server holds."""
        if dep_id in self.tasks and not self.tasks[dep_id].done():
            return
        self._spawn(self.tasks, dep_id, self._run(dep_id))
        self._kick.set()

    async def stop(self) -> None:
        """Service shutdown: stop the tasks, leave the states, free the leases (``running`` deployments
        go on with another server, or here at the next start)."""
        tasks = [t for t in (self._watcher, *self.tasks.values(), *self.drives.values(), *self.undoing.values())
                 if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._stopping, return_exceptions=True)
        try:
            await self._db(self.store.release_all, self.me)
        except Exception as e:        # the database is gone too: the leases run out by themselves
            log.warning("deployments: leases of '%s' not released (%s); they expire in %g s", self.me,
                        " ".join(str(e).split())[:200], self.lease_s)

    async def _halt(self, dep_id: str) -> None:
        """Stop the runner and this server's deliveries of ``dep_id``, and wait until they stopped (a
        resume may start them again)."""
        tasks = [t for t in (self.tasks.pop(dep_id, None), *(self.drives.pop(k) for k in list(self.drives)
                                                              if k[0] == dep_id)) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopping, self._stopping = self._stopping, set()
        await asyncio.gather(*stopping, return_exceptions=True)

    # -- the leases -------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), self.tick_s)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                await self._tick()
            except Exception as e:        # the database is away for a moment: the leases last lease_s
                log.warning("deployments: lease renewal of '%s' failed: %s", self.me, " ".join(str(e).split())[:300])

    async def _tick(self) -> None:
        """Renew what this server holds (and stop what it lost), take the free deployments' leases, and
        claim the undone devices registered here."""
        if self.tasks:
            kept = await self._db(self.store.renew, self.me, list(self.tasks), self.lease_s)
            for dep_id in [d for d in self.tasks if d not in kept]:
                log.info("deployment %s: no longer ours (another server took the lease, or it stopped running)",
                         dep_id)
                self.tasks.pop(dep_id).cancel()
        for dep_id in await self._db(self.store.orphans, self.me):
            if dep_id in self.tasks or dep_id in self._halting:
                continue
            before = await self._db(self.store.take, dep_id, self.me, self.lease_s)
            if before is None:
                continue
            log.info("deployment %s: %s", dep_id, "resumed after a restart" if before == self.me else
                     "resumed (no server held it)" if not before else
                     f"taken over from server '{before}' (its lease ran out)")
            self.start(dep_id)
        if self.drives:
            kept = await self._db(self.store.renew_rows, self.me, list(self.drives), self.lease_s)
            for key in [k for k in self.drives if k not in kept]:
                self.drives.pop(key).cancel()
        for key in await self._db(self.store.rollbacks, self.me):
            if key not in self.undoing and key[1] in self.server.regs and \
                    await self._db(self.store.claim_rollback, *key, self.me, self.rollback_wait_s + self.lease_s):
                self._spawn(self.undoing, key, self._undo(*key))
        for key in await self._db(self.store.drivable, self.me):
            if key not in self.drives and key[1] in self.server.regs and key[0] not in self._halting and \
                    await self._db(self.store.claim, *key, self.me, self.lease_s):
                self._spawn(self.drives, key, self._drive(*key))

    @staticmethod
    def _spawn(tasks: dict, key, coro) -> None:
        """Run ``coro`` as ``tasks[key]``, which it leaves when it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        tasks[key] = task
        task.add_done_callback(lambda t: tasks.pop(key, None) if tasks.get(key) is t else None)

    async def _set(self, dep_id: str, **changes) -> None:
        """A write of the stage runner: only while this server owns the deployment."""
        if not await self._db(self.store.set, dep_id, as_owner=self.me, **changes):
            raise _Lost(dep_id)

    async def _set_row(self, dep_id: str, endpoint: str, **changes) -> None:
        """A write of a delivery: only while this server drives the device's row."""
        if not await self._db(self.store.set_device, dep_id, endpoint, as_driver=self.me, **changes):
            raise _Lost(dep_id, endpoint)

    # -- the operations of the REST API ------------------------------------------------
    async def cancel(self, dep: Deployment) -> None:
        """Stop: pending devices stay pending, done ones as they are, transfers stop (``failed``)."""
        self._must_be(dep, ("running", "paused"), "cancel")
        await self._stop(dep.id, state="cancelled", message="cancelled by the API")
        for row in await self._db(self.store.devices, dep.id):
            if row.state in IN_FLIGHT:
                await self._db(self.store.set_device, dep.id, row.endpoint, state="failed",
                               reason="deployment cancelled during the delivery")

    async def pause(self, dep: Deployment) -> None:
        self._must_be(dep, ("running",), "pause")
        await self._stop(dep.id, state="paused", owner=None, lease_until=None,
                         message="paused: POST .../resume continues it (a cut transfer at its last recorded block)")

    async def resume_one(self, dep: Deployment) -> None:
        self._must_be(dep, ("paused",), "resume")
        await self._db(self.store.set, dep.id, state="running", message="resumed", owner=self.me,
                       lease_until=utcnow() + dt.timedelta(seconds=self.lease_s))
        self.start(dep.id)

    async def rollback(self, dep: Deployment) -> int:
        """Stop it if it runs, and roll back every device it activated; the number rolled back."""
        self._must_be(dep, ("running", "paused", "succeeded", "failed", "cancelled"), "roll back")
        # paused while the devices are rolled back: no server takes it up meanwhile
        await self._stop(dep.id, message="rolling back (API)",
                         **({"state": "paused", "owner": None, "lease_until": None} if dep.state == "running" else {}))
        n = await self._roll_back_all(dep)
        await self._db(self.store.set, dep.id, state="rolled_back",
                       message=f"rolled back by the API: {n} device(s) run their previous module again")
        return n

    async def _stop(self, dep_id: str, **changes) -> None:
        """The REST API stops a deployment: its new state first (no server claims its devices again,
        and every holder's writes are fenced off), then this server's runner and deliveries stop;
        another server's stop at its next renewal."""
        self._halting.add(dep_id)
        try:
            await self._db(self.store.set, dep_id, **changes)
            await self._db(self.store.release, dep_id)
            await self._halt(dep_id)
        finally:
            self._halting.discard(dep_id)

    @staticmethod
    def _must_be(dep: Deployment, states: tuple, what: str) -> None:
        if dep.state not in states:
            raise DeploymentError(f"deployment {dep.id} is {dep.state}: it cannot {what} (only when "
                                  f"{' or '.join(states)})", status=409)

    # -- the stage runner (the owner) ---------------------------------------------------
    async def _run(self, dep_id: str) -> None:
        try:
            await self._stages(dep_id)
        except asyncio.CancelledError:
            raise
        except _Lost:
            log.info("deployment %s: lease lost, the stages go on with its new owner", dep_id)
        except Exception as e:          # our bug: the deployment stops with a line saying so, the service goes on
            log.exception("deployment %s: internal error", dep_id)
            await self._db(self.store.set, dep_id, as_owner=self.me, state="failed",
                           message=f"internal error: {e}"[:2000])

    async def _stages(self, dep_id: str) -> None:
        dep = await self._db(self.store.get, dep_id)
        for k in range(dep.stage, len(dep.stages)):
            rows = [r for r in await self._db(self.store.devices, dep_id) if r.stage == k]
            await self._set(dep_id, stage=k, message=f"stage {k + 1} of {len(dep.stages)} "
                            f"({dep.stages[k]:g} %): {len(rows)} device(s)")
            rows = await self._stage_done(dep, k)
            failed = sum(r.state == "failed" for r in rows)
            if rows and failed / len(rows) > dep.max_failure_ratio:
                n = await self._roll_back_all(dep)
                first = next(r for r in rows if r.state == "failed")
                msg = (f"stage {k + 1}: {failed} of {len(rows)} device(s) failed, more than max_failure_ratio "
                       f"{dep.max_failure_ratio:g} (first: '{first.endpoint}': {first.reason}); {n} activated "
                       "device(s) rolled back, later stages not started")
                log.info("deployment %s: %s", dep_id, msg)
                await self._set(dep_id, state="failed", message=msg[:2000])
                return
        done = await self._db(self.store.devices, dep_id)
        ok = sum(r.state == "succeeded" for r in done)
        await self._set(dep_id, state="succeeded",
                        message=f"{ok} device(s) run module {dep.module_name} v{dep.module_version}, "
                                f"{sum(r.state == 'skipped' for r in done)} skipped, "
                                f"{sum(r.state == 'failed' for r in done)} failed")

    async def _stage_done(self, dep: Deployment, k: int) -> list[DeploymentDevice]:
        """Wait until every device of stage ``k`` is done, wherever it is registered; fail those no
        server claimed for ``online_wait_s`` (registered nowhere). The stage's rows."""
        self._kick.set()                 # claim this server's devices now
        unclaimed: dict[str, float] = {}
        while waiting := await self._db(self.store.waiting, dep.id, k):
            now, t = utcnow(), time.monotonic()
            for endpoint, driver, until in waiting:
                if driver is not None and until is not None and until >= now:
                    unclaimed.pop(endpoint, None)
                elif t - unclaimed.setdefault(endpoint, t) > self.online_wait_s:
                    await self._db(self.store.fail_unclaimed, dep.id, endpoint, f"offline: not registered "
                                   f"with any server within {self.online_wait_s:g} s")
            await asyncio.sleep(max(self.poll_s, 0.5))
        return [r for r in await self._db(self.store.devices, dep.id) if r.stage == k]

    # -- a device's delivery (the server it is registered to) ------------------------------
    async def _drive(self, dep_id: str, endpoint: str) -> None:
        dep, row = await self._db(self.store.get, dep_id), await self._db(self.store.device, dep_id, endpoint)
        if dep is None or dep.state != "running" or row is None or row.state in DONE:
            await self._db(self.store.release, dep_id, endpoint, self.me)
            return
        sha = row.module_sha256 or dep.module_sha256          # its device class's module, or the one module
        if sha not in self._modules:
            if len(self._modules) >= 16:
                self._modules.clear()
            self._modules[sha] = await self._db(self.blobs.get, sha)
        await self._device(dep, row, self._modules[sha])

    async def _device(self, dep: Deployment, row: DeploymentDevice, module: bytes) -> None:
        """Deliver to one device and check the criteria; never raises but CancelledError."""
        ep, set_row = row.endpoint, functools.partial(self._set_row, dep.id)
        try:
            if row.state != "active":
                base = await self._counter(ep)
                resume_at = row.bytes_done if row.state == "transferring" else 0
                if resume_at:
                    log.info("deployment %s: the transfer to '%s' goes on at byte %d", dep.id, ep, resume_at)
                await set_row(ep, state="transferring", inference_base=base)
                st = await self._deliver(dep, ep, module, resume_at)
                fields = dict(update_result=st.update_result, result_meaning=st.result_meaning,
                              blocks_done=st.blocks_done, bytes_done=st.bytes_done)
                if st.state != "active" and ep not in self.server.regs:
                    await self._left(dep, ep, st.bytes_done, fields)
                    return
                if st.state != "active":
                    activated = st.update_result is not None and "after Activate" in st.message
                    await set_row(ep, state="failed", reason=st.message, activated=activated, **fields)
                    return
                await set_row(ep, state="active", activated=True, reason="", inference_count=st.inference_count,
                              **fields)
            else:
                base = row.inference_base
            why, count = await self._criteria(dep.criteria, ep, base)
            if why and ep not in self.server.regs:
                await self._left(dep, ep, None, {})
                return
            await set_row(ep, state="failed" if why else "succeeded", reason=why, inference_count=count)
        except _Lost:
            log.info("deployment %s: '%s' is no longer ours to deliver to", dep.id, ep)
        except DeliveryError as e:      # a fenced write: nothing when the row is no longer ours
            await self._db(self.store.set_device, dep.id, ep, as_driver=self.me, state="failed", reason=str(e))
        except Exception as e:        # our bug: this device fails with the line, the others go on
            log.exception("deployment %s: internal error on '%s'", dep.id, ep)
            await self._db(self.store.set_device, dep.id, ep, as_driver=self.me, state="failed",
                           reason=f"internal error: {e}"[:2000])

    async def _left(self, dep: Deployment, endpoint: str, at: int | None, fields: dict) -> None:
        """The device left this server during its delivery (it registered elsewhere, or its lifetime
        ran out): its row stays where it was, free for the server it registers with next."""
        log.info("deployment %s: '%s' left this server%s: its row is free for the server it registers with",
                 dep.id, endpoint, "" if at is None else f" at byte {at}")
        if fields:
            await self._set_row(dep.id, endpoint, **fields)
        await self._db(self.store.release, dep.id, endpoint, self.me)

    async def _deliver(self, dep: Deployment, endpoint: str, module: bytes, resume_at: int = 0):
        """The delivery's final state; its progress is persisted while it runs."""
        st = self.deliveries.start(endpoint, module, max_block=dep.block_size,     # DeliveryError: one runs
                                   start_offset=resume_at, pull=dep.mode == "pull")
        task = self.deliveries.tasks[endpoint]
        shown, written = (st.state, st.blocks_done), time.monotonic()
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.poll_s)
                now = (st.state, st.blocks_done)
                if now != shown and st.state not in ("failed", "active") and \
                        (now[0] != shown[0] or time.monotonic() - written >= 1.0):
                    await self._set_row(dep.id, endpoint, state=st.state, blocks_done=st.blocks_done,
                                        bytes_done=st.bytes_done)
                    shown, written = now, time.monotonic()
        except BaseException:      # the runner stops (pause, cancel, shutdown, lease lost): so does the transfer
            task.cancel()
            self._stopping.add(task)
            raise
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
        """Roll back every device ``dep`` activated: those registered here at once, the others through
        the server they are registered with (flag ``rollback_wanted``, taken by that server's watcher),
        waited for up to ``rollback_wait_s`` + ``lease_s``. The number rolled back."""
        rows = [r for r in await self._db(self.store.devices, dep.id) if r.activated and r.state != "rolled_back"]
        elsewhere = [r.endpoint for r in rows if r.endpoint not in self.server.regs]
        if elsewhere:
            await self._db(self.store.want_rollback, dep.id, elsewhere)
            self._kick.set()
        done = sum(await asyncio.gather(*(self._roll_back(dep, r.endpoint) for r in rows
                                          if r.endpoint in self.server.regs)))
        return done + (await self._rolled_back_elsewhere(dep, elsewhere) if elsewhere else 0)

    async def _rolled_back_elsewhere(self, dep: Deployment, endpoints: list[str]) -> int:
        wait = self.rollback_wait_s + self.lease_s
        deadline = time.monotonic() + wait
        while (left := await self._db(self.store.rollbacks_left, dep.id)) and time.monotonic() < deadline:
            await asyncio.sleep(max(self.poll_s, 0.5))
        for ep in left:
            await self._db(self.store.set_device, dep.id, ep, rollback_wanted=False, driver=None, driver_until=None,
                           reason=f"rollback failed: registered with no server that rolled it back within {wait:g} s; "
                                  "Execute /9/0/11 on the device once it answers")
        rows = {r.endpoint: r for r in await self._db(self.store.devices, dep.id)}
        return sum(rows[ep].state == "rolled_back" for ep in endpoints)

    async def _undo(self, dep_id: str, endpoint: str) -> None:
        """Roll back a device registered here, as the deployment's owner (another server) asked."""
        dep = await self._db(self.store.get, dep_id)
        log.info("deployment %s: rolling back '%s' for the deployment's owner", dep_id, endpoint)
        try:
            await self._roll_back(dep, endpoint)
        except Exception as e:        # our bug: the row says so, the owner goes on
            log.exception("deployment %s: internal error rolling back '%s'", dep_id, endpoint)
            await self._db(self.store.set_device, dep_id, endpoint, reason=f"rollback failed: internal error: {e}")
        await self._db(self.store.set_device, dep_id, endpoint, rollback_wanted=False)

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
