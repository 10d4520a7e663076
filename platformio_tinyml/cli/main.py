"""The ``tinyml`` command line: inspect, compile, verify, compare, boards, module, setup-offline.

Known errors print as one line (``tinyml: error: ...``) and exit 2; an
unexpected exception prints one line pointing at a saved traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

from ..errors import NoBackendError, TinyMLError, UnsupportedOpError
from ..report_html import HTML_REPORT_FILE
from . import agent, boards, fleet


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "-t", required=True,
                   help="PlatformIO board id (e.g. nucleo_f446re) or path to a board manifest JSON")
    p.add_argument("--boards-dir", action="append", default=[], metavar="DIR",
                   help="extra folder of board manifests (repeatable; also $TINYML_BOARDS_DIRS)")


def _add_input_shape(p: argparse.ArgumentParser, explain: bool = True) -> None:
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="shape of a graph input with open dimensions (repeatable; an open batch is 1)")
    p.add_argument("--input-value", action="append", default=[], metavar="NAME=V0,V1,...",
                   help="bind a graph input of an ONNX model to constant values, e.g. sr=16000 (repeatable)")
    if not explain:
        return
    p.add_argument("--explain", action="store_true",
                   help="on an error, print every detail (each backend's reasons, every supported operator)")


def _error_text(e: TinyMLError, explain: bool) -> str:
    """One short line; with ``--explain`` the whole of it."""
    if isinstance(e, NoBackendError):
        return e.explain() if explain else str(e)
    if isinstance(e, UnsupportedOpError) and not explain:
        return e.brief()
    return str(e)


def _input_shapes(args) -> dict:
    from ..model.loader import parse_input_shapes
    return parse_input_shapes(args.input_shape)


def _input_values(args) -> dict:
    from ..model.loader import parse_input_values
    return parse_input_values(args.input_value)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tinyml", description="Compile trained models into verified C for microcontrollers.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inspect", help="ops, tensors, weight bytes and activation memory lower bound")
    p.add_argument("model", type=Path)
    p.add_argument("--calibration", type=Path, help="representative data (.npy) for Keras models")
    _add_input_shape(p)
    p = sub.add_parser("compile", help="generate C sources, header and report.json for a board")
    p.add_argument("model", type=Path)
    _add_target(p)
    p.add_argument("--backend", "-b", default="auto", help="backend name or 'auto' (default)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output directory, replaced as a whole (refused if it holds files tinyml did not write)")
    p.add_argument("--name", help="C symbol prefix (default: from the model file name)")
    p.add_argument("--calibration", type=Path, help="representative data (.npy) for quantizing float/Keras models")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    _add_input_shape(p)
    p = sub.add_parser("verify", help="compile for the host and compare with the reference interpreter")
    p.add_argument("model", type=Path)
    _add_target(p)
    p.add_argument("--samples", "-n", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calibration", type=Path)
    _add_input_shape(p)
    p.add_argument("--backend", "-b", default="auto",
                   help="check this backend's code (default: the one `tinyml compile` and `pio run` choose)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser("compare", help="every backend side by side for a model and board")
    p.add_argument("model", type=Path)
    _add_target(p)
    p.add_argument("--calibration", type=Path, help="representative data (.npy) for Keras models")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_input_shape(p)
    from . import service   # serve, service, remote
    service.add_parsers(sub, _add_target, lambda p: _add_input_shape(p, explain=False))
    _module_parsers(sub)
    boards.add_parser(sub)
    agent.add_parser(sub)
    fleet.add_parser(sub)
    p = sub.add_parser("setup-offline", help="prepare a PlatformIO core dir for offline builds on emulated boards")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def _module_parsers(sub) -> None:
    m = sub.add_parser("module", help="signed inference modules: keygen, pack, inspect, verify")
    msub = m.add_subparsers(dest="module_cmd", required=True)
    p = msub.add_parser("keygen", help="write PREFIX.key (Ed25519, mode 0600) and PREFIX.pub")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="PREFIX")
    p = msub.add_parser("pack", help="build and sign a .tmm module for a board ('host' for tests)")
    p.add_argument("model", type=Path)
    _add_target(p)
    p.add_argument("--key", type=Path, required=True, help="private key from 'tinyml module keygen'")
    p.add_argument("--version", dest="module_version", type=int, required=True,
                   help="module version (the device refuses versions older than the installed one)")
    p.add_argument("--kind", choices=("graph", "tflite"), default="graph", help="payload kind (default graph)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p = msub.add_parser("inspect", help="print a module's header and op table (signature only with --pubkey)")
    p.add_argument("file", type=Path)
    p.add_argument("--pubkey", type=Path, help="also check the signature with this public key")
    p = msub.add_parser("verify", help="check structure, CRC and signature; exit 1 on any defect")
    p.add_argument("file", type=Path)
    p.add_argument("--pubkey", type=Path, required=True)


def cmd_serve(args) -> int:
    from . import service
    return service.cmd_serve(args)


def cmd_service(args) -> int:
    from . import service
    return service.cmd_service(args)


def cmd_worker(args) -> int:
    from . import service
    return service.cmd_worker(args)


def cmd_remote(args) -> int:
    from . import service
    return service.cmd_remote(args)


def cmd_module(args) -> int:
    from ..module import cli as module_cli
    return module_cli.run(args)


def _profile(args):
    from ..device import load_profile
    return load_profile(str(args.target), search_dirs=args.boards_dir or None)


def cmd_inspect(args) -> int:
    from ..compilers.cgen.planner import plan_memory
    from ..pipeline import load_any
    from ..model.validate import printable   # names are the model's text: one line each, escaped
    g, fmt = load_any(args.model, args.calibration, _input_shapes(args), _input_values(args))
    if g is None:
        return _inspect_estimator(args.model, fmt)
    print(f"model: {args.model} ({fmt}), graph '{printable(g.name)}': {len(g.ops)} ops, {len(g.tensors)} tensors")
    for label, idxs in (("input", g.inputs), ("output", g.outputs)):
        for i in idxs:
            t = g.tensors[i]
            q = f" scale {t.quant.s:.6g} zp {t.quant.zp}" if t.quant and not t.quant.per_channel else ""
            print(f"  {label}: {printable(t.name)} {list(t.shape)} {t.dtype.np_name}{q}")
    print("ops:")
    for kind, n in Counter(printable(op.type_name) for op in g.ops).most_common():
        print(f"  {kind:<20} {n}")
    plan = plan_memory(g)
    print(f"weight bytes: {g.weight_bytes:,}")
    print(f"activation lower bound (live tensors, this op order): {plan.lower_bound:,} B")
    return 0


def _inspect_estimator(path: Path, fmt: str) -> int:
    from ..model.sklearn import load_estimator
    est = load_estimator(path)
    print(f"model: {path} ({fmt}): {type(est).__module__}.{type(est).__name__}")
    print(f"  features: {getattr(est, 'n_features_in_', '?')}")
    classes = getattr(est, "classes_", None)
    if classes is not None:
        from ..model.validate import printable   # class labels are the model's text
        print(f"  classes: {len(classes)} ({', '.join(printable(str(c)) for c in list(classes)[:12])})")
    trees = getattr(est, "estimators_", None)
    nodes = [t.tree_.node_count for t in (trees if trees is not None else [est]) if hasattr(t, "tree_")]
    if nodes:
        print(f"  trees: {len(nodes)}, nodes: {sum(nodes):,}")
    return 0


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for item in pairs:
        if "=" not in item:
            raise TinyMLError(f"--option '{item}' is not KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _foreign_files(folder: Path) -> list[str]:
    """Entries of ``folder`` that no earlier ``tinyml compile`` wrote there (the files its
    report.json lists, report.json itself); all of them when there is no such report."""
    import json
    if not folder.is_dir():
        return [] if not folder.exists() else [folder.name]
    entries = {p.name for p in folder.iterdir()}
    try:
        report = json.loads((folder / "report.json").read_text())
        ours = {f["path"] for f in report["files"]} | {"report.json", HTML_REPORT_FILE}
        if not str(report.get("tool", "")).startswith("platformio-tinyml"):
            ours = set()
    except (OSError, ValueError, KeyError, TypeError):
        ours = set()
    return sorted(entries - ours)


def _write_html_report(folder: Path) -> None:
    """tinyml-report.html (the memory picture and key facts) from ``folder``'s report.json."""
    import json
    from ..report_html import render_compile_report
    report = folder / "report.json"
    if report.is_file():
        (folder / HTML_REPORT_FILE).write_text(render_compile_report(json.loads(report.read_text())),
                                               encoding="utf-8")


