"""greenroom's Room client against the official ``livekit`` SDK, same run, same server: connect time and
A→B reliable data latency.

Run: ``.venv/bin/python benchmarks/client_compare.py [--connects 20] [--packets 1000]``.

Method: everything runs inside a private network namespace (``tests.interop.netns.run_in_netns``): one
greenroom dev server binds 198.18.0.1 (libwebrtc never gathers loopback), and every client is a
``tests.interop.peer`` process — the same program for both SDKs, only the ``rtc`` module differs — driven
over JSON lines. Nothing leaves the namespace. For each SDK in turn (greenroom first, then livekit):

* **connect**: ``--connects`` times ``Room()`` + ``await room.connect(url, token)`` then ``disconnect()``,
  timed inside the peer around ``connect`` (the SDK's default options: the official SDK tries ``/rtc/v1``,
  gets 404 and falls back to ``/rtc``; greenroom goes to ``/rtc``). Two peers alternate, so a participant
  never re-joins right after its own leave.
* **A→B latency**: two peers of that SDK join; after one warm-up packet (which also negotiates A's publisher
  peer connection), A sends ``--packets`` reliable packets 2 ms apart, each stamped with
  ``time.monotonic()``; B stamps its ``data_received`` callback with ``time.monotonic()``; CLOCK_MONOTONIC is
  system-wide, so the difference is the one-way A → server → B latency including the SDK's event delivery
  to the user's callback (greenroom: runtime loop → user loop; official: Rust FFI → Python).
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess, run_in_netns

SDKS = ("greenroom", "livekit")


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


async def _connect_times(server: DevServer, sdk: str, connects: int) -> list[float]:
    peers = [await PeerProcess(sdk, f"{sdk}-c{i}").start() for i in range(2)]
    times: list[float] = []
    try:
        for n in range(connects):
            peer = peers[n % 2]
            token = server.mint_token(f"{sdk}-connect-{n}", f"connect-{sdk}")
            result = await peer.call("connect", url=server.url, token=token, options={})
            times.append(result["connect_s"] * 1000)
            await peer.call("disconnect")
    finally:
        for peer in peers:
            await peer.stop()
    return times


async def _latencies(server: DevServer, sdk: str, packets: int) -> list[float]:
    room = f"latency-{sdk}"
    a = await PeerProcess(sdk, f"{sdk}-a").start()
    b = await PeerProcess(sdk, f"{sdk}-b").start()
    try:
        await a.call("connect", url=server.url, token=server.mint_token("alice", room), options={})
        await b.call("connect", url=server.url, token=server.mint_token("bob", room), options={})
        await a.wait_event(lambda e: e.get("event") == "participant_connected" and e["identity"] == "bob")
        await a.send_data(b"warm-up", topic="warmup")
        await b.wait_event(lambda e: e.get("event") == "data_received" and e["topic"] == "warmup")
        before = len(b.events)
        await a.call("publish_series", count=packets, interval=0.002, timeout=packets * 0.05 + 30)
        last = f"{packets - 1}:".encode()
        await b.wait_event(
            lambda e: e.get("event") == "data_received" and base64.b64decode(e["data"]).startswith(last),
            timeout=30,
        )
        latencies = []
        for event in b.events[before:]:
            if event.get("event") == "data_received" and event.get("topic") == "series":
                sent = float(base64.b64decode(event["data"]).decode().split(":")[1])
                latencies.append((event["t"] - sent) * 1000)
        await a.call("disconnect")
        await b.call("disconnect")
        return latencies
    finally:
        await a.stop()
        await b.stop()


async def scenario(connects: int = 20, packets: int = 1000) -> dict[str, Any]:
    """Runs inside the namespace; returns the raw figures per SDK."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results: dict[str, Any] = {"connects": connects, "packets": packets}
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        for sdk in SDKS:
            results[sdk] = {
                "connect_ms": await _connect_times(server, sdk, connects),
                "latency_ms": await _latencies(server, sdk, packets),
            }
    return results


def _row(label: str, ours: float, theirs: float) -> str:
    ratio = ours / theirs if theirs else float("nan")
    return f"  {label:<28}{ours:>12.2f}{theirs:>12.2f}{ratio:>10.2f}x"


def main() -> None:
    """Run the scenario in a private namespace and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument("--packets", type=int, default=1000)
    args = parser.parse_args()
    result = run_in_netns(
        "benchmarks.client_compare:scenario",
        timeout=600,
        args={"connects": args.connects, "packets": args.packets},
    )
    ours, theirs = result["greenroom"], result["livekit"]
    print(
        f"greenroom vs official livekit SDK, one greenroom dev server, private netns "
        f"({platform.machine()}, {os.cpu_count()} CPUs)"
    )
    print(f"  {'':<28}{'greenroom':>12}{'livekit':>12}{'ratio':>11}")
    for q in (50, 95):
        label = f"connect p{q} (ms, n={args.connects})"
        print(_row(label, _percentile(ours["connect_ms"], q), _percentile(theirs["connect_ms"], q)))
    for q in (50, 99):
        label = f"A->B latency p{q} (ms)"
        print(_row(label, _percentile(ours["latency_ms"], q), _percentile(theirs["latency_ms"], q)))
    print(
        f"  delivered: greenroom {len(ours['latency_ms'])}/{args.packets}, "
        f"livekit {len(theirs['latency_ms'])}/{args.packets} (reliable)"
    )
    print("  ratio = greenroom / livekit (below 1: greenroom is faster)")


if __name__ == "__main__":
    main()
