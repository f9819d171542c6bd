"""The fleet on a real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head and
three worker nodes, each its own raylet with its own worker processes; everything on 127.0.0.1, no
dashboard, 1 logical CPU and 80 MiB of object store per node): a killed host actor's bots come back in a
new actor, a removed node's bots are rescheduled on the nodes left, and the counts stay exact throughout —
every bot in the room exactly once, no actor holding more than its admission limit; and the command
(``greenroom fleet run --ray``) runs a spec there."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Before ray is imported: every address Ray uses is 127.0.0.1 (by default a node names itself by the
# machine's outward address, and a driver rewrites 127.0.0.1 to it).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest
import ray
from ray.cluster_utils import Cluster

from greenroom import rtc
from greenroom.devserver.server import DevServer
from greenroom.fleet.cluster import RayOptions, RayWorker, ray_launcher
from greenroom.fleet.pool import Host, HostOptions
from greenroom.fleet.spec import BotSpec
from tests.cli.test_fleet import Lines, _fleet, _healthy
from tests.fleet.test_runner import ROOM, server_spec
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until, wait_until_sync

BOTS = 6
#: Each node's share: one logical CPU (one host actor) and the smallest object store Ray accepts.
NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    head = {**NODE, "num_cpus": 0, "include_dashboard": False}  # the head runs no host actor, as on a cluster
    made = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(3):
            made.add_node(**NODE)
        ray.init(address=made.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        yield made
    finally:
        ray.shutdown()
        made.shutdown()  # type: ignore[no-untyped-call]


def fleet() -> tuple[BotSpec, ...]:
    return tuple(
        BotSpec(
            identity=f"bot-{i}",
            group="g",
            room=ROOM,
            index=i,
            kind="agent",
            target="greenroom.fleet.bots:Idle",
        )
        for i in range(BOTS)
    )


def workers(host: Host) -> dict[int, RayWorker]:
    found = {i: s.worker for i, s in host.slots.items() if s.worker is not None}
    assert all(isinstance(w, RayWorker) for w in found.values())
    return {i: w for i, w in found.items() if isinstance(w, RayWorker)}


def exact(host: Host, observer: rtc.Room, wanted: set[str]) -> Any:
    """Every bot in the room once, each placed in one live actor, none past its limit, all running."""

    def check() -> bool:
        placed = [key for s in host.slots.values() for key in s.assigned]
        return (
            set(observer.remote_participants) == wanted
            and sorted(placed) == sorted(wanted)
            and all(
                len(s.assigned) <= s.capacity and (s.alive or not s.assigned) for s in host.slots.values()
            )
            and host.view.running() == len(wanted)
            and all(w.node for w in workers(host).values())
        )

    return check


@pytest.mark.timeout(300)
def test_bots_come_back_after_a_host_actor_is_killed_and_after_a_node_is_removed(cluster: Cluster) -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer", ROOM)
        left = Recorder(observer, "participant_disconnected")
        wanted = {b.identity for b in fleet()}
        # room for every bot in each actor (a lost actor's bots move at once); a slow start is not a death
        options = HostOptions(
            processes=2, bots_per_process=BOTS, report_interval=0.2, drain_timeout=10, unresponsive_after=120
        )
        host = Host(fleet(), server_spec(server), options, launcher=ray_launcher(RayOptions()))
        running = asyncio.create_task(host.run(install_signals=False))
        try:
            await wait_until(exact(host, observer, wanted), timeout=90, what="6 bots on 2 host actors")
            nodes = {w.node for w in workers(host).values()}
            assert len(nodes) == 2  # SPREAD: one host actor per node

            # a host actor is killed: its bots leave, then come back (in the other actor, which has room)
            slot, victim = max(workers(host).items(), key=lambda item: len(host.slots[item[0]].assigned))
            victims = set(host.slots[slot].assigned)
            assert victims
            ray.kill(victim.actor)
            await wait_until(
                lambda: victims <= {a[0].identity for _, a in left.events},
                timeout=60,
                what="its bots dropped",
            )
            await wait_until(exact(host, observer, wanted), timeout=90, what="its bots came back")
            await wait_until(lambda: host.slots[slot].ready, timeout=90, what="a new actor in the slot")
            assert workers(host)[slot] is not victim
            assert host.view.process_restarts == {"actor died": 1}

            # a node is removed: the host actor on it dies, its bots are rescheduled on the nodes left
            left.events.clear()
            slot, doomed = max(workers(host).items(), key=lambda item: len(host.slots[item[0]].assigned))
            gone = doomed.node
            victims = set(host.slots[slot].assigned)
            nodes_now = cluster.list_all_nodes()  # type: ignore[no-untyped-call]
            node = next(n for n in nodes_now if n.node_id == gone)
            cluster.remove_node(node)
            await wait_until(
                lambda: victims <= {a[0].identity for _, a in left.events},
                timeout=60,
                what="its bots dropped",
            )
            await wait_until(
                exact(host, observer, wanted), timeout=90, what="rescheduled after the node loss"
            )
            await wait_until(lambda: host.slots[slot].ready, timeout=90, what="a new actor in the slot")
            assert gone not in {w.node for w in workers(host).values()}
            assert host.view.process_restarts == {"actor died": 2}

            # a drain: every bot leaves cleanly, every actor ends
            left.events.clear()
            host.request_stop()
            view = await asyncio.wait_for(running, 60)
            assert host.pids() == {}
            await wait_until(lambda: not observer.remote_participants, what="every bot left")
            assert {a[0].identity for _, a in left.events} == wanted
            assert {a[0].disconnect_reason for _, a in left.events} <= {rtc.DisconnectReason.CLIENT_INITIATED}
            assert all(s.state == "exited (drained)" for s in view.slots.values()), view.slots
        finally:
            host.request_stop()
            host.request_stop()
            await asyncio.wait_for(running, 60)
            await observer.disconnect()

    run_with_server(scenario)


@pytest.mark.timeout(180)
def test_the_command_runs_a_spec_on_the_cluster_and_drains_on_sigterm(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``greenroom fleet run SPEC --ray ADDRESS`` from another process (a second driver of the cluster):
    ``--processes auto`` is the cluster's CPUs, every bot runs in a host actor (``/healthz`` 200), SIGTERM
    drains every actor and exits 0."""
    spec = tmp_path / "fleet.toml"
    spec.write_text(
        '[[bots]]\nname = "idle"\nagent = "greenroom.fleet.bots:Idle"\nroom = "lobby"\ncount = 4\n'
    )
    cpus = int(ray.cluster_resources()["CPU"])  # type: ignore[no-untyped-call]
    proc = _fleet("run", str(spec), "--ray", cluster.address, "--processes", "auto", "--metrics-port", "0")
    out = Lines(proc)
    try:
        out.wait(rf"fleet: 4 bots over {cpus} host actors on {re.escape(cluster.address)}", timeout=60)
        metrics = out.wait(r"metrics at (http://\S+)/metrics")[1]
        body = wait_until_sync(
            lambda: _healthy(metrics + "/healthz"), timeout=90, what="/healthz 200", interval=0.1
        )
        assert '"running": 4' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stderr = out.close()
    assert out.text.count("exited (drained)") == cpus, f"{out.text}\n{stderr[-3000:]}"
