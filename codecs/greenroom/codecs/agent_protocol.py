"""LiveKit's agent worker protocol (``livekit/agent.proto``: ``WorkerMessage`` ⇄ ``ServerMessage`` on the
``/agent`` WebSocket) as frozen values, with bounded decoding.

The worker side (``greenroom.agents``) and the server side (``greenroom.devserver``) both speak it through
this module, so neither touches a protobuf object: each binary frame is decoded here into one of the
dataclasses below (or :class:`Unhandled` for a oneof member we do not act on, e.g. ``simulate_job``), and
encoded back from them. ``reference/agent-protocol.md`` has the protocol step by step.

Limits (a remote peer's frame is refused with :class:`~greenroom.codecs.errors.CodecError` past them, so
one bad worker or server cannot make the other side hold unbounded data): a frame is at most
:data:`MAX_FRAME` bytes (1 MiB: metadata and attributes are each ≤ 64 KiB in practice, and a job carries
room and participant info); an agent name, identity, id or version at most :data:`MAX_NAME` characters;
a ``migrate_job`` at most :data:`MAX_MIGRATED_JOBS` jobs. Open enums (a status or job type from a newer
peer) decode to ``UNKNOWN`` rather than failing the message.

Traps (livekit-agents 1.8.9 against livekit-server, measured in the reference note): the official worker
never sends ``ping`` and never sets ``update_worker.draining`` (it reports ``WS_FULL`` while draining);
``job.state`` of an assignment is empty; an ``assignment.url`` that is empty means "the URL you
connected to".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from google.protobuf.message import DecodeError
from livekit.protocol import agent as pa
from livekit.protocol import models as pm

from greenroom.codecs.errors import CodecError, LocalProtocolError
from greenroom.codecs.models import ParticipantPermission, ServerInfo, StringPairs, frozen_map

__all__ = [
    "AGENT_NAME_ATTRIBUTE",
    "MAX_FRAME",
    "MAX_MIGRATED_JOBS",
    "MAX_NAME",
    "Assignment",
    "Availability",
    "AvailabilityRequest",
    "JobDescription",
    "JobStatusCode",
    "JobType",
    "MigrateJob",
    "Pong",
    "Register",
    "Registered",
    "ServerMessage",
    "Termination",
    "Unhandled",
    "UpdateJob",
    "UpdateWorker",
    "WorkerMessage",
    "WorkerPing",
    "WorkerStatus",
    "decode_server_message",
    "decode_worker_message",
    "encode_server_message",
    "encode_worker_message",
]

#: The largest frame either side accepts.
MAX_FRAME: Final = 1 << 20
#: The longest agent name, identity, id, version or URL accepted.
MAX_NAME: Final = 2048
#: The most jobs one ``migrate_job`` may name.
MAX_MIGRATED_JOBS: Final = 10_000
#: The participant attribute naming the agent (livekit-agents sets it in its availability answer).
AGENT_NAME_ATTRIBUTE: Final = "lk.agent.name"

_E = TypeVar("_E", bound=enum.IntEnum)


class JobType(enum.IntEnum):
    """``livekit.JobType``: what a job is for (a room, a publisher, a participant)."""

    ROOM = 0
    PUBLISHER = 1
    PARTICIPANT = 2


class WorkerStatus(enum.IntEnum):
    """``livekit.WorkerStatus``."""

    AVAILABLE = 0
    FULL = 1


class JobStatusCode(enum.IntEnum):
    """``livekit.JobStatus`` (``UNKNOWN`` stands for a number this version does not know)."""

    PENDING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3
    CANCELLED = 4
    UNKNOWN = -1


def _enum(cls: type[_E], value: int, default: _E) -> _E:
    try:
        return cls(value)
    except ValueError:
        return default


def _name(value: str, what: str) -> str:
    if len(value) > MAX_NAME:
        raise CodecError(f"{what} is {len(value)} characters long (limit {MAX_NAME})")
    return value


@dataclass(frozen=True, slots=True)
class JobDescription:
    """The fields of a ``livekit.Job`` a worker and a server act on.

    Attributes:
        id: the job id (``AJ_…``).
        room_name: the room's name; ``room_sid`` its sid (``RM_…``).
        agent_name: the agent the job is for (``""``: the default dispatch).
        dispatch_id: the dispatch that made it (``AD_…``).
        type: room, publisher or participant job.
        metadata: the dispatch's metadata.
        participant_identity: for a publisher/participant job, whom it is about.
        attributes: the job's attributes.
    """

    id: str
    room_name: str
    room_sid: str = ""
    agent_name: str = ""
    dispatch_id: str = ""
    type: JobType = JobType.ROOM
    metadata: str = ""
    participant_identity: str = ""
    attributes: StringPairs = ()

    def to_proto(self) -> pa.Job:
        """The ``livekit.Job`` message."""
        participant = (
            pm.ParticipantInfo(identity=self.participant_identity) if self.participant_identity else None
        )
        return pa.Job(
            id=self.id,
            dispatch_id=self.dispatch_id,
            type=self.type.value,  # type: ignore[arg-type]
            room=pm.Room(name=self.room_name, sid=self.room_sid),
            participant=participant,
            metadata=self.metadata,
            agent_name=self.agent_name,
            attributes=dict(self.attributes),
        )

    @classmethod
    def from_proto(cls, pb: pa.Job) -> JobDescription:
        """Build from a ``livekit.Job`` (limits checked)."""
        return cls(
            id=_name(pb.id, "job id"),
            room_name=_name(pb.room.name, "room name"),
            room_sid=_name(pb.room.sid, "room sid"),
            agent_name=_name(pb.agent_name, "agent name"),
            dispatch_id=_name(pb.dispatch_id, "dispatch id"),
            type=_enum(JobType, pb.type, JobType.ROOM),
            metadata=pb.metadata,
            participant_identity=_name(pb.participant.identity, "participant identity"),
            attributes=frozen_map(pb.attributes),
        )


# --------------------------------------------------------------------------------- worker → server


@dataclass(frozen=True, slots=True)
class Register:
    """``register``: the worker's first message (livekit-agents sends no ``ping_interval``)."""

    FIELD: ClassVar[str] = "register"
    agent_name: str = ""
    version: str = ""
    type: JobType = JobType.ROOM
    namespace: str = ""
    deployment: str = ""
    permissions: ParticipantPermission | None = None

    def to_proto(self) -> pa.RegisterWorkerRequest:
        permissions = None if self.permissions is None else self.permissions.to_proto()
        return pa.RegisterWorkerRequest(
            type=self.type.value,  # type: ignore[arg-type]
            agent_name=self.agent_name,
            version=self.version,
            namespace=self.namespace,
            deployment=self.deployment,
            allowed_permissions=permissions,
        )

    @classmethod
    def from_proto(cls, pb: pa.RegisterWorkerRequest) -> Register:
        permissions = pb.allowed_permissions if pb.HasField("allowed_permissions") else None
        return cls(
            agent_name=_name(pb.agent_name, "agent name"),
            version=_name(pb.version, "version"),
            type=_enum(JobType, pb.type, JobType.ROOM),
            namespace=_name(pb.namespace, "namespace"),
            deployment=_name(pb.deployment, "deployment"),
            permissions=None if permissions is None else ParticipantPermission.from_proto(permissions),
        )


