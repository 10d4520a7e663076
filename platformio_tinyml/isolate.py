"""Run a callable in a child process, with a time limit and a memory limit.

A model file is untrusted input. The native libraries we hand it to (the
reference interpreters TensorFlow Lite Micro and onnxruntime, TVM) can abort,
segfault, loop or allocate without bound on a malformed one; in-process, that
kills ``tinyml`` (or a service worker) without a word. Here they run in a
child process instead:

* :func:`run_isolated` runs one call in a fresh child;
* :class:`Worker` keeps one child for many calls (the N inputs of a
  ``verify`` run) and starts a new one after a failure;
  :func:`shared_worker` is one such worker per process and purpose.

A failure of the child is raised as an :class:`IsolationError` (a
:class:`TinyMLError`, so front ends print it as one line) that names what
failed and how: ``reference interpreter (TFLite Micro) crashed on this model
(signal 6, SIGABRT)``, ``... ran past 60 s on this model``, ``... ran out of
memory on this model (limit 4,096 MiB)``. An exception raised by the
callable itself is raised again in the parent, as itself.

The child is a fresh interpreter (``sys.executable`` with the parent's
``sys.path``), not a fork, so it is safe whatever threads the parent already
runs (TensorFlow, onnxruntime, BLAS). Calls and results travel as pickles
over the child's stdin/stdout: the callable must be a module-level function
(or a ``functools.partial`` of one), its arguments and result picklable. The
child's stdout and stderr go to a temporary file, so native libraries'
messages stay out of the user's terminal; what it wrote during the call is on
the error (``child_log``, its last 2,000 bytes).

Limits, per call: ``timeout_s`` (default 60 s, environment variable
``TINYML_ISOLATE_TIMEOUT_S``) and ``memory_mb``, the child's address space
(``RLIMIT_AS``; default 4,096 MiB, ``TINYML_ISOLATE_MEMORY_MB``, 0 for no
limit). Address space, not resident memory: onnxruntime reserves large
virtual ranges it never touches, and the default leaves room for them
(benchmarks/isolate_bench.py measures the children's peaks).
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from .errors import TinyMLError

TIMEOUT_ENV = "TINYML_ISOLATE_TIMEOUT_S"
MEMORY_ENV = "TINYML_ISOLATE_MEMORY_MB"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096
LOG_TAIL_BYTES = 2000
LOG_KEEP_BYTES = 1 << 20

_HEADER = struct.Struct("<Q")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
         "from platformio_tinyml.isolate import _serve; _serve(int(sys.argv[2]))")


class IsolationError(TinyMLError):
    """The child process crashed, ran past its time limit or out of memory."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None, log: str = ""):
        self.child_log = log
        super().__init__(what, where=where, hint=hint)


class ChildCrashed(IsolationError):
    """The child died: a signal (``signal`` set) or an unexpected exit status."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None, log: str = "",
                 signal: int | None = None):
        self.signal = signal
        super().__init__(what, where=where, hint=hint, log=log)


class ChildTimedOut(IsolationError):
    """The call did not return within its time limit; the child was killed."""


class ChildOutOfMemory(IsolationError):
    """The call hit the child's memory limit."""


def default_timeout_s() -> float:
    return env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def default_memory_mb() -> int:
    return int(env_number(MEMORY_ENV, DEFAULT_MEMORY_MB))


