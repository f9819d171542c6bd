"""The benchmark client program: ``python -m benchmarks.suite.agent --sdk greenroom|livekit``.

It is ``tests.interop.peer`` (the same JSON-lines program for both SDKs; only the ``rtc`` module differs)
plus the operations a benchmark needs that must not print one JSON line per received packet:

* ``sink`` / ``sink_report``: count packets of one topic and their bytes, first and last arrival time;
* ``flood``: send ``count`` packets of ``size`` bytes as fast as the SDK's awaited ``publish_data`` allows;
* ``soak``: ``cycles`` of connect + disconnect, sampling RSS;
* ``bots_add`` / ``bots_run``: many rooms in this one process, each sending one stamped packet per second;
* ``echo_wait``: P9, until the agent dispatched to each bot's room has answered it (topic ``echo``).

Times are ``time.monotonic()`` (CLOCK_MONOTONIC is system-wide, so they compare across processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import random
import sys
import threading
import time
from typing import Any

from tests.interop.peer import Peer


def rss_mb() -> float:
    """This process's resident set size in MB (``/proc/self/status`` VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def os_threads() -> int:
    """OS threads of this process (Rust/tokio threads included, unlike ``threading.active_count``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return threading.active_count()


class GcPauses:
    """Records the duration of every cyclic-GC run of generation 2 (the ones that walk the whole heap)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)


class _Sink:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.count = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0

    def __call__(self, packet: Any) -> None:
        if packet.topic != self.topic:
            return
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.count += 1
        self.bytes += len(packet.data)
        self.last = now


