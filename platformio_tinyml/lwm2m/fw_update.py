"""LwM2M Firmware Update (object 5) on the device: whole firmware images, pure Python.

The state machine of LwM2M 1.1 (Core, appendix E.6: object 5, ``urn:oma:lwm2m:oma:5``)::

    IDLE --first Package block / Package URI--> DOWNLOADING --last block, image verified--> DOWNLOADED
    DOWNLOADING --too large / connection lost / bad URI / unsupported / integrity--> IDLE (result 2,4,7,6,5)
    DOWNLOADED --Update (/5/0/2)--> UPDATING --ok--> IDLE (result 1);  --fails--> IDLE (result 8)
    any state --empty Package or empty Package URI--> IDLE (result 0)

What a firmware image is and how it is checked and applied belongs to the
device: ``verify(image) -> UpdateResult`` (SUCCESS to accept) at the end of a
download and ``apply(image) -> UpdateResult`` at Update. The device agent uses
:func:`verify_arm_elf` for the QEMU firmware.
"""

from __future__ import annotations

import struct
from typing import Callable

from ..errors import TinyMLError
from .ids import FirmwareResult as UpdateResult
from .ids import FirmwareState as State


class FwUpdateError(TinyMLError):
    """An operation the current state does not allow (the agent answers 4.05)."""


class FirmwareUpdate:
    """Object 5 instance 0: receives an image of at most ``max_size`` bytes."""

    def __init__(self, max_size: int, verify: Callable[[bytes], UpdateResult],
                 apply: Callable[[bytes], UpdateResult]):
        self.max_size = max_size
        self._verify, self._apply = verify, apply
        self.state = State.IDLE
        self.result = UpdateResult.INITIAL
        self.image = bytearray()

    @property
    def resume_offset(self) -> int:
        return len(self.image) if self.state is State.DOWNLOADING else 0

    def cancel(self) -> None:
        """An empty Package or Package URI: drop everything, IDLE, result 0."""
        if self.state is State.UPDATING:
            raise FwUpdateError("the update is running and cannot be cancelled")
        self.state, self.result, self.image = State.IDLE, UpdateResult.INITIAL, bytearray()

    def _fail(self, result: UpdateResult) -> UpdateResult:
        self.state, self.result, self.image = State.IDLE, result, bytearray()
        return result

    def write_block(self, offset: int, data: bytes, last: bool) -> UpdateResult:
        """One Package block at ``offset``; offset 0 starts a download, others must resume it."""
        if offset == 0 and last and not data:
            self.cancel()
            return self.result
        if self.state in (State.DOWNLOADED, State.UPDATING):
            raise FwUpdateError(f"a package cannot be written in state {self.state.name}",
                                hint="Write an empty Package to cancel first")
        if offset == 0:
            self.state, self.result, self.image = State.DOWNLOADING, UpdateResult.INITIAL, bytearray()
        elif self.state is not State.DOWNLOADING or offset != len(self.image):
            raise FwUpdateError(f"block at offset {offset}, expected {self.resume_offset}",
                                hint="Resume the transfer at the expected offset or restart at 0")
        if offset + len(data) > self.max_size:
            return self._fail(UpdateResult.NOT_ENOUGH_FLASH)
        self.image += data
        if not last:
            return self.result
        verdict = self._verify(bytes(self.image))
        if verdict is not UpdateResult.SUCCESS:
            return self._fail(verdict)
        self.state = State.DOWNLOADED
        return self.result

    def begin_pull(self) -> None:
        """A Package URI was written: DOWNLOADING, nothing held yet (the device fetches it and
        hands the bytes to :meth:`write_block` as one last block, or calls :meth:`download_failed`)."""
        if self.state in (State.DOWNLOADED, State.UPDATING):
            raise FwUpdateError(f"a Package URI cannot be written in state {self.state.name}",
                                hint="Write an empty Package URI to cancel first")
        self.state, self.result, self.image = State.DOWNLOADING, UpdateResult.INITIAL, bytearray()

    def download_failed(self, result: UpdateResult) -> UpdateResult:
        return self._fail(result)

    def update(self) -> UpdateResult:
        """Execute /5/0/2."""
        if self.state is not State.DOWNLOADED:
            raise FwUpdateError(f"Update needs state DOWNLOADED, not {self.state.name}")
        self.state = State.UPDATING
        try:
            verdict = self._apply(bytes(self.image))
        except TinyMLError:
            verdict = UpdateResult.UPDATE_FAILED
        self.state, self.image = State.IDLE, bytearray()
        self.result = UpdateResult.SUCCESS if verdict is UpdateResult.SUCCESS else verdict
        return self.result


def verify_arm_elf(image: bytes) -> UpdateResult:
    """A 32-bit little-endian Arm executable whose section and program tables lie in the
    file: SUCCESS; another file kind: UNSUPPORTED_PACKAGE; cut short: INTEGRITY_FAILURE."""
    if len(image) < 52 or image[:4] != b"\x7fELF":
        return UpdateResult.UNSUPPORTED_PACKAGE_TYPE
    if image[4] != 1 or image[5] != 1 or struct.unpack_from("<H", image, 18)[0] != 40:
        return UpdateResult.UNSUPPORTED_PACKAGE_TYPE
    phoff, shoff = struct.unpack_from("<II", image, 28)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", image, 42)
    if phoff + phentsize * phnum > len(image) or shoff + shentsize * shnum > len(image):
        return UpdateResult.INTEGRITY_CHECK_FAILURE
    for k in range(phnum):
        _, off, _, _, filesz = struct.unpack_from("<IIIII", image, phoff + k * phentsize)
        if off + filesz > len(image):
            return UpdateResult.INTEGRITY_CHECK_FAILURE
    return UpdateResult.SUCCESS
