"""``JobContext``: what an entrypoint gets, shaped like livekit-agents' ``JobContext``.

One context per *logic incarnation*: a restarted logic gets a new context over the same job (same room,
same participant, the last :meth:`JobContext.checkpoint`). Every coroutine here runs on the job's logic
loop; requests to the room's actors cross to greenroom's runtime loop and back without blocking it.

Differences from livekit-agents, on purpose: ``connect()`` may be called again (a restarted logic calls its
entrypoint again; the second call returns at once, the participant never leaves); callbacks registered on
``ctx.room`` run in the agent's dispatcher (in order, on the job's logic loop), and a callback that
raises restarts the logic instead of being logged and forgotten; ``checkpoint``/``restored``/``restarts``
are greenroom's.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from greenroom import rtc
from greenroom.actors.messages import Reply
from greenroom.agents.dispatch import Dispatcher, JobRoom
from greenroom.agents.job import (
    AgentBusyError,
    Connect,
    Delivery,
    EndJob,
    Entry,
    Job,
    JobCore,
    JobStatus,
    Told,
)
from greenroom.runtime import loop as runtime

__all__ = ["PENDING_CAPACITY", "AutoSubscribe", "JobContext", "JobProcess", "ShutdownCallback"]

#: Messages kept for an agent that is still starting, before ``on_enter`` ran (past it they are dropped
#: and counted in the dispatcher's ``dropped``).
PENDING_CAPACITY = 1_000

_log = logging.getLogger("greenroom.agents.context")

#: ``async def cb()`` or ``async def cb(reason: str)``.
ShutdownCallback = Callable[[], Awaitable[None]] | Callable[[str], Awaitable[None]]


class AutoSubscribe(enum.StrEnum):
    """Which remote tracks to subscribe to on connect (livekit-agents' ``AutoSubscribe``)."""

    SUBSCRIBE_ALL = "subscribe_all"
    SUBSCRIBE_NONE = "subscribe_none"
    AUDIO_ONLY = "audio_only"
    VIDEO_ONLY = "video_only"


class JobProcess:
    """``ctx.proc``: the process the jobs run in (shared by every job of a worker: many jobs per process).

    ``userdata`` is where ``prewarm_fnc`` leaves what every job reuses (models, clients).
    """

    def __init__(self, user_arguments: Any = None) -> None:
        self.userdata: dict[Any, Any] = {}
        self.user_arguments = user_arguments

    @property
    def pid(self) -> int:
        """This process's id."""
        return os.getpid()


class JobContext:
    """The entrypoint's view of its job (see the module docstring).

    Args:
        core: the job's shared state.
        dispatcher: this logic incarnation's dispatcher.
        incarnation: 1 for the first start, +1 per restart.
    """

    def __init__(self, core: JobCore, dispatcher: Dispatcher, incarnation: int) -> None:
        self._core = core
        self._dispatcher = dispatcher
        self._incarnation = incarnation
        self._restored = core.checkpoint
        self._shutdown_callbacks: list[Callable[[str], Awaitable[None]]] = []
        self._message_handler: Callable[[Any], Any] | None = None
        self._mailbox_events: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<JobContext {self.job.id} incarnation {self._incarnation}>"

    # -- what the job is --------------------------------------------------------------------------------

    @property
    def job(self) -> Job:
        """The job (id, room name, agent name, metadata)."""
        return self._core.assignment.job

    @property
    def proc(self) -> JobProcess:
        """The process (``userdata`` filled by ``prewarm_fnc``)."""
        return self._core.proc

    @property
    def room(self) -> rtc.Room:
        """The job's room: the same object, and the same participant, across logic restarts."""
        room = self._core.room
        if room is None:
            raise RuntimeError("the job's room is not there (the job is ending)")
        return room

    @property
    def agent(self) -> rtc.LocalParticipant:
        """The agent's own participant (after :meth:`connect`)."""
        return self.room.local_participant

    @property
    def restarts(self) -> int:
        """How many times the logic was restarted before this incarnation (0 on the first run)."""
        return self._incarnation - 1

    @property
    def restored(self) -> Any:
        """The state the previous incarnation saved with :meth:`checkpoint` (``None`` on the first run)."""
        return self._restored

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` for the next incarnation if this one crashes (read it back from :attr:`restored`).

        Keep it small and immutable: it is handed over as it is, not copied.
        """
        self._core.checkpoint = state

    # -- the room ------------------------------------------------------------------------------------------

    async def connect(
        self,
        *,
        auto_subscribe: AutoSubscribe = AutoSubscribe.SUBSCRIBE_ALL,
        rtc_config: rtc.RtcConfiguration | None = None,
        encryption: Any = None,
        e2ee: Any = None,
    ) -> None:
        """Join the job's room (at once if already joined: after a logic restart the participant stayed).

        Raises:
            rtc.ConnectError: the server refused or could not be reached.
        """
        if self.room.isconnected():  # a restarted logic: no suspension, so room events wait for the
            return  # callbacks it registers right after (the stash opens at its first real await)
        options = rtc.RoomOptions(
            auto_subscribe=auto_subscribe == AutoSubscribe.SUBSCRIBE_ALL,
            rtc_config=rtc_config,
            encryption=encryption or e2ee,
        )
        core = self._core

        async def on_runtime() -> None:
            assert core.connection is not None
            reply: Reply[None] = Reply.new()
            core.connection.tell(Connect(options, str(auto_subscribe), reply))
            await reply.future

        await asyncio.wrap_future(runtime.submit(on_runtime()))

    async def wait_for_participant(self, *, identity: str | None = None) -> rtc.RemoteParticipant:
        """The first remote participant (or the one with ``identity``); at once if already there."""
        if not self.room.isconnected():
            await self.connect()
        room = self._core.room
        assert isinstance(room, JobRoom)
        found: asyncio.Future[rtc.RemoteParticipant] = asyncio.get_running_loop().create_future()

        def check(participant: rtc.RemoteParticipant) -> None:
            if not found.done() and (identity is None or participant.identity == identity):
                found.set_result(participant)

        room.on_logic("participant_connected", check)
        try:
            for participant in list(room.remote_participants.values()):
                check(participant)
            return await found
        finally:
            room.off("participant_connected", check)

    # -- the end -------------------------------------------------------------------------------------------

    def add_shutdown_callback(self, callback: ShutdownCallback) -> None:
        """Run ``callback`` (``async``, with or without the reason) when the job ends."""
        takes_reason = len(inspect.signature(callback).parameters) >= 1

        async def run(reason: str) -> None:
            await (callback(reason) if takes_reason else callback())  # type: ignore[call-arg]

        self._shutdown_callbacks.append(run)

    def shutdown(self, reason: str = "") -> None:
        """End the job: shutdown callbacks run, the agent leaves the room, the job reports SUCCESS."""
        assert self._core.job_ref is not None
        self._core.job_ref.tell(EndJob(JobStatus.SUCCESS, reason or "shutdown requested"))

    async def _run_shutdown_callbacks(self, reason: str) -> None:
        for callback in self._shutdown_callbacks:
            try:
                await callback(reason)
            except Exception:
                _log.exception("%s: a shutdown callback raised", self.job.id)

    # -- what reaches the agent -------------------------------------------------------------------------

    def _target(self, entry: Entry) -> Delivery:
        """Hand one room event or message to this incarnation (any thread; the stash's target)."""
        if isinstance(entry, Told) or entry.name in self._mailbox_events:
            return self._dispatcher.post(self._route, (entry,), entry=entry)
        room = self._core.room
        callbacks = room.callbacks_for(entry.name, self._dispatcher) if isinstance(room, JobRoom) else []
        if not callbacks:
            return Delivery.UNHEARD
        return self._dispatcher.post(self._call_each, (callbacks, entry.args), entry=entry)

    async def _call_each(self, callbacks: list[Callable[..., Any]], args: tuple[Any, ...]) -> None:
        for callback in callbacks:
            self._dispatcher.current = getattr(callback, "__qualname__", repr(callback))
            await self._dispatcher.call(callback, args, False)

    def _deliver(self, message: Any) -> None:
        """Queue ``message`` for the agent's handler (any thread), through the restart stash.

        Raises:
            AgentBusyError: the agent is restarting and the stash is full, or its queue is full.
        """
        if not self._core.stash.put(Told(message)):
            raise AgentBusyError(f"{self.job.id}: the agent's mailbox is full; message dropped")

    # -- the actor shape's mailbox -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run one of the agent's handlers now (logic loop): sync ones in the executor unless told not to."""
        await self._dispatcher.call(fn, args, self._core.options.sync_handlers_in_executor)

    def _subscribe(self, events: tuple[str, ...]) -> None:
        """Deliver room events named in ``events`` to the agent's mailbox (as :class:`RoomEvent`)."""
        self._mailbox_events = frozenset(events)
        for name in events:
            self._core.stash.listen(name)

    def _set_message_handler(self, handler: Callable[[Any], Any]) -> None:
        """Start handing messages to ``handler`` (logic loop); those that waited for it go first."""
        self._message_handler = handler
        parked = self._dispatcher.unpark()
        self._dispatcher.push_front([(self._route, (entry,), entry) for entry in parked])

    async def _route(self, entry: Entry) -> None:
        handler = self._message_handler
        if handler is None:  # the agent is not ready yet: keep it (bounded) until it is
            self._dispatcher.park(entry, PENDING_CAPACITY)
            return
        message = entry.message if isinstance(entry, Told) else entry
        self._dispatcher.current = getattr(handler, "__qualname__", repr(handler))
        await self._call(handler, message)
