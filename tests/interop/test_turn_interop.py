"""ICE servers reach aiortc and TURN relays carry the room: greenroom clients limited to relayed candidates
connect through a real coturn, whether the dev server hands the TURN server out (with ``force_relay``) or
the user's ``RtcConfiguration`` names it; with a wrong password they cannot connect at all; the official SDK
does the same beside greenroom as the reference (:mod:`tests.interop.scenarios_turn`). Runs in a private
network namespace; never skipped."""

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
    assert phase["allocations"] == 4


def test_turn_over_tcp(relayed: dict[str, Any]) -> None:
    phase = relayed["over_tcp"]
    assert phase["data"] == ["via turn from a", "via turn from b"]
    assert phase["allocations"] == 4
    assert relayed["tcp_clients"] == 2  # the TCP client's two peer connections, each its own TCP connection


def test_coturn_relayed_the_traffic_to_the_dev_server(relayed: dict[str, Any]) -> None:
    assert relayed["peers"] == [HOST_IP]  # every relay's peer is the dev server
    usage = relayed["relayed"]  # [bytes from the peer, bytes to it] per allocation
    assert len(usage) == 17
    assert usage.count([0, 0]) == 1  # the audio m-line's allocation, never used
    assert all(rb > 0 and sb > 0 for rb, sb in usage if [rb, sb] != [0, 0])  # DTLS, SCTP, data, audio


def test_the_official_sdk_as_the_reference_through_the_same_relay(relayed: dict[str, Any]) -> None:
    """The official SDK and greenroom, each relay-only by its own ``RtcConfiguration``, in one room."""
    assert relayed["official"] == {"data_from": ["alice", "bob"], "allocations": 4}


def test_relay_only_with_a_wrong_password_does_not_connect(relayed: dict[str, Any]) -> None:
    assert relayed["bad_password"] == "timed out after 6 s waiting for the room"
    assert relayed["refused_credentials"] > 0  # coturn refused the allocation; no host path was tried
