"""One job's actor tree, and :func:`start_job`, the one way a job starts (directly, or from the worker
protocol's ``assignment``).

```
JobActor (rest_for_one ChildTable)     one per job: status, the end of the job, the supervision decisions
├── ConnectionActor  "connection"       owns the JobRoom: joins on ctx.connect(), leaves when it stops
└── LogicActor       "logic"            owns one run of the agent's code on the job's logic loop: the
                                        entrypoint task, the dispatcher and its liveness deadline
```

All three are actors on greenroom's runtime loop; the agent's code runs on the job's logic loop
(:mod:`greenroom.agents.loops`). ``rest_for_one``: the connection starts first and the logic second, so a
crash of the logic restarts only the logic — the participant stays in the room and the others see no
leave/join — while a crash of the connection restarts both. Every restart goes through the project's one
supervision mechanism (:class:`~greenroom.actors.supervision.ChildTable`: the pure ``decide``, the
intensity window, the back-off). Past the intensity the job ends: the agent leaves with
``DisconnectReason.AGENT_ERROR`` (a typed leave) and the job reports ``FAILED`` with the error text.

What crashes the logic: the entrypoint raising; a room callback or an agent handler raising; a missed
*liveness deadline* (an async hang, or a synchronous callback stuck in its executor thread); the watchdog
finding the logic loop blocked (the loop is then abandoned and the next incarnation gets a fresh one).

The liveness deadline is the liveness ask without its idle cost. Each delivery to the agent (a room event,
a told message) is the question, and its deadline is ``liveness_timeout`` after the dispatcher last made
progress: while the dispatcher has work (an item running or queued), it must start or finish an item
within the timeout. The process's one watchdog thread checks every dispatcher's
:meth:`~greenroom.agents.dispatch.Dispatcher.stalled` at each tick (a lock-free read of one float), and a
stalled one is reported to its logic, which confirms it under the dispatcher's lock and fails with
:class:`AgentHungError`. What the periodic probe (until 2026-12) caught, this catches in the same time or
sooner: a probe queued behind a stuck item was answered only when that item finished, so its deadline
was missed exactly when an item ran past the timeout (this check: past the timeout, plus a watchdog tick
of 0.1 s, instead of plus a probe interval of 0.25 s); and a dispatcher that stopped consuming has
queued work with no progress. What it does not flag, on purpose: a backlog of quick items that together
take longer than the timeout (progress is made; the probe, queued at the back, called that a hang). An
idle agent costs nothing: no timer, no cross-thread hop, no wake-up of its loop (the probe cost four
hops and two timers per job every 0.25 s).

A restarted logic runs the entrypoint again with a new ``JobContext`` over the same room; ``ctx.restored``
holds the last ``ctx.checkpoint(state)``.

The job ends (status ``SUCCESS``) on ``ctx.shutdown()``, :meth:`JobHandle.shutdown` (e.g. the worker
protocol's ``termination``), or the room closing under the agent (server, removal, a lost link that did not
come back). The shutdown callbacks run first, then the logic stops, then the agent leaves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import re
from typing import Any

import pykka

from greenroom import rtc
from greenroom.actors.core import AsyncioActor, ChildFailed, ask, stop_actor
from greenroom.actors.messages import Crash, GetState, GetTree, Reply, Stall, TreeState
from greenroom.actors.restarts import backoff_delay
from greenroom.actors.supervision import SUPERVISION_MESSAGES, ChildSpec, ChildTable, RestartEvent, Strategy
from greenroom.agents.context import AutoSubscribe, JobContext, JobProcess
from greenroom.agents.dispatch import Dispatcher, JobRoom
from greenroom.agents.job import (
    AgentBusyError,
    AgentHungError,
    Connect,
    ConnectDone,
    EndJob,
    Entrypoint,
    JobAssignment,
    JobCore,
    JobEndedError,
    JobError,
    JobResult,
    JobStatus,
    LogicFailed,
    LogicHung,
    LogicState,
    LoopBlocked,
    LoopBlockedError,
    RoomClosed,
    RunShutdownCallbacks,
    StashStats,
    StatusCallback,
    SupervisionOptions,
    Told,
    describe_entry,
)
from greenroom.agents.loops import BlockedLoop, LogicLoop
from greenroom.runtime import loop as runtime

__all__ = ["CONNECTION", "LOGIC", "JobHandle", "start_job"]

_log = logging.getLogger("greenroom.agents.tree")

#: The children's ids.
CONNECTION, LOGIC = "connection", "logic"

#: A hang confirmed while the logic loop itself has been busy in one pass for longer than this is treated
#: as a blocked loop (abandoned, not reused): a restart on the same loop would wait for it, then be found
#: blocked again.
BUSY_MEANS_BLOCKED = 0.2


#: How ``rtc.ConnectError`` words a refused token (``greenroom.actors.connection.describe_refusal``; the
#: error carries no status of its own). Retrying a token the server refused cannot succeed.
_REFUSED_FOR_GOOD = re.compile(r"refused the connection \((401|403)\)")


def refused_for_good(error: BaseException) -> bool:
    """Whether a join failed because the server refused the token (401/403): not worth retrying."""
    return isinstance(error, rtc.ConnectError) and _REFUSED_FOR_GOOD.search(str(error)) is not None


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    return text if cause is None else f"{text} (caused by {type(cause).__name__}: {cause})"


# ------------------------------------------------------------------------------------------- connection


class ConnectionActor(AsyncioActor):
    """Owns the job's room: creates it, joins on the first ``Connect``, leaves when it stops.

    **The join is retried** (``SupervisionOptions.connect_attempts``, 4 tries; ``connect_backoff``: 0.5 s
    doubling to 4 s, +0–50 % jitter), in a task of its own, so the mailbox stays free: a server that is
    restarting or briefly unreachable when the job is assigned costs a few seconds, not the job. A token
    the server refuses (401/403) is not retried. When the tries are spent, the job ends FAILED with the
    last error and the number of tries (the waiting ``ctx.connect()`` raises it too). Before (until
    2026-12), a failed join raised in the entrypoint and the logic restarts retried it — within ~0.1 s,
    using up the restart intensity (5) meant for the agent's own crashes, without a pause in which a
    server could come back.
    """

    def __init__(self, core: JobCore, room: JobRoom) -> None:
        super().__init__()
        self.core = core
        self.room = room
        self._waiting: list[Reply[None]] = []
        self._connecting: asyncio.Task[None] | None = None
        self._leaving = False
        room.on_internal("disconnected", self._on_disconnected)

    @classmethod
    def start_for(cls, core: JobCore) -> pykka.ActorRef[Any]:
        """The child's factory (runs on the runtime loop): a new room, published to the job at once (so
        the logic, started next, finds it), owned by a new connection actor."""
        room = JobRoom(core.stash, loop=asyncio.get_running_loop())
        core.room = room
        return cls.start(core, room)

    def _on_disconnected(self, reason: rtc.DisconnectReason) -> None:
        if not self._leaving and self.core.job_ref is not None:
            self.core.job_ref.tell(RoomClosed(reason))

    async def on_receive(self, message: Any) -> Any:
        """``Connect`` (join once; answer every asker), the connect task's end, ``GetState`` (joined?)."""
        match message:
            case Connect(options=options, auto_subscribe=auto, reply=reply):
                if self.room.isconnected():
                    reply.ok(None)
                    return
                self._waiting.append(reply)
                if self._connecting is None:
                    self._connecting = asyncio.create_task(self._connect(options, auto))
            case GetState():
                return self.room.isconnected()
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case ConnectDone(error=error, attempts=attempts):
                self._connecting = None
                if error is not None and self.core.job_ref is not None:  # before the waiters hear it
                    text = f"{_describe(error)} (join tried {attempts} time(s))"
                    self.core.job_ref.tell(EndJob(JobStatus.FAILED, "could not join the room", text))
                waiting, self._waiting = self._waiting, []
                for waiter in waiting:
                    if error is None:
                        waiter.ok(None)
                    else:
                        waiter.fail(error)
            case _:
                _log.warning("connection of %s ignored %r", self.core.assignment.job.id, message)
        return None

    async def _connect(self, options: rtc.RoomOptions, auto: str) -> None:
        error: BaseException | None = None
        assignment, policy = self.core.assignment, self.core.options
        attempts = max(1, policy.connect_attempts)
        attempt = 0
        for attempt in range(1, attempts + 1):
            try:
                await self.room.connect(assignment.url, assignment.token, options)
                self._auto_subscribe(auto)
                error = None
                break
            except rtc.ConnectError as exc:
                error = exc
                if attempt == attempts or refused_for_good(exc):
                    break
                delay = backoff_delay(policy.connect_backoff, attempt - 1, random.random())
                _log.warning(
                    "job %s: join attempt %d of %d failed (%s); retrying in %.2f s",
                    assignment.job.id,
                    attempt,
                    attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)  # the back-off of this task only; the mailbox stays free
            except Exception as exc:  # not a refusal or an unreachable server: a bug, not retried
                error = exc
                break
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(ConnectDone(error, attempt))

    def _auto_subscribe(self, auto: str) -> None:
        if auto not in (AutoSubscribe.AUDIO_ONLY, AutoSubscribe.VIDEO_ONLY):
            return
        kind = rtc.TrackKind.KIND_AUDIO if auto == AutoSubscribe.AUDIO_ONLY else rtc.TrackKind.KIND_VIDEO

        def subscribe(publication: rtc.RemoteTrackPublication, *_: Any) -> None:
            if publication.kind == kind:
                publication.set_subscribed(True)

        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                subscribe(publication)
        self.room.on_internal("track_published", subscribe)

    async def on_stop(self) -> None:
        """Leave the room (with the job's leave reason)."""
        await self._leave()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Leave the room: the next incarnation joins again."""
        await self._leave()

    async def _leave(self) -> None:
        self._leaving = True
        if self._connecting is not None:
            self._connecting.cancel()
        for waiter in self._waiting:
            waiter.fail(rtc.ConnectError("the job's connection stopped"))
        self._waiting = []
        if self.core.room is self.room:
            self.core.room = None
        if self.room.isconnected():
            self.core.left_with = self.core.leave_reason
        await self.room.disconnect(self.core.leave_reason)


# ------------------------------------------------------------------------------------------------ logic


class LogicActor(AsyncioActor):
    """One run of the agent's code: its context, dispatcher and entrypoint task on the logic loop."""

    def __init__(self, core: JobCore) -> None:
        super().__init__()
        self.core = core
        self.incarnation = 0
        self.loop: LogicLoop | None = None
        self.dispatcher: Dispatcher | None = None
        self.ctx: JobContext | None = None
        self._watch: object | None = None
        self._hangs_checked = 0

    async def on_start(self) -> None:
        """Take (or make) the logic loop, bind the room to a new dispatcher, start the entrypoint."""
        core, options = self.core, self.core.options
        self.incarnation = core.next_incarnation()
        logic = core.logic_loop
        if logic is None or logic.abandoned:
            if logic is not None:
                # Abandoned by a report no incarnation acted on (the watchdog's LoopBlocked reached the job
                # while the logic was down, so nobody closed it): closed here, or its thread would run
                # for ever once the blocking call returned (a thread and 3 fds per such race).
                logic.close()
            job_ref = core.job_ref
            assert job_ref is not None
            name = f"greenroom-job-{core.assignment.job.id}"

            def blocked(report: BlockedLoop) -> None:
                job_ref.tell(LoopBlocked(report, new))

            new = LogicLoop.start(name, blocked, block_threshold=options.block_threshold)
            logic = core.logic_loop = new
        self.loop = logic
        me = self.actor_ref

        def failed(error: BaseException) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(LogicFailed(error, logic))

        dispatcher = self.dispatcher = Dispatcher(logic, failed)
        ctx = self.ctx = JobContext(core, dispatcher, self.incarnation)
        if core.room is not None:
            core.room.bind(dispatcher)
        entry, stash = core.entrypoint, core.stash
        generation = stash.generation

        async def main() -> None:
            dispatcher.start()
            # The stash opens at the entrypoint's first real suspension: callbacks it registered before
            # (or right after a connect() that returns at once, after a restart) get the replay.
            asyncio.get_running_loop().call_soon(stash.open, ctx._target, generation)
            await entry(ctx)

        def ended(future: concurrent.futures.Future[None]) -> None:
            if not future.cancelled() and (error := future.exception()) is not None:
                failed(error)

        def hung(stalled: float) -> None:  # the watchdog thread
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(LogicHung(dispatcher, stalled))

        logic.submit(main()).add_done_callback(ended)
        self._watch = logic.watch(dispatcher, options.liveness_timeout, hung)

    async def on_receive(self, message: Any) -> Any:
        """Failures, liveness, deliveries, shutdown callbacks, state."""
        match message:
            case LogicFailed(error=error, loop=loop):
                if loop is None or loop is self.loop:
                    raise error
            case LoopBlocked(report=report, loop=loop):
                if loop is self.loop:
                    raise self._blocked_error(report)
            case LogicHung(dispatcher=dispatcher):
                if dispatcher is self.dispatcher:
                    self._confirm_hang()
            case RunShutdownCallbacks(reason=reason):
                await self._run_shutdown_callbacks(reason)
            case GetState():
                return self._state()
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case _:
                _log.warning("logic of %s ignored %r", self.core.assignment.job.id, message)
        return None

    def _confirm_hang(self) -> None:
        """The watchdog found the dispatcher stalled: fail if it still is (read under its lock), else
        watch on (it made progress meanwhile)."""
        assert self.loop is not None
        assert self.dispatcher is not None
        self._hangs_checked += 1
        stalled = self.dispatcher.stalled_now()
        if stalled > self.core.options.liveness_timeout:
            raise self._hang_error(stalled)
        if self._watch is not None:
            self.loop.rearm(self._watch)

    def _hang_error(self, stalled: float) -> Exception:
        assert self.loop is not None
        assert self.dispatcher is not None
        busy = self.loop.busy_for()
        if busy > BUSY_MEANS_BLOCKED:  # the loop itself is stuck: the watchdog's case
            report = self.loop.blocked_report(busy)
            self.loop.report_blocked(report)
            return self._blocked_error(report)
        timeout = self.core.options.liveness_timeout
        stack = self.dispatcher.stack()
        current = self.dispatcher.current or "the entrypoint"
        item = self.dispatcher.running_entry
        what = "" if item is None else f", handling {describe_entry(item)}"
        _log.error(
            "agent of job %s missed its liveness deadline: no progress for %.2f s (deadline %.2f s; busy in "
            "%s%s). Stuck at:\n%s",
            self.core.assignment.job.id,
            stalled,
            timeout,
            current,
            what,
            stack,
        )
        return AgentHungError(
            f"missed the liveness deadline: no progress for {stalled:.2f} s (deadline {timeout} s; busy in "
            f"{current}{what})",
            item=item,
            blames_current=True,
        )

    def _blocked_error(self, report: BlockedLoop) -> LoopBlockedError:
        """The loop was blocked: by the dispatcher's running item (which then is not replayed), or by
        other code of the agent (the running item, interrupted, is)."""
        assert self.dispatcher is not None
        in_dispatcher = report.task == self.dispatcher.task_name
        item = self.dispatcher.running_entry if in_dispatcher else None
        what = "" if item is None else f", handling {describe_entry(item)}"
        return LoopBlockedError(
            f"the agent's loop was blocked for {report.stalled:.2f} s in {report.task!r}{what}",
            item=item,
            blames_current=in_dispatcher,
        )

    async def _run_shutdown_callbacks(self, reason: str) -> None:
        if self.loop is None or self.ctx is None or self.loop.abandoned:
            return
        future = self.loop.submit(self.ctx._run_shutdown_callbacks(reason))
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), self.core.options.shutdown_timeout)
        except TimeoutError:
            _log.error("%s: shutdown callbacks took too long", self.core.assignment.job.id)

    def _state(self) -> LogicState:
        assert self.loop is not None
        assert self.dispatcher is not None
        d = self.dispatcher
        stash = self.core.stash.stats()
        return LogicState(
            self.incarnation, self.loop.name, d.handled, d.queued, d.dropped, self._hangs_checked, stash
        )

    async def on_stop(self) -> None:
        """End this run: stash what it did not handle, drop its room callbacks, cancel its tasks."""
        self._end_run(keep_current=True)

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """As :meth:`on_stop`, but the item that failed is not kept; a loop found blocked is abandoned
        (the next incarnation gets a new one)."""
        if isinstance(exception_value, LoopBlockedError) and self.loop is not None:
            self.loop.close()
        blames_current = isinstance(exception_value, JobError) and exception_value.blames_current
        self._end_run(keep_current=not blames_current)

    def _end_run(self, *, keep_current: bool) -> None:
        if self.loop is not None and self._watch is not None:
            self.loop.unwatch(self._watch)
        self._watch = None
        self.core.stash.hold()  # from now on room events and messages wait for the next incarnation
        if self.dispatcher is not None:
            self.core.stash.requeue(self.dispatcher.take_leftovers(keep_current=keep_current))
        room = self.core.room
        if room is not None:
            room.drop_listeners()
            room.bind(None)
        if self.loop is not None and not self.loop.abandoned:
            self.loop.call_soon(_cancel_all, self.loop.loop)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


