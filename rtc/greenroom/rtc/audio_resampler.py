"""``AudioResampler``: streaming sample-rate conversion with the official SDK's API, on libsoxr.

The official SDK resamples with libsoxr inside its native library; here the same library does the work
through ``python-soxr`` (its ``ResampleStream`` keeps the filter state between pushes, so chunk boundaries
leave no clicks), so the quality names map one to one onto soxr's recipes. Input and output are 16-bit
interleaved PCM, as in ``livekit.rtc``; output comes in whatever amount the filter has ready (possibly none
for a small first push: the filter's delay) and :meth:`AudioResampler.flush` drains the rest.
"""

from __future__ import annotations

import enum

import numpy as np
import soxr

from greenroom.rtc.audio_frame import AudioFrame

__all__ = ["AudioResampler", "AudioResamplerQuality"]


@enum.unique
class AudioResamplerQuality(enum.StrEnum):
    """The resampler's quality/CPU trade-off (the official names and values)."""

    QUICK = "quick"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"


_RECIPES = {
    AudioResamplerQuality.QUICK: "QQ",
    AudioResamplerQuality.LOW: "LQ",
    AudioResamplerQuality.MEDIUM: "MQ",
    AudioResamplerQuality.HIGH: "HQ",
    AudioResamplerQuality.VERY_HIGH: "VHQ",
}


class AudioResampler:
    """Convert a stream of 16-bit PCM from ``input_rate`` to ``output_rate`` (push by push, stateful)."""

    def __init__(
        self,
        input_rate: int,
        output_rate: int,
        *,
        num_channels: int = 1,
        quality: AudioResamplerQuality = AudioResamplerQuality.MEDIUM,
    ) -> None:
        """Create a resampler.

        Args:
            input_rate: the sample rate pushed in (Hz).
            output_rate: the sample rate wanted out (Hz).
            num_channels: interleaved channels in the input and output.
            quality: the soxr recipe (higher costs more CPU).

        Raises:
            ValueError: a rate or the channel count is not positive.
        """
        if input_rate <= 0 or output_rate <= 0 or num_channels <= 0:
            raise ValueError(
                f"rates and channels must be positive (got {input_rate}, {output_rate}, {num_channels})"
            )
        self._input_rate = input_rate
        self._output_rate = output_rate
        self._num_channels = num_channels
        self._stream = soxr.ResampleStream(
            input_rate,
            output_rate,
            num_channels,
            dtype="int16",
            quality=_RECIPES[AudioResamplerQuality(quality)],
        )
        self._partial = b""  # a trailing byte of an odd-length push (an int16 sample split across pushes)

    def push(self, data: bytearray | bytes | memoryview | AudioFrame) -> list[AudioFrame]:
        """Resample more input.

        Args:
            data: 16-bit little-endian interleaved PCM at ``input_rate``, or an :class:`AudioFrame`.

        Returns:
            The output ready so far: zero or one frame.

        Raises:
            ValueError: an ``AudioFrame`` whose rate or channel count differs from this resampler's.
        """
        if isinstance(data, AudioFrame):
            if data.sample_rate != self._input_rate or data.num_channels != self._num_channels:
                raise ValueError(
                    f"frame is {data.sample_rate} Hz × {data.num_channels} channels; this resampler takes "
                    f"{self._input_rate} Hz × {self._num_channels}"
                )
            raw = data.data.cast("B").tobytes()
        else:
            raw = bytes(data)
        raw = self._partial + raw
        whole = len(raw) - len(raw) % (2 * self._num_channels)
        raw, self._partial = raw[:whole], raw[whole:]
        if not raw:
            return []
        samples = np.frombuffer(raw, dtype="<i2").reshape(-1, self._num_channels)
        return self._frames(self._stream.resample_chunk(samples, last=False))

    def flush(self) -> list[AudioFrame]:
        """Drain what the filter still holds (call once the input has ended).

        Returns:
            The remaining output: zero or one frame.
        """
        self._partial = b""
        empty = np.zeros((0, self._num_channels), dtype=np.int16)
        return self._frames(self._stream.resample_chunk(empty, last=True))

    def _frames(self, out: np.ndarray) -> list[AudioFrame]:
        count = int(out.shape[0])
        if count == 0:
            return []
        pcm = np.ascontiguousarray(out, dtype="<i2").tobytes()
        return [AudioFrame(pcm, self._output_rate, self._num_channels, count)]
