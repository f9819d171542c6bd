"""The rtc facade's handle on one room's actor tree (:class:`RoomClient`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pykka

from greenroom.actors.core import stop_actor
from greenroom.actors.link import CLOSE_TIMEOUT, NotConnectedError
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import Connect, ConnectOptions, Disconnect, EventSink, Reply, RoomJoined
from greenroom.actors.room import ConnectFailedError, RoomActor
from greenroom.actors.room_media import RequestFailedError
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import DisconnectReason

__all__ = ["PUBLISH_TIMEOUT", "RoomClient"]

#: Seconds a publish may wait (publisher negotiation + flow control) before it fails.
PUBLISH_TIMEOUT = 30.0


class RoomClient:
    """The rtc facade's handle on one room's actor tree.

    Every coroutine here runs on the runtime loop (the facade schedules them with
    :func:`greenroom.runtime.loop.submit`); each ends with a deadline. Requests go to the RoomActor's mailbox
    with a :class:`~greenroom.actors.messages.Reply` and wait for it — never for the actor itself.

    Args:
        ref: the RoomActor.
    """

    def __init__(self, ref: pykka.ActorRef[Any], media: MediaRouter | None = None) -> None:
        self.ref = ref
        self.media = media if media is not None else MediaRouter()
        """The media path (runtime loop only): the facade's streams read it, publishing registers in it."""

    @classmethod
    def start(cls, sink: EventSink) -> RoomClient:
        """Start a RoomActor reporting to ``sink`` (any thread)."""
        media = MediaRouter()
        return cls(RoomActor.start(sink, media), media)

    async def connect(self, url: str, token: str, options: ConnectOptions) -> RoomJoined:
        """Join the room; returns the join snapshot once the primary peer connection is up.

        Raises:
            ConnectFailedError: refused, unreachable, timed out, or the server closed the connection.
        """
        reply: Reply[RoomJoined] = Reply.new()
        self.ref.tell(Connect(url, token, options, reply))
        try:
            return await asyncio.wait_for(asyncio.shield(reply.future), options.timeout + CLOSE_TIMEOUT)
        except TimeoutError:
            raise ConnectFailedError(f"timed out after {options.timeout} s") from None

    async def request(self, make: Any, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Send ``make(reply)`` to the RoomActor and wait for the reply (publish, set_metadata …)."""
        await self.ask(make, timeout)

    async def ask(self, make: Any, timeout: float = PUBLISH_TIMEOUT) -> Any:
        """Send ``make(reply)`` to the RoomActor; return the reply's value (a ``TrackInfo`` for a publish)."""
        reply: Reply[Any] = Reply.new()
        try:
            self.ref.tell(make(reply))
        except pykka.ActorDeadError:
            raise NotConnectedError("the room is closed") from None
        try:
            return await asyncio.wait_for(asyncio.shield(reply.future), timeout)
        except TimeoutError:
            raise RequestFailedError(f"no answer within {timeout} s") from None

    async def close(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Disconnect (if connected) and stop the whole tree; safe to call more than once."""
        reply: Reply[None] = Reply.new()
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.tell(Disconnect(reason, reply))
            with contextlib.suppress(TimeoutError, GreenroomError):
                await asyncio.wait_for(asyncio.shield(reply.future), 3 * CLOSE_TIMEOUT)
        await stop_actor(self.ref, timeout=3 * CLOSE_TIMEOUT)
