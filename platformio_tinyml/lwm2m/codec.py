"""The LwM2M content formats: SenML-JSON, SenML-CBOR, TLV, plain text, opaque, link format.

Every format decodes to the same flat form: ``{ResourcePath: value}`` with one
entry per resource or resource instance (a multiple resource has one entry per
instance, keyed ``/o/i/r/ri``). Values are Python values typed by the object
definitions (:mod:`.ids`): String and Corelnk ``str``, Integer, Unsigned
Integer and Time ``int`` (Time in seconds since 1970), Float ``float``,
Boolean ``bool``, Opaque ``bytes``, Objlnk :class:`ObjLink`. A resource no
definition names keeps the type its format gives it (TLV and opaque: ``bytes``,
plain text: ``str``).

:func:`encode` and :func:`decode` take the path the request addressed
(``base``); :func:`decode_records` also returns SenML times and units (for
Send and notifications). Link format (registration payloads, Discover
answers) is :func:`parse_links` / :func:`format_links`. Any payload that does
not parse, or holds a value of the wrong type for its resource, raises
:class:`CodecError` with one line naming the path and what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import struct
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from .ids import Definitions, LwM2MError, ResourcePath, ResourceType

Value = "str | int | float | bool | bytes | ObjLink"


class ContentFormat(enum.IntEnum):
    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    SENML_JSON = 110
    SENML_CBOR = 112
    TLV = 11542
    LWM2M_JSON = 11543       # LwM2M 1.0's own JSON: recognised, not supported


class CodecError(LwM2MError):
    """A payload that does not parse or does not fit the object definitions."""


@dataclass(frozen=True)
class ObjLink:
    """An object link value ``object:instance``."""
    object: int
    instance: int

    @classmethod
    def parse(cls, text: str) -> "ObjLink":
        a, sep, b = str(text).partition(":")
        if not sep or not a.isdigit() or not b.isdigit() or int(a) > 65535 or int(b) > 65535:
            raise CodecError(f"invalid object link '{text}'", hint="Write OBJECT:INSTANCE, e.g. 3:0")
        return cls(int(a), int(b))

    def __str__(self) -> str:
        return f"{self.object}:{self.instance}"


@dataclass(frozen=True)
class Record:
    """One SenML record resolved: full path, typed value, absolute time (s) or None, unit or None."""
    path: ResourcePath
    value: object
    time: float | None = None
    unit: str | None = None


def encode(fmt: int, values: Mapping[ResourcePath, object], base: ResourcePath, defs: Definitions) -> bytes:
    """The payload of ``values`` (all at or below ``base``) in content format ``fmt``."""
    fmt = _format(fmt)
    for path in values:
        if not base.contains(path):
            raise CodecError(f"{path} is not below {base}")
    if fmt in (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR):
        return _senml_encode(fmt, values, base, defs)
    if fmt == ContentFormat.TLV:
        return _tlv_encode(values, base, defs)
    path, value = _single(values, base, fmt)
    if fmt == ContentFormat.OPAQUE:
        if not isinstance(value, (bytes, bytearray)):
            raise CodecError(f"{path}: opaque content needs bytes, not {type(value).__name__}")
        return bytes(value)
    return _text_value(value).encode("utf-8")


def decode(fmt: int, payload: bytes, base: ResourcePath, defs: Definitions) -> dict[ResourcePath, object]:
    """``{path: value}`` from a payload in content format ``fmt`` answering a request on ``base``."""
    return {r.path: r.value for r in decode_records(fmt, payload, base, defs)}


def decode_records(fmt: int, payload: bytes, base: ResourcePath | None, defs: Definitions,
                   now: float | None = None) -> list[Record]:
    """The records of a payload; SenML times below 2**28 are relative to ``now`` (RFC 8428).

    ``base`` None is the root (LwM2M Send: SenML only)."""
    fmt = _format(fmt)
    if base is None and fmt not in (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR):
        raise CodecError(f"content format {fmt.value} ({fmt.name}) cannot carry values of several objects")
    if fmt == ContentFormat.SENML_JSON:
        try:
            data = json.loads(bytes(payload).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CodecError(f"{base or '/'}: SenML-JSON payload is not JSON ({e})") from None
        return _senml_records(data, base, defs, now, cbor=False)
    if fmt == ContentFormat.SENML_CBOR:
        try:
            data = cbor2.loads(bytes(payload))
        except Exception as e:   # cbor2 raises several types for broken input
            raise CodecError(f"{base or '/'}: SenML-CBOR payload is not CBOR ({type(e).__name__})") from None
        return _senml_records(data, base, defs, now, cbor=True)
    if fmt == ContentFormat.TLV:
        return [Record(p, v) for p, v in _tlv_decode(bytes(payload), base, defs).items()]
    if base.resource is None:
        raise CodecError(f"{base}: content format {fmt.value} carries one resource, the request addressed more")
    rtype = _type_of(base, defs)
    if fmt == ContentFormat.OPAQUE:
        if rtype not in (None, ResourceType.OPAQUE):
            raise CodecError(f"{base}: opaque content for a {rtype.value} resource")
        return [Record(base, bytes(payload))]
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError(f"{base}: plain-text payload is not UTF-8") from None
    return [Record(base, _parse_text(text, rtype, base))]


def _format(fmt: int) -> ContentFormat:
    try:
        fmt = ContentFormat(fmt)
    except ValueError:
        raise CodecError(f"unknown content format {fmt}", hint="Formats: " + ", ".join(
            f"{f.value} ({f.name})" for f in ContentFormat if f != ContentFormat.LWM2M_JSON)) from None
    if fmt in (ContentFormat.LWM2M_JSON, ContentFormat.LINK_FORMAT):
        raise CodecError(f"content format {fmt.value} ({fmt.name}) carries no resource values here")
    return fmt


def _single(values: Mapping, base: ResourcePath, fmt: ContentFormat) -> tuple[ResourcePath, object]:
    if len(values) != 1 or base.resource is None:
        raise CodecError(f"{base}: content format {fmt.value} ({fmt.name}) carries exactly one resource value")
    return next(iter(values.items()))


def _type_of(path: ResourcePath, defs: Definitions) -> ResourceType | None:
    res = defs.resource(path.object, path.resource) if path.resource is not None else None
    return res.type if res else None


# -- plain text ----------------------------------------------------------------

def _text_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_text(text: str, rtype: ResourceType | None, path: ResourcePath):
    try:
        if rtype in (ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER, ResourceType.TIME):
            value = int(text.strip())
            if rtype == ResourceType.UNSIGNED_INTEGER and value < 0:
                raise ValueError
            return value
        if rtype == ResourceType.FLOAT:
            value = float(text.strip())
            if not math.isfinite(value):
                raise ValueError
            return value
        if rtype == ResourceType.BOOLEAN:
            if text.strip() not in ("0", "1"):
                raise ValueError
            return text.strip() == "1"
        if rtype == ResourceType.OBJLNK:
            return ObjLink.parse(text.strip())
        if rtype == ResourceType.OPAQUE:
            return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error, CodecError):
        raise CodecError(f"{path}: '{text[:40]}' is not a valid {rtype.value}") from None
    return text


# -- SenML -----------------------------------------------------------------------

# RFC 8428 CBOR labels; LwM2M's object link value has no number and keeps its name "vlo"
_LABELS = {"bn": -2, "bt": -3, "bu": -4, "bv": -5, "bver": -1, "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4,
           "s": 5, "t": 6, "ut": 7, "vd": 8}
_NAMES = {v: k for k, v in _LABELS.items()}
_VALUE_KEYS = ("v", "vs", "vb", "vd", "vlo")


def _senml_encode(fmt: ContentFormat, values: Mapping, base: ResourcePath, defs: Definitions) -> bytes:
    cbor = fmt == ContentFormat.SENML_CBOR
    records = []
    for i, (path, value) in enumerate(sorted(values.items())):
        rec = {}
        if i == 0:
            rec["bn"] = str(base) + ("/" if path != base else "")
        if path != base:
            rec["n"] = "/".join(map(str, path.ids[base.depth:]))
        key, out = _senml_value(value, _type_of(path, defs), path, cbor)
        rec[key] = out
        records.append(rec)
    if cbor:
        return cbor2.dumps([{_LABELS.get(k, k): v for k, v in r.items()} for r in records])
    return json.dumps(records, separators=(",", ":")).encode("utf-8")


def _senml_value(value, rtype: ResourceType | None, path: ResourcePath, cbor: bool) -> tuple[str, object]:
    if rtype == ResourceType.BOOLEAN or (rtype is None and isinstance(value, bool)):
        return "vb", _checked(value, bool, rtype, path)
    if rtype in (ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER, ResourceType.TIME, ResourceType.FLOAT) \
            or (rtype is None and isinstance(value, (int, float))):
        return "v", _number(value, rtype, path)
    if rtype == ResourceType.OPAQUE or (rtype is None and isinstance(value, (bytes, bytearray))):
        data = bytes(_checked(value, (bytes, bytearray), rtype, path))
        return "vd", data if cbor else base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    if rtype == ResourceType.OBJLNK or isinstance(value, ObjLink):
        return "vlo", str(_checked(value, ObjLink, rtype, path))
    return "vs", _checked(value, str, rtype, path)


def _checked(value, kinds, rtype, path):
    if not isinstance(value, kinds):
        raise CodecError(f"{path}: {type(value).__name__} value for a {rtype.value if rtype else '?'} resource")
    return value


def _number(value, rtype: ResourceType | None, path: ResourcePath):
    """A SenML ``v`` checked against the resource type (integers must be whole)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CodecError(f"{path}: {value!r} is not a number (the resource is "
                         f"{rtype.value if rtype else 'numeric'})")
    if rtype in (ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER, ResourceType.TIME):
        if isinstance(value, float) and not value.is_integer():
            raise CodecError(f"{path}: {value!r} is not a whole number (the resource is {rtype.value})")
        value = int(value)
        if rtype == ResourceType.UNSIGNED_INTEGER and value < 0:
            raise CodecError(f"{path}: {value} is negative (the resource is Unsigned Integer)")
    elif rtype == ResourceType.FLOAT:
        value = float(value)
    return value


