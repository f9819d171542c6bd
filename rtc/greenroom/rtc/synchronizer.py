"""``AVSynchronizer`` (``livekit.rtc``'s API): audio and video captured together, video paced to its rate.

Audio needs no pacing here — :meth:`AudioSource.capture_frame` already waits while the source's queue is
full, so audio flows at real time. Video frames go into a bounded queue (``video_queue_size_ms`` worth of
frames, at least one; a full queue makes :meth:`AVSynchronizer.push` wait — backpressure, nothing dropped)
and a pacing task hands them to the ``VideoSource`` on an absolute schedule, one frame every ``1 /
video_fps`` seconds from the first. Falling behind that schedule by more than the tolerance (300 ms, as the
official) re-anchors the schedule at now instead of sending a burst to catch up, counted in
:attr:`AVSynchronizer.resyncs` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from greenroom.rtc.audio_frame import AudioFrame
from greenroom.rtc.audio_source import AudioSource
from greenroom.rtc.video_frame import VideoFrame
from greenroom.rtc.video_source import VideoSource

__all__ = ["AVSynchronizer"]

_log = logging.getLogger("greenroom.rtc.synchronizer")


class AVSynchronizer:
    """Push audio and video frames in capture order; video leaves at ``video_fps``."""

    def __init__(
        self,
        *,
        audio_source: AudioSource,
        video_source: VideoSource,
        video_fps: float,
        video_queue_size_ms: float = 100,
        _max_delay_tolerance_ms: float = 300,
    ) -> None:
        """Start the video pacing task on the running loop.

        Args:
            audio_source: where audio frames go (paced by its own queue).
            video_source: where video frames go, one every ``1 / video_fps`` seconds.
            video_fps: the video's frame rate.
            video_queue_size_ms: how much video may wait before :meth:`push` waits (at least one frame).
            _max_delay_tolerance_ms: how far behind schedule the pacing may fall before it re-anchors.

        Raises:
            ValueError: ``video_fps`` is not positive.
        """
        if video_fps <= 0:
            raise ValueError(f"video_fps must be positive, got {video_fps}")
        self._audio = audio_source
        self._video = video_source
        self._interval = 1.0 / video_fps
        self._tolerance = _max_delay_tolerance_ms / 1000
        self._queue: asyncio.Queue[tuple[VideoFrame, float | None]] = asyncio.Queue(
            maxsize=max(1, int(video_fps * video_queue_size_ms / 1000))
        )
        self._next: float | None = None  # when the next video frame is due (time.perf_counter)
        self._sent: deque[float] = deque(maxlen=max(2, int(video_fps)))  # about one second of send times
        self._last_video = 0.0
        self._last_audio = 0.0
        #: times the pacing fell more than the tolerance behind and re-anchored its schedule
        self.resyncs = 0
        self._task = asyncio.get_running_loop().create_task(self._pace(), name="greenroom-av-synchronizer")

    async def push(self, frame: VideoFrame | AudioFrame, timestamp: float | None = None) -> None:
        """Capture ``frame``: audio at once (waiting on the audio source's queue), video into the paced queue.

        Args:
            frame: a video or audio frame.
            timestamp: the frame's media time in seconds (for audio: the end of the frame); kept for
                :attr:`last_video_time` / :attr:`last_audio_time`.
        """
        if isinstance(frame, AudioFrame):
            await self._audio.capture_frame(frame)
            if timestamp is not None:
                self._last_audio = timestamp
            return
        await self._queue.put((frame, timestamp))

    async def clear_queue(self) -> None:
        """Drop the audio and video not yet sent (barge-in)."""
        self._audio.clear_queue()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def wait_for_playout(self) -> None:
        """Wait until every frame pushed so far has been handed to its source."""
        await asyncio.gather(self._audio.wait_for_playout(), self._queue.join())

    def reset(self) -> None:
        """Forget the video schedule (the next frame goes at once and starts a new one)."""
        self._next = None
        self._sent.clear()

    async def aclose(self) -> None:
        """Stop pacing video (frames still queued are not sent)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def actual_fps(self) -> float:
        """The video rate achieved over about the last second (0 before two frames)."""
        if len(self._sent) < 2 or self._sent[-1] == self._sent[0]:
            return 0.0
        return (len(self._sent) - 1) / (self._sent[-1] - self._sent[0])

    @property
    def last_video_time(self) -> float:
        """The timestamp of the last video frame handed to the video source."""
        return self._last_video

    @property
    def last_audio_time(self) -> float:
        """The timestamp of the last audio pushed, minus what still waits in the audio source's queue."""
        return self._last_audio - self._audio.queued_duration

    async def _pace(self) -> None:
        while True:
            frame, timestamp = await self._queue.get()
            await self._until_due()
            self._video.capture_frame(frame)
            if timestamp is not None:
                self._last_video = timestamp
            self._sent.append(time.perf_counter())
            assert self._next is not None
            self._next += self._interval
            self._queue.task_done()

    async def _until_due(self) -> None:
        now = time.perf_counter()
        if self._next is None:
            self._next = now
        elif (wait := self._next - now) > 0:
            await asyncio.sleep(wait)
        elif -wait > self._tolerance:
            self.resyncs += 1
            _log.warning("video fell %.0f ms behind its schedule; re-anchoring it at now", -wait * 1000)
            self._next = now
