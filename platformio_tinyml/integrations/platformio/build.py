"""PlatformIO front end: a model declared in ``platformio.ini`` becomes build input.

A project enables it with a PRE extra script that calls :func:`attach`::

    Import("env")
    from platformio_tinyml.integrations.platformio.build import attach
    attach(env)

While PlatformIO reads the build scripts, :func:`attach`

* reads the ``custom_tinyml_*`` options of the environment (:func:`read_options`);
* makes the :class:`~platformio_tinyml.device.DeviceProfile` from the board
  manifest PlatformIO loaded, with the user's ``board_*`` overrides applied
  (:func:`device_profile`);
* compiles each model with :func:`~platformio_tinyml.integrations.core.compile_cached`
  into ``$BUILD_DIR/tinyml/<name>/`` (a no-op when nothing changed, so the files
  keep their mtimes and SCons recompiles nothing), embeds the optional test input
  as ``<name>_test_input.h`` and prints the summary lines;
* adds the generated ``.c`` files to the program (``env.BuildSources``, so the
  project's flags apply) and the folder to ``CPPPATH``;
* gates the linked ELF on the board's flash and RAM (a post action on ``$PROGPATH``);
* with ``custom_tinyml_executor`` (kernel names or ``all``) and
  ``custom_tinyml_module_pubkey``, adds the inference-module loader and
  executor (``tml_module.h``) with those kernels, so the firmware installs
  models as signed modules without reflashing;
* adds the custom targets ``tinyml-report``, ``tinyml-verify`` and
  ``tinyml-module`` (each model packed and signed as an inference module,
  ``custom_tinyml_module_key`` / ``_version`` / ``_kind``);
* with the executor, the target ``tinyml-image``: the factory image (firmware +
  the signed module in slot A, ``custom_tinyml_image_module`` or the one model
  packed) at ``custom_tinyml_slots`` / ``_slot_size``, and its JSON layout.

Every user mistake ends as one ``Error: [env:NAME] ...`` line and a failed
build; this module is the edge where :class:`~platformio_tinyml.errors.TinyMLError`
is caught.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ...device import DeviceProfile, profile_from_manifest
from ...errors import TinyMLError
from ...report_html import HTML_REPORT_FILE, render_pio_report
from .. import core

OPTION_PREFIX = "custom_tinyml_"
# Every custom_tinyml_<name> this front end reads (docs/platformio.md lists them).
OPTIONS = ("model", "name", "backend", "calibration", "options", "npu", "test_input", "optimize",
           "verify_samples", "executor", "module_pubkey", "module_key", "module_version", "module_kind",
           "input_shape", "input_value", "service", "service_required", "image_module", "slots", "slot_size")
IMAGE_FILE = "tinyml-image.bin"
REPORT_FILE = "tinyml-report.json"
VERIFY_FILE = "tinyml-verify.json"       # the last tinyml-verify results, in tinyml-report.json's "verify"


@dataclass(frozen=True)
class DeclaredModel:
    """One model of the environment and the test input to embed with it (or None)."""

    spec: core.ModelSpec
    test_input: Path | None = None


def split_list(text: str | None) -> list[str]:
    """Items of a multi-value option: one per line or comma-separated, blanks dropped.

    >>> split_list("a.tflite,\\n  b.tflite ")
    ['a.tflite', 'b.tflite']
    """
    return [item.strip() for item in re.split(r"[\n,]", text or "") if item.strip()]


def parse_options(text: str | None, where: str) -> dict[str, str]:
    """``custom_tinyml_options`` (``key = value`` per line or comma) as a dict."""
    result = {}
    for item in split_list(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TinyMLError(f"'{item}' is not key=value", where=where,
                              hint="Write one key = value per line")
        result[key.strip()] = value.strip()
    return result


def read_options(get, project_dir: Path, env_name: str) -> list[DeclaredModel]:
    """The models declared in ``[env:env_name]``.

    ``get(name)`` returns the raw text of ``custom_tinyml_<name>`` or None.
    Relative paths are taken from ``project_dir``. ``name`` and
    ``test_input`` may list one value per model, in the order of ``model``;
    two models with one name are refused (the second would replace the first).
    """
    where = f"[env:{env_name}] {OPTION_PREFIX}"
    models = split_list(get("model"))
    names = split_list(get("name"))
    tests = split_list(get("test_input"))
    for option, values in (("name", names), ("test_input", tests)):
        if values and len(values) != len(models):
            raise TinyMLError(f"{len(values)} value(s) given for {len(models)} model(s)",
                              where=where + option,
                              hint=f"Give one {OPTION_PREFIX}{option} per custom_tinyml_model, same order")
    calibration = get("calibration")
    options = parse_options(get("options"), where + "options")
    from ...model.loader import parse_input_shapes, parse_input_values   # NAME=1,49,10,1 per line
    shapes = parse_input_shapes([t for t in (get("input_shape") or "").splitlines() if t.strip()],
                                where + "input_shape")
    values = parse_input_values([t for t in (get("input_value") or "").splitlines() if t.strip()],
                                where + "input_value")
    declared = []
    for i, model in enumerate(models):
        spec = core.ModelSpec.make(project_dir / model, name=names[i] if names else None,
                                   backend=(get("backend") or "auto").strip(),
                                   calibration=project_dir / calibration.strip() if calibration else None,
                                   options=options, input_shapes=shapes, input_values=values)
        declared.append(DeclaredModel(spec, project_dir / tests[i] if tests else None))
    first: dict[str, str] = {}
    for model, item in zip(models, declared):
        if item.spec.name in first:
            raise TinyMLError(f"two models are named '{item.spec.name}': {first[item.spec.name]} and {model}",
                              where=where + "name",
                              hint=f"Give each model its own name, one {OPTION_PREFIX}name per model, same order")
        first[item.spec.name] = model
    return declared


def unknown_options(names: list[str], env_name: str) -> list[str]:
    """Warning lines for the ``custom_tinyml_*`` options among ``names`` that this
    front end does not read, each with the closest valid name.

    A misspelt ``custom_tinyml_model`` (when the right one is absent) raises
    instead: nothing would be built, and the error about it names the right option.
    """
    lines = []
    for name in names:
        short = name[len(OPTION_PREFIX):]
        if not name.startswith(OPTION_PREFIX) or short in OPTIONS:
            continue
        guess = core.closest(short, OPTIONS)
        if guess == "model" and OPTION_PREFIX + "model" not in names:
            raise TinyMLError("unknown option", where=name, hint=f"Did you mean {OPTION_PREFIX}model?")
        hint = f"did you mean {OPTION_PREFIX}{guess}?" if guess else "valid: " + ", ".join(OPTIONS)
        lines.append(f"Warning: [env:{env_name}] unknown option {name} ignored; {hint}")
    return lines


def device_profile(env) -> DeviceProfile:
    """The board of ``env`` as PlatformIO loaded it (``board_*`` overrides applied)."""
    board = env.BoardConfig()
    overrides = {opt[len("board_"):]: value for opt, value in env.GetProjectOptions()
                 if opt.startswith("board_")}
    npu = env.GetProjectOption(OPTION_PREFIX + "npu", "")
    if npu:
        overrides["build.tinyml_npu"] = npu.strip()
    return profile_from_manifest(board.manifest, board.id, overrides, env.PioPlatform().name,
                                 source=board.manifest_path)


def embed_test_input(model: core.CompiledModel, test_input: Path) -> Path:
    """Write ``<name>_test_input.h`` beside the model unless the same one is there.

    A key (model build + test input bytes) is kept in ``.<name>_test_input.key``:
    an unchanged input keeps the header's mtime, and a header whose text did
    not change is not rewritten, so nothing that includes it recompiles.
    """
    header = model.outdir / f"{model.spec.name}_test_input.h"
    key_file = model.outdir / f".{model.spec.name}_test_input.key"
    if not test_input.is_file():
        raise TinyMLError("test input file not found", where=str(test_input),
                          hint="Fix custom_tinyml_test_input (paths are relative to the project directory)")
    model_key = (model.outdir / core.KEY_FILE).read_text().strip()
    key = hashlib.sha256(model_key.encode() + test_input.read_bytes()).hexdigest()
    if header.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        return header
    nbytes, dtype = core.input_spec(model.header, model.spec.name)
    data = core.load_test_vector(test_input, nbytes, dtype)
    text = core.test_vector_header(model.spec.name, data)
    if not header.is_file() or header.read_text() != text:
        header.write_text(text)
    key_file.write_text(key + "\n")
    return header


def compile_models(declared: list[DeclaredModel], device: DeviceProfile, build_dir: Path,
                   service: str | None = None, required: bool = False) -> list[core.CompiledModel]:
    """Compile (or reuse) every declared model into ``build_dir/tinyml/<name>``; with
    ``service`` (``custom_tinyml_service``) through that service when not up to date here."""
    from ..remote import compile_for_build
    compiled = []
    for item in declared:
        try:
            model = compile_for_build(item.spec, device, build_dir / "tinyml" / item.spec.name, service, required,
                                      on_compile=_step, on_warning=_step)
        except TinyMLError as exc:
            if exc.where is None:
                exc.where = f"model '{item.spec.path.name}'"
            raise
        if item.test_input is not None:
            embed_test_input(model, item.test_input)
        compiled.append(model)
    return compiled


def _step(message: str) -> None:
    """One line per long step, flushed at once (a terminal sees it before the wait)."""
    print(message, flush=True)


def report_data(env_name: str, device: DeviceProfile, models: list[core.CompiledModel],
                elf: Path | None) -> dict:
    """What ``tinyml-report`` writes: the board, each model's report, the firmware gate and
    the last ``tinyml-verify`` results (schema: docs/report.schema.json)."""
    from ...pipeline import REPORT_SCHEMA_VERSION
    data = {"schema_version": REPORT_SCHEMA_VERSION, "env": env_name, "board": device.to_dict(),
            "models": [dict(m.report, generated_dir=str(m.outdir)) for m in models],
            "firmware": None, "verify": None}
    if elf is not None and elf.is_file():
        gate, lines = core.gate_firmware(elf, models, device, where=f"[env:{env_name}]")
        data["firmware"] = {"elf": str(elf), **gate.figures, "summary": lines, "ok": gate.ok,
                            "error": gate.error, "warnings": gate.warnings}
        verified = elf.parent / VERIFY_FILE      # written by tinyml-verify, when it ran
        if verified.is_file():
            data["verify"] = json.loads(verified.read_text())
    return data


def report_table(data: dict) -> list[str]:
    """The ``tinyml-report`` table, one row per model."""
    head = f"{'model':<20} {'backend':<10} {'arena B':>9} {'weights B':>10} {'est. flash B':>13} {'est. RAM B':>11}"
    rows = [head, "-" * len(head)]
    for r in data["models"]:
        rows.append(f"{r['name'][:20]:<20} {r['backend'][:10]:<10} {r['arena_bytes']:>9,} "
                    f"{r['weight_bytes']:>10,} {r['estimated_flash_bytes']:>13,} {r['estimated_ram_bytes']:>11,}")
    firmware = data.get("firmware")
    rows.extend(firmware["summary"] if firmware else ["TinyML: firmware not built yet (run `pio run` first)"])
    return rows


# The header that shows a backend's library reached the build (both need TensorFlow Lite Micro).
LIBRARY_HEADERS = {"tflm": "tensorflow/lite/micro/micro_interpreter.h",
                   "vela": "tensorflow/lite/micro/micro_interpreter.h"}


def _library_dirs_with(env, header: str) -> list[Path]:
    """Folders among the project's library folders (``lib_dir``, ``lib_extra_dirs``, the
    installed ``lib_deps``) holding a library with ``header`` (in it or its ``src/``)."""
    roots = [env.subst("$PROJECT_LIB_DIR"), env.subst("$PROJECT_LIBDEPS_DIR/$PIOENV"),
             *env.GetProjectOption("lib_extra_dirs", [])]
    hits = []
    for root in roots:
        root = Path(env.subst(str(root))).expanduser()
        if not root.is_dir():
            continue
        for lib in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            if (lib / header).is_file() or (lib / "src" / header).is_file():
                hits.append(lib)
    return hits


def _library_name(lib: Path) -> str:
    """The name PlatformIO's library finder knows the library folder ``lib`` by."""
    props = lib / "library.properties"
    if props.is_file():
        for line in props.read_text(errors="replace").splitlines():
            if line.startswith("name="):
                return line[5:].strip()
    if (lib / "library.json").is_file():
        try:
            return str(json.loads((lib / "library.json").read_text())["name"])
        except (ValueError, KeyError, OSError):
            pass
    return lib.name


