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
