"""Scale-out: compile jobs through Celery on Redis, run by ``tinyml worker`` processes.

The API processes (``tinyml serve --broker redis://... --database postgresql://...``)
and the workers (``tinyml worker --broker ... --database ... --data ...``) share the
database (jobs, their state and log) and the artifact store (``--data``: one folder,
local or on a shared file system). A job message carries only the build id; the
worker runs the same :meth:`.core.Service.execute` as the embedded runner, with the
compile in a limited child process (:func:`.jobs.run_limited`).

* Queues per backend family: ``fast`` (cgen, emlearn, tflm and ``auto``) and ``slow``
  (tvm, vela, whose builds take tens of seconds), so a TVM build never holds up a
  cgen job when some workers take only ``fast`` (``tinyml worker --queues fast``).
* Late acknowledgement, one message prefetched per worker thread: a message is
  acknowledged when its job has ended, and is redelivered if the worker's connection
  goes before that.
* A worker that dies in the middle of a job (killed, machine lost) stops the job's
  heartbeat; the reaper in every API process (:meth:`.core.Service.reap`) queues the
  build again after ``stale_after_s`` and another worker runs it: never lost, never
  stuck in ``running``. One worker takes a build (a conditional update from
  ``queued``), so duplicate messages are harmless.
"""

from __future__ import annotations

import logging

from .config import ServiceConfig

log = logging.getLogger("tinyml.service")

SLOW_BACKENDS = frozenset({"tvm", "vela"})
QUEUES = ("fast", "slow")
TASK = "tinyml.execute"


def queue_for(backend: str) -> str:
    return "tinyml.slow" if backend in SLOW_BACKENDS else "tinyml.fast"


def celery_app(cfg: ServiceConfig):
    from celery import Celery
    app = Celery("tinyml", broker=cfg.broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_serializer="json", accept_content=["json"], task_ignore_result=True,
        task_default_queue="tinyml.fast", broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        # a message unacknowledged this long is delivered again; the build-state guard
        # makes the duplicate harmless, the reaper covers a dead worker much sooner
        broker_transport_options={"visibility_timeout": max(3600, int(cfg.job_timeout_s) * 2)})
    return app


class CeleryRunner:
    """The API side: :meth:`submit` sends the build id to its backend family's queue."""

    def __init__(self, cfg: ServiceConfig):
        self.app = celery_app(cfg)

    def submit(self, build_id: str, backend: str = "auto") -> None:
        self.app.send_task(TASK, args=[build_id], queue=queue_for(backend))

    def stop(self) -> None:
        self.app.close()


def run_worker(cfg: ServiceConfig, queues: list[str], concurrency: int) -> None:
    """``tinyml worker``: take jobs from ``queues`` with ``concurrency`` threads until stopped."""
    from .core import Service
    svc = Service(cfg)
    svc.clean_work()
    app = celery_app(cfg)

    @app.task(name=TASK)
    def execute(build_id: str) -> None:
        svc.execute(build_id)

    try:
        app.Worker(queues=[f"tinyml.{q}" for q in queues], concurrency=concurrency, pool="threads",
                   loglevel="WARNING", quiet=True, without_gossip=True, without_mingle=True,
                   without_heartbeat=True).start()
    finally:
        svc.stop()
