"""The content-addressed compile cache shared by the front ends
(``integrations.core.compile_cached``), driven by real processes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from platformio_tinyml.device import load_profile
from platformio_tinyml.integrations import core
from platformio_tinyml.pipeline import compile_model

REPO = Path(__file__).resolve().parents[1]
KWS = REPO / "example_projects" / "kws-cortex-m4" / "kws_ref_model.tflite"

# One build: wait for the start signal (imports done), compile the model into the shared
# entry, then use the entry for 2 s as a build does (SCons copies it, reads the header),
# checking it does not change under it; print the bytes' digest.
WORKER = """
import hashlib, sys, time
from pathlib import Path
from platformio_tinyml.device import load_profile
from platformio_tinyml.integrations import core
from platformio_tinyml.compilers.registry import discover
import platformio_tinyml.pipeline
discover()
entry, ready, go, delay = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
spec, device = core.ModelSpec.make(sys.argv[5], name="kws"), load_profile("mps2-an386")
ready.touch()
while not go.exists():
    time.sleep(0.005)
time.sleep(delay)
model = core.compile_cached(spec, device, entry)
names = sorted(f["path"] for f in model.report["files"])
first = [(entry / n).read_bytes() for n in names]
end = time.time() + 2
while time.time() < end:
    assert [(entry / n).read_bytes() for n in names] == first, "the entry changed while in use"
print(hashlib.sha256(b"".join(first)).hexdigest())
"""


def test_concurrent_compiles_share_one_entry(tmp_path):
    """Three builds of one model into one cache entry, started 0.5 s apart: one compiles
    under the entry's lock, the others wait and reuse it; none sees the entry change
    while it uses it, and all get the bytes of a compile on its own."""
    cache = tmp_path / "shared cache"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(cache / "entry"), str(tmp_path / f"ready{i}"),
                               str(go), str(0.5 * i), str(KWS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(3)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(3)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0], outs
    alone = compile_model(KWS, load_profile("mps2-an386"), tmp_path / "alone", name="kws")
    expected = hashlib.sha256(b"".join(f.path.read_bytes() for f in sorted(alone.result.files,
                                                                            key=lambda f: f.path.name))).hexdigest()
    assert [out.strip() for out, _ in outs] == [expected] * 3, outs
    assert sorted(p.name for p in cache.iterdir()) == [".backends.json", ".entry.lock", "entry"]


def test_entry_with_a_missing_file_is_rebuilt(tmp_path):
    spec, device = core.ModelSpec.make(KWS, name="kws"), load_profile("mps2-an386")
    first = core.compile_cached(spec, device, tmp_path / "kws")
    header = (tmp_path / "kws" / "kws.h").read_bytes()
    (tmp_path / "kws" / "kws.h").unlink()
    said = []

    again = core.compile_cached(spec, device, tmp_path / "kws", on_compile=said.append)

    assert not first.cached and not again.cached
    assert said[0] == f"TinyML: cache entry {tmp_path / 'kws'} is damaged (kws.h is missing); rebuilding it"
    assert said[1].startswith("TinyML: compiling kws_ref_model.tflite") and len(said) == 2
    assert (tmp_path / "kws" / "kws.h").read_bytes() == header
    assert core.compile_cached(spec, device, tmp_path / "kws", on_compile=said.append).cached and len(said) == 2
