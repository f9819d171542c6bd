"""P12 (partial): a fleet of N data bots over K worker processes on this machine.

Runs the fleet's own host (``greenroom.fleet.pool.Host``) with ``greenroom.fleet.bots:Chatter`` bots (one
message per ``--interval`` seconds each, to their room of ``--per-room``) against an embedded dev server in
this process, and prints: the time until every bot is in its room, the one-way message latency p50/p99
over a window (``--window`` seconds; measured by the bots, one monotonic clock per host), the RSS of each
worker process and per bot, and the restarts. Then it drains (SIGTERM's path) and prints the drain time.

    python benchmarks/fleet_scale.py --bots 200 --processes 2

In ``make bench`` as P12 (group ``fleet``: :func:`scenario`, 500 → 1,000 → 2,000 bots at one message per 10 s
each, up to the first count that does not all get in); figures in docs/architecture.md ("Fleets").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.limits import Limits
from greenroom.devserver.server import DevServer
from greenroom.fleet.pool import Host, HostOptions
from greenroom.fleet.spec import BotSpec, ServerSpec
from greenroom.fleet.view import merged_percentiles


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bots(n: int, per_room: int, interval: float) -> tuple[BotSpec, ...]:
    return tuple(
        BotSpec(
            identity=f"bot-{i}",
            group="p12",
            room=f"p12-{i // per_room}",
            index=i % per_room,
            kind="agent",
            target="greenroom.fleet.bots:Chatter",
            params={"interval": interval, "topic": "p12"},
        )
        for i in range(n)
    )


async def _until(predicate: object, timeout: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)  # polling the host's view
    return True


async def step(
    bots: int, processes: int, *, per_room: int, interval: float, window: float, join_timeout: float
) -> dict[str, Any]:
    """One fleet of ``bots`` bots on a fresh dev server: what P12 reports (JSON-able)."""
    limits = Limits(connect_rate=10_000, connect_burst=100_000)  # every bot connects from this machine
    async with DevServer(ServerConfig(port=0, limits=limits)) as server:
        key = server.config.api_key
        options = HostOptions(processes=processes, report_interval=0.5, drain_timeout=60)
        host = Host(
            _bots(bots, per_room, interval), ServerSpec(server.url, key, server.config.keys[key]), options
        )
        started = time.monotonic()
        running = asyncio.create_task(host.run(install_signals=False))
        out: dict[str, Any] = {"bots": bots, "processes": processes, "interval_s": interval}
        try:
            joined = await _until(lambda: host.view.running() >= bots, join_timeout)
            out["joined_s"] = time.monotonic() - started
            out["running"] = host.view.running()
            if not joined:
                out["failed"] = f"only {host.view.running()} of {bots} running after {join_timeout:.0f} s"
                return out
            await asyncio.sleep(window)  # the measurement window itself
            view = host.view
            p50, p99 = merged_percentiles(sv.window("latency") for sv in view.slots.values())
            out["p50_ms"], out["p99_ms"] = p50 * 1e3, p99 * 1e3
            rss = [_rss_mib(pid) for pid in host.pids().values()]
            out["rss_mib"] = rss
            out["rss_kib_per_bot"] = sum(rss) / bots * 1024
            out["messages_per_s"] = sum(sv.rate() for sv in view.slots.values())
            out["restarts"] = view.restarts()
        finally:
            drain_started = time.monotonic()
            host.request_stop()
            await asyncio.wait_for(running, 180)
            out["drain_s"] = time.monotonic() - drain_started
        return out


async def scenario(
    steps: list[int] | None = None,
    processes: int = 2,
    *,
    per_room: int = 10,
    interval: float = 10.0,
    window: float = 10.0,
    join_timeout: float = 300.0,
) -> dict[str, Any]:
    """``make bench``'s P12: growing fleets (default 500, 1,000, 2,000 bots), each on a fresh server, up to
    the first that does not get every bot running within ``join_timeout``."""
    out: dict[str, Any] = {"steps": []}
    for bots in steps or [500, 1000, 2000]:
        result = await step(
            bots, processes, per_room=per_room, interval=interval, window=window, join_timeout=join_timeout
        )
        out["steps"].append(result)
        if result.get("failed"):
            break
    return out


async def main(args: argparse.Namespace) -> None:
    result = await step(
        args.bots,
        args.processes,
        per_room=args.per_room,
        interval=args.interval,
        window=args.window,
        join_timeout=args.join_timeout,
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--join-timeout", type=float, default=300.0)
    asyncio.run(main(parser.parse_args()))
