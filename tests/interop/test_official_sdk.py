"""Conformance: the official ``livekit`` SDK joins greenroom's dev server and exchanges data through it.

Each test runs a scenario from :mod:`tests.interop.scenarios` inside a private network namespace (see
:mod:`tests.interop.netns`); if the namespace cannot be created the test fails with the reason — it is
never skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

DUPLICATE_IDENTITY = 2  # livekit.DisconnectReason
SIGNAL_CLOSE = 9


@pytest.fixture(scope="module")
def lifecycle() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios:room_lifecycle_and_data", timeout=100)


def test_two_official_clients_join_default_options_and_v0(lifecycle: dict[str, Any]) -> None:
    connects = lifecycle["connects"]
    # alice used the SDK's default options: /rtc/v1 → our 404 → fallback to /rtc
    assert connects["alice"]["sid"].startswith("RM_")
    assert connects["bob"]["remote"] == ["alice"]
    assert connects["carol"]["remote"] == ["alice", "bob"]
    for result in connects.values():
        assert result["connect_s"] < 10


def test_data_both_directions_with_topics_destinations_and_lossy(lifecycle: dict[str, Any]) -> None:
    def got(who: str) -> set[tuple[str, str, str]]:
        return {(p["data"], p["from"], p["topic"]) for p in lifecycle["data"][who]}

    assert got("alice") == {("b->a reliable", "bob", "t2"), ("b->all lossy", "bob", "")}
    assert got("bob") == {("a->all reliable", "alice", "t1"), ("a->b lossy", "alice", "t3")}
    # destination_identities honoured: carol gets neither b->a nor a->b
    assert got("carol") == {("a->all reliable", "alice", "t1"), ("b->all lossy", "bob", "")}


def test_metadata_name_and_attributes_changes(lifecycle: dict[str, Any]) -> None:
    seen = lifecycle["bob_state"]["remote"]["alice"]
    assert seen == {"name": "Alice A.", "metadata": "meta-1", "attributes": {"role": "host"}}
    assert lifecycle["attributes"] == [{"role": "host"}]
    # carol has no canUpdateOwnMetadata: the server refused, so nobody sees a change
    assert lifecycle["bob_state"]["remote"]["carol"]["metadata"] == ""


def test_participant_disconnected_after_leave(lifecycle: dict[str, Any]) -> None:
    # the scenario waited for participant_disconnected(carol) at alice and bob; reaching here proves it
    assert lifecycle["bob_state"]["connected"] is True


def test_duplicate_identity_replaces_the_first_official_client() -> None:
    result = run_in_netns("tests.interop.scenarios:duplicate_identity", timeout=100)
    assert result["bob_saw_at_join"] == ["alice"]
    assert result["first_reason"] == DUPLICATE_IDENTITY
    assert result["bob_got_from"] == "alice"


def test_grant_matrix_and_bad_input_with_official_clients() -> None:
    result = run_in_netns("tests.interop.scenarios:grants_and_bad_input", timeout=100)
    refused = result["refused"]
    assert "401" in refused["bad signature"]
    assert "bad_signature" in refused["bad signature"]
    assert "expired" in refused["expired"]
    assert "roomJoin" in refused["no roomJoin"]
    assert result["garbage_leave"] == SIGNAL_CLOSE
    # 20 sequenced packets + marker arrived while the garbage session was closed; nothing from "mute"
    assert result["bob_topics"] == ["seq"] * 20 + ["marker"]
    assert result["transcriptions_at_alice"] == ["bob"]  # bob is an agent
    assert result["transcriptions_at_bob"] == 0  # alice is not: dropped by the server
    assert result["alice_connected"] is True
