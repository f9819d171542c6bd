"""greenroom's Agent API: supervised agents that keep their place in the room when their logic fails.

The livekit-agents job shape, with only the import changed::

    from greenroom.agents import AutoSubscribe, JobContext, WorkerOptions, cli

    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
        ...

    if __name__ == "__main__":
        cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))

Or the actor shape, an :class:`Agent` whose handlers get the room's events as mailbox messages
(:mod:`greenroom.agents.agent`). Each job is a supervised actor tree (:mod:`greenroom.agents.tree`): a
crash of the agent's code restarts only that code — the participant stays in the room.
"""

from greenroom.agents import cli
from greenroom.agents.agent import Agent
from greenroom.agents.context import AutoSubscribe, JobContext, JobProcess
from greenroom.agents.job import (
    AgentBusyError,
    AgentHungError,
    CallbackError,
    Job,
    JobAssignment,
    JobEndedError,
    JobError,
    JobResult,
    JobRoomInfo,
    JobStatus,
    LoopBlockedError,
    RoomEvent,
    StashStats,
    SupervisionOptions,
    Told,
)
from greenroom.agents.tree import JobHandle, start_job
from greenroom.agents.worker import WorkerOptions, agent_token, run_job, run_worker

__all__ = [
    "Agent",
    "AgentBusyError",
    "AgentHungError",
    "AutoSubscribe",
    "CallbackError",
    "Job",
    "JobAssignment",
    "JobContext",
    "JobEndedError",
    "JobError",
    "JobHandle",
    "JobProcess",
    "JobResult",
    "JobRoomInfo",
    "JobStatus",
    "LoopBlockedError",
    "RoomEvent",
    "StashStats",
    "SupervisionOptions",
    "Told",
    "WorkerOptions",
    "agent_token",
    "cli",
    "run_job",
    "run_worker",
    "start_job",
]
