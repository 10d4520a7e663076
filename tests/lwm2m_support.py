"""A hand-written LwM2M client for the server tests: fixed answers, written byte by byte.

:class:`RawDevice` runs an aiocoap context in its own thread (the tests stay
synchronous and call the REST API with httpx). It registers, updates and
sends from the same socket it answers on, like a real client, and answers
each ``(method, path)`` with the payload and content format the test gives,
so the server is checked against bytes we wrote, not bytes our encoder made.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import aiocoap
from aiocoap import Message
from aiocoap import resource as coap_resource
from aiocoap.numbers.codes import Code


class _Site(coap_resource.ObservableResource):
    def __init__(self, device: "RawDevice"):
        super().__init__()
        self.device = device

    async def add_observation(self, request, serverobservation):
        path = "/" + "/".join(request.opt.uri_path)
        if ("GET", path) in self.device.observable:
            self.device.observations[path] = serverobservation
            serverobservation.accept(lambda: self.device.observations.pop(path, None))

    async def needs_blockwise_assembly(self, request):
        return True

    async def render(self, request):
        path = "/" + "/".join(request.opt.uri_path)
        key = (request.code.name, path)
        self.device.received.append((request.code.name, path, request.opt.accept, request.opt.content_format,
                                     tuple(request.opt.uri_query), bytes(request.payload)))
        asked = request.opt.accept if request.code.name == "GET" else request.opt.content_format
        answer = self.device.answers.get((*key, None if asked is None else int(asked)), self.device.answers.get(key))
        if answer is None:
            return Message(code=Code.NOT_FOUND)
        code, fmt, payload = answer
        msg = Message(code=code, payload=payload)
        if fmt is not None:
            msg.opt.content_format = fmt
        return msg


class RawDevice:
    def __init__(self):
        self.answers: dict[tuple, tuple[Code, int | None, bytes]] = {}
        self.received: list[tuple] = []
        self.observable: set = set()          # ("GET", path) the device lets the server observe
        self.observations: dict = {}          # path -> aiocoap server observation
        self.location: tuple[str, ...] = ()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ctx = self.run(aiocoap.Context.create_server_context(_Site(self), bind=("127.0.0.1", free_udp_port()),
                                                                  transports=["udp6"]))

    def run(self, coro, timeout: float = 20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def answer(self, method: str, path: str, payload: bytes, fmt: int | None, code: Code = Code.CONTENT,
               when: int | None = None) -> None:
        """Answer ``method path``; with ``when``, only requests with that Accept (GET) or Content-Format (others)."""
        self.answers[(method, path) if when is None else (method, path, when)] = (code, fmt, payload)

    def notify(self, path: str, payload: bytes, fmt: int) -> bool:
        """Change ``path``'s answer and notify its observer; False when nobody observes it."""
        self.answer("GET", path, payload, fmt)

        async def go():
            obs = self.observations.get(path)
            if obs is not None:
                obs.trigger()
            return obs is not None
        return self.run(go())

    def request(self, server_port: int, method: Code, path: str, query: str = "", payload: bytes = b"",
                fmt: int | None = None) -> Message:
        async def go():
            msg = Message(code=method, uri=f"coap://127.0.0.1:{server_port}{path}" + (f"?{query}" if query else ""),
                          payload=payload)
            if fmt is not None:
                msg.opt.content_format = fmt
            return await self.ctx.request(msg).response
        return self.run(go())

    def register(self, server_port: int, ep: str, links: str, lt: int = 300, version: str = "1.1",
                 binding: str = "U") -> Message:
        resp = self.request(server_port, Code.POST, "/rd", f"ep={ep}&lt={lt}&lwm2m={version}&b={binding}",
                            links.encode(), fmt=40)
        if resp.code == Code.CREATED:
            self.location = tuple(resp.opt.location_path)
        return resp

    def update(self, server_port: int, query: str = "", links: str = "") -> Message:
        return self.request(server_port, Code.POST, "/" + "/".join(self.location), query, links.encode(),
                            fmt=40 if links else None)

    def deregister(self, server_port: int) -> Message:
        return self.request(server_port, Code.DELETE, "/" + "/".join(self.location))

    def close(self) -> None:
        try:
            self.run(self.ctx.shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
