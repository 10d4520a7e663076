"""LwM2M Software Management (object 9) on the device: inference modules into A/B slots.

The state machines of OMA-TS-LWM2M_SwMgmt 1.0 (object 9, ``urn:oma:lwm2m:oma:9``),
pure Python, no wire: the device agent calls these methods for Write, Execute
and the end of a transfer, and reads the resources back.

Package installation state machine (Update State, resource 7)::

    INITIAL --package block / URI--> DOWNLOAD STARTED --last block--> DOWNLOADED
    DOWNLOADED --integrity ok--> DELIVERED (result 3)
    DOWNLOADED --integrity fails--> INITIAL (result 53 / 54)
    DOWNLOAD STARTED --storage / transfer fails--> INITIAL (result 50 / 52 / 56)
    DELIVERED --Install ok--> INSTALLED (result 2);  Install fails: stays DELIVERED (result 58)
    INSTALLED / DELIVERED --Uninstall--> INITIAL (result 0)
    DOWNLOAD STARTED --empty Package URI--> INITIAL (result 0)

A Package URI (resource 3) starts the download as a first block does: the
device fetches the package (the agent: CoAP Block2) and hands it to
:meth:`SoftwareUpdate.write_block` as one last block, so a pulled package
gets exactly the checks of a pushed one; a URI it cannot fetch is result 56,
a server that does not answer 52.

Activation (resource 12) applies in INSTALLED: Activate switches the running
slot to the new module, Deactivate rolls back to the module that ran before.
Uninstall with argument 0 also rolls back and erases the package; with
argument 1 ("ForUpdate") the active module stays and the next package goes
to the other slot.

The MCU behind it is a :class:`ModuleTarget`: :class:`~platformio_tinyml.module.host.HostDevice`
(the C loader built for the host) or the QEMU firmware. Every verdict comes
from that loader; :func:`result_for_loader_error` maps its codes to Update Results:
a package that is not what was signed (CRC, signature, structure) is 53, one
this firmware cannot run (kernel set, kernel ABI, payload kind, format) is 54,
one that fits neither the slot nor the arena or is older than the running module is
50 at download / 58 at Install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import TinyMLError
from ..module.host import ERROR_NAMES
from .ids import SoftwareResult as UpdateResult
from .ids import SoftwareState as UpdateState
from .ids import result_meaning


# The C loader's codes (module/runtime/tml_module.h) by what they say about a package.
INTEGRITY = {-2, -3, -4, -6, -7, -8, -9, -15, -16, -18, -19}     # not the bytes that were signed, or malformed
UNSUPPORTED = {-5, -10, -11, -12, -17}                            # format, kind, kernel ABI or set, endianness
INSTALL = {-13, -14}                                              # older than the running module, arena


def result_for_loader_error(code: int) -> UpdateResult:
    """The Update Result for a refusal of the C loader (``TML_MOD_E_*``)."""
    if code in INTEGRITY:
        return UpdateResult.INTEGRITY_CHECK_FAILURE
    if code in UNSUPPORTED:
        return UpdateResult.UNSUPPORTED_PACKAGE_TYPE
    return UpdateResult.INSTALLATION_FAILURE


class ModuleTarget(Protocol):
    """The MCU side: two slots and the firmware's module loader (codes: ``TML_MOD_*``)."""
    slot_size: int

    @property
    def active(self) -> int: ...

    @property
    def installed_version(self) -> int: ...

    def erase(self, slot: int) -> None: ...

    def write(self, slot: int, offset: int, data: bytes) -> None: ...

    def read(self, slot: int, size: int) -> bytes: ...

    def check(self, slot: int, min_version: int = 0) -> int: ...

    def install(self, slot: int) -> int: ...

    def boot(self, slot: int, installed_version: int = 0) -> int: ...


class SwUpdateError(TinyMLError):
    """An operation the current state does not allow (the agent answers 4.05 / 4.00)."""


@dataclass
class Package:
    """What the header of a delivered module says (after the loader's integrity check)."""
    name: str = ""
    version: str = ""
    size: int = 0


