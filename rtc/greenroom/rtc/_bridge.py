"""The two bridges between the user's loop and greenroom's runtime loop.

* :func:`call` runs a coroutine on the runtime loop and awaits its result from the user's loop
  (``asyncio.wrap_future`` over ``run_coroutine_threadsafe``); cancelling the caller cancels the coroutine.
* :class:`LoopSink` is the :class:`~greenroom.actors.messages.EventSink` the actors report to: each event is
  handed to the user's loop with ``call_soon_threadsafe``, which is FIFO, so the user sees the events in the
  order the actors produced them, and a user callback never runs on the runtime loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from greenroom.actors.messages import RoomEvent
from greenroom.runtime import loop as runtime

__all__ = ["LoopSink", "call"]

T = TypeVar("T")


async def call(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the runtime loop and wait for it without blocking the calling loop."""
    return await asyncio.wrap_future(runtime.submit(coro))


async def call_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """As :func:`call`, but ``coro`` runs to its end whatever happens to the caller: cancelling the caller
    (or its loop closing, which cancels tasks, not this future) does not cancel it on the runtime loop."""
    return await asyncio.shield(asyncio.wrap_future(runtime.submit(coro)))


class LoopSink:
    """Deliver actor events to ``handler`` on ``loop`` (thread-safe, order-preserving, never raises).

    Args:
        loop: the user's loop.
        handler: called on ``loop`` with each event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[[RoomEvent], None]) -> None:
        self._loop = loop
        self._handler: Callable[[RoomEvent], None] | None = handler

    def emit(self, event: RoomEvent) -> None:
        """Schedule ``handler(event)`` on the user's loop (dropped once detached or the loop closed)."""
        if self._handler is None:
            return
        with contextlib.suppress(RuntimeError):  # the user's loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: RoomEvent) -> None:
        if self._handler is not None:
            self._handler(event)

    def detach(self) -> None:
        """Stop delivering (events already scheduled are dropped too)."""
        self._handler = None
