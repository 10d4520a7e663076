"""SCons tool ``tinyml``: a trained model as an ordinary build input.

Load it with ``env.Tool("tinyml", toolpath=[".../scons_tools"])``. It adds

* the builder ``env.TinyMLModel(target_dir, model, TINYML_TARGET=..., ...)``:
  generates the model's C sources, header and ``report.json`` into
  ``target_dir``;
* ``env.TinyMLSources(nodes)``: the ``.c``/``.cc`` nodes among builder outputs, each
  runtime file once when several models share it;
* ``env.TinyMLGate(program, models)``: the post-link flash/RAM gate;
* ``env.TinyMLExecutor(target_dir, kernels, pubkey)``: the inference-module
  loader + executor with ``kernels`` (names, or ``"all"``) and the public key
  modules must be signed with, written into ``target_dir`` (only files whose
  bytes change); returns the ``.c`` nodes (add ``target_dir`` to CPPPATH);
* the builder ``env.TinyMLModule(file.tmm, model, TINYML_TARGET=...,
  TINYML_MODULE_KEY=..., TINYML_MODULE_VERSION=N)``: the model packed and
  signed as an inference module for over-the-air update (the bytes of
  ``tinyml module pack``);
* the builder ``env.TinyMLImage(image.bin, [program, module.tmm],
  TINYML_SLOTS=[a, b], TINYML_SLOT_SIZE=n)``: the factory image (firmware +
  the module in slot A) and ``image.json``, its layout; with
  ``TINYML_MODULE_PUBKEY`` (and ``TINYML_EXECUTOR`` + ``TINYML_TARGET``) the
  module is first checked as the firmware will.

Construction variables are documented in ``tinyml.xml`` beside this file.

Which files a model produces depends on its operators, so the emitter must
know the compile result: it runs the content-addressed compile of
:mod:`platformio_tinyml.integrations.core` into ``$TINYML_CACHE_DIR/<key>``
(a cache hit when nothing changed) and declares exactly those files. The
action (``$TINYMLCOM``) copies them into ``target_dir``. The cache key enters
the sources as a ``Value`` node, so a changed model, option, input shape or
value, board or backend version, and nothing else, rebuilds. Builds sharing one cache folder (``-j``,
or several projects) take a lock per entry (see ``compile_cached``). User
mistakes, unwritable folders and full disks raise ``SCons.Errors.UserError``:
one ``scons: ***`` line. A ``TINYML_*`` variable the tool does not know (a
typo) gets a ``scons: warning:`` naming the closest valid one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import SCons.Action
import SCons.Builder
import SCons.Errors
import SCons.Node.Python
import SCons.Warnings


class TinyMLWarning(SCons.Warnings.WarningOnByDefault):
    """A construction variable that looks like ours but is not one (a typo)."""


# The tool's construction variables with their defaults (documented in tinyml.xml).
DEFAULTS = dict(
    TINYML_TARGET="",
    TINYML_NAME="",
    TINYML_BACKEND="auto",
    TINYML_CALIBRATION="",
    TINYML_OPTIONS={},
    TINYML_INPUT_SHAPE=[],          # "NAME=1,49,10,1" items (as --input-shape), or {NAME: dims}
    TINYML_INPUT_VALUE=[],          # "NAME=V0,V1,..." items (as --input-value), or {NAME: values}
    TINYML_BOARD_OVERRIDES={},
    TINYML_TEST_INPUT="",
    TINYML_CACHE_DIR="#.tinyml-cache",
    TINYML_FLASH_MAX=None,
    TINYML_RAM_MAX=None,
    TINYML_MODULE_KEY="",
    TINYML_MODULE_VERSION="",
    TINYML_MODULE_KIND="graph",
    TINYML_SERVICE="",              # default: $TINYML_SERVICE_URL of the environment scons runs in
    TINYML_SERVICE_REQUIRED=False,
    TINYML_SLOTS=[],
    TINYML_SLOT_SIZE=0,
    TINYML_MODULE_PUBKEY="",
    TINYML_EXECUTOR=[],
)
# Set by the bundled PlatformIO platforms (platforms/emuboard.py), also ours.
_PLATFORM_VARIABLES = ("TINYML_MACHINE", "TINYML_RUN_TIMEOUT", "TINYML_RUN_LOADS", "TINYML_RUN_ACTION")


def _api():
    """The platformio-tinyml modules this tool uses, imported on first use."""
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.errors import TinyMLError
    from platformio_tinyml.integrations import core
    from platformio_tinyml.integrations.platformio.build import embed_test_input
    return core, load_profile, TinyMLError, embed_test_input


def _through_service(env, spec, device, cache):
    """:func:`compile_for_build` with ``$TINYML_SERVICE`` (a URL, or empty: a local compile)."""
    from platformio_tinyml.integrations.platformio.build import yes_no
    from platformio_tinyml.integrations.remote import compile_for_build
    service = env.subst("$TINYML_SERVICE").strip() or None
    required = env.get("TINYML_SERVICE_REQUIRED")
    required = required if isinstance(required, bool) else yes_no(str(required), "TINYML_SERVICE_REQUIRED")
    # No progress line for a local compile (SCons prints $TINYMLCOMSTR); one while the service works.
    return compile_for_build(spec, device, cache, service, required, on_compile=print if service else None,
                             on_warning=print, options=("TINYML_SERVICE", "TINYML_SERVICE_REQUIRED"))


def _user_error(where: str, exc) -> SCons.Errors.UserError:
    return SCons.Errors.UserError(f"{where}: {exc.format()}" if where else exc.format())


def _named_items(value) -> list[str]:
    """``TINYML_INPUT_SHAPE`` / ``TINYML_INPUT_VALUE`` as ``NAME=...`` items: a string (one item),
    a list of them, or a dict of names to sequences (or to one number)."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [f"{k}=" + (",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                for k, v in value.items()]
    return [str(v) for v in value]


