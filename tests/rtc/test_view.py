"""The facade's reducer on its own: actor events in → the view and the official events out (no actors, no
network). The expected order and arguments are ``livekit.rtc`` 1.2.1's (``livekit/rtc/room.py``,
``Room._on_room_event``): state first, then the event; unsubscribed before unpublished; a leaving
participant's tracks unsubscribed before ``participant_disconnected``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from greenroom import rtc
from greenroom.actors import messages as m
from greenroom.actors.e2ee_messages import EncryptionStateChanged, EncryptionStatusChanged
from greenroom.codecs import packets
from greenroom.codecs.e2ee import EncryptionState
from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantInfo,
    RoomInfo,
    TrackInfo,
    TrackSource,
    TrackType,
)
from greenroom.rtc._port import RoomPort
from greenroom.rtc._records import LocalChange, TrackWaiter
from greenroom.rtc._view import DataPacket, Deliver, Departed, Effect, Emit, Ended, RoomView, SipDTMF, Wake
from greenroom.rtc.participant import wait_for_track
from greenroom.rtc.track import track_state

ROOM = RoomInfo(sid="RM_1", name="r1", metadata="m0", num_participants=2)
ME = ParticipantInfo(sid="PA_me", identity="me")
MIC = TrackInfo(sid="TR_mic", type=TrackType.AUDIO, name="mic", source=TrackSource.MICROPHONE)
CAM = TrackInfo(sid="TR_cam", type=TrackType.VIDEO, name="cam", source=TrackSource.CAMERA)
BOB = ParticipantInfo(sid="PA_bob", identity="bob", tracks=(MIC,))
CAROL = ParticipantInfo(sid="PA_carol", identity="carol")


class FakePort(RoomPort):
    """A port with no actor tree behind it: requests succeed (a publish gets ``answer``), tells are kept."""

    def __init__(self, report: Callable[[LocalChange], None]) -> None:
        super().__init__(None, report)
        self.answer: TrackInfo | None = None
        self.sent: list[Any] = []

    @property
    def connected(self) -> bool:
        return True

    async def add_local_track(self, source: Any) -> str:
        return "cid-1"

    async def request(self, make: Callable[[m.Reply[None]], Any]) -> None:
        self.sent.append(make(m.Reply.new()))
        await asyncio.sleep(0)  # a yield, as a real request has: lets two requests interleave

    async def ask(self, make: Callable[[m.Reply[Any]], Any]) -> Any:
        self.sent.append(make(m.Reply.new()))
        return self.answer

    def tell(self, message: Any) -> None:
        self.sent.append(message)


class Harness:
    """A reducer bound to a port whose local changes come back into it (as ``Room`` wires it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.view = RoomView(loop)
        self.reported: list[Effect] = []
        self.port = FakePort(self._report)
        self.view.bind(self.port)

    def _report(self, change: LocalChange) -> None:
        self.reported.extend(self.view.apply(change))

    def apply(self, *events: m.RoomEvent | LocalChange) -> list[Effect]:
        out: list[Effect] = []
        for event in events:
            out.extend(self.view.apply(event))
        return out

    def joined(self, *remotes: ParticipantInfo) -> Harness:
        assert self.apply(m.RoomJoined(ROOM, ME, remotes), m.RoomConnected()) == [
            Emit("connection_state_changed", (rtc.ConnectionState.CONN_CONNECTED,)),
            Emit("connected"),
        ]
        return self

    def publish(self, track: rtc.LocalAudioTrack, sid: str) -> rtc.LocalTrackPublication:
        """``LocalParticipant.publish_track`` with the server answering ``sid``."""
        assert self.view.local is not None
        self.port.answer = TrackInfo(sid=sid, type=TrackType.AUDIO, name=track.name)
        return self.loop.run_until_complete(self.view.local.publish_track(track))

    def remote(self, identity: str) -> rtc.RemoteParticipant:
        return self.view.remotes[identity]

    def publication(self, identity: str, sid: str) -> rtc.RemoteTrackPublication:
        return self.remote(identity).track_publications[sid]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def h(loop: asyncio.AbstractEventLoop) -> Harness:
    return Harness(loop)


def names(effects: list[Effect]) -> list[str]:
    return [e.name if isinstance(e, Emit) else type(e).__name__.lower() for e in effects]


def test_join_builds_the_views_and_connected_follows_the_state_change(h: Harness) -> None:
    assert h.view.local is None
    assert h.view.state == rtc.ConnectionState.CONN_DISCONNECTED
    h.joined(BOB)
    assert h.view.info == ROOM
    assert h.view.local is not None
    assert (h.view.local.identity, h.view.local.sid) == ("me", "PA_me")
    assert list(h.view.remotes) == ["bob"]
    bob = h.remote("bob")
    assert isinstance(bob, rtc.RemoteParticipant)
    assert list(bob.track_publications) == ["TR_mic"]
    publication = h.publication("bob", "TR_mic")
    assert (publication.name, publication.kind, publication.source) == (
        "mic",
        rtc.TrackKind.KIND_AUDIO,
        rtc.TrackSource.SOURCE_MICROPHONE,
    )
    assert not publication.subscribed
    assert publication.track is None
    assert h.apply(m.RoomConnected()) == [Emit("connected")]  # no state change: no state event


def test_participant_lifecycle_and_info_changes(h: Harness) -> None:
    h.joined()
    out = h.apply(m.ParticipantConnected(CAROL))
    carol = h.remote("carol")
    assert out == [Emit("participant_connected", (carol,))]
    named = ParticipantInfo(sid="PA_carol", identity="carol", name="Carol", metadata="x")
    attributed = ParticipantInfo(
        sid="PA_carol", identity="carol", name="Carol", metadata="x", attributes=(("a", "1"),)
    )
    assert h.apply(
        m.ParticipantActive(CAROL),
        m.ParticipantNameChanged(named, "", "Carol"),
        m.ParticipantMetadataChanged(named, "", "x"),
        m.ParticipantAttributesChanged(attributed, (("a", "1"),)),
    ) == [
        Emit("participant_active", (carol,)),
        Emit("participant_name_changed", (carol, "", "Carol")),
        Emit("participant_metadata_changed", (carol, "", "x")),
        Emit("participant_attributes_changed", ({"a": "1"}, carol)),  # the dict first, as livekit.rtc
    ]
    assert (carol.name, carol.metadata, carol.attributes) == ("Carol", "x", {"a": "1"})
    gone = ParticipantInfo(sid="PA_carol", identity="carol", name="Carol")
    assert h.apply(m.ParticipantDisconnected(gone, DisconnectReason.CLIENT_INITIATED)) == [
        Departed("carol"),
        Emit("participant_disconnected", (carol,)),
    ]
    assert "carol" not in h.view.remotes
    assert carol.disconnect_reason == DisconnectReason.CLIENT_INITIATED
    assert carol.metadata == ""  # the last info it had
    # events about someone the view does not know are dropped, not raised
    assert (
        h.apply(m.ParticipantActive(CAROL), m.ParticipantDisconnected(CAROL, DisconnectReason.UNKNOWN_REASON))
        == []
    )


def test_events_about_unknown_participants_or_tracks_are_dropped(h: Harness) -> None:
    h.joined(BOB)
    nobody = ParticipantInfo(sid="PA_x", identity="nobody")
    assert (
        h.apply(
            m.ParticipantMetadataChanged(nobody, "", "m"),
            m.ParticipantNameChanged(nobody, "", "n"),
            m.ParticipantAttributesChanged(nobody, (("a", "1"),)),
            m.TrackPublished(nobody, CAM),
            m.TrackUnpublished(nobody, CAM),
            m.TrackSubscribed("nobody", CAM),
            m.TrackUnsubscribed("nobody", CAM),
            m.TrackSubscribed("bob", CAM),
            m.TrackUnsubscribed("bob", CAM),
            m.TrackMuted("nobody", CAM, True),
            m.TrackMuted("bob", CAM, True),
            m.TrackSubscriptionFailed("nobody", "TR_cam", "gone"),
        )
        == []
    )


def test_events_before_the_join_change_only_the_connection_state(h: Harness) -> None:
    assert h.apply(
        m.LocalTrackSubscribed("TR_1"),
        m.LocalTrackRepublished("TR_1", MIC),
        m.Reconnected(ROOM, ME),
        m.ConnectionQualityChanged("PA_me", 1),
        m.ConnectionStateChanged(1),
        m.Disconnected(DisconnectReason.SIGNAL_CLOSE),
    ) == [
        Emit("reconnected"),
        Emit("connection_state_changed", (rtc.ConnectionState.CONN_CONNECTED,)),
        Ended(),
        Emit("connection_state_changed", (rtc.ConnectionState.CONN_DISCONNECTED,)),
        Emit("disconnected", (DisconnectReason.SIGNAL_CLOSE,)),
    ]
    assert h.view.local is None
    assert h.view.remotes == {}


def test_the_local_participant_gets_its_own_info_events(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    renamed = ParticipantInfo(sid="PA_me", identity="me", metadata="m1")
    assert h.apply(m.ParticipantMetadataChanged(renamed, "", "m1")) == [
        Emit("participant_metadata_changed", (local, "", "m1"))
    ]
    assert local.metadata == "m1"


def test_publish_subscribe_mute_unpublish_in_the_official_order(h: Harness) -> None:
    h.joined(ParticipantInfo(sid="PA_bob", identity="bob"))
    bob = h.remote("bob")
    with_cam = ParticipantInfo(sid="PA_bob", identity="bob", tracks=(CAM,))
    out = h.apply(m.TrackPublished(with_cam, CAM))
    cam = h.publication("bob", "TR_cam")
    assert out == [Emit("track_published", (cam, bob))]

    out = h.apply(m.TrackSubscribed("bob", CAM))
    track = cam.track
    assert isinstance(track, rtc.RemoteVideoTrack)
    assert out == [Emit("track_subscribed", (track, cam, bob))]
    assert cam.subscribed
    assert track.sid == "TR_cam"
    assert track_state(track).port is h.port  # its media is this connection's
    assert h.apply(m.TrackSubscribed("bob", CAM)) == []  # already subscribed: nothing new
    cam.set_subscribed(False)  # a request through the connection's port; the state waits for the event
    assert h.port.sent == [m.SetSubscribed("TR_cam", False)]
    assert cam.subscribed

    muted = TrackInfo(sid="TR_cam", type=TrackType.VIDEO, name="cam", source=TrackSource.CAMERA, muted=True)
    assert h.apply(m.TrackMuted("bob", muted, True)) == [Emit("track_muted", (bob, cam))]
    assert cam.muted
    assert track.muted
    assert h.apply(m.TrackMuted("bob", CAM, False)) == [Emit("track_unmuted", (bob, cam))]
    assert not track.muted

    assert h.apply(m.TrackSubscriptionFailed("bob", "TR_x", "no such track")) == [
        Emit("track_subscription_failed", (bob, "TR_x", "no such track"))
    ]
    bare = ParticipantInfo(sid="PA_bob", identity="bob")
    assert h.apply(m.TrackUnpublished(bare, CAM)) == [
        Emit("track_unsubscribed", (track, cam, bob)),
        Emit("track_unpublished", (cam, bob)),
    ]
    assert bob.track_publications == {}
    assert cam.track is None
    assert not cam.subscribed
    assert h.apply(m.TrackUnpublished(bare, CAM), m.TrackMuted("bob", CAM, True)) == []


def test_unsubscribe_then_resubscribe_builds_a_new_track(h: Harness) -> None:
    h.joined(BOB)
    bob, mic = h.remote("bob"), h.publication("bob", "TR_mic")
    h.apply(m.TrackSubscribed("bob", MIC))
    first = mic.track
    assert isinstance(first, rtc.RemoteAudioTrack)
    assert h.apply(m.TrackUnsubscribed("bob", MIC)) == [Emit("track_unsubscribed", (first, mic, bob))]
    assert h.apply(m.TrackUnsubscribed("bob", MIC)) == []
    h.apply(m.TrackSubscribed("bob", MIC))
    assert mic.track is not None
    assert mic.track is not first


def test_a_leaving_participant_unsubscribes_its_tracks_and_ends_waiting_streams(h: Harness) -> None:
    h.joined(BOB)
    bob, mic = h.remote("bob"), h.publication("bob", "TR_mic")
    h.apply(m.TrackSubscribed("bob", MIC))
    track = mic.track
    got: list[Any] = []
    camera = TrackWaiter(rtc.TrackSource.SOURCE_CAMERA, rtc.TrackKind.KIND_VIDEO, got.append)
    wait_for_track(bob, camera)
    assert got == []
    out = h.apply(m.ParticipantDisconnected(BOB, DisconnectReason.PARTICIPANT_REMOVED))
    assert out == [
        Emit("track_unsubscribed", (track, mic, bob)),
        Wake(camera, None),
        Departed("bob"),  # its RPC calls and streams end
        Emit("participant_disconnected", (bob,)),
    ]
    assert bob.disconnect_reason == DisconnectReason.PARTICIPANT_REMOVED


def test_a_stream_waiting_for_a_source_wakes_after_track_subscribed(h: Harness) -> None:
    h.joined(BOB)
    bob, mic = h.remote("bob"), h.publication("bob", "TR_mic")
    got: list[Any] = []
    microphone = TrackWaiter(rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackKind.KIND_AUDIO, got.append)
    camera = TrackWaiter(rtc.TrackSource.SOURCE_CAMERA, rtc.TrackKind.KIND_VIDEO, got.append)
    wait_for_track(bob, microphone)
    wait_for_track(bob, camera)
    out = h.apply(m.TrackSubscribed("bob", MIC))
    assert out == [Emit("track_subscribed", (mic.track, mic, bob)), Wake(microphone, mic.track)]
    # already subscribed: at once, without the reducer
    later: list[Any] = []
    wait_for_track(
        bob, TrackWaiter(rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackKind.KIND_AUDIO, later.append)
    )
    assert later == [mic.track]
    assert got == []  # the reducer never calls back itself: the room carries out Wake


def _local_track(name: str = "tone") -> rtc.LocalAudioTrack:
    return rtc.LocalAudioTrack(name, TrackType.AUDIO, object())


def test_local_publish_with_an_early_subscription_and_unpublish(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    # the server's subscription can overtake publish_track's own return
    assert h.apply(m.LocalTrackSubscribed("TR_tone")) == []
    track = _local_track()
    publication = h.publish(track, "TR_tone")
    (request,) = h.port.sent
    assert isinstance(request, m.PublishTrack)
    assert (request.cid, request.name, request.type) == ("cid-1", "tone", TrackType.AUDIO)
    assert local.track_publications == {"TR_tone": publication}
    assert h.reported == [
        Emit("local_track_published", (publication, track)),
        Emit("local_track_subscribed", (track,)),
    ]
    assert track.sid == "TR_tone"
    assert publication.track is track
    assert track_state(track).port is h.port
    h.loop.run_until_complete(asyncio.wait_for(publication.wait_for_subscription(), 1))
    assert h.apply(m.LocalTrackSubscribed("TR_tone")) == [Emit("local_track_subscribed", (track,))]
    with pytest.raises(rtc.participant.PublishTrackError, match="already published"):
        h.publish(track, "TR_again")

    h.port.sent.clear()
    track.mute()
    h.reported.clear()
    h.loop.run_until_complete(local.unpublish_track("TR_tone"))
    assert h.port.sent[0] == m.SetLocalTrackMuted("TR_tone", True)
    unpublish = h.port.sent[1]
    assert isinstance(unpublish, m.UnpublishTrack)
    assert unpublish.sid == "TR_tone"
    assert h.reported == [Emit("local_track_unpublished", (publication,))]
    assert local.track_publications == {}
    assert publication.track is track
    assert track.sid == "TR_tone"
    sent = len(h.port.sent)
    track.unmute()  # no longer published: local only
    assert len(h.port.sent) == sent
    assert not track.muted
    assert h.publish(track, "TR_second").sid == "TR_second"  # publishable again


def test_two_unpublish_calls_racing_emit_once(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    publication = h.publish(_local_track(), "TR_r")
    h.reported.clear()

    async def both() -> None:
        await asyncio.gather(local.unpublish_track("TR_r"), local.unpublish_track("TR_r"))

    h.loop.run_until_complete(both())
    assert h.reported == [Emit("local_track_unpublished", (publication,))]
    with pytest.raises(rtc.participant.UnpublishTrackError, match="no local track"):
        h.loop.run_until_complete(local.unpublish_track("TR_r"))


def test_a_track_muted_before_publishing_is_muted_on_the_server_once_published(h: Harness) -> None:
    h.joined()
    track = _local_track()
    track.mute()
    assert h.port.sent == []  # not published: nothing to tell
    publication = h.publish(track, "TR_m")
    assert h.port.sent[-1] == m.SetLocalTrackMuted("TR_m", True)
    assert publication.muted
    assert track.muted


def test_local_track_republished_keeps_the_objects_and_the_mute_flag(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    track = _local_track()
    track.mute()
    publication = h.publish(track, "TR_old")
    new_port = FakePort(lambda _change: None)
    h.view.bind(new_port)
    renewed = TrackInfo(sid="TR_new", type=TrackType.AUDIO, name="tone")
    assert h.apply(m.LocalTrackRepublished("TR_old", renewed)) == [
        Emit("local_track_republished", (publication, "TR_old"))
    ]
    assert local.track_publications == {"TR_new": publication}
    assert publication.track is track
    assert (publication.sid, track.sid, publication.muted, track.muted) == ("TR_new", "TR_new", True, True)
    assert track_state(track).port is new_port  # mute() now reaches the new connection
    track.unmute()
    assert new_port.sent == [m.SetLocalTrackMuted("TR_new", False)]
    assert h.apply(m.LocalTrackRepublished("TR_gone", renewed)) == []


def test_local_track_mute_from_the_server(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    track = _local_track()
    publication = h.publish(track, "TR_t")
    muted = TrackInfo(sid="TR_t", type=TrackType.AUDIO, name="tone", muted=True)
    assert h.apply(m.TrackMuted("me", muted, True)) == [Emit("track_muted", (local, publication))]
    assert publication.muted
    assert track.muted


def test_connection_states_reconnect_and_disconnect_once(h: Harness) -> None:
    h.joined()
    local = h.view.local
    assert local is not None
    assert h.apply(m.ConnectionStateChanged(2), m.Reconnecting()) == [
        Emit("connection_state_changed", (rtc.ConnectionState.CONN_RECONNECTING,)),
        Emit("reconnecting"),
    ]
    room = RoomInfo(sid="RM_1", name="r1", metadata="after")
    me = ParticipantInfo(sid="PA_me2", identity="me")
    assert h.apply(m.ConnectionStateChanged(1), m.Reconnected(room, me)) == [
        Emit("connection_state_changed", (rtc.ConnectionState.CONN_CONNECTED,)),
        Emit("reconnected"),
    ]
    assert (h.view.info.metadata, local.sid) == ("after", "PA_me2")
    reason = DisconnectReason.SIGNAL_CLOSE
    assert h.apply(m.Disconnected(reason), m.Disconnected(DisconnectReason.CLIENT_INITIATED)) == [
        Ended(),
        Emit("connection_state_changed", (rtc.ConnectionState.CONN_DISCONNECTED,)),
        Emit("disconnected", (reason,)),
    ]
    assert h.view.state == rtc.ConnectionState.CONN_DISCONNECTED
    assert local.disconnect_reason == reason


def test_room_metadata_quality_and_speakers(h: Harness) -> None:
    h.joined(BOB)
    local, bob = h.view.local, h.remote("bob")
    assert local is not None
    room = RoomInfo(sid="RM_1", name="r1", metadata="m1")
    assert h.apply(m.RoomMetadataChanged(room, "m0", "m1")) == [Emit("room_metadata_changed", ("m0", "m1"))]
    assert h.view.info.metadata == "m1"
    assert h.apply(
        m.ConnectionQualityChanged("PA_bob", 1),
        m.ConnectionQualityChanged("PA_me", 2),
        m.ConnectionQualityChanged("PA_nobody", 1),
    ) == [
        Emit("connection_quality_changed", (bob, rtc.ConnectionQuality.QUALITY_GOOD)),
        Emit("connection_quality_changed", (local, rtc.ConnectionQuality.QUALITY_EXCELLENT)),
    ]
    assert bob.connection_quality == rtc.ConnectionQuality.QUALITY_GOOD
    assert h.apply(m.ActiveSpeakersChanged((("PA_me", 0.9), ("PA_nobody", 0.5), ("PA_bob", 0.2)))) == [
        Emit("active_speakers_changed", ([local, bob],))
    ]


def test_data_dtmf_and_transcription_carry_the_participant_views(h: Harness) -> None:
    h.joined(BOB)
    local, bob = h.view.local, h.remote("bob")
    assert local is not None
    assert h.apply(
        m.DataPacketReceived("bob", b"x", True, None),
        m.DataPacketReceived("server", b"y", False, "t"),
        m.SipDtmfReceived("bob", 11, "#"),
    ) == [
        Emit("data_received", (DataPacket(b"x", rtc.DataPacketKind.KIND_RELIABLE, bob, ""),)),
        Emit("data_received", (DataPacket(b"y", rtc.DataPacketKind.KIND_LOSSY, None, "t"),)),
        Emit("sip_dtmf_received", (SipDTMF(11, "#", bob),)),
    ]
    segment = packets.TranscriptionSegment(
        id="s1", text="hi", start_time=0, end_time=5, final=True, language="en"
    )
    expected = [rtc.TranscriptionSegment("s1", "hi", 0, 5, "en", True)]
    assert h.apply(
        m.TranscriptionReceived("bob", "TR_mic", (segment,)),
        m.TranscriptionReceived("me", "TR_none", (segment,)),
        m.TranscriptionReceived("nobody", "TR_mic", (segment,)),
    ) == [
        Emit("transcription_received", (expected, bob, h.publication("bob", "TR_mic"))),
        Emit("transcription_received", (expected, local, None)),
        Emit("transcription_received", (expected, None, None)),
    ]


def test_rpc_and_stream_packets_are_handed_on_in_order(h: Harness) -> None:
    h.joined(BOB)
    ack, chunk = packets.RpcAck("r1"), packets.StreamChunk("s1", 0, b"x")
    assert h.apply(m.RpcPacketReceived("bob", ack), m.StreamPacketReceived("carol", chunk)) == [
        Deliver("bob", ack),
        Deliver("carol", chunk),
    ]
    assert h.view.server_version == ""


def test_views_of_a_new_connection_use_its_port(h: Harness) -> None:
    h.joined(BOB)
    first = h.publication("bob", "TR_mic")
    h.apply(m.TrackSubscribed("bob", MIC))
    assert first.track is not None
    assert track_state(first.track).port is h.port
    second_port = FakePort(lambda _change: None)
    h.view.bind(second_port)
    h.apply(m.RoomJoined(ROOM, ME, (BOB,)), m.TrackSubscribed("bob", MIC))
    again = h.publication("bob", "TR_mic")
    assert again is not first
    assert again.track is not None
    assert track_state(again.track).port is second_port
    assert names(h.apply(m.ParticipantDisconnected(BOB, DisconnectReason.UNKNOWN_REASON))) == [
        "track_unsubscribed",
        "departed",
        "participant_disconnected",
    ]


def test_e2ee_events_carry_the_participant_first_and_unknown_identities_are_dropped(h: Harness) -> None:
    h.joined(BOB)
    local, bob = h.view.local, h.remote("bob")
    ok = EncryptionState.OK
    assert h.apply(
        EncryptionStateChanged("bob", ok),
        EncryptionStateChanged("me", ok),
        EncryptionStatusChanged("bob", True),
        EncryptionStateChanged("nobody", ok),
        EncryptionStatusChanged("nobody", False),
    ) == [
        Emit("e2ee_state_changed", (bob, ok)),
        Emit("e2ee_state_changed", (local, ok)),
        Emit("participant_encryption_status_changed", (bob, True)),
    ]
