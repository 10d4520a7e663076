"""What the PlatformIO extra-script and the SCons tool share.

* :class:`ModelSpec` - one declared model and its options;
* :func:`compile_cached` - content-addressed compile: re-runs the backend only
  when the model bytes, options, device profile, backend or its version change,
  or when the files of the entry no longer match the hashes recorded with it;
  safe for concurrent builds sharing one cache (a lock per entry, entries
  published complete by renames, see :func:`replace_dir`);
* :func:`closest` - the valid option a misspelt one was meant to be;
* :func:`storage_error` - an unwritable folder or a full disk as one line;
* :func:`summary_lines` - the build-log summary;
* :func:`gate_firmware` - the post-link flash/RAM gate;
* :func:`test_vector_header` - embeds a test input file as a C array.

No SCons or PlatformIO imports here: front ends translate these results into
their own actions and errors. A no-change build only needs the cache check, so
the heavy modules (numpy, the importers, the compilers, pyelftools) are
imported inside the functions that need them: a no-change `pio run` stays fast.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import os
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from .. import __version__
from ..device import DeviceProfile
from ..digest import sha256_file
from ..errors import ModelError, TinyMLError

if TYPE_CHECKING:
    import numpy as np
    from ..memory import GateResult

COMPILER_GROUP = "platformio_tinyml.compilers"

# First line: the cache key; then one "sha256  name" line per file of the entry.
KEY_FILE = ".tinyml-key"

try:
    import fcntl
except ImportError:   # Windows: no lock; concurrent builds must not share a cache there
    fcntl = None


class StorageError(TinyMLError):
    """A file could not be written: a read-only or unwritable folder, a full disk."""


# The OSErrors :func:`storage_error` turns into a line; others are bugs and keep their traceback.
STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def storage_error(exc: OSError, folder: Path | str, hint: str) -> StorageError:
    """``exc`` (raised while writing into ``folder``) as one line naming ``folder``
    (or the file, when outside it); ``hint`` says how to choose another folder."""
    where = str(folder)
    if exc.filename and not str(exc.filename).startswith(where):
        where = str(exc.filename)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError("no space left on the device", where=where, hint=f"Free disk space there, or {hint}")
    return StorageError(f"cannot write here ({exc.strerror or exc})", where=where,
                        hint=f"Make the folder writable, or {hint}")


def closest(name: str, known) -> str | None:
    """The entry of ``known`` that ``name`` is most likely a typo of, or None.

    >>> closest("modle", ["model", "name", "backend"])
    'model'
    >>> closest("colour", ["model", "name"]) is None
    True
    """
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    name: str
    backend: str = "auto"
    calibration: Path | None = None
    options: tuple[tuple[str, str], ...] = ()
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()   # custom_tinyml_input_shape
    input_values: tuple[tuple[str, tuple[float, ...]], ...] = ()  # custom_tinyml_input_value

    @classmethod
    def make(cls, path: str | Path, name: str | None = None, backend: str = "auto",
             calibration: str | Path | None = None, options: dict[str, str] | None = None,
             input_shapes: dict[str, tuple[int, ...]] | None = None,
             input_values: dict[str, tuple[float, ...]] | None = None) -> "ModelSpec":
        from ..naming import default_name
        p = Path(path)
        return cls(p, name or default_name(p), backend or "auto",
                   Path(calibration) if calibration else None, tuple(sorted((options or {}).items())),
                   tuple(sorted((input_shapes or {}).items())), tuple(sorted((input_values or {}).items())))


SOURCE_SUFFIXES = (".c", ".cc", ".cpp")    # what a build compiles of a backend's files (tflm's glue is C++)


@dataclass
class CompiledModel:
    spec: ModelSpec
    outdir: Path
    report: dict
    cached: bool
    sources: list[Path] = field(default_factory=list)
    service: str | None = None      # the service URL it came from (None: compiled or found here)
    service_cached: bool = False    # the service had it already

    @property
    def header(self) -> Path:
        return self.outdir / f"{self.spec.name}.h"


def _backend_versions(memo: Path | None = None) -> dict[str, str]:
    """Each registered backend's version string (``Compiler.version``, e.g. the
    underlying tool's version), the documented cache-key input of the plugin
    interface.

    Discovering the backends costs a fraction of a second, so the
    answer is memoized in ``memo`` keyed by the modification times of the
    ``sys.path`` folders: installing, upgrading or removing a package changes
    its site-packages folder, which invalidates the memo.
    """
    import sys
    stamp = {}
    for entry in sys.path:
        try:
            stamp[entry] = os.stat(entry or ".").st_mtime_ns
        except OSError:
            continue
    if memo is not None and memo.is_file():
        try:
            saved = json.loads(memo.read_text())
            if saved.get("stamp") == stamp:
                return saved["versions"]
        except (ValueError, KeyError):
            pass
    from ..compilers.registry import discover   # only after an install: loads the descriptors
    reg = discover()
    out = {name: f"{getattr(c, 'version', '?')}" for name, c in reg.compilers.items()}
    out.update({name: f"broken: {why}" for name, why in reg.problems.items()})
    versions = dict(sorted(out.items()))
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(memo, json.dumps({"stamp": stamp, "versions": versions}))
        except OSError:
            pass
    return versions


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` by renaming a complete temporary file over it (concurrent readers
    see the old or the new text, never a partial one)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _runtime_digest() -> str:
    """The cgen C runtime's bytes: kernels changing without a version bump still invalidate."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1] / "compilers" / "cgen" / "runtime"
    for entry in sorted(root.glob("*.[ch]")):   # a path, not importlib: importing cgen pulls numpy
        h.update(entry.name.encode())
        h.update(entry.read_bytes())
    return h.hexdigest()


