"""Publish grants, enforced by the dev server and reported by the client at once (issue 17, item 3)."""

from __future__ import annotations

import pytest

from greenroom import rtc
from greenroom.devserver.server import DevServer
from greenroom.rtc.participant import PublishTrackError
from tests.rtc.support import connect, run_with_server
from tests.waiting import wait_until

MIC = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
CAMERA = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)


def _audio() -> rtc.LocalAudioTrack:
    return rtc.LocalAudioTrack.create_audio_track("mic", rtc.AudioSource(48000, 1))


def _video() -> rtc.LocalVideoTrack:
    return rtc.LocalVideoTrack.create_video_track("camera", rtc.VideoSource(64, 64))


def test_without_can_publish_publish_track_fails_with_the_servers_refusal() -> None:
    """NOT_ALLOWED ends the publish when it arrives (the message names it; a timeout would say so)."""

    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice", can_publish=False)
        with pytest.raises(PublishTrackError, match="NOT_ALLOWED: does not have permission to publish"):
            await alice.local_participant.publish_track(_audio(), MIC)
        assert alice.local_participant.track_publications == {}
        await alice.disconnect()

    run_with_server(scenario)


def test_can_publish_sources_refuses_other_sources_and_observers_never_see_them() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        alice = await connect(server, "alice", can_publish_sources=["microphone"])
        await wait_until(lambda: "alice" in bob.remote_participants)
        with pytest.raises(PublishTrackError, match="NOT_ALLOWED: source not allowed"):
            await alice.local_participant.publish_track(_video(), CAMERA)
        mic = await alice.local_participant.publish_track(_audio(), MIC)
        # the barrier: the server handled the camera's add_track before the microphone's
        await wait_until(lambda: mic.sid in bob.remote_participants["alice"].track_publications)
        sources = [p.source for p in bob.remote_participants["alice"].track_publications.values()]
        assert sources == [rtc.TrackSource.SOURCE_MICROPHONE]
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)


def test_a_hidden_token_reusing_a_visible_identity_removes_it_for_observers() -> None:
    """The evicted visible session leaves for everyone; the hidden newcomer is never listed."""

    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        alice = await connect(server, "alice")
        await wait_until(lambda: "alice" in bob.remote_participants)
        ghost = await connect(server, "alice", hidden=True)
        await wait_until(lambda: "alice" not in bob.remote_participants, what="bob to drop the evicted alice")
        await wait_until(lambda: alice.connection_state == rtc.ConnectionState.CONN_DISCONNECTED)
        # barrier: carol joins after the ghost; whatever the server said about the ghost came before her
        carol = await connect(server, "carol")
        await wait_until(lambda: "carol" in bob.remote_participants)
        assert sorted(bob.remote_participants) == ["carol"]
        assert server.rooms["r1"].info().num_participants == 2  # bob and carol; the hidden one is not counted
        for room in (carol, ghost, bob):
            await room.disconnect()

    run_with_server(scenario)


def test_a_visible_token_reusing_a_hidden_identity_never_reveals_the_hidden_one() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        ghost = await connect(server, "alice", hidden=True)
        departed: list[str] = []
        bob.on("participant_disconnected", lambda p: departed.append(p.identity))
        alice = await connect(server, "alice")
        await wait_until(lambda: "alice" in bob.remote_participants)
        await wait_until(lambda: ghost.connection_state == rtc.ConnectionState.CONN_DISCONNECTED)
        carol = await connect(server, "carol")  # barrier, as above
        await wait_until(lambda: "carol" in bob.remote_participants)
        assert departed == []
        assert bob.remote_participants["alice"].sid == alice.local_participant.sid
        for room in (carol, alice, bob):
            await room.disconnect()

    run_with_server(scenario)
