"""Two bots, written exactly as for ``livekit.rtc`` — only the import differs.

``tone_bot`` publishes a microphone track playing a sine tone; ``ear_bot`` subscribes to it and reports, for
every half second it hears, the level (dBFS, RMS relative to int16 full scale) and the pitch (Hz, from the
zero crossings — the tone is a pure sine, so no FFT library is needed). With the official SDK this file starts
``from livekit import rtc``; here it is ``from greenroom import rtc`` and nothing else in the bots changes.

Where it connects:

* ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` set: that server, with tokens minted here
  for ``tone-bot`` and ``ear-bot`` in room ``tones`` (``ROOM`` overrides the room);
* otherwise: an embedded greenroom dev server on an ephemeral loopback port.

Run it: ``python examples/tone_bots.py [--hz 440] [--seconds 3] [--amplitude 0.25]``. It prints one
``level … dBFS  pitch … Hz`` line per half second heard and exits 0 after ``--seconds`` of reports.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator

from greenroom import rtc

__all__ = ["ear_bot", "level_and_pitch", "main", "tone_bot"]

SAMPLE_RATE = 48_000
FRAME = SAMPLE_RATE // 100  # 10 ms frames


async def tone_bot(url: str, token: str, hz: float, amplitude: float, stop: asyncio.Event) -> None:
    """Join, publish a microphone track playing a sine at ``hz`` until ``stop`` is set, leave.

    Args:
        url: the server URL.
        token: a join token.
        hz: the tone's frequency.
        amplitude: its peak as a fraction of full scale (0–1).
        stop: set it to leave.
    """
    room = rtc.Room()
    await room.connect(url, token)
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    print(f"tone-bot: publishing {hz:.1f} Hz at {20 * math.log10(amplitude):.1f} dBFS peak", flush=True)
    peak, step, sample = amplitude * 32767, 2 * math.pi * hz / SAMPLE_RATE, 0
    while not stop.is_set():
        pcm = array.array("h", (round(peak * math.sin(step * (sample + i))) for i in range(FRAME)))
        sample += FRAME
        await source.capture_frame(
            rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME)
        )  # paced by the source
    await source.aclose()
    await room.disconnect()


def level_and_pitch(samples: array.array[int], sample_rate: int) -> tuple[float, float]:
    """The RMS level in dBFS and the pitch in Hz (from the rising zero crossings) of mono int16 samples."""
    if not samples:
        return -math.inf, 0.0
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    level = 20 * math.log10(rms / 32768) if rms > 0 else -math.inf
    crossings = [  # rising zero crossings, linearly interpolated between samples
        i - 1 + samples[i - 1] / (samples[i - 1] - samples[i])
        for i in range(1, len(samples))
        if samples[i - 1] < 0 <= samples[i]
    ]
    if len(crossings) < 2:
        return level, 0.0
    return level, (len(crossings) - 1) * sample_rate / (crossings[-1] - crossings[0])


async def ear_bot(url: str, token: str, reports: int) -> None:
    """Join, listen to the first audio track subscribed, print ``reports`` half-second reports, leave.

    Args:
        url: the server URL.
        token: a join token.
        reports: how many reports to print before leaving.
    """
    room = rtc.Room()
    subscribed: asyncio.Queue[tuple[rtc.Track, rtc.RemoteParticipant]] = asyncio.Queue()

    @room.on("track_subscribed")
    def on_track_subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            subscribed.put_nowait((track, participant))

    await room.connect(url, token)
    track, participant = await subscribed.get()
    print(f"ear-bot: listening to {participant.identity}", flush=True)
    stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
    heard: array.array[int] = array.array("h")
    async for event in stream:
        heard.frombytes(bytes(event.frame.data.cast("B")))
        if len(heard) < SAMPLE_RATE // 2:
            continue
        level, pitch = level_and_pitch(heard, SAMPLE_RATE)
        heard = array.array("h")
        if level < -60:
            print("ear-bot: silence", flush=True)
            continue
        print(f"ear-bot: level {level:.1f} dBFS  pitch {pitch:.1f} Hz", flush=True)
        reports -= 1
        if reports <= 0:
            break
    await stream.aclose()
    await room.disconnect()


# -- where to connect (not part of the bots: the official SDK would use livekit.api / livekit-server) -----


@contextlib.asynccontextmanager
async def _server_and_tokens() -> AsyncIterator[tuple[str, str, str]]:
    url, room = os.environ.get("LIVEKIT_URL", ""), os.environ.get("ROOM", "tones")
    key, secret = os.environ.get("LIVEKIT_API_KEY", ""), os.environ.get("LIVEKIT_API_SECRET", "")
    if url and key and secret:
        from greenroom.codecs.tokens import Claims, VideoGrants, mint_token

        def token(identity: str) -> str:
            return mint_token(
                key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room=room))
            )

        yield url, token("tone-bot"), token("ear-bot")
        return
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    async with DevServer(ServerConfig(port=0)) as server:
        print(f"dev server: {server.url}", flush=True)
        yield server.url, server.mint_token("tone-bot", room), server.mint_token("ear-bot", room)


async def main() -> None:
    """Run both bots until the ear bot has printed ``--seconds`` worth of reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hz", type=float, default=440.0, help="the tone's frequency")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to report")
    parser.add_argument("--amplitude", type=float, default=0.25, help="peak, as a fraction of full scale")
    args = parser.parse_args()
    stop = asyncio.Event()
    async with _server_and_tokens() as (url, tone_token, ear_token):
        publisher = asyncio.create_task(tone_bot(url, tone_token, args.hz, args.amplitude, stop))
        try:
            await asyncio.wait_for(
                ear_bot(url, ear_token, max(1, round(args.seconds * 2))), args.seconds + 30
            )
        finally:
            stop.set()
            await publisher


if __name__ == "__main__":
    asyncio.run(main())
