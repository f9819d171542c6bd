"""greenroom's media client against the official ``livekit`` SDK, same run, same server: capture→playout
latency and client CPU per published and per subscribed audio track.

Run: ``.venv/bin/python benchmarks/media_compare.py [--tracks 4] [--seconds 8] [--onsets 8]``
(about 1.5 minutes with the defaults).

Method: everything runs inside a private network namespace (``tests.interop.netns.run_in_netns``): one
greenroom dev server (forwarding RTP, no decoding) binds 198.18.0.1, and every client is a
``tests.interop.peer`` process — the same program for both SDKs, only the ``rtc`` module differs. For each
SDK in turn (greenroom first, then livekit), with two peers of that SDK in a room of their own:

* **CPU per track**: the peers' process CPU (``utime + stime`` from ``/proc/<pid>/stat``; the official SDK's
  Rust core runs inside its Python process, so it is included) is sampled over ``--seconds`` while both are
  connected and idle (the baseline), then again while the publisher plays ``--tracks`` 48 kHz mono tones
  (``AudioSource.capture_frame`` in 10 ms frames) and the subscriber reads every one of them through an
  ``AudioStream`` (48 kHz mono, FFT of each 1 s window — negligible). Per-track cost =
  (loaded − baseline) / tracks, in % of one core. The server's CPU (this process) over the same window is
  printed too.
* **capture→playout latency**: the publisher plays ``--onsets`` 440 Hz tone bursts (0.4 s tone, 0.4 s
  silence) through an ``AudioSource`` with ``queue_size_ms=50`` (so capture cannot run ahead of sending by
  more than 50 ms; both SDKs default to 1 s); the tone's onset is the ``time.monotonic()`` just before its
  first ``capture_frame``; playout is the subscriber's ``time.monotonic()`` when the first 10 ms window whose
  RMS exceeds 1000 (of 5657 for the tone) has come out of its ``AudioStream``. CLOCK_MONOTONIC is
  system-wide, so the difference is capture → encode → server → decode/jitter buffer → user code, plus up to
  50 ms of source queue and 10 ms of window.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess, run_in_netns

SDKS = ("greenroom", "livekit")
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _pid(peer: PeerProcess) -> int:
    assert peer._proc is not None
    return peer._proc.pid


async def _cpu_share(peers: list[PeerProcess], seconds: float) -> dict[str, float]:
    """Each peer's CPU (fraction of one core) over ``seconds``, and the server's (this process)."""
    before = {p.label: _cpu_seconds(_pid(p)) for p in peers}
    server_before, started = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    shares = {p.label: (_cpu_seconds(_pid(p)) - before[p.label]) / elapsed for p in peers}
    shares["server"] = (time.process_time() - server_before) / elapsed
    return shares


async def _pair(server: DevServer, sdk: str, room: str) -> tuple[PeerProcess, PeerProcess]:
    pub, sub = await PeerProcess(sdk, "pub").start(), await PeerProcess(sdk, "sub").start()
    options: dict[str, Any] = {"single_peer_connection": False} if sdk == "livekit" else {}
    for peer in (pub, sub):
        token = server.mint_token(peer.label, room)
        await peer.call("connect", url=server.url, token=token, options=options)
    return pub, sub


async def _cpu(server: DevServer, sdk: str, tracks: int, seconds: float) -> dict[str, Any]:
    pub, sub = await _pair(server, sdk, f"cpu-{sdk}")
    try:
        await asyncio.sleep(1.0)
        idle = await _cpu_share([pub, sub], seconds)
        sids = []
        for index in range(tracks):
            hz = 300.0 + 100.0 * index
            published = await pub.call("publish_tone", frequencies=[hz], seconds=seconds + 30, lead=0.0)
            sids.append(published["sid"])
        for sid in sids:
            await sub.call("listen_audio", identity="pub", sid=sid, window_ms=1000, timeout=20)
        await asyncio.sleep(2.0)  # every stream flowing
        loaded = await _cpu_share([pub, sub], seconds)
        heard = {e["sid"] for e in sub.received("audio_window") if e["rms"] > 1000}
        return {"idle": idle, "loaded": loaded, "tracks": tracks, "heard": len(heard & set(sids))}
    finally:
        await asyncio.gather(pub.stop(), sub.stop(), return_exceptions=True)


async def _latency(server: DevServer, sdk: str, onsets: int) -> list[float]:
    pub, sub = await _pair(server, sdk, f"latency-{sdk}")
    try:
        plan = [440.0, 0.0] * onsets
        published = await pub.call("publish_tone", frequencies=plan, seconds=0.4, lead=1.5, queue_ms=50)
        await sub.call("listen_audio", identity="pub", sid=published["sid"], window_ms=10, timeout=20)
        await pub.wait_event(lambda e: e.get("event") == "tone_done", timeout=30 + onsets)
        await asyncio.sleep(0.5)
        starts = [e["t"] for e in pub.received("tone") if e["frequency"] > 0]
        loud = [e["t"] for e in sub.received("audio_window") if e["rms"] > 1000]
        latencies = []
        for start in starts:
            after = [t for t in loud if t > start]
            if after and after[0] - start < 0.4:  # else this burst was never heard (or heard late: dropped)
                latencies.append((after[0] - start) * 1000)
        return latencies
    finally:
        await asyncio.gather(pub.stop(), sub.stop(), return_exceptions=True)


async def scenario(tracks: int = 4, seconds: float = 8.0, onsets: int = 8) -> dict[str, Any]:
    """Runs inside the namespace; returns the raw figures per SDK."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results: dict[str, Any] = {"tracks": tracks, "seconds": seconds, "onsets": onsets}
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        for sdk in SDKS:
            results[sdk] = {
                "latency_ms": await _latency(server, sdk, onsets),
                "cpu": await _cpu(server, sdk, tracks, seconds),
            }
    return results


