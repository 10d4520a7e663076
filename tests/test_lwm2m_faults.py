"""Faults between devices and the LwM2M server (issue 13, item 6), over loopback UDP.

A real ``tinyml serve`` with a 5 s device request timeout (so one CoAP
retransmission, 1.1 to 1.7 s after the first transmission, and the exchange
given up within 5 s: ``lwm2m.server.transmission``), in-process device agents
(the host-built C loader behind each) talking to it through
:class:`lossy_relay.LossyRelay`, which drops, delays or cuts datagrams. The KWS
module is pushed block-wise; the device's output must still equal TensorFlow
Lite Micro's, and a cut transfer must resume, not start over.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from agent_support import Loop, agent_config, kws_module, last_output, lwm2m_service, push, wait_capabilities
from lossy_relay import LossyRelay
from service_support import one_line

from platformio_tinyml.lwm2m.agent import Agent
from platformio_tinyml.lwm2m.tuning import transmission

TIMEOUT_S = 5


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    srv = lwm2m_service(tmp_path_factory.mktemp("faults") / "data", "fleet", "fault-*", timeout_s=str(TIMEOUT_S))
    srv.reader2 = srv.client(srv.read_token)          # a second client, for requests made while one waits
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loop():
    lp = Loop()
    yield lp
    lp.close()


@contextlib.contextmanager
def running(svc, loop, endpoint, relay: LossyRelay | None = None):
    """One device registered to the server, through ``relay`` when given; stopped at the end."""
    port = svc.coap_port if relay is None else loop.run(relay.start())
    agent = Agent(agent_config(port, endpoint))
    loop.run(agent.start())
    try:
        assert loop.run(agent.wait_registered(30), timeout=40), f"{endpoint} did not register"
        yield agent.devices[0]
    finally:
        loop.run(agent.stop())
        if relay is not None:
            loop.loop.call_soon_threadsafe(relay.stop)


def _relay(svc, **kw) -> LossyRelay:
    return LossyRelay(("127.0.0.1", svc.coap_port), **kw)


def _blocks(mod) -> int:
    return -(-len(mod.data) // 1024)


@pytest.mark.parametrize("timeout, ack, transmissions", [(3, 2.0, 1), (5, 1.111, 2), (10, 2.0, 2), (60, 1.290, 5)])
def test_retransmissions_end_within_the_request_timeout(timeout, ack, transmissions):
    t = transmission(timeout)
    assert (round(t.ACK_TIMEOUT, 3), t.MAX_RETRANSMIT + 1) == (ack, transmissions)
    assert t.MAX_TRANSMIT_WAIT <= timeout + 1e-9 and t.ACK_TIMEOUT >= 1.0


def test_a_silent_device_fails_within_the_timeout_and_answers_at_once_when_back(svc, loop):
    """The device hears nothing and says nothing for two request timeouts (10 s). A request to
    it fails within the timeout, in one line; the other device answers meanwhile as usual; and
    once it is back the next request is answered at once. Before the request's CoAP exchange was
    bounded by the timeout, aiocoap went on retransmitting it for up to 93 s, and the request after
    the device came back waited in its backlog for the next retransmission (14 to 21 s after the
    first), past its own timeout: measured 5.0 s instead of 7 ms."""
    relay = _relay(svc)
    with running(svc, loop, "fault-quiet", relay), running(svc, loop, "fault-other"):
        for ep in ("fault-quiet", "fault-other"):
            wait_capabilities(svc, ep)
        t0 = time.monotonic()
        loop.loop.call_soon_threadsafe(relay.cut, 2 * TIMEOUT_S)
        others = []
        with ThreadPoolExecutor(1) as pool:
            quiet = pool.submit(svc.reader.get, "/v1/devices/fault-quiet/resources/9/0/7")
            while not quiet.done():
                t = time.monotonic()
                r = svc.reader2.get("/v1/devices/fault-other/resources/9/0/7")
                others.append(time.monotonic() - t)
                assert r.status_code == 200, r.text
                time.sleep(0.1)
            r = quiet.result()
        failed_after = time.monotonic() - t0
        one_line(r, 424, "GET /9/0/7 on 'fault-quiet': no answer within 5 s (2 transmissions)")
        assert failed_after < TIMEOUT_S + 1.5, failed_after        # the exchange gives up after 3.3 to 5 s
        assert len(others) >= 10 and max(others) < 1.0, others

        time.sleep(max(0.0, t0 + 2 * TIMEOUT_S + 0.3 - time.monotonic()))     # the device is back
        t = time.monotonic()
        r = svc.reader.get("/v1/devices/fault-quiet/resources/9/0/7")
        back = time.monotonic() - t
        assert r.status_code == 200 and r.json()["values"] == {"/9/0/7": 0}, r.text
        assert back < 1.0, back
        print(f"\nsilent device: failed after {failed_after:.2f} s; the other device answered in "
              f"{max(others) * 1000:.0f} ms at most ({len(others)} reads); back: answered in {back * 1000:.0f} ms")


def test_module_delivered_through_10_percent_loss_and_reordering(svc, loop):
    """10 % of the datagrams lost each way, 10 % delayed 5-30 ms (overtaken by the next ones):
    the module ends active and computes what TensorFlow Lite Micro computes."""
    mod, golden = kws_module()
    relay = _relay(svc, loss=0.1, reorder=0.1, seed=13)
    with running(svc, loop, "fault-lossy", relay) as dev:
        t = time.monotonic()
        st = push(svc, "fault-lossy", mod.data, timeout=120)
        took = time.monotonic() - t
        assert st["state"] == "active", st
        assert (st["bytes_done"], st["blocks_done"]) == (len(mod.data), _blocks(mod))
        assert sorted(set(relay.blocks)) == list(range(_blocks(mod)))
        assert dev.last_output == golden and dev.inference_count == 1
        assert last_output(svc, "fault-lossy", tries=5) == golden      # read over LwM2M, through the lossy link
        c = relay.counts
        print(f"\n10 % loss: active in {took:.1f} s; {st['resumed']} resumes, {len(relay.blocks)} block "
              f"transmissions for {_blocks(mod)} blocks; datagrams dropped {c['dropped_down']} to the device, "
              f"{c['dropped_up']} from it; delayed {c['delayed_down'] + c['delayed_up']}")
        assert c["dropped_down"] + c["dropped_up"] > 0 and c["delayed_down"] + c["delayed_up"] > 0


def test_device_cut_off_mid_transfer_resumes_from_the_last_acknowledged_block(svc, loop):
    """After the 8th block the device is unreachable for 4 s (the block arrived, its answer is
    lost). The transfer goes on at that block once the device answers: block 0 went once, every
    block at most twice, in order, 30 block requests for 29 blocks."""
    mod, golden = kws_module()
    relay = _relay(svc)
    with running(svc, loop, "fault-cut", relay) as dev:
        wait_capabilities(svc, "fault-cut")
        relay.cut_after_blocks(8, 4.0)
        st = push(svc, "fault-cut", mod.data, timeout=60)
        assert st["state"] == "active", st
        assert st["resumed"] >= 1 and st["blocks_done"] == _blocks(mod), st
        n = _blocks(mod)
        assert relay.counts["cut_down"] + relay.counts["cut_up"] >= 1, relay.counts
        assert relay.blocks[:8] == list(range(8)) and relay.blocks.count(0) == 1, relay.blocks
        assert relay.blocks == sorted(relay.blocks) and sorted(set(relay.blocks)) == list(range(n))
        assert n < len(relay.blocks) <= n + 2, relay.blocks
        assert dev.last_output == golden
        assert last_output(svc, "fault-cut") == golden
        print(f"\ncut after 8 blocks for 4 s: {len(relay.blocks)} block requests reached the device for {n} "
              f"blocks ({st['resumed']} resumes); dropped while cut: {dict(relay.counts)}")


def test_an_install_whose_answer_is_lost_is_not_sent_again(svc, loop):
    """The Install arrives and the device installs, but its answer is lost (everything dropped
    for 2 s). The delivery reads object 9, finds INSTALLED and goes on: a second Install
    would be refused (4.05, Install needs state DELIVERED) and the delivery would fail."""
    mod, golden = kws_module()
    relay = _relay(svc)
    with running(svc, loop, "fault-install", relay) as dev:
        wait_capabilities(svc, "fault-install")
        handled, handle = [], dev.handle

        def counting(request):
            handled.append((request.code.name, "/".join(request.opt.uri_path)))
            return handle(request)
        dev.handle = counting
        relay.cut_after(lambda m: m.code.name == "POST" and tuple(m.opt.uri_path) == ("9", "0", "4"), 1, 2.0)
        st = push(svc, "fault-install", mod.data, timeout=60)
        assert st["state"] == "active" and st["resumed"] >= 1, st
        assert handled.count(("POST", "9/0/4")) == 1 and handled.count(("POST", "9/0/10")) == 1, handled
        assert relay.counts["cut_up"] >= 1, relay.counts
        assert dev.last_output == golden


def test_the_last_block_sent_again_after_its_answer_was_lost_is_acknowledged(svc, loop):
    """The last block arrives (the device checks the module: DELIVERED) but its answer is
    lost for 3 s, past the block's CoAP exchange: the delivery sends it again as a new
    request. The device recognises the same bytes and acknowledges them again; before, it
    answered 4.08 (no package can be written in DELIVERED) and the delivery failed."""
    mod, golden = kws_module()
    relay = _relay(svc)
    with running(svc, loop, "fault-last", relay) as dev:
        wait_capabilities(svc, "fault-last")
        relay.cut_after(lambda m: m.opt.block1 is not None and not m.opt.block1.more, 1, 3.0)
        st = push(svc, "fault-last", mod.data, timeout=60)
        assert st["state"] == "active" and st["resumed"] >= 1, st
        n = _blocks(mod)
        assert relay.blocks == list(range(n)) + [n - 1], relay.blocks
        assert dev.last_output == golden


class _Recording(LossyRelay):
    """The relay, noting (time, token, message id) of every Register a device sends."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.registers: list[tuple[float, bytes, int]] = []

    def _from_device(self, data, device):
        msg = _decode(data)
        if msg is not None and msg.code == Code.POST and list(msg.opt.uri_path) == ["rd"]:
            self.registers.append((time.monotonic(), msg.token, msg.mid))
        super()._from_device(data, device)


