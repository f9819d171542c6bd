"""The logic loops' watchdog and the dispatcher's liveness deadline, on their own (no server): a loop busy
in many short passes is alive, one long pass is blocked; a stuck delivery is a hang, a backlog of quick
ones is not; reports are never about a negative stall."""

from __future__ import annotations

import asyncio
import threading
import time

from greenroom.agents.dispatch import Dispatcher
from greenroom.agents.loops import WATCHDOG_TICK, BlockedLoop, LogicLoop, Watchdog
from tests.waiting import wait_until_sync


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _loop(blocked: list[BlockedLoop], threshold: float) -> LogicLoop:
    return LogicLoop.start(f"greenroom-test-{time.monotonic_ns()}", blocked.append, block_threshold=threshold)


def _ticks(count: int) -> None:
    """Wait until the watchdog has looked at every loop ``count`` more times."""
    watchdog = Watchdog.instance()
    target = watchdog.ticks + count
    wait_until_sync(lambda: watchdog.ticks >= target, timeout=count * WATCHDOG_TICK + 30, what="ticks")


def test_a_loaded_loop_is_not_blocked_and_one_long_pass_is() -> None:
    """Many short passes under CPU contention (other threads spinning for the GIL) keep a loop alive for
    longer than its threshold; a single pass longer than the threshold is reported, once, with a stall
    that is not negative."""
    blocked: list[BlockedLoop] = []
    logic = _loop(blocked, threshold=0.3)
    stop = threading.Event()
    hogs = [threading.Thread(target=_hog, args=(stop,), daemon=True) for _ in range(3)]
    for hog in hogs:
        hog.start()
    try:
        done = threading.Event()
        passes = logic.passes

        def chain(left: int) -> None:
            _spin(0.02)  # a short callback: the loop passes through select() between two of them
            if left:
                logic.loop.call_soon(chain, left - 1)
            else:
                done.set()

        logic.call_soon(chain, 60)  # ≥ 1.2 s of work: four times the threshold
        assert done.wait(60)
        assert logic.passes - passes >= 60
        _ticks(3)
        assert blocked == []
        assert logic in Watchdog.instance().loops()
    finally:
        stop.set()
        for hog in hogs:
            hog.join()
    release = threading.Event()
    logic.call_soon(release.wait, 30)  # one pass that does not come back
    try:
        wait_until_sync(lambda: blocked, timeout=10, what="the blocked report")
        _ticks(3)
        assert len(blocked) == 1
        assert blocked[0].stalled > 0.3
        assert ", in wait\n" in blocked[0].stack  # the blocked thread's stack: inside Event.wait
        assert logic.abandoned
    finally:
        release.set()
        logic.close()


def _hog(stop: threading.Event) -> None:
    while not stop.is_set():
        _spin(0.005)


def test_a_stuck_delivery_is_a_hang_and_a_backlog_of_quick_ones_is_not() -> None:
    blocked: list[BlockedLoop] = []
    logic = _loop(blocked, threshold=30)
    errors: list[BaseException] = []
    dispatcher = Dispatcher(logic, errors.append)
    hung: list[float] = []
    token = logic.watch(dispatcher, 0.3, hung.append)
    assert logic.submit(_start(dispatcher)).result(10) is None
    try:
        done = threading.Event()
        for _ in range(40):  # 40 × 20 ms: 0.8 s of work in one backlog, progress every 20 ms
            dispatcher.post(_spin, (0.02,))
        dispatcher.post(done.set)
        assert done.wait(30)
        _ticks(3)
        assert hung == []
        assert dispatcher.stalled() == 0.0  # nothing to do: nothing to watch

        never: asyncio.Future[None] | None = None

        async def stuck() -> None:
            nonlocal never
            never = asyncio.get_running_loop().create_future()
            await never  # an async hang: the loop runs on, this delivery never ends

        dispatcher.post(stuck)
        wait_until_sync(lambda: hung, timeout=10, what="the hang report")
        _ticks(3)
        assert len(hung) == 1  # once, until re-armed
        assert hung[0] > 0.3
        assert "stuck" in dispatcher.stack()
        assert blocked == []
        logic.rearm(token)
        wait_until_sync(lambda: len(hung) == 2, timeout=10, what="the report after a re-arm")
        logic.unwatch(token)
        assert errors == []
    finally:
        logic.close()


async def _start(dispatcher: Dispatcher) -> None:
    dispatcher.start()