def cache_key(spec: ModelSpec, device: DeviceProfile, memo_dir: Path | None = None) -> str:
    """Hash of everything that changes the generated code (``memo_dir``: where
    to memoize the installed backends, see :func:`_backend_versions`)."""
    if not spec.path.exists():
        raise ModelError("model file not found", where=str(spec.path),
                         hint="Fix custom_tinyml_model (paths are relative to the project directory)")
    calibration = sha256_file(spec.calibration) if spec.calibration and spec.calibration.exists() else ""
    return content_key(sha256_file(spec.path), spec.path.name, spec.name, spec.backend, spec.options, calibration,
                       device,
                       _backend_versions(memo_dir / ".backends.json" if memo_dir else None), _runtime_digest(),
                       input_shapes=spec.input_shapes, input_values=spec.input_values)


def content_key(model_sha256: str, model_file: str, name: str, backend: str, options: tuple[tuple[str, str], ...],
                calibration_sha256: str, device: DeviceProfile, backend_versions: dict[str, str],
                runtime_digest: str, input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = (),
                input_values: tuple[tuple[str, tuple[float, ...]], ...] = ()) -> str:
    """:func:`cache_key` from its parts: the service computes it from a client's digests
    with its own backends, without the files (``calibration_sha256`` "" for none).
    ``model_file`` is the model's file (or SavedModel folder) name: generated comments quote it."""
    h = hashlib.sha256()
    for part in (__version__, model_sha256, model_file, name, backend, repr(tuple(options)),
                 repr(tuple(input_shapes)) if input_shapes else "",
                 *((repr(tuple(input_values)),) if input_values else ()), calibration_sha256,
                 device.cache_key(), json.dumps(backend_versions), runtime_digest):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def compile_cached(spec: ModelSpec, device: DeviceProfile, outdir: Path,
                   on_compile=None, on_damaged=None) -> CompiledModel:
    """Compile ``spec`` for ``device`` into ``outdir`` unless an identical result is there.

    ``on_compile(message)`` is called before a real (not cached) compile, so a
    front end can show the step it is waiting for; ``on_damaged(message)``
    (default ``on_compile``) once before it when the entry was there but a file
    differs from the hash recorded with it or is missing.

    Several processes may share the parent folder (SCons' ``TINYML_CACHE_DIR``,
    ``-j`` builds): the compile of one entry runs under a lock on
    ``.<outdir name>.lock`` beside it, into a fresh folder that replaces
    ``outdir`` only when complete. A reader that finds a valid entry needs no lock.
    """
    outdir = Path(outdir)
    key = cache_key(spec, device, outdir.parent)
    found = cached_entry(spec, outdir, key)
    if found is not None:
        return found
    with entry_lock(outdir):
        report, damage = _check_entry(outdir, key)   # another process may have built it meanwhile
        if report is not None:
            return _cached(spec, outdir, report)
        on_damaged = on_damaged or on_compile
        if damage and on_damaged is not None:
            on_damaged(f"TinyML: cache entry {outdir} is damaged ({damage}); rebuilding it")
        from ..pipeline import compile_model
        if on_compile is not None:
            on_compile(f"TinyML: compiling {spec.path.name} for {device.board} (backend {spec.backend}) ...")
        fresh = fresh_dir_beside(outdir)
        try:
            outcome = compile_model(spec.path, device, fresh, name=spec.name, backend=spec.backend,
                                    calibration=spec.calibration, backend_options=dict(spec.options),
                                    input_shapes=dict(spec.input_shapes), input_values=dict(spec.input_values))
            publish_entry(fresh, outdir, key, [f.path.name for f in outcome.result.files])
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    report = json.loads((outdir / "report.json").read_text())
    sources = [outdir / f.path.name for f in outcome.result.files if f.path.suffix in SOURCE_SUFFIXES]
    return CompiledModel(spec, outdir, report, False, sources)