def _per_track(cpu: dict[str, Any], who: str) -> float:
    """% of one core per track."""
    return float(100 * (cpu["loaded"][who] - cpu["idle"][who]) / cpu["tracks"])


def _row(label: str, ours: float, theirs: float) -> str:
    ratio = ours / theirs if theirs else float("nan")
    return f"  {label:<40}{ours:>12.1f}{theirs:>12.1f}{ratio:>10.2f}x"


def main() -> None:
    """Run the scenario in a private namespace and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--onsets", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    result = run_in_netns(
        "benchmarks.media_compare:scenario",
        timeout=170,
        args={"tracks": args.tracks, "seconds": args.seconds, "onsets": args.onsets},
    )
    ours, theirs = result["greenroom"], result["livekit"]
    print(
        f"greenroom vs official livekit SDK, media, one greenroom dev server, private netns "
        f"({platform.machine()}, {os.cpu_count()} CPUs)"
    )
    print(f"  {'':<40}{'greenroom':>12}{'livekit':>12}{'ratio':>11}")
    for name, fn in (("median", statistics.median), ("max", max)):
        label = f"capture->playout {name} (ms, n={len(ours['latency_ms'])}/{len(theirs['latency_ms'])})"
        if ours["latency_ms"] and theirs["latency_ms"]:
            print(_row(label, fn(ours["latency_ms"]), fn(theirs["latency_ms"])))
    for who, what in (("pub", "published"), ("sub", "subscribed")):
        label = f"CPU per {what} audio track (% core)"
        print(_row(label, _per_track(ours["cpu"], who), _per_track(theirs["cpu"], who)))
    for who in ("pub", "sub"):
        label = f"CPU {who} process idle, connected (% core)"
        print(_row(label, 100 * ours["cpu"]["idle"][who], 100 * theirs["cpu"]["idle"][who]))
    label = f"server CPU, {args.tracks} forwarded (% core)"
    print(_row(label, 100 * ours["cpu"]["loaded"]["server"], 100 * theirs["cpu"]["loaded"]["server"]))
    print(
        f"  tracks heard: greenroom {ours['cpu']['heard']}/{args.tracks}, livekit {theirs['cpu']['heard']}/"
        f"{args.tracks}; CPU windows {args.seconds:.0f} s; ran {time.monotonic() - started:.0f} s"
    )
    print("  ratio = greenroom / livekit (below 1: greenroom is cheaper / faster)")


if __name__ == "__main__":
    main()
