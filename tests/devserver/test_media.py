"""Media through the dev server, raw protocol on 127.0.0.1: RTP forwarded without decoding.

Publishers and subscribers are :class:`~tests.devserver.rawclient.RawClient` s (aiortc encodes and decodes on
the client side); the oracles (:mod:`tests.devserver.oracle`) check the FFT peak of each known tone and the
colour of video frames.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from greenroom.codecs.models import ConnectionQuality, SubscriptionError, TrackPermission
from greenroom.codecs.signalling import (
    ConnectionQualityUpdate,
    JoinParams,
    MuteTrack,
    Offer,
    ParticipantUpdate,
    SpeakersChanged,
    SubscriptionPermission,
    SubscriptionPermissionUpdate,
    SubscriptionResponse,
    TrackSubscribed,
    UpdateSubscription,
)
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.server import DevServer
from greenroom.runtime.media import VideoSink
from tests.devserver.conftest import run_with_server
from tests.devserver.nodecode import MARK
from tests.devserver.oracle import ColourTrack, Ear, Tone, colour_of
from tests.devserver.rawclient import RawClient
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"greenroom dev server ready at (ws://127\.0\.0\.1:\d+) \(api key (\S+)\)")
NO_AUTO = JoinParams(sdk="python", version="raw", protocol=16, client_protocol=2, auto_subscribe=False)


async def _pair(server: DevServer, **bob: Any) -> tuple[RawClient, RawClient]:
    alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
    listener = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False, **bob)
    return alice, listener


async def _close(*things: Any) -> None:
    for thing in things:
        await thing.close() if not isinstance(thing, Tone) else await thing.stop()


async def _tapped(server: DevServer, identity: str, sid: str, frames: int) -> None:
    """Wait until the server has received ``frames`` more frames of ``sid`` from its publisher (a witness:
    what the server did with them is the test's question)."""
    session = server.session_of(server.rooms["r"], identity)
    assert session is not None
    tap = session.publications[sid].tap
    start = tap.frames
    await wait_until(
        lambda: tap.frames >= start + frames,
        what=lambda: f"the server to receive {frames} more frames of {sid} (got {tap.frames - start})",
    )


def _index(messages: list[Any], predicate: Any) -> int:
    return next(i for i, m in enumerate(messages) if predicate(m))


def test_tone_sequence_is_forwarded_with_livekit_stream_ids_update_first_and_speakers() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tone = Tone(440)
        [info] = await alice.publish(tone.track, name="mic")
        ear = Ear(await bob.subscribed_track(info.sid))
        for frequency in (440, 660, 880):
            since = time.monotonic()
            tone.frequency = frequency
            await ear.wait_for(frequency, since=since)
        # the ParticipantUpdate listing the track came before the subscriber offer carrying it (trap 10)
        update_at = _index(
            bob.messages,
            lambda m: (
                isinstance(m, ParticipantUpdate)
                and any(t.sid == info.sid for p in m.participants for t in p.tracks)
            ),
        )
        offer_at = _index(bob.messages, lambda m: isinstance(m, Offer) and info.sid in m.sdp)
        assert update_at < offer_at
        offer = bob.messages[offer_at]
        assert isinstance(offer, Offer)
        assert f"a=msid:{alice.sid}|{info.sid} {info.sid}" in offer.sdp
        await alice.wait_message(TrackSubscribed, lambda m: m.track_sid == info.sid)
        speakers = await bob.wait_message(SpeakersChanged, lambda m: any(s.active for s in m.speakers))
        assert [(s.sid, s.active) for s in speakers.speakers] == [(alice.sid, True)]
        assert speakers.speakers[0].level > 0.1
        await _close(ear, tone, alice, bob)

    run_with_server(scenario)


def test_mute_pauses_forwarding_and_unmute_resumes() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tone = Tone(550)
        [info] = await alice.publish(tone.track)
        ear = Ear(await bob.subscribed_track(info.sid))
        await ear.wait_for(550)
        await alice.send(MuteTrack(sid=info.sid, muted=True))
        await bob.wait_update(lambda p: p.identity == "alice" and p.tracks and p.tracks[0].muted)
        await bob.wait_message(
            SpeakersChanged, lambda m: [(s.sid, s.active) for s in m.speakers] == [(alice.sid, False)]
        )
        await _tapped(server, "alice", info.sid, 10)  # what was forwarded before the mute lands meanwhile
        frames = ear.sink.frames_in
        await _tapped(server, "alice", info.sid, 30)  # alice keeps sending: the server gets 30 more frames
        assert ear.sink.frames_in - frames <= 2, "a muted track is not forwarded"
        since = time.monotonic()
        await alice.send(MuteTrack(sid=info.sid, muted=False))
        await ear.wait_for(550, since=since)
        await _close(ear, tone, alice, bob)

    run_with_server(scenario)


def test_unsubscribe_ends_the_track_and_subscribe_brings_a_new_one() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tone = Tone(660)
        [info] = await alice.publish(tone.track)
        first = await bob.subscribed_track(info.sid)
        ear = Ear(first)
        await ear.wait_for(660)
        offers = sum(isinstance(m, Offer) for m in bob.messages)
        await bob.send(UpdateSubscription(track_sids=(info.sid,), subscribe=False))
        await bob.wait_message(Offer, lambda m: sum(isinstance(x, Offer) for x in bob.messages) > offers)
        frames = ear.sink.frames_in
        await asyncio.wait_for(ear.ended.wait(), 5)  # the subscriber's track ends
        await _tapped(server, "alice", info.sid, 25)  # alice keeps sending: the server gets 25 more frames
        assert ear.sink.frames_in - frames <= 2, "an unsubscribed track is not forwarded"
        await bob.send(UpdateSubscription(track_sids=(info.sid,), subscribe=True))
        second = await bob.subscribed_track(info.sid)
        assert second is not first
        again = Ear(second)
        await again.wait_for(660)
        await _close(ear, again, tone, alice, bob)

    run_with_server(scenario)


def test_auto_subscribe_off_forwards_nothing_until_subscribed() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server, params=NO_AUTO)
        tone = Tone(770)
        [info] = await alice.publish(tone.track)
        await bob.wait_update(lambda p: p.identity == "alice" and p.tracks)
        # The server decided on bob's subscriptions when it announced the track (synchronously); an offer
        # from that decision is queued once its renegotiation task is done, and reaches bob before a pong.
        bob_session = server.session_of(server.rooms["r"], "bob")
        assert bob_session is not None
        await wait_until(lambda: not bob_session._background, what="bob's renegotiations to finish")
        before_pong = await bob.signal_barrier()
        assert not any(isinstance(m, Offer) and info.sid in m.sdp for m in before_pong)
        await bob.send(UpdateSubscription(track_sids=("TR_nosuchtrack",), subscribe=True))
        refused = await bob.wait_message(SubscriptionResponse)
        assert (refused.track_sid, refused.err) == ("TR_nosuchtrack", SubscriptionError.SE_TRACK_NOTFOUND)
        await bob.send(UpdateSubscription(track_sids=(info.sid,), subscribe=True))
        ear = Ear(await bob.subscribed_track(info.sid))
        await ear.wait_for(770)
        await _close(ear, tone, alice, bob)

    run_with_server(scenario)


