"""Chaos: a fleet whose bots crash at random while their signal connections are cut for a while.

Every bot must come back (in its room, running), and nothing may leak: after the fleet is drained and
stopped, the process has the actors, threads, file descriptors and runtime-loop tasks it had before
(counted against a baseline taken after a warm-up fleet, so process-wide singletons — the agents'
watchdog thread, executors — are in both counts).

Scale: ``--chaos-bots`` (20 here, as CI runs it; the issue's figure is 100), ``--chaos-rounds`` of crash
draws (each round, every ``Chaotic`` bot — 10 % of the fleet — crashes with probability 0.5),
``--chaos-cuts`` signal outages of ``--chaos-cut`` seconds each, through :class:`SignalProxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from greenroom import rtc
from greenroom.actors.core import ask, live_actors, stop_actor
from greenroom.actors.messages import GetState
from greenroom.devserver.server import DevServer
from greenroom.fleet.reconcile import BotState
from greenroom.fleet.runner import Assign, BotRunner, RunnerReport
from greenroom.fleet.spec import BotSpec, JobSupervision, ServerSpec
from greenroom.runtime import loop as runtime
from tests.fleet.proxy import SignalProxy
from tests.fleet.test_runner import drain, report, report_until
from tests.rtc.support import connect, run_with_server
from tests.waiting import POLL, wait_until

pytestmark = pytest.mark.chaos
PER_ROOM = 10


@dataclass(frozen=True)
class Counts:
    """What the process holds, by identity (so a thread of an earlier test that ends meanwhile is not
    mistaken for anything, and a new one is seen even if an old one ended)."""

    actors: frozenset[str]
    threads: frozenset[tuple[int | None, str]]
    fds: frozenset[tuple[str, str]]
    tasks: frozenset[int]

    def new_since(self, before: Counts) -> dict[str, list[Any]]:
        """What this holds that ``before`` did not (empty: nothing leaked)."""
        found: dict[str, list[Any]] = {
            "actors": sorted(self.actors - before.actors),
            "threads": sorted(self.threads - before.threads, key=str),
            "fds": sorted(self.fds - before.fds),
            "tasks": sorted(self.tasks - before.tasks),
        }
        return {kind: items for kind, items in found.items() if items}


async def _tasks() -> frozenset[int]:
    current = asyncio.current_task()
    return frozenset(id(t) for t in asyncio.all_tasks() if t is not current)


def _fds() -> frozenset[tuple[str, str]]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return frozenset(found)


async def counts() -> Counts:
    tasks = await asyncio.wrap_future(runtime.submit(_tasks()))
    actors = frozenset(f"{ref.actor_class.__name__} {ref.actor_urn}" for ref in live_actors())
    threads = frozenset((t.ident, t.name) for t in threading.enumerate())
    return Counts(actors, threads, _fds(), tasks)


def fleet(n: int) -> tuple[BotSpec, ...]:
    bots = []
    for i in range(n):
        chaotic = i % 10 == 0
        bots.append(
            BotSpec(
                identity=f"{'chaotic' if chaotic else 'chatter'}-{i}",
                group="chaos",
                room=f"chaos-{i // PER_ROOM}",
                index=i,
                kind="agent",
                target="tests.fleet.bots:Chaotic" if chaotic else "greenroom.fleet.bots:Chatter",
                params={"interval": 1.0},
                # a chaotic bot gives up after 2 restarts in 30 s: the fleet must start it again
                supervision=JobSupervision(max_restarts=2) if chaotic else JobSupervision(),
            )
        )
    return tuple(bots)


def all_running(n: int) -> Any:
    return lambda got: len(got.bots) == n and all(b.state is BotState.RUNNING for b in got.bots)


async def run_fleet(server: ServerSpec, bots: tuple[BotSpec, ...]) -> pykka.ActorRef[Any]:
    runner = BotRunner.start(server, len(bots))
    runner.tell(Assign(bots))
    await report_until(runner, all_running(len(bots)), "every bot running", timeout=30 + len(bots) * 0.5)
    return runner


async def end_fleet(runner: pykka.ActorRef[Any]) -> None:
    await drain(runner)
    await stop_actor(runner)


def test_every_bot_comes_back_and_nothing_leaks(request: pytest.FixtureRequest) -> None:
    n = request.config.getoption("--chaos-bots")
    rounds = request.config.getoption("--chaos-rounds")
    cut_for = request.config.getoption("--chaos-cut")
    cuts = request.config.getoption("--chaos-cuts")

    async def scenario(server: DevServer) -> None:
        proxy = await SignalProxy(int(server.url.rsplit(":", 1)[1])).start()
        key = server.config.api_key
        via_proxy = ServerSpec(proxy.url, key, server.config.keys[key])
        try:
            # warm-up: process-wide singletons (the agents' watchdog, executors) exist in both counts
            await end_fleet(await run_fleet(via_proxy, fleet(1)))
            baseline = await counts()

            bots = fleet(n)
            started = time.monotonic()
            runner = await run_fleet(via_proxy, bots)
            joined = time.monotonic() - started
            rooms = sorted({b.room for b in bots})
            observers = [await connect(server, f"observer-{room}", room) for room in rooms]
            # one sure crash (so the test cannot pass without one), then rounds of random ones
            await observers[0].local_participant.publish_data(
                b"", topic="crash", destination_identities=["chaotic-0"]
            )
            await report_until(runner, _crashed, "the sure crash handled", timeout=20)
            for _ in range(rounds):
                for observer in observers:
                    await observer.local_participant.publish_data(b"", topic="chaos")
                await report_until(runner, all_running(n), "every bot running between rounds", timeout=60)
            for _ in range(cuts):
                before = (await report(runner)).reconnects
                proxy.cut()
                await report_until(runner, _reconnecting(), "bots noticed the cut", timeout=20)
                await asyncio.sleep(cut_for)  # the outage itself lasts this long (what is being simulated)
                proxy.restore()
                await report_until(runner, _more_reconnects(before), "reconnects after the cut", timeout=60)
            final = await report_until(runner, all_running(n), "every bot back", timeout=90)
            for observer, room in zip(observers, rooms, strict=True):
                members = {b.identity for b in bots if b.room == room}
                await wait_until(_members(observer, members), timeout=30, what=f"every bot in {room}")
            restarts = {(level, reason): count for level, reason, count in final.restarts}
            assert restarts.get(("logic", "ChaosCrashError"), 0) >= 1, restarts
            assert final.reconnects >= 1
            print(
                f"\nchaos: {n} bots joined in {joined:.1f} s; restarts {restarts}; "
                f"reconnects {final.reconnects}; connections cut {proxy.cut_connections}, "
                f"refused during the cut {proxy.refused}"
            )
            for observer in observers:
                await observer.disconnect()
            await end_fleet(runner)
            await counts_back_to(baseline, timeout=30)
        finally:
            await proxy.close()

    run_with_server(scenario)


async def counts_back_to(baseline: Counts, *, timeout: float) -> None:
    """Wait until the process is back to ``baseline`` (actors and sockets close asynchronously)."""
    deadline = time.monotonic() + timeout
    while leaked := (await counts()).new_since(baseline):
        if time.monotonic() >= deadline:
            raise AssertionError(f"leak: {leaked}; live actors {await _describe_actors()}")
        await asyncio.sleep(POLL)  # the polling interval of a condition wait


async def _describe_actors() -> list[str]:
    """Each live actor's class, and what it says of its state (a leaked RoomActor: state and identity)."""

    async def describe(ref: pykka.ActorRef[Any]) -> str:
        try:
            got = await ask(ref, GetState(), timeout=2.0)
        except Exception as exc:
            return f"{ref.actor_class.__name__} (no state: {type(exc).__name__})"
        local = getattr(getattr(got, "local", None), "identity", "")
        return f"{ref.actor_class.__name__} {getattr(got, 'state', got)!r} {local}"

    return [await asyncio.wrap_future(runtime.submit(describe(ref))) for ref in live_actors()]


def _more_reconnects(before: int) -> Callable[[RunnerReport], bool]:
    return lambda got: got.reconnects > before


def _members(observer: rtc.Room, members: set[str]) -> Callable[[], bool]:
    return lambda: set(observer.remote_participants) == members


def _crashed(got: RunnerReport) -> bool:
    return any(level == "logic" and reason == "ChaosCrashError" for level, reason, _ in got.restarts)


def _reconnecting() -> Any:
    return lambda got: any(b.state is not BotState.RUNNING for b in got.bots) or got.reconnects > 0
