"""Media through the dev server, greenroom ⇄ greenroom: a tone-sequence oracle (FFT peak of each known
tone), a colour-cycle oracle for video, mute (real-time silence while paused), and every way a stream must
end (unsubscribe, unpublish, disconnect). Plus the frame types on their own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from greenroom import rtc
from greenroom.devserver.server import DevServer
from tests.rtc.support import connect, run_with_server
from tests.waiting import wait_until

RATE = 48_000
TONES = (440.0, 660.0, 880.0)


def peak_hz(samples: np.ndarray[Any, Any], rate: int = RATE) -> float:
    windowed = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    return float(np.argmax(spectrum) * rate / len(samples))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (polling: events arrive on this loop)."""
    await wait_until(condition, timeout=timeout, what="the room's state")


def rms(samples: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


async def play(source: rtc.AudioSource, hz: float, seconds: float, start: int = 0) -> int:
    """Capture ``seconds`` of a sine at ``hz`` in 10 ms frames (paced by the source's queue, in real
    time); returns the next sample index."""
    n = RATE // 100
    for _ in range(round(seconds * 100)):
        t = np.arange(start, start + n)
        pcm = (np.sin(2 * np.pi * hz * t / RATE) * 8000).astype(np.int16)
        await source.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, n))
        start += n
    return start


async def subscribed(room: rtc.Room, identity: str, timeout: float = 10.0) -> rtc.RemoteTrackPublication:
    def find() -> rtc.RemoteTrackPublication | None:
        participant = room.remote_participants.get(identity)
        for publication in [] if participant is None else participant.track_publications.values():
            if publication.track is not None:
                return publication
        return None

    return await wait_until(find, timeout=timeout, what=f"a subscribed track from {identity}")


def heard(frames: list[np.ndarray[Any, Any]], count: int = 20) -> bool:
    """Whether the last ``count`` frames (10 ms each) are loud: the tone is being heard."""
    return len(frames) >= count and rms(np.concatenate(frames[-count:])) > 1000


def pitch(frames: list[np.ndarray[Any, Any]], count: int = 25) -> float:
    """The FFT peak of the last ``count`` frames (0 until there are that many)."""
    return peak_hz(np.concatenate(frames[-count:])) if len(frames) >= count else 0.0


async def collect(stream: AsyncIterator[rtc.AudioFrameEvent], into: list[np.ndarray[Any, Any]]) -> None:
    async for event in stream:
        into.append(np.frombuffer(bytes(event.frame.data.cast("B")), np.int16))


async def publish_tone(server: DevServer) -> tuple[rtc.Room, rtc.Room, rtc.AudioSource, Any]:
    a = await connect(server, "alice")
    b = await connect(server, "bob")
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await a.local_participant.publish_track(track, options)
    return a, b, source, publication