def _senml_records(data, base: ResourcePath | None, defs: Definitions, now: float | None, cbor: bool) -> list[Record]:
    if not isinstance(data, list):
        raise CodecError(f"{base or '/'}: a SenML pack is an array of records, not {type(data).__name__}")
    now = _time.time() if now is None else now
    bn, bt, bu, bv, out = "", 0.0, None, 0.0, []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise CodecError(f"{base or '/'}: SenML record {i} is not a map")
        rec = {(_NAMES.get(k, k) if cbor else k): v for k, v in raw.items()}
        where = f"{base or '/'}: SenML record {i}"
        bad = [k for k in rec if isinstance(k, str) and k.endswith("_")]
        if bad:
            raise CodecError(f"{where}: must-understand field '{bad[0]}' is not supported")
        bn = _field(rec, "bn", str, where, bn)
        bt = _field(rec, "bt", (int, float), where, bt)
        bu = _field(rec, "bu", str, where, bu)
        bv = _field(rec, "bv", (int, float), where, bv)
        name = bn + _field(rec, "n", str, where, "")
        try:
            path = ResourcePath.parse(name)
        except LwM2MError:
            raise CodecError(f"{where}: name '{name[:60]}' (bn + n) is not an LwM2M path") from None
        if (base is not None and not base.contains(path)) or path.resource is None:
            raise CodecError(f"{where}: {path} is not a resource below the requested {base or '/'}")
        value = _record_value(rec, path, _type_of(path, defs), bv, where, cbor)
        t = bt + _field(rec, "t", (int, float), where, 0)
        t = None if ("t" not in rec and "bt" not in rec and t == 0) else (now + t if t < 2 ** 28 else t)
        out.append(Record(path, value, t, _field(rec, "u", str, where, bu)))
    return out


