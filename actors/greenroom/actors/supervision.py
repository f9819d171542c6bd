"""Supervision: Erlang/OTP's supervisor contract plus Akka's back-off, stash and stable addresses.

A :class:`Supervisor` is an :class:`~greenroom.actors.core.AsyncioActor` that starts children from
:class:`ChildSpec` s, links to them, and on every exit asks the pure function :func:`decide` what to do:

* ``restart`` type — ``permanent`` children always restart, ``transient`` ones only after a crash
  (:class:`~greenroom.actors.core.Crashed`; a :class:`~greenroom.actors.core.Normal` stop is final),
  ``temporary`` ones never (and are dropped when a sibling's failure takes them down);
* strategy — ``one_for_one`` restarts the failed child, ``one_for_all`` all children, ``rest_for_one`` the
  failed child and those started after it (siblings are stopped newest first, restarted in start order);
* intensity — more than ``max_restarts`` restarts within ``period`` seconds (a sliding window) and the
  supervisor **escalates**: it stops its children newest first and fails with
  :class:`RestartIntensityError`, which its own parent sees as a crash; a top-level supervisor reports it
  to its ``on_escalate`` callback;
* back-off — restarts wait ``min_delay · 2ⁿ`` capped at ``max_delay``, times ``1 + random_factor · r``
  (Akka's formula; ``n`` counts recent restarts); the clock and the random source are injectable.

Children are added at runtime with :meth:`Supervisor.start_child` and removed with
:meth:`Supervisor.terminate_child` (a :class:`DynamicSupervisor` starts with none). Every child is reached
through a :class:`StableRef` that survives restarts: while the child is down, messages wait in a bounded
stash and are replayed in order to the next incarnation (messages still queued in a crashed incarnation's
mailbox are replayed first). Stopping a supervisor stops its children newest first, each within its
``shutdown_timeout``, after which it is killed (its task cancelled).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.core import (
    DEFAULT_ASK_TIMEOUT,
    AsyncioActor,
    ChildFailed,
    ChildStopped,
    Crashed,
    ExitReason,
    Shutdown,
    SystemMessage,
    kill_actor,
    link,
    stop_actor,
    watch,
)
from greenroom.actors.restarts import (
    DEFAULT_INTENSITY,
    NO_BACKOFF,
    Backoff,
    ChildSpec,
    Decision,
    Escalate,
    Intensity,
    NoRestart,
    Restart,
    RestartIntensityError,
    RestartType,
    Strategy,
    backoff_delay,
    decide,
    restart_window,
    should_restart,
)
from greenroom.actors.stable import StableProxy, StableRef, StashFullError, StashStats

__all__ = [
    "NO_BACKOFF",
    "SUPERVISION_MESSAGES",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildTable",
    "Decision",
    "DynamicSupervisor",
    "Escalate",
    "Escalation",
    "Intensity",
    "NoRestart",
    "Restart",
    "RestartDue",
    "RestartEvent",
    "RestartIntensityError",
    "RestartType",
    "StableProxy",
    "StableRef",
    "StartFailed",
    "StashFullError",
    "StashStats",
    "Strategy",
    "SupervisionMessage",
    "Supervisor",
    "backoff_delay",
    "decide",
    "restart_window",
    "should_restart",
]

_log = logging.getLogger("greenroom.actors.supervision")


# ------------------------------------------------------------------------------------------- supervisor


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as :meth:`ChildTable.which_children` reports it."""

    id: str
    restart: RestartType
    ref: pykka.ActorRef[Any] | None
    handle: StableRef


@dataclass(frozen=True, slots=True)
class RestartEvent:
    """A restart the supervisor made (kept for diagnostics: "why did bot 17 restart").

    Attributes:
        at: the supervisor clock's time.
        failed: the child whose exit caused it.
        reason: the exit reason.
        restarted: the children restarted, in start order.
        delay: the back-off applied, in seconds.
        supervisor: who decided (the supervising actor's name; set by :class:`ChildTable`).
    """

    at: float
    failed: str
    reason: ExitReason
    restarted: tuple[str, ...]
    delay: float
    supervisor: str = ""