def test_tone_sequence_arrives_in_order_with_the_right_pitch() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, _ = await publish_tone(server)
        events: list[str] = []
        b.on("track_subscribed", lambda track, pub, who: events.append(f"{who.identity}:{pub.source.name}"))
        publication = await subscribed(b, "alice")
        frames: list[np.ndarray[Any, Any]] = []
        reader = asyncio.create_task(collect(rtc.AudioStream(publication.track), frames))
        position = await play(source, 0.0, 0.3)
        peaks = []
        for hz in TONES:
            mark = len(frames)
            position = await play(source, hz, 0.8, position)
            await source.wait_for_playout()

            def tail(mark: int = mark) -> np.ndarray[Any, Any]:  # the last 0.5 s heard since this tone began
                return (
                    np.concatenate(frames[mark:])[-RATE // 2 :] if len(frames) - mark >= 50 else np.zeros(1)
                )

            # capture → playout through the server: wait until the last 0.5 s heard is this tone, loud
            await wait_until(
                lambda hz=hz: abs(peak_hz(tail()) - hz) < 10 and rms(tail()) > 1000,  # type: ignore[misc]
                what=lambda hz=hz: f"{hz} Hz (heard {peak_hz(tail())} Hz at RMS {rms(tail()):.0f})",  # type: ignore[misc]
            )
            peaks.append(peak_hz(tail()))
        assert [round(p / 20) * 20 for p in peaks] == [440, 660, 880], peaks
        assert {len(f) for f in frames} == {RATE // 100}  # 10 ms frames by default, as the official SDK's
        assert publication.source == rtc.TrackSource.SOURCE_MICROPHONE
        reader.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_mute_silences_and_unmute_restores_with_events() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, publication = await publish_tone(server)
        muted: list[tuple[str, bool]] = []
        b.on("track_muted", lambda who, pub: muted.append((who.identity, True)))
        b.on("track_unmuted", lambda who, pub: muted.append((who.identity, False)))
        remote = await subscribed(b, "alice")
        frames: list[np.ndarray[Any, Any]] = []
        reader = asyncio.create_task(collect(rtc.AudioStream(remote.track), frames))
        feeder = asyncio.create_task(play(source, 660.0, 30.0))
        await wait_until(lambda: heard(frames), what="the tone")
        publication.track.mute()
        await until(lambda: not (("alice", True) not in muted))
        assert remote.muted
        # what was in flight when the mute landed plays out: then 10 frames of silence in a row
        await wait_until(
            lambda: len(frames) >= 10 and all(rms(f) < 1 for f in frames[-10:]), what="silence after mute"
        )
        mark, started = len(frames), time.monotonic()
        # Nothing is forwarded now, yet (like livekit.rtc) the stream keeps yielding silence in real time.
        await wait_until(lambda: sum(len(f) for f in frames[mark:]) / RATE >= 0.7, what="0.7 s of silence")
        assert time.monotonic() - started < 1.5  # real time (0.7 s of audio in about 0.7 s)
        assert all(rms(f) < 1 for f in frames[mark:])
        publication.track.unmute()
        await until(lambda: not (("alice", False) not in muted))
        await wait_until(lambda: heard(frames), what="the tone after unmute")
        feeder.cancel()
        reader.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


async def ends_within(stream: rtc.AudioStream, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        async for _ in stream:
            pass


def test_unsubscribe_ends_the_stream_and_resubscribe_resumes() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, _ = await publish_tone(server)
        feeder = asyncio.create_task(play(source, 440.0, 30.0))
        names: list[str] = []
        b.on("track_unsubscribed", lambda track, pub, who: names.append("unsubscribed"))
        remote = await subscribed(b, "alice")
        stream = rtc.AudioStream(remote.track)
        remote.set_subscribed(False)
        await ends_within(stream, 5)
        assert names == ["unsubscribed"]
        assert not remote.subscribed
        assert remote.track is None
        remote.set_subscribed(True)
        again = await subscribed(b, "alice")
        frames: list[np.ndarray[Any, Any]] = []
        reader = asyncio.create_task(collect(rtc.AudioStream(again.track), frames))
        await wait_until(lambda: pitch(frames) == 440.0, what=lambda: f"440 Hz again (at {pitch(frames)} Hz)")
        feeder.cancel()
        await a.disconnect()
        await b.disconnect()
        await asyncio.wait_for(reader, 5)  # disconnect ends it

    run_with_server(scenario)


def test_unpublish_ends_the_stream_in_the_official_event_order() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, publication = await publish_tone(server)
        feeder = asyncio.create_task(play(source, 440.0, 30.0))
        order: list[str] = []
        b.on("track_unsubscribed", lambda *args: order.append("track_unsubscribed"))
        b.on("track_unpublished", lambda *args: order.append("track_unpublished"))
        local: list[str] = []
        a.on("local_track_unpublished", lambda pub: local.append(pub.sid))
        remote = await subscribed(b, "alice")
        stream = rtc.AudioStream(remote.track)
        await a.local_participant.unpublish_track(publication.sid)
        await ends_within(stream, 5)
        await until(lambda: not (len(order) < 2))
        assert order == ["track_unsubscribed", "track_unpublished"]
        assert local == [publication.sid]
        assert not a.local_participant.track_publications
        feeder.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_disconnect_ends_streams_on_both_sides() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, _ = await publish_tone(server)
        feeder = asyncio.create_task(play(source, 440.0, 30.0))
        remote = await subscribed(b, "alice")
        mine = rtc.AudioStream(remote.track)
        await b.disconnect()  # the subscriber leaves: its own stream ends
        await ends_within(mine, 5)
        c = await connect(server, "carol")
        theirs = rtc.AudioStream((await subscribed(c, "alice")).track)
        await a.disconnect()  # the publisher leaves: the subscriber's stream ends
        await ends_within(theirs, 5)
        feeder.cancel()
        with contextlib.suppress(Exception):
            await source.aclose()
        await c.disconnect()

    run_with_server(scenario)


def test_from_participant_waits_for_the_track() -> None:
    async def scenario(server: DevServer) -> None:
        a = await connect(server, "alice")
        b = await connect(server, "bob")
        await until(lambda: not ("alice" not in b.remote_participants))
        stream = rtc.AudioStream.from_participant(
            participant=b.remote_participants["alice"], track_source=rtc.TrackSource.SOURCE_MICROPHONE
        )
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        await a.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        feeder = asyncio.create_task(play(source, 880.0, 30.0))
        frames: list[np.ndarray[Any, Any]] = []
        reader = asyncio.create_task(collect(stream, frames))
        await wait_until(
            lambda: round(pitch(frames) / 20) * 20 == 880, what=lambda: f"880 Hz (at {pitch(frames)} Hz)"
        )
        feeder.cancel()
        await b.disconnect()
        await asyncio.wait_for(reader, 5)
        await a.disconnect()

    run_with_server(scenario)


COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def test_video_colour_cycle_arrives_in_order() -> None:
    async def scenario(server: DevServer) -> None:
        a = await connect(server, "alice")
        b = await connect(server, "bob")
        source = rtc.VideoSource(64, 48)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        await a.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        remote = await subscribed(b, "alice")
        seen: list[tuple[int, int, int]] = []

        async def watch() -> None:
            async for event in rtc.VideoStream(remote.track, format=rtc.VideoBufferType.RGBA):
                pixels = np.frombuffer(bytes(event.frame.data), np.uint8).reshape(-1, 4)
                r, g, b_, _ = pixels.mean(axis=0)
                seen.append((round(r), round(g), round(b_)))

        watcher = asyncio.create_task(watch())
        for colour in COLOURS:
            frame = np.tile(np.array([*colour, 255], np.uint8), 64 * 48)
            for _ in range(30):
                source.capture_frame(rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, frame.tobytes()))
                await asyncio.sleep(1 / 30)  # pacing: a camera captures in real time

        def dominant(c: tuple[int, int, int]) -> int:
            return int(np.argmax(c)) if max(c) > 150 and sorted(c)[1] < 100 else -1

        await wait_until(lambda: seen and dominant(seen[-1]) == 2, what="the last colour (blue)")

        order = [d for d in (dominant(c) for c in seen) if d >= 0]
        collapsed = [d for i, d in enumerate(order) if i == 0 or order[i - 1] != d]
        assert collapsed == [0, 1, 2], seen[:5]
        await a.disconnect()
        await b.disconnect()
        await asyncio.wait_for(watcher, 5)

    run_with_server(scenario)


def test_audio_frame_shape() -> None:
    frame = rtc.AudioFrame.create(48_000, 2, 480)
    assert frame.duration == 0.01
    assert len(frame.data) == 960
    assert frame.data.format == "h"
    frame.data[1] = 123
    assert np.frombuffer(bytes(frame.data.cast("B")), np.int16)[1] == 123
    assert frame.to_wav_bytes().startswith(b"RIFF")


def test_video_frame_convert_get_plane_and_flip() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = (255, 0, 0, 255)
    rgba[2:] = (0, 0, 255, 255)
    frame = rtc.VideoFrame(4, 4, rtc.VideoBufferType.RGBA, rgba.tobytes())
    i420 = frame.convert(rtc.VideoBufferType.I420)
    assert len(i420.data) == 16 + 4 + 4
    assert i420.get_plane(1) is not None
    assert i420.get_plane(3) is None
    back = np.frombuffer(bytes(i420.convert(rtc.VideoBufferType.RGBA).data), np.uint8).reshape(4, 4, 4)
    assert back[0, 0, 0] > 200
    assert back[3, 3, 2] > 200
    flipped = np.frombuffer(bytes(frame.convert(rtc.VideoBufferType.RGBA, flip_y=True).data), np.uint8)
    assert flipped.reshape(4, 4, 4)[0, 0, 2] == 255
