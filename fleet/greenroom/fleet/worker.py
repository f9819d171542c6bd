"""A fleet worker process: one :class:`~greenroom.fleet.runner.BotRunner` fed by the host over a pipe.

The host (:mod:`greenroom.fleet.pool`) starts it with ``multiprocessing``'s *spawn* method (a fresh
interpreter: the host runs threads, and forking a process with threads is unsafe) and talks to it over a
``multiprocessing`` pipe: :class:`~greenroom.fleet.runner.Assign` and :class:`DrainRequest` in,
:class:`WorkerReport` every ``report_interval`` and a last :class:`Drained` out.

Signals: SIGINT is ignored (Ctrl-C reaches the whole process group; the host decides and drains), SIGTERM
drains this process by itself, and so does the pipe closing (the host died): a worker never outlives its
host. The drain asks every bot to leave, waits up to the deadline, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from greenroom.actors.core import ask, stop_actor
from greenroom.actors.messages import Reply
from greenroom.fleet.runner import Assign, BotRunner, Drain, GetReport, RunnerReport
from greenroom.fleet.spec import ServerSpec
from greenroom.fleet.stats import StatsSnapshot, process_stats
from greenroom.runtime import loop as runtime

__all__ = ["DrainRequest", "Drained", "WorkerConfig", "WorkerReport", "drain", "report", "worker_main"]

_log = logging.getLogger("greenroom.fleet.worker")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker process is started with."""

    slot: int
    server: ServerSpec
    capacity: int
    report_interval: float = 1.0
    log_level: str = "WARNING"


@dataclass(frozen=True, slots=True)
class DrainRequest:
    """Host → worker: let every bot leave within ``deadline`` seconds, report, exit 0."""

    deadline: float


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """Worker → host, every ``report_interval``: the bots and the process's counters."""

    slot: int
    pid: int
    at: float
    runner: RunnerReport
    stats: StatsSnapshot


@dataclass(frozen=True, slots=True)
class Drained:
    """Worker → host, last: the drain ended (``clean``: every bot left before the deadline)."""

    slot: int
    clean: bool
    report: WorkerReport | None


class _Sender:
    """Sends on the pipe from one thread, in order, so a full pipe never blocks the worker's loop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    async def send(self, message: Any) -> bool:
        def go() -> bool:
            with self._lock:
                try:
                    self.conn.send(message)
                except (OSError, ValueError):
                    return False
            return True

        return await asyncio.to_thread(go)


def worker_main(conn: Connection, config: WorkerConfig) -> None:
    """The process's entry point (a spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [worker {config.slot} pid {os.getpid()}] %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(conn, config))
    finally:
        runtime.shutdown()
        conn.close()


def _reader(conn: Connection, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
    """Blocking reads on a thread of their own; EOF (the host is gone) becomes ``None``."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker is ending anyway
            loop.call_soon_threadsafe(inbox.put_nowait, message)
        if message is None:
            return


async def _serve(conn: Connection, config: WorkerConfig) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(
        target=_reader, args=(conn, loop, inbox), name="greenroom-fleet-pipe", daemon=True
    ).start()
    loop.add_signal_handler(signal.SIGTERM, inbox.put_nowait, DrainRequest(10.0))
    sender = _Sender(conn)
    runner = BotRunner.start(config.server, config.capacity)
    reporting = asyncio.create_task(_report_every(config, runner, sender))
    try:
        while True:
            message = await inbox.get()
            match message:
                case Assign():
                    runner.tell(message)
                case DrainRequest(deadline=deadline):
                    await _drain(config, runner, sender, deadline)
                    return
                case None:
                    _log.warning("the host is gone: draining")
                    await _drain(config, runner, sender, 5.0)
                    return
                case _:
                    _log.warning("worker ignored %r", message)
    finally:
        reporting.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(runtime.submit(stop_actor(runner, timeout=5.0)))


async def report(config: WorkerConfig, runner: Any) -> WorkerReport:
    """This process's report: ``runner``'s bots and the process's counters (any loop)."""
    got = await ask(runner, GetReport(), timeout=5.0)
    return WorkerReport(config.slot, os.getpid(), time.monotonic(), got, process_stats().snapshot())


async def _report_every(config: WorkerConfig, runner: Any, sender: _Sender) -> None:
    while True:
        try:
            await sender.send(await report(config, runner))
        except Exception:
            _log.exception("report failed")
        await asyncio.sleep(config.report_interval)


async def drain(config: WorkerConfig, runner: Any, deadline: float) -> Drained:
    """Let every bot of ``runner`` leave within ``deadline`` seconds (any loop); the last report."""

    async def on_runtime() -> None:
        reply: Reply[None] = Reply.new()
        runner.tell(Drain(reply))
        await reply.future

    clean = True
    try:
        await asyncio.wait_for(asyncio.wrap_future(runtime.submit(on_runtime())), deadline)
    except TimeoutError:
        clean = False
        _log.warning("drain deadline (%.1f s) passed with bots still leaving", deadline)
    final: WorkerReport | None = None
    with contextlib.suppress(Exception):
        final = await report(config, runner)
    return Drained(config.slot, clean, final)


async def _drain(config: WorkerConfig, runner: Any, sender: _Sender, deadline: float) -> None:
    await sender.send(await drain(config, runner, deadline))
