"""Delivery of an inference module to one device over object 9 (SOTA), and of a whole
firmware image over object 5 (FOTA, :class:`FirmwareDelivery`: the same block-wise transfer
to ``/5/0/0``, then State DOWNLOADED, Execute Update ``/5/0/2``, State and Update Result
followed until IDLE, and Firmware Version ``/3/0/3`` read). Either is pushed (Block1 writes
to the Package resource) or, with ``pull=True``, pulled: the package is published
(:meth:`.server.LwM2MServer.publish`), its ``coap://.../pkg/<sha256>`` URI written to Package
URI (``/9/i/3``, ``/5/0/1``) and the device fetches it with Block2 while the delivery reads
its state (object 9: Update State DOWNLOAD STARTED, then DELIVERED or INITIAL with the Update
Result: 56 for a URI it cannot fetch, 52 for a server that did not answer, 53 and 54 as for a
pushed module); from there on a pull goes on exactly as a push.

:class:`Delivery` writes the module to ``/9/i/2`` block-wise (CoAP Block1,
blocks of at most 1024 bytes), from the socket the device registered to,
then follows the object 9 state machine: Update State (7) DELIVERED and
Update Result (9) 3 after the last block, Execute Install (``/9/i/4``),
result 2, Execute Activate (``/9/i/10``), Activation State (12) true; then
it reads the TinyML object (inference counter, latency, last error) and
refreshes the device's capabilities, so ``GET /v1/devices/{endpoint}`` lists
the new module.

Block size: a device that answers a block with 4.13 and a Block1 option
names the size it takes; the transfer goes on from the same byte offset at
that size (halved when the option is missing). A 4.08 answer with a Block1
option names the block the device expects next (it resumes there). A block
that gets no answer, or a device gone offline, is retried from the last
acknowledged block once the device answers (or has registered again, from
any address) within ``resume_wait_s``: a cut transfer resumes, it does not
start over.

Update Results 53 (integrity: signature, CRC, structure), 54 (unsupported:
kernel set, kernel ABI, format) and 58 (install failed: older version,
arena) end a delivery as ``failed`` with a sentence saying what to do.
A delivery's progress is :class:`DeliveryState` (kept in memory per
endpoint by :class:`Deliveries`, which runs at most 32 at a time; a restarted
server forgets them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass

from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from .codec import ContentFormat
from .ids import Device, FirmwareResult, FirmwareState, LwM2MError, ObjectId, ResourcePath
from .ids import FirmwareUpdate as Fw
from .ids import SoftwareManagement as Sw
from .ids import SoftwareResult, SoftwareState, TinyML, result_meaning
from .tuning import transmission

log = logging.getLogger("tinyml.service.lwm2m")

MAX_BLOCK = 1024
_URI_ADVICE = ("the device could not fetch the package URI (another scheme than coap://, or an error answer): "
               "set the LwM2M server's public_host to the address devices reach it at, or deliver by push")
_LOST_ADVICE = ("the device got no answer fetching the package URI: check that it reaches the LwM2M server's "
                "public host and port, then deliver again (or by push)")
_ADVICE = {
    SoftwareResult.INVALID_URI: _URI_ADVICE,
    SoftwareResult.CONNECTION_LOST: _LOST_ADVICE,
    SoftwareResult.INTEGRITY_CHECK_FAILURE: "the module is not what was signed, or not signed with the key the "
                                            "device trusts: sign it with the project's key and deliver it again",
    SoftwareResult.UNSUPPORTED_PACKAGE_TYPE: "the device's firmware cannot run this module (kernel set, kernel "
                                             "ABI or format): compile it for the device's profile",
    SoftwareResult.INSTALLATION_FAILURE: "the loader refused to install it (a version not newer than the "
                                         "running module, or an arena larger than the device has): raise the "
                                         "module version or compile for the device's arena",
    SoftwareResult.NOT_ENOUGH_STORAGE: "the module is larger than the device's slot: compile a smaller model",
}


class DeliveryError(LwM2MError):
    """A delivery that cannot go on; the message is the one line its state reports."""


@dataclass
class DeliveryState:
    endpoint: str
    size: int
    instance: int = 0
    mode: str = "push"              # push (Block1 writes to Package) or pull (the device fetches Package URI)
    state: str = "pending"          # pending, transferring, delivered, installed, active, failed
    bytes_done: int = 0
    blocks_done: int = 0
    block_size: int = MAX_BLOCK
    resumed: int = 0                # times the transfer went on after a lost answer or an offline device
    transfer_s: float | None = None  # the block-wise transfer's wall time (first block sent to last acknowledged)
    update_result: int | None = None
    result_meaning: str = ""
    reason: str = ""                # the device's Status Reason (the loader's word)
    message: str = ""
    inference_count: int | None = None
    last_latency_us: int | None = None
    started: float = 0.0
    finished: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Delivery:
    """Push or pull of a module over object 9; the transfer (block-wise, or the device's fetch
    of the published package) is shared with :class:`FirmwareDelivery`."""
    KIND, STATE = "module", DeliveryState
    OBJECT, PACKAGE = ObjectId.SOFTWARE_MANAGEMENT, Sw.PACKAGE
    # pull: the Package URI resource, the state resource, its value while fetching and once fetched
    PACKAGE_URI, STATE_RES = Sw.PACKAGE_URI, Sw.UPDATE_STATE
    FETCHING, FETCHED = SoftwareState.DOWNLOAD_STARTED, SoftwareState.DELIVERED

    def __init__(self, server, endpoint: str, module: bytes, instance: int = 0, max_block: int = MAX_BLOCK,
                 block_timeout_s: float = 5.0, resume_wait_s: float = 60.0, start_offset: int = 0,
                 pull: bool = False):
        """``start_offset``: the bytes an earlier delivery of the same module got acknowledged (a
        deployment resumed after a restart or a pause); the transfer starts at that block, and a
        device that holds less (or something else) answers 4.08 naming where to go on.
        ``pull``: publish the package and write its URI to Package URI instead of pushing it; the
        device fetches it (Block2) within ``resume_wait_s`` (``start_offset`` does not apply)."""
        if max_block not in (16, 32, 64, 128, 256, 512, 1024):
            raise DeliveryError(f"block size {max_block}: a CoAP block size (16, 32, ..., 1024)")
        self.server, self.module, self.pull = server, module, pull
        self.block_timeout_s, self.resume_wait_s = block_timeout_s, resume_wait_s
        self.start_offset = max(0, min(start_offset, len(module) - 1)) // max_block * max_block
        self.st = self.STATE(endpoint, len(module), instance, mode="pull" if pull else "push", block_size=max_block,
                             started=time.time())

    def _path(self, rid: int) -> ResourcePath:
        return ResourcePath(self.OBJECT, self.st.instance, rid)

    async def run(self, slots: asyncio.Semaphore | None = None) -> DeliveryState:
        st = self.st
        try:
            if slots is not None:
                async with slots:
                    return await self._run()
            return await self._run()
        except asyncio.CancelledError:
            st.state, st.message, st.finished = "failed", "delivery cancelled", time.time()
            raise

    async def _run(self) -> DeliveryState:
        st = self.st
        st.started = time.time()
        try:
            await self._prepare()
            st.state = "transferring"
            t0 = time.monotonic()
            await self._transfer()
            st.transfer_s = round(time.monotonic() - t0, 4)
            await self._after_transfer()
        except LwM2MError as e:
            st.state, st.message = "failed", st.message or str(e)
            log.info("lwm2m: %s delivery to '%s' failed: %s", self.KIND, st.endpoint, st.message)
        finally:
            st.finished = time.time()
        return st

    async def _after_transfer(self) -> None:
        """Object 9: DELIVERED, Install, Activate, then the TinyML object's counters."""
        st = self.st
        await self._expect(SoftwareState.DELIVERED, self._transferred)
        st.state = "delivered"
        await self._execute(Sw.INSTALL, lambda v: v.get(Sw.UPDATE_STATE) == SoftwareState.INSTALLED)
        await self._expect(SoftwareState.INSTALLED, "after Install")
        st.state = "installed"
        try:
            await self._execute(Sw.ACTIVATE, lambda v: v.get(Sw.ACTIVATION_STATE) is True)
        except LwM2MError:
            await self._expect(SoftwareState.INSTALLED, "after Activate", activated=True)
            raise
        await self._expect(SoftwareState.INSTALLED, "after Activate", activated=True)
        await self._report()
        st.state = "active"           # last: whoever sees it also sees the counters and capabilities
        st.message = f"module active on '{st.endpoint}' ({self._how()})"

    @property
    def _transferred(self) -> str:
        return "after fetching the package" if self.pull else "after the last block"

    def _how(self) -> str:
        st = self.st
        if self.pull:
            return f"{st.size:,} bytes fetched by the device from the published package"
        return f"{st.size:,} bytes in {st.blocks_done} blocks of {st.block_size} B"

    async def _read(self, path: ResourcePath) -> dict:
        """Read, asked again while the device does not answer (reads change nothing on the device)."""
        deadline = time.monotonic() + self.resume_wait_s
        while True:
            try:
                return await self.server.read(self.st.endpoint, path)
            except LwM2MError as e:
                if getattr(e, "status", None) not in (409, 424) or time.monotonic() > deadline:
                    raise
                self.st.resumed += 1
                await asyncio.sleep(0.5)

    async def _execute(self, rid: int, done, args: str | None = None) -> None:
        """Execute ``/9/i/rid``; when no answer comes, read object 9 and execute again only if ``done(values)``
        says it did not happen (a lost answer is not a lost Execute, and a second Install would be refused)."""
        deadline = time.monotonic() + self.resume_wait_s
        while True:
            try:
                return await self.server.execute(self.st.endpoint, self._path(rid), args)
            except LwM2MError as e:
                unanswered = getattr(e, "status", None) in (409, 424) and getattr(e, "coap", 0) is None
                if not unanswered or time.monotonic() > deadline:
                    raise
            self.st.resumed += 1
            if done(await self._read_object()):
                return
            await asyncio.sleep(0.5)

    async def _read_object(self) -> dict:
        """The delivery object's instance, by resource id."""
        values = await self._read(ResourcePath(self.OBJECT, self.st.instance))
        return {p.resource: v for p, v in values.items()}

    async def _prepare(self) -> None:
        """A package delivered or installed before: Uninstall ForUpdate (the running module keeps running)."""
        v = await self._read_object()
        kept = (SoftwareState.DELIVERED, SoftwareState.INSTALLED)
        if v.get(Sw.UPDATE_STATE) in kept:
            await self._execute(Sw.UNINSTALL, lambda now: now.get(Sw.UPDATE_STATE) not in kept, "1")

    async def _expect(self, state: SoftwareState, when: str, activated: bool = False) -> None:
        v = await self._read_object()
        st = self.st
        st.update_result, st.reason = v.get(Sw.UPDATE_RESULT), str(v.get(Sw.STATUS_REASON) or "")
        st.result_meaning = result_meaning(st.update_result) if st.update_result is not None else ""
        ok = v.get(Sw.UPDATE_STATE) == state and (not activated or v.get(Sw.ACTIVATION_STATE) is True)
        if ok and (st.update_result or 0) < 50:
            return
        code = st.update_result
        advice = _ADVICE.get(code, "see the device's Status Reason")
        st.message = (f"device '{st.endpoint}' {when}: Update Result {code} ({st.result_meaning})"
                      + (f", the loader says '{st.reason}'" if st.reason else "") + f"; {advice}")
        raise DeliveryError(st.message)

    # -- the transfer: the device's fetch of the published package, or block-wise writes ------
    async def _transfer(self) -> None:
        if self.pull:
            return await self._pulled()
        await self._pushed()

    async def _pulled(self) -> None:
        """Publish, write the URI to Package URI, wait while the device fetches it: bytes_done is the
        size once it has (any other state is judged by :meth:`_after_transfer`, with its Update Result)."""
        st, uri_path = self.st, self._path(self.PACKAGE_URI)
        uri = self.server.publish(self.module)
        try:
            await self.server.write(st.endpoint, uri_path, {uri_path: uri})
        except LwM2MError as e:
            if getattr(e, "status", None) in (409, 424):
                raise
            raise DeliveryError(f"device '{st.endpoint}' refused the Package URI {uri_path} ({e}); deliver it by "
                                "push instead") from None
        deadline, wait = time.monotonic() + self.resume_wait_s, 0.05     # read every 50 ms, doubling to 0.4 s
        while (v := await self._read_object()).get(self.STATE_RES) == self.FETCHING:
            if time.monotonic() > deadline:
                raise DeliveryError(f"device '{st.endpoint}' was still fetching {uri} after {self.resume_wait_s:g} "
                                    "s; check that it reaches the LwM2M server's public host, then deliver again")
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.4)
        if v.get(self.STATE_RES) == self.FETCHED:
            st.bytes_done = st.size          # fetched by the device, in the blocks it asked for

    async def _pushed(self) -> None:
        st, data = self.st, self.module
        offset, deadline = self.start_offset, None
        st.bytes_done, st.blocks_done = offset, offset // st.block_size
        while offset < len(data):
            size = st.block_size
            try:
                resp = await self._block(offset, size)
            except (asyncio.TimeoutError, coap_error.Error, LwM2MError) as e:
                if isinstance(e, LwM2MError) and getattr(e, "status", 409) not in (409, 424):
                    raise
                deadline = deadline or time.monotonic() + self.resume_wait_s
                if time.monotonic() > deadline:
                    raise DeliveryError(f"device '{st.endpoint}' stopped answering at byte {offset:,} of "
                                        f"{st.size:,} and did not come back within {self.resume_wait_s:g} s; "
                                        "deliver again once it is online (it resumes there)") from None
                st.resumed += 1
                log.info("lwm2m: delivery to '%s': no answer for the block at byte %d (%s), retrying", st.endpoint,
                         offset, str(e) or type(e).__name__)
                await asyncio.sleep(0.5)
                continue
            deadline = None
            b1 = resp.opt.block1
            if resp.code == Code.CONTINUE or (resp.code.is_successful() and offset + size >= len(data)):
                offset = min(offset + size, len(data))
                st.bytes_done, st.blocks_done = offset, st.blocks_done + 1
                if resp.code != Code.CONTINUE:
                    return
                if b1 is not None and b1.size < size:       # RFC 7959: the device may ask for smaller blocks
                    st.block_size = b1.size
                continue
            smaller = (b1.size if b1 is not None else size // 2 if resp.opt.size1 is None else size)
            if resp.code == Code.REQUEST_ENTITY_TOO_LARGE and 16 <= smaller < size:
                st.block_size, st.blocks_done = smaller, offset // smaller     # counted in the new size
                log.info("lwm2m: '%s' takes blocks of %d B: transfer goes on at byte %d", st.endpoint,
                         st.block_size, offset)
                continue
            if resp.code == Code.REQUEST_ENTITY_INCOMPLETE and b1 is not None and b1.start <= len(data) \
                    and (b1.start != offset or offset != 0):
                st.resumed += 1                  # where it expects us; a resumed transfer it cannot go on: from 0
                offset = st.bytes_done = b1.start if b1.start != offset else 0
                st.blocks_done = offset // size          # the blocks before the one it expects are done
                continue
            await self._refused(resp, offset)

    async def _refused(self, resp: Message, offset: int) -> None:
        st = self.st
        detail = resp.payload[:100].decode("utf-8", "replace")
        try:
            await self._check_refusal(f"refused the block at byte {offset:,}")
        except DeliveryError:
            raise
        except LwM2MError:
            pass          # Update State unreadable: the CoAP answer says it all
        raise DeliveryError(f"device '{st.endpoint}' answered the block at byte {offset:,} with "
                            f"{resp.code.dotted} {resp.code.name_printable}" + (f" ({detail})" if detail else ""))

    async def _check_refusal(self, when: str) -> None:
        """A refused block: DeliveryError with the Update Result the device set, if it set one."""
        await self._expect(SoftwareState.DOWNLOAD_STARTED, when)

    async def _block(self, offset: int, size: int) -> Message:
        """One Block1 request from the registration socket; the device's answer, whatever its code."""
        srv, st = self.server, self.st
        reg = srv._reg(st.endpoint)
        await srv._awake(reg)
        chunk = self.module[offset:offset + size]
        msg = Message(code=Code.PUT, payload=chunk, uri_path=[str(i) for i in self._path(self.PACKAGE).ids],
                      transport_tuning=transmission(self.block_timeout_s))
        msg.remote = reg.remote
        msg.opt.content_format = ContentFormat.OPAQUE
        msg.opt.block1 = BlockOption.BlockwiseTuple(offset // size, offset + size < len(self.module),
                                                    size.bit_length() - 5)
        if offset == 0:
            msg.opt.size1 = len(self.module)
        request = srv.ctx_for(reg).request(msg, handle_blockwise=False)
        return await asyncio.wait_for(request.response, self.block_timeout_s)

    async def _report(self) -> None:
        """After Activate: the TinyML object's counters, and the capabilities kept for the device."""
        srv, st = self.server, self.st
        tml = srv.defs.tinyml_object_id
        try:
            values = await self._read(ResourcePath(tml, 0))
        except LwM2MError:
            return                       # a device without the TinyML object
        st.inference_count = values.get(ResourcePath(tml, 0, TinyML.INFERENCE_COUNT))
        st.last_latency_us = values.get(ResourcePath(tml, 0, TinyML.LAST_INFERENCE_LATENCY))
        await srv._read_capabilities(srv._reg(st.endpoint))


_FW_ADVICE = {
    FirmwareResult.INVALID_URI: _URI_ADVICE,
    FirmwareResult.UNSUPPORTED_PROTOCOL: _URI_ADVICE,
    FirmwareResult.CONNECTION_LOST: _LOST_ADVICE,
    FirmwareResult.NOT_ENOUGH_FLASH: "the image is larger than the device's firmware flash: build a smaller "
                                     "firmware (without debug sections: arm-none-eabi-strip)",
    FirmwareResult.INTEGRITY_CHECK_FAILURE: "the image is cut short or corrupt (its ELF tables point past its "
                                            "end): send the whole firmware ELF again",
    FirmwareResult.UNSUPPORTED_PACKAGE_TYPE: "the device takes 32-bit little-endian Arm ELF images: send the "
                                             "firmware.elf the build wrote",
    FirmwareResult.UPDATE_FAILED: "the old firmware still runs: the new one did not boot, or its loader refused the "
                                  "running module (build it for the device's signing key and kernels), or the "
                                  "device cannot reflash (a device agent without --firmware)",
}


@dataclass
class FirmwareDeliveryState(DeliveryState):
    firmware_before: str | None = None    # Device /3/0/3 before and after the update
    firmware_after: str | None = None


class FirmwareDelivery(Delivery):
    """Push of a whole firmware image over object 5 (FOTA): the same block-wise transfer to
    Package (``/5/0/0``), State DOWNLOADED (2), Execute Update (``/5/0/2``), State followed
    until IDLE with Update Result 1 (or a failure code with its meaning), then Device
    Firmware Version (``/3/0/3``) read. States: pending, transferring, downloaded,
    updating, updated, failed."""
    KIND, STATE = "firmware", FirmwareDeliveryState
    OBJECT, PACKAGE = ObjectId.FIRMWARE_UPDATE, Fw.PACKAGE
    PACKAGE_URI, STATE_RES = Fw.PACKAGE_URI, Fw.STATE            # pull: the URI goes to /5/0/1
    FETCHING, FETCHED = FirmwareState.DOWNLOADING, FirmwareState.DOWNLOADED

    async def _firmware_version(self) -> str | None:
        path = ResourcePath(ObjectId.DEVICE, 0, Device.FIRMWARE_VERSION)
        try:
            return (await self._read(path)).get(path)
        except LwM2MError:
            return None

    async def _prepare(self) -> None:
        """An image downloaded before and not applied: cancelled (an empty Package); one being
        applied: the delivery waits for nothing and fails."""
        self.st.firmware_before = await self._firmware_version()
        v = await self._read_object()
        if v.get(Fw.STATE) == FirmwareState.UPDATING:
            raise DeliveryError(f"device '{self.st.endpoint}' is applying a firmware update; deliver again "
                                "once its State is IDLE")
        if v.get(Fw.STATE) == FirmwareState.DOWNLOADED:
            await self.server.write(self.st.endpoint, self._path(Fw.PACKAGE), {self._path(Fw.PACKAGE): b""},
                                    fmt=ContentFormat.OPAQUE)

    async def _expect(self, state: FirmwareState, when: str, v: dict | None = None) -> None:
        v = v if v is not None else await self._read_object()
        st = self.st
        st.update_result = v.get(Fw.UPDATE_RESULT)
        st.result_meaning = result_meaning(st.update_result, 5) if st.update_result is not None else ""
        if v.get(Fw.STATE) == state and st.update_result in (FirmwareResult.INITIAL, FirmwareResult.SUCCESS):
            return
        code = st.update_result
        advice = _FW_ADVICE.get(code, f"the device is in State {v.get(Fw.STATE)}, not {state.name}")
        st.message = f"device '{st.endpoint}' {when}: Update Result {code} ({st.result_meaning}); {advice}"
        raise DeliveryError(st.message)

    async def _check_refusal(self, when: str) -> None:
        await self._expect(FirmwareState.DOWNLOADING, when)

    async def _after_transfer(self) -> None:
        st = self.st
        await self._expect(FirmwareState.DOWNLOADED, self._transferred)
        st.state = "downloaded"
        await self._execute(Fw.UPDATE, lambda v: v.get(Fw.STATE) != FirmwareState.DOWNLOADED)
        st.state = "updating"
        deadline = time.monotonic() + self.resume_wait_s      # a device may reboot for a while
        while (v := await self._read_object()).get(Fw.STATE) == FirmwareState.UPDATING:
            if time.monotonic() > deadline:
                raise DeliveryError(f"device '{st.endpoint}' was still updating after {self.resume_wait_s:g} s")
            await asyncio.sleep(0.2)
        await self._expect(FirmwareState.IDLE, "after Update", v)
        if st.update_result != FirmwareResult.SUCCESS:
            st.message = f"device '{st.endpoint}' after Update: State IDLE but Update Result {st.update_result}"
            raise DeliveryError(st.message)
        st.firmware_after = await self._firmware_version()
        try:
            await self.server._read_capabilities(self.server._reg(st.endpoint))
        except LwM2MError:
            pass                       # the update is done; the capabilities are read again at its next Update
        st.state = "updated"
        st.message = f"firmware updated on '{st.endpoint}' ({self._how()}): now {st.firmware_after!r}"


class Deliveries:
    """The deliveries a server runs, by endpoint (the latest one each); at most ``concurrent``
    transfer at a time, the others wait ``pending`` (hundreds at once would make each device's
    requests wait longer than their timeout on the server's one event loop)."""

    def __init__(self, server, concurrent: int = 32):
        self.server = server
        self.slots = asyncio.Semaphore(concurrent)
        self.latest: dict[str, Delivery] = {}
        self.firmware: dict[str, FirmwareDelivery] = {}    # the latest firmware delivery per endpoint
        self.kinds: dict[str, str] = {}                     # the kind of the latest delivery of either
        self.tasks: dict[str, asyncio.Task] = {}

    def running(self, endpoint: str) -> bool:
        task = self.tasks.get(endpoint)
        return task is not None and not task.done()

    def start(self, endpoint: str, module: bytes, kind: type[Delivery] = Delivery, **kw) -> DeliveryState:
        """Start ``kind`` (a module over object 9, or :class:`FirmwareDelivery`); one transfer per
        device at a time, whichever its kind."""
        if self.running(endpoint):
            what = "firmware" if self.kinds.get(endpoint) == "firmware" else "modules"
            raise DeliveryError(f"a delivery to '{endpoint}' is running", hint="Wait for it: GET "
                                f"/v1/devices/{endpoint}/{what}")
        d = kind(self.server, endpoint, module, **kw)
        (self.firmware if kind.KIND == "firmware" else self.latest)[endpoint] = d
        self.kinds[endpoint] = kind.KIND
        self.tasks[endpoint] = asyncio.get_running_loop().create_task(d.run(self.slots))
        return d.st

    def state(self, endpoint: str, kind: str = "module") -> DeliveryState | None:
        d = (self.firmware if kind == "firmware" else self.latest).get(endpoint)
        return d.st if d else None
