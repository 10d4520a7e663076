"""The service's state and its one verb: turn a request into a build, run builds.

:class:`Service` owns the database, the blob store, the metrics and the job
runner. :meth:`Service.find_or_create_build` gives the build of a content
key (one per key: see :mod:`.db`), :meth:`Service.execute` runs one build
from ``queued`` to ``succeeded`` or ``failed``. At start, builds left
``queued`` or ``running`` by a stopped service are queued again; with ``broker``
set, builds run in ``tinyml worker`` processes (:mod:`.celery_runner`), each
running build carries its worker's heartbeat, and :meth:`Service.reap` queues
again those whose worker died.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import datetime as dt
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError

from ..device import DeviceProfile
from ..integrations.core import ModelSpec, _backend_versions, _runtime_digest, cache_key, content_key
from . import tasks
from .auth import Caller, resolve
from .config import ServiceConfig
from .db import ACTIVE_STATES, Build, Compilation, open_database, utcnow
from .jobs import JobCancelled, JobFailed, JobRunner, ThreadRunner, run_limited
from .metrics import Metrics
from .store import BlobStore
from .uploads import materialize

log = logging.getLogger("tinyml.service")
TOKEN_CACHE_S = 5.0
WORKER_NAME = f"{socket.gethostname()}-{os.getpid()}"   # who runs a build (Build.worker)


class HitCache:
    """Answers to cache hits by key (``POST /v1/compilations/lookup``), bounded: a
    succeeded build and a project's compilation of it are never changed or removed."""

    def __init__(self, size: int = 20000):
        self.size, self._items = size, {}

    def get(self, memo: tuple) -> bytes | None:
        return self._items.get(memo)

    def put(self, memo: tuple, answer: bytes) -> bytes:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[memo] = answer
        return answer