# -------------------------------------------------------------------------------------------------- job


class JobActor(AsyncioActor):
    """The job's supervisor (a ``rest_for_one`` :class:`ChildTable`), its status and its end."""

    def __init__(self, core: JobCore) -> None:
        super().__init__()
        self.core = core
        self.table = ChildTable(
            self.actor_ref,
            f"job {core.assignment.job.id}",
            strategy=Strategy.REST_FOR_ONE,
            intensity=core.options.intensity,
            backoff=core.options.backoff,
        )
        core.job_ref = self.actor_ref
        core.connection = self.table.add(ChildSpec(CONNECTION, lambda: ConnectionActor.start_for(core)))
        self.table.add(ChildSpec(LOGIC, lambda: LogicActor.start(core)))
        self._ending = False

    async def on_start(self) -> None:
        """Start the connection, then the logic; report RUNNING."""
        await self.table.start_added()
        self._report(JobResult(JobStatus.RUNNING))

    def _report(self, result: JobResult) -> None:
        if self.core.on_status is not None:
            try:
                self.core.on_status(result)
            except Exception:
                _log.exception("the status callback of job %s failed", self.core.assignment.job.id)

    async def on_receive(self, message: Any) -> Any:
        """Children's exits, the watchdog's reports, the end of the job, the testing kit's ``GetTree``."""
        if isinstance(message, SUPERVISION_MESSAGES):
            await self._supervise(message)
            return None
        match message:
            case LoopBlocked():
                logic = self.table.current(LOGIC)
                if logic is not None:  # else down already: its next incarnation gets a new loop
                    logic.tell(message)
            case RoomClosed(reason=reason):
                await self._end(JobResult(JobStatus.SUCCESS, reason=f"room closed: {reason.name}"))
            case EndJob(status=status, reason=reason, error=error):
                await self._end(JobResult(status, error, reason))
            case GetTree():
                return self._tree()
            case Stall(release=release, entered=entered):  # greenroom.testing: a stuck supervisor
                entered.ok(None)
                await release.wait()
            case _:
                _log.warning("job %s ignored %r", self.core.assignment.job.id, message)
        return None

    async def _supervise(self, message: Any) -> None:
        if self._ending:
            return
        if isinstance(message, ChildFailed):
            self.core.leave_reason = rtc.DisconnectReason.AGENT_ERROR  # if the table gives up, it leaves so
        escalation = await self.table.on_message(message)
        if escalation is None:
            self.core.leave_reason = rtc.DisconnectReason.CLIENT_INITIATED
            return
        cause = escalation.error.__cause__
        error = str(escalation.error) if cause is None else f"{escalation.error}: {_describe(cause)}"
        await self._end(JobResult(JobStatus.FAILED, error, "restart intensity exceeded"))

    def _tree(self) -> TreeState:
        children = tuple((c.id, c.id, c.ref) for c in self.table.which_children())
        return TreeState(children, tuple(self.table.restart_events()))

    async def _end(self, result: JobResult) -> None:
        if self._ending:
            return
        self._ending = True
        logic = self.table.current(LOGIC)
        if logic is not None and result.status is JobStatus.SUCCESS:
            with contextlib.suppress(Exception):
                timeout = self.core.options.shutdown_timeout + 1.0
                await ask(logic, RunShutdownCallbacks(result.reason), timeout=timeout)
        await self.table.shutdown()
        self._conclude(result)
        self.stop()

    def _conclude(self, result: JobResult) -> None:
        if self.core.result is not None:
            return
        self.core.result = result
        if self.core.logic_loop is not None:
            self.core.logic_loop.close()
        lost = self.core.stash.close()
        if lost:
            job_id = self.core.assignment.job.id
            _log.warning("job %s ended with %d room events or messages not handled", job_id, lost)
        level = logging.ERROR if result.status is JobStatus.FAILED else logging.INFO
        _log.log(level, "job %s ended: %s %s", self.core.assignment.job.id, result.status.name, result.error)
        self._report(result)

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A bug in the job machinery itself: stop everything, report FAILED."""
        self.core.leave_reason = rtc.DisconnectReason.AGENT_ERROR
        await self.table.shutdown()
        self._conclude(JobResult(JobStatus.FAILED, _describe(exception_value), "job supervisor crashed"))

    async def on_stop(self) -> None:
        """Stopped from outside (runtime shutdown): leave, report SUCCESS if nothing was reported."""
        await self.table.shutdown()
        self._conclude(JobResult(JobStatus.SUCCESS, reason="stopped"))


# ----------------------------------------------------------------------------------------------- handle


class JobHandle:
    """A running job, for whoever started it (the CLI, the worker protocol, tests). Thread-safe.

    Attributes:
        assignment: the job.
        ref: the JobActor (the root of the job's tree: ``greenroom.testing`` targets start here).
        done: completes with the final :class:`JobResult`.
    """

    def __init__(
        self, core: JobCore, ref: pykka.ActorRef[Any], done: concurrent.futures.Future[JobResult]
    ) -> None:
        self._core = core
        self.assignment = core.assignment
        self.ref = ref
        self.done = done

    def __repr__(self) -> str:
        return f"<JobHandle {self.assignment.job.id} {self._core.result or 'running'}>"

    @property
    def room(self) -> rtc.Room | None:
        """The job's room while it has one."""
        return self._core.room

    @property
    def logic_loop(self) -> LogicLoop | None:
        """The job's current logic loop (diagnostics and tests: its ``passes`` count its wake-ups)."""
        return self._core.logic_loop

    @property
    def left_with(self) -> rtc.DisconnectReason | None:
        """The reason the agent's participant last left the room with (``AGENT_ERROR`` when the job
        gave up; ``None`` while it never left)."""
        return self._core.left_with

    @property
    def result(self) -> JobResult | None:
        """How the job ended (``None`` while it runs)."""
        return self._core.result

    def tell(self, message: Any) -> None:
        """Send ``message`` to the agent's mailbox (any thread; kept while the logic restarts, replayed
        after).

        Raises:
            JobEndedError: the job has ended (nothing would ever handle it).
            AgentBusyError: the agent's queue, or while it restarts its restart stash, is full.
        """
        if self._core.result is not None:
            raise JobEndedError(f"job {self.assignment.job.id} has ended ({self._core.result.status.name})")
        if not self._core.stash.put(Told(message)):
            raise AgentBusyError(f"job {self.assignment.job.id}: the agent's mailbox is full; not sent")

    def stash_stats(self) -> StashStats:
        """The restart stash's counters (what was kept, replayed, dropped across the logic's restarts)."""
        return self._core.stash.stats()

    def shutdown(self, reason: str = "terminated") -> None:
        """End the job (the worker protocol's ``termination``): callbacks, leave, SUCCESS."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.tell(EndJob(JobStatus.SUCCESS, reason))

    async def restart_events(self) -> list[RestartEvent]:
        """The restarts the job's supervision made so far, oldest first (any loop; while the job runs).

        Raises:
            pykka.ActorDeadError: the job has ended.
        """

        async def on_runtime() -> list[RestartEvent]:
            tree = await ask(self.ref, GetTree(), timeout=5.0)
            return list(tree.events)

        return await asyncio.wrap_future(runtime.submit(on_runtime()))

    async def wait(self, timeout: float | None = None) -> JobResult:
        """Wait (on any loop) until the job ends."""
        return await asyncio.wait_for(asyncio.wrap_future(self.done), timeout)


def start_job(
    assignment: JobAssignment,
    entrypoint: Entrypoint,
    *,
    options: SupervisionOptions | None = None,
    proc: JobProcess | None = None,
    on_status: StatusCallback | None = None,
) -> JobHandle:
    """Start a job's supervised tree (any thread): the connection, then the agent's logic.

    This is the entry point the worker side of LiveKit's agent protocol uses for an ``assignment``
    (job + url + token); ``cli.run_app`` uses it for a direct run.

    Args:
        assignment: the job, the server URL and the agent's join token.
        entrypoint: ``async def entrypoint(ctx: JobContext)``.
        options: supervision options (defaults: :class:`SupervisionOptions`).
        proc: the process object shared by the worker's jobs (``ctx.proc``).
        on_status: called on the runtime loop with RUNNING, then SUCCESS or FAILED (with the error).

    Returns:
        The job's handle.
    """
    done: concurrent.futures.Future[JobResult] = concurrent.futures.Future()

    def status(result: JobResult) -> None:
        if on_status is not None:
            on_status(result)
        if result.status is not JobStatus.RUNNING and not done.done():
            done.set_result(result)

    core = JobCore(assignment, entrypoint, options or SupervisionOptions(), proc or JobProcess(), status)
    runtime.get_loop()
    ref = JobActor.start(core)
    return JobHandle(core, ref, done)


async def stop_job(handle: JobHandle) -> None:
    """Stop a job's tree from the runtime loop (used when the process shuts down)."""
    await stop_actor(handle.ref, timeout=10.0)
