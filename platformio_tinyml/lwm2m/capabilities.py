"""What a device can run, from its Device (3) and TinyML object values, as the compilers see it.

:func:`capabilities_from_values` turns the values read on registration into
:class:`Capabilities`: the firmware's module contract (kernel set, executor
ABI, slots) plus a :class:`~platformio_tinyml.device.DeviceProfile`, the
same one a board manifest gives, so backend selection works unchanged. For
a module, ``ram_bytes`` is the RAM the firmware leaves for the tensor arena
and ``flash_bytes`` the size of one module slot: those are the limits a
module must fit, not the chip's totals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..device import DeviceProfile
from .ids import Device, LwM2MError, ObjectId, ResourcePath, SlotState, TinyML

_REQUIRED = (TinyML.CORE, TinyML.ARCHITECTURE, TinyML.ARENA_RAM, TinyML.SLOT_SIZE, TinyML.SLOT_COUNT,
             TinyML.KERNEL_SET, TinyML.EXECUTOR_ABI_VERSION)


@dataclass(frozen=True)
class Slot:
    index: int
    module: str
    version: str
    state: str          # a SlotState name in lower case: empty, installed, active, invalid


@dataclass(frozen=True)
class Capabilities:
    profile: DeviceProfile
    kernel_set: str
    executor_abi: int
    slot_size: int
    slot_count: int
    active_slot: int
    slots: tuple[Slot, ...] = ()
    inference_count: int = 0
    last_latency_us: int = 0
    last_error: str = ""
    device: dict = field(default_factory=dict)   # manufacturer, model, serial, firmware

    def to_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = self.profile.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Capabilities":
        return cls(**{**data, "profile": DeviceProfile.from_dict(data["profile"]),
                      "slots": tuple(Slot(**s) for s in data.get("slots", ()))})


def capabilities_from_values(values: dict[ResourcePath, object], endpoint: str,
                             tinyml_object_id: int) -> Capabilities:
    """Capabilities from the values of ``/3/0`` and ``/<tinyml>/0``; LwM2MError naming what is missing."""
    def dev(rid):
        return values.get(ResourcePath(ObjectId.DEVICE, 0, rid))

    def tml(rid, default=None):
        return values.get(ResourcePath(tinyml_object_id, 0, rid), default)

    missing = [r.name.lower() for r in _REQUIRED if tml(r) is None]
    if missing:
        raise LwM2MError(f"device '{endpoint}': the TinyML object /{tinyml_object_id}/0 lacks "
                         + ", ".join(missing), hint="Give the device a board id or profile explicitly")
    name = " ".join(str(v) for v in (dev(Device.MANUFACTURER), dev(Device.MODEL_NUMBER)) if v) or endpoint
    fpu = str(tml(TinyML.FPU, "") or "").lower() or None
    profile = DeviceProfile(
        board=str(tml(TinyML.BOARD, "") or f"lwm2m-{endpoint}"), name=name, platform="",
        arch=str(tml(TinyML.ARCHITECTURE)), core=str(tml(TinyML.CORE)),
        word_bits=int(tml(TinyML.WORD_BITS, 32)), clock_hz=int(tml(TinyML.CLOCK, 0)),
        flash_bytes=int(tml(TinyML.SLOT_SIZE)), ram_bytes=int(tml(TinyML.ARENA_RAM)),
        fpu=fpu if fpu in ("sp", "dp") else None, dsp=bool(tml(TinyML.DSP, False)),
        mve=bool(tml(TinyML.MVE, False)), npu=str(tml(TinyML.ACCELERATOR, "") or "") or None,
        mcu=str(tml(TinyML.MCU, "") or ""),
        notes=(f"from LwM2M /{tinyml_object_id}/0: ram_bytes is the RAM left for the arena, "
               "flash_bytes one module slot",))
    return Capabilities(
        profile=profile, kernel_set=str(tml(TinyML.KERNEL_SET)), executor_abi=int(tml(TinyML.EXECUTOR_ABI_VERSION)),
        slot_size=int(tml(TinyML.SLOT_SIZE)), slot_count=int(tml(TinyML.SLOT_COUNT)),
        active_slot=int(tml(TinyML.ACTIVE_SLOT, -1)), slots=_slots(values, tinyml_object_id, int(tml(TinyML.SLOT_COUNT))),
        inference_count=int(tml(TinyML.INFERENCE_COUNT, 0)),
        last_latency_us=int(tml(TinyML.LAST_INFERENCE_LATENCY, 0)), last_error=str(tml(TinyML.LAST_ERROR, "")),
        device={k: str(dev(r)) for k, r in (("manufacturer", Device.MANUFACTURER), ("model", Device.MODEL_NUMBER),
                                           ("serial", Device.SERIAL_NUMBER), ("firmware", Device.FIRMWARE_VERSION))
                if dev(r) is not None})


def _slots(values: dict, oid: int, count: int) -> tuple[Slot, ...]:
    def per_slot(rid, i, default):
        return values.get(ResourcePath(oid, 0, rid, i), default)

    slots = []
    for i in range(min(count, 255)):
        state = per_slot(TinyML.SLOT_STATE, i, 0)
        try:
            state_name = SlotState(state).name.lower()
        except ValueError:
            state_name = f"unknown ({state})"
        slots.append(Slot(i, str(per_slot(TinyML.MODULE_NAME, i, "")), str(per_slot(TinyML.MODULE_VERSION, i, "")),
                          state_name))
    return tuple(slots)
