"""Client-side media plumbing on aiortc: PCM and raw-video sources and sinks with bounded queues.

The rtc facade wraps these (``AudioSource``/``AudioStream``/``VideoSource``/``VideoStream``); the runtime
keeps no public frame type of its own beyond the small carriers :class:`PcmChunk` and :class:`VideoChunk`.
Everything here lives on the runtime loop: construct, ``put`` and iterate on the loop that runs the peer
connection (DESIGN.md §3 — frames never cross a mailbox).

* :class:`PcmSourceTrack` — an aiortc ``MediaStreamTrack`` fed with int16 PCM through a byte queue bounded in
  milliseconds. :meth:`~PcmSourceTrack.put` waits while the queue is full (the only backpressure signal, as
  in ``livekit.rtc.AudioSource.capture_frame``). ``recv`` emits 20 ms frames at real-time pace with
  ``pts`` in samples and ``time_base = 1/sample_rate``, always as stereo (a mono source is duplicated into
  both channels: aiortc's Opus encoder would otherwise upmix it at -3 dB). **Starvation policy:** when the
  queue holds less than one frame, the frame is completed with silence (zeros) rather than waiting: the RTP
  clock keeps running, the remote jitter buffer never sees a gap, and
  :meth:`~PcmSourceTrack.wait_for_playout` completes after the last queued sample was handed to the encoder.
  If the loop falls more than 200 ms behind the real-time schedule the schedule is reset instead of bursting
  to catch up.
* :class:`PcmSink` — consumes a (remote) aiortc audio track, resamples and remixes with PyAV's
  ``AudioResampler`` to the requested rate, channel count and frame size, and delivers :class:`PcmChunk`
  items to a queue that drops the **oldest** item when ``capacity`` is reached (``dropped`` counts them).
  Iteration ends when the track ends (aiortc raises ``MediaStreamError``) or on :meth:`~PcmSink.aclose`.
  With ``fill_silence=True`` (what ``rtc.AudioStream`` uses, matching ``livekit.rtc`` whose playout keeps
  pulling) it also yields chunks of silence at real-time pace while no audio arrives on the live track (a
  muted publisher the server stopped forwarding, a network gap): see :class:`PcmSink`.
* :class:`VideoSourceTrack` / :class:`VideoSink` — the same for raw video (RGBA, I420 and friends), converted
  with ``VideoFrame.reformat``.

aiortc details relied on (aiortc 1.16, PyAV 18): the sender pulls frames by awaiting ``track.recv()``
(``aiortc/rtcrtpsender.py`` line 298) and encodes every ``av.AudioFrame``/``av.VideoFrame`` it gets; the
receiver's track raises ``MediaStreamError`` once its decoder thread ends (``aiortc/rtcrtpreceiver.py``
lines 221-227, 643-650). Both are public behaviour of ``MediaStreamTrack``.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from greenroom.codecs.errors import GreenroomError

__all__ = [
    "VIDEO_FORMATS",
    "AiortcSeamError",
    "DropOldestQueue",
    "MediaError",
    "PcmChunk",
    "PcmSink",
    "PcmSourceTrack",
    "TrackEndedError",
    "UnsupportedCodecError",
    "VideoChunk",
    "VideoSink",
    "VideoSourceTrack",
    "video_frame_from_bytes",
    "video_frame_to_bytes",
]

_log = logging.getLogger("greenroom.runtime.media")

_T = TypeVar("_T")

#: Raw video formats accepted and produced here: PyAV format name → bytes per pixel of each plane, where a
#: plane's pixel width is ``VideoPlane.width`` (so NV12's interleaved chroma plane counts 2 bytes a pixel).
VIDEO_FORMATS: dict[str, tuple[int, ...]] = {
    "rgba": (4,),
    "bgra": (4,),
    "argb": (4,),
    "abgr": (4,),
    "rgb24": (3,),
    "bgr24": (3,),
    "yuv420p": (1, 1, 1),
    "yuv422p": (1, 1, 1),
    "yuv444p": (1, 1, 1),
    "nv12": (1, 2),
}

_VIDEO_CLOCK_RATE = 90_000
_VIDEO_TIME_BASE = fractions.Fraction(1, _VIDEO_CLOCK_RATE)
_MAX_LAG_S = 0.2
#: How late (in output chunks) the next decoded frame may be before :class:`PcmSink` fills the gap ...
_GAP_GRACE_CHUNKS = 2
#: ... and at least this long (s): two 20 ms Opus frames of network jitter. With 10 ms output chunks (the
#: ``AudioStream`` default, as the official SDK's) two chunks were 20 ms, and ordinary jitter under load
#: put silence between real frames (a tone's pitch and level then read wrong: tests/examples/test_tone_bots).
_MIN_GAP_GRACE_S = 0.04


class MediaError(GreenroomError):
    """A media pipeline could not be set up or used."""


class TrackEndedError(MediaError):
    """The track was stopped; nothing more can be queued on it."""


class UnsupportedCodecError(MediaError):
    """The codec cannot be forwarded (only Opus, VP8 and H264 are)."""


class AiortcSeamError(MediaError):
    """aiortc lacks a private attribute greenroom relies on: the installed version is not a supported one."""


# -- a bounded queue that drops the oldest item --------------------------------------------------------


class DropOldestQueue(Generic[_T]):
    """An asyncio queue with an optional bound that drops the oldest item when full, and an end marker.

    Args:
        capacity: the most items held; ``0`` means unbounded.
    """

    def __init__(self, capacity: int = 0) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[_T] = deque()
        self._ended = False
        self._readable = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called (items already queued can still be read)."""
        return self._ended

    def put_nowait(self, item: _T) -> bool:
        """Append ``item``, dropping the oldest item if full.

        Returns:
            ``False`` (and nothing is queued) once the queue has ended, else ``True``.
        """
        if self._ended:
            return False
        if self.capacity and len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._readable.set()
        return True

    def clear(self) -> int:
        """Drop every queued item (not counted in ``dropped``); returns how many there were."""
        count = len(self._items)
        self._items.clear()
        if not self._ended:
            self._readable.clear()
        return count

    def end(self) -> None:
        """Mark the end of the stream: readers get the queued items, then ``StopAsyncIteration``."""
        self._ended = True
        self._readable.set()

    async def get(self) -> _T:
        """The next item.

        Raises:
            StopAsyncIteration: the queue ended and is empty.
        """
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        return await self.get()