class BenchAgent(Peer):
    """``tests.interop.peer.Peer`` with the benchmark operations."""

    def __init__(self, rtc: Any) -> None:
        super().__init__(rtc)
        self.sink: _Sink | None = None
        self.bots: list[Any] = []
        self.latencies: list[float] = []
        self.received = 0
        self.gc = GcPauses()
        self.slow: list[tuple[float, float]] = []
        self.warmed: set[int] = set()

    def emit(self, obj: dict[str, Any]) -> None:
        if obj.get("event") == "data_received":
            return  # counted by the sinks; one JSON line per packet would cost more than the packet
        super().emit(obj)

    async def op_sink(self, cmd: dict[str, Any]) -> Any:
        self.sink = _Sink(cmd.get("topic", "flood"))
        self.room.on("data_received", self.sink)

    async def op_sink_report(self, cmd: dict[str, Any]) -> Any:
        assert self.sink is not None
        s = self.sink
        return {"count": s.count, "bytes": s.bytes, "first": s.first, "last": s.last}

    async def op_flood(self, cmd: dict[str, Any]) -> Any:
        """Send ``count`` packets of ``size`` bytes, each ``publish_data`` awaited before the next."""
        payload = bytes(cmd.get("size", 16))
        topic = cmd.get("topic", "flood")
        reliable = cmd.get("reliable", True)
        publish = self.room.local_participant.publish_data
        started = time.monotonic()
        for _ in range(cmd["count"]):
            await publish(payload, reliable=reliable, topic=topic)
        return {"started": started, "ended": time.monotonic()}

    async def op_soak(self, cmd: dict[str, Any]) -> Any:
        """``cycles`` × (``Room()``, ``connect``, ``disconnect``); RSS sampled every ``every`` cycles."""
        samples: list[tuple[int, float]] = [(0, rss_mb())]
        deadline = time.monotonic() + cmd.get("max_seconds", 300)
        done = 0
        for n in range(1, cmd["cycles"] + 1):
            room = self.rtc.Room()
            await room.connect(cmd["url"], cmd["token"], self.rtc.RoomOptions())
            await room.disconnect()
            del room
            done = n
            if n % cmd.get("every", 50) == 0:
                samples.append((n, rss_mb()))
            if time.monotonic() > deadline:
                break
        await asyncio.sleep(1)  # let closed transports finish their teardown tasks
        samples.append((done, rss_mb()))
        return {"cycles": done, "samples": samples, "threads": os_threads()}

    async def op_usage(self, cmd: dict[str, Any]) -> Any:
        return {"rss_mb": rss_mb(), "threads": os_threads()}

    async def op_bots_add(self, cmd: dict[str, Any]) -> Any:
        """Connect one room per token (``parallel`` at a time); each counts stamped packets it receives."""
        tokens: list[str] = cmd["tokens"]
        gate = asyncio.Semaphore(cmd.get("parallel", 8))
        failures: list[str] = []

        async def join(token: str) -> None:
            async with gate:
                room = self.rtc.Room()
                room.on("data_received", self._on_bot_packet)
                try:
                    await asyncio.wait_for(room.connect(cmd["url"], token, self.rtc.RoomOptions()), 30)
                    # negotiates the publisher PC now, not inside the measured traffic
                    await room.local_participant.publish_data(b"warm-up", reliable=True, topic="warm")
                except Exception as exc:  # reported, not raised: the search stops at a failure
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                self.bots.append(room)

        started = time.monotonic()
        await asyncio.gather(*(join(t) for t in tokens))
        joined = time.monotonic() - started
        await asyncio.sleep(2)  # the last joins' negotiations settle
        return {
            "bots": len(self.bots),
            "seconds": joined,
            "failures": failures[:5],
            "failed": len(failures),
            "rss_mb": rss_mb(),
            "threads": os_threads(),
        }

    def _on_bot_packet(self, packet: Any) -> None:
        if packet.topic == "echo":  # P9: an agent's answer, b"echo:" + what the bot sent
            text = bytes(packet.data).decode().removeprefix("echo:")
            if text.startswith("ready"):
                self.warmed.add(int(text[5:]))
            if not text[:1].isdigit():
                return  # an answer to a warm-up packet
        if packet.topic in ("bot", "echo"):
            stamp = float(bytes(packet.data).decode().removeprefix("echo:"))
            latency = (time.monotonic() - stamp) * 1000
            self.latencies.append(latency)
            if latency > 40 and len(self.slow) < 2000:
                self.slow.append((stamp, latency))

    async def op_bots_run(self, cmd: dict[str, Any]) -> Any:
        """Every bot publishes one stamped packet per second for ``seconds`` (phases spread over 1 s)."""
        seconds: float = cmd.get("seconds", 10)
        topic: str = cmd.get("topic", "bot")
        self.latencies = []
        sent = 0
        lag: list[float] = []

        async def bot(room: Any) -> None:
            nonlocal sent
            await asyncio.sleep(random.random())
            end = time.monotonic() + seconds - 1
            while time.monotonic() < end:
                due = time.monotonic() + 1
                await room.local_participant.publish_data(
                    repr(time.monotonic()).encode(), reliable=True, topic=topic
                )
                sent += 1
                await asyncio.sleep(max(0.0, due - time.monotonic()))

        async def watch() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.05)
                lag.append((time.monotonic() - before - 0.05) * 1000)

        self.gc.pauses = []
        self.slow = []
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(bot(room) for room in self.bots))
        await asyncio.sleep(1)  # the last packets' way through
        watcher.cancel()
        return {
            "sent": sent,
            "latency_ms": self.latencies,
            "max_loop_lag_ms": max(lag, default=0.0),
            "gc2_pauses_ms": self.gc.pauses,
            "slow": self.slow,
            "rss_mb": rss_mb(),
            "threads": os_threads(),
        }

    async def op_echo_wait(self, cmd: dict[str, Any]) -> Any:
        """Every bot sends ``ready<index>`` once a second until the room's agent echoes it back (an agent
        still joining, or not yet listening, does not answer), at most ``bound`` seconds; the count of
        bots answered and the seconds it took."""
        deadline = time.monotonic() + cmd.get("bound", 120)
        started = time.monotonic()

        async def warm(index: int, room: Any) -> None:
            while index not in self.warmed and time.monotonic() < deadline:
                with contextlib.suppress(Exception):  # the agent may not be in the room yet
                    await room.local_participant.publish_data(f"ready{index}", reliable=True, topic="ask")
                for _ in range(20):
                    if index in self.warmed:
                        return
                    await asyncio.sleep(0.05)  # polling the set the packet callback fills

        await asyncio.gather(*(warm(i, room) for i, room in enumerate(self.bots)))
        return {
            "answered": len(self.warmed & set(range(len(self.bots)))),
            "bots": len(self.bots),
            "seconds": time.monotonic() - started,
        }

    async def op_audio_bots(self, cmd: dict[str, Any]) -> Any:
        """P5: one room per token pair; every bot publishes a 48 kHz mono tone (10 ms frames, paced in real
        time) for ``seconds`` and listens to its partner's track with an ``AudioStream``. Returns the tone
        samples sent and the non-silent samples each bot heard."""
        import numpy as np

        rtc, rate, chunk, seconds = self.rtc, 48_000, 480, cmd.get("seconds", 6.0)
        rooms: list[Any] = []
        for token in cmd["tokens"]:
            room = rtc.Room()
            await asyncio.wait_for(room.connect(cmd["url"], token, rtc.RoomOptions()), 30)
            rooms.append(room)
        sources = []
        for n, room in enumerate(rooms):
            source = rtc.AudioSource(rate, 1)
            track = rtc.LocalAudioTrack.create_audio_track(f"tone{n}", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await room.local_participant.publish_track(track, options)
            sources.append(source)
        streams: list[Any] = []
        deadline = time.monotonic() + 20
        for room in rooms:
            track = None
            while track is None and time.monotonic() < deadline:
                for participant in room.remote_participants.values():
                    for publication in participant.track_publications.values():
                        track = track or publication.track
                await asyncio.sleep(0.02)
            if track is None:
                raise TimeoutError("a bot never got its partner's audio track")
            streams.append(rtc.AudioStream(track, sample_rate=rate, num_channels=1))
        heard = [0] * len(rooms)

        async def listen(index: int, stream: Any) -> None:
            async for event in stream:
                samples = np.frombuffer(bytes(event.frame.data), dtype=np.int16)
                if samples.size and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 1000:
                    heard[index] += int(samples.size)  # a frame of the tone (RMS ≈ 5,700), not silence

        tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)
        frames = int(seconds * 100)

        async def speak(source: Any) -> None:
            start = time.monotonic()
            for index in range(frames):
                offset = (index * chunk) % (rate - chunk)
                await source.capture_frame(
                    rtc.AudioFrame(tone[offset : offset + chunk].tobytes(), rate, 1, chunk)
                )
                await asyncio.sleep(max(0.0, start + (index + 1) * 0.01 - time.monotonic()))

        listeners = [asyncio.ensure_future(listen(i, s)) for i, s in enumerate(streams)]
        await asyncio.sleep(0.5)
        await asyncio.gather(*(speak(s) for s in sources))
        await asyncio.sleep(1.5)  # the jitter buffers drain
        for listener in listeners:
            listener.cancel()
        usage = {"rss_mb": rss_mb(), "threads": os_threads()}
        for room in rooms:
            await asyncio.wait_for(room.disconnect(), 10)
        return {"sent_samples": frames * chunk, "heard_samples": heard, **usage}

    async def op_bots_close(self, cmd: dict[str, Any]) -> Any:
        gate = asyncio.Semaphore(16)

        async def leave(room: Any) -> None:
            async with gate:
                await asyncio.wait_for(room.disconnect(), 10)

        await asyncio.gather(*(leave(r) for r in self.bots), return_exceptions=True)
        self.bots = []


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdk", choices=["livekit", "greenroom"], required=True)
    args = parser.parse_args()
    module = "livekit.rtc" if args.sdk == "livekit" else "greenroom.rtc"
    agent = BenchAgent(importlib.import_module(module))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    agent.emit({"event": "ready", "sdk": args.sdk, "rss_mb": rss_mb(), "threads": os_threads()})
    while line := (await reader.readline()).decode():
        if not await agent.handle(line):
            break
    if agent.room is not None and agent.room.isconnected():
        await agent.room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
