"""AudioMixer: streams summed block by block, bounded buffers, late and failing inputs, end and close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from greenroom import rtc
from greenroom.rtc import audio_mixer
from greenroom.rtc.utils import sine_wave_generator
from tests.rtc.test_media import peak_hz

RATE = 48000
BLOCK = RATE // 10


def _spectrum_peaks(samples: np.ndarray, count: int) -> list[float]:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return sorted(float(f) for f in freqs[np.argsort(spectrum)[-count:]])


async def _drain(mixer: rtc.AudioMixer) -> np.ndarray:
    frames = [np.frombuffer(frame.data.cast("B"), dtype="<i2") async for frame in mixer]
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def test_two_tones_are_both_in_the_mix_and_nothing_is_lost() -> None:
    async def scenario() -> np.ndarray:
        mixer = rtc.AudioMixer(RATE, 1, blocksize=BLOCK)
        mixer.add_stream(sine_wave_generator(440, 1.0, RATE))
        mixer.add_stream(sine_wave_generator(880, 1.0, RATE))
        mixer.end_input()
        mixed = await _drain(mixer)
        await mixer.aclose()
        return mixed

    mixed = asyncio.run(scenario())
    assert len(mixed) == RATE  # ten blocks of 100 ms, none dropped, none added
    peaks = _spectrum_peaks(mixed, 2)
    assert peaks == [pytest.approx(440, abs=2), pytest.approx(880, abs=2)]


def test_the_sum_is_clipped_not_wrapped() -> None:
    async def loud() -> AsyncIterator[rtc.AudioFrame]:
        yield rtc.AudioFrame(np.full(BLOCK, 30000, "<i2").tobytes(), RATE, 1, BLOCK)

    async def scenario() -> np.ndarray:
        mixer = rtc.AudioMixer(RATE, 1)
        mixer.add_stream(loud())
        mixer.add_stream(loud())
        mixer.end_input()
        return await _drain(mixer)

    assert set(asyncio.run(scenario()).tolist()) == {32767}


def test_a_silent_input_delays_a_block_by_the_timeout_then_counts_as_silence() -> None:
    gate = asyncio.Event()

    async def stalled() -> AsyncIterator[rtc.AudioFrame]:
        await gate.wait()  # never yields until the end: the mixer must not cancel this read
        yield rtc.AudioFrame(np.full(BLOCK, 100, "<i2").tobytes(), RATE, 1, BLOCK)

    async def scenario() -> tuple[np.ndarray, int]:
        mixer = rtc.AudioMixer(RATE, 1, stream_timeout_ms=20)
        mixer.add_stream(sine_wave_generator(1000, 0.3, RATE))
        mixer.add_stream(stalled())
        frames = [await anext(mixer) for _ in range(3)]  # the tone, with silence for the stalled one
        gate.set()  # the stalled input's read was kept: its frame still arrives
        mixer.end_input()
        rest = await _drain(mixer)
        first = np.concatenate([np.frombuffer(f.data.cast("B"), dtype="<i2") for f in frames])
        assert set(rest.tolist()) == {100}
        return first, mixer.late_blocks

    first, late = asyncio.run(scenario())
    assert peak_hz(first) == pytest.approx(1000, abs=10)
    assert late == 3


def test_each_input_is_read_no_faster_than_the_mix_is_consumed() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[rtc.AudioFrame]:
        nonlocal pulled
        while True:
            pulled += 1
            yield rtc.AudioFrame(bytes(BLOCK * 2), RATE, 1, BLOCK)

    async def scenario() -> None:
        mixer = rtc.AudioMixer(RATE, 1, capacity=2)
        mixer.add_stream(endless())
        await anext(mixer)
        for _ in range(50):  # let the mixer and the reader run as far as their bounds let them
            await asyncio.sleep(0)
        # output queue (2) + the block being put (1) + the input's buffer + the frame read before the wait
        assert pulled <= 1 + 2 + 1 + audio_mixer.INPUT_BLOCKS + 1
        await mixer.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(mixer)

    asyncio.run(scenario())


def test_a_failing_or_mismatched_input_ends_alone(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> AsyncIterator[rtc.AudioFrame]:
        yield rtc.AudioFrame(bytes(BLOCK * 2), 16000, 1, BLOCK)  # wrong rate

    async def scenario() -> np.ndarray:
        mixer = rtc.AudioMixer(RATE, 1)
        mixer.add_stream(broken())
        mixer.add_stream(sine_wave_generator(500, 0.5, RATE))
        mixer.end_input()
        with pytest.raises(RuntimeError, match="closed"):
            mixer.add_stream(sine_wave_generator(500, 0.5, RATE))
        return await _drain(mixer)

    mixed = asyncio.run(scenario())
    assert len(mixed) == RATE // 2
    assert "16000 Hz" in caplog.text


def test_remove_stream_stops_mixing_it() -> None:
    async def scenario() -> None:
        mixer = rtc.AudioMixer(RATE, 1)
        tone = sine_wave_generator(700, 10.0, RATE)
        mixer.add_stream(tone)
        await anext(mixer)
        mixer.remove_stream(tone)
        mixer.remove_stream(tone)  # twice: no error
        mixer.end_input()
        rest = await _drain(mixer)
        assert len(rest) <= (2 + audio_mixer.INPUT_BLOCKS) * BLOCK  # only what was mixed before removal

    asyncio.run(scenario())
