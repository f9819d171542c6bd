"""The actor tree's guarantees, each shown through the public fault kit with live traffic on the dev server.

Audio streams open and data flowing while actors crash: nothing the user holds ends, nothing is lost or
duplicated, and a crash loop is braked by the documented intensity.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np

from greenroom import rtc, testing
from greenroom.actors.participant import TrackState
from greenroom.actors.room import PARTICIPANT_INTENSITY, RoomSnapshot
from greenroom.devserver.server import DevServer
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until

RATE = 48_000


async def tone(source: rtc.AudioSource, hz: float = 440.0) -> None:
    """Capture a sine forever in 10 ms frames (paced in real time by the source's queue)."""
    n, start = RATE // 100, 0
    while True:
        t = np.arange(start, start + n)
        pcm = (np.sin(2 * np.pi * hz * t / RATE) * 12_000).astype(np.int16)
        frame = rtc.AudioFrame(pcm.tobytes(), RATE, 1, n)
        await source.capture_frame(frame)
        start += n


def loud(frames: list[np.ndarray[Any, Any]], since: int, count: int = 30) -> bool:
    """At least ``count`` loud frames arrived after index ``since``."""
    tail = frames[since:]
    return (
        len(tail) >= count
        and float(np.sqrt(np.mean(np.concatenate(tail[-count:]).astype(float) ** 2))) > 1000
    )


class Listening:
    """alice publishes a tone and numbered data; bob has an ``AudioStream`` of it open and records events."""

    def __init__(self, alice: rtc.Room, bob: rtc.Room, rec: Recorder, sid: str) -> None:
        self.alice, self.bob, self.rec, self.sid = alice, bob, rec, sid
        self.frames: list[np.ndarray[Any, Any]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.sent = 0

    async def collect(self, stream: rtc.AudioStream) -> None:
        async for event in stream:
            self.frames.append(np.frombuffer(bytes(event.frame.data.cast("B")), np.int16))

    async def send(self, count: int) -> None:
        """Publish ``count`` more numbered packets (each awaited) on the reliable channel."""
        for _ in range(count):
            await self.alice.local_participant.publish_data(str(self.sent).encode(), topic="n")
            self.sent += 1

    def received(self) -> list[int]:
        return [int(a[0].data) for a in self.rec.named("data_received") if a[0].topic == "n"]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.alice.disconnect()
        await self.bob.disconnect()


async def listening(server: DevServer) -> Listening:
    bob = await connect(server, "bob")
    rec = Recorder(bob, "track_subscribed", "track_unsubscribed", "data_received", "disconnected")
    alice = await connect(server, "alice")
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    publication = await alice.local_participant.publish_track(track, rtc.TrackPublishOptions())
    session = Listening(alice, bob, rec, publication.sid)
    session.tasks.append(asyncio.create_task(tone(source)))
    await wait_until(lambda: len(rec.named("track_subscribed")) == 1, what="bob subscribed to the tone")
    remote = rec.named("track_subscribed")[0][0]
    session.tasks.append(asyncio.create_task(session.collect(rtc.AudioStream(remote))))
    await wait_until(lambda: loud(session.frames, 0), what="the tone heard before any crash")
    return session


async def still_flowing(s: Listening) -> None:
    """After a crash: the open stream keeps yielding the tone, data arrives exactly once, no unsubscribe."""
    mark = len(s.frames)
    await s.send(20)
    await wait_until(
        lambda: s.received() == list(range(s.sent)), what=lambda: f"packets 0..{s.sent - 1} once"
    )
    await wait_until(lambda: loud(s.frames, mark), what="the tone heard after the crash on the same stream")
    assert s.rec.named("track_unsubscribed") == []
    assert s.rec.named("track_subscribed")[1:] == []
    state = await testing.state(s.bob, testing.track(s.sid))
    assert isinstance(state, TrackState)
    assert state.subscribed  # the restarted actor found the media where its predecessor left it


def test_a_remote_participant_actor_crash_keeps_audio_and_data_flowing() -> None:
    async def scenario(server: DevServer) -> None:
        s = await listening(server)
        await s.send(10)
        old = await testing.crash(s.bob, testing.participant("alice"))
        new = await testing.serving(s.bob, testing.participant("alice"), since=old)
        assert new is not old
        assert not old.is_alive()
        await still_flowing(s)
        history = await testing.restart_history(s.bob)
        assert [(r.supervisor, r.name) for r in history] == [("participants", "alice")]
        await s.close()

    run_with_server(scenario)


def test_a_track_actor_crash_keeps_audio_flowing_and_the_track_subscribed() -> None:
    async def scenario(server: DevServer) -> None:
        s = await listening(server)
        old = await testing.crash(s.bob, testing.track(s.sid))
        await testing.serving(s.bob, testing.track(s.sid), since=old)
        await still_flowing(s)
        history = await testing.restart_history(s.bob)
        assert [(r.supervisor, r.name) for r in history] == [("tracks of alice", s.sid)]
        await s.close()

    run_with_server(scenario)


def test_a_crash_loop_under_traffic_is_braked_by_the_intensity_then_escalates() -> None:
    async def scenario(server: DevServer) -> None:
        s = await listening(server)
        target = testing.participant("alice")
        for crash in range(PARTICIPANT_INTENSITY.max_restarts):
            sending = asyncio.create_task(s.send(5))  # data arrives while the actor is down and restarting
            old = await testing.crash(s.bob, target, reason=f"crash {crash}")
            await testing.serving(s.bob, target, since=old)
            await sending
            assert s.bob.isconnected()
        await wait_until(lambda: s.received() == list(range(s.sent)), what="every packet, once, in order")
        history = await testing.restart_history(s.bob)
        assert len(history) == PARTICIPANT_INTENSITY.max_restarts
        assert history[0].delay == 0.0
        assert all(r.delay > 0 for r in history[1:])  # the back-off after the first, immediate restart
        # one crash more than the intensity allows within its period: the room gives up
        await testing.crash(s.bob, target, reason="one too many")
        await wait_until(lambda: len(s.rec.named("disconnected")) == 1, what="the room to escalate")
        assert s.rec.named("disconnected")[0][0] == rtc.DisconnectReason.STATE_MISMATCH
        assert not s.bob.isconnected()
        await s.close()

    run_with_server(scenario)


def test_a_congested_data_channel_does_not_hold_up_signalling() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        await alice.local_participant.publish_data(b"warm-up")  # the publisher PC and its channels are up
        big = bytes(60_000)
        burst = [asyncio.ensure_future(alice.local_participant.publish_data(big)) for _ in range(300)]
        await asyncio.sleep(0)  # let every publish reach the room (sleep(0) only yields; it does not wait)
        await alice.local_participant.set_metadata("while congested")  # signal round trip through the mailbox
        snapshot = await testing.state(alice, testing.room_actor())  # and a plain mailbox round trip
        assert isinstance(snapshot, RoomSnapshot)
        # shown by ordering: both completed while most of the burst still waited for the channel to drain
        assert not burst[-1].done()
        assert snapshot.outbox.queued > 0
        await asyncio.gather(*burst)
        await alice.disconnect()

    run_with_server(scenario)


def test_the_local_participant_actor_crashing_during_a_burst_loses_and_duplicates_nothing() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        rec = Recorder(bob, "data_received")
        alice = await connect(server, "alice")
        burst = [
            asyncio.ensure_future(alice.local_participant.publish_data(str(i).encode())) for i in range(500)
        ]
        old = await testing.crash(alice, testing.local_participant())
        await testing.serving(alice, testing.local_participant(), since=old)
        await asyncio.gather(*burst)
        await wait_until(lambda: len(rec.named("data_received")) >= 500, what="the whole burst")
        await alice.local_participant.publish_data(b"marker")  # nothing more than the burst arrived before it
        await wait_until(lambda: rec.named("data_received")[-1][0].data == b"marker", what="the marker")
        assert [int(a[0].data) for a in rec.named("data_received")[:-1]] == list(range(500))
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)
