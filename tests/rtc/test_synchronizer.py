"""AVSynchronizer: video paced to its rate through a bounded queue, audio straight to its source."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from greenroom import rtc


class _Video(rtc.VideoSource):
    """Records when each frame was handed over (``time.perf_counter`` is what the pacing uses)."""

    def __init__(self) -> None:
        super().__init__(4, 4)
        self.times: list[float] = []
        self.frames: list[Any] = []

    def capture_frame(self, frame: rtc.VideoFrame, **kwargs: Any) -> None:
        import time

        self.times.append(time.perf_counter())
        self.frames.append(frame)


class _Audio(rtc.AudioSource):
    """Takes audio at once (an unpublished source's queue would never drain)."""

    def __init__(self) -> None:
        super().__init__(48000, 1)
        self.frames: list[rtc.AudioFrame] = []

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        self.frames.append(frame)

    async def wait_for_playout(self) -> None:
        return None


def _frame(n: int) -> rtc.VideoFrame:
    return rtc.VideoFrame(4, 4, rtc.VideoBufferType.RGBA, bytes([n % 256]) * 64)


def test_video_leaves_no_faster_than_its_rate_in_order_and_audio_goes_through() -> None:
    audio_frames: list[rtc.AudioFrame] = []

    async def scenario() -> tuple[_Video, rtc.AVSynchronizer, float]:
        video = _Video()
        audio = _Audio()
        sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=50)
        for n in range(10):
            await sync.push(_frame(n), timestamp=n / 50)
            await sync.push(rtc.AudioFrame(bytes(960 * 2), 48000, 1, 960), timestamp=(n + 1) / 50)
        await sync.wait_for_playout()
        last_audio = sync.last_audio_time
        await sync.aclose()
        await audio.aclose()
        audio_frames.extend(audio.frames)
        return video, sync, last_audio

    video, sync, last_audio = asyncio.run(scenario())
    assert len(audio_frames) == 10
    assert [bytes(f.data)[0] for f in video.frames] == list(range(10))
    # an absolute schedule (a late frame is followed by a shorter gap) that is never ahead of 50 fps:
    # an asyncio sleep never ends early and re-anchoring only moves the schedule later
    assert all(t - video.times[0] >= k * 0.02 * 0.99 for k, t in enumerate(video.times))
    assert sync.last_video_time == pytest.approx(9 / 50)
    assert last_audio == pytest.approx(10 / 50)  # everything played out: nothing queued to subtract
    assert sync.actual_fps > 0


def test_a_full_video_queue_makes_push_wait() -> None:
    async def scenario() -> int:
        video = _Video()
        audio = _Audio()
        sync = rtc.AVSynchronizer(
            audio_source=audio, video_source=video, video_fps=1, video_queue_size_ms=2000
        )
        for n in range(4):  # the pacer sends 0 at once and holds 1 for a second; 2 and 3 fill the queue
            await sync.push(_frame(n))
        blocked = asyncio.create_task(sync.push(_frame(4)))
        await asyncio.sleep(0)
        waiting = int(not blocked.done())
        await sync.clear_queue()
        await blocked
        await sync.aclose()
        await audio.aclose()
        return waiting

    assert asyncio.run(scenario()) == 1


def test_a_bad_rate_is_refused() -> None:
    async def scenario() -> None:
        audio = _Audio()
        with pytest.raises(ValueError, match="video_fps"):
            rtc.AVSynchronizer(audio_source=audio, video_source=_Video(), video_fps=0)
        await audio.aclose()

    asyncio.run(scenario())
