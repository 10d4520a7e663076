"""``tinyml boards [QUERY]``: list and search the board manifests ``--target`` accepts."""

from __future__ import annotations

import argparse
import json

from ..errors import TinyMLError


def add_parser(sub) -> None:
    p = sub.add_parser("boards", help="list or search the known boards (ids for --target)")
    p.add_argument("query", nargs="*", help="words that must all appear in the id, name, MCU, core or platform")
    p.add_argument("--boards-dir", action="append", default=[], metavar="DIR",
                   help="extra folder of board manifests (repeatable; also $TINYML_BOARDS_DIRS)")
    p.add_argument("--json", action="store_true", help="print the matching device profiles as JSON")


def _rows(search_dirs, words: list[str]):
    from ..device import list_boards
    from ..device.manifest import read_manifest
    from ..device.profile import profile_from_manifest
    from ..device.search import _platform_from_path
    for board, path in list_boards(search_dirs or None).items():
        try:
            prof = profile_from_manifest(read_manifest(path), board, None, _platform_from_path(path),
                                         source=str(path))
        except TinyMLError:
            continue    # a broken manifest is reported when it is used as --target, not here
        hay = " ".join((prof.board, prof.name, prof.mcu, prof.core, prof.platform)).lower()
        if all(w in hay for w in words):
            yield prof


def cmd_boards(args: argparse.Namespace) -> int:
    words = [w.lower() for w in args.query]
    profs = list(_rows(args.boards_dir, words))
    if args.json:
        print(json.dumps([p.to_dict() for p in profs], indent=2))
        return 0 if profs else 1
    if not profs:
        raise TinyMLError(f"no board matches '{' '.join(args.query)}'",
                          hint="Try fewer or shorter words (e.g. an MCU family: stm32f4, nrf52, atmega)")
    print(f"{'board':<32} {'platform':<16} {'core':<14} {'MHz':>5} {'flash KiB':>10} {'RAM KiB':>8}  name")
    for p in profs:
        print(f"{p.board:<32} {p.platform or '-':<16} {p.core:<14} {p.clock_hz // 1_000_000:>5} "
              f"{p.flash_bytes // 1024:>10,} {p.ram_bytes // 1024:>8,}  {p.name}")
    print(f"{len(profs)} board{'s' if len(profs) != 1 else ''}")
    return 0
