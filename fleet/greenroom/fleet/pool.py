"""The host supervisor: K worker processes × M bots each, kept running, drained on SIGTERM.

```
Host (the main process's asyncio loop: the one owner of the slots, the placement and the FleetView)
├── slot 0: worker process (spawn) ── pipe ── BotRunner actor ── jobs (one per bot)
├── slot 1: …
└── /metrics, /healthz, the live table (readers of the FleetView)
```

* **Placement** (:func:`~greenroom.fleet.reconcile.place`): every slot has an exact admission limit (``M``,
  by default the bots spread evenly: ⌈N / K⌉); a bot stays in its process while that process lives.
* **A process that dies** (crash, ``kill -9``, an exit of its own) is seen at once through its sentinel;
  its counters are retired into its slot, its bots become unplaced and go to live processes with room
  (or wait for it), and the slot starts a new process after a back-off (``PROCESS_BACKOFF``: the first at
  once, then 0.5 s doubling to 10 s; reset after 30 s of life). A process that sends no report for
  ``unresponsive_after`` seconds is killed and counted the same way (reason ``unresponsive``).
* **Drain** (SIGTERM or SIGINT to the host, or the end of ``duration``): every worker gets
  :class:`~greenroom.fleet.worker.DrainRequest`; bots leave cleanly; processes that have not exited by the
  deadline (+ a 3 s grace) are killed. The host then returns its summary; the command exits 0. A second
  signal kills at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from greenroom.actors.restarts import Backoff, backoff_delay
from greenroom.fleet.reconcile import place
from greenroom.fleet.runner import Assign
from greenroom.fleet.spec import BotSpec, ServerSpec
from greenroom.fleet.view import FleetView
from greenroom.fleet.worker import Drained, DrainRequest, WorkerConfig, WorkerReport, worker_main

__all__ = [
    "PROCESS_BACKOFF",
    "Host",
    "HostOptions",
    "Launcher",
    "ProcessWorker",
    "WorkerHandle",
    "auto_processes",
]

_log = logging.getLogger("greenroom.fleet.pool")

#: A dead worker process is replaced at once, then after 0.5 s doubling to 10 s (± 20 %).
PROCESS_BACKOFF = Backoff(min_delay=0.5, max_delay=10.0, random_factor=0.2, immediate=1)
#: A process that lived this long resets its slot's back-off.
PROCESS_STABLE_AFTER = 30.0
#: Seconds between two supervision passes of the host.
HOST_TICK = 0.2
#: Seconds past the drain deadline before the stragglers are killed.
DRAIN_GRACE = 3.0
#: Messages queued for one worker's pipe before new ones are dropped (and counted).
OUTBOX_CAPACITY = 64


def auto_processes() -> int:
    """``--processes auto``: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class HostOptions:
    """How the host runs its pool.

    Attributes:
        processes: worker processes (K).
        bots_per_process: each process's admission limit (M; 0: ⌈bots / K⌉).
        drain_timeout: seconds the bots get to leave on a drain.
        report_interval: seconds between two reports of a worker.
        unresponsive_after: seconds without a report after which a worker is killed.
        log_level: the workers' log level.
    """

    processes: int = 1
    bots_per_process: int = 0
    drain_timeout: float = 10.0
    report_interval: float = 1.0
    unresponsive_after: float = 15.0
    log_level: str = "WARNING"


class WorkerHandle(Protocol):
    """One worker the host started (a process here; a Ray actor in :mod:`greenroom.fleet.cluster`).

    Made by a :data:`Launcher` on the host's loop, with two callbacks it calls on that loop: ``deliver``
    (each :class:`WorkerReport` / :class:`Drained`) and ``exited`` (once, with why it ended).
    """

    pid: int

    def send(self, message: Any) -> bool:
        """Queue ``message`` for the worker without blocking; ``False``: dropped (its outbox is full)."""
        ...

    def stop(self, *, kill: bool) -> None:
        """Release it (the host no longer listens); ``kill``: end it at once if it still runs."""
        ...


#: ``launcher(config, deliver, exited)``: start one worker (on the host's loop).
Launcher = Callable[[WorkerConfig, Callable[[Any], None], Callable[[str], None]], WorkerHandle]


@dataclass(eq=False)
class _Slot:
    index: int
    capacity: int
    worker: WorkerHandle | None = None
    started: float = 0.0
    heard: float = 0.0
    attempt: int = 0
    due: float = 0.0
    assigned: tuple[str, ...] = ()
    sent: tuple[str, ...] | None = None
    drained: bool = False
    ready: bool = False  # its worker has reported since it started

    @property
    def alive(self) -> bool:
        return self.worker is not None


