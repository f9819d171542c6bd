"""Publication views built from participant updates (``TrackInfo``), as in ``livekit.rtc.track_publication``.

A publication's state is owned by its :class:`~greenroom.actors.participant.TrackActor`; the facade keeps a
copy refreshed from the actors' events, so reading a property never crosses threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pykka

from greenroom.actors.messages import SetSubscribed
from greenroom.codecs.models import TrackInfo
from greenroom.rtc._enums import TrackKind, TrackSource, track_kind, track_source
from greenroom.rtc.track import Track
from greenroom.runtime import loop as runtime

if TYPE_CHECKING:
    from greenroom.actors.client import RoomClient

__all__ = ["LocalTrackPublication", "RemoteTrackPublication", "TrackPublication"]


class TrackPublication:
    """What a participant published: sid, name, kind, source, dimensions, mute flag."""

    def __init__(self, info: TrackInfo) -> None:
        """Build the view of ``info``."""
        self._info = info
        self._track: Track | None = None

    def _update(self, info: TrackInfo) -> None:
        self._info = info
        if self._track is not None:
            self._track._update(info)

    @property
    def track(self) -> Track | None:
        """The media track (remote: while subscribed; local: the published track)."""
        return self._track

    @property
    def sid(self) -> str:
        """The track's server id (``TR_…``)."""
        return self._info.sid

    @property
    def name(self) -> str:
        """The name the publisher gave the track."""
        return self._info.name

    @property
    def kind(self) -> TrackKind:
        """Audio or video."""
        return track_kind(self._info.type)

    @property
    def source(self) -> TrackSource:
        """Camera, microphone, screen share …"""
        return track_source(self._info.source)

    @property
    def simulcasted(self) -> bool:
        """Whether the track is sent in several layers."""
        return self._info.simulcast

    @property
    def width(self) -> int:
        """Video width (0 for audio)."""
        return self._info.width

    @property
    def height(self) -> int:
        """Video height (0 for audio)."""
        return self._info.height

    @property
    def mime_type(self) -> str:
        """The codec's MIME type, when the server says."""
        return self._info.mime_type

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return self._info.muted

    @property
    def encryption_type(self) -> int:
        """The E2EE scheme (``EncryptionType`` numbers)."""
        return int(self._info.encryption)

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid}, name={self.name}, kind={self.kind.name})"


class LocalTrackPublication(TrackPublication):
    """A track the local participant published."""

    def __init__(self, info: TrackInfo, track: Track | None = None) -> None:
        """Build the view of ``info`` publishing ``track`` (create it on the room's loop)."""
        super().__init__(info)
        self._track = track
        self._first_subscription: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    def _subscribed(self) -> None:
        if not self._first_subscription.done():
            self._first_subscription.set_result(None)

    async def wait_for_subscription(self) -> None:
        """Wait until a remote participant subscribed to this track (the server's ``track_subscribed``)."""
        await asyncio.shield(self._first_subscription)


class RemoteTrackPublication(TrackPublication):
    """A track a remote participant published."""

    def __init__(self, info: TrackInfo, subscribed: bool = False, client: RoomClient | None = None) -> None:
        """Build the view of ``info`` (``client``: the room, for ``set_subscribed``)."""
        super().__init__(info)
        self._subscribed = subscribed
        self._client = client

    @property
    def subscribed(self) -> bool:
        """Whether the local participant receives this track."""
        return self._subscribed

    def set_subscribed(self, subscribed: bool) -> None:
        """Subscribe or unsubscribe (``UpdateSubscription``; how ``auto_subscribe=False`` rooms receive).

        Returns at once; ``track_subscribed``/``track_unsubscribed`` follow. Unsubscribing ends the
        track's streams.
        """
        client = self._client
        if client is not None:
            runtime.call_soon(_tell, client, SetSubscribed(self.sid, subscribed))


def _tell(client: RoomClient, message: SetSubscribed) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        client.ref.tell(message)