def cached_entry(spec: ModelSpec, outdir: Path, key: str) -> CompiledModel | None:
    """The valid entry of ``key`` in ``outdir`` (no lock needed to read one), or None."""
    report, _ = _check_entry(outdir, key)
    return None if report is None else _cached(spec, outdir, report)


def _cached(spec: ModelSpec, outdir: Path, report: dict) -> CompiledModel:
    files = [outdir / f["path"] for f in report["files"]]
    return CompiledModel(spec, outdir, report, True, [f for f in files if f.suffix in SOURCE_SUFFIXES])


def _check_entry(outdir: Path, key: str) -> tuple[dict | None, str | None]:
    """``(report, None)`` when ``outdir`` holds the complete entry of ``key``;
    ``(None, why)`` when it holds that entry but a file differs from its recorded
    hash; ``(None, None)`` when it holds no entry or another key's."""
    try:
        lines = (outdir / KEY_FILE).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None, None
    if not lines or lines[0].strip() != key:
        return None, None
    recorded = {}
    for line in lines[1:]:
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    if "report.json" not in recorded:   # written before hashes were recorded: just stale
        return None, None
    for name in ["report.json"] + sorted(n for n in recorded if n != "report.json"):
        path = outdir / name
        if not path.is_file():
            return None, f"{name} is missing"
        if sha256_file(path) != recorded[name]:
            return None, f"{name} differs from the compiled one"
    report = json.loads((outdir / "report.json").read_text())
    if {f["path"] for f in report["files"]} | {"report.json"} != set(recorded):
        return None, "the recorded files do not match report.json"
    return report, None


