"""The RoomActor's address book (pure): keys, lookups, versions, a rejoining identity, removal."""

from __future__ import annotations

from greenroom.actors.roster import LOCAL, Joined, Roster, Updated
from greenroom.codecs.models import ParticipantInfo, TrackInfo, TrackType

ME = ParticipantInfo(sid="PA_me", identity="me")
T1 = TrackInfo(sid="TR_1", type=TrackType.AUDIO)
T2 = TrackInfo(sid="TR_2", type=TrackType.AUDIO)


def alice(sid: str = "PA_a", version: int = 1, *tracks: TrackInfo) -> ParticipantInfo:
    return ParticipantInfo(sid=sid, identity="alice", version=version, tracks=tracks)


def test_the_local_participant_has_its_own_key() -> None:
    roster = Roster()
    assert roster.local is None
    assert not roster.is_local(ME)
    roster.set_local(ME)
    assert roster.local == ME
    assert roster.info(LOCAL) == ME
    assert roster.is_local(ParticipantInfo(sid="PA_me", identity="other"))
    assert roster.is_local(ParticipantInfo(sid="PA_x", identity="me"))
    assert not roster.is_local(alice())
    assert roster.identity_of(LOCAL) == "me"
    assert roster.key_of_sid(LOCAL) is None
    assert roster.remotes() == ()


def test_a_remote_joins_updates_and_leaves_with_its_tracks_indexed() -> None:
    roster = Roster()
    roster.set_local(ME)
    assert roster.seen(alice("PA_a", 1, T1)) == Joined("PA_a", None)
    assert roster.key_of("alice") == "PA_a"
    assert roster.key_of_sid("PA_a") == "PA_a"
    assert roster.key_of_sid("PA_nobody") is None
    assert roster.owner_of("TR_1") == "PA_a"
    assert roster.identity_of("PA_a") == "alice"
    assert roster.identity_of("PA_nobody") == ""
    assert roster.seen(alice("PA_a", 2, T2)) == Updated("PA_a")
    assert roster.owner_of("TR_1") is None  # unpublished
    assert roster.owner_of("TR_2") == "PA_a"
    assert roster.seen(alice("PA_a", 1, T1)) is None  # an older version is ignored
    assert roster.seen(alice("PA_a", 1, T1), any_version=True) == Updated("PA_a")  # a restarted server
    assert roster.keys() == (LOCAL, "PA_a")
    assert roster.remotes() == (alice("PA_a", 1, T1),)
    assert roster.remove("PA_a") == alice("PA_a", 1, T1)
    assert roster.remove("PA_a") is None
    assert roster.key_of("alice") is None
    assert roster.owner_of("TR_1") is None


def test_the_same_identity_in_a_new_session_replaces_the_old_one() -> None:
    roster = Roster()
    roster.seen(alice("PA_a", 3, T1))
    assert roster.seen(alice("PA_b", 1)) == Joined("PA_b", alice("PA_a", 3, T1))
    assert roster.key_of("alice") == "PA_b"
    assert roster.info("PA_a") is None
    assert roster.owner_of("TR_1") is None
    roster.clear()
    assert roster.keys() == ()
    assert roster.key_of("alice") is None


def test_removing_an_old_key_keeps_the_identity_of_its_successor() -> None:
    roster = Roster()
    roster.seen(alice("PA_a"))
    roster._infos["PA_old"] = alice("PA_old")  # a stale entry under another key for the same identity
    assert roster.remove("PA_old") == alice("PA_old")
    assert roster.key_of("alice") == "PA_a"
