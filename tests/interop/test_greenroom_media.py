"""Conformance: greenroom and the official ``livekit`` SDK exchange media through the dev server, both ways.

Each scenario of :mod:`tests.interop.scenarios_greenroom_media` runs once per module in its own private
network namespace (never skipped): alice runs greenroom, bob the official SDK, both publish and both listen.
The server forwards RTP without decoding (a decoder constructed in its process fails the scenario).
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from tests.interop.netns import run_in_netns
from tests.interop.scenarios_greenroom_media import COLOURS, TONES, heard

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

FULL_SCALE_RMS = 8000 / 2**0.5  # the peers' tones are 8000-amplitude sines
OTHER = {"alice": "bob", "bob": "alice"}


def _run(name: str) -> dict[str, Any]:
    return run_in_netns(f"tests.interop.scenarios_greenroom_media:{name}", timeout=100)


@pytest.fixture(scope="module")
def tones() -> dict[str, Any]:
    return _run("tones_both_ways")


@pytest.fixture(scope="module")
def mute() -> dict[str, Any]:
    return _run("mute_both_ways")


@pytest.fixture(scope="module")
def colours() -> dict[str, Any]:
    return _run("colours_both_ways")


def test_the_official_sdk_hears_greenrooms_tone_sequence(tones: dict[str, Any]) -> None:
    assert tones["heard_by"]["bob"] == TONES["alice"]


def test_greenroom_hears_the_official_sdks_tone_sequence(tones: dict[str, Any]) -> None:
    assert tones["heard_by"]["alice"] == TONES["bob"]


def test_subscription_events_both_ways_and_no_decoder_in_the_server(tones: dict[str, Any]) -> None:
    sids = tones["sids"]
    for who, other in OTHER.items():
        assert tones["subscribed"][who] == [[sids[other], other]]
        assert tones["local_track_subscribed"][who] == [sids[who]]  # the publisher learns it was subscribed
        assert any(set(speakers) >= {"alice", "bob"} for speakers in tones["speakers"][who])
    assert tones["decoders"] == []


def _loud(windows: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [w for w in windows if start <= w["t"] < end and w["rms"] > 500]


@pytest.mark.parametrize("muter", ["alice", "bob"])
def test_mute_and_unmute_are_seen_and_heard_across_sdks(mute: dict[str, Any], muter: str) -> None:
    listener = OTHER[muter]
    sid = mute["sids"][muter]
    marks = mute["marks"][muter]
    seen = [(name, from_) for name, track, from_ in mute["events"][listener] if track == sid]
    assert ("track_muted", muter) in seen
    assert seen.index(("track_muted", muter)) < seen.index(("track_unmuted", muter))
    windows = mute["windows"][listener]
    # before: the tone at full level (greenroom publishes mono at 0 dB, like libwebrtc — no -3 dB upmix)
    before = _loud(windows, mute["before"] - 1.0, marks["mute_sent"])
    assert len(before) >= 5
    off_pitch = [w for w in before if abs(w["peak_hz"] - {"alice": 500, "bob": 700}[muter]) > 10]
    assert len(off_pitch) <= len(before) // 5, off_pitch  # the onset window, or a glitch on a loaded box
    assert statistics.median(w["rms"] for w in before) == pytest.approx(FULL_SCALE_RMS, rel=0.1)
    # muted: nothing loud once the official decoder's fade-out (concealment, ~0.5 s) is over
    assert _loud(windows, marks["mute_seen"] + 0.7, marks["unmute_sent"]) == []
    # unmuted: the tone again
    assert len(_loud(windows, marks["unmute_seen"] + 0.4, marks["end"])) >= 5


def test_mute_constructs_no_decoder_either(mute: dict[str, Any]) -> None:
    assert mute["decoders"] == []


def _dominant(rgb: list[int]) -> int:
    """0/1/2 for a clearly red/green/blue frame, -1 otherwise (black lead, transitions)."""
    return max(range(3), key=lambda i: rgb[i]) if max(rgb) > 150 and sorted(rgb)[1] < 100 else -1


@pytest.mark.parametrize("watcher", ["alice", "bob"])
def test_vp8_colour_cycle_across_sdks(colours: dict[str, Any], watcher: str) -> None:
    frames = colours["frames_at"][watcher]
    assert {(w, h) for _, w, h in frames} == {(64, 48)}
    order = [d for d in (_dominant(rgb) for rgb, _, _ in frames) if d >= 0]
    collapsed = [d for i, d in enumerate(order) if i == 0 or order[i - 1] != d]
    expected = [_dominant(rgb) for rgb in COLOURS[OTHER[watcher]]]
    assert collapsed == expected, frames[:5]
    assert len(order) >= 30  # about 1.5 s of each colour at 20 fps, minus what arrived before subscribing
    assert colours["decoders"] == []


def test_frame_metadata_features_travel_through_the_server(colours: dict[str, Any]) -> None:
    # the official publisher asked for user timestamps and frame ids: the server's TrackInfo carries them
    # back to its own publication and on to greenroom's view of it (livekit-server copies them too)
    assert colours["features"]["bob"] == [0, 1]
    assert colours["features_seen"]["alice"] == [[0, 1]]
    # greenroom does not attach packet trailers to its frames yet, so it does not announce them
    assert colours["features"]["alice"] == []
    assert colours["features_seen"]["bob"] == [[]]


def test_heard_counts_a_tone_after_three_loud_windows() -> None:
    window = (
        [{"rms": 1000, "peak_hz": 441.0}] * 3
        + [{"rms": 0, "peak_hz": 0.0}]
        + [{"rms": 900, "peak_hz": 659}] * 2
    )
    assert heard(window) == [440]
