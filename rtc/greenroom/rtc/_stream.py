"""What ``AudioStream`` and ``VideoStream`` share: a pump on the runtime loop, a queue on the user's loop.

The pump reads a sink of the room's media path (``MediaRouter.open_audio``/``open_video``) on the runtime
loop and hands each frame to the user's loop with ``call_soon_threadsafe`` — one hop per frame, no mailbox.
The user's side is a ``DropOldestQueue`` (``capacity=0``: unbounded; else the oldest frame is dropped and
``dropped`` counts it). The stream ends — iteration stops — when its sink ends: on unsubscribe, unpublish
and disconnect (the TrackActor or the RoomActor detaches the media), on ``aclose()``, or at once when the
track has no media (never subscribed). It never hangs on a track that is gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from greenroom.actors.media import MediaRouter, NotSubscribedError
from greenroom.rtc._records import TrackWaiter
from greenroom.rtc.participant import wait_for_track
from greenroom.rtc.track import track_state
from greenroom.runtime import loop as runtime
from greenroom.runtime.media import DropOldestQueue, PcmSink, VideoSink

if TYPE_CHECKING:
    from greenroom.rtc.participant import Participant
    from greenroom.rtc.track import Track

__all__ = ["FrameStream"]

_log = logging.getLogger("greenroom.rtc.stream")

E = TypeVar("E")
C = TypeVar("C")


def _user_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()


class FrameStream(Generic[E, C]):
    """An async iterator of events built from the chunks of one remote track's sink."""

    def __init__(
        self,
        track: Track | None,
        loop: asyncio.AbstractEventLoop | None,
        capacity: int,
        participant: Participant | None = None,
        track_source: int | None = None,
    ) -> None:
        self._loop = _user_loop(loop)
        self._queue: DropOldestQueue[E] = DropOldestQueue(capacity)
        self._track = track
        self._pump: concurrent.futures.Future[None] | None = None
        self._closed = False
        if track is not None:
            self._start(track)
        elif participant is not None and track_source is not None:
            wait_for_track(participant, TrackWaiter(track_source, self._kind(), self._on_track))
        else:
            self._queue.end()

    # -- subclass hooks ---------------------------------------------------------------------------------

    def _kind(self) -> int:
        raise NotImplementedError

    def _open(self, media: MediaRouter, sid: str) -> PcmSink | VideoSink:
        raise NotImplementedError

    def _event(self, chunk: Any) -> E:
        raise NotImplementedError

    # -- pump ---------------------------------------------------------------------------------------------

    def _on_track(self, track: Track | None) -> None:
        if track is None or self._closed:
            self._queue.end()
            return
        self._track = track
        self._start(track)

    def _start(self, track: Track) -> None:
        media = track_state(track).port.media  # None once its connection is closed
        if media is None or not track.sid:
            self._queue.end()
            return
        self._pump = runtime.submit(self._run(media, track.sid))

    async def _run(self, media: MediaRouter, sid: str) -> None:
        """Runtime loop: read the sink, post each event to the user's loop, then the end."""
        post = self._post
        try:
            sink = self._open(media, sid)
        except NotSubscribedError:
            post(self._queue.end)
            return
        try:
            async for chunk in sink:
                post(self._queue.put_nowait, self._event(chunk))
        finally:
            with contextlib.suppress(Exception):
                await media.close_sink(sid, sink)
            post(self._queue.end)

    def _post(self, fn: Callable[..., object], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the user's loop is closed: nobody reads any more
            self._loop.call_soon_threadsafe(fn, *args)

    # -- the public side ----------------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Frames dropped because the reader fell ``capacity`` frames behind (greenroom extension)."""
        return self._queue.dropped

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop reading; the iteration ends (frames already queued are dropped)."""
        self._closed = True
        self._queue.clear()
        self._queue.end()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait([asyncio.wrap_future(pump)], timeout=3)
