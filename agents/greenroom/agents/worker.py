"""``WorkerOptions``, and the two ways a worker program runs: as a worker of LiveKit's agent protocol
(:func:`run_worker`: register with a server, take the jobs it dispatches) or one job in a named room
(:func:`run_job`, ``--room``).

``WorkerOptions`` keeps livekit-agents' field names for what applies to greenroom (``entrypoint_fnc``,
``prewarm_fnc``, ``agent_name``, ``ws_url``, ``api_key``, ``api_secret``, ``drain_timeout``) and adds
greenroom's (``max_jobs``: the exact capacity the load is reported from; ``supervision``). Its other
knobs (process pools, CPU load thresholds) have no meaning here: every job runs in this process, as its
own supervised actor tree. Both ways converge on the same call: a
:class:`~greenroom.agents.job.JobAssignment` → :func:`~greenroom.agents.tree.start_job`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from greenroom.actors.core import exit_future, stop_actor
from greenroom.agents.context import JobProcess
from greenroom.agents.job import Entrypoint, Job, JobAssignment, JobResult, JobRoomInfo, SupervisionOptions
from greenroom.agents.protocol_worker import Drain, TerminateAll, WorkerActor, WorkerSettings
from greenroom.agents.tree import JobHandle, start_job
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.runtime import loop as runtime

__all__ = ["WorkerOptions", "agent_token", "run_job", "run_worker"]

_log = logging.getLogger("greenroom.agents.worker")


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs its agent (livekit-agents' ``WorkerOptions``, the fields that apply).

    Attributes:
        entrypoint_fnc: ``async def entrypoint(ctx: JobContext)``, run for every job.
        prewarm_fnc: ``def prewarm(proc: JobProcess)``, run once per process before the first job (fill
            ``proc.userdata``).
        agent_name: the name jobs are dispatched to (``""``: the default dispatch).
        ws_url: the server URL (default: ``LIVEKIT_URL``, else the dev server's ``ws://127.0.0.1:7880``).
        api_key: the API key (default: ``LIVEKIT_API_KEY``, else ``devkey`` in ``dev``).
        api_secret: the API secret (default: ``LIVEKIT_API_SECRET``, else ``secret`` in ``dev``).
        supervision: how each job's logic is watched and restarted.
        max_jobs: the jobs this process runs at once; the load reported to the server is the jobs
            admitted (running or accepted) over this, and the worker is ``FULL`` at 1.
        drain_timeout: seconds a drain (SIGTERM) leaves running jobs to finish before ending them.
    """

    entrypoint_fnc: Entrypoint
    prewarm_fnc: Callable[[JobProcess], None] | None = None
    agent_name: str = ""
    ws_url: str = ""
    api_key: str = ""
    api_secret: str = ""
    supervision: SupervisionOptions = field(default_factory=SupervisionOptions)
    max_jobs: int = 100
    drain_timeout: float = 1800.0


def agent_token(
    key: str, secret: str, room: str, identity: str, *, name: str = "", metadata: str = ""
) -> str:
    """A join token for an agent participant (kind ``agent``), as a server mints one for an assignment."""
    grants = VideoGrants(room_join=True, room=room, agent=True, can_update_own_metadata=True)
    return mint_token(
        key, secret, Claims(identity=identity, name=name, metadata=metadata, kind="agent", video=grants)
    )


