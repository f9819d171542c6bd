"""The process runtime loop: one asyncio loop per process, on its own daemon thread.

All network I/O (websockets, aiortc) and every greenroom actor live on this loop (DESIGN.md §3). It is
started lazily by the first :func:`get_loop` call — never at import, because forking a process that already
runs threads is unsafe — and stopped by :func:`shutdown` (also registered with :mod:`atexit`). In a forked
child the parent's loop thread does not exist; an ``os.register_at_fork`` hook forgets it so the child's first
:func:`get_loop` starts a fresh one (the inherited sockets belong to the parent and are left alone).

User code never runs here: the rtc facade bridges results back to the user's own loop or thread.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from greenroom.codecs.errors import GreenroomError

__all__ = [
    "LAG_BUCKETS",
    "LoopMisuseError",
    "LoopStats",
    "Sink",
    "add_shutdown_hook",
    "call_soon",
    "get_loop",
    "in_runtime_thread",
    "is_running",
    "run_sync",
    "shutdown",
    "stats",
    "submit",
]

_log = logging.getLogger("greenroom.runtime.loop")
T = TypeVar("T")

#: A loop-lag watchdog tick: how often the loop checks that it is still responsive.
WATCHDOG_INTERVAL = 0.05
#: A tick that overshoots by more than this is logged as a stall (an audio frame lasts 20 ms).
LAG_WARNING = 0.020
#: Upper bounds (seconds) of the lag histogram's buckets (:attr:`LoopStats.buckets`; the last is +Inf).
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class Sink(Protocol):
    """Where the runtime delivers events: anything with ``tell`` (a pykka ``ActorRef`` fits).

    The runtime never imports the actors layer; transports are handed a sink and call ``tell`` with frozen
    event values.
    """

    def tell(self, message: Any) -> None:
        """Deliver ``message`` without waiting for it to be handled."""


class LoopMisuseError(GreenroomError):
    """Misuse of the runtime loop (blocking on it from its own thread, using it after shutdown)."""


@dataclass(slots=True)
class LoopStats:
    """Counters of the loop-lag watchdog.

    ``buckets`` and ``lag_sum`` are a histogram of every tick's lag (counts per :data:`LAG_BUCKETS` bound,
    not cumulative, the last for larger lags), which metrics exporters read; ``lags`` keeps the last 100
    stalls for logs and tests.
    """

    ticks: int = 0
    stalls: int = 0
    max_lag: float = 0.0
    lags: list[float] = field(default_factory=list)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_sum: float = 0.0

    def record(self, lag: float) -> None:
        self.ticks += 1
        self.max_lag = max(self.max_lag, lag)
        self.lag_sum += max(lag, 0.0)
        self.buckets[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        if lag > LAG_WARNING:
            self.stalls += 1
            self.lags.append(lag)
            del self.lags[:-100]


class _Runtime:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.slow_callback_duration = 0.1
        self.stats = LoopStats()
        self.hooks: list[Callable[[], Awaitable[None]]] = []
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="greenroom-runtime", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        watchdog = self.loop.create_task(self._watchdog(), name="greenroom-watchdog")
        try:
            self.loop.run_forever()
        finally:
            watchdog.cancel()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _watchdog(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(WATCHDOG_INTERVAL)
            lag = time.monotonic() - started - WATCHDOG_INTERVAL
            self.stats.record(lag)
            if lag > LAG_WARNING:
                _log.warning("runtime loop stalled for %.1f ms", lag * 1000)

    async def _stop(self) -> None:
        for hook in reversed(self.hooks):
            try:
                await asyncio.wait_for(hook(), timeout=5.0)
            except Exception:
                _log.exception("runtime shutdown hook failed")
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self, timeout: float) -> None:
        if threading.current_thread() is self.thread:
            raise LoopMisuseError("shutdown() cannot be called from the runtime loop thread")
        if self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._stop(), self.loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


_lock = threading.Lock()
_runtime: _Runtime | None = None


def _current() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _Runtime()
            _log.debug("runtime loop started in pid %d", os.getpid())
        return _runtime


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the process runtime loop, starting its thread on first use."""
    return _current().loop


def is_running() -> bool:
    """Whether this process has a live runtime loop (without starting one)."""
    return _runtime is not None and _runtime.thread.is_alive()


def in_runtime_thread() -> bool:
    """Whether the caller runs on the runtime loop's thread."""
    return _runtime is not None and threading.current_thread() is _runtime.thread


def stats() -> LoopStats:
    """The loop-lag watchdog's counters."""
    return _current().stats


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the runtime loop from any thread; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def call_soon(callback: Callable[..., object], *args: object) -> None:
    """Run ``callback(*args)`` on the runtime loop soon (thread-safe, fire and forget)."""
    loop = get_loop()
    if in_runtime_thread():
        loop.call_soon(callback, *args)
    else:
        loop.call_soon_threadsafe(callback, *args)


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the runtime loop and block the calling thread for its result.

    Raises:
        LoopMisuseError: when called on the runtime loop's own thread (it would deadlock).
        TimeoutError: when ``timeout`` passes first (the coroutine is cancelled).
    """
    if in_runtime_thread():
        coro.close()
        raise LoopMisuseError("run_sync() would block the runtime loop on itself; await instead")
    future = submit(coro)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"runtime call did not finish within {timeout} s") from None


def add_shutdown_hook(hook: Callable[[], Awaitable[None]]) -> None:
    """Register a coroutine function run on the loop by :func:`shutdown` (last registered runs first)."""
    _current().hooks.append(hook)


def shutdown(timeout: float = 5.0) -> None:
    """Stop the runtime loop: run the hooks, cancel every task, stop and join the thread.

    Safe to call more than once; a later :func:`get_loop` starts a new loop.
    """
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.stop(timeout)


def _forget_after_fork() -> None:
    # The child has no runtime thread: forget the parent's loop without touching it (its sockets are the
    # parent's). A fresh lock too, in case the fork happened while another thread held it.
    global _runtime, _lock
    _runtime = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(shutdown)
