"""What one process measures about its bots, read by the fleet's reports: handler time, message latency,
messages handled, the runtime loop's lag and the actors' mailboxes.

* Handler time is measured for every ``Agent``-shape bot the fleet runs (its ``on_message`` is timed,
  :mod:`greenroom.fleet.targets`). An entrypoint-shape bot, or a bot that measures something else (a
  round trip, a one-way latency from a timestamp in the payload), calls :func:`record_latency` and
  :func:`record_message` itself.
* Loop lag comes from the runtime's own watchdog (``greenroom.runtime.loop.stats()``), mailbox depth from
  the actors layer (``live_actors()`` and ``mailbox_stats()``): every greenroom process has them, the fleet
  only reads them.

Histograms keep cumulative bucket counts (Prometheus' shape) and, for the live table, the samples of the
current window (bounded: :data:`WINDOW_SAMPLES`, the newest kept) from which p50/p99 are taken.
"""

from __future__ import annotations

import bisect
import collections
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from greenroom.actors.core import live_actors, mailbox_stats
from greenroom.runtime import loop as runtime

__all__ = [
    "LATENCY_BUCKETS",
    "WINDOW_SAMPLES",
    "HistogramSnapshot",
    "LatencyHistogram",
    "MailboxTotals",
    "ProcessStats",
    "StatsSnapshot",
    "mailbox_totals",
    "percentile",
    "process_stats",
    "record_latency",
    "record_message",
]

#: Upper bounds (seconds) of the latency histograms' buckets; the last bucket is +Inf.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Samples kept per report window for p50/p99 (the newest; older ones still count in the buckets).
WINDOW_SAMPLES = 20_000


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (``nan`` when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative counts per bucket (the last is +Inf), their sum, and the window's p50/p99."""

    buckets: tuple[int, ...]
    total: float
    count: int
    p50: float
    p99: float
    window: int


class LatencyHistogram:
    """A thread-safe histogram (handlers run on logic loops and executor threads)."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._window: collections.deque[float] = collections.deque(maxlen=WINDOW_SAMPLES)

    def observe(self, seconds: float) -> None:
        """Count one sample."""
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds
            self._window.append(seconds)

    def snapshot(self, *, reset_window: bool) -> HistogramSnapshot:
        """The counts so far and the window's percentiles (the window starts again if asked)."""
        with self._lock:
            counts, total, window = list(self._counts), self._sum, list(self._window)
            if reset_window:
                self._window.clear()
        cumulative = tuple(sum(counts[: i + 1]) for i in range(len(counts)))
        return HistogramSnapshot(
            cumulative, total, cumulative[-1], percentile(window, 50), percentile(window, 99), len(window)
        )


@dataclass(frozen=True, slots=True)
class MailboxTotals:
    """The process's actor mailboxes: how many actors, messages queued (sum, deepest), drops, refusals."""

    actors: int = 0
    depth: int = 0
    max_depth: int = 0
    dropped: int = 0
    rejected: int = 0


def mailbox_totals() -> MailboxTotals:
    """Sum the mailbox counters of every live greenroom actor of this process (any thread)."""
    actors = depth = deepest = dropped = rejected = 0
    for ref in live_actors():
        try:
            stats = mailbox_stats(ref)
        except TypeError:
            continue
        actors += 1
        depth += stats.depth
        deepest = max(deepest, stats.depth)
        dropped += stats.dropped
        rejected += stats.rejected
    return MailboxTotals(actors, depth, deepest, dropped, rejected)


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """One reading of :class:`ProcessStats` plus the runtime and actors layers' counters."""

    messages: int
    handler: HistogramSnapshot
    latency: HistogramSnapshot
    loop_lag: tuple[int, ...]
    loop_lag_sum: float
    loop_lag_max: float
    mailboxes: MailboxTotals


class ProcessStats:
    """The process's counters (one instance: :func:`process_stats`)."""

    def __init__(self) -> None:
        self.handler = LatencyHistogram()
        self.latency = LatencyHistogram()
        self._lock = threading.Lock()
        self._messages = 0

    def message(self, count: int = 1) -> None:
        """Count handled messages."""
        with self._lock:
            self._messages += count

    def snapshot(self, *, reset_window: bool = True) -> StatsSnapshot:
        """Read everything (the loop's counters only if the runtime loop already runs)."""
        with self._lock:
            messages = self._messages
        lag: tuple[int, ...] = ()
        lag_sum = lag_max = 0.0
        if runtime.is_running():
            loop_stats = runtime.stats()
            lag, lag_sum, lag_max = tuple(loop_stats.buckets), loop_stats.lag_sum, loop_stats.max_lag
        return StatsSnapshot(
            messages,
            self.handler.snapshot(reset_window=reset_window),
            self.latency.snapshot(reset_window=reset_window),
            lag,
            lag_sum,
            lag_max,
            mailbox_totals(),
        )


_stats = ProcessStats()


def process_stats() -> ProcessStats:
    """This process's counters."""
    return _stats


def record_latency(seconds: float) -> None:
    """Record one message latency measured by a bot (e.g. send → receive); shown as ``latency`` p50/p99."""
    _stats.latency.observe(seconds)


def record_message(count: int = 1) -> None:
    """Count messages handled by a bot that the fleet does not time itself (an entrypoint-shape bot)."""
    _stats.message(count)