def test_subscription_permissions_per_identity_then_all() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        carol = await RawClient.join(server.url, server.mint_token("carol", "r"), publish=False)
        await alice.send(
            SubscriptionPermission(
                all_participants=False,
                track_permissions=(TrackPermission(participant_identity="carol", all_tracks=True),),
            )
        )
        tone = Tone(990)
        [info] = await alice.publish(tone.track)
        ear = Ear(await carol.subscribed_track(info.sid))
        await ear.wait_for(990)
        denied = await bob.wait_message(SubscriptionPermissionUpdate)
        assert (denied.participant_sid, denied.track_sid, denied.allowed) == (alice.sid, info.sid, False)
        assert (await bob.wait_message(SubscriptionResponse)).track_sid == info.sid
        assert not any(isinstance(m, Offer) and info.sid in m.sdp for m in bob.messages)
        await alice.send(SubscriptionPermission(all_participants=True))
        await bob.wait_message(SubscriptionPermissionUpdate, lambda m: m.allowed)
        bob_ear = Ear(await bob.subscribed_track(info.sid))
        await bob_ear.wait_for(990)
        await _close(ear, bob_ear, tone, alice, bob, carol)

    run_with_server(scenario)


def test_unpublish_is_a_renegotiation_and_ends_forwarding() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tone = Tone(440)
        [info] = await alice.publish(tone.track)
        ear = Ear(await bob.subscribed_track(info.sid))
        await ear.wait_for(440)
        await alice.unpublish(tone.track)
        await bob.wait_update(lambda p: p.identity == "alice" and not p.tracks and p.version > 2)
        await bob.wait_message(Offer, lambda m: info.sid in m.sdp and "a=inactive" in m.sdp)
        frames = ear.sink.frames_in
        await asyncio.wait_for(ear.ended.wait(), 5)  # forwarding ended: the subscriber's track ends
        assert ear.sink.frames_in - frames <= 2
        assert not server.session_of(server.rooms["r"], "alice").publications  # type: ignore[union-attr]
        await _close(ear, tone, alice, bob)

    run_with_server(scenario)


@pytest.mark.timeout(120)
def test_ten_audio_tracks_through_the_server_at_once() -> None:
    frequencies = [300 + 150 * i for i in range(10)]

    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tones = [Tone(f) for f in frequencies]
        infos = await alice.publish(*(t.track for t in tones))
        ears = [Ear(await bob.subscribed_track(info.sid)) for info in infos]
        await asyncio.gather(
            *(ear.wait_for(f, windows=3, timeout=20) for ear, f in zip(ears, frequencies, strict=True))
        )
        session = server.session_of(server.rooms["r"], "alice")
        assert session is not None
        assert len(session.publications) == 10
        await _close(*ears, *tones, alice, bob)

    run_with_server(scenario)


