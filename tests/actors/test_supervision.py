from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pykka
import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenroom.actors import core
from greenroom.actors.supervision import (
    NO_BACKOFF,
    Backoff,
    ChildSpec,
    DynamicSupervisor,
    Escalate,
    Intensity,
    NoRestart,
    Restart,
    RestartIntensityError,
    RestartType,
    StableRef,
    StashFullError,
    Strategy,
    Supervisor,
    backoff_delay,
    decide,
    restart_window,
    should_restart,
)
from tests.actors.support import fresh_runtime, no_leftover_actors, run  # noqa: F401 - autouse fixtures
from tests.helpers import assert_eventually

PERMANENT, TRANSIENT, TEMPORARY = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY
CRASH = core.Crashed(RuntimeError("boom"))
NORMAL = core.Normal()


# ------------------------------------------------------------------------------- the pure decision


DEFAULT_INTENSITY = Intensity(3, 10.0)


def _decide(
    *,
    restart: RestartType = PERMANENT,
    reason: core.ExitReason = CRASH,
    history: tuple[float, ...] = (),
    now: float = 100.0,
    intensity: Intensity = DEFAULT_INTENSITY,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    children: tuple[tuple[str, RestartType], ...] | None = None,
    failed: str = "a",
    backoff: Backoff = NO_BACKOFF,
    jitter: float = 0.0,
) -> Any:
    return decide(
        strategy=strategy,
        children=children if children is not None else (("a", restart),),
        failed=failed,
        reason=reason,
        history=history,
        now=now,
        intensity=intensity,
        backoff=backoff,
        jitter=jitter,
    )


@pytest.mark.parametrize(
    ("restart", "reason", "expected"),
    [
        (PERMANENT, CRASH, True),
        (PERMANENT, NORMAL, True),
        (PERMANENT, core.Shutdown(), True),
        (TRANSIENT, CRASH, True),
        (TRANSIENT, NORMAL, False),
        (TRANSIENT, core.Shutdown(), False),
        (TEMPORARY, CRASH, False),
        (TEMPORARY, NORMAL, False),
    ],
)
def test_restart_types(restart: RestartType, reason: core.ExitReason, expected: bool) -> None:
    assert should_restart(restart, reason) is expected
    decision = _decide(restart=restart, reason=reason)
    assert isinstance(decision, Restart if expected else NoRestart)


def test_strategies_choose_the_restart_set() -> None:
    children = (("a", PERMANENT), ("b", TRANSIENT), ("c", TEMPORARY), ("d", PERMANENT))
    one = _decide(strategy=Strategy.ONE_FOR_ONE, children=children, failed="b")
    assert (one.stop, one.start, one.remove) == ((), ("b",), ())
    everyone = _decide(strategy=Strategy.ONE_FOR_ALL, children=children, failed="b")
    assert everyone.stop == ("d", "c", "a")  # newest first
    assert everyone.start == ("a", "b", "d")  # start order; the temporary sibling is not restarted
    assert everyone.remove == ("c",)
    rest = _decide(strategy=Strategy.REST_FOR_ONE, children=children, failed="b")
    assert (rest.stop, rest.start, rest.remove) == (("d", "c"), ("b", "d"), ("c",))
    last = _decide(strategy=Strategy.REST_FOR_ONE, children=children, failed="d")
    assert (last.stop, last.start) == ((), ("d",))


def test_intensity_escalates_on_the_restart_after_the_limit() -> None:
    assert isinstance(_decide(history=(95.0, 96.0)), Restart)
    assert _decide(history=(95.0, 96.0, 97.0)) == Escalate(restarts=3, period=10.0)
    # Old restarts slide out of the window.
    decision = _decide(history=(80.0, 89.0, 90.0, 96.0))
    assert isinstance(decision, Restart)
    assert decision.history == (96.0, 100.0)
    assert isinstance(_decide(intensity=Intensity(0, 5.0)), Escalate)
    # A transient child that stopped normally never counts toward the brake.
    assert isinstance(_decide(restart=TRANSIENT, reason=NORMAL, history=(99.0,) * 5), NoRestart)


times = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)


@given(
    history=st.lists(times, max_size=12).map(sorted),
    elapsed=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    max_restarts=st.integers(min_value=0, max_value=6),
    period=st.floats(min_value=0.001, max_value=200.0, allow_nan=False),
)
def test_the_sliding_window(history: list[float], elapsed: float, max_restarts: int, period: float) -> None:
    now = (history[-1] if history else 0.0) + elapsed
    in_window = [at for at in history if now - at < period]
    decision = _decide(history=tuple(history), now=now, intensity=Intensity(max_restarts, period))
    assert restart_window(history, now, period) == tuple(in_window)
    if len(in_window) >= max_restarts:
        assert decision == Escalate(len(in_window), period)
    else:
        assert isinstance(decision, Restart)
        assert decision.history == (*in_window, now)
        assert all(now - at < period for at in decision.history)
        assert len(decision.history) <= max_restarts


