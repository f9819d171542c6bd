"""How messages travel between actors: errors, exit reasons and system messages, futures, mailboxes.

Split out of :mod:`greenroom.actors.core` (which re-exports every public name here): the
:class:`AsyncioFuture` that never blocks the runtime loop, and the bounded, closable :class:`Mailbox` with its
overflow policy and counters (:class:`MailboxStats`). See :mod:`greenroom.actors.core` for the whole model.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import pykka

from greenroom.actors.pykka_seams import ActorStop, Envelope, has_get_hook
from greenroom.codecs.errors import GreenroomError
from greenroom.runtime.loop import LoopMisuseError, in_runtime_thread

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_CAPACITY",
    "NORMAL",
    "SHUTDOWN",
    "ActorDeadError",
    "AskTimeoutError",
    "AsyncioFuture",
    "BlockingGetError",
    "ChildFailed",
    "ChildStopped",
    "Crashed",
    "ExitReason",
    "Mailbox",
    "MailboxFullError",
    "MailboxStats",
    "Normal",
    "Overflow",
    "Shutdown",
    "SystemMessage",
    "reply_error",
    "reply_with",
    "running_loop",
]

T = TypeVar("T")

#: Messages an actor's mailbox holds before its overflow policy applies.
DEFAULT_MAILBOX_CAPACITY = 10_000
#: Seconds an ask waits for its answer unless told otherwise.
DEFAULT_ASK_TIMEOUT = 5.0

#: What a full mailbox does with one more ordinary message.
Overflow: TypeAlias = Literal["reject", "drop_oldest"]

# --------------------------------------------------------------------------------------------------- errors


class ActorDeadError(GreenroomError, pykka.ActorDeadError):
    """The actor stopped before it could handle the message (also a ``pykka.ActorDeadError``)."""


class AskTimeoutError(GreenroomError, pykka.Timeout):
    """No answer arrived before the ask's deadline (also a ``pykka.Timeout``)."""


class MailboxFullError(GreenroomError):
    """A bounded mailbox or stash refused (``"reject"``) or evicted (``"drop_oldest"``) a message."""


class BlockingGetError(LoopMisuseError):
    """``Future.get()`` was called on the runtime loop thread, where blocking could only deadlock."""


# ------------------------------------------------------------------------------------- exits and messages


@dataclass(frozen=True, slots=True)
class Normal:
    """The actor stopped because it was asked to (``stop()``, or ``SystemExit(0)`` in a handler)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The actor was killed: its task was cancelled (a shutdown timeout ran out, or the runtime stopped)."""


@dataclass(frozen=True, slots=True)
class Crashed:
    """The actor failed: an exception escaped a tell handler or a lifecycle hook.

    Attributes:
        exception: what escaped.
    """

    exception: BaseException


#: Why an actor ended.
ExitReason: TypeAlias = Normal | Shutdown | Crashed

NORMAL = Normal()
SHUTDOWN = Shutdown()