# -- audio ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Interleaved signed 16-bit little-endian PCM, as delivered by :class:`PcmSink`.

    Attributes:
        data: ``samples_per_channel * num_channels`` int16 samples.
        sample_rate: samples per second per channel.
        num_channels: interleaved channels.
        samples_per_channel: samples in ``data`` per channel.
        timestamp: presentation time of the first sample in seconds (the sender's clock), when known.
    """

    data: bytes
    sample_rate: int
    num_channels: int
    samples_per_channel: int
    timestamp: float | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples_per_channel / self.sample_rate


def _layout(num_channels: int) -> str:
    if num_channels == 1:
        return "mono"
    if num_channels == 2:
        return "stereo"
    raise ValueError("num_channels must be 1 or 2")


def _mono_to_stereo(pcm: bytes) -> bytes:
    """Interleaved int16 stereo with both channels equal to the mono ``pcm`` (no gain change)."""
    out = bytearray(2 * len(pcm))
    low, high = pcm[0::2], pcm[1::2]
    out[0::4], out[1::4], out[2::4], out[3::4] = low, high, low, high
    return bytes(out)


class PcmSourceTrack(MediaStreamTrack):
    """An audio track for ``pc.addTrack`` fed with int16 PCM through a queue bounded in milliseconds.

    Args:
        sample_rate: samples per second per channel of the PCM put in (the Opus encoder resamples).
        num_channels: 1 or 2 (interleaved).
        queue_size_ms: queue capacity; :meth:`put` waits while adding would exceed it.
        frame_ms: duration of each emitted frame (aiortc packetizes 20 ms).
    """

    kind = "audio"

    def __init__(
        self,
        sample_rate: int = 48_000,
        num_channels: int = 1,
        *,
        queue_size_ms: int = 1000,
        frame_ms: int = 20,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or frame_ms <= 0 or queue_size_ms < 0:
            raise ValueError("sample_rate and frame_ms must be > 0, queue_size_ms >= 0")
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self._layout = _layout(num_channels)
        self._bytes_per_sample = 2 * num_channels
        self.frame_samples = sample_rate * frame_ms // 1000
        self._frame_bytes = self.frame_samples * self._bytes_per_sample
        self._capacity_bytes = max(
            self._frame_bytes, sample_rate * queue_size_ms // 1000 * self._bytes_per_sample
        )
        self._time_base = fractions.Fraction(1, sample_rate)
        self._buffer = bytearray()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._start: float | None = None
        self._pts = 0
        #: frames emitted so far, and how many of them were completed (or made entirely) of silence.
        self.frames_sent = 0
        self.frames_starved = 0

    @property
    def queued_duration(self) -> float:
        """Seconds of audio waiting in the queue."""
        return len(self._buffer) / self._bytes_per_sample / self.sample_rate

    async def put(self, pcm: bytes | bytearray | memoryview) -> None:
        """Queue interleaved int16 PCM, waiting while the queue is full.

        A chunk larger than the whole capacity is accepted once the queue is empty.

        Raises:
            ValueError: the length is not a whole number of samples for every channel.
            TrackEndedError: the track was stopped (before or while waiting).
        """
        data = memoryview(pcm).cast("B")
        if len(data) % self._bytes_per_sample:
            raise ValueError(f"PCM length {len(data)} is not a multiple of {self._bytes_per_sample}")
        while True:
            if self.readyState != "live":
                raise TrackEndedError("the audio track was stopped")
            if not self._buffer or len(self._buffer) + len(data) <= self._capacity_bytes:
                break
            self._not_full.clear()
            await self._not_full.wait()
        if data:
            self._buffer += data
            self._drained.clear()

    def clear(self) -> None:
        """Drop everything queued (a barge-in); waiting :meth:`put` and :meth:`wait_for_playout` resume."""
        self._buffer.clear()
        self._not_full.set()
        self._drained.set()

    async def wait_for_playout(self) -> None:
        """Wait until every queued sample has been handed to the sender (or the track stops)."""
        while self._buffer and self.readyState == "live":
            self._drained.clear()
            await self._drained.wait()

    def stop(self) -> None:
        """End the track: the sender stops, waiting producers get :class:`TrackEndedError`."""
        super().stop()
        self._not_full.set()
        self._drained.set()

    async def recv(self) -> av.AudioFrame:
        """The next frame, at real-time pace (called by aiortc's sender).

        Raises:
            MediaStreamError: the track was stopped.
        """
        if self.readyState != "live":
            raise MediaStreamError
        await self._pace()
        if self.readyState != "live":
            raise MediaStreamError
        chunk = bytes(self._buffer[: self._frame_bytes])
        del self._buffer[: self._frame_bytes]
        if len(chunk) < self._frame_bytes:
            self.frames_starved += 1
            chunk += bytes(self._frame_bytes - len(chunk))
        self._not_full.set()
        if not self._buffer:
            self._drained.set()
        # Always stereo: aiortc's Opus encoder resamples every frame to stereo, and libswresample's mono →
        # stereo upmix puts the channel at the centre mix level (-3 dB), so a mono source would reach every
        # subscriber (the official SDK included) 3 dB quieter than captured. Duplicating it here is lossless.
        frame = av.AudioFrame(format="s16", layout="stereo", samples=self.frame_samples)
        frame.planes[0].update(_mono_to_stereo(chunk) if self.num_channels == 1 else chunk)
        frame.pts = self._pts
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        self.frames_sent += 1
        return frame

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
            return
        self._pts += self.frame_samples
        wait = self._start + self._pts / self.sample_rate - now
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -_MAX_LAG_S:
            _log.debug("audio source fell %.0f ms behind; resetting its schedule", -wait * 1000)
            self._start = now - self._pts / self.sample_rate


class PcmSink:
    """Reads an aiortc audio track into int16 PCM chunks at the requested format.

    Construct it on the loop running the peer connection; it starts reading at once. Iterate with
    ``async for chunk in sink``; the iteration ends when the track ends or on :meth:`aclose`.

    Args:
        track: the remote (or any) aiortc audio track.
        sample_rate: output samples per second per channel.
        num_channels: output channels (1 or 2; remixed by the resampler).
        capacity: the most chunks held; when full the **oldest** is dropped and ``dropped`` counts it.
            ``0`` means unbounded.
        frame_size_ms: fixed output chunk duration; ``None`` keeps the decoder's frame size (20 ms for Opus).
        fill_silence: yield silence while no audio arrives (below).

    **Gap filling** (``fill_silence=True``): a per-sink clock tracks when the audio delivered so far runs out
    (it starts at construction, so a track that is muted from the start yields silence too). When the next
    decoded frame is more than two chunk durations (and at least 40 ms) late, the sink yields zero chunks
    (``frame_size_ms`` long, else 20 ms; ``timestamp`` ``None``) covering the elapsed gap, then one per chunk
    duration in real time,
    until audio arrives again — which is delivered at once, with the clock restarting from it (no burst of
    stale silence; at most one chunk of time overlaps). A stall of the loop longer than 200 ms is not made up
    (the clock restarts). The silence goes through the same queue (``capacity``, drop-oldest) and stops when
    the track ends or on :meth:`aclose`. ``silent_chunks`` counts them.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        sample_rate: int = 48_000,
        num_channels: int = 1,
        capacity: int = 0,
        frame_size_ms: int | None = None,
        fill_silence: bool = False,
    ) -> None:
        if track.kind != "audio":
            raise ValueError(f"PcmSink needs an audio track, got {track.kind!r}")
        self.sample_rate = sample_rate
        self.num_channels = num_channels
        self._layout = _layout(num_channels)
        self._frame_size = None if frame_size_ms is None else sample_rate * frame_size_ms // 1000
        self._track = track
        self._queue: DropOldestQueue[PcmChunk] = DropOldestQueue(capacity)
        self._fill_silence = fill_silence
        self._silence_samples = self._frame_size or sample_rate // 50  # 20 ms, the Opus frame
        #: loop time at which the audio delivered so far (real or silence) runs out.
        self._runs_out = asyncio.get_running_loop().time()
        self._filling = False  # yielding silence: the next chunk is due when the clock says, no grace
        self.frames_in = 0
        self.silent_chunks = 0
        self._task = asyncio.ensure_future(self._run())

    @property
    def dropped(self) -> int:
        """Chunks dropped because the consumer fell ``capacity`` chunks behind."""
        return self._queue.dropped

    @property
    def ended(self) -> bool:
        """Whether the source track ended (queued chunks may remain)."""
        return self._queue.ended

    def _resampler(self) -> av.AudioResampler:
        return av.AudioResampler(
            format="s16", layout=self._layout, rate=self.sample_rate, frame_size=self._frame_size
        )

    async def _run(self) -> None:
        resampler = self._resampler()
        receiving: asyncio.Future[Any] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(self._track.recv())
                if self._fill_silence:
                    await asyncio.wait((receiving,), timeout=self._silence_wait())
                    if not receiving.done():
                        self._fill_gap()
                        continue
                try:
                    frame = await receiving
                except MediaStreamError:
                    break
                receiving = None
                if not isinstance(frame, av.AudioFrame):
                    continue
                self.frames_in += 1
                self._filling = False
                try:
                    out = resampler.resample(frame)
                except ValueError:  # the input format changed mid-stream: start a new resampler
                    resampler = self._resampler()
                    out = resampler.resample(frame)
                self._deliver(out)
            self._deliver(resampler.resample(None))
        except Exception:
            _log.exception("audio sink failed; ending its stream")
        finally:
            if receiving is not None and not receiving.done():
                receiving.cancel()
            self._queue.end()

    def _silence_wait(self) -> float:
        """Seconds until the gap (if no frame arrives) must be filled: a grace after the audio runs out,
        none once filling has started (silence then runs ahead of the clock by at most one chunk)."""
        chunk = self._silence_samples / self.sample_rate
        now = asyncio.get_running_loop().time()
        grace = 0.0 if self._filling else max(_GAP_GRACE_CHUNKS * chunk, _MIN_GAP_GRACE_S)
        return max(0.0, self._runs_out + grace - now)

    def _fill_gap(self) -> None:
        """Yield silence up to now (a stall of the loop longer than 200 ms restarts the clock instead)."""
        chunk = self._silence_samples / self.sample_rate
        now = asyncio.get_running_loop().time()
        if now - self._runs_out > max(_MAX_LAG_S, (_GAP_GRACE_CHUNKS + 1) * chunk):
            self._runs_out = now - chunk / 2  # one chunk now, then the real-time schedule
        data = bytes(self._silence_samples * self.num_channels * 2)
        while self._runs_out <= now:
            self._queue.put_nowait(PcmChunk(data, self.sample_rate, self.num_channels, self._silence_samples))
            self.silent_chunks += 1
            self._runs_out += chunk
        self._filling = True

    def _deliver(self, frames: list[av.AudioFrame]) -> None:
        now = asyncio.get_running_loop().time()
        for frame in frames:
            samples = frame.samples
            data = bytes(frame.planes[0])[: samples * self.num_channels * 2]
            timestamp = (
                None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)
            )
            self._queue.put_nowait(PcmChunk(data, self.sample_rate, self.num_channels, samples, timestamp))
            self._runs_out = max(self._runs_out, now) + samples / self.sample_rate

    def __aiter__(self) -> AsyncIterator[PcmChunk]:
        return self

    async def __anext__(self) -> PcmChunk:
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop reading (the track itself is left alone) and end the iteration."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._queue.end()


