"""A lossy UDP relay between LwM2M devices and the server, for the fault tests (loopback only).

Devices send to the relay's port as if it were the server; the relay forwards
each device's datagrams to the server from **one upstream socket per device**,
so the server sees that socket's address as the device's address and sends
its requests there, and the relay hands them back to the device from the port
the device talks to (a client answers only requests coming from the server it
registered to). On the way, in each direction:

* ``loss``: the fraction of datagrams dropped (a seeded RNG per direction, so a
  seed gives the same decisions for the same sequence of datagrams);
* ``reorder``: the fraction held back ``delay_s`` (a range) before they go,
  so later datagrams overtake them;
* :meth:`LossyRelay.cut`: everything dropped for a while (a device out of
  coverage), now or after the N-th Block1 request forwarded to a device.

It counts what it forwards and drops, and every Block1 request it hands to a
device (``blocks``: the block numbers, in order), so a test can tell a
transfer that resumed from one that started over. Runs on the caller's event
loop.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from aiocoap import Message


class _Listen(asyncio.DatagramProtocol):
    """The port devices send to."""

    def __init__(self, relay: "LossyRelay"):
        self.relay = relay

    def datagram_received(self, data, addr):
        self.relay._from_device(data, addr)


class _Upstream(asyncio.DatagramProtocol):
    """One device's socket towards the server."""

    def __init__(self, relay: "LossyRelay", device: tuple):
        self.relay, self.device = relay, device

    def datagram_received(self, data, addr):
        self.relay._from_server(data, self.device)

    def error_received(self, exc):       # ICMP from a server that went away: the device's retransmissions go on
        pass


class LossyRelay:
    def __init__(self, server: tuple[str, int], loss: float = 0.0, reorder: float = 0.0,
                 delay_s: tuple[float, float] = (0.005, 0.03), seed: int = 0):
        self.server, self.delay_s = server, delay_s
        self.set_loss(loss, reorder, seed)
        self.counts: Counter = Counter()          # forwarded_up, dropped_down, delayed_up, cut_down, ...
        self.blocks: list[int] = []               # Block1 numbers forwarded to devices, in order
        self.port = 0
        self._listen: asyncio.DatagramTransport | None = None
        self._up: dict[tuple, asyncio.DatagramTransport | list] = {}     # device -> transport (or datagrams waiting)
        self._cut_until = 0.0
        self._cut_after: tuple | None = None       # (match, n, seconds)
        self._matched = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> int:
        """Listen on a free loopback port; returns it (give devices ``coap://127.0.0.1:PORT``)."""
        self._loop = asyncio.get_running_loop()
        self._listen, _ = await self._loop.create_datagram_endpoint(lambda: _Listen(self),
                                                                    local_addr=("127.0.0.1", 0))
        self.port = self._listen.get_extra_info("sockname")[1]
        return self.port

    def stop(self) -> None:
        for up in self._up.values():
            if not isinstance(up, list):
                up.close()
        if self._listen is not None:
            self._listen.close()

    def set_loss(self, loss: float, reorder: float = 0.0, seed: int = 0) -> None:
        """From now on drop ``loss`` and delay ``reorder`` of the datagrams, decided by RNGs seeded with ``seed``."""
        self.loss, self.reorder = loss, reorder
        self.rng = {"up": random.Random(f"{seed}-up"), "down": random.Random(f"{seed}-down")}

    def cut(self, seconds: float) -> None:
        """Drop every datagram, both ways, for ``seconds`` from now."""
        self._cut_until = self._loop.time() + seconds

    def cut_after_blocks(self, n: int, seconds: float) -> None:
        """Once the ``n``-th Block1 request has gone to a device: :meth:`cut` for ``seconds``."""
        self.cut_after(lambda msg: msg.opt.block1 is not None, n, seconds)

    def cut_after(self, match, n: int, seconds: float) -> None:
        """Once the ``n``-th request to a device for which ``match(message)`` holds has gone through:
        :meth:`cut` for ``seconds`` (that request arrives, its answer is lost)."""
        self._cut_after, self._matched = (match, n, seconds), 0

    def address_of(self, device: tuple) -> str | None:
        """The address the server sees for ``device`` (its upstream socket), once it sent something."""
        up = self._up.get(device)
        if up is None or isinstance(up, list):
            return None
        host, port = up.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    # -- forwarding ----------------------------------------------------------------------
    def _from_device(self, data: bytes, device: tuple) -> None:
        up = self._up.get(device)
        if up is None:
            self._up[device] = up = [data]
            self._loop.create_task(self._open(device))
            return
        if isinstance(up, list):
            up.append(data)
            return
        self._pass("up", data, up.sendto)

    async def _open(self, device: tuple) -> None:
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _Upstream(self, device),
                                                                 local_addr=("127.0.0.1", 0), remote_addr=self.server)
        waiting, self._up[device] = self._up[device], transport
        for data in waiting:
            self._pass("up", data, transport.sendto)

    def _from_server(self, data: bytes, device: tuple) -> None:
        msg = _request(data)
        block = msg.opt.block1.block_number if msg is not None and msg.opt.block1 is not None else None
        if msg is not None and self._cut_after is not None and self._loop.time() >= self._cut_until \
                and self._cut_after[0](msg):
            self._matched += 1
            if self._matched >= self._cut_after[1]:
                seconds, self._cut_after = self._cut_after[2], None
                self.counts["forwarded_down"] += 1
                self.blocks += [] if block is None else [block]
                self._listen.sendto(data, device)       # this request arrives; its answer and the rest do not
                self.cut(seconds)
                return
        if self._pass("down", data, lambda d: self._listen.sendto(d, device)) and block is not None:
            self.blocks.append(block)

    def _pass(self, way: str, data: bytes, send) -> bool:
        """Forward ``data`` (now, or later when reordered) unless lost or cut; True when it goes."""
        if self._loop.time() < self._cut_until:
            self.counts[f"cut_{way}"] += 1
            return False
        rng = self.rng[way]
        if rng.random() < self.loss:
            self.counts[f"dropped_{way}"] += 1
            return False
        self.counts[f"forwarded_{way}"] += 1
        if rng.random() < self.reorder:
            self.counts[f"delayed_{way}"] += 1
            self._loop.call_later(rng.uniform(*self.delay_s), send, data)
        else:
            send(data)
        return True


def _request(data: bytes) -> Message | None:
    """The CoAP request in ``data`` (None for a response, an ACK or bytes that are not CoAP)."""
    try:
        msg = Message.decode(data)
    except Exception:
        return None
    return msg if msg.code.is_request() else None