def _field(rec: dict, key: str, kinds, where: str, default):
    if key not in rec:
        return default
    value = rec[key]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise CodecError(f"{where}: '{key}' has a {type(value).__name__} value")
    return value


def _record_value(rec: dict, path: ResourcePath, rtype: ResourceType | None, bv, where: str, cbor: bool):
    keys = [k for k in _VALUE_KEYS if k in rec]
    if len(keys) != 1:
        raise CodecError(f"{where} ({path}): " + ("no value" if not keys else f"{len(keys)} values"))
    key, value = keys[0], rec[keys[0]]
    expected = {ResourceType.STRING: "vs", ResourceType.CORELNK: "vs", ResourceType.BOOLEAN: "vb",
                ResourceType.OPAQUE: "vd", ResourceType.OBJLNK: "vlo"}.get(rtype, "v" if rtype else key)
    if key != expected:
        raise CodecError(f"{where} ({path}): '{key}' value for a {rtype.value} resource (expected '{expected}')")
    if key == "v":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CodecError(f"{where} ({path}): 'v' holds a {type(value).__name__}")
        return _number(value + bv if bv else value, rtype, path)
    if key == "vb":
        return _checked(value, bool, rtype, path)
    if key == "vlo":
        return ObjLink.parse(_checked(value, str, rtype, path))
    if key == "vd":
        return _data(value, path, cbor)
    return _checked(value, str, rtype, path)


