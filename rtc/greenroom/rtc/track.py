"""Track views, as in ``livekit.rtc.track``.

A remote track is a handle on the room's media path (``greenroom.actors.media.MediaRouter``): an
``AudioStream``/``VideoStream`` built on it reads the frames on the runtime loop. A local track wraps its
source's aiortc track; publishing it registers a gate in front of that track (the source survives the room).
``mute()``/``unmute()`` are synchronous, as in the official SDK: they tell the RoomActor (``mute`` signal
and the local TrackActor's gate) through the track's port without waiting.

A track is a view over a record (:mod:`greenroom.rtc._records`): a remote track reads its publication's
record, a local track its own :class:`~greenroom.rtc._records.LocalTrackRecord`; the room's reducer writes
them. :func:`track_state` and :func:`local_track_record` are how the rest of the facade reaches the record of
a track a user hands in (a stream, ``publish_track``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeAlias

from greenroom.actors.messages import SetLocalTrackMuted
from greenroom.codecs.models import TrackInfo, TrackType
from greenroom.rtc._enums import TrackKind, track_kind
from greenroom.rtc._port import RoomPort
from greenroom.rtc._records import LocalTrackRecord, TrackState

if TYPE_CHECKING:
    from greenroom.rtc.audio_source import AudioSource
    from greenroom.rtc.video_source import VideoSource

__all__ = [
    "AudioTrack",
    "LocalAudioTrack",
    "LocalTrack",
    "LocalVideoTrack",
    "RemoteAudioTrack",
    "RemoteTrack",
    "RemoteVideoTrack",
    "StreamState",
    "Track",
    "VideoTrack",
]


class StreamState:
    """Stream states of a remote track (``livekit.rtc.StreamState`` numbers)."""

    STATE_UNKNOWN = 0
    STATE_ACTIVE = 1
    STATE_PAUSED = 2


class Track:
    """A media track: sid, name, kind, stream state and mute flag (a read-only view)."""

    def __init__(self, state: TrackState) -> None:
        """Build the view of ``state`` (its info, and the port of the connection whose media carries it)."""
        self._state = state

    @property
    def sid(self) -> str:
        """The track's server id (``TR_…``)."""
        return self._state.info.sid

    @property
    def name(self) -> str:
        """The name the publisher gave the track."""
        return self._state.info.name

    @property
    def kind(self) -> TrackKind:
        """Audio or video."""
        return track_kind(self._state.info.type)

    @property
    def stream_state(self) -> int:
        """Always ``STATE_UNKNOWN`` for now (stream-state updates are not tracked yet)."""
        return StreamState.STATE_UNKNOWN

    @property
    def muted(self) -> bool:
        """Whether the publisher muted the track."""
        return self._state.info.muted

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid}, name={self.name})"


class _LocalTrack(Track):
    """What local audio and video tracks share: the source's aiortc track, binding, mute."""

    def __init__(self, name: str, type: TrackType, source_track: Any) -> None:
        info = TrackInfo(sid="", type=type, name=name)
        self._record = LocalTrackRecord(info, source_track, RoomPort.detached())
        super().__init__(self._record)

    def _set_muted(self, muted: bool) -> None:
        record = self._record
        record.info = dataclasses.replace(record.info, muted=muted)
        if record.published:
            record.port.tell(SetLocalTrackMuted(record.info.sid, muted))

    def mute(self) -> None:
        """Mute: the server and every subscriber are told; the sender sends silence (black for video)."""
        self._set_muted(True)

    def unmute(self) -> None:
        """Unmute."""
        self._set_muted(False)


def track_state(track: Track) -> TrackState:
    """The record ``track`` is a view of (its sid and the port whose media carries it: for streams)."""
    return track._state


def local_track_record(track: _LocalTrack) -> LocalTrackRecord:
    """The record of a local track (its source and binding: for ``publish_track``)."""
    return track._record


class LocalAudioTrack(_LocalTrack):
    """An audio track fed by an :class:`~greenroom.rtc.audio_source.AudioSource`."""

    @staticmethod
    def create_audio_track(name: str, source: AudioSource) -> LocalAudioTrack:
        """A track named ``name`` carrying what is captured on ``source`` (publish it to send it)."""
        return LocalAudioTrack(name, TrackType.AUDIO, source._track)

    def __repr__(self) -> str:
        return f"rtc.LocalAudioTrack(sid={self.sid}, name={self.name})"


class LocalVideoTrack(_LocalTrack):
    """A video track fed by a :class:`~greenroom.rtc.video_source.VideoSource`."""

    @staticmethod
    def create_video_track(name: str, source: VideoSource) -> LocalVideoTrack:
        """A track named ``name`` carrying what is captured on ``source``."""
        return LocalVideoTrack(name, TrackType.VIDEO, source._track)

    def __repr__(self) -> str:
        return f"rtc.LocalVideoTrack(sid={self.sid}, name={self.name})"


class RemoteAudioTrack(Track):
    """A remote participant's audio track (read it with ``AudioStream``)."""


class RemoteVideoTrack(Track):
    """A remote participant's video track (read it with ``VideoStream``)."""


LocalTrack: TypeAlias = LocalAudioTrack | LocalVideoTrack
RemoteTrack: TypeAlias = RemoteAudioTrack | RemoteVideoTrack
AudioTrack: TypeAlias = LocalAudioTrack | RemoteAudioTrack
VideoTrack: TypeAlias = LocalVideoTrack | RemoteVideoTrack
