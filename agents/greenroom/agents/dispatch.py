"""How room events reach an agent's code: the job's room relays them to the logic's serial dispatcher.

* :class:`JobRoom` is the ``rtc.Room`` a job's code sees as ``ctx.room``. It lives with the connection
  (created on greenroom's runtime loop, owned by the job's connection actor) and *outlives the agent's
  logic*: a logic restart keeps the participant in the room. ``on``/``once``/``off`` behave as in
  ``livekit.rtc`` (plain functions only, decorator form, extra arguments cut to what the callback takes),
  but a callback never runs on the runtime loop: each registration is bound to the logic incarnation that
  made it, and every emit is relayed to that incarnation's :class:`Dispatcher`. When the logic stops, its
  registrations are dropped (:meth:`JobRoom.drop_listeners`), so a restarted logic that registers again
  is not called twice.
* :class:`Dispatcher` runs on the job's logic loop and calls the callbacks one at a time, in emit order
  (an agent's mailbox); coroutine functions are awaited before the next item. Each item says where a
  synchronous function runs: on the logic loop, or in an executor thread (so a handler that blocks does
  not block the loop; the liveness probe, which queues behind it, then finds the hang). Room callbacks
  run on the logic loop, because livekit code starts async work from them with ``asyncio.create_task``,
  which needs the loop's thread; a blocking one is the watchdog's case. The actor shape's synchronous
  handlers run in the executor by default. A callback that raises *crashes the logic* (``on_error``),
  unlike ``livekit.rtc``, which logs and carries on: the supervisor restarts the logic with its checkpoint
  instead of running on in an unknown state. The queue is bounded (:data:`DISPATCH_CAPACITY`): past it new
  items are dropped and counted (``dropped``), and a warning is logged once per burst.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import linecache
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from greenroom import rtc
from greenroom.agents.loops import LogicLoop, thread_stack
from greenroom.rtc.room import EventTypes

__all__ = ["DISPATCH_CAPACITY", "Dispatcher", "JobRoom", "callback_executor"]

_log = logging.getLogger("greenroom.agents.dispatch")

_F = TypeVar("_F", bound=Callable[..., Any])

#: Items a dispatcher holds before it drops new ones (room events arriving faster than the agent handles).
DISPATCH_CAPACITY = 10_000

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def callback_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process-wide executor for agents' synchronous callbacks (32 threads, created on first use).

    A callback that never returns keeps its thread: the liveness probe restarts the logic, but Python
    cannot stop the thread. Past 32 stuck callbacks, new ones wait (and their probes time out).
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="greenroom-agent-cb")
        return _executor


def _arity(callback: Callable[..., Any]) -> int | None:
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


class Dispatcher:
    """One logic incarnation's serial queue of callbacks, consumed on its logic loop.

    Args:
        logic: the job's logic loop.
        on_error: called on the logic loop with the exception of a callback that raised (once; the
            dispatcher stops). It must be thread-safe (it tells the logic actor).
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
        self._queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...], bool]] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._warned = False
        #: What runs now (for hang reports): a description, and the executor thread running it, if any.
        self.current = ""
        self.current_thread: int | None = None

    # -- any thread -------------------------------------------------------------------------------------

    def post(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, executor: bool = False) -> bool:
        """Queue ``fn(*args)`` (thread-safe); ``executor``: a plain function runs in an executor thread.

        Returns:
            ``False`` if the dispatcher is closed (its logic incarnation ended).
        """
        if self._closed:
            return False
        return self.logic.call_soon(self._enqueue, fn, args, executor)

    def close(self) -> None:
        """Stop consuming (thread-safe); what is queued is dropped."""
        self._closed = True
        self.logic.call_soon(self._cancel)

    def stack(self) -> str:
        """Where the running callback is (for a hang report): the executor thread's stack, else the task's."""
        if self.current_thread is not None:
            return thread_stack(self.current_thread)
        task = self._task
        return "" if task is None else coroutine_stack(task.get_coro())

    # -- the logic loop -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer task (on the logic loop)."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="greenroom-agent-dispatch")

    def _cancel(self) -> None:
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    def _enqueue(self, fn: Callable[..., Any], args: tuple[Any, ...], executor: bool) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            if not self._warned:
                self._warned = True
                _log.warning(
                    "%s: agent dispatch queue full (%d); dropping events", self.logic.name, self.capacity
                )
            return
        self._warned = False
        self._queue.append((fn, args, executor))
        if self._wake is not None:
            self._wake.set()

    async def _consume(self) -> None:
        assert self._wake is not None
        while not self._closed:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            fn, args, executor = self._queue.popleft()
            self.current = getattr(fn, "__qualname__", repr(fn))
            try:
                await self.call(fn, args, executor)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._closed = True
                self._on_error(exc)
                return
            finally:
                self.current, self.current_thread = "", None
            self.handled += 1

    def push_front(self, items: list[tuple[Callable[..., Any], tuple[Any, ...], bool]]) -> None:
        """Queue ``(fn, args, executor)`` items before everything queued (on the logic loop)."""
        for item in reversed(items):
            self._queue.appendleft(item)
        if items and self._wake is not None:
            self._wake.set()

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


class JobRoom(rtc.Room):
    """The job's ``rtc.Room``: user callbacks are relayed to the current logic incarnation's dispatcher
    (and run on the logic loop, in order).

    Created on the runtime loop by the connection actor; see the module docstring.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self._dispatcher: Dispatcher | None = None
        self._relays: list[tuple[EventTypes, Callable[..., Any], Callable[..., None]]] = []
        self._relay_lock = threading.Lock()

    def bind(self, dispatcher: Dispatcher | None) -> None:
        """Relay the callbacks registered from now on to ``dispatcher`` (the logic incarnation starting)."""
        self._dispatcher = dispatcher

    def drop_listeners(self) -> None:
        """Forget every user registration (the logic incarnation that made them ended)."""
        with self._relay_lock:
            relays, self._relays = self._relays, []
        for event, _callback, relay in relays:
            super().off(event, relay)

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
        with self._relay_lock:
            gone = [r for r in self._relays if r[0] == event and callback in (r[1], r[2])]
            self._relays = [r for r in self._relays if r not in gone]
        for _event, _callback, relay in gone:
            super().off(event, relay)
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

        def relay(*args: Any) -> None:
            if once:
                self.off(event, relay)
            dispatcher.post(callback, args)

        with self._relay_lock:
            self._relays.append((event, callback, relay))
        super().on(event, relay)
        return callback
