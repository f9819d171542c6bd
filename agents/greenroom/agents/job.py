"""A job's values: what it is (:class:`Job`, :class:`JobAssignment`), how it is supervised
(:class:`SupervisionOptions`), how it ends (:class:`JobStatus`, :class:`JobResult`), the messages of its
actor tree, and :class:`JobCore` — the little state the tree's actors share, each field with one writer.

The names follow livekit-agents where they exist there (``Job``, ``JobStatus`` values as
``livekit_agent_pb2.JobStatus`` names them), so the worker side of LiveKit's agent protocol can map an
``assignment{job, url, token}`` to a :class:`JobAssignment` and report :class:`JobResult` s as
``update_job{status, error}``.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from greenroom import rtc
from greenroom.actors.messages import Reply
from greenroom.actors.supervision import Backoff, Intensity
from greenroom.agents.loops import BlockedLoop, LogicLoop
from greenroom.codecs.errors import GreenroomError

if TYPE_CHECKING:
    import pykka

    from greenroom.actors.stable import StableRef
    from greenroom.agents.context import JobContext, JobProcess
    from greenroom.agents.dispatch import JobRoom

__all__ = [
    "LOGIC_BACKOFF",
    "LOGIC_INTENSITY",
    "AgentHungError",
    "Entrypoint",
    "Job",
    "JobAssignment",
    "JobCore",
    "JobError",
    "JobResult",
    "JobRoomInfo",
    "JobStatus",
    "LoopBlockedError",
    "StatusCallback",
    "SupervisionOptions",
]

#: The agent's code in the livekit-agents job shape.
Entrypoint: TypeAlias = Callable[["JobContext"], Awaitable[None]]


class JobError(GreenroomError):
    """Base of the errors a job's supervision raises into its logic."""


class AgentHungError(JobError):
    """The logic did not answer its liveness probe in time (an async hang, or a stuck callback)."""


class LoopBlockedError(JobError):
    """The logic's loop was blocked (a blocking call on it); the loop was abandoned."""


class JobStatus(enum.StrEnum):
    """What a job reports (``livekit_agent_pb2.JobStatus``: JS_RUNNING, JS_SUCCESS, JS_FAILED)."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended (or that it runs).

    Attributes:
        status: the status.
        error: for ``FAILED``, the error text (what livekit-agents always leaves empty).
        reason: why it ended (``ctx.shutdown(reason)``, the room's disconnect reason, ``"terminated"``).
    """

    status: JobStatus
    error: str = ""
    reason: str = ""


#: Called on greenroom's runtime loop each time the job's status changes; it must not block.
StatusCallback: TypeAlias = Callable[[JobResult], None]


@dataclass(frozen=True, slots=True)
class JobRoomInfo:
    """The room of a job (``ctx.job.room``, a ``models.Room`` in livekit-agents)."""

    name: str
    sid: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """A job as livekit-agents' ``ctx.job`` describes it (``livekit_agent_pb2.Job``, the fields that apply).

    Attributes:
        id: the job id (``AJ_…`` from a server; made up for a direct run).
        room: the room.
        agent_name: the agent name it was dispatched to.
        metadata: the dispatch's metadata.
        dispatch_id: the dispatch id, when a server made one.
    """

    id: str
    room: JobRoomInfo
    agent_name: str = ""
    metadata: str = ""
    dispatch_id: str = ""


@dataclass(frozen=True, slots=True)
class JobAssignment:
    """Everything needed to run a job: what the worker protocol's ``assignment`` carries.

    Attributes:
        job: the job.
        url: the server's URL (``ws://…``).
        token: a join token for the agent's participant.
    """

    job: Job
    url: str
    token: str


#: A logic restart is immediate unless another came less than 1 s before; then 10 ms doubling to 0.5 s.
LOGIC_BACKOFF = Backoff(min_delay=0.01, max_delay=0.5, random_factor=0.2, reset_after=1.0, immediate=1)
#: Past 5 logic restarts within 30 s the job gives up (typed leave, FAILED).
LOGIC_INTENSITY = Intensity(max_restarts=5, period=30.0)