def _missing_library(model, header: str, deps: list[str]) -> TinyMLError:
    return TinyMLError(
        f"model '{model.spec.name}' (backend {model.report.get('backend')}) needs the TensorFlow Lite Micro "
        f"library, which this project does not have ({header} is in no library folder)",
        hint=f"Online, add lib_deps = {', '.join(deps)}; offline, put a copy of the library (e.g. the "
             "TFLite Micro Arduino library) in a folder and set lib_extra_dirs = /path/to/that/folder")


class _Front:
    """The state of one ``attach`` call, used by the actions it registers."""

    def __init__(self, env):
        self.env = env
        self.name = env["PIOENV"]
        self.device: DeviceProfile | None = None
        self.models: list[core.CompiledModel] = []
        self.speed = False
        self.executor = None         # (KernelSet, public key path) with custom_tinyml_executor

    def error_line(self, exc: TinyMLError) -> str:
        text, env = exc.format(), f"[env:{self.name}] "
        return "Error: " + (text if text.startswith(env) else env + text)   # some `where`s name the env

    def fail(self, line: str) -> None:
        """Print one error line and stop the build (read time)."""
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.env.Exit(1)

    def prepare(self) -> None:
        env = self.env
        project_dir = Path(env.subst("$PROJECT_DIR"))
        get = lambda opt: env.GetProjectOption(OPTION_PREFIX + opt, None)  # noqa: E731
        for line in unknown_options([name for name, _ in env.GetProjectOptions()], self.name):
            print(line)
        declared = read_options(get, project_dir, self.name)
        executor = split_list(get("executor"))
        if not declared and not executor:
            print(f"TinyML: [env:{self.name}] no custom_tinyml_model set, nothing to do")
            return
        self.device = device_profile(env)
        mode = optimize_mode(get("optimize"), self.name)
        self.speed = mode == "speed"
        if mode == "size":
            env.Append(CPPDEFINES=["TML_OPTIMIZE_SIZE"])   # runtime/tml_speed.h: no -O2 kernel files
        seen: set[str] = set()
        if executor:
            seen = self._add_executor(executor, (get("module_pubkey") or "").strip(), project_dir)
        service = (get("service") or "").strip() or None
        required = yes_no(get("service_required"), f"[env:{self.name}] {OPTION_PREFIX}service_required")
        self.models = compile_models(declared, self.device, Path(env.subst("$BUILD_DIR")), service, required)
        for model in self.models:
            for line in core.summary_lines(model):
                print(line)
        self._add_sources(seen)

    def _add_executor(self, kernels: list[str], pubkey: str, project_dir: Path) -> set[str]:
        """``custom_tinyml_executor``: the module loader + executor with these kernels
        (or ``all``), verifying with ``custom_tinyml_module_pubkey``; returns the file names."""
        from ...module.firmware import KernelSet, write_executor
        from ...module.pack import abi_for_device
        where = f"[env:{self.name}] {OPTION_PREFIX}"
        if not pubkey:
            raise TinyMLError("the module executor needs the public key modules are signed with",
                              where=where + "module_pubkey",
                              hint="Set custom_tinyml_module_pubkey = keys/release.pub (tinyml module keygen)")
        abi_for_device(self.device, where=where + "executor")
        kset = KernelSet.parse(kernels)
        self.executor = (kset, project_dir / pubkey)
        outdir = Path(self.env.subst("$BUILD_DIR")) / "tinyml" / "_executor"
        cfiles = write_executor(outdir, kset, project_dir / pubkey)
        print(f"TinyML: module executor ({len(kset.names())} kernels) + loader -> {outdir}")
        self.env.Append(CPPPATH=[str(outdir)])
        names = sorted(str(c.relative_to(outdir)) for c in cfiles)
        self._build_sources("$BUILD_DIR/tinyml_obj/_executor", outdir, names)
        return {Path(n).name for n in names}

    def _build_sources(self, variant: str, src_dir: Path, names: list[str]) -> None:
        """Compile ``names`` (paths in ``src_dir``) into the program with the project's
        flags; with ``custom_tinyml_optimize = speed``, -O2 last (gcc takes the last -O)."""
        env = self.env
        src_filter = " ".join(["-<*>"] + [f"+<{n}>" for n in names])
        if not self.speed:
            env.BuildSources(variant, str(src_dir), src_filter)
            return
        # Through _CCCOMCOM: it comes after $CCFLAGS on the command line and is
        # expanded at build time, so flags the platform adds after this PRE script
        # still apply.
        from SCons.Node import FS
        from SCons.Script import DefaultEnvironment
        cccom = env.get("_CCCOMCOM", "$CPPFLAGS $_CPPDEFFLAGS $_CPPINCFLAGS")
        nodes = env.CollectBuildFiles(variant, str(src_dir), src_filter)
        DefaultEnvironment().Append(PIOBUILDFILES=[
            env.Object(n, _CCCOMCOM=cccom + " -O2") if isinstance(n, FS.File) else n for n in nodes])

    def _add_sources(self, seen: set[str]) -> None:
        """Generated folders on CPPPATH; each source compiled once (models and the executor
        share runtime files: ``seen`` holds the names already added)."""
        for model in self.models:
            self.env.Append(CPPPATH=[str(model.outdir)])
            names = sorted(s.name for s in model.sources if s.name not in seen)
            seen.update(names)
            if not names:
                continue
            variant = f"$BUILD_DIR/tinyml_obj/{model.spec.name}"
            if model.report.get("lib_deps"):
                self._add_library_sources(model, variant, names)
            else:
                self._build_sources(variant, model.outdir, names)

    def _add_library_sources(self, model: core.CompiledModel, variant: str, names: list[str]) -> None:
        """Sources that need a library (tflm and vela glue: TensorFlow Lite Micro), found in
        the project's library folders (``lib/``, ``lib_extra_dirs``) or installed by PlatformIO
        from the environment's ``lib_deps``. Neither: one line saying how to provide it, before
        anything compiles. A local copy is named as a dependency (so the library finder builds
        and links it) and its include folders are added for the generated sources."""
        from SCons.Node import FS
        from SCons.Script import DefaultEnvironment
        env = self.env
        deps = list(model.report["lib_deps"])
        header = LIBRARY_HEADERS.get(model.report.get("backend"))
        current = [str(d) for d in env.GetProjectOption("lib_deps", [])]
        local = _library_dirs_with(env, header) if header else []
        if header and not local and not any(d in current for d in deps):
            self.fail(self.error_line(_missing_library(model, header, deps)))
        # The library finder adds a library to the build when the project's own sources
        # include it; ours are generated, so name the local copy as a dependency.
        if local:
            env.Append(CPPPATH=[str(d) for d in (local[0], local[0] / "src") if d.is_dir()])
            if _library_name(local[0]) not in current:
                env.GetProjectConfig().set(f"env:{self.name}", "lib_deps", current + [_library_name(local[0])])
        src_filter = " ".join(["-<*>"] + [f"+<{n}>" for n in names])
        cccom = env.get("_CCCOMCOM", "$CPPFLAGS $_CPPDEFFLAGS $_CPPINCFLAGS")
        objs = [env.Object(n, _CCCOMCOM=cccom + " -O2") if self.speed else env.Object(n)
                for n in env.CollectBuildFiles(variant, str(model.outdir), src_filter) if isinstance(n, FS.File)]
        DefaultEnvironment().Append(PIOBUILDFILES=objs)

    def gate(self, target, source, env) -> int:
        """Post-link action: flash/RAM gate of the firmware."""
        board = env.BoardConfig()
        try:
            result, lines = core.gate_firmware(
                Path(target[0].get_abspath()), self.models, self.device, where=f"[env:{self.name}]",
                flash_max=_int_or_none(board.get("upload.maximum_size", None)),
                ram_max=_int_or_none(board.get("upload.maximum_ram_size", None)))
        except TinyMLError as exc:
            sys.stderr.write(self.error_line(exc) + "\n")
            return 1
        for line in lines + result.warnings:
            print(line)
        if not result.ok:
            sys.stderr.write(result.error + "\n")
            return 1
        return 0

    def report(self, target, source, env) -> int:
        elf = Path(env.subst("$PROGPATH"))
        data = report_data(self.name, self.device, self.models, elf)
        out = Path(env.subst("$BUILD_DIR")) / REPORT_FILE
        out.write_text(json.dumps(data, indent=2) + "\n")
        page = out.with_name(HTML_REPORT_FILE)
        page.write_text(render_pio_report(data), encoding="utf-8")
        for line in report_table(data):
            print(line)
        print(f"TinyML: wrote {out} and {page.name}")
        return 0

    def _pack(self, model: core.CompiledModel) -> tuple[bytes, str]:
        """``model`` packed and signed (``custom_tinyml_module_key`` / ``_version`` / ``_kind``)."""
        from ...module.pack import pack_module, parse_module_version
        env = self.env
        get = lambda opt: env.GetProjectOption(OPTION_PREFIX + opt, "").strip()  # noqa: E731
        key, version, kind = get("module_key"), get("module_version"), get("module_kind") or "graph"
        if not key:
            raise TinyMLError("no signing key", where=f"[env:{self.name}] {OPTION_PREFIX}module_key",
                              hint="Make one with `tinyml module keygen -o keys/release` and set "
                                   "custom_tinyml_module_key = keys/release.key")
        number = parse_module_version(version, where=f"[env:{self.name}] {OPTION_PREFIX}module_version")
        res = pack_module(model.spec.path, None, Path(env.subst("$PROJECT_DIR")) / key, number, kind,
                          device=self.device, calibration=model.spec.calibration)
        return res.data, (f"{len(res.data):,} B, {res.header.payload_kind.name}, version {version}")

    def module(self, target, source, env) -> int:
        """Pack and sign each model as an inference module: ``$BUILD_DIR/tinyml/<name>.tmm``."""
        try:
            for model in self.models:
                data, what = self._pack(model)
                out = Path(env.subst("$BUILD_DIR")) / "tinyml" / f"{model.spec.name}.tmm"
                out.write_bytes(data)
                print(f"TinyML: {model.spec.path.name} -> {out} ({what})")
        except TinyMLError as exc:
            sys.stderr.write(self.error_line(exc) + "\n")
            return 1
        return 0

    def image(self, target, source, env) -> int:
        """The factory image: firmware + signed module in slot A, and its JSON layout."""
        from ...module.image import parse_slots, summary, write_factory_image
        from ...module.keys import load_public_key
        from ...module.pack import abi_for_device
        where = f"[env:{self.name}] {OPTION_PREFIX}"
        get = lambda opt: env.GetProjectOption(OPTION_PREFIX + opt, "").strip()  # noqa: E731
        try:
            slots = parse_slots(get("slots"), get("slot_size"), where=where + "slots")
            given = get("image_module")
            if given:
                path = Path(env.subst("$PROJECT_DIR")) / given
                if not path.is_file():
                    raise TinyMLError("module file not found", where=where + "image_module",
                                      hint="Pack one with `tinyml module pack` (paths are relative to the project)")
                data = path.read_bytes()
            elif len(self.models) == 1:
                data = self._pack(self.models[0])[0]
            else:
                raise TinyMLError(f"no module for slot A ({len(self.models)} models declared)",
                                  where=where + "image_module",
                                  hint="Set custom_tinyml_image_module = kws.tmm (tinyml module pack), or declare "
                                       "exactly one custom_tinyml_model")
            kset, pubkey = self.executor
            layout = write_factory_image(Path(env.subst("$PROGPATH")), data, slots,
                                         Path(env.subst("$BUILD_DIR")) / IMAGE_FILE,
                                         public_key=load_public_key(pubkey), kernel_mask=kset.mask,
                                         abi=abi_for_device(self.device))
        except TinyMLError as exc:
            sys.stderr.write(self.error_line(exc) + "\n")
            return 1
        print(summary(layout))
        print(f"TinyML: layout -> {Path(env.subst('$BUILD_DIR')) / IMAGE_FILE.replace('.bin', '.json')}")
        return 0

    def verify(self, target, source, env) -> int:
        from ...verify.chosen import verify_model
        samples = int(env.GetProjectOption(OPTION_PREFIX + "verify_samples", "20"))
        failed, results = [], []
        for model in self.models:
            try:    # the backend the build uses, chosen the same way (tinyml verify does the same)
                rep = verify_model(model.spec.path, self.device, backend=model.spec.backend, samples=samples,
                                   seed=0, calibration=model.spec.calibration,
                                   backend_options=dict(model.spec.options),
                                   input_shapes=dict(model.spec.input_shapes),
                                   input_values=dict(model.spec.input_values))
            except TinyMLError as exc:
                sys.stderr.write(self.error_line(exc) + "\n")
                return 1
            print(f"TinyML: parity of '{model.spec.name}': {rep.method}, backend {rep.backend} ({rep.because})"
                  + (f", {samples} random inputs, seed 0" if rep.report else ""))
            if rep.report:
                print(rep.report.table())
            results.append(dict(rep.to_dict(), name=model.spec.name))
            if not rep.ok:
                failed.append(model.spec.name)
        (Path(env.subst("$BUILD_DIR")) / VERIFY_FILE).write_text(json.dumps(results, indent=2) + "\n")
        if failed:
            sys.stderr.write(f"Error: [env:{self.name}] generated code for {', '.join(failed)} disagrees with "
                             "the reference interpreter (table above). Try custom_tinyml_backend = another "
                             "backend and report the model to platformio-tinyml.\n")
            return 1
        return 0


