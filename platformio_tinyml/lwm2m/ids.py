"""LwM2M object and resource ids as enums, and the object definitions they are checked against.

The definitions come from the OMA DDF XML files in ``objects/`` (written for
this project from the LwM2M 1.1 text: Security 0, Server 1, Device 3,
Firmware Update 5, Software Management 9, and our TinyML object, see
docs/lwm2m/tinyml-object.xml). :func:`load_definitions` parses them into
:class:`ObjectDef` values; the codecs use the resource types to read TLV and
plain text and to check SenML values. Each enum below names the resources of
one object; :func:`check_enums` (run by the tests) fails when an enum and its
DDF disagree on an id or a name.

The TinyML object id is configurable (``tinyml_object_id``; default
:data:`TINYML_OBJECT_ID`): the enum :class:`TinyML` names its resources, the
object id itself travels in :class:`Definitions`.
"""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from ..errors import TinyMLError

OBJECTS_DIR = Path(__file__).with_name("objects")
TINYML_OBJECT_ID = 32100          # OMNA range 26241-32768: reusable without registration
_ID_RANGE = range(0, 65535)       # 65535 is reserved (MAX_ID)


class LwM2MError(TinyMLError):
    """A bad LwM2M path, definition, payload or request."""


class ObjectId(enum.IntEnum):
    SECURITY = 0
    SERVER = 1
    DEVICE = 3
    FIRMWARE_UPDATE = 5
    SOFTWARE_MANAGEMENT = 9


class Security(enum.IntEnum):
    SERVER_URI = 0
    BOOTSTRAP_SERVER = 1
    SECURITY_MODE = 2
    PUBLIC_KEY_OR_IDENTITY = 3
    SERVER_PUBLIC_KEY = 4
    SECRET_KEY = 5
    SMS_SECURITY_MODE = 6
    SMS_BINDING_KEY_PARAMETERS = 7
    SMS_BINDING_SECRET_KEYS = 8
    SERVER_SMS_NUMBER = 9
    SHORT_SERVER_ID = 10
    CLIENT_HOLD_OFF_TIME = 11
    BOOTSTRAP_SERVER_ACCOUNT_TIMEOUT = 12
    MATCHING_TYPE = 13
    SNI = 14
    CERTIFICATE_USAGE = 15
    DTLS_TLS_CIPHERSUITE = 16
    OSCORE_SECURITY_MODE = 17


class SecurityMode(enum.IntEnum):
    PSK = 0
    RAW_PUBLIC_KEY = 1
    CERTIFICATE = 2
    NO_SEC = 3
    CERTIFICATE_EST = 4


class Server(enum.IntEnum):
    SHORT_SERVER_ID = 0
    LIFETIME = 1
    DEFAULT_MIN_PERIOD = 2
    DEFAULT_MAX_PERIOD = 3
    DISABLE = 4
    DISABLE_TIMEOUT = 5
    NOTIFICATION_STORING = 6
    BINDING = 7
    REGISTRATION_UPDATE_TRIGGER = 8
    BOOTSTRAP_REQUEST_TRIGGER = 9
    APN_LINK = 10
    TLS_DTLS_ALERT_CODE = 11
    LAST_BOOTSTRAPPED = 12
    REGISTRATION_PRIORITY_ORDER = 13
    INITIAL_REGISTRATION_DELAY_TIMER = 14
    REGISTRATION_FAILURE_BLOCK = 15
    BOOTSTRAP_ON_REGISTRATION_FAILURE = 16
    COMMUNICATION_RETRY_COUNT = 17
    COMMUNICATION_RETRY_TIMER = 18
    COMMUNICATION_SEQUENCE_DELAY_TIMER = 19
    COMMUNICATION_SEQUENCE_RETRY_COUNT = 20
    TRIGGER = 21
    PREFERRED_TRANSPORT = 22
    MUTE_SEND = 23


class Device(enum.IntEnum):
    MANUFACTURER = 0
    MODEL_NUMBER = 1
    SERIAL_NUMBER = 2
    FIRMWARE_VERSION = 3
    REBOOT = 4
    FACTORY_RESET = 5
    AVAILABLE_POWER_SOURCES = 6
    POWER_SOURCE_VOLTAGE = 7
    POWER_SOURCE_CURRENT = 8
    BATTERY_LEVEL = 9
    MEMORY_FREE = 10
    ERROR_CODE = 11
    RESET_ERROR_CODE = 12
    CURRENT_TIME = 13
    UTC_OFFSET = 14
    TIMEZONE = 15
    SUPPORTED_BINDING_AND_MODES = 16
    DEVICE_TYPE = 17
    HARDWARE_VERSION = 18
    SOFTWARE_VERSION = 19
    BATTERY_STATUS = 20
    MEMORY_TOTAL = 21
    EXT_DEV_INFO = 22


