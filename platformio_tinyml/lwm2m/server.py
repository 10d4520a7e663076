"""The LwM2M 1.1 server: Registration interface, device management, Observe, Send.

One aiocoap context serves the Registration interface (``/rd``) and Send
(``/dp``) and sends every request to the devices, so a request leaves from
the socket the device registered to (clients drop anything else). The
endpoint name is the identity: a Register under a known name replaces that
device's registration, wherever it comes from. A registration ends with
De-register, or when its lifetime runs out (the device is then offline).

Queue mode (binding ``UQ``, or the 1.1 ``Q`` parameter): a device is
reachable for ``awake_s`` after each Register or Update; a request made
while it sleeps waits for its next Update (at most ``queue_wait_s``).

The device management calls (:meth:`LwM2MServer.read`, ``write``, ``execute``,
``discover``, ``write_attributes``, ``observe``, ``cancel_observe``) raise
:class:`DeviceCallError`, whose ``status`` is the HTTP status the REST API
answers: 404 unknown device, 409 offline or asleep, 424 the device did not
answer or answered with an error or a payload we cannot read (a device's
4.xx keeps its meaning: 4.04 -> 404, 4.05 -> 405, ...).

Content formats: every request carries an Accept option. The formats offered
depend on the device's LwM2M version (1.1+: SenML-CBOR, SenML-JSON, TLV, then
plain text or opaque for a single resource; 1.0: plain text or opaque, then
TLV) and on what it did before: the format it last answered in comes first,
and one it refused with 4.06, 4.15 or 5.00 is dropped, the request going out
again in the next one. An answer in a format other than the one asked for is
read if we can (one log line); one we cannot read is one log line and a 424.

A request to the server with a critical option it does not process is
answered 4.02 Bad Option (Proxy-Uri and Proxy-Scheme: 5.05), never half-served.

Several servers on one database (PostgreSQL): each has an id (``server_id``,
default ``HOST:PORT``), records it in the registrations it takes, and writes
a heartbeat every ``liveness_s / 3``; the registrations of a server silent
for ``liveness_s`` end, and a registration here that another server replaced
(the device registered there) is forgotten here at the next heartbeat, so no
two servers talk to one device for long. A restarted server with the same id
ends its own earlier registrations at once.

DTLS-PSK (``dtls_port``, :mod:`.dtls`): a second aiocoap context serves the
same interfaces on coaps://HOST:DTLS_PORT with the keys in ``psk``; requests
to a device go out on the context (and the DTLS session) it registered on. A
device registering over DTLS must use its PSK identity as its endpoint name;
an endpoint name that has a key is refused over plain UDP.

Pull delivery: ``GET /pkg/<sha256>`` serves what :meth:`LwM2MServer.publish`
published, block-wise (:mod:`.packages`).

Bad input from the network (malformed messages, unknown registrations,
oversized payloads, floods, bad SenML) costs one log line and an error
answer; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import datetime as dt
import re
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import aiocoap
from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap import resource as coap_resource
from aiocoap.numbers.codes import Code

from .capabilities import capabilities_from_values
from .codec import CodecError, ContentFormat, Link, decode, decode_records, encode, parse_links, to_json
from .dtls import identity_of, is_dtls
from .ids import Definitions, LwM2MError, ObjectId, ResourcePath, ResourceType
from .packages import PATH as PKG
from .packages import PackageError, Packages, coap_response
from .store import DeviceStore, NewRegistration
from .tuning import transmission

log = logging.getLogger("tinyml.service.lwm2m")

DEFAULT_LIFETIME_S = 86400
ENDPOINT = re.compile(r"^[\x21-\x7e]{1,200}$")       # printable ASCII, no spaces
BINDING = re.compile(r"^[UMHSTNQ]{1,6}$")
VERSIONS = ("1.0", "1.1", "1.2")
_HTTP_OF_COAP = {Code.BAD_REQUEST: 400, Code.UNAUTHORIZED: 403, Code.FORBIDDEN: 403, Code.NOT_FOUND: 404,
                 Code.METHOD_NOT_ALLOWED: 405, Code.NOT_ACCEPTABLE: 406, Code.REQUEST_ENTITY_TOO_LARGE: 413,
                 Code.UNSUPPORTED_CONTENT_FORMAT: 415}
# the critical options (odd numbers) a request to us may carry: Uri-Host, Uri-Port, Uri-Path, Uri-Query,
# Accept, Block2, Block1 and Request-Tag; any other critical one is answered 4.02 Bad Option (RFC 7252 5.4.1)
_CRITICAL_OPTIONS = frozenset((3, 7, 11, 15, 17, 23, 27, 292))
_PROXY_OPTIONS = frozenset((35, 39))             # Proxy-Uri, Proxy-Scheme: 5.05, we are no proxy
_FORMAT_REFUSALS = (Code.NOT_ACCEPTABLE, Code.UNSUPPORTED_CONTENT_FORMAT, Code.INTERNAL_SERVER_ERROR)
class DeviceCallError(LwM2MError):
    """A device management call that failed; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, what: str, hint: str | None = None, coap: Code | None = None):
        self.status, self.coap = status, coap
        super().__init__(what, hint=hint)


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5683
    request_timeout_s: float = 10.0     # one device request, retransmissions included
    queue_wait_s: float = 30.0          # how long a request waits for a sleeping device's Update
    awake_s: float = 20.0               # a queue-mode device listens this long after Register/Update
    max_payload: int = 64 * 1024        # Register, Update and Send bodies
    flood_count: int = 20               # registrations per address ...
    flood_window_s: float = 10.0        # ... within this window
    public_host: str | None = None      # the host in package URIs (default: ``host``, unless that is a wildcard)
    server_id: str = ""                 # this server among those sharing the database (default HOST:PORT)
    liveness_s: float = 15.0            # a server without a heartbeat for this long is gone (its devices too)
    dtls_port: int = 0                  # coaps:// (DTLS-PSK) port on ``host``; 0: no DTLS
    psk: dict = field(default_factory=dict)     # PSK identity (= endpoint name) -> key (at most 16 bytes)


