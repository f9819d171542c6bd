"""Pure media rules of the dev server: subscriptions, permissions, speakers, levels, quality, stream ids."""

from __future__ import annotations

from aiortc import RTCBundlePolicy

from greenroom.codecs.models import (
    ConnectionQuality,
    ParticipantPermission,
    TrackInfo,
    TrackPermission,
    TrackType,
)
from greenroom.devserver.forwarding import (
    AudioLevelMeter,
    SpeakerDetector,
    level_to_amplitude,
    max_bundle,
    quality_from_loss,
    stream_id,
)
from greenroom.devserver.room import Admission, Member, Room
from greenroom.runtime.ice import IcePolicy


def _room(*, bob_auto: bool = True) -> tuple[Room, Member, Member, Member]:
    room = Room("r")
    alice, _ = room.admit(Admission("alice"))
    bob, _ = room.admit(Admission("bob", auto_subscribe=bob_auto))
    carol, _ = room.admit(Admission("carol", permission=ParticipantPermission(can_subscribe=False)))
    room.publish_track(alice, TrackInfo(sid="TR_a", type=TrackType.AUDIO))
    room.publish_track(alice, TrackInfo(sid="TR_v", type=TrackType.VIDEO))
    return room, alice, bob, carol


def test_auto_subscribe_grants_every_other_track_and_can_subscribe_is_required() -> None:
    room, alice, bob, carol = _room()
    granted, refused = room.subscriptions(bob)
    assert [(p.identity, t.sid) for p, t in granted] == [("alice", "TR_a"), ("alice", "TR_v")]
    assert refused == []
    assert room.subscriptions(alice) == ([], [])  # never its own tracks
    assert room.subscriptions(carol) == ([], [])  # no canSubscribe


def test_update_subscription_wishes_override_auto_subscribe() -> None:
    room, _, bob, _ = _room(bob_auto=False)
    assert room.subscriptions(bob)[0] == []
    assert room.set_subscribed(bob, ["TR_v", "TR_none"], True) == ["TR_none"]
    assert [t.sid for _, t in room.subscriptions(bob)[0]] == ["TR_v"]
    room.set_subscribed(bob, ["TR_v"], False)
    assert room.subscriptions(bob)[0] == []


def test_subscription_permissions_by_identity_sid_and_track() -> None:
    room, alice, bob, _ = _room()
    dave, _ = room.admit(Admission("dave"))
    room.set_permissions(
        alice,
        False,
        (
            TrackPermission(participant_identity="bob", track_sids=("TR_a",)),
            TrackPermission(participant_sid=dave.sid, all_tracks=True),
        ),
    )
    granted, refused = room.subscriptions(bob)
    assert [t.sid for _, t in granted] == ["TR_a"]
    assert [(p.identity, sid) for p, sid in refused] == [("alice", "TR_v")]
    assert [t.sid for _, t in room.subscriptions(dave)[0]] == ["TR_a", "TR_v"]
    room.set_permissions(alice, True, ())
    assert room.subscriptions(bob)[1] == []


def test_speaker_detector_reports_changes_with_the_full_active_set() -> None:
    detector = SpeakerDetector()
    first = detector.update({"PA_a": 20, "PA_b": 127})
    assert first is not None
    assert [(s.sid, s.active) for s in first] == [("PA_a", True)]
    assert detector.update({"PA_a": 25, "PA_b": 127}) is None  # same set: nothing to send
    both = detector.update({"PA_a": 30, "PA_b": 10})
    assert both is not None
    assert [(s.sid, s.active) for s in both] == [("PA_b", True), ("PA_a", True)]  # loudest first
    stopped = detector.update({"PA_a": 127, "PA_b": 10})
    assert stopped is not None
    assert [(s.sid, s.active) for s in stopped] == [("PA_b", True), ("PA_a", False)]


def test_audio_level_meter_keeps_the_loudest_level_of_its_window_and_proxies_missing_levels() -> None:
    meter = AudioLevelMeter()
    assert meter.level(0.0) == 127
    meter.feed(20, 80, now=1.0)
    meter.feed(60, 80, now=1.1)  # quieter, within the window: the loud one stays
    assert meter.level(1.2) == 20
    assert meter.level(2.0) == 127  # window over
    meter.feed(None, 3, now=3.0)  # a DTX-sized packet without a level: silence
    assert meter.level(3.0) == 127
    meter.feed(None, 120, now=3.1)  # a speech-sized packet without a level
    assert meter.level(3.1) <= 50


def test_levels_quality_stream_ids_and_bundle_policy() -> None:
    assert level_to_amplitude(0) == 1.0
    assert level_to_amplitude(127) == 0.0
    assert 0.09 < level_to_amplitude(20) < 0.11
    assert quality_from_loss(None) is ConnectionQuality.EXCELLENT
    assert quality_from_loss(0.05) is ConnectionQuality.GOOD
    assert quality_from_loss(0.3) is ConnectionQuality.POOR
    assert stream_id("PA_x", "TR_y") == "PA_x|TR_y"
    policy = max_bundle(IcePolicy.loopback())
    assert policy.rtc_configuration().bundlePolicy is RTCBundlePolicy.MAX_BUNDLE
    assert policy.gather_addresses == IcePolicy.loopback().gather_addresses
