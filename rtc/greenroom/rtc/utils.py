"""``livekit.rtc.utils``: :func:`combine_audio_frames` and :func:`sine_wave_generator`.

Not exported from the package root in the official SDK except ``combine_audio_frames``; users import
``sine_wave_generator`` from here (``from greenroom.rtc.utils import sine_wave_generator``), as they do from
``livekit.rtc.utils``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from greenroom.rtc.audio_frame import AudioFrame

__all__ = ["combine_audio_frames", "sine_wave_generator"]


def combine_audio_frames(buffer: AudioFrame | list[AudioFrame]) -> AudioFrame:
    """Concatenate frames of one format into one frame (a single frame is returned as it is).

    Args:
        buffer: a frame, or a non-empty list of frames sharing sample rate and channel count.

    Returns:
        One frame holding all the samples, in order.

    Raises:
        ValueError: the list is empty, or the frames differ in sample rate or channel count.
    """
    if isinstance(buffer, AudioFrame):
        return buffer
    if not buffer:
        raise ValueError("buffer is empty")
    first = buffer[0]
    for frame in buffer[1:]:
        if frame.sample_rate != first.sample_rate:
            raise ValueError(f"Sample rate mismatch: expected {first.sample_rate}, got {frame.sample_rate}")
        if frame.num_channels != first.num_channels:
            raise ValueError(
                f"Channel count mismatch: expected {first.num_channels}, got {frame.num_channels}"
            )
    pcm = b"".join(
        frame.data.cast("B")[: frame.num_channels * frame.samples_per_channel * 2] for frame in buffer
    )
    total = sum(frame.samples_per_channel for frame in buffer)
    return AudioFrame(pcm, first.sample_rate, first.num_channels, total)


async def sine_wave_generator(
    freq: float, duration: float, sample_rate: int = 48000, amplitude: float = 0.3
) -> AsyncIterator[AudioFrame]:
    """Yield a mono sine tone as 100 ms frames, as fast as they are read (a test signal, not paced).

    Args:
        freq: the tone's frequency (Hz).
        duration: its length in seconds (rounded down to whole 100 ms frames).
        sample_rate: samples per second.
        amplitude: peak level as a fraction of full scale (0.0–1.0).

    Yields:
        Mono 16-bit frames of ``sample_rate // 10`` samples, the phase continuous across frames.
    """
    block = sample_rate // 10
    for index in range(int(duration * sample_rate) // block):
        t = (np.arange(block) + index * block) / sample_rate
        tone = (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
        yield AudioFrame(tone.tobytes(), sample_rate, 1, block)