@dataclass
class Reg:
    """A live registration (the database has the same and its history)."""
    id: str
    endpoint: str
    project_id: int
    remote: object                      # the aiocoap remote the device registered from
    version: str
    binding: str
    lifetime_s: int
    links: list[Link]
    queue: bool
    awake_until: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    expiry: asyncio.TimerHandle | None = None
    observations: dict = field(default_factory=dict)     # path text -> (request, task)
    formats: dict = field(default_factory=dict)          # kind (see _kind) -> the format it last used
    refused: dict = field(default_factory=dict)          # kind -> formats it refused (4.06/4.15/5.00)
    odd_formats: set = field(default_factory=set)        # (asked, got) pairs already logged

    @property
    def objects(self) -> set[int]:
        return {lk.path.object for lk in self.links if lk.path is not None}


class LwM2MServer:
    def __init__(self, store: DeviceStore, defs: Definitions, settings: Settings | None = None,
                 packages: Packages | None = None):
        self.store, self.defs, self.cfg = store, defs, settings or Settings()
        self.packages = packages if packages is not None else Packages()
        self.ctx: aiocoap.Context | None = None
        self.dtls_ctx: aiocoap.Context | None = None
        self.regs: dict[str, Reg] = {}            # endpoint -> registration
        self.by_id: dict[str, Reg] = {}
        self._recent: dict[str, deque] = {}       # address -> times of recent Registers
        self._flood_logged: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self.id = self.cfg.server_id or f"{socket.gethostname()}:{self.cfg.port}"

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.store.server_started, self.id, f"{self.cfg.host}:{self.cfg.port}")
        host = "::" if self.cfg.host in ("0.0.0.0", "::", "") else self.cfg.host
        self.ctx = await aiocoap.Context.create_server_context(_Root(self), bind=(host, self.cfg.port),
                                                               transports=["udp6"], loggername="tinyml.service.coap")
        if self.cfg.dtls_port:
            from . import dtls
            try:
                self.dtls_ctx = await dtls.server_context(_Root(self), self.cfg.host, self.cfg.dtls_port, self.cfg.psk)
            except BaseException:
                await self.ctx.shutdown()
                self.ctx = None
                raise
            log.info("LwM2M server '%s' on coaps://%s:%d (DTLS-PSK, %d identities)", self.id, self.cfg.host,
                     self.cfg.dtls_port, len(self.cfg.psk))
        self._spawn(self._heartbeat())
        log.info("LwM2M server '%s' on coap://%s:%d (UDP)", self.id, self.cfg.host, self.cfg.port)

    def ctx_for(self, reg: Reg) -> aiocoap.Context:
        """The context a request to the device leaves from: the one (plain or DTLS) it registered on."""
        return self.dtls_ctx if is_dtls(reg.remote) else self.ctx

    async def _heartbeat(self) -> None:
        """Say this server is alive; end the registrations of servers that stopped saying so, and
        forget the devices that registered with another server since the last beat."""
        since = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        while True:
            await asyncio.sleep(self.cfg.liveness_s / 3)
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            try:
                ended = await asyncio.to_thread(self.store.heartbeat, self.id, self.cfg.liveness_s)
                moved = await asyncio.to_thread(self.store.replaced_since, self.id, since)
            except Exception as e:      # the database is away for a moment: beat again later
                log.warning("lwm2m: heartbeat of '%s' failed: %s", self.id, " ".join(str(e).split())[:300])
                continue
            since = now
            if ended:
                log.info("lwm2m: %d registration(s) of stopped server(s) ended", ended)
            for reg_id in moved:
                reg = self.by_id.get(reg_id)
                if reg is not None and self.regs.get(reg.endpoint) is reg:
                    self._forget(reg)
                    log.info("lwm2m: '%s' registered with another server: forgotten here", reg.endpoint)

    async def stop(self) -> None:
        for reg in list(self.regs.values()):
            self._forget(reg)
        for task in list(self._tasks):
            task.cancel()
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None
        if self.dtls_ctx is not None:
            await self.dtls_ctx.shutdown()
            self.dtls_ctx = None

    def publish(self, data: bytes) -> str:
        """Serve ``data`` for pull delivery; returns its URI, ``coap://HOST:PORT/pkg/<sha256>`` (Block2)."""
        base = self._package_base()          # first: no host, nothing published
        return base + self.packages.publish(data)

    def package_uri(self, digest: str) -> str:
        return self._package_base() + digest

    def _package_base(self) -> str:
        host = self.cfg.public_host or self.cfg.host
        if host in ("0.0.0.0", "::", ""):
            raise LwM2MError(f"no host for package URIs: the LwM2M server listens on '{host}' (all addresses)",
                             hint="Set lwm2m_public_host (TINYML_SERVICE_LWM2M_PUBLIC_HOST) to the address devices "
                                  "reach the LwM2M server at")
        host = f"[{host}]" if ":" in host else host
        return f"coap://{host}:{self.cfg.port}/{PKG}/"

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the Registration interface ------------------------------------------------------
    async def register(self, request: Message) -> Message:
        address = _address(request.remote)
        if self._flooding(address):
            return Message(code=Code.TOO_MANY_REQUESTS, payload=b"too many registrations from this address")
        query = _query(request)
        ep = query.get("ep")
        if not ep or not ENDPOINT.match(ep):
            raise _Refusal(Code.BAD_REQUEST, f"Register from {address}: missing or invalid endpoint name "
                                             f"{(ep or '')[:60]!r}")
        version, binding, lifetime = self._params(query, "1.0", "U", DEFAULT_LIFETIME_S, f"Register '{ep}'")
        links = self._links(request, f"Register '{ep}'")
        self._check_identity(request, ep, f"Register '{ep}' from {address}")
        project = await asyncio.to_thread(self.store.project_for, ep)
        if project is None:
            raise _Refusal(Code.FORBIDDEN, f"Register '{ep}' from {address}: no project allows this endpoint "
                                           "name (tinyml service devices allow --project P --pattern GLOB)")
        old = self.regs.get(ep)
        if old is not None:
            self._forget(old)
            log.info("lwm2m: '%s' registers again from %s (was %s): old registration replaced", ep, address,
                     _address(old.remote))
        reg_id = await asyncio.to_thread(self.store.registered, NewRegistration(
            ep, project, address, version, binding, lifetime, [[lk.target, lk.attrs] for lk in links], self.id))
        reg = Reg(reg_id, ep, project, request.remote, version, binding, lifetime, links,
                  queue="Q" in binding or "Q" in query)
        self.regs[ep], self.by_id[reg_id] = reg, reg
        self._seen(reg)
        log.info("lwm2m: '%s' registered from %s (LwM2M %s, binding %s, lifetime %d s, %d links)", ep, address,
                 version, binding, lifetime, len(links))
        self._spawn(self._read_capabilities(reg))
        return Message(code=Code.CREATED, location_path=("rd", reg_id))

    async def update(self, request: Message, reg_id: str) -> Message:
        reg = self.by_id.get(reg_id)
        if reg is None:
            raise _Refusal(Code.NOT_FOUND, f"Update of unknown registration '{reg_id[:40]}' from "
                                           f"{_address(request.remote)} (the device must register again)")
        self._check_identity(request, reg.endpoint, f"Update of '{reg.endpoint}' from {_address(request.remote)}")
        query = _query(request)
        reg.version, reg.binding, reg.lifetime_s = self._params(query, reg.version, reg.binding, reg.lifetime_s,
                                                                f"Update '{reg.endpoint}'")
        changes = {"binding": reg.binding, "lifetime_s": reg.lifetime_s}
        if request.payload:
            reg.links = self._links(request, f"Update '{reg.endpoint}'")
            changes["objects"] = [[lk.target, lk.attrs] for lk in reg.links]
        if _address(request.remote) != _address(reg.remote):
            reg.remote, changes["address"] = request.remote, _address(request.remote)
        elif is_dtls(request.remote):
            reg.remote = request.remote          # the DTLS session now in use (a new handshake makes a new one)
        await asyncio.to_thread(self.store.updated, reg.id, **changes)
        self._seen(reg)
        return Message(code=Code.CHANGED)

    async def deregister(self, request: Message, reg_id: str) -> Message:
        reg = self.by_id.get(reg_id)
        if reg is None:
            raise _Refusal(Code.NOT_FOUND, f"De-register of unknown registration '{reg_id[:40]}'")
        self._check_identity(request, reg.endpoint, f"De-register of '{reg.endpoint}' from {_address(request.remote)}")
        self._forget(reg)
        await asyncio.to_thread(self.store.ended, reg.id, "deregistered")
        log.info("lwm2m: '%s' deregistered", reg.endpoint)
        return Message(code=Code.DELETED)

    async def send(self, request: Message) -> Message:
        """LwM2M Send (``POST /dp``): SenML values of any objects, stored with their times."""
        reg = next((r for r in self.regs.values() if _address(r.remote) == _address(request.remote)
                    and is_dtls(r.remote) == is_dtls(request.remote)), None)
        if reg is None:
            raise _Refusal(Code.FORBIDDEN, f"Send from {_address(request.remote)}, which is not registered")
        fmt = request.opt.content_format
        fmt = None if fmt is None else int(fmt)
        if fmt not in (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR):
            raise _Refusal(Code.UNSUPPORTED_CONTENT_FORMAT, f"Send from '{reg.endpoint}': content format {fmt} "
                                                            "(Send takes SenML-JSON 110 or SenML-CBOR 112)")
        try:
            records = decode_records(fmt, request.payload, None, self.defs)
        except CodecError as e:
            raise _Refusal(Code.BAD_REQUEST, f"Send from '{reg.endpoint}': {e}") from None
        self._note_unknown(reg, {r.path for r in records}, "sent")
        await asyncio.to_thread(self.store.add_values, reg.endpoint,
                                [(str(r.path), to_json(r.value), r.time) for r in records], "send")
        self._seen(reg)
        return Message(code=Code.CHANGED)

    def _check_identity(self, request: Message, ep: str, where: str) -> None:
        """Over DTLS the endpoint name is the PSK identity; a name that has a key comes over DTLS only."""
        if is_dtls(request.remote):
            identity = identity_of(request.remote)
            if identity != ep:
                raise _Refusal(Code.FORBIDDEN, f"{where}: over DTLS the endpoint name must be the PSK identity "
                                               f"(authenticated as {identity!r})")
        elif ep in self.cfg.psk:
            raise _Refusal(Code.FORBIDDEN, f"{where}: '{ep}' has a pre-shared key: it registers over coaps:// only")

    def _params(self, query: dict, version: str, binding: str, lifetime: int, where: str) -> tuple[str, str, int]:
        version = query.get("lwm2m", version)
        binding = query.get("b", binding)
        if version not in VERSIONS:
            raise _Refusal(Code.PRECONDITION_FAILED, f"{where}: LwM2M version {version[:20]!r} is not supported "
                                                     f"({', '.join(VERSIONS)})")
        if not BINDING.match(binding):
            raise _Refusal(Code.BAD_REQUEST, f"{where}: invalid binding {binding[:20]!r}")
        lt = query.get("lt", str(lifetime))
        if not lt.isdigit() or not 1 <= int(lt) <= 10 ** 8:
            raise _Refusal(Code.BAD_REQUEST, f"{where}: invalid lifetime {lt[:20]!r} (seconds, 1 or more)")
        return version, binding, int(lt)

    def _links(self, request: Message, where: str) -> list[Link]:
        if len(request.payload) > self.cfg.max_payload:
            raise _Refusal(Code.REQUEST_ENTITY_TOO_LARGE, f"{where}: object list of {len(request.payload):,} bytes "
                                                          f"(at most {self.cfg.max_payload:,})")
        try:
            return parse_links(request.payload) if request.payload else []
        except CodecError as e:
            raise _Refusal(Code.BAD_REQUEST, f"{where}: {e}") from None

    def _flooding(self, address: str) -> bool:
        host = address.rsplit(":", 1)[0]
        now = time.monotonic()
        recent = self._recent.setdefault(host, deque())
        while recent and recent[0] < now - self.cfg.flood_window_s:
            recent.popleft()
        if len(recent) >= self.cfg.flood_count:
            if self._flood_logged.get(host, 0) < now - self.cfg.flood_window_s:
                self._flood_logged[host] = now
                log.warning("lwm2m: refusing registrations from %s: more than %d in %.0f s (4.29; logged once "
                            "per window)", host, self.cfg.flood_count, self.cfg.flood_window_s)
            return True
        recent.append(now)
        if len(self._recent) > 10000:
            self._recent = {h: q for h, q in self._recent.items() if q and q[-1] > now - self.cfg.flood_window_s}
        return False

    def _seen(self, reg: Reg) -> None:
        """A message from the device: restart its lifetime; a queue-mode device is awake for a while."""
        loop = asyncio.get_running_loop()
        if reg.expiry is not None:
            reg.expiry.cancel()
        reg.expiry = loop.call_later(reg.lifetime_s, lambda: self._spawn(self._expire(reg)))
        reg.awake_until = time.monotonic() + self.cfg.awake_s
        reg.wake.set()
        reg.wake = asyncio.Event()

    async def _expire(self, reg: Reg) -> None:
        if self.regs.get(reg.endpoint) is not reg:
            return
        self._forget(reg)
        await asyncio.to_thread(self.store.ended, reg.id, "expired")
        log.info("lwm2m: '%s' offline: no Update within its lifetime of %d s", reg.endpoint, reg.lifetime_s)

    def _forget(self, reg: Reg) -> None:
        if reg.expiry is not None:
            reg.expiry.cancel()
        for request, task in reg.observations.values():
            request.observation.cancel()
            task.cancel()
        reg.observations.clear()
        reg.wake.set()
        if self.regs.get(reg.endpoint) is reg:
            del self.regs[reg.endpoint]
        self.by_id.pop(reg.id, None)

    def _note_unknown(self, reg: Reg, paths, verb: str) -> None:
        unknown = sorted({p.object for p in paths if self.defs.object(p.object) is None})
        if unknown:
            log.info("lwm2m: '%s' %s values of object(s) %s, which have no definition here (kept untyped)",
                     reg.endpoint, verb, ", ".join(map(str, unknown)))

    async def _read_capabilities(self, reg: Reg) -> None:
        """On registration: read /3/0 and the TinyML object, keep the capabilities and profile."""
        tml = self.defs.tinyml_object_id
        try:
            if tml not in reg.objects:   # nothing to build a profile from: leave the device alone
                raise LwM2MError(f"device '{reg.endpoint}' has no TinyML object /{tml}",
                                 hint="Target it with an explicit board id or profile")
            values = {}
            for oid in (ObjectId.DEVICE, tml):
                if oid in reg.objects:
                    values.update(await self.read(reg.endpoint, ResourcePath(oid, 0)))
            caps = capabilities_from_values(values, reg.endpoint, tml)
            await asyncio.to_thread(self.store.set_capabilities, reg.endpoint, caps.to_dict(), None)
            log.info("lwm2m: '%s' can run modules for %s (%d B arena, kernel set %s)", reg.endpoint,
                     caps.profile.core, caps.profile.ram_bytes, caps.kernel_set)
        except LwM2MError as e:
            log.info("lwm2m: no capabilities for '%s': %s", reg.endpoint, e)
            await asyncio.to_thread(self.store.set_capabilities, reg.endpoint, None, str(e))

    # -- device management ----------------------------------------------------------------
    def _reg(self, endpoint: str) -> Reg:
        reg = self.regs.get(endpoint)
        if reg is None:
            raise DeviceCallError(409, f"device '{endpoint}' is offline (not registered)",
                                  hint="Wait for it to register; GET /v1/devices/{endpoint} shows when it was "
                                       "last seen, and which server holds it when several share the database")
        return reg

    def _kind(self, path: ResourcePath) -> str:
        """'single' / 'opaque': a single-instance resource (plain text / opaque carries it); 'multiple': the rest."""
        res = self.defs.resource(path.object, path.resource) if path.resource is not None else None
        if path.depth == 3 and res is not None and not res.multiple:
            return "opaque" if res.type == ResourceType.OPAQUE else "single"
        return "multiple"

    def _formats(self, reg: Reg, path: ResourcePath) -> list[int]:
        """The content formats to offer for ``path``, best first: the one the device last answered in, then
        the version's order (1.1+: SenML-CBOR, SenML-JSON, TLV, text; 1.0: text, TLV), less those it refused."""
        kind = self._kind(path)
        plain = {"single": [ContentFormat.TEXT], "opaque": [ContentFormat.OPAQUE], "multiple": []}[kind]
        if reg.version.startswith("1.0"):
            order = plain + [ContentFormat.TLV]
        else:
            order = [ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.TLV] + plain
        known = reg.formats.get(kind)
        if known in order:
            order.remove(known)
            order.insert(0, known)
        refused = reg.refused.get(kind, set())
        return [f for f in order if f not in refused] or order

    def content_formats(self, endpoint: str) -> dict | None:
        """What negotiation learnt of a registered device: the format it last used and those it refused, per
        kind of path ('single', 'opaque': a single-instance resource; 'multiple': the rest); None if offline."""
        reg = self.regs.get(endpoint)
        if reg is None:
            return None
        return {"used": {k: int(f) for k, f in sorted(reg.formats.items())},
                "refused": {k: sorted(int(f) for f in fs) for k, fs in sorted(reg.refused.items())}}

    def _accept(self, reg: Reg, path: ResourcePath) -> ContentFormat:
        return self._formats(reg, path)[0]

    def _answered(self, reg: Reg, path: ResourcePath, fmt: int) -> None:
        kind = self._kind(path)
        if reg.formats.get(kind) != fmt:
            reg.formats[kind] = fmt
            log.info("lwm2m: '%s' (LwM2M %s) uses %s for %s", reg.endpoint, reg.version, _fmt_name(fmt),
                     "single resources" if kind != "multiple" else "objects, instances and multiple resources")

    async def _negotiate(self, reg: Reg, path: ResourcePath, attempt):
        """``attempt(fmt)`` in each acceptable format until the device takes one; a 4.06, 4.15 or 5.00 answer
        moves on to the next format (and the device is not offered that one again)."""
        formats = self._formats(reg, path)
        for i, fmt in enumerate(formats):
            try:
                return fmt, await attempt(fmt)
            except DeviceCallError as e:
                if e.coap not in _FORMAT_REFUSALS or i == len(formats) - 1:
                    raise
                reg.refused.setdefault(self._kind(path), set()).add(fmt)
                log.info("lwm2m: '%s' refused %s for %s (%s): trying %s", reg.endpoint, _fmt_name(fmt), path,
                         e.coap.dotted, _fmt_name(formats[i + 1]))
        raise AssertionError("unreachable")

    async def _call(self, reg: Reg, code: Code, path: ResourcePath | None, *, payload: bytes = b"",
                    content_format: int | None = None, accept: int | None = None, query=(),
                    observe: int | None = None):
        """One request to the device from our socket; the aiocoap request once it answered with success."""
        await self._awake(reg)
        timeout = self.cfg.request_timeout_s
        msg = Message(code=code, payload=payload, uri_path=[str(i) for i in path.ids] if path else [],
                      transport_tuning=transmission(timeout))
        msg.remote = reg.remote
        msg.opt.accept = accept if accept is not None else self._accept(reg, path or ResourcePath(0))
        if content_format is not None:
            msg.opt.content_format = content_format
        if query:
            msg.opt.uri_query = list(query)
        if observe is not None:
            msg.opt.observe = observe
        request = self.ctx_for(reg).request(msg)
        where = f"{code.name} {path or '/'} on '{reg.endpoint}'"
        try:
            response = await asyncio.wait_for(request.response, timeout)
        except (asyncio.TimeoutError, coap_error.TimeoutError):
            raise DeviceCallError(424, f"{where}: no answer within {timeout:g} s "
                                       f"({transmission(timeout).MAX_RETRANSMIT + 1} transmissions)",
                                  hint="The device may be unreachable; it is offline once its lifetime ends") \
                from None
        except coap_error.Error as e:
            raise DeviceCallError(424, f"{where}: {type(e).__name__} ({e})") from None
        if not response.code.is_successful():
            status = _HTTP_OF_COAP.get(response.code, 424)
            detail = response.payload[:100].decode("utf-8", "replace") if response.payload else ""
            raise DeviceCallError(status, f"{where}: the device answered {response.code.dotted} "
                                          f"{response.code.name_printable}" + (f" ({detail})" if detail else ""),
                                  coap=response.code)
        return request, response

    async def _awake(self, reg: Reg) -> None:
        if not reg.queue or time.monotonic() < reg.awake_until:
            return
        wake = reg.wake
        try:
            await asyncio.wait_for(wake.wait(), self.cfg.queue_wait_s)
        except asyncio.TimeoutError:
            raise DeviceCallError(409, f"device '{reg.endpoint}' is asleep (queue mode) and sent no Update "
                                       f"within {self.cfg.queue_wait_s:g} s",
                                  hint="Retry later: requests go out when it next updates") from None
        if self.regs.get(reg.endpoint) is not reg:
            raise DeviceCallError(409, f"device '{reg.endpoint}' went offline while the request waited")

    def _decode(self, reg: Reg, response: Message, path: ResourcePath, asked: int | None = None) -> dict:
        fmt = response.opt.content_format
        fmt = None if fmt is None else int(fmt)
        if fmt is None and path.depth >= 3:
            fmt = ContentFormat.TEXT        # LwM2M 1.0 clients (lwm2m-node-lib) send text without the option
        try:
            values = decode(fmt if fmt is not None else -1, response.payload, path, self.defs)
        except CodecError as e:
            log.info("lwm2m: '%s' answered %s with content format %s that we cannot read: %s", reg.endpoint,
                     path, fmt, e)
            raise DeviceCallError(424, f"device '{reg.endpoint}' answered {path} with content format {fmt}: "
                                       f"{e}") from None
        self._note_unknown(reg, values, "answered with")
        if asked is not None and fmt != asked and (asked, fmt) not in reg.odd_formats:
            reg.odd_formats.add((asked, fmt))
            log.info("lwm2m: '%s' answered %s in %s, not the %s asked for (read all the same)", reg.endpoint,
                     path, _fmt_name(fmt), _fmt_name(asked))
        self._answered(reg, path, fmt)
        return values

    async def read(self, endpoint: str, path: ResourcePath, fmt: int | None = None) -> dict:
        """Read: ``{ResourcePath: value}`` of ``path`` (in ``fmt``, default: the device's best format)."""
        reg = self._reg(endpoint)
        if fmt is not None:
            _, response = await self._call(reg, Code.GET, path, accept=fmt)
        else:
            fmt, (_, response) = await self._negotiate(reg, path,
                                                       lambda f: self._call(reg, Code.GET, path, accept=f))
        return self._decode(reg, response, path, fmt)

    async def write(self, endpoint: str, path: ResourcePath, values: dict, replace: bool = True,
                    fmt: int | None = None) -> None:
        """Write ``values`` (full paths at or below ``path``): replace (PUT) or partial update (POST)."""
        reg = self._reg(endpoint)
        if path.depth < 2:
            raise DeviceCallError(400, f"write to {path}: give an object instance or a resource")

        async def attempt(f: int):
            try:
                payload = encode(f, values, path, self.defs)
            except CodecError as e:
                raise DeviceCallError(400, str(e)) from None
            return await self._call(reg, Code.PUT if replace else Code.POST, path, payload=payload,
                                    content_format=f, accept=f)

        if fmt:
            await attempt(fmt)
        else:
            fmt, _ = await self._negotiate(reg, path, attempt)
        self._answered(reg, path, fmt)

    async def execute(self, endpoint: str, path: ResourcePath, args: str | None = None) -> None:
        reg = self._reg(endpoint)
        if path.depth != 3:
            raise DeviceCallError(400, f"execute {path}: give a resource /object/instance/resource")
        res = self.defs.resource(path.object, path.resource)
        if res is not None and not res.executable:
            raise DeviceCallError(405, f"execute {path}: {res.name} is not executable (operations "
                                       f"'{res.operations or 'none'}')")
        await self._call(reg, Code.POST, path, payload=(args or "").encode("utf-8"),
                         content_format=ContentFormat.TEXT if args else None)

    async def discover(self, endpoint: str, path: ResourcePath) -> list[Link]:
        reg = self._reg(endpoint)
        _, response = await self._call(reg, Code.GET, path, accept=ContentFormat.LINK_FORMAT)
        try:
            return parse_links(response.payload)
        except CodecError as e:
            raise DeviceCallError(424, f"Discover {path} on '{endpoint}': {e}") from None

    async def write_attributes(self, endpoint: str, path: ResourcePath, attrs: dict) -> None:
        """Write-Attributes (``pmin``, ``pmax``, ``gt``, ``lt``, ``st``, ``epmin``, ``epmax``; None clears one)."""
        reg = self._reg(endpoint)
        bad = [k for k in attrs if k not in ("pmin", "pmax", "gt", "lt", "st", "epmin", "epmax")]
        if bad:
            raise DeviceCallError(400, f"write-attributes {path}: unknown attribute '{bad[0]}'")
        query = [k if v is None else f"{k}={v}" for k, v in attrs.items()]
        await self._call(reg, Code.PUT, path, query=query)

    async def observe(self, endpoint: str, path: ResourcePath, fmt: int | None = None) -> dict:
        """Observe ``path``: its current values; every notification is stored (source ``observe``)."""
        reg = self._reg(endpoint)
        await self.cancel_observe(endpoint, path)
        if fmt is not None:
            request, response = await self._call(reg, Code.GET, path, accept=fmt, observe=0)
        else:
            fmt, (request, response) = await self._negotiate(
                reg, path, lambda f: self._call(reg, Code.GET, path, accept=f, observe=0))
        values = self._decode(reg, response, path, fmt)
        await self._store(reg, values, "observe")
        if response.opt.observe is None:
            log.info("lwm2m: '%s' answered Observe %s without observing it", endpoint, path)
            return values
        task = asyncio.get_running_loop().create_task(self._follow(reg, path, request, fmt))
        reg.observations[str(path)] = (request, task)
        return values

    async def _follow(self, reg: Reg, path: ResourcePath, request, fmt: int) -> None:
        try:
            async for note in request.observation:
                try:
                    await self._store(reg, self._decode(reg, note, path, fmt), "observe")
                except DeviceCallError:
                    continue       # logged by _decode
        except coap_error.Error as e:
            log.info("lwm2m: observation of %s on '%s' ended (%s)", path, reg.endpoint, type(e).__name__)
        reg.observations.pop(str(path), None)

    async def cancel_observe(self, endpoint: str, path: ResourcePath) -> bool:
        """Stop storing notifications of ``path``; the device's next notification is answered with Reset."""
        reg = self._reg(endpoint)
        entry = reg.observations.pop(str(path), None)
        if entry is None:
            return False
        entry[0].observation.cancel()
        entry[1].cancel()
        return True

    async def _store(self, reg: Reg, values: dict, source: str) -> None:
        await asyncio.to_thread(self.store.add_values, reg.endpoint,
                                [(str(p), to_json(v), time.time()) for p, v in values.items()], source)


