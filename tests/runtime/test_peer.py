"""Two real aiortc peer connections in one process, over 127.0.0.1 only (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aioice.ice import ICE_COMPLETED

from greenroom.codecs.errors import PayloadTooLargeError
from greenroom.runtime import loop as rt
from greenroom.runtime.ice import IceCandidate, IcePolicy
from greenroom.runtime.peer import (
    LOSSY,
    RELIABLE,
    ChannelNotOpenError,
    DataChannelClosed,
    DataChannelOpened,
    DataReceived,
    NegotiationError,
    PeerConnectTimeoutError,
    PeerRole,
    PeerStateChanged,
    PeerTransport,
    PeerTransportError,
    ice_connections,
)
from tests.helpers import assert_eventually_async
from tests.waiting import wait_until

T = TypeVar("T")
LOOPBACK = IcePolicy.loopback()


class Collect:
    """A sink that records events (tell is called on the runtime loop, read there too)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def tell(self, message: Any) -> None:
        self.events.append(message)

    def data(self, label: str) -> list[bytes]:
        return [e.data for e in self.events if isinstance(e, DataReceived) and e.label == label]

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]


class Pair:
    """An offerer that creates the channels (client publisher / server subscriber) and an answerer."""

    def __init__(self, role: PeerRole = PeerRole.PUBLISHER, **options: Any) -> None:
        self.offerer_sink, self.answerer_sink = Collect(), Collect()
        self.offerer = PeerTransport(
            role, self.offerer_sink, policy=LOOPBACK, create_data_channels=True, **options
        )
        self.answerer = PeerTransport(role, self.answerer_sink, policy=LOOPBACK, **options)
        self.offer = self.answer = ""

    async def connect(self) -> None:
        self.offer = await self.offerer.create_offer()
        self.answer = await self.answerer.create_answer(self.offer)
        await self.offerer.set_remote_description(self.answer, "answer")
        await self.wait_open()

    async def wait_open(self) -> None:
        for peer in (self.offerer, self.answerer):
            await peer.wait_connected(5)
            for label in (RELIABLE, LOSSY):
                await peer.wait_channel_open(label, 5)

    async def close(self) -> None:
        await self.offerer.close()
        await self.answerer.close()


def run(test: Callable[[], Awaitable[None]], timeout: float = 30) -> None:
    async def main() -> None:
        await test()

    rt.run_sync(main(), timeout=timeout)


def _candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.mark.parametrize("role", list(PeerRole))
def test_offer_answer_connects_over_loopback_only(role: PeerRole) -> None:
    async def body() -> None:
        pair = Pair(role)
        try:
            await pair.connect()
            for sdp in (pair.offer, pair.answer):
                assert _candidates(sdp), "aiortc inlines its candidates"
                assert all(" 127.0.0.1 " in line and " udp " in line for line in _candidates(sdp))
                assert "a=end-of-candidates" in sdp
            for sink in (pair.offerer_sink, pair.answerer_sink):
                assert PeerStateChanged(role, "connected") in sink.events
                assert {e.label for e in sink.of(DataChannelOpened)} == {RELIABLE, LOSSY}
            assert pair.offerer.local_description == pair.offer
            assert sorted(pair.answerer.channel_labels()) == [LOSSY, RELIABLE]
        finally:
            await pair.close()

    run(body)


def test_reliable_and_lossy_both_ways_in_order() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            await pair.connect()
            messages = [i.to_bytes(4, "big") * 8 for i in range(300)]
            for message in messages:
                await pair.offerer.send(RELIABLE, message)
                await pair.answerer.send(RELIABLE, message[::-1])
            await pair.offerer.send(LOSSY, b"lossy up")
            await pair.answerer.send(LOSSY, b"lossy down")
            await pair.offerer.send(RELIABLE, b"")

            def done() -> bool:
                return (
                    len(pair.answerer_sink.data(RELIABLE)) == 301
                    and len(pair.offerer_sink.data(RELIABLE)) == 300
                )

            await assert_eventually_async(done, timeout=10)
            assert pair.answerer_sink.data(RELIABLE) == [*messages, b""]
            assert pair.offerer_sink.data(RELIABLE) == [m[::-1] for m in messages]
            await assert_eventually_async(lambda: pair.answerer_sink.data(LOSSY) == [b"lossy up"])
            await assert_eventually_async(lambda: pair.offerer_sink.data(LOSSY) == [b"lossy down"])
        finally:
            await pair.close()

    run(body)


def test_flow_control_bounds_the_buffer_during_a_burst() -> None:
    count, size, high = 2000, 15_000, 128 * 1024

    async def body() -> None:
        pair = Pair(high_water=high, low_water=32 * 1024)
        try:
            await pair.connect()
            peak = 0
            for i in range(count):
                await pair.offerer.send(RELIABLE, i.to_bytes(4, "big") + bytes(size - 4))
                peak = max(peak, pair.offerer.buffered_amount(RELIABLE))
            assert peak <= high + size
            assert peak > high // 2, "the burst should actually have filled the buffer"
            await assert_eventually_async(lambda: len(pair.answerer_sink.data(RELIABLE)) == count, timeout=20)
            received = pair.answerer_sink.data(RELIABLE)
            assert [int.from_bytes(m[:4], "big") for m in received] == list(range(count))
            assert all(len(m) == size for m in received)
        finally:
            await pair.close()

    run(body, timeout=40)


