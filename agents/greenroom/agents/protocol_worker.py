"""The worker side of LiveKit's agent protocol: register with a server at ``<url>/agent``, take the jobs it
dispatches, run each one as a supervised job tree in this process (many jobs per process), report them.

``reference/agent-protocol.md`` has the protocol and how livekit-agents 1.8.9 behaves; this follows its
worker (``livekit/agents/worker.py``, read, not copied) where that is right, and differs where it is not:

* **Load is exact admission**, not sampled CPU: ``load = (jobs running + jobs accepted but not yet
  assigned) / max_jobs``, and the worker reports ``FULL`` when that reaches 1 (or while draining). An
  ``availability`` request is answered *yes* only while a slot is free, and the slot is reserved at once
  (released if no ``assignment`` comes within :data:`ASSIGNMENT_TIMEOUT`, livekit's 7.5 s). Status goes
  out on every change and every :data:`STATUS_INTERVAL` (livekit's 2.5 s).
* **Job status is the job's**: ``RUNNING`` when the tree started, then ``SUCCESS`` or ``FAILED`` *with the
  error text* (livekit-agents reports an entrypoint crash as SUCCESS and never sends the error). A status
  that cannot be sent because the link is down is kept (the last one per job) and sent after the worker
  registers again.
* **The link is retried forever**, with back-off and jitter (:data:`LINK_BACKOFF`: at once, then 0.5 s
  doubling to 10 s, ×[1, 1.5)); livekit-agents gives up after 16 tries (~130 s) and its process exits 0.
  Jobs do not depend on the link (each has its own room connection): they keep running while it is down,
  and after registering again the worker sends ``migrate_job`` with their ids *and descriptions*, then its
  status, so a server can tell that those rooms still have their agent (``greenroom serve`` does; OSS
  livekit-server ignores ``migrate_job`` and may dispatch again).
* **Drain** (:meth:`WorkerActor.drain`, SIGTERM in ``start``): ``FULL`` with ``draining`` set, every new
  job refused, the running ones left to finish; past the drain timeout the caller ends them
  (``termination`` semantics: shutdown callbacks, leave, SUCCESS).
* ``termination`` ends the job (:meth:`JobHandle.shutdown`); for a job accepted but not yet assigned it
  releases the slot.

Everything here runs on greenroom's runtime loop, as one actor (:class:`WorkerActor`) that owns the link,
the registration and the table of jobs; the link's connect and its writes run in tasks, so no handler
waits on the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import pykka

from greenroom.actors.core import AsyncioActor
from greenroom.actors.messages import GetState
from greenroom.actors.restarts import Backoff, backoff_delay
from greenroom.agents.context import JobProcess
from greenroom.agents.job import Job, JobAssignment, JobResult, JobRoomInfo, JobStatus
from greenroom.agents.tree import JobHandle, start_job
from greenroom.codecs import agent_protocol as ap
from greenroom.codecs.errors import CodecError, GreenroomError
from greenroom.codecs.models import ParticipantPermission
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.runtime.signal_transport import SignalBytes, SignalClosed, SignalTransport

__all__ = [
    "ASSIGNMENT_TIMEOUT",
    "LINK_BACKOFF",
    "STATUS_INTERVAL",
    "WorkerActor",
    "WorkerSettings",
    "WorkerState",
    "worker_token",
]

_log = logging.getLogger("greenroom.agents.protocol_worker")

#: Seconds an accepted job waits for its ``assignment`` before its slot is released (livekit: 7.5 s).
ASSIGNMENT_TIMEOUT = 7.5
#: Seconds between two status reports (also sent on every change).
STATUS_INTERVAL = 2.5
#: Seconds the server has to answer ``register``.
REGISTER_TIMEOUT = 10.0
#: The link's retry schedule: at once, then 0.5 s doubling to 10 s, times [1, 1.5).
LINK_BACKOFF = Backoff(min_delay=0.5, max_delay=10.0, random_factor=0.5, immediate=1)
#: Frames waiting to be written to the server (past it the link is dropped and made again).
OUTBOX = 1_000
#: The version this worker registers with.
VERSION = "greenroom-0.1"


def worker_token(key: str, secret: str) -> str:
    """The token a worker connects with: only the ``agent`` grant (no identity, no room), as livekit's."""
    return mint_token(key, secret, Claims(video=VideoGrants(agent=True)))


