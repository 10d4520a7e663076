"""The device's module loader and executor, built for the host (a shared library).

Role: a stand-in MCU for the LwM2M device agent and fleet tests. The C of
``runtime/`` (loader, executor, the kernels of a kernel set, Ed25519) is
compiled once per kernel set into a cached ``.so``; :class:`HostDevice` gives
each simulated device its own two flash slots (erased = 0xFF), arena and
``tml_slots_t``, so every module a test installs passes the checks a real
firmware makes (bounds, CRC, signature, kernel ABI and set, version, arena)
and runs on the same executor. Modules for it are packed for
:attr:`Abi.LP64_LE` (64-bit hosts).

The library is cached under ``$TINYML_CACHE_DIR/host-loader`` (else
``~/.cache/platformio-tinyml/host-loader``), keyed by the C sources and flags.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ..errors import TinyMLError
from .firmware import KernelSet, write_runtime
from .kernels import Abi

ABI = Abi.LP64_LE
DEFAULT_SLOT_SIZE = 128 * 1024
DEFAULT_ARENA = 32 * 1024
CFLAGS = ["-std=c99", "-O2", "-fPIC", "-shared", "-Werror=implicit-function-declaration"]

# What the C loader's error codes (tml_module.h) are called; the same words as ModuleError codes.
ERROR_NAMES = {0: "ok", -1: "argument", -2: "align", -3: "truncated", -4: "magic", -5: "format_version",
               -6: "header", -7: "size", -8: "crc", -9: "signature", -10: "kind", -11: "kernel_abi",
               -12: "kernel_set", -13: "version", -14: "arena", -15: "tensor", -16: "graph", -17: "endian",
               -18: "tflite", -19: "reserved"}

# The device: slots and arena owned here, the loader's own tml_slots_t inside.
_SHIM = r"""/* tml_host.c - a simulated device around the module loader (host builds only). */
#include <stdlib.h>
#include <string.h>
#include "tml_module.h"

typedef struct {
    tml_slots_t s;
    uint8_t *slot[2];
    uint8_t *arena;
    uint8_t key[32];
} tml_host_t;

void *tml_host_new(uint32_t slot_size, uint32_t arena_bytes, const uint8_t *key)
{
    tml_host_t *d = calloc(1, sizeof *d);
    int k;
    if (!d) return 0;
    for (k = 0; k < 2; ++k) {
        d->slot[k] = malloc(slot_size)   /* glibc: 16-byte aligned */;
        if (d->slot[k]) memset(d->slot[k], 0xff, slot_size);
        d->s.base[k] = d->slot[k];
        d->s.size[k] = slot_size;
    }
    d->arena = malloc(arena_bytes);
    memcpy(d->key, key, 32);
    d->s.public_key = d->key;
    d->s.arena = d->arena;
    d->s.arena_bytes = arena_bytes;
    d->s.active = -1;
    if (!d->slot[0] || !d->slot[1] || !d->arena) {
        free(d->slot[0]); free(d->slot[1]); free(d->arena); free(d);
        return 0;
    }
    return d;
}

void tml_host_free(tml_host_t *d)
{
    if (!d) return;
    free(d->slot[0]); free(d->slot[1]); free(d->arena); free(d);
}

uint8_t *tml_host_slot(tml_host_t *d, int k) { return d->slot[k]; }
int tml_host_active(const tml_host_t *d) { return d->s.active; }
uint32_t tml_host_version(const tml_host_t *d) { return d->s.installed_version; }
int tml_host_boot(tml_host_t *d, int active, uint32_t version) { return tml_slots_boot(&d->s, active, version); }
int tml_host_install(tml_host_t *d, int slot) { return tml_slots_install(&d->s, slot); }

/* The loader's verdict on a slot as a successor of 'min_version'; nothing switches. */
int tml_host_check(tml_host_t *d, int slot, uint32_t min_version)
{
    tml_module_t m;
    return tml_module_open(&m, d->slot[slot], d->s.size[slot], d->key, min_version, d->arena,
                           d->s.arena_bytes);
}

/* One inference on the running module: inputs back to back in 'in', outputs back to back
 * into 'out' (at most 'cap' bytes). Returns the output bytes, or -1 (nothing runs, or sizes). */