class FirmwareUpdate(enum.IntEnum):
    PACKAGE = 0
    PACKAGE_URI = 1
    UPDATE = 2
    STATE = 3
    UPDATE_RESULT = 5
    PKG_NAME = 6
    PKG_VERSION = 7
    PROTOCOL_SUPPORT = 8
    DELIVERY_METHOD = 9


class FirmwareState(enum.IntEnum):
    """Object 5 resource 3."""
    IDLE = 0
    DOWNLOADING = 1
    DOWNLOADED = 2
    UPDATING = 3


class FirmwareResult(enum.IntEnum):
    """Object 5 resource 5."""
    INITIAL = 0
    SUCCESS = 1
    NOT_ENOUGH_FLASH = 2
    OUT_OF_RAM = 3
    CONNECTION_LOST = 4
    INTEGRITY_CHECK_FAILURE = 5
    UNSUPPORTED_PACKAGE_TYPE = 6
    INVALID_URI = 7
    UPDATE_FAILED = 8
    UNSUPPORTED_PROTOCOL = 9


class SoftwareManagement(enum.IntEnum):
    PKG_NAME = 0
    PKG_VERSION = 1
    PACKAGE = 2
    PACKAGE_URI = 3
    INSTALL = 4
    CHECKPOINT = 5
    UNINSTALL = 6
    UPDATE_STATE = 7
    UPDATE_SUPPORTED_OBJECTS = 8
    UPDATE_RESULT = 9
    ACTIVATE = 10
    DEACTIVATE = 11
    ACTIVATION_STATE = 12
    PACKAGE_SETTINGS = 13
    USER_NAME = 14
    PASSWORD = 15
    STATUS_REASON = 16
    SOFTWARE_COMPONENT_LINK = 17
    SOFTWARE_COMPONENT_TREE_LENGTH = 18


class SoftwareState(enum.IntEnum):
    """Object 9 resource 7 (Update State)."""
    INITIAL = 0
    DOWNLOAD_STARTED = 1
    DOWNLOADED = 2
    DELIVERED = 3
    INSTALLED = 4


class SoftwareResult(enum.IntEnum):
    """Object 9 resource 9 (Update Result); :func:`result_meaning` gives the sentence."""
    INITIAL = 0
    DOWNLOADING = 1
    INSTALLED = 2
    DOWNLOADED_VERIFIED = 3
    NOT_ENOUGH_STORAGE = 50
    OUT_OF_MEMORY = 51
    CONNECTION_LOST = 52
    INTEGRITY_CHECK_FAILURE = 53
    UNSUPPORTED_PACKAGE_TYPE = 54
    INVALID_URI = 56
    DEVICE_DEFINED_ERROR = 57
    INSTALLATION_FAILURE = 58
    UNINSTALLATION_FAILURE = 59


class TinyML(enum.IntEnum):
    """Resources of our TinyML object; per-slot resources are multi-instance, instance id = slot."""
    CORE = 0
    ARCHITECTURE = 1
    CLOCK = 2
    ARENA_RAM = 3
    FLASH = 4
    SLOT_SIZE = 5
    SLOT_COUNT = 6
    ACCELERATOR = 7
    KERNEL_SET = 8
    EXECUTOR_ABI_VERSION = 9
    FPU = 10
    DSP = 11
    WORD_BITS = 12
    BOARD = 13
    MCU = 14
    MODULE_NAME = 15
    MODULE_VERSION = 16
    SLOT_STATE = 17
    ACTIVE_SLOT = 18
    INFERENCE_COUNT = 19
    LAST_INFERENCE_LATENCY = 20
    LAST_ERROR = 21
    MVE = 22
    LAST_OUTPUT = 23


class SlotState(enum.IntEnum):
    """TinyML resource 17, per slot."""
    EMPTY = 0
    INSTALLED = 1
    ACTIVE = 2
    INVALID = 3


_RESULT_MEANINGS = {
    SoftwareResult.INITIAL: "initial value",
    SoftwareResult.DOWNLOADING: "downloading",
    SoftwareResult.INSTALLED: "installed successfully",
    SoftwareResult.DOWNLOADED_VERIFIED: "downloaded and verified",
    SoftwareResult.NOT_ENOUGH_STORAGE: "not enough storage for the package",
    SoftwareResult.OUT_OF_MEMORY: "out of memory while downloading",
    SoftwareResult.CONNECTION_LOST: "connection lost while downloading",
    SoftwareResult.INTEGRITY_CHECK_FAILURE: "package integrity check failure (signature or CRC)",
    SoftwareResult.UNSUPPORTED_PACKAGE_TYPE: "unsupported package type",
    SoftwareResult.INVALID_URI: "invalid URI",
    SoftwareResult.DEVICE_DEFINED_ERROR: "device-defined update error",
    SoftwareResult.INSTALLATION_FAILURE: "software installation failure",
    SoftwareResult.UNINSTALLATION_FAILURE: "software uninstallation failure",
}


