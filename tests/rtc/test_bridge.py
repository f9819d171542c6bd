"""The bridge's event sink: order kept, data events bounded (drop-oldest, counted), state never dropped —
unit-level, and a real room whose ``data_received`` callback blocks under a flood."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from greenroom import rtc
from greenroom.actors import messages as m
from greenroom.devserver.server import DevServer
from greenroom.rtc import _bridge
from greenroom.rtc._bridge import LoopSink
from tests.rtc.support import connect, run_with_server
from tests.waiting import recorded_logs, wait_until

T = TypeVar("T")


def data(n: int) -> m.DataPacketReceived:
    return m.DataPacketReceived("alice", str(n).encode(), True, "t")


def test_the_oldest_data_events_are_dropped_and_state_events_kept() -> None:
    loop = asyncio.new_event_loop()
    got: list[m.RoomEvent] = []
    sink = LoopSink(loop, got.append, max_data=3)
    try:
        with recorded_logs("greenroom.rtc.room") as logs:
            sink.emit(data(0))
            sink.emit(m.Reconnecting())
            for n in range(1, 6):
                sink.emit(data(n))
        assert (sink.pending, sink.dropped) == (4, 3)
        assert logs.count("dropping the oldest") == 1  # once per episode
        loop.run_until_complete(asyncio.sleep(0))
        assert got == [m.Reconnecting(), data(3), data(4), data(5)]
        assert sink.pending == 0
        sink.emit(data(6))
        sink.detach()
        sink.emit(data(7))
        loop.run_until_complete(asyncio.sleep(0))
        assert got[-1] == data(5)  # nothing after detach, not even what waited
    finally:
        loop.close()
    sink = LoopSink(loop, got.append)
    assert sink.max_data == _bridge.MAX_PENDING_DATA_EVENTS
    sink.emit(data(8))  # the loop is closed: nobody listens, nothing raises


@pytest.mark.timeout(120)
def test_a_blocking_callback_under_a_flood_holds_a_bounded_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bridge, "MAX_PENDING_DATA_EVENTS", 50)
    total = 400
    other = asyncio.new_event_loop()  # alice lives on another loop: she floods while bob's loop is blocked
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()

    def on_other(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, other))

    async def scenario(server: DevServer) -> None:
        async def bob_joins() -> rtc.Room:
            room = rtc.Room()  # on the other loop: its callbacks run there (the server's loop stays free)
            await room.connect(server.url, server.mint_token("bob", "r1"))
            return room

        a = await connect(server, "alice")
        b = await on_other(bob_joins())
        await wait_until(lambda: "alice" in b.remote_participants, timeout=10)
        got: list[int] = []
        peak = [0]

        def slow(packet: rtc.DataPacket) -> None:
            sink = b._sink
            assert sink is not None
            if not got:  # a callback that blocks bob's loop until the flood has overflowed the bound
                deadline = time.monotonic() + 60
                while not (sink.dropped and sink.pending >= 50) and time.monotonic() < deadline:
                    time.sleep(0.01)
            got.append(int(packet.data))
            peak[0] = max(peak[0], sink.pending)

        b.on("data_received", slow)
        left = threading.Event()
        b.on("participant_disconnected", lambda _p: left.set())
        await asyncio.gather(*(a.local_participant.publish_data(str(n)) for n in range(total)))
        await wait_until(
            lambda: len(got) + b.dropped_events == total, timeout=60, what="all delivered or dropped"
        )
        assert b.dropped_events > 0
        assert got == sorted(got)  # what arrived is in order
        assert peak[0] <= 50  # the queue held at most the bound
        await a.disconnect()
        await wait_until(left.is_set, timeout=60, what="participant_disconnected")  # a state event: delivered
        await on_other(b.disconnect())

    try:
        run_with_server(scenario)
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(10)
        other.close()
