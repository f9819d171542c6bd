"""``AudioSource``: PCM in, a real-time paced audio track out, as ``livekit.rtc.AudioSource``.

The queue lives on the runtime loop (``greenroom.runtime.media.PcmSourceTrack``); ``capture_frame`` crosses to
it with ``_bridge.call`` and returns once the samples are queued, waiting while the queue is full — the
backpressure signal. When no sender pulls (not published yet), the queue fills and ``capture_frame`` waits.
"""

from __future__ import annotations

import asyncio

from greenroom.rtc._bridge import call
from greenroom.rtc.audio_frame import AudioFrame
from greenroom.runtime import loop as runtime
from greenroom.runtime.media import PcmSourceTrack

__all__ = ["AudioSource"]


async def _make_track(sample_rate: int, num_channels: int, queue_size_ms: int) -> PcmSourceTrack:
    return PcmSourceTrack(sample_rate, num_channels, queue_size_ms=queue_size_ms)


class AudioSource:
    """A source of int16 PCM for a :class:`~greenroom.rtc.track.LocalAudioTrack`.

    Args:
        sample_rate: samples per second per channel of the frames captured.
        num_channels: 1 or 2.
        queue_size_ms: how much audio may wait to be sent before ``capture_frame`` waits (default 1 s).
        loop: accepted for compatibility (greenroom's queue lives on its runtime loop).
    """

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        queue_size_ms: int = 1000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._track = runtime.run_sync(_make_track(sample_rate, num_channels, queue_size_ms), timeout=5)

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Interleaved channels."""
        return self._num_channels

    @property
    def queued_duration(self) -> float:
        """Seconds of audio waiting to be sent."""
        return self._track.queued_duration

    def clear_queue(self) -> None:
        """Drop everything queued (barge-in); a waiting ``capture_frame`` resumes."""
        runtime.call_soon(self._track.clear)

    async def capture_frame(self, frame: AudioFrame) -> None:
        """Queue ``frame``, waiting while the queue is full.

        Raises:
            ValueError: the frame's rate or channel count differs from the source's.
            greenroom.runtime.media.TrackEndedError: the source was closed.
        """
        if frame.sample_rate != self._sample_rate or frame.num_channels != self._num_channels:
            raise ValueError(
                f"frame is {frame.sample_rate} Hz x{frame.num_channels}, "
                f"the source {self._sample_rate} Hz x{self._num_channels}"
            )
        if frame.samples_per_channel == 0:
            return
        await call(self._track.put(bytes(frame.data.cast("B"))))

    async def wait_for_playout(self) -> None:
        """Wait until everything captured so far has been handed to the sender."""
        await call(self._track.wait_for_playout())

    async def aclose(self) -> None:
        """Stop the source: its tracks end, a waiting ``capture_frame`` fails."""
        runtime.call_soon(self._track.stop)
        await asyncio.sleep(0)
