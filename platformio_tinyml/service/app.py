"""The FastAPI application: routers, limits, error answers, health and metrics.

:func:`create_app` wires a :class:`~.core.Service` into the app; its
lifespan starts the job runner and stops it (a running compile is left
``running`` and queued again at the next start), and runs the LwM2M server
(:mod:`platformio_tinyml.lwm2m.server`) on the same event loop. Every error answer is
``{"detail": "one line"}``, the line ``tinyml compile`` would print.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from .. import __version__
from ..errors import TinyMLError
from . import catalog, compilations, console, deployments, devices, packages
from .core import Service
from .schemas import HealthOut

log = logging.getLogger("tinyml.service")


class _Limits:
    """ASGI middleware: the upload limit (413), UTF-8 part headers (400), one log line per request.

    A request body is read whole before the app sees it (it is at most the
    upload limit, and the form parser would read it all anyway): an oversize
    body is refused after ``max_body`` bytes, and a multipart body whose part
    headers (file names) are not UTF-8 is refused, which the form parser
    cannot tell after it has decoded them as Latin-1.
    """

    def __init__(self, app, max_body: int, log_requests: bool, svc: Service | None = None):
        self.app, self.max_body, self.log_requests = app, max_body, log_requests
        self.hits = _HitsByKey(svc) if svc is not None else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refusal, receive, body = await self._read_body(scope, receive)
        if refusal is not None:
            await refusal(scope, receive, logged_send)
        elif self.hits is None or not await self.hits.serve(scope, body, receive, logged_send, self.app):
            await self.app(scope, receive, logged_send)
        if self.log_requests:
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0],
                     (time.perf_counter() - started) * 1000)

    async def _read_body(self, scope, receive):
        """(a refusal response or None, the receive callable the app gets, the body read or None)."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and length == b"0":
            return None, receive, None
        if not length.isdigit() or int(length) > self.max_body:
            return self._too_large(), receive, None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None, receive, None   # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return self._too_large(), receive, None
            more = message.get("more_body", False)
        body = b"".join(chunks)
        boundary = _boundary(headers.get(b"content-type", b""))
        if boundary and not _part_headers_utf8(body, boundary):
            return JSONResponse({"detail": "a file name in the multipart body is not UTF-8. Rename the file "
                                           "(printable UTF-8)"}, status_code=400), receive, None
        replayed = [False]

        async def replay():
            if replayed[0]:
                return await receive()
            replayed[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        return None, replay, body

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": f"request body larger than the upload limit of {self.max_body:,} bytes. "
                                       "Send a smaller model, or raise max_upload_mb"}, status_code=413)


class _HitsByKey:
    """Repeated cache hits by key (``POST /v1/compilations/lookup``) answered before routing.

    A hit's answer never changes (a succeeded build and the project's compilation of
    it are never changed or removed), so the bytes FastAPI answered a request with
    are kept under (the caller's project, the request body's digest) and the same
    request from the same project is answered with them again: no validation,
    routing, key computation or database. The token is still checked on every
    request (``Service.caller_of``, which keeps answers 5 s); a request this path
    does not know, and every miss or error, goes through the app as before.
    """

    PATH = "/v1/compilations/lookup"

    def __init__(self, svc: Service):
        self.svc = svc

    async def serve(self, scope, body: bytes | None, receive, send, app) -> bool:
        """True when the request was answered here (a known hit, or one the app answered now)."""
        if scope["path"] != self.PATH or scope["method"] != "POST" or body is None:
            return False
        token = _bearer_token(scope)
        who = self.svc.caller_of(token) if token else None
        if who is None or "read" not in who.scopes:
            return False   # the app answers 401/403
        memo = (who.project_id, hashlib.blake2b(body, digest_size=20).digest())
        answer = self.svc.hits.get(memo)
        if answer is not None:
            self.svc.metrics.count_cache(True)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(answer)).encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})
            return True
        status, parts = [0], []

        async def kept_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and status[0] == 200:
                parts.append(message.get("body", b""))
            await send(message)

        await app(scope, receive, kept_send)
        if status[0] == 200 and parts:
            self.svc.hits.put(memo, b"".join(parts))
        return True


