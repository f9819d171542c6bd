"""``AudioStream`` and ``AudioFrameEvent``, as in ``livekit.rtc``: PCM from a remote audio track.

Resampling and remixing to ``sample_rate``/``num_channels`` (and fixed ``frame_size_ms`` blocks) are done by
PyAV on the runtime loop (``greenroom.runtime.media.PcmSink``); see :mod:`greenroom.rtc._stream` for the
queue and end-of-stream semantics. ``noise_cancellation`` is accepted and ignored (no native module).

As in ``livekit.rtc`` (whose libwebrtc playout keeps pulling), the stream yields frames of silence in real
time while no audio arrives on the subscribed track — its publisher is muted (the server stops forwarding)
or the network has a gap — and delivers real audio as soon as it resumes, without a burst of stale silence
(``PcmSink(fill_silence=True)``). The silence stops when the stream ends (unsubscribe, unpublish,
disconnect, ``aclose()``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenroom.actors.media import MediaRouter
from greenroom.rtc._enums import TrackKind
from greenroom.rtc._stream import FrameStream
from greenroom.rtc.audio_frame import AudioFrame
from greenroom.runtime.media import PcmChunk, PcmSink

if TYPE_CHECKING:
    from greenroom.rtc.participant import Participant
    from greenroom.rtc.track import Track

__all__ = ["NATIVE_FRAME_MS", "AudioFrameEvent", "AudioStream"]

#: The frame duration when ``frame_size_ms`` is not given: libwebrtc's audio sink delivers 10 ms blocks.
NATIVE_FRAME_MS = 10


@dataclass
class AudioFrameEvent:
    """One received block of audio."""

    frame: AudioFrame


class AudioStream(FrameStream[AudioFrameEvent, PcmChunk]):
    """An async iterator of :class:`AudioFrameEvent` from a remote audio track.

    Args:
        track: a subscribed remote audio track.
        loop: where the events are delivered (default: the running loop).
        capacity: frames held for a slow reader; ``0`` = unbounded, else the **oldest** is dropped.
        sample_rate: output rate (resampled).
        num_channels: output channels, 1 or 2 (remixed).
        frame_size_ms: output frame duration; ``None`` (or 0): 10 ms, as the official SDK's frames
            (libwebrtc's audio sink delivers 10 ms blocks; code written for it — the SDK's own tests
            included — counts on 480 samples at 48 kHz), not the decoder's 20 ms Opus frames.
        noise_cancellation: accepted for compatibility; ignored.
        auto_close_noise_cancellation: accepted for compatibility; ignored.
    """

    def __init__(  # noqa: PLR0917 - the official signature
        self,
        track: Track | None,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: Any | None = None,
        auto_close_noise_cancellation: bool = True,
        **kwargs: Any,
    ) -> None:
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._frame_size_ms = frame_size_ms
        super().__init__(track, loop, capacity, kwargs.get("participant"), kwargs.get("track_source"))

    @classmethod
    def from_participant(
        cls,
        *,
        participant: Participant,
        track_source: int,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: Any | None = None,
        auto_close_noise_cancellation: bool = True,
    ) -> AudioStream:
        """The audio of ``participant``'s track from ``track_source``, once subscribed (waits for it)."""
        return cls(
            None,
            loop=loop,
            capacity=capacity,
            sample_rate=sample_rate,
            num_channels=num_channels,
            frame_size_ms=frame_size_ms,
            participant=participant,
            track_source=track_source,
        )

    @classmethod
    def from_track(
        cls,
        *,
        track: Track,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: Any | None = None,
        auto_close_noise_cancellation: bool = False,
    ) -> AudioStream:
        """The audio of ``track``."""
        return cls(
            track,
            loop=loop,
            capacity=capacity,
            sample_rate=sample_rate,
            num_channels=num_channels,
            frame_size_ms=frame_size_ms,
        )

    def _kind(self) -> int:
        return TrackKind.KIND_AUDIO

    def _open(self, media: MediaRouter, sid: str) -> PcmSink:
        return media.open_audio(
            sid,
            sample_rate=self._sample_rate,
            num_channels=self._num_channels,
            frame_size_ms=self._frame_size_ms or NATIVE_FRAME_MS,
            fill_silence=True,
        )

    def _event(self, chunk: PcmChunk) -> AudioFrameEvent:
        frame = AudioFrame(chunk.data, chunk.sample_rate, chunk.num_channels, chunk.samples_per_channel)
        return AudioFrameEvent(frame)
