"""Room logic without sockets: versions, eviction, visibility, metadata, routing, tracks, timeouts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantKind,
    ParticipantPermission,
    ParticipantState,
    RequestResponseReason,
    TrackInfo,
    TrackSource,
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
from greenroom.devserver.room import (
    Admission,
    AgentSpec,
    Dropped,
    Member,
    Room,
    RoomSettings,
    Routed,
    new_sid,
    room_settings,
)


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


# --- RoomService rules (issue 18) ------------------------------------------------------------------


def test_empty_timeout_before_the_first_join_departure_timeout_after_the_last_leave() -> None:
    room = Room("r", empty_timeout=300, departure_timeout=20, now=0.0)
    assert not room.expired(299.0)
    assert room.expired(300.0)
    member, _ = room.admit(Admission("a"))
    assert not room.expired(10_000.0)
    room.remove(member, DisconnectReason.CLIENT_INITIATED, now=1000.0)
    assert not room.expired(1019.0)
    assert room.expired(1020.0)
    info = room.info()
    assert (info.empty_timeout, info.departure_timeout) == (300, 20)


def test_configure_replaces_only_what_is_given() -> None:
    room = Room("r", empty_timeout=300, max_participants=3, metadata="m", agents=(AgentSpec("x"),))
    room.configure(departure_timeout=5, metadata="")
    assert (room.empty_timeout, room.departure_timeout, room.max_participants, room.metadata) == (
        300,
        5,
        3,
        "m",
    )
    room.configure(empty_timeout=9, max_participants=4, metadata="n", agents=())
    assert (room.empty_timeout, room.max_participants, room.metadata, room.agents) == (9, 4, "n", ())
    assert room.set_metadata("o").metadata == "o"


def test_max_participants_counts_visible_non_agents_and_not_a_replaced_identity() -> None:
    room = Room("r", max_participants=1)
    assert not room.full(Admission("a"))
    room.admit(Admission("a"))
    assert room.full(Admission("b"))
    assert not room.full(Admission("a"))  # a rejoin replaces the member
    assert not room.full(Admission("rec", permission=ParticipantPermission(hidden=True)))
    assert not room.full(Admission("bot", kind=ParticipantKind.AGENT))
    assert not Room("unlimited").full(Admission("x"))


def test_token_room_configuration_gives_room_settings() -> None:
    config = json.dumps(
        {"empty_timeout": 7, "maxParticipants": 2, "agents": [{"agentName": "helper", "metadata": "m"}]}
    )
    settings = room_settings(config)
    assert (settings.empty_timeout, settings.max_participants) == (7, 2)
    assert settings.agents == (AgentSpec("helper", "m"),)
    assert room_settings(None) == RoomSettings()
    assert room_settings('{"empty_timeout": "soon"}') == RoomSettings()  # unreadable: ignored


def test_server_data_goes_to_the_named_identities_and_sids_or_to_everyone() -> None:
    room = _room("a", "b", "c")
    packet = DataPacket(UserPacket(b"x"), participant_identity="spoof", participant_sid="PA_spoof")
    everyone = room.route_from_server(packet)
    assert sorted(everyone.recipients) == ["a", "b", "c"]
    assert (everyone.packet.participant_identity, everyone.packet.participant_sid) == ("", "")
    named = room.route_from_server(
        DataPacket(UserPacket(b"x"), destination_identities=("a",)), (_member(room, "c").sid,)
    )
    assert sorted(named.recipients) == ["a", "c"]


def test_permission_change_bumps_and_names_the_tracks_it_refuses() -> None:
    room = _room("a")
    a = _member(room, "a")
    mic = TrackInfo(sid="TR_mic", type=TrackType.AUDIO, source=TrackSource.MICROPHONE)
    cam = TrackInfo(sid="TR_cam", type=TrackType.VIDEO, source=TrackSource.CAMERA)
    room.publish_track(a, mic)
    room.publish_track(a, cam)
    assert room.set_permission(a, a.permission) is None  # unchanged
    only_mic = ParticipantPermission(can_publish=True, can_publish_sources=(TrackSource.MICROPHONE,))
    info = room.set_permission(a, only_mic)
    assert info is not None
    assert info.permission == only_mic
    assert room.refused_tracks(a) == ["TR_cam"]
    room.set_permission(a, ParticipantPermission(can_publish=False))
    assert sorted(room.refused_tracks(a)) == ["TR_cam", "TR_mic"]


def test_admin_metadata_updates_skip_the_own_metadata_grant() -> None:
    room = _room("a")
    a = _member(room, "a")
    assert room.update_metadata(a, metadata="m").reason is RequestResponseReason.NOT_ALLOWED
    change = room.update_metadata(a, metadata="m", by_admin=True)
    assert change.info is not None
    assert change.info.metadata == "m"
