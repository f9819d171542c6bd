"""End-to-end encryption through the dev server, greenroom ⇄ greenroom: the tone heard through encryption,
the dev server seeing only ciphertext, data sealed and opened, the key provider's calls, the state events,
a wrong key (silence, not noise), a key set late, a ratchet, and a TrackActor crash keeping its cryptor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from greenroom import rtc
from greenroom.codecs.e2ee import KeyOptions, KeyRing
from greenroom.codecs.e2ee_frames import FrameDecryptor
from greenroom.devserver.server import DevServer
from greenroom.testing import crash, serving, track
from tests.rtc.support import Recorder, run_with_server
from tests.rtc.test_media import RATE, collect, peak_hz, play, rms, subscribed
from tests.waiting import wait_until

KEY = b"greenroom-shared-secret"
OK, MISSING_KEY = rtc.EncryptionState.OK, rtc.EncryptionState.MISSING_KEY


def encrypted(shared_key: bytes | None = KEY, **options: Any) -> rtc.RoomOptions:
    provider = rtc.KeyProviderOptions(shared_key=shared_key, **options)
    return rtc.RoomOptions(encryption=rtc.E2EEOptions(key_provider_options=provider))


async def join(server: DevServer, identity: str, options: rtc.RoomOptions) -> rtc.Room:
    room = rtc.Room()
    await room.connect(server.url, server.mint_token(identity, "r1"), options)
    return room


@contextlib.asynccontextmanager
async def tone(room: rtc.Room, hz: float = 440.0) -> AsyncIterator[rtc.LocalTrackPublication]:
    source = rtc.AudioSource(RATE, 1)
    track_ = rtc.LocalAudioTrack.create_audio_track("tone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track_, options)

    async def forever() -> None:
        start = 0
        while True:
            start = await play(source, hz, 0.5, start)

    task = asyncio.ensure_future(forever())
    try:
        yield publication
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def listen(room: rtc.Room, identity: str) -> tuple[list[np.ndarray[Any, Any]], asyncio.Task[None]]:
    publication = await subscribed(room, identity)
    assert publication.track is not None
    frames: list[np.ndarray[Any, Any]] = []
    stream = rtc.AudioStream(publication.track, sample_rate=RATE, num_channels=1)
    return frames, asyncio.ensure_future(collect(stream, frames))


def loud_at(frames: list[np.ndarray[Any, Any]], hz: float, count: int = 25) -> bool:
    if len(frames) < count:
        return False
    tail = np.concatenate(frames[-count:])
    return rms(tail) > 1000 and abs(peak_hz(tail) - hz) < 15


def test_the_tone_is_heard_through_encryption_and_the_server_sees_only_ciphertext() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted())
        states = Recorder(b, "e2ee_state_changed", "participant_encryption_status_changed")
        async with tone(a) as publication:
            assert publication.encryption_type == rtc.EncryptionType.GCM
            frames, task = await listen(b, "alice")
            await wait_until(lambda: loud_at(frames, 440.0), timeout=10, what="bob hearing 440 Hz")
            # what the server forwards does not decrypt without the key, and does with it
            session = server.session_of(server.rooms["r1"], "alice")
            assert session is not None
            tap = session.publications[publication.sid].tap
            seen: list[bytes] = []
            tap.add_listener(lambda frame: seen.append(frame.data))
            await wait_until(lambda: len(seen) >= 5, timeout=5, what="5 forwarded frames")
            right = FrameDecryptor(KeyRing.empty(KeyOptions()).with_material(KEY, 0))
            wrong = FrameDecryptor(KeyRing.empty(KeyOptions(ratchet_window=0)).with_material(b"x", 0))
            for data in seen[:5]:
                assert data[-2:] == b"\x0c\x00"  # the LiveKit trailer: IV length 12, key index 0
                assert wrong.decrypt(data, "audio/opus")[1].frame is None
                right, outcome = right.decrypt(data, "audio/opus")
                assert outcome.frame is not None
            task.cancel()
        assert ("e2ee_state_changed", OK) in [(n, args[1]) for n, args in states.events]
        assert states.named("participant_encryption_status_changed")[-1][1] is True
        cryptors = b.e2ee_manager.frame_cryptors()
        assert [(c.participant_identity, c.enabled) for c in cryptors] == [("alice", True)]
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_data_is_sealed_on_the_wire_and_opened_by_the_receiver() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted())
        clear = await join(server, "eve", rtc.RoomOptions())  # no key: sees nothing of it
        got: list[bytes] = []
        b.on("data_received", lambda packet: got.append(packet.data))
        leaked: list[bytes] = []
        clear.on("data_received", lambda packet: leaked.append(packet.data))
        await wait_until(lambda: "alice" in b.remote_participants, timeout=5, what="bob seeing alice")
        await a.local_participant.publish_data(b"secret", topic="t")
        await eve_barrier(a, clear, leaked)
        await wait_until(lambda: got == [b"secret"], timeout=5, what="bob's packet")
        assert leaked == [b"marker"]  # the encrypted one never surfaced at eve
        for room in (a, b, clear):
            await room.disconnect()

    run_with_server(scenario)


async def eve_barrier(a: rtc.Room, eve: rtc.Room, seen: list[bytes]) -> None:
    """A clear packet after the encrypted one: once eve has it, the encrypted one was dropped."""
    a.e2ee_manager.set_enabled(False)
    await a.local_participant.publish_data(b"marker", destination_identities=["eve"])
    a.e2ee_manager.set_enabled(True)
    await wait_until(lambda: b"marker" in seen, timeout=5, what="eve's marker")


def test_the_key_provider_sets_exports_and_ratchets_through_the_room_actor() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        provider = a.e2ee_manager.key_provider
        assert provider is not None
        assert provider.export_shared_key(0) == KEY
        ratcheted = provider.ratchet_shared_key(0)
        assert len(ratcheted) == 32
        assert provider.export_shared_key(0) == ratcheted
        provider.set_shared_key(b"other", 3)
        assert provider.export_shared_key(3) == b"other"
        assert provider.export_key("nobody", 0) == b""
        per = await join(server, "bob", encrypted(shared_key=None))
        keys = per.e2ee_manager.key_provider
        assert keys is not None
        keys.set_key("bob", b"bob-key", 1)
        assert keys.export_key("bob", 1) == b"bob-key"
        assert keys.ratchet_key("bob", 1) != b"bob-key"
        assert keys.export_shared_key(0) == b""  # not in shared mode
        await a.disconnect()
        await per.disconnect()

    run_with_server(scenario)


def test_a_wrong_key_is_silence_and_setting_the_right_one_brings_the_tone() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted(shared_key=b"wrong", ratchet_window_size=0))
        async with tone(a):
            frames, task = await listen(b, "alice")
            await wait_until(lambda: len(frames) >= 100, timeout=10, what="1 s of bob's stream")
            assert rms(np.concatenate(frames)) == 0.0  # silence, never noise
            provider = b.e2ee_manager.key_provider
            assert provider is not None
            provider.set_shared_key(KEY, 0)
            await wait_until(lambda: loud_at(frames, 440.0), timeout=10, what="bob hearing 440 Hz")
            task.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_a_ratchet_on_the_sender_is_followed_by_the_receiver() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted())
        states = Recorder(b, "e2ee_state_changed")
        async with tone(a):
            frames, task = await listen(b, "alice")
            await wait_until(lambda: loud_at(frames, 440.0), timeout=10, what="bob hearing 440 Hz")
            provider = a.e2ee_manager.key_provider
            assert provider is not None
            provider.ratchet_shared_key(0)
            ratcheted = rtc.EncryptionState.KEY_RATCHETED
            await wait_until(
                lambda: ratcheted in [args[1] for args in states.named("e2ee_state_changed")],
                timeout=10,
                what="bob's cryptor to follow the ratchet",
            )
            count = len(frames)
            await wait_until(
                lambda: len(frames) > count + 50 and loud_at(frames, 440.0), timeout=10, what="tone"
            )
            task.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_a_crashed_track_actor_keeps_its_cryptor() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted())
        async with tone(a) as publication:
            frames, task = await listen(b, "alice")
            await wait_until(lambda: loud_at(frames, 440.0), timeout=10, what="bob hearing 440 Hz")
            cryptor = a.e2ee_manager.frame_cryptors()[0]
            cryptor.set_key_index(0)
            dead = await crash(a, track(publication.sid))
            await serving(a, track(publication.sid), since=dead)
            count = len(frames)
            await wait_until(
                lambda: len(frames) > count + 50 and loud_at(frames, 440.0), timeout=10, what="tone"
            )
            assert [c.key_index for c in a.e2ee_manager.frame_cryptors()] == [0]
            task.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_the_colour_cycle_is_seen_through_encryption() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted())
        b = await join(server, "bob", encrypted())
        source = rtc.VideoSource(64, 48)
        cam = rtc.LocalVideoTrack.create_video_track("cam", source)
        publication = await a.local_participant.publish_track(
            cam, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        remote = await subscribed(b, "alice")
        assert remote.track is not None
        seen: list[tuple[int, int, int]] = []

        async def watch() -> None:
            assert remote.track is not None
            async for event in rtc.VideoStream(remote.track, format=rtc.VideoBufferType.RGBA):
                pixels = np.frombuffer(bytes(event.frame.data), np.uint8).reshape(-1, 4)
                r, g, b_, _ = pixels.mean(axis=0)
                seen.append((round(r), round(g), round(b_)))

        watcher = asyncio.create_task(watch())
        session = server.session_of(server.rooms["r1"], "alice")
        assert session is not None
        forwarded: list[bytes] = []
        session.publications[publication.sid].tap.add_listener(lambda frame: forwarded.append(frame.data))
        for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
            frame = np.tile(np.array([*colour, 255], np.uint8), 64 * 48)
            for _ in range(30):
                source.capture_frame(rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, frame.tobytes()))
                await asyncio.sleep(1 / 30)  # pacing: a camera captures in real time

        def dominant(c: tuple[int, int, int]) -> int:
            return int(np.argmax(c)) if max(c) > 150 and sorted(c)[1] < 100 else -1

        await wait_until(lambda: seen and dominant(seen[-1]) == 2, what="the last colour (blue)")
        order = [d for d in (dominant(c) for c in seen) if d >= 0]
        assert [d for i, d in enumerate(order) if i == 0 or order[i - 1] != d] == [0, 1, 2]
        assert forwarded
        assert all(data[-2:] == b"\x0c\x00" for data in forwarded)  # the server forwarded ciphertext
        await a.disconnect()
        await b.disconnect()
        await asyncio.wait_for(watcher, 5)

    run_with_server(scenario)


def test_per_participant_keys_the_sender_uses_its_own_and_the_receiver_needs_it() -> None:
    async def scenario(server: DevServer) -> None:
        a = await join(server, "alice", encrypted(shared_key=None))
        b = await join(server, "bob", encrypted(shared_key=None))
        states = Recorder(b, "e2ee_state_changed")
        for room in (a, b):
            provider = room.e2ee_manager.key_provider
            assert provider is not None
            provider.set_key("alice", b"alice-key", 0)  # alice's own key; bob needs it to read her
        got: list[bytes] = []
        b.on("data_received", lambda packet: got.append(packet.data))
        async with tone(a):
            frames, task = await listen(b, "alice")
            await wait_until(lambda: loud_at(frames, 440.0), timeout=10, what="bob hearing 440 Hz")
            await a.local_participant.publish_data(b"under alice's key")
            await wait_until(lambda: got == [b"under alice's key"], timeout=5, what="bob's packet")
            task.cancel()
        assert [args[1] for args in states.named("e2ee_state_changed")] == [OK]
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)