def _data(value, path: ResourcePath, cbor: bool) -> bytes:
    if cbor:
        return bytes(_checked(value, bytes, ResourceType.OPAQUE, path))
    text = _checked(value, str, ResourceType.OPAQUE, path)
    try:   # RFC 8428 says base64url without padding; some clients send the standard alphabet
        return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise CodecError(f"{path}: 'vd' is not base64") from None


# -- TLV ---------------------------------------------------------------------------

class _Tlv(enum.IntEnum):
    OBJECT_INSTANCE = 0
    RESOURCE_INSTANCE = 1
    MULTIPLE_RESOURCE = 2
    RESOURCE = 3


def _tlv_header(kind: _Tlv, ident: int, length: int) -> bytes:
    head = kind << 6
    ident_bytes = struct.pack(">H", ident) if ident > 0xFF else bytes([ident])
    head |= 0x20 if ident > 0xFF else 0
    if length < 8:
        return bytes([head | length]) + ident_bytes
    size = 1 if length <= 0xFF else 2 if length <= 0xFFFF else 3
    if length > 0xFFFFFF:
        raise CodecError(f"TLV value of {length} bytes is too long (at most 16 MiB)")
    return bytes([head | size << 3]) + ident_bytes + length.to_bytes(size, "big")


def _tlv_item(kind: _Tlv, ident: int, body: bytes) -> bytes:
    return _tlv_header(kind, ident, len(body)) + body


def _tlv_value(value, rtype: ResourceType | None, path: ResourcePath) -> bytes:
    if rtype == ResourceType.BOOLEAN or (rtype is None and isinstance(value, bool)):
        return bytes([1 if _checked(value, bool, rtype, path) else 0])
    if rtype == ResourceType.FLOAT or (rtype is None and isinstance(value, float)):
        value = float(_number(value, ResourceType.FLOAT, path))
        return struct.pack(">f", value) if struct.unpack(">f", struct.pack(">f", value))[0] == value \
            else struct.pack(">d", value)
    if rtype in (ResourceType.INTEGER, ResourceType.TIME, ResourceType.UNSIGNED_INTEGER) \
            or (rtype is None and isinstance(value, int)):
        value = _number(value, rtype or ResourceType.INTEGER, path)
        signed = rtype != ResourceType.UNSIGNED_INTEGER
        for size in (1, 2, 4, 8):
            try:
                return value.to_bytes(size, "big", signed=signed)
            except OverflowError:
                continue
        raise CodecError(f"{path}: {value} does not fit 64 bits")
    if rtype == ResourceType.OBJLNK or isinstance(value, ObjLink):
        link = _checked(value, ObjLink, rtype, path)
        return struct.pack(">HH", link.object, link.instance)
    if rtype == ResourceType.OPAQUE or isinstance(value, (bytes, bytearray)):
        return bytes(_checked(value, (bytes, bytearray), rtype, path))
    return _checked(value, str, rtype, path).encode("utf-8")


def _tlv_encode(values: Mapping, base: ResourcePath, defs: Definitions) -> bytes:
    if base.depth == 4:
        path, value = _single(values, base, ContentFormat.TLV)
        return _tlv_item(_Tlv.RESOURCE_INSTANCE, path.resource_instance,
                         _tlv_value(value, _type_of(path, defs), path))
    tree: dict = {}
    for path, value in sorted(values.items()):
        if path.resource is None:
            raise CodecError(f"{path}: a value needs a resource path")
        node = tree.setdefault(path.instance, {}).setdefault(path.resource, {})
        node[path.resource_instance] = value
    if base.depth == 1:
        return b"".join(_tlv_item(_Tlv.OBJECT_INSTANCE, inst, _tlv_resources(base.object, inst, res, defs))
                        for inst, res in tree.items())
    return _tlv_resources(base.object, base.instance, tree.get(base.instance, {}), defs)


