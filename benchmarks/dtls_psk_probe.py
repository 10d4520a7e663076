#!/usr/bin/env python3
"""Feasibility probe: CoAP over DTLS with pre-shared keys (DTLS-PSK) on aiocoap.

Run with any Python that has aiocoap (the project pins 0.4.17) and, for the
DTLS checks, DTLSSocket (``pip install DTLSSocket``; it builds tinydtls and
needs autoconf, automake, libtool and a C compiler)::

    python benchmarks/dtls_psk_probe.py

It prints one line per check, ``PASS``, ``FAIL`` or ``SKIP`` with details, and
exits 0 after reporting (it is a report, not a test; the pytest for the
LwM2M wiring is tests/test_lwm2m_dtls.py).

What it checks, all on 127.0.0.1 with a free UDP port:

* a server context with the ``tinydtls_server`` transport holding the PSK of
  one identity; an aiocoap client (``tinydtls`` transport) with the right
  PSK POSTs and GETs over coaps:// (must succeed), with a wrong PSK and with an
  unknown identity (must fail);
* which identity the server saw (``request.remote.authenticated_claims``);
* server-initiated requests: the server sends a GET back over the DTLS session
  a client opened (what an LwM2M server does for Read/Write/Execute), and the
  client (a server context with the ``tinydtls`` transport) answers it;
* the server sending to a coaps:// address that never connected to it
  (expected to be refused: a DTLS server cannot start a handshake);
* libcoap's DTLS clients (Debian's libcoap3-bin: coap-client-openssl and
  coap-client-gnutls, ``-u IDENTITY -k KEY``) against the aiocoap server.
"""
from __future__ import annotations

import asyncio
import logging
import platform
import shutil
import socket
import subprocess
import sys
import time

RESULTS: list[tuple[str, str, str]] = []


def report(status: str, name: str, detail: str = "") -> None:
    RESULTS.append((status, name, detail))
    print(f"{status:4} {name}" + (f": {detail}" if detail else ""), flush=True)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


IDENTITY = b"probe-device"
KEY = b"secretPSK-012345"  # 16 bytes: tinydtls takes at most DTLS_PSK_MAX_KEY_LEN = 16


