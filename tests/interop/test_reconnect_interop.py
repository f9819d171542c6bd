"""Interop: a server ``leave{RECONNECT}`` in a room with an official ``livekit`` client and a greenroom one.

The scenarios (:mod:`tests.interop.scenarios_reconnect`) run once per module, each in its own private network
namespace with the dev server in-process; if the namespace cannot be created the tests fail with the reason —
they are never skipped. alice is the official SDK, bob is greenroom.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

RELIABLE = 1  # livekit.rtc.DataPacketKind
CONNECTED, RECONNECTING = 1, 2  # livekit.rtc.ConnectionState
SIDE_EFFECTS = ("connection_state_changed", "reconnecting", "reconnected", "disconnected")


@pytest.fixture(scope="module")
def greenroom_reconnects() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_reconnect:greenroom_told_to_reconnect", timeout=100)


@pytest.fixture(scope="module")
def official_reconnects() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_reconnect:official_told_to_reconnect", timeout=100)


def _names(result: dict[str, Any], who: str, *names: str) -> list[str]:
    return [e["event"] for e in result["events"][who] if e["event"] in names]


def _about(result: dict[str, Any], who: str, identity: str) -> list[dict[str, Any]]:
    """``who``'s participant_connected/disconnected events about ``identity``, without times."""
    return [
        {k: v for k, v in e.items() if k != "t"}
        for e in result["events"][who]
        if e["event"] in ("participant_connected", "participant_disconnected") and e["identity"] == identity
    ]


def test_greenroom_told_to_reconnect_emits_reconnecting_then_reconnected(
    greenroom_reconnects: dict[str, Any],
) -> None:
    result = greenroom_reconnects
    assert _names(result, "bob", *SIDE_EFFECTS) == [
        "connection_state_changed",  # the first connect
        "connection_state_changed",
        "reconnecting",
        "connection_state_changed",
        "reconnected",
    ]
    states = [e["state"] for e in result["events"]["bob"] if e["event"] == "connection_state_changed"]
    assert states == [CONNECTED, RECONNECTING, CONNECTED]
    assert result["states"]["bob"]["connected"] is True
    assert list(result["states"]["bob"]["remote"]) == ["alice"]
    # alice stayed where she was: bob never saw her leave
    assert _about(result, "bob", "alice") == []


def test_official_sees_greenroom_leave_and_come_back_and_stays_connected(
    greenroom_reconnects: dict[str, Any],
) -> None:
    result = greenroom_reconnects
    seen = _about(result, "alice", "bob")
    assert [e["event"] for e in seen] == [
        "participant_connected",  # the first join
        "participant_disconnected",
        "participant_connected",
    ]
    assert seen[2]["sid"].startswith("PA_")
    assert seen[2]["sid"] != seen[0]["sid"]  # a new session, the same identity
    # the official client itself went through nothing
    assert _names(result, "alice", *SIDE_EFFECTS) == ["connection_state_changed"]
    assert result["states"]["alice"]["connected"] is True
    assert list(result["states"]["alice"]["remote"]) == ["bob"]


def test_data_both_ways_after_greenroom_reconnected(greenroom_reconnects: dict[str, Any]) -> None:
    data = greenroom_reconnects["data"]
    # "b held" was published as soon as bob reported reconnecting: it arrives, once, in order
    assert data["alice"] == [
        ["b before", "bob", "before", RELIABLE],
        ["b held", "bob", "held", RELIABLE],
        ["b after", "bob", "after", RELIABLE],
    ]
    assert data["bob"] == [
        ["a before", "alice", "before", RELIABLE],
        ["a after", "alice", "after", RELIABLE],
    ]


def test_greenroom_keeps_working_while_the_official_client_reconnects(
    official_reconnects: dict[str, Any],
) -> None:
    result = official_reconnects
    seen = _about(result, "bob", "alice")
    assert [e["event"] for e in seen] == ["participant_disconnected", "participant_connected"]
    assert seen[1]["sid"].startswith("PA_")
    # greenroom itself went through nothing
    assert _names(result, "bob", *SIDE_EFFECTS) == ["connection_state_changed"]
    assert result["states"]["bob"]["connected"] is True
    assert list(result["states"]["bob"]["remote"]) == ["alice"]
    # and the official client did reconnect (rather than leave for good)
    assert "reconnected" in _names(result, "alice", *SIDE_EFFECTS)
    assert "disconnected" not in _names(result, "alice", *SIDE_EFFECTS)
    assert result["states"]["alice"]["connected"] is True
    assert list(result["states"]["alice"]["remote"]) == ["bob"]


def test_data_both_ways_after_the_official_client_reconnected(official_reconnects: dict[str, Any]) -> None:
    data = official_reconnects["data"]
    assert data["alice"] == [
        ["b before", "bob", "before", RELIABLE],
        ["b after", "bob", "after", RELIABLE],
    ]
    assert data["bob"] == [
        ["a before", "alice", "before", RELIABLE],
        ["a after", "alice", "after", RELIABLE],
    ]


@pytest.fixture(scope="module")
def republished() -> dict[str, Any]:
    return run_in_netns(
        "tests.interop.scenarios_reconnect:greenroom_republishes_after_reconnect", timeout=100
    )


def test_greenroom_republishes_its_track_and_the_official_client_hears_it_again(
    republished: dict[str, Any],
) -> None:
    result = republished
    old_sid, new_sid = result["old_sid"], result["republished"]["sid"]
    assert new_sid.startswith("TR_")
    assert new_sid != old_sid
    assert result["republished"]["previous_sid"] == old_sid
    assert result["events"]["bob"] == [
        {"event": "reconnected"},
        {"event": "local_track_republished", "sid": new_sid, "previous_sid": old_sid},
    ]
    alice = [(e["event"], e["sid"]) for e in result["events"]["alice"] if e.get("from") == "bob"]
    # (alice listens to track events from her first listen_audio on, so the first track_published may be
    # before that) everything about the old track comes before anything about the new one
    sids = [sid for _, sid in alice]
    assert sids == sorted(sids, key=lambda sid: sid == new_sid)
    assert set(sids) == {old_sid, new_sid}
    assert ("track_subscribed", old_sid) in alice
    assert ("track_unsubscribed", old_sid) in alice
    assert [e for e in alice if e[1] == new_sid] == [
        ("track_published", new_sid),
        ("track_subscribed", new_sid),
    ]
    loud = [w for w in result["windows"][new_sid] if w["rms"] > 500]
    assert len(loud) >= 8  # the second of tone after the first loud window, in 100 ms windows
    assert all(abs(w["peak_hz"] - 440) < 20 for w in loud)