long tml_host_invoke(tml_host_t *d, const uint8_t *in, uint32_t n_in, uint8_t *out, uint32_t cap)
{
    uint32_t k, n, done = 0;
    if (d->s.active < 0) return -1;
    for (k = 0; k < d->s.module.n_inputs; ++k) {
        uint8_t *p = tml_module_input(&d->s.module, k, &n);
        if (n > n_in - done) return -1;
        memcpy(p, in + done, n);
        done += n;
    }
    if (done != n_in) return -1;
    tml_module_invoke(&d->s.module);
    for (done = 0, k = 0; k < d->s.module.n_outputs; ++k) {
        const uint8_t *p = tml_module_output(&d->s.module, k, &n);
        if (n > cap - done) return -1;
        memcpy(out + done, p, n);
        done += n;
    }
    return (long)done;
}
"""


def cache_dir() -> Path:
    root = os.environ.get("TINYML_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "host-loader"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "platformio-tinyml" / "host-loader"


def build_library(kset: KernelSet, cc: str = "gcc") -> Path:
    """The loader + executor + ``kset`` kernels as a shared library (built on first use, then cached)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        cfiles = write_runtime(src, kset)
        (src / "tml_host.c").write_text(_SHIM)
        cfiles.append(src / "tml_host.c")
        key = hashlib.sha256("\0".join([cc, *CFLAGS]).encode())
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            key.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
        so = cache_dir() / f"libtmlhost-{key.hexdigest()[:20]}.so"
        if so.is_file():
            return so
        if shutil.which(cc) is None:
            raise TinyMLError(f"no C compiler '{cc}' to build the host module loader", hint="Install gcc")
        so.parent.mkdir(parents=True, exist_ok=True)
        tmp_so = so.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([cc, *CFLAGS, "-I", str(src), *map(str, cfiles), "-o", str(tmp_so), "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise TinyMLError(f"host build of the module loader failed: {proc.stderr.strip()[-2000:]}",
                              where="platformio_tinyml/module/runtime", hint="This is a bug; please report it")
        os.replace(tmp_so, so)      # atomic: concurrent builds never load half a library
        return so


@lru_cache(maxsize=None)
def _library(mask: int) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_library(KernelSet(mask))))
    p, u32, i = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
    for name, res, args in (("tml_host_new", p, [u32, u32, ctypes.c_char_p]), ("tml_host_free", None, [p]),
                            ("tml_host_slot", p, [p, i]), ("tml_host_active", i, [p]),
                            ("tml_host_version", u32, [p]), ("tml_host_boot", i, [p, i, u32]),
                            ("tml_host_install", i, [p, i]), ("tml_host_check", i, [p, i, u32]),
                            ("tml_host_invoke", ctypes.c_long, [p, ctypes.c_char_p, u32, p, u32])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class HostDevice:
    """Two module slots, an arena and the real C loader: one simulated device.

    Slot contents change only through :meth:`erase` and :meth:`write`; the
    loader decides everything else (:meth:`check`, :meth:`install`,
    :meth:`boot`). Codes are the loader's ``TML_MOD_*`` numbers (0 = ok,
    names in :data:`ERROR_NAMES`).
    """

    def __init__(self, kernel_set: KernelSet, public_key: bytes, slots: int = 2,
                 slot_size: int = DEFAULT_SLOT_SIZE, arena_bytes: int = DEFAULT_ARENA):
        if slots != 2:
            raise TinyMLError(f"{slots} slots asked; the module loader has A/B slots (2)")
        if len(public_key) != 32:
            raise TinyMLError("the public key must be 32 raw Ed25519 bytes")
        self.kernel_set = kernel_set
        self.slot_size = slot_size
        self.arena_bytes = arena_bytes
        self.abi = ABI
        self._lib = _library(kernel_set.mask)
        self._dev = self._lib.tml_host_new(slot_size, arena_bytes, public_key)
        if not self._dev:
            raise TinyMLError(f"out of memory for a device with two {slot_size}-byte slots")
        self._out = ctypes.create_string_buffer(arena_bytes)

    def __del__(self):
        dev, self._dev = getattr(self, "_dev", None), None
        if dev:
            self._lib.tml_host_free(dev)

    @property
    def active(self) -> int:
        """The running slot (0, 1) or -1."""
        return self._lib.tml_host_active(self._dev)

    @property
    def installed_version(self) -> int:
        return self._lib.tml_host_version(self._dev)

    def _slot(self, slot: int) -> int:
        if slot not in (0, 1):
            raise TinyMLError(f"no slot {slot}; slots are 0 and 1")
        return self._lib.tml_host_slot(self._dev, slot)

    def erase(self, slot: int) -> None:
        ctypes.memset(self._slot(slot), 0xFF, self.slot_size)

    def write(self, slot: int, offset: int, data: bytes) -> None:
        """Program ``data`` at ``offset`` of ``slot`` (a block of a transfer)."""
        if offset < 0 or offset + len(data) > self.slot_size:
            raise TinyMLError(f"{len(data)} bytes at offset {offset} do not fit a {self.slot_size}-byte slot")
        ctypes.memmove(self._slot(slot) + offset, data, len(data))

    def read(self, slot: int, size: int) -> bytes:
        return ctypes.string_at(self._slot(slot), min(size, self.slot_size))

    def check(self, slot: int, min_version: int = 0) -> int:
        """The loader's verdict on ``slot``, switching nothing."""
        self._slot(slot)
        return self._lib.tml_host_check(self._dev, slot, min_version)

    def boot(self, slot: int, installed_version: int = 0) -> int:
        """``tml_slots_boot``: open ``slot``, else the other one."""
        self._slot(slot)
        return self._lib.tml_host_boot(self._dev, slot, installed_version)

    def install(self, slot: int) -> int:
        """``tml_slots_install``: validate ``slot`` as the successor and switch to it on success."""
        self._slot(slot)
        return self._lib.tml_host_install(self._dev, slot)

    def infer(self, inputs: bytes) -> bytes:
        """One inference of the running module: inputs back to back in, outputs back to back out."""
        n = self._lib.tml_host_invoke(self._dev, inputs, len(inputs), ctypes.addressof(self._out), len(self._out))
        if n < 0:
            raise TinyMLError("no module runs" if self.active < 0 else
                              f"{len(inputs)} input bytes do not match the running module's inputs")
        return self._out.raw[:n]