@dataclass(frozen=True, slots=True)
class Escalation:
    """A :class:`ChildTable` gave up: its children are stopped; its owner must fail (or close).

    Attributes:
        failed: the child whose exit exceeded the intensity.
        reason: that exit's reason.
        restarts: restarts already made within the period.
        period: the intensity period, in seconds.
        error: the error the owner raises (or reports).
    """

    failed: str
    reason: ExitReason
    restarts: int
    period: float
    error: RestartIntensityError


@dataclass(frozen=True, slots=True)
class RestartDue(SystemMessage):
    """A back-off elapsed: start these children again (sent by a :class:`ChildTable` to its owner)."""

    table: str
    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StartFailed(SystemMessage):
    """A child's factory raised while (re)starting it (sent by a :class:`ChildTable` to its owner)."""

    table: str
    child_id: str
    exception: BaseException


#: The messages an actor that owns a :class:`ChildTable` passes to :meth:`ChildTable.on_message`.
SupervisionMessage: TypeAlias = ChildFailed | ChildStopped | RestartDue | StartFailed
SUPERVISION_MESSAGES = (ChildFailed, ChildStopped, RestartDue, StartFailed)


class _Child:
    __slots__ = ("handle", "ref", "spec", "unlink")

    def __init__(self, spec: ChildSpec, ask_timeout: float) -> None:
        self.spec = spec
        self.handle = StableRef(spec.id, spec.stash_capacity, ask_timeout)
        self.ref: pykka.ActorRef[Any] | None = None
        self.unlink: Callable[[], None] | None = None


