"""From a spec's ``module:attr`` to the entrypoint a job runs, with the fleet's instruments around it.

* ``agent = "mod:Cls"`` — ``Cls`` must subclass :class:`greenroom.agents.Agent`; each bot runs
  ``Cls(**params)``. The fleet times its ``on_message`` (a subclass made here overrides it and calls the
  original), so handler latency and messages/s come for free.
* ``entrypoint = "mod:fn"`` — ``async def fn(ctx)``; its params are in ``ctx.job.metadata`` (JSON).

:func:`check_targets` imports every target and binds every bot's params *before* anything starts, so an
import error, a wrong kind or a bad parameter is a :class:`~greenroom.fleet.spec.FleetSpecError` naming the
field, not a crash loop in a worker process.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from greenroom.agents import Agent
from greenroom.agents.job import Entrypoint
from greenroom.fleet.spec import BotGroup, BotSpec, FleetSpecError
from greenroom.fleet.stats import process_stats

__all__ = ["check_targets", "entrypoint_for", "import_target", "instrumented"]


def import_target(target: str, where: str) -> Any:
    """Import ``module:attr`` (dots allowed in both).

    Raises:
        FleetSpecError: the module or the attribute is not there (``where`` names the field).
    """
    module_name, _, attr = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FleetSpecError(where, f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise FleetSpecError(where, f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise FleetSpecError(where, f"{module_name!r} has no {attr!r}") from None
    return value


_instrumented: dict[type[Agent], type[Agent]] = {}


def instrumented(cls: type[Agent]) -> type[Agent]:
    """A subclass of ``cls`` whose ``on_message`` is timed into this process's handler histogram.

    Async handlers stay async (they run on the job's loop) and plain ones stay plain (they run in the
    executor): the dispatcher decides where a handler runs from what it is.
    """
    made = _instrumented.get(cls)
    if made is not None:
        return made
    original = cls.on_message
    stats = process_stats()

    if inspect.iscoroutinefunction(original):

        async def timed_async(self: Agent, message: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(self, message)
            finally:
                stats.handler.observe(time.perf_counter() - started)
                stats.message()

        handler: Callable[..., Any] = timed_async
    else:

        def timed(self: Agent, message: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, message)
            finally:
                stats.handler.observe(time.perf_counter() - started)
                stats.message()

        handler = timed
    handler.__qualname__ = f"{cls.__qualname__}.on_message"
    namespace = {"on_message": handler, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    made = _instrumented[cls] = cast("type[Agent]", type(cls.__name__, (cls,), namespace))
    return made


def _agent_class(value: Any, where: str) -> type[Agent]:
    if not (isinstance(value, type) and issubclass(value, Agent)):
        raise FleetSpecError(where, f"must name a subclass of greenroom.agents.Agent, not {value!r}")
    return value


def _entrypoint(value: Any, where: str) -> Entrypoint:
    if not (callable(value) and inspect.iscoroutinefunction(value)):
        raise FleetSpecError(where, f"must name an async function entrypoint(ctx), not {value!r}")
    return cast("Entrypoint", value)


def entrypoint_for(bot: BotSpec) -> Entrypoint:
    """The entrypoint of one bot (its class instrumented and its params bound, for an agent).

    Raises:
        FleetSpecError: the target cannot be imported or is of the wrong kind.
    """
    where = f"bots.{bot.group}.{bot.kind}"
    value = import_target(bot.target, where)
    if bot.kind == "entrypoint":
        return _entrypoint(value, where)
    return instrumented(_agent_class(value, where)).entrypoint(**bot.params)


def check_targets(groups: Iterable[BotGroup], bots: Iterable[BotSpec]) -> None:
    """Import every group's target and bind every bot's params to its agent's constructor.

    Raises:
        FleetSpecError: naming ``bots[i].agent``/``entrypoint`` or ``bots[i].params``.
    """
    where_of: dict[str, str] = {}
    for group in groups:
        where = f"{group.where}.{group.kind}"
        value = import_target(group.target, where)
        if group.kind == "entrypoint":
            _entrypoint(value, where)
        else:
            _agent_class(value, where)
        where_of[group.name] = group.where
    checked: set[tuple[str, str]] = set()
    for bot in bots:
        if bot.kind != "agent":
            continue
        key = (bot.group, repr(sorted(bot.params)))
        if key in checked:
            continue
        checked.add(key)
        cls = import_target(bot.target, f"{where_of.get(bot.group, 'bots')}.agent")
        try:
            inspect.signature(cls).bind(**bot.params)
        except TypeError as exc:
            raise FleetSpecError(
                f"{where_of.get(bot.group, 'bots')}.params", f"{cls.__name__}(): {exc}"
            ) from exc