@dataclass(frozen=True, slots=True)
class Availability:
    """``availability``: the worker's answer to an :class:`AvailabilityRequest`."""

    FIELD: ClassVar[str] = "availability"
    job_id: str
    available: bool
    terminate: bool = False
    participant_identity: str = ""
    participant_name: str = ""
    participant_metadata: str = ""
    participant_attributes: StringPairs = ()

    def to_proto(self) -> pa.AvailabilityResponse:
        return pa.AvailabilityResponse(
            job_id=self.job_id,
            available=self.available,
            terminate=self.terminate,
            participant_identity=self.participant_identity,
            participant_name=self.participant_name,
            participant_metadata=self.participant_metadata,
            participant_attributes=dict(self.participant_attributes),
        )

    @classmethod
    def from_proto(cls, pb: pa.AvailabilityResponse) -> Availability:
        return cls(
            job_id=_name(pb.job_id, "job id"),
            available=pb.available,
            terminate=pb.terminate,
            participant_identity=_name(pb.participant_identity, "participant identity"),
            participant_name=_name(pb.participant_name, "participant name"),
            participant_metadata=pb.participant_metadata,
            participant_attributes=frozen_map(pb.participant_attributes),
        )


@dataclass(frozen=True, slots=True)
class UpdateWorker:
    """``update_worker``: status and load (greenroom's load is exact: jobs admitted / capacity)."""

    FIELD: ClassVar[str] = "update_worker"
    status: WorkerStatus
    load: float = 0.0
    job_count: int = 0
    draining: bool = False

    def to_proto(self) -> pa.UpdateWorkerStatus:
        return pa.UpdateWorkerStatus(
            status=self.status.value,  # type: ignore[arg-type]
            load=self.load,
            job_count=self.job_count,
            draining=self.draining,
        )

    @classmethod
    def from_proto(cls, pb: pa.UpdateWorkerStatus) -> UpdateWorker:
        # an unknown status is not one a server may dispatch to
        return cls(_enum(WorkerStatus, pb.status, WorkerStatus.FULL), pb.load, pb.job_count, pb.draining)