def _spec(env, model_node):
    core = _api()[0]
    from platformio_tinyml.model.loader import parse_input_shapes, parse_input_values
    calibration = env.subst("$TINYML_CALIBRATION")
    return core.ModelSpec.make(model_node.abspath, name=env.subst("$TINYML_NAME") or None,
                               backend=env.subst("$TINYML_BACKEND") or "auto",
                               calibration=env.File(calibration).abspath if calibration else None,
                               options={str(k): str(v) for k, v in dict(env["TINYML_OPTIONS"]).items()},
                               input_shapes=parse_input_shapes(_named_items(env["TINYML_INPUT_SHAPE"]),
                                                               "TINYML_INPUT_SHAPE"),
                               input_values=parse_input_values(_named_items(env["TINYML_INPUT_VALUE"]),
                                                               "TINYML_INPUT_VALUE"))


def _unknown_variables(env) -> dict[str, str | None]:
    """``TINYML_*`` variables of ``env`` (builder keywords included) the tool does not
    read, each with the closest valid name or None."""
    core = _api()[0]
    known = set(DEFAULTS) | set(_PLATFORM_VARIABLES)
    return {name: core.closest(name.upper(), known) for name in sorted(env.Dictionary())
            if name.upper().startswith("TINYML_") and name not in known}


def _warn_unknown(env) -> None:
    for name, guess in _unknown_variables(env).items():
        hint = f"did you mean {guess}?" if guess else "see tinyml.xml for the variables"
        SCons.Warnings.warn(TinyMLWarning, f"TinyML: unknown construction variable {name} ignored; {hint}")


def _device(env):
    _, load_profile, _, _ = _api()
    target = env.subst("$TINYML_TARGET")
    if not target:
        typo = [name for name, guess in _unknown_variables(env).items() if guess == "TINYML_TARGET"]
        if typo:
            raise SCons.Errors.UserError(f"TinyMLModel: TINYML_TARGET is not set but {typo[0]} is: "
                                         "did you mean TINYML_TARGET?")
        raise SCons.Errors.UserError("TinyMLModel: TINYML_TARGET is not set. Give a board id "
                                     "(TINYML_TARGET='mps2-an386') or a board manifest path")
    if target.endswith(".json"):
        target = env.File(target).abspath
    return load_profile(target, overrides=dict(env["TINYML_BOARD_OVERRIDES"]) or None)


