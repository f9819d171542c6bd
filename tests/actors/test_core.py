from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pykka
import pytest

from greenroom.actors import core
from greenroom.runtime import loop as rt
from tests.actors.support import fresh_runtime, no_leftover_actors, run  # noqa: F401 - autouse fixtures
from tests.helpers import assert_eventually, assert_eventually_async


class Echo(core.AsyncioActor):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        return message

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    async def add_later(self, amount: int) -> int:
        await asyncio.sleep(0.001)
        return self.add(amount)

    async def on_thread(self) -> bool:
        return rt.in_runtime_thread()


class Gate(core.AsyncioActor):
    """Handles ``"wait"`` by parking until released; records everything else it handles."""

    mailbox_capacity: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.seen: list[Any] = []

    async def on_receive(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
            return "released"
        self.seen.append(message)
        return message

    def handled(self) -> list[Any]:
        return list(self.seen)


class DropGate(Gate):
    mailbox_overflow: ClassVar[core.Overflow] = "drop_oldest"


def release(ref: pykka.ActorRef[Any]) -> None:
    """Open the gate from outside the mailbox (a message would queue behind the parked handler)."""
    actor = ref._actor_weakref()
    assert isinstance(actor, Gate)
    rt.call_soon(actor.gate.set)


# ------------------------------------------------------------------------------------------ pykka surface


def test_tell_ask_stop_and_registry() -> None:
    ref = Echo.start()
    assert pykka.ActorRegistry.get_all() == [ref]
    assert pykka.ActorRegistry.get_by_class_name("Echo") == [ref]
    assert ref.ask("hello") == "hello"
    ref.tell("fire and forget")
    assert ref.is_alive()
    assert ref.stop() is True
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert ref.stop() is False
    assert core.exit_reason(ref) == core.Normal()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late")


def test_proxy_from_a_foreign_thread_and_awaited_on_the_loop() -> None:
    ref = Echo.start()
    proxy = ref.proxy()
    assert proxy.add(2).get() == 2
    assert proxy.add_later(3).get() == 5
    assert proxy.on_thread().get() is True
    assert proxy.total.get() == 5

    async def on_loop() -> tuple[int, int, Any]:
        first = await proxy.add(10)
        second = await proxy.add_later(1)
        answer = await ref.ask("direct", block=False)
        return first, second, answer

    assert run(on_loop()) == (15, 16, "direct")
    ref.stop()


def test_awaiting_from_another_event_loop() -> None:
    ref = Echo.start()

    async def user_code() -> tuple[Any, int]:
        return await core.ask(ref, "from the user's loop"), await ref.proxy().add_later(7)

    assert asyncio.run(user_code()) == ("from the user's loop", 7)
    ref.stop()


def test_get_on_the_loop_thread_raises_instead_of_deadlocking() -> None:
    ref = Echo.start()

    async def misuse() -> list[type[BaseException]]:
        caught: list[type[BaseException]] = []
        future = ref.ask("x", block=False)
        attempts: list[Callable[[], Any]] = [
            future.get,
            lambda: ref.ask("y"),
            lambda: ref.proxy().add(1).get(),
        ]
        for attempt in attempts:
            with pytest.raises(core.BlockingGetError) as info:
                attempt()
            caught.append(info.type)
        assert await future == "x"
        return caught

    assert run(misuse()) == [core.BlockingGetError] * 3
    assert issubclass(core.BlockingGetError, rt.LoopMisuseError)
    ref.stop()


def test_future_combinators_work_from_threads_and_the_loop() -> None:
    ref = Echo.start()
    first, second = ref.ask(1, block=False), ref.ask(2, block=False)
    assert first.join(second).get() == [1, 2]
    assert ref.ask(20, block=False).map(lambda v: v + 1).get() == 21
    assert pykka.get_all([ref.ask(3, block=False), ref.ask(4, block=False)]) == [3, 4]

    async def on_loop() -> Any:
        return await ref.ask(5, block=False).map(lambda v: v * 2)

    assert run(on_loop()) == 10
    ref.stop()


# -------------------------------------------------------------------------------------------- async hooks


class Lifecycle(core.AsyncioActor):
    events: ClassVar[list[str]] = []

    async def on_start(self) -> None:
        await asyncio.sleep(0)
        self.events.append("start")

    async def on_receive(self, message: Any) -> Any:
        await asyncio.sleep(0)
        self.events.append(f"got {message}")
        return message.upper()

    async def on_stop(self) -> None:
        await asyncio.sleep(0)
        self.events.append("stop")


def test_async_hooks_and_handlers_are_awaited_in_order() -> None:
    Lifecycle.events = []
    ref = Lifecycle.start()
    ref.tell("a")
    assert ref.ask("b") == "B"
    ref.stop()
    assert Lifecycle.events == ["start", "got a", "got b", "stop"]


# ------------------------------------------------------------------------------------------- deadlines


class Slow(Gate):
    ask_timeout: ClassVar[float] = 0.1
    mailbox_capacity: ClassVar[int] = 100


def test_every_ask_has_a_deadline() -> None:
    ref = Slow.start()
    ref.tell("wait")
    started = time.monotonic()
    with pytest.raises(core.AskTimeoutError):
        ref.ask("queued behind the gate")
    assert time.monotonic() - started < 1.0
    with pytest.raises(pykka.Timeout):  # AskTimeoutError is also pykka's Timeout
        ref.ask("x", block=False).get(timeout=0.01)

    async def from_async() -> None:
        with pytest.raises(core.AskTimeoutError):
            await core.ask(ref, "y", timeout=0.02)
        with pytest.raises(core.AskTimeoutError):
            await ref.ask("z", block=False)  # the class's 0.1 s deadline

    run(from_async())
    release(ref)
    assert ref.ask("after", timeout=1) == "after"
    ref.stop()


# -------------------------------------------------------------------------------------------- failures


class Fragile(core.AsyncioActor):
    failures: ClassVar[list[str]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        return message

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.failures.append(type(exception_value).__name__)

    def on_stop(self) -> None:
        self.failures.append("on_stop")


def test_a_tell_failure_stops_the_actor_and_fails_queued_asks() -> None:
    Fragile.failures = []
    gate = Gate.start()
    ref = Fragile.start()
    ended = threading.Event()
    reasons: list[core.ExitReason] = []

    def on_exit(_ref: pykka.ActorRef[Any], reason: core.ExitReason) -> None:
        reasons.append(reason)
        ended.set()

    core.watch(ref, on_exit)
    ref.tell(RuntimeError("tell failure"))
    queued = ref.ask("never handled", block=False)
    assert ended.wait(2)
    assert Fragile.failures == ["RuntimeError"]
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=1)
    assert isinstance(reasons[0], core.Crashed)
    assert isinstance(reasons[0].exception, RuntimeError)
    assert gate.ask("bystander") == "bystander"
    gate.stop()


def test_an_ask_failure_goes_to_the_asker_and_the_actor_resumes() -> None:
    ref = Echo.start()
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom")
    assert ref.ask("still here") == "still here"
    ref.stop()


class Bystander(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


class CustomBase(BaseException):
    pass


def test_base_exceptions_stay_inside_their_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    forwarded: list[str] = []
    monkeypatch.setattr(core, "_interrupt_main", lambda: forwarded.append("interrupt"))
    thread_actor = Bystander.start()
    loop_actor = Echo.start()
    for raised, expected in [
        (CustomBase("custom"), core.Crashed),
        (SystemExit(3), core.Crashed),
        (KeyboardInterrupt(), core.Crashed),
        (SystemExit(0), core.Normal),
    ]:
        Fragile.failures = []
        ref = Fragile.start()
        ref.tell(raised)
        assert_eventually(lambda ref=ref: core.exit_reason(ref) is not None)  # type: ignore[misc]
        assert isinstance(core.exit_reason(ref), expected), raised
        # Neither stop_all() nor a dead runtime: the bystanders (a plain pykka actor too) keep working.
        assert thread_actor.ask("alive?", timeout=1) == "alive?"
        assert loop_actor.ask("alive?") == "alive?"
        assert set(pykka.ActorRegistry.get_all()) == {thread_actor, loop_actor}
        expected_hooks = ["on_stop"] if expected is core.Normal else [type(raised).__name__]
        assert Fragile.failures == expected_hooks
    assert forwarded == ["interrupt"]

    # A BaseException in an ask handler reaches the asker, and still ends only that actor.
    ref = Fragile.start()
    with pytest.raises(CustomBase):
        ref.ask(CustomBase("via ask"), timeout=1)
    assert_eventually(lambda: not ref.is_alive())
    assert loop_actor.ask("alive?") == "alive?"
    thread_actor.stop()
    loop_actor.stop()


class BadStart(core.AsyncioActor):
    def on_start(self) -> None:
        raise RuntimeError("cannot start")


class Parent(core.AsyncioActor):
    def __init__(self) -> None:
        super().__init__()
        self.inbox: list[Any] = []

    def on_receive(self, message: Any) -> None:
        self.inbox.append(message)

    def received(self) -> list[Any]:
        return list(self.inbox)


def test_link_reports_start_failures_and_normal_stops_to_the_parent() -> None:
    parent = Parent.start()
    failing = BadStart.start()
    core.link(failing, parent, "bad")
    normal = Echo.start()
    core.link(normal, parent, "good")
    normal.stop()
    assert_eventually(lambda: len(parent.proxy().received().get()) == 2)
    messages = {message.child_id: message for message in parent.proxy().received().get()}
    assert isinstance(messages["bad"], core.ChildFailed)
    assert str(messages["bad"].exception) == "cannot start"
    assert messages["bad"].ref is failing
    assert messages["good"] == core.ChildStopped("good", normal, core.Normal())
    parent.stop()


def test_kill_cancels_the_task_and_answers_pending_asks() -> None:
    ref = Gate.start()
    ref.tell("wait")
    pending = ref.ask("queued", block=False)
    reasons: list[core.ExitReason] = []
    core.watch(ref, lambda _ref, reason: reasons.append(reason))
    core.kill_actor(ref)
    with pytest.raises(core.ActorDeadError):
        pending.get(timeout=1)
    assert_eventually(lambda: reasons == [core.Shutdown()])
    assert core.exit_reason(ref) == core.Shutdown()


# ------------------------------------------------------------------------------------------ ask vs stop


def _hammer(ref: pykka.ActorRef[Any], go: threading.Event, futures: list[pykka.Future[Any]]) -> None:
    go.wait()
    for index in range(200):
        try:
            futures.append(ref.ask(index, block=False))
        except pykka.ActorDeadError:
            return


def test_asks_racing_a_stop_are_all_answered_promptly() -> None:
    for _ in range(20):
        ref = Echo.start()
        futures: list[pykka.Future[Any]] = []
        go = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(ref, go, futures)) for _ in range(2)]
        for thread in threads:
            thread.start()
        go.set()
        ref.stop(block=False)
        for thread in threads:
            thread.join(5)
        started = time.monotonic()
        for future in futures:
            with contextlib.suppress(pykka.ActorDeadError):
                future.get(timeout=1)
        assert time.monotonic() - started < 1.0
        assert_eventually(lambda ref=ref: core.exit_reason(ref) is not None)  # type: ignore[misc]