def _bearer_token(scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def _lwm2m_server(svc: Service):
    """The LwM2M server the settings ask for (on the event loop of the HTTP server), or None."""
    cfg = svc.cfg
    if not cfg.lwm2m_port:
        return None
    from ..lwm2m.ids import load_definitions
    from ..lwm2m.packages import Packages
    from ..lwm2m.server import LwM2MServer, Settings
    from ..lwm2m.store import DeviceStore
    psk = {}
    if cfg.lwm2m_psk_file:
        from ..lwm2m.dtls import load_psk_file
        psk = load_psk_file(cfg.lwm2m_psk_file)
    return LwM2MServer(DeviceStore(svc.Session), load_definitions(cfg.lwm2m_object_id), Settings(
        host=cfg.host, port=cfg.lwm2m_port, request_timeout_s=cfg.lwm2m_timeout_s,
        queue_wait_s=cfg.lwm2m_queue_wait_s, awake_s=cfg.lwm2m_awake_s, flood_count=cfg.lwm2m_flood_count,
        server_id=cfg.lwm2m_server_id, liveness_s=cfg.lwm2m_lease_s, public_host=cfg.lwm2m_public_host or None,
        dtls_port=cfg.lwm2m_dtls_port, psk=psk),
        packages=Packages(svc.store))


def _boundary(content_type: bytes) -> bytes | None:
    if not content_type.lower().startswith(b"multipart/form-data"):
        return None
    for param in content_type.split(b";")[1:]:
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"boundary" and value.strip(b'"'):
            return value.strip(b'"')
    return None


def _part_headers_utf8(body: bytes, boundary: bytes) -> bool:
    """True when every part's headers are UTF-8 (the boundary occurs nowhere but before them)."""
    marker, at = b"--" + boundary, 0
    while (at := body.find(marker, at)) >= 0:
        end = body.find(b"\r\n\r\n", at)
        end = len(body) if end < 0 else end
        try:
            body[at:end].decode("utf-8")
        except UnicodeDecodeError:
            return False
        at = end
    return True


def create_app(svc: Service, start_runner: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_runner:
            svc.start()
        app.state.lwm2m = _lwm2m_server(svc)
        app.state.deliveries = app.state.deployments = None
        if app.state.lwm2m is not None:
            await app.state.lwm2m.start()
            from ..lwm2m.delivery import Deliveries
            from ..lwm2m.deployments import Deployments
            # one registry for single deliveries and deployments: never two transfers to one device
            app.state.deliveries = Deliveries(app.state.lwm2m)
            app.state.deployments = Deployments(app.state.lwm2m, app.state.deliveries, svc.Session, svc.store,
                                                lease_s=svc.cfg.lwm2m_lease_s)
            await app.state.deployments.resume()
        yield
        if app.state.deployments is not None:
            await app.state.deployments.stop()
        if app.state.lwm2m is not None:
            await app.state.lwm2m.stop()
        svc.stop()

    app = FastAPI(title="platformio-tinyml service", version=__version__, lifespan=lifespan,
                  openapi_url="/v1/openapi.json", docs_url="/docs", redoc_url=None,
                  description="Compile trained models into C for microcontrollers, once per content key.")
    app.state.service = svc
    app.include_router(compilations.router)
    app.include_router(catalog.router)
    app.include_router(devices.router)
    app.include_router(deployments.router)
    app.include_router(packages.router)
    app.include_router(console.router)     # the web console at /: pages, not in the OpenAPI document

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
    app.add_middleware(_Limits, max_body=svc.cfg.max_upload_bytes + (1 << 20), log_requests=svc.cfg.log_requests,
                       svc=svc)
    return app
