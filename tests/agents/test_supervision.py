"""Per-job supervision, through ``greenroom.testing``: a crash of the agent's code restarts only that code,
in the same participant; past the intensity the agent leaves (AGENT_ERROR) and the job is FAILED."""

from __future__ import annotations

import asyncio
import socket

from greenroom import rtc, testing
from greenroom.actors.restarts import Backoff
from greenroom.actors.supervision import Intensity
from greenroom.agents import (
    Job,
    JobAssignment,
    JobContext,
    JobResult,
    JobRoomInfo,
    JobStatus,
    SupervisionOptions,
    agent_token,
    start_job,
)
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.agents.support import AGENT, Inbox, agent_in, ask_agent, echo_on, finished, start
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import recorded_logs, wait_until


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
        with recorded_logs("greenroom.agents.tree") as logs:
            handle = start(server, entrypoint, options=options, room="r-refused", token="not-a-token")
            result = await finished(handle)
        assert result.status is JobStatus.FAILED
        assert "ConnectError" in result.error
        assert "(401)" in result.error
        assert "join tried 1 time(s)" in result.error  # a refused token is not retried
        assert result.reason == "could not join the room"
        assert not [r for r in logs.records if "retrying" in r.getMessage()]

    run_with_server(scenario)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_first_join_is_retried_until_the_server_is_there() -> None:
    """The server is not listening when the job starts: the join is retried (back-off with jitter), the
    agent joins once the server is up, and the logic never restarted for it."""

    async def main() -> None:
        port = _free_port()
        config = ServerConfig(port=port)
        url = f"ws://127.0.0.1:{port}"
        token = agent_token(config.api_key, config.keys[config.api_key], "r1", AGENT)
        options = SupervisionOptions(connect_backoff=Backoff(min_delay=0.2, max_delay=0.4, random_factor=0.5))
        joined = asyncio.Event()

        async def entrypoint(ctx: JobContext) -> None:
            await ctx.connect()
            joined.set()
            echo_on(ctx, lambda text: f"{text} after {ctx.restarts} restarts")

        with recorded_logs("greenroom.agents.tree") as logs:
            handle = start_job(
                JobAssignment(Job("AJ_retry", JobRoomInfo("r1")), url, token), entrypoint, options=options
            )
            await wait_until(
                lambda: [r for r in logs.records if "join attempt 1 of 4 failed" in r.getMessage()],
                what="the first failed join",
            )
        async with DevServer(config) as server:
            observer = await connect(server, "observer")
            await agent_in(observer)
            inbox = Inbox(observer, "answer")
            assert await ask_agent(observer, inbox, "hi") == "hi after 0 restarts"
            assert await testing.restart_history(handle) == []
            assert handle.result is None
            handle.shutdown()
            assert (await finished(handle)).status is JobStatus.SUCCESS
            await observer.disconnect()

    asyncio.run(main())


def test_a_join_that_keeps_failing_ends_the_job_failed_after_its_tries() -> None:
    async def main() -> None:
        url = f"ws://127.0.0.1:{_free_port()}"  # nobody listens
        token = agent_token("devkey", "secret", "r1", AGENT)
        options = SupervisionOptions(
            connect_attempts=3, connect_backoff=Backoff(min_delay=0.05, max_delay=0.1, random_factor=0.5)
        )
        calls: list[int] = []

        async def entrypoint(ctx: JobContext) -> None:
            calls.append(ctx.restarts)
            await ctx.connect()

        with recorded_logs("greenroom.agents.tree") as logs:
            handle = start_job(
                JobAssignment(Job("AJ_gone", JobRoomInfo("r1")), url, token), entrypoint, options=options
            )
            result = await finished(handle, timeout=60)
        assert result.status is JobStatus.FAILED
        assert "ConnectError" in result.error
        assert "join tried 3 time(s)" in result.error
        retries = [r.getMessage() for r in logs.records if "retrying" in r.getMessage()]
        assert [m.split(" failed")[0].split(": ")[1] for m in retries] == [
            "join attempt 1 of 3",
            "join attempt 2 of 3",
        ]
        assert calls == [0]  # the logic's restart intensity was not spent on the join

    asyncio.run(main())
