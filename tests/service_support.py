"""A real ``tinyml serve`` in a subprocess on a free loopback port, for the service tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def tinyml(*args, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


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