# -- video ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoChunk:
    """One raw video frame, tightly packed (no row padding), planes back to back.

    Attributes:
        data: the pixel bytes.
        width: pixels.
        height: pixels.
        format: a :data:`VIDEO_FORMATS` name (``"rgba"``, ``"yuv420p"`` for I420, …).
        timestamp_us: presentation time in microseconds (the sender's clock), when known.
    """

    data: bytes
    width: int
    height: int
    format: str
    timestamp_us: int | None = None


def _plane_rows(frame: av.VideoFrame) -> list[tuple[memoryview, int, int, int]]:
    """(writable view, line size, row bytes, rows) for each plane of ``frame``."""
    bpp = VIDEO_FORMATS.get(frame.format.name)
    if bpp is None:
        raise ValueError(f"unsupported video format {frame.format.name!r}")
    return [
        (memoryview(plane).cast("B"), plane.line_size, plane.width * per_pixel, plane.height)
        for plane, per_pixel in zip(frame.planes, bpp, strict=True)
    ]


def video_frame_from_bytes(data: bytes | memoryview, width: int, height: int, format: str) -> av.VideoFrame:
    """Build an ``av.VideoFrame`` from tightly packed planes (the layout of :class:`VideoChunk`)."""
    frame = av.VideoFrame(width=width, height=height, format=format)
    planes = _plane_rows(frame)
    source = memoryview(data).cast("B")
    expected = sum(row * rows for _, _, row, rows in planes)
    if len(source) != expected:
        raise ValueError(f"{format} {width}x{height} needs {expected} bytes, got {len(source)}")
    offset = 0
    for view, line_size, row, rows in planes:
        if line_size == row:
            view[: row * rows] = source[offset : offset + row * rows]
            offset += row * rows
            continue
        for y in range(rows):
            view[y * line_size : y * line_size + row] = source[offset : offset + row]
            offset += row
    return frame