@pytest.mark.parametrize("codec", ["video/vp8", "video/h264"])
def test_video_is_forwarded_and_a_late_subscriber_gets_a_keyframe(codec: str) -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        camera = ColourTrack("red")
        [info] = await alice.publish(camera, codec=codec)
        sink = VideoSink(await bob.subscribed_track(info.sid), format="rgba")

        async def see(colour: str, frames_sink: VideoSink) -> None:
            async with asyncio.timeout(10):
                async for chunk in frames_sink:
                    if colour_of(chunk.data) == colour:
                        return

        await see("red", sink)
        camera.colour = "blue"
        await see("blue", sink)
        publication = server.session_of(server.rooms["r"], "alice").publications[info.sid]  # type: ignore[union-attr]
        assert publication.tap.mime_type == codec
        before = publication.tap.keyframe_requests_sent
        carol = await RawClient.join(server.url, server.mint_token("carol", "r"), publish=False)
        late = VideoSink(await carol.subscribed_track(info.sid), format="rgba")
        await see("blue", late)
        assert publication.tap.keyframe_requests_sent > before, "the late subscriber's keyframe came by PLI"
        await sink.aclose()
        await late.aclose()
        camera.stop()
        await _close(alice, bob, carol)

    run_with_server(scenario)


def test_publisher_leaving_ends_its_forwarded_tracks() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        tone = Tone(880)
        [info] = await alice.publish(tone.track)
        ear = Ear(await bob.subscribed_track(info.sid))
        await ear.wait_for(880)
        await tone.stop()
        await alice.leave()
        await bob.wait_update(lambda p: p.identity == "alice" and p.state.name == "DISCONNECTED")
        await bob.wait_message(Offer, lambda m: info.sid in m.sdp and "a=inactive" in m.sdp)
        bob_session = server.session_of(server.rooms["r"], "bob")
        assert bob_session is not None
        assert not bob_session._subscriptions
        await _close(ear, bob)

    run_with_server(scenario)


def test_connection_quality_is_broadcast() -> None:
    async def scenario(server: DevServer) -> None:
        server.quality_interval = 0.3
        alice, bob = await _pair(server)
        tone = Tone(440)
        await alice.publish(tone.track)
        update = await bob.wait_message(
            ConnectionQualityUpdate, lambda m: any(u.participant_sid == alice.sid for u in m.updates)
        )
        qualities = {u.participant_sid: u.quality for u in update.updates}
        assert qualities == {alice.sid: ConnectionQuality.EXCELLENT, bob.sid: ConnectionQuality.EXCELLENT}
        await _close(tone, alice, bob)

    run_with_server(scenario)


def test_connection_quality_is_sent_only_when_it_changes() -> None:
    """Like livekit-server's connectionQualityWorker: a broadcast per tick to every member of every room
    stalled a server with hundreds of rooms (benchmarks P4); unchanged qualities are not re-sent."""

    async def scenario(server: DevServer) -> None:
        server.quality_interval = 0.1
        ticks = 0
        update_quality = server._update_quality

        async def counted(room: Any) -> None:  # counts the server's quality ticks (the witness)
            nonlocal ticks
            await update_quality(room)
            ticks += 1

        server._update_quality = counted  # type: ignore[method-assign]
        alice, bob = await _pair(server)

        def updates(messages: list[Any]) -> int:
            return sum(isinstance(m, ConnectionQualityUpdate) for m in messages)

        await bob.wait_message(ConnectionQualityUpdate, lambda m: len(m.updates) == 2)
        seen = updates(bob.messages)
        start = ticks
        await wait_until(lambda: ticks >= start + 3, what="three more quality ticks")  # nothing changed
        assert updates(await bob.signal_barrier()) == seen  # what those ticks sent is before the pong
        carol = await RawClient.join(server.url, server.mint_token("carol", "r"), publish=False)
        await bob.wait_message(ConnectionQualityUpdate, lambda m: len(m.updates) == 3)  # a new member
        await _close(carol, alice, bob)

    run_with_server(scenario)


def test_the_server_process_never_constructs_a_decoder() -> None:
    """The server in a subprocess with every aiortc decoder forbidden forwards audio and VP8 video."""

    async def scenario() -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.devserver.nodecode",
            "serve",
            "--port",
            "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            match = READY.search(line)
            assert match, f"no ready line: {line!r}"
            url, key = match.group(1), match.group(2)

            def token(identity: str) -> str:
                claims = Claims(identity=identity, video=VideoGrants(room_join=True, room="r"))
                return mint_token(key, "secret", claims)

            alice = await RawClient.join(url, token("alice"))
            bob = await RawClient.join(url, token("bob"), publish=False)
            tone, camera = Tone(440), ColourTrack("green")
            audio, video = await alice.publish(tone.track, camera)
            ear = Ear(await bob.subscribed_track(audio.sid))
            sink = VideoSink(await bob.subscribed_track(video.sid), format="rgba")
            await ear.wait_for(440)
            async with asyncio.timeout(10):
                async for chunk in sink:
                    if colour_of(chunk.data) == "green":
                        break
            await sink.aclose()
            camera.stop()
            await _close(ear, tone, alice, bob)
        finally:
            proc.terminate()
            await proc.wait()
        return (await proc.stderr.read()).decode()

    stderr = asyncio.run(scenario())
    assert MARK not in stderr
