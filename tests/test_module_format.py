"""Inference modules on the host: format round trip, keys, CLI, the C
parameter layouts, and the C loader + executor (ASan/UBSan) bit-exact
against the TFLite Micro reference, with every refusal's error code."""

from __future__ import annotations

import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from module_support import HOST_DRIVER, MODEL_A, MODEL_B, fixed_key, pack, resign
from platformio_tinyml.cli.main import main as cli
from platformio_tinyml.module import ModuleError, decode_graph, decode_module, encode_graph
from platformio_tinyml.module.format import BLOB_REF, TRAILER, GraphPayload, OpRecord, crc32, encode_module, seal
from platformio_tinyml.module.firmware import KernelSet, write_runtime
from platformio_tinyml.module.kernels import Abi, kernel_table, static_assert_source
from platformio_tinyml.module.keys import public_key_bytes
from platformio_tinyml.module.verify import check_compatible, verify_module

RUNTIME = Path(__file__).resolve().parents[1] / "platformio_tinyml" / "module" / "runtime"


@pytest.fixture(scope="module")
def key():
    return fixed_key()


@pytest.fixture(scope="module")
def kws(key):
    return pack(MODEL_A, Abi.LP64_LE, 5, key)


def test_round_trip_and_graph_records(kws, key):
    g, res = kws
    v = verify_module(res.data, key.public_key())
    h = v.module.header
    assert h.module_version == 5 and h.backend == "cgen" and h.arena_bytes == res.header.arena_bytes
    assert [d.shape for d in h.inputs] == [tuple(g.tensors[g.inputs[0]].shape)]
    assert encode_graph(v.graph) == v.module.payload[:len(encode_graph(v.graph))]
    assert decode_graph(encode_graph(v.graph), h.arena_bytes) == v.graph
    assert len(v.graph.ops) == res.n_ops


