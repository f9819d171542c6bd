"""Media forwarding cost and latency: greenroom's RTP forwarder against aiortc's decode/re-encode relay.

Topology (all on 127.0.0.1): a publisher peer with N Opus tracks fed by ``PcmSourceTrack`` → a **middle
peer in its own process** → a subscriber peer decoding each track with ``PcmSink``. The middle either taps
its receivers and forwards encoded frames (``--mode forward``: ``RtpTap`` + ``ForwardedTrack``, nothing
decoded) or hands the decoded remote tracks to its senders (``--mode relay``: what aiortc does by default,
decode + re-encode, the baseline the feasibility spike measured).

Figures printed:

* **CPU per forwarded stream**: the middle process's ``time.process_time()`` (all its threads, decoder
  threads included) over a window of ``--seconds`` of steady audio, divided by N and by the window, i.e. CPU
  seconds per stream per second of audio (= fraction of one core per stream). The middle does nothing else.
* **Capture→playout latency** (N=1 only): the time from ``PcmSourceTrack.put`` of a tone (onto an empty
  queue, after silence) to the first ``PcmSink`` chunk whose RMS crosses a threshold, repeated per onset.
  Granularity: one 20 ms chunk.

Run: ``.venv/bin/python benchmarks/forwarding.py`` (or ``--mode forward --streams 1 5 10 --seconds 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from greenroom.runtime.ice import IcePolicy, gathering_scope
from greenroom.runtime.media import PcmSink, PcmSourceTrack
from greenroom.runtime.rtp_forward import RtpTap, add_forwarded_track, receiver_for_track

RATE = 48_000
POLICY = IcePolicy.loopback()


def _tone(freq: float, seconds: float, amplitude: int = 8000) -> bytes:
    n = round(RATE * seconds)
    return (amplitude * np.sin(2 * math.pi * freq * np.arange(n) / RATE)).astype("<i2").tobytes()


async def _local_description(pc: RTCPeerConnection, *, offer: bool) -> RTCSessionDescription:
    with gathering_scope(POLICY):
        await pc.setLocalDescription(await (pc.createOffer() if offer else pc.createAnswer()))
    return pc.localDescription


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


# -- the middle peer (child process) -------------------------------------------------------------------


async def _middle(conn: Connection, mode: str, streams: int) -> None:
    mid_in = RTCPeerConnection(POLICY.rtc_configuration())
    mid_out = RTCPeerConnection(POLICY.rtc_configuration())
    remote: list[MediaStreamTrack] = []
    taps: list[RtpTap] = []

    @mid_in.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        remote.append(track)
        if mode == "forward":
            taps.append(RtpTap(receiver_for_track(mid_in, track)))

    kind, sdp = await _recv(conn)
    await mid_in.setRemoteDescription(RTCSessionDescription(sdp, kind))
    answer = await _local_description(mid_in, offer=False)
    conn.send((answer.type, answer.sdp))
    assert len(remote) == streams
    for i in range(streams):
        if mode == "forward":
            add_forwarded_track(mid_out, taps[i].forward(), stream_id=f"PA_pub|TR_{i}", track_id=f"TR_{i}")
        else:
            mid_out.addTrack(remote[i])
    offer = await _local_description(mid_out, offer=True)
    conn.send((offer.type, offer.sdp))
    kind, sdp = await _recv(conn)
    await mid_out.setRemoteDescription(RTCSessionDescription(sdp, kind))
    while (command := await _recv(conn)) != "quit":
        if command == "start":
            cpu0, wall0 = time.process_time(), time.monotonic()
        elif command == "stop":
            conn.send((time.process_time() - cpu0, time.monotonic() - wall0))
    await mid_in.close()
    await mid_out.close()


def _middle_main(conn: Connection, mode: str, streams: int) -> None:
    asyncio.run(_middle(conn, mode, streams))


# -- publisher and subscriber (this process) -----------------------------------------------------------


class Run:
    """One publisher → middle → subscriber chain with N streams."""

    def __init__(self, mode: str, streams: int) -> None:
        self.mode = mode
        self.streams = streams
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_middle_main, args=(child, mode, streams), daemon=True)
        self.pub = RTCPeerConnection(POLICY.rtc_configuration())
        self.sub = RTCPeerConnection(POLICY.rtc_configuration())
        self.sources = [PcmSourceTrack(RATE, 1, queue_size_ms=500) for _ in range(streams)]
        self.sinks: list[PcmSink] = []

    async def connect(self) -> None:
        self.process.start()

        all_heard = asyncio.Event()

        @self.sub.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.sinks.append(PcmSink(track, capacity=500))
            if len(self.sinks) == self.streams:
                all_heard.set()

        for source in self.sources:
            self.pub.addTrack(source)
        offer = await _local_description(self.pub, offer=True)
        self.conn.send((offer.type, offer.sdp))
        kind, sdp = await _recv(self.conn)
        await self.pub.setRemoteDescription(RTCSessionDescription(sdp, kind))
        kind, sdp = await _recv(self.conn)
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp, kind))
        answer = await _local_description(self.sub, offer=False)
        self.conn.send((answer.type, answer.sdp))
        await asyncio.wait_for(all_heard.wait(), 10)

    async def feed(self, seconds: float) -> None:
        """Keep every source supplied with a 440 Hz tone for ``seconds``."""
        chunk = _tone(440, 0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(s.put(chunk) for s in self.sources))

    async def cpu(self, seconds: float) -> float:
        """Middle-process CPU seconds per stream per second of audio."""
        await self.feed(1.0)  # warm-up: every path connected and flowing
        self.conn.send("start")
        await self.feed(seconds)
        self.conn.send("stop")
        cpu, wall = await _recv(self.conn)
        heard = sum(sink.frames_in for sink in self.sinks)
        if not heard:
            raise RuntimeError("the subscriber heard nothing")
        return float(cpu) / self.streams / float(wall)

    async def latency(self, onsets: int) -> list[float]:
        """Capture→playout latency of tone onsets, in seconds."""
        source, sink = self.sources[0], self.sinks[0]
        results: list[float] = []
        for _ in range(onsets):
            await source.put(bytes(2 * RATE // 2))  # 0.5 s of silence
            await source.wait_for_playout()
            await asyncio.sleep(0.3)  # let the silence reach the subscriber
            while len(sink._queue):
                await sink.__anext__()
            start = time.monotonic()
            await source.put(_tone(660, 0.3))
            while True:
                chunk = await asyncio.wait_for(sink.__anext__(), 5)
                samples = np.frombuffer(chunk.data, dtype="<i2").astype(np.float64)
                if float(np.sqrt(np.mean(samples**2))) > 1000:
                    results.append(time.monotonic() - start)
                    break
            await source.wait_for_playout()
        return results

    async def close(self) -> None:
        self.conn.send("quit")
        for source in self.sources:
            source.stop()
        await self.pub.close()
        await self.sub.close()
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, 10)


async def _bench(mode: str, streams: int, seconds: float, onsets: int) -> tuple[float, list[float]]:
    run = Run(mode, streams)
    try:
        await run.connect()
        per_stream = await run.cpu(seconds)
        latencies = await run.latency(onsets) if streams == 1 and onsets else []
    finally:
        await run.close()
    return per_stream, latencies


def main() -> None:
    """Print the figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=["forward", "relay", "both"], default="both")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--onsets", type=int, default=5)
    args = parser.parse_args()
    modes = ["forward", "relay"] if args.mode == "both" else [args.mode]
    header = f"{'mode':8} {'streams':>7} {'CPU s/stream/s':>15} {'% core/stream':>14}"
    print(f"{header}  latency ms (median, min-max)")
    for mode in modes:
        for streams in args.streams:
            per_stream, latencies = asyncio.run(_bench(mode, streams, args.seconds, args.onsets))
            lat = ""
            if latencies:
                ms = [x * 1000 for x in latencies]
                lat = f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f}, n={len(ms)})"
            print(f"{mode:8} {streams:7d} {per_stream:15.4f} {per_stream * 100:13.2f}%  {lat}", flush=True)


if __name__ == "__main__":
    main()
