"""Agent dispatches: their storage per room, the Twirp ``livekit.AgentDispatchService``, and the interface the
``/agent`` worker endpoint implements to actually run them.

A dispatch says "this room wants agent X" (livekit-server ``pkg/rtc/room.go``, ``agentdispatch``): every
room gets one per ``RoomAgentDispatch`` of its configuration (``CreateRoom.agents`` or a token's
``roomConfig``) when it is created — or one with an empty agent name when none is configured, which is
LiveKit's automatic dispatch — and ``CreateDispatch`` adds more (creating the room if needed, as
livekit-server's auto-create does). Each new dispatch is handed to the :class:`AgentDispatcher`; deleting
one asks it to terminate that dispatch's jobs; closing a room ends them all.

Here: the storage, the Twirp service with livekit-server's rules (``roomAdmin`` for the room; ``not_found``
"dispatch ID not found"; metadata ≤ 512 KiB and attributes ≤ 64 KiB) and the calls into the dispatcher.
:class:`NoWorkers` only logs that no worker is registered (kept for tests). The ``/agent`` endpoint
(``agentservice.py``) implements :class:`AgentDispatcher` (offer each dispatch to a registered, not-full
worker of that agent name — ``AvailabilityRequest``, then ``JobAssignment`` with a token for the room —
and terminate jobs), is the server's ``agent_dispatcher``, and reports each job it starts or ends with
``DevServer.record_job(room, dispatch_id, job)``, which ``ListDispatch`` then shows in the dispatch's state.
Everything runs on the server's loop; the dispatcher's methods must not block (start tasks instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from livekit.protocol import agent as agent_pb
from livekit.protocol import agent_dispatch as dispatch_pb

from greenroom.codecs.models import RoomInfo
from greenroom.codecs.tokens import Claims
from greenroom.devserver.room import Room, RoomNotFoundError, RoomSettings, new_sid
from greenroom.devserver.twirp import Method, Service, TwirpError

__all__ = [
    "AgentDispatcher",
    "Dispatch",
    "DispatchControl",
    "JobRecord",
    "NoWorkers",
    "dispatch_service",
]

_log = logging.getLogger("greenroom.devserver.dispatch")

_MAX_METADATA = 512 * 1024
_MAX_ATTRIBUTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job the ``/agent`` endpoint started for a dispatch (``livekit.Job`` as ``ListDispatch`` shows it)."""

    id: str
    participant_identity: str = ""
    worker_id: str = ""
    status: int = 0  # livekit.JobStatus (JS_PENDING, JS_RUNNING, JS_SUCCESS, JS_FAILED)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One agent dispatch of a room (``livekit.AgentDispatch``); ids start with ``AD_``."""

    id: str
    agent_name: str
    room: str
    metadata: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    created_at_ns: int = 0
    deleted_at_ns: int = 0
    jobs: tuple[JobRecord, ...] = ()

    @classmethod
    def new(
        cls, room: str, agent_name: str = "", metadata: str = "", attributes: Mapping[str, str] | None = None
    ) -> Dispatch:
        """A fresh dispatch, created now."""
        return cls(
            id=new_sid("AD_"),
            agent_name=agent_name,
            room=room,
            metadata=metadata,
            attributes=tuple(sorted((attributes or {}).items())),
            created_at_ns=time.time_ns(),
        )

    def to_proto(self) -> dispatch_pb.AgentDispatch:
        """The ``livekit.AgentDispatch`` message, with its state and jobs."""
        jobs = [
            agent_pb.Job(
                id=j.id,
                dispatch_id=self.id,
                type=agent_pb.JT_ROOM,
                agent_name=self.agent_name,
                metadata=self.metadata,
                state=agent_pb.JobState(
                    status=j.status,  # type: ignore[arg-type]
                    error=j.error,
                    participant_identity=j.participant_identity,
                    worker_id=j.worker_id,
                ),
            )
            for j in self.jobs
        ]
        return dispatch_pb.AgentDispatch(
            id=self.id,
            agent_name=self.agent_name,
            room=self.room,
            metadata=self.metadata,
            attributes=dict(self.attributes),
            state=dispatch_pb.AgentDispatchState(
                jobs=jobs, created_at=self.created_at_ns, deleted_at=self.deleted_at_ns
            ),
        )


