"""CoAP transmission parameters that bound one confirmable exchange by a timeout.

Used on both sides of LwM2M: the server's requests to devices (``server.py``, ``delivery.py``)
and the device agent's own Register, Update and De-register (``agent.py``). aiocoap takes
them per message (``Message(transport_tuning=...)``).
"""

from __future__ import annotations

import functools

from aiocoap.numbers.constants import TransportTuning

ACK_TIMEOUT_S = 2.0            # RFC 7252's ACK_TIMEOUT, kept when the request timeout leaves room for it
MIN_ACK_TIMEOUT_S = 1.0        # RFC 7252 4.8.1: ACK_TIMEOUT is not to go below 1 s
MAX_RETRANSMIT = 4             # RFC 7252's MAX_RETRANSMIT


@functools.lru_cache(maxsize=64)
def transmission(timeout_s: float) -> TransportTuning:
    """CoAP transmission parameters for a confirmable request given up after ``timeout_s``.

    aiocoap retransmits a confirmable request for MAX_TRANSMIT_WAIT (93 s with RFC 7252's defaults)
    whatever its caller waits, and with NSTART = 1 every later request to that device waits in a
    backlog behind it: a device silent for a few seconds kept the next requests waiting for up to a
    minute and a half, even once it answered again. Cancelling the request does not end the exchange
    (aiocoap 0.4's message layer has no canceller). So the whole schedule, the wait after the last
    retransmission included, ends within ``timeout_s``: as many retransmissions (at most 4) as fit
    with an ACK_TIMEOUT of at least 1 s, and then ACK_TIMEOUT as long as fits, at most 2 s. With the
    default 10 s: 2 s and 1 retransmission (gives up after 6 to 9 s); 5 s: 1.11 s and 1; 3 s: 2 s, none.
    """
    factor = TransportTuning.ACK_RANDOM_FACTOR
    fits = [n for n in range(MAX_RETRANSMIT + 1) if MIN_ACK_TIMEOUT_S * (2 ** (n + 1) - 1) * factor <= timeout_s]
    tuning = TransportTuning()
    tuning.MAX_RETRANSMIT = max(fits, default=0)
    tuning.ACK_TIMEOUT = min(ACK_TIMEOUT_S, timeout_s / ((2 ** (tuning.MAX_RETRANSMIT + 1) - 1) * factor))
    return tuning