def fill_output_folder(output: Path, fill):
    """Run ``fill(folder)`` on a fresh folder beside ``output``, then rename it into place:
    ``output`` then holds exactly what ``fill`` wrote (or, on error, what it held before).
    Refuses an ``output`` holding files no earlier ``tinyml compile`` wrote. Returns
    ``fill``'s result (``tinyml compile -o`` and ``tinyml remote compile -o``). Beside the
    report.json ``fill`` wrote goes tinyml-report.html, the same page from both commands."""
    import shutil
    from ..integrations.core import STORAGE_ERRNOS, fresh_dir_beside, replace_dir, storage_error
    dest = output.resolve()
    foreign = _foreign_files(dest)
    if foreign:
        raise TinyMLError(f"holds files tinyml did not write ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''})", where=str(output),
                          hint="tinyml replaces the whole -o folder: give a new or empty one, "
                               "or one an earlier `tinyml compile` wrote")
    fresh = None
    try:
        fresh = fresh_dir_beside(dest)
        result = fill(fresh)
        _write_html_report(fresh)
        replace_dir(fresh, dest)
        return result
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(exc, dest.parent, "give -o a folder elsewhere") from None  # fresh folder is beside
    finally:
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)


def cmd_compile(args) -> int:
    from ..pipeline import compile_model
    dev = _profile(args)
    out = fill_output_folder(args.output, lambda folder: compile_model(
        args.model, dev, folder, name=args.name, backend=args.backend, calibration=args.calibration,
        backend_options=_options(args.option), input_shapes=_input_shapes(args),
        input_values=_input_values(args)))
    r = out.result
    print(f"{args.model.name} -> {args.output}/ for {dev.board} ({dev.core}, {dev.ram_bytes:,} B RAM, "
          f"{dev.flash_bytes:,} B flash)")
    print(f"  backend {r.backend} {r.backend_version} ({out.chosen_because})")
    print(f"  arena {r.arena_bytes:,} B, weights {r.weight_bytes:,} B, "
          f"estimated flash {r.estimate.flash_bytes:,} B, RAM {r.estimate.ram_bytes:,} B")
    print(f"  files: {', '.join(f.path.name for f in r.files)}, report.json, {HTML_REPORT_FILE}")
    for line in r.diagnostics:
        print(f"  {line}")
    return 0


