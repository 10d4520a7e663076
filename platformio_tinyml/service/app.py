"""The FastAPI application: routers, limits, error answers, health and metrics.

:func:`create_app` wires a :class:`~.core.Service` into the app; its
lifespan starts the job runner and stops it (a running compile is left
``running`` and queued again at the next start). Every error answer is
``{"detail": "one line"}``, the line ``tinyml compile`` would print.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from .. import __version__
from ..errors import TinyMLError
from . import catalog, compilations
from .core import Service
from .schemas import HealthOut

log = logging.getLogger("tinyml.service")


class _Limits:
    """ASGI middleware: refuse bodies over the upload limit (413) and log one line per request."""

    def __init__(self, app, max_body: int, log_requests: bool):
        self.app, self.max_body, self.log_requests = app, max_body, log_requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        seen = [0]
        parts = _PartHeaders.of(headers.get(b"content-type", b""))

        async def counted_receive():
            message = await receive()
            body = message.get("body", b"")
            seen[0] += len(body)
            if seen[0] > self.max_body:
                raise _TooLarge()
            if parts is not None and not parts.feed(body):
                raise _BadPartHeader()
            return message

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if not length.isdigit() or int(length) > self.max_body:
                await self._too_large(scope, receive, logged_send)
            else:
                await self.app(scope, counted_receive, logged_send)
        except _TooLarge:
            if not status[0]:
                await self._too_large(scope, receive, logged_send)
        except _BadPartHeader:
            if not status[0]:
                await JSONResponse({"detail": "a multipart part header (a file name) is not UTF-8. Rename the file "
                                              "(printable UTF-8)"}, status_code=400)(scope, receive, logged_send)
        if self.log_requests:
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0],
                     (time.perf_counter() - started) * 1000)

    async def _too_large(self, scope, receive, send):
        response = JSONResponse({"detail": f"request body larger than the upload limit of {self.max_body:,} bytes. "
                                           "Send a smaller model, or raise max_upload_mb"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class _BadPartHeader(Exception):
    pass


class _PartHeaders:
    """Checks that every part header of a multipart body is UTF-8, as the body streams by.

    The form parser decodes a file name that is not UTF-8 as Latin-1, after
    which it cannot be told from a real name: the raw bytes are checked here.
    A part's headers follow the boundary, which by the multipart rules occurs
    nowhere else in the body.
    """

    def __init__(self, boundary: bytes):
        self.marker = b"--" + boundary
        self.buf = b""

    @classmethod
    def of(cls, content_type: bytes) -> "_PartHeaders | None":
        if not content_type.lower().startswith(b"multipart/form-data"):
            return None
        for param in content_type.split(b";")[1:]:
            key, _, value = param.strip().partition(b"=")
            if key.lower() == b"boundary" and value.strip(b'"'):
                return cls(value.strip(b'"'))
        return None

    def feed(self, chunk: bytes) -> bool:
        data, start = self.buf + chunk, 0
        while (at := data.find(self.marker, start)) >= 0:
            end = data.find(b"\r\n\r\n", at)
            if end < 0:
                self.buf = data[at:at + 65536]   # headers not complete yet
                return True
            try:
                data[at:end].decode("utf-8")
            except UnicodeDecodeError:
                return False
            start = end
        self.buf = data[max(start, len(data) - len(self.marker)):]
        return True


def create_app(svc: Service, start_runner: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_runner:
            svc.start()
        yield
        svc.stop()

    app = FastAPI(title="platformio-tinyml service", version=__version__, lifespan=lifespan,
                  openapi_url="/v1/openapi.json", docs_url="/docs", redoc_url=None,
                  description="Compile trained models into C for microcontrollers, once per content key.")
    app.state.service = svc
    app.include_router(compilations.router)
    app.include_router(catalog.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(TinyMLError)
    async def _user_error(request, exc: TinyMLError):
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=getattr(exc, "status", 422))

    @app.get("/v1/health", response_model=HealthOut, tags=["service"])
    def health():
        """Liveness and the job counts; no token needed."""
        return {"status": "ok", "version": __version__, "workers": svc.cfg.workers, "jobs": svc.jobs_by_state()}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"],
             responses={200: {"content": {"text/plain": {}}}})
    def metrics():
        """Prometheus text format: jobs by state, cache hits and misses, compile seconds per backend."""
        return PlainTextResponse(svc.metrics.render(svc.jobs_by_state()),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    # the form fields and a manifest ride beside the model: 1 MiB of slack over the model's limit
    app.add_middleware(_Limits, max_body=svc.cfg.max_upload_bytes + (1 << 20), log_requests=svc.cfg.log_requests)
    return app
