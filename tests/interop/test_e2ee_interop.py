"""E2EE interop with the official ``livekit`` SDK (libwebrtc frame cryptor, Rust data cryptor).

The dev server of :mod:`tests.interop.scenarios_e2ee` decrypts every frame and data packet an official
publisher sends with greenroom's codecs and re-encrypts it with greenroom's before an official subscriber
gets it: the subscriber hears, sees and reads only what it could decrypt from greenroom's ciphertext.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

OK = 1


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_official_media_and_data_decrypt_with_greenroom_and_greenroom_ciphertext_decrypts_at_official(
    codec: str,
) -> None:
    result: dict[str, Any] = run_in_netns(
        "tests.interop.scenarios_e2ee:official_through_greenroom_crypto",
        timeout=140,
        args={"video_codec": codec},
    )
    counts = result["counts"]
    assert counts["undecryptable"] == 0
    assert counts["clear"] == 0
    assert counts["decrypted"] == counts["reencrypted"] > 100
    assert result["heard"] == [440.0, 660.0]
    assert result["seen"] == ["red", "green", "blue"]
    assert result["data_at_bob"] == [f"secret-{i}|via greenroom" for i in range(3)]
    assert sorted(result["captured"]) == ["audio/opus", f"video/{codec.lower()}"]
    assert result["states_at_bob"] == [["alice", OK], ["alice", OK]]  # one decryptor per track
    assert result["encryption_status_at_bob"] == [["alice", True]]
    assert result["decoders"] == []


def test_greenroom_and_official_clients_hear_and_read_each_other_encrypted() -> None:
    result = run_in_netns("tests.interop.scenarios_e2ee:greenroom_and_official_both_ways", timeout=140)
    assert result["bob_heard"] == [440.0]  # official → greenroom
    assert result["alice_heard"] == [660.0]  # greenroom → official
    assert result["data_at_bob"] == ["official to greenroom"]
    assert result["data_at_alice"] == ["greenroom to official"]
    assert result["trailers"] == {"alice": ["0c00"], "bob": ["0c00"]}  # only LiveKit-encrypted frames
    # the same states and statuses on both SDKs: each reports its own encryptor and the other's decryptor
    assert sorted(map(tuple, result["states_at_bob"])) == [("alice", OK), ("bob", OK)]
    assert sorted(map(tuple, result["states_at_alice"])) == [("alice", OK), ("bob", OK)]
    assert result["status_at_bob"] == [["alice", True]]
    assert result["status_at_alice"] == [["bob", True]]
    assert sorted(c["identity"] for c in result["cryptors_at_bob"]) == ["alice", "bob"]
    assert result["decoders"] == []


def test_a_wrong_key_a_late_key_and_a_ratchet_give_the_official_state_sequence() -> None:
    result = run_in_netns("tests.interop.scenarios_e2ee:wrong_key_then_right_key_then_ratchet", timeout=140)
    failed, ratcheted = 3, 5
    official = [["alice", failed], ["alice", OK], ["alice", ratcheted], ["alice", OK]]
    assert result["states"]["carol"] == official
    assert result["states"]["bob"] == official  # greenroom reports exactly what the official SDK does
    assert result["wrong_phase_loud"] == {"bob": 0, "carol": 0}  # silence, not noise
    assert min(result["wrong_phase_windows"].values()) >= 19
    assert result["after_ratchet_loud"] == {"bob": 10, "carol": 10}
    # an auto-ratchet moves the sender's clone of the shared key, not the shared key itself (native)
    assert result["exported"]["bob"] == result["exported"]["carol"]
    assert result["decoders"] == []


def test_per_participant_keys_missing_key_then_video_both_ways() -> None:
    result = run_in_netns("tests.interop.scenarios_e2ee:per_participant_keys_and_video", timeout=180)
    missing = 4
    about_alice = [["alice", missing], ["alice", OK]]  # no key for alice yet, then her key set
    assert [s for s in result["states"]["carol"] if s[0] == "alice"] == about_alice
    assert [s for s in result["states"]["bob"] if s[0] == "alice"] == about_alice  # greenroom = official
    assert ["bob", OK] in result["states"][
        "alice"
    ]  # the official SDK decrypts greenroom's VP8 under bob's key
    assert result["data_at_alice"] == ["to alice, under bob's key"]
    assert result["exported_at_bob"] == "alice-own-key"
    assert result["decoders"] == []
