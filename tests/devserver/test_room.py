"""Room logic without sockets: versions, eviction, visibility, metadata, routing, tracks, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantKind,
    ParticipantPermission,
    ParticipantState,
    RequestResponseReason,
    TrackInfo,
    TrackType,
)
from greenroom.codecs.packets import (
    ChatMessage,
    DataPacket,
    SipDtmf,
    Transcription,
    Unhandled,
    UserPacket,
)
from greenroom.devserver.room import Admission, Dropped, Member, Room, Routed, new_sid


def _room(*identities: str, **permission: Any) -> Room:
    room = Room("r", empty_timeout=10, now=0.0)
    for identity in identities:
        room.admit(Admission(identity, permission=ParticipantPermission(**permission)))
    return room


def _member(room: Room, identity: str) -> Member:
    member = room.get(identity)
    assert member is not None
    return member


def test_ids_carry_livekit_prefixes() -> None:
    assert new_sid("PA_").startswith("PA_")
    assert len(new_sid("PA_")) == 15
    room = _room("a")
    assert room.sid.startswith("RM_")
    assert _member(room, "a").sid.startswith("PA_")


def test_admit_starts_joined_at_version_1_and_every_change_bumps() -> None:
    room = _room("a", can_update_metadata=True)
    a = _member(room, "a")
    assert (a.info().state, a.info().version) == (ParticipantState.JOINED, 1)
    active = room.activate(a)
    assert active is not None
    assert (active.state, active.version) == (ParticipantState.ACTIVE, 2)
    assert room.activate(a) is None  # already active: no new version
    change = room.update_metadata(a, metadata="m")
    assert change.info is not None
    assert change.info.version == 3
    gone = room.remove(a, DisconnectReason.CLIENT_INITIATED, now=5.0)
    assert gone is not None
    assert gone.version == 4
    assert gone.state is ParticipantState.DISCONNECTED


def test_duplicate_identity_replaces_the_old_member() -> None:
    room = _room("a")
    old = _member(room, "a")
    new, evicted = room.admit(Admission("a"))
    assert evicted is old
    assert old.info().state is ParticipantState.DISCONNECTED
    assert old.info().disconnect_reason is DisconnectReason.DUPLICATE_IDENTITY
    assert new.sid != old.sid
    assert room.get("a") is new
    assert (
        room.remove(old, DisconnectReason.CLIENT_INITIATED) is None
    )  # the old session ending later is a no-op
    assert room.get("a") is new


def test_hidden_members_are_not_announced_or_counted() -> None:
    room = _room("a")
    hidden, _ = room.admit(Admission("rec", permission=ParticipantPermission(hidden=True)))
    a = _member(room, "a")
    assert room.audience(hidden) == []
    assert [m.identity for m in room.audience(a)] == ["rec"]  # the hidden one still hears about others
    assert [p.identity for p in room.others(hidden)] == ["a"]
    assert room.others(a) == []
    assert room.info().num_participants == 1


def test_empty_room_expires_after_its_timeout() -> None:
    room = Room("r", empty_timeout=10, now=0.0)
    assert not room.expired(5.0)
    assert room.expired(10.0)
    member, _ = room.admit(Admission("a"))
    assert not room.expired(100.0)
    room.remove(member, DisconnectReason.CLIENT_INITIATED, now=200.0)
    assert not room.expired(205.0)
    assert room.expired(210.0)


def test_metadata_update_needs_the_grant_and_merges_attributes() -> None:
    room = _room("a")
    denied = room.update_metadata(_member(room, "a"), name="x")
    assert denied.reason is RequestResponseReason.NOT_ALLOWED
    assert denied.info is None

    room = Room("r")
    a, _ = room.admit(
        Admission(
            "a",
            name="A",
            attributes={"k": "1", "gone": "x"},
            permission=ParticipantPermission(can_update_metadata=True),
        )
    )
    change = room.update_metadata(a, name="", metadata="meta", attributes={"k": "2", "gone": "", "new": "n"})
    assert change.reason is RequestResponseReason.OK
    assert change.info is not None
    assert change.info.name == "A"  # empty name = unchanged
    assert change.info.metadata == "meta"
    assert dict(change.info.attributes) == {"k": "2", "new": "n"}


def _route(room: Room, sender: str, packet: DataPacket, *, reliable: bool = True) -> Routed | Dropped:
    return room.route(_member(room, sender), packet, reliable=reliable)


def test_routing_stamps_the_sender_and_keeps_the_sequence() -> None:
    room = _room("a", "b", "c")
    a = _member(room, "a")
    routed = _route(room, "a", DataPacket(UserPacket(b"x"), participant_identity="spoof", sequence=7))
    assert isinstance(routed, Routed)
    assert sorted(routed.recipients) == ["b", "c"]
    assert (routed.packet.participant_identity, routed.packet.participant_sid) == ("a", a.sid)
    assert routed.packet.sequence == 7
    value = routed.packet.value
    assert isinstance(value, UserPacket)
    assert value.legacy_participant_identity == "a"


def test_routing_honours_destinations_and_legacy_destinations() -> None:
    room = _room("a", "b", "c")
    routed = _route(room, "a", DataPacket(UserPacket(b"x"), destination_identities=("c", "nobody")))
    assert isinstance(routed, Routed)
    assert routed.recipients == ("c",)
    legacy = _route(room, "a", DataPacket(UserPacket(b"x", legacy_destination_identities=("b",))))
    assert isinstance(legacy, Routed)
    assert legacy.recipients == ("b",)
    assert legacy.packet.destination_identities == ("b",)


def test_reliable_duplicates_are_dropped_lossy_are_not_sequenced() -> None:
    room = _room("a", "b")
    assert isinstance(_route(room, "a", DataPacket(UserPacket(b"1"), sequence=1)), Routed)
    assert isinstance(_route(room, "a", DataPacket(UserPacket(b"1"), sequence=1)), Dropped)
    assert isinstance(_route(room, "a", DataPacket(UserPacket(b"2"), sequence=2)), Routed)
    assert isinstance(_route(room, "a", DataPacket(UserPacket(b"l")), reliable=False), Routed)
    assert isinstance(_route(room, "a", DataPacket(UserPacket(b"u"))), Routed)  # unsequenced reliable


def test_can_publish_data_is_enforced() -> None:
    room = _room("a", "b", can_publish_data=False)
    dropped = _route(room, "a", DataPacket(SipDtmf(1, "1")))
    assert isinstance(dropped, Dropped)
    assert "canPublishData" in dropped.reason


def test_transcriptions_only_from_agents_and_metrics_never() -> None:
    room = _room("user", "b")
    agent, _ = room.admit(Admission("agent", kind=ParticipantKind.AGENT))
    granted, _ = room.admit(Admission("granted", permission=ParticipantPermission(agent=True)))
    transcription = DataPacket(Transcription(participant_identity="user"))
    assert isinstance(_route(room, "user", transcription), Dropped)
    assert isinstance(room.route(agent, transcription, reliable=True), Routed)
    assert isinstance(room.route(granted, transcription, reliable=True), Routed)
    assert isinstance(_route(room, "user", DataPacket(Unhandled("metrics", b""))), Dropped)


def test_hidden_senders_are_anonymous_and_agents_may_speak_for_others() -> None:
    room = _room("b")
    hidden, _ = room.admit(Admission("h", permission=ParticipantPermission(hidden=True)))
    routed = room.route(hidden, DataPacket(UserPacket(b"x")), reliable=True)
    assert isinstance(routed, Routed)
    assert routed.packet.participant_identity == ""
    agent, _ = room.admit(Admission("agent", kind=ParticipantKind.AGENT))
    chat = room.route(
        agent, DataPacket(ChatMessage(id="1", message="hi"), participant_identity="b"), reliable=True
    )
    assert isinstance(chat, Routed)
    assert chat.packet.participant_identity == "b"
    user = room.route(agent, DataPacket(UserPacket(b"x"), participant_identity="b"), reliable=True)
    assert isinstance(user, Routed)
    assert user.packet.participant_identity == "agent"


def test_track_registry_publish_mute_unpublish() -> None:
    room = _room("a")
    a = _member(room, "a")
    info = room.publish_track(a, TrackInfo(sid="TR_1", type=TrackType.AUDIO))
    assert [t.sid for t in info.tracks] == ["TR_1"]
    assert info.is_publisher
    muted = room.set_track_muted(a, "TR_1", True)
    assert muted is not None
    assert muted.tracks[0].muted
    assert room.set_track_muted(a, "TR_1", True) is None
    assert room.set_track_muted(a, "TR_x", True) is None
    gone = room.unpublish_track(a, "TR_1")
    assert gone is not None
    assert gone.tracks == ()
    assert room.unpublish_track(a, "TR_1") is None


@pytest.mark.parametrize("identity", ["a", "b"])
def test_lookup_by_sid(identity: str) -> None:
    room = _room("a", "b")
    member = _member(room, identity)
    assert room.by_sid(member.sid) is member
    assert room.by_sid("PA_none") is None
    assert identity in room
    assert len(room) == 2