def test_stop_from_async_code_and_from_the_runtime_shutdown() -> None:
    Lifecycle.events = []
    ref = Lifecycle.start()

    async def stop_it() -> core.ExitReason:
        return await core.stop_actor(ref, timeout=1)

    assert run(stop_it()) == core.Normal()
    assert Lifecycle.events == ["start", "stop"]

    Lifecycle.events = []
    survivor = Lifecycle.start()
    assert survivor.ask("x") == "X"
    rt.shutdown()  # the shutdown hook stops top-level actors gracefully
    assert Lifecycle.events == ["start", "got x", "stop"]
    assert not survivor.is_alive()


class Stubborn(core.AsyncioActor):
    async def on_stop(self) -> None:
        await asyncio.Event().wait()


def test_stop_kills_an_actor_whose_on_stop_hangs() -> None:
    ref = Stubborn.start()

    async def stop_it() -> core.ExitReason:
        return await core.stop_actor(ref, timeout=0.05)

    assert run(stop_it()) == core.Shutdown()


def test_ask_bridges_to_a_threading_actor_without_blocking_the_loop() -> None:
    thread_actor = Bystander.start()

    async def on_loop() -> list[Any]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        answers = [await core.ask(thread_actor, index, timeout=1) for index in range(5)]
        task.cancel()
        assert ticks > 0
        return answers

    assert run(on_loop()) == [0, 1, 2, 3, 4]
    thread_actor.stop()
    thread_actor.stop()  # already stopped: False, no error


