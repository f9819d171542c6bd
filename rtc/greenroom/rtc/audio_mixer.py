"""``AudioMixer`` (``livekit.rtc``'s API): many async streams of ``AudioFrame`` summed block by block.

How it differs inside from the official mixer, and why:

* **One reader task per input.** The official mixer awaits each stream's ``__anext__`` under a timeout,
  which *cancels* the pending read when a stream is late — and cancelling an async generator's
  ``__anext__`` throws into it, which ends most generators (e.g. an ``AudioStream`` loop). Here a reader
  task pulls each stream without ever being cancelled mid-read (only by ``remove_stream``/``aclose``), and
  the mixer waits on what the readers have buffered.
* **Every queue is bounded.** Each input buffers at most :data:`INPUT_BLOCKS` blocks — its reader then
  waits, so a stream is pulled no faster than the mix is consumed (backpressure, nothing dropped); the
  output queue holds ``capacity`` mixed blocks and the mixer waits when it is full.
* **A late input** is mixed as what it has plus silence once ``stream_timeout_ms`` has passed since the
  block's wait began (as the official), counted in :attr:`AudioMixer.late_blocks` and logged once per
  stream. A block in which no input had anything is not emitted.

Mixing sums int16 samples in 32-bit and clips to the int16 range. The output is not paced in real time:
blocks come out as fast as the inputs provide them (as the official).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np

from greenroom.rtc.audio_frame import AudioFrame

__all__ = ["INPUT_BLOCKS", "AudioMixer"]

_log = logging.getLogger("greenroom.rtc.audio_mixer")

#: At most this many blocks are buffered per input before its reader waits.
INPUT_BLOCKS = 4

_Pcm = np.ndarray


class _Input:
    """One stream's reader state: its reader task appends, the mixer takes."""

    def __init__(self, stream: AsyncIterator[AudioFrame], channels: int) -> None:
        self.stream = stream
        self.chunks: list[_Pcm] = []
        self.samples = 0
        self.exhausted = False
        self.warned = False
        self.channels = channels
        self.room = asyncio.Event()  # set by the mixer when it took from this input
        self.task: asyncio.Task[None] | None = None

    def take(self, count: int) -> tuple[_Pcm, bool]:
        """Up to ``count`` samples per channel, padded with silence to ``count``; whether any were real."""
        had = self.samples > 0
        pcm = np.concatenate(self.chunks) if self.chunks else np.zeros((0, self.channels), np.int16)
        block, rest = pcm[:count], pcm[count:]
        self.chunks = [rest] if len(rest) else []
        self.samples = len(rest)
        self.room.set()
        if len(block) < count:
            block = np.concatenate((block, np.zeros((count - len(block), self.channels), np.int16)))
        return block, had