@given(
    attempt=st.integers(min_value=0, max_value=200),
    sample=st.floats(min_value=0.0, max_value=0.999, allow_nan=False),
    min_delay=st.floats(min_value=0.001, max_value=5.0, allow_nan=False),
    spread=st.floats(min_value=1.0, max_value=100.0, allow_nan=False),
    random_factor=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, sample: float, min_delay: float, spread: float, random_factor: float
) -> None:
    backoff = Backoff(min_delay, min_delay * spread, random_factor)
    base = min(min_delay * spread, min_delay * 2.0**attempt)
    delay = backoff_delay(backoff, attempt, sample)
    assert base <= delay <= base * (1 + random_factor) + 1e-9
    assert backoff_delay(backoff, attempt + 1, sample) >= delay - 1e-9
    assert backoff_delay(NO_BACKOFF, attempt, sample) == 0.0


def test_backoff_counts_only_recent_restarts() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=60.0, random_factor=0.5, reset_after=5.0)
    decision = _decide(history=(91.0, 97.0, 98.0), intensity=Intensity(10, 60.0), backoff=backoff, jitter=0.5)
    assert decision.delay == pytest.approx(4.0 * 1.25)  # two restarts within reset_after: 1 s · 2², jittered


# ------------------------------------------------------------------------------------ real actors


