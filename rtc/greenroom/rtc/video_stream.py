"""``VideoStream`` and ``VideoFrameEvent``, as in ``livekit.rtc``: raw frames from a remote video track.

Frames are converted by PyAV on the runtime loop to ``format`` (default I420, what the decoder produces).
See :mod:`greenroom.rtc._stream` for the queue and end-of-stream semantics.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenroom.actors.media import MediaRouter
from greenroom.rtc._enums import TrackKind
from greenroom.rtc._stream import FrameStream
from greenroom.rtc.video_frame import VideoBufferType, VideoFrame, VideoRotation, av_format
from greenroom.runtime.media import VideoChunk, VideoSink

if TYPE_CHECKING:
    from greenroom.rtc.participant import Participant
    from greenroom.rtc.track import Track

__all__ = ["VideoFrameEvent", "VideoStream"]

_TYPES = {av_format(t): t for t in VideoBufferType if t not in (VideoBufferType.I420A, VideoBufferType.I010)}


@dataclass
class VideoFrameEvent:
    """One received frame with its timestamp (µs, the sender's clock) and rotation."""

    frame: VideoFrame
    timestamp_us: int
    rotation: int
    metadata: Any | None = None


class VideoStream(FrameStream[VideoFrameEvent, VideoChunk]):
    """An async iterator of :class:`VideoFrameEvent` from a remote video track.

    Args:
        track: a subscribed remote video track.
        loop: where the events are delivered (default: the running loop).
        capacity: frames held for a slow reader; ``0`` = unbounded, else the **oldest** is dropped.
        format: the :class:`VideoBufferType` of the frames (default I420).
    """

    def __init__(
        self,
        track: Track | None,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        format: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._format = av_format(VideoBufferType.I420 if format is None else format)
        super().__init__(track, loop, capacity, kwargs.get("participant"), kwargs.get("track_source"))

    @classmethod
    def from_participant(
        cls,
        *,
        participant: Participant,
        track_source: int,
        loop: asyncio.AbstractEventLoop | None = None,
        format: int | None = None,
        capacity: int = 0,
    ) -> VideoStream:
        """The video of ``participant``'s track from ``track_source``, once subscribed (waits for it)."""
        return cls(
            None,
            loop=loop,
            capacity=capacity,
            format=format,
            participant=participant,
            track_source=track_source,
        )

    @classmethod
    def from_track(
        cls,
        *,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        format: int | None = None,
        capacity: int = 0,
    ) -> VideoStream:
        """The video of ``track``."""
        return cls(track, loop=loop, capacity=capacity, format=format)

    def _kind(self) -> int:
        return TrackKind.KIND_VIDEO

    def _open(self, media: MediaRouter, sid: str) -> VideoSink:
        return media.open_video(sid, format=self._format)

    def _event(self, chunk: VideoChunk) -> VideoFrameEvent:
        frame = VideoFrame(chunk.width, chunk.height, _TYPES[chunk.format], chunk.data)
        return VideoFrameEvent(frame, chunk.timestamp_us or 0, VideoRotation.VIDEO_ROTATION_0)
