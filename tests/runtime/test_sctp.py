"""SCTP bundling and delayed SACKs (greenroom.runtime.sctp) between two real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import pytest
from aiortc.rtcsctptransport import SCTP_MAX_PACKET_LENGTH, parse_packet
from OpenSSL import SSL

from greenroom.runtime import sctp
from greenroom.runtime.peer import LOSSY, RELIABLE
from tests.helpers import assert_eventually_async
from tests.runtime.test_peer import Pair, run


class Wire:
    """Wraps one side's DTLS ``_send_data``: records every SCTP packet sent, optionally drops some."""

    def __init__(self, peer: Any) -> None:
        self.dtls = peer._pc.sctp.transport
        self.original = self.dtls._send_data
        self.packets: list[list[Any]] = []
        self.drop_every = 0
        self.dtls._send_data = self._send

    async def _send(self, data: bytes) -> None:
        assert len(data) <= SCTP_MAX_PACKET_LENGTH
        chunks = parse_packet(data)[3]
        self.packets.append(chunks)
        if self.drop_every and len(self.packets) % self.drop_every == 0 and _has_data(chunks):
            return
        await self.original(data)

    def count(self, kind: str) -> int:
        return sum(1 for chunks in self.packets for c in chunks if type(c).__name__ == kind)


def _has_data(chunks: list[Any]) -> bool:
    return any(type(c).__name__ == "DataChunk" for c in chunks)


def _sctp_state(peer: Any) -> Any:
    return peer._pc.sctp


def test_pack_chunks_keeps_data_order_and_puts_the_control_chunk_first() -> None:
    data = [bytes([i]) * size for i, size in enumerate([600, 500, 100, 1176, 40])]
    packets = sctp.pack_chunks(b"S" * 16, data, limit=1189)
    assert b"".join(packets).replace(b"S" * 16, b"") == b"".join(data)  # order kept, nothing lost
    assert all(len(p) + 12 <= 1189 for p in packets)
    assert packets[0].startswith(b"S" * 16)  # the SACK leads the first packet with room
    assert [len(p) for p in packets] == [16 + 1100, 100, 1176, 40]  # greedy, never reordered
    assert sctp.pack_chunks(b"S" * 16, [b"x" * 1176], limit=1189) == [b"S" * 16, b"x" * 1176]
    assert sctp.pack_chunks(None, []) == []


def test_tuning_from_the_environment() -> None:
    assert sctp.tuning_from_env({}) == sctp.SctpTuning()
    assert sctp.tuning_from_env({sctp.ENV_VAR: "off"}) is None
    assert sctp.tuning_from_env({sctp.ENV_VAR: "0"}) is None
    assert sctp.tuning_from_env({sctp.ENV_VAR: "bundle"}) == sctp.SctpTuning(delayed_sack=False)
    assert sctp.tuning_from_env({sctp.ENV_VAR: "sack"}) == sctp.SctpTuning(bundling=False)
    with pytest.raises(ValueError):
        sctp.SctpTuning(sack_delay=0.5)


def test_a_transport_without_the_attributes_is_refused() -> None:
    with pytest.raises(sctp.SctpSeamError, match="_association_state"):
        sctp.enable(object(), sctp.SctpTuning())


def test_off_leaves_aiortc_untouched_and_on_is_per_peer_connection() -> None:
    async def body() -> None:
        plain, tuned = Pair(sctp_tuning=None), Pair()
        try:
            await plain.connect()
            await tuned.connect()
            assert not sctp.is_enabled(_sctp_state(plain.offerer))
            assert not sctp.is_enabled(_sctp_state(plain.answerer))
            assert sctp.is_enabled(_sctp_state(tuned.offerer))
            assert sctp.is_enabled(_sctp_state(tuned.answerer))
            wire = Wire(plain.offerer)
            for i in range(50):
                await plain.offerer.send(RELIABLE, b"%d" % i)
            await assert_eventually_async(lambda: len(plain.answerer_sink.data(RELIABLE)) == 50)
            assert all(len(chunks) == 1 for chunks in wire.packets)  # aiortc: one chunk per packet
        finally:
            await plain.close()
            await tuned.close()

    run(body)


