"""Fault injection for greenroom rooms: crash or stall a named actor of a live room, read its restart history.

For testing your own bots' fault tolerance (and greenroom's): every function takes a connected
:class:`greenroom.rtc.Room` and a *target* naming one actor of its tree —

* :func:`room_actor` — the RoomActor (its crash ends the connection: ``disconnected``);
* :func:`participant` ``(identity)`` — the ParticipantActor of a remote participant;
  :func:`local_participant` — the local one;
* :func:`track` ``(sid)`` — the TrackActor of a publication (remote or local).

The same functions take an agent's job instead of a room (a ``greenroom.agents.JobHandle``, or anything
:class:`Supervised`): the targets are then :func:`agent_logic` — the actor running the agent's code —,
:func:`agent_connection` — the one holding its room connection — and :func:`agent_supervisor`, the job's
root (stalling it holds a restart back, so a test can send traffic while the agent's logic is down). This
layer does not import the agents layer (it sits below it); it reaches the job's tree through its root actor
and the same messages.

Example::

    from greenroom import testing

    old = await testing.crash(room, testing.participant("alice"))
    await testing.serving(room, testing.participant("alice"), since=old)
    history = await testing.restart_history(room)  # [Restart(supervisor="participants", name="alice", ...)]

    async with testing.stall(room, testing.participant("alice")):
        ...  # that actor handles nothing until the block ends (its mailbox fills; its supervisor waits)

Every call runs on greenroom's runtime loop and returns to the calling loop; none blocks it. A crash is a
real exception raised inside the actor's handler (``RuntimeError``), handled by its supervisor exactly as a
bug in greenroom would be: restarted from its snapshot within the restart intensity, else escalated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import pykka

from greenroom.actors.core import ask, exit_future
from greenroom.actors.messages import Crash, GetState, GetTree, Reply, Stall, TreeState
from greenroom.actors.supervision import RestartEvent
from greenroom.rtc import Room
from greenroom.rtc._bridge import call
from greenroom.runtime import loop as runtime

__all__ = [
    "Restart",
    "Supervised",
    "Target",
    "TargetNotFoundError",
    "actor",
    "agent_connection",
    "agent_logic",
    "agent_supervisor",
    "crash",
    "local_participant",
    "participant",
    "restart_history",
    "room_actor",
    "serving",
    "stall",
    "state",
    "track",
]

#: How often :func:`serving` looks for the new incarnation (seconds).
_POLL = 0.002


class TargetNotFoundError(LookupError):
    """The room has no such actor (not connected, no such participant or publication)."""


class Supervised(Protocol):
    """A supervision tree other than a room's: its root actor answers ``GetTree`` (an agent's job)."""

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        """The root actor."""
        ...


Subject = Room | Supervised


@dataclass(frozen=True, slots=True)
class Target:
    """Names one actor of a room's tree (build it with the functions below)."""

    kind: str
    """``"room"``, ``"participant"``, ``"track"`` or ``"child"`` (a child of an agent's job)."""
    name: str = ""
    """The participant's identity (``"local"`` for the local one) or the track sid."""

    def __str__(self) -> str:
        return self.kind if not self.name else f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Restart:
    """One restart made in a room's tree.

    Attributes:
        at: when (``time.monotonic()`` seconds).
        supervisor: which supervision decided: ``"participants"`` (the RoomActor's) or
            ``"tracks of <identity>"`` (a ParticipantActor's).
        name: the restarted actor's name: the participant's identity, or the track sid.
        reason: the exit reason (``repr``).
        delay: the back-off applied, in seconds.
    """

    at: float
    supervisor: str
    name: str
    reason: str
    delay: float


def room_actor() -> Target:
    """The RoomActor."""
    return Target("room")


def participant(identity: str) -> Target:
    """The ParticipantActor of the remote participant ``identity``."""
    return Target("participant", identity)


def local_participant() -> Target:
    """The local participant's ParticipantActor."""
    return Target("participant", "local")


def track(sid: str) -> Target:
    """The TrackActor of the publication ``sid`` (remote or local)."""
    return Target("track", sid)


def agent_logic() -> Target:
    """The actor running an agent's code (the job's ``logic`` child)."""
    return Target("child", "logic")


def agent_connection() -> Target:
    """The actor holding an agent's room connection (the job's ``connection`` child)."""
    return Target("child", "connection")


def agent_supervisor() -> Target:
    """An agent job's root: its supervisor (stall it to hold a restart while traffic goes on)."""
    return Target("room")


def _room_ref(room: Subject) -> pykka.ActorRef[Any]:
    if not isinstance(room, Room):
        return room.ref
    client = room._client
    if client is None:
        raise TargetNotFoundError("the room is not connected")
    return client.ref


async def _tree(ref: pykka.ActorRef[Any]) -> TreeState:
    tree = await ask(ref, GetTree(), timeout=5.0)
    assert isinstance(tree, TreeState)
    return tree