# ---------------------------------------------------------------------------------------------- mailbox


def test_reject_overflow_raises_to_tellers_and_fails_asks() -> None:
    ref = Gate.start()
    ref.tell("wait")
    assert_eventually(lambda: core.mailbox_stats(ref).depth == 0)  # "wait" is being handled
    for index in range(3):
        ref.tell(index)
    with pytest.raises(core.MailboxFullError):
        ref.tell("one too many")
    refused = ref.ask("ask too many", block=False)
    with pytest.raises(core.MailboxFullError):
        refused.get(timeout=1)
    stats = core.mailbox_stats(ref)
    assert (stats.capacity, stats.depth, stats.rejected, stats.max_depth) == (3, 3, 2, 3)
    stopping = ref.stop(block=False)  # a stop request is never refused
    release(ref)
    assert stopping.get(timeout=2) is True
    assert core.mailbox_stats(ref).received == 5  # wait, 0, 1, 2, stop


def test_drop_oldest_overflow_evicts_and_counts() -> None:
    ref = DropGate.start()
    ref.tell("wait")
    assert_eventually(lambda: core.mailbox_stats(ref).depth == 0)
    evicted = ref.ask("first", block=False)
    for index in range(5):
        ref.tell(index)
    with pytest.raises(core.MailboxFullError, match="evicted"):
        evicted.get(timeout=1)
    assert core.mailbox_stats(ref).dropped == 3
    release(ref)
    # Poll the counters, not the actor: an ask would be one more message in the 3-slot mailbox.
    assert_eventually(lambda: core.mailbox_stats(ref).depth == 0)
    assert ref.proxy().handled().get() == [2, 3, 4]
    assert core.mailbox_stats(ref).dropped == 3
    ref.stop()


