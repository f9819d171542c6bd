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
import enum
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, assert_never

import pykka
from pykka._envelope import Envelope
from pykka.messages import ProxyCall

from greenroom.actors.core import (
    DEFAULT_ASK_TIMEOUT,
    ActorDeadError,
    AsyncioActor,
    AsyncioFuture,
    ChildFailed,
    ChildStopped,
    Crashed,
    ExitReason,
    Mailbox,
    MailboxFullError,
    Shutdown,
    SystemMessage,
    kill_actor,
    link,
    redirect_leftovers,
    stop_actor,
    watch,
)
from greenroom.codecs.errors import GreenroomError

__all__ = [
    "NO_BACKOFF",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "Decision",
    "DynamicSupervisor",
    "Escalate",
    "Intensity",
    "NoRestart",
    "Restart",
    "RestartEvent",
    "RestartIntensityError",
    "RestartType",
    "StableProxy",
    "StableRef",
    "StashFullError",
    "StashStats",
    "Strategy",
    "Supervisor",
    "backoff_delay",
    "decide",
    "restart_window",
    "should_restart",
]

_log = logging.getLogger("greenroom.actors.supervision")

ActorFactory: TypeAlias = Callable[[], "pykka.ActorRef[Any] | Awaitable[pykka.ActorRef[Any]]"]


class RestartType(enum.StrEnum):
    """When a child is restarted (OTP's ``restart`` field)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(enum.StrEnum):
    """Which children restart when one fails."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class RestartIntensityError(GreenroomError):
    """A supervisor exceeded its restart intensity and gave up (escalation)."""


class StashFullError(MailboxFullError):
    """A stable reference's stash was full while its child was restarting."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start and restart one child.

    Attributes:
        id: unique among the supervisor's children.
        start: a factory returning the new incarnation's ``ActorRef`` (or an awaitable of it); it runs on
            the runtime loop, so it must not block. It must start an :class:`AsyncioActor`.
        restart: ``permanent`` (default), ``transient`` or ``temporary``.
        shutdown_timeout: seconds a stop may take before the child is killed; ``None`` waits forever (use it
            for child supervisors, which stop their own children first).
        stash_capacity: messages its :class:`StableRef` holds while the child is down.
    """

    id: str
    start: ActorFactory
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout: float | None = 5.0
    stash_capacity: int = 1_000


