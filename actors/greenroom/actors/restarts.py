"""The restart decision of greenroom's supervision, as pure values and one pure function.

:func:`decide` answers "a child exited: what now?" from the strategy, the children's restart types, the
exit reason, the restart history, the clock reading, the intensity and the back-off — no threads, no loop,
no randomness of its own (the jitter sample is passed in), so it is tested exhaustively on its own.
:mod:`greenroom.actors.supervision` applies it (and re-exports everything here).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.core import Crashed, ExitReason
from greenroom.codecs.errors import GreenroomError

__all__ = [
    "DEFAULT_INTENSITY",
    "NO_BACKOFF",
    "ActorFactory",
    "Backoff",
    "ChildSpec",
    "Decision",
    "Escalate",
    "Intensity",
    "NoRestart",
    "Restart",
    "RestartIntensityError",
    "RestartType",
    "Strategy",
    "backoff_delay",
    "decide",
    "restart_window",
    "should_restart",
]

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
        immediate: this many restarts (counted like the doubling) happen at once before the back-off
            starts: a lone crash costs no delay, a crash loop slows down (the room tree uses 1).
    """

    min_delay: float = 0.0
    max_delay: float = 0.0
    random_factor: float = 0.0
    reset_after: float | None = None
    immediate: int = 0


#: Restart at once (OTP's behaviour).
NO_BACKOFF = Backoff()
#: The default crash-loop brake (3 restarts in 10 s).
DEFAULT_INTENSITY = Intensity()


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
    if backoff.min_delay <= 0.0 or attempt < backoff.immediate:
        return 0.0
    base = min(backoff.max_delay, backoff.min_delay * 2.0 ** min(attempt - backoff.immediate, 64))
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