async def run_job(
    opts: WorkerOptions,
    *,
    url: str,
    key: str,
    secret: str,
    room: str,
    identity: str = "",
    proc: JobProcess | None = None,
    handle_signals: bool = False,
    started: Callable[[JobHandle], None] | None = None,
) -> JobResult:
    """Run one job of ``opts`` in ``room`` until it ends (``ctx.shutdown()``, the room closing, a signal).

    Args:
        opts: the worker's options.
        url, key, secret: the server and its credentials.
        room: the room to join.
        identity: the agent's identity (default ``agent-<job id>``, as livekit-agents names it).
        proc: the process object (a new one, prewarmed, when omitted).
        handle_signals: end the job on SIGINT/SIGTERM (the command line's case).
        started: called with the job's handle once it started.

    Returns:
        How the job ended.
    """
    if proc is None:
        proc = JobProcess()
        if opts.prewarm_fnc is not None:
            opts.prewarm_fnc(proc)
    job_id = f"AJ_{secrets.token_hex(6)}"
    identity = identity or f"agent-{job_id}"
    job = Job(job_id, JobRoomInfo(room), agent_name=opts.agent_name)
    assignment = JobAssignment(job, url, agent_token(key, secret, room, identity, name=opts.agent_name))
    handle = start_job(assignment, opts.entrypoint_fnc, options=opts.supervision, proc=proc)
    if started is not None:
        started(handle)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, handle.shutdown, f"signal {signal.Signals(signum).name}")
    try:
        return await handle.wait()
    finally:
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)


#: Seconds the jobs ended by a stop have to run their shutdown callbacks and leave.
STOP_GRACE = 20.0


async def run_worker(
    opts: WorkerOptions,
    *,
    url: str,
    key: str,
    secret: str,
    handle_signals: bool = False,
    stop: asyncio.Event | None = None,
    started: Callable[[pykka.ActorRef[Any]], None] | None = None,
) -> int:
    """Run a worker of LiveKit's agent protocol until it is stopped; its exit code.

    The worker registers at ``<url>/agent`` and keeps the link up forever (back-off and jitter); it never
    gives up on its own. With ``handle_signals``: SIGTERM drains (no new jobs; the running ones get
    ``opts.drain_timeout`` seconds to finish, then they are ended), SIGINT ends the jobs now; a second
    signal ends them now too. ``stop`` (set by the caller) drains like SIGTERM.

    Returns:
        0 once stopped; 1 if the worker itself crashed (a bug: its jobs are ended).
    """
    proc = JobProcess()
    if opts.prewarm_fnc is not None:
        opts.prewarm_fnc(proc)
    settings = WorkerSettings(
        url=url,
        api_key=key,
        api_secret=secret,
        entrypoint=opts.entrypoint_fnc,
        agent_name=opts.agent_name,
        max_jobs=opts.max_jobs,
        supervision=opts.supervision,
        proc=proc,
    )
    runtime.get_loop()
    ref = WorkerActor.start(settings)
    if started is not None:
        started(ref)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    now = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set() or signum == signal.SIGINT:
            now.set()
        stop.set()

    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
    crashed = asyncio.wrap_future(runtime.submit(_ended(ref)))
    try:
        waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        first: list[asyncio.Future[Any]] = [waiter, crashed]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if crashed.done():
            _log.error("the agent worker crashed: %s", crashed.result())
            return 1
        await _wind_down(ref, opts.drain_timeout, now)
        return 0
    finally:
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)
        await asyncio.wrap_future(runtime.submit(stop_actor(ref, timeout=5.0)))


async def _ended(ref: pykka.ActorRef[Any]) -> Any:
    return await exit_future(ref)


async def _wind_down(ref: pykka.ActorRef[Any], drain_timeout: float, now: asyncio.Event) -> None:
    """Drain: no new jobs; wait for the running ones (until ``drain_timeout`` or ``now``), then end them."""
    drained: concurrent.futures.Future[None] = concurrent.futures.Future()
    ref.tell(Drain(drained))
    done = asyncio.wrap_future(drained)
    if not now.is_set():
        hurry: asyncio.Future[Any] = asyncio.ensure_future(now.wait())
        waiting: list[asyncio.Future[Any]] = [done, hurry]
        await asyncio.wait(waiting, timeout=drain_timeout, return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
    if not done.done():
        _log.warning("ending the running jobs (%s)", "stop requested" if now.is_set() else "drain timeout")
        ref.tell(TerminateAll("the worker is stopping"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), STOP_GRACE)
