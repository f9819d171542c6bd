"""A job's values: what it is (:class:`Job`, :class:`JobAssignment`), how it is supervised
(:class:`SupervisionOptions`), how it ends (:class:`JobStatus`, :class:`JobResult`), the messages of its
actor tree, and :class:`JobCore` — the little state the tree's actors share, each field with one writer.

The names follow livekit-agents where they exist there (``Job``, ``JobStatus`` values as
``livekit_agent_pb2.JobStatus`` names them), so the worker side of LiveKit's agent protocol can map an
``assignment{job, url, token}`` to a :class:`JobAssignment` and report :class:`JobResult` s as
``update_job{status, error}``.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from greenroom import rtc
from greenroom.actors.messages import Reply
from greenroom.actors.supervision import Backoff, Intensity
from greenroom.agents.loops import BlockedLoop, LogicLoop
from greenroom.codecs.errors import GreenroomError

_log = logging.getLogger("greenroom.agents.job")

if TYPE_CHECKING:
    import pykka

    from greenroom.actors.stable import StableRef
    from greenroom.agents.context import JobContext, JobProcess
    from greenroom.agents.dispatch import JobRoom

__all__ = [
    "CONNECT_ATTEMPTS",
    "CONNECT_BACKOFF",
    "LOGIC_BACKOFF",
    "LOGIC_INTENSITY",
    "RESTART_STASH_CAPACITY",
    "AgentBusyError",
    "AgentHungError",
    "CallbackError",
    "Entry",
    "Entrypoint",
    "Job",
    "JobAssignment",
    "JobCore",
    "JobEndedError",
    "JobError",
    "JobResult",
    "JobRoomInfo",
    "JobStatus",
    "LoopBlockedError",
    "RoomEvent",
    "StatusCallback",
    "SupervisionOptions",
    "Told",
    "describe_entry",
]

#: The agent's code in the livekit-agents job shape.
Entrypoint: TypeAlias = Callable[["JobContext"], Awaitable[None]]


class JobError(GreenroomError):
    """Base of the errors a job's supervision raises into its logic.

    Attributes:
        item: the room event (:class:`RoomEvent`) or told message (:class:`Told`) the agent was handling
            when it failed (``None``: it failed elsewhere, e.g. in its entrypoint). That item is the one
            *not* handed to the next incarnation; the restart event's reason names it.
        blames_current: the failure is the item being handled (a hang or a blocked loop inside it), so it
            is not replayed; otherwise an item interrupted by someone else's failure is replayed.
    """

    def __init__(self, text: str, *, item: Any = None, blames_current: bool = False) -> None:
        super().__init__(text)
        self.item = item
        self.blames_current = blames_current


class AgentHungError(JobError):
    """The logic did not answer its liveness probe in time (an async hang, or a stuck callback)."""


class LoopBlockedError(JobError):
    """The logic's loop was blocked (a blocking call on it); the loop was abandoned."""


class CallbackError(JobError):
    """A room callback or an agent handler raised while handling :attr:`item` (the ``__cause__``)."""


class JobEndedError(JobError):
    """The job has ended: nothing can be sent to its agent any more."""


class AgentBusyError(JobError):
    """A message was refused: the agent is restarting and its restart stash is full, or its dispatch queue
    is full."""


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """A room event for the agent: the ``livekit.rtc`` event name and its arguments, in order (what an
    ``Agent``'s ``on_message`` receives; what the restart stash keeps for room callbacks)."""

    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Told:
    """A message sent to the agent's mailbox (``JobHandle.tell``, ``Agent.tell``), as the stash keeps it."""

    message: Any


#: What an agent is handed: a room event or a told message (the unit of the restart stash and replay).
Entry: TypeAlias = RoomEvent | Told


def describe_entry(entry: Any, limit: int = 160) -> str:
    """A short description of a stashed entry for logs and error texts (``repr`` cut to ``limit``)."""
    match entry:
        case RoomEvent(name=name, args=args):
            text = f"room event {name}{args!r}"
        case Told(message=message):
            text = f"message {message!r}"
        case _:
            text = repr(entry)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
#: Room events and messages kept for an agent while its logic restarts (past it: dropped and counted).
RESTART_STASH_CAPACITY = 1_000
#: How many times the job's connection tries to join before the job fails (the first try included).
CONNECT_ATTEMPTS = 4
#: The wait before each retry of a join: 0.5 s doubling to 4 s, each stretched by up to 50 % at random (so
#: the jobs of a worker that lost its server do not come back in step): ≤ 5.25 s of waiting in all.
CONNECT_BACKOFF = Backoff(min_delay=0.5, max_delay=4.0, random_factor=0.5)


