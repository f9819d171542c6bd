"""``WorkerOptions`` and the direct run of one job (what ``cli.run_app`` does today).

``WorkerOptions`` keeps livekit-agents' field names for what applies to greenroom (``entrypoint_fnc``,
``prewarm_fnc``, ``agent_name``, ``ws_url``, ``api_key``, ``api_secret``) and adds greenroom's
supervision options. Its other knobs (process pools, load thresholds) have no meaning here: every job runs
in this process, as its own supervised actor tree.

:func:`run_job` joins one named room directly (the worker protocol's registration and dispatch, which let
a server choose the room, come with it). The command line and the protocol's ``assignment`` converge on
the same call: a :class:`~greenroom.agents.job.JobAssignment` → :func:`~greenroom.agents.tree.start_job`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from greenroom.agents.context import JobProcess
from greenroom.agents.job import Entrypoint, Job, JobAssignment, JobResult, JobRoomInfo, SupervisionOptions
from greenroom.agents.tree import JobHandle, start_job
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token

__all__ = ["WorkerOptions", "agent_token", "run_job"]

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
    """

    entrypoint_fnc: Entrypoint
    prewarm_fnc: Callable[[JobProcess], None] | None = None
    agent_name: str = ""
    ws_url: str = ""
    api_key: str = ""
    api_secret: str = ""
    supervision: SupervisionOptions = field(default_factory=SupervisionOptions)


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
