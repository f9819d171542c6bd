"""The fleet's decisions, pure: what to start and stop in one process, what to do when a bot's job ends,
and where the host places bots. No threads, no clock (``now`` is passed in), no randomness (``sample``).

* :func:`plan` — one process's reconciliation: desired bots against the records it keeps, with **exact
  admission**: a bot is started only while fewer than ``capacity`` jobs are alive in the process
  (stopping ones count until they ended), so the process never holds more than its share, not even for a
  moment.
* :func:`after_end` — a bot's job ended: start it again (when and why) or not, under the fleet's restart
  policy (OTP's permanent/transient/temporary) and back-off. The fleet never gives up on a bot it should
  run: past the job's own restart intensity the job ends FAILED, and the fleet starts it again after a
  delay that doubles with each consecutive end (``FLEET_BACKOFF``), reset once a run lasted
  ``STABLE_AFTER`` seconds.
* :func:`place` — the host's placement of bots on worker processes: a bot stays where it is while its
  process lives; bots without a process go to the live process with the most free room; no process gets
  more than its capacity.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from greenroom.actors.restarts import Backoff, backoff_delay

__all__ = [
    "FLEET_BACKOFF",
    "STABLE_AFTER",
    "BotState",
    "BotView",
    "Ended",
    "Forget",
    "Start",
    "Stop",
    "after_end",
    "place",
    "plan",
]

#: A bot's first restart by the fleet is immediate; then 0.5 s doubling to 30 s, ± 20 % jitter.
FLEET_BACKOFF = Backoff(min_delay=0.5, max_delay=30.0, random_factor=0.2, immediate=1)
#: A run that lasted this long resets the bot's back-off.
STABLE_AFTER = 10.0


class BotState(enum.StrEnum):
    """Where a bot is in its process."""

    PENDING = "pending"  # wanted, not started yet (or waiting for admission)
    STARTING = "starting"  # its job runs, not in the room yet
    RUNNING = "running"  # in the room
    RECONNECTING = "reconnecting"  # in the room, its link is being restored
    BACKOFF = "backoff"  # its job ended; starts again at ``due``
    STOPPING = "stopping"  # asked to end (removed from the fleet, or draining)
    DONE = "done"  # ended and not to be started again (temporary/transient policy)


#: The states in which the bot's job is alive (counted by admission).
ALIVE = frozenset({BotState.STARTING, BotState.RUNNING, BotState.RECONNECTING, BotState.STOPPING})


@dataclass(frozen=True, slots=True)
class BotView:
    """What :func:`plan` needs to know of a bot record."""

    state: BotState
    due: float = 0.0


@dataclass(frozen=True, slots=True)
class Start:
    """Start the bot's job now."""

    key: str


@dataclass(frozen=True, slots=True)
class Stop:
    """End the bot's job (it is no longer wanted here)."""

    key: str


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop the record of a bot that is neither wanted nor alive."""

    key: str


Action = Start | Stop | Forget


def plan(
    desired: Sequence[str],
    records: Mapping[str, BotView],
    *,
    now: float,
    capacity: int,
    draining: bool = False,
) -> list[Action]:
    """One reconciliation pass: what to do now so the process converges on ``desired``.

    Args:
        desired: the keys of the bots this process should run, in priority order.
        records: the bots it knows, with their state.
        now: the monotonic time.
        capacity: the most jobs alive at once in this process (exact admission).
        draining: stop everything, start nothing.

    Returns:
        ``Stop`` for unwanted live bots, ``Forget`` for unwanted dead ones, then ``Start`` for due bots in
        ``desired`` order while the admission limit allows.
    """
    wanted = set() if draining else set(desired)
    actions: list[Action] = []
    alive = 0
    for key, view in records.items():
        if view.state in ALIVE:
            alive += 1
        if key in wanted:
            continue
        if view.state in ALIVE and view.state is not BotState.STOPPING:
            actions.append(Stop(key))
        elif view.state not in ALIVE:
            actions.append(Forget(key))
    if draining:
        return actions
    for key in desired:
        found = records.get(key)
        due = found is None or (found.state in (BotState.PENDING, BotState.BACKOFF) and found.due <= now)
        if due and alive < capacity:
            actions.append(Start(key))
            alive += 1
    return actions


@dataclass(frozen=True, slots=True)
class Ended:
    """The decision after a bot's job ended.

    Attributes:
        state: ``BACKOFF`` (start again at ``due``) or ``DONE``.
        due: when to start again.
        attempt: the consecutive-end count to keep for the next decision.
        reason: why it ended, as a short label (metrics: ``restarts_total{reason}``).
    """

    state: BotState
    due: float
    attempt: int
    reason: str


def after_end(
    *,
    policy: str,
    failed: bool,
    reason: str,
    ran_for: float,
    attempt: int,
    now: float,
    sample: float,
    backoff: Backoff = FLEET_BACKOFF,
) -> Ended:
    """What the fleet does when a bot's job ends by itself (not when the fleet stopped it).

    Args:
        policy: ``permanent``, ``transient`` or ``temporary``.
        failed: the job ended FAILED (its own supervision gave up).
        reason: the label for it.
        ran_for: seconds the job lived.
        attempt: consecutive ends before this one.
        now: the monotonic time.
        sample: a number in [0, 1) for the jitter.
        backoff: the back-off policy.
    """
    again = policy == "permanent" or (policy == "transient" and failed)
    if not again:
        return Ended(BotState.DONE, now, attempt, reason)
    attempt = 0 if ran_for >= STABLE_AFTER else attempt
    delay = backoff_delay(backoff, attempt, sample)
    return Ended(BotState.BACKOFF, now + delay, attempt + 1, reason)


def place(
    desired: Sequence[str],
    current: Mapping[int, Sequence[str]],
    capacity: Mapping[int, int],
    alive: set[int],
    prefer: set[int] | None = None,
) -> dict[int, tuple[str, ...]]:
    """The host's placement: which process runs which bots.

    Args:
        desired: every bot of the fleet, in spec order.
        current: the bots each process was given so far.
        capacity: each process's admission limit.
        alive: the processes that run now (the others get nothing: their bots move or wait).
        prefer: live processes to fill first (the host's: those that have reported, so a lost process's
            bots go to running ones with room rather than to its replacement, which may take long to
            start — a Ray actor waiting for a node with free CPUs — or never start).

    Returns:
        For every live process, its bots: those it had and that are still wanted (up to its capacity),
        then bots that had no live process, on the preferred live process with the most free room (or,
        when no preferred one has room, the live one with the most). A bot that finds no room stays
        unplaced until a process comes back.
    """
    wanted = dict.fromkeys(desired)
    result: dict[int, list[str]] = {slot: [] for slot in sorted(alive)}
    placed: set[str] = set()
    for slot, keys in result.items():
        for key in current.get(slot, ()):
            if key in wanted and key not in placed and len(keys) < capacity.get(slot, 0):
                keys.append(key)
                placed.add(key)
    for key in wanted:
        if key in placed:
            continue
        room = [s for s in result if capacity.get(s, 0) - len(result[s]) > 0]
        if not room:
            continue
        first = [s for s in room if prefer is not None and s in prefer] or room
        slot = max(first, key=lambda s: (capacity.get(s, 0) - len(result[s]), -s))
        result[slot].append(key)
        placed.add(key)
    return {slot: tuple(keys) for slot, keys in result.items()}
