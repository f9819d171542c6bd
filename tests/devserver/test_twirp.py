"""Twirp over raw HTTP: grants, encodings and bad input get Twirp errors, and the server keeps serving."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
from google.protobuf.message import Message
from livekit.protocol import room as pr

from greenroom.codecs.packets import UserPacket
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient
from tests.devserver.test_bad_input import _chatter

ROOM_SERVICE = "/twirp/livekit.RoomService/"


def _token(identity: str = "backend", **video: Any) -> str:
    return mint_token("devkey", "secret", Claims(identity=identity, video=VideoGrants(**video)))


async def _post(
    server: DevServer,
    method: str,
    body: bytes | Message,
    *,
    token: str | None = None,
    content_type: str = "application/protobuf",
    http_method: str = "POST",
    path: str | None = None,
) -> tuple[int, Any, str]:
    """(status, decoded body — JSON dict for errors and JSON answers, bytes for protobuf, content type)."""
    data = io.BytesIO(body.SerializeToString() if isinstance(body, Message) else body)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = server.http_url + (path or ROOM_SERVICE + method)
    async with (
        aiohttp.ClientSession() as session,
        session.request(http_method, url, data=data, headers=headers) as resp,
    ):
        raw = await resp.read()
        kind = resp.headers.get("Content-Type", "")
        decoded: Any = json.loads(raw) if kind.startswith("application/json") else raw
        return resp.status, decoded, kind


def _error(status: int, code: str, msg: str | None = None) -> Any:
    def check(result: tuple[int, Any, str]) -> None:
        got_status, body, kind = result
        assert kind.startswith("application/json"), result
        assert (got_status, body["code"]) == (status, code), result
        if msg is not None:
            assert body["msg"] == msg, result

    return check


def test_grants_are_checked_per_call() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"), publish=False)
        denied = _error(401, "unauthenticated", "permissions denied")
        join_only = _token(room_join=True, room="r")
        admin_elsewhere = _token(room_admin=True, room="other")
        create = _token(room_create=True)
        calls: list[tuple[str, Message, str]] = [
            ("CreateRoom", pr.CreateRoomRequest(name="x"), _token(room_list=True)),
            ("DeleteRoom", pr.DeleteRoomRequest(room="r"), _token(room_admin=True, room="r")),
            ("ListRooms", pr.ListRoomsRequest(), create),
            ("ListParticipants", pr.ListParticipantsRequest(room="r"), admin_elsewhere),
            ("GetParticipant", pr.RoomParticipantIdentity(room="r", identity="alice"), join_only),
            ("RemoveParticipant", pr.RoomParticipantIdentity(room="r", identity="alice"), admin_elsewhere),
            ("MutePublishedTrack", pr.MuteRoomTrackRequest(room="r", identity="alice", muted=True), create),
            ("UpdateParticipant", pr.UpdateParticipantRequest(room="r", identity="alice", name="x"), create),
            ("UpdateSubscriptions", pr.UpdateSubscriptionsRequest(room="r", identity="alice"), create),
            ("SendData", pr.SendDataRequest(room="r", data=b"x"), admin_elsewhere),
            ("UpdateRoomMetadata", pr.UpdateRoomMetadataRequest(room="r", metadata="m"), join_only),
        ]
        for method, request, wrong in calls:
            denied(await _post(server, method, request))  # no token at all
            denied(await _post(server, method, request, token=wrong))
        assert "x" not in server.rooms
        assert "alice" in server.rooms["r"]  # nothing was removed
        assert server.rooms["r"].get("alice") is not None
        await alice.close()

    run_with_server(scenario)


def test_tokens_that_do_not_verify_are_unauthenticated_with_the_reason() -> None:
    async def scenario(server: DevServer) -> None:
        request = pr.ListRoomsRequest()
        bad_secret = mint_token("devkey", "wrong", Claims(identity="b", video=VideoGrants(room_list=True)))
        result = await _post(server, "ListRooms", request, token=bad_secret)
        _error(401, "unauthenticated")(result)
        assert "bad_signature" in result[1]["msg"]
        _error(401, "unauthenticated")(await _post(server, "ListRooms", request, token="not.a.jwt"))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                server.http_url + ROOM_SERVICE + "ListRooms",
                data=b"",
                headers={"Authorization": "Basic abc", "Content-Type": "application/protobuf"},
            ) as resp,
        ):
            assert resp.status == 401
            assert (await resp.json())["code"] == "unauthenticated"

    run_with_server(scenario)


def test_json_bodies_are_served_with_proto_field_names() -> None:
    async def scenario(server: DevServer) -> None:
        token = _token(room_create=True, room_list=True)
        body = json.dumps({"name": "j", "emptyTimeout": 60, "metadata": "m", "unknown_field": 1}).encode()
        status, room, kind = await _post(
            server, "CreateRoom", body, token=token, content_type="application/json"
        )
        assert (status, kind.split(";")[0]) == (200, "application/json")
        assert (room["name"], room["empty_timeout"], room["metadata"]) == ("j", 60, "m")
        assert room["sid"].startswith("RM_")
        status, listed, _ = await _post(
            server, "ListRooms", b"{}", token=token, content_type="application/json; charset=utf-8"
        )
        assert status == 200
        assert [r["name"] for r in listed["rooms"]] == ["j"]
        status, raw, kind = await _post(server, "ListRooms", pr.ListRoomsRequest(), token=token)
        assert (status, kind) == (200, "application/protobuf")
        assert [r.name for r in pr.ListRoomsResponse.FromString(raw).rooms] == ["j"]

    run_with_server(scenario)


def test_bad_requests_get_twirp_errors_and_the_server_keeps_serving() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        stop = asyncio.Event()
        chatter = asyncio.create_task(_chatter(alice, bob, stop))
        token = _token(room_create=True, room_list=True, room_admin=True, room="r")
        malformed = _error(400, "malformed")
        bad_route = _error(404, "bad_route")

        malformed(await _post(server, "ListRooms", b"\xff\xfe garbage \x00\x01", token=token))
        malformed(
            await _post(server, "CreateRoom", b"{not json", token=token, content_type="application/json")
        )
        malformed(
            await _post(server, "CreateRoom", b'{"name": 5}', token=token, content_type="application/json")
        )
        malformed(await _post(server, "ListRooms", b"\x00" * (1 << 21), token=token))  # above the 1 MiB limit
        bad_route(await _post(server, "ListRooms", b"", token=token, content_type="text/plain"))
        bad_route(await _post(server, "ListRooms", b"", token=token, content_type=""))
        result = await _post(server, "ListRooms", b"", token=token, http_method="GET")
        bad_route(result)
        assert result[1]["meta"]["twirp_invalid_route"] == "GET /twirp/livekit.RoomService/ListRooms"
        bad_route(await _post(server, "NoSuchMethod", b"", token=token))
        bad_route(await _post(server, "", b"", token=token, path="/twirp/livekit.NoService/ListRooms"))
        bad_route(await _post(server, "", b"", token=token, path="/twirp/"))
        _error(501, "unimplemented")(
            await _post(server, "ForwardParticipant", pr.ForwardParticipantRequest(room="r"), token=token)
        )
        _error(400, "invalid_argument")(
            await _post(
                server, "SendData", pr.SendDataRequest(room="r", data=b"x", nonce=b"short"), token=token
            )
        )
        _error(400, "invalid_argument", "metadata size exceeds limits 524288")(
            await _post(
                server,
                "UpdateRoomMetadata",
                pr.UpdateRoomMetadataRequest(room="r", metadata="m" * 524_289),
                token=token,
            )
        )
        _error(400, "invalid_argument", "no room name")(
            await _post(server, "CreateRoom", pr.CreateRoomRequest(), token=token)
        )
        _error(400, "invalid_argument")(
            await _post(
                server,
                "SendData",
                pr.SendDataRequest(room="r", data=b"x" * 64_001),
                token=token,
            )
        )

        stop.set()
        assert await chatter >= 1  # every packet sent during the bad requests arrived (or _chatter raises)
        await alice.send_user(b"after")
        after = await bob.next_packet(
            lambda r: isinstance(r.packet.value, UserPacket) and r.packet.value.payload == b"after"
        )
        assert after.packet.participant_identity == "alice"
        assert not alice.closed.is_set()
        assert not bob.closed.is_set()
        status, _, _ = await _post(server, "ListRooms", pr.ListRoomsRequest(), token=token)
        assert status == 200
        for client in (alice, bob):
            await client.close()

    run_with_server(scenario)