@dataclass(frozen=True, slots=True)
class SupervisionOptions:
    """How a job's logic is watched and restarted.

    Attributes:
        intensity: the crash-loop brake of the job's ``rest_for_one`` supervision.
        backoff: the restart delay policy.
        liveness_interval: unused since the liveness deadline replaced the periodic probe (kept so
            existing callers still construct the options); hangs are checked at each watchdog tick.
        liveness_timeout: the liveness deadline: a dispatcher that has work (an item running or queued)
            and neither starts nor finishes an item for this many seconds is an async hang.
        block_threshold: seconds the logic's loop may be busy in one pass before it counts as *blocked*.
        sync_handlers_in_executor: run an ``Agent``'s synchronous handlers in an executor thread (default),
            so a blocking one cannot block the logic loop. (Room callbacks always run on the logic loop:
            livekit code calls ``asyncio.create_task`` from them.)
        shutdown_timeout: seconds the shutdown callbacks may take at the end of the job.
        restart_stash_capacity: room events and messages kept while the logic restarts (the failed
            incarnation's unhandled ones first); past it new ones are dropped, counted and logged.
        connect_attempts: how many times ``ctx.connect()`` tries to join (the first try included) before
            the job ends FAILED with the last error. A refusal of the token (401/403) is not retried.
        connect_backoff: the wait before each retry of the join (with jitter).
    """

    intensity: Intensity = LOGIC_INTENSITY
    backoff: Backoff = LOGIC_BACKOFF
    liveness_interval: float = 0.25
    liveness_timeout: float = 1.0
    block_threshold: float = 1.0
    sync_handlers_in_executor: bool = True
    shutdown_timeout: float = 10.0
    restart_stash_capacity: int = RESTART_STASH_CAPACITY
    connect_attempts: int = CONNECT_ATTEMPTS
    connect_backoff: Backoff = CONNECT_BACKOFF


# ---------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Connect:
    """Logic → connection: join the room (a no-op answer when already joined)."""

    options: rtc.RoomOptions
    auto_subscribe: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class ConnectDone:
    """The connection's connect task ended (``error`` is ``None`` on success) after ``attempts`` tries."""

    error: BaseException | None
    attempts: int = 1


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
    """Watchdog → job → logic: a logic loop was found blocked (the logic fails with
    :class:`LoopBlockedError` if it is about its own loop)."""

    report: BlockedLoop
    loop: LogicLoop


@dataclass(frozen=True, slots=True)
class LogicHung:
    """Watchdog → logic: ``dispatcher`` has had work without progress for ``stalled`` s (past the liveness
    deadline). The logic confirms it (the dispatcher may have moved on since) and fails with
    :class:`AgentHungError`; a report about an earlier incarnation's dispatcher is ignored."""

    dispatcher: Any
    stalled: float