class SoftwareUpdate:
    """One object 9 instance delivering inference modules to ``target``'s inactive slot."""

    def __init__(self, target: ModuleTarget):
        self.target = target
        self.state = UpdateState.INITIAL
        self.result = UpdateResult.INITIAL
        self.activated = False
        self.reason = ""              # Status Reason (16): the loader's word for the last refusal
        self.package = Package()
        self.received = 0             # contiguous bytes written (a cut transfer resumes here)
        self.slot = self._free_slot()
        self.previous: tuple[int, int] | None = None   # (slot, version) that ran before Activate

    # ---- resources -------------------------------------------------------------------
    def _free_slot(self) -> int:
        return 1 - self.target.active if self.target.active >= 0 else 0

    @property
    def resume_offset(self) -> int:
        return self.received if self.state is UpdateState.DOWNLOAD_STARTED else 0

    def _fail(self, result: UpdateResult, reason: str) -> UpdateResult:
        self.state, self.result, self.reason = UpdateState.INITIAL, result, reason
        self.received = 0
        self.target.erase(self.slot)
        return result

    # ---- download ----------------------------------------------------------------------
    def begin(self) -> None:
        """A package (first block) or Package URI was written."""
        if self.state not in (UpdateState.INITIAL, UpdateState.DOWNLOAD_STARTED):
            raise SwUpdateError(f"a package cannot be written in state {self.state.name}",
                                hint="Execute Uninstall (/9/x/6, argument 1 keeps the running module) first")
        self.slot = self._free_slot()
        self.target.erase(self.slot)
        self.state, self.result, self.reason = UpdateState.DOWNLOAD_STARTED, UpdateResult.DOWNLOADING, ""
        self.received = 0
        self.package = Package()

    def write_block(self, offset: int, data: bytes, last: bool) -> UpdateResult:
        """One block of the package at ``offset``; ``last`` ends the transfer.

        Offset 0 starts (or restarts) a download; any other offset must be the
        resume point, else :class:`SwUpdateError` (the agent answers 4.08)."""
        if offset == 0 and (self.state is not UpdateState.DOWNLOAD_STARTED or self.received != 0):
            self.begin()
        elif self.state is not UpdateState.DOWNLOAD_STARTED or offset != self.received:
            raise SwUpdateError(f"block at offset {offset}, expected {self.resume_offset}",
                                hint="Resume the transfer at the expected offset or restart at 0")
        if offset + len(data) > self.target.slot_size:
            return self._fail(UpdateResult.NOT_ENOUGH_STORAGE,
                              f"package larger than the {self.target.slot_size}-byte slot")
        self.target.write(self.slot, offset, data)
        self.received = offset + len(data)
        return self.finish() if last else self.result

    def cancel(self) -> None:
        """An empty Package URI: a download under way stops (INITIAL, result 0); otherwise nothing."""
        if self.state is UpdateState.DOWNLOAD_STARTED:
            self._fail(UpdateResult.INITIAL, "")

    def download_failed(self, result: UpdateResult, reason: str = "") -> UpdateResult:
        """The transfer ended badly (connection lost, invalid URI, ...): back to INITIAL."""
        return self._fail(result, reason or result_meaning(result))

    def finish(self) -> UpdateResult:
        """All bytes are in: DOWNLOADED, then the loader's integrity check decides."""
        self.state = UpdateState.DOWNLOADED
        code = self.target.check(self.slot, 0)
        if code != 0 and result_for_loader_error(code) is not UpdateResult.INSTALLATION_FAILURE:
            return self._fail(result_for_loader_error(code), ERROR_NAMES.get(code, str(code)))
        self.package = self._read_package()
        self.state, self.result = UpdateState.DELIVERED, UpdateResult.DOWNLOADED_VERIFIED
        return self.result

    def _read_package(self) -> Package:
        from ..module.format import decode_module
        try:
            h = decode_module(self.target.read(self.slot, self.received)).header
        except TinyMLError:       # e.g. arena-refused modules still decode; anything else: unnamed
            return Package(size=self.received)
        return Package(h.model_name, str(h.module_version), self.received)

    # ---- Install, Activate, Deactivate, Uninstall -------------------------------------
    def install(self) -> UpdateResult:
        if self.state is not UpdateState.DELIVERED:
            raise SwUpdateError(f"Install needs state DELIVERED, not {self.state.name}")
        code = self.target.check(self.slot, self.target.installed_version if self.target.active >= 0 else 0)
        if code != 0:
            self.result, self.reason = UpdateResult.INSTALLATION_FAILURE, ERROR_NAMES.get(code, str(code))
            return self.result
        self.state, self.result, self.activated, self.reason = UpdateState.INSTALLED, UpdateResult.INSTALLED, False, ""
        return self.result

    def activate(self) -> None:
        if self.state is not UpdateState.INSTALLED:
            raise SwUpdateError(f"Activate needs state INSTALLED, not {self.state.name}")
        if self.activated:
            return
        before = (self.target.active, self.target.installed_version)
        code = self.target.install(self.slot)
        if code != 0:
            self.result, self.reason = UpdateResult.INSTALLATION_FAILURE, ERROR_NAMES.get(code, str(code))
            raise SwUpdateError(f"the loader refused to switch to slot {self.slot} ({self.reason})")
        self.previous = before if before[0] >= 0 else None
        self.activated = True

    def deactivate(self) -> None:
        """Roll back to the module that ran before Activate (nothing runs if there was none)."""
        if self.state is not UpdateState.INSTALLED:
            raise SwUpdateError(f"Deactivate needs state INSTALLED, not {self.state.name}")
        if not self.activated:
            return
        self._roll_back()
        self.activated = False

    def _roll_back(self) -> None:
        if self.previous is None:
            self.target.erase(self.slot)
            self.target.boot(self.slot, 0)       # nothing valid: active becomes -1
            return
        slot, version = self.previous
        if self.target.boot(slot, version) != 0 or self.target.active != slot:
            self.result, self.reason = UpdateResult.UNINSTALLATION_FAILURE, "previous module no longer opens"
            raise SwUpdateError(f"the previous module in slot {slot} no longer opens")

    def uninstall(self, for_update: bool = False) -> None:
        """Argument 0: remove the package (roll back if it runs). 1 ("ForUpdate"): keep
        the running module, be ready for the next package in the other slot."""
        if self.state not in (UpdateState.DELIVERED, UpdateState.INSTALLED):
            raise SwUpdateError(f"Uninstall needs state DELIVERED or INSTALLED, not {self.state.name}")
        if not for_update or not self.activated:
            if self.activated:
                self._roll_back()
            self.target.erase(self.slot)
        self.state, self.result, self.activated, self.reason = UpdateState.INITIAL, UpdateResult.INITIAL, False, ""
        self.received = 0
        self.package = Package()
        self.slot = self._free_slot()
