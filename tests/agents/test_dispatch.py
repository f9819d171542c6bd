"""Nothing is lost when an agent's logic restarts, through ``greenroom.testing`` with live traffic: the room
events queued behind the one that failed, those arriving while the logic is down, and the messages sent
to the agent are handed to the next incarnation in order, exactly once — all but the one that failed,
which the restart's reason names. The restart stash is bounded; what it drops is counted and logged."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import threading
import time
from typing import Any

import pytest

from greenroom import rtc, testing
from greenroom.actors.supervision import Intensity
from greenroom.agents import (
    Agent,
    JobContext,
    JobEndedError,
    JobHandle,
    JobStatus,
    LoopBlockedError,
    SupervisionOptions,
)
from greenroom.agents.dispatch import _arities, _arity
from greenroom.devserver.server import DevServer
from tests.agents.support import AGENT, Inbox, agent_in, finished, start
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import recorded_logs, wait_until

#: Long enough that neither hang detector fires while a test holds the agent on purpose.
PATIENT = SupervisionOptions(liveness_timeout=30.0, block_threshold=30.0)


class PoisonError(Exception):
    """What the test agent raises on the poison message."""


def numbered_echo(gate: threading.Event | None = None) -> Any:
    """A job-shape entrypoint: answers ``n`` packets with ``<text> run <k>``; on ``poison`` it waits for
    ``gate`` (blocking its loop, as a slow sync callback does) and raises."""

    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        tasks: set[asyncio.Task[None]] = set()

        @ctx.room.on("data_received")
        def on_data(packet: rtc.DataPacket) -> None:
            text = bytes(packet.data).decode()
            if text == "poison":
                if gate is not None:
                    gate.wait(10)
                raise PoisonError("the poison message")
            answer = f"{text} run {ctx.restarts + 1}"
            task = asyncio.create_task(ctx.room.local_participant.publish_data(answer, topic="answer"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    return entrypoint


async def send(room: rtc.Room, *texts: str) -> None:
    for text in texts:
        await room.local_participant.publish_data(text, topic="n", destination_identities=[AGENT])


async def logic_state(handle: JobHandle) -> Any:
    return await testing.state(handle, testing.agent_logic())


def numbers(count: int) -> list[str]:
    return [str(n) for n in range(count)]


def test_room_events_queued_behind_the_failing_one_reach_the_next_incarnation() -> None:
    gate = threading.Event()

    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        rec = Recorder(observer, "participant_disconnected")
        inbox = Inbox(observer, "answer")
        handle = start(server, numbered_echo(gate), options=PATIENT)
        await agent_in(observer)
        await send(observer, "hello")
        await inbox.next_after(0, "the first run's answer")

        await send(observer, "poison", *numbers(20))
        # all 20 wait in the agent's queue behind the poison, which holds the loop until the gate opens
        await wait_until(_queued(handle, 20), what="20 events queued behind the poison")
        gate.set()

        await wait_until(lambda: len(inbox.texts) >= 21, what="the 20 answers after the restart")
        assert inbox.texts == ["hello run 1", *(f"{n} run 2" for n in range(20))]
        history = await testing.restart_history(handle)
        assert len(history) == 1
        assert "PoisonError" in history[0].reason
        assert "room event data_received" in history[0].reason  # the one that failed is named
        stats = handle.stash_stats()
        assert (stats.stashed, stats.replayed, stats.dropped, stats.depth) == (20, 20, 0, 0)
        assert rec.named("participant_disconnected") == []
        handle.shutdown()
        await finished(handle)
        await observer.disconnect()

    try:
        run_with_server(scenario)
    finally:
        gate.set()


def _queued(handle: JobHandle, count: int) -> Any:
    async def check() -> bool:
        state = await logic_state(handle)
        return bool(state.queued >= count)

    return check


def test_room_events_arriving_while_the_logic_is_down_are_replayed_in_order_once() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        inbox = Inbox(observer, "answer")
        handle = start(server, numbered_echo())
        await agent_in(observer)
        await send(observer, "hello")
        await inbox.next_after(0, "the first run's answer")

        async with testing.stall(handle, testing.agent_supervisor()):
            # the poison kills the logic; its supervisor is held, so the logic stays down meanwhile
            await send(observer, "poison", *numbers(30))
            await wait_until(lambda: handle.stash_stats().depth == 30, what="30 events stashed")
            assert handle.stash_stats().live is False
            assert inbox.texts == ["hello run 1"]
        await wait_until(lambda: len(inbox.texts) >= 31, what="the 30 answers after the restart")
        await send(observer, "marker")  # nothing else arrives: the marker's answer comes right after
        await inbox.next_after(31, "the marker's answer")
        assert inbox.texts == ["hello run 1", *(f"{n} run 2" for n in range(30)), "marker run 2"]
        stats = handle.stash_stats()
        assert (stats.replayed, stats.dropped, stats.unheard) == (30, 0, 0)
        history = await testing.restart_history(handle)
        assert [r.name for r in history] == ["logic"]
        assert "PoisonError" in history[0].reason
        handle.shutdown()
        await finished(handle)
        await observer.disconnect()

    run_with_server(scenario)


def test_the_stash_is_bounded_and_what_it_drops_is_counted_and_logged() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        inbox = Inbox(observer, "answer")
        options = SupervisionOptions(restart_stash_capacity=5)
        handle = start(server, numbered_echo(), options=options)
        await agent_in(observer)
        with recorded_logs("greenroom.agents.job") as logs:
            async with testing.stall(handle, testing.agent_supervisor()):
                await send(observer, "poison", *numbers(12))
                await wait_until(
                    lambda: handle.stash_stats().dropped == 7,
                    timeout=15,  # 13 packets and a restart on a loaded machine
                    what=lambda: f"7 events dropped ({handle.stash_stats()})",
                )
            # (a marker sent before the replay would find the stash still full, and be dropped too)
            await wait_until(lambda: handle.stash_stats().live, what="the restarted logic takes events")
            await send(observer, "marker")
            await wait_until(lambda: "marker run 2" in inbox.texts, what="the marker's answer")
        # the five oldest were kept (drop-newest), the rest counted and logged, nothing else arrived
        assert inbox.texts == [*(f"{n} run 2" for n in range(5)), "marker run 2"]
        stats = handle.stash_stats()
        assert (stats.capacity, stats.stashed, stats.replayed, stats.dropped) == (5, 5, 5, 7)
        assert any("restart stash full (5)" in r.getMessage() for r in logs.records)
        handle.shutdown()
        await finished(handle)
        await observer.disconnect()

    run_with_server(scenario)


@dataclasses.dataclass(frozen=True)
class Ping:
    """Answered with the agent's incarnation."""

    seq: int
    answer: concurrent.futures.Future[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class Block:
    """Blocks the agent's loop until ``release`` is set."""

    release: threading.Event


class Blocker(Agent):
    """The actor shape: a ``Block`` blocks its loop; each ``Ping`` is answered with the incarnation."""

    events = ()

    async def on_message(self, message: Any) -> None:
        match message:
            case Ping(seq=seq, answer=answer):
                answer.set_result((seq, self.ctx.restarts + 1))
            case Block(release=release):
                release.wait(30)  # a blocking call on the agent's loop


def test_messages_told_during_a_blocked_loop_are_answered_by_the_restarted_agent() -> None:
    """The P11 benchmark's case: pings sent while the loop is blocked are not lost with it."""
    release = threading.Event()

    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        rec = Recorder(observer, "participant_disconnected")
        handle = start(server, Blocker.entrypoint())
        agent = await agent_in(observer)
        first: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
        handle.tell(Ping(0, first))
        assert await asyncio.wrap_future(first) == (0, 1)

        blocked_at = time.monotonic()
        handle.tell(Block(release))
        pings = [concurrent.futures.Future[tuple[int, int]]() for _ in range(5)]
        for seq, answer in enumerate(pings, 1):
            handle.tell(Ping(seq, answer))
        answers = [await asyncio.wait_for(asyncio.wrap_future(p), 5) for p in pings]
        assert answers == [(seq, 2) for seq in range(1, 6)]  # in order, by the second incarnation
        assert time.monotonic() - blocked_at <= 2.0 + 0.5  # detected and acted on within 2 s
        history = await testing.restart_history(handle)
        assert len(history) == 1
        assert LoopBlockedError.__name__ in history[0].reason
        assert "handling message Block(" in history[0].reason  # the one not replayed
        assert agent.sid == observer.remote_participants[AGENT].sid
        assert rec.named("participant_disconnected") == []
        release.set()
        handle.shutdown()
        await finished(handle)
        await observer.disconnect()

    try:
        run_with_server(scenario)
    finally:
        release.set()


def test_a_message_to_a_job_that_ended_is_refused_not_silently_dropped() -> None:
    """Why the P11 benchmark's agent "never answered again": its earlier samples had used up the restart
    intensity, the job had ended FAILED, and ``tell`` to it was silently dropped."""

    class Crashy(Agent):
        events = ()

        async def on_message(self, message: Any) -> None:
            raise PoisonError(f"crash on {message!r}")

    async def scenario(server: DevServer) -> None:
        options = SupervisionOptions(intensity=Intensity(max_restarts=2, period=30.0))
        handle = start(server, Crashy.entrypoint(), options=options)
        for n in range(3):
            handle.tell(n)
        result = await finished(handle)
        assert result.status is JobStatus.FAILED
        assert "exceeded 2 restarts" in result.error
        assert "while handling message 2" in result.error
        with pytest.raises(JobEndedError, match="has ended \\(FAILED\\)"):
            handle.tell("anyone there?")

    run_with_server(scenario)


def test_arity_is_cached_weakly_and_a_bound_method_is_not_taken_for_its_function() -> None:
    class Handler:
        def on(self, a: object, b: object) -> None: ...

        def __call__(self, a: object) -> None: ...

    def make() -> Any:
        def callback(a: object) -> None: ...

        return callback

    callback = make()
    assert _arity(callback) == 1
    assert _arity(callback) == 1  # from the cache
    assert callback in _arities
    assert _arity(Handler().on) == 2
    assert _arity(Handler.on) == 3  # the function itself takes self too
    assert _arity(Handler().on) == 2
    assert _arity(Handler()) == 1
    assert _arity(lambda *args: None) is None
    count = len(_arities)
    del callback
    gc.collect()
    assert len(_arities) < count  # an ended job's closures are not kept alive by the cache