@dataclass(frozen=True, slots=True)
class UpdateJob:
    """``update_job``: a job's status, with the error text when it FAILED."""

    FIELD: ClassVar[str] = "update_job"
    job_id: str
    status: JobStatusCode
    error: str = ""

    def to_proto(self) -> pa.UpdateJobStatus:
        if self.status is JobStatusCode.UNKNOWN:
            raise LocalProtocolError("a job status cannot be sent as UNKNOWN")
        return pa.UpdateJobStatus(job_id=self.job_id, status=self.status.value, error=self.error)  # type: ignore[arg-type]

    @classmethod
    def from_proto(cls, pb: pa.UpdateJobStatus) -> UpdateJob:
        status = _enum(JobStatusCode, pb.status, JobStatusCode.UNKNOWN)
        return cls(_name(pb.job_id, "job id"), status, pb.error)


@dataclass(frozen=True, slots=True)
class WorkerPing:
    """``ping`` (livekit-agents 1.8.9 never sends it; a server answers :class:`Pong`)."""

    FIELD: ClassVar[str] = "ping"
    timestamp: int = 0

    def to_proto(self) -> pa.WorkerPing:
        return pa.WorkerPing(timestamp=self.timestamp)

    @classmethod
    def from_proto(cls, pb: pa.WorkerPing) -> WorkerPing:
        return cls(pb.timestamp)


@dataclass(frozen=True, slots=True)
class MigrateJob:
    """``migrate_job``: after (re-)registering, the jobs this worker still runs (greenroom also sends the
    jobs themselves, so a server can tell which rooms already have their agent)."""

    FIELD: ClassVar[str] = "migrate_job"
    job_ids: tuple[str, ...] = ()
    jobs: tuple[JobDescription, ...] = ()

    def to_proto(self) -> pa.MigrateJobRequest:
        return pa.MigrateJobRequest(job_ids=list(self.job_ids), jobs=[j.to_proto() for j in self.jobs])

    @classmethod
    def from_proto(cls, pb: pa.MigrateJobRequest) -> MigrateJob:
        if len(pb.job_ids) > MAX_MIGRATED_JOBS or len(pb.jobs) > MAX_MIGRATED_JOBS:
            raise CodecError(f"migrate_job names more than {MAX_MIGRATED_JOBS} jobs")
        return cls(
            tuple(_name(i, "job id") for i in pb.job_ids),
            tuple(JobDescription.from_proto(j) for j in pb.jobs),
        )


# --------------------------------------------------------------------------------- server → worker


@dataclass(frozen=True, slots=True)
class Registered:
    """``register`` (server): the worker's id (``AW_…``) and the server's info."""

    FIELD: ClassVar[str] = "register"
    worker_id: str
    server_info: ServerInfo | None = None

    def to_proto(self) -> pa.RegisterWorkerResponse:
        info = None if self.server_info is None else self.server_info.to_proto()
        return pa.RegisterWorkerResponse(worker_id=self.worker_id, server_info=info)

    @classmethod
    def from_proto(cls, pb: pa.RegisterWorkerResponse) -> Registered:
        info = ServerInfo.from_proto(pb.server_info) if pb.HasField("server_info") else None
        return cls(_name(pb.worker_id, "worker id"), info)


@dataclass(frozen=True, slots=True)
class AvailabilityRequest:
    """``availability`` (server): may this worker take ``job``?"""

    FIELD: ClassVar[str] = "availability"
    job: JobDescription
    resuming: bool = False

    def to_proto(self) -> pa.AvailabilityRequest:
        return pa.AvailabilityRequest(job=self.job.to_proto(), resuming=self.resuming)

    @classmethod
    def from_proto(cls, pb: pa.AvailabilityRequest) -> AvailabilityRequest:
        return cls(JobDescription.from_proto(pb.job), pb.resuming)


