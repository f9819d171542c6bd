"""Track views. greenroom does not carry media through the facade yet: these are the shapes of
``livekit.rtc.track`` that publications refer to (``publication.track`` stays ``None`` until media lands)."""

from __future__ import annotations

from typing import TypeAlias

from greenroom.codecs.models import TrackInfo
from greenroom.rtc._enums import TrackKind, track_kind

__all__ = ["RemoteAudioTrack", "RemoteTrack", "RemoteVideoTrack", "StreamState", "Track"]


class StreamState:
    """Stream states of a remote track (``livekit.rtc.StreamState`` numbers)."""

    STATE_UNKNOWN = 0
    STATE_ACTIVE = 1
    STATE_PAUSED = 2


class Track:
    """A media track: sid, name, kind, stream state and mute flag (a read-only view)."""

    def __init__(self, info: TrackInfo) -> None:
        """Build the view of ``info``."""
        self._info = info

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
    def stream_state(self) -> int:
        """Always ``STATE_UNKNOWN`` for now (stream-state updates are not tracked yet)."""
        return StreamState.STATE_UNKNOWN

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return self._info.muted

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid}, name={self.name})"


class RemoteAudioTrack(Track):
    """A remote participant's audio track."""


class RemoteVideoTrack(Track):
    """A remote participant's video track."""


RemoteTrack: TypeAlias = RemoteAudioTrack | RemoteVideoTrack
