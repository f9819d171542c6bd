"""What a process measures: histograms with windows, mailbox totals from the actors layer, and the timing
the fleet wraps around an agent's handler (async stays async, plain stays plain)."""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any

import pytest

from greenroom.actors.core import AsyncioActor, stop_actor
from greenroom.agents import Agent
from greenroom.fleet.stats import LatencyHistogram, MailboxTotals, mailbox_totals, percentile, process_stats
from greenroom.fleet.targets import instrumented
from greenroom.runtime import loop as runtime
from tests.waiting import wait_until_sync


def test_a_histogram_keeps_cumulative_buckets_and_a_window_for_percentiles() -> None:
    h = LatencyHistogram((0.01, 0.1))
    for value in (0.001, 0.002, 0.05, 0.5):
        h.observe(value)
    snap = h.snapshot(reset_window=True)
    assert snap.buckets == (2, 3, 4)
    assert snap.count == 4
    assert math.isclose(snap.total, 0.553)
    assert (snap.p50, snap.p99, snap.window) == (0.002, 0.5, 4)
    after = h.snapshot(reset_window=False)
    assert after.buckets == (2, 3, 4)
    assert after.window == 0
    assert math.isnan(after.p50)
    assert math.isnan(percentile([], 50))


class _Gate(AsyncioActor):
    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate

    async def on_receive(self, message: Any) -> None:
        await self.gate.wait()


def _queued(depth: int) -> MailboxTotals | None:
    totals = mailbox_totals()
    return totals if totals.depth >= depth else None


def test_mailbox_totals_sum_the_live_actors_queues() -> None:
    async def make() -> tuple[Any, asyncio.Event]:
        gate = asyncio.Event()
        return _Gate.start(gate), gate

    ref, gate = runtime.run_sync(make(), timeout=5)
    try:
        before = mailbox_totals()
        for n in range(5):
            ref.tell(n)  # the first is being handled (held at the gate), four wait
        totals = wait_until_sync(lambda: _queued(before.depth + 4), what="four messages queued")
        assert totals.max_depth >= 4
        assert totals.actors >= 1
    finally:
        runtime.call_soon(gate.set)
        runtime.run_sync(stop_actor(ref), timeout=5)


class _Async(Agent):
    async def on_message(self, message: Any) -> None:
        await asyncio.sleep(0.01)


class _Plain(Agent):
    def on_message(self, message: Any) -> None:
        if message == "boom":
            raise ValueError(message)


def test_the_fleet_times_an_agents_handler_without_changing_its_kind() -> None:
    stats = process_stats()
    count = stats.handler.snapshot(reset_window=False).count
    timed_async, timed_plain = instrumented(_Async), instrumented(_Plain)
    assert instrumented(_Async) is timed_async  # made once per class
    assert issubclass(timed_async, _Async)
    assert timed_async.__name__ == "_Async"
    assert inspect.iscoroutinefunction(timed_async().on_message)
    assert not inspect.iscoroutinefunction(timed_plain().on_message)
    asyncio.run(timed_async().on_message("x"))
    timed_plain().on_message("x")
    with pytest.raises(ValueError, match="boom"):
        timed_plain().on_message("boom")
    snap = stats.handler.snapshot(reset_window=False)
    assert snap.count == count + 3  # a handler that raises is timed too
    assert snap.total >= 0.01