def _compile(env, model_node):
    """Compile (or find in the cache) the model; returns (CompiledModel, cache key)."""
    core, _, TinyMLError, _ = _api()
    try:
        spec = _spec(env, model_node)
        device = _device(env)
        key = core.cache_key(spec, device)
        cache = Path(env.Dir("$TINYML_CACHE_DIR").abspath) / key[:32]
        if not env.subst("$TINYML_SERVICE").strip():
            # No progress line: SCons prints $TINYMLCOMSTR; but say when a damaged entry is rebuilt.
            return core.compile_cached(spec, device, cache, on_damaged=print), key
        return _through_service(env, spec, device, cache), key
    except TinyMLError as exc:
        raise _user_error(str(model_node), exc) from None
    except OSError as exc:
        if exc.errno not in core.STORAGE_ERRNOS:
            raise
        raise _user_error(str(model_node), core.storage_error(exc, env.Dir("$TINYML_CACHE_DIR").abspath,
                                                             "set TINYML_CACHE_DIR to another folder")) from None


def _emitter(target, source, env):
    if len(source) != 1:
        raise SCons.Errors.UserError(f"TinyMLModel: one model per call, got {len(source)} sources")
    _warn_unknown(env)
    outdir = env.Dir(str(target[0]))
    model, key = _compile(env, source[0])
    names = [f["path"] for f in model.report["files"]] + ["report.json"]
    extra = [SCons.Node.Python.Value(key)]
    test_input = env.subst("$TINYML_TEST_INPUT")
    if test_input:
        names.append(f"{model.spec.name}_test_input.h")
        extra.append(env.File(test_input))
    if model.spec.calibration:
        extra.append(env.File(str(model.spec.calibration)))
    outdir.File("report.json").attributes.tinyml_name = model.spec.name   # for TinyMLSources' check
    return [outdir.File(n) for n in names], list(source) + extra


def _build(target, source, env):
    """``$TINYMLCOM``: copy the compiled files into the target folder, embed the test input."""
    core, _, TinyMLError, embed_test_input = _api()
    model, _ = _compile(env, source[0])
    outdir = Path(target[0].dir.abspath)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for name in [f["path"] for f in model.report["files"]] + ["report.json", core.KEY_FILE]:
            shutil.copyfile(model.outdir / name, outdir / name)
    except OSError as exc:
        if exc.errno not in core.STORAGE_ERRNOS:
            raise
        raise _user_error(str(source[0]), core.storage_error(exc, outdir, "build into another folder")) from None
    test_input = env.subst("$TINYML_TEST_INPUT")
    if test_input:
        placed = core.CompiledModel(model.spec, outdir, model.report, model.cached)
        try:
            embed_test_input(placed, Path(env.File(test_input).abspath))
        except TinyMLError as exc:
            raise _user_error(test_input, exc) from None
    return 0


def _module_emitter(target, source, env):
    _warn_unknown(env)
    key = env.subst("$TINYML_MODULE_KEY")
    if not key:
        raise SCons.Errors.UserError("TinyMLModule: TINYML_MODULE_KEY is not set. Make a key with "
                                     "`tinyml module keygen -o keys/release` and give keys/release.key")
    extra = [env.File(key), SCons.Node.Python.Value(_api_version())]
    calibration = env.subst("$TINYML_CALIBRATION")
    if calibration:
        extra.append(env.File(calibration))
    return target, list(source) + extra


def _api_version() -> str:
    from platformio_tinyml import __version__
    return __version__


def _build_module(target, source, env):
    """``$TINYMLMODULECOM``: pack and sign ``source[0]`` into ``target[0]``."""
    _, _, TinyMLError, _ = _api()
    from platformio_tinyml.module.pack import pack_module, parse_module_version
    try:
        version = parse_module_version(env.subst("$TINYML_MODULE_VERSION"), where="TINYML_MODULE_VERSION")
        calibration = env.subst("$TINYML_CALIBRATION")
        res = pack_module(Path(source[0].abspath), None, Path(env.File("$TINYML_MODULE_KEY").abspath), version,
                          env.subst("$TINYML_MODULE_KIND") or "graph", device=_device(env),
                          calibration=Path(env.File(calibration).abspath) if calibration else None)
    except TinyMLError as exc:
        raise _user_error(str(source[0]), exc) from None
    Path(target[0].abspath).write_bytes(res.data)
    return 0


