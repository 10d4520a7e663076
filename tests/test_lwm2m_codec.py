"""LwM2M ids and content formats against byte vectors written by hand from the specifications.

The TLV vectors follow the LwM2M 1.1 Core TS (section 7.4.3 and its Device
object example); SenML vectors follow RFC 8428 (JSON keys, CBOR labels) with
the LwM2M name rules; link format is RFC 6690. Every expected byte string
below was written by reading the specification, not produced by the encoder.
"""

from __future__ import annotations

import pytest

from platformio_tinyml.lwm2m.codec import (CodecError, ContentFormat, ObjLink, decode, decode_records, encode,
                                           format_links, parse_links)
from platformio_tinyml.lwm2m.ids import (TINYML_OBJECT_ID, Device, LwM2MError, ObjectId, ResourcePath,
                                         ResourceType, TinyML, check_enums, load_definitions, parse_ddf)

P = ResourcePath.parse
DEFS = load_definitions()


def h(text: str) -> bytes:
    """Hex with spaces and "quoted ASCII" runs."""
    out, parts = bytearray(), text.split('"')
    for i, part in enumerate(parts):
        out += part.encode("ascii") if i % 2 else bytes.fromhex(part)
    return bytes(out)


# The Device object read of the LwM2M TS TLV example (/3/0)
DEVICE_TLV = h('C8 00 14 "Open Mobile Alliance" C8 01 16 "Lightweight M2M Client" C8 02 09 "345000123"'
               ' C3 03 "1.0" 86 06 41 00 01 41 01 05 88 07 08 42 00 0E D8 42 01 13 88'
               ' 87 08 41 00 7D 42 01 03 84 C1 09 64 C1 0A 0F 83 0B 41 00 00 C4 0D 51 82 42 8F'
               ' C6 0E "+02:00" C1 10 55')
DEVICE_VALUES = {
    P("/3/0/0"): "Open Mobile Alliance", P("/3/0/1"): "Lightweight M2M Client", P("/3/0/2"): "345000123",
    P("/3/0/3"): "1.0", P("/3/0/6/0"): 1, P("/3/0/6/1"): 5, P("/3/0/7/0"): 3800, P("/3/0/7/1"): 5000,
    P("/3/0/8/0"): 125, P("/3/0/8/1"): 900, P("/3/0/9"): 100, P("/3/0/10"): 15, P("/3/0/11/0"): 0,
    P("/3/0/13"): 1367491215, P("/3/0/14"): "+02:00", P("/3/0/16"): "U"}


def test_definitions_match_the_enums():
    assert check_enums() == []
    dev = DEFS.object(ObjectId.DEVICE)
    assert dev.resources[Device.POWER_SOURCE_VOLTAGE].multiple and dev.resources[Device.REBOOT].executable
    assert dev.resources[Device.CURRENT_TIME].type == ResourceType.TIME
    tiny = DEFS.object(TINYML_OBJECT_ID)
    assert tiny.resources[TinyML.MODULE_NAME].multiple and not tiny.resources[TinyML.ARENA_RAM].multiple
    assert set(DEFS.objects) == {0, 1, 3, 5, 9, TINYML_OBJECT_ID}


def test_tinyml_object_id_is_configurable():
    defs = load_definitions(30001)
    assert defs.object(30001).name == "TinyML" and defs.object(TINYML_OBJECT_ID) is None
    assert defs.resource(30001, TinyML.SLOT_STATE).type == ResourceType.INTEGER
    with pytest.raises(LwM2MError, match="collides"):
        load_definitions(3)