class SystemMessage:
    """Base of runtime messages a mailbox always accepts (never rejected nor evicted by its policy)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ChildFailed(SystemMessage):
    """Told to a linked parent when its child crashed.

    Attributes:
        child_id: the id the parent gave the child when linking it.
        ref: the incarnation that crashed.
        exception: what escaped the child.
    """

    child_id: str
    ref: pykka.ActorRef[Any]
    exception: BaseException


@dataclass(frozen=True, slots=True)
class ChildStopped(SystemMessage):
    """Told to a linked parent when its child ended without crashing.

    Attributes:
        child_id: the id the parent gave the child when linking it.
        ref: the incarnation that ended.
        reason: :class:`Normal` (it was stopped) or :class:`Shutdown` (it was killed).
    """

    child_id: str
    ref: pykka.ActorRef[Any]
    reason: Normal | Shutdown


# ------------------------------------------------------------------------------------------------- futures


def running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio._get_running_loop()


def _wake_waiter(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _wake_on(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[bool]) -> None:
    """Resolve ``waiter`` from any thread (a closed loop means nobody is waiting any more)."""
    if running_loop() is loop:
        _wake_waiter(waiter, True)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_wake_waiter, waiter, True)


class AsyncioFuture(pykka.Future[T]):
    """A pykka ``Future`` that can be awaited on any asyncio loop without blocking it.

    ``await future`` (or ``await future.wait(timeout)``) parks on an asyncio future that :meth:`set` wakes,
    from whichever thread sets it. :meth:`get` blocks the calling thread as pykka's does, except on the
    runtime loop thread, where it raises :class:`BlockingGetError`. Each future has a deadline (``timeout``
    seconds after it was made): waiting without an explicit timeout stops there with
    :class:`AskTimeoutError`.

    Args:
        timeout: seconds from now to the deadline (default :data:`DEFAULT_ASK_TIMEOUT`).
    """

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None
        self._exception: BaseException | None = None
        self._event: threading.Event | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._timeout = DEFAULT_ASK_TIMEOUT if timeout is None else timeout
        self._deadline = time.monotonic() + self._timeout

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<AsyncioFuture {state}>"

    @property
    def deadline(self) -> float:
        """The ``time.monotonic()`` value after which waiting without a timeout gives up."""
        return self._deadline

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._done

    def set(self, value: Any | None = None) -> None:
        """Set the value and wake every waiter (any thread).

        Raises:
            queue.Full: if the future already has a result or a get hook (pykka's contract).
        """
        self._complete(value, None)

    def set_exception(self, exc_info: Any | None = None) -> None:
        """Set an exception (an ``exc_info`` triple, or the one being handled) and wake every waiter.

        Raises:
            queue.Full: if the future already has a result or a get hook (pykka's contract).
        """
        if exc_info is None:
            exc_info = sys.exc_info()
        exception_type, exception, traceback = exc_info
        if exception is None:
            assert exception_type is not None
            exception = exception_type()
        if traceback is not None and exception.__traceback__ is None:
            exception = exception.with_traceback(traceback)
        self._complete(None, exception)

    def _complete(self, value: Any, exception: BaseException | None) -> None:
        with self._lock:
            if self._done or has_get_hook(self):
                raise queue.Full
            self._done = True
            self._value = value
            self._exception = exception
            event, waiters, self._waiters = self._event, self._waiters, []
        if event is not None:
            event.set()
        for loop, waiter in waiters:
            _wake_on(loop, waiter)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        """Make :meth:`get` compute its value with ``func(timeout)`` (used by ``map``/``join``/...)."""
        with self._lock:
            if self._done:
                raise queue.Full
            super().set_get_hook(func)

    def get(self, *, timeout: float | None = None) -> T:
        """Block the calling (foreign) thread until the value is set, then return it or raise its exception.

        Args:
            timeout: seconds to wait; ``None`` waits until the future's deadline.

        Raises:
            BlockingGetError: on the runtime loop thread (``await`` the future there instead).
            AskTimeoutError: if the wait ran out first.
        """
        if in_runtime_thread():
            raise BlockingGetError(
                "Future.get() on the runtime loop thread would block every actor; await the future instead"
            )
        if has_get_hook(self):
            result: T = super().get(timeout=timeout)
            return result
        if not self._done:
            self._block(self._remaining(timeout))
        return self._outcome()

    def _remaining(self, timeout: float | None) -> float:
        return self._deadline - time.monotonic() if timeout is None else timeout

    def _block(self, seconds: float) -> None:
        with self._lock:
            if self._done:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(max(seconds, 0.0)):
            raise AskTimeoutError(f"no answer within {self._timeout_text(seconds)}")

    def _timeout_text(self, seconds: float) -> str:
        return f"{max(seconds, 0.0):.3f} s (ask timeout {self._timeout} s)"

    def _outcome(self) -> T:
        if self._exception is not None:
            raise self._exception
        value: T = self._value
        return value

    async def wait(self, timeout: float | None = None) -> T:
        """Wait without blocking the running loop, then return the value or raise its exception.

        Args:
            timeout: seconds to wait; ``None`` waits until the future's deadline.

        Raises:
            AskTimeoutError: if the wait ran out first.
        """
        if has_get_hook(self):
            # map()/join()/filter()/reduce() compute their value with blocking get()s: run them off-loop.
            hooked: T = await asyncio.to_thread(super().get, timeout=self._remaining(timeout))
            return hooked
        if not self._done:
            await self._park(self._remaining(timeout))
        return self._outcome()

    async def _park(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            if self._done:
                return
            self._waiters.append(entry)
        timer = loop.call_later(max(seconds, 0.0), _wake_waiter, waiter, False)
        try:
            answered = await waiter
        finally:
            timer.cancel()
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)
        if not answered and not self._done:
            raise AskTimeoutError(f"no answer within {self._timeout_text(seconds)}")

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()

    __iter__ = __await__


def reply_with(future: pykka.Future[Any], value: Any) -> None:
    with contextlib.suppress(queue.Full):
        future.set(value)


def reply_error(future: pykka.Future[Any], exception: BaseException) -> None:
    with contextlib.suppress(queue.Full):
        future.set_exception((type(exception), exception, exception.__traceback__))


# ------------------------------------------------------------------------------------------------- mailbox


@dataclass(frozen=True, slots=True)
class MailboxStats:
    """A snapshot of a mailbox's counters.

    Attributes:
        capacity: ordinary messages it holds before the overflow policy applies.
        overflow: the policy.
        depth: messages queued now.
        received: messages accepted since the actor was made.
        dropped: messages evicted by ``"drop_oldest"``.
        rejected: messages refused by ``"reject"`` (or because the actor had ended).
        max_depth: the deepest the queue has been.
    """

    capacity: int
    overflow: Overflow
    depth: int
    received: int
    dropped: int
    rejected: int
    max_depth: int


def _is_control(message: Any) -> bool:
    return isinstance(message, ActorStop | SystemMessage)


class Mailbox:
    """A bounded, closable inbox for one actor, fed from any thread and read by its task on the loop.

    ``put`` takes a short lock so that the capacity check happens in the sender's thread (a ``"reject"``
    raises there) and so that closing the mailbox and a racing ``put`` cannot miss each other. It wakes the
    reader directly when called on the loop and with ``call_soon_threadsafe`` from another thread. Messages
    from one sender stay in order.

    Args:
        loop: the loop the reading task runs on.
        capacity: ordinary messages held before ``overflow`` applies (control messages do not count).
        overflow: ``"reject"`` or ``"drop_oldest"``.
        owner: a name for log and error messages.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, capacity: int, overflow: Overflow, owner: str = "actor"
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, not {capacity}")
        if overflow not in ("reject", "drop_oldest"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.loop = loop
        self.owner = owner
        self._capacity = capacity
        self._overflow: Overflow = overflow
        self._lock = threading.Lock()
        self._items: collections.deque[Envelope[Any]] = collections.deque()
        self._closed = False
        self._waiter: asyncio.Future[bool] | None = None
        self._received = 0
        self._dropped = 0
        self._rejected = 0
        self._max_depth = 0

    def put(self, envelope: Envelope[Any], /) -> None:
        """Queue ``envelope`` (any thread).

        Raises:
            MailboxFullError: a tell met a full ``"reject"`` mailbox (an ask's future fails instead).
            ActorDeadError: a tell met a mailbox whose actor has ended (an ask's future fails instead).
        """
        self._put(envelope, refuse_closed=True)

    def try_put(self, envelope: Envelope[Any], /) -> bool:
        """Like :meth:`put`, but leave ``envelope`` untouched and return ``False`` if the actor has ended."""
        return self._put(envelope, refuse_closed=False)

    def _put(self, envelope: Envelope[Any], *, refuse_closed: bool) -> bool:
        evicted: Envelope[Any] | None = None
        with self._lock:
            if self._closed and not refuse_closed:
                return False
            if self._closed or (len(self._items) >= self._capacity and not _is_control(envelope.message)):
                refusal = self._refusal_locked()
                if refusal is not None:
                    self._refuse(envelope, refusal)
                    return True
                evicted = self._evict_locked()
            self._items.append(envelope)
            self._received += 1
            self._max_depth = max(self._max_depth, len(self._items))
            waiter, self._waiter = self._waiter, None
        if evicted is not None and evicted.reply_to is not None:
            reply_error(evicted.reply_to, MailboxFullError(f"{self.owner}: message evicted by drop_oldest"))
        if waiter is not None:
            _wake_on(self.loop, waiter)
        return True

    def _refusal_locked(self) -> BaseException | None:
        if self._closed:
            self._rejected += 1
            return ActorDeadError(f"{self.owner} has stopped; the message was not delivered")
        if self._overflow == "reject":
            self._rejected += 1
            return MailboxFullError(f"{self.owner}: mailbox full ({self._capacity} messages)")
        return None

    def _evict_locked(self) -> Envelope[Any] | None:
        for index, queued in enumerate(self._items):
            if not _is_control(queued.message):
                del self._items[index]
                self._dropped += 1
                return queued
        return None

    @staticmethod
    def _refuse(envelope: Envelope[Any], error: BaseException) -> None:
        if envelope.reply_to is None:
            raise error
        # An ask learns it through its future; ActorRef.stop() reads ActorDeadError as "already dead".
        reply_error(envelope.reply_to, error)

    def get(self) -> Envelope[Any]:
        """Take the next envelope without waiting (pykka's inbox protocol).

        Raises:
            queue.Empty: when nothing is queued.
        """
        envelope = self.get_nowait()
        if envelope is None:
            raise queue.Empty
        return envelope

    def get_nowait(self) -> Envelope[Any] | None:
        """Take the next envelope, or ``None`` when nothing is queued."""
        with self._lock:
            return self._items.popleft() if self._items else None

    async def get_async(self) -> Envelope[Any]:
        """Wait (on the mailbox's loop) for the next envelope and take it."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                waiter = self.loop.create_future()
                self._waiter = waiter
            await waiter

    def empty(self) -> bool:
        """Whether nothing is queued."""
        return not self._items

    def close(self) -> list[Envelope[Any]]:
        """Refuse every later ``put`` and return what was still queued (in order)."""
        with self._lock:
            self._closed = True
            leftovers = list(self._items)
            self._items.clear()
        return leftovers

    @property
    def closed(self) -> bool:
        """Whether the mailbox refuses new messages."""
        return self._closed

    def stats(self) -> MailboxStats:
        """A snapshot of the counters."""
        with self._lock:
            return MailboxStats(
                capacity=self._capacity,
                overflow=self._overflow,
                depth=len(self._items),
                received=self._received,
                dropped=self._dropped,
                rejected=self._rejected,
                max_depth=self._max_depth,
            )