def test_concurrent_senders_are_served_in_call_order() -> None:
    async def body() -> None:
        pair = Pair(high_water=16 * 1024, low_water=0)
        try:
            await pair.connect()
            sends = [pair.offerer.send(RELIABLE, i.to_bytes(2, "big") * 5000) for i in range(40)]
            await asyncio.gather(*sends)
            await assert_eventually_async(lambda: len(pair.answerer_sink.data(RELIABLE)) == 40, timeout=10)
            assert [m[:2] for m in pair.answerer_sink.data(RELIABLE)] == [
                i.to_bytes(2, "big") for i in range(40)
            ]
        finally:
            await pair.close()

    run(body)


def test_try_send_sends_only_what_needs_no_wait_and_keeps_the_order() -> None:
    async def body() -> None:
        pair = Pair(high_water=16 * 1024, low_water=0)
        try:
            assert not pair.offerer.try_send(RELIABLE, b"early")  # no channel yet
            await pair.connect()
            assert pair.offerer.try_send(RELIABLE, b"now")
            assert not pair.offerer.try_send(RELIABLE, bytes(64_001))  # over the cap: send() raises
            waiting = [asyncio.ensure_future(pair.offerer.send(RELIABLE, bytes(20_000))) for _ in range(3)]
            await asyncio.sleep(0)  # the sends are in progress (one holds the lock, the others wait)
            assert not pair.offerer.try_send(RELIABLE, b"behind")  # would overtake them
            await asyncio.gather(*waiting)
            await assert_eventually_async(lambda: pair.offerer.buffered_amount(RELIABLE) <= 16 * 1024)
            assert pair.offerer.try_send(RELIABLE, bytes(40_000))  # below the mark: it goes; now above it
            assert not pair.offerer.try_send(RELIABLE, b"after")  # above the high-water mark: send() waits
            await assert_eventually_async(lambda: pair.offerer.buffered_amount(RELIABLE) <= 16 * 1024)
            assert pair.offerer.try_send(RELIABLE, b"after")
            expected = [b"now", *(bytes(20_000) for _ in range(3)), bytes(40_000), b"after"]
            await assert_eventually_async(lambda: pair.answerer_sink.data(RELIABLE) == expected, timeout=10)
        finally:
            await pair.close()
        assert not pair.offerer.try_send(RELIABLE, b"closed")

    run(body)


def test_oversize_messages_are_refused_before_sending() -> None:
    async def body() -> None:
        capped, uncapped = Pair(), Pair(message_cap=None)
        try:
            await capped.connect()
            await uncapped.connect()
            assert capped.offerer.max_message_size == 64_000  # aiortc advertises 262144; LiveKit caps
            with pytest.raises(PayloadTooLargeError) as caught:
                await capped.offerer.send(RELIABLE, bytes(64_001))
            assert (caught.value.size, caught.value.limit) == (64_001, 64_000)
            await capped.offerer.send(RELIABLE, bytes(64_000))
            await assert_eventually_async(lambda: capped.answerer_sink.data(RELIABLE) == [bytes(64_000)])

            assert uncapped.answerer.max_message_size == 262_144  # from the remote SDP
            await uncapped.answerer.send(RELIABLE, bytes(100_000))
            await assert_eventually_async(lambda: uncapped.offerer_sink.data(RELIABLE) == [bytes(100_000)])
            with pytest.raises(PayloadTooLargeError):
                await uncapped.answerer.send(LOSSY, bytes(262_145))
        finally:
            await capped.close()
            await uncapped.close()

    run(body)


def test_trickled_candidates_are_filtered_and_queued_until_the_remote_description() -> None:
    async def body() -> None:
        pair = Pair()
        try:
            offer = await pair.offerer.create_offer()
            lines = _candidates(offer)
            stripped = "".join(
                line for line in offer.splitlines(keepends=True) if not line.startswith("a=candidate:")
            )
            assert "a=end-of-candidates" in stripped
            rejected = [
                "candidate:9 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive",
                "candidate:9 1 udp 2130706431 0f0e0d0c-0000-4000-8000-000000000000.local 5000 typ host",
                "candidate:9 1 udp 2130706431 192.0.2.2 5000 typ host",
                "",
            ]
            for text in rejected:
                assert not await pair.answerer.add_ice_candidate(IceCandidate(text, "0", 0))
            for line in lines:  # before the remote description: queued
                assert await pair.answerer.add_ice_candidate(IceCandidate(line.removeprefix("a="), "0", 0))
            pair.answer = await pair.answerer.create_answer(stripped)
            await pair.offerer.set_remote_description(pair.answer, "answer")
            await pair.wait_open()
            # after the remote description: applied at once (aiortc de-duplicates it)
            assert await pair.answerer.add_ice_candidate(IceCandidate("a=" + lines[0], None, None))
        finally:
            await pair.close()

    run(body)