def _tlv_resources(oid: int, inst: int, resources: dict, defs: Definitions) -> bytes:
    out = []
    for rid, instances in resources.items():
        path = ResourcePath(oid, inst, rid)
        res, rtype = defs.resource(oid, rid), _type_of(path, defs)
        if None in instances and len(instances) == 1 and not (res and res.multiple):
            out.append(_tlv_item(_Tlv.RESOURCE, rid, _tlv_value(instances[None], rtype, path)))
            continue
        if None in instances:
            raise CodecError(f"{path}: a multiple resource needs values per resource instance")
        body = b"".join(_tlv_item(_Tlv.RESOURCE_INSTANCE, ri, _tlv_value(v, rtype, path.child(ri)))
                        for ri, v in sorted(instances.items()))
        out.append(_tlv_item(_Tlv.MULTIPLE_RESOURCE, rid, body))
    return b"".join(out)


def _tlv_split(data: bytes, where: str) -> list[tuple[_Tlv, int, bytes]]:
    items, at = [], 0
    while at < len(data):
        head = data[at]
        id_len = 2 if head & 0x20 else 1
        size_len = (head >> 3) & 0x3
        start = at + 1 + id_len + size_len
        if start > len(data):
            raise CodecError(f"{where}: TLV header cut short at byte {at}")
        ident = int.from_bytes(data[at + 1:at + 1 + id_len], "big")
        length = int.from_bytes(data[at + 1 + id_len:start], "big") if size_len else head & 0x7
        if start + length > len(data):
            raise CodecError(f"{where}: TLV value at byte {at} runs past the payload ({length} bytes)")
        items.append((_Tlv(head >> 6), ident, data[start:start + length]))
        at = start + length
    return items


def _tlv_decode(data: bytes, base: ResourcePath, defs: Definitions) -> dict[ResourcePath, object]:
    out: dict[ResourcePath, object] = {}
    where = str(base)
    for kind, ident, body in _tlv_split(data, where):
        if kind == _Tlv.OBJECT_INSTANCE:
            if base.depth != 1:
                raise CodecError(f"{where}: TLV object instance {ident} in an answer about {base}")
            for k2, i2, b2 in _tlv_split(body, where):
                _tlv_resource(out, ResourcePath(base.object, ident), k2, i2, b2, defs)
        elif base.depth == 4 and kind == _Tlv.RESOURCE_INSTANCE:
            out[base] = _tlv_typed(body, _type_of(base, defs), base)
        elif base.depth in (2, 3):
            _tlv_resource(out, ResourcePath(base.object, base.instance), kind, ident, body, defs)
        else:
            raise CodecError(f"{where}: TLV {kind.name.lower().replace('_', ' ')} {ident} in an answer "
                             f"about {base}")
    for path in out:
        if not base.contains(path):
            raise CodecError(f"{where}: TLV holds {path}, which is not below the request")
    return out


def _tlv_resource(out: dict, inst: ResourcePath, kind: _Tlv, rid: int, body: bytes, defs: Definitions) -> None:
    path = inst.child(rid)
    rtype = _type_of(path, defs)
    if kind == _Tlv.RESOURCE:
        out[path] = _tlv_typed(body, rtype, path)
    elif kind == _Tlv.MULTIPLE_RESOURCE:
        for k2, ri, b2 in _tlv_split(body, str(path)):
            if k2 != _Tlv.RESOURCE_INSTANCE:
                raise CodecError(f"{path}: a multiple resource TLV holds a {k2.name.lower()}")
            out[path.child(ri)] = _tlv_typed(b2, rtype, path.child(ri))
    else:
        raise CodecError(f"{path}: TLV {kind.name.lower()} where a resource belongs")


def _tlv_typed(body: bytes, rtype: ResourceType | None, path: ResourcePath):
    n = len(body)
    if rtype in (ResourceType.INTEGER, ResourceType.TIME, ResourceType.UNSIGNED_INTEGER):
        if n not in (1, 2, 4, 8):
            raise CodecError(f"{path}: TLV integer of {n} bytes (1, 2, 4 or 8)")
        return int.from_bytes(body, "big", signed=rtype != ResourceType.UNSIGNED_INTEGER)
    if rtype == ResourceType.FLOAT:
        if n not in (4, 8):
            raise CodecError(f"{path}: TLV float of {n} bytes (4 or 8)")
        return struct.unpack(">f" if n == 4 else ">d", body)[0]
    if rtype == ResourceType.BOOLEAN:
        if body not in (b"\x00", b"\x01"):
            raise CodecError(f"{path}: TLV boolean {body.hex()} (one byte, 0 or 1)")
        return body == b"\x01"
    if rtype == ResourceType.OBJLNK:
        if n != 4:
            raise CodecError(f"{path}: TLV object link of {n} bytes (4)")
        return ObjLink(*struct.unpack(">HH", body))
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError(f"{path}: TLV string is not UTF-8") from None
    return bytes(body)


