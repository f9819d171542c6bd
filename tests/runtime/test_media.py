"""The media plane: RTP forwarding without decoding, PCM/video sources and sinks — real aiortc peers on lo."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiortc.rtcrtpreceiver
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from greenroom.runtime.ice import IcePolicy, gathering_scope
from greenroom.runtime.media import (
    DropOldestQueue,
    PcmChunk,
    PcmSink,
    PcmSourceTrack,
    TrackEndedError,
    UnsupportedCodecError,
    VideoChunk,
    VideoSink,
    VideoSourceTrack,
    video_frame_from_bytes,
    video_frame_to_bytes,
)
from greenroom.runtime.rtp_forward import (
    EncodedFrame,
    ForwardedTrack,
    RtpTap,
    add_forwarded_track,
    is_keyframe,
    receiver_for_track,
)
from tests.helpers import assert_eventually_async
from tests.waiting import resend_until, wait_until

POLICY = IcePolicy.loopback()
RATE = 48_000
TONES = (440.0, 660.0, 880.0)
TONE_S = 0.2


def run(coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout)

    asyncio.run(bounded())


def pc() -> RTCPeerConnection:
    return RTCPeerConnection(POLICY.rtc_configuration())


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer/answer on loopback only (the runtime's ICE policy makes aioice gather on 127.0.0.1)."""
    with gathering_scope(POLICY):
        await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    with gathering_scope(POLICY):
        await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def tone(freq: float, seconds: float, amplitude: int = 8000) -> bytes:
    n = round(RATE * seconds)
    samples = amplitude * np.sin(2 * math.pi * freq * np.arange(n) / RATE)
    return samples.astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * round(RATE * seconds))