@dataclass(frozen=True)
class WorkerSettings:
    """What a :class:`WorkerActor` needs (built by ``cli`` from ``WorkerOptions`` and the environment).

    Attributes:
        url: the server URL (``ws``/``wss``/``http``/``https``); the worker connects to ``<url>/agent``.
        api_key, api_secret: the credentials the link's token is signed with.
        entrypoint: the agent's code, run for every job.
        agent_name: the name jobs are dispatched to.
        max_jobs: the capacity (load = admitted / max_jobs).
        permissions: the grants the server gives the agent's participant.
        supervision: the jobs' supervision options.
        proc: the process object every job shares (``ctx.proc``).
    """

    url: str
    api_key: str
    api_secret: str
    entrypoint: Any
    agent_name: str = ""
    max_jobs: int = 100
    permissions: ParticipantPermission = field(
        default_factory=lambda: ParticipantPermission(can_update_metadata=True, agent=True)
    )
    supervision: Any = None
    proc: JobProcess = field(default_factory=JobProcess)


@dataclass(frozen=True, slots=True)
class WorkerState:
    """The worker's answer to ``GetState``.

    Attributes:
        worker_id: the id the server gave (``None`` while not registered).
        registrations: how many times it registered (1 + re-registrations).
        jobs: ids of the jobs running here.
        reserved: ids of the jobs accepted and waiting for their assignment.
        draining: whether it drains.
        link_failures: connection attempts that failed or links that dropped.
        statuses_sent: ``update_job`` messages sent.
    """

    worker_id: str | None
    registrations: int
    jobs: tuple[str, ...]
    reserved: tuple[str, ...]
    draining: bool
    link_failures: int
    statuses_sent: int


# ------------------------------------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class _Connect:
    generation: int


@dataclass(frozen=True, slots=True)
class _LinkUp:
    generation: int


@dataclass(frozen=True, slots=True)
class _LinkFailed:
    generation: int
    error: BaseException


@dataclass(frozen=True, slots=True)
class _Link:
    """A transport event (``SignalBytes``/``SignalClosed``) of link ``generation``."""

    generation: int
    event: Any


@dataclass(frozen=True, slots=True)
class _RegisterDeadline:
    generation: int


@dataclass(frozen=True, slots=True)
class _StatusTick:
    generation: int


@dataclass(frozen=True, slots=True)
class _AssignmentDeadline:
    job_id: str