def video_frame_to_bytes(frame: av.VideoFrame) -> bytes:
    """The tightly packed planes of ``frame`` (row padding removed)."""
    parts: list[bytes] = []
    for view, line_size, row, rows in _plane_rows(frame):
        if line_size == row:
            parts.append(bytes(view[: row * rows]))
        else:
            parts.extend(bytes(view[y * line_size : y * line_size + row]) for y in range(rows))
    return b"".join(parts)


class VideoSourceTrack(MediaStreamTrack):
    """A video track for ``pc.addTrack`` fed with raw frames; the producer sets the pace.

    :meth:`capture` never blocks: when ``capacity`` frames are already waiting, the oldest is dropped
    (``dropped`` counts them), so a slow encoder shows the newest picture.

    Args:
        capacity: frames held for the encoder.
    """

    kind = "video"

    def __init__(self, *, capacity: int = 2) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._queue: DropOldestQueue[tuple[av.VideoFrame, int | None]] = DropOldestQueue(capacity)
        self._origin: float | None = None
        self._last_pts = -1

    @property
    def dropped(self) -> int:
        """Frames dropped because the encoder fell behind."""
        return self._queue.dropped

    def capture(
        self,
        data: bytes | memoryview,
        width: int,
        height: int,
        format: str = "rgba",
        *,
        timestamp_us: int | None = None,
    ) -> None:
        """Queue one frame of tightly packed pixels.

        Args:
            data: the planes back to back (see :class:`VideoChunk`).
            width: pixels.
            height: pixels.
            format: a :data:`VIDEO_FORMATS` name.
            timestamp_us: capture time; default: the loop clock.

        Raises:
            TrackEndedError: the track was stopped.
            ValueError: the size does not match the format.
        """
        if self.readyState != "live":
            raise TrackEndedError("the video track was stopped")
        self.capture_frame(video_frame_from_bytes(data, width, height, format), timestamp_us=timestamp_us)

    def capture_frame(self, frame: av.VideoFrame, *, timestamp_us: int | None = None) -> None:
        """Queue an ``av.VideoFrame`` as is (its pts is replaced)."""
        if self.readyState != "live":
            raise TrackEndedError("the video track was stopped")
        self._queue.put_nowait((frame, timestamp_us))

    def stop(self) -> None:
        """End the track; the sender stops."""
        super().stop()
        self._queue.end()

    async def recv(self) -> av.VideoFrame:
        """The next captured frame, with ``pts`` in 1/90000 s (called by aiortc's sender).

        Raises:
            MediaStreamError: the track was stopped.
        """
        try:
            frame, timestamp_us = await self._queue.get()
        except StopAsyncIteration:
            raise MediaStreamError from None
        if timestamp_us is None:
            now = asyncio.get_running_loop().time()
            if self._origin is None:
                self._origin = now
            pts = round((now - self._origin) * _VIDEO_CLOCK_RATE)
        else:
            pts = timestamp_us * _VIDEO_CLOCK_RATE // 1_000_000
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = _VIDEO_TIME_BASE
        return frame


