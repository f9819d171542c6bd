"""The host's picture of the fleet: the latest report of each worker process plus what the host counted
itself (process restarts). One owner — the host's loop — writes it; the table, ``/metrics``, ``/healthz``
and the final summary read it.

Counters that a worker keeps (messages, restarts, reconnects, histograms) start from zero in a restarted
process; the view adds a dead process's last counters to its slot's *retired* totals, so the fleet's
counters only grow.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from greenroom.fleet.reconcile import BotState
from greenroom.fleet.stats import HistogramSnapshot
from greenroom.fleet.worker import WorkerReport

__all__ = ["FleetView", "SlotView", "Totals"]


@dataclass
class Totals:
    """Counters that only grow (per slot, across the slot's processes)."""

    messages: int = 0
    reconnects: int = 0
    restarts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    handler: list[int] = field(default_factory=list)
    handler_sum: float = 0.0
    latency: list[int] = field(default_factory=list)
    latency_sum: float = 0.0
    lag: list[int] = field(default_factory=list)
    lag_sum: float = 0.0

    def add(self, other: Totals) -> Totals:
        """The sum of two totals."""
        return Totals(
            self.messages + other.messages,
            self.reconnects + other.reconnects,
            self.restarts + other.restarts,
            _add(self.handler, other.handler),
            self.handler_sum + other.handler_sum,
            _add(self.latency, other.latency),
            self.latency_sum + other.latency_sum,
            _add(self.lag, other.lag),
            self.lag_sum + other.lag_sum,
        )

    @classmethod
    def of(cls, report: WorkerReport) -> Totals:
        """A worker report's counters."""
        stats = report.stats
        return cls(
            stats.messages,
            report.runner.reconnects,
            collections.Counter({(level, reason): n for level, reason, n in report.runner.restarts}),
            list(stats.handler.buckets),
            stats.handler.total,
            list(stats.latency.buckets),
            stats.latency.total,
            list(stats.loop_lag),
            stats.loop_lag_sum,
        )


def _add(a: list[int], b: list[int]) -> list[int]:
    if not a or not b:
        return list(a or b)
    return [x + y for x, y in zip(a, b, strict=True)]


@dataclass
class SlotView:
    """One process slot as the host sees it."""

    slot: int
    pid: int = 0
    state: str = "starting"
    assigned: int = 0
    capacity: int = 0
    process_restarts: int = 0
    report: WorkerReport | None = None
    previous: WorkerReport | None = None
    retired: Totals = field(default_factory=Totals)

    def totals(self) -> Totals:
        """Retired totals plus the live process's counters."""
        return self.retired if self.report is None else self.retired.add(Totals.of(self.report))

    def retire(self) -> None:
        """The process ended: keep its counters, forget its report."""
        if self.report is not None:
            self.retired = self.retired.add(Totals.of(self.report))
        self.report = self.previous = None

    def update(self, report: WorkerReport) -> None:
        """A new report arrived."""
        self.previous, self.report, self.pid = self.report, report, report.pid

    def by_state(self) -> dict[str, int]:
        """Bots by state (from the last report)."""
        return {} if self.report is None else self.report.runner.by_state()

    def rate(self) -> float:
        """Messages per second between the last two reports."""
        if self.report is None or self.previous is None:
            return 0.0
        elapsed = self.report.at - self.previous.at
        delta = self.report.stats.messages - self.previous.stats.messages
        return delta / elapsed if elapsed > 0 else 0.0

    def window(self, which: str) -> HistogramSnapshot | None:
        """The last report's ``handler`` or ``latency`` histogram."""
        if self.report is None:
            return None
        return self.report.stats.handler if which == "handler" else self.report.stats.latency


@dataclass
class FleetView:
    """Everything the host knows about its fleet."""

    desired: int = 0
    started: float = field(default_factory=time.monotonic)
    slots: dict[int, SlotView] = field(default_factory=dict)
    process_restarts: collections.Counter[str] = field(default_factory=collections.Counter)
    draining: bool = False
    before_drain: dict[str, int] = field(default_factory=dict)

    def slot(self, slot: int) -> SlotView:
        """The view of ``slot`` (made on first use)."""
        return self.slots.setdefault(slot, SlotView(slot))

    def by_state(self) -> dict[str, int]:
        """Bots by state over every live process (``unplaced``: wanted, in no process)."""
        counts: collections.Counter[str] = collections.Counter()
        for view in self.slots.values():
            counts.update(view.by_state())
        known = sum(counts.values()) - counts.get(BotState.DONE.value, 0)
        if self.desired > known and not self.draining:
            counts["unplaced"] += self.desired - known
        return dict(counts)

    def running(self) -> int:
        """Bots in their room now."""
        states = self.by_state()
        return states.get(BotState.RUNNING.value, 0) + states.get(BotState.RECONNECTING.value, 0)

    def totals(self) -> Totals:
        """The fleet's counters."""
        total = Totals()
        for view in self.slots.values():
            total = total.add(view.totals())
        for reason, n in self.process_restarts.items():
            total.restarts["process", reason] += n
        return total

    def restarts(self) -> dict[str, int]:
        """Restarts by level (``logic``, ``bot``, ``process``)."""
        levels: collections.Counter[str] = collections.Counter()
        for (level, _reason), n in self.totals().restarts.items():
            levels[level] += n
        return dict(levels)

    def errors(self) -> list[str]:
        """The bots' last errors (from the latest reports)."""
        return [
            f"{b.identity}: {b.last_error}"
            for view in self.slots.values()
            if view.report is not None
            for b in view.report.runner.bots
            if b.last_error
        ]


def merged_percentiles(windows: Iterable[HistogramSnapshot | None]) -> tuple[float, float]:
    """The worst p50 and p99 over processes (a fleet's p99 is at least its worst process's)."""
    found = [w for w in windows if w is not None and w.window]
    if not found:
        return math.nan, math.nan
    return max(w.p50 for w in found), max(w.p99 for w in found)


__all__ += ["merged_percentiles"]