@dataclass(frozen=True, slots=True)
class SupervisionOptions:
    """How a job's logic is watched and restarted.

    Attributes:
        intensity: the crash-loop brake of the job's ``rest_for_one`` supervision.
        backoff: the restart delay policy.
        liveness_interval: seconds between two liveness probes of the logic.
        liveness_timeout: a probe not answered within this many seconds is an async hang.
        block_threshold: seconds without a heartbeat that make the logic's loop *blocked*.
        sync_handlers_in_executor: run an ``Agent``'s synchronous handlers in an executor thread (default),
            so a blocking one cannot block the logic loop. (Room callbacks always run on the logic loop:
            livekit code calls ``asyncio.create_task`` from them.)
        shutdown_timeout: seconds the shutdown callbacks may take at the end of the job.
    """

    intensity: Intensity = LOGIC_INTENSITY
    backoff: Backoff = LOGIC_BACKOFF
    liveness_interval: float = 0.25
    liveness_timeout: float = 1.0
    block_threshold: float = 1.0
    sync_handlers_in_executor: bool = True
    shutdown_timeout: float = 10.0


# ---------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Connect:
    """Logic → connection: join the room (a no-op answer when already joined)."""

    options: rtc.RoomOptions
    auto_subscribe: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class ConnectDone:
    """The connection's connect task ended (``error`` is ``None`` on success)."""

    error: BaseException | None


@dataclass(frozen=True, slots=True)
class RoomClosed:
    """Connection → job: the room disconnected without the job asking (server, removal, lost link)."""

    reason: rtc.DisconnectReason


@dataclass(frozen=True, slots=True)
class EndJob:
    """Anyone → job: end the job (``ctx.shutdown``, termination, the room closing)."""

    status: JobStatus
    reason: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class LogicFailed:
    """→ logic: crash with ``error`` (the entrypoint or a callback raised, a hang, a blocked loop).

    ``loop`` names the logic loop the failure is about, so a late report about an abandoned loop does not
    crash the incarnation that replaced it.
    """

    error: BaseException
    loop: LogicLoop | None = None


@dataclass(frozen=True, slots=True)
class LoopBlocked:
    """Watchdog → job: a logic loop was found blocked (forwarded to the logic as :class:`LogicFailed`)."""

    report: BlockedLoop
    loop: LogicLoop


@dataclass(frozen=True, slots=True)
class ProbeTick:
    """The logic's liveness timer: send the next probe."""


@dataclass(frozen=True, slots=True)
class ProbeAnswered:
    """The probe ``seq`` went through the logic's dispatcher."""

    seq: int


@dataclass(frozen=True, slots=True)
class ProbeDeadline:
    """The probe ``seq``'s deadline passed."""

    seq: int


@dataclass(frozen=True, slots=True)
class RunShutdownCallbacks:
    """Job → logic: run ``ctx.add_shutdown_callback`` callbacks (asked; answered when they are done)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Anyone → logic: a message for the agent's mailbox (the actor shape's ``on_message``)."""

    message: Any


@dataclass(frozen=True, slots=True)
class LogicState:
    """The logic's answer to ``GetState``.

    Attributes:
        incarnation: 1 for the first start, +1 per restart.
        loop: the logic loop's name.
        handled: callbacks and messages handled by this incarnation.
        dropped: items dropped because its dispatch queue was full.
        probes: liveness probes answered by this incarnation.
    """

    incarnation: int
    loop: str
    handled: int
    dropped: int
    probes: int


# ------------------------------------------------------------------------------------------------- core


@dataclass(eq=False)
class JobCore:
    """What the actors of one job share. Each field has one writer, named here.

    Attributes:
        assignment: the job (immutable).
        entrypoint: the agent's code (immutable).
        options: supervision options (immutable).
        proc: the process-wide ``ctx.proc`` (shared by all jobs of a process).
        on_status: the status callback (immutable).
        job_ref: the JobActor (written once, by it).
        connection: the connection child's stable reference (written once, by the JobActor).
        room: the current room (written by the connection actor).
        logic_loop: the logic loop (written by the logic incarnations, one after the other).
        checkpoint: the agent's last ``ctx.checkpoint(state)`` (written by the live logic incarnation).
        result: how the job ended (written once, by the JobActor).
        leave_reason: the reason the connection will leave with (written by the JobActor).
        left_with: the reason the last connection left with (written by the connection actor).
    """

    assignment: JobAssignment
    entrypoint: Entrypoint
    options: SupervisionOptions
    proc: JobProcess
    on_status: StatusCallback | None = None
    job_ref: pykka.ActorRef[Any] | None = None
    connection: StableRef | None = None
    room: JobRoom | None = None
    logic_loop: LogicLoop | None = None
    checkpoint: Any = None
    result: JobResult | None = None
    leave_reason: rtc.DisconnectReason = rtc.DisconnectReason.CLIENT_INITIATED
    left_with: rtc.DisconnectReason | None = None
    _incarnations: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_incarnation(self) -> int:
        """The number of the logic incarnation starting now (1, 2, …)."""
        return next(self._incarnations)