async def _resolve(room_ref: pykka.ActorRef[Any], target: Target) -> pykka.ActorRef[Any] | None:
    """The current incarnation of ``target`` (``None`` while it restarts); runtime loop."""
    if target.kind == "room":
        return room_ref
    tree = await _tree(room_ref)
    if target.kind == "child":
        for key, _name, ref in tree.children:
            if key == target.name:
                return ref  # type: ignore[no-any-return]
        raise TargetNotFoundError(f"no child {target.name!r} in the tree")
    if target.kind == "participant":
        for _key, name, ref in tree.children:
            if name == target.name:
                return ref  # type: ignore[no-any-return]
        raise TargetNotFoundError(f"no participant {target.name!r} in the room")
    for _key, _name, parent in tree.children:
        if parent is None:
            continue
        with contextlib.suppress(pykka.ActorDeadError, TimeoutError):
            for key, _n, ref in (await _tree(parent)).children:
                if key == target.name:
                    return ref  # type: ignore[no-any-return]
    raise TargetNotFoundError(f"no track {target.name!r} in the room")


async def actor(room: Subject, target: Target) -> pykka.ActorRef[Any] | None:
    """The current incarnation of ``target`` (``None`` while it restarts).

    Raises:
        TargetNotFoundError: no such actor.
    """
    return await call(_resolve(_room_ref(room), target))


async def state(room: Subject, target: Target) -> Any:
    """What ``target`` answers to ``GetState`` (a ``TrackState`` for a track, a ``ParticipantInfo`` for a
    participant, a ``RoomSnapshot`` for the room).

    Raises:
        TargetNotFoundError: no such actor, or it is restarting right now.
    """

    async def go() -> Any:
        ref = await _resolve(_room_ref(room), target)
        if ref is None:
            raise TargetNotFoundError(f"{target} is restarting")
        return await ask(ref, GetState(), timeout=5.0)

    return await call(go())


async def crash(
    room: Subject, target: Target, reason: str = "injected by greenroom.testing"
) -> pykka.ActorRef[Any]:
    """Make ``target`` raise ``RuntimeError(reason)`` in its handler; returns once it has died.

    Returns:
        The incarnation that crashed (pass it to :func:`serving` as ``since``).

    Raises:
        TargetNotFoundError: no such actor, or it is restarting right now.
    """

    async def go() -> pykka.ActorRef[Any]:
        ref = await _resolve(_room_ref(room), target)
        if ref is None:
            raise TargetNotFoundError(f"{target} is restarting")
        ended = exit_future(ref)
        ref.tell(Crash(reason))
        await asyncio.wait_for(ended, 5.0)
        return ref

    return await call(go())


async def serving(
    room: Subject, target: Target, *, since: pykka.ActorRef[Any] | None = None, timeout: float = 5.0
) -> pykka.ActorRef[Any]:
    """Wait until ``target`` has a live incarnation (other than ``since``) that answers a message.

    Returns:
        That incarnation.

    Raises:
        TimeoutError: none within ``timeout`` seconds (e.g. its supervisor gave up).
    """

    async def go() -> pykka.ActorRef[Any]:
        room_ref = _room_ref(room)
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(pykka.ActorDeadError, TargetNotFoundError):
                    ref = await _resolve(room_ref, target)
                    if ref is not None and ref is not since and ref.is_alive():
                        await ask(
                            ref,
                            GetTree() if target.kind in ("room", "participant") else GetState(),
                            timeout=timeout,
                        )
                        return ref
                await asyncio.sleep(_POLL)

    return await call(go())


@contextlib.asynccontextmanager
async def stall(room: Subject, target: Target) -> AsyncIterator[pykka.ActorRef[Any]]:
    """Hold ``target``'s handler for the duration of the block (its mailbox keeps filling).

    Yields:
        The stalled incarnation, once its handler is waiting.
    """
    release = await call(_new_event())

    async def go() -> pykka.ActorRef[Any]:
        ref = await _resolve(_room_ref(room), target)
        if ref is None:
            raise TargetNotFoundError(f"{target} is restarting")
        entered: Reply[None] = Reply.new()
        ref.tell(Stall(release, entered))
        await asyncio.wait_for(entered.future, 5.0)
        return ref

    try:
        yield await call(go())
    finally:
        runtime.get_loop().call_soon_threadsafe(release.set)


async def restart_history(room: Subject) -> list[Restart]:
    """Every restart the tree has made, oldest first: a room's (the RoomActor's, and each live
    participant's), or an agent job's (``supervisor`` is ``"job <id>"``, ``name`` the child restarted)."""

    async def go() -> list[Restart]:
        room_ref = _room_ref(room)
        tree = await _tree(room_ref)
        names = {key: name for key, name, _ref in tree.children}
        found = [_record(e, names) for e in tree.events]
        if not isinstance(room, Room):
            return found
        for _key, _name, ref in tree.children:
            if ref is not None:
                with contextlib.suppress(pykka.ActorDeadError, TimeoutError):
                    found.extend(_record(e, {}) for e in (await _tree(ref)).events)
        return sorted(found, key=lambda r: r.at)

    return await call(go())


def _record(event: RestartEvent, names: dict[str, str]) -> Restart:
    return Restart(
        event.at, event.supervisor, names.get(event.failed, event.failed), repr(event.reason), event.delay
    )


async def _new_event() -> asyncio.Event:
    return asyncio.Event()