@dataclass(frozen=True, slots=True)
class RunShutdownCallbacks:
    """Job → logic: run ``ctx.add_shutdown_callback`` callbacks (asked; answered when they are done)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LogicState:
    """The logic's answer to ``GetState``.

    Attributes:
        incarnation: 1 for the first start, +1 per restart.
        loop: the logic loop's name.
        handled: callbacks and messages handled by this incarnation.
        queued: items waiting in its dispatch queue now.
        dropped: items dropped because its dispatch queue was full.
        probes: liveness-deadline reports the watchdog made about this incarnation and the logic checked
            (a report it found stale does not restart it).
        stash: the job's restart stash counters (they span incarnations).
    """

    incarnation: int
    loop: str
    handled: int
    queued: int
    dropped: int
    probes: int
    stash: StashStats


# ---------------------------------------------------------------------------------------- restart stash


class Delivery(enum.Enum):
    """What became of an entry handed to a logic incarnation."""

    DELIVERED = "delivered"  # queued for the agent
    UNHEARD = "unheard"  # a room event no callback of this incarnation listens to
    REFUSED = "refused"  # the incarnation's dispatch queue is full (counted there)
    CLOSED = "closed"  # the incarnation has ended


#: Hands an entry to the live logic incarnation (thread-safe, quick: it only queues).
Target: TypeAlias = Callable[[Entry], Delivery]


@dataclass(frozen=True, slots=True)
class StashStats:
    """The restart stash's counters (they span the job's logic incarnations).

    Attributes:
        live: whether an incarnation is taking entries now (``False`` while the logic restarts).
        depth: entries waiting now.
        capacity: the bound.
        stashed: entries ever kept (the failed incarnations' unhandled ones included).
        replayed: entries handed to a new incarnation.
        dropped: entries dropped because the stash was full.
        unheard: replayed room events no callback of the new incarnation listened to.
        lost_at_end: entries still waiting when the job ended (logged).
    """

    live: bool
    depth: int
    capacity: int
    stashed: int
    replayed: int
    dropped: int
    unheard: int
    lost_at_end: int


class RestartStash:
    """The one way room events and messages reach a job's logic, across its restarts.

    While an incarnation is live, :meth:`put` hands each entry straight to it. From the moment it stops
    (:meth:`hold`) until the next one is ready (:meth:`open`) entries wait here, in order, after what
    the stopped incarnation had not handled (:meth:`requeue`: what was queued behind the failing item,
    the item a failure elsewhere interrupted, messages parked before ``on_enter``). The item that failed
    is never among them. Bounded: past ``capacity`` the newest entry is dropped and counted (a room event
    silently in the stats and once per restart in the log; a ``tell`` is refused with
    :class:`AgentBusyError`). Thread-safe: room events arrive on the runtime loop, messages from any thread.

    Args:
        capacity: the bound.
        name: the job (for logs).
    """

    def __init__(self, capacity: int, name: str) -> None:
        self.capacity = capacity
        self.name = name
        self._lock = threading.Lock()
        self._entries: collections.deque[Entry] = collections.deque()
        self._target: Target | None = None
        self._generation = 0
        self._listened: set[str] = set()
        self._warned = False
        self._stashed = self._replayed = self._dropped = self._unheard = self._lost = 0

    def listen(self, event: str) -> None:
        """The agent registered a callback for ``event``: keep such events while it restarts."""
        with self._lock:
            self._listened.add(event)

    def listens(self, event: str) -> bool:
        """Whether room events named ``event`` are for the agent."""
        return event in self._listened

    @property
    def generation(self) -> int:
        """Changes at every :meth:`hold`; an :meth:`open` for an older generation is ignored."""
        return self._generation

    def put(self, entry: Entry) -> bool:
        """Hand ``entry`` to the live incarnation, or keep it. ``False``: dropped (full, or refused)."""
        with self._lock:
            if self._target is not None:
                outcome = self._target(entry)
                if outcome is not Delivery.CLOSED:
                    return outcome is not Delivery.REFUSED
                self._target = None  # ended without hold() yet: keep it for the next one
            return self._keep(entry)

    def _keep(self, entry: Entry) -> bool:
        if len(self._entries) >= self.capacity:
            self._dropped += 1
            if not self._warned:
                self._warned = True
                _log.warning("%s: restart stash full (%d); dropping new entries", self.name, self.capacity)
            return False
        self._entries.append(entry)
        self._stashed += 1
        return True

    def hold(self) -> None:
        """The live incarnation stopped: keep everything from now on."""
        with self._lock:
            self._target = None
            self._generation += 1

    def requeue(self, leftovers: list[Entry]) -> None:
        """Put what the stopped incarnation had not handled ahead of what arrived since (bounded)."""
        with self._lock:
            room = max(0, self.capacity - len(self._entries))
            kept, over = leftovers[:room], leftovers[room:]
            self._entries.extendleft(reversed(kept))
            self._stashed += len(kept)
            self._dropped += len(over)
        if over:
            _log.warning("%s: restart stash full: %d unhandled entries dropped", self.name, len(over))

    def open(self, target: Target, generation: int) -> None:
        """The new incarnation is ready: replay everything kept, in order, then go live (logic loop)."""
        with self._lock:
            if generation != self._generation or self._target is not None:
                return
            while self._entries:
                outcome = target(self._entries[0])
                if outcome is Delivery.CLOSED:
                    return  # it ended already: keep the rest for the next one
                self._entries.popleft()
                self._replayed += 1
                if outcome is Delivery.UNHEARD:
                    self._unheard += 1
            self._target = target
            self._warned = False

    def close(self) -> int:
        """The job ended: forget what is still kept; how many entries that was."""
        with self._lock:
            self._target = None
            lost = len(self._entries)
            self._entries.clear()
            self._lost += lost
            return lost

    def stats(self) -> StashStats:
        """A snapshot of the counters."""
        with self._lock:
            return StashStats(
                self._target is not None,
                len(self._entries),
                self.capacity,
                self._stashed,
                self._replayed,
                self._dropped,
                self._unheard,
                self._lost,
            )


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
        stash: the way room events and messages reach the logic across its restarts (thread-safe; held
            by the stopping incarnation, opened by the next one).
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
    stash: RestartStash = field(init=False)
    _incarnations: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.stash = RestartStash(self.options.restart_stash_capacity, f"job {self.assignment.job.id}")

    def next_incarnation(self) -> int:
        """The number of the logic incarnation starting now (1, 2, …)."""
        return next(self._incarnations)
