"""HTTP routes and the grant matrix, against a live server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import http.client
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient


def _get(
    server: DevServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


async def _aget(
    server: DevServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    return await asyncio.to_thread(_get, server, path, headers)


def test_validate_accepts_header_and_query_tokens() -> None:
    async def scenario(server: DevServer) -> None:
        token = server.mint_token("alice", "r")
        status, body, headers = await _aget(server, "/rtc/validate", {"Authorization": f"Bearer {token}"})
        assert (status, body) == (200, "success")
        assert headers["Access-Control-Allow-Origin"] == "*"
        status, body, _ = await _aget(server, f"/rtc/validate?access_token={token}&protocol=17&sdk=js")
        assert (status, body) == (200, "success")

    run_with_server(scenario)


def test_v1_paths_answer_404_with_cors_even_for_a_valid_token() -> None:
    async def scenario(server: DevServer) -> None:
        token = server.mint_token("alice", "r")
        for path in ("/rtc/v1", "/rtc/v1/validate", f"/rtc/v1/validate?access_token={token}"):
            status, body, headers = await _aget(server, path, {"Authorization": f"Bearer {token}"})
            assert status == 404, path
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert "requested room does not exist" not in body  # JS would then refuse instead of falling back
        with pytest.raises(InvalidStatus) as info:
            await RawClient.open(server.url, None)  # /rtc without a token
        assert info.value.response.status_code == 401

    run_with_server(scenario)


def test_unknown_paths_and_plain_get_on_rtc_are_404() -> None:
    async def scenario(server: DevServer) -> None:
        assert (await _aget(server, "/nothing/here"))[0] == 404
        assert (await _aget(server, "/twirp/livekit.RoomService/ListRooms"))[0] == 404  # Twirp: only POST
        token = server.mint_token("alice", "r")
        assert (await _aget(server, "/rtc", {"Authorization": f"Bearer {token}"}))[0] == 404

    run_with_server(scenario)


def test_root_is_the_health_check() -> None:
    """``GET /`` answers 200 ``OK``, as livekit-server's health check does (load balancers probe it)."""

    async def scenario(server: DevServer) -> None:
        status, body, _ = await _aget(server, "/")
        assert (status, body) == (200, "OK")

    run_with_server(scenario)


def _claims(**video: Any) -> Claims:
    return Claims(identity="alice", video=VideoGrants(**video))


def _bad_tokens(server: DevServer) -> dict[str, tuple[str, str]]:
    """name -> (token, word the 401 body must contain)."""
    key, secret = "devkey", "secret"
    join: dict[str, Any] = {"room_join": True, "room": "r"}
    hour = datetime.timedelta(hours=1)
    return {
        "no roomJoin": (mint_token(key, secret, _claims(room="r")), "roomJoin"),
        "no room": (mint_token(key, secret, _claims(room_join=True)), "no room"),
        "no video grant": (mint_token(key, secret, Claims(identity="alice")), "roomJoin"),
        "no identity": (mint_token(key, secret, Claims(video=VideoGrants(**join))), "identity"),
        "expired": (mint_token(key, secret, _claims(**join), ttl=-hour), "expired"),
        "not yet valid": (
            mint_token(
                key, secret, Claims(identity="alice", video=VideoGrants(**join), not_before=2**31 - 10)
            ),
            "not_yet_valid",
        ),
        "bad signature": (mint_token(key, "not-the-secret", _claims(**join)), "bad_signature"),
        "unknown key": (mint_token("otherkey", secret, _claims(**join)), "unknown_key"),
        "garbage": ("not.a.jwt", "malformed"),
    }


def test_grant_matrix_is_refused_with_a_reason_at_validate_and_at_the_upgrade() -> None:
    async def scenario(server: DevServer) -> None:
        for name, (token, word) in _bad_tokens(server).items():
            status, body, headers = await _aget(server, "/rtc/validate", {"Authorization": f"Bearer {token}"})
            assert status == 401, name
            assert word in body, (name, body)
            assert headers["Access-Control-Allow-Origin"] == "*"
            with pytest.raises(InvalidStatus) as info:
                await RawClient.open(server.url, token)
            assert info.value.response.status_code == 401, name
        status, body, _ = await _aget(server, "/rtc/validate", {"Authorization": "Basic abc"})
        assert status == 401
        assert "Bearer" in body
        status, body, _ = await _aget(server, "/rtc/validate")
        assert status == 401
        assert "no authorization token" in body
        assert server.rooms == {}

    run_with_server(scenario)


def test_bad_query_parameters_are_a_400() -> None:
    async def scenario(server: DevServer) -> None:
        token = server.mint_token("alice", "r")
        status, _, _ = await _aget(server, f"/rtc/validate?auto_subscribe=maybe&access_token={token}")
        assert status == 400

    run_with_server(scenario)


# the 60 KB token; LiveKit's largest metadata
@pytest.mark.parametrize("metadata_size", [60_000, 512 * 1024])
def test_large_tokens_join_by_header_and_by_query(metadata_size: int) -> None:
    """A token is accepted up to the size livekit-server's Go HTTP server accepts (1 MiB of header)."""

    async def scenario(server: DevServer) -> None:
        metadata = "m" * metadata_size
        token = server.mint_token("alice", "r", metadata=metadata)
        assert len(token) > metadata_size
        by_header = await RawClient.open(server.url, token)
        assert by_header.join_response.participant is not None
        assert by_header.join_response.participant.metadata == metadata
        await by_header.close()
        by_query = await RawClient.open(server.url, token, query_token=True)
        assert by_query.join_response.participant is not None
        assert by_query.join_response.participant.metadata == metadata
        await by_query.close()

    run_with_server(scenario)


def test_a_header_above_the_limit_is_refused_and_the_server_keeps_serving() -> None:
    async def scenario(server: DevServer) -> None:
        status, _, _ = await _aget(server, "/rtc/validate", {"Authorization": "Bearer " + "x" * (1 << 20)})
        assert status in (400, 431)
        token = server.mint_token("alice", "r")
        status, body, _ = await _aget(server, "/rtc/validate", {"Authorization": f"Bearer {token}"})
        assert (status, body) == (200, "success")

    run_with_server(scenario)
