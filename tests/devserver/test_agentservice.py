"""The ``/agent`` endpoint of ``greenroom serve``, driven by a raw protocol client (the official worker and
greenroom's own are in ``tests/interop/test_agents_interop.py`` and ``tests/agents/test_protocol_worker.py``):
authorization, registration, load tracking, dispatch on room creation, availability with its timeout,
assignment with a minted token, job status, termination, ``migrate_job``, and bounded, typed refusals that
leave the other workers served."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from livekit import api
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from greenroom import rtc
from greenroom.codecs import agent_protocol as ap
from greenroom.codecs.models import ParticipantPermission
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token, verify_token
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # dev secret


def agent_url(server: DevServer) -> str:
    return f"{server.url}/agent"


def worker_token(server: DevServer, identity: str = "", **grants: Any) -> str:
    token = api.AccessToken("devkey", "secret").with_grants(api.VideoGrants(**grants))
    return token.with_identity(identity).to_jwt()


class RawWorker:
    """A protocol-level worker: sends what the test says, collects what the server sends."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.worker_id = ""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        server: DevServer,
        agent_name: str = "",
        *,
        status: ap.WorkerStatus | None = ap.WorkerStatus.AVAILABLE,
    ) -> AsyncIterator[RawWorker]:
        headers = {"Authorization": f"Bearer {worker_token(server, agent=True)}"}
        async with websockets.connect(agent_url(server), additional_headers=headers, proxy=None) as ws:
            worker = cls(ws)
            perms = ParticipantPermission(can_publish=False, agent=True)
            await worker.send(ap.Register(agent_name, "raw-1", permissions=perms))
            registered = await worker.next()
            assert isinstance(registered, ap.Registered)
            assert registered.worker_id.startswith("AW_")
            worker.worker_id = registered.worker_id
            if status is not None:
                await worker.send(ap.UpdateWorker(status))
            yield worker

    async def send(self, message: Any) -> None:
        await self.ws.send(ap.encode_worker_message(message))

    async def next(self, timeout: float = 5.0) -> Any:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes)
        return ap.decode_server_message(data)

    async def ping(self, stamp: int) -> list[Any]:
        """A barrier: everything the server sent before its answer to ``ping(stamp)``."""
        await self.send(ap.WorkerPing(stamp))
        before: list[Any] = []
        while not isinstance(message := await self.next(), ap.Pong) or message.last_timestamp != stamp:
            before.append(message)
        return before


async def join(
    server: DevServer,
    identity: str,
    room: str,
    *,
    room_config: str | None = None,
    kind: str = "",
    attributes: dict[str, str] | None = None,
) -> rtc.Room:
    """Join ``room`` (a token with ``roomConfig`` when given: the agents to dispatch)."""
    claims = Claims(
        identity=identity,
        kind=kind,
        attributes=tuple((attributes or {}).items()),
        room_config=room_config,
        video=VideoGrants(room_join=True, room=room),
    )
    client = rtc.Room()
    await client.connect(server.url, mint_token("devkey", "secret", claims))
    return client


async def jobs_of(server: DevServer, room: str) -> list[tuple[str, int, str]]:
    async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lk:
        return [
            (j.id, j.state.status, j.state.error)
            for d in await lk.agent_dispatch.list_dispatch(room)
            for j in d.state.jobs
        ]


def test_the_endpoint_needs_the_agent_grant_and_an_upgrade() -> None:
    async def scenario(server: DevServer) -> None:
        for headers in (
            {},
            {"Authorization": f"Bearer {worker_token(server, 'u', room_join=True, room='r')}"},
        ):
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(agent_url(server), additional_headers=headers, proxy=None)
            assert refused.value.response.status_code == 401
        async with aiohttp.ClientSession() as session:  # a plain HTTP GET: 404
            headers = {"Authorization": f"Bearer {worker_token(server, agent=True)}"}
            async with session.get(f"{server.http_url}/agent", headers=headers) as response:
                assert response.status == 404
        assert server.agents.stats().refused == 2
        async with RawWorker.open(server) as worker:  # and the endpoint still serves
            assert worker.worker_id

    run_with_server(scenario)


