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


def kws_probe_modules(*versions: int) -> tuple[dict, bytes]:
    """({version: signed LP64 KWS module}, TFLM's output on the device agent's probe input): what a
    device agent that installed the module must report, bit for bit."""
    import numpy as np

    from platformio_tinyml.lwm2m.agent import probe_input
    from platformio_tinyml.verify.reference import TFLMReference
    mods = {v: pack(MODEL_A, Abi.LP64_LE, v, fixed_key()) for v in versions}
    g = next(iter(mods.values()))[0]
    shape = g.tensors[g.inputs[0]].shape
    x = np.frombuffer(probe_input(int(np.prod(shape))), np.int8).reshape(shape)
    golden = np.asarray(TFLMReference(MODEL_A).run([x])[0], np.int8).tobytes()
    return {v: m for v, (_, m) in mods.items()}, golden


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


def _q(s, z=0):
    from platformio_tinyml.ir import Quant
    return Quant((s,), (z,))


def tiny_graph():
    """A 488-byte GRAPH module's model, built in the IR (no converter): int8
    FULLY_CONNECTED 8 -> 4 with weights and bias, then SOFTMAX."""
    import numpy as np
    from platformio_tinyml.ir import DType, Graph, Op, OpKind, Tensor, attrs
    rng = np.random.default_rng(0)
    q = _q
    ts = [Tensor(0, "x", (1, 8), DType.INT8, q(0.05)),
          Tensor(1, "w", (4, 8), DType.INT8, q(0.02), rng.integers(-127, 128, (4, 8)).astype(np.int8)),
          Tensor(2, "b", (4,), DType.INT32, q(0.001), rng.integers(-500, 500, 4).astype(np.int32)),
          Tensor(3, "h", (1, 4), DType.INT8, q(0.1, -3)),
          Tensor(4, "y", (1, 4), DType.INT8, q(1 / 256, -128))]
    return Graph("tiny", ts, [Op(0, OpKind.FULLY_CONNECTED, [0, 1, 2], [3], attrs.FullyConnected()),
                              Op(1, OpKind.SOFTMAX, [3], [4], attrs.Softmax())], [0], [4])