@dataclass(frozen=True, slots=True)
class _JobChanged:
    job_id: str
    result: JobResult


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop taking jobs; ``done`` completes once no job runs here any more (thread-safe future)."""

    done: concurrent.futures.Future[None]


@dataclass(frozen=True, slots=True)
class TerminateAll:
    """End every running job now (the drain timed out, or a second signal)."""

    reason: str


_LinkMessage = _Connect | _LinkUp | _LinkFailed | _Link | _RegisterDeadline | _StatusTick
_LINK_MESSAGES = (_Connect, _LinkUp, _LinkFailed, _Link, _RegisterDeadline, _StatusTick)


class _LinkSink:
    """The transport's sink: its events, stamped with the link generation, into the actor's mailbox."""

    def __init__(self, ref: pykka.ActorRef[Any], generation: int) -> None:
        self._ref, self._generation = ref, generation

    def tell(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._ref.tell(_Link(self._generation, message))


@dataclass(eq=False)
class _Running:
    desc: ap.JobDescription
    handle: JobHandle


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


async def _close(transport: SignalTransport) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(transport.close(), 2.0)


# --------------------------------------------------------------------------------------------------- actor


class WorkerActor(AsyncioActor):
    """One worker: the server link, the registration, the jobs (see the module docstring).

    Args:
        settings: what to connect to and what to run.
        rng: the jitter's random source (tests pass a seeded one).
    """

    def __init__(self, settings: WorkerSettings, rng: random.Random | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._rng = rng or random.Random()
        self._generation = 0
        self._transport: SignalTransport | None = None
        self._outbox: asyncio.Queue[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._worker_id: str | None = None
        self._attempt = 0
        self._registrations = 0
        self._failures = 0
        self._sent = 0
        self._jobs: dict[str, _Running] = {}
        self._reserved: dict[str, asyncio.TimerHandle] = {}
        self._unsent: dict[str, ap.UpdateJob] = {}
        self._draining = False
        self._drained: list[concurrent.futures.Future[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._last_status: ap.UpdateWorker | None = None

    # -- life cycle ------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Connect."""
        self.actor_ref.tell(_Connect(self._generation))

    async def on_stop(self) -> None:
        """Close the link (the jobs are the caller's: :class:`TerminateAll` first)."""
        await self._drop_link()
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=2.0)

    async def on_receive(self, message: Any) -> Any:
        """The link's events, the jobs' statuses, timers, drain, state."""
        if isinstance(message, _LINK_MESSAGES):
            if message.generation == self._generation:  # else about a link that is gone
                await self._on_link_message(message)
            return None
        match message:
            case _AssignmentDeadline(job_id=job_id):
                if self._reserved.pop(job_id, None) is not None:
                    _log.warning(
                        "job %s: no assignment within %.1f s; slot released", job_id, ASSIGNMENT_TIMEOUT
                    )
                    self._report_status()
            case _JobChanged(job_id=job_id, result=result):
                self._job_changed(job_id, result)
            case Drain(done=done):
                self._drain(done)
            case TerminateAll(reason=reason):
                for running in list(self._jobs.values()):
                    running.handle.shutdown(reason)
            case GetState():
                return self._state()
            case _:
                _log.warning("worker ignored %r", message)
        return None

    async def _on_link_message(self, message: _LinkMessage) -> None:
        match message:
            case _Connect(generation=generation):
                self._connecting = asyncio.create_task(
                    self._connect(generation), name="greenroom-worker-link"
                )
            case _LinkUp():
                self._linked()
            case _LinkFailed(error=error):
                await self._lost(f"cannot reach {self.settings.url}: {error}")
            case _Link(event=event):
                await self._on_link_event(event)
            case _RegisterDeadline():
                if self._worker_id is None:
                    await self._lost("the server did not answer register")
            case _StatusTick(generation=generation):
                self._report_status(force=True)
                self._after(STATUS_INTERVAL, _StatusTick(generation))

    def _state(self) -> WorkerState:
        return WorkerState(
            self._worker_id,
            self._registrations,
            tuple(self._jobs),
            tuple(self._reserved),
            self._draining,
            self._failures,
            self._sent,
        )

    def _after(self, delay: float, message: Any) -> None:
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(asyncio.get_running_loop().call_later(delay, _tell, self.actor_ref, message))

    # -- the link ----------------------------------------------------------------------------------------

    async def _connect(self, generation: int) -> None:
        settings = self.settings
        transport = SignalTransport(_LinkSink(self.actor_ref, generation), max_message_size=ap.MAX_FRAME)
        try:
            token = worker_token(settings.api_key, settings.api_secret)
            await transport.connect(settings.url, token, path="agent")
        except (GreenroomError, OSError) as exc:
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(_LinkFailed(generation, exc))
            return
        self._transport = transport
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(_LinkUp(generation))

    def _linked(self) -> None:
        assert self._transport is not None
        self._outbox = asyncio.Queue(OUTBOX)
        self._writer = asyncio.create_task(
            self._write(self._transport, self._outbox), name="greenroom-worker-tx"
        )
        self._send(
            ap.Register(
                agent_name=self.settings.agent_name,
                version=VERSION,
                type=ap.JobType.ROOM,
                permissions=self.settings.permissions,
            )
        )
        self._after(REGISTER_TIMEOUT, _RegisterDeadline(self._generation))

    async def _write(self, transport: SignalTransport, outbox: asyncio.Queue[bytes]) -> None:
        with contextlib.suppress(GreenroomError):
            while True:
                await transport.send(await outbox.get())

    def _send(self, message: ap.WorkerMessage) -> bool:
        if self._outbox is None:
            return False
        try:
            self._outbox.put_nowait(ap.encode_worker_message(message))
        except asyncio.QueueFull:
            _log.warning("the server does not read what the worker sends; dropping the link")
            self.actor_ref.tell(_Link(self._generation, SignalClosed(1008, "outbox full", True)))
            return False
        return True

    async def _on_link_event(self, event: Any) -> None:
        match event:
            case SignalBytes(data=data):
                try:
                    message = ap.decode_server_message(data)
                except CodecError as exc:
                    await self._lost(f"bad frame from the server: {exc}")
                    return
                self._on_server_message(message)
            case SignalClosed(code=code, reason=reason):
                await self._lost(f"the server closed the link ({code} {reason})".strip())

    async def _lost(self, why: str) -> None:
        """The link is gone (or never came): drop it and connect again after the back-off."""
        await self._drop_link()
        self._failures += 1
        delay = backoff_delay(LINK_BACKOFF, self._attempt, self._rng.random())
        self._attempt += 1
        level = logging.WARNING if self._attempt <= 1 or self._attempt % 10 == 0 else logging.INFO
        _log.log(level, "agent worker link: %s; retrying in %.2f s (attempt %d)", why, delay, self._attempt)
        self._after(delay, _Connect(self._generation))

    async def _drop_link(self) -> None:
        self._generation += 1
        self._worker_id = None
        self._last_status = None
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        self._outbox = None
        transport, self._transport = self._transport, None
        if transport is not None:  # closed in a task: the handler does not wait on the network
            task = asyncio.create_task(_close(transport), name="greenroom-worker-link-close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- the server's messages ---------------------------------------------------------------------------

    def _on_server_message(self, message: ap.ServerMessage | ap.Unhandled) -> None:
        match message:
            case ap.Registered(worker_id=worker_id):
                self._registered(worker_id)
            case ap.AvailabilityRequest(job=job) if self._worker_id is not None:
                self._answer_availability(job)
            case ap.Assignment(job=job, token=token, url=url) if self._worker_id is not None:
                self._assigned(job, token, url)
            case ap.Termination(job_id=job_id):
                self._terminated(job_id)
            case ap.Pong():
                pass
            case _:
                _log.debug("worker: %r ignored", message)

    def _registered(self, worker_id: str) -> None:
        first = self._registrations == 0
        self._worker_id = worker_id
        self._registrations += 1
        self._attempt = 0
        _log.info(
            "agent worker %s %s with %s (agent %r, %d jobs running)",
            worker_id,
            "registered" if first else "registered again",
            self.settings.url,
            self.settings.agent_name,
            len(self._jobs),
        )
        if self._jobs:  # they survived the link: tell the server, with the jobs themselves
            running = tuple(r.desc for r in self._jobs.values())
            self._send(ap.MigrateJob(tuple(d.id for d in running), running))
        unsent, self._unsent = self._unsent, {}
        for update in unsent.values():
            self._send_job_status(update)
        self._report_status(force=True)
        self._after(STATUS_INTERVAL, _StatusTick(self._generation))

    # -- admission -------------------------------------------------------------------------------------------

    @property
    def _admitted(self) -> int:
        return len(self._jobs) + len(self._reserved)

    def _report_status(self, *, force: bool = False) -> None:
        if self._worker_id is None:
            return
        capacity = max(1, self.settings.max_jobs)
        full = self._draining or self._admitted >= capacity
        status = ap.UpdateWorker(
            ap.WorkerStatus.FULL if full else ap.WorkerStatus.AVAILABLE,
            load=min(1.0, self._admitted / capacity),
            job_count=len(self._jobs),
            draining=self._draining,
        )
        if force or status != self._last_status:
            self._last_status = status
            self._send(status)

    def _answer_availability(self, job: ap.JobDescription) -> None:
        if self._draining or self._admitted >= max(1, self.settings.max_jobs) or job.id in self._jobs:
            self._send(ap.Availability(job.id, available=False))
            _log.info(
                "job %s (room %s) refused: %s",
                job.id,
                job.room_name,
                "draining" if self._draining else "full",
            )
            return
        self._reserved[job.id] = asyncio.get_running_loop().call_later(
            ASSIGNMENT_TIMEOUT, _tell, self.actor_ref, _AssignmentDeadline(job.id)
        )
        name = self.settings.agent_name
        self._send(
            ap.Availability(
                job.id,
                available=True,
                participant_identity=f"agent-{job.id}",
                participant_name=name,
                participant_attributes=((ap.AGENT_NAME_ATTRIBUTE, name),),
            )
        )
        self._report_status()

    def _assigned(self, desc: ap.JobDescription, token: str, url: str) -> None:
        timer = self._reserved.pop(desc.id, None)
        if timer is None:
            _log.warning(
                "assignment for job %s that this worker did not accept (or gave up on); ignored", desc.id
            )
            return
        timer.cancel()
        job = Job(
            desc.id,
            JobRoomInfo(desc.room_name, desc.room_sid),
            agent_name=desc.agent_name,
            metadata=desc.metadata,
            dispatch_id=desc.dispatch_id,
        )
        ref = self.actor_ref

        def status(result: JobResult) -> None:  # on the runtime loop
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_JobChanged(desc.id, result))

        handle = start_job(
            JobAssignment(job, url or self.settings.url, token),
            self.settings.entrypoint,
            options=self.settings.supervision,
            proc=self.settings.proc,
            on_status=status,
        )
        self._jobs[desc.id] = _Running(desc, handle)
        _log.info("job %s started in room %s (%d running)", desc.id, desc.room_name, len(self._jobs))
        self._report_status()

    def _terminated(self, job_id: str) -> None:
        running = self._jobs.get(job_id)
        if running is not None:
            running.handle.shutdown("terminated by the server")
            return
        timer = self._reserved.pop(job_id, None)
        if timer is not None:
            timer.cancel()
            self._report_status()

    # -- jobs ------------------------------------------------------------------------------------------------

    def _job_changed(self, job_id: str, result: JobResult) -> None:
        code = {
            JobStatus.RUNNING: ap.JobStatusCode.RUNNING,
            JobStatus.SUCCESS: ap.JobStatusCode.SUCCESS,
            JobStatus.FAILED: ap.JobStatusCode.FAILED,
        }[result.status]
        update = ap.UpdateJob(job_id, code, result.error)
        if result.status is not JobStatus.RUNNING:
            self._jobs.pop(job_id, None)
            self._report_status()
            if not self._jobs and self._draining:
                for done in self._drained:
                    if not done.done():
                        done.set_result(None)
        if not self._send_job_status(update):
            self._unsent[job_id] = update  # the last status per job, sent after registering again

    def _send_job_status(self, update: ap.UpdateJob) -> bool:
        if self._worker_id is None or not self._send(update):
            return False
        self._sent += 1
        return True

    def _drain(self, done: concurrent.futures.Future[None]) -> None:
        if not self._draining:
            _log.info("draining: no new jobs; %d running", len(self._jobs))
        self._draining = True
        self._report_status()
        if self._jobs:
            self._drained.append(done)
        elif not done.done():
            done.set_result(None)