def test_a_room_gets_its_job_with_a_minted_token_and_the_status_is_recorded() -> None:
    async def scenario(server: DevServer) -> None:
        async with RawWorker.open(server, "echo") as worker:
            await worker.ping(1)  # the server has its status: it is dispatchable
            user = await join(
                server, "user", "r1", room_config='{"agents":[{"agentName":"echo","metadata":"m"}]}'
            )
            request = await worker.next()
            assert isinstance(request, ap.AvailabilityRequest)
            job = request.job
            assert (job.room_name, job.agent_name, job.metadata, job.type) == (
                "r1",
                "echo",
                "m",
                ap.JobType.ROOM,
            )
            assert job.id.startswith("AJ_")
            assert job.dispatch_id.startswith("AD_")
            assert job.room_sid.startswith("RM_")
            await worker.send(
                ap.Availability(job.id, True, participant_identity="helper", participant_name="Helper")
            )
            assignment = await worker.next()
            assert isinstance(assignment, ap.Assignment)
            assert assignment.job.id == job.id
            assert assignment.url == ""  # the worker's own URL
            claims = verify_token(assignment.token, server.config.keys)
            assert (claims.identity, claims.name, claims.kind) == ("helper", "Helper", "agent")
            assert claims.video is not None
            assert (claims.video.room, claims.video.room_join, claims.video.agent) == ("r1", True, True)
            assert claims.video.can_publish is False  # the permissions it registered with
            assert dict(claims.attributes) == {ap.AGENT_NAME_ATTRIBUTE: "echo"}

            await worker.send(ap.UpdateJob(job.id, ap.JobStatusCode.RUNNING))
            await worker.ping(2)
            assert await jobs_of(server, "r1") == [(job.id, 1, "")]
            await worker.send(ap.UpdateJob(job.id, ap.JobStatusCode.FAILED, "ValueError: boom"))
            await worker.ping(3)
            assert await jobs_of(server, "r1") == [(job.id, 3, "ValueError: boom")]
            assert server.agents.stats().jobs == 0  # an ended job is forgotten
            await user.disconnect()

    run_with_server(scenario)


def test_a_full_worker_is_never_offered_a_job_and_a_parked_dispatch_waits_for_a_free_one() -> None:
    async def scenario(server: DevServer) -> None:
        async with (
            RawWorker.open(server, status=ap.WorkerStatus.FULL) as full,
            RawWorker.open(server) as free,
        ):
            await full.ping(1)
            await free.ping(1)
            user = await join(server, "user", "r1")
            request = await free.next()
            assert isinstance(request, ap.AvailabilityRequest)
            await free.send(ap.UpdateWorker(ap.WorkerStatus.FULL, load=1.0))  # it has just filled up
            await free.send(ap.Availability(request.job.id, False))  # refuses: the only other one is FULL
            await wait_until(lambda: server.agents.stats().parked == 1, what="the dispatch parked")
            assert await full.ping(2) == []  # never offered to the FULL worker
            await full.send(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE, load=0.5))
            again = await full.next()
            assert isinstance(again, ap.AvailabilityRequest)
            assert again.job.room_name == "r1"
            await user.disconnect()

    run_with_server(scenario)


def test_a_worker_that_does_not_answer_in_time_is_passed_over() -> None:
    async def scenario(server: DevServer) -> None:
        server.agents.limits = dataclasses.replace(server.agents.limits, availability_timeout=0.3)
        async with RawWorker.open(server) as silent:
            await silent.ping(1)
            async with RawWorker.open(server) as other:
                await other.ping(1)
                await other.send(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE, load=0.9))  # silent goes first
                await other.ping(2)
                user = await join(server, "user", "r1")
                first = await silent.next()
                assert isinstance(first, ap.AvailabilityRequest)
                second = await other.next()  # once the 0.3 s passed without an answer
                assert isinstance(second, ap.AvailabilityRequest)
                assert second.job.id == first.job.id
                await user.disconnect()

    run_with_server(scenario)


def test_termination_when_the_room_closes_and_when_the_worker_is_back() -> None:
    async def scenario(server: DevServer) -> None:
        async with RawWorker.open(server) as worker:
            await worker.ping(1)
            user = await join(server, "user", "r1")
            request = await worker.next()
            await worker.send(ap.Availability(request.job.id, True))
            assert isinstance(await worker.next(), ap.Assignment)
            await worker.send(ap.UpdateJob(request.job.id, ap.JobStatusCode.RUNNING))
            await worker.ping(2)
            assert server.close_room("r1")
            assert await worker.next() == ap.Termination(request.job.id)
            await user.disconnect()

    run_with_server(scenario)


