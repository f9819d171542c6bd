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

The watchdog (:class:`Watchdog`, one daemon thread per process, started with the first logic loop) reads
each loop's heartbeat every :data:`WATCHDOG_TICK`. A heartbeat older than the loop's ``block_threshold``
means the loop thread is stuck inside one callback: the watchdog takes that thread's Python stack
(``sys._current_frames()``, CPython's documented introspection hook), logs it with the stuck task's name at
ERROR, and calls the loop's ``on_blocked`` — once per loop: a blocked loop is abandoned, never reused. An
abandoned loop is stopped as soon as its thread comes back (its remaining tasks are cancelled, then it is
closed); nothing waits for that.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_BLOCK_THRESHOLD",
    "HEARTBEAT",
    "WATCHDOG_TICK",
    "BlockedLoop",
    "LogicLoop",
    "Watchdog",
    "thread_stack",
]

_log = logging.getLogger("greenroom.agents.loops")

T = TypeVar("T")

#: How often a logic loop proves it is alive (seconds).
HEARTBEAT = 0.05
#: How often the watchdog looks at the heartbeats (seconds).
WATCHDOG_TICK = 0.05
#: A logic loop whose heartbeat is older than this is blocked (seconds). Detection takes at most this plus
#: one heartbeat and one watchdog tick (1.1 s), which leaves the supervisor most of the 2 s it is given.
DEFAULT_BLOCK_THRESHOLD = 1.0


@dataclass(frozen=True, slots=True)
class BlockedLoop:
    """What the watchdog found: a logic loop whose thread has not come back for ``stalled`` seconds.

    Attributes:
        loop_name: the logic loop's thread name.
        stalled: seconds since its last heartbeat.
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


class LogicLoop:
    """An asyncio loop on a daemon thread of its own, for one job's user code.

    Args:
        name: the thread's name (``greenroom-job-<id>``).
        on_blocked: called from the watchdog thread, once, when the loop is found blocked. It must be
            thread-safe and quick (the job tells its logic actor).
        block_threshold: seconds without a heartbeat that count as blocked.
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
        self.loop = asyncio.new_event_loop()
        self.beat = time.monotonic()
        self.abandoned = False
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
        self.loop.call_soon(self._heartbeat)
        try:
            self.loop.run_forever()
        finally:
            self._close()

    def _heartbeat(self) -> None:
        self.beat = time.monotonic()
        self.loop.call_later(HEARTBEAT, self._heartbeat)

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

    def stalled(self, now: float) -> float:
        """Seconds since the last heartbeat."""
        return now - self.beat

    def blocked_report(self, now: float) -> BlockedLoop:
        """Describe the stuck thread (called from the watchdog thread while the loop is blocked)."""
        task = asyncio.current_task(self.loop) if not self.loop.is_closed() else None
        return BlockedLoop(
            self.name,
            self.stalled(now),
            task.get_name() if task is not None else "",
            thread_stack(self.thread.ident),
        )

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
    """The off-loop watchdog: one daemon thread per process that checks every logic loop's heartbeat."""

    _instance: Watchdog | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._loops: set[LogicLoop] = set()
        self._lock = threading.Lock()
        self.detections = 0
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

    def _run(self) -> None:
        while True:
            time.sleep(WATCHDOG_TICK)
            self.check(time.monotonic())

    def check(self, now: float) -> list[BlockedLoop]:
        """Look at every heartbeat once; report (and stop watching) the blocked loops."""
        with self._lock:
            blocked = [lp for lp in self._loops if lp.stalled(now) > lp.block_threshold]
            self._loops.difference_update(blocked)
        reports = []
        for logic in blocked:
            report = logic.blocked_report(now)
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