def test_errors_and_timeouts() -> None:
    async def body() -> None:
        sink = Collect()
        lonely = PeerTransport(PeerRole.SUBSCRIBER, sink, policy=LOOPBACK, create_data_channels=True)
        try:
            with pytest.raises(NegotiationError):
                await lonely.set_remote_description("this is not SDP", "offer")
            offer = await lonely.create_offer()
            with pytest.raises(NegotiationError):  # an answer is expected now, not an offer
                await lonely.set_remote_description(offer, "offer")
            with pytest.raises(PeerConnectTimeoutError):
                await lonely.wait_connected(0.1)
            with pytest.raises(PeerConnectTimeoutError):
                await lonely.wait_channel_open(RELIABLE, 0.05)
            with pytest.raises(ChannelNotOpenError):
                await lonely.send(RELIABLE, b"x")
            with pytest.raises(ChannelNotOpenError):
                await lonely.send("_nope", b"x")
            assert lonely.buffered_amount("_nope") == 0
            with pytest.raises(ValueError):
                PeerTransport(PeerRole.PUBLISHER, sink, policy=LOOPBACK, high_water=1, low_water=2)
        finally:
            await lonely.close()
        with pytest.raises(PeerTransportError):
            await lonely.create_offer()
        with pytest.raises(PeerTransportError):
            await lonely.wait_connected(1)
        with pytest.raises(PeerTransportError):
            await lonely.wait_channel_open(RELIABLE, 1)
        assert not await lonely.add_ice_candidate(
            IceCandidate("candidate:1 1 udp 1 127.0.0.1 5 typ host", "0")
        )

    run(body)


def test_close_is_idempotent_and_leaves_no_task_behind() -> None:
    async def body() -> None:
        before = asyncio.all_tasks()
        pair = Pair()
        await pair.connect()
        await pair.offerer.send(RELIABLE, b"bye")
        await asyncio.gather(pair.offerer.close(), pair.offerer.close(), pair.answerer.close())
        await pair.close()
        for sink, peer in ((pair.offerer_sink, pair.offerer), (pair.answerer_sink, pair.answerer)):
            assert peer.connection_state == "closed"
            assert sink.of(PeerStateChanged)[-1].state == "closed"
            assert {e.label for e in sink.of(DataChannelClosed)} == {RELIABLE, LOSSY}
        with pytest.raises(ChannelNotOpenError):
            await pair.offerer.send(RELIABLE, b"late")

        def settled() -> bool:
            return not (asyncio.all_tasks() - before - {asyncio.current_task()})

        await assert_eventually_async(settled, timeout=5, message="tasks left behind")

    run(body)


def _consent_checks(connection: Any) -> list[asyncio.Task[Any]]:
    """Running ``query_consent()`` tasks of the aioice ``connection``."""
    found = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        is_consent = getattr(coro, "__qualname__", "") == "Connection.query_consent"
        if is_consent and frame is not None and frame.f_locals.get("self") is connection:
            found.append(task)
    return found


def test_close_between_ice_completion_and_connect_resuming_leaves_no_consent_check() -> None:
    """aioice 0.13 trap: ``connect()`` starts ``query_consent()`` when it resumes, even after ``close()``.

    The offerer's ``ICE_COMPLETED`` is held back so that ``close()`` runs while ``connect()`` still waits for
    it (the window a room closed mid-ICE falls into), then released: ``connect()`` resumes after the close.
    """

    async def body() -> None:
        before = asyncio.all_tasks()
        pair = Pair()
        [connection] = ice_connections(pair.offerer._pc)
        queue = connection._check_list_state
        held: list[int] = []
        queue.put_nowait = held.append  # hold what the checks report; connect() keeps waiting
        pair.offer = await pair.offerer.create_offer()
        pair.answer = await pair.answerer.create_answer(pair.offer)
        await pair.offerer.set_remote_description(pair.answer, "answer")
        await assert_eventually_async(lambda: ICE_COMPLETED in held, timeout=5, message="ICE never completed")

        await pair.offerer.close()  # mid-ICE: connect() has not resumed yet
        del queue.put_nowait
        for state in held:
            queue.put_nowait(state)  # now connect() resumes, after close()
        # connect() takes one state off the queue and, in that same step, would start its consent task
        await wait_until(lambda: queue.qsize() < len(held), what="connect() to resume after close()")
        assert _consent_checks(connection) == []
        await pair.answerer.close()

        def settled() -> bool:
            return not (asyncio.all_tasks() - before - {asyncio.current_task()})

        await assert_eventually_async(settled, timeout=5, message="tasks left behind")

    run(body)