def _image_emitter(target, source, env):
    _warn_unknown(env)
    if len(source) != 2:
        raise SCons.Errors.UserError(f"TinyMLImage: give [program, module.tmm], got {len(source)} sources")
    extra = [SCons.Node.Python.Value(f"{list(env['TINYML_SLOTS'])} {env['TINYML_SLOT_SIZE']}")]
    if env.subst("$TINYML_MODULE_PUBKEY"):
        extra.append(env.File("$TINYML_MODULE_PUBKEY"))
    return [target[0], target[0].target_from_source("", ".json")], list(source) + extra


def _build_image(target, source, env):
    """``$TINYMLIMAGECOM``: firmware ``source[0]`` + module ``source[1]`` in slot A -> ``target[0]`` + layout."""
    _, _, TinyMLError, _ = _api()
    from platformio_tinyml.module.image import parse_slots, summary, write_factory_image
    checks = {}
    try:
        slots = parse_slots(", ".join(hex(int(a)) for a in env["TINYML_SLOTS"]), str(env["TINYML_SLOT_SIZE"]),
                            where="TINYML_SLOTS / TINYML_SLOT_SIZE")
        if env.subst("$TINYML_MODULE_PUBKEY"):
            from platformio_tinyml.module.keys import load_public_key
            checks["public_key"] = load_public_key(Path(env.File("$TINYML_MODULE_PUBKEY").abspath))
        kernels = env["TINYML_EXECUTOR"]
        if kernels and env.subst("$TINYML_TARGET"):
            from platformio_tinyml.module.firmware import KernelSet
            from platformio_tinyml.module.pack import abi_for_device
            names = [kernels] if isinstance(kernels, str) else list(kernels)
            checks.update(kernel_mask=KernelSet.parse(names).mask, abi=abi_for_device(_device(env)))
        layout = write_factory_image(Path(source[0].abspath), Path(source[1].abspath).read_bytes(), slots,
                                     Path(target[0].abspath), **checks)
    except TinyMLError as exc:
        raise _user_error(str(target[0]), exc) from None
    print(summary(layout))
    return 0


def TinyMLExecutor(env, target_dir, kernels, pubkey):
    """Write the module loader + executor for ``kernels`` into ``target_dir``; the .c nodes."""
    _, _, TinyMLError, _ = _api()
    from platformio_tinyml.module.firmware import KernelSet, write_executor
    names = [kernels] if isinstance(kernels, str) else list(kernels)
    outdir = env.Dir(target_dir)
    try:
        kset = KernelSet.parse(names)
        cfiles = write_executor(Path(outdir.abspath), kset, Path(env.File(pubkey).abspath))
    except TinyMLError as exc:
        raise _user_error("TinyMLExecutor", exc) from None
    return [outdir.File(str(c.relative_to(outdir.abspath))) for c in cfiles]


def TinyMLSources(env, *model_outputs):
    """The ``.c``/``.cc`` (tflm glue) nodes among ``TinyMLModel`` outputs; a runtime file shared by models once.

    Two models with one ``TINYML_NAME`` cannot be linked together (their symbols
    clash, and one's sources would hide the other's): a ``UserError``.
    """
    nodes = env.Flatten(list(model_outputs))
    folders: dict[str, str] = {}
    for node in nodes:
        name = getattr(node.attributes, "tinyml_name", None)
        if name is not None and folders.setdefault(name, str(node.dir)) != str(node.dir):
            raise SCons.Errors.UserError(f"TinyMLSources: two models are named '{name}' ({folders[name]} and "
                                         f"{node.dir}). Give each its own TINYML_NAME")
    seen, result = set(), []
    for node in nodes:
        if node.name.endswith((".c", ".cc", ".cpp")) and node.name not in seen:   # tflm's glue is C++
            seen.add(node.name)
            result.append(node)
    return result


