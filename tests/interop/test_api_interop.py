"""Conformance: RoomService calls (``livekit-api``) as official ``livekit`` clients experience them."""

from __future__ import annotations

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PARTICIPANT_REMOVED = 4  # livekit.DisconnectReason
ROOM_DELETED = 5


def test_official_clients_see_mute_data_metadata_removal_and_deletion() -> None:
    result = run_in_netns("tests.interop.scenarios_api:official_clients_see_room_service", timeout=100)
    assert result["mute_answer"] is True
    assert result["bob_muted"] == "alice"
    assert result["data"] == {"from": None, "topic": "api", "data": "ZnJvbSB0aGUgYXBp"}  # b"from the api"
    assert result["room_metadata"] == ["room-meta", "room-meta"]
    assert result["participant_metadata"] == "m2"
    assert result["bob_removed"] == PARTICIPANT_REMOVED
    assert result["alice_deleted"] == ROOM_DELETED
    assert result["rooms_after"] == []