@contextlib.contextmanager
def entry_lock(outdir: Path):
    """Hold an exclusive lock on ``outdir``'s entry (a lock file beside it, kept)."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    with open(outdir.parent / f".{outdir.name}.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def publish_entry(fresh: Path, outdir: Path, key: str, names: list[str]) -> None:
    """Record ``key`` and the hashes of ``names`` + report.json in ``fresh``, then swap it in
    as ``outdir`` (under the entry's lock: see :func:`compile_cached`)."""
    names = [*names, "report.json"]
    hashes = "".join(f"{sha256_file(fresh / n)}  {n}\n" for n in names)
    (fresh / KEY_FILE).write_text(f"{key}\n{hashes}")
    replace_dir(fresh, outdir)


def fresh_dir_beside(dest: Path) -> Path:
    """A new empty folder next to ``dest`` (same file system, so it can be renamed onto it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))


def replace_dir(new: Path, dest: Path) -> None:
    """Put the complete folder ``new`` at ``dest`` by renames and delete what was there.

    ``dest`` is first renamed aside, so for an instant it does not exist; it
    never holds a mix of old and new files. Callers that share ``dest`` with
    other processes hold :func:`entry_lock` around this.
    """
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.old")
    if dest.exists():
        os.rename(dest, old)
    try:
        os.rename(new, dest)
    except OSError:
        if old.exists():
            os.rename(old, dest)   # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def summary_lines(m: CompiledModel) -> list[str]:
    r = m.report
    state = "up to date" if m.cached else "compiled"
    if m.service:
        state = f"{'from the cache of' if m.service_cached else 'compiled by'} {m.service}"
    return [
        f"TinyML: {m.spec.path.name} -> {r['name']}.h [{state}]",
        f"TinyML:   backend {r['backend']} {r['backend_version']} ({r['chosen_because']})",
        f"TinyML:   arena {r['arena_bytes']:,} B, weights {r['weight_bytes']:,} B, "
        f"estimated flash {r['estimated_flash_bytes']:,} B, RAM {r['estimated_ram_bytes']:,} B",
    ] + [f"TinyML:   {line}" for line in r.get("diagnostics", ())]


def gate_firmware(elf: Path, models: list[CompiledModel], device: DeviceProfile, *, where: str,
                  flash_max: int | None = None, ram_max: int | None = None) -> tuple[GateResult, list[str]]:
    """Flash/RAM gate of a linked firmware; also returns the usage lines for the log."""
    from ..memory import analyze_elf, check_budget
    prefixes = [m.spec.name + "_" for m in models] + ["tml_"]
    files = [s.name for m in models for s in m.sources]
    usage = analyze_elf(elf, prefixes, files)
    flash_max = device.flash_bytes if flash_max is None else flash_max
    ram_max = device.ram_bytes if ram_max is None else ram_max
    backend = ",".join(sorted({m.report["backend"] for m in models}))
    res = check_budget(usage, flash_max, ram_max, where=where, board=device.board, backend=backend)
    res.figures = {"flash_bytes": usage.flash_bytes, "ram_bytes": usage.ram_bytes,
                   "model_flash_bytes": usage.model_flash_bytes, "model_ram_bytes": usage.model_ram_bytes,
                   "flash_max_bytes": flash_max, "ram_max_bytes": ram_max}
    lines = [f"TinyML: firmware flash {usage.flash_bytes:,} B (model {usage.model_flash_bytes:,} B) of "
             f"{flash_max:,} B; RAM {usage.ram_bytes:,} B (model {usage.model_ram_bytes:,} B) of {ram_max:,} B"]
    return res, lines


def input_spec(header: Path, name: str) -> tuple[int, str]:
    """(bytes, numpy dtype name) of the first input, read from the generated
    header's common-API macros: the same for every backend."""
    import re
    text = Path(header).read_text()
    N = name.upper()
    nbytes = re.search(rf"#define {N}_INPUT0_BYTES (\d+)", text)
    dtype = re.search(rf"#define {N}_INPUT0_DTYPE_(\w+) 1", text)
    if not nbytes or not dtype:
        raise TinyMLError("the generated header has no input description", where=str(header),
                          hint="This is a bug in the backend; please report it")
    return int(nbytes.group(1)), dtype.group(1).lower()


def load_test_vector(path: Path, nbytes: int, dtype: "np.dtype") -> "np.ndarray":
    """A test input from a .npy array (cast to the model's input dtype) or raw bytes."""
    import numpy as np
    path = Path(path)
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            arr = arr.astype(dtype, copy=False) if arr.dtype != dtype else arr
        else:
            arr = np.frombuffer(path.read_bytes(), dtype=dtype)
    except (OSError, ValueError) as e:
        raise TinyMLError(f"cannot read test input ({e})", where=str(path),
                          hint="Give a .npy array or a raw file of the model's input bytes") from None
    if arr.nbytes != nbytes:
        raise TinyMLError(f"test input has {arr.nbytes} bytes, the model input needs {nbytes}", where=str(path),
                          hint="Check custom_tinyml_test_input")
    return arr.reshape(-1)


def test_vector_header(name: str, data: "np.ndarray") -> str:
    """C header defining ``<name>_test_input`` (in flash) from ``data``."""
    from ..compilers.cgen.emit import c_literal
    ctype = {"int8": "int8_t", "uint8": "uint8_t", "float32": "float", "int16": "int16_t"}[data.dtype.name]
    return "\n".join([
        f"/* {name}_test_input.h - test vector embedded by platformio-tinyml (custom_tinyml_test_input). */",
        f"#ifndef {name.upper()}_TEST_INPUT_H", f"#define {name.upper()}_TEST_INPUT_H",
        "#include <stdint.h>",
        f"static const {ctype} {name}_test_input[{data.size}] = {c_literal(data, ctype)};",
        "#endif", ""])


__all__ = ["ModelSpec", "CompiledModel", "STORAGE_ERRNOS", "StorageError", "cache_key", "cached_entry", "closest",
           "compile_cached", "content_key",
           "fresh_dir_beside", "gate_firmware", "load_test_vector", "replace_dir", "storage_error",
           "summary_lines", "test_vector_header", "TinyMLError"]