def cmd_verify(args) -> int:
    import json
    from ..pipeline import REPORT_SCHEMA_VERSION
    from ..verify.chosen import verify_model
    dev = _profile(args)
    v = verify_model(args.model, dev, backend=args.backend, samples=args.samples, seed=args.seed,
                     calibration=args.calibration, backend_options=_options(args.option),
                     input_shapes=_input_shapes(args), input_values=_input_values(args))
    if args.json:
        print(json.dumps(dict(v.to_dict(), schema_version=REPORT_SCHEMA_VERSION, model=str(args.model),
                              board=dev.board), indent=2))
    else:
        print(f"parity of {v.method} for {dev.board}, backend {v.backend} ({v.because})"
              + (f", {args.samples} random inputs, seed {args.seed}" if v.report else ""))
        if v.report:
            print(v.report.table())
    if not v.ok:
        print("tinyml: error: generated code disagrees with the reference", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args) -> int:
    import json
    from ..pipeline import compare_backends
    dev = _profile(args)
    table = compare_backends(args.model, dev, calibration=args.calibration, backend_options=_options(args.option),
                             input_shapes=_input_shapes(args), input_values=_input_values(args))
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print_compare(args.model, table, dev)
    return 0 if table["chosen"] else 1


def print_compare(model: Path, table: dict, dev) -> None:
    """The ``tinyml compare`` table (local or remote)."""
    num = lambda v: "-" if v is None else f"{v:,}"  # noqa: E731
    print(f"{model.name} ({table['format']}) on {dev.board} ({dev.core}, {dev.flash_bytes:,} B flash, "
          f"{dev.ram_bytes:,} B RAM{', NPU ' + dev.npu if dev.npu else ''})")
    print(f"  {'backend':<10} {'ok':<4} {'flash B':>10} {'RAM B':>10} {'latency cyc':>12}  note")
    for r in table["backends"]:
        note = "chosen" if r["chosen"] else "; ".join(r["reasons"])
        print(f"{'*' if r['chosen'] else ' '} {r['backend']:<10} {'yes' if r['supported'] else 'no':<4} "
              f"{num(r['flash_bytes']):>10} {num(r['ram_bytes']):>10} {num(r['latency_cycles']):>12}  {note}")
    print(f"chosen: {table['chosen'] or 'none'} ({table['because']})")


def cmd_setup_offline(args) -> int:
    from ..integrations.platformio.offline import main as offline_main
    rest = [a for a in args.rest if a != "--"] if args.rest[:1] == ["--"] else args.rest
    return offline_main(rest) or 0


COMMANDS = {"inspect": cmd_inspect, "compile": cmd_compile, "verify": cmd_verify, "compare": cmd_compare,
            "setup-offline": cmd_setup_offline, "module": cmd_module, "boards": boards.cmd_boards,
            "serve": cmd_serve, "service": cmd_service, "worker": cmd_worker, "remote": cmd_remote,
            "device-agent": agent.cmd_device_agent, "fleet": fleet.cmd_fleet}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["setup-offline"]:   # its own parser owns every option after the word
        argv = ["setup-offline", "--", *argv[1:]]
    args = _parser().parse_args(argv)
    try:
        rc = COMMANDS[args.cmd](args)
        sys.stdout.flush()      # a closed pipe shows here, not at interpreter exit
        return rc
    except BrokenPipeError:     # the reader went away (`tinyml inspect m.tflite | head -3`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141              # as if killed by SIGPIPE, like other tools in a pipeline
    except TinyMLError as e:
        print(f"tinyml: error: {_error_text(e, getattr(args, 'explain', False))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line for the user, the traceback in a file
        fd, path = tempfile.mkstemp(prefix="tinyml-crash-", suffix=".txt")
        with open(fd, "w") as f:
            traceback.print_exc(file=f)
        print(f"tinyml: internal error ({type(e).__name__}: {e}); traceback saved to {path}. "
              "Please report it.", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
