"""Running jobs: one call in a child process with limits, and the job runner.

:func:`run_limited` is the one place that starts a child process: a
forkserver child (the compiler modules preloaded, so a fork costs
milliseconds; forked ahead of its job, so the job does not wait for it) that
runs one call and exits, in its own process group, with an address-space limit,
killed with its whole group when the time limit passes. A crash, a hang or
running out of memory fails that call with one clear line; the caller lives on.

A :class:`JobRunner` executes builds by id. :class:`ThreadRunner` is the
embedded one: ``workers`` threads taking ids from a queue, each build's
compile in a :func:`run_limited` child. A distributed runner (Celery on
Redis) implements the same two methods and calls the same
``execute(build_id)``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
from typing import Callable, Protocol

from ..errors import CompileError, TinyMLError

log = logging.getLogger("tinyml.service")
_PRELOAD = ["platformio_tinyml.service._preload"]
_ctx_lock = threading.Lock()
_ctx = None


class JobFailed(CompileError):
    """A child's call failed: the user's error as raised, or a crash/limit described."""


class JobCancelled(Exception):
    """The service is stopping: the job stays where it was and runs again at the next start."""


def _context():
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            _ctx = ctx
        return _ctx


def _child(conn, fn, args, memory_bytes: int) -> None:
    os.setpgrp()   # our own process group: a timeout kills the tools we started too
    if memory_bytes:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ok", fn(*args)))
    except TinyMLError as e:
        conn.send(("error", (e.what, e.where, e.hint)))
    except MemoryError:
        conn.send(("error", (f"the compile needed more than its memory limit ({memory_bytes >> 20} MiB)", None,
                             "Raise job_memory_mb in the service settings, or use a smaller model")))
    except BaseException as e:   # a compiler's bug: reported as one line, the service goes on
        conn.send(("error", (f"the compiler crashed ({type(e).__name__}: {e})", None,
                             "This is a bug in the backend; please report it")))


def _spare(conn) -> None:
    """A child started before its job: it waits for one ``(fn, args, memory_bytes)`` and runs it
    as :func:`_child` (the limits are set when the job arrives). The service gone, it ends."""
    try:
        fn, args, memory_bytes = conn.recv()
    except (EOFError, OSError):
        return
    _child(conn, fn, args, memory_bytes)


class _Spares:
    """Children forked ahead of their jobs, so a job does not wait for its fork (15-20 ms of
    a 25 ms KWS compile). Each child still runs exactly one job and exits: no state passes
    from one upload to the next. At most ``keep`` wait; one is started after each is taken."""

    def __init__(self, keep: int = 2):
        self.keep, self._idle, self._lock = keep, [], threading.Lock()

    def take(self):
        """(process, connection) of a started child, waiting for its job."""
        with self._lock:
            while self._idle:
                proc, conn = self._idle.pop()
                if proc.is_alive():
                    break
                conn.close()
            else:
                proc = conn = None
        threading.Thread(target=self.fill, daemon=True, name="tinyml-spare").start()
        return (proc, conn) if proc is not None else self._start()

    def fill(self) -> None:
        while True:
            with self._lock:
                if len(self._idle) >= self.keep:
                    return
            try:
                spare = self._start()
            except Exception as e:   # the next job starts its own child, and says why if it cannot
                log.warning("no spare compile process started (%s: %s)", type(e).__name__, e)
                return
            with self._lock:
                self._idle.append(spare)

    @staticmethod
    def _start():
        ctx = _context()
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_spare, args=(theirs,), name="tinyml-job", daemon=True)
        proc.start()
        theirs.close()
        return proc, ours


_spares = _Spares()


def run_limited(fn: Callable, *args, timeout_s: float, memory_bytes: int, cancel: threading.Event | None = None):
    """``fn(*args)`` in a child process; returns its value or raises :class:`JobFailed`."""
    proc, recv = _spares.take()
    try:
        try:
            recv.send((fn, args, memory_bytes))
        except (OSError, EOFError):
            pass   # the child died waiting: _wait reads "eof" and says so
        answer = _wait(recv, timeout_s, cancel)
        if answer is None:
            raise JobFailed(f"the compile did not finish within its time limit ({timeout_s:g} s)",
                            hint="Raise job_timeout_s in the service settings, or use a smaller model")
        if answer == "cancelled":
            raise JobCancelled()
        if answer == "eof":
            proc.join(5)
            code = proc.exitcode
            how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
                   else f"exit code {code}")
            raise JobFailed(f"the compiler process died ({how})",
                            hint="The model crashes this backend; try another backend or report it")
        status, value = answer
        if status == "error":
            raise JobFailed(*value)
        return value
    finally:
        recv.close()
        if proc.is_alive():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        proc.join()


def _wait(recv, timeout_s: float, cancel: threading.Event | None):
    """The child's answer, ``"eof"`` if it died, ``"cancelled"``, or None on timeout."""
    import time
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if recv.poll(min(left, 0.2)):
            try:
                return recv.recv()
            except (EOFError, OSError):
                return "eof"
        if cancel is not None and cancel.is_set():
            return "cancelled"


class JobRunner(Protocol):
    """Executes builds by id; ``submit`` never blocks on the compile."""

    def submit(self, build_id: str, backend: str = "auto") -> None: ...

    def stop(self) -> None: ...


class ThreadRunner:
    """The embedded runner: ``workers`` threads calling ``execute(build_id, cancel)``."""

    def __init__(self, workers: int, execute: Callable[[str, threading.Event], None]):
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._execute = execute
        self.cancel = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"tinyml-worker-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def submit(self, build_id: str, backend: str = "auto") -> None:
        self._queue.put(build_id)

    def _loop(self) -> None:
        while (build_id := self._queue.get()) is not None:
            if not self.cancel.is_set():
                self._execute(build_id, self.cancel)

    def stop(self) -> None:
        self.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(10)
