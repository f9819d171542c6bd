"""P12 (partial): a fleet of N data bots over K worker processes on this machine.

Runs the fleet's own host (``greenroom.fleet.pool.Host``) with ``greenroom.fleet.bots:Chatter`` bots (one
message per ``--interval`` seconds each, to their room of ``--per-room``) against an embedded dev server in
this process, and prints: the time until every bot is in its room, the one-way message latency p50/p99
over a window (``--window`` seconds; measured by the bots, one monotonic clock per host), the RSS of each
worker process and per bot, and the restarts. Then it drains (SIGTERM's path) and prints the drain time.

    python benchmarks/fleet_scale.py --bots 200 --processes 2

Not in ``make bench`` yet; the figures it printed are in docs/architecture.md ("Fleets").
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from greenroom.devserver.config import ServerConfig
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


async def main(args: argparse.Namespace) -> None:
    async with DevServer(ServerConfig(port=0)) as server:
        key = server.config.api_key
        options = HostOptions(processes=args.processes, report_interval=0.5, drain_timeout=30)
        host = Host(
            _bots(args.bots, args.per_room, args.interval),
            ServerSpec(server.url, key, server.config.keys[key]),
            options,
        )
        started = time.monotonic()
        running = asyncio.create_task(host.run(install_signals=False))
        joined = await _until(lambda: host.view.running() >= args.bots, args.join_timeout)
        join_time = time.monotonic() - started
        where = "all" if joined else f"only {host.view.running()}"
        print(f"{args.bots} bots over {args.processes} procs: {where} in their rooms after {join_time:.1f} s")
        await asyncio.sleep(args.window)  # the measurement window itself
        view = host.view
        p50, p99 = merged_percentiles(sv.window("latency") for sv in view.slots.values())
        rss = {slot: _rss_mib(pid) for slot, pid in host.pids().items()}
        total_rss = sum(rss.values())
        print(
            f"one-way latency over the last report window: p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms "
            f"(worst process); messages/s {sum(sv.rate() for sv in view.slots.values()):.0f}"
        )
        print(
            f"worker RSS: {', '.join(f'{s}: {m:.0f} MiB' for s, m in sorted(rss.items()))}; "
            f"{total_rss / args.bots * 1024:.0f} KiB per bot (processes' RSS / bots)"
        )
        print(f"restarts: {view.restarts() or 'none'}; bots by state: {view.by_state()}")
        drain_started = time.monotonic()
        host.request_stop()
        await running
        print(f"drain: every process exited after {time.monotonic() - drain_started:.1f} s")


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
