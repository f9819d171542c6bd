"""Per-job supervision, through ``greenroom.testing``: a crash of the agent's code restarts only that code,
in the same participant; past the intensity the agent leaves (AGENT_ERROR) and the job is FAILED."""

from __future__ import annotations

import asyncio

from greenroom import rtc, testing
from greenroom.actors.supervision import Intensity
from greenroom.agents import JobContext, JobResult, JobStatus, SupervisionOptions
from greenroom.devserver.server import DevServer
from tests.agents.support import AGENT, Inbox, agent_in, ask_agent, echo_on, finished, start
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until


class BuggyCrashError(Exception):
    """The bug the test agent has."""


def test_an_entrypoint_that_raises_is_restarted_in_the_same_participant() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        rec = Recorder(
            observer, "participant_connected", "participant_disconnected", "participant_metadata_changed"
        )
        inbox = Inbox(observer, "answer")
        statuses: list[JobResult] = []

        async def entrypoint(ctx: JobContext) -> None:
            await ctx.connect()
            count = (ctx.restored or 0) + 1
            ctx.checkpoint(count)
            echo_on(ctx, lambda text: f"{text} from run {count} after {ctx.restarts} restarts")
            await ctx.agent.set_metadata(f"run {count}")
            if ctx.restarts == 0:
                await ctx.wait_for_participant(identity="observer")
                # the first run dies in its entrypoint once the observer asks it to
                crash = asyncio.Event()
                ctx.room.on("data_received", lambda p: crash.set() if p.topic == "die" else None)
                await crash.wait()
                raise BuggyCrashError("the entrypoint raised")

        handle = start(server, entrypoint, statuses=statuses)
        agent = await agent_in(observer)
        assert await ask_agent(observer, inbox, "hello") == "hello from run 1 after 0 restarts"
        before = await testing.actor(handle, testing.agent_logic())

        await observer.local_participant.publish_data(b"", topic="die", destination_identities=[AGENT])
        await testing.serving(handle, testing.agent_logic(), since=before)
        assert await ask_agent(observer, inbox, "again") == "again from run 2 after 1 restarts"
        # the signal path's barrier: the second run's metadata update arrives after anything the server
        # sent about the agent before it (a leave, a join)
        await wait_until(lambda: agent.metadata == "run 2", what="the second run's metadata")
        assert rec.named("participant_disconnected") == []
        assert [a[0].identity for a in rec.named("participant_connected")] == [AGENT]
        assert observer.remote_participants[AGENT].sid == agent.sid

        history = await testing.restart_history(handle)
        assert [(r.name, r.delay) for r in history] == [("logic", 0.0)]
        assert "BuggyCrashError" in history[0].reason
        assert statuses == [JobResult(JobStatus.RUNNING)]

        handle.shutdown("test over")
        assert await finished(handle) == JobResult(JobStatus.SUCCESS, reason="test over")
        await wait_until(lambda: rec.named("participant_disconnected"), what="the agent left at the end")
        await observer.disconnect()

    run_with_server(scenario)


def test_past_the_intensity_the_agent_leaves_and_the_job_fails_with_the_error() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer")
        rec = Recorder(observer, "participant_connected", "participant_disconnected")
        runs: list[int] = []

        async def entrypoint(ctx: JobContext) -> None:
            await ctx.connect()
            runs.append(ctx.restarts)
            raise ValueError(f"bad configuration (run {ctx.restarts + 1})")

        options = SupervisionOptions(intensity=Intensity(max_restarts=2, period=30.0))
        handle = start(server, entrypoint, options=options)

        result = await finished(handle)
        assert result.status is JobStatus.FAILED
        assert "exceeded 2 restarts" in result.error
        assert "ValueError: bad configuration (run 3)" in result.error
        assert runs == [0, 1, 2]
        assert handle.left_with is rtc.DisconnectReason.AGENT_ERROR  # the typed leave
        await wait_until(lambda: rec.named("participant_disconnected"), what="the agent's leave")
        # one participant all along: the restarts never left the room
        assert [a[0].identity for a in rec.named("participant_connected")] == [AGENT]
        assert len(rec.named("participant_disconnected")) == 1
        await observer.disconnect()

    run_with_server(scenario)


def test_a_connection_that_is_refused_fails_the_job_with_the_reason() -> None:
    async def scenario(server: DevServer) -> None:
        async def entrypoint(ctx: JobContext) -> None:
            await ctx.connect()

        options = SupervisionOptions(intensity=Intensity(max_restarts=1, period=30.0))
        handle = start(server, entrypoint, options=options, room="r-refused", token="not-a-token")
        result = await finished(handle)
        assert result.status is JobStatus.FAILED
        assert "ConnectError" in result.error

    run_with_server(scenario)