class _Refusal(Exception):
    """A request we answer with ``code`` and log as one line."""

    def __init__(self, code: Code, line: str):
        self.code, self.line = code, line
        super().__init__(line)


class _Root(coap_resource.Resource):
    """Every request the server receives: /rd, /rd/{id}, /dp."""

    def __init__(self, server: LwM2MServer):
        super().__init__()
        self.server = server

    async def needs_blockwise_assembly(self, request):
        # packages are cut into blocks here (any block, any time: the name is the content), not cached per client
        return not (request.code == Code.GET and tuple(request.opt.uri_path)[:1] == (PKG,))

    async def render(self, request):
        srv, path = self.server, tuple(request.opt.uri_path)
        try:
            _check_options(request, path)
            if path[:1] == (PKG,) and request.code == Code.GET and len(path) == 2:
                return coap_response(srv.packages, request, path[1])
            if len(request.payload) > srv.cfg.max_payload:
                raise _Refusal(Code.REQUEST_ENTITY_TOO_LARGE, f"{request.code} /{'/'.join(path)} from "
                                                              f"{_address(request.remote)}: payload of "
                                                              f"{len(request.payload):,} bytes (at most "
                                                              f"{srv.cfg.max_payload:,})")
            if path == ("rd",) and request.code == Code.POST:
                return await srv.register(request)
            if len(path) == 2 and path[0] == "rd" and request.code == Code.POST:
                return await srv.update(request, path[1])
            if len(path) == 2 and path[0] == "rd" and request.code == Code.DELETE:
                return await srv.deregister(request, path[1])
            if path == ("dp",) and request.code == Code.POST:
                return await srv.send(request)
            wrong_method = path[:1] in (("rd",), ("dp",)) or (path[:1] == (PKG,) and request.code != Code.GET)
            raise _Refusal(Code.METHOD_NOT_ALLOWED if wrong_method else Code.NOT_FOUND,
                           f"{request.code} /{'/'.join(path)[:80]} from "
                           f"{_address(request.remote)}: not an LwM2M server interface (/rd, /rd/ID, /dp) "
                           "nor a package (GET /pkg/SHA256)")
        except (_Refusal, PackageError) as r:
            log.info("lwm2m: %s", r.line)
            return Message(code=r.code, payload=r.line.encode("utf-8")[:200])
        except Exception:   # our bug: answer 5.00, keep serving
            log.exception("lwm2m: internal error on %s /%s", request.code, "/".join(path)[:80])
            return Message(code=Code.INTERNAL_SERVER_ERROR)


