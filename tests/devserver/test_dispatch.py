"""AgentDispatchService through ``livekit-api``: storage, auth, and the calls into the agent dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from livekit import api
from livekit.protocol import agent_dispatch as dispatch_pb

from greenroom.codecs.models import RoomInfo
from greenroom.devserver.agentservice import AgentService
from greenroom.devserver.dispatch import Dispatch, JobRecord
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.test_twirp import _error, _post, _token

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # dev secret


@dataclass
class Recorder:
    """A stand-in for the /agent endpoint: records what the server asks of it."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (what, room, dispatch id or "")

    def launch(self, room: RoomInfo, dispatch: Dispatch) -> None:
        self.calls.append(("launch", room.name, dispatch.agent_name))

    def terminate(self, room: RoomInfo, dispatch: Dispatch) -> None:
        self.calls.append(("terminate", room.name, dispatch.agent_name))

    def room_closed(self, room: RoomInfo) -> None:
        self.calls.append(("room_closed", room.name, ""))


def test_dispatches_are_created_listed_and_deleted_through_the_dispatcher() -> None:
    async def scenario(server: DevServer) -> None:
        assert isinstance(server.agent_dispatcher, AgentService)  # the /agent endpoint
        recorder = server.agent_dispatcher = Recorder()
        async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lk:
            await lk.room.create_room(
                api.CreateRoomRequest(
                    name="r", agents=[api.RoomAgentDispatch(agent_name="helper", metadata="x")]
                )
            )
            await lk.room.create_room(api.CreateRoomRequest(name="plain"))
            [initial] = await lk.agent_dispatch.list_dispatch("r")
            assert (initial.agent_name, initial.metadata, initial.room) == ("helper", "x", "r")
            [automatic] = await lk.agent_dispatch.list_dispatch("plain")
            assert automatic.agent_name == ""  # LiveKit's automatic dispatch when no agent is configured

            created = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name="second", room="r", metadata="job", attributes={"k": "v"}
                )
            )
            assert created.id.startswith("AD_")
            assert (created.agent_name, created.room, created.metadata) == ("second", "r", "job")
            assert dict(created.attributes) == {"k": "v"}
            assert created.state.created_at > 0
            assert sorted(d.agent_name for d in await lk.agent_dispatch.list_dispatch("r")) == [
                "helper",
                "second",
            ]
            got = await lk.agent_dispatch.get_dispatch(created.id, "r")
            assert got is not None
            assert got.id == created.id

            # The /agent endpoint reports a job; ListDispatch shows it in the dispatch's state.
            assert server.record_job(
                "r", created.id, JobRecord("AJ_1", participant_identity="agent-1", status=1)
            )
            [with_job] = [d for d in await lk.agent_dispatch.list_dispatch("r") if d.id == created.id]
            assert [(j.id, j.state.participant_identity, j.dispatch_id) for j in with_job.state.jobs] == [
                ("AJ_1", "agent-1", created.id)
            ]
            assert not server.record_job("r", "AD_gone", JobRecord("AJ_2"))

            deleted = await lk.agent_dispatch.delete_dispatch(created.id, "r")
            assert deleted.state.deleted_at > 0
            assert [d.agent_name for d in await lk.agent_dispatch.list_dispatch("r")] == ["helper"]
            with pytest.raises(api.TwirpError) as info:
                await lk.agent_dispatch.delete_dispatch(created.id, "r")
            assert (info.value.code, info.value.message) == ("not_found", "dispatch ID not found")
            with pytest.raises(api.TwirpError) as info:
                await lk.agent_dispatch.list_dispatch("nowhere")
            assert info.value.code == "not_found"

            # CreateDispatch for a room that does not exist creates it (livekit-server's auto-create).
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="late", room="new")
            )
            assert sorted(d.agent_name for d in await lk.agent_dispatch.list_dispatch("new")) == ["", "late"]

            await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
        assert recorder.calls == [
            ("launch", "r", "helper"),
            ("launch", "plain", ""),
            ("launch", "r", "second"),
            ("terminate", "r", "second"),
            ("launch", "new", ""),
            ("launch", "new", "late"),
            ("room_closed", "r", ""),
        ]

    run_with_server(scenario)


def test_dispatch_calls_need_room_admin_for_that_room() -> None:
    async def scenario(server: DevServer) -> None:
        server.open_room("r")
        denied = _error(401, "unauthenticated", "permissions denied")
        path = "/twirp/livekit.AgentDispatchService/"
        calls = [
            ("CreateDispatch", dispatch_pb.CreateAgentDispatchRequest(room="r", agent_name="a")),
            ("DeleteDispatch", dispatch_pb.DeleteAgentDispatchRequest(room="r", dispatch_id="AD_x")),
            ("ListDispatch", dispatch_pb.ListAgentDispatchRequest(room="r")),
        ]
        for method, request in calls:
            denied(await _post(server, "", request, path=path + method))
            denied(
                await _post(
                    server, "", request, path=path + method, token=_token(room_admin=True, room="other")
                )
            )
            denied(
                await _post(
                    server, "", request, path=path + method, token=_token(room_create=True, room_list=True)
                )
            )
        admin = _token(room_admin=True, room="r")
        big = dispatch_pb.CreateAgentDispatchRequest(room="r", metadata="m" * (512 * 1024 + 1))
        _error(400, "invalid_argument", "metadata size exceeds limits")(
            await _post(server, "", big, path=path + "CreateDispatch", token=admin)
        )
        assert len(server.rooms["r"].dispatches) == 1  # only the automatic one

    run_with_server(scenario)
