"""Where an agent's own code runs: one *logic loop* per job, watched by one off-loop watchdog thread.

Why a loop of its own, not greenroom's runtime loop: user code can block (``time.sleep``, a CPU-bound
loop, a synchronous HTTP call). On the runtime loop that would stall every connection of the process —
pings, media, the other jobs. On a logic loop it stalls only that job's logic, and the room connection (on
the runtime loop) keeps the participant in the room while the job's supervisor acts.

Why one loop per job, not one shared by all jobs: Python cannot preempt a thread. The only way to act on
a blocked loop is to *abandon* it and start the logic again on a fresh one; with a shared loop, every job
on it would have to be restarted for one job's fault. A logic loop is one thread (idle in ``epoll``, a
few tens of KiB resident) and two file descriptors (the loop's self-pipe), against one process per job
(~17 MiB PSS, 19 threads) in livekit-agents.

**An idle loop costs nothing.** A loop is not asked to prove it is alive (a heartbeat timer woke every
loop 20 times a second: 10,000 wake-ups/s for 500 idle jobs). Instead its selector is instrumented
(:class:`_TimedSelector`, given to ``asyncio.SelectorEventLoop(selector=...)``, public API): each pass of
the loop marks the loop *busy since T* when ``select()`` returns and *idle* when it is entered again. A
loop waiting in ``select()`` — however long, however starved of CPU the process is — is never blocked;
a loop busy since longer than its ``block_threshold`` is stuck inside one callback. The watchdog reads
``busy_since`` first and the clock second, so the stall it computes is never negative (reading them the
other way round once produced a report of a "-0.01 s" stall under load).

The watchdog (:class:`Watchdog`, one daemon thread per process, started with the first logic loop) looks
at every loop each :data:`WATCHDOG_TICK`. A blocked loop: the watchdog takes that thread's Python stack
(``sys._current_frames()``, CPython's documented introspection hook), logs it with the stuck task's name
at ERROR, and calls the loop's ``on_blocked`` — once per loop: a blocked loop is abandoned, never reused.
An abandoned loop is stopped as soon as its thread comes back (its remaining tasks are cancelled, then it
is closed); nothing waits for that. The same sweep checks each loop's :class:`Deliveries` (the agent's
dispatcher: how long it has had work without finishing or starting an item), which is how an async hang
is found without a timer per job (see :mod:`greenroom.agents.tree`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import selectors
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = [
    "DEFAULT_BLOCK_THRESHOLD",
    "WATCHDOG_TICK",
    "BlockedLoop",
    "Deliveries",
    "LogicLoop",
    "Watchdog",
    "thread_stack",
]

_log = logging.getLogger("greenroom.agents.loops")

T = TypeVar("T")

#: How often the watchdog looks at the loops (seconds): one wake-up per tick for the whole process.
WATCHDOG_TICK = 0.1
#: A logic loop busy in one pass for longer than this is blocked (seconds). Detection takes at most this
#: plus one watchdog tick (1.1 s), which leaves the supervisor most of the 2 s it is given.
DEFAULT_BLOCK_THRESHOLD = 1.0


@dataclass(frozen=True, slots=True)
class BlockedLoop:
    """What the watchdog found: a logic loop whose thread has not come back for ``stalled`` seconds.

    Attributes:
        loop_name: the logic loop's thread name.
        stalled: seconds the loop had been busy in one pass (out of ``select()``).
        task: the name of the task that was running (``""``: a plain callback).
        stack: the blocked thread's Python stack, formatted (most recent call last).
    """

    loop_name: str
    stalled: float
    task: str
    stack: str


def thread_stack(ident: int | None) -> str:
    """The current Python stack of the thread ``ident`` (``""`` if it has ended), most recent call last."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    return "" if frame is None else "".join(traceback.format_stack(frame))