class Worker(core.AsyncioActor):
    """Keeps the messages it got; "boom" crashes it; "stop" asks it to stop; "get" returns its state."""

    stops: ClassVar[list[str]] = []

    def __init__(self, name: str, state: list[Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.state = list(state or [])

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError(f"{self.name} crashed")
        if message == "stop":
            self.stop()
            return None
        if message == "get":
            return list(self.state)
        self.state.append(message)
        return None

    def name_of(self) -> str:
        return self.name

    async def on_stop(self) -> None:
        self.stops.append(self.name)


class Factory:
    """A child factory that counts incarnations (each starts from the spec's initial state)."""

    def __init__(self, name: str, initial: list[Any] | None = None) -> None:
        self.name = name
        self.initial = initial or []
        self.calls = 0

    def __call__(self) -> pykka.ActorRef[Any]:
        self.calls += 1
        return Worker.start(self.name, self.initial)


def _child(sup: pykka.ActorRef[Any], child_id: str) -> StableRef:
    handle: StableRef = sup.proxy().child(child_id).get()
    return handle


def test_a_crashed_child_restarts_with_state_from_its_spec() -> None:
    factory = Factory("a", ["initial"])
    sup = Supervisor.start([ChildSpec("a", factory)])
    child = _child(sup, "a")
    child.tell("one")
    first = child.current
    assert child.ask("get") == ["initial", "one"]
    child.tell("boom")
    assert child.ask("get") == ["initial"]  # a fresh incarnation
    assert factory.calls == 2
    assert child.current is not first
    assert first is not None
    assert not first.is_alive()
    [event] = sup.proxy().restart_events().get()
    assert (event.failed, event.restarted, event.delay) == ("a", ("a",), 0.0)
    assert isinstance(event.reason, core.Crashed)
    sup.stop()
    assert not child.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        child.tell("after shutdown")


def test_a_stable_ref_works_across_restarts_from_threads_and_the_loop() -> None:
    sup = Supervisor.start([ChildSpec("a", Factory("a"))])
    child = _child(sup, "a")

    async def on_loop() -> list[Any]:
        answers = [await child.proxy().name_of()]
        child.tell("boom")
        answers.append(await core.ask(child, "get"))
        answers.append(await child.ask("get", block=False))
        child.tell("boom")
        answers.append(await child.proxy().name_of())
        return answers

    assert run(on_loop()) == ["a", [], [], "a"]
    assert child.proxy().name_of().get() == "a"
    assert child.stats().incarnations == 3
    sup.stop()


def test_the_stash_keeps_order_during_a_backoff_and_is_bounded() -> None:
    spec = ChildSpec("a", Factory("a"), stash_capacity=20)
    sup = Supervisor.start([spec], backoff=Backoff(min_delay=0.2, max_delay=0.2))
    child = _child(sup, "a")
    child.tell("boom")
    assert_eventually(lambda: child.current is None)
    for index in range(19):
        child.tell(index)
    answer = child.ask("get", block=False, timeout=2)  # the 20th stashed message
    with pytest.raises(StashFullError):
        child.tell("overflow")
    refused = child.ask("overflow", block=False)
    with pytest.raises(StashFullError):
        refused.get(timeout=1)
    assert child.stats().state == "pending"
    assert answer.get() == list(range(19))
    stats = child.stats()
    assert (stats.state, stats.replayed, stats.overflowed, stats.depth) == ("live", 20, 2, 0)
    sup.stop()


def test_messages_queued_in_a_crashed_incarnation_are_replayed_first() -> None:
    sup = Supervisor.start([ChildSpec("a", Factory("a"))])
    child = _child(sup, "a")

    async def burst() -> list[Any]:
        # All queued in one loop step: the crash leaves 1..3 in the dead incarnation's mailbox.
        child.tell("boom")
        for index in (1, 2, 3):
            child.tell(index)
        result: list[Any] = await child.ask("get", block=False)
        return result

    assert run(burst()) == [1, 2, 3]
    sup.stop()


def test_intensity_exceeded_escalates_after_stopping_children_newest_first() -> None:
    Worker.stops = []
    escalations: list[BaseException] = []
    specs = [ChildSpec(name, Factory(name)) for name in ("a", "b", "c")]
    sup = Supervisor.start(specs, intensity=Intensity(2, 60.0), on_escalate=escalations.append)
    b = _child(sup, "b")
    for _ in range(2):
        b.tell("boom")
        assert b.ask("get") == []
    b.tell("boom")
    assert_eventually(lambda: bool(escalations))
    assert isinstance(escalations[0], RestartIntensityError)
    assert isinstance(escalations[0].__cause__, RuntimeError)
    assert Worker.stops == ["c", "a"]
    assert not sup.is_alive()
    assert isinstance(core.exit_reason(sup), core.Crashed)
    assert not b.is_alive()


def test_a_child_supervisor_escalates_to_its_parent() -> None:
    inner_factory_calls: list[int] = []

    def inner() -> pykka.ActorRef[Any]:
        inner_factory_calls.append(1)
        return Supervisor.start([ChildSpec("w", Factory("w"))], intensity=Intensity(0, 60.0))

    parent = Supervisor.start([ChildSpec("inner", inner, shutdown_timeout=None)])
    inner_sup = _child(parent, "inner")
    worker: StableRef = inner_sup.ask(core_proxy_call("child", "w"))
    worker.tell("boom")  # intensity 0: the inner supervisor gives up at once
    assert_eventually(lambda: len(inner_factory_calls) == 2)
    assert not worker.is_alive()  # the old inner supervisor terminated its child's handle
    new_worker: StableRef = inner_sup.ask(core_proxy_call("child", "w"))
    assert new_worker.ask("get") == []
    parent.stop()


def core_proxy_call(method: str, *args: Any) -> pykka.messages.ProxyCall:
    return pykka.messages.ProxyCall(attr_path=(method,), args=args, kwargs={})


def test_one_for_all_restarts_every_sibling() -> None:
    factories = {name: Factory(name) for name in ("a", "b", "c")}
    specs = [
        ChildSpec("a", factories["a"]),
        ChildSpec("b", factories["b"]),
        ChildSpec("c", factories["c"], restart=TEMPORARY),
    ]
    sup = Supervisor.start(specs, strategy=Strategy.ONE_FOR_ALL)
    a, b, c = (_child(sup, name) for name in ("a", "b", "c"))
    a.tell("kept until the restart")
    b.tell("boom")
    assert_eventually(lambda: factories["b"].calls == 2 and b.current is not None)
    assert a.ask("get") == []
    assert {name: f.calls for name, f in factories.items()} == {"a": 2, "b": 2, "c": 1}
    assert [info.id for info in sup.proxy().which_children().get()] == ["a", "b"]
    assert not c.is_alive()  # a temporary sibling taken down is forgotten
    sup.stop()


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    factories = {name: Factory(name) for name in ("a", "b", "c")}
    sup = Supervisor.start([ChildSpec(n, f) for n, f in factories.items()], strategy=Strategy.REST_FOR_ONE)
    a, b, c = (_child(sup, name) for name in ("a", "b", "c"))
    for handle in (a, b, c):
        handle.tell("x")
    b.tell("boom")
    assert_eventually(lambda: factories["c"].calls == 2 and c.current is not None)
    assert (a.ask("get"), b.ask("get"), c.ask("get")) == (["x"], [], [])
    assert {name: f.calls for name, f in factories.items()} == {"a": 1, "b": 2, "c": 2}
    sup.stop()


def test_dynamic_children() -> None:
    sup = DynamicSupervisor.start()
    proxy = sup.proxy()
    assert proxy.which_children().get() == []
    alice = proxy.start_child(ChildSpec("alice", Factory("alice"), restart=TRANSIENT)).get()
    bob = proxy.start_child(ChildSpec("bob", Factory("bob"), restart=TEMPORARY)).get()
    carol = proxy.start_child(ChildSpec("carol", Factory("carol"))).get()
    with pytest.raises(ValueError, match="already exists"):
        proxy.start_child(ChildSpec("alice", Factory("again"))).get()
    assert [info.id for info in proxy.which_children().get()] == ["alice", "bob", "carol"]

    alice.tell("boom")  # transient + crash: restarted
    assert alice.ask("get") == []
    bob.tell("boom")  # temporary: forgotten
    assert_eventually(lambda: not bob.is_alive())
    alice.tell("stop")  # transient + normal exit: forgotten
    assert_eventually(lambda: not alice.is_alive())
    assert [info.id for info in proxy.which_children().get()] == ["carol"]

    assert proxy.terminate_child("carol").get() is True
    assert proxy.terminate_child("carol").get() is False
    assert not carol.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        carol.ask("get")

    async def from_loop() -> str:
        dave = await proxy.start_child(ChildSpec("dave", Factory("dave")))
        return str(await dave.proxy().name_of())

    assert run(from_loop()) == "dave"
    sup.stop()


def test_a_failing_factory_counts_as_a_crash() -> None:
    attempts: list[int] = []
    escalations: list[BaseException] = []

    def flaky() -> pykka.ActorRef[Any]:
        attempts.append(1)
        if len(attempts) > 1:
            raise OSError("cannot reconnect")
        return Worker.start("a")

    sup = Supervisor.start(
        [ChildSpec("a", flaky)], intensity=Intensity(2, 60.0), on_escalate=escalations.append
    )
    _child(sup, "a").tell("boom")
    assert_eventually(lambda: bool(escalations))
    assert len(attempts) == 3  # the first start, then two restarts whose factory failed


class Stubborn(Worker):
    async def on_stop(self) -> None:
        self.stops.append(f"{self.name} stopping")
        await asyncio.Event().wait()


def test_ordered_shutdown_with_timeouts() -> None:
    Worker.stops = []
    specs = [
        ChildSpec("a", Factory("a")),
        ChildSpec("b", lambda: Stubborn.start("b"), shutdown_timeout=0.05),
        ChildSpec("c", Factory("c")),
    ]
    sup = Supervisor.start(specs)
    assert [info.id for info in sup.proxy().which_children().get()] == ["a", "b", "c"]
    started = time.monotonic()
    assert sup.stop(timeout=2) is True
    assert time.monotonic() - started < 1.0
    assert Worker.stops == ["c", "b stopping", "a"]


def test_backoff_uses_the_injected_clock_and_rng() -> None:
    now = [1000.0]
    backoff = Backoff(min_delay=0.01, max_delay=1.0, random_factor=1.0)
    sup = Supervisor.start(
        [ChildSpec("a", Factory("a"))],
        backoff=backoff,
        intensity=Intensity(5, 10.0),
        clock=lambda: now[0],
        rng=lambda: 0.5,
    )
    child = _child(sup, "a")
    for step in range(3):
        now[0] += 1.0
        child.tell("boom")
        assert child.ask("get", timeout=2) == [], step
    events = sup.proxy().restart_events().get()
    assert [event.at for event in events] == [1001.0, 1002.0, 1003.0]
    assert [event.delay for event in events] == pytest.approx([0.015, 0.03, 0.06])
    sup.stop()


def test_killing_a_supervisor_kills_its_children() -> None:
    sup = Supervisor.start([ChildSpec("a", Factory("a")), ChildSpec("b", Factory("b"))])
    a = _child(sup, "a")
    assert a.ask("get") == []
    core.kill_actor(sup)
    assert_eventually(lambda: not pykka.ActorRegistry.get_all())
    assert not a.is_alive()


def test_children_must_be_asyncio_actors() -> None:
    class Threaded(pykka.ThreadingActor):
        use_daemon_thread = True

    escalations: list[BaseException] = []
    refs: list[pykka.ActorRef[Any]] = []

    def start_threaded() -> pykka.ActorRef[Any]:
        refs.append(Threaded.start())
        return refs[-1]

    Supervisor.start([ChildSpec("t", start_threaded)], on_escalate=escalations.append)
    assert_eventually(lambda: bool(escalations))
    assert isinstance(escalations[0], TypeError)
    refs[0].stop()
