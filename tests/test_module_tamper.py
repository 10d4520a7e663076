"""Every single-byte change of a signed module is refused, exhaustively, by
both readers: the C loader (built for the host, one process that tries all
255 other values at every position of the 488-byte tiny module; memory
safety on bad input is the fuzzer's part, tests/test_module_fuzz.py) and the Python reader (`verify_module`: every bit flip and the
complement at every position). Reserved bytes are refused as such before the
CRC, the signature's bytes by the signature check."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest

from module_support import fixed_key, tiny_graph
from platformio_tinyml.module import ModuleError
from platformio_tinyml.module.firmware import KernelSet, write_runtime
from platformio_tinyml.module.format import FIXED_HEADER, TENSOR_DESC, TRAILER
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.keys import public_key_bytes
from platformio_tinyml.module.pack import pack_graph
from platformio_tinyml.module.verify import verify_module

TAMPER_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tml_module.h"
static uint8_t arena[1 << 16] __attribute__((aligned(16)));
static long slurp(const char *path, uint8_t *buf, long cap)
{
    FILE *f = fopen(path, "rb");
    long n = f ? (long)fread(buf, 1, (size_t)cap, f) : -1;
    if (f) fclose(f);
    return n;
}
/* argv: public key, module. Prints "O <code>" for the module as is, "A <pos> <value>" for each
 * accepted single-byte change, "C <pos> <code>" for the code of each change, in position order. */
int main(int argc, char **argv)
{
    static uint8_t key[32], image[1 << 16] __attribute__((aligned(16)));
    tml_module_t m;
    long n, pos;
    int v;
    if (argc != 3 || slurp(argv[1], key, 32) != 32 || (n = slurp(argv[2], image, sizeof image)) <= 0) return 64;
    printf("O %d\n", tml_module_open(&m, image, (uint32_t)n, key, 0, arena, sizeof arena));
    for (pos = 0; pos < n; ++pos) {
        uint8_t orig = image[pos];
        for (v = 0; v < 256; ++v) {
            int err;
            if (v == orig) continue;
            image[pos] = (uint8_t)v;
            err = tml_module_open(&m, image, (uint32_t)n, key, 0, arena, sizeof arena);
            if (err == 0) printf("A %ld %d\n", pos, v);
            printf("C %ld %d\n", pos, err);
        }
        image[pos] = orig;
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def module():
    key = fixed_key()
    return key, pack_graph(tiny_graph(), b"tiny", Abi.LP64_LE, 1, key.sign).data


def _regions(data: bytes) -> dict[str, range]:
    end = len(data) - TRAILER
    return {"reserved word": range(end, end + 4), "signature": range(end + 8, len(data)),
            "descriptor reserved": range(FIXED_HEADER + TENSOR_DESC - 4, FIXED_HEADER + TENSOR_DESC)}


def test_c_loader_refuses_every_single_byte_change(tmp_path, module):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    key, data = module
    cfiles = write_runtime(tmp_path / "rt", KernelSet.of(["tml_fc_s8", "tml_softmax_s8"]))
    (tmp_path / "tamper.c").write_text(TAMPER_DRIVER)
    exe = tmp_path / "tamper"
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path / 'rt'}", str(tmp_path / "tamper.c"),
                        *map(str, cfiles), "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tmp_path / "pub.bin").write_bytes(public_key_bytes(key.public_key()))
    (tmp_path / "m.tmm").write_bytes(data)
    r = subprocess.run([str(exe), str(tmp_path / "pub.bin"), str(tmp_path / "m.tmm")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "O 0"                                   # the module itself opens
    assert [x for x in lines if x.startswith("A ")] == []       # no change is accepted
    codes = [tuple(map(int, x.split()[1:])) for x in lines if x.startswith("C ")]
    assert len(codes) == 255 * len(data)
    by_region = {name: Counter(c for p, c in codes if p in rng) for name, rng in _regions(data).items()}
    assert by_region == {"reserved word": {-19: 4 * 255}, "signature": {-9: 64 * 255},
                         "descriptor reserved": {-19: 4 * 255}}


def test_python_reader_refuses_every_single_byte_change(module):
    key, data = module
    pub = key.public_key()
    verify_module(data, pub)
    b = bytearray(data)
    accepted, codes = [], {name: Counter() for name in _regions(data)}
    for pos in range(len(b)):
        orig = b[pos]
        for mask in (1, 2, 4, 8, 16, 32, 64, 128, 0xFF):
            b[pos] = orig ^ mask
            try:
                verify_module(bytes(b), pub)
                accepted.append((pos, mask))
            except ModuleError as e:
                for name, rng in _regions(data).items():
                    if pos in rng:
                        codes[name][e.code] += 1
        b[pos] = orig
    assert accepted == []
    assert codes == {"reserved word": {"reserved": 36}, "signature": {"signature": 64 * 9},
                     "descriptor reserved": {"reserved": 36}}