class ChildTable:
    """The one supervision mechanism: the children of one actor, and what happens when one exits.

    Owned by a supervising actor and used only on its task: the :class:`Supervisor` actor is nothing but
    a ``ChildTable`` with a mailbox, and the room tree's actors (the RoomActor for its ParticipantActors,
    each ParticipantActor for its TrackActors) own one too, so every restart in greenroom goes through
    :func:`decide` with the same intensity window, back-off, stash and restart history. The owner passes
    every :data:`SupervisionMessage` it receives to :meth:`on_message`; an :class:`Escalation` returned
    from it means the table gave up (children stopped) and the owner must fail or close.

    Args:
        owner: the supervising actor (children are linked to it; back-off timers tell it ``RestartDue``).
        name: names the table in logs and :class:`RestartEvent` s (and tells tables of one owner apart).
        strategy, intensity, backoff, clock, rng: as :class:`Supervisor`.
        ask_timeout: the deadline of asks made through the children's stable references.
        max_events: how many :class:`RestartEvent` s to keep.
    """

    def __init__(
        self,
        owner: pykka.ActorRef[Any],
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity = DEFAULT_INTENSITY,
        backoff: Backoff = NO_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        ask_timeout: float = DEFAULT_ASK_TIMEOUT,
        max_events: int = 100,
    ) -> None:
        self.owner = owner
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self._clock = clock
        self._rng = rng
        self._ask_timeout = ask_timeout
        self._children: dict[str, _Child] = {}
        self._history: tuple[float, ...] = ()
        self._events: collections.deque[RestartEvent] = collections.deque(maxlen=max_events)
        self._timers: set[asyncio.TimerHandle] = set()

    def __repr__(self) -> str:
        return f"<ChildTable {self.name} of {self.owner}: {list(self._children)}>"

    # -- queries ------------------------------------------------------------------------------------------

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._children

    def handle(self, child_id: str) -> StableRef | None:
        """The stable reference of a child (``None``: no such child)."""
        child = self._children.get(child_id)
        return None if child is None else child.handle

    def current(self, child_id: str) -> pykka.ActorRef[Any] | None:
        """The current incarnation of a child (``None`` while it restarts, or no such child)."""
        child = self._children.get(child_id)
        return None if child is None else child.ref

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order."""
        return [ChildInfo(c.spec.id, c.spec.restart, c.ref, c.handle) for c in self._children.values()]

    def restart_events(self) -> list[RestartEvent]:
        """The most recent restarts, oldest first."""
        return list(self._events)

    # -- changes ------------------------------------------------------------------------------------------

    def add(self, spec: ChildSpec) -> StableRef:
        """Register a child without starting it (see :meth:`start_added`)."""
        if spec.id in self._children:
            raise ValueError(f"{self.name}: a child {spec.id!r} already exists")
        child = _Child(spec, self._ask_timeout)
        self._children[spec.id] = child
        return child.handle

    async def start_child(self, spec: ChildSpec) -> StableRef:
        """Add a child and start it (last in start order).

        Raises:
            ValueError: the id is taken.
            Exception: whatever the factory raised (the child is then not added).
        """
        handle = self.add(spec)
        try:
            await self._start(self._children[spec.id])
        except BaseException:
            self.forget(spec.id)
            raise
        return handle

    def start_child_now(self, spec: ChildSpec) -> StableRef:
        """:meth:`start_child` for a factory that returns an ``ActorRef`` directly (no await)."""
        handle = self.add(spec)
        child = self._children[spec.id]
        try:
            self._bind(child, spec.start())
        except BaseException:
            self.forget(spec.id)
            raise
        return handle

    async def start_added(self) -> None:
        """Start every registered child that is not running, in order (a supervisor's ``on_start``)."""
        for child in list(self._children.values()):
            if child.ref is None:
                await self._start(child)

    async def terminate_child(self, child_id: str) -> bool:
        """Stop a child (within its shutdown timeout, then kill it) and forget it.

        Returns:
            ``False`` if there was no such child.
        """
        child = self._children.get(child_id)
        if child is None:
            return False
        await self._stop_incarnation(child)
        self.forget(child_id)
        return True

    def forget(self, child_id: str) -> None:
        """Drop a child without stopping it (its stable reference is terminated; it may end on its own)."""
        child = self._children.pop(child_id, None)
        if child is not None:
            if child.unlink is not None:
                child.unlink()
            child.handle._terminate()

    async def shutdown(self) -> None:
        """Stop every child, newest first, each within its shutdown timeout, and forget them."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for child_id in reversed(list(self._children)):
            child = self._children.get(child_id)
            if child is not None:
                await self._stop_incarnation(child)
                self.forget(child_id)

    def kill_all(self) -> None:
        """The owner was killed before it could stop its children: kill them rather than orphan them."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for child in reversed(list(self._children.values())):
            if child.ref is not None:
                kill_actor(child.ref)
            child.handle._terminate()
        self._children.clear()

    # -- exits --------------------------------------------------------------------------------------------

    def owns(self, message: object) -> bool:
        """Whether ``message`` is this table's business (a child's exit or one of its timers)."""
        match message:
            case ChildFailed(child_id=child_id, ref=ref) | ChildStopped(child_id=child_id, ref=ref):
                child = self._children.get(child_id)
                return child is not None and child.ref is ref
            case RestartDue(table=table) | StartFailed(table=table):
                return table == self.name
            case _:
                return False

    async def on_message(self, message: SupervisionMessage) -> Escalation | None:
        """Handle a child's exit or a due restart; returns an :class:`Escalation` when giving up."""
        match message:
            case ChildFailed(child_id=child_id, ref=ref, exception=exception):
                return await self._on_exit(child_id, ref, Crashed(exception))
            case ChildStopped(child_id=child_id, ref=ref, reason=reason):
                return await self._on_exit(child_id, ref, reason)
            case StartFailed(child_id=child_id, exception=exception):
                return await self._on_exit(child_id, None, Crashed(exception))
            case RestartDue(child_ids=child_ids):
                await self._start_many(child_ids)
                return None
            case _:
                assert_never(message)

    async def _on_exit(
        self, child_id: str, ref: pykka.ActorRef[Any] | None, reason: ExitReason
    ) -> Escalation | None:
        child = self._children.get(child_id)
        if child is None or child.ref is not ref:
            return None  # a stale incarnation, or one the table stopped itself
        child.ref = None
        now = self._clock()
        order = [(c.spec.id, c.spec.restart) for c in self._children.values()]
        decision = decide(
            strategy=self.strategy,
            children=order,
            failed=child_id,
            reason=reason,
            history=self._history,
            now=now,
            intensity=self.intensity,
            backoff=self.backoff,
            jitter=self._rng(),
        )
        match decision:
            case NoRestart():
                _log.debug("%s: child %r exited (%r); not restarted", self.name, child_id, reason)
                self.forget(child_id)
                return None
            case Escalate(restarts=restarts, period=period):
                return await self._escalate(child_id, reason, restarts, period)
            case Restart():
                self._history = decision.history
                event = RestartEvent(now, child_id, reason, decision.start, decision.delay, self.name)
                self._events.append(event)
                _log.warning(
                    "%s: child %r exited (%r); restarting %s", self.name, child_id, reason, decision.start
                )
                await self._restart(decision)
                return None
            case _:
                assert_never(decision)

    async def _escalate(self, child_id: str, reason: ExitReason, restarts: int, period: float) -> Escalation:
        _log.error(
            "%s: %d restarts within %s s; child %r exited again: escalating",
            self.name,
            restarts,
            period,
            child_id,
        )
        await self.shutdown()
        error = RestartIntensityError(
            f"{self.name}: child {child_id!r} exceeded {self.intensity.max_restarts} restarts in {period} s"
        )
        if isinstance(reason, Crashed):
            error.__cause__ = reason.exception
        return Escalation(child_id, reason, restarts, period, error)

    async def _restart(self, decision: Restart) -> None:
        for child_id in decision.stop:
            if (sibling := self._children.get(child_id)) is not None:
                await self._stop_incarnation(sibling)
        for child_id in decision.remove:
            self.forget(child_id)
        if decision.delay > 0.0:
            _log.info("%s: restarting %s in %.3f s", self.name, decision.start, decision.delay)
            self._schedule(decision.delay, RestartDue(self.name, decision.start))
        else:
            await self._start_many(decision.start)

    def _schedule(self, delay: float, message: RestartDue) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            with contextlib.suppress(pykka.ActorDeadError):
                self.owner.tell(message)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    # -- incarnations -------------------------------------------------------------------------------------

    async def _start(self, child: _Child) -> None:
        started = child.spec.start()
        self._bind(child, await started if inspect.isawaitable(started) else started)

    def _bind(self, child: _Child, ref: object) -> None:
        if not isinstance(ref, pykka.ActorRef):
            raise TypeError(f"the factory of child {child.spec.id!r} returned {ref!r}, not an ActorRef")
        child.ref = ref
        child.unlink = link(ref, self.owner, child.spec.id)
        child.handle._bind(ref)
        _log.debug("%s started child %r: %s", self.name, child.spec.id, ref)

    async def _start_many(self, child_ids: Sequence[str]) -> None:
        for child_id in child_ids:
            child = self._children.get(child_id)
            if child is None or child.ref is not None:
                continue
            try:
                await self._start(child)
            except Exception as exc:
                _log.error("%s: child %r failed to start", self.name, child_id, exc_info=exc)
                with contextlib.suppress(pykka.ActorDeadError):
                    self.owner.tell(StartFailed(self.name, child_id, exc))

    async def _stop_incarnation(self, child: _Child) -> None:
        ref, child.ref = child.ref, None
        if child.unlink is not None:
            child.unlink()
            child.unlink = None
        if ref is not None:
            await stop_actor(ref, timeout=child.spec.shutdown_timeout)


class Supervisor(AsyncioActor):
    """An actor that starts, watches and restarts children (OTP's contract; see the module docstring).

    Start it like any actor: ``Supervisor.start(children=[...], strategy=Strategy.REST_FOR_ONE)``; it
    starts the children in order from ``on_start``. Reach a child with ``await sup.proxy().child("id")``
    (a :class:`StableRef`), add one with ``await sup.proxy().start_child(spec)``, remove one with
    ``await sup.proxy().terminate_child("id")`` (or ``.get()`` those futures from a foreign thread).
    Nest supervisors by giving a ``ChildSpec`` a factory that starts one (with ``shutdown_timeout=None``).
    Everything it does is its :class:`ChildTable`'s.

    Args:
        children: static children, in start order.
        strategy: which children restart together.
        intensity: the crash-loop brake.
        backoff: the restart delay policy.
        clock: the time source for the intensity window (monotonic seconds).
        rng: the jitter source, returning floats in [0, 1).
        on_escalate: called on the loop with the error when this supervisor fails (after its children have
            stopped). Meant for top-level supervisors; it must not block.
        max_events: how many :class:`RestartEvent` s to keep.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity = DEFAULT_INTENSITY,
        backoff: Backoff = NO_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_escalate: Callable[[BaseException], None] | None = None,
        max_events: int = 100,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self._on_escalate = on_escalate
        self._table = ChildTable(
            self.actor_ref,
            str(self),
            strategy=strategy,
            intensity=intensity,
            backoff=backoff,
            clock=clock,
            rng=rng,
            ask_timeout=self.ask_timeout,
            max_events=max_events,
        )
        for spec in children:
            self._table.add(spec)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Start the static children in order; if one fails to start, stop the others and fail."""
        watch(self.actor_ref, self._on_own_exit)
        await self._table.start_added()

    async def on_stop(self) -> None:
        """Stop every child, newest first, each within its shutdown timeout."""
        await self._table.shutdown()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop every child (if not done yet), then report to ``on_escalate``."""
        await self._table.shutdown()
        if self._on_escalate is not None and exception_value is not None:
            try:
                self._on_escalate(exception_value)
            except Exception:
                _log.exception("on_escalate of %s failed", self)

    def _on_own_exit(self, _ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
        # Killed (task cancelled) before its children were stopped: kill them too rather than orphan them.
        if isinstance(reason, Shutdown):
            self._table.kill_all()

    # -- public API (call through a proxy) ------------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> StableRef:
        """Add a child at runtime and start it (last in start order).

        Returns:
            Its stable reference.

        Raises:
            ValueError: the id is taken.
            Exception: whatever the factory raised (the child is then not added).
        """
        return await self._table.start_child(spec)

    async def terminate_child(self, child_id: str) -> bool:
        """Stop a child (within its shutdown timeout, then kill it) and forget it.

        Returns:
            ``False`` if there was no such child.
        """
        return await self._table.terminate_child(child_id)

    def child(self, child_id: str) -> StableRef:
        """The stable reference of a child.

        Raises:
            KeyError: no such child.
        """
        handle = self._table.handle(child_id)
        if handle is None:
            raise KeyError(child_id)
        return handle

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order."""
        return self._table.which_children()

    def restart_events(self) -> list[RestartEvent]:
        """The most recent restarts, oldest first."""
        return self._table.restart_events()

    # -- messages -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> None:
        """Handle child exits and scheduled restarts (anything else is logged and ignored)."""
        if not isinstance(message, SUPERVISION_MESSAGES):
            _log.warning("%s ignored an unexpected message %r", self, message)
            return
        escalation = await self._table.on_message(message)
        if escalation is not None:
            raise escalation.error


class DynamicSupervisor(Supervisor):
    """A ``one_for_one`` supervisor that starts empty; children come and go with ``start_child``/
    ``terminate_child`` (OTP's ``simple_one_for_one``, Elixir's ``DynamicSupervisor``).

    Args:
        intensity: the crash-loop brake.
        backoff: the restart delay policy.
        clock: the time source for the intensity window.
        rng: the jitter source.
        on_escalate: see :class:`Supervisor`.
    """

    def __init__(
        self,
        *,
        intensity: Intensity = DEFAULT_INTENSITY,
        backoff: Backoff = NO_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_escalate: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(
            (),
            strategy=Strategy.ONE_FOR_ONE,
            intensity=intensity,
            backoff=backoff,
            clock=clock,
            rng=rng,
            on_escalate=on_escalate,
        )
