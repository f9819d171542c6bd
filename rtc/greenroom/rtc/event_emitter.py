"""``EventEmitter``: synchronous callbacks keyed by event name, shaped like ``livekit.rtc.EventEmitter``.

Behaviour matched with the official SDK (api-surface.md §1.1, §1.9):

* ``on``/``once`` work directly or as decorators and return the callback;
* coroutine functions are refused with :class:`ValueError` (schedule a task from a sync callback instead);
* a callback receives as many positional arguments as it accepts (a callback taking fewer arguments than
  the event carries gets the leading ones);
* an exception raised by a callback is logged and swallowed — except ``TypeError``, which ``emit`` raises
  (the official re-raises it so that a callback taking *more* arguments than the event carries fails loudly;
  the remaining callbacks of that emit are then not called, as in the official).

The room's own event delivery does not go through :meth:`EventEmitter.emit` but through
:meth:`EventEmitter._emit_contained`, which contains every exception, ``TypeError`` included, per
callback: one faulty listener never stops the others or the room (the official room logs what escapes
``emit`` in its event task; greenroom goes one step further and still calls the other listeners).

In a :class:`~greenroom.rtc.Room` the emitter always runs on the loop the room was created on (the user's
loop), never on greenroom's runtime loop.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["EventEmitter"]

_log = logging.getLogger("greenroom.rtc.event_emitter")

T_contra = TypeVar("T_contra", contravariant=True)
_Callback = Callable[..., Any]
_F = TypeVar("_F", bound=_Callback)


#: Callbacks run synchronously, in order, on the room's loop; a coroutine function would never be awaited.
_ASYNC_REFUSED = (
    "{method}() takes plain functions only; to run async work, start it from the callback "
    "with asyncio.create_task(...)"
)


def _is_async(callback: _Callback) -> bool:
    if inspect.iscoroutinefunction(callback):
        return True
    call = getattr(callback, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    return call is not None and inspect.iscoroutinefunction(call)


def _arity(callback: _Callback) -> int | None:
    """How many positional arguments ``callback`` accepts (``None``: any number)."""
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class EventEmitter(Generic[T_contra]):
    """Register synchronous callbacks per event and call them in registration order."""

    def __init__(self) -> None:
        """Create an emitter with no listeners."""
        self._events: dict[T_contra, dict[_Callback, None]] = {}

    def emit(self, event: T_contra, *args: Any) -> None:
        """Call every callback registered for ``event`` with ``args``.

        Args:
            event: the event name.
            *args: the event's arguments, passed positionally (truncated to what each callback accepts).

        Raises:
            TypeError: a callback raised it (typically: it takes more arguments than the event carries).
        """
        for callback in list(self._events.get(event, ())):
            arity = _arity(callback)
            try:
                callback(*(args if arity is None else args[:arity]))
            except TypeError:
                raise
            except Exception:
                _log.exception("a %r callback raised; the room carries on", event)

    def _emit_contained(self, event: T_contra, *args: Any) -> None:
        """What the room uses to emit: like :meth:`emit`, with every exception contained per callback."""
        for callback in list(self._events.get(event, ())):
            arity = _arity(callback)
            try:
                callback(*(args if arity is None else args[:arity]))
            except Exception:
                _log.exception("a %r callback raised; the room carries on", event)

    @overload
    def on(self, event: T_contra, callback: _F) -> _F: ...
    @overload
    def on(self, event: T_contra, callback: None = None) -> Callable[[_F], _F]: ...

    def on(self, event: T_contra, callback: _Callback | None = None) -> Any:
        """Call ``callback`` every time ``event`` is emitted (usable as a decorator).

        Args:
            event: the event name.
            callback: a synchronous callable; omit it to use ``on`` as a decorator.

        Returns:
            The callback (or a decorator registering it).

        Raises:
            ValueError: ``callback`` is a coroutine function.
        """
        return self._register(
            "on", callback, lambda fn: self._events.setdefault(event, {}).__setitem__(fn, None)
        )

    @overload
    def once(self, event: T_contra, callback: _F) -> _F: ...
    @overload
    def once(self, event: T_contra, callback: None = None) -> Callable[[_F], _F]: ...

    def once(self, event: T_contra, callback: _Callback | None = None) -> Any:
        """Call ``callback`` the next time ``event`` is emitted, then forget it (usable as a decorator).

        Args:
            event: the event name.
            callback: a synchronous callable; omit it to use ``once`` as a decorator.

        Returns:
            The callback (or a decorator registering it).

        Raises:
            ValueError: ``callback`` is a coroutine function.
        """

        def add_once(target: _Callback) -> None:
            arity = _arity(target)

            def once_callback(*args: Any) -> None:
                self.off(event, once_callback)
                target(*(args if arity is None else args[:arity]))

            once_callback.__wrapped_once__ = target  # type: ignore[attr-defined]
            self.on(event, once_callback)

        return self._register("once", callback, add_once)

    @staticmethod
    def _register(method: str, callback: _Callback | None, add: Callable[[_Callback], None]) -> Any:
        """What ``on`` and ``once`` share: decorator form, the refusal of coroutine functions, ``add``."""
        if callback is None:

            def decorator(fn: _F) -> _F:
                EventEmitter._register(method, fn, add)
                return fn

            return decorator
        if _is_async(callback):
            raise ValueError(_ASYNC_REFUSED.format(method=method))
        add(callback)
        return callback

    def off(self, event: T_contra, callback: _Callback) -> None:
        """Stop calling ``callback`` for ``event`` (no error if it was not registered).

        Args:
            event: the event name.
            callback: the callable given to :meth:`on` or :meth:`once`.
        """
        listeners = self._events.get(event)
        if listeners is None:
            return
        if listeners.pop(callback, 0) is None:
            return
        for registered in list(listeners):
            if getattr(registered, "__wrapped_once__", None) is callback:
                listeners.pop(registered, None)
