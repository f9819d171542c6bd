"""One process's share of the fleet: the :class:`BotRunner` actor keeps the assigned bots running.

The runner is an actor on greenroom's runtime loop and the one owner of its bots' records. Each bot is a
job (``greenroom.agents.start_job``: connection + logic under the job's own ``rest_for_one`` supervisor);
the runner reconciles what it was assigned (:class:`Assign`) with what runs, on every event and every
``tick``, through the pure :func:`~greenroom.fleet.reconcile.plan` (exact admission: never more than
``capacity`` live jobs) and :func:`~greenroom.fleet.reconcile.after_end` (a job that ended is started
again under the bot's restart policy, with back-off).

What it observes, without holding its mailbox: the job's status (the ``on_status`` callback tells it), the
room's connection state (read on ticks: the job's room lives on the same loop), reconnects (a callback on
the room), and the restarts the job's own supervisor made (asked in a separate task, which tells the
results back). :class:`GetReport` answers a :class:`RunnerReport`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from greenroom import rtc
from greenroom.actors.core import AsyncioActor, ask
from greenroom.actors.mailbox import Crashed
from greenroom.actors.messages import GetTree, Reply
from greenroom.actors.restarts import Intensity
from greenroom.agents import (
    Job,
    JobAssignment,
    JobHandle,
    JobProcess,
    JobResult,
    JobRoomInfo,
    JobStatus,
    SupervisionOptions,
    agent_token,
    start_job,
)
from greenroom.agents.job import CallbackError, Entrypoint
from greenroom.fleet.reconcile import ALIVE, BotState, BotView, Forget, Start, Stop, after_end, plan
from greenroom.fleet.spec import BotSpec, ServerSpec
from greenroom.fleet.targets import entrypoint_for

__all__ = [
    "Assign",
    "BotRunner",
    "BotStatus",
    "Drain",
    "GetReport",
    "RunnerReport",
    "supervision_options",
]

_log = logging.getLogger("greenroom.fleet.runner")

#: Seconds between two reconciliation ticks.
TICK = 0.2
#: Concurrent asks of the restart-history observer.
OBSERVE_CONCURRENCY = 64


# --------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Assign:
    """The bots this process must run now (the whole set: missing ones start, absent ones stop)."""

    bots: tuple[BotSpec, ...]


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop every bot; ``reply`` completes when none is alive (the runner then starts nothing)."""

    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class GetReport:
    """Ask: a :class:`RunnerReport`."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _JobChanged:
    key: str
    serial: int
    result: JobResult


@dataclass(frozen=True, slots=True)
class _Reconnected:
    key: str
    serial: int


@dataclass(frozen=True, slots=True)
class _Observed:
    """The restarts a job's supervisor made so far (their reasons, oldest first); ``None``: no answer."""

    key: str
    serial: int
    reasons: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _ObservationDone:
    pass


# ---------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class BotStatus:
    """One bot as its process sees it."""

    identity: str
    group: str
    room: str
    state: BotState
    starts: int
    restarts: int
    reconnects: int
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class RunnerReport:
    """A process's bots and counters.

    Attributes:
        bots: every bot it knows.
        restarts: ``(level, reason) → count`` since the runner started: level ``logic`` (the job's
            supervisor restarted the agent's code) or ``bot`` (the job ended and the fleet started it again).
        reconnects: full reconnects of the bots' rooms.
        capacity: the admission limit.
        alive: jobs alive now.
    """

    bots: tuple[BotStatus, ...]
    restarts: tuple[tuple[str, str, int], ...]
    reconnects: int
    capacity: int
    alive: int

    def by_state(self) -> dict[str, int]:
        """How many bots are in each state."""
        return dict(collections.Counter(b.state.value for b in self.bots))


def supervision_options(bot: BotSpec) -> SupervisionOptions:
    """The job options a bot's spec asks for."""
    s = bot.supervision
    return SupervisionOptions(
        intensity=Intensity(max_restarts=s.max_restarts, period=s.period),
        liveness_timeout=s.liveness_timeout,
        block_threshold=s.block_threshold,
        shutdown_timeout=s.shutdown_timeout,
    )


def _label(reason: Any) -> str:
    """A restart's reason as a metrics label: the exception type — the agent's own one, not the
    ``CallbackError`` the job wraps it in (which names the item being handled)."""
    if not isinstance(reason, Crashed):
        return type(reason).__name__.lower()
    error: BaseException = reason.exception
    while isinstance(error, CallbackError) and error.__cause__ is not None:
        error = error.__cause__
    return type(error).__name__


@dataclass(eq=False)
class _Bot:
    spec: BotSpec
    state: BotState = BotState.PENDING
    due: float = 0.0
    attempt: int = 0
    serial: int = 0
    handle: JobHandle | None = None
    started: float = 0.0
    starts: int = 0
    restarts: int = 0
    reconnects: int = 0
    logic_seen: int = 0
    room: rtc.Room | None = None
    last_error: str = ""
    wanted: bool = True


# ------------------------------------------------------------------------------------------------ actor


