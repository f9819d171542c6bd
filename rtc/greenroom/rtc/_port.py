"""What the facade's views may do to their room: :class:`RoomPort`, one per connection.

Participants, publications and tracks are views (:mod:`greenroom.rtc._view` builds them); the few that act —
``LocalParticipant`` publishing, ``RemoteTrackPublication.set_subscribed``, a local track's ``mute()``, a
stream opening a track's media — do it through the port they were given at construction, never through the
``Room``'s fields. A port wraps one :class:`~greenroom.actors.client.RoomClient` for the life of one
``Room.connect()``; the room closes it at teardown, after which every request fails with "not connected"
and every tell is dropped. A view built during an earlier connection therefore never talks to a later one.

The port also carries the local participant's own changes (a track it published or unpublished) back to the
room's reducer (:meth:`RoomPort.report`), so that the view state still has exactly one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from greenroom.actors.messages import Reply
from greenroom.actors.room import ConnectFailedError
from greenroom.codecs.errors import GreenroomError
from greenroom.rtc._bridge import call
from greenroom.runtime import loop as runtime

if TYPE_CHECKING:
    from greenroom.actors.client import RoomClient
    from greenroom.actors.media import MediaRouter
    from greenroom.rtc._records import LocalChange

__all__ = ["RoomPort"]


class RoomPort:
    """One connection's handle for the views: requests to the actor tree, local changes to the reducer.

    Args:
        client: the connection's actor tree; ``None`` for a port that was never connected.
        report: where :meth:`report` sends a local change (the room's reducer, which emits its events).
    """

    def __init__(self, client: RoomClient | None, report: Callable[[LocalChange], None]) -> None:
        self._client = client
        self._report = report

    @classmethod
    def detached(cls) -> RoomPort:
        """A port with no connection: requests fail, tells and reports are dropped (views before connect)."""
        return cls(None, lambda _change: None)

    @property
    def connected(self) -> bool:
        """Whether requests can still be sent (not closed, not detached)."""
        return self._client is not None

    def close(self) -> None:
        """The connection is torn down: from now on requests fail and tells are dropped."""
        self._client = None

    @property
    def media(self) -> MediaRouter | None:
        """The connection's media path (use it on the runtime loop); ``None`` once closed."""
        client = self._client
        return None if client is None else client.media

    def _live(self) -> RoomClient:
        client = self._client
        if client is None:
            raise ConnectFailedError("the room is not connected")
        return client

    async def request(self, make: Callable[[Reply[None]], Any]) -> None:
        """Send ``make(reply)`` to the RoomActor and wait for the reply (from the user's loop).

        Raises:
            GreenroomError: not connected, refused, or no answer in time.
        """
        await call(self._live().request(make))

    def post(self, make: Callable[[Reply[None]], Any], on_failure: Callable[[GreenroomError], None]) -> None:
        """Send ``make(reply)`` to the RoomActor without waiting for the reply: only a failure comes back, as
        ``on_failure(error)`` on the calling loop (at once when not connected).

        :meth:`request` costs a round trip between the loops — a task on the runtime loop, a wake-up of each
        loop — to learn that a packet was handed to the data channel; RPC's requests and answers do not need
        that (their own timers cover a packet that never leaves), and that round trip was a fifth of an RPC's
        CPU time (benchmarks/notes.md, P14). Must be called on the user's loop.
        """
        client = self._client
        if client is None:
            on_failure(ConnectFailedError("the room is not connected"))
            return
        loop = asyncio.get_running_loop()

        def failed(error: GreenroomError) -> None:  # on the runtime loop
            with contextlib.suppress(RuntimeError):  # the user's loop is closed: nobody is listening
                loop.call_soon_threadsafe(on_failure, error)

        runtime.call_soon(_post, client, make, failed)

    async def ask(self, make: Callable[[Reply[Any]], Any]) -> Any:
        """Like :meth:`request`, returning the reply's value (a ``TrackInfo`` for a publish)."""
        return await call(self._live().ask(make))

    def ask_blocking(self, make: Callable[[Reply[Any]], Any], timeout: float = 10.0) -> Any:
        """Like :meth:`ask`, blocking the calling thread (``livekit.rtc``'s ``KeyProvider`` calls are
        synchronous FFI requests; so are these: one RoomActor round trip, a key derivation at most)."""
        return runtime.run_sync(self._live().ask(make, timeout), timeout + 1.0)

    async def add_local_track(self, source: Any) -> str:
        """Put a gate in front of a local source's aiortc track on the media path; returns its ``cid``.

        Raises:
            GreenroomError: not connected.
        """
        media = self._live().media

        async def register() -> str:
            return media.add_local(source)

        return await call(register())

    async def drop_local_track(self, cid: str) -> None:
        """Forget the gate ``cid`` (its publish failed); nothing to do once closed (the router is closed)."""
        client = self._client
        if client is None:
            return
        media = client.media

        async def forget() -> None:
            media.drop_local(cid)

        await call(forget())

    def tell(self, message: Any) -> None:
        """Send ``message`` to the RoomActor without waiting (any thread; dropped once closed)."""
        client = self._client
        if client is not None:
            runtime.call_soon(_tell, client, message)

    def report(self, change: LocalChange) -> None:
        """Apply a change the local participant made to the room's view (emits its events now)."""
        self._report(change)


def _post(
    client: RoomClient, make: Callable[[Reply[None]], Any], failed: Callable[[GreenroomError], None]
) -> None:
    """On the runtime loop: tell the RoomActor, and report the reply only if it is a failure."""
    reply: Reply[None] = Reply.new()

    def done(future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if isinstance(error, GreenroomError):
            failed(error)
        elif error is not None:
            failed(GreenroomError(str(error) or type(error).__name__))

    reply.future.add_done_callback(done)
    try:
        client.ref.tell(make(reply))
    except pykka.ActorDeadError:
        reply.fail(ConnectFailedError("the room is closed"))


def _tell(client: RoomClient, message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        client.ref.tell(message)
