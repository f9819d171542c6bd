"""How room events and messages reach an agent's code: through the job's restart stash to the logic's
serial dispatcher.

* :class:`JobRoom` is the ``rtc.Room`` a job's code sees as ``ctx.room``. It lives with the connection
  (created on greenroom's runtime loop, owned by the job's connection actor) and *outlives the agent's
  logic*: a logic restart keeps the participant in the room. ``on``/``once``/``off`` behave as in
  ``livekit.rtc`` (plain functions only, decorator form, extra arguments cut to what the callback takes),
  but a callback never runs on the runtime loop: each registration belongs to the logic incarnation that
  made it, and each emitted event the agent listens to becomes a :class:`~greenroom.agents.job.RoomEvent`
  entry in the job's :class:`~greenroom.agents.job.RestartStash`, which hands it to the live incarnation
  (or keeps it while the logic restarts). When the logic stops, its registrations are dropped
  (:meth:`JobRoom.drop_listeners`), so a restarted logic that registers again is not called twice.
* :class:`Dispatcher` runs on the job's logic loop and calls the callbacks one at a time, in emit order
  (an agent's mailbox); coroutine functions are awaited before the next item. Each item says where a
  synchronous function runs: on the logic loop, or in an executor thread (so a handler that blocks does
  not block the loop; the liveness deadline on its delivery then finds the hang). Room callbacks
  run on the logic loop, because livekit code starts async work from them with ``asyncio.create_task``,
  which needs the loop's thread; a blocking one is the watchdog's case. The actor shape's synchronous
  handlers run in the executor by default. A callback that raises *crashes the logic* (``on_error``, with
  a :class:`~greenroom.agents.job.CallbackError` naming the item), unlike ``livekit.rtc``, which logs and
  carries on: the supervisor restarts the logic with its checkpoint instead of running on in an unknown
  state. The queue is filled under a lock from any thread, not through the loop's ``call_soon``, so what
  is queued can be taken back (:meth:`Dispatcher.take_leftovers`) even when the loop is blocked: the
  supervisor hands it to the next incarnation. Bounded (:data:`DISPATCH_CAPACITY`): past it new items are
  refused and counted (``dropped``), and a warning is logged once per burst.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import linecache
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from greenroom import rtc
from greenroom.agents.job import CallbackError, Delivery, Entry, RestartStash, RoomEvent, describe_entry
from greenroom.agents.loops import LogicLoop, thread_stack
from greenroom.rtc.room import EventTypes

__all__ = ["DISPATCH_CAPACITY", "Dispatcher", "JobRoom", "callback_executor"]

_log = logging.getLogger("greenroom.agents.dispatch")

_F = TypeVar("_F", bound=Callable[..., Any])

_TASK_NAME = "greenroom-agent-dispatch"

#: Items a dispatcher holds before it drops new ones (room events arriving faster than the agent handles).
DISPATCH_CAPACITY = 10_000

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def callback_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process-wide executor for agents' synchronous callbacks (32 threads, created on first use).

    A callback that never returns keeps its thread: the liveness deadline restarts the logic, but Python
    cannot stop the thread. Past 32 stuck callbacks, new ones wait (and miss their liveness deadline).
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="greenroom-agent-cb")
        return _executor


#: ``_arity`` per function (a bound method's ``__func__``: the same for every instance). Weak: a closure of
#: an ended job is not kept alive by it. ``inspect.signature`` is ~20 µs; before this cache it was ~15 % of a
#: worker's Python time under P9's echo traffic (py-spy --gil, 100 jobs).
_arities: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()
_method_arities: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def _arity(callback: Callable[..., Any]) -> int | None:
    """How many positional arguments ``callback`` takes (``None``: any number, or unknown)."""
    func = getattr(callback, "__func__", None)
    cache, key = (_arities, callback) if func is None else (_method_arities, func)
    try:
        return cache[key]
    except (KeyError, TypeError):  # not seen yet; or a key that cannot be weakly referenced or hashed
        pass
    arity = _signature_arity(callback)
    with contextlib.suppress(TypeError):
        cache[key] = arity
    return arity


def _signature_arity(callback: Callable[..., Any]) -> int | None:
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _is_async(callback: Callable[..., Any]) -> bool:
    call = getattr(callback, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    return inspect.iscoroutinefunction(callback) or (call is not None and inspect.iscoroutinefunction(call))


def coroutine_stack(coro: Any) -> str:
    """The await chain of a suspended coroutine, formatted like a traceback (outermost first).

    ``Task.get_stack()`` shows only the task's own coroutine frame; a hang is usually several awaits down.
    """
    lines: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n')
            source = linecache.getline(code.co_filename, frame.f_lineno).strip()
            if source:
                lines.append(f"    {source}\n")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "".join(lines)


@dataclass(slots=True)
class _Item:
    """One queued call: ``fn(*args)``; ``entry`` is the room event or message it delivers (``None``: the
    job machinery's own — never replayed)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    executor: bool
    entry: Entry | None


class Dispatcher:
    """One logic incarnation's serial queue of callbacks, consumed on its logic loop.

    The queue is filled from any thread under a lock (not through the loop's ``call_soon``), so when the
    loop is blocked or the incarnation fails, the supervisor can still take what was not handled
    (:meth:`take_leftovers`) and hand it to the next incarnation.

    Args:
        logic: the job's logic loop.
        on_error: called on the logic loop with a :class:`~greenroom.agents.job.CallbackError` (its cause
            the exception) when a callback raises (once; the dispatcher stops). It must be thread-safe (it
            tells the logic actor).
        capacity: the bound of the queue.
    """

    def __init__(
        self,
        logic: LogicLoop,
        on_error: Callable[[BaseException], None],
        *,
        capacity: int = DISPATCH_CAPACITY,
    ) -> None:
        self.logic = logic
        self.capacity = capacity
        self.dropped = 0
        self.handled = 0
        self._on_error = on_error
        self._lock = threading.Lock()
        self._queue: collections.deque[_Item] = collections.deque()
        self._parked: list[Entry] = []
        self._running: _Item | None = None
        #: Since when it has had work without starting or finishing an item (``None``: nothing to do).
        #: Written under the lock; read without it by the watchdog (:meth:`stalled`).
        self._since: float | None = None
        self._wake: asyncio.Event | None = None
        self._idle = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._warned = False
        #: What runs now (for hang reports): a description, and the executor thread running it, if any.
        self.current = ""
        self.current_thread: int | None = None

    # -- any thread -------------------------------------------------------------------------------------

    def post(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        *,
        executor: bool = False,
        entry: Entry | None = None,
    ) -> Delivery:
        """Queue ``fn(*args)`` (thread-safe); ``executor``: a plain function runs in an executor thread.

        Returns:
            ``CLOSED`` once the dispatcher is closed (its incarnation ended), ``REFUSED`` when the queue is
            full (the item is dropped and counted), else ``DELIVERED``.
        """
        with self._lock:
            if self._closed:
                return Delivery.CLOSED
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                if not self._warned:
                    self._warned = True
                    name = self.logic.name
                    _log.warning("%s: agent dispatch queue full (%d); dropping", name, self.capacity)
                return Delivery.REFUSED
            self._warned = False
            self._queue.append(_Item(fn, args, executor, entry))
            if self._since is None:
                self._since = time.monotonic()
            wake, self._idle = self._idle, False
        if wake and self._wake is not None:
            self.logic.call_soon(self._wake.set)
        return Delivery.DELIVERED

    def close(self) -> None:
        """Stop consuming (thread-safe); what is queued is dropped (take it first to keep it)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._since = None
        self.logic.call_soon(self._cancel)

    def take_leftovers(self, *, keep_current: bool) -> list[Entry]:
        """Close, and return the entries not handled, in order (thread-safe).

        Parked messages first, then the item being handled if ``keep_current`` (it was interrupted by a
        failure elsewhere, so it is replayed), then the queue. The item that failed is not among them.
        """
        with self._lock:
            self._closed = True
            self._since = None
            items = list(self._queue)
            self._queue.clear()
            parked, self._parked = self._parked, []
            if keep_current and self._running is not None:
                items.insert(0, self._running)
        self.logic.call_soon(self._cancel)
        return parked + [item.entry for item in items if item.entry is not None]

    @property
    def queued(self) -> int:
        """Items waiting now."""
        return len(self._queue)

    @property
    def running_entry(self) -> Entry | None:
        """The room event or message being handled now (``None``: none, or the machinery's own item)."""
        running = self._running
        return None if running is None else running.entry

    def park(self, entry: Entry, limit: int) -> bool:
        """Keep a message until the agent's handler is set (``False``: over ``limit``, dropped, counted)."""
        with self._lock:
            if len(self._parked) >= limit:
                self.dropped += 1
                return False
            self._parked.append(entry)
            return True

    def unpark(self) -> list[Entry]:
        """The parked messages, in order (they are no longer kept here)."""
        with self._lock:
            parked, self._parked = self._parked, []
            return parked

    def stalled(self) -> float:
        """Seconds it has had work (an item running, or queued) without starting or finishing an item;
        0 when it has nothing to do. Lock-free (the watchdog calls it every tick for every job): a stale
        read only delays a report by a tick, and the logic re-checks a report under the lock
        (:meth:`stalled_now`)."""
        since = self._since  # the state first, the clock second: never negative
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def stalled_now(self) -> float:
        """As :meth:`stalled`, read under the lock (to confirm a report)."""
        with self._lock:
            return self.stalled()

    def stack(self) -> str:
        """Where the running callback is (for a hang report): the executor thread's stack, else the task's."""
        if self.current_thread is not None:
            return thread_stack(self.current_thread)
        task = self._task
        return "" if task is None else coroutine_stack(task.get_coro())

    @property
    def task_name(self) -> str:
        """The consumer task's name (a blocked loop inside it blames the running item)."""
        return _TASK_NAME

    # -- the logic loop -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer task (on the logic loop)."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._consume(), name=_TASK_NAME)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _next(self) -> _Item | None:
        with self._lock:
            if self._closed:
                raise asyncio.CancelledError
            item = self._running = self._queue.popleft() if self._queue else None
            self._idle = item is None
            self._since = None if item is None else time.monotonic()
            return item

    async def _consume(self) -> None:
        assert self._wake is not None
        while True:
            item = self._next()
            if item is None:
                self._wake.clear()
                if self._idle:  # nothing was posted since _next(): sleep until post() wakes us
                    await self._wake.wait()
                continue
            self.current = getattr(item.fn, "__qualname__", repr(item.fn))
            try:
                await self.call(item.fn, item.args, item.executor)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                with self._lock:
                    self._closed = True
                    self._running = self._since = None
                what = describe_entry(item.entry) if item.entry is not None else self.current
                error = CallbackError(f"{type(exc).__name__}: {exc} (while handling {what})", item=item.entry)
                error.__cause__ = exc
                self._on_error(error)
                return
            finally:
                self.current, self.current_thread = "", None
            with self._lock:
                self._running = None
                self._since = time.monotonic()
            self.handled += 1

    def push_front(self, items: list[tuple[Callable[..., Any], tuple[Any, ...], Entry | None]]) -> None:
        """Queue ``(fn, args, entry)`` items before everything queued (thread-safe)."""
        with self._lock:
            if self._closed:
                return
            for fn, args, entry in reversed(items):
                self._queue.appendleft(_Item(fn, args, False, entry))
            if items and self._since is None:
                self._since = time.monotonic()
            wake = self._idle and bool(items)
            if items:
                self._idle = False
        if wake and self._wake is not None:
            self.logic.call_soon(self._wake.set)

    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...], executor: bool) -> None:
        """Call ``fn(*args)`` now (on the logic loop): awaited if async, in the executor if asked."""
        arity = _arity(fn)
        args = args if arity is None else args[:arity]
        if not executor or _is_async(fn):
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(callback_executor(), self._in_thread, fn, args)

    def _in_thread(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.current_thread = threading.get_ident()
        fn(*args)


@dataclass(frozen=True, slots=True)
class _Listener:
    event: str
    callback: Callable[..., Any]
    once: bool
    owner: Dispatcher  # the incarnation that registered it


class JobRoom(rtc.Room):
    """The job's ``rtc.Room``: user callbacks run in the agent's dispatcher (on the logic loop, in order),
    and room events reach them through the job's :class:`~greenroom.agents.job.RestartStash`.

    Created on the runtime loop by the connection actor; see the module docstring.

    Args:
        stash: the job's restart stash (every room event the agent listens to goes through it).
        loop: the loop the room runs on (greenroom's runtime loop).
    """

    def __init__(self, stash: RestartStash, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self._stash = stash
        self._dispatcher: Dispatcher | None = None
        self._listeners: list[_Listener] = []
        self._listeners_lock = threading.Lock()

    def bind(self, dispatcher: Dispatcher | None) -> None:
        """Callbacks registered from now on belong to ``dispatcher`` (the logic incarnation starting)."""
        self._dispatcher = dispatcher

    def drop_listeners(self) -> None:
        """Forget every user registration (the logic incarnation that made them ended)."""
        with self._listeners_lock:
            self._listeners = []

    def callbacks_for(self, event: str, owner: Dispatcher) -> list[Callable[..., Any]]:
        """The callbacks ``owner``'s incarnation registered for ``event`` (``once`` ones are removed)."""
        with self._listeners_lock:
            found = [lst for lst in self._listeners if lst.event == event and lst.owner is owner]
            if any(lst.once for lst in found):
                self._listeners = [lst for lst in self._listeners if not (lst.once and lst in found)]
        return [lst.callback for lst in found]

    def _emit_contained(self, event: EventTypes, *args: Any) -> None:
        """The room's event delivery (``EventEmitter._emit_contained``): the machinery's own callbacks now
        (runtime loop); the agent's through the restart stash."""
        super()._emit_contained(event, *args)
        if self._stash.listens(event):
            self._stash.put(RoomEvent(event, args))

    def on_internal(self, event: EventTypes, callback: Callable[..., None]) -> None:
        """Register one of the job machinery's own callbacks (it runs on the runtime loop; never dropped)."""
        super().on(event, callback)

    @overload
    def on(self, event: EventTypes, callback: _F) -> _F: ...
    @overload
    def on(self, event: EventTypes, callback: None = None) -> Callable[[_F], _F]: ...

    def on(self, event: EventTypes, callback: Callable[..., Any] | None = None) -> Any:
        """As ``rtc.Room.on``; the callback runs in the agent's dispatcher, never on the runtime loop."""
        return self._add("on", event, callback, once=False)

    @overload
    def once(self, event: EventTypes, callback: _F) -> _F: ...
    @overload
    def once(self, event: EventTypes, callback: None = None) -> Callable[[_F], _F]: ...

    def once(self, event: EventTypes, callback: Callable[..., Any] | None = None) -> Any:
        """As ``rtc.Room.once``; the callback runs in the agent's dispatcher."""
        return self._add("once", event, callback, once=True)

    def off(self, event: EventTypes, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback`` for ``event``."""
        with self._listeners_lock:
            self._listeners = [
                lst for lst in self._listeners if not (lst.event == event and lst.callback == callback)
            ]
        super().off(event, callback)

    def on_logic(self, event: EventTypes, callback: Callable[..., None]) -> None:
        """Register a callback of the job machinery, bound to the current logic incarnation like a user's."""
        self._add("on", event, callback, once=False)

    def _add(
        self,
        method: str,
        event: EventTypes,
        callback: Callable[..., Any] | None,
        *,
        once: bool,
    ) -> Any:
        if callback is None:

            def decorator(fn: _F) -> _F:
                self._add(method, event, fn, once=once)
                return fn

            return decorator
        if _is_async(callback):
            raise ValueError(
                f"{method}() takes plain functions only; to run async work, start it from the callback "
                "with asyncio.create_task(...)"
            )
        dispatcher = self._dispatcher
        if dispatcher is None:
            raise RuntimeError("room callbacks can be registered only by a running agent")
        self._stash.listen(event)
        with self._listeners_lock:
            self._listeners.append(_Listener(event, callback, once, dispatcher))
        return callback