@dataclass(frozen=True, slots=True)
class Intensity:
    """The crash-loop brake: at most ``max_restarts`` restarts within any ``period`` seconds.

    The default is looser than OTP's 1 in 5 s because network flaps cluster.
    """

    max_restarts: int = 3
    period: float = 10.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before a restart (Akka's ``restartWithBackoff``).

    Attributes:
        min_delay: the first delay, doubled for each recent restart.
        max_delay: the cap before jitter.
        random_factor: jitter: the delay is multiplied by ``1 + random_factor · r``, ``r`` in [0, 1).
        reset_after: restarts older than this many seconds no longer count toward the doubling (``None``:
            those within the intensity period count).
    """

    min_delay: float = 0.0
    max_delay: float = 0.0
    random_factor: float = 0.0
    reset_after: float | None = None


#: Restart at once (OTP's behaviour).
NO_BACKOFF = Backoff()


# ------------------------------------------------------------------------------------ the pure decision


@dataclass(frozen=True, slots=True)
class NoRestart:
    """Do not restart the child; the supervisor forgets it (its stable reference is terminated)."""

    child_id: str


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart children.

    Attributes:
        history: the restart times to keep (the pruned window plus this restart).
        delay: seconds to wait before starting them (back-off).
        stop: siblings to stop first, newest first.
        start: children to (re)start after the delay, in start order.
        remove: temporary siblings that are stopped and forgotten instead.
    """

    history: tuple[float, ...]
    delay: float
    stop: tuple[str, ...]
    start: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Escalate:
    """Give up: stop every child and fail to the parent.

    Attributes:
        restarts: restarts already made within the period.
        period: the intensity period, in seconds.
    """

    restarts: int
    period: float


#: What :func:`decide` returns.
Decision: TypeAlias = NoRestart | Restart | Escalate


def should_restart(restart: RestartType, reason: ExitReason) -> bool:
    """Whether a child of this restart type is restarted after exiting for ``reason``."""
    match restart:
        case RestartType.PERMANENT:
            return True
        case RestartType.TRANSIENT:
            return isinstance(reason, Crashed)
        case RestartType.TEMPORARY:
            return False
        case _:
            assert_never(restart)


def restart_window(history: Sequence[float], now: float, period: float) -> tuple[float, ...]:
    """The restart times inside the sliding window: those less than ``period`` seconds before ``now``."""
    return tuple(at for at in history if now - at < period)


def backoff_delay(backoff: Backoff, attempt: int, sample: float) -> float:
    """Seconds to wait before restart number ``attempt`` (0 for the first); ``sample`` in [0, 1) jitters."""
    if backoff.min_delay <= 0.0:
        return 0.0
    base = min(backoff.max_delay, backoff.min_delay * 2.0 ** min(attempt, 64))
    return base * (1.0 + backoff.random_factor * sample)


def _affected(strategy: Strategy, order: Sequence[str], failed: str) -> tuple[str, ...]:
    """The siblings a failure takes down with it (in start order, the failed child excluded)."""
    match strategy:
        case Strategy.ONE_FOR_ONE:
            return ()
        case Strategy.ONE_FOR_ALL:
            return tuple(child for child in order if child != failed)
        case Strategy.REST_FOR_ONE:
            return tuple(order[order.index(failed) + 1 :]) if failed in order else ()
        case _:
            assert_never(strategy)


def decide(
    *,
    strategy: Strategy,
    children: Sequence[tuple[str, RestartType]],
    failed: str,
    reason: ExitReason,
    history: Sequence[float],
    now: float,
    intensity: Intensity,
    backoff: Backoff = NO_BACKOFF,
    jitter: float = 0.0,
) -> Decision:
    """Decide what a supervisor does when one of its children exits. Pure: no clock, no randomness.

    Args:
        strategy: the supervisor's strategy.
        children: every child's id and restart type, in start order (the failed one included).
        failed: the id of the child that exited.
        reason: why it exited.
        history: times of the supervisor's earlier restarts.
        now: the current time (same clock as ``history``).
        intensity: the crash-loop brake.
        backoff: the delay policy.
        jitter: a random sample in [0, 1) for the back-off.

    Returns:
        :class:`NoRestart`, :class:`Restart` or :class:`Escalate`.
    """
    types = dict(children)
    if not should_restart(types.get(failed, RestartType.TEMPORARY), reason):
        return NoRestart(failed)
    window = restart_window(history, now, intensity.period)
    if len(window) >= intensity.max_restarts:
        return Escalate(len(window), intensity.period)
    recent = window if backoff.reset_after is None else restart_window(history, now, backoff.reset_after)
    order = [child for child, _ in children]
    affected = _affected(strategy, order, failed)
    remove = tuple(child for child in affected if types[child] is RestartType.TEMPORARY)
    return Restart(
        history=(*window, now),
        delay=backoff_delay(backoff, len(recent), jitter),
        stop=tuple(reversed(affected)),
        start=tuple(
            child for child in order if child == failed or (child in affected and child not in remove)
        ),
        remove=remove,
    )


# -------------------------------------------------------------------------------------- stable addresses


@dataclass(frozen=True, slots=True)
class StashStats:
    """Counters of a :class:`StableRef`.

    Attributes:
        state: ``"pending"`` (not started yet or restarting), ``"live"`` or ``"terminated"``.
        depth: messages stashed now.
        capacity: the stash's capacity.
        stashed: messages ever stashed (leftovers of a crashed incarnation included).
        replayed: messages replayed to a new incarnation.
        overflowed: messages refused or dropped because the stash was full.
        incarnations: how many incarnations the reference has been bound to.
    """

    state: Literal["pending", "live", "terminated"]
    depth: int
    capacity: int
    stashed: int
    replayed: int
    overflowed: int
    incarnations: int


class StableRef:
    """A child's address that survives restarts: ``tell``/``ask`` reach whichever incarnation is current.

    While the child is down (starting, crashed, backing off) messages wait in a bounded stash and are
    replayed in order to the next incarnation. A full stash refuses: ``tell`` raises
    :class:`StashFullError`, an ask's future fails with it. Once the supervisor forgets the child (a
    ``temporary``/``transient`` exit, ``terminate_child``, shutdown or escalation) the reference is
    terminated: stashed asks fail and later messages raise ``ActorDeadError``. Thread-safe; satisfies the
    runtime's ``Sink`` protocol.

    Args:
        child_id: the child's id.
        stash_capacity: messages held while the child is down.
        ask_timeout: the deadline of asks made through it.
    """

    def __init__(self, child_id: str, stash_capacity: int = 1_000, ask_timeout: float = DEFAULT_ASK_TIMEOUT):
        self.id = child_id
        self._capacity = stash_capacity
        self._ask_timeout = ask_timeout
        self._lock = threading.Lock()
        self._ref: pykka.ActorRef[Any] | None = None
        self._state: Literal["pending", "live", "terminated"] = "pending"
        self._stash: collections.deque[Envelope[Any]] = collections.deque()
        self._stashed = 0
        self._replayed = 0
        self._overflowed = 0
        self._incarnations = 0

    def __repr__(self) -> str:
        return f"<StableRef {self.id!r} {self._state} {self._ref}>"

    @property
    def current(self) -> pykka.ActorRef[Any] | None:
        """The current incarnation's ref (``None`` while down); do not keep it — it goes stale."""
        return self._ref if self._state == "live" else None

    def is_alive(self) -> bool:
        """Whether messages are still accepted (live, or down awaiting a restart)."""
        return self._state != "terminated"

    def tell(self, message: Any) -> None:
        """Send ``message`` to the current incarnation, or stash it while the child is down.

        Raises:
            StashFullError: the child is down and the stash is full.
            MailboxFullError: the incarnation's ``"reject"`` mailbox is full.
            pykka.ActorDeadError: the child has been terminated.
        """
        self._deliver(Envelope(message))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Ask the current incarnation (or the next one, through the stash), as ``ActorRef.ask`` does.

        Args:
            message: the message.
            block: wait for the answer (in a foreign thread) or return an :class:`AsyncioFuture` to await.
            timeout: the ask's deadline in seconds (default: the reference's ask timeout).

        Returns:
            The answer when ``block``; otherwise the future.
        """
        future: AsyncioFuture[Any] = AsyncioFuture(self._ask_timeout if timeout is None else timeout)
        self._deliver(Envelope(message, reply_to=future))
        return future.get() if block else future

    def proxy(self) -> StableProxy:
        """A proxy whose method calls go through this reference (``await ref.proxy().method(...)``)."""
        return StableProxy(self)

    def stats(self) -> StashStats:
        """A snapshot of the counters."""
        with self._lock:
            return StashStats(
                self._state,
                len(self._stash),
                self._capacity,
                self._stashed,
                self._replayed,
                self._overflowed,
                self._incarnations,
            )

    def _deliver(self, envelope: Envelope[Any]) -> None:
        with self._lock:
            ref = self._ref
            if self._state == "live" and ref is not None and _inbox(ref).try_put(envelope):
                return
            if self._state == "terminated":
                error: BaseException = ActorDeadError(f"child {self.id!r} has been terminated")
            elif len(self._stash) >= self._capacity:
                self._overflowed += 1
                error = StashFullError(f"child {self.id!r} is restarting and its stash is full")
            else:
                self._stash.append(envelope)
                self._stashed += 1
                return
        _refuse(envelope, error)

    # -- used by the supervisor, on the loop ------------------------------------------------------------

    def _bind(self, ref: pykka.ActorRef[Any]) -> None:
        """Point at a new incarnation and replay the stash into its mailbox (in order)."""
        inbox = _inbox(ref)
        with self._lock:
            if self._state == "terminated":
                return
            self._ref = ref
            self._state = "live"
            self._incarnations += 1
            while self._stash:
                envelope = self._stash.popleft()
                try:
                    inbox.put(envelope)
                except MailboxFullError:
                    self._overflowed += 1
                else:
                    self._replayed += 1
        redirect_leftovers(ref, self._absorb)
        watch(ref, self._on_down)

    def _on_down(self, ref: pykka.ActorRef[Any], _reason: ExitReason) -> None:
        """The incarnation ended: stash from now on, until the supervisor rebinds or terminates us."""
        with self._lock:
            if self._ref is ref and self._state == "live":
                self._state = "pending"
                self._ref = None

    def _absorb(self, leftovers: list[Envelope[Any]]) -> None:
        """Keep what a dead incarnation had not handled, ahead of anything stashed since."""
        refused: list[Envelope[Any]] = []
        with self._lock:
            if self._state == "terminated":
                refused = leftovers
            else:
                self._stash.extendleft(reversed(leftovers))
                self._stashed += len(leftovers)
                while len(self._stash) > self._capacity:
                    refused.append(self._stash.pop())
                    self._overflowed += 1
        for envelope in refused:
            _refuse(envelope, StashFullError(f"child {self.id!r}: stash overflow"), raising=False)

    def _terminate(self) -> None:
        """Forget the child: fail stashed asks, refuse everything later."""
        with self._lock:
            self._state = "terminated"
            self._ref = None
            pending = list(self._stash)
            self._stash.clear()
        for envelope in pending:
            _refuse(envelope, ActorDeadError(f"child {self.id!r} has been terminated"), raising=False)


def _inbox(ref: pykka.ActorRef[Any]) -> Mailbox:
    inbox = ref.actor_inbox
    if not isinstance(inbox, Mailbox):
        raise TypeError(f"supervised children must be AsyncioActors, not {ref.actor_class.__name__}")
    return inbox


def _refuse(envelope: Envelope[Any], error: BaseException, *, raising: bool = True) -> None:
    if envelope.reply_to is not None:
        with contextlib.suppress(Exception):
            envelope.reply_to.set_exception((type(error), error, None))
    elif raising:
        raise error


class _StableMethod:
    def __init__(self, target: StableRef, name: str) -> None:
        self._target = target
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncioFuture[Any]:
        future: AsyncioFuture[Any] = self._target.ask(ProxyCall((self._name,), args, kwargs), block=False)
        return future

    def defer(self, *args: Any, **kwargs: Any) -> None:
        self._target.tell(ProxyCall((self._name,), args, kwargs))


class StableProxy:
    """Method calls on a child through its :class:`StableRef`: ``proxy.m(x)`` returns a future to await
    (or ``.get()`` in a foreign thread); ``proxy.m.defer(x)`` is a tell. Only methods, one level deep."""

    def __init__(self, target: StableRef) -> None:
        self._target = target

    def __getattr__(self, name: str) -> _StableMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _StableMethod(self._target, name)


# ------------------------------------------------------------------------------------------- supervisor


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as :meth:`Supervisor.which_children` reports it."""

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
    """

    at: float
    failed: str
    reason: ExitReason
    restarted: tuple[str, ...]
    delay: float


@dataclass(frozen=True, slots=True)
class _RestartDue(SystemMessage):
    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _StartFailed(SystemMessage):
    child_id: str
    exception: BaseException


_SupervisorEvent: TypeAlias = ChildFailed | ChildStopped | _RestartDue | _StartFailed


class _Child:
    __slots__ = ("handle", "ref", "spec", "unlink")

    def __init__(self, spec: ChildSpec, ask_timeout: float) -> None:
        self.spec = spec
        self.handle = StableRef(spec.id, spec.stash_capacity, ask_timeout)
        self.ref: pykka.ActorRef[Any] | None = None
        self.unlink: Callable[[], None] | None = None


class Supervisor(AsyncioActor):
    """An actor that starts, watches and restarts children (OTP's contract; see the module docstring).

    Start it like any actor: ``Supervisor.start(children=[...], strategy=Strategy.REST_FOR_ONE)``; it
    starts the children in order from ``on_start``. Reach a child with ``await sup.proxy().child("id")``
    (a :class:`StableRef`), add one with ``await sup.proxy().start_child(spec)``, remove one with
    ``await sup.proxy().terminate_child("id")`` (or ``.get()`` those futures from a foreign thread).
    Nest supervisors by giving a ``ChildSpec`` a factory that starts one (with ``shutdown_timeout=None``).

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
        intensity: Intensity = Intensity(),
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
        self._clock = clock
        self._rng = rng
        self._on_escalate = on_escalate
        self._children: dict[str, _Child] = {}
        self._history: tuple[float, ...] = ()
        self._events: collections.deque[RestartEvent] = collections.deque(maxlen=max_events)
        self._timers: set[asyncio.TimerHandle] = set()
        for spec in children:
            self._add(spec)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Start the static children in order; if one fails to start, stop the others and fail."""
        watch(self.actor_ref, self._on_own_exit)
        for child in list(self._children.values()):
            await self._start(child)

    async def on_stop(self) -> None:
        """Stop every child, newest first, each within its shutdown timeout."""
        await self._shutdown_all()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop every child (if not done yet), then report to ``on_escalate``."""
        await self._shutdown_all()
        if self._on_escalate is not None and exception_value is not None:
            try:
                self._on_escalate(exception_value)
            except Exception:
                _log.exception("on_escalate of %s failed", self)

    def _on_own_exit(self, _ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
        # Killed (task cancelled) before its children were stopped: kill them too rather than orphan them.
        if isinstance(reason, Shutdown):
            for child in reversed(list(self._children.values())):
                if child.ref is not None:
                    kill_actor(child.ref)
                child.handle._terminate()
            self._children.clear()

    # -- public API (call through a proxy) ------------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> StableRef:
        """Add a child at runtime and start it (last in start order).

        Returns:
            Its stable reference.

        Raises:
            ValueError: the id is taken.
            Exception: whatever the factory raised (the child is then not added).
        """
        if spec.id in self._children:
            raise ValueError(f"{self}: a child {spec.id!r} already exists")
        child = self._add(spec)
        try:
            await self._start(child)
        except BaseException:
            self._forget(spec.id)
            raise
        return child.handle

    async def terminate_child(self, child_id: str) -> bool:
        """Stop a child (within its shutdown timeout, then kill it) and forget it.

        Returns:
            ``False`` if there was no such child.
        """
        child = self._children.get(child_id)
        if child is None:
            return False
        await self._stop_incarnation(child)
        self._forget(child_id)
        return True

    def child(self, child_id: str) -> StableRef:
        """The stable reference of a child.

        Raises:
            KeyError: no such child.
        """
        return self._children[child_id].handle

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order."""
        return [ChildInfo(c.spec.id, c.spec.restart, c.ref, c.handle) for c in self._children.values()]

    def restart_events(self) -> list[RestartEvent]:
        """The most recent restarts, oldest first."""
        return list(self._events)

    # -- messages -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> None:
        """Handle child exits and scheduled restarts (anything else is logged and ignored)."""
        if isinstance(message, ChildFailed | ChildStopped | _RestartDue | _StartFailed):
            await self._dispatch(message)
        else:
            _log.warning("%s ignored an unexpected message %r", self, message)

    async def _dispatch(self, event: _SupervisorEvent) -> None:
        match event:
            case ChildFailed(child_id=child_id, ref=ref, exception=exception):
                await self._on_exit(child_id, ref, Crashed(exception))
            case ChildStopped(child_id=child_id, ref=ref, reason=reason):
                await self._on_exit(child_id, ref, reason)
            case _StartFailed(child_id=child_id, exception=exception):
                await self._on_exit(child_id, None, Crashed(exception))
            case _RestartDue(child_ids=child_ids):
                await self._start_many(child_ids)
            case _:
                assert_never(event)

    async def _on_exit(self, child_id: str, ref: pykka.ActorRef[Any] | None, reason: ExitReason) -> None:
        child = self._children.get(child_id)
        if child is None or child.ref is not ref:
            return  # a stale incarnation, or one the supervisor stopped itself
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
                _log.info("%s: child %r exited (%r); not restarted", self, child_id, reason)
                self._forget(child_id)
            case Escalate(restarts=restarts, period=period):
                await self._escalate(child_id, reason, restarts, period)
            case Restart():
                self._history = decision.history
                self._events.append(RestartEvent(now, child_id, reason, decision.start, decision.delay))
                await self._restart(decision)
            case _:
                assert_never(decision)

    async def _escalate(self, child_id: str, reason: ExitReason, restarts: int, period: float) -> None:
        _log.error(
            "%s: %d restarts within %s s; child %r exited again: escalating", self, restarts, period, child_id
        )
        await self._shutdown_all()
        cause = reason.exception if isinstance(reason, Crashed) else None
        raise RestartIntensityError(
            f"{self}: child {child_id!r} exceeded {self.intensity.max_restarts} restarts in {period} s"
        ) from cause

    async def _restart(self, decision: Restart) -> None:
        for child_id in decision.stop:
            if (sibling := self._children.get(child_id)) is not None:
                await self._stop_incarnation(sibling)
        for child_id in decision.remove:
            self._forget(child_id)
        if decision.delay > 0.0:
            _log.info("%s: restarting %s in %.3f s", self, decision.start, decision.delay)
            self._schedule(decision.delay, _RestartDue(decision.start))
        else:
            await self._start_many(decision.start)

    def _schedule(self, delay: float, message: _RestartDue) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(message)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    # -- children -------------------------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        child = _Child(spec, self.ask_timeout)
        self._children[spec.id] = child
        return child

    def _forget(self, child_id: str) -> None:
        child = self._children.pop(child_id, None)
        if child is not None:
            if child.unlink is not None:
                child.unlink()
            child.handle._terminate()

    async def _start(self, child: _Child) -> None:
        started = child.spec.start()
        ref = await started if inspect.isawaitable(started) else started
        if not isinstance(ref, pykka.ActorRef):
            raise TypeError(f"the factory of child {child.spec.id!r} returned {ref!r}, not an ActorRef")
        child.ref = ref
        child.unlink = link(ref, self.actor_ref, child.spec.id)
        child.handle._bind(ref)
        _log.debug("%s started child %r: %s", self, child.spec.id, ref)

    async def _start_many(self, child_ids: Sequence[str]) -> None:
        for child_id in child_ids:
            child = self._children.get(child_id)
            if child is None or child.ref is not None:
                continue
            try:
                await self._start(child)
            except Exception as exc:
                _log.error("%s: child %r failed to start", self, child_id, exc_info=exc)
                with contextlib.suppress(pykka.ActorDeadError):
                    self.actor_ref.tell(_StartFailed(child_id, exc))

    async def _stop_incarnation(self, child: _Child) -> None:
        ref, child.ref = child.ref, None
        if child.unlink is not None:
            child.unlink()
            child.unlink = None
        if ref is not None:
            await stop_actor(ref, timeout=child.spec.shutdown_timeout)

    async def _shutdown_all(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for child_id in reversed(list(self._children)):
            child = self._children.get(child_id)
            if child is not None:
                await self._stop_incarnation(child)
                self._forget(child_id)


class DynamicSupervisor(Supervisor):
    """A ``one_for_one`` supervisor that starts empty; children come and go with ``start_child``/
    ``terminate_child`` (OTP's ``simple_one_for_one``, Elixir's ``DynamicSupervisor``) — e.g. one
    ParticipantActor per remote identity.

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
        intensity: Intensity = Intensity(),
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
