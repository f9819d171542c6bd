"""AudioResampler: the official API on libsoxr — rates, channels, chunking, flush, errors."""

from __future__ import annotations

import numpy as np
import pytest

from greenroom import rtc
from tests.rtc.test_media import peak_hz


def _tone(hz: float, rate: int, seconds: float, channels: int = 1) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    mono = (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    return np.repeat(mono[:, None], channels, axis=1).tobytes()


@pytest.mark.parametrize("quality", list(rtc.AudioResamplerQuality))
def test_a_tone_keeps_its_pitch_and_length_in_odd_sized_chunks(quality: rtc.AudioResamplerQuality) -> None:
    resampler = rtc.AudioResampler(44100, 16000, quality=quality)
    pcm = _tone(1000, 44100, 1.0)
    out: list[rtc.AudioFrame] = []
    for start in range(0, len(pcm), 2047):  # odd byte counts: a sample split across pushes
        out += resampler.push(bytearray(pcm[start : start + 2047]))
    out += resampler.flush()
    combined = rtc.combine_audio_frames(out)
    assert combined.sample_rate == 16000
    assert combined.samples_per_channel == pytest.approx(16000, abs=2)
    samples = np.frombuffer(combined.data.cast("B"), dtype="<i2")
    assert peak_hz(samples[4000:12000], rate=16000) == pytest.approx(1000, abs=5)


def test_stereo_frames_in_and_out() -> None:
    resampler = rtc.AudioResampler(48000, 24000, num_channels=2, quality=rtc.AudioResamplerQuality.HIGH)
    pcm = _tone(440, 48000, 0.5, channels=2)
    frame = rtc.AudioFrame(pcm, 48000, 2, 24000)
    out = resampler.push(frame) + resampler.flush()
    assert {f.num_channels for f in out} == {2}
    assert sum(f.samples_per_channel for f in out) == pytest.approx(12000, abs=2)
    stereo = np.frombuffer(rtc.combine_audio_frames(out).data.cast("B"), dtype="<i2").reshape(-1, 2)
    assert np.abs(stereo[:, 0].astype(int) - stereo[:, 1]).max() <= 2  # the same tone on both (soxr dithers)


def test_wrong_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        rtc.AudioResampler(0, 16000)
    resampler = rtc.AudioResampler(48000, 16000)
    with pytest.raises(ValueError, match="44100 Hz"):
        resampler.push(rtc.AudioFrame(bytes(882), 44100, 1, 441))
    assert resampler.push(bytearray()) == []
