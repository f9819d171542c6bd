"""Raw-protocol clients (websockets + codecs + runtime PeerTransport) through a live server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from greenroom.codecs.models import (
    DisconnectReason,
    LeaveAction,
    ParticipantState,
    RequestResponseReason,
    TrackType,
)
from greenroom.codecs.packets import DataPacket, Transcription, TranscriptionSegment, UserPacket
from greenroom.codecs.signalling import (
    AddTrackRequest,
    Answer,
    JoinParams,
    Leave,
    LegacyPing,
    LegacyPong,
    PongResp,
    RequestResponse,
    RoomUpdate,
    TrackPublished,
)
from greenroom.devserver.server import DevServer
from greenroom.runtime.peer import LOSSY, RELIABLE
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient
from tests.helpers import assert_eventually_async
from tests.waiting import recorded_logs, wait_until


async def _pair(server: DevServer, room: str = "r", **grants: Any) -> tuple[RawClient, RawClient]:
    alice = await RawClient.join(server.url, server.mint_token("alice", room, **grants))
    bob = await RawClient.join(server.url, server.mint_token("bob", room, **grants), query_token=True)
    return alice, bob


MARKER = b"barrier marker"


async def _barrier(sender: RawClient, receiver: RawClient, identity: str) -> None:
    """A marker from ``sender`` to ``receiver`` (``identity``) on the reliable and on the lossy path; wait
    for both (they are taken out of ``receiver.packets``)."""
    for reliable in (True, False):
        await sender.send_user(MARKER, reliable=reliable, destinations=(identity,))
    for label in (RELIABLE, LOSSY):
        await receiver.next_packet(lambda r, label=label: r.label == label and _is_marker(r))  # type: ignore[misc]


def _is_marker(received: Any) -> bool:
    return isinstance(received.packet.value, UserPacket) and received.packet.value.payload == MARKER


def _user(received: Any) -> UserPacket:
    value = received.packet.value
    assert isinstance(value, UserPacket)
    return value


def test_join_response_and_lifecycle_updates() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r", name="Alice"))
        join = alice.join_response
        assert join.room is not None
        assert join.room.sid.startswith("RM_")
        assert join.room.name == "r"
        assert join.participant is not None
        assert join.participant.sid.startswith("PA_")
        assert join.participant.permission is not None
        assert join.participant.permission.can_publish
        assert (join.ping_interval, join.ping_timeout, join.subscriber_primary) == (5, 15, True)
        assert join.server_info is not None
        assert join.server_info.version == "1.9.0"
        assert join.ice_servers == ()
        await alice.wait_update(lambda p: p.identity == "alice" and p.state is ParticipantState.ACTIVE)

        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        assert [p.identity for p in bob.join_response.other_participants] == ["alice"]
        joined = await alice.wait_update(lambda p: p.identity == "bob")
        active = await alice.wait_update(lambda p: p.identity == "bob" and p.state is ParticipantState.ACTIVE)
        assert joined.state is ParticipantState.JOINED
        assert active.version > joined.version

        counts = await alice.wait_message(RoomUpdate, lambda u: u.room.num_participants == 2)
        assert join.room is not None
        assert counts.room.sid == join.room.sid
        before = len(alice.messages)
        await bob.leave()
        await alice.wait_message(
            RoomUpdate,
            lambda u: u.room.num_participants == 1 and any(m is u for m in alice.messages[before:]),
        )
        gone = await alice.wait_update(
            lambda p: p.identity == "bob" and p.state is ParticipantState.DISCONNECTED
        )
        assert gone.version > active.version
        await alice.close()

    run_with_server(scenario)


def test_data_both_ways_with_topic_destinations_and_labels() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        carol = await RawClient.join(server.url, server.mint_token("carol", "r"))
        await alice.send_user(b"to all", topic="t")
        for receiver in (bob, carol):
            got = await receiver.next_packet()
            assert got.label == RELIABLE
            assert (got.packet.participant_identity, got.packet.participant_sid) == ("alice", alice.sid)
            assert got.packet.sequence == 1
            assert (_user(got).payload, _user(got).topic) == (b"to all", "t")
        await bob.send_user(b"lossy to alice", reliable=False, destinations=("alice",))
        got = await alice.next_packet()
        assert got.label == LOSSY
        assert _user(got).payload == b"lossy to alice"
        assert got.packet.participant_identity == "bob"
        await bob.send_user(b"reliable to carol", destinations=("carol",))
        assert _user(await carol.next_packet()).payload == b"reliable to carol"
        # The server relayed each packet above before its receiver got it: a marker sent now on each path a
        # misrouted copy could have taken to alice or bob arrives after that copy.
        await _barrier(bob, alice, "alice")
        await _barrier(alice, bob, "bob")
        assert alice.packets == []
        assert bob.packets == []
        for client in (alice, bob, carol):
            await client.close()

    run_with_server(scenario)


def test_metadata_name_attributes_with_and_without_the_grant() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server, can_update_own_metadata=True)
        request = await alice.update_metadata(name="Al", metadata="m1", attributes=(("k", "v"),))
        response = await alice.wait_message(RequestResponse, lambda r: r.request_id == request)
        assert response.reason is RequestResponseReason.OK
        for client in (alice, bob):  # the requester too (JS resolves on its own update)
            info = await client.wait_update(lambda p: p.identity == "alice" and p.metadata == "m1")
            assert info.name == "Al"
            assert dict(info.attributes) == {"k": "v"}

        carol = await RawClient.join(server.url, server.mint_token("carol", "r"))
        request = await carol.update_metadata(metadata="nope")
        response = await carol.wait_message(RequestResponse, lambda r: r.request_id == request)
        assert response.reason is RequestResponseReason.NOT_ALLOWED
        for client in (alice, bob, carol):
            await client.close()

    run_with_server(scenario)


def test_duplicate_identity_replaces_the_first_session() -> None:
    async def scenario(server: DevServer) -> None:
        first, bob = await _pair(server)
        second = await RawClient.join(server.url, server.mint_token("alice", "r"))
        leave = await first.wait_message(Leave)
        assert (leave.reason, leave.action) == (DisconnectReason.DUPLICATE_IDENTITY, LeaveAction.DISCONNECT)
        await asyncio.wait_for(first.closed.wait(), 5)
        await bob.wait_update(lambda p: p.sid == first.sid and p.state is ParticipantState.DISCONNECTED)
        await bob.wait_update(lambda p: p.sid == second.sid)
        await second.send_user(b"still here")
        got = await bob.next_packet()
        assert got.packet.participant_sid == second.sid
        for client in (first, second, bob):
            await client.close()

    run_with_server(scenario)


def test_hidden_participant_is_not_announced_and_sends_anonymously() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        ghost = await RawClient.join(server.url, server.mint_token("ghost", "r", hidden=True))
        assert [p.identity for p in ghost.join_response.other_participants] == ["bob"]
        await ghost.send_user(b"boo")
        got = await bob.next_packet()
        assert got.packet.participant_identity == ""
        assert _user(got).payload == b"boo"
        await ghost.leave()
        await wait_until(
            lambda: server.rooms["r"].info().num_participants == 1, what="the server to remove the ghost"
        )
        # the server announced the departure (if it wrongly did) before it answers bob's ping
        before_pong = await bob.signal_barrier()
        seen = [p.identity for m in before_pong if hasattr(m, "participants") for p in m.participants]
        assert "ghost" not in seen
        assert bob.join_response.room is not None
        await bob.close()

    run_with_server(scenario)


def test_can_publish_data_and_transcriptions_from_agents_only() -> None:
    async def scenario(server: DevServer) -> None:
        mute = await RawClient.join(server.url, server.mint_token("mute", "r", can_publish_data=False))
        user = await RawClient.join(server.url, server.mint_token("user", "r"))
        agent = await RawClient.join(server.url, server.mint_token("agent", "r", kind="agent"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        with recorded_logs("greenroom.devserver.participant") as logs:
            await mute.send_user(b"dropped")
            transcript = DataPacket(
                Transcription("user", "", (TranscriptionSegment(id="s", text="hi", final=True),))
            )
            await user.send_packet(transcript)
            await agent.send_packet(transcript)
            got = await bob.next_packet(lambda r: isinstance(r.packet.value, Transcription))
            assert got.packet.participant_identity == "agent"
            # mute's packet has no later packet on its path to act as a marker: wait for the server's
            # decision on it instead, then a marker from user follows user's transcription to bob
            await wait_until(
                lambda: logs.count("[r/mute] dropped a data packet: sender lacks canPublishData") == 1,
                what="the server to drop mute's packet",
            )
        await user.send_user(MARKER)
        await bob.next_packet(_is_marker)
        assert bob.packets == []
        for client in (mute, user, agent, bob):
            await client.close()

    run_with_server(scenario)


def test_add_track_needs_can_publish() -> None:
    async def scenario(server: DevServer) -> None:
        ok = await RawClient.join(server.url, server.mint_token("ok", "r"), publish=False)
        await ok.send(AddTrackRequest(cid="c1", name="mic", type=TrackType.AUDIO))
        published = await ok.wait_message(TrackPublished)
        assert published.cid == "c1"
        assert published.track.sid.startswith("TR_")
        denied = await RawClient.join(
            server.url, server.mint_token("denied", "r", can_publish=False), publish=False
        )
        await denied.send(AddTrackRequest(cid="c1", name="mic", type=TrackType.AUDIO))
        response = await denied.wait_message(RequestResponse)
        assert response.reason is RequestResponseReason.NOT_ALLOWED
        assert not any(isinstance(m, TrackPublished) for m in denied.messages)
        await ok.close()
        await denied.close()

    run_with_server(scenario)


def test_pings_are_answered() -> None:
    async def scenario(server: DevServer) -> None:
        client = await RawClient.open(server.url, server.mint_token("alice", "r"))
        await client.ping()
        pong = await client.wait_message(PongResp)
        assert pong.timestamp > 0
        assert pong.last_ping_timestamp > 0
        await client.send(LegacyPing(timestamp=123))
        assert (await client.wait_message(LegacyPong)).timestamp > 0
        await client.close()

    run_with_server(scenario)


def test_resume_is_answered_with_a_full_reconnect_request() -> None:
    async def scenario(server: DevServer) -> None:
        params = JoinParams(sdk="python", protocol=16, reconnect=True, sid="PA_gone")
        token = server.mint_token("alice", "r")
        async with websockets.connect(
            f"{server.url}/rtc?{params.to_query()}", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            from greenroom.codecs.signalling import decode_response

            leave = decode_response(await asyncio.wait_for(_recv(ws), 5))
        assert isinstance(leave, Leave)
        assert (leave.reason, leave.action) == (DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)

    run_with_server(scenario)


def test_empty_room_closes_after_its_timeout() -> None:
    async def scenario(server: DevServer) -> None:
        client = await RawClient.open(server.url, server.mint_token("alice", "r"))
        assert "r" in server.rooms
        await client.leave()
        await assert_eventually_async(lambda: "r" not in server.rooms, timeout=3)

    run_with_server(scenario, empty_timeout=0.2)


def test_shutdown_sends_server_shutdown_to_everyone() -> None:
    async def scenario() -> None:
        from greenroom.devserver.config import ServerConfig

        server = await DevServer(ServerConfig(port=0)).start()
        alice, bob = await _pair(server)
        await server.close()
        for client in (alice, bob):
            leave = await client.wait_message(Leave)
            assert leave.reason is DisconnectReason.SERVER_SHUTDOWN
            await asyncio.wait_for(client.closed.wait(), 5)
            await client.close()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_answer_without_offer_is_a_state_mismatch() -> None:
    async def scenario(server: DevServer) -> None:
        client = await RawClient.join(server.url, server.mint_token("alice", "r"), publish=False)
        await client.send(Answer(sdp="v=0\r\n", id=9))
        leave = await client.wait_message(Leave)
        assert leave.reason is DisconnectReason.STATE_MISMATCH
        await client.close()

    run_with_server(scenario)


async def _recv(ws: Any) -> bytes:
    frame = await ws.recv()
    assert isinstance(frame, bytes), "signal frames are binary"
    return frame


def test_end_session_sends_leave_with_the_action_and_tells_the_others() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server)
        assert not server.end_session("r", "nobody")
        reason, action = DisconnectReason.MIGRATION, LeaveAction.RECONNECT
        assert server.end_session("r", "alice", reason=reason, action=action)
        leave = await alice.wait_message(Leave)
        assert (leave.reason, leave.action) == (DisconnectReason.MIGRATION, LeaveAction.RECONNECT)
        await asyncio.wait_for(alice.closed.wait(), 5)
        gone = await bob.wait_update(
            lambda p: p.identity == "alice" and p.state is ParticipantState.DISCONNECTED
        )
        assert gone.disconnect_reason is DisconnectReason.MIGRATION
        for client in (alice, bob):
            await client.close()

    run_with_server(scenario)
