"""The dev server's bounded structures (``greenroom.devserver.limits``) without sockets; time passed in."""

from __future__ import annotations

import asyncio

import pytest

from greenroom.devserver.limits import (
    CloseFrame,
    ConnectGate,
    DataQueue,
    Limits,
    ServerStats,
    SignalOutbox,
    TokenBucket,
)


def test_token_bucket_starts_full_spends_and_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)
    assert bucket.is_full(100.0)  # never more than the burst
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_reserve_paces_then_refuses_past_the_longest_wait() -> None:
    bucket = TokenBucket.full(rate=2, burst=1, now=0.0)
    assert bucket.reserve(0.0, max_wait=1.0) == 0.0
    assert bucket.reserve(0.0, max_wait=1.0) == pytest.approx(0.5)
    assert bucket.reserve(0.0, max_wait=1.0) == pytest.approx(1.0)
    assert bucket.reserve(0.0, max_wait=1.0) is None  # 1.5 s away: refused, nothing taken
    assert bucket.level(0.0) == pytest.approx(-2.0)
    assert bucket.reserve(0.5, max_wait=1.0) == pytest.approx(1.0)


def test_signal_outbox_keeps_order_and_refuses_past_frames_or_bytes() -> None:
    async def scenario() -> None:
        outbox = SignalOutbox(frames=3, bytes_=10)
        assert outbox.put(b"a" * 20)  # one frame always fits an empty queue
        assert not outbox.put(b"b")  # 21 bytes > 10
        assert await outbox.get() == b"a" * 20
        assert [outbox.put(frame) for frame in (b"x", b"y", b"z", b"w")] == [True, True, True, False]
        assert (len(outbox), outbox.bytes, outbox.peak_frames) == (3, 3, 3)
        outbox.close(CloseFrame(1008, "why"))  # the close marker is always accepted
        got = [await outbox.get() for _ in range(4)]
        assert got == [b"x", b"y", b"z", CloseFrame(1008, "why")]
        assert outbox.put(b"q")
        outbox.clear()
        assert (len(outbox), outbox.bytes) == (0, 0)

    asyncio.run(scenario())


def test_signal_outbox_get_waits_for_a_frame() -> None:
    async def scenario() -> None:
        outbox = SignalOutbox(frames=3, bytes_=10)
        getter = asyncio.create_task(outbox.get())
        await asyncio.sleep(0)
        assert not getter.done()
        outbox.put(b"late")
        assert await getter == b"late"

    asyncio.run(scenario())


def test_data_queue_drops_newest_past_packets_or_bytes_and_counts() -> None:
    async def scenario() -> None:
        stats = ServerStats()
        queue = DataQueue(packets=2, bytes_=10, stats=stats)
        assert queue.put("_reliable", b"12345")
        assert not queue.put("_reliable", b"123456")  # 11 bytes > 10
        assert queue.put("_lossy", b"12345")
        assert not queue.put("_lossy", b"1")  # 3 packets > 2
        assert (queue.dropped, stats.data_dropped, stats.data_dropped_bytes) == (2, 2, 7)
        assert await queue.get() == ("_reliable", b"12345")
        assert queue.bytes == 5
        queue.clear()
        assert (len(queue), queue.bytes) == (0, 0)

    asyncio.run(scenario())


def test_connect_gate_paces_then_refuses_per_address() -> None:
    stats = ServerStats()
    gate = ConnectGate(Limits(connect_rate=10, connect_burst=2, connect_wait=0.2), stats)
    assert [gate.admit("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert gate.admit("a", 0.0) == pytest.approx(0.1)
    assert gate.admit("a", 0.0) == pytest.approx(0.2)
    assert gate.admit("a", 0.0) is None
    assert gate.retry_after("a", 0.0) == 1
    assert gate.admit("b", 0.0) == 0.0  # another address has its own bucket
    assert (stats.connects_paced, stats.connects_refused) == (2, 1)
    gate.forget_idle(10.0)  # both full again: forgotten
    assert len(gate) == 0


def test_connect_gate_table_is_bounded_least_recent_first() -> None:
    gate = ConnectGate(Limits(connect_addresses=2), ServerStats())
    gate.admit("a", 0.0)
    gate.admit("b", 0.0)
    gate.admit("a", 0.0)  # a is now the most recent
    gate.admit("c", 0.0)
    assert len(gate) == 2
    assert gate.admit("b", 0.0) == 0.0  # b was forgotten: a fresh, full bucket


def test_server_stats_by_name() -> None:
    stats = ServerStats(slow_readers=2)
    assert stats.as_dict()["slow_readers"] == 2
    assert set(stats.as_dict()) >= {"signal_rate_limited", "join_timeouts", "connects_refused"}


def test_signal_outbox_below_waits_for_the_writer_or_a_clear() -> None:
    async def scenario() -> None:
        outbox = SignalOutbox(frames=4, bytes_=100)
        for frame in (b"1", b"2", b"3"):
            outbox.put(frame)
        waiter = asyncio.create_task(outbox.below(1))
        await asyncio.sleep(0)
        await outbox.get()
        await asyncio.sleep(0)
        assert not waiter.done()  # two still queued
        await outbox.get()
        await asyncio.wait_for(waiter, 1)
        outbox.put(b"4")
        outbox.put(b"5")
        waiter = asyncio.create_task(outbox.below(0))
        await asyncio.sleep(0)
        outbox.clear()  # the session ended: whoever waits is released
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())
