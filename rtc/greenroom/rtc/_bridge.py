"""The two bridges between the user's loop and greenroom's runtime loop.

* :func:`call` runs a coroutine on the runtime loop and awaits its result from the user's loop
  (``asyncio.wrap_future`` over ``run_coroutine_threadsafe``); cancelling the caller cancels the coroutine.
* :class:`LoopSink` is the :class:`~greenroom.actors.messages.EventSink` the actors report to: events wait in
  one bounded FIFO drained on the user's loop (one ``call_soon_threadsafe`` per batch; a plain ``call_soon``
  when the emitting actor runs on that loop already, as an agent job's room does), so the user sees the
  events in the order the actors produced them, a user callback never runs on the runtime loop, and a
  callback that blocks under a flood costs a bounded amount of memory (drop-oldest for data events).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from greenroom.actors import messages as m
from greenroom.actors.messages import RoomEvent
from greenroom.runtime import loop as runtime

__all__ = ["DROPPABLE", "MAX_PENDING_DATA_EVENTS", "LoopSink", "call"]

_log = logging.getLogger("greenroom.rtc.room")

T = TypeVar("T")


async def call(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the runtime loop and wait for it without blocking the calling loop."""
    return await asyncio.wrap_future(runtime.submit(coro))


async def call_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """As :func:`call`, but ``coro`` runs to its end whatever happens to the caller: cancelling the caller
    (or its loop closing, which cancels tasks, not this future) does not cancel it on the runtime loop."""
    return await asyncio.shield(asyncio.wrap_future(runtime.submit(coro)))


#: Data events (``data_received``, ``transcription_received``, ``sip_dtmf_received``) that may wait for the
#: user's loop before the oldest is dropped (about 14 MB of 1 KB packets; issue 17 measured +20 MB for 14k).
MAX_PENDING_DATA_EVENTS = 10_000
#: Events of the kinds that may be dropped when the user's loop falls behind: the others (participants,
#: tracks, the connection, RPC and stream packets) carry state or protocol and are never dropped.
DROPPABLE: tuple[type[Any], ...] = (m.DataPacketReceived, m.TranscriptionReceived, m.SipDtmfReceived)


class LoopSink:
    """Deliver actor events to ``handler`` on ``loop`` (thread-safe, order-preserving, never raises).

    Bounded, drop-oldest for data: events wait in one FIFO until the user's loop runs the drain; when more
    than ``max_data`` data events (:data:`DROPPABLE`) wait — a callback that blocks under a flood — the
    oldest waiting data event is dropped, counted in :attr:`dropped` and logged (once per episode). State
    events are never dropped (the facade's views are built from them); their number is bounded by the
    room's own limits. Only the room whose loop falls behind is affected: each room has its own sink.

    Args:
        loop: the user's loop.
        handler: called on ``loop`` with each event.
        max_data: data events that may wait before the oldest is dropped (default
            :data:`MAX_PENDING_DATA_EVENTS`, read when the sink is made).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Callable[[RoomEvent], None],
        max_data: int | None = None,
    ) -> None:
        self._loop = loop
        self._handler: Callable[[RoomEvent], None] | None = handler
        self.max_data = MAX_PENDING_DATA_EVENTS if max_data is None else max_data
        self.dropped = 0
        """Data events dropped because ``max_data`` were waiting already."""
        self._lock = threading.Lock()
        self._pending: collections.deque[RoomEvent] = collections.deque()
        self._pending_data = 0
        self._scheduled = False
        self._warned = False

    @property
    def pending(self) -> int:
        """Events waiting for the user's loop."""
        return len(self._pending)

    def emit(self, event: RoomEvent) -> None:
        """Queue ``handler(event)`` for the user's loop (dropped once detached or the loop closed)."""
        if self._handler is None:
            return
        with self._lock:
            self._pending.append(event)
            if isinstance(event, DROPPABLE):
                self._pending_data += 1
                if self._pending_data > self.max_data:
                    self._drop_oldest_data()
            if self._scheduled:
                return
            self._scheduled = True
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        with contextlib.suppress(RuntimeError):  # the user's loop is closed: nobody is listening
            if here is self._loop:
                # A room whose user loop *is* the runtime loop (an agent job's room): the thread-safe call
                # writes to the loop's self-pipe, a syscall and one more pass of the loop per event.
                self._loop.call_soon(self._drain)
            else:
                self._loop.call_soon_threadsafe(self._drain)

    def _drop_oldest_data(self) -> None:
        for index, queued in enumerate(self._pending):
            if isinstance(queued, DROPPABLE):
                del self._pending[index]
                break
        self._pending_data -= 1
        self.dropped += 1
        if not self._warned:
            self._warned = True
            _log.warning(
                "the room's event callbacks fall behind: more than %d data events wait; dropping the oldest",
                self.max_data,
            )

    def _drain(self) -> None:
        """On the user's loop: deliver what waits now (what arrives meanwhile waits for the next drain)."""
        with self._lock:
            batch = list(self._pending)
            if self._pending_data <= self.max_data // 2:
                self._warned = False  # caught up: warn again next time
            self._pending.clear()
            self._pending_data = 0
            self._scheduled = False
        for event in batch:
            if self._handler is None:
                return
            self._handler(event)

    def detach(self) -> None:
        """Stop delivering (events already scheduled are dropped too)."""
        self._handler = None
        with self._lock:
            self._pending.clear()
            self._pending_data = 0