async def main() -> None:
    try:
        import aiocoap
        from aiocoap import Code, Message, resource
    except ImportError as e:
        report("FAIL", "import aiocoap", repr(e))
        return
    from aiocoap import meta
    report("PASS", "import aiocoap", f"aiocoap {meta.version}, Python {platform.python_version()}")
    try:
        import DTLSSocket  # noqa: F401
        from DTLSSocket import dtls  # noqa: F401
        try:
            from importlib.metadata import version
            dv = version("DTLSSocket")
        except Exception:  # pragma: no cover
            dv = "?"
        report("PASS", "import DTLSSocket", f"DTLSSocket {dv}")
    except ImportError as e:
        report("FAIL", "import DTLSSocket", f"{e!r}: every DTLS check below is skipped")
        for n in ("server context tinydtls_server", "right PSK POST", "right PSK GET",
                  "wrong PSK refused", "unknown identity refused", "server-initiated GET over the session"):
            report("SKIP", n, "no DTLSSocket")
        return

    # --- server -------------------------------------------------------------
    seen: dict = {}

    class Store(resource.Resource):
        def __init__(self):
            super().__init__()
            self.value = b""

        async def render_post(self, request):
            self.value = request.payload
            seen["remote"] = request.remote
            seen["claims"] = list(request.remote.authenticated_claims)
            return Message(code=Code.CHANGED, payload=b"stored " + str(len(request.payload)).encode())

        async def render_get(self, request):
            seen.setdefault("get_claims", list(request.remote.authenticated_claims))
            return Message(code=Code.CONTENT, payload=self.value)

    site = resource.Site()
    site.add_resource(["store"], Store())
    port = free_udp_port()
    try:
        # aiocoap 0.4.17 quirk: the simplesocketserver-based transports add
        # (COAPS_PORT - COAP_PORT) = 1 to an explicit bind port, so port - 1
        # is what binds `port`; binding to 0.0.0.0 or :: is refused.
        server = await aiocoap.Context.create_server_context(
            site, bind=("127.0.0.1", port - 1), transports=["tinydtls_server"], loggername="probe.server")
        server.server_credentials.load_from_dict(
            {":probe-device": {"dtls": {"psk": KEY, "client-identity": IDENTITY}}})
        report("PASS", "server context tinydtls_server", f"coaps://127.0.0.1:{port}")
    except Exception as e:
        report("FAIL", "server context tinydtls_server", repr(e))
        return

    uri = f"coaps://127.0.0.1:{port}/store"

    # --- client with the right PSK; it also serves a resource ---------------
    client_seen: dict = {}

    class Hello(resource.Resource):
        async def render_get(self, request):
            client_seen["request_from"] = request.remote.hostinfo
            return Message(code=Code.CONTENT, payload=b"hello from the client")

    csite = resource.Site()
    csite.add_resource(["hello"], Hello())
    client = await aiocoap.Context.create_server_context(
        csite, bind=None, transports=["tinydtls"], loggername="probe.client")
    client.client_credentials.load_from_dict(
        {"coaps://*": {"dtls": {"psk": KEY, "client-identity": IDENTITY}}})

    async def req(ctx, code, payload=b"", timeout=10.0):
        return await asyncio.wait_for(ctx.request(Message(code=code, uri=uri, payload=payload)).response, timeout)

    try:
        t0 = time.monotonic()
        r = await req(client, Code.POST, b"over dtls")
        ok = r.code == Code.CHANGED
        report("PASS" if ok else "FAIL", "right PSK POST",
               f"{r.code} {r.payload!r} in {time.monotonic() - t0:.2f} s; server saw claims {seen.get('claims')}")
    except Exception as e:
        report("FAIL", "right PSK POST", repr(e))
    try:
        r = await req(client, Code.GET)
        ok = r.code == Code.CONTENT and r.payload == b"over dtls"
        report("PASS" if ok else "FAIL", "right PSK GET", f"{r.code} {r.payload!r}")
    except Exception as e:
        report("FAIL", "right PSK GET", repr(e))

    # --- server-initiated request over the session the client opened ---------
    remote = seen.get("remote")
    if remote is None:
        report("SKIP", "server-initiated GET over the session", "no session")
    else:
        # as shipped: MessageInterfaceTinyDTLSServer inherits recognize_remote
        # from simplesocketserver, which only recognises simplesocketserver's
        # own _Address class, not tinydtls_server's _AddressDTLS
        try:
            m = Message(code=Code.GET, uri_path=["hello"])
            m.remote = remote
            r = await asyncio.wait_for(server.request(m).response, 10)
            report("PASS", "server-initiated GET over the session, aiocoap as shipped", f"{r.code} {r.payload!r}")
        except Exception as e:
            report("FAIL", "server-initiated GET over the session, aiocoap as shipped",
                   f"{type(e).__name__}: {e} (expected with aiocoap 0.4.17: recognize_remote does not know _AddressDTLS)")
        from aiocoap.transports import tinydtls_server

        async def recognize_remote(self, remote):
            return isinstance(remote, tinydtls_server._AddressDTLS) and remote._protocol is self._pool

        tinydtls_server.MessageInterfaceTinyDTLSServer.recognize_remote = recognize_remote
        print("     (patched MessageInterfaceTinyDTLSServer.recognize_remote to recognise _AddressDTLS of its own socket)")
        try:
            m = Message(code=Code.GET, uri_path=["hello"])
            m.remote = remote
            r = await asyncio.wait_for(server.request(m).response, 10)
            ok = r.code == Code.CONTENT and r.payload == b"hello from the client"
            report("PASS" if ok else "FAIL", "server-initiated GET over the session, recognize_remote patched",
                   f"{r.code} {r.payload!r}; client saw it from {client_seen.get('request_from')}")
        except Exception as e:
            report("FAIL", "server-initiated GET over the session, recognize_remote patched", repr(e))
        # and once more after the client sent a further request (the session stays)
        try:
            await req(client, Code.POST, b"second")
            m = Message(code=Code.GET, uri_path=["hello"])
            m.remote = seen["remote"]
            r = await asyncio.wait_for(server.request(m).response, 10)
            report("PASS" if r.code == Code.CONTENT else "FAIL", "server-initiated GET after more traffic",
                   f"{r.code}; same remote object: {seen['remote'] is remote}")
        except Exception as e:
            report("FAIL", "server-initiated GET after more traffic", repr(e))

    # --- server to a coaps:// address that never connected ------------------
    try:
        r = await asyncio.wait_for(server.request(Message(code=Code.GET, uri=f"coaps://127.0.0.1:{free_udp_port()}/x")).response, 5)
        report("FAIL", "server refuses to open DTLS sessions itself", f"unexpected answer {r.code}")
    except Exception as e:
        report("PASS", "server refuses to open DTLS sessions itself", f"{type(e).__name__}: {e}")

    # --- wrong PSK, unknown identity ----------------------------------------
    for name, creds in (("wrong PSK refused", {"psk": b"not-the-key", "client-identity": IDENTITY}),
                        ("unknown identity refused", {"psk": KEY, "client-identity": b"someone-else"})):
        bad = await aiocoap.Context.create_client_context(transports=["tinydtls"], loggername="probe.bad")
        bad.client_credentials.load_from_dict({"coaps://*": {"dtls": creds}})
        t0 = time.monotonic()
        try:
            r = await req(bad, Code.GET, timeout=15)
            report("FAIL", name, f"got an answer: {r.code} {r.payload!r}")
        except Exception as e:
            report("PASS", name, f"{type(e).__name__}: {e or ''} after {time.monotonic() - t0:.1f} s")
        try:
            await asyncio.wait_for(bad.shutdown(), 5)
        except Exception:
            pass

    # a 20-byte key, the same on both sides. tinydtls asks for the key into a buffer of
    # DTLS_PSK_MAX_KEY_LEN = 16 bytes, and DTLSSocket 0.2.3's _get_psk_info memcpy()s the whole key into
    # it without checking result_length: a key over 16 bytes overruns that stack buffer (undefined
    # behaviour; 17 bytes happened to work once, 20 bytes gave the server "Incoming error 80", alert
    # internal_error, and the client learned nothing and timed out). The project refuses keys over 16 bytes.
    server.server_credentials.load_from_dict(
        {":long-key": {"dtls": {"psk": b"x" * 20, "client-identity": b"long-key"}}})
    long = await aiocoap.Context.create_client_context(transports=["tinydtls"], loggername="probe.long")
    long.client_credentials.load_from_dict({"coaps://*": {"dtls": {"psk": b"x" * 20, "client-identity": b"long-key"}}})
    t0 = time.monotonic()
    try:
        r = await req(long, Code.GET, timeout=15)
        report("FAIL", "20-byte PSK (above tinydtls' 16) fails", f"it worked: {r.code}")
    except Exception as e:
        report("PASS", "20-byte PSK (above tinydtls' 16) fails",
               f"{type(e).__name__}: {e or ''} after {time.monotonic() - t0:.1f} s (server log: 'Incoming error 80')")
    try:
        await asyncio.wait_for(long.shutdown(), 5)
    except Exception:
        pass

    # the right client still works after the failed handshakes
    try:
        r = await req(client, Code.GET)
        report("PASS" if r.code == Code.CONTENT else "FAIL", "right PSK still works after refused handshakes", str(r.code))
    except Exception as e:
        report("FAIL", "right PSK still works after refused handshakes", repr(e))

    # --- libcoap clients ------------------------------------------------------
    for tool in ("coap-client-openssl", "coap-client-gnutls"):
        exe = shutil.which(tool)
        if exe is None:
            report("SKIP", f"libcoap {tool} PSK", "not installed (Debian: apt-get install libcoap3-bin)")
            continue
        for label, key, expect in (("right key", KEY, True), ("wrong key", b"not-the-key", False)):
            cmd = [exe, "-m", "get", "-u", IDENTITY.decode(), "-k", key.decode(), "-B", "8", uri]
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 15)
            except asyncio.TimeoutError:
                proc.kill()
                out = b"(killed after 15 s)"
            text = out.decode(errors="replace").strip().replace("\n", " | ")
            got = b"second" in out
            report("PASS" if got == expect else "FAIL", f"libcoap {tool} PSK, {label}",
                   f"rc {proc.returncode}: {text[:300]}")

    await client.shutdown()
    await server.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="  log %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(main())
    except Exception as e:  # report, do not crash
        report("FAIL", "probe crashed", repr(e))
    n = {s: sum(1 for r in RESULTS if r[0] == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"summary: {n['PASS']} PASS, {n['FAIL']} FAIL, {n['SKIP']} SKIP")
    sys.exit(0)
