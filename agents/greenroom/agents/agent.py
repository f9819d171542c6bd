"""The actor shape: an :class:`Agent` whose handlers receive the room's events as mailbox messages.

::

    class Echo(Agent):
        async def on_message(self, message: Any) -> None:
            match message:
                case RoomEvent("data_received", (packet, *_)) if packet.topic == "chat":
                    await self.send(packet.data, to=packet.participant.identity, topic="echo")

    cli.run_app(WorkerOptions(entrypoint_fnc=Echo.entrypoint()))

An agent runs as the logic of a job (:mod:`greenroom.agents.tree`), so everything said there holds: it is
restarted in the same participant when a handler raises, hangs past the liveness deadline or blocks its
loop; :meth:`Agent.checkpoint` saves what :meth:`Agent.on_restart` gets back. Messages are handled one at a
time, in order: the room events named in :attr:`Agent.events` (as :class:`RoomEvent`) and whatever is sent
with ``JobHandle.tell`` or :meth:`Agent.tell` (kept while the agent restarts). ``async def`` handlers run on
the job's logic loop; plain ``def`` handlers run in an executor thread (``SupervisionOptions.
sync_handlers_in_executor``), so a blocking one does not hold the loop.

Room events from the join on are kept (bounded) until :meth:`Agent.on_enter` has run, so none is lost at
start. When the agent fails, nothing else is lost either: the messages and room events queued behind the
one that failed, and those arriving while it restarts, are kept (bounded, in order) and handed to the
next incarnation after its ``on_enter`` — all but the one that failed, which the restart's reason names
(:class:`~greenroom.agents.job.CallbackError`, ``AgentHungError``, ``LoopBlockedError`` with ``item``).
See :class:`~greenroom.agents.job.RestartStash` for the policy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from greenroom import rtc
from greenroom.agents.context import AutoSubscribe, JobContext
from greenroom.agents.job import Entrypoint, RoomEvent
from greenroom.rtc.room import EventTypes

__all__ = ["Agent", "RoomEvent"]


class Agent:
    """Subclass it, override the handlers, run it: ``WorkerOptions(entrypoint_fnc=MyAgent.entrypoint())``.

    One instance per logic incarnation: a restarted agent is a new instance (state that must survive goes
    through :meth:`checkpoint` / :meth:`on_restart`).

    Attributes:
        events: the room events delivered to :meth:`on_message`.
        auto_subscribe: which remote tracks to subscribe to when joining.
        ctx: the job's context (set before any handler runs).
    """

    events: ClassVar[tuple[EventTypes, ...]] = (
        "participant_connected",
        "participant_disconnected",
        "data_received",
    )
    auto_subscribe: ClassVar[AutoSubscribe] = AutoSubscribe.SUBSCRIBE_ALL
    ctx: JobContext

    # -- handlers (override) -----------------------------------------------------------------------------

    def on_restart(self, state: Any) -> Any:
        """A restarted agent gets its predecessor's last :meth:`checkpoint` here, before :meth:`on_enter`."""

    def on_enter(self) -> Any:
        """Called once joined (again, after a restart: the participant never left)."""

    def on_message(self, message: Any) -> Any:
        """Handle one message: a :class:`RoomEvent`, or anything sent to the agent."""

    # -- helpers -----------------------------------------------------------------------------------------

    @property
    def room(self) -> rtc.Room:
        """The job's room."""
        return self.ctx.room

    @property
    def identity(self) -> str:
        """The agent's own identity."""
        return self.ctx.room.local_participant.identity

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` for the next incarnation (see :meth:`on_restart`)."""
        self.ctx.checkpoint(state)

    def tell(self, message: Any) -> None:
        """Send ``message`` to this agent's own mailbox (any thread; e.g. from a timer).

        Raises:
            AgentBusyError: the mailbox (or, while restarting, the restart stash) is full.
        """
        self.ctx._deliver(message)

    async def send(self, payload: bytes | str, *, to: str | None = None, topic: str = "") -> None:
        """Publish ``payload`` reliably to ``to`` (everyone when ``None``)."""
        destinations = [to] if to is not None else []
        await self.room.local_participant.publish_data(
            payload, destination_identities=destinations, topic=topic
        )

    # -- running -----------------------------------------------------------------------------------------

    @classmethod
    def entrypoint(cls, *args: Any, **kwargs: Any) -> Entrypoint:
        """An entrypoint that runs ``cls(*args, **kwargs)`` as the job's logic."""
        return functools.partial(_run_agent, functools.partial(cls, *args, **kwargs))


async def _run_agent(factory: Callable[[], Agent], ctx: JobContext) -> None:
    agent = factory()
    agent.ctx = ctx
    # Subscribed first: events from the join on wait (bounded) until on_enter has run, none is lost.
    ctx._subscribe(tuple(agent.events))
    await ctx.connect(auto_subscribe=agent.auto_subscribe)
    if ctx.restarts and ctx.restored is not None:
        await ctx._call(agent.on_restart, ctx.restored)
    await ctx._call(agent.on_enter)
    ctx._set_message_handler(agent.on_message)
