"""Media oracles for forwarding tests: a tone source whose pitch can change, and an FFT ear that hears it.

The source feeds the runtime's :class:`~greenroom.runtime.media.PcmSourceTrack` (aiortc encodes it as Opus on
the client side); the ear reads a received aiortc track through :class:`~greenroom.runtime.media.PcmSink` and
records, per 100 ms window, the FFT peak frequency and the RMS. Tones are chosen on FFT bins (10 Hz at
100 ms), so a forwarded tone shows up within one bin of its frequency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack

from greenroom.runtime.media import PcmSink, PcmSourceTrack

__all__ = ["ColourTrack", "Ear", "Tone", "Window", "colour_of"]

RATE = 48_000
_CHUNK = RATE // 50  # 20 ms


class Tone:
    """A sine tone published through a :class:`PcmSourceTrack` (``frequency = 0`` sends silence)."""

    def __init__(self, frequency: float, amplitude: float = 8000.0) -> None:
        self.frequency = frequency
        self.amplitude = amplitude
        self.track = PcmSourceTrack(RATE, 1, queue_size_ms=60)
        self._phase = 0.0
        self._task = asyncio.ensure_future(self._feed())

    async def _feed(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                step = 2 * np.pi * self.frequency / RATE
                phases = self._phase + step * np.arange(_CHUNK)
                self._phase = float((phases[-1] + step) % (2 * np.pi))
                await self.track.put((self.amplitude * np.sin(phases)).astype("<i2").tobytes())

    async def stop(self) -> None:
        """Stop feeding and end the track."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.track.stop()


@dataclass(frozen=True, slots=True)
class Window:
    """One 100 ms window of received audio."""

    at: float
    peak_hz: float
    rms: float


class Ear:
    """Listens to a received audio track: 100 ms windows of (FFT peak, RMS)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.sink = PcmSink(track, sample_rate=RATE, num_channels=1)
        self.windows: list[Window] = []
        self.ended = asyncio.Event()
        self._heard = asyncio.Event()
        self._task = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        pending = np.zeros(0, dtype=np.float64)
        size = RATE // 10
        async for chunk in self.sink:
            pending = np.concatenate([pending, np.frombuffer(chunk.data, dtype="<i2").astype(np.float64)])
            while len(pending) >= size:
                window, pending = pending[:size], pending[size:]
                spectrum = np.abs(np.fft.rfft(window * np.hanning(size)))
                peak = float(np.fft.rfftfreq(size, 1 / RATE)[int(np.argmax(spectrum))])
                self.windows.append(Window(time.monotonic(), peak, float(np.sqrt(np.mean(window**2)))))
                self._heard.set()
        self.ended.set()
        self._heard.set()

    def heard(self, frequency: float, *, since: float = 0.0, tolerance: float = 15.0) -> int:
        """How many loud windows since ``since`` peaked within ``tolerance`` Hz of ``frequency``."""
        return sum(
            1
            for w in self.windows
            if w.at >= since and w.rms > 500 and abs(w.peak_hz - frequency) <= tolerance
        )

    async def wait_for(
        self, frequency: float, *, windows: int = 5, since: float = 0.0, timeout: float = 10
    ) -> None:
        """Wait until ``windows`` windows heard ``frequency``."""
        async with asyncio.timeout(timeout):
            while self.heard(frequency, since=since) < windows:
                if self.ended.is_set():
                    raise AssertionError(f"the track ended before {frequency} Hz was heard")
                self._heard.clear()
                await self._heard.wait()

    async def close(self) -> None:
        """Stop listening."""
        await self.sink.aclose()
        await asyncio.gather(self._task, return_exceptions=True)


COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class ColourTrack(VideoStreamTrack):
    """A 160×120 video track of one solid colour (changeable), encoded by aiortc as VP8."""

    def __init__(self, colour: str = "red") -> None:
        super().__init__()
        self.colour = colour

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        rgb = np.zeros((120, 160, 3), dtype=np.uint8)
        rgb[:, :] = COLOURS[self.colour]
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


def colour_of(rgba: bytes) -> str:
    """The named colour nearest to the mean of an RGBA frame."""
    pixels = np.frombuffer(rgba, dtype=np.uint8).reshape(-1, 4)[:, :3].astype(np.float64)
    mean = pixels.mean(axis=0)
    return min(COLOURS, key=lambda name: float(np.sum((mean - np.array(COLOURS[name])) ** 2)))