@dataclass(frozen=True, slots=True)
class Assignment:
    """``assignment``: run ``job`` in its room with ``token`` (``url`` empty: the worker's own URL)."""

    FIELD: ClassVar[str] = "assignment"
    job: JobDescription
    token: str
    url: str = ""

    def to_proto(self) -> pa.JobAssignment:
        return pa.JobAssignment(job=self.job.to_proto(), url=self.url or None, token=self.token)

    @classmethod
    def from_proto(cls, pb: pa.JobAssignment) -> Assignment:
        return cls(JobDescription.from_proto(pb.job), pb.token, _name(pb.url, "url"))


@dataclass(frozen=True, slots=True)
class Termination:
    """``termination``: end job ``job_id``."""

    FIELD: ClassVar[str] = "termination"
    job_id: str

    def to_proto(self) -> pa.JobTermination:
        return pa.JobTermination(job_id=self.job_id)

    @classmethod
    def from_proto(cls, pb: pa.JobTermination) -> Termination:
        return cls(_name(pb.job_id, "job id"))


@dataclass(frozen=True, slots=True)
class Pong:
    """``pong``: the answer to a :class:`WorkerPing`."""

    FIELD: ClassVar[str] = "pong"
    last_timestamp: int = 0
    timestamp: int = 0

    def to_proto(self) -> pa.WorkerPong:
        return pa.WorkerPong(last_timestamp=self.last_timestamp, timestamp=self.timestamp)

    @classmethod
    def from_proto(cls, pb: pa.WorkerPong) -> Pong:
        return cls(pb.last_timestamp, pb.timestamp)


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A oneof member this module does not model (``simulate_job``, ``go_away``…): its field name."""

    field: str


WorkerMessage: TypeAlias = Register | Availability | UpdateWorker | UpdateJob | WorkerPing | MigrateJob
ServerMessage: TypeAlias = Registered | AvailabilityRequest | Assignment | Termination | Pong

_WORKER: Final[dict[str, Any]] = {
    c.FIELD: c for c in (Register, Availability, UpdateWorker, UpdateJob, WorkerPing, MigrateJob)
}
_SERVER: Final[dict[str, Any]] = {
    c.FIELD: c for c in (Registered, AvailabilityRequest, Assignment, Termination, Pong)
}


def _encode(envelope: Any, msg: Any, allowed: dict[str, Any]) -> bytes:
    if allowed.get(getattr(msg, "FIELD", "")) is not type(msg):
        raise LocalProtocolError(f"{type(msg).__name__} cannot be sent as a {envelope.__name__}")
    try:
        data: bytes = envelope(**{msg.FIELD: msg.to_proto()}).SerializeToString()
    except (ValueError, TypeError) as exc:  # out-of-range numbers, wrong value types
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc
    return data


def _decode(envelope: Any, data: bytes, known: dict[str, Any]) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"agent protocol frames are binary, got {type(data).__name__}")
    if len(data) > MAX_FRAME:
        raise CodecError(f"{envelope.__name__} of {len(data)} bytes (limit {MAX_FRAME})")
    pb = envelope()
    try:
        pb.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise CodecError(f"not a {envelope.__name__}: {exc}") from exc
    field = pb.WhichOneof("message")
    if field is None:
        raise CodecError(f"{envelope.__name__} carries no message")
    cls = known.get(field)
    return Unhandled(field) if cls is None else cls.from_proto(getattr(pb, field))


def encode_worker_message(msg: WorkerMessage) -> bytes:
    """A ``WorkerMessage`` frame.

    Raises:
        LocalProtocolError: ``msg`` is not a worker message, or a field is out of range.
    """
    return _encode(pa.WorkerMessage, msg, _WORKER)


def decode_worker_message(data: bytes) -> WorkerMessage | Unhandled:
    """Parse a ``WorkerMessage`` frame (the server side).

    Raises:
        CodecError: not a WorkerMessage, empty, too large, or a field past its limit.
    """
    msg: WorkerMessage | Unhandled = _decode(pa.WorkerMessage, data, _WORKER)
    return msg


def encode_server_message(msg: ServerMessage) -> bytes:
    """A ``ServerMessage`` frame.

    Raises:
        LocalProtocolError: ``msg`` is not a server message, or a field is out of range.
    """
    return _encode(pa.ServerMessage, msg, _SERVER)


def decode_server_message(data: bytes) -> ServerMessage | Unhandled:
    """Parse a ``ServerMessage`` frame (the worker side).

    Raises:
        CodecError: not a ServerMessage, empty, too large, or a field past its limit.
    """
    msg: ServerMessage | Unhandled = _decode(pa.ServerMessage, data, _SERVER)
    return msg