def _decode(data: bytes):
    try:
        return Message.decode(data)
    except Exception:     # not CoAP: the relay forwards it as it is
        return None


def test_an_unanswered_register_is_given_up_within_its_timeout_and_sent_again(svc, loop):
    """The server is unreachable for 7 s when the device starts (request timeout 3 s: one
    transmission, given up after 2 to 3 s). Each Register is one exchange, transmitted once and
    given up within 3 s; a new Register goes out after the backoff, and the device registers
    within a few seconds of the server coming back. With aiocoap's defaults the first Register
    was retransmitted (2-3 s, 6-9 s, 14-21 s, ... for up to 93 s), one token the whole time, and
    the agent gave it up only after 60 s."""
    relay = _Recording(("127.0.0.1", svc.coap_port))
    port = loop.run(relay.start())
    loop.loop.call_soon_threadsafe(relay.cut, 7)
    t0 = time.monotonic()
    agent = Agent(agent_config(port, "fault-register", request_timeout_s=3))
    loop.run(agent.start())
    try:
        assert loop.run(agent.wait_registered(20), timeout=30), relay.registers
        registered_after = time.monotonic() - t0
        tokens = [token for _, token, _ in relay.registers]
        assert len(set(tokens)) >= 3, relay.registers                     # given up and sent again, twice or more
        assert len(tokens) == len(set(tokens)), relay.registers           # each one transmitted once
        gaps = [b - a for (a, _, _), (b, _, _) in zip(relay.registers, relay.registers[1:])]
        assert all(2 <= g <= 3 + 4 + 1 for g in gaps), gaps                # timeout, then 1 s, 2 s, 4 s backoff
        assert 7 <= registered_after <= 7 + 3 + 4 + 1, registered_after
        assert relay.counts["cut_up"] == len(tokens) - 1                  # the last one got through
    finally:
        loop.run(agent.stop())
        loop.loop.call_soon_threadsafe(relay.stop)
