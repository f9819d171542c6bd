"""Publication views, as in ``livekit.rtc.track_publication``.

A publication's state is owned by its :class:`~greenroom.actors.participant.TrackActor`; the facade keeps a
copy in a :class:`~greenroom.rtc._records.PublicationRecord` that the room's reducer refreshes from the
actors' events, so reading a property never crosses threads.
"""

from __future__ import annotations

import asyncio

from greenroom.actors.messages import SetSubscribed
from greenroom.rtc._enums import FrameMetadataFeature, TrackKind, TrackSource, track_kind, track_source
from greenroom.rtc._records import LocalPublicationRecord, PublicationRecord
from greenroom.rtc.track import Track

__all__ = ["LocalTrackPublication", "RemoteTrackPublication", "TrackPublication"]


def _known(enum: type[FrameMetadataFeature], number: int) -> int:
    """``number`` as a member of ``enum`` when it is one (a newer server may send numbers we do not know)."""
    try:
        return enum(number)
    except ValueError:
        return number


class TrackPublication:
    """What a participant published: sid, name, kind, source, dimensions, mute flag."""

    def __init__(self, record: PublicationRecord) -> None:
        """Build the view of ``record`` (the reducer builds publications; users never do)."""
        self._record = record

    @property
    def track(self) -> Track | None:
        """The media track (remote: while subscribed; local: the published track)."""
        return self._record.track

    @property
    def sid(self) -> str:
        """The track's server id (``TR_…``)."""
        return self._record.info.sid

    @property
    def name(self) -> str:
        """The name the publisher gave the track."""
        return self._record.info.name

    @property
    def kind(self) -> TrackKind:
        """Audio or video."""
        return track_kind(self._record.info.type)

    @property
    def source(self) -> TrackSource:
        """Camera, microphone, screen share …"""
        return track_source(self._record.info.source)

    @property
    def simulcasted(self) -> bool:
        """Whether the track is sent in several layers."""
        return self._record.info.simulcast

    @property
    def width(self) -> int:
        """Video width (0 for audio)."""
        return self._record.info.width

    @property
    def height(self) -> int:
        """Video height (0 for audio)."""
        return self._record.info.height

    @property
    def mime_type(self) -> str:
        """The codec's MIME type, when the server says."""
        return self._record.info.mime_type

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return self._record.info.muted

    @property
    def frame_metadata_features(self) -> list[int]:
        """The per-frame metadata the publisher's frames carry (``FrameMetadataFeature`` numbers, from the
        server's ``TrackInfo.packet_trailer_features``; the numbers are the same)."""
        return [_known(FrameMetadataFeature, n) for n in self._record.info.packet_trailer_features]

    @property
    def audio_features(self) -> list[int]:
        """What the publisher announced of its audio (``AudioTrackFeature`` numbers: stereo, no DTX …)."""
        return list(self._record.info.audio_features)

    @property
    def encryption_type(self) -> int:
        """The E2EE scheme (``EncryptionType`` numbers)."""
        return int(self._record.info.encryption)

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid}, name={self.name}, kind={self.kind.name})"


class LocalTrackPublication(TrackPublication):
    """A track the local participant published."""

    def __init__(self, record: LocalPublicationRecord) -> None:
        """Build the view of ``record``."""
        super().__init__(record)
        self._first_subscription = record.first_subscription

    async def wait_for_subscription(self) -> None:
        """Wait until a remote participant subscribed to this track (the server's ``track_subscribed``)."""
        await asyncio.shield(self._first_subscription)


class RemoteTrackPublication(TrackPublication):
    """A track a remote participant published."""

    @property
    def subscribed(self) -> bool:
        """Whether the local participant receives this track."""
        return self._record.subscribed

    def set_subscribed(self, subscribed: bool) -> None:
        """Subscribe or unsubscribe (``UpdateSubscription``; how ``auto_subscribe=False`` rooms receive).

        Returns at once; ``track_subscribed``/``track_unsubscribed`` follow. Unsubscribing ends the
        track's streams.
        """
        self._record.port.tell(SetSubscribed(self.sid, subscribed))
