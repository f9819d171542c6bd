"""The server side of LiveKit's agent worker protocol: the ``/agent`` WebSocket endpoint, and the
:class:`~greenroom.devserver.dispatch.AgentDispatcher` that runs a room's dispatches on registered workers.

``reference/agent-protocol.md`` §1 has the protocol; livekit-server's ``pkg/service/agentservice.go`` and
``pkg/agent/worker.go`` are what this follows (read, not copied). Step by step:

* **Upgrade**: ``GET /agent`` with ``Authorization: Bearer <jwt>`` whose ``video.agent`` grant is set —
  else 401 (no WebSocket); a non-upgrade request gets 404; past :attr:`AgentLimits.max_workers` live
  workers, 503.
* **Register**: the first frame must be ``register`` within :attr:`AgentLimits.register_timeout` (10 s,
  livekit's ``RegisterTimeout``); the answer carries the worker id (``AW_…``). A worker becomes
  *dispatchable* only with its first ``update_worker`` after that, never before: the official worker (and
  greenroom's) sends ``migrate_job`` first, so the server knows which jobs it still runs before it offers
  it new ones. A worker whose last status is ``FULL`` is never offered a job.
* **Dispatch**: :meth:`AgentService.launch` (a room was created, or ``CreateDispatch``) runs in a task of
  its own, after the call returns, so the member whose join created the room is in it. Unless the
  dispatch is *already served* (below), the job is offered to each dispatchable worker of that agent name,
  least loaded first: ``availability`` and up to :attr:`AgentLimits.availability_timeout` (10 s, livekit's
  ``AssignJobTimeout``) for the answer; a refusal (or silence) moves on to the next worker. Accepted: an
  ``assignment`` with a token minted for the room (identity, name, metadata and attributes from the answer,
  kind ``agent``, the grants the worker registered with, plus ``agent``) and an empty URL ("the URL you
  connected to"). No worker: the dispatch is *parked* (bounded, :attr:`AgentLimits.max_parked`; oldest
  dropped, counted) and offered again when a worker becomes dispatchable — livekit-server drops it
  instead (``client.go``), which loses the agent of any room created while workers reconnect.
* **Already served** (so a server restart never puts a second agent in a room): a dispatch adopts a job
  the server knows for that room and agent name whose own dispatch is gone (reported by a re-registered
  worker's ``migrate_job``, which greenroom's worker fills with the jobs themselves), or an agent
  participant already in the room whose ``lk.agent.name`` attribute is that agent name and that no live
  dispatch claims (a later ``migrate_job`` naming ``<job id>`` of that agent's ``agent-<job id>``
  identity ties the job to it; a job named by id before its agent is back in some room makes the
  dispatches of its agent name wait for it, :data:`ORPHAN_GRACE` at most). livekit-server ignores
  ``migrate_job`` (worker.go: "On OSS this is not implemented") and dispatches again: the measured
  "second agent".
* **Jobs**: ``update_job`` is recorded (``DevServer.record_job``, which ``ListDispatch`` shows); an ended
  job is forgotten. ``termination`` goes to the worker running each job of a room that closes or of a
  deleted dispatch; for a worker that is reconnecting it is sent when it is back (bounded by the jobs).
* **Every input bounded**: frames ≤ 1 MiB (larger closes that worker with 1009), names and ids ≤ 2 KiB, a
  ``migrate_job`` ≤ 10,000 jobs (``greenroom.codecs.agent_protocol``); a malformed frame or a second
  ``register`` closes *that* worker (1008) with the typed error logged; each worker's outbox is bounded
  (:attr:`AgentLimits.outbox`): a worker that does not read is closed. Other workers and rooms never wait.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from greenroom.codecs import agent_protocol as ap
from greenroom.codecs.errors import CodecError, TokenError
from greenroom.codecs.models import RoomInfo, ServerInfo
from greenroom.codecs.tokens import verify_token
from greenroom.devserver.config import SERVER_VERSION, ServerConfig
from greenroom.devserver.dispatch import Dispatch, JobRecord
from greenroom.devserver.room import Room, new_sid

__all__ = ["AgentControl", "AgentLimits", "AgentService", "AgentServiceStats"]

_log = logging.getLogger("greenroom.devserver.agentservice")

#: Seconds a job a returning worker named by id only may take to rejoin its room (the official SDK's full
#: reconnect takes a few seconds); dispatches of its agent name wait meanwhile, checking every ORPHAN_POLL.
ORPHAN_GRACE, ORPHAN_POLL = 15.0, 0.1
#: WebSocket close codes: policy violation (bad frame, no register), going away (server shutdown).
_POLICY, _GOING_AWAY = 1008, 1001


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """The bounds of the ``/agent`` endpoint.

    Attributes:
        max_workers: live worker connections (past it an upgrade gets 503).
        register_timeout: seconds a new connection has to send ``register``.
        availability_timeout: seconds a worker has to answer an ``availability`` request.
        max_parked: dispatches waiting for a worker (past it the oldest is dropped and counted).
        outbox: frames queued to one worker (past it that worker is closed).
        keepalive: WebSocket ping interval in seconds (a dead worker connection is noticed).
    """

    max_workers: int = 1_000
    register_timeout: float = 10.0
    availability_timeout: float = 10.0
    max_parked: int = 1_000
    outbox: int = 1_000
    keepalive: float = 20.0


@dataclass(frozen=True, slots=True)
class AgentServiceStats:
    """Counters of the endpoint (for tests and logs).

    Attributes:
        workers: registered worker connections; ``dispatchable`` of them AVAILABLE.
        jobs: jobs the server knows that have not ended.
        parked: dispatches waiting for a worker.
        dispatched: jobs assigned; ``adopted``: dispatches served by a job or agent already there.
        parked_dropped: parked dispatches dropped past the bound.
        refused: upgrades refused (no or bad token, no agent grant, too many workers).
        closed_bad_input: worker connections closed for breaking the protocol.
    """

    workers: int
    dispatchable: int
    jobs: int
    parked: int
    dispatched: int
    adopted: int
    parked_dropped: int
    refused: int
    closed_bad_input: int


class AgentControl(Protocol):
    """What the service needs from the server that owns the rooms (the ``DevServer``)."""

    config: ServerConfig
    rooms: dict[str, Room]

    def mint_token(self, identity: str, room: str, **kwargs: Any) -> str:
        """A join token for ``room``."""

    def record_job(self, room: str, dispatch_id: str, job: JobRecord) -> bool:
        """Record a job's state in its dispatch."""