def test_bundled_bursts_arrive_in_order_in_few_packets() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            out, back = Wire(pair.offerer), Wire(pair.answerer)
            rng = random.Random(6)
            sent = [
                bytes([i % 256]) * rng.choice([1, 30, 200, 1100, 1300, 5000]) + b"%d" % i for i in range(2000)
            ]
            for message in sent:
                await pair.offerer.send(RELIABLE, message)
            await assert_eventually_async(
                lambda: len(pair.answerer_sink.data(RELIABLE)) == len(sent), timeout=30
            )
            assert pair.answerer_sink.data(RELIABLE) == sent
            assert back.count("SackChunk") < 0.75 * len(out.packets), "SACKs should be delayed/coalesced"
            out.packets.clear()
            for i in range(1000):
                await pair.offerer.send(RELIABLE, b"small%d" % i)
            await assert_eventually_async(lambda: len(pair.answerer_sink.data(RELIABLE)) == len(sent) + 1000)
            assert pair.answerer_sink.data(RELIABLE)[len(sent) :] == [b"small%d" % i for i in range(1000)]
            assert out.count("DataChunk") == 1000
            assert len(out.packets) < 1000 / 5, "small chunks should share packets"
        finally:
            await pair.close()

    run(body, timeout=60)


def test_a_large_burst_completes() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            sent = [bytes([i % 256]) * 60_000 for i in range(150)]  # 9 MB, ~7,800 chunks
            for message in sent:
                await pair.offerer.send(RELIABLE, message)
            await assert_eventually_async(
                lambda: len(pair.answerer_sink.data(RELIABLE)) == len(sent), timeout=60
            )
            assert pair.answerer_sink.data(RELIABLE) == sent
        finally:
            await pair.close()

    run(body, timeout=90)


def test_losses_keep_reliable_complete_and_lossy_unretransmitted() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            wire = Wire(pair.offerer)
            wire.drop_every = 5
            for i in range(300):
                await pair.offerer.send(RELIABLE, b"r%d" % i)
                await pair.offerer.send(LOSSY, b"l%d" % i)
                if i % 20 == 0:
                    await asyncio.sleep(0.005)  # pacing: several flights, so SACK gaps repair losses too
            await assert_eventually_async(lambda: len(pair.answerer_sink.data(RELIABLE)) == 300, timeout=30)
            assert pair.answerer_sink.data(RELIABLE) == [b"r%d" % i for i in range(300)]
            lossy = pair.answerer_sink.data(LOSSY)
            assert len(lossy) < 300, "some lossy messages must have been dropped (no retransmission)"
            assert len(set(lossy)) == len(lossy)
            assert set(lossy) <= {b"l%d" % i for i in range(300)}
            # the association recovers: FORWARD TSN acknowledged, nothing left outstanding, lossy flows again
            wire.drop_every = 0
            for i in range(10):
                await pair.offerer.send(LOSSY, b"after%d" % i)
            await assert_eventually_async(
                lambda: (
                    [m for m in pair.answerer_sink.data(LOSSY) if m.startswith(b"after")]
                    == [b"after%d" % i for i in range(10)]
                ),
                timeout=10,
            )
            await assert_eventually_async(lambda: not _sctp_state(pair.offerer)._sent_queue, timeout=10)
        finally:
            await pair.close()

    run(body, timeout=60)


def test_delayed_sack_does_not_delay_a_lone_message() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            latencies = []
            for i in range(100):
                before = len(pair.answerer_sink.data(RELIABLE))
                started = time.perf_counter()
                await pair.offerer.send(RELIABLE, b"ping%d" % i)
                while len(pair.answerer_sink.data(RELIABLE)) == before:  # noqa: ASYNC110 - a busy poll, to time it
                    await asyncio.sleep(0)  # a yield of the busy poll (the latency is what is measured)
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.004)  # pacing below the 10 ms SACK delay: a SACK may still be pending
            tuning = sctp.SctpTuning()
            assert statistics.median(latencies) < tuning.sack_delay / 2, latencies
            await assert_eventually_async(lambda: not _sctp_state(pair.offerer)._sent_queue, timeout=2)
        finally:
            await pair.close()

    run(body)


def test_a_delayed_sack_in_the_dtls_closing_window_ends_quietly() -> None:
    """aiortc's DTLS stop() shuts the SSL object down before it leaves CONNECTED (rtcdtlstransport.py
    lines 558-566): a delayed SACK sent in that window gets OpenSSL's 'protocol is shutdown', which must
    not escape its task (it did, as 'Task exception was never retrieved', when a fleet drained)."""

    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            await pair.wait_open()
            offerer = _sctp_state(pair.offerer)
            state = offerer.__dict__[sctp._STATE_ATTR]
            dtls = offerer.transport
            assert dtls._state.name == "CONNECTED"

            async def shut_down(data: bytes) -> None:  # what _send_data does once stop() shut SSL down
                raise SSL.Error([("SSL routines", "", "protocol is shutdown")])

            dtls._send_data = shut_down
            try:
                state.unacked = 1  # a SACK is owed: the delayed-SACK task sends one now
                await sctp._delayed_sack(offerer, state)  # raised OpenSSL.SSL.Error before the fix
            finally:
                del dtls._send_data
            assert state.sack_task is None
        finally:
            await pair.close()

    run(body)