class BotRunner(AsyncioActor):
    """Runs the bots assigned to this process (see the module docstring).

    Args:
        server: where the bots connect (url, key, secret: tokens are minted here, one per job start).
        capacity: the admission limit (live jobs at once).
        tick: seconds between reconciliation ticks.
        observe_every: ticks between two reads of the jobs' restart histories.
        clock: the monotonic clock; rng: the jitter source (both injectable for tests).
    """

    def __init__(
        self,
        server: ServerSpec,
        capacity: int,
        *,
        tick: float = TICK,
        observe_every: int = 5,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__()
        self.server = server
        self.capacity = capacity
        self.tick = tick
        self.observe_every = observe_every
        self.clock = clock
        self.rng = rng
        self.proc = JobProcess()
        self.bots: dict[str, _Bot] = {}
        self.desired: tuple[str, ...] = ()
        self.restarts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.draining: list[Reply[None]] = []
        self._ticks = 0
        self._timer: asyncio.TimerHandle | None = None
        self._observing: asyncio.Task[None] | None = None
        self._entrypoints: dict[tuple[str, str], Entrypoint] = {}

    async def on_start(self) -> None:
        """Start ticking."""
        self._schedule()

    def _schedule(self) -> None:
        me = self.actor_ref

        def fire() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_Tick())

        self._timer = asyncio.get_running_loop().call_later(self.tick, fire)

    async def on_receive(self, message: Any) -> Any:
        """Assignments, job statuses, ticks, observations, drain and reports."""
        match message:
            case Assign(bots=bots):
                self._assign(bots)
            case _JobChanged(key=key, serial=serial, result=result):
                self._job_changed(key, serial, result)
            case _Tick():
                self._on_tick()
            case _Reconnected(key=key, serial=serial):
                bot = self.bots.get(key)
                if bot is not None and bot.serial == serial:
                    bot.reconnects += 1
            case _Observed(key=key, serial=serial, reasons=reasons):
                self._observed(key, serial, reasons)
            case _ObservationDone():
                self._observing = None
            case Drain(reply=reply):
                self.draining.append(reply)
                self._reconcile()
            case GetReport():
                return self._report()
            case _:
                _log.warning("bot runner ignored %r", message)
        return None

    # -- reconciliation ----------------------------------------------------------------------------------

    def _assign(self, bots: tuple[BotSpec, ...]) -> None:
        self.desired = tuple(b.identity for b in bots)
        for spec in bots:
            bot = self.bots.get(spec.identity)
            if bot is None:
                self.bots[spec.identity] = _Bot(spec)
            else:
                bot.spec, bot.wanted = spec, True
        wanted = set(self.desired)
        for key, bot in self.bots.items():
            bot.wanted = key in wanted
        self._reconcile()

    def _reconcile(self) -> None:
        views = {key: BotView(bot.state, bot.due) for key, bot in self.bots.items()}
        now = self.clock()
        actions = plan(self.desired, views, now=now, capacity=self.capacity, draining=bool(self.draining))
        for action in actions:
            match action:
                case Start(key=key):
                    self._start(self.bots[key], now)
                case Stop(key=key):
                    self._stop(self.bots[key], "removed from the fleet" if not self.draining else "draining")
                case Forget(key=key):
                    del self.bots[key]
        if self.draining and not any(b.state in ALIVE for b in self.bots.values()):
            for reply in self.draining:
                reply.ok(None)

    def _entrypoint(self, spec: BotSpec) -> Entrypoint:
        key = (spec.target, json.dumps(spec.params, sort_keys=True, default=str))
        entry = self._entrypoints.get(key)
        if entry is None:
            entry = self._entrypoints[key] = entrypoint_for(spec)
        return entry

    def _start(self, bot: _Bot, now: float) -> None:
        spec = bot.spec
        try:
            entrypoint = self._entrypoint(spec)
        except Exception as exc:
            bot.last_error = f"{type(exc).__name__}: {exc}"
            _log.error("bot %s cannot start: %s", spec.identity, bot.last_error)
            self._ended(bot, failed=True, reason="start_failed", now=now)
            return
        bot.serial += 1
        serial, me, key = bot.serial, self.actor_ref, spec.identity

        def on_status(result: JobResult) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_JobChanged(key, serial, result))

        server = self.server
        job = Job(
            f"AJ_{secrets.token_hex(6)}",
            JobRoomInfo(spec.room),
            agent_name=spec.group,
            metadata=json.dumps(spec.params, default=str),
        )
        token = agent_token(server.api_key, server.api_secret, spec.room, spec.identity, name=spec.identity)
        bot.handle = start_job(
            JobAssignment(job, server.url, token),
            entrypoint,
            options=supervision_options(spec),
            proc=self.proc,
            on_status=on_status,
        )
        bot.state, bot.started, bot.logic_seen, bot.room = BotState.STARTING, now, 0, None
        bot.starts += 1

    def _stop(self, bot: _Bot, reason: str) -> None:
        if bot.handle is not None:
            bot.handle.shutdown(reason)
        bot.state = BotState.STOPPING

    def _job_changed(self, key: str, serial: int, result: JobResult) -> None:
        bot = self.bots.get(key)
        if bot is None or bot.serial != serial or result.status is JobStatus.RUNNING:
            return
        bot.handle, bot.room = None, None
        now = self.clock()
        if result.status is JobStatus.FAILED:
            bot.last_error = result.error
        if bot.state is BotState.STOPPING or not bot.wanted or self.draining:
            # stopped on purpose: a bot still wanted (stopped while being re-placed) is started again
            bot.state = BotState.PENDING if bot.wanted and not self.draining else BotState.DONE
        else:
            failed = result.status is JobStatus.FAILED
            reason = "gave_up" if failed else ("room_closed" if result.reason.startswith("room") else "ended")
            _log.warning("bot %s ended (%s: %s %s)", key, reason, result.reason, result.error)
            self._ended(bot, failed=failed, reason=reason, now=now)
        self._reconcile()

    def _ended(self, bot: _Bot, *, failed: bool, reason: str, now: float) -> None:
        decision = after_end(
            policy=bot.spec.restart,
            failed=failed,
            reason=reason,
            ran_for=now - bot.started,
            attempt=bot.attempt,
            now=now,
            sample=self.rng(),
        )
        bot.state, bot.due, bot.attempt = decision.state, decision.due, decision.attempt
        if decision.state is BotState.BACKOFF:
            self.restarts["bot", reason] += 1
            bot.restarts += 1

    def _on_tick(self) -> None:
        self._ticks += 1
        for key, bot in self.bots.items():
            if bot.handle is not None and bot.state is not BotState.STOPPING:
                self._refresh(key, bot)
        self._reconcile()
        if self._ticks % self.observe_every == 0 and self._observing is None:
            targets = [
                (key, bot.serial, bot.handle.ref)
                for key, bot in self.bots.items()
                if bot.handle is not None and bot.state in (BotState.RUNNING, BotState.RECONNECTING)
            ]
            if targets:
                self._observing = asyncio.create_task(_observe(self.actor_ref, targets))
        self._schedule()

    def _refresh(self, key: str, bot: _Bot) -> None:
        assert bot.handle is not None
        room = bot.handle.room
        if room is None or not room.isconnected():
            bot.state = BotState.STARTING
            return
        if room is not bot.room:
            bot.room = room
            self._listen(key, bot.serial, room)
        reconnecting = room.connection_state == rtc.ConnectionState.CONN_RECONNECTING
        bot.state = BotState.RECONNECTING if reconnecting else BotState.RUNNING

    def _listen(self, key: str, serial: int, room: rtc.Room) -> None:
        register = getattr(room, "on_internal", None)
        if register is None:
            return
        me = self.actor_ref

        def reconnected() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_Reconnected(key, serial))

        register("reconnected", reconnected)

    def _observed(self, key: str, serial: int, reasons: tuple[str, ...] | None) -> None:
        bot = self.bots.get(key)
        if bot is None or bot.serial != serial or reasons is None:
            return
        for reason in reasons[bot.logic_seen :]:
            self.restarts["logic", reason] += 1
            bot.restarts += 1
        bot.logic_seen = max(bot.logic_seen, len(reasons))

    def _report(self) -> RunnerReport:
        bots = tuple(
            BotStatus(
                key, b.spec.group, b.spec.room, b.state, b.starts, b.restarts, b.reconnects, b.last_error
            )
            for key, b in self.bots.items()
        )
        restarts = tuple((level, reason, n) for (level, reason), n in sorted(self.restarts.items()))
        alive = sum(1 for b in self.bots.values() if b.state in ALIVE)
        return RunnerReport(
            bots, restarts, sum(b.reconnects for b in self.bots.values()), self.capacity, alive
        )

    async def on_stop(self) -> None:
        """End every job (the process is going away)."""
        self._end()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """As :meth:`on_stop`."""
        self._end()

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._observing is not None:
            self._observing.cancel()
        for bot in self.bots.values():
            if bot.handle is not None:
                bot.handle.shutdown("fleet runner stopped")


async def _observe(runner: pykka.ActorRef[Any], targets: list[tuple[str, int, pykka.ActorRef[Any]]]) -> None:
    """Ask each job's supervisor for its restart history; tell the runner (a task: never its mailbox)."""
    gate = asyncio.Semaphore(OBSERVE_CONCURRENCY)

    async def one(key: str, serial: int, ref: pykka.ActorRef[Any]) -> None:
        async with gate:
            reasons: tuple[str, ...] | None = None
            with contextlib.suppress(Exception):
                tree = await ask(ref, GetTree(), timeout=2.0)
                reasons = tuple(_label(event.reason) for event in tree.events)
            with contextlib.suppress(pykka.ActorDeadError):
                runner.tell(_Observed(key, serial, reasons))

    try:
        await asyncio.gather(*(one(*target) for target in targets))
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            runner.tell(_ObservationDone())
