"""``tinyml device-agent``: an LwM2M 1.1 client standing for a device, on aiocoap.

Think of it as the modem side of a cellular IoT device: it runs the LwM2M
client (objects 0, 1, 3, 5, 9 and the TinyML object), receives packages and
hands them to the microcontroller. By default the microcontroller is
:class:`~platformio_tinyml.module.host.HostDevice`: the firmware's C module
loader and executor built for the host, so every module a device accepts
passed the checks a real firmware makes (CRC, Ed25519 signature, kernel ABI
and set, version, arena) and runs on the same executor. With ``firmware``
(``--firmware``) it is :class:`~platformio_tinyml.module.qemu.QemuDevice`:
the example firmware (``example_projects/module-cortex-m4``) booted in QEMU
with both slots in its memory, whose own loader decides and whose printed
outputs the device reports.

Object 9 (:mod:`.sw_update`) receives a module block-wise (Block1) into the
inactive slot; a block larger than ``max_block`` is answered 4.13 with a
Block1 option carrying the size the device takes. A block at the wrong offset
is answered 4.08 with a Block1 option naming the block the device expects
next (how a cut transfer resumes); a block sent again because its answer
was lost is acknowledged again without being written, the last one too.
A ``coap://`` URI written to Package URI (``/9/0/3``; ``/5/0/1`` for firmware) is fetched
with Block2 in the background and handed to the same checks as a pushed package's last
block (:meth:`VirtualDevice._pull`).
Install (``/9/0/4``) asks the loader, Activate (``/9/0/10``) switches slots
and runs one inference on
:func:`probe_input`; the TinyML object then reports the inference counter,
the last latency, the last output and the last error.

:class:`Agent` runs ``count`` devices in one event loop, each with its own
UDP socket (a server answers a device at the address it registered from).

Fail-over: with more than one server (``--server`` given again), a device
whose server does not answer a Register or Update within ``failover_s`` (or
answers with an ICMP error: the port is closed) registers with the next
one, in turn; it stays there until that one stops answering. Several
``tinyml serve`` on one database share devices and deployments, so the new
server continues what the old one was delivering.

DTLS-PSK: with a ``coaps://`` server (``psk_key``, ``--psk-key HEX``) a device
registers over DTLS on aiocoap's tinydtls transport (optional package
DTLSSocket), under its PSK identity (``psk_identity``, default: its endpoint
name, which the server requires to be the same). The server reaches the device
only over the DTLS session the device opened, so the device keeps that session
referenced (aiocoap drops unreferenced ones).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import platform
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import aiocoap
from aiocoap import Message
from aiocoap import resource as coap_resource
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from ..errors import TinyMLError
from ..module.firmware import KernelSet
from ..module.format import FIXED_HEADER, TRAILER, _FIXED, decode_module
from ..module.host import ABI, DEFAULT_ARENA, DEFAULT_SLOT_SIZE, HostDevice
from ..module.kernels import Abi
from ..module.qemu import LOADER_WORDS
from .codec import CodecError, ContentFormat, Link, decode, encode, format_links
from .dtls import is_dtls
from .fw_update import FirmwareUpdate, FwUpdateError, verify_arm_elf
from .ids import Definitions, Device, FirmwareResult, FirmwareState, ObjectId, ResourcePath, ResourceType, Server
from .ids import SlotState, TinyML
from .ids import SoftwareResult as SwResult
from .ids import FirmwareUpdate as Fw
from .ids import SoftwareManagement as Sw
from .ids import load_definitions
from .sw_update import SoftwareUpdate, SwUpdateError, UpdateState
from .tuning import transmission

log = logging.getLogger("tinyml.agent")

MANUFACTURER = "platformio-tinyml"
MODEL = "device-agent (host-built module loader)"
FIRMWARE_TIMEOUT_S = 20          # one QEMU boot of the example firmware (about 0.1 s for KWS)
FIRMWARE_MAX = 0x18_0000         # object 5 images: the mps2 code memory below the example's input vector
REGISTERED_OBJECTS = (ObjectId.SERVER, ObjectId.DEVICE, ObjectId.FIRMWARE_UPDATE, ObjectId.SOFTWARE_MANAGEMENT)
PROBE_SEED = 0x7D1


def probe_input(nbytes: int) -> bytes:
    """The input of the inference a device runs after Activate: ``nbytes`` fixed pseudo-random
    bytes (a test feeds the same bytes to the reference interpreter)."""
    import numpy as np
    return np.random.default_rng(PROBE_SEED).integers(0, 256, nbytes, dtype=np.uint8).tobytes()


def reserve_port(server: str) -> socket.socket:
    """A UDP socket without SO_REUSEPORT bound to a free port, on loopback when ``server`` is."""
    host = urlsplit(server).hostname
    if host in ("127.0.0.1", "localhost"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0))
    return sock


def _szx(size: int) -> int:
    return max(0, min(6, size.bit_length() - 5))     # 16 -> 0 ... 1024 -> 6


@dataclass
class AgentConfig:
    server: str                        # coap://HOST:PORT
    endpoint: str                      # the name; with count > 1, NAME-0 .. NAME-(count-1)
    public_key: bytes                  # 32 raw Ed25519 bytes the loader checks signatures with
    kernels: KernelSet = field(default_factory=KernelSet.all)
    count: int = 1
    lifetime_s: int = 300
    slot_size: int = DEFAULT_SLOT_SIZE
    arena_bytes: int = DEFAULT_ARENA
    max_block: int = 1024              # the largest Block1 a device takes; larger blocks get 4.13
    tinyml_object_id: int | None = None
    firmware: Path | None = None       # QEMU firmware: ELF, example project folder or factory image layout
    request_timeout_s: float = 10.0    # Register / Update / De-register: the CoAP exchange ends within it
    fallback_servers: tuple[str, ...] = ()     # tried in turn when the server stops answering
    failover_s: float = 10.0           # with fallbacks: a Register or Update unanswered this long moves on
    infer_every_s: float = 0.0         # > 0: the running module infers this often (0: once after each Activate)
    tinyml_object: bool = True         # False: a client without the TinyML object (targeted by an explicit profile)
    psk_identity: str | None = None    # coaps:// servers: the PSK identity (default: the endpoint name)
    psk_key: bytes | None = None       # coaps:// servers: the pre-shared key (at most 16 bytes)

    def __post_init__(self):
        for server in self.servers:
            u = urlsplit(server)
            if u.scheme not in ("coap", "coaps") or not u.hostname:
                raise TinyMLError(f"--server {server!r} is not a coap://HOST:PORT URI (or coaps://HOST:PORT with --psk-key)",
                                  hint="Give the LwM2M server of tinyml serve, e.g. coap://127.0.0.1:5683")
        if self.dtls:
            from . import dtls
            if self.psk_key is None:
                raise TinyMLError("a coaps:// server needs a pre-shared key", where="--server",
                                  hint="Give --psk-key HEX (and --psk-identity, default the endpoint name)")
            if self.psk_identity is not None and self.count > 1:
                raise TinyMLError("--psk-identity with --count 1 only (with --count N each device's identity is "
                                  "its endpoint name NAME-i)")
            dtls.require()
            for ep in self.endpoints():
                dtls.check_psk(self.psk_identity or ep, self.psk_key, "--psk-identity/--psk-key")
        if not 3 <= self.failover_s <= 3600:
            raise TinyMLError(f"--failover-s {self.failover_s:g}: give 3 to 3600 seconds")
        if not 1 <= self.count <= 100000:
            raise TinyMLError(f"--count {self.count}: give 1 to 100000 devices")
        if not 30 <= self.lifetime_s <= 10 ** 8:
            raise TinyMLError(f"--lifetime {self.lifetime_s}: give 30 seconds or more")
        if self.infer_every_s and not 0.1 <= self.infer_every_s <= 86400:
            raise TinyMLError(f"--infer-every {self.infer_every_s:g}: give 0.1 to 86400 seconds (0: once after "
                              "each Activate)")
        if not 2 <= self.request_timeout_s <= 300:
            raise TinyMLError(f"--request-timeout {self.request_timeout_s:g}: give 2 to 300 seconds")
        if self.max_block not in (16, 32, 64, 128, 256, 512, 1024):
            raise TinyMLError(f"--max-block {self.max_block}: a CoAP block size (16, 32, ..., 1024)")
        if len(self.public_key) != 32:
            raise TinyMLError("the public key must be 32 raw Ed25519 bytes")
        if self.firmware is not None:      # the example firmware's main.c fixes both
            from ..module.qemu import EXAMPLE_ARENA, SLOT_SIZE
            self.slot_size, self.arena_bytes = SLOT_SIZE, EXAMPLE_ARENA

    @property
    def servers(self) -> tuple[str, ...]:
        return (self.server, *self.fallback_servers)

    @property
    def dtls(self) -> bool:
        return any(urlsplit(s).scheme == "coaps" for s in self.servers)

    def endpoints(self) -> list[str]:
        return [self.endpoint] if self.count == 1 else [f"{self.endpoint}-{i}" for i in range(self.count)]


@dataclass(frozen=True)
class Mcu:
    """What the TinyML object says about the microcontroller behind the agent."""
    core: str
    arch: str
    clock_hz: int
    word_bits: int
    abi: int
    board: str
    firmware: str


def host_mcu() -> Mcu:
    machine = platform.machine() or "host"
    return Mcu(machine, machine, 0, 64, int(ABI), "host-loader", "host")


def firmware_mcu(name: str) -> Mcu:
    from ..module.qemu import EXAMPLE_ARCH, EXAMPLE_CORE, MACHINE
    return Mcu(EXAMPLE_CORE, EXAMPLE_ARCH, 25_000_000, 32, int(Abi.ILP32_LE), MACHINE, name)


class VirtualDevice:
    """One device: an LwM2M client on its own socket, two module slots behind it (the host
    loader, or the QEMU firmware ``elf``: an ELF path or a :class:`~..module.qemu.FactoryImage`)."""

    def __init__(self, cfg: AgentConfig, endpoint: str, defs: Definitions, elf=None):
        self.cfg, self.endpoint, self.defs = cfg, endpoint, defs
        self.tml = defs.tinyml_object_id
        self._workdir: str | None = None
        if elf is None:
            self.mcu = HostDevice(cfg.kernels, cfg.public_key, slot_size=cfg.slot_size, arena_bytes=cfg.arena_bytes)
            self.facts = host_mcu()
        else:
            from ..module.qemu import QemuDevice
            self._workdir = tempfile.mkdtemp(prefix=f"tinyml-agent-{endpoint}-")
            self.mcu = QemuDevice(elf, Path(self._workdir), timeout=FIRMWARE_TIMEOUT_S)
            self.facts = firmware_mcu(self.mcu.elf.name)
            if self.mcu.image is not None and self.mcu.image.module:   # flashed at the factory: slot A runs
                self.mcu.write(0, 0, self.mcu.image.module)
                self.mcu.boot(0)
            booted = self.mcu.last if self.mcu.last is not None else self.mcu.run(None, None)
            self.facts = replace(self.facts, firmware=firmware_version(booted.firmware, self.mcu.elf))
        self.sw = SoftwareUpdate(self.mcu)
        if elf is None:                # nothing to reflash on a host: Update ends with result 8
            self.fw = FirmwareUpdate(cfg.slot_size, verify=verify_arm_elf,
                                     apply=lambda image: FirmwareResult.UPDATE_FAILED)
        else:
            self.fw = FirmwareUpdate(FIRMWARE_MAX, verify=verify_arm_elf, apply=self._reflash)
        self.lifetime_s, self.binding = cfg.lifetime_s, "U"
        self.inference_count, self.last_latency_us, self.last_error, self.last_output = 0, 0, "", b""
        self.location: tuple[str, ...] = ()
        self.server = cfg.server           # the one it registers with now (see fail-over in the docstring)
        self._session = None               # the DTLS session to a coaps:// server (see _keep_session)
        self.ctx: aiocoap.Context | None = None
        self.registered = asyncio.Event()
        self._pulls: dict[int, asyncio.Task] = {}       # fetches from a Package URI by object, while they run
        self._targets = {ObjectId.FIRMWARE_UPDATE: _PullTarget.firmware(self.fw),
                         ObjectId.SOFTWARE_MANAGEMENT: _PullTarget.module(self.sw)}
        self._poke = asyncio.Event()
        self.in_coverage = asyncio.Event()
        self.in_coverage.set()
        self._task: asyncio.Task | None = None
        self._inferring: asyncio.Task | None = None
        self._slots = self._read_slots()

    # -- the client side: Register, Update, De-register ------------------------------------
    async def open(self, reserved: socket.socket | None = None) -> None:
        """The device's own UDP socket, on the port ``reserved`` holds (default: a new one).

        aiocoap binds with SO_REUSEPORT, and Linux may then hand port 0 a port another such
        socket already has: two devices would share one port, and each would get some of the
        other's requests (seen: 10 of 1,000 devices). So the port is chosen by a plain socket
        first, which no other socket can share, and released just before aiocoap binds it.
        Another process may take the port in that moment (seen with four agents starting
        together): then a new port is reserved, a few times."""
        for attempt in range(8):
            reserved = reserved or reserve_port(self.cfg.server)
            host, port = reserved.getsockname()[:2]
            reserved.close()
            reserved = None
            try:
                self.ctx = await aiocoap.Context.create_server_context(
                    _Site(self), bind=(host, port), transports=["udp6", *(["tinydtls"] if self.cfg.dtls else [])],
                    loggername="tinyml.agent.coap")
                if self.cfg.dtls:
                    from .dtls import client_credentials
                    self.ctx.client_credentials.load_from_dict(
                        client_credentials(self.cfg.psk_identity or self.endpoint, self.cfg.psk_key))
                return
            except OSError as e:
                if e.errno != errno.EADDRINUSE or attempt == 7:
                    raise TinyMLError(f"device '{self.endpoint}': cannot open a UDP socket on {host}:{port} "
                                      f"({e.strerror})", hint="Free some ports or run fewer devices") from None

    async def start(self) -> None:
        if self.ctx is None:
            await self.open()
        self._task = asyncio.get_running_loop().create_task(self._keep_registered())
        if self.cfg.infer_every_s:
            self._inferring = asyncio.get_running_loop().create_task(self._infer_periodically())

    async def stop(self, deregister: bool = True) -> None:
        for task in (self._task, self._inferring):
            if task is not None:
                task.cancel()
        for pull in list(self._pulls.values()):
            pull.cancel()
        if deregister and self.location and self.ctx is not None:
            try:
                await asyncio.wait_for(self._request(Code.DELETE, "/" + "/".join(self.location)), 2)
            except (asyncio.TimeoutError, aiocoap.error.Error):
                pass
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def _request(self, code: Code, path: str, query: str = "", payload: bytes = b"",
                       fmt: int | None = None) -> Message:
        msg = Message(code=code, uri=self.server.rstrip("/") + path + (f"?{query}" if query else ""),
                      payload=payload, transport_tuning=transmission(self.cfg.request_timeout_s))
        if fmt is not None:
            msg.opt.content_format = fmt
        if not self.cfg.fallback_servers:
            return self._keep_session(await self.ctx.request(msg).response)
        msg.transport_tuning = transmission(self.cfg.failover_s)    # retransmissions end within failover_s
        return self._keep_session(await asyncio.wait_for(self.ctx.request(msg).response, self.cfg.failover_s))

    def _keep_session(self, resp: Message) -> Message:
        """Hold the DTLS session the server answered on: aiocoap keeps sessions only while referenced,
        and the server can reach the device over no other."""
        if is_dtls(resp.remote):
            self._session = resp.remote
        return resp

    def links(self) -> str:
        objs = [*REGISTERED_OBJECTS, *([self.tml] if self.cfg.tinyml_object else [])]
        return format_links([Link("/", {"rt": "oma.lwm2m", "ct": "11542"})] +
                            [Link(f"/{o}/0", {}) for o in objs])

    async def register(self) -> bool:
        query = f"ep={self.endpoint}&lt={self.lifetime_s}&lwm2m=1.1&b={self.binding}"
        resp = await self._request(Code.POST, "/rd", query, self.links().encode(), ContentFormat.LINK_FORMAT)
        if resp.code != Code.CREATED:
            log.warning("agent: '%s' not registered: %s %s", self.endpoint, resp.code.dotted,
                        resp.payload[:200].decode("utf-8", "replace"))
            return False
        self.location = tuple(resp.opt.location_path)
        self.registered.set()
        log.info("agent: '%s' registered at %s as /%s", self.endpoint, self.server, "/".join(self.location))
        return True

    async def update(self) -> bool:
        resp = await self._request(Code.POST, "/" + "/".join(self.location), f"lt={self.lifetime_s}")
        return resp.code == Code.CHANGED

    async def _keep_registered(self) -> None:
        """Register, then Update at half the lifetime (or when the server triggers it); register
        again when the server forgot us; back off while it refuses or does not answer.

        Each request is one CoAP exchange whose retransmissions end within the request timeout
        (:func:`.tuning.transmission`): with aiocoap's defaults an unanswered Register went on
        being retransmitted for up to 93 s, and the next one waited behind it (NSTART = 1).
        A request given up is sent again as a new one after the backoff (1 s, doubling to 30 s)."""
        backoff, guard = 1.0, self.cfg.request_timeout_s + 5
        while True:
            try:
                ok = await asyncio.wait_for(self.update() if self.location else self.register(), guard)
                if not ok and self.location:
                    self.location = ()
                    self.registered.clear()
                    ok = await asyncio.wait_for(self.register(), guard)
            except (aiocoap.error.Error, OSError, asyncio.TimeoutError) as e:
                log.info("agent: '%s': %s at %s (%s), retrying", self.endpoint, "update" if self.location else
                         "register", self.server, type(e).__name__)
                ok = False
                if self.cfg.fallback_servers:
                    self._fail_over()
                    backoff = 1.0
            if ok:
                backoff, wait = 1.0, max(1.0, self.lifetime_s / 2)
            else:
                wait, backoff = backoff, min(backoff * 2, 30.0)
            self._poke.clear()
            try:
                await asyncio.wait_for(self._poke.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def _fail_over(self) -> None:
        """The server stopped answering: register with the next one."""
        servers = self.cfg.servers
        was, self.server = self.server, servers[(servers.index(self.server) + 1) % len(servers)]
        self.location = ()
        self.registered.clear()
        log.warning("agent: '%s': %s does not answer, registering with %s", self.endpoint, was, self.server)

    # -- object values ------------------------------------------------------------------
    def _read_slots(self) -> list[tuple[str, str, SlotState]]:
        """(module name, version, state) per slot, from what the slots hold and the loader says."""
        out = []
        for k in (0, 1):
            head = self.mcu.read(k, FIXED_HEADER)
            if head == b"\xff" * FIXED_HEADER:
                out.append(("", "", SlotState.EMPTY))
                continue
            name = version = ""
            total = _FIXED.unpack_from(head)[9]
            if FIXED_HEADER + TRAILER <= total <= self.mcu.slot_size:
                try:
                    h = decode_module(self.mcu.read(k, total)).header
                    name, version = h.model_name, str(h.module_version)
                except TinyMLError:
                    pass
            state = (SlotState.ACTIVE if self.mcu.active == k else
                     SlotState.INSTALLED if self.mcu.check(k) == 0 else SlotState.INVALID)
            out.append((name, version, state))
        return out

    def values(self, oid: int) -> dict[ResourcePath, object]:
        """Every readable value of instance 0 of object ``oid`` (empty when there is no such object)."""
        def p(rid, inst=None):
            return ResourcePath(oid, 0, rid, inst)
        if oid == ObjectId.SERVER:
            return {p(Server.SHORT_SERVER_ID): 1, p(Server.LIFETIME): self.lifetime_s,
                    p(Server.DEFAULT_MIN_PERIOD): 0, p(Server.DEFAULT_MAX_PERIOD): 0,
                    p(Server.NOTIFICATION_STORING): False, p(Server.BINDING): self.binding}
        if oid == ObjectId.DEVICE:
            model = MODEL if self.facts.board == "host-loader" else f"device-agent (QEMU {self.facts.board} firmware)"
            return {p(Device.MANUFACTURER): MANUFACTURER, p(Device.MODEL_NUMBER): model,
                    p(Device.SERIAL_NUMBER): self.endpoint, p(Device.FIRMWARE_VERSION): self.facts.firmware,
                    p(Device.ERROR_CODE, 0): 0, p(Device.SUPPORTED_BINDING_AND_MODES): "U",
                    p(Device.MEMORY_TOTAL): (2 * self.cfg.slot_size + self.cfg.arena_bytes) // 1024}
        if oid == ObjectId.FIRMWARE_UPDATE:
            return {p(Fw.STATE): int(self.fw.state), p(Fw.UPDATE_RESULT): int(self.fw.result),
                    p(Fw.PKG_NAME): "", p(Fw.PKG_VERSION): "", p(Fw.PROTOCOL_SUPPORT, 0): 0,   # CoAP
                    p(Fw.DELIVERY_METHOD): 2}                                           # pull and push
        if oid == ObjectId.SOFTWARE_MANAGEMENT:
            return {p(Sw.PKG_NAME): self.sw.package.name, p(Sw.PKG_VERSION): self.sw.package.version,
                    p(Sw.UPDATE_STATE): int(self.sw.state), p(Sw.UPDATE_SUPPORTED_OBJECTS): False,
                    p(Sw.UPDATE_RESULT): int(self.sw.result), p(Sw.ACTIVATION_STATE): self.sw.activated,
                    p(Sw.STATUS_REASON): self.sw.reason}
        if oid == self.tml and self.cfg.tinyml_object:
            f = self.facts
            out = {p(TinyML.CORE): f.core, p(TinyML.ARCHITECTURE): f.arch, p(TinyML.CLOCK): f.clock_hz,
                   p(TinyML.ARENA_RAM): self.cfg.arena_bytes, p(TinyML.FLASH): 2 * self.cfg.slot_size,
                   p(TinyML.SLOT_SIZE): self.cfg.slot_size, p(TinyML.SLOT_COUNT): 2, p(TinyML.ACCELERATOR): "",
                   p(TinyML.KERNEL_SET): f"0x{self.cfg.kernels.mask:x}", p(TinyML.EXECUTOR_ABI_VERSION): f.abi,
                   p(TinyML.WORD_BITS): f.word_bits, p(TinyML.BOARD): f.board, p(TinyML.MCU): "",
                   p(TinyML.ACTIVE_SLOT): self.mcu.active, p(TinyML.INFERENCE_COUNT): self.inference_count,
                   p(TinyML.LAST_INFERENCE_LATENCY): self.last_latency_us, p(TinyML.LAST_ERROR): self.last_error,
                   p(TinyML.LAST_OUTPUT): self.last_output}
            for k, (name, version, state) in enumerate(self._slots):
                out[p(TinyML.MODULE_NAME, k)] = name
                out[p(TinyML.MODULE_VERSION, k)] = version
                out[p(TinyML.SLOT_STATE, k)] = int(state)
            return out
        return {}

    async def lose_coverage(self, seconds: float) -> None:
        """Out of radio coverage for ``seconds``: requests that arrive meanwhile are answered only
        when it is back (the server's own requests time out; its transfers must resume)."""
        self.in_coverage.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.in_coverage.set()

    def _changed(self) -> None:
        self._slots = self._read_slots()

    # -- answering the server --------------------------------------------------------------
    def _resource(self, path: ResourcePath):
        return self.defs.resource(path.object, path.resource) if path.resource is not None else None

    def handle(self, request: Message) -> Message:
        try:
            path = ResourcePath.parse("/".join(request.opt.uri_path))
        except Exception:
            return _answer(Code.NOT_FOUND, "not an LwM2M path")
        if path.object == ObjectId.SECURITY:
            return _answer(Code.UNAUTHORIZED, "the Security object is for the bootstrap server only")
        if path.instance not in (None, 0) or not self.values(path.object):
            return _answer(Code.NOT_FOUND, f"no {path} here")
        code = request.code
        if code == Code.GET:
            if request.opt.accept == ContentFormat.LINK_FORMAT:
                return self._discover(path)
            return self._read(path, request.opt.accept)
        if code in (Code.PUT, Code.POST) and path == ResourcePath(ObjectId.SOFTWARE_MANAGEMENT, 0, Sw.PACKAGE):
            return self._package(request)
        if code in (Code.PUT, Code.POST) and path == ResourcePath(ObjectId.FIRMWARE_UPDATE, 0, Fw.PACKAGE):
            return self._firmware_package(request)
        if code == Code.PUT and not request.payload and request.opt.uri_query:
            return Message(code=Code.CHANGED)                 # Write-Attributes: accepted, nothing to notify
        if code == Code.POST and path.depth == 3:
            return self._execute(path, request.payload.decode("utf-8", "replace"))
        if code in (Code.PUT, Code.POST) and path.depth >= 2:
            return self._write(path, request)
        return _answer(Code.METHOD_NOT_ALLOWED, f"{code.name} {path}")

    def _read(self, path: ResourcePath, accept) -> Message:
        res = self._resource(path)
        if res is not None and "R" not in res.operations:
            return _answer(Code.METHOD_NOT_ALLOWED, f"{path} ({res.name}) is not readable")
        values = {q: v for q, v in self.values(path.object).items() if path.contains(q)}
        if not values:
            return _answer(Code.NOT_FOUND, f"no {path} here")
        if accept is None:
            single = path.depth == 4 or (path.depth == 3 and res is not None and not res.multiple)
            accept = (ContentFormat.OPAQUE if single and res.type == ResourceType.OPAQUE else
                      ContentFormat.TEXT if single else ContentFormat.TLV)
        try:
            payload = encode(int(accept), values, path, self.defs)
        except CodecError as e:
            return _answer(Code.NOT_ACCEPTABLE, str(e))
        msg = Message(code=Code.CONTENT, payload=payload)
        msg.opt.content_format = int(accept)
        return msg

    def _discover(self, path: ResourcePath) -> Message:
        base = ResourcePath(path.object, 0)
        rids = sorted({q.resource for q in self.values(path.object)} |
                      {r.id for r in self.defs.object(path.object).resources.values() if r.executable})
        links = [Link(str(base), {})] + [Link(str(base.child(r)), {}) for r in rids
                                          if path.depth < 3 or r == path.resource]
        msg = Message(code=Code.CONTENT, payload=format_links(links).encode())
        msg.opt.content_format = ContentFormat.LINK_FORMAT
        return msg

    def _write(self, path: ResourcePath, request: Message) -> Message:
        fmt = request.opt.content_format
        try:
            values = decode(int(fmt) if fmt is not None else ContentFormat.TEXT, request.payload, path, self.defs)
        except CodecError as e:
            return _answer(Code.BAD_REQUEST, str(e))
        for q, v in values.items():
            if q == ResourcePath(ObjectId.SERVER, 0, Server.LIFETIME) and isinstance(v, int) and v >= 30:
                self.lifetime_s = v
            elif q == ResourcePath(ObjectId.SERVER, 0, Server.BINDING) and isinstance(v, str) and v:
                self.binding = v
            elif q.object == ObjectId.FIRMWARE_UPDATE and q.resource == 0 and isinstance(v, (bytes, bytearray)):
                try:
                    self.fw.write_block(0, bytes(v), last=True)
                except FwUpdateError as e:
                    return _answer(Code.METHOD_NOT_ALLOWED, str(e))
            elif q.object in self._targets and q.resource == self._targets[q.object].uri and isinstance(v, str):
                try:
                    self._pull(q.object, v.strip())
                except (FwUpdateError, SwUpdateError) as e:
                    return _answer(Code.METHOD_NOT_ALLOWED, str(e))
            else:
                res = self._resource(q)
                return _answer(Code.METHOD_NOT_ALLOWED, f"{q} ({res.name if res else 'unknown'}) cannot be "
                                                        "written on this device")
        return Message(code=Code.CHANGED)

    def _block1(self, request: Message, limit: int, what: str) -> tuple[int, int, bool] | Message:
        """(offset, block size, last) of a Package write, or the 4.13 answer for a block larger
        than the device takes (its Block1 option names the size it does) or more bytes than
        ``limit`` in one block (its Size1 option names the limit)."""
        b1 = request.opt.block1
        if b1 is None:
            offset, size, last = 0, len(request.payload), True
        else:
            offset, size, last = b1.block_number * b1.size, b1.size, not b1.more
            if size > self.cfg.max_block:
                msg = _answer(Code.REQUEST_ENTITY_TOO_LARGE, f"blocks of at most {self.cfg.max_block} bytes")
                msg.opt.block1 = BlockOption.BlockwiseTuple(0, False, _szx(self.cfg.max_block))
                return msg
        if len(request.payload) > limit:
            return _too_large(f"{what} holds {limit} bytes", limit)
        return offset, size, last

    def _package(self, request: Message) -> Message:
        """A block of a module for object 9: into the inactive slot, verified by the loader at the end."""
        b1 = request.opt.block1
        parsed = self._block1(request, self.cfg.slot_size, "the slot")
        if isinstance(parsed, Message):
            return parsed
        offset, size, last = parsed
        sw, data = self.sw, bytes(request.payload)
        try:
            if (sw.state is UpdateState.DOWNLOAD_STARTED and offset != sw.received
                    and offset + len(data) == sw.received and not last):
                pass                                   # the same block again (its answer was lost)
            elif last and self._delivered_again(offset, data):
                pass                                   # the last block again: already checked, DELIVERED
            else:
                sw.write_block(offset, data, last)
        except SwUpdateError as e:
            msg = _answer(Code.REQUEST_ENTITY_INCOMPLETE, str(e))
            if b1 is not None:                         # the block to send next
                msg.opt.block1 = BlockOption.BlockwiseTuple(sw.resume_offset // size, True, b1.size_exponent)
            return msg
        if sw.state is UpdateState.INITIAL and sw.result >= 50:          # refused (storage, integrity, type)
            log.info("agent: '%s' refused the package: result %d (%s)", self.endpoint, sw.result, sw.reason)
            if not last:
                return _too_large(sw.reason, self.cfg.slot_size)
        if last:
            self._changed()
        return _block_done(request, last)

    def _firmware_package(self, request: Message) -> Message:
        """A block of a firmware image for object 5 (Package, /5/0/0), as object 9's: resumable
        at the offset the device holds, the same block again acknowledged without being written,
        a too large image refused with 4.13 (Update Result 2), the image checked at the last block
        (:func:`.fw_update.verify_arm_elf`: result 6 for not an Arm ELF, 5 for a cut one)."""
        fw = self.fw
        parsed = self._block1(request, fw.max_size, "the firmware flash")
        if isinstance(parsed, Message):
            return parsed
        offset, size, last = parsed
        if offset == 0 and (request.opt.size1 or len(request.payload)) > fw.max_size \
                and fw.state is not FirmwareState.UPDATING:        # the whole image, announced in Size1
            fw.download_failed(FirmwareResult.NOT_ENOUGH_FLASH)
            return _too_large(f"the firmware flash holds {fw.max_size} bytes", fw.max_size)
        data, held = bytes(request.payload), len(fw.image)
        try:
            if offset + len(data) == held and offset < held and (
                    fw.state is FirmwareState.DOWNLOADING and not last or
                    fw.state is FirmwareState.DOWNLOADED and last and fw.image[offset:] == data):
                pass                        # the same block again (its answer was lost): already written
            else:
                fw.write_block(offset, data, last)
        except FwUpdateError as e:
            msg = _answer(Code.REQUEST_ENTITY_INCOMPLETE, str(e))
            if request.opt.block1 is not None:                 # the block to send next
                msg.opt.block1 = BlockOption.BlockwiseTuple(fw.resume_offset // size, True,
                                                            request.opt.block1.size_exponent)
            return msg
        if fw.state is FirmwareState.IDLE and fw.result is FirmwareResult.NOT_ENOUGH_FLASH:
            return _too_large(f"the firmware flash holds {fw.max_size} bytes", fw.max_size)
        if last and fw.state is FirmwareState.IDLE and fw.result is not FirmwareResult.INITIAL:
            log.info("agent: '%s' refused the firmware image: result %d (%s)", self.endpoint, fw.result,
                     fw.result.name.lower())
        return _block_done(request, last)

    def _pull(self, obj: int, uri: str) -> None:
        """Package URI written (``/5/0/1``, ``/9/0/3``): an empty one cancels; a ``coap://`` URI is
        fetched (Block2, aiocoap assembles it) in the background while the object says it downloads,
        then checked exactly as a pushed package (its last block). Failures set the object's Update
        Result (:class:`_PullTarget`): another scheme, a URI without host or path, an error answer,
        no answer within the request timeout. A new URI replaces a fetch still running."""
        t = self._targets[obj]
        running = self._pulls.pop(obj, None)
        if running is not None:
            running.cancel()
        if not uri:
            t.cancel()
            return
        u = urlsplit(uri)
        if u.scheme != "coap" or not u.hostname or not u.path.strip("/"):
            t.begin()                                # a write of the URI starts the download, which fails
            t.failed(t.unsupported if u.scheme != "coap" else t.invalid)
            return
        t.begin()
        task = asyncio.get_running_loop().create_task(self._fetch(t, uri))
        self._pulls[obj] = task                  # kept until done (the loop holds tasks weakly)
        task.add_done_callback(lambda done: self._pulls.pop(obj, None) if self._pulls.get(obj) is done else None)

    async def _fetch(self, t: "_PullTarget", uri: str) -> None:
        try:
            msg = Message(code=Code.GET, uri=uri, transport_tuning=transmission(self.cfg.request_timeout_s))
            resp = await asyncio.wait_for(self.ctx.request(msg).response, self.cfg.request_timeout_s * 3)
        except (aiocoap.error.Error, OSError, asyncio.TimeoutError) as e:
            log.info("agent: '%s': %s pull from %s failed (%s)", self.endpoint, t.what, uri, type(e).__name__)
            if t.fetching():
                t.failed(t.lost)
            return
        if not t.fetching():
            return                               # cancelled meanwhile
        if resp.code != Code.CONTENT:
            log.info("agent: '%s': %s pull from %s: %s", self.endpoint, t.what, uri, resp.code.dotted)
            t.failed(t.invalid)
            return
        boots = getattr(self.mcu, "boots", 0)
        try:
            result = t.deliver(bytes(resp.payload))     # the checks of a pushed package's last block
        except TinyMLError as e:                         # the QEMU firmware could not be booted: one line
            log.warning("agent: '%s': %s", self.endpoint, e)
            result = t.failed(t.broken)
        finally:
            self._changed()
            self.firmware_said(boots)
        log.info("agent: '%s': pulled %d bytes of %s: result %d", self.endpoint, len(resp.payload), t.what,
                 result)

    def _reflash(self, image: bytes) -> FirmwareResult:
        """Update (/5/0/2) with the QEMU firmware: the image becomes the firmware the device boots
        (kept in its work folder) when it boots and its loader takes the running module; else
        the old firmware stays and the result is 8."""
        digest = hashlib.sha256(image).hexdigest()
        path = Path(self._workdir) / f"firmware-{digest[:16]}.elf"
        path.write_bytes(image)
        kept, run = self.mcu.reflash(path)
        if not kept:
            why = ("it did not finish booting" if run is None else "it printed no loader line" if run.boot == 1
                   else f"its loader refused the running module: {LOADER_WORDS[-run.boot]}")
            log.info("agent: '%s': firmware update failed (%s); the old firmware stays", self.endpoint, why)
            path.unlink()
            return FirmwareResult.UPDATE_FAILED
        self.facts = replace(self.facts, firmware=firmware_version(run.firmware, path))
        log.info("agent: '%s': firmware updated to %s", self.endpoint, self.facts.firmware)
        return FirmwareResult.SUCCESS

    def _delivered_again(self, offset: int, data: bytes) -> bool:
        """The last block of the package just delivered, sent again because its answer was lost
        (the same bytes at the same place): acknowledged again rather than refused, or the server,
        which cannot tell, would take the refusal for a failed transfer."""
        sw = self.sw
        return (sw.state is UpdateState.DELIVERED and 0 < offset + len(data) == sw.received
                and self.mcu.read(sw.slot, sw.received)[offset:] == data)

    def _execute(self, path: ResourcePath, args: str) -> Message:
        res = self._resource(path)
        if res is None or not res.executable:
            return _answer(Code.METHOD_NOT_ALLOWED, f"{path} is not executable")
        sw = self.sw
        try:
            if path.object == ObjectId.SOFTWARE_MANAGEMENT:
                if path.resource == Sw.INSTALL:
                    sw.install()
                elif path.resource == Sw.UNINSTALL:
                    sw.uninstall(for_update=args.strip().strip("0=").strip("'\"") == "1")
                elif path.resource == Sw.ACTIVATE:
                    was_active = sw.activated
                    sw.activate()
                    if not was_active:        # a repeated Activate (a retransmission) switches nothing, runs nothing
                        self._changed()
                        self.infer()
                elif path.resource == Sw.DEACTIVATE:
                    sw.deactivate()
            elif path == ResourcePath(ObjectId.FIRMWARE_UPDATE, 0, 2):
                self.fw.update()
            elif path == ResourcePath(ObjectId.SERVER, 0, Server.REGISTRATION_UPDATE_TRIGGER):
                self._poke.set()
            elif path == ResourcePath(ObjectId.DEVICE, 0, Device.REBOOT):
                self.mcu.boot(max(self.mcu.active, 0), self.mcu.installed_version)
            else:
                return _answer(Code.METHOD_NOT_ALLOWED, f"{path} ({res.name}) does nothing on this device")
        except (SwUpdateError, FwUpdateError) as e:
            self._changed()
            return _answer(Code.METHOD_NOT_ALLOWED, str(e))
        self._changed()
        return Message(code=Code.CHANGED)

    def firmware_said(self, boots_before: int) -> None:
        """Log what the QEMU firmware printed in each boot a request caused (one line per boot)."""
        new = getattr(self.mcu, "boots", 0) - boots_before
        for text in list(getattr(self.mcu, "printed", ()))[-new:] if new > 0 else ():
            lines = [ln.strip() for ln in text.replace("\r", "").splitlines() if ln.strip()]
            log.info("agent: '%s': firmware: %s", self.endpoint, " | ".join(lines)[:400])

    async def _infer_periodically(self) -> None:
        """The application's loop (``--infer-every``): while a module is active and the device is in
        coverage, one inference every ``infer_every_s`` seconds (with ``--firmware``, each is a boot)."""
        while True:
            await asyncio.sleep(self.cfg.infer_every_s)
            if self.mcu.active >= 0 and self.in_coverage.is_set():
                self.infer()

    def infer(self) -> bytes | None:
        """One inference of the running module on :func:`probe_input`; counted and timed (with the
        QEMU firmware: the wall time of the boot that ran it)."""
        try:
            total = _FIXED.unpack_from(self.mcu.read(self.mcu.active, FIXED_HEADER))[9]
            header = decode_module(self.mcu.read(self.mcu.active, total)).header
            inputs = probe_input(sum(d.nbytes for d in header.inputs))
            t0 = time.perf_counter_ns()
            out = self.mcu.infer(inputs)
            self.last_latency_us = (time.perf_counter_ns() - t0) // 1000
        except TinyMLError as e:
            self.last_error = str(e)
            return None
        self.inference_count += 1
        self.last_output, self.last_error = out, ""
        return out


@dataclass(frozen=True)
class _PullTarget:
    """What a Package URI write does to one object's state machine: the resource, the calls, and
    the Update Results for another scheme, a bad URI or error answer, no answer, a device fault."""
    what: str
    uri: int
    begin: Callable[[], object]
    cancel: Callable[[], object]
    failed: Callable[[int], int]
    fetching: Callable[[], bool]
    deliver: Callable[[bytes], int]
    unsupported: int
    invalid: int
    lost: int
    broken: int

    @classmethod
    def firmware(cls, fw: FirmwareUpdate) -> "_PullTarget":
        return cls("firmware", Fw.PACKAGE_URI, fw.begin_pull, fw.cancel, fw.download_failed,
                   lambda: fw.state is FirmwareState.DOWNLOADING, lambda data: fw.write_block(0, data, last=True),
                   FirmwareResult.UNSUPPORTED_PROTOCOL, FirmwareResult.INVALID_URI, FirmwareResult.CONNECTION_LOST,
                   FirmwareResult.CONNECTION_LOST)

    @classmethod
    def module(cls, sw: SoftwareUpdate) -> "_PullTarget":
        """Object 9 has no "unsupported protocol": another scheme is 56 (invalid URI) too."""
        return cls("module", Sw.PACKAGE_URI, sw.begin, sw.cancel, sw.download_failed,
                   lambda: sw.state is UpdateState.DOWNLOAD_STARTED and sw.received == 0,
                   lambda data: sw.write_block(0, data, last=True), SwResult.INVALID_URI, SwResult.INVALID_URI,
                   SwResult.CONNECTION_LOST, SwResult.DEVICE_DEFINED_ERROR)


def _answer(code: Code, text: str) -> Message:
    return Message(code=code, payload=text.encode("utf-8")[:200])


def _too_large(text: str, limit: int) -> Message:
    msg = _answer(Code.REQUEST_ENTITY_TOO_LARGE, text)
    msg.opt.size1 = limit
    return msg


def _block_done(request: Message, last: bool) -> Message:
    """2.04 for the last block of a Package (2.31 Continue before it), with its Block1 option."""
    msg = Message(code=Code.CHANGED if last else Code.CONTINUE)
    b1 = request.opt.block1
    if b1 is not None:
        msg.opt.block1 = BlockOption.BlockwiseTuple(b1.block_number, not last, b1.size_exponent)
    return msg


def firmware_version(printed: str, path: Path) -> str:
    """Device /3/0/3 for the QEMU firmware: the version it printed, the file it was booted
    from and the first 12 hex digits of that file's SHA-256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"{printed or 'unknown'} ({Path(path).name}, sha256 {digest})"


class _Site(coap_resource.Resource):
    def __init__(self, device: VirtualDevice):
        super().__init__()
        self.device = device

    async def needs_blockwise_assembly(self, request):
        return False         # object 9 takes its Block1 blocks one by one, into the slot

    async def render(self, request):
        await self.device.in_coverage.wait()
        boots = getattr(self.device.mcu, "boots", 0)
        try:
            return self.device.handle(request)
        except TinyMLError as e:    # the firmware could not be booted (QEMU missing, a hang): one line
            log.warning("agent: '%s': %s", self.device.endpoint, e)
            return _answer(Code.SERVICE_UNAVAILABLE, str(e))
        except Exception:    # our bug: answer 5.00, keep serving
            log.exception("agent: '%s': internal error on %s", self.device.endpoint, request.code)
            return Message(code=Code.INTERNAL_SERVER_ERROR)
        finally:
            self.device.firmware_said(boots)


class Agent:
    """``count`` devices in one event loop."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.defs = load_definitions(*(() if cfg.tinyml_object_id is None else (cfg.tinyml_object_id,)))
        self.elf = firmware_elf(cfg) if cfg.firmware is not None else None
        self.devices = [VirtualDevice(cfg, ep, self.defs, self.elf) for ep in cfg.endpoints()]

    async def start(self) -> None:
        ports = [reserve_port(self.cfg.server) for _ in self.devices]      # all distinct: held together
        for dev, reserved in zip(self.devices, ports):   # every socket first: registering devices get answers
            await dev.open(reserved)
        for dev in self.devices:
            await dev.start()

    async def wait_registered(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.gather(*(d.registered.wait() for d in self.devices)), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.devices), return_exceptions=True)

    def device(self, endpoint: str) -> VirtualDevice:
        return next(d for d in self.devices if d.endpoint == endpoint)


def firmware_elf(cfg: AgentConfig):
    """The QEMU firmware ``cfg.firmware`` names: an ELF (built when it is the example project,
    cached) or a factory image (:class:`~..module.qemu.FactoryImage`)."""
    from ..emu.toolchain import get_machine
    from ..module.qemu import MACHINE, example_firmware
    emulator = get_machine(MACHINE).emulator
    if shutil.which(emulator) is None:
        raise TinyMLError(f"--firmware needs {emulator}, which is not on PATH",
                          hint="Install qemu-system-arm (scripts/setup.sh does), or drop --firmware for the "
                               "host-built loader")
    return example_firmware(Path(cfg.firmware), cfg.kernels, cfg.public_key)


def load_key(path) -> bytes:
    """32 raw Ed25519 bytes from a PEM public key, a 32-byte file, or the private key's file."""
    from pathlib import Path
    from ..module.keys import load_private_key, load_public_key, public_key_bytes
    p = Path(path)
    if not p.is_file():
        raise TinyMLError(f"no public key file '{path}'", where="--public-key",
                          hint="Give the .pub written by `tinyml module keygen` or the project's key")
    try:
        return public_key_bytes(load_public_key(p))
    except TinyMLError:
        return public_key_bytes(load_private_key(p).public_key())


async def run(cfg: AgentConfig, say=print) -> None:
    """Run until cancelled (Ctrl-C): register every device, keep them registered, answer the server."""
    agent = Agent(cfg)
    await agent.start()
    try:
        ok = await agent.wait_registered(30)
        n = sum(d.registered.is_set() for d in agent.devices)
        say(f"device-agent: {n} of {len(agent.devices)} device(s) registered at {cfg.server}"
            + ("" if ok else " (the others keep trying)"), flush=True)
        await asyncio.Event().wait()
    finally:
        await agent.stop()