@pytest.mark.parametrize("defect, code", [
    (lambda d: d[:100], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\0", "size"),
    (lambda d: b"XMOD" + d[4:], "magic"),
    (lambda d: d[:2000] + bytes([d[2000] ^ 0x10]) + d[2001:], "crc"),
])
def test_reader_names_the_defect(kws, defect, code):
    with pytest.raises(ModuleError) as e:
        decode_module(defect(kws[1].data))
    assert e.value.code == code


def _old_layout(data: bytes, key, version: int) -> bytes:
    """``data`` re-sealed the way format version 1 did it: CRC | reserved | signature, both checks
    over header + payload only (a reserved word outside both)."""
    body = bytearray(data[:len(data) - TRAILER])
    struct.pack_into("<H", body, 4, version)
    body = bytes(body)
    return body + struct.pack("<II", crc32(body), 0) + key.sign(body)


def _reserved_word_set(data: bytes, key) -> bytes:
    """``data`` with the trailer's reserved word 1, CRC and signature computed over it (valid)."""
    body = data[:len(data) - TRAILER] + struct.pack("<I", 1)
    signed = body + struct.pack("<I", crc32(body))
    return signed + key.sign(signed)


def test_trailer_is_covered_and_reserved_fields_checked(kws, key):
    data = kws[1].data
    end = len(data) - TRAILER
    assert data[end:end + 4] == bytes(4)
    assert struct.unpack_from("<I", data, end + 4)[0] == crc32(data[:end + 4])
    key.public_key().verify(data[end + 8:], data[:end + 8])       # signature over all bytes before it
    assert seal(data[:end], key.sign) == data
    desc = bytearray(data[:end])
    desc[128 + 2] = 1                                             # input descriptor's reserved u16
    cases = [("format_version", _old_layout(data, key, version=1)),   # version 1 modules must be repacked
             ("reserved", _reserved_word_set(data, key)),             # CRC and signature valid, word not 0
             ("reserved", seal(bytes(desc), key.sign))]
    for code, bad in cases:
        with pytest.raises(ModuleError) as e:
            verify_module(bad, key.public_key())
        assert e.value.code == code, str(e.value)


def test_tflite_module_round_trip_and_refusals(key):
    from platformio_tinyml.module.pack import pack_tflite
    from platformio_tinyml.pipeline import load_any
    g, _ = load_any(MODEL_A)
    raw = MODEL_A.read_bytes()
    v = verify_module(pack_tflite(g, raw, 4, key.sign, 24_000).data, key.public_key())
    assert v.module.header.payload_kind.name == "TFLITE" and v.graph is None
    assert v.module.payload == raw + bytes(-len(raw) % 8)
    with pytest.raises(ModuleError) as e:
        verify_module(pack_tflite(g, raw[:4] + b"XXXX" + raw[8:], 4, key.sign).data, key.public_key())
    assert e.value.code == "tflite"
    with pytest.raises(ModuleError) as e:       # runs on firmware with TFLM only
        check_compatible(v.module, Abi.ILP32_LE, KernelSet.all().mask)
    assert e.value.code == "kind"


def test_signature_and_compatibility_checks(kws, key):
    data = kws[1].data
    with pytest.raises(ModuleError, match="signature"):
        verify_module(data, fixed_key(8).public_key())
    mod = decode_module(data)
    check_compatible(mod, Abi.LP64_LE, KernelSet.all().mask, installed_version=5)
    with pytest.raises(ModuleError) as e:
        check_compatible(mod, Abi.LP64_LE, KernelSet.all().mask, installed_version=6)
    assert e.value.code == "version"
    with pytest.raises(ModuleError) as e:
        check_compatible(mod, Abi.LP64_LE, KernelSet.of(["tml_fc_s8"]).mask)
    assert e.value.code == "kernel_set" and "tml_conv_s8" in str(e.value)
    with pytest.raises(ModuleError) as e:
        check_compatible(mod, Abi.ILP32_LE, KernelSet.all().mask)
    assert e.value.code == "kernel_abi"


def test_cli_keygen_pack_inspect_verify(tmp_path, capsys):
    assert cli(["module", "keygen", "-o", str(tmp_path / "k")]) == 0
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    out = tmp_path / "kws.tmm"
    assert cli(["module", "pack", str(MODEL_A), "--target", "mps2-an386", "--key", str(tmp_path / "k.key"),
                "--version", "2", "-o", str(out)]) == 0
    assert cli(["module", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tml_dwconv_s8" in text and "signature    NOT checked (no --pubkey)" in text
    assert cli(["module", "inspect", str(out), "--pubkey", str(tmp_path / "k.pub")]) == 0
    assert f"signature    OK (Ed25519, {tmp_path / 'k.pub'})" in capsys.readouterr().out
    assert cli(["module", "keygen", "-o", str(tmp_path / "other")]) == 0
    assert cli(["module", "inspect", str(out), "--pubkey", str(tmp_path / "other.pub")]) == 2
    assert "Ed25519 signature does not match" in capsys.readouterr().err
    assert cli(["module", "verify", str(out), "--pubkey", str(tmp_path / "k.pub")]) == 0
    bad = tmp_path / "bad.tmm"
    data = bytearray(out.read_bytes())
    data[1000] ^= 1
    bad.write_bytes(bytes(data))
    assert cli(["module", "verify", str(bad), "--pubkey", str(tmp_path / "k.pub")]) == 1
    assert "module rejected (crc)" in capsys.readouterr().err
    assert cli(["module", "keygen", "-o", str(tmp_path / "k")]) == 2     # never overwrite a key


def test_kernel_ids_match_the_executor():
    text = (RUNTIME / "tml_exec.c").read_text()
    enum = text[text.index("K_COPY = 0"):text.index("K_COUNT")].replace("\n", " ")
    names = [n.strip()[2:].lower() for n in enum.replace("= 0", "").split(",") if n.strip()]
    assert names == [k.name[4:] for k in kernel_table()]


@pytest.mark.parametrize("compiler, flags, abi", [
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"], Abi.ILP32_LE),
    ("gcc", [], Abi.LP64_LE),
])
def test_parameter_layouts_match_the_compiler(tmp_path, compiler, flags, abi):
    """The packer's struct layouts are what the C compiler does (catches drift in tml_kernels.h)."""
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    src = tmp_path / "layout_check.c"
    src.write_text(static_assert_source(abi))
    inc = Path(__file__).resolve().parents[1] / "platformio_tinyml" / "compilers" / "cgen" / "runtime"
    r = subprocess.run([compiler, *flags, "-std=c99", "-Wall", "-Werror", "-Wno-unused-local-typedefs",
                        f"-I{inc}", "-c", str(src), "-o", str(tmp_path / "x.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def host_driver(tmp_path_factory, key):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("host")
    kset = KernelSet.of(["tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8"])
    cfiles = write_runtime(d / "rt", kset)
    (d / "main.c").write_text(HOST_DRIVER)
    (d / "pub.bin").write_bytes(public_key_bytes(key.public_key()))
    exe = d / "host"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", f"-I{d / 'rt'}", str(d / "main.c"), *map(str, cfiles),
                        "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d, exe


def _run_host(host_driver, module: bytes, x: np.ndarray, min_version: int = 0):
    d, exe = host_driver
    (d / "m.tmm").write_bytes(module)
    (d / "in.bin").write_bytes(x.tobytes())
    r = subprocess.run([str(exe), str(d / "pub.bin"), str(d / "m.tmm"), str(d / "in.bin"), str(min_version)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    return int(lines[0].split()[1]), [bytes.fromhex(line.split()[2]) for line in lines[1:]]


@pytest.mark.parametrize("model", [MODEL_A, MODEL_B], ids=["kws", "ad"])
def test_host_executor_is_bit_exact(host_driver, key, model):
    from platformio_tinyml.verify.reference import TFLMReference
    g, res = pack(model, Abi.LP64_LE, 1, key)
    ref = TFLMReference(model)
    rng = np.random.default_rng(1234)
    shape = g.tensors[g.inputs[0]].shape
    for _ in range(5):
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        code, outs = _run_host(host_driver, res.data, x)
        assert code == 0
        assert outs[0] == np.asarray(ref.run([x])[0], np.int8).tobytes()


def _patched_reloc(data: bytes, key, field: int, ref) -> bytes:
    """``data`` re-signed with op 0's pointer at ``field`` given the ref ``ref(old_ref)``."""
    m = decode_module(data)
    g = decode_graph(m.payload, m.header.arena_bytes)
    op = g.ops[0]
    relocs = tuple((fo, ref(r) if fo == field else r, n) for fo, r, n in op.relocs)
    assert relocs != op.relocs
    ops = (OpRecord(op.kernel_id, op.operands, relocs, op.params),) + g.ops[1:]
    return encode_module(m.header, encode_graph(GraphPayload(ops, g.blob)), key.sign)


def _misaligned_reloc(data: bytes, key) -> bytes:
    """``data`` re-signed with its first weight-array pointer moved by 2 bytes."""
    m = decode_module(data)
    op = decode_graph(m.payload, m.header.arena_bytes).ops[0]
    assert op.relocs[0][1] & BLOB_REF
    return _patched_reloc(data, key, op.relocs[0][0], lambda r: r + 2)


def _conv_field_offset(member: str) -> int:
    from platformio_tinyml.module.kernels import struct_layouts
    return struct_layouts(Abi.LP64_LE)["tml_conv_s8_t"].field(member).offset


def test_host_loader_refusals(host_driver, key, kws):
    g, res = kws
    x = np.zeros(g.tensors[g.inputs[0]].shape, np.int8)
    flipped = bytearray(res.data)
    flipped[3000] ^= 0x04
    cases = {
        -8: bytes(flipped),                                                       # CRC
        -9: pack(MODEL_A, Abi.LP64_LE, 5, fixed_key(9))[1].data,                  # other key
        -12: resign(res.data, key, kernel_mask=res.header.kernel_mask | 1 << 6),  # needs tml_add_s8
        -11: resign(res.data, key, kernel_abi_hash=res.header.kernel_abi_hash ^ 1),
        -3: res.data[:-10],
        -4: b"\0" * len(res.data),
        -5: _old_layout(res.data, key, version=1),
        -19: _reserved_word_set(res.data, key),
    }
    for code, data in cases.items():
        assert _run_host(host_driver, data, x)[0] == code
    # A signed module whose weight array is not 4-byte aligned (found by the fuzzer:
    # kernels load int32 words from it) is refused by both readers.
    misaligned = _misaligned_reloc(res.data, key)
    assert _run_host(host_driver, misaligned, x)[0] == -16
    with pytest.raises(ModuleError, match="not 4-byte aligned"):
        m = decode_module(misaligned)
        decode_graph(m.payload, m.header.arena_bytes)
    # Buffers a kernel writes (conv scratch, int16 filter room) must lie in the arena, never
    # in the module: the same pointers moved into the weight blob are refused.
    for member in ("scratch", "filter16"):
        field = _conv_field_offset(member)
        assert _run_host(host_driver, _patched_reloc(res.data, key, field, lambda r: BLOB_REF), x)[0] == -16
    assert _run_host(host_driver, res.data, x, min_version=6)[0] == -13          # older than installed
    assert _run_host(host_driver, res.data, x, min_version=5)[0] == 0


KAT_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tml_ed25519.h"
static uint8_t buf[1 << 16];
static size_t slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    return n;
}
int main(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; ++i) {            /* file = public key || signature || message */
        size_t n = slurp(argv[i]);
        printf("%d\n", tml_ed25519_check(buf + 32, buf, buf + 96, (uint32_t)(n - 96)));
    }
    return 0;
}
"""


def test_ed25519_against_cryptography(tmp_path):
    """tml_ed25519_check (HACL* SHA-512 fed in place + Monocypher) against `cryptography`, on message
    lengths around the 64-byte first block and the 128-byte blocks."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    rt = tmp_path / "rt"
    cfiles = [c for c in write_runtime(rt, KernelSet.of(["tml_fc_s8"]))
              if c.name in ("tml_ed25519.c", "monocypher.c", "Hacl_Hash_SHA2.c")]
    (tmp_path / "kat.c").write_text(KAT_DRIVER)
    exe = tmp_path / "kat"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", f"-I{rt}", str(tmp_path / "kat.c"), *map(str, cfiles),
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(5)
    msgs = [b"", b"abc", *(rng.bytes(n) for n in (1, 63, 64, 65, 111, 112, 127, 128, 129, 191, 192, 193,
                                                  239, 240, 255, 256, 1000, 40000))]
    sk = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = public_key_bytes(sk.public_key())
    cases, want = [], []
    for m in msgs:
        sig = sk.sign(m)
        cases += [pub + sig + m, pub + sig + m + b"x", pub + bytes([sig[0] ^ 1]) + sig[1:] + m,
                  public_key_bytes(fixed_key(3).public_key()) + sig + m]
        want += [0, -1, -1, -1]
    paths = []
    for i, c in enumerate(cases):
        paths.append(tmp_path / f"e{i}")
        paths[-1].write_bytes(c)
    out = subprocess.run([str(exe), *map(str, paths)], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == want


def test_host_executor_batch2_conv_pool_is_bit_exact(host_driver, key, tmp_path):
    """Batch 2: the module records one conv and one pooling call per image, each on
    its own slice of the arena (the same lowering as the generated C)."""
    import importlib.util
    import sys
    from platformio_tinyml.verify.reference import TFLMReference
    spec = importlib.util.spec_from_file_location("difftest", RUNTIME.parents[2] / "benchmarks" / "difftest.py")
    dt = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, dt)
    spec.loader.exec_module(dt)
    rng = np.random.default_rng(5)
    b = dt.TfliteBuilder()
    x = b.tensor((2, 6, 6, 3), "int8", ([0.05], [3], 0), name="x")
    ws = rng.uniform(0.005, 0.02, 4)
    w = b.tensor((4, 3, 3, 3), "int8", (ws, [0] * 4, 0), data=rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8))
    bias = b.tensor((4,), "int32", (0.05 * ws, [0] * 4, 0), data=rng.integers(-2000, 2000, 4).astype(np.int32))
    h = b.tensor((2, 6, 6, 4), "int8", ([0.2], [-5], 0))
    y = b.tensor((2, 3, 3, 4), "int8", ([0.2], [-5], 0), name="y")
    b.op("CONV_2D", [x, w, bias], [h], b.options("Conv2DOptions", padding=0, strideH=1, strideW=1))
    b.op("AVERAGE_POOL_2D", [h], [y], b.options("Pool2DOptions", padding=1, strideH=2, strideW=2,
                                                 filterHeight=2, filterWidth=2))
    model = tmp_path / "b2.tflite"
    model.write_bytes(b.finish([x], [y]))
    _, res = pack(model, Abi.LP64_LE, 1, key)
    ref = TFLMReference(model)
    for _ in range(3):
        xs = rng.integers(-128, 128, size=(2, 6, 6, 3), dtype=np.int8)
        code, outs = _run_host(host_driver, res.data, xs)
        assert code == 0
        assert outs[0] == np.asarray(ref.run([xs])[0], np.int8).tobytes()
