"""``tinyml device-agent``: LwM2M client(s) standing for devices: the C module loader built for the host,
or (``--firmware``) the module-cortex-m4 example firmware booted in QEMU."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ..errors import TinyMLError


def add_parser(sub) -> None:
    p = sub.add_parser("device-agent", help="run LwM2M device(s) that install and run inference modules "
                                            "with the host-built C loader, or the QEMU firmware with --firmware "
                                            "(see docs/device-agent.md)")
    p.add_argument("--server", required=True, action="append", metavar="coap://HOST:PORT",
                   help="the LwM2M server of tinyml serve (coaps://HOST:PORT: over DTLS with --psk-key); give it "
                        "again for servers to fail over to (tried in turn when the one in use does not answer a "
                        "Register or Update)")
    p.add_argument("--psk-identity", metavar="ID",
                   help="coaps:// servers: the PSK identity (default: the endpoint name, which the server requires "
                        "it to be)")
    p.add_argument("--psk-key", metavar="HEX", help="coaps:// servers: the pre-shared key, hex (at most 16 bytes)")
    p.add_argument("--failover-s", type=float, default=10.0, metavar="S",
                   help="with several --server: a Register or Update unanswered this long moves to the next "
                        "(default 10)")
    p.add_argument("--endpoint", required=True, metavar="NAME",
                   help="endpoint name (with --count N: NAME-0 .. NAME-N-1); the project must allow it")
    p.add_argument("--public-key", required=True, metavar="KEY",
                   help="Ed25519 key the loader checks module signatures with (.pub PEM or 32 raw bytes)")
    p.add_argument("--count", type=int, default=1, metavar="N", help="devices in this process (default 1)")
    p.add_argument("--lifetime", type=int, default=300, metavar="S", help="registration lifetime (default 300)")
    p.add_argument("--kernels", default="all", metavar="K1,K2",
                   help="kernels the simulated firmware has (default: all)")
    p.add_argument("--firmware", type=Path, metavar="PATH",
                   help="run the real firmware in QEMU instead of the host-built loader: the example project "
                        "folder (example_projects/module-cortex-m4, built for --kernels and --public-key), "
                        "a firmware ELF built from it, or its factory image's tinyml-image.json (the device "
                        "starts with the image's slot A module running)")
    p.add_argument("--slot-size", type=int, metavar="BYTES",
                   help="bytes per module slot (default 131072; the firmware's 1 MiB with --firmware)")
    p.add_argument("--arena", type=int, metavar="BYTES",
                   help="tensor arena bytes (default 32768; the firmware's own with --firmware)")
    p.add_argument("--max-block", type=int, default=1024, metavar="BYTES",
                   help="largest Block1 a device takes; larger blocks are answered 4.13 (default 1024)")
    p.add_argument("--object-id", type=int, default=None, metavar="ID", help="TinyML object id (default 32100)")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="S",
                   help="Register/Update give up after S seconds, retransmissions included, and are sent "
                        "again after a backoff (default 10)")
    p.add_argument("--infer-every", type=float, default=0.0, metavar="S",
                   help="run the active module every S seconds, as a device's application would (default 0: "
                        "one inference after each Activate); deployments with criteria inferences > 1 need it")
    p.add_argument("--without-tinyml-object", action="store_true",
                   help="leave out the TinyML object, like an LwM2M client that has only objects 0-9: "
                        "deployments reach it only with an explicit target or profile")
    p.add_argument("-v", "--verbose", action="store_true", help="log registrations and deliveries")


def _psk_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    from ..lwm2m.dtls import parse_key
    return parse_key(text, "--psk-key")


def cmd_device_agent(args: argparse.Namespace) -> int:
    from ..lwm2m.agent import AgentConfig, load_key, run
    from ..module.firmware import KernelSet
    if args.firmware is not None and (args.slot_size is not None or args.arena is not None):
        raise TinyMLError("--slot-size and --arena are the firmware's own with --firmware",
                          where="--firmware", hint="Drop --slot-size and --arena")
    slot_size = 128 * 1024 if args.slot_size is None else args.slot_size
    arena = 32 * 1024 if args.arena is None else args.arena
    if slot_size < 1024 or arena < 1024:
        raise TinyMLError("--slot-size and --arena must be 1024 bytes or more")
    cfg = AgentConfig(server=args.server[0], fallback_servers=tuple(args.server[1:]),
                      failover_s=args.failover_s, endpoint=args.endpoint, public_key=load_key(args.public_key),
                      kernels=KernelSet.parse([k for k in args.kernels.split(",") if k]), count=args.count,
                      lifetime_s=args.lifetime, slot_size=slot_size, arena_bytes=arena,
                      max_block=args.max_block, tinyml_object_id=args.object_id, firmware=args.firmware,
                      request_timeout_s=args.request_timeout, infer_every_s=args.infer_every,
                      tinyml_object=not args.without_tinyml_object, psk_identity=args.psk_identity,
                      psk_key=_psk_key(args.psk_key))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(message)s")
    try:
        asyncio.run(run(cfg))
    except KeyboardInterrupt:
        pass
    return 0
