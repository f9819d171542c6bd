"""Official ``livekit`` SDK through greenroom's dev server: connect time and A→B reliable data latency.

Run: ``.venv/bin/python benchmarks/official_sdk.py [--packets 1000] [--rounds 5]``.

Method: everything runs inside a private network namespace (``tests.interop.netns``; the server binds
198.18.0.1, the two SDK clients are separate processes, nothing leaves the namespace). Connect time is
``Room.connect`` as seen by the client, with the SDK's default options (``/rtc/v1`` → 404 → ``/rtc``)
and with ``single_peer_connection=False`` (straight to ``/rtc``), ``--rounds`` times each. Latency: A sends
``--packets`` reliable packets one after another (2 ms apart, so they do not queue), each stamped with
``time.monotonic()``; B stamps its ``data_received`` event with ``time.monotonic()``; CLOCK_MONOTONIC is
system-wide, so the difference is the one-way A → server → B latency including both SDKs' FFI and Python
event delivery.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess, run_in_netns


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _connect_times(
    server: DevServer, a: PeerProcess, b: PeerProcess, rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"default": [], "v0": []}
    for round_ in range(rounds):
        for peer, options, key in ((a, {}, "default"), (b, {"single_peer_connection": False}, "v0")):
            token = server.mint_token(f"{peer.label}-{round_}", "bench")
            result = await peer.call("connect", url=server.url, token=token, options=options)
            times[key].append(result["connect_s"] * 1000)
        for peer in (a, b):
            await peer.call("disconnect")
    return times


async def scenario(packets: int = 1000, rounds: int = 5) -> dict[str, Any]:
    """Runs inside the namespace; returns the raw figures."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        a = await PeerProcess("livekit", "a").start()
        b = await PeerProcess("livekit", "b").start()
        try:
            connects = await _connect_times(server, a, b, rounds)
            await a.call("connect", url=server.url, token=server.mint_token("alice", "bench"), options={})
            await b.call("connect", url=server.url, token=server.mint_token("bob", "bench"), options={})
            await a.wait_event(lambda e: e.get("event") == "participant_connected" and e["identity"] == "bob")
            # The first publish makes A's SDK negotiate its publisher PC (subscriber-primary: it is lazy);
            # time that once, then measure steady-state latency.
            await a.send_data(b"warm-up", topic="warmup")
            await b.wait_event(lambda e: e.get("event") == "data_received" and e["topic"] == "warmup")
            before = len(b.events)
            await a.call("publish_series", count=packets, interval=0.002, timeout=packets * 0.05 + 30)
            await b.wait_event(
                lambda e: (
                    e.get("event") == "data_received"
                    and base64.b64decode(e["data"]).startswith(f"{packets - 1}:".encode())
                ),
                timeout=30,
            )
            latencies = []
            for event in b.events[before:]:
                if event.get("event") == "data_received" and event.get("topic") == "series":
                    sent = float(base64.b64decode(event["data"]).decode().split(":")[1])
                    latencies.append((event["t"] - sent) * 1000)
            return {"connect_ms": connects, "latency_ms": latencies, "packets": packets}
        finally:
            await a.stop()
            await b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = run_in_netns(
        "benchmarks.official_sdk:scenario", timeout=300, args={"packets": args.packets, "rounds": args.rounds}
    )
    print(f"official livekit SDK through greenroom serve — {platform.machine()}, {_cpus()} CPUs")
    for mode, values in result["connect_ms"].items():
        print(
            f"  Room.connect ({mode:7s}): median {statistics.median(values):6.1f} ms"
            f"  min {min(values):6.1f}  max {max(values):6.1f}  (n={len(values)})"
        )
    lat = result["latency_ms"]
    print(
        f"  A→B reliable data: {len(lat)}/{result['packets']} delivered; "
        f"p50 {_percentile(lat, 50):.2f} ms  p99 {_percentile(lat, 99):.2f} ms  "
        f"mean {statistics.fmean(lat):.2f} ms  max {max(lat):.2f} ms"
    )
    print("  (after one warm-up packet, which also negotiates A's publisher peer connection)")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