# -- CoRE link format (RFC 6690) -----------------------------------------------------

@dataclass(frozen=True)
class Link:
    """One link: ``target`` (``/3/0``) and its attributes (a flag attribute maps to None)."""
    target: str
    attrs: dict

    @property
    def path(self) -> ResourcePath | None:
        """The target as an LwM2M path, or None (``/``, ``/rd/...``, an alternate root)."""
        try:
            return ResourcePath.parse(self.target)
        except LwM2MError:
            return None

    def __str__(self) -> str:
        parts = [f"<{self.target}>"]
        for k, v in self.attrs.items():
            parts.append(k if v is None else f"{k}={v}" if _bare(v) else f'{k}="{v}"')
        return ";".join(parts)


def _bare(value: str) -> bool:
    """Numbers go bare (``ct=110``, ``ver=1.1``), everything else quoted (``rt="oma.lwm2m"``)."""
    return value != "" and all(c.isdigit() or c == "." for c in value)


def format_links(links) -> str:
    return ",".join(map(str, links))


def parse_links(payload: bytes | str) -> list[Link]:
    """The links of a link-format payload; CodecError when it is not link format."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
    except UnicodeDecodeError:
        raise CodecError("link-format payload is not UTF-8") from None
    links, at, n = [], 0, len(text)
    while at < n:
        while at < n and text[at] in " \t\r\n":
            at += 1
        if at >= n:
            break
        if text[at] != "<" or (end := text.find(">", at)) < 0:
            raise CodecError(f"link format: expected '<target>' at character {at}")
        target, at, attrs = text[at + 1:end], end + 1, {}
        while at < n and text[at] == ";":
            at, key, value = _link_attr(text, at + 1)
            attrs[key] = value
        links.append(Link(target, attrs))
        while at < n and text[at] in " \t\r\n":
            at += 1
        if at < n and text[at] != ",":
            raise CodecError(f"link format: unexpected '{text[at]}' at character {at}")
        at += 1
    return links


def _link_attr(text: str, at: int) -> tuple[int, str, str | None]:
    n, start = len(text), at
    while at < n and text[at] not in "=;,":
        at += 1
    key = text[start:at].strip()
    if not key:
        raise CodecError(f"link format: empty attribute name at character {start}")
    if at >= n or text[at] != "=":
        return at, key, None
    at += 1
    if at < n and text[at] == '"':
        end = at + 1
        while end < n and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= n:
            raise CodecError(f"link format: unterminated quoted value at character {at}")
        return end + 1, key, text[at + 1:end].replace('\\"', '"')
    start = at
    while at < n and text[at] not in ";,":
        at += 1
    return at, key, text[start:at].strip()


# -- JSON (the REST API's values) --------------------------------------------------------

def to_json(value):
    """A decoded value as JSON: Opaque as ``{"base64": ...}``, object links as ``"3:0"``."""
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, ObjLink):
        return str(value)
    return value


def from_json(value, path: ResourcePath, defs: Definitions):
    """A JSON value for the resource at ``path``, typed by its definition; CodecError when it does not fit."""
    rtype = _type_of(path, defs)
    if isinstance(value, dict) and set(value) == {"base64"}:
        try:
            value = base64.b64decode(str(value["base64"]), validate=True)
        except binascii.Error:
            raise CodecError(f"{path}: 'base64' is not base64") from None
    if rtype is None:
        if value is None or isinstance(value, (dict, list)):
            raise CodecError(f"{path}: a value must be a string, number, boolean or {{\"base64\": ...}}")
        return value
    if rtype == ResourceType.OBJLNK:
        return ObjLink.parse(_checked(value, str, rtype, path))
    if rtype == ResourceType.OPAQUE:
        return bytes(_checked(value, (bytes, bytearray), rtype, path))
    if rtype == ResourceType.BOOLEAN:
        return _checked(value, bool, rtype, path)
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        return _checked(value, str, rtype, path)
    if rtype == ResourceType.NONE:
        raise CodecError(f"{path}: an executable resource has no value (execute it instead)")
    return _number(value, rtype, path)
