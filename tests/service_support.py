"""A real ``tinyml serve`` in a subprocess on a free loopback port, and the real Redis and
PostgreSQL its scale-out runs on, for the service tests and benchmarks."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def tinyml(*args, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def interrupt(*procs: subprocess.Popen, timeout: float = 10) -> None:
    """Ctrl-C each process, as a user stops it; kill what has not ended after ``timeout`` s."""
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def fleet_project(database: str, data: Path, project: str, pattern: str,
                  scopes: tuple[str, ...] = ("read", "deploy")) -> str:
    """On the service database at URL ``database``: a token for ``project`` (created if missing) and
    the endpoint pattern its devices register under (through the CLI, as a user does); the token."""
    from platformio_tinyml.service.auth import create_token
    from platformio_tinyml.service.db import open_database
    engine, session = open_database(database)
    try:
        with session() as db:
            token = create_token(db, project, scopes)
    finally:
        engine.dispose()
    tinyml("service", "devices", "allow", "--project", project, "--pattern", pattern, "--database", database,
           "--data", data)
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``tinyml serve --data DATA`` plus ``extra`` flags (and ``env``); ``token()`` makes tokens with the CLI."""

    def __init__(self, data: Path, *extra: str, env: dict | None = None):
        self.data, self.extra, self.env = Path(data), [str(e) for e in extra], env
        if "--lwm2m-port" not in self.extra:   # the default 5683 may be taken: no LwM2M unless a test asks
            self.extra += ["--lwm2m-port", "0"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = self.data.parent / f"serve-{self.port}.log"

    def token(self, project: str, scope: str = "compile,read,deploy", cli: bool = False) -> str:
        """A new token, made by ``tinyml service token create`` (``cli``) or the same call in-process."""
        if cli:
            return tinyml("service", "token", "create", "--project", project, "--scope", scope,
                          "--data", self.data).stdout.strip()
        from platformio_tinyml.service.auth import create_token, parse_scopes
        from platformio_tinyml.service.db import open_database
        engine, session = open_database(f"sqlite:///{self.data / 'service.db'}")
        try:
            with session() as db:
                return create_token(db, project, parse_scopes(scope))
        finally:
            engine.dispose()

    def start(self) -> "Server":
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "platformio_tinyml.cli.main", "serve", "--data", str(self.data),
             "--port", str(self.port), *self.extra], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
            env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("tinyml serve did not start: " + self.log.read_text())

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

def module_server(*extra: str):
    """A module-scoped fixture: a started :class:`Server` (``tinyml serve`` + ``extra``) that must stop
    cleanly after the module's tests."""
    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        srv = Server(tmp_path_factory.mktemp("svc") / "data", *extra).start()
        yield srv
        assert srv.stop() == 0
    return server


class Worker:
    """``tinyml worker`` (Celery) on ``database`` and ``broker``, in its own process group."""

    def __init__(self, data: Path, database: str, broker: str, *extra: str, env: dict | None = None):
        self.log = data.parent / f"worker-{free_port()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "platformio_tinyml.cli.main", "worker", "--data", str(data), "--database",
             database, "--broker", broker, *extra], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
            start_new_session=True, env={**os.environ, **(env or {})})

    def kill(self) -> None:
        """SIGKILL to the worker's whole process group: the worker and its compile child die at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def wait_done(client: httpx.Client, comp_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(f"/v1/compilations/{comp_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] in ("succeeded", "failed"):
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"compilation {comp_id} did not finish: {r.json()}")


def one_line(r: httpx.Response, status: int, *needles: str) -> str:
    """The response is ``status`` with a one-line ``detail`` holding every needle."""
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    for n in needles:
        assert n in detail, (n, detail)
    return detail


def failed_job(client: httpx.Client, r: httpx.Response, *needles: str) -> dict:
    """The upload was accepted (202) and its job failed with a one-line error: message, place
    and hint each one line, the needles in ``where: message. hint`` (what ``tinyml remote`` prints)."""
    assert r.status_code == 202, (r.status_code, r.text)
    done = wait_done(client, r.json()["id"])
    assert done["state"] == "failed" and done["artifact_url"] is None, done
    error = done["error"]
    for part in error.values():
        assert part is None or ("\n" not in part and "Traceback" not in part), error
    line = f"{error['where']}: {error['message']}. {error['hint']}"
    for n in needles:
        assert n in line, (n, line)
    assert done["log"][-1].startswith("failed: "), done["log"]
    return error


def wait_for(check, what: str = "the condition", timeout: float = 60.0, log: Path | None = None,
             interval: float = 0.2):
    """``check()``'s first true value, polled every ``interval`` s; after ``timeout`` an AssertionError
    naming ``what`` (and the tail of ``log``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen in {timeout:g} s" + (f": {log.read_text()[-3000:]}" if log else ""))


@contextmanager
def redis_server(folder: Path):
    """A real ``redis-server`` on a free loopback port, no persistence; yields its URL, stops it after."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise AssertionError("redis-server is missing: scripts/setup.sh installs it (Debian package redis-server)")
    import redis
    port = free_port()
    log = Path(folder) / "redis.log"
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _pings(redis.Redis(port=port)), "redis-server start", log=log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(r) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the 'postgres' user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_cluster(root: Path):
    """A throw-away PostgreSQL cluster (``initdb`` + ``postgres``, fsync off) in ``root`` on a free
    loopback port; yields its URL (user ``tinyml``, database ``postgres``), stops it after."""
    bindir = _pg_bin()
    if bindir is None:
        raise AssertionError("PostgreSQL is missing: scripts/setup.sh installs it (Debian package postgresql)")
    root = Path(root)
    data = root / "cluster"
    data.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(data, pw.pw_uid, pw.pw_gid)
        os.chmod(root, 0o755)
        for parent in root.parents:   # pytest's and mkdtemp's folders are 0700
            if str(parent).startswith(tempfile.gettempdir()):
                os.chmod(parent, os.stat(parent).st_mode | 0o711)
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tinyml",
                                 "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    log = root / "postgres.log"
    proc = subprocess.Popen(_as_postgres([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                                          "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    url = f"postgresql://tinyml@127.0.0.1:{port}/postgres"

    def ready():
        import psycopg
        try:
            with psycopg.connect(url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False
    try:
        wait_for(ready, "PostgreSQL start", log=log)
        yield url
    finally:
        # fast shutdown, sent to the postmaster itself (runuser does not forward signals)
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