class VideoSink:
    """Reads an aiortc video track into raw frames of one format (``VideoFrame.reformat``).

    Args:
        track: the remote (or any) aiortc video track.
        format: output format (a :data:`VIDEO_FORMATS` name).
        width: output width; ``None`` keeps the decoded size (both or neither of width/height).
        height: output height.
        capacity: the most frames held; when full the **oldest** is dropped (``dropped``). ``0`` = unbounded.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        format: str = "rgba",
        width: int | None = None,
        height: int | None = None,
        capacity: int = 0,
    ) -> None:
        if track.kind != "video":
            raise ValueError(f"VideoSink needs a video track, got {track.kind!r}")
        if format not in VIDEO_FORMATS:
            raise ValueError(f"unsupported video format {format!r}")
        self.format = format
        self._size = (width, height)
        self._track = track
        self._queue: DropOldestQueue[VideoChunk] = DropOldestQueue(capacity)
        self._task = asyncio.ensure_future(self._run())

    @property
    def dropped(self) -> int:
        """Frames dropped because the consumer fell ``capacity`` frames behind."""
        return self._queue.dropped

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self._track.recv()
                except MediaStreamError:
                    break
                if not isinstance(frame, av.VideoFrame):
                    continue
                width, height = self._size
                out = frame.reformat(width=width, height=height, format=self.format)
                timestamp_us = (
                    None
                    if frame.pts is None or frame.time_base is None
                    else int(frame.pts * frame.time_base * 1_000_000)
                )
                self._queue.put_nowait(
                    VideoChunk(video_frame_to_bytes(out), out.width, out.height, self.format, timestamp_us)
                )
        except Exception:
            _log.exception("video sink failed; ending its stream")
        finally:
            self._queue.end()

    def __aiter__(self) -> AsyncIterator[VideoChunk]:
        return self

    async def __anext__(self) -> VideoChunk:
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop reading (the track is left alone) and end the iteration."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._queue.end()
