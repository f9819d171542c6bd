"""rtc.utils: combine_audio_frames and sine_wave_generator, as livekit.rtc.utils."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from greenroom import rtc
from greenroom.rtc.utils import sine_wave_generator
from tests.rtc.test_media import peak_hz


def test_combine_concatenates_frames_of_one_format() -> None:
    a = rtc.AudioFrame(b"\x01\x02", 48000, 2, 0)  # data longer than the samples: only the samples count
    b = rtc.AudioFrame(b"\x01\x02\x03\x04", 48000, 2, 1)
    c = rtc.AudioFrame(b"\x05\x06\x07\x08", 48000, 2, 1)
    combined = rtc.combine_audio_frames([a, b, c])
    assert bytes(combined.data.cast("B")) == b"\x01\x02\x03\x04\x05\x06\x07\x08"
    assert (combined.sample_rate, combined.num_channels, combined.samples_per_channel) == (48000, 2, 2)
    assert rtc.combine_audio_frames(b) is b


def test_combine_refuses_mixed_formats_and_nothing() -> None:
    with pytest.raises(ValueError, match="empty"):
        rtc.combine_audio_frames([])
    with pytest.raises(ValueError, match="Sample rate mismatch"):
        rtc.combine_audio_frames(
            [rtc.AudioFrame(bytes(2), 48000, 1, 1), rtc.AudioFrame(bytes(2), 16000, 1, 1)]
        )
    with pytest.raises(ValueError, match="Channel count mismatch"):
        rtc.combine_audio_frames(
            [rtc.AudioFrame(bytes(2), 48000, 1, 1), rtc.AudioFrame(bytes(4), 48000, 2, 1)]
        )


def test_sine_wave_generator_yields_100_ms_frames_of_a_continuous_tone() -> None:
    async def collect() -> list[rtc.AudioFrame]:
        return [frame async for frame in sine_wave_generator(600, 0.55, 16000, amplitude=0.5)]

    frames = asyncio.run(collect())
    assert [f.samples_per_channel for f in frames] == [1600] * 5  # rounded down to whole frames
    samples = np.frombuffer(rtc.combine_audio_frames(frames).data.cast("B"), dtype="<i2")
    assert peak_hz(samples, rate=16000) == pytest.approx(600, abs=4)
    ideal = 0.5 * 32767 * np.sin(2 * np.pi * 600 * np.arange(len(samples)) / 16000)
    assert float(np.abs(samples - ideal).max()) <= 1.0  # one continuous tone: no phase jump at frame edges
