"""DTLS with pre-shared keys (DTLS-PSK) for the LwM2M server and the device agent.

Both sides run on aiocoap's tinydtls transports, which need the optional
``DTLSSocket`` package (it builds tinydtls; ``pip install
'platformio-tinyml[dtls]'``). What the server side needs beyond aiocoap
0.4.17 as shipped, found with ``benchmarks/dtls_psk_probe.py``:

* ``MessageInterfaceTinyDTLSServer`` inherits ``recognize_remote`` from the
  plain simplesocketserver transport, which knows only that transport's own
  address class: a request to a device over the DTLS session it opened
  (Read, Write, Execute) fails with ``NoRequestInterface``. :func:`patch_aiocoap`
  teaches it its own ``_AddressDTLS`` (only if it does not know it already).
* A simplesocketserver transport adds 1 (COAPS_PORT - COAP_PORT) to an
  explicit bind port, so :func:`server_context` binds ``port - 1``; and it
  refuses any-address binds (0.0.0.0, ::).
* tinydtls takes keys of at most 16 bytes (DTLS_PSK_MAX_KEY_LEN) and
  identities of at most 32. DTLSSocket 0.2.3 copies the key into tinydtls'
  16-byte buffer without checking its length: a longer key overruns it
  (seen: a 20-byte key ends the handshake with alert 80, internal error, and
  the client waits for its timeout), so :func:`check_psk` refuses them.
* A DTLS server cannot open a session itself: a device is reachable over DTLS
  only while the session it opened lives (the agent keeps it referenced).

PSK file (``tinyml serve --lwm2m-psk-file FILE``): a JSON object
``{"IDENTITY": "HEXKEY", ...}``. A device registering over coaps:// must use
its PSK identity as its endpoint name; an endpoint name that has a key in the
file is refused over plain coap://.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .ids import LwM2MError

MAX_KEY = 16          # tinydtls DTLS_PSK_MAX_KEY_LEN (DTLSSocket 0.2.3)
MAX_IDENTITY = 32     # tinydtls DTLS_PSK_MAX_CLIENT_IDENTITY_LEN
_CLAIM = "psk:"       # the credentials entry (and authenticated claim) of an identity: psk:IDENTITY
_HEX = re.compile(r"^([0-9a-fA-F]{2})+$")
INSTALL_HINT = ("Install DTLSSocket (pip install 'platformio-tinyml[dtls]' or pip install DTLSSocket; it needs "
                "autoconf, automake, libtool and a C compiler)")


def available() -> bool:
    try:
        from DTLSSocket import dtls  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    if not available():
        raise LwM2MError("DTLS needs the DTLSSocket package, which is not installed", hint=INSTALL_HINT)


def check_psk(identity: str, key: bytes, where: str) -> None:
    if not identity or len(identity.encode()) > MAX_IDENTITY or not re.match(r"^[\x21-\x7e]+$", identity):
        raise LwM2MError(f"{where}: PSK identity {identity[:40]!r}: give 1 to {MAX_IDENTITY} printable ASCII "
                         "characters without spaces (it is the endpoint name too)")
    if not 1 <= len(key) <= MAX_KEY:
        raise LwM2MError(f"{where}: the key of '{identity}' has {len(key)} bytes; tinydtls takes 1 to {MAX_KEY}",
                         hint="Give 16 random bytes as 32 hex digits (openssl rand -hex 16)")


def parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    if not _HEX.match(text):
        raise LwM2MError(f"{where}: the key must be hex digits (e.g. 32 for 16 bytes)")
    return bytes.fromhex(text)


def load_psk_file(path: Path) -> dict[str, bytes]:
    """``{identity: key}`` from a JSON file ``{"IDENTITY": "HEXKEY"}``."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise LwM2MError(f"cannot read the PSK file {path} ({e.strerror})") from None
    except ValueError as e:
        raise LwM2MError(f"the PSK file {path} is not JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise LwM2MError(f"the PSK file {path} must be a JSON object {{\"IDENTITY\": \"HEXKEY\", ...}}")
    keys = {}
    for identity, hexkey in data.items():
        keys[identity] = parse_key(hexkey, f"{path}: '{identity}'")
        check_psk(identity, keys[identity], str(path))
    return keys


def patch_aiocoap() -> None:
    """Let aiocoap's DTLS server send requests over the sessions clients opened (see the module doc)."""
    from aiocoap.transports import tinydtls_server as ts
    cls = ts.MessageInterfaceTinyDTLSServer
    if getattr(cls, "_tinyml_patched", False):
        return
    inherited = cls.recognize_remote

    async def recognize_remote(self, remote):
        if isinstance(remote, ts._AddressDTLS):
            return remote._protocol is self._pool
        return await inherited(self, remote)

    cls.recognize_remote = recognize_remote
    cls._tinyml_patched = True


async def server_context(site, host: str, port: int, psk: dict[str, bytes]):
    """An aiocoap server context serving ``site`` on coaps://HOST:PORT with the keys ``psk``."""
    import aiocoap
    require()
    if host in ("0.0.0.0", "::", ""):
        raise LwM2MError(f"the DTLS LwM2M server cannot listen on '{host}' (all addresses): aiocoap's DTLS "
                         "server binds one address", hint="Give --host a single address of this machine")
    if not psk:
        raise LwM2MError("the DTLS LwM2M server has no keys", hint="Give --lwm2m-psk-file FILE")
    patch_aiocoap()
    # the simplesocketserver transports add 1 to an explicit port: port - 1 binds port
    ctx = await aiocoap.Context.create_server_context(site, bind=(host, port - 1), transports=["tinydtls_server"],
                                                      loggername="tinyml.service.coaps")
    ctx.server_credentials.load_from_dict(
        {_CLAIM + ident: {"dtls": {"psk": key, "client-identity": ident.encode()}} for ident, key in psk.items()})
    return ctx


def is_dtls(remote) -> bool:
    """Whether an aiocoap remote is a DTLS (coaps://) peer."""
    return getattr(remote, "scheme", None) == "coaps"


def identity_of(remote) -> str | None:
    """The PSK identity a DTLS remote authenticated with (None: not DTLS, or none)."""
    if not is_dtls(remote):
        return None
    for claim in getattr(remote, "authenticated_claims", ()) or ():
        if isinstance(claim, str) and claim.startswith(_CLAIM):
            return claim[len(_CLAIM):]
    return None


def client_credentials(identity: str, key: bytes) -> dict:
    return {"coaps://*": {"dtls": {"psk": key, "client-identity": identity.encode()}}}
