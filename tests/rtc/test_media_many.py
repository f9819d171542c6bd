"""Ten audio tracks through the dev server at once, greenroom ⇄ greenroom through the public API.

Two publisher processes (greenroom peers, :mod:`tests.interop.peer`, five microphone tracks each) play ten
distinct tones; one greenroom subscriber (this process, with the server) opens an ``AudioStream`` on each of
the ten tracks and must find each track's tone as the FFT peak of what it hears, at full level — so no stream
is mixed up with another, dropped, or starved. (``tests/devserver/test_media.py`` checks forwarding of ten
tracks at the raw-protocol level.)

Why two processes: ten Opus encoders, ten decoders and the server in one CPython process need more than one
core (measured on the 2-vCPU CI box: ~1.1 CPU, and every stream then arrives at about a quarter of real
time); publishers are separate machines in real use anyway.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import numpy as np
import pytest

from greenroom import rtc
from greenroom.devserver.server import DevServer
from tests.interop.netns import PeerProcess
from tests.rtc.support import connect, run_with_server
from tests.rtc.test_media import RATE, collect, peak_hz, rms
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

#: on 10 Hz FFT bins and at least 150 Hz apart
FREQUENCIES = [300.0 + 150.0 * i for i in range(10)]
PUBLISHERS = {"p0": FREQUENCIES[:5], "p1": FREQUENCIES[5:]}


async def _all_subscribed(room: rtc.Room, count: int, timeout: float = 30.0) -> dict[str, Any]:
    """track sid → subscribed remote audio track, once there are ``count`` of them."""

    def tracks() -> dict[str, Any] | None:
        found = {
            publication.sid: publication.track
            for participant in room.remote_participants.values()
            for publication in participant.track_publications.values()
            if publication.track is not None and publication.kind == rtc.TrackKind.KIND_AUDIO
        }
        return found if len(found) == count else None

    return await wait_until(tracks, timeout=timeout, interval=0.05, what=f"{count} subscribed audio tracks")


class _Since:
    """Seconds of audio a stream yielded since its first loud frame (the tone's arrival)."""

    def __init__(self, frames: list[np.ndarray[Any, Any]]) -> None:
        self.frames = frames
        self.first: int | None = None

    def seconds(self) -> float:
        if self.first is None:
            self.first = next((i for i, f in enumerate(self.frames) if rms(f) > 1000), None)
        return 0.0 if self.first is None else sum(len(f) for f in self.frames[self.first :]) / RATE


def _windows(samples: np.ndarray[Any, Any]) -> list[tuple[float, float]]:
    """(FFT peak, RMS) of each 100 ms window."""
    size = RATE // 10
    return [
        (peak_hz(samples[i : i + size]), rms(samples[i : i + size]))
        for i in range(0, len(samples) - size + 1, size)
    ]


def test_ten_tones_through_the_server_at_once_each_heard_at_its_own_pitch() -> None:
    async def scenario(server: DevServer) -> tuple[dict[str, float], dict[str, list[tuple[float, float]]]]:
        listener = await connect(server, "listener")
        peers = [await PeerProcess("greenroom", who).start() for who in PUBLISHERS]
        try:
            expected: dict[str, float] = {}
            for peer in peers:
                await peer.call("connect", url=server.url, token=server.mint_token(peer.label, "r1"))
                for hz in PUBLISHERS[peer.label]:
                    published = await peer.call("publish_tone", frequencies=[hz], seconds=30.0, lead=0.0)
                    expected[published["sid"]] = hz
            tracks = await _all_subscribed(listener, len(expected))
            heard: dict[str, list[np.ndarray[Any, Any]]] = {sid: [] for sid in tracks}
            readers = [
                asyncio.create_task(
                    collect(rtc.AudioStream(track, sample_rate=RATE, num_channels=1), heard[sid])
                )
                for sid, track in tracks.items()
            ]
            since = [_Since(frames) for frames in heard.values()]
            await wait_until(
                lambda: all(s.seconds() >= 2.0 for s in since),
                timeout=30,
                interval=0.1,
                what=lambda: f"2 s of each tone (heard {[round(s.seconds(), 1) for s in since]} s)",
            )
            result = {sid: _windows(np.concatenate(frames)[-2 * RATE :]) for sid, frames in heard.items()}
            await listener.disconnect()
            await asyncio.wait_for(
                asyncio.gather(*readers, return_exceptions=True), 10
            )  # disconnect ends them
            return expected, result
        finally:
            await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)

    expected, result = run_with_server(scenario)
    assert sorted(expected.values()) == FREQUENCIES
    assert set(result) == set(expected)
    for sid, hz in expected.items():
        windows = result[sid]
        assert len(windows) >= 15, (hz, len(windows))  # the last 2 s were all there (20 windows)
        assert statistics.median(p for p, _ in windows) == pytest.approx(hz, abs=10), (hz, windows)
        on_pitch = [level for p, level in windows if abs(p - hz) <= 10]
        assert len(on_pitch) >= len(windows) * 0.8, (hz, windows)
        # full level where the stream flowed; under CPU load (this process hosts the server and ten decoders)
        # a frame more than 40 ms late is covered with silence in real time, as the official SDK's playout
        # conceals a late frame, which lowers a window's RMS (seen in CI: median 0.81 of full scale)
        assert max(on_pitch) == pytest.approx(8000 / 2**0.5, rel=0.15), (hz, windows)
        assert statistics.median(on_pitch) >= 0.6 * 8000 / 2**0.5, (hz, windows)