class Host:
    """Runs a fleet's bots over a pool of worker processes (see the module docstring).

    Args:
        bots: the fleet's bots.
        server: where they connect.
        options: the pool's settings.
        view: the fleet view to keep current (a new one by default).
    """

    def __init__(
        self,
        bots: tuple[BotSpec, ...],
        server: ServerSpec,
        options: HostOptions,
        *,
        view: FleetView | None = None,
        rng: Callable[[], float] = random.random,
        launcher: Launcher | None = None,
    ) -> None:
        if options.processes < 1:
            raise ValueError(f"processes must be at least 1, not {options.processes}")
        self.bots = {bot.identity: bot for bot in bots}
        self.order = tuple(self.bots)
        self.server = server
        self.options = options
        self.view = view or FleetView()
        self.view.desired = len(bots)
        self.rng = rng
        capacity = options.bots_per_process or max(1, math.ceil(len(bots) / options.processes))
        self.slots = {i: _Slot(i, capacity) for i in range(options.processes)}
        for slot in self.slots.values():
            self.view.slot(slot.index).capacity = capacity
        self._stop = asyncio.Event()
        self._kill = False
        self._changed = asyncio.Event()
        self.launcher: Launcher = launcher or ProcessWorker.launch
        self.dropped = 0

    # -- the outside --------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Drain and end (a signal handler's job; a second call kills the workers at once)."""
        if self._stop.is_set():
            self._kill = True
        self._stop.set()
        self._changed.set()

    def pids(self) -> dict[int, int]:
        """The live worker processes: slot → pid."""
        return {i: s.worker.pid for i, s in self.slots.items() if s.worker is not None and s.worker.pid}

    async def run(self, *, duration: float | None = None, install_signals: bool = True) -> FleetView:
        """Start the pool, supervise it until a signal (or ``duration`` s), drain; return the view."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.request_stop)
        if duration is not None:
            loop.call_later(duration, self.request_stop)
        try:
            while not self._stop.is_set():
                self._supervise()
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), HOST_TICK)
            await self._drain()
        finally:
            if install_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            for slot in self.slots.values():
                self._reap(slot, kill=True)
        return self.view

    # -- supervision --------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.worker is None and slot.due <= now:
                self._spawn(slot)
            elif slot.worker is not None and now - slot.heard > self.options.unresponsive_after:
                _log.error(
                    "worker %d (pid %s) sent nothing for %.0f s: killing it",
                    slot.index,
                    slot.worker.pid,
                    now - slot.heard,
                )
                self._lost(slot, "unresponsive", kill=True)
        self._place()

    def _place(self) -> None:
        alive = {i for i, s in self.slots.items() if s.alive}
        ready = {i for i in alive if self.slots[i].ready}
        current = {i: s.assigned for i, s in self.slots.items()}
        capacity = {i: s.capacity for i, s in self.slots.items()}
        placed = place(self.order, current, capacity, alive, prefer=ready)
        for index, slot in self.slots.items():
            slot.assigned = placed.get(index, ())
            self.view.slot(index).assigned = len(slot.assigned)
            if slot.alive and slot.assigned != slot.sent:
                self._send(slot, Assign(tuple(self.bots[k] for k in slot.assigned)))
                slot.sent = slot.assigned

    def _spawn(self, slot: _Slot) -> None:
        config = WorkerConfig(
            slot.index, self.server, slot.capacity, self.options.report_interval, self.options.log_level
        )
        handle: WorkerHandle | None = None

        def deliver(message: Any) -> None:
            if handle is not None and slot.worker is handle:  # else from an earlier worker of the slot
                self._received(slot, message)

        def exited(reason: str) -> None:
            if handle is not None and slot.worker is handle:
                self._exited(slot, reason)

        handle = self.launcher(config, deliver, exited)
        slot.worker, slot.sent = handle, None
        slot.started = slot.heard = time.monotonic()
        slot.drained = slot.ready = False
        view = self.view.slot(slot.index)
        view.pid, view.state = handle.pid, "starting"
        _log.info("worker %d started (pid %s)", slot.index, handle.pid)

    def _send(self, slot: _Slot, message: Any) -> None:
        """Queue ``message`` for the slot's writer thread (a full pipe never blocks the host's loop).

        The queue holds :data:`OUTBOX_CAPACITY` messages; past it the message is dropped and counted
        (an ``Assign`` carries the whole set, so the next placement change repairs a dropped one).
        """
        if slot.worker is None or slot.worker.send(message):
            return
        self.dropped += 1
        slot.sent = None
        _log.error("worker %d's outbox is full: %r dropped", slot.index, type(message).__name__)

    def _received(self, slot: _Slot, message: Any) -> None:
        if message is None:
            return
        slot.heard = time.monotonic()
        view = self.view.slot(slot.index)
        match message:
            case WorkerReport():
                if slot.worker is not None:
                    slot.ready = True
                    slot.worker.pid = view.pid = message.pid
                    view.update(message)
                    view.state = "draining" if self.view.draining else "running"
            case Drained(clean=clean, report=report):
                slot.drained = True
                if report is not None:
                    view.update(report)
                view.state = "drained" if clean else "drained (deadline)"
        self._changed.set()

    def _exited(self, slot: _Slot, reason: str) -> None:
        if self._stop.is_set():
            self._reap(slot, kill=False)
            self.view.slot(slot.index).state = f"exited ({reason})"
            self._changed.set()
            return
        pid = slot.worker.pid if slot.worker is not None else 0
        _log.error("worker %d (pid %s) died: %s; its bots are placed again", slot.index, pid, reason)
        self._lost(slot, reason, kill=False)

    def _lost(self, slot: _Slot, reason: str, *, kill: bool) -> None:
        now = time.monotonic()
        lived = now - slot.started
        self._reap(slot, kill=kill)
        slot.attempt = 0 if lived >= PROCESS_STABLE_AFTER else slot.attempt
        slot.due = now + backoff_delay(PROCESS_BACKOFF, slot.attempt, self.rng())
        slot.attempt += 1
        slot.assigned = ()
        view = self.view.slot(slot.index)
        view.retire()
        view.state, view.process_restarts = f"restarting ({reason})", view.process_restarts + 1
        self.view.process_restarts[
            reason.rsplit(" ", maxsplit=1)[-1] if reason.startswith("killed") else reason
        ] += 1
        self._changed.set()

    def _reap(self, slot: _Slot, *, kill: bool) -> None:
        worker, slot.worker = slot.worker, None
        if worker is not None:
            worker.stop(kill=kill)

    # -- drain --------------------------------------------------------------------------------------------

    async def _drain(self) -> None:
        self.view.before_drain = self.view.by_state()
        self.view.draining = True
        deadline = self.options.drain_timeout
        for slot in self.slots.values():
            if slot.alive:
                self._send(slot, DrainRequest(deadline))
                self.view.slot(slot.index).state = "draining"
        ends = time.monotonic() + deadline + DRAIN_GRACE
        while any(s.alive for s in self.slots.values()) and time.monotonic() < ends and not self._kill:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), HOST_TICK)
        for slot in self.slots.values():
            if slot.alive:
                _log.error("worker %d did not exit after the drain: killing it", slot.index)
                self._reap(slot, kill=True)
                self.view.slot(slot.index).state = "killed after the drain"


class ProcessWorker:
    """A worker process (``multiprocessing`` spawn) and its pipe: the default :data:`Launcher`.

    A reader and a writer thread per pipe, so a full pipe never blocks the host's loop (the outbox holds
    :data:`OUTBOX_CAPACITY` messages); the process's death is seen at once through its sentinel.
    """

    def __init__(
        self, config: WorkerConfig, deliver: Callable[[Any], None], exited: Callable[[str], None]
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.process: BaseProcess = multiprocessing.get_context("spawn").Process(
            target=worker_main, args=(child, config), name=f"greenroom-fleet-{config.slot}", daemon=False
        )
        self.process.start()
        child.close()
        self.pid = self.process.pid or 0
        self._exited = exited
        self.loop.add_reader(self.process.sentinel, self._on_sentinel)
        self.outbox: queue.Queue[Any] | None = queue.Queue(OUTBOX_CAPACITY)
        for target, args, name in (
            (_read_pipe, (self.conn, self.loop, deliver), "read"),
            (_write_pipe, (self.conn, self.outbox), "write"),
        ):
            threading.Thread(
                target=target, args=args, name=f"fleet-{name}-{config.slot}", daemon=True
            ).start()

    @classmethod
    def launch(
        cls, config: WorkerConfig, deliver: Callable[[Any], None], exited: Callable[[str], None]
    ) -> ProcessWorker:
        """The :data:`Launcher` of worker processes."""
        return cls(config, deliver, exited)

    def _on_sentinel(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.process.sentinel)
        self.process.join(timeout=1.0)  # the sentinel fired: the exit code is there once joined
        code = self.process.exitcode
        self._exited(
            f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
        )

    def send(self, message: Any) -> bool:
        """Queue ``message`` for the writer thread; ``False`` when the outbox is full (or closed)."""
        if self.outbox is None:
            return False
        try:
            self.outbox.put_nowait(message)
        except queue.Full:
            return False
        return True

    def stop(self, *, kill: bool) -> None:
        """Stop listening, kill the process if asked and still alive, reap it, close the pipe."""
        process = self.process
        with contextlib.suppress(Exception):
            self.loop.remove_reader(process.sentinel)
        with contextlib.suppress(ValueError):  # closed already
            if kill and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid or 0, signal.SIGKILL)
            process.join(timeout=5.0)
            process.close()
        if self.outbox is not None:
            with contextlib.suppress(queue.Full):
                self.outbox.put_nowait(None)  # the writer ends (its pipe end is closed below)
            self.outbox = None
        self.conn.close()


def _read_pipe(conn: Connection, loop: asyncio.AbstractEventLoop, deliver: Callable[[Any], None]) -> None:
    """Blocking reads on a thread per process; each message is handed to the host's loop."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, ValueError):
            return
        try:
            loop.call_soon_threadsafe(deliver, message)
        except RuntimeError:
            return


def _write_pipe(conn: Connection, outbox: queue.Queue[Any]) -> None:
    """Sends on a thread per process, in order, until ``None`` or a closed pipe."""
    while (message := outbox.get()) is not None:
        try:
            conn.send(message)
        except (OSError, ValueError):
            return