class AgentDispatcher(Protocol):
    """What the ``/agent`` endpoint implements; called on the server's loop, must not block."""

    def launch(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """Start the jobs of a new dispatch (a ``JT_ROOM`` job on a worker registered for its agent name)."""

    def terminate(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """A dispatch was deleted: end its jobs (``JobTermination``)."""

    def room_closed(self, room: RoomInfo) -> None:
        """The room closed: end every job in it."""


class NoWorkers:
    """The dispatcher until an ``/agent`` endpoint exists: no worker can take a job, so dispatches stay
    without jobs (as on a livekit-server with no agent worker registered)."""

    def launch(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """Log that nobody can take the dispatch."""
        _log.info(
            "[%s] dispatch %s (agent %r): no agent worker registered, it stays pending",
            room.name,
            dispatch.id,
            dispatch.agent_name,
        )

    def terminate(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """Nothing runs: nothing to end."""

    def room_closed(self, room: RoomInfo) -> None:
        """Nothing runs: nothing to end."""


class DispatchControl(Protocol):
    """What the service needs from the owner of the rooms (the ``DevServer``)."""

    agent_dispatcher: AgentDispatcher

    def open_room(self, name: str, settings: RoomSettings | None = None) -> Room:
        """Create ``name`` (auto-create) or return it."""

    def room_named(self, name: str) -> Room:
        """The live room; raises ``RoomNotFoundError``."""


def _ensure_admin(claims: Claims | None, room: str) -> None:
    video = None if claims is None else claims.video
    if video is None or not video.room_admin or video.room != room:
        raise TwirpError("unauthenticated", "permissions denied")


class _DispatchService:
    def __init__(self, control: DispatchControl) -> None:
        self._control = control

    def _room(self, name: str) -> Room:
        try:
            return self._control.room_named(name)
        except RoomNotFoundError as exc:
            raise TwirpError("not_found", str(exc)) from exc

    def create(
        self, claims: Claims | None, req: dispatch_pb.CreateAgentDispatchRequest
    ) -> dispatch_pb.AgentDispatch:
        _ensure_admin(claims, req.room)
        if len(req.metadata.encode()) > _MAX_METADATA:
            raise TwirpError("invalid_argument", "metadata size exceeds limits")
        if sum(len(k.encode()) + len(v.encode()) for k, v in req.attributes.items()) > _MAX_ATTRIBUTES:
            raise TwirpError("invalid_argument", "attribute size exceeds limits")
        if not req.room:
            raise TwirpError("invalid_argument", "no room name")
        room = self._control.open_room(req.room)
        dispatch = room.add_dispatch(
            Dispatch.new(req.room, req.agent_name, req.metadata, dict(req.attributes))
        )
        self._control.agent_dispatcher.launch(room.info(), dispatch)
        return dispatch.to_proto()

    def delete(
        self, claims: Claims | None, req: dispatch_pb.DeleteAgentDispatchRequest
    ) -> dispatch_pb.AgentDispatch:
        _ensure_admin(claims, req.room)
        room = self._room(req.room)
        dispatch = room.remove_dispatch(req.dispatch_id)
        if dispatch is None:
            raise TwirpError("not_found", "dispatch ID not found")
        deleted = replace(dispatch, deleted_at_ns=time.time_ns())
        self._control.agent_dispatcher.terminate(room.info(), deleted)
        return deleted.to_proto()

    def list(
        self, claims: Claims | None, req: dispatch_pb.ListAgentDispatchRequest
    ) -> dispatch_pb.ListAgentDispatchResponse:
        _ensure_admin(claims, req.room)
        room = self._room(req.room)
        found = [
            d.to_proto() for d in room.dispatches.values() if not req.dispatch_id or d.id == req.dispatch_id
        ]
        return dispatch_pb.ListAgentDispatchResponse(agent_dispatches=found)


def dispatch_service(control: DispatchControl) -> Service:
    """The ``livekit.AgentDispatchService`` Twirp service answered by ``control``."""
    svc = _DispatchService(control)
    return Service(
        "livekit.AgentDispatchService",
        {
            "CreateDispatch": Method(dispatch_pb.CreateAgentDispatchRequest, svc.create),
            "DeleteDispatch": Method(dispatch_pb.DeleteAgentDispatchRequest, svc.delete),
            "ListDispatch": Method(dispatch_pb.ListAgentDispatchRequest, svc.list),
        },
    )
