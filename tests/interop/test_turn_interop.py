"""ICE servers reach aiortc and TURN relays carry the room: greenroom clients limited to relayed candidates
connect through a real coturn, whether the dev server hands the TURN server out (with ``force_relay``) or
the user's ``RtcConfiguration`` names it; with a wrong password they cannot connect at all
(:mod:`tests.interop.scenarios_turn`). Runs in a private network namespace; never skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import HOST_IP, run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(200)]


@pytest.fixture(scope="module")
def relayed() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_turn:relayed", timeout=180)


def test_the_servers_turn_and_force_relay_carry_the_room(relayed: dict[str, Any]) -> None:
    phase = relayed["from_server"]
    assert phase["data"] == ["via turn from a", "via turn from b"]
    assert phase["audio_hz"] == 440  # the tone, heard through the relays
    # two clients × (publisher, subscriber), and one more: aiortc gathers for the audio m-line of the
    # publisher's offer before BUNDLE folds it into the first transport (balanced bundle policy)
    assert phase["allocations"] == 5


def test_the_users_ice_servers_and_relay_policy_carry_the_room(relayed: dict[str, Any]) -> None:
    phase = relayed["from_user"]
    assert phase["data"] == ["via turn from a", "via turn from b"]
    assert phase["allocations"] == 9  # four more


def test_coturn_relayed_the_traffic_to_the_dev_server(relayed: dict[str, Any]) -> None:
    usage = relayed["relayed"]
    used = [u for u in usage if u["peer"] != "?"]  # "?": the audio m-line's allocation, never used
    assert len(used) == 8
    assert {u["peer"] for u in used} == {HOST_IP}  # every relay's peer is the dev server
    assert all(u["bytes_from_peer"] > 0 and u["bytes_to_peer"] > 0 for u in used)  # DTLS, SCTP, data


def test_relay_only_with_a_wrong_password_does_not_connect(relayed: dict[str, Any]) -> None:
    assert relayed["bad_password"] == "timed out after 6 s waiting for the room"
    assert relayed["refused_credentials"] > 0  # coturn refused the allocation; no host path was tried