def tiny_conv_graph():
    """An 832-byte GRAPH module's model in the IR: int8 CONV_2D 3x3 SAME (2 -> 4 channels on 6x6),
    DEPTHWISE_CONV_2D 3x3 VALID, AVERAGE_POOL_2D 2x2 stride 2."""
    import numpy as np
    from platformio_tinyml.ir import DType, Graph, Op, OpKind, Tensor, attrs
    rng = np.random.default_rng(1)
    q = _q

    def const(shape, dtype, lo, hi):
        return rng.integers(lo, hi, shape).astype(dtype)
    ts = [Tensor(0, "x", (1, 6, 6, 2), DType.INT8, q(0.05)),
          Tensor(1, "cw", (4, 3, 3, 2), DType.INT8, q(0.02), const((4, 3, 3, 2), np.int8, -127, 128)),
          Tensor(2, "cb", (4,), DType.INT32, q(0.001), const(4, np.int32, -300, 300)),
          Tensor(3, "c", (1, 6, 6, 4), DType.INT8, q(0.1, -5)),
          Tensor(4, "dw", (1, 3, 3, 4), DType.INT8, q(0.03), const((1, 3, 3, 4), np.int8, -127, 128)),
          Tensor(5, "db", (4,), DType.INT32, q(0.003), const(4, np.int32, -300, 300)),
          Tensor(6, "d", (1, 4, 4, 4), DType.INT8, q(0.2, 3)),
          Tensor(7, "y", (1, 2, 2, 4), DType.INT8, q(0.2, 3))]
    same = attrs.Conv2D(pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    return Graph("tinyconv", ts, [Op(0, OpKind.CONV_2D, [0, 1, 2], [3], same),
                                  Op(1, OpKind.DEPTHWISE_CONV_2D, [3, 4, 5], [6], attrs.Conv2D()),
                                  Op(2, OpKind.AVERAGE_POOL_2D, [6], [7], attrs.Pool2D(2, 2, 2, 2))], [0], [7])


# ---- libFuzzer harness of the C loader (tests/test_module_fuzz.py, benchmarks/fuzz_module.py) ----

FUZZ_KERNELS = ("tml_conv_s8", "tml_dwconv_s8", "tml_fc_s8", "tml_avgpool_s8", "tml_softmax_s8")
FUZZ_CORPUS = Path(__file__).resolve().parent / "fuzz_corpus" / "modules"   # crash inputs kept as regressions

FUZZ_TARGET = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tml_module.h"
static uint8_t arena[64 * 1024] __attribute__((aligned(16)));
static const uint8_t key[32] = {%(key)s};
static unsigned long runs, opened;
volatile unsigned sink;
static void report(void) { fprintf(stderr, "tml_fuzz: %%lu of %%lu inputs opened\n", opened, runs); }
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    atexit(report);
    return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tml_module_t m;
    /* an exact-size heap copy: ASan flags any read past the module's end */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    ++runs;
    if (tml_module_open(&m, copy, (uint32_t)size, key, 0, arena, sizeof arena) == 0) {
        uint32_t n, i;
        unsigned s = 0;
        const uint8_t *fb = tml_module_tflite(&m, &n);
        ++opened;
        if (fb)                              /* TFLITE: all of the flatbuffer lies in the module */
            for (i = 0; i < n; ++i) s += fb[i];
        else
            tml_module_invoke(&m);
        sink = s;
    }
    free(copy);
    return 0;
}
"""


def build_loader_fuzzers(workdir: Path, key=None) -> dict[bool, Path]:
    """The C loader + executor under libFuzzer, ASan and UBSan (TFLITE accepted as in firmware
    embedding TFLM), built twice: ``{True: exe, False: exe}``. True: CRC and Ed25519 checked against
    ``key``'s public key (default :func:`fixed_key`; seeds must be signed with it); False: both
    skipped (TML_MODULE_FUZZING) so mutants reach the parsers. Signed overflow in kernel arithmetic
    is not sanitized: it wraps on every target, touches no memory, and a signed module is trusted
    data. Raises RuntimeError with clang's message."""
    import subprocess
    from platformio_tinyml.module.firmware import KernelSet, write_runtime
    from platformio_tinyml.module.keys import public_key_bytes
    workdir = Path(workdir)
    cfiles = write_runtime(workdir / "rt", KernelSet.of(FUZZ_KERNELS))
    pub = public_key_bytes((key or fixed_key()).public_key())
    (workdir / "fuzz.c").write_text(FUZZ_TARGET % {"key": ", ".join(str(b) for b in pub)})
    flags = ["clang", "-g", "-O1", "-std=c99", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
             "-fno-sanitize=signed-integer-overflow", "-DTML_MODULE_TFLITE", f"-I{workdir / 'rt'}"]

    def cc(*args):
        r = subprocess.run([*flags, *map(str, args)], capture_output=True, text=True, cwd=workdir)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
    common = [c for c in cfiles if c.name != "tml_module.c"] + [workdir / "fuzz.c"]
    cc("-c", *common)                       # objects in workdir, shared by both builds
    objs = [workdir / (c.stem + ".o") for c in common]
    exes = {}
    for signature in (True, False):
        exe = workdir / ("fuzz_signed" if signature else "fuzz_unsigned")
        cc(*([] if signature else ["-DTML_MODULE_FUZZING"]), workdir / "rt" / "tml_module.c", *objs, "-o", exe, "-lm")
        exes[signature] = exe
    return exes


def fuzz_seeds(key=None, mlperf_graphs: bool = True) -> list[bytes]:
    """Validly signed seed modules (``key``, default :func:`fixed_key`), GRAPH for LP64: the tiny
    FC+softmax and conv modules, KWS as TFLITE, and (``mlperf_graphs``) KWS and AD as GRAPH, whose
    executions cost 1,000x more (the long benchmark runs leave them out)."""
    from platformio_tinyml.module.pack import pack_tflite
    key = key or fixed_key()
    g, _ = load_any(MODEL_A)
    seeds = [pack_graph(tiny_graph(), b"tiny", Abi.LP64_LE, 1, key.sign).data,
             pack_graph(tiny_conv_graph(), b"tinyconv", Abi.LP64_LE, 1, key.sign).data,
             pack_tflite(g, MODEL_A.read_bytes(), 1, key.sign, arena_bytes=32 * 1024).data]
    if mlperf_graphs:
        seeds += [pack(p, Abi.LP64_LE, 1, key)[1].data for p in (MODEL_A, MODEL_B)]
    return seeds


def opened_count(stderr: str) -> tuple[int, int]:
    """(inputs opened, inputs run) from the fuzz target's exit line."""
    import re
    m = re.findall(r"tml_fuzz: (\d+) of (\d+) inputs opened", stderr)
    return (int(m[-1][0]), int(m[-1][1])) if m else (0, 0)