_FIRMWARE_MEANINGS = {
    FirmwareResult.INITIAL: "initial value",
    FirmwareResult.SUCCESS: "firmware updated successfully",
    FirmwareResult.NOT_ENOUGH_FLASH: "not enough flash memory for the new firmware package",
    FirmwareResult.OUT_OF_RAM: "out of RAM during downloading",
    FirmwareResult.CONNECTION_LOST: "connection lost during downloading",
    FirmwareResult.INTEGRITY_CHECK_FAILURE: "integrity check failure for the new firmware package",
    FirmwareResult.UNSUPPORTED_PACKAGE_TYPE: "unsupported package type",
    FirmwareResult.INVALID_URI: "invalid URI",
    FirmwareResult.UPDATE_FAILED: "firmware update failed",
    FirmwareResult.UNSUPPORTED_PROTOCOL: "unsupported protocol",
}


def result_meaning(code: int, obj: int = 9) -> str:
    """The meaning of an Update Result code of object 9 (default) or object 5, for reports."""
    try:
        return _FIRMWARE_MEANINGS[FirmwareResult(code)] if obj == 5 else _RESULT_MEANINGS[SoftwareResult(code)]
    except ValueError:
        return f"unknown result code {code}"


# -- definitions -----------------------------------------------------------

class ResourceType(str, enum.Enum):
    """A resource's data type as the DDF names it (``NONE``: executable resources)."""
    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED_INTEGER = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"
    NONE = ""


@dataclass(frozen=True)
class ResourceDef:
    id: int
    name: str
    operations: str          # "", "R", "W", "RW", "E"
    multiple: bool
    mandatory: bool
    type: ResourceType
    units: str = ""

    @property
    def executable(self) -> bool:
        return "E" in self.operations


@dataclass(frozen=True)
class ObjectDef:
    id: int
    name: str
    urn: str
    version: str
    multiple: bool
    mandatory: bool
    resources: dict[int, ResourceDef] = field(default_factory=dict)


@dataclass(frozen=True)
class Definitions:
    """The known objects by id, with the TinyML object under its configured id."""
    objects: dict[int, ObjectDef]
    tinyml_object_id: int = TINYML_OBJECT_ID

    def object(self, object_id: int) -> ObjectDef | None:
        return self.objects.get(object_id)

    def resource(self, object_id: int, resource_id: int) -> ResourceDef | None:
        obj = self.objects.get(object_id)
        return obj.resources.get(resource_id) if obj else None


def _text(node: ET.Element, tag: str, where: str) -> str:
    found = node.find(tag)
    if found is None:
        raise LwM2MError(f"DDF element <{tag}> missing", where=where)
    return (found.text or "").strip()