def env_number(name: str, default: float) -> float:
    """The non-negative number in environment variable ``name``, or ``default`` when unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise TinyMLError(f"{name}={text!r} is not a number", hint=f"Unset it to use {default:g}") from None
    if value < 0:
        raise TinyMLError(f"{name}={text!r} is negative", hint=f"Unset it to use {default:g}")
    return value


def signal_text(number: int) -> str:
    """``signal 6, SIGABRT`` (the number alone when Python has no name for it)."""
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


class Worker:
    """One child process for a series of calls; a context manager.

    ``what`` names the work in messages ("reference interpreter
    (TFLite Micro)"), ``on`` what it works on ("this model"), ``hint`` what to
    do after a crash. The child starts on the first :meth:`call` and, after
    any failure, again on the next one. Calls from several threads take turns.
    """

    def __init__(self, what: str = "child process", *, on: str = "this model", hint: str | None = None,
                 timeout_s: float | None = None, memory_mb: int | None = None):
        self.what = what
        self.on = on
        self.hint = hint
        self.timeout_s = default_timeout_s() if timeout_s is None else float(timeout_s)
        self.memory_mb = default_memory_mb() if memory_mb is None else int(memory_mb)
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._pending = 0   # replies to requests sent by start(), not yet read

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def start(self, *modules: str) -> None:
        """Start the child now, if it is not running, and have it import ``modules``
        while the caller goes on (the next :meth:`call` waits for that)."""
        with self._lock:
            proc = self._start()
            if modules:
                try:
                    _write(proc.stdin, pickle.dumps((_import_all, (modules,))))
                    self._pending += 1
                except OSError:
                    pass   # the child died already: the next call says so

    def call(self, fn, *args, timeout_s: float | None = None, where: str | None = None):
        """``fn(*args)`` in the child; its result, or its exception raised here.

        Raises :class:`IsolationError` when the child crashes, runs past
        ``timeout_s`` (default: the worker's) or out of memory; ``where``
        (a file name) prefixes that error's text. Any error raised here
        carries what the child wrote during the call (``child_log``).
        """
        request = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            proc = self._start()
            log_start = os.fstat(self._log.fileno()).st_size
            if log_start > LOG_KEEP_BYTES:   # a chatty child: keep /tmp small (O_APPEND: it writes at the end)
                os.ftruncate(self._log.fileno(), 0)
                log_start = 0
            try:
                _write(proc.stdin, request)
                deadline = time.monotonic() + limit if limit > 0 else None
                for _ in range(self._pending):   # start()'s imports; their errors show in this call
                    self._receive(proc, limit, deadline, where, log_start)
                    self._pending -= 1
                status, value = pickle.loads(self._receive(proc, limit, deadline, where, log_start))
            except IsolationError:
                raise
            except OSError:   # the channel broke: the child died while we wrote
                raise self._died(where, log_start) from None
            except BaseException:   # interrupted: the child's state is unknown
                self._stop(kill=True)
                raise
        if status == "ok":
            return value
        if status == "oom":
            self._stop(kill=True)
            raise self._out_of_memory(where, log_start)
        error = _rebuild(*value)
        try:
            error.child_log = self._tail(log_start)
        except AttributeError:   # an exception class with __slots__
            pass
        raise error

    def close(self, kill: bool = False) -> None:
        """Stop the child (it exits when its stdin closes, or at once with ``kill``); idempotent."""
        with self._lock:
            self._stop(kill=kill)
            if self._log is not None and self._owner == os.getpid():
                self._log.close()
            self._log = None

    # -- child process ---------------------------------------------------------

    def _start(self) -> subprocess.Popen:
        if self._owner != os.getpid():   # forked: the child and its pipes belong to our parent
            self._proc, self._log, self._owner, self._pending = None, None, os.getpid(), 0
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop(kill=True)
        if self._log is None:
            self._log = tempfile.TemporaryFile()
            flags = fcntl.fcntl(self._log.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(self._log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        path = list(sys.path) if _PACKAGE_ROOT in sys.path else [_PACKAGE_ROOT, *sys.path]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(path), str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, close_fds=True)
        return self._proc

    def _stop(self, kill: bool) -> None:
        proc, self._proc, self._pending = self._proc, None, 0
        if proc is None:
            return
        try:
            if kill:
                proc.kill()
            proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def _receive(self, proc: subprocess.Popen, limit: float, deadline: float | None, where: str | None,
                 log_start: int) -> bytes:
        fd = proc.stdout.fileno()
        try:
            header = _read_exact(fd, _HEADER.size, deadline)
            body = _read_exact(fd, _HEADER.unpack(header)[0], deadline) if header is not None else None
        except _PastDeadline:
            self._stop(kill=True)
            raise ChildTimedOut(f"{self.what} ran past {limit:g} s on {self.on}", where=where,
                                hint=f"If it is only slow, raise {TIMEOUT_ENV} (now {limit:g})",
                                log=self._tail(log_start)) from None
        if body is None:
            raise self._died(where, log_start)
        return body

    def _died(self, where: str | None, log_start: int) -> IsolationError:
        proc, self._proc, self._pending = self._proc, None, 0
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        log = self._tail(log_start)
        if "MemoryError" in log or "std::bad_alloc" in log:
            return self._out_of_memory(where, log_start)
        how = signal_text(-code) if code < 0 else f"exit status {code}"
        return ChildCrashed(f"{self.what} crashed on {self.on} ({how})", where=where, hint=self.hint,
                            log=log, signal=-code if code < 0 else None)

    def _out_of_memory(self, where: str | None, log_start: int) -> ChildOutOfMemory:
        return ChildOutOfMemory(f"{self.what} ran out of memory on {self.on} (limit {self.memory_mb:,} MiB)",
                                where=where, hint=f"If it only needs more, raise {MEMORY_ENV}",
                                log=self._tail(log_start))

    def _tail(self, start: int) -> str:
        if self._log is None:
            return ""
        end = os.fstat(self._log.fileno()).st_size
        start = max(start, end - LOG_TAIL_BYTES)
        return os.pread(self._log.fileno(), end - start, start).decode(errors="replace")


_shared: dict[str, Worker] = {}
_shared_lock = threading.Lock()


def shared_worker(what: str, **options) -> Worker:
    """This process's one :class:`Worker` for ``what``, made with ``options`` on first use.

    Its child outlives the calls, so a heavy library it imports (TFLite
    Micro, TVM) is imported once per process, not once per call; it is
    closed when the process exits.
    """
    import atexit
    with _shared_lock:
        if what not in _shared:
            _shared[what] = Worker(what, **options)
            atexit.register(_shared[what].close, kill=True)   # no waiting for a child still importing
        return _shared[what]


def run_isolated(fn, *args, what: str = "child process", on: str = "this model", hint: str | None = None,
                 where: str | None = None, timeout_s: float | None = None, memory_mb: int | None = None):
    """``fn(*args)`` in a fresh child process (see :class:`Worker`), which then exits."""
    with Worker(what, on=on, hint=hint, timeout_s=timeout_s, memory_mb=memory_mb) as w:
        return w.call(fn, *args, where=where)


# -- the channel: length-prefixed pickles ------------------------------------------

def _write(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


class _PastDeadline(Exception):
    pass


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """``n`` bytes from ``fd``, None at end of file; :class:`_PastDeadline` once ``deadline`` passes."""
    chunks, got = [], 0
    while got < n:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([fd], [], [], wait)[0]:
            raise _PastDeadline()
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _portable(e: BaseException) -> tuple:
    """An exception raised in the child, in a form the parent can rebuild."""
    tb = traceback.format_exc()
    try:
        blob = pickle.dumps((type(e), e.args, dict(getattr(e, "__dict__", {}))))
        pickle.loads(blob)   # its class must import and its state unpickle
        return blob, "", tb
    except Exception:
        return None, f"{type(e).__name__}: {e}", tb


def _rebuild(blob: bytes | None, text: str, tb: str) -> BaseException:
    if blob is None:
        e: BaseException = RuntimeError(f"in a child process: {text}")
    else:
        cls, args, state = pickle.loads(blob)
        e = cls.__new__(cls)
        e.args = args
        e.__dict__.update(state)
    e.add_note("raised in the child process:\n" + tb.rstrip())
    return e


def _import_all(modules: tuple[str, ...]) -> None:
    """Run in the child by :meth:`Worker.start`: import what the next calls need."""
    import importlib
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            pass   # the call that needs it reports it


def _serve(memory_mb: int) -> None:
    """The child's loop: read (fn, args), answer, until the parent closes stdin."""
    if memory_mb > 0:
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)   # native libraries' prints go to the log, never into the channel
    out = os.fdopen(wfd, "wb")
    while True:
        header = _read_exact(rfd, _HEADER.size, None)
        if header is None:
            return
        data = _read_exact(rfd, _HEADER.unpack(header)[0], None)
        try:
            fn, args = pickle.loads(data)
            reply = ("ok", fn(*args))
        except MemoryError:
            reply = ("oom", None)
        except Exception as e:
            reply = ("raised", _portable(e))
        except BaseException as e:   # SystemExit, KeyboardInterrupt: not to be raised in the parent
            reply = ("raised", (None, f"{type(e).__name__}: {e}", traceback.format_exc()))
        try:
            blob = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            blob = pickle.dumps(("raised", (None, f"result does not pickle: {e}", "")))
        _write(out, blob)
