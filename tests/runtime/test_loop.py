from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any

import pytest

from greenroom.runtime import loop as rt
from tests.waiting import wait_until_sync


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    rt.shutdown()


def _thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_nothing_starts_until_first_use() -> None:
    assert not rt.is_running()
    assert "greenroom-runtime" not in _thread_names()
    loop = rt.get_loop()
    assert loop.is_running()
    assert rt.is_running()
    assert "greenroom-runtime" in _thread_names()
    rt.shutdown()
    assert "greenroom-runtime" not in _thread_names()


def test_run_sync_returns_results_and_errors() -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)  # a yield: the result crosses a real suspension (no wait before an assertion)
        assert rt.in_runtime_thread()
        return a + b

    async def boom() -> None:
        raise ValueError("boom")

    assert rt.run_sync(add(2, 3), timeout=2) == 5
    with pytest.raises(ValueError, match="boom"):
        rt.run_sync(boom(), timeout=2)
    assert not rt.in_runtime_thread()


def test_run_sync_times_out_and_cancels() -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)  # the slow work that run_sync's timeout must cancel (behaviour)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        rt.run_sync(slow(), timeout=0.05)
    assert cancelled.wait(2)


def test_run_sync_on_the_loop_thread_refuses_instead_of_deadlocking() -> None:
    async def inner() -> str:
        return "never"

    async def outer() -> str:
        with pytest.raises(rt.LoopMisuseError):
            rt.run_sync(inner())
        return "refused"

    assert rt.run_sync(outer(), timeout=2) == "refused"


def test_shutdown_runs_hooks_and_cancels_tasks() -> None:
    order: list[str] = []
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(100)  # a task that runs until shutdown cancels it (behaviour)
        except asyncio.CancelledError:
            order.append("task cancelled")
            raise

    async def hook() -> None:
        order.append("hook")

    rt.add_shutdown_hook(hook)
    rt.submit(forever())
    assert started.wait(2)
    rt.shutdown()
    assert order == ["hook", "task cancelled"]


def test_call_soon_from_any_thread() -> None:
    done = threading.Event()
    rt.call_soon(done.set)
    assert done.wait(2)

    async def from_loop() -> None:
        rt.call_soon(done.clear)

    rt.run_sync(from_loop(), timeout=2)
    wait_until_sync(lambda: not done.is_set(), timeout=2, what="call_soon from the loop thread to run")


def test_watchdog_counts_ticks_and_stalls() -> None:
    import time

    async def block() -> None:
        time.sleep(0.08)  # noqa: ASYNC251 - a deliberately blocking handler stalls the loop

    rt.run_sync(block(), timeout=2)
    wait_until_sync(
        lambda: rt.stats().ticks >= 1 and rt.stats().stalls >= 1,
        timeout=2,
        what="the watchdog to tick and count the stall",
    )
    assert rt.stats().max_lag > rt.LAG_WARNING
    # the lag histogram (what /metrics exports) counts every tick, each stall in a bucket above 20 ms
    stats = rt.stats()
    assert sum(stats.buckets) == stats.ticks
    assert sum(stats.buckets[rt.LAG_BUCKETS.index(rt.LAG_WARNING) + 1 :]) == stats.stalls >= 1
    assert stats.lag_sum >= max(stats.lags)


def _child_uses_runtime(queue: multiprocessing.Queue[int]) -> None:
    async def answer() -> int:
        return 42

    queue.put(rt.run_sync(answer(), timeout=5))
    rt.shutdown()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_runtime_works_in_a_child_process(method: str) -> None:
    rt.get_loop()  # the parent's loop thread exists before the fork
    ctx: Any = multiprocessing.get_context(method)
    queue: multiprocessing.Queue[int] = ctx.Queue()
    child = ctx.Process(target=_child_uses_runtime, args=(queue,))
    child.start()
    assert queue.get(timeout=20) == 42
    child.join(10)
    assert child.exitcode == 0