def parse_ddf(path: Path) -> ObjectDef:
    """One object definition from an OMA DDF XML file (the LWM2M-v1_1.xsd layout)."""
    where = str(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise LwM2MError(f"cannot read the object definition ({e})", where=where) from None
    obj = root.find("Object")
    if obj is None:
        raise LwM2MError("no <Object> element", where=where, hint="Write an OMA DDF file (LWM2M-v1_1.xsd)")
    resources = {}
    for item in obj.iterfind("Resources/Item"):
        rid = int(item.get("ID", "-1"))
        rwhere = f"{where}: resource {rid}"
        try:
            rtype = ResourceType(_text(item, "Type", rwhere))
        except ValueError:
            raise LwM2MError(f"unknown resource type '{_text(item, 'Type', rwhere)}'", where=rwhere,
                             hint="Types: " + ", ".join(t.value for t in ResourceType if t.value)) from None
        if rid not in _ID_RANGE or rid in resources:
            raise LwM2MError(f"resource id {rid} is invalid or repeated", where=rwhere)
        resources[rid] = ResourceDef(rid, _text(item, "Name", rwhere), _text(item, "Operations", rwhere),
                                     _text(item, "MultipleInstances", rwhere) == "Multiple",
                                     _text(item, "Mandatory", rwhere) == "Mandatory", rtype,
                                     _text(item, "Units", rwhere))
    oid = int(_text(obj, "ObjectID", where))
    if oid not in _ID_RANGE:
        raise LwM2MError(f"object id {oid} out of range 0-65534", where=where)
    return ObjectDef(oid, _text(obj, "Name", where), _text(obj, "ObjectURN", where),
                     _text(obj, "ObjectVersion", where), _text(obj, "MultipleInstances", where) == "Multiple",
                     _text(obj, "Mandatory", where) == "Mandatory", resources)


@lru_cache(maxsize=8)
def load_definitions(tinyml_object_id: int = TINYML_OBJECT_ID, folder: Path = OBJECTS_DIR) -> Definitions:
    """Every DDF in ``folder``, the TinyML object re-keyed to ``tinyml_object_id``."""
    if tinyml_object_id not in _ID_RANGE or tinyml_object_id in iter(ObjectId):
        raise LwM2MError(f"TinyML object id {tinyml_object_id} collides with a standard object or is out of "
                         "range", where="lwm2m_object_id", hint="Pick an id in 26241-32768")
    objects = {}
    for path in sorted(Path(folder).glob("*.xml")):
        obj = parse_ddf(path)
        if obj.id == TINYML_OBJECT_ID:
            obj = replace(obj, id=tinyml_object_id, urn=f"urn:oma:lwm2m:x:{tinyml_object_id}:{obj.version}")
        objects[obj.id] = obj
    return Definitions(objects, tinyml_object_id)


_ENUMS = {ObjectId.SECURITY: Security, ObjectId.SERVER: Server, ObjectId.DEVICE: Device,
          ObjectId.FIRMWARE_UPDATE: FirmwareUpdate, ObjectId.SOFTWARE_MANAGEMENT: SoftwareManagement,
          TINYML_OBJECT_ID: TinyML}


def _enum_name(ddf_name: str) -> str:
    """``"Power Source Voltage"`` -> ``"POWER_SOURCE_VOLTAGE"``."""
    return re.sub(r"[^A-Z0-9]+", "_", ddf_name.upper()).strip("_")


def check_enums(defs: Definitions | None = None) -> list[str]:
    """Disagreements between the enums and the DDF files (empty when they match).

    Every DDF resource must have an enum member with its id; the member's name
    be made of words of the DDF name, upper case (``NOTIFICATION_STORING`` for
    "Notification Storing When Disabled or Offline").
    """
    defs = defs or load_definitions()
    problems = []
    for oid, enum_cls in _ENUMS.items():
        obj = defs.object(defs.tinyml_object_id if enum_cls is TinyML else oid)
        if obj is None:
            problems.append(f"object {oid} ({enum_cls.__name__}) has no DDF")
            continue
        by_id = {m.value: m for m in enum_cls}
        for rid, res in obj.resources.items():
            member = by_id.pop(rid, None)
            full = _enum_name(res.name)
            if member is None:
                problems.append(f"{obj.name} resource {rid} ({res.name}) has no {enum_cls.__name__} member")
            elif not all(word in full.replace("_", "") for word in member.name.split("_")):
                problems.append(f"{enum_cls.__name__}.{member.name} = {rid} but the DDF names it '{res.name}'")
        problems += [f"{enum_cls.__name__}.{m.name} = {m.value} is not in the DDF of {obj.name}"
                     for m in by_id.values()]
    return problems


# -- paths -------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class ResourcePath:
    """``/object[/instance[/resource[/resource-instance]]]``; None for the levels not given."""
    object: int
    instance: int | None = None
    resource: int | None = None
    resource_instance: int | None = None

    @classmethod
    def parse(cls, text: str) -> "ResourcePath":
        """``"/3/0/1"`` (leading slash optional) -> ResourcePath(3, 0, 1); LwM2MError when malformed."""
        parts = str(text).strip().strip("/").split("/")
        if not 1 <= len(parts) <= 4 or not all(p.isdigit() and p.isascii() for p in parts):
            raise LwM2MError(f"invalid LwM2M path '{text}'", hint="Write /object[/instance[/resource[/index]]] "
                             "with numbers, e.g. /3/0/1")
        ids = [int(p) for p in parts]
        if any(i not in _ID_RANGE for i in ids):
            raise LwM2MError(f"invalid LwM2M path '{text}': ids are 0-65534")
        return cls(*ids)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(i for i in (self.object, self.instance, self.resource, self.resource_instance)
                     if i is not None)

    @property
    def depth(self) -> int:
        return len(self.ids)

    def child(self, i: int) -> "ResourcePath":
        return ResourcePath(*self.ids, i)

    def contains(self, other: "ResourcePath") -> bool:
        """True when ``other`` is this path or below it."""
        return other.ids[:self.depth] == self.ids

    def __str__(self) -> str:
        return "/" + "/".join(map(str, self.ids))
