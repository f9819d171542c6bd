"""Asyncio-native actors built on pykka's ``Actor`` base class (DESIGN.md §3, design B).

Each :class:`AsyncioActor` runs as one task on the process runtime loop (:mod:`greenroom.runtime.loop`)
instead of owning a thread. pykka's public surface keeps working unchanged: ``Actor.start()`` returns a
``pykka.ActorRef``; ``tell``, ``ask``, ``stop``, ``proxy()`` and ``pykka.ActorRegistry`` behave as documented
by pykka. What differs, on purpose:

* **Handlers may be coroutines.** ``on_receive``, proxied methods and the ``on_start``/``on_stop``/
  ``on_failure`` hooks may be ``async def``; an awaitable result is awaited before the reply is sent (a pykka
  ``Future`` returned by a handler is passed through as a value, as pykka does). An actor handles one message
  at a time, so an ``await`` inside a handler holds its mailbox.
* **Bounded mailboxes** (:class:`Mailbox`): ``mailbox_capacity`` per actor class with an explicit
  ``mailbox_overflow`` policy — ``"reject"`` raises :class:`MailboxFullError` to a teller (an asker gets it
  through its future) and ``"drop_oldest"`` evicts the oldest ordinary message (an evicted ask is failed with
  :class:`MailboxFullError`). Stop requests and :class:`SystemMessage` values are never refused or dropped.
* **Futures that never block the loop** (:class:`AsyncioFuture`): ``await`` parks on an asyncio future;
  ``get()`` blocks as usual in foreign threads but raises :class:`BlockingGetError` on the runtime loop thread
  (where it could only deadlock). Every ask has a deadline (``ask_timeout``, 5 s by default); waiting past it
  raises :class:`AskTimeoutError`.
* **Every ask is answered.** When an actor ends, its mailbox is closed under the same lock that ``put``
  takes: asks still queued, and asks that race the stop, fail at once with :class:`ActorDeadError`.
* **Failures stay local.** A ``BaseException`` escaping a handler never calls
  ``pykka.ActorRegistry.stop_all()``; it ends that one actor:

  - ``SystemExit`` with code ``0``/``None`` is a request to stop: the actor stops normally (``on_stop`` runs,
    exit reason :class:`Normal`). Any other ``SystemExit`` is a crash of that actor. A library running on a
    background thread must not exit its host process, and Python itself ends only the current thread on
    ``SystemExit`` outside the main thread.
  - ``KeyboardInterrupt`` is a crash of that actor, and is then forwarded to the main thread with
    ``_thread.interrupt_main()`` (the host sees Ctrl-C where it expects it) unless the class sets
    ``forward_keyboard_interrupt = False``.
  - ``asyncio.CancelledError`` while the actor's task is being cancelled (a kill, or the runtime shutting
    down) ends the actor with :class:`Shutdown`; raised by a handler on its own, it is a crash.
  - An ``Exception`` from a handler reached by ``ask`` (or a proxy call) goes back to the asker and the actor
    carries on (pykka's "resume"); from a ``tell`` it crashes the actor, as pykka does: it is logged at ERROR,
    unregistered, ``on_failure`` runs and the watchers (its supervisor) are told.
* **Watchers**: :func:`watch` registers a callback run on the loop with the actor's :data:`ExitReason` when it
  ends; :func:`link` turns that into a :class:`ChildFailed` / :class:`ChildStopped` message for a parent.

Sync code (foreign threads) uses pykka as usual: ``ref.ask(msg)``, ``proxy.method().get()``. Async code on any
loop uses ``await ask(ref, msg, timeout=...)``, ``await ref.ask(msg, block=False)`` or
``await proxy.method()``.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

import pykka

from greenroom.actors.mailbox import (
    DEFAULT_ASK_TIMEOUT,
    DEFAULT_MAILBOX_CAPACITY,
    NORMAL,
    SHUTDOWN,
    ActorDeadError,
    AskTimeoutError,
    AsyncioFuture,
    BlockingGetError,
    ChildFailed,
    ChildStopped,
    Crashed,
    ExitReason,
    Mailbox,
    MailboxFullError,
    MailboxStats,
    Normal,
    Overflow,
    Shutdown,
    SystemMessage,
    reply_error,
    reply_with,
    running_loop,
)
from greenroom.actors.pykka_seams import ActorStop, Envelope, actor_of, renew_registry_lock
from greenroom.runtime.loop import add_shutdown_hook, get_loop

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_CAPACITY",
    "ActorDeadError",
    "AskTimeoutError",
    "AsyncioActor",
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
    "ask",
    "exit_future",
    "exit_reason",
    "kill_actor",
    "link",
    "live_actors",
    "mailbox_stats",
    "redirect_leftovers",
    "stop_actor",
    "watch",
]

_log = logging.getLogger("greenroom.actors.core")

T = TypeVar("T")

#: Seconds a graceful stop waits before the actor's task is cancelled.
DEFAULT_STOP_TIMEOUT = 5.0
#: An actor yields to the loop after this many messages handled without suspending (fairness).
_FAIRNESS_BATCH = 64

# Indirection so tests can observe forwarding without interrupting the test runner.
_interrupt_main: Callable[[], None] = _thread.interrupt_main


# --------------------------------------------------------------------------------------------------- actor

Watcher: TypeAlias = Callable[[pykka.ActorRef[Any], ExitReason], None]
LeftoverSink: TypeAlias = Callable[[list[Envelope[Any]]], None]

# Live actors by URN in start order; touched only on the loop thread.
_live: dict[str, AsyncioActor] = {}
_exit_reasons: weakref.WeakKeyDictionary[pykka.ActorRef[Any], ExitReason] = weakref.WeakKeyDictionary()
_hooked_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_hook_lock = threading.Lock()


if TYPE_CHECKING:

    class _ActorBase:
        """What the type checker sees of ``pykka.Actor``: its API, with hooks that may return awaitables.

        pykka types ``on_start``/``on_stop``/``on_failure`` as returning ``None``, which would make every
        ``async def`` override an error; at runtime the base class is ``pykka.Actor`` itself.
        """

        actor_urn: str
        actor_stopped: threading.Event

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        @classmethod
        def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]: ...

        @property
        def actor_ref(self) -> pykka.ActorRef[Any]: ...

        def stop(self) -> None: ...

        def on_receive(self, message: Any) -> Any: ...

        def _handle_receive(self, message: Any) -> Any: ...

else:
    _ActorBase = pykka.Actor


class AsyncioActor(_ActorBase):
    """A pykka actor that runs as a task on the runtime loop.

    Subclass it like a ``pykka.ThreadingActor``: override ``on_receive`` and/or add methods to call through
    ``ref.proxy()``; any of them, and the ``on_start``/``on_stop``/``on_failure`` hooks, may be ``async def``.
    Start it with ``MyActor.start(...)`` from any thread (or through a supervisor's ``ChildSpec``).

    Class attributes:
        mailbox_capacity: ordinary messages queued before ``mailbox_overflow`` applies.
        mailbox_overflow: ``"reject"`` (default) or ``"drop_oldest"``.
        ask_timeout: the deadline of asks made through ``ActorRef.ask``/proxies, in seconds.
        forward_keyboard_interrupt: re-raise a handler's ``KeyboardInterrupt`` in the main thread.
    """

    mailbox_capacity: ClassVar[int] = DEFAULT_MAILBOX_CAPACITY
    mailbox_overflow: ClassVar[Overflow] = "reject"
    ask_timeout: ClassVar[float] = DEFAULT_ASK_TIMEOUT
    forward_keyboard_interrupt: ClassVar[bool] = True

    actor_inbox: Mailbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task[None] | None = None
        self._exit: ExitReason | None = None
        self._watch_lock = threading.Lock()
        self._watchers: list[Watcher] = []
        self._leftover_sink: LeftoverSink | None = None
        self._stop_replies: list[pykka.Future[Any]] = []
        self._supervised = False

    # -- pykka's seams (checked at import by greenroom.actors.pykka_seams) ---------------------------------

    @classmethod
    def _create_actor_inbox(cls) -> Mailbox:
        return Mailbox(get_loop(), cls.mailbox_capacity, cls.mailbox_overflow, owner=cls.__name__)

    @classmethod
    def _create_future(cls) -> AsyncioFuture[Any]:
        return AsyncioFuture(timeout=cls.ask_timeout)

    def _start_actor_loop(self) -> None:
        loop = self.actor_inbox.loop
        _install_shutdown_hook(loop)
        if running_loop() is loop:
            self._spawn()
        else:
            loop.call_soon_threadsafe(self._spawn)

    def _spawn(self) -> None:
        task = self.actor_inbox.loop.create_task(self._main(), name=f"actor {self}")
        self._task = task
        _live[self.actor_urn] = self
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, _task: asyncio.Task[None]) -> None:
        # Safety net: a task cancelled before its first step never runs _main's handlers.
        self._finish(SHUTDOWN)

    # -- the actor loop -----------------------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            reason = await self._lifecycle()
        except asyncio.CancelledError:
            self._finish(SHUTDOWN)
            raise
        self._finish(reason)

    async def _lifecycle(self) -> ExitReason:
        failure = await self._run_hook(self.on_start)
        if failure is not None:
            return await self._exit_for(failure)
        inbox = self.actor_inbox
        handled = 0
        while True:
            envelope = inbox.get_nowait()
            if envelope is None:
                handled = 0
                envelope = await inbox.get_async()
            reason = await self._process(envelope)
            if reason is not None:
                return reason
            handled += 1
            if handled >= _FAIRNESS_BATCH:
                handled = 0
                await asyncio.sleep(0)

    async def _process(self, envelope: Envelope[Any]) -> ExitReason | None:
        message = envelope.message
        if isinstance(message, ActorStop):
            return await self._stop_gracefully(envelope.reply_to)
        try:
            result = self._handle_receive(message)
            if inspect.isawaitable(result) and not isinstance(result, pykka.Future):
                result = await result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                raise
            return await self._handler_failed(envelope.reply_to, exc)
        if envelope.reply_to is not None:
            reply_with(envelope.reply_to, result)
        return None

    async def _handler_failed(
        self, reply_to: pykka.Future[Any] | None, exc: BaseException
    ) -> ExitReason | None:
        if reply_to is not None:
            reply_error(reply_to, exc)
            if isinstance(exc, Exception):
                _log.info("%s: exception returned to the asker", self, exc_info=exc)
                return None
        return await self._exit_for(exc)

    async def _exit_for(self, exc: BaseException) -> ExitReason:
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            _log.debug("%s: SystemExit(%r) treated as a request to stop", self, exc.code)
            return await self._stop_gracefully(None)
        if isinstance(exc, KeyboardInterrupt) and self.forward_keyboard_interrupt:
            _interrupt_main()
        return await self._crash(exc)

    async def _crash(self, exc: BaseException) -> ExitReason:
        _log.error("unhandled exception in %s; the actor stops", self, exc_info=exc)
        self._mark_stopped()
        failure = await self._run_hook(self.on_failure, type(exc), exc, exc.__traceback__)
        if failure is not None:
            _log.error("on_failure of %s raised", self, exc_info=failure)
        return Crashed(exc)

    async def _stop_gracefully(self, reply_to: pykka.Future[Any] | None) -> ExitReason:
        if reply_to is not None:
            self._stop_replies.append(reply_to)
        self._mark_stopped()
        failure = await self._run_hook(self.on_stop)
        if failure is not None:
            _log.error("on_stop of %s raised", self, exc_info=failure)
        return NORMAL

    async def _run_hook(self, hook: Callable[..., Any], *args: Any) -> BaseException | None:
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                await result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                raise
            return exc
        return None

    def _mark_stopped(self) -> None:
        if not self.actor_stopped.is_set():
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()

    def _finish(self, reason: ExitReason) -> None:
        with self._watch_lock:
            if self._exit is not None:
                return
            self._exit = reason
            watchers, self._watchers = self._watchers, []
        self._mark_stopped()
        _exit_reasons[self.actor_ref] = reason
        self._dispose(self.actor_inbox.close())
        for reply_to in self._stop_replies:
            reply_with(reply_to, None)
        self._stop_replies.clear()
        ref = self.actor_ref
        for watcher in watchers:
            try:
                watcher(ref, reason)
            except Exception:
                _log.exception("a watcher of %s failed", self)
        _live.pop(self.actor_urn, None)
        _log.debug("%s ended: %r", self, reason)

    def _dispose(self, leftovers: list[Envelope[Any]]) -> None:
        kept: list[Envelope[Any]] = []
        for envelope in leftovers:
            if isinstance(envelope.message, ActorStop):
                if envelope.reply_to is not None:
                    reply_with(envelope.reply_to, None)
            else:
                kept.append(envelope)
        if not kept:
            return
        if self._leftover_sink is not None:
            try:
                self._leftover_sink(kept)
            except Exception:
                _log.exception("the leftover sink of %s failed", self)
            else:
                return
        for envelope in kept:
            if envelope.reply_to is not None:
                reply_error(envelope.reply_to, ActorDeadError(f"{self} stopped before handling the message"))
        _log.debug("%s dropped %d queued message(s) on exit", self, len(kept))

    # -- watchers -----------------------------------------------------------------------------------------

    def _add_watcher(self, watcher: Watcher) -> Callable[[], None]:
        with self._watch_lock:
            reason = self._exit
            if reason is None:
                self._watchers.append(watcher)
                return lambda: self._remove_watcher(watcher)
        ref = self.actor_ref
        _call_on_loop(self.actor_inbox.loop, watcher, ref, reason)
        return lambda: None

    def _remove_watcher(self, watcher: Watcher) -> None:
        with self._watch_lock, contextlib.suppress(ValueError):
            self._watchers.remove(watcher)

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # -- typed hook signatures (all may be ``async def`` in subclasses) -------------------------------------

    def on_start(self) -> Any:
        """Run on the loop before the first message (override; may be ``async def``).

        If it raises, the actor crashes: ``on_failure`` runs and its watchers (supervisor) are told.
        """

    def on_stop(self) -> Any:
        """Run on the loop after a stop request, before the actor ends (override; may be ``async def``)."""

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Any:
        """Run after a crash, once the actor is already unregistered (override; may be ``async def``)."""


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _call_on_loop(loop: asyncio.AbstractEventLoop, func: Callable[..., Any], *args: Any) -> None:
    if running_loop() is loop:
        loop.call_soon(func, *args)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(func, *args)


def _asyncio_actor(ref: pykka.ActorRef[Any]) -> AsyncioActor | None:
    if not issubclass(ref.actor_class, AsyncioActor):
        raise TypeError(f"{ref} is not an AsyncioActor")
    actor: AsyncioActor | None = actor_of(ref)
    return actor


# --------------------------------------------------------------------------------------------- public helpers


def watch(ref: pykka.ActorRef[Any], callback: Watcher) -> Callable[[], None]:
    """Call ``callback(ref, reason)`` on the runtime loop when the actor ends (at once if it has ended).

    Args:
        ref: an :class:`AsyncioActor`'s ref.
        callback: runs on the loop; it must not block.

    Returns:
        A function that cancels the watch.

    Raises:
        TypeError: if ``ref`` is not an :class:`AsyncioActor`'s.
    """
    actor = _asyncio_actor(ref)
    if actor is None:
        _call_on_loop(get_loop(), callback, ref, exit_reason(ref) or NORMAL)
        return lambda: None
    return actor._add_watcher(callback)


def exit_reason(ref: pykka.ActorRef[Any]) -> ExitReason | None:
    """Why the actor behind ``ref`` ended, or ``None`` while it runs (or if it is not an AsyncioActor)."""
    return _exit_reasons.get(ref)


def _settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def exit_future(ref: pykka.ActorRef[Any]) -> asyncio.Future[ExitReason]:
    """An asyncio future, on the running loop, resolved with the actor's :data:`ExitReason` when it ends."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ExitReason] = loop.create_future()

    def resolve(_ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
        if running_loop() is loop:
            _settle(future, reason)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, reason)

    watch(ref, resolve)
    return future


def link(child: pykka.ActorRef[Any], parent: pykka.ActorRef[Any] | Any, child_id: str) -> Callable[[], None]:
    """Tell ``parent`` :class:`ChildFailed` or :class:`ChildStopped` when ``child`` ends.

    Also marks the child as supervised, so the runtime's shutdown leaves stopping it to its parent.

    Args:
        child: an :class:`AsyncioActor`'s ref.
        parent: anything with ``tell`` (an ``ActorRef``); a parent that has ended is ignored.
        child_id: the id carried by the messages.

    Returns:
        A function that cancels the link.
    """
    actor = _asyncio_actor(child)
    if actor is not None:
        actor._supervised = True

    def notify(ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
        message: ChildFailed | ChildStopped
        match reason:
            case Crashed(exception=exception):
                message = ChildFailed(child_id, ref, exception)
            case Normal() | Shutdown():
                message = ChildStopped(child_id, ref, reason)
        with contextlib.suppress(pykka.ActorDeadError):
            parent.tell(message)

    return watch(child, notify)


def redirect_leftovers(ref: pykka.ActorRef[Any], sink: LeftoverSink | None) -> None:
    """Hand the messages still queued when the actor ends to ``sink`` instead of failing them.

    Used by stable references, which replay them to the next incarnation. Stop requests are never handed
    over. ``sink`` runs on the loop, before the watchers.
    """
    actor = _asyncio_actor(ref)
    if actor is not None:
        actor._leftover_sink = sink


def kill_actor(ref: pykka.ActorRef[Any]) -> None:
    """Cancel the actor's task now (any thread): no more messages, no ``on_stop``; exit reason Shutdown.

    Queued and later asks fail with :class:`ActorDeadError`. Python cannot kill a task that swallows its
    cancellation; such an actor is abandoned.
    """
    actor = _asyncio_actor(ref)
    if actor is not None:
        _call_on_loop(actor.actor_inbox.loop, actor._cancel)


async def stop_actor(ref: pykka.ActorRef[Any], *, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> ExitReason:
    """Stop an actor gracefully from async code; kill it if it has not ended within ``timeout`` seconds.

    The stop request queues behind messages already in the mailbox (pykka's semantics). Works for
    ``ThreadingActor`` refs too (their stop is waited for in a worker thread, without the kill).

    Args:
        ref: the actor.
        timeout: seconds to wait for ``on_stop`` to finish; ``None`` waits forever.

    Returns:
        Why the actor ended (an actor that had already ended reports its earlier reason).
    """
    if not issubclass(ref.actor_class, AsyncioActor):
        await asyncio.to_thread(ref.stop, block=True, timeout=timeout)
        return NORMAL
    ended = exit_future(ref)
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(ActorStop())
    try:
        return await asyncio.wait_for(asyncio.shield(ended), timeout)
    except TimeoutError:
        _log.warning("%s did not stop within %s s; killing it", ref, timeout)
    kill_actor(ref)
    try:
        return await asyncio.wait_for(asyncio.shield(ended), DEFAULT_STOP_TIMEOUT)
    except TimeoutError:
        _log.error("%s ignored its cancellation; abandoned", ref)
        return SHUTDOWN


async def ask(target: Any, message: Any, *, timeout: float | None = None) -> Any:
    """Ask from async code on any loop, without blocking it.

    Args:
        target: a ``pykka.ActorRef`` (of an AsyncioActor, or of a ThreadingActor: its reply is bridged back
            without blocking) or anything with pykka's ``ask(message, block=False)`` (a stable reference).
        message: the message.
        timeout: seconds to wait; ``None`` means the target's ask timeout (default 5 s).

    Returns:
        The answer.

    Raises:
        AskTimeoutError: no answer in time.
        pykka.ActorDeadError: the actor had ended or ended before answering.
    """
    future: AsyncioFuture[Any]
    if isinstance(target, pykka.ActorRef) and not issubclass(target.actor_class, AsyncioActor):
        future = AsyncioFuture(timeout)
        if not target.is_alive():
            raise ActorDeadError(f"{target} not found")
        target.actor_inbox.put(Envelope(message, reply_to=future))
    else:
        future = target.ask(message, block=False)
    return await future.wait(timeout)


def mailbox_stats(ref: pykka.ActorRef[Any]) -> MailboxStats:
    """The mailbox counters of an :class:`AsyncioActor` (any thread)."""
    inbox = ref.actor_inbox
    if not isinstance(inbox, Mailbox):
        raise TypeError(f"{ref} has no greenroom mailbox")
    return inbox.stats()


def live_actors() -> list[pykka.ActorRef[Any]]:
    """Refs of the AsyncioActors whose task has not finished, in start order (a snapshot)."""
    return [actor.actor_ref for actor in list(_live.values())]


def _forget_after_fork() -> None:
    """In a forked child, the parent's actors live on a loop that does not exist here: forget them.

    They are unregistered from pykka's process-global ``ActorRegistry`` too, so ``get_all()`` in the child
    lists only the child's own actors (the runtime loop forgets the parent's loop the same way).
    """
    global _hook_lock
    renew_registry_lock()  # the parent's runtime thread may have held it at fork(): it is gone here
    for actor in list(_live.values()):
        pykka.ActorRegistry.unregister(actor.actor_ref)
    _live.clear()
    _hooked_loops.clear()
    _hook_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _install_shutdown_hook(loop: asyncio.AbstractEventLoop) -> None:
    with _hook_lock:
        if loop in _hooked_loops:
            return
        _hooked_loops.add(loop)
    add_shutdown_hook(_stop_unsupervised)


async def _stop_unsupervised() -> None:
    """Runtime shutdown hook: stop top-level actors (newest first); supervisors stop their own children."""
    loop = asyncio.get_running_loop()
    roots = [actor for actor in reversed(list(_live.values())) if not actor._supervised]
    for actor in roots:
        if actor.actor_inbox.loop is loop:
            await stop_actor(actor.actor_ref, timeout=1.0)