def yes_no(value: str | None, where: str) -> bool:
    """A yes/no option (default no)."""
    value = (value or "no").strip().lower()
    if value not in ("yes", "no", "true", "false", "1", "0", "on", "off"):
        raise TinyMLError(f"'{value}' is neither yes nor no", where=where, hint="Write yes or no")
    return value in ("yes", "true", "1", "on")


def optimize_mode(value: str | None, env_name: str) -> str:
    """``custom_tinyml_optimize``: ``balanced`` (default: the project's flags, PlatformIO's -Os,
    with the hot kernel files at -O2 and their hand-scheduled Cortex-M paths, see
    runtime/tml_speed.h), ``size`` (every file with the project's flags: the smallest flash)
    or ``speed`` (all the model's sources at -O2)."""
    value = (value or "balanced").strip().lower()
    if value not in ("balanced", "size", "speed"):
        raise TinyMLError(f"'{value}' is not balanced, size or speed", where=f"[env:{env_name}] {OPTION_PREFIX}optimize",
                          hint="balanced (default) builds the hot kernels at -O2; size keeps the project's flags "
                               "everywhere (PlatformIO: -Os); speed builds all the model's sources at -O2")
    return value


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


def attach(env) -> None:
    """Hook the models of ``env``'s ``custom_tinyml_*`` options into its build.

    Call from a PRE extra script, before the platform builder makes the
    program. A clean (``-t clean``) only cleans. Errors stop the build with
    one line.
    """
    if env.IsCleanTarget():
        return
    front = _Front(env)
    try:
        front.prepare()
    except TinyMLError as exc:
        front.fail(front.error_line(exc))
    except OSError as exc:   # read-only build folder, full disk
        if exc.errno not in core.STORAGE_ERRNOS:
            raise
        front.fail(front.error_line(core.storage_error(exc, env.subst("$BUILD_DIR"),
                                                       "set build_dir in platformio.ini to another folder")))
    if front.executor is not None:
        # After the program: PlatformIO's "buildprog" alias (the platform fills it in later; $PROGPATH
        # still names the default "program" while PRE scripts run, so the action reads it then).
        env.AddCustomTarget("tinyml-image", env.Alias("buildprog"),
                            env.VerboseAction(front.image, "Writing TinyML factory image"),
                            title="TinyML factory image",
                            description="Firmware + signed module in slot A as one flashable image, with its layout")
    if not front.models:
        return
    env.AddPostAction("$PROGPATH", env.VerboseAction(front.gate, "Checking TinyML memory budget"))
    env.AddCustomTarget("tinyml-report", None, env.VerboseAction(front.report, "Writing TinyML report"),
                        title="TinyML report", description=f"Models and memory of {front.name}, as JSON")
    env.AddCustomTarget("tinyml-verify", None, env.VerboseAction(front.verify, "Verifying TinyML models"),
                        title="TinyML verify",
                        description="Generated code vs the reference interpreter on the host")
    env.AddCustomTarget("tinyml-module", None, env.VerboseAction(front.module, "Packing TinyML inference modules"),
                        title="TinyML module",
                        description="Each model as a signed inference module (.tmm) for over-the-air update")


__all__ = ["DeclaredModel", "OPTIONS", "attach", "compile_models", "device_profile", "embed_test_input",
           "parse_options", "read_options", "report_data", "report_table", "split_list", "unknown_options"]
