"""P13: the fleet on a Ray cluster — bots per node, and the time to reschedule after a node loss.

A local multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head with no CPUs and
``--nodes`` worker nodes of one logical CPU each, all on 127.0.0.1, no dashboard), one host actor per node
(``greenroom fleet run --ray``'s placement), ``--bots`` ``Chatter`` bots (1 msg/s each, rooms of 10)
against a dev server in this process. Measured: the time until every bot is in its room; the one-way p50/
p99 over a window (bots per node = bots / nodes, at that latency); each host actor's RSS per bot; then a
node is removed (``Cluster.remove_node``: its raylet and worker processes end) and the time until every bot
runs again is taken from the removal — the actor's death seen by the host, its bots placed on the actors
left (each actor's admission limit leaves room for them), their joins.

    python benchmarks/fleet_cluster.py --bots 100 --nodes 2

In ``make bench`` (group ``cluster``, figure P13) it runs in the benchmark's private network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every Ray address on 127.0.0.1

import ray
from ray.cluster_utils import Cluster

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.limits import Limits
from greenroom.devserver.server import DevServer
from greenroom.fleet.cluster import RayOptions, RayWorker, ray_launcher
from greenroom.fleet.pool import Host, HostOptions
from greenroom.fleet.spec import BotSpec, ServerSpec
from greenroom.fleet.view import merged_percentiles

NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _bots(n: int) -> tuple[BotSpec, ...]:
    return tuple(
        BotSpec(
            identity=f"bot-{i}",
            group="p13",
            room=f"p13-{i // 10}",
            index=i % 10,
            kind="agent",
            target="greenroom.fleet.bots:Chatter",
            params={"interval": 1.0, "topic": "p13"},
        )
        for i in range(n)
    )


async def _until(host: Host, count: int, timeout: float, *, below: bool = False) -> float | None:
    """Seconds until ``count`` bots run (``below``: until fewer do); ``None``: not within ``timeout``."""
    started = time.monotonic()
    while (host.view.running() >= count) if below else (host.view.running() < count):
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.05)  # polling the host's view
    return time.monotonic() - started


def _latency(host: Host) -> tuple[float, float]:
    """One-way p50/p99 over the last report window (the worst host actor's)."""
    p50, p99 = merged_percentiles(sv.window("latency") for sv in host.view.slots.values())
    return p50 * 1000, p99 * 1000


async def _measure(
    server: DevServer, cluster: Cluster, bots: int, nodes: int, window: float
) -> dict[str, Any]:
    key = server.config.api_key
    spec = ServerSpec(server.url, key, server.config.keys[key])
    # each actor may take every bot: a lost node's bots fit on the nodes left
    options = HostOptions(processes=nodes, bots_per_process=bots, report_interval=0.5, drain_timeout=20)
    host = Host(_bots(bots), spec, options, launcher=ray_launcher(RayOptions()))
    running = asyncio.create_task(host.run(install_signals=False))
    out: dict[str, Any] = {"bots": bots, "nodes": nodes}
    try:
        out["joined_s"] = await _until(host, bots, 300)
        if out["joined_s"] is None:
            out["failed"] = f"only {host.view.running()} of {bots} bots running after 300 s"
            return out
        per_actor = {i: len(s.assigned) for i, s in host.slots.items()}
        await asyncio.sleep(window)  # the measurement window: bots exchange messages meanwhile
        out["p50_ms"], out["p99_ms"] = _latency(host)
        workers = [s.worker for s in host.slots.values() if isinstance(s.worker, RayWorker)]
        out["rss_mib_per_bot"] = [
            round(_rss_mib(w.pid) / max(1, per_actor[i]), 2) for i, w in enumerate(workers) if w.pid
        ]
        out["bots_per_node"] = sorted(per_actor.values())
        victim = workers[0]
        nodes_now = cluster.list_all_nodes()  # type: ignore[no-untyped-call]
        node = next(n for n in nodes_now if n.node_id == victim.node)
        lost = len(host.slots[0].assigned)
        removed = time.monotonic()
        removal = asyncio.create_task(asyncio.to_thread(cluster.remove_node, node))  # the host's loop runs on
        seen = await _until(host, bots, 60, below=True)
        out["loss_seen_s"] = seen
        await removal
        back = await _until(host, bots, 300)
        out["reschedule_s"] = None if back is None else time.monotonic() - removed
        out["rescheduled_bots"] = lost
        out["process_restarts"] = dict(host.view.process_restarts)
    finally:
        host.request_stop()
        await asyncio.wait_for(running, 120)
    return out


async def scenario(bots: int = 100, nodes: int = 2, window: float = 10.0) -> dict[str, Any]:
    """Start the cluster, measure, tear it down (the JSON-able result of ``make bench``'s group)."""
    head = {**NODE, "num_cpus": 0, "include_dashboard": False}
    started = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(nodes):
            cluster.add_node(**NODE)
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        setup = time.monotonic() - started
        limits = Limits(connect_rate=10_000, connect_burst=100_000)  # every bot connects from 127.0.0.1
        async with DevServer(ServerConfig(port=0, limits=limits)) as server:
            result = await _measure(server, cluster, bots, nodes, window)
        result["cluster_setup_s"] = setup
        return result
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(scenario(args.bots, args.nodes, args.window))
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