@dataclass(eq=False)
class _Job:
    """A job the server knows: assigned here, or reported by a worker's ``migrate_job``."""

    id: str
    room: str
    agent_name: str
    dispatch_id: str
    worker_id: str
    identity: str = ""
    status: ap.JobStatusCode = ap.JobStatusCode.PENDING
    error: str = ""
    terminate: bool = False  # a termination waits for its worker to come back

    def record(self) -> JobRecord:
        return JobRecord(self.id, self.identity, self.worker_id, int(self.status.value), self.error)


@dataclass(eq=False)
class _Worker:
    """One registered worker connection."""

    id: str
    ws: web.WebSocketResponse
    register: ap.Register
    outbox: asyncio.Queue[bytes]
    status: ap.WorkerStatus | None = None  # None until its first update_worker: not dispatchable
    load: float = 0.0
    waiting: dict[str, asyncio.Future[ap.Availability]] = field(default_factory=dict)
    closed: bool = False

    @property
    def dispatchable(self) -> bool:
        return not self.closed and self.status is ap.WorkerStatus.AVAILABLE


class _ClosedError(Exception):
    """The worker's connection must end (the reason is logged)."""


class AgentService:
    """The ``/agent`` endpoint and the dispatcher of a dev server (see the module docstring).

    Everything runs on the server's loop; the dispatcher methods only start tasks.

    Args:
        control: the server (rooms, tokens, job records).
        limits: the bounds.
    """

    def __init__(self, control: AgentControl, limits: AgentLimits | None = None) -> None:
        self._control = control
        self.limits = limits or AgentLimits()
        self._workers: dict[str, _Worker] = {}
        self._connections = 0
        self._jobs: dict[str, _Job] = {}
        #: dispatch id -> (room, identity) of an agent member it adopted whose job is not known (yet)
        self._claims: dict[str, tuple[str, str]] = {}
        #: job id -> (agent name, worker id, deadline): named by a returning worker without a room (ids
        #: only); its agent is probably rejoining some room — dispatches for that agent name wait for it
        self._orphans: dict[str, tuple[str, str, float]] = {}
        self._parked: collections.OrderedDict[str, tuple[str, Dispatch]] = collections.OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatched = self._adopted = self._parked_dropped = self._refused = self._bad = 0

    def stats(self) -> AgentServiceStats:
        """A snapshot of the counters."""
        return AgentServiceStats(
            len(self._workers),
            sum(1 for w in self._workers.values() if w.dispatchable),
            len(self._jobs),
            len(self._parked),
            self._dispatched,
            self._adopted,
            self._parked_dropped,
            self._refused,
            self._bad,
        )

    # ------------------------------------------------------------------------------ the endpoint

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET /agent``: authorize, upgrade, run the worker's connection until it ends."""
        refusal = self._refusal(request)
        if refusal is not None:
            status, text = refusal
            _log.info("refused /agent: %s %s", status.value, text)
            return web.Response(status=status.value, text=text)
        ws = web.WebSocketResponse(max_msg_size=ap.MAX_FRAME, compress=False, heartbeat=self.limits.keepalive)
        if not ws.can_prepare(request).ok:
            return web.Response(status=http.HTTPStatus.BAD_REQUEST.value, text="invalid WebSocket handshake")
        await ws.prepare(request)
        self._connections += 1
        try:
            await self._connection(ws)
        finally:
            self._connections -= 1
        return ws

    def _refusal(self, request: web.Request) -> tuple[http.HTTPStatus, str] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            self._refused += 1
            return http.HTTPStatus.UNAUTHORIZED, "no authorization token"
        try:
            claims = verify_token(token.strip(), self._control.config.keys)
        except TokenError as exc:
            self._refused += 1
            return http.HTTPStatus.UNAUTHORIZED, f"invalid token ({exc.reason}): {exc}"
        if claims.video is None or not claims.video.agent:
            self._refused += 1
            return http.HTTPStatus.UNAUTHORIZED, "permissions denied: the token lacks the agent grant"
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return http.HTTPStatus.NOT_FOUND, "/agent needs a WebSocket upgrade"
        if self._connections >= self.limits.max_workers:
            self._refused += 1
            return http.HTTPStatus.SERVICE_UNAVAILABLE, "too many agent workers"
        return None

    async def _connection(self, ws: web.WebSocketResponse) -> None:
        worker: _Worker | None = None
        writer: asyncio.Task[None] | None = None
        try:
            first = await asyncio.wait_for(self._receive(ws), self.limits.register_timeout)
            if not isinstance(first, ap.Register):
                raise _ClosedError(f"the first message must be register, not {type(first).__name__}")
            worker = _Worker(new_sid("AW_"), ws, first, asyncio.Queue(self.limits.outbox))
            writer = asyncio.create_task(self._write(worker), name=f"greenroom-agent-writer-{worker.id}")
            self._workers[worker.id] = worker
            _log.info(
                "worker %s registered (agent %r, version %r)", worker.id, first.agent_name, first.version
            )
            info = ServerInfo(version=SERVER_VERSION, protocol=16, node_id="greenroom-dev", agent_protocol=1)
            self._send(worker, ap.Registered(worker.id, info))
            self._flush_terminations(worker)
            while True:
                self._handle(worker, await self._receive(ws))
        except TimeoutError:
            self._bad += 1
            await self._close(ws, "no register within the deadline")
        except _ClosedError as exc:
            self._bad += 1
            await self._close(ws, str(exc))
        except CodecError as exc:
            self._bad += 1
            await self._close(ws, f"{type(exc).__name__}: {exc}")
        except ConnectionError:
            pass  # closed by the worker: its jobs run on, it may come back
        finally:
            if worker is not None:
                self._gone(worker)
            if writer is not None:
                writer.cancel()

    async def _receive(self, ws: web.WebSocketResponse) -> ap.WorkerMessage | ap.Unhandled:
        message = await ws.receive()
        if message.type is WSMsgType.BINARY:
            return ap.decode_worker_message(message.data)
        if message.type is WSMsgType.TEXT:
            raise CodecError("agent protocol frames are binary")
        if message.type is WSMsgType.ERROR:
            self._bad += 1  # aiohttp closed it already (1009 for an oversize frame)
            _log.warning("worker connection error: %s", message.data)
        raise ConnectionError("closed")

    async def _close(self, ws: web.WebSocketResponse, reason: str) -> None:
        _log.warning("closing an agent worker connection: %s", reason)
        with contextlib.suppress(Exception):
            await ws.close(code=_POLICY, message=reason[:120].encode())

    async def _write(self, worker: _Worker) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await worker.ws.send_bytes(await worker.outbox.get())

    def _send(self, worker: _Worker, message: ap.ServerMessage) -> None:
        if worker.closed:
            return
        try:
            worker.outbox.put_nowait(ap.encode_server_message(message))
        except asyncio.QueueFull:
            self._bad += 1
            _log.warning("worker %s does not read its messages; closing it", worker.id)
            worker.closed = True
            self._spawn(self._close(worker.ws, "outbox full"))

    def _gone(self, worker: _Worker) -> None:
        worker.closed = True
        self._workers.pop(worker.id, None)
        for waiter in worker.waiting.values():
            waiter.cancel()
        _log.info("worker %s disconnected; its jobs keep running until it is back", worker.id)

    async def close(self) -> None:
        """Close every worker connection (server shutdown) and stop the dispatch tasks."""
        for worker in list(self._workers.values()):
            worker.closed = True
            with contextlib.suppress(Exception):
                await worker.ws.close(code=_GOING_AWAY, message=b"server shutting down")
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------------- worker messages

    def _handle(self, worker: _Worker, message: ap.WorkerMessage | ap.Unhandled) -> None:
        match message:
            case ap.UpdateWorker(status=status, load=load):
                became = worker.status is not status and status is ap.WorkerStatus.AVAILABLE
                worker.status, worker.load = status, load
                if became:
                    self._unpark()
            case ap.Availability(job_id=job_id):
                waiter = worker.waiting.pop(job_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
            case ap.UpdateJob(job_id=job_id, status=status, error=error):
                self._job_status(worker, job_id, status, error)
            case ap.MigrateJob():
                self._migrate(worker, message)
            case ap.WorkerPing(timestamp=timestamp):
                self._send(worker, ap.Pong(last_timestamp=timestamp))
            case ap.Register():
                raise _ClosedError("register sent twice")
            case ap.Unhandled(field=name):
                _log.debug("worker %s: %s ignored", worker.id, name)

    def _job_status(self, worker: _Worker, job_id: str, status: ap.JobStatusCode, error: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        job.worker_id, job.status, job.error = worker.id, status, error
        self._control.record_job(job.room, job.dispatch_id, job.record())
        if status in (ap.JobStatusCode.SUCCESS, ap.JobStatusCode.FAILED, ap.JobStatusCode.CANCELLED):
            del self._jobs[job_id]
            level = logging.WARNING if status is ap.JobStatusCode.FAILED else logging.INFO
            _log.log(level, "[%s] job %s ended: %s %s", job.room, job_id, status.name, error)

    def _migrate(self, worker: _Worker, message: ap.MigrateJob) -> None:
        for job in message.jobs:
            self._migrated(worker, job)
        described = {job.id for job in message.jobs}
        for job_id in message.job_ids:
            if job_id not in described and job_id not in self._jobs:
                self._claimed_job(worker, job_id)

    def _migrated(self, worker: _Worker, desc: ap.JobDescription) -> None:
        """A re-registered worker still runs ``desc``: keep it (bound to a live dispatch, or adoptable)."""
        job = self._jobs.get(desc.id)
        if job is None:
            job = self._jobs[desc.id] = _Job(
                desc.id, desc.room_name, desc.agent_name, desc.dispatch_id, worker.id
            )
            job.status = ap.JobStatusCode.RUNNING
        job.worker_id = worker.id
        room = self._control.rooms.get(job.room)
        if room is None:
            return  # adopted when the room is created again (its agent rejoins it)
        if job.dispatch_id not in room.dispatches:
            for dispatch in list(room.dispatches.values()):
                if dispatch.agent_name == job.agent_name and not self._served(dispatch):
                    self._bind(job, dispatch)
                    break

    def _claimed_job(self, worker: _Worker, job_id: str) -> None:
        """A returning worker names a job without describing it (livekit-agents sends ids only): if an
        agent member a dispatch adopted is that job's participant (``agent-<job id>``, the default
        identity), the job is known again under that dispatch — so its termination can be sent. Else
        the job is an *orphan* for :data:`ORPHAN_GRACE` seconds: its agent is rejoining some room, and
        the dispatches of that agent name wait for it rather than put a second agent there."""
        for dispatch_id, (room, identity) in list(self._claims.items()):
            if identity == f"agent-{job_id}":
                del self._claims[dispatch_id]
                agent_name = self._control.rooms[room].dispatches[dispatch_id].agent_name
                self._known(_Job(job_id, room, agent_name, dispatch_id, worker.id, identity))
                return
        deadline = asyncio.get_running_loop().time() + ORPHAN_GRACE
        self._orphans[job_id] = (worker.register.agent_name, worker.id, deadline)

    def _known(self, job: _Job) -> None:
        """A job known again (it still runs): record it under its dispatch."""
        job.status = ap.JobStatusCode.RUNNING
        self._jobs[job.id] = job
        self._control.record_job(job.room, job.dispatch_id, job.record())

    def _awaiting_orphans(self, agent_name: str) -> bool:
        now = asyncio.get_running_loop().time()
        for job_id, (_name, _worker, deadline) in list(self._orphans.items()):
            if deadline <= now:
                del self._orphans[job_id]
        return any(name == agent_name for name, _w, _d in self._orphans.values())

    def _flush_terminations(self, worker: _Worker) -> None:
        """Terminations owed to jobs whose worker was away are sent when it registers again (it sends
        ``migrate_job`` next; those jobs are then known under this worker)."""
        for job in self._jobs.values():
            if job.terminate and job.worker_id == worker.id:
                self._send(worker, ap.Termination(job.id))

    # ----------------------------------------------------------------------- the dispatcher

    def launch(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """Run ``dispatch`` on a worker (in a task: the member whose join created the room is in first)."""
        self._spawn(self._dispatch(room.name, dispatch))

    def terminate(self, room: RoomInfo, dispatch: Dispatch) -> None:
        """``DeleteDispatch``: end that dispatch's jobs."""
        self._parked.pop(dispatch.id, None)
        self._claims.pop(dispatch.id, None)  # its agent's job is not known: nothing to terminate
        for job in [j for j in self._jobs.values() if j.dispatch_id == dispatch.id]:
            self._terminate(job)

    def room_closed(self, room: RoomInfo) -> None:
        """The room closed: end every job in it, forget its parked dispatches."""
        for dispatch_id, (name, _dispatch) in list(self._parked.items()):
            if name == room.name:
                del self._parked[dispatch_id]
        for dispatch_id, (name, _identity) in list(self._claims.items()):
            if name == room.name:
                del self._claims[dispatch_id]
        for job in [j for j in self._jobs.values() if j.room == room.name]:
            self._terminate(job)

    def _terminate(self, job: _Job) -> None:
        worker = self._workers.get(job.worker_id)
        if worker is None or worker.closed:
            job.terminate = True  # sent when the worker is back
            return
        self._send(worker, ap.Termination(job.id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _live_dispatch(self, room_name: str, dispatch: Dispatch) -> Room | None:
        room = self._control.rooms.get(room_name)
        if room is None or room.closed or dispatch.id not in room.dispatches:
            return None
        return room

    def _served(self, dispatch: Dispatch) -> bool:
        return dispatch.id in self._claims or any(j.dispatch_id == dispatch.id for j in self._jobs.values())

    def _bind(self, job: _Job, dispatch: Dispatch) -> None:
        job.dispatch_id = dispatch.id
        self._adopted += 1
        _log.info("[%s] dispatch %s adopts job %s (it still runs)", job.room, dispatch.id, job.id)
        self._control.record_job(job.room, dispatch.id, job.record())

    def _adopt(self, room: Room, dispatch: Dispatch) -> bool:
        """Serve ``dispatch`` with a job or an agent already there (module docstring)."""
        for job in self._jobs.values():
            if (
                job.room == room.name
                and job.agent_name == dispatch.agent_name
                and job.dispatch_id not in room.dispatches
            ):
                self._bind(job, dispatch)
                return True
        claimed = {self._claims[d][1] for d in room.dispatches if d in self._claims} | {
            j.identity for j in self._jobs.values() if j.room == room.name
        }
        for member in room:
            named = member.attributes.get(ap.AGENT_NAME_ATTRIBUTE)
            if member.is_agent and named == dispatch.agent_name and member.identity not in claimed:
                self._adopt_member(room, dispatch, member.identity)
                return True
        return False

    def _adopt_member(self, room: Room, dispatch: Dispatch, identity: str) -> None:
        """``dispatch`` is served by the agent ``identity`` already in ``room``: the job of a returning
        worker's id-only ``migrate_job`` if it is that one's (``agent-<job id>``), else claimed until its
        worker names it."""
        self._adopted += 1
        job_id = identity.removeprefix("agent-")
        orphan = self._orphans.pop(job_id, None)
        if orphan is not None:
            self._known(_Job(job_id, room.name, dispatch.agent_name, dispatch.id, orphan[1], identity))
            _log.info("[%s] dispatch %s adopts job %s (it still runs)", room.name, dispatch.id, job_id)
            return
        self._claims[dispatch.id] = (room.name, identity)
        _log.info("[%s] dispatch %s adopts agent %s already in the room", room.name, dispatch.id, identity)

    def _candidates(self, agent_name: str, tried: set[str]) -> Iterator[_Worker]:
        workers = [
            w
            for w in self._workers.values()
            if w.dispatchable and w.register.agent_name == agent_name and w.id not in tried
        ]
        yield from sorted(workers, key=lambda w: w.load)

    async def _dispatch(self, room_name: str, dispatch: Dispatch) -> None:
        await asyncio.sleep(0)  # after the creating member was admitted
        tried: set[str] = set()
        job = ap.JobDescription(
            new_sid("AJ_"),
            room_name,
            agent_name=dispatch.agent_name,
            dispatch_id=dispatch.id,
            metadata=dispatch.metadata,
            attributes=dispatch.attributes,
        )
        while True:
            room = self._live_dispatch(room_name, dispatch)
            if room is None or self._served(dispatch) or self._adopt(room, dispatch):
                return
            if self._awaiting_orphans(dispatch.agent_name):
                await asyncio.sleep(ORPHAN_POLL)  # a returning job's agent may be rejoining this room
                continue
            job = dataclasses.replace(job, room_sid=room.sid)
            worker = next(self._candidates(dispatch.agent_name, tried), None)
            if worker is None:
                self._park(room_name, dispatch)
                return
            tried.add(worker.id)
            answer = await self._ask(worker, job)
            if answer is None or not answer.available:
                continue
            if self._live_dispatch(room_name, dispatch) is None or self._served(dispatch):
                self._send(worker, ap.Termination(job.id))  # assigned nothing; the worker releases its slot
                return
            self._assign(worker, job, answer)
            return

    async def _ask(self, worker: _Worker, job: ap.JobDescription) -> ap.Availability | None:
        waiter: asyncio.Future[ap.Availability] = asyncio.get_running_loop().create_future()
        worker.waiting[job.id] = waiter
        self._send(worker, ap.AvailabilityRequest(job))
        try:
            return await asyncio.wait_for(waiter, self.limits.availability_timeout)
        except TimeoutError:
            _log.info("worker %s did not answer availability for %s in time", worker.id, job.id)
            return None
        except asyncio.CancelledError:
            if _cancelling():
                raise
            return None  # the worker went away
        finally:
            worker.waiting.pop(job.id, None)

    def _assign(self, worker: _Worker, job: ap.JobDescription, answer: ap.Availability) -> None:
        identity = answer.participant_identity or f"agent-{job.id}"
        attributes = dict(answer.participant_attributes)
        attributes.setdefault(ap.AGENT_NAME_ATTRIBUTE, job.agent_name)
        permissions = worker.register.permissions
        grants: dict[str, Any] = {"agent": True, "can_update_own_metadata": True}
        if permissions is not None:
            grants.update(
                can_publish=permissions.can_publish,
                can_subscribe=permissions.can_subscribe,
                can_publish_data=permissions.can_publish_data,
                hidden=permissions.hidden,
            )
        token = self._control.mint_token(
            identity,
            job.room_name,
            name=answer.participant_name,
            metadata=answer.participant_metadata,
            attributes=attributes,
            kind="agent",
            **grants,
        )
        record = self._jobs[job.id] = _Job(
            job.id, job.room_name, job.agent_name, job.dispatch_id, worker.id, identity
        )
        self._dispatched += 1
        self._send(worker, ap.Assignment(job, token))
        self._control.record_job(job.room_name, job.dispatch_id, record.record())
        _log.info(
            "[%s] job %s (agent %r) assigned to worker %s as %s",
            job.room_name,
            job.id,
            job.agent_name,
            worker.id,
            identity,
        )

    def _park(self, room_name: str, dispatch: Dispatch) -> None:
        if dispatch.id in self._parked:
            return
        if len(self._parked) >= self.limits.max_parked:
            dropped, (name, _d) = self._parked.popitem(last=False)
            self._parked_dropped += 1
            _log.warning("[%s] parked dispatch %s dropped (%d parked)", name, dropped, self.limits.max_parked)
        self._parked[dispatch.id] = (room_name, dispatch)
        _log.info(
            "[%s] dispatch %s (agent %r) waits for a worker", room_name, dispatch.id, dispatch.agent_name
        )

    def _unpark(self) -> None:
        parked, self._parked = self._parked, collections.OrderedDict()
        for room_name, dispatch in parked.values():
            self._spawn(self._dispatch(room_name, dispatch))


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
