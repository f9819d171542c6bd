"""Publication views built from participant updates (``TrackInfo``), as in ``livekit.rtc.track_publication``.

A publication's state is owned by its :class:`~greenroom.actors.participant.TrackActor`; the facade keeps a
copy refreshed from the actors' events, so reading a property never crosses threads.
"""

from __future__ import annotations

from greenroom.codecs.models import TrackInfo
from greenroom.rtc._enums import TrackKind, TrackSource, track_kind, track_source
from greenroom.rtc.track import Track

__all__ = ["LocalTrackPublication", "RemoteTrackPublication", "TrackPublication"]


class TrackPublication:
    """What a participant published: sid, name, kind, source, dimensions, mute flag."""

    def __init__(self, info: TrackInfo) -> None:
        """Build the view of ``info``."""
        self._info = info
        self._track: Track | None = None

    def _update(self, info: TrackInfo) -> None:
        self._info = info

    @property
    def track(self) -> Track | None:
        """The media track when subscribed (``None``: no media through the facade yet)."""
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


class RemoteTrackPublication(TrackPublication):
    """A track a remote participant published."""

    def __init__(self, info: TrackInfo, subscribed: bool = False) -> None:
        """Build the view of ``info``."""
        super().__init__(info)
        self._subscribed = subscribed

    @property
    def subscribed(self) -> bool:
        """Whether the local participant receives this track (no media path yet: always False)."""
        return self._subscribed
