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
