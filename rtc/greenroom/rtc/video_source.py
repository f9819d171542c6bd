"""``VideoSource``: raw frames in, a video track out, as ``livekit.rtc.VideoSource``.

``capture_frame`` is synchronous and never blocks (as in the official SDK): the frame is copied and handed to
the runtime loop, where ``greenroom.runtime.media.VideoSourceTrack`` keeps the newest two for the encoder.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from greenroom.rtc.video_frame import VideoFrame, av_format
from greenroom.runtime import loop as runtime
from greenroom.runtime.media import MediaError, VideoSourceTrack

__all__ = ["VideoSource"]


async def _make_track() -> VideoSourceTrack:
    return VideoSourceTrack()


class VideoSource:
    """A source of raw frames for a :class:`~greenroom.rtc.track.LocalVideoTrack`.

    Args:
        width: the intended width (frames of another size are sent as they are).
        height: the intended height.
        is_screencast: accepted for compatibility (aiortc has no content hint).
    """

    def __init__(self, width: int, height: int, *, is_screencast: bool = False) -> None:
        self._width = width
        self._height = height
        self._track = runtime.run_sync(_make_track(), timeout=5)

    def capture_frame(
        self,
        frame: VideoFrame,
        *,
        timestamp_us: int = 0,
        rotation: int = 0,
        metadata: Any | None = None,
    ) -> None:
        """Queue a copy of ``frame`` for sending (``timestamp_us`` 0: the capture time).

        Raises:
            ValueError: the frame's buffer type is not supported.
        """
        fmt = av_format(frame.type)
        data = bytes(frame.data)
        stamp = timestamp_us or None
        runtime.call_soon(self._capture, data, frame.width, frame.height, fmt, stamp)

    def _capture(self, data: bytes, width: int, height: int, fmt: str, stamp: int | None) -> None:
        with contextlib.suppress(MediaError, ValueError):  # closed, or malformed: dropped (as officially)
            self._track.capture(data, width, height, fmt, timestamp_us=stamp)

    async def aclose(self) -> None:
        """Stop the source; its tracks end."""
        runtime.call_soon(self._track.stop)
        await asyncio.sleep(0)