def tone_sequence(pcm: bytes, rate: int = RATE) -> list[tuple[float, int]]:
    """FFT oracle: (dominant frequency, number of 20 ms windows) runs over the non-silent part."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    window = rate // 50
    runs: list[tuple[float, int]] = []
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start : start + window]
        if np.sqrt(np.mean(chunk**2)) < 1000:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(window), n=16384))
        peak = float(np.argmax(spectrum)) * rate / 16384
        freq = min(TONES, key=lambda t: abs(t - peak)) if min(abs(t - peak) for t in TONES) < 20 else peak
        if runs and runs[-1][0] == freq:
            runs[-1] = (freq, runs[-1][1] + 1)
        else:
            runs.append((freq, 1))
    return [(f, n) for f, n in runs if n >= 3]


def quiet_tail(pcm: bytes, seconds: float = 0.1) -> bool:
    tail = np.frombuffer(pcm[-2 * round(RATE * seconds) :], dtype="<i2").astype(np.float64)
    return len(tail) > 0 and float(np.sqrt(np.mean(tail**2))) < 1000


@dataclass
class DecoderGuard:
    """Makes aiortc's decoder construction fail on every thread but the subscriber's decoder thread."""

    allowed: list[RTCRtpReceiver] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    constructed: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]

        def guarded(codec: Any) -> Any:
            current = threading.current_thread()
            if not any(current is getattr(r, "_RTCRtpReceiver__decoder_thread", None) for r in self.allowed):
                self.refused.append(codec.mimeType)
                raise AssertionError(f"a forbidden receiver tried to construct a {codec.mimeType} decoder")
            self.constructed += 1
            return original(codec)

        # decoder_worker looks the name up in the receiver module (aiortc/rtcrtpreceiver.py line 72).
        monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", guarded)
        monkeypatch.setattr(aiortc.codecs, "get_decoder", guarded)


@dataclass
class Chain:
    """publisher → middle (taps, forwards, never decodes) → subscriber."""

    pub: RTCPeerConnection
    mid_in: RTCPeerConnection
    mid_out: RTCPeerConnection
    sub: RTCPeerConnection
    taps: list[RtpTap]
    forwarded: list[ForwardedTrack]
    sub_tracks: asyncio.Queue[MediaStreamTrack]

    async def close(self) -> None:
        for peer in (self.pub, self.mid_in, self.mid_out, self.sub):
            await peer.close()


async def build_chain(
    tracks: list[MediaStreamTrack], guard: DecoderGuard | None = None, *, connect_subscriber: bool = True
) -> Chain:
    pub, mid_in, mid_out, sub = pc(), pc(), pc(), pc()
    taps: list[RtpTap] = []
    sub_tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()

    @mid_in.on("track")
    def on_mid_track(track: MediaStreamTrack) -> None:
        taps.append(RtpTap(receiver_for_track(mid_in, track)))

    @sub.on("track")
    def on_sub_track(track: MediaStreamTrack) -> None:
        if guard is not None:
            guard.allowed.append(receiver_for_track(sub, track))
        sub_tracks.put_nowait(track)

    for track in tracks:
        pub.addTrack(track)
    await negotiate(pub, mid_in)
    assert len(taps) == len(tracks)
    forwarded = [tap.forward() for tap in taps]
    for i, ft in enumerate(forwarded):
        add_forwarded_track(mid_out, ft, stream_id=f"PA_pub|TR_{i}", track_id=f"TR_{i}")
    if connect_subscriber:
        await negotiate(mid_out, sub)
    return Chain(pub, mid_in, mid_out, sub, taps, forwarded, sub_tracks)


async def collect(sink: PcmSink, until: Callable[[bytes], bool], timeout: float) -> bytes:
    received = bytearray()

    async def loop() -> None:
        async for chunk in sink:
            received.extend(chunk.data)
            if until(bytes(received)):
                return

    await asyncio.wait_for(loop(), timeout)
    return bytes(received)


# -- forwarding --------------------------------------------------------------------------------------------


def test_audio_tones_are_forwarded_without_a_decoder_in_the_middle(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = DecoderGuard()
    guard.install(monkeypatch)

    async def main() -> None:
        source = PcmSourceTrack(RATE, 1, queue_size_ms=2000)
        chain = await build_chain([source], guard)
        sub_track = await asyncio.wait_for(chain.sub_tracks.get(), 10)
        sink = PcmSink(sub_track, sample_rate=RATE, num_channels=1)
        pcm = silence(0.3) + b"".join(tone(f, TONE_S) for f in TONES) + silence(0.3)
        await source.put(pcm)
        await source.wait_for_playout()
        received = await collect(
            sink, lambda got: len(tone_sequence(got)) >= 3 and quiet_tail(got), timeout=10
        )
        runs = tone_sequence(received)
        assert [f for f, _ in runs] == list(TONES), runs
        for _, windows in runs:
            assert 8 <= windows <= 11, runs  # 200 ms each = 10 windows of 20 ms, ±1 at the edges
        tap, ft = chain.taps[0], chain.forwarded[0]
        assert tap.mime_type == "audio/opus"
        assert tap.frames > 0
        assert ft.frames_sent > 0
        assert tap.unsupported == 0
        await chain.close()
        await sink.aclose()

    run(main())
    assert guard.refused == []
    assert guard.constructed == 1  # the subscriber's decoder and nobody else's


def test_tap_listener_sees_encoded_frames_with_continuous_timestamps() -> None:
    async def main() -> None:
        source = PcmSourceTrack(RATE, 1)
        chain = await build_chain([source], connect_subscriber=False)
        seen: list[EncodedFrame] = []
        remove = chain.taps[0].add_listener(seen.append)
        await source.put(tone(440, 0.3))
        await assert_eventually_async(lambda: len(seen) >= 10, timeout=10)
        remove()
        stamps = [f.timestamp for f in seen[:10]]
        assert all(b - a == 960 for a, b in itertools.pairwise(stamps)), stamps
        assert all(f.keyframe and f.clock_rate == RATE and f.mime_type == "audio/opus" for f in seen)
        assert any(f.audio_level is not None for f in seen)  # aiortc publishers send RFC 6464 levels
        await chain.close()

    run(main())


def test_forwarded_opus_payloads_are_byte_identical() -> None:
    """What the subscriber receives is exactly what the publisher sent: E2EE-encrypted frames survive."""

    async def main() -> None:
        source = PcmSourceTrack(RATE, 1)
        chain = await build_chain([source], connect_subscriber=False)
        sent: list[bytes] = []
        got: list[bytes] = []
        chain.taps[0].add_listener(lambda f: sent.append(f.data))

        @chain.sub.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            RtpTap(receiver_for_track(chain.sub, track)).add_listener(lambda f: got.append(f.data))

        await negotiate(chain.mid_out, chain.sub)
        await source.put(b"".join(tone(f, TONE_S) for f in TONES))
        await assert_eventually_async(lambda: len(got) >= 25, timeout=10)
        start = sent.index(got[0])
        assert got[:25] == sent[start : start + 25]
        assert len(set(got[:25])) > 20  # real, varying Opus payloads
        await chain.close()

    run(main())


def test_stream_end_propagates_publisher_to_subscriber_sink() -> None:
    async def main() -> None:
        source = PcmSourceTrack(RATE, 1)
        chain = await build_chain([source])
        sub_track = await asyncio.wait_for(chain.sub_tracks.get(), 10)
        sink = PcmSink(sub_track, capacity=5)
        await source.put(tone(440, 0.2))
        first = await asyncio.wait_for(anext(sink), 10)
        assert isinstance(first, PcmChunk)
        await chain.pub.close()  # the publisher leaves: DTLS closes → tap ends → forwarded sender sends BYE
        await asyncio.wait_for(chain.taps[0].ended.wait(), 10)
        assert chain.forwarded[0].readyState == "ended"

        async def drain() -> None:
            async for _ in sink:
                pass

        await asyncio.wait_for(drain(), 10)  # the subscriber's stream ends on its own, it never hangs
        assert sink.ended
        await chain.close()

    run(main())


@dataclass
class ColourSource:
    track: VideoSourceTrack
    size: tuple[int, int] = (96, 64)

    async def play(self, colours: list[tuple[int, int, int]], frames_each: int, fps: float = 30) -> None:
        width, height = self.size
        for rgb in colours:
            pixel = bytes((*rgb, 255))
            for _ in range(frames_each):
                self.track.capture(pixel * (width * height), width, height, "rgba")
                await asyncio.sleep(1 / fps)  # pacing: a camera captures in real time


def colour_of(chunk: VideoChunk) -> str:
    assert chunk.format == "rgba"
    pixels = np.frombuffer(chunk.data, dtype=np.uint8).reshape(chunk.height, chunk.width, 4)
    r, g, b = (float(pixels[..., i].mean()) for i in range(3))
    best = max((r, "red"), (g, "green"), (b, "blue"))
    assert best[0] > 150, (r, g, b)
    return best[1]


def test_video_colour_cycle_through_the_forwarder_and_keyframe_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = DecoderGuard()
    guard.install(monkeypatch)

    async def main() -> None:
        source = ColourSource(VideoSourceTrack())
        chain = await build_chain([source.track], guard)
        pub_sender = chain.pub.getSenders()[0]
        publisher_keyframe_requests = 0
        original = pub_sender._send_keyframe

        def count_keyframe_request() -> None:
            nonlocal publisher_keyframe_requests
            publisher_keyframe_requests += 1
            original()

        pub_sender._send_keyframe = count_keyframe_request  # type: ignore[method-assign]
        sub_track = await asyncio.wait_for(chain.sub_tracks.get(), 10)
        sink = VideoSink(sub_track, format="rgba")
        colours: list[str] = []

        async def watch() -> None:
            async for chunk in sink:
                name = colour_of(chunk)
                if not colours or colours[-1] != name:
                    colours.append(name)

        watcher = asyncio.ensure_future(watch())
        red, green, blue = (220, 20, 20), (20, 220, 20), (20, 20, 220)
        await source.play([red, green, blue, red, green, blue], frames_each=8)
        await assert_eventually_async(lambda: colours[-1:] == ["blue"], timeout=5)
        seq = "".join(c[0] for c in colours)
        assert "rgbrgb" in seq or "gbrgb" in seq, colours  # the first red may precede the first keyframe

        # A subscriber's PLI travels back to the publisher through the forwarder.
        tap, ft = chain.taps[0], chain.forwarded[0]
        assert tap.mime_type == "video/vp8"
        before = publisher_keyframe_requests
        sub_receiver = receiver_for_track(chain.sub, sub_track)
        media_ssrc = chain.mid_out.getSenders()[0]._ssrc

        await resend_until(  # re-sent: the forwarder may hold back a request right after the last one
            lambda: sub_receiver._send_rtcp_pli(media_ssrc),
            lambda: publisher_keyframe_requests > before,
            timeout=5,
            what="the subscriber's PLI to reach the publisher",
        )
        assert ft.keyframe_requests >= 1
        assert tap.keyframe_requests_sent >= 1
        watcher.cancel()
        await sink.aclose()
        await chain.close()

    run(main())
    assert guard.refused == []
    assert guard.constructed == 1


def test_new_video_subscriber_waits_for_a_keyframe() -> None:
    async def main() -> None:
        requests: list[int] = []
        track = ForwardedTrack(
            "video", "video/VP8", capacity=3, on_keyframe_request=lambda: requests.append(1)
        )
        delta = EncodedFrame("video/vp8", b"\x01rest", 0, 90_000, False, 1)
        key = EncodedFrame("video/vp8", b"\x00rest", 3000, 90_000, True, 1)
        assert is_keyframe("video/vp8", key.data)
        assert not is_keyframe("video/vp8", delta.data)
        track.push(key)  # the sender has not pulled yet: nothing is queued, no stale burst later
        assert track.frames_dropped == 0
        pulled = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)  # a yield: recv() starts pulling first (the scenario's order)
        track.push(delta)
        assert requests == [1]
        assert track.frames_dropped == 1
        track.push(key)
        assert bytes(await pulled) == key.data
        for _ in range(5):  # overflow: video flushes and waits for the next keyframe
            track.push(delta)
        assert track.frames_dropped == 1 + 3 + 2  # the early delta, the flushed queue, two deltas
        assert len(requests) == 3
        track.set_paused(True)
        track.push(key)
        assert track.paused
        track.set_paused(False)
        track.push(delta)  # resuming waits for a keyframe again
        assert len(requests) == 4
        assert is_keyframe("video/h264", b"\x00\x00\x00\x01\x67abc")
        assert not is_keyframe("video/h264", b"\x00\x00\x01\x41abc")
        assert is_keyframe("audio/opus", b"")
        with pytest.raises(UnsupportedCodecError):
            ForwardedTrack("audio", "video/vp8")
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()

    run(main())


def test_forwarded_audio_track_drops_oldest_and_yields_packets() -> None:
    async def main() -> None:
        track = ForwardedTrack("audio", "audio/opus", capacity=2)
        pulled = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)  # a yield: recv() starts pulling first (the scenario's order)
        track.push(EncodedFrame("audio/opus", b"\x00", 0, RATE, True, 7))
        assert bytes(await pulled) == b"\x00"
        for i in range(1, 5):
            track.push(EncodedFrame("audio/opus", bytes([i]), i * 960, RATE, True, 7))
        track.push(EncodedFrame("video/vp8", b"\x00", 0, 90_000, True, 7))
        assert track.frames_dropped == 2
        assert track.mismatched == 1
        packet = await track.recv()
        assert isinstance(packet, av.Packet)
        assert bytes(packet) == b"\x03"
        assert packet.pts == 3 * 960
        assert packet.time_base == fractions.Fraction(1, RATE)
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()

    run(main())


# -- audio source and sink ---------------------------------------------------------------------------------


def test_pcm_source_backpressure_pacing_clear_and_silence() -> None:
    async def main() -> None:
        source = PcmSourceTrack(16_000, 1, queue_size_ms=100)
        await source.put(tone(440, 0.06)[: 2 * 960])  # 60 ms at 16 kHz
        blocked = asyncio.ensure_future(source.put(bytes(2 * 960)))  # 60 more: over the 100 ms capacity
        await wait_until(lambda: not source._not_full.is_set(), what="the put to wait for room")
        assert not blocked.done()
        assert source.queued_duration == pytest.approx(0.06)
        loop = asyncio.get_running_loop()
        start = loop.time()
        frames = [await source.recv() for _ in range(3)]  # 60 ms leaves room: the put goes through
        await asyncio.wait_for(blocked, 1)
        assert [f.pts for f in frames] == [0, 320, 640]
        assert all(
            f.samples == 320 and f.sample_rate == 16_000 and f.time_base == fractions.Fraction(1, 16_000)
            for f in frames
        )
        elapsed = loop.time() - start
        assert 0.035 <= elapsed < 0.3  # real-time pace: the 1st frame at once, then one per 20 ms

        playout = asyncio.ensure_future(source.wait_for_playout())
        await asyncio.sleep(0)  # a yield: the waiter runs up to its wait (nothing else can finish it)
        assert not playout.done()
        source.clear()
        await asyncio.wait_for(playout, 1)
        frame = await source.recv()  # starved: silence, not a stall
        assert bytes(frame.planes[0])[:640] == bytes(640)
        assert source.frames_starved == 1

        await source.put(bytes(100))  # a partial frame is completed with silence
        frame = await source.recv()
        assert source.frames_starved == 2
        assert source.queued_duration == 0
        with pytest.raises(ValueError, match="multiple"):
            await source.put(b"\x00")
        source.stop()
        with pytest.raises(TrackEndedError):
            await source.put(bytes(2))
        with pytest.raises(MediaStreamError):
            await source.recv()

    run(main())


def test_put_waiting_on_a_full_queue_fails_when_the_track_stops() -> None:
    async def main() -> None:
        source = PcmSourceTrack(8_000, 2, queue_size_ms=20)
        await source.put(bytes(8_000 // 50 * 4))
        waiting = asyncio.ensure_future(source.put(bytes(4)))
        await wait_until(lambda: not source._not_full.is_set(), what="the put to wait for room")
        source.stop()
        with pytest.raises(TrackEndedError):
            await waiting
        await asyncio.wait_for(source.wait_for_playout(), 1)

    run(main())


class FastAudioTrack(MediaStreamTrack):
    """48 kHz stereo 20 ms frames as fast as they are read, then the end (no pacing)."""

    kind = "audio"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.remaining = frames
        self.pts = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0)  # a yield, like a real track's recv (no pacing: as fast as read)
        if self.remaining == 0:
            self.stop()
            raise MediaStreamError
        self.remaining -= 1
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        stereo = np.repeat(np.frombuffer(tone(660, 0.02), dtype="<i2"), 2)
        frame.planes[0].update(stereo.tobytes())
        frame.pts, frame.sample_rate, frame.time_base = self.pts, RATE, fractions.Fraction(1, RATE)
        self.pts += 960
        return frame


def test_pcm_sink_resamples_remixes_and_drops_oldest() -> None:
    async def main() -> None:
        sink = PcmSink(FastAudioTrack(50), sample_rate=16_000, num_channels=1, capacity=4, frame_size_ms=10)
        await assert_eventually_async(lambda: sink.ended, timeout=5)
        chunks = [chunk async for chunk in sink]
        assert len(chunks) == 4  # the newest four; the rest were dropped, oldest first
        assert sink.dropped > 90
        assert all(c.sample_rate == 16_000 and c.num_channels == 1 for c in chunks)
        assert all(c.samples_per_channel == 160 and len(c.data) == 320 for c in chunks[:-1])
        assert chunks[0].duration == pytest.approx(0.01)
        assert sink.frames_in == 50
        runs = tone_sequence(b"".join(c.data for c in chunks[:2]), rate=16_000)
        assert runs == [] or runs[0][0] == 660.0

    run(main())


def test_pcm_sink_unbounded_hears_the_tone_and_aclose_ends_it() -> None:
    async def main() -> None:
        sink = PcmSink(FastAudioTrack(20), sample_rate=RATE, num_channels=2)
        await assert_eventually_async(lambda: sink.ended, timeout=5)
        data = b"".join([c.data async for c in sink])
        mono = np.frombuffer(data, dtype="<i2")[::2].astype("<i2").tobytes()
        assert [f for f, _ in tone_sequence(mono)] == [660.0]
        assert sink.dropped == 0
        endless = PcmSink(PcmSourceTrack(RATE, 1))
        await endless.aclose()
        assert [c async for c in endless] == []
        with pytest.raises(ValueError, match="audio"):
            PcmSink(VideoSourceTrack())

    run(main())


class GappyAudioTrack(MediaStreamTrack):
    """48 kHz stereo 20 ms tone frames at real-time pace (``frames`` of them, then a pause of ``pause``
    seconds with no frames at all, then ``frames`` more), then no frames until stopped (a muted track)."""

    kind = "audio"

    def __init__(self, frames: int, pause: float = 0.0) -> None:
        super().__init__()
        self.sent = 0
        self.frames = frames
        self.pause = pause
        self.pts = 0
        self.gone = asyncio.Event()

    async def recv(self) -> av.AudioFrame:
        if self.sent >= 2 * self.frames:
            await self.gone.wait()  # silent until stopped
            raise MediaStreamError
        # pacing: 20 ms frames in real time, and the gap of the scenario
        await asyncio.sleep(0.02 + (self.pause if self.sent == self.frames else 0.0))
        self.sent += 1
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(np.repeat(np.frombuffer(tone(660, 0.02), dtype="<i2"), 2).tobytes())
        frame.pts, frame.sample_rate, frame.time_base = self.pts, RATE, fractions.Fraction(1, RATE)
        self.pts += 960
        return frame

    def stop(self) -> None:
        super().stop()
        self.gone.set()


def _is_silent(chunk: PcmChunk) -> bool:
    return not any(chunk.data)


def test_pcm_sink_fills_gaps_with_real_time_silence_without_a_stale_burst() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        track = GappyAudioTrack(15, 0.6)
        sink = PcmSink(track, sample_rate=RATE, num_channels=1, fill_silence=True)
        seen: list[tuple[float, PcmChunk]] = []

        async def read() -> None:
            async for chunk in sink:
                seen.append((loop.time(), chunk))

        reader = asyncio.create_task(read())
        start = loop.time()

        def trailing_silence() -> int:
            kinds = [_is_silent(c) for _, c in seen]
            return kinds[::-1].index(False) if False in kinds else 0  # silent chunks after the last tone

        # 0.3 s tone, 0.6 s gap, 0.3 s tone, then nothing (a muted track): wait for all of it to be read,
        # then for 10 chunks of silence after it
        await wait_until(
            lambda: track.sent == 2 * track.frames and trailing_silence() >= 10,
            what=lambda: f"all frames and then silence (sent {track.sent}, {len(seen)} chunks)",
        )
        elapsed = loop.time() - start
        audio = sum(c.duration for _, c in seen)
        assert 0.8 * elapsed <= audio <= elapsed + 0.1, (audio, elapsed)  # real time, no duplicated time
        kinds = [_is_silent(c) for _, c in seen]
        tone_at = [i for i, silent in enumerate(kinds) if not silent]
        first, last = tone_at[0], tone_at[-1]
        assert first <= 3  # at most the grace's worth of silence before the first frame
        gap = kinds[first : last + 1]
        assert 20 <= sum(gap) <= 36, sum(gap)  # the 0.6 s gap, as ~30 chunks of 20 ms (not a burst)
        resumed = kinds.index(False, first + 15)
        assert sum(kinds[resumed : last + 1]) <= 2  # back to tone: no stale silence queued behind it
        assert len(kinds) - last >= 8  # silence again after the last frame...
        gap_times = [t for t, c in seen[first:last] if _is_silent(c)]
        assert gap_times[-1] - gap_times[0] >= 0.4  # ...and during the gap it was paced, not bunched
        track.stop()
        await asyncio.wait_for(reader, 1)  # the track's end ends the silence too
        assert sink.ended
        assert sink.silent_chunks == sum(kinds)

    run(main())


def test_pcm_sink_silence_respects_capacity_and_aclose() -> None:
    async def main() -> None:
        track = GappyAudioTrack(0)
        quiet = PcmSink(track, num_channels=2, capacity=5, frame_size_ms=10, fill_silence=True)
        plain = PcmSink(GappyAudioTrack(0))
        await wait_until(lambda: quiet.dropped >= 15, what="15 chunks of silence dropped from a full queue")
        assert len(quiet._queue) == 5  # the oldest dropped, the newest kept
        chunk = await anext(quiet)
        assert _is_silent(chunk)
        assert (chunk.samples_per_channel, chunk.num_channels, len(chunk.data)) == (480, 2, 1920)
        assert len(plain._queue) == 0  # without fill_silence a quiet track yields nothing
        await asyncio.wait_for(quiet.aclose(), 1)
        await asyncio.wait_for(plain.aclose(), 1)
        assert [c async for c in plain] == []
        assert quiet.ended
        made = quiet.silent_chunks
        # a witness started after aclose: while it makes 5 chunks of silence, the closed sink makes none
        witness = PcmSink(GappyAudioTrack(0), frame_size_ms=10, fill_silence=True)
        await wait_until(lambda: witness.silent_chunks >= 5, what="the witness sink to make silence")
        await witness.aclose()
        assert quiet.silent_chunks == made  # nothing after aclose
        assert track.readyState == "live"  # the track itself is left alone

    run(main())


# -- video source and sink ---------------------------------------------------------------------------------


def test_video_frame_bytes_round_trip_and_sink_formats() -> None:
    width, height = 33, 17  # odd sizes: padded rows and rounded-up chroma planes
    rgba = bytes(range(256)) * (width * height * 4 // 256) + bytes(width * height * 4 % 256)
    frame = video_frame_from_bytes(rgba, width, height, "rgba")
    assert video_frame_to_bytes(frame) == rgba
    i420 = video_frame_to_bytes(frame.reformat(format="yuv420p"))
    assert len(i420) == width * height + 2 * (17 * 9)
    assert video_frame_to_bytes(video_frame_from_bytes(i420, width, height, "yuv420p")) == i420
    with pytest.raises(ValueError, match="needs"):
        video_frame_from_bytes(b"\x00", width, height, "rgba")
    with pytest.raises(ValueError, match="unsupported"):
        video_frame_to_bytes(av.VideoFrame(width=4, height=4, format="gray16le"))

    async def main() -> None:
        source = VideoSourceTrack(capacity=2)
        sink = VideoSink(source, format="yuv420p", width=16, height=8, capacity=1)
        green = bytes((0, 255, 0, 255)) * (32 * 16)
        source.capture(green, 32, 16, timestamp_us=1_000_000)
        source.capture(green, 32, 16, timestamp_us=1_000_000)  # same time: pts still increases
        await assert_eventually_async(lambda: len(sink._queue) >= 1, timeout=2)
        chunk = await anext(sink)
        assert (chunk.width, chunk.height, chunk.format) == (16, 8, "yuv420p")
        assert len(chunk.data) == 16 * 8 * 3 // 2
        for _ in range(3):
            source.capture(green, 32, 16)
        assert source.dropped >= 1
        source.stop()
        with pytest.raises(TrackEndedError):
            source.capture(green, 32, 16)
        rest = [c async for c in sink]
        assert len(rest) <= 1
        assert sink.dropped >= 0
        with pytest.raises(ValueError, match="video"):
            VideoSink(PcmSourceTrack())

    run(main())


def test_drop_oldest_queue() -> None:
    async def main() -> None:
        queue: DropOldestQueue[int] = DropOldestQueue(2)
        for i in range(5):
            assert queue.put_nowait(i)
        assert queue.dropped == 3
        assert len(queue) == 2
        queue.end()
        assert not queue.put_nowait(9)
        assert [i async for i in queue] == [3, 4]
        with pytest.raises(ValueError, match="capacity"):
            DropOldestQueue(-1)
        waiter: DropOldestQueue[str] = DropOldestQueue()
        pending = asyncio.ensure_future(waiter.get())
        await asyncio.sleep(0)  # a yield: get() starts waiting first (the scenario's order)
        waiter.put_nowait("x")
        assert await pending == "x"
        assert waiter.clear() == 0

    run(main())
