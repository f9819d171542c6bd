"""``AudioFrame``: interleaved signed 16-bit PCM with its format, as ``livekit.rtc.AudioFrame``."""

from __future__ import annotations

import io
import wave
from typing import Any

__all__ = ["AudioFrame"]

_SAMPLE_BYTES = 2


class AudioFrame:
    """A block of interleaved int16 PCM.

    Args:
        data: at least ``num_channels * samples_per_channel`` int16 samples (bytes, bytearray or memoryview).
        sample_rate: samples per second per channel.
        num_channels: interleaved channels.
        samples_per_channel: samples per channel in ``data``.
        userdata: free-form data carried along with the frame.

    Raises:
        ValueError: ``data`` is too short or not a whole number of int16 samples.
    """

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        sample_rate: int,
        num_channels: int,
        samples_per_channel: int,
        *,
        userdata: dict[str, Any] | None = None,
    ) -> None:
        raw = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        needed = num_channels * samples_per_channel * _SAMPLE_BYTES
        if len(raw) < needed:
            raise ValueError("data length must be >= num_channels * samples_per_channel * sizeof(int16)")
        if len(raw) % _SAMPLE_BYTES:
            raise ValueError("data length must be a multiple of sizeof(int16)")
        self._data = bytearray(raw) if raw.readonly else raw
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._samples_per_channel = samples_per_channel
        self._userdata: dict[str, Any] = userdata if userdata is not None else {}

    @staticmethod
    def create(sample_rate: int, num_channels: int, samples_per_channel: int) -> AudioFrame:
        """A frame of silence (zeros) of the given format, ready to be filled through :attr:`data`."""
        size = num_channels * samples_per_channel * _SAMPLE_BYTES
        return AudioFrame(bytearray(size), sample_rate, num_channels, samples_per_channel)

    @property
    def userdata(self) -> dict[str, Any]:
        """Free-form data attached to the frame."""
        return self._userdata

    @property
    def data(self) -> memoryview:
        """The samples as a writable int16 memoryview (interleaved)."""
        view = memoryview(self._data).cast("B")
        count = self._num_channels * self._samples_per_channel
        return view[: count * _SAMPLE_BYTES].cast("h")

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Interleaved channels."""
        return self._num_channels

    @property
    def samples_per_channel(self) -> int:
        """Samples per channel."""
        return self._samples_per_channel

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self._samples_per_channel / self._sample_rate

    def to_wav_bytes(self) -> bytes:
        """The frame as a WAV file."""
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(self._num_channels)
            wav.setsampwidth(_SAMPLE_BYTES)
            wav.setframerate(self._sample_rate)
            wav.writeframes(self.data.cast("B").tobytes())
        return out.getvalue()

    def __repr__(self) -> str:
        return (
            f"rtc.AudioFrame(sample_rate={self._sample_rate}, num_channels={self._num_channels}, "
            f"samples_per_channel={self._samples_per_channel}, duration={self.duration:.3f})"
        )