class Service:
    def __init__(self, cfg: ServiceConfig):
        self.cfg = cfg
        self.data = Path(cfg.data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.engine, self.Session = open_database(cfg.database_url)
        self.store = BlobStore(self.data / "blobs")
        self.work = self.data / "work"
        self.metrics = Metrics()
        self.runner: JobRunner | None = None
        self._callers: dict[str, tuple[float, Caller | None]] = {}
        self.hits = HitCache()
        self._waiting: dict[str, list] = {}     # build id -> [(event loop, future)] of long polls
        self._waiting_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------
    def start(self, runner: JobRunner | None = None) -> None:
        """Start the job runner: the embedded threads, or (``broker`` set) the Celery client
        that hands jobs to ``tinyml worker`` processes. Embedded, every unfinished build is
        this process's and runs again; with workers, queued builds are submitted again (a
        duplicate message is harmless: one worker takes a build) and running ones are left
        to the reaper, which requeues those whose worker stopped its heartbeat."""
        self.clean_work()
        if runner is None and self.cfg.broker:
            from .celery_runner import CeleryRunner
            runner = CeleryRunner(self.cfg)
        self.runner = runner or ThreadRunner(self.cfg.workers, self.execute)
        states = ("queued",) if self.cfg.broker else ACTIVE_STATES
        with self.Session() as db:
            again = db.execute(select(Build.id, Build.backend_requested).where(Build.state.in_(states))
                               .order_by(Build.created_at)).all()
            for build in db.scalars(select(Build).where(Build.id.in_([b for b, _ in again]),
                                                        Build.state == "running")):
                build.state, build.log = "queued", [*build.log, "queued again: the service restarted"]
            db.commit()
        if not self.cfg.broker:
            # start the forkserver now (it preloads the compilers), not on the first request
            threading.Thread(target=self.isolated, args=(os.getpid,), daemon=True, name="tinyml-warmup").start()
        else:
            self._reaper_stop = threading.Event()
            threading.Thread(target=self._reap_loop, daemon=True, name="tinyml-reaper").start()
        self._installed   # the key inputs, before the first request needs them
        for build_id, backend in again:
            self.runner.submit(build_id, backend)
        if again:
            log.info("requeued %d unfinished job(s)", len(again))

    def clean_work(self) -> None:
        """This process's scratch folder, emptied. Processes sharing ``data`` (an API and
        workers on one machine) each have their own."""
        if self.cfg.broker:
            self.work = self.data / "work" / WORKER_NAME
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)

    def stop(self) -> None:
        if getattr(self, "_reaper_stop", None) is not None:
            self._reaper_stop.set()
        if self.runner is not None:
            self.runner.stop()
        if self.cfg.broker:
            shutil.rmtree(self.work, ignore_errors=True)
        self.engine.dispose()

    # -- scale-out: a worker that dies mid-compile ------------------------------------
    def _reap_loop(self) -> None:
        while not self._reaper_stop.wait(max(0.5, self.cfg.stale_after_s / 4)):
            try:
                self.reap()
            except Exception:   # the database or broker is away for a moment: next round
                log.exception("reaper: could not check running jobs")

    def reap(self) -> list[str]:
        """Queue again every running build whose heartbeat is older than ``stale_after_s``
        (its worker died or lost the database); returns their ids. The update is
        conditional on the heartbeat read, so two API processes never requeue one build twice."""
        limit = utcnow() - dt.timedelta(seconds=self.cfg.stale_after_s)
        requeued = []
        with self.Session() as db:
            stale = db.execute(select(Build.id, Build.backend_requested, Build.worker, Build.heartbeat_at)
                               .where(Build.state == "running", Build.heartbeat_at < limit)).all()
            for build_id, backend, worker, beat in stale:
                build = db.get(Build, build_id)
                line = f"queued again: its worker {worker or '?'} stopped answering"
                n = db.execute(update(Build).where(Build.id == build_id, Build.state == "running",
                                                   Build.heartbeat_at == beat)
                               .values(state="queued", progress=0.0, log=[*build.log, line])).rowcount
                db.commit()
                if n:
                    requeued.append(build_id)
                    self.runner.submit(build_id, backend)
                    log.info("job %s %s", build_id, line)
        return requeued

    def caller_of(self, token: str) -> Caller | None:
        """The caller a bearer token stands for; answers are kept for ``TOKEN_CACHE_S``."""
        now = time.monotonic()
        hit = self._callers.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.Session() as db:
            who = resolve(db, f"Bearer {token}")
        if len(self._callers) > 10000:
            self._callers.clear()
        self._callers[token] = (now + TOKEN_CACHE_S, who)
        return who

    def isolated(self, fn, *args, timeout_s: float | None = None, cancel: threading.Event | None = None):
        """``fn(*args)`` in a child process under the configured limits."""
        return run_limited(fn, *args, timeout_s=timeout_s or self.cfg.job_timeout_s,
                           memory_bytes=self.cfg.job_memory_mb << 20, cancel=cancel)

    def scratch(self) -> Path:
        """A new empty folder for one request or job."""
        path = self.work / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    # -- builds -----------------------------------------------------------
    @functools.cached_property
    def _installed(self) -> tuple[dict[str, str], str]:
        """(backend versions, runtime digest) of this installation: key inputs, read once per process."""
        return _backend_versions(self.data / ".backends.json"), _runtime_digest()

    def key_from(self, model_sha256: str, model_file: str, name: str, backend: str, options: dict,
                 calibration_sha256: str | None, device: DeviceProfile, input_shapes: dict | None = None,
                 input_values: dict | None = None) -> str:
        """The local build cache's key (:func:`..integrations.core.cache_key`) from the inputs' digests;
        ``model_file``: the name of the client's model file (of a SavedModel, its folder's);
        ``input_shapes`` / ``input_values`` as :class:`..integrations.core.ModelSpec` holds them."""
        versions, runtime = self._installed
        return content_key(model_sha256, model_file, name, backend, tuple(sorted(options.items())), calibration_sha256 or "",
                           device, versions, runtime, input_shapes=tuple(sorted((input_shapes or {}).items())),
                           input_values=tuple(sorted((input_values or {}).items())))

    def key_of(self, model: bytes, suffix: str, filename: str, name: str, backend: str, options: dict,
               calibration: bytes | None, device: DeviceProfile, input_shapes: dict | None = None,
               input_values: dict | None = None) -> str:
        """:meth:`key_from` of an upload; a SavedModel is unpacked for it (its key hashes the files)."""
        if suffix != ".zip":
            return self.key_from(hashlib.sha256(model).hexdigest(), filename, name, backend, options,
                                 hashlib.sha256(calibration).hexdigest() if calibration is not None else None,
                                 device, input_shapes, input_values)
        workdir = self.scratch()
        try:
            model_rel, cal_rel = self.stage(workdir, model, suffix, filename, calibration)
            spec = ModelSpec.make(workdir / model_rel, name, backend, workdir / cal_rel if cal_rel else None,
                                  options, input_shapes, input_values)
            return cache_key(spec, device, self.data)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def finished_for(self, db, key: str, who: Caller, target: str) -> tuple[Compilation, Build] | None:
        """The succeeded build of ``key`` and the project's compilation of it for ``target``
        (added when the project has none): one indexed read, a write only on a project's first hit."""
        row = db.execute(select(Build, Compilation).outerjoin(
            Compilation, and_(Compilation.build_id == Build.id, Compilation.project_id == who.project_id,
                              Compilation.target == target))
            .where(Build.key == key, Build.state == "succeeded").limit(1)).first()
        if row is None:
            return None
        build, comp = row
        if comp is None:
            comp = Compilation(id=uuid.uuid4().hex, project_id=who.project_id, build_id=build.id, cached=True,
                               target=target)
            db.add(comp)
            db.commit()
        return comp, build

    def live_build(self, db, key: str) -> Build | None:
        return db.scalar(select(Build).where(Build.key == key, Build.state != "failed"))

    def find_or_create_build(self, db, key: str, **inputs) -> tuple[Build, bool]:
        """The live build of ``key``, or a new queued one (then True)."""
        build = self.live_build(db, key)
        if build is not None:
            return build, False
        build = Build(id=uuid.uuid4().hex, key=key, state="queued", log=["queued"], progress=0.0, attempts=0,
                      **inputs)
        db.add(build)
        try:
            db.commit()
        except IntegrityError:   # another request inserted the same key first
            db.rollback()
            return self.live_build(db, key), False
        self.runner.submit(build.id, build.backend_requested)
        return build, True

    def jobs_by_state(self) -> dict[str, int]:
        with self.Session() as db:
            return dict(db.execute(select(Build.state, func.count()).group_by(Build.state)).all())

    def execute(self, build_id: str, cancel: threading.Event | None = None) -> None:
        """Run one queued build to its end; a build another worker took is left alone."""
        with self.Session() as db:
            now = utcnow()
            taken = db.execute(update(Build).where(Build.id == build_id, Build.state == "queued")
                               .values(state="running", started_at=now, heartbeat_at=now, worker=WORKER_NAME,
                                       progress=0.1, attempts=Build.attempts + 1)).rowcount
            db.commit()
            build = db.get(Build, build_id)
        if not taken:
            return
        beating = threading.Event()
        threading.Thread(target=self._heartbeat, args=(build_id, beating), daemon=True,
                         name=f"tinyml-heartbeat-{build_id[:8]}").start()
        self._note(build_id, f"running: compiling {build.model_file} for {build.device.get('board')} "
                             f"(backend {build.backend_requested})")
        workdir = self.scratch()
        started = time.monotonic()
        try:
            report, artifact = self._compile(build, workdir, cancel)
            blob = self.store.put(artifact)
        except JobCancelled:
            return   # stays 'running': queued again at the next start
        except JobFailed as e:
            self._finish(build_id, started, state="failed", error_message=e.what, error_where=e.where,
                         error_hint=e.hint, line=f"failed: {e}")
        except Exception as e:   # our own bug: the job fails, the worker goes on
            log.exception("job %s: internal error", build_id)
            self._finish(build_id, started, state="failed", error_message=f"internal error ({type(e).__name__})",
                         error_hint="This is a bug in the service; its log has the traceback",
                         line="failed: internal error")
        else:
            self._finish(build_id, started, state="succeeded", report=report, backend=report["backend"],
                         backend_version=report["backend_version"], chosen_because=report["chosen_because"],
                         artifact_sha256=blob, line=f"succeeded: backend {report['backend']}")
        finally:
            beating.set()
            shutil.rmtree(workdir, ignore_errors=True)

    def _heartbeat(self, build_id: str, done: threading.Event) -> None:
        """Say every ``heartbeat_s`` that this process still runs ``build_id``."""
        while not done.wait(self.cfg.heartbeat_s):
            try:
                with self.Session() as db:
                    db.execute(update(Build).where(Build.id == build_id, Build.state == "running",
                                                   Build.worker == WORKER_NAME).values(heartbeat_at=utcnow()))
                    db.commit()
            except Exception:   # the database is away for a moment: the next beat tries again
                log.warning("job %s: heartbeat not written", build_id)

    @staticmethod
    def stage(workdir: Path, model: bytes, suffix: str, filename: str,
              calibration: bytes | None) -> tuple[str, str | None]:
        """Write a model (as ``filename``) and calibration set into ``workdir``; their relative paths."""
        model_rel = materialize(model, suffix, filename, workdir)
        if calibration is None:
            return model_rel, None
        (workdir / "calibration.npy").write_bytes(calibration)
        return model_rel, "calibration.npy"

    def inputs_into(self, build: Build, workdir: Path) -> tuple[str, str | None]:
        """:meth:`stage` a stored build's inputs."""
        cal = self.store.get(build.calibration_sha256) if build.calibration_sha256 else None
        return self.stage(workdir, self.store.get(build.model_sha256), Path(build.model_file).suffix.lower(),
                          build.model_file, cal)

    def _compile(self, build: Build, workdir: Path, cancel) -> tuple[dict, bytes]:
        """One child: load and check the model, compile, pack; (report, artifact .tar.gz)."""
        model, calibration = self.inputs_into(build, workdir)
        return self.isolated(tasks.compile_to, str(workdir), model, build.device, build.name,
                             build.backend_requested, build.options, calibration, "out",
                             build.input_shapes, build.input_values, cancel=cancel)

    async def until_finished(self, build_id: str, timeout_s: float) -> None:
        """Return when this process finishes ``build_id`` or after ``timeout_s`` (a build
        another process runs is not announced here: callers read its state again)."""
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._waiting_lock:
            self._waiting.setdefault(build_id, []).append(waiter)
        try:
            await asyncio.wait_for(waiter[1], timeout_s)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._waiting_lock:
                left = [w for w in self._waiting.get(build_id, ()) if w is not waiter]
                if left:
                    self._waiting[build_id] = left
                else:
                    self._waiting.pop(build_id, None)

    def _announce(self, build_id: str) -> None:
        with self._waiting_lock:
            waiters = self._waiting.pop(build_id, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))

    def _note(self, build_id: str, line: str, **values) -> None:
        with self.Session() as db:
            build = db.get(Build, build_id)
            for k, v in values.items():
                setattr(build, k, v)
            build.log = [*build.log, line]
            db.commit()

    def _finish(self, build_id: str, started: float, *, state: str, line: str, **values) -> None:
        seconds = time.monotonic() - started
        self._note(build_id, f"{line} in {seconds:.2f} s", state=state, finished_at=utcnow(), seconds=seconds,
                   progress=1.0, **values)
        backend = values.get("backend") or "none"
        if state == "succeeded":
            self.metrics.observe_compile(backend, seconds)
        self._announce(build_id)
        log.info("job %s %s (%s) in %.2f s", build_id, state, backend, seconds)