def _check_options(request: Message, path: tuple) -> None:
    """RFC 7252 5.4.1: a request with a critical option we do not process is refused (4.02), not half-served."""
    for opt in request.opt.option_list():
        number = int(opt.number)
        if number & 1 and number not in _CRITICAL_OPTIONS:
            known = getattr(opt.number, "name", None)
            name = f"option {number}" + (f" ({known})" if known else "")
            if number in _PROXY_OPTIONS:
                raise _Refusal(Code.PROXYING_NOT_SUPPORTED, f"{request.code} /{'/'.join(path)[:80]} from "
                                                            f"{_address(request.remote)}: {name}: this is no proxy")
            raise _Refusal(Code.BAD_OPTION, f"{request.code} /{'/'.join(path)[:80]} from "
                                            f"{_address(request.remote)}: critical {name} not supported")


def _fmt_name(fmt: int | None) -> str:
    if fmt is None:
        return "no Content-Format"
    try:
        return f"{ContentFormat(fmt).name.replace('_', '-')} ({int(fmt)})"
    except ValueError:
        return f"content format {fmt}"


def _query(request: Message) -> dict[str, str]:
    out = {}
    for item in request.opt.uri_query:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _address(remote) -> str:
    try:
        host, port = remote.sockaddr[:2]
    except (AttributeError, TypeError, ValueError):
        return str(getattr(remote, "hostinfo", remote))
    return f"{host.removeprefix('::ffff:')}:{port}"