def test_a_migrated_job_serves_the_rooms_new_dispatch_no_second_agent() -> None:
    """What a server restart looks like from here: the worker registers again and reports the jobs it
    still runs before the room is created again — the dispatch adopts the job instead of a second one."""

    async def scenario(server: DevServer) -> None:
        async with RawWorker.open(server, status=None) as worker:
            old = ap.JobDescription("AJ_old", "r1", agent_name="", dispatch_id="AD_gone")
            await worker.send(ap.MigrateJob((old.id,), (old,)))
            await worker.send(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE))
            await worker.ping(1)
            user = await join(server, "user", "r1")
            other = await join(server, "user", "r2")  # a room without an agent: this one is offered
            request = await worker.next()
            assert isinstance(request, ap.AvailabilityRequest)
            assert request.job.room_name == "r2"  # nothing for r1 came before it
            assert await jobs_of(server, "r1") == [("AJ_old", 1, "")]
            assert server.agents.stats().adopted == 1
            assert server.close_room("r1")
            assert await worker.next() == ap.Termination("AJ_old")
            await user.disconnect()
            await other.disconnect()

    run_with_server(scenario)


def test_an_agent_already_in_the_room_serves_its_dispatch() -> None:
    async def scenario(server: DevServer) -> None:
        async with RawWorker.open(server, "echo") as worker:
            await worker.ping(1)
            config = '{"agents":[{"agentName":"echo"}]}'
            # the agent rejoins first after a restart (same token: kind agent, lk.agent.name): it creates it
            agent = await join(
                server,
                "agent-AJ_x",
                "r1",
                kind="agent",
                attributes={ap.AGENT_NAME_ATTRIBUTE: "echo"},
                room_config=config,
            )
            user = await join(server, "user", "r1")
            await join(server, "user", "r2", room_config=config)
            request = await worker.next()
            assert isinstance(request, ap.AvailabilityRequest)
            assert request.job.room_name == "r2"
            assert server.agents.stats().adopted == 1
            # its worker comes back naming the job by id only (as livekit-agents does): the default
            # identity agent-<job id> ties it to the adopted agent, so the room's closing terminates it
            await worker.send(ap.MigrateJob(("AJ_x",)))
            await worker.ping(2)
            assert await jobs_of(server, "r1") == [("AJ_x", 1, "")]
            assert server.close_room("r1")
            assert await worker.next() == ap.Termination("AJ_x")
            await agent.disconnect()
            await user.disconnect()

    run_with_server(scenario)


def test_bad_input_closes_only_that_worker() -> None:
    async def scenario(server: DevServer) -> None:
        server.agents.limits = dataclasses.replace(server.agents.limits, register_timeout=0.3)
        headers = {"Authorization": f"Bearer {worker_token(server, agent=True)}"}
        async with RawWorker.open(server) as good:
            await good.ping(1)
            cases: list[tuple[Any, int]] = [
                (b"\xff\xff", 1008),  # not a WorkerMessage
                (ap.encode_worker_message(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE)), 1008),  # not register
                (None, 1008),  # silence past the register deadline
                (b"\x00" * (ap.MAX_FRAME + 16), 1009),  # too large
            ]
            for frame, code in cases:
                async with websockets.connect(
                    agent_url(server), additional_headers=headers, proxy=None, max_size=None
                ) as ws:
                    if frame is not None:
                        await ws.send(frame)
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 5)
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == code
            async with RawWorker.open(server) as twice:
                await twice.send(ap.Register())
                with pytest.raises(ConnectionClosed):
                    await twice.next()
            assert server.agents.stats().closed_bad_input == 5
            user = await join(server, "user", "r1")  # the good worker is served all along
            assert isinstance(await good.next(), ap.AvailabilityRequest)
            await user.disconnect()

    run_with_server(scenario)


def test_a_job_named_by_id_only_makes_the_dispatch_wait_for_its_agent_to_rejoin() -> None:
    """livekit-agents' returning worker names its jobs by id only, and its job's agent may rejoin after
    someone else re-created the room: the room's dispatch waits for it (bounded) instead of dispatching
    a second agent."""

    async def scenario(server: DevServer) -> None:
        async with RawWorker.open(server, status=None) as worker:
            await worker.send(ap.MigrateJob(("AJ_o",)))
            await worker.send(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE))
            await worker.ping(1)
            user = await join(server, "user", "r1")  # the room comes back before its agent
            assert await worker.ping(2) == []  # nothing offered meanwhile
            agent = await join(
                server, "agent-AJ_o", "r1", kind="agent", attributes={ap.AGENT_NAME_ATTRIBUTE: ""}
            )
            await wait_until(lambda: server.agents.stats().adopted == 1, what="the dispatch adopted it")
            assert await jobs_of(server, "r1") == [("AJ_o", 1, "")]
            other = await join(server, "user", "r2")
            request = await worker.next()
            assert isinstance(request, ap.AvailabilityRequest)
            assert request.job.room_name == "r2"  # the first offer: none for r1
            for room in (user, agent, other):
                await room.disconnect()

    run_with_server(scenario)
