"""Conformance: official ``livekit`` SDK clients exchange media through greenroom's dev server.

Each test runs a scenario from :mod:`tests.interop.scenarios_media` inside a private network namespace; the
server forwards RTP without decoding (a decoder constructed in its process fails the scenario).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def tones() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_media:official_tone_sequence", timeout=100)


def test_official_client_hears_the_official_tone_sequence_through_the_server(tones: dict[str, Any]) -> None:
    assert tones["listening_sid"] == tones["published_sid"]
    assert tones["heard"] == [440.0, 660.0, 880.0]


def test_forwarding_constructs_no_decoder(tones: dict[str, Any]) -> None:
    assert tones["tapped_packets"] > 100
    assert tones["decoders"] == []


def test_libwebrtc_sends_audio_levels_and_speakers_and_subscription_are_reported(
    tones: dict[str, Any],
) -> None:
    # aiortc negotiates urn:ietf:params:rtp-hdrext:ssrc-audio-level and libwebrtc sends it on every packet
    assert tones["packets_with_level"] > 50
    assert tones["loudest_level"] is not None
    assert tones["loudest_level"] < 20  # an 8000-amplitude sine is about -15 dBov
    assert ["alice"] in tones["speakers_at_bob"]
    assert tones["local_track_subscribed"] == [tones["published_sid"]]


def test_official_client_sees_the_official_colour_cycle_through_the_server() -> None:
    # 640x360 with the SDK's default options (simulcast requested): aiortc answers without simulcast, so
    # libwebrtc sends one VP8 encoding, which is forwarded as is
    result = run_in_netns(
        "tests.interop.scenarios_media:official_colour_cycle", timeout=100, args={"width": 640, "height": 360}
    )
    assert result["watching_sid"] == result["published_sid"]
    assert result["mime_type"] == "video/vp8"
    assert result["seen"] == ["red", "green", "blue"]
    assert result["size"] == [640, 360]
    assert result["decoders"] == []


def test_official_mute_pauses_forwarding_and_unmute_resumes_the_tone() -> None:
    result = run_in_netns("tests.interop.scenarios_media:official_mute", timeout=100)
    assert result["server_muted"]
    assert result["server_unmuted"]
    assert result["before"] == [440.0]
    assert result["while_muted_windows"] > 5  # bob's stream goes on (silence) while nothing is forwarded
    assert result["while_muted_loud"] == 0
    assert result["after"] == [440.0]
    speakers = result["speakers_at_bob"]
    assert speakers[0] == ["alice"]
    assert [] in speakers  # alice stopped speaking when muted …
    assert speakers[-1] == ["alice"]  # … and speaks again after unmute
    assert result["decoders"] == []
