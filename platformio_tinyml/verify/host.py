"""Build generated C for the host as a shared library and call it via ctypes.

The same strict flags as for targets (-Wall -Wextra -Werror, C99), so a
warning in generated code fails verification too.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compilers.cgen import Generated, write_output
from ..errors import CompileError
from ..ir import Graph

HOST_CFLAGS = ["-std=c99", "-O3", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]


@dataclass
class HostModel:
    lib: ctypes.CDLL
    name: str
    graph: Graph
    so_path: Path

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        g = self.graph
        ins = [np.ascontiguousarray(np.asarray(x, dtype=g.tensors[t].dtype.numpy).reshape(g.tensors[t].shape))
               for x, t in zip(inputs, g.inputs)]
        outs = [np.zeros(g.tensors[t].shape, dtype=g.tensors[t].dtype.numpy) for t in g.outputs]
        in_arr = (ctypes.c_void_p * len(ins))(*[x.ctypes.data for x in ins])
        out_arr = (ctypes.c_void_p * len(outs))(*[y.ctypes.data for y in outs])
        fn = getattr(self.lib, f"{self.name}_invoke_multi")
        rc = fn(in_arr, out_arr)
        if rc != 0:
            raise CompileError(f"{self.name}_invoke_multi returned {rc}")
        return outs

    def reset(self) -> None:
        """Back to the initial state (``NAME_reset``: models with resource variables; else nothing)."""
        fn = getattr(self.lib, f"{self.name}_reset", None) if self.graph.variables else None
        if fn is not None:
            fn()


def build_host(gen: Generated, graph: Graph, workdir: Path, cc: str = "gcc",
               extra_cflags: list[str] | None = None, obj_cache: Path | None = None) -> HostModel:
    """Build ``gen`` as a shared library in ``workdir`` and load it.

    ``obj_cache``: a folder where the runtime kernels' object files are kept
    (keyed by their text and the flags) and reused, so that a run over many
    models compiles only each model's own source."""
    workdir = Path(workdir)
    src = workdir / "src"
    if src.exists():
        shutil.rmtree(src)
    write_output(gen, src)
    flags = [*HOST_CFLAGS, *(extra_cflags or [])]
    cfiles = sorted(str(p) for p in src.glob("*.c"))
    if obj_cache is not None:
        cfiles = [_cached_object(Path(f), cc, flags, Path(obj_cache)) if Path(f).name in gen.runtime_files
                  else f for f in cfiles]
    so = workdir / f"lib{gen.name}.so"
    _run_cc([cc, *flags, "-I", str(src), *cfiles, "-o", str(so), "-lm"], gen.name)
    lib = ctypes.CDLL(str(so))
    return HostModel(lib=lib, name=gen.name, graph=graph, so_path=so)


def _run_cc(cmd: list[str], name: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"host compile of generated code failed:\n{proc.stderr.strip()}",
                           where=name, hint="This is a bug in the code generator; please report it")


def _cached_object(cfile: Path, cc: str, flags: list[str], cache: Path) -> str:
    """The object file of runtime source ``cfile`` in ``cache``, compiled on first use.

    Runtime sources include only runtime headers, which are hashed with them."""
    key = hashlib.sha256("\0".join([cc, *flags]).encode())
    for f in sorted(cfile.parent.glob("tml_*.h")) + [cfile]:
        key.update(f.name.encode() + b"\0" + f.read_bytes())
    obj = cache / f"{cfile.stem}-{key.hexdigest()[:16]}.o"
    if not obj.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        _run_cc([cc, *[f for f in flags if f != "-shared"], "-c", "-I", str(cfile.parent), str(cfile),
                 "-o", str(tmp)], cfile.name)
        os.replace(tmp, obj)   # atomic: concurrent runs never see half an object
    return str(obj)
