"""Helpers shared by the inference-module tests: a fixed key, packed
MLPerf modules, re-signing of doctored headers, the host test driver."""

from __future__ import annotations

import struct
from pathlib import Path

from platformio_tinyml.module.format import TRAILER, seal
from platformio_tinyml.module.kernels import Abi
from platformio_tinyml.module.pack import pack_graph
from platformio_tinyml.pipeline import load_any

MLPERF = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
MODEL_A = MLPERF / "kws_ref_model.tflite"      # conv, dwconv, avgpool, fc, softmax
MODEL_B = MLPERF / "ad01_int8.tflite"          # fc only: a subset of A's kernel set


def fixed_key(seed: int = 7):
    """A deterministic Ed25519 key (fixed seed: failures reproduce)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def pack(model: Path, abi: Abi, version: int, key):
    g, _ = load_any(model)
    return g, pack_graph(g, model.read_bytes(), abi, version, key.sign)


def resign(data: bytes, key, **patch) -> bytes:
    """Rewrite header fields (``kernel_mask``, ``kernel_abi_hash``) and sign again."""
    b = bytearray(data)
    offsets = {"kernel_mask": (32, "<Q"), "kernel_abi_hash": (40, "<Q"), "module_version": (16, "<I")}
    for name, value in patch.items():
        off, fmt = offsets[name]
        struct.pack_into(fmt, b, off, value)
    return seal(bytes(b[:len(b) - TRAILER]), key.sign)


HOST_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tml_module.h"
static uint8_t arena[1 << 20] __attribute__((aligned(16)));
static uint8_t *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b;
    if (!f) return 0;
    fseek(f, 0, SEEK_END); *n = ftell(f); fseek(f, 0, SEEK_SET);
    b = malloc(*n ? (size_t)*n : 1u);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) { fclose(f); free(b); return 0; }
    fclose(f);
    return b;
}
int main(int argc, char **argv)
{
    long nk, nm, ni;
    tml_module_t m;
    int err;
    unsigned k;
    uint32_t n, i;
    uint8_t *key, *mod, *in, *p;
    if (argc < 5) return 64;
    key = slurp(argv[1], &nk); mod = slurp(argv[2], &nm); in = slurp(argv[3], &ni);
    if (!key || !mod || !in || nk != 32) return 65;
    err = tml_module_open(&m, mod, (uint32_t)nm, key, (uint32_t)strtoul(argv[4], 0, 10), arena, sizeof arena);
    printf("R %d %s\n", err, tml_module_strerror(err));
    if (err == 0) {
        for (k = 0, p = in; k < m.n_inputs; ++k) {
            uint8_t *dst = tml_module_input(&m, k, &n);
            if ((long)n > ni) return 66;
            memcpy(dst, p, n); p += n; ni -= n;
        }
        tml_module_invoke(&m);
        for (k = 0; k < m.n_outputs; ++k) {
            const uint8_t *o = tml_module_output(&m, k, &n);
            printf("O %u ", k);
            for (i = 0; i < n; ++i) printf("%02x", o[i]);
            printf("\n");
        }
    }
    free(key); free(mod); free(in);
    return 0;
}
"""