def test_mailbox_rejects_bad_settings() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="capacity"):
            core.Mailbox(loop, 0, "reject")
        with pytest.raises(ValueError, match="overflow"):
            core.Mailbox(loop, 1, "block")  # type: ignore[arg-type]
    finally:
        loop.close()


def test_handlers_run_on_the_loop_and_yield_under_load() -> None:
    producer = Echo.start()
    other = Echo.start()

    async def flood() -> int:
        for _ in range(500):
            producer.tell("x")
        # The other actor is served while the producer works through its backlog.
        answer = await core.ask(other, 1)
        await assert_eventually_async(lambda: core.mailbox_stats(producer).depth == 0)
        return int(answer)

    assert run(flood()) == 1
    producer.stop()
    other.stop()


def test_the_pykka_seams_we_build_on_still_exist() -> None:
    """pykka's private surface core.py relies on (pinned by pyproject's pykka range)."""
    from pykka._envelope import Envelope
    from pykka.messages import _ActorStop

    assert Envelope(_ActorStop()).reply_to is None
    for name in ("_create_actor_inbox", "_create_future", "_start_actor_loop", "_handle_receive"):
        assert callable(getattr(pykka.Actor, name)), name
    ref = Echo.start()
    assert ref._actor_weakref() is not None
    assert isinstance(ref.ask("x", block=False), core.AsyncioFuture)  # ActorRef.ask uses _create_future
    assert isinstance(ref.actor_inbox, core.Mailbox)
    ref.stop()


def _child_counts(queue: Any) -> None:
    queue.put((len(core.live_actors()), len(pykka.ActorRegistry.get_all())))


def test_a_forked_child_forgets_the_parents_actors() -> None:
    import multiprocessing

    class Idle(core.AsyncioActor):
        pass

    ref = Idle.start()
    try:
        assert_eventually(lambda: ref in core.live_actors())
        ctx: Any = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_counts, args=(queue,))
        child.start()
        assert queue.get(timeout=20) == (0, 0)
        child.join(10)
        assert child.exitcode == 0
    finally:
        ref.stop()


def test_a_fork_while_another_thread_holds_pykkas_registry_lock_does_not_hang_the_child() -> None:
    """The parent's runtime thread may be registering an actor at the moment of ``fork()``: the child must
    not wait for a lock whose holder does not exist there (it unregisters the parent's actors at once)."""
    import multiprocessing

    class Idle(core.AsyncioActor):
        pass

    ref = Idle.start()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pykka.ActorRegistry._actor_refs_lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        ctx: Any = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_counts, args=(queue,))
        child.start()
        assert queue.get(timeout=20) == (0, 0)  # the child forgot the parent's actors: it did not hang
        child.join(10)
        assert child.exitcode == 0
    finally:
        release.set()
        holder.join()
        ref.stop()