class _TimedSelector(selectors.DefaultSelector):
    """The loop's selector, marking when the loop leaves ``select()`` (busy) and enters it (idle).

    Two attribute writes per pass of the loop and no wake-up of its own: the cost of watching an idle loop
    is zero. ``busy_since`` is written by the loop's thread only and read by the watchdog (a float or
    ``None``, read whole).
    """

    def __init__(self) -> None:
        super().__init__()
        self.busy_since: float | None = time.monotonic()  # until the loop first waits: starting
        self.passes = 0  # how many times the loop woke up (tests count an idle job's wake-ups with it)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.busy_since = None
        try:
            return super().select(timeout)
        finally:
            self.busy_since = time.monotonic()
            self.passes += 1


class Deliveries(Protocol):
    """What the watchdog asks of a logic's dispatcher (without a lock, from its own thread)."""

    def stalled(self) -> float:
        """Seconds it has had work (an item running or queued) without starting or finishing one; 0 when
        it has nothing to do. (Read the state first, the clock second: never negative.)"""
        ...


@dataclass(eq=False, slots=True)
class _DeliveryWatch:
    deliveries: Deliveries
    timeout: float
    on_hung: Callable[[float], None]
    reported: bool = False


class LogicLoop:
    """An asyncio loop on a daemon thread of its own, for one job's user code.

    Args:
        name: the thread's name (``greenroom-job-<id>``).
        on_blocked: called from the watchdog thread, once, when the loop is found blocked. It must be
            thread-safe and quick (the job tells its logic actor).
        block_threshold: seconds busy in one pass of the loop that count as blocked.
    """

    def __init__(
        self,
        name: str,
        on_blocked: Callable[[BlockedLoop], None],
        *,
        block_threshold: float = DEFAULT_BLOCK_THRESHOLD,
    ) -> None:
        self.name = name
        self.block_threshold = block_threshold
        self._on_blocked = on_blocked
        self._selector = _TimedSelector()
        self.loop = asyncio.SelectorEventLoop(self._selector)
        self.abandoned = False
        self._watch: _DeliveryWatch | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __repr__(self) -> str:
        return f"<LogicLoop {self.name}{' abandoned' if self.abandoned else ''}>"

    @classmethod
    def start(
        cls,
        name: str,
        on_blocked: Callable[[BlockedLoop], None],
        *,
        block_threshold: float = DEFAULT_BLOCK_THRESHOLD,
    ) -> LogicLoop:
        """Create the loop, start its thread and register it with the watchdog."""
        logic = cls(name, on_blocked, block_threshold=block_threshold)
        logic.thread.start()
        logic._ready.wait()
        Watchdog.instance().add(logic)
        return logic

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self._close()

    def _close(self) -> None:
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    # -- use from other threads ----------------------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` as a task on this loop (any thread); a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, callback: Callable[..., object], *args: object) -> bool:
        """Run ``callback(*args)`` on this loop soon (any thread); ``False`` once the loop is closed."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            return False
        return True

    @property
    def passes(self) -> int:
        """How many times the loop has come out of ``select()`` (its wake-ups, plus one per pass that
        had ready callbacks)."""
        return self._selector.passes

    def busy_for(self) -> float:
        """Seconds the loop has been busy in its current pass (0 while it waits in ``select()``).

        ``busy_since`` is read before the clock, so the result is never negative.
        """
        since = self._selector.busy_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def blocked_report(self, stalled: float) -> BlockedLoop:
        """Describe the stuck thread (from another thread, while the loop is blocked for ``stalled`` s)."""
        task = asyncio.current_task(self.loop) if not self.loop.is_closed() else None
        return BlockedLoop(
            self.name,
            stalled,
            task.get_name() if task is not None else "",
            thread_stack(self.thread.ident),
        )

    def watch(self, deliveries: Deliveries, timeout: float, on_hung: Callable[[float], None]) -> object:
        """Have the watchdog check ``deliveries`` (the live logic's dispatcher): once it has been stalled
        for more than ``timeout`` s, ``on_hung(stalled)`` is called from the watchdog thread — once, until
        :meth:`rearm`. Replaces the previous watch; returns a token for :meth:`unwatch`/:meth:`rearm`."""
        self._watch = _DeliveryWatch(deliveries, timeout, on_hung)
        return self._watch

    def unwatch(self, token: object) -> None:
        """Stop checking the deliveries of ``token`` (if it is still the current watch)."""
        if self._watch is token:
            self._watch = None

    def rearm(self, token: object) -> None:
        """A hang report of ``token`` was a false alarm (it made progress meanwhile): report again."""
        if isinstance(token, _DeliveryWatch):
            token.reported = False

    def check_deliveries(self) -> None:
        """The watchdog's look at the live logic's dispatcher (watchdog thread)."""
        watch = self._watch
        if watch is None or watch.reported:
            return
        stalled = watch.deliveries.stalled()
        if stalled > watch.timeout:
            watch.reported = True
            try:
                watch.on_hung(stalled)
            except Exception:
                _log.exception("%s: on_hung failed", self.name)

    def report_blocked(self, report: BlockedLoop) -> None:
        """Hand ``report`` to the owner (watchdog thread); the loop counts as abandoned from now on."""
        self.abandoned = True
        try:
            self._on_blocked(report)
        except Exception:
            _log.exception("%s: on_blocked failed", self.name)

    def close(self) -> None:
        """Stop the loop (any thread): its tasks are cancelled and it closes once its thread is free.

        A blocked thread is not waited for: the loop stops when (if) the blocking call returns.
        """
        self.abandoned = True
        Watchdog.instance().remove(self)
        self.call_soon(self.loop.stop)


class Watchdog:
    """The off-loop watchdog: one daemon thread per process that checks every logic loop (blocked?) and
    its dispatcher (hung?) each :data:`WATCHDOG_TICK`."""

    _instance: Watchdog | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._loops: set[LogicLoop] = set()
        self._lock = threading.Lock()
        self.detections = 0
        self.ticks = 0
        self.thread = threading.Thread(target=self._run, name="greenroom-agent-watchdog", daemon=True)

    @classmethod
    def instance(cls) -> Watchdog:
        """The process's watchdog, started on first use (re-created in a forked child)."""
        with cls._instance_lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
                cls._instance.thread.start()
            return cls._instance

    def add(self, logic: LogicLoop) -> None:
        """Watch ``logic``."""
        with self._lock:
            self._loops.add(logic)

    def remove(self, logic: LogicLoop) -> None:
        """Stop watching ``logic``."""
        with self._lock:
            self._loops.discard(logic)

    def watched(self) -> int:
        """How many loops are watched."""
        with self._lock:
            return len(self._loops)

    def loops(self) -> list[LogicLoop]:
        """The loops watched now."""
        with self._lock:
            return list(self._loops)

    def _run(self) -> None:
        while True:
            time.sleep(WATCHDOG_TICK)
            self.check()
            self.ticks += 1

    def check(self) -> list[BlockedLoop]:
        """Look at every loop once: report (and stop watching) the blocked ones; check the others'
        deliveries."""
        blocked: list[tuple[LogicLoop, float]] = []
        with self._lock:
            loops = list(self._loops)
        for logic in loops:
            if logic.abandoned:  # closed meanwhile
                continue
            busy = logic.busy_for()
            if busy > logic.block_threshold:
                blocked.append((logic, busy))
            else:
                logic.check_deliveries()
        with self._lock:
            self._loops.difference_update(logic for logic, _ in blocked)
        reports = []
        for logic, busy in blocked:
            report = logic.blocked_report(busy)
            self.detections += 1
            _log.error(
                "agent loop %s blocked for %.2f s in task %r; abandoning it. Stuck at:\n%s",
                report.loop_name,
                report.stalled,
                report.task,
                report.stack,
            )
            logic.report_blocked(report)
            reports.append(report)
        return reports
