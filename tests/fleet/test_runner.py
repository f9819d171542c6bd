"""One process's runner against a real dev server: exact admission, reassignment, logic and bot restarts,
params, drain."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pykka

from greenroom import rtc
from greenroom.actors.core import ask, stop_actor
from greenroom.actors.messages import Reply
from greenroom.devserver.server import DevServer
from greenroom.fleet.reconcile import BotState
from greenroom.fleet.runner import Assign, BotRunner, Drain, GetReport, RunnerReport
from greenroom.fleet.spec import BotSpec, JobSupervision, ServerSpec
from greenroom.runtime import loop as runtime
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import POLL, wait_until

ROOM = "r1"


def bot(identity: str, **kw: Any) -> BotSpec:
    fields: dict[str, Any] = {
        "group": "g",
        "room": ROOM,
        "index": 0,
        "kind": "agent",
        "target": "tests.fleet.bots:Obedient",
    }
    fields.update(kw)
    return BotSpec(identity=identity, **fields)


def server_spec(server: DevServer) -> ServerSpec:
    key = server.config.api_key
    return ServerSpec(server.url, key, server.config.keys[key])


async def report(runner: pykka.ActorRef[Any]) -> RunnerReport:
    result = await ask(runner, GetReport(), timeout=5.0)
    assert isinstance(result, RunnerReport)
    return result


def present(room: rtc.Room) -> set[str]:
    return set(room.remote_participants)


class Occupancy:
    """The most bots seen in the room at once (from join/leave events, in order)."""

    def __init__(self, room: rtc.Room) -> None:
        self.now = len(room.remote_participants)
        self.most = self.now
        room.on("participant_connected", lambda _p: self._change(+1))
        room.on("participant_disconnected", lambda _p: self._change(-1))

    def _change(self, delta: int) -> None:
        self.now += delta
        self.most = max(self.most, self.now)


async def drain(runner: pykka.ActorRef[Any]) -> None:
    async def on_runtime() -> None:
        reply: Reply[None] = Reply.new()
        runner.tell(Drain(reply))
        await reply.future

    await asyncio.wait_for(asyncio.wrap_future(runtime.submit(on_runtime())), 15)


def test_admission_is_exact_and_a_reassignment_swaps_bots_without_overshooting() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer", ROOM)
        occupancy = Occupancy(observer)
        runner = BotRunner.start(server_spec(server), 2)
        try:
            runner.tell(Assign((bot("a"), bot("b"), bot("c"))))
            await wait_until(lambda: present(observer) == {"a", "b"}, timeout=15, what="a and b joined")
            first = await report_until(
                runner,
                _states({"a": "running", "b": "running", "c": "pending"}),
                "a, b running and c pending",
            )
            assert first.alive == 2
            runner.tell(Assign((bot("b"), bot("c"))))
            await wait_until(lambda: present(observer) == {"b", "c"}, timeout=15, what="a left, c joined")
            assert occupancy.most == 2  # c was admitted only once a had left
        finally:
            await drain(runner)
            await stop_actor(runner)
            await observer.disconnect()

    run_with_server(scenario)


async def report_until(
    runner: pykka.ActorRef[Any], ok: Callable[[RunnerReport], bool], what: str, timeout: float = 10.0
) -> RunnerReport:
    """Ask the runner for reports until ``ok(report)``; return that report."""
    deadline = time.monotonic() + timeout
    while not ok(got := await report(runner)):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last report: {got}")
        await asyncio.sleep(POLL)  # the polling interval of a condition wait
    return got


def _states(want: dict[str, str]) -> Callable[[RunnerReport], bool]:
    return lambda got: {b.identity: b.state.value for b in got.bots} == want


def test_a_crash_restarts_the_logic_in_place_and_a_job_that_gives_up_is_started_again() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer", ROOM)
        pongs = Recorder(observer, "data_received")
        left = Recorder(observer, "participant_disconnected")
        runner = BotRunner.start(server_spec(server), 4)
        fragile = JobSupervision(max_restarts=0)
        try:
            runner.tell(Assign((bot("steady", params={"tag": "s"}), bot("fragile", supervision=fragile))))
            await wait_until(
                lambda: present(observer) == {"steady", "fragile"}, timeout=15, what="both joined"
            )
            await observer.local_participant.publish_data(
                b"", topic="crash", destination_identities=["steady"]
            )
            await report_until(runner, _restarts(("logic", "OrderedCrashError")), "a logic restart")
            assert left.events == []  # the logic restarted in the same participant

            await observer.local_participant.publish_data(
                b"", topic="crash", destination_identities=["fragile"]
            )
            got = await report_until(runner, _restarts(("bot", "gave_up")), "the fleet restarted it")
            fragile_status = next(b for b in got.bots if b.identity == "fragile")
            assert "OrderedCrashError" in fragile_status.last_error
            await wait_until(
                lambda: [a[0].identity for _, a in left.events] == ["fragile"], what="fragile left"
            )
            await wait_until(lambda: "fragile" in present(observer), timeout=15, what="fragile back")
            # params reach the agent's constructor
            await observer.local_participant.publish_data(
                b"", topic="ping", destination_identities=["steady"]
            )
            await wait_until(
                lambda: any(bytes(a[0].data) == b"steady s" for _, a in pongs.events), what="steady's pong"
            )
        finally:
            await drain(runner)
            await stop_actor(runner)
            await observer.disconnect()

    run_with_server(scenario)


def _restarts(key: tuple[str, str]) -> Callable[[RunnerReport], bool]:
    return lambda got: any((level, reason) == key for level, reason, _ in got.restarts)


def test_an_entrypoint_bot_gets_its_params_as_job_metadata_and_a_drain_makes_everyone_leave() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer", ROOM)
        pongs = Recorder(observer, "data_received")
        runner = BotRunner.start(server_spec(server), 4)
        try:
            probe = bot("probe", kind="entrypoint", target="tests.fleet.bots:probe", params={"colour": "red"})
            runner.tell(Assign((probe, bot("other"))))
            await wait_until(lambda: present(observer) == {"probe", "other"}, timeout=15, what="joined")
            await observer.local_participant.publish_data(b"", topic="ping", destination_identities=["probe"])
            await wait_until(lambda: pongs.events, what="the probe's answer")
            assert json.loads(bytes(pongs.events[0][1][0].data)) == {"colour": "red"}
            await drain(runner)
            await wait_until(lambda: present(observer) == set(), what="every bot left")
            got = await report(runner)
            assert got.alive == 0
            assert all(b.state is BotState.DONE for b in got.bots)
        finally:
            await stop_actor(runner)
            await observer.disconnect()

    run_with_server(scenario)