class AudioMixer:
    """Sum several async audio streams into one stream of fixed-size blocks (iterate it for the mix)."""

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        *,
        blocksize: int = 0,
        stream_timeout_ms: int = 100,
        capacity: int = 100,
    ) -> None:
        """Create a mixer and start it on the running loop.

        Args:
            sample_rate: the rate of every input and of the output (Hz).
            num_channels: the channels of every input and of the output.
            blocksize: samples per channel in each output block (0: 100 ms).
            stream_timeout_ms: how long a block waits for a late input before mixing it with silence.
            capacity: mixed blocks kept for the reader before the mixer waits.
        """
        self._rate = sample_rate
        self._channels = num_channels
        self._block = blocksize if blocksize > 0 else sample_rate // 10
        self._timeout = stream_timeout_ms / 1000
        self._inputs: dict[AsyncIterator[AudioFrame], _Input] = {}
        self._wake = asyncio.Event()  # an input has more, or the set of inputs changed
        self._out: asyncio.Queue[AudioFrame | None] = asyncio.Queue(maxsize=max(1, capacity))
        self._ending = False
        self._done = False
        #: blocks mixed with a late input's silence (see the module docstring)
        self.late_blocks = 0
        self._task = asyncio.get_running_loop().create_task(self._mix(), name="greenroom-audio-mixer")

    def add_stream(self, stream: AsyncIterator[AudioFrame]) -> None:
        """Mix ``stream`` in from the next block on.

        Raises:
            RuntimeError: :meth:`end_input` or :meth:`aclose` was called.
        """
        if self._ending:
            raise RuntimeError("Cannot add stream after mixer has been closed")
        if stream in self._inputs:
            return
        entry = _Input(stream, self._channels)
        entry.task = asyncio.get_running_loop().create_task(
            self._read(entry), name="greenroom-audio-mixer-input"
        )
        self._inputs[stream] = entry
        self._wake.set()

    def remove_stream(self, stream: AsyncIterator[AudioFrame]) -> None:
        """Stop mixing ``stream`` (what it had buffered is dropped; no error if it is not mixed)."""
        entry = self._inputs.pop(stream, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()
        self._wake.set()

    def end_input(self) -> None:
        """No more streams will be added: the mix ends once every input is exhausted and drained."""
        self._ending = True
        self._wake.set()

    async def aclose(self) -> None:
        """Stop at once: readers and the mixer are cancelled, blocks not yet read are dropped."""
        self._ending = True
        for stream in list(self._inputs):
            self.remove_stream(stream)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._out.empty():
            self._out.get_nowait()
        self._out.put_nowait(None)  # a reader waiting in __anext__ ends

    def __aiter__(self) -> AudioMixer:
        return self

    async def __anext__(self) -> AudioFrame:
        if self._done:
            raise StopAsyncIteration
        frame = await self._out.get()
        if frame is None:
            self._done = True
            raise StopAsyncIteration
        return frame

    # -- inside ---------------------------------------------------------------------------------------------

    async def _read(self, entry: _Input) -> None:
        """Pull one stream into its buffer, waiting while the buffer is full."""
        try:
            async for frame in entry.stream:
                if frame.num_channels != self._channels or frame.sample_rate != self._rate:
                    raise ValueError(
                        f"a {frame.sample_rate} Hz × {frame.num_channels} frame in a "
                        f"{self._rate} Hz × {self._channels} mixer"
                    )
                while entry.samples >= INPUT_BLOCKS * self._block:
                    entry.room.clear()
                    await entry.room.wait()
                pcm = np.frombuffer(frame.data.cast("B"), dtype="<i2")[
                    : frame.samples_per_channel * self._channels
                ]
                entry.chunks.append(pcm.reshape(-1, self._channels))
                entry.samples += frame.samples_per_channel
                self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("an AudioMixer input failed; it is mixed no more")
        finally:
            entry.exhausted = True
            self._wake.set()

    def _ready(self) -> bool:
        return all(i.samples >= self._block or i.exhausted for i in self._inputs.values())

    async def _wait(self, seconds: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _mix(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._ending and not self._inputs):
            if not self._inputs:
                await self._wait(None)
                continue
            deadline = loop.time() + self._timeout
            while not self._ready():
                left = deadline - loop.time()
                if left <= 0:
                    self._late()
                    break
                await self._wait(left)
            frame = self._take()
            if frame is not None:
                await self._out.put(frame)
        await self._out.put(None)

    def _late(self) -> None:
        late = [i for i in self._inputs.values() if i.samples < self._block and not i.exhausted]
        if any(i.samples for i in self._inputs.values()):
            self.late_blocks += 1
        for entry in late:
            if not entry.warned:
                entry.warned = True
                _log.warning(
                    "AudioMixer: stream %r was late by %.0f ms; mixing silence for it",
                    entry.stream,
                    self._timeout * 1000,
                )

    def _take(self) -> AudioFrame | None:
        """The next block of every input (dropping exhausted, drained ones); ``None`` if all were empty."""
        total = np.zeros((self._block, self._channels), np.int32)
        any_real = False
        for stream, entry in list(self._inputs.items()):
            block, had = entry.take(self._block)
            total += block
            any_real |= had
            if entry.exhausted and entry.samples == 0:
                del self._inputs[stream]
        if not any_real:
            return None
        mixed = np.clip(total, -32768, 32767).astype("<i2")
        return AudioFrame(mixed.tobytes(), self._rate, self._channels, self._block)
