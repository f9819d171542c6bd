"""Stable addresses: a child's reference that survives its restarts (Akka's stash, OTP's registered name).

A :class:`StableRef` forwards ``tell``/``ask`` to whichever incarnation of a supervised child is current;
while the child is down, messages wait in a bounded stash (a full stash refuses, and counts it) and are
replayed in order to the next incarnation, after whatever the crashed incarnation had left in its mailbox.
Messages for a dead child are therefore never used to start it again: only its supervisor's decision
(:func:`greenroom.actors.supervision.decide`) does that.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Literal

import pykka

from greenroom.actors.core import (
    DEFAULT_ASK_TIMEOUT,
    ActorDeadError,
    AsyncioFuture,
    ExitReason,
    Mailbox,
    MailboxFullError,
    redirect_leftovers,
    watch,
)
from greenroom.actors.pykka_seams import Envelope, ProxyCall

__all__ = ["StableProxy", "StableRef", "StashFullError", "StashStats"]


class StashFullError(MailboxFullError):
    """A stable reference's stash was full while its child was restarting."""


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
