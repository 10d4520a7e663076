"""Build generated C for the host as a shared library and call it via ctypes.

The same strict flags as for targets (-Wall -Wextra -Werror, C99), so a
warning in generated code fails verification too.
"""

from __future__ import annotations

import ctypes
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


def build_host(gen: Generated, graph: Graph, workdir: Path, cc: str = "gcc",
               extra_cflags: list[str] | None = None) -> HostModel:
    workdir = Path(workdir)
    src = workdir / "src"
    if src.exists():
        shutil.rmtree(src)
    write_output(gen, src)
    cfiles = sorted(str(p) for p in src.glob("*.c"))
    so = workdir / f"lib{gen.name}.so"
    cmd = [cc, *HOST_CFLAGS, *(extra_cflags or []), "-I", str(src), *cfiles, "-o", str(so), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"host compile of generated code failed:\n{proc.stderr.strip()}",
                           where=gen.name, hint="This is a bug in the code generator; please report it")
    lib = ctypes.CDLL(str(so))
    return HostModel(lib=lib, name=gen.name, graph=graph, so_path=so)