def TinyMLGate(env, program, *model_outputs):
    """Add the flash/RAM gate as a post action of ``program``.

    The limits are those of the board the models were compiled for, unless
    ``$TINYML_FLASH_MAX`` / ``$TINYML_RAM_MAX`` (bytes) are set.
    """
    reports = [n.abspath for n in env.Flatten(list(model_outputs)) if n.name == "report.json"]

    def gate(target, source, env):
        from platformio_tinyml.device import DeviceProfile
        core, _, TinyMLError, _ = _api()
        elf = Path(target[0].abspath)
        try:
            models = [_placed_model(core, Path(r)) for r in reports]
            # The board the models were compiled for, as recorded in their reports.
            device = DeviceProfile.from_dict(models[0].report["target"])
            result, lines = core.gate_firmware(elf, models, device, where=f"[{elf.name}]",
                                               flash_max=env.get("TINYML_FLASH_MAX"),
                                               ram_max=env.get("TINYML_RAM_MAX"))
        except TinyMLError as exc:
            raise _user_error(elf.name, exc) from None
        for line in lines + result.warnings:
            print(line)
        if not result.ok:
            raise SCons.Errors.UserError(result.error.removeprefix("Error: "))
        return 0

    env.AddPostAction(program, SCons.Action.Action(gate, "$TINYMLGATECOMSTR"))
    return program


def _placed_model(core, report_path: Path):
    report = json.loads(report_path.read_text())
    outdir = report_path.parent
    spec = core.ModelSpec.make(report["model"]["path"], name=report["name"])
    sources = [outdir / f["path"] for f in report["files"] if f["path"].endswith((".c", ".cc", ".cpp"))]
    return core.CompiledModel(spec, outdir, report, True, sources)


def generate(env):
    """Add the builder, the methods and defaults (user's own values are kept)."""
    env.SetDefault(TINYML_SERVICE=os.environ.get("TINYML_SERVICE_URL", ""))
    env.SetDefault(**copy.deepcopy(DEFAULTS))
    env.SetDefault(
        TINYMLCOM=_build,
        TINYMLCOMSTR="TinyML: $SOURCE -> ${TARGET.dir} for $TINYML_TARGET",
        TINYMLGATECOMSTR="TinyML: checking flash/RAM of $TARGET",
        TINYMLMODULECOM=_build_module,
        TINYMLMODULECOMSTR="TinyML: $SOURCE -> $TARGET (module version $TINYML_MODULE_VERSION)",
        TINYMLIMAGECOM=_build_image,
        TINYMLIMAGECOMSTR="TinyML: factory image $TARGET",
    )
    action = SCons.Action.Action("$TINYMLCOM", "$TINYMLCOMSTR",
                                 varlist=["TINYML_TARGET", "TINYML_NAME", "TINYML_BACKEND",
                                          "TINYML_OPTIONS", "TINYML_BOARD_OVERRIDES", "TINYML_INPUT_SHAPE",
                                          "TINYML_INPUT_VALUE"])
    env["BUILDERS"]["TinyMLModel"] = SCons.Builder.Builder(
        action=action, emitter=_emitter, target_factory=env.fs.Dir, source_factory=env.fs.File)
    module_action = SCons.Action.Action("$TINYMLMODULECOM", "$TINYMLMODULECOMSTR",
                                        varlist=["TINYML_TARGET", "TINYML_MODULE_VERSION", "TINYML_MODULE_KIND",
                                                 "TINYML_BOARD_OVERRIDES"])
    env["BUILDERS"]["TinyMLModule"] = SCons.Builder.Builder(
        action=module_action, emitter=_module_emitter, source_factory=env.fs.File)
    image_action = SCons.Action.Action("$TINYMLIMAGECOM", "$TINYMLIMAGECOMSTR",
                                       varlist=["TINYML_SLOTS", "TINYML_SLOT_SIZE", "TINYML_EXECUTOR"])
    env["BUILDERS"]["TinyMLImage"] = SCons.Builder.Builder(
        action=image_action, emitter=_image_emitter, source_factory=env.fs.File)
    env.AddMethod(TinyMLExecutor)
    env.AddMethod(TinyMLSources)
    env.AddMethod(TinyMLGate)


def exists(env):
    """True when platformio-tinyml is importable in SCons' Python."""
    try:
        _api()
    except ImportError:
        return False
    return True