def test_broken_ddf_is_one_line(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<LWM2M><Object><Resources><Item ID='1'><Type>Text</Type></Item></Resources></Object></LWM2M>")
    with pytest.raises(LwM2MError, match="unknown resource type 'Text'"):
        parse_ddf(bad)


def test_paths():
    assert P("/3/0/7/1") == ResourcePath(3, 0, 7, 1) and str(P("3/0")) == "/3/0"
    assert P("/3").contains(P("/3/0/1")) and not P("/3/1").contains(P("/3/0/1"))
    for bad in ("", "/3/a", "/1/2/3/4/5", "/65535", "/3//1", "/３"):
        with pytest.raises(LwM2MError):
            P(bad)


def test_tlv_device_example_decodes_and_encodes():
    assert decode(ContentFormat.TLV, DEVICE_TLV, P("/3/0"), DEFS) == DEVICE_VALUES
    assert encode(ContentFormat.TLV, DEVICE_VALUES, P("/3/0"), DEFS) == DEVICE_TLV


def test_tlv_object_instance_multiple_resource_and_resource_instance():
    # /1 read: instance 0 (08 00 0C: object instance, 8-bit length 12) holding
    # SSID 1, lifetime 86400 (4-byte integer 00 01 51 80) and binding "U"
    server = h('08 00 0C C1 00 01 C4 01 00 01 51 80 C1 07 55')
    values = {P("/1/0/0"): 1, P("/1/0/1"): 86400, P("/1/0/7"): "U"}
    assert decode(ContentFormat.TLV, server, P("/1"), DEFS) == values
    assert encode(ContentFormat.TLV, values, P("/1"), DEFS) == server
    # a read of one multiple resource keeps the multiple-resource header (86 06 ...)
    assert decode(ContentFormat.TLV, h("86 06 41 00 01 41 01 05"), P("/3/0/6"), DEFS) == {
        P("/3/0/6/0"): 1, P("/3/0/6/1"): 5}
    assert encode(ContentFormat.TLV, {P("/3/0/7/1"): 5000}, P("/3/0/7/1"), DEFS) == h("42 01 13 88")
    assert decode(ContentFormat.TLV, h("42 01 13 88"), P("/3/0/7/1"), DEFS) == {P("/3/0/7/1"): 5000}


def test_tlv_long_ids_lengths_and_types():
    # resource 300 of an unknown object, 300 bytes: 11 1 10 000 = F0, id 01 2C, length 01 2C
    body = bytes(range(256)) + bytes(44)
    payload = h("F0 01 2C 01 2C") + body
    assert decode(ContentFormat.TLV, payload, P("/4000/0"), DEFS) == {P("/4000/0/300"): body}
    assert encode(ContentFormat.TLV, {P("/4000/0/300"): body}, P("/4000/0"), DEFS) == payload
    # boolean, float (4 bytes when exact), object link, negative integer, unsigned
    assert encode(ContentFormat.TLV, {P("/1/0/6"): True}, P("/1/0/6"), DEFS) == h("C1 06 01")
    assert encode(ContentFormat.TLV, {P("/4000/0/1"): 1.5}, P("/4000/0"), DEFS) == h("C4 01 3F C0 00 00")
    assert encode(ContentFormat.TLV, {P("/4000/0/1"): 0.1}, P("/4000/0"), DEFS) == h(
        "C8 01 08 3F B9 99 99 99 99 99 9A")
    assert encode(ContentFormat.TLV, {P("/9/0/5"): ObjLink(3, 0)}, P("/9/0"), DEFS) == h("C4 05 00 03 00 00")
    assert decode(ContentFormat.TLV, h("C4 05 00 03 00 00"), P("/9/0"), DEFS) == {P("/9/0/5"): ObjLink(3, 0)}
    assert decode(ContentFormat.TLV, h("C2 09 FF 38"), P("/3/0"), DEFS) == {P("/3/0/9"): -200}


@pytest.mark.parametrize("payload, why", [
    ("C8 00 14 41", "runs past"), ("C8", "cut short"), ("C3 09 00 00 00", "integer of 3 bytes"),
    ("C1 06 02", "boolean 02"), ("C2 00 C3 28", "not UTF-8"), ("08 00 03 C1 00 01", "object instance 0"),
    ("83 06 C1 00 01", "multiple resource TLV holds a resource"),
])
def test_tlv_bad_input(payload, why):
    base = P("/1/0") if "06 02" in payload else P("/3/0")
    with pytest.raises(CodecError, match=why):
        decode(ContentFormat.TLV, h(payload), base, DEFS)


SENML = (b'[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"9","v":100},'
         b'{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"13","v":1367491215}]')
SENML_VALUES = {P("/3/0/0"): "Open Mobile Alliance", P("/3/0/9"): 100, P("/3/0/6/0"): 1, P("/3/0/6/1"): 5,
                P("/3/0/13"): 1367491215}


def test_senml_json_decodes_and_encodes():
    assert decode(ContentFormat.SENML_JSON, SENML, P("/3/0"), DEFS) == SENML_VALUES
    assert encode(ContentFormat.SENML_JSON, {P("/3/0/0"): "Open Mobile Alliance", P("/3/0/9"): 100},
                  P("/3/0"), DEFS) == b'[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"9","v":100}]'
    assert encode(ContentFormat.SENML_JSON, {P("/3/0/9"): 100}, P("/3/0/9"), DEFS) == b'[{"bn":"/3/0/9","v":100}]'


@pytest.mark.parametrize("pack", [
    b'[{"bn":"/3/0","n":"/9","v":100}]', b'[{"bn":"/","n":"3/0/9","v":100}]', b'[{"bn":"/3/0/9","v":100}]',
    b'[{"n":"/3/0/9","v":100}]', b'[{"bn":"/3/","n":"0/9","v":100.0}]'])
def test_senml_names_split_anywhere(pack):
    assert decode(ContentFormat.SENML_JSON, pack, P("/3/0/9"), DEFS) == {P("/3/0/9"): 100}


def test_senml_times_units_and_data_values():
    pack = (b'[{"bn":"/3/0/","bt":1700000000,"bu":"/100","n":"9","v":90,"t":-10},{"n":"9","v":95},'
            b'{"n":"10","v":15,"u":"KiB","t":5},{"bn":"/9/0/","n":"2","vd":"AQID-_8"},'
            b'{"n":"5","vlo":"3:0"},{"bn":"/1/0/","n":"6","vb":false}]')
    recs = decode_records(ContentFormat.SENML_JSON, pack, None, DEFS, now=1_000)
    assert [(str(r.path), r.value, r.time, r.unit) for r in recs] == [
        ("/3/0/9", 90, 1699999990, "/100"), ("/3/0/9", 95, 1700000000, "/100"),
        ("/3/0/10", 15, 1700000005, "KiB"), ("/9/0/2", b"\x01\x02\x03\xfb\xff", 1700000000, "/100"),
        ("/9/0/5", ObjLink(3, 0), 1700000000, "/100"), ("/1/0/6", False, 1700000000, "/100")]
    # times below 2**28 are relative to now (RFC 8428 section 4.5.3)
    rel = decode_records(ContentFormat.SENML_JSON, b'[{"n":"/3/0/9","v":1,"t":-5}]', None, DEFS, now=1e9)
    assert rel[0].time == 1e9 - 5


SENML_CBOR = h('82 A3 21 65 "/3/0/" 00 61 "0" 03 74 "Open Mobile Alliance" A2 00 61 "9" 02 18 64')


def test_senml_cbor_decodes_and_encodes():
    values = {P("/3/0/0"): "Open Mobile Alliance", P("/3/0/9"): 100}
    assert decode(ContentFormat.SENML_CBOR, SENML_CBOR, P("/3/0"), DEFS) == values
    assert encode(ContentFormat.SENML_CBOR, values, P("/3/0"), DEFS) == SENML_CBOR
    # vd is a byte string in CBOR (label 8), vb label 4, vlo keeps its text key
    assert encode(ContentFormat.SENML_CBOR, {P("/9/0/2"): b"\x01\x02", P("/9/0/5"): ObjLink(3, 0)}, P("/9/0"),
                  DEFS) == h('82 A3 21 65 "/9/0/" 00 61 "2" 08 42 01 02 A2 00 61 "5" 63 "vlo" 63 "3:0"')
    assert decode(ContentFormat.SENML_CBOR, h('81 A2 00 66 "/1/0/6" 04 F5'), P("/1/0"), DEFS) == {
        P("/1/0/6"): True}


@pytest.mark.parametrize("pack, why", [
    (b'{"n":"/3/0/9","v":1}', "array of records"), (b'[1]', "not a map"), (b"[{", "not JSON"),
    (b'[{"n":"/3/0/9","vs":"100"}]', "'vs' value for a Integer resource"),
    (b'[{"n":"/3/0/9","v":1.5}]', "not a whole number"), (b'[{"n":"/3/0/0","v":3}]', "expected 'vs'"),
    (b'[{"n":"/3/0/9","v":true}]', "'v' holds a bool"), (b'[{"n":"/3/0/9"}]', "no value"),
    (b'[{"n":"/3/0/9","v":1,"vs":"x"}]', "2 values"), (b'[{"n":"/3/x/9","v":1}]', "not an LwM2M path"),
    (b'[{"bn":"/3/0","n":"9","v":1}]', "/3/9 is not a resource below"), (b'[{"n":"/1/0/1","v":1}]', "not a resource below"),
    (b'[{"n":"/3/0/9","v":1,"bad_":1}]', "must-understand"), (b'[{"bn":7,"n":"9","v":1}]', "'bn' has a int"),
    (b'[{"n":"/9/0/2","vd":"***"}]', "not base64"), (b'[{"n":"/9/0/5","vlo":"3"}]', "invalid object link"),
    (b'[{"n":"/3/0/9","v":1e400}]', "not a number"),
])
def test_senml_bad_types(pack, why):
    base = P("/9/0") if b"/9/0" in pack else P("/3/0")
    with pytest.raises(CodecError, match=why.replace("(", r"\(")):
        decode(ContentFormat.SENML_JSON, pack, base, DEFS)
    with pytest.raises(CodecError):
        decode(ContentFormat.SENML_CBOR, b"\xff\x00", base, DEFS)


def test_plain_text_and_opaque():
    assert decode(ContentFormat.TEXT, b"100", P("/3/0/9"), DEFS) == {P("/3/0/9"): 100}
    assert decode(ContentFormat.TEXT, b"1", P("/1/0/6"), DEFS) == {P("/1/0/6"): True}
    assert decode(ContentFormat.TEXT, b"3:0", P("/9/0/5"), DEFS) == {P("/9/0/5"): ObjLink(3, 0)}
    assert decode(ContentFormat.TEXT, b"Open", P("/3/0/0"), DEFS) == {P("/3/0/0"): "Open"}
    assert encode(ContentFormat.TEXT, {P("/1/0/1"): 300}, P("/1/0/1"), DEFS) == b"300"
    assert encode(ContentFormat.TEXT, {P("/1/0/6"): False}, P("/1/0/6"), DEFS) == b"0"
    assert decode(ContentFormat.OPAQUE, b"\x00\xff", P("/5/0/0"), DEFS) == {P("/5/0/0"): b"\x00\xff"}
    assert encode(ContentFormat.OPAQUE, {P("/9/0/2"): b"\x01"}, P("/9/0/2"), DEFS) == b"\x01"
    for fmt, payload, path, why in [(ContentFormat.TEXT, b"1x", "/3/0/9", "not a valid Integer"),
                                    (ContentFormat.TEXT, b"2", "/1/0/6", "not a valid Boolean"),
                                    (ContentFormat.TEXT, b"\xff", "/3/0/0", "not UTF-8"),
                                    (ContentFormat.OPAQUE, b"\x00", "/3/0/9", "opaque content for a Integer"),
                                    (ContentFormat.TEXT, b"1", "/3/0", "carries one resource"),
                                    (11543, b"{}", "/3/0", "carries no resource values"),
                                    (99, b"", "/3/0/9", "unknown content format 99")]:
        with pytest.raises(CodecError, match=why):
            decode(fmt, payload, P(path), DEFS)


@pytest.mark.parametrize("fmt", [ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR])
def test_round_trip_device_and_tinyml(fmt):
    t = TINYML_OBJECT_ID
    values = {**DEVICE_VALUES, P(f"/{t}/0/{TinyML.CORE}"): "cortex-m4", P(f"/{t}/0/{TinyML.ARENA_RAM}"): 65536,
              P(f"/{t}/0/{TinyML.DSP}"): True, P(f"/{t}/0/{TinyML.MODULE_NAME}/0"): "kws",
              P(f"/{t}/0/{TinyML.MODULE_NAME}/1"): "", P(f"/{t}/0/{TinyML.ACTIVE_SLOT}"): -1}
    for base in (P("/3/0"), P(f"/{t}/0")):
        part = {p: v for p, v in values.items() if base.contains(p)}
        assert decode(fmt, encode(fmt, part, base, DEFS), base, DEFS) == part


def test_link_format():
    reg = '</>;rt="oma.lwm2m";ct=110,</1/0>, </3/0>,</5/0>;ver=1.0,</32100/0>;title="a,b;c"'
    links = parse_links(reg.encode())
    assert [(lk.target, lk.attrs) for lk in links] == [
        ("/", {"rt": "oma.lwm2m", "ct": "110"}), ("/1/0", {}), ("/3/0", {}), ("/5/0", {"ver": "1.0"}),
        ("/32100/0", {"title": "a,b;c"})]
    assert links[0].path is None and links[2].path == P("/3/0")
    disc = parse_links(b"</3/0>;pmin=10,</3/0/1>,</3/0/6>;dim=2;obs")
    assert disc[2].attrs == {"dim": "2", "obs": None}
    assert format_links(disc) == "</3/0>;pmin=10,</3/0/1>,</3/0/6>;dim=2;obs"
    assert format_links(links[:1]) == '</>;rt="oma.lwm2m";ct=110'
    for bad in (b"garbage", b"</3/0", b'</3/0>;t="x', b"</3/0> x", b"</3/0>;=1", b"\xff"):
        with pytest.raises(CodecError):
            parse_links(bad)


def test_capabilities_become_a_device_profile():
    from platformio_tinyml.lwm2m.capabilities import Capabilities, capabilities_from_values
    t = 30001
    values = {P("/3/0/0"): "Acme", P("/3/0/1"): "Sensor 2", P(f"/{t}/0/0"): "cortex-m4",
              P(f"/{t}/0/1"): "armv7e-m", P(f"/{t}/0/2"): 80_000_000, P(f"/{t}/0/3"): 60_000,
              P(f"/{t}/0/5"): 32_768, P(f"/{t}/0/6"): 2, P(f"/{t}/0/8"): "cmsis-nn-6", P(f"/{t}/0/9"): 1,
              P(f"/{t}/0/10"): "sp", P(f"/{t}/0/11"): True, P(f"/{t}/0/15/0"): "kws", P(f"/{t}/0/16/0"): "1.2.0",
              P(f"/{t}/0/17/0"): 2, P(f"/{t}/0/17/1"): 0, P(f"/{t}/0/18"): 0}
    caps = capabilities_from_values(values, "dev-1", t)
    prof = caps.profile
    assert (prof.core, prof.arch, prof.ram_bytes, prof.flash_bytes, prof.fpu, prof.dsp, prof.npu, prof.name) == (
        "cortex-m4", "armv7e-m", 60_000, 32_768, "sp", True, None, "Acme Sensor 2")
    assert [(s.module, s.version, s.state) for s in caps.slots] == [("kws", "1.2.0", "active"), ("", "", "empty")]
    assert Capabilities.from_dict(caps.to_dict()) == caps
    del values[P(f"/{t}/0/8")]
    with pytest.raises(LwM2MError, match="lacks kernel_set"):
        capabilities_from_values(values, "dev-1", t)
