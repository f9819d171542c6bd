"""Twirp RoomService through the official ``livekit-api`` client; every effect seen by connected clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from livekit import api

from greenroom.codecs.models import DisconnectReason, ParticipantState, TrackSource
from greenroom.codecs.packets import UserPacket
from greenroom.codecs.signalling import JoinParams, Leave, MuteTrack, RoomUpdate
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.oracle import Tone
from tests.devserver.rawclient import RawClient

# livekit-api signs with PyJWT, which warns about the 6-byte dev secret "secret" (the dev defaults are the
# point of these tests: they are what a new user runs).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

NO_AUTO = JoinParams(sdk="python", version="raw", protocol=16, client_protocol=2, auto_subscribe=False)


@asynccontextmanager
async def lkapi(server: DevServer) -> AsyncIterator[api.LiveKitAPI]:
    """The official server-API client, pointed at the dev server with its dev key."""
    client = api.LiveKitAPI(server.http_url, "devkey", "secret")
    try:
        yield client
    finally:
        await client.aclose()


async def _server_error(call: Any) -> api.TwirpError:
    with pytest.raises(api.TwirpError) as info:
        await call
    return info.value


def test_create_list_and_delete_rooms() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            created = await lk.room.create_room(
                api.CreateRoomRequest(
                    name="made",
                    empty_timeout=120,
                    departure_timeout=30,
                    max_participants=7,
                    metadata="m1",
                    agents=[api.RoomAgentDispatch(agent_name="helper", metadata="x")],
                )
            )
            assert created.sid.startswith("RM_")
            assert (created.name, created.metadata, created.max_participants) == ("made", "m1", 7)
            assert (created.empty_timeout, created.departure_timeout) == (120, 30)
            again = await lk.room.create_room(api.CreateRoomRequest(name="made"))
            assert again.sid == created.sid  # an existing room is returned, its settings kept
            assert server.rooms["made"].agents[0].agent_name == "helper"

            alice = await RawClient.join(server.url, server.mint_token("alice", "joined"), publish=False)
            listed = await lk.room.list_rooms(api.ListRoomsRequest())
            assert sorted(r.name for r in listed.rooms) == ["joined", "made"]
            only = await lk.room.list_rooms(api.ListRoomsRequest(names=["joined"]))
            assert [(r.name, r.num_participants) for r in only.rooms] == [("joined", 1)]

            await lk.room.delete_room(api.DeleteRoomRequest(room="joined"))
            leave = await alice.wait_message(Leave)
            assert leave.reason is DisconnectReason.ROOM_DELETED
            assert [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms] == ["made"]
            error = await _server_error(lk.room.delete_room(api.DeleteRoomRequest(room="joined")))
            assert (error.code, error.status, error.message) == (
                "not_found",
                404,
                "requested room does not exist",
            )
            await alice.close()

    run_with_server(scenario)


def test_max_participants_refuses_the_next_join() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="small", max_participants=1))
            alice = await RawClient.join(server.url, server.mint_token("alice", "small"), publish=False)
            with pytest.raises(ConnectionError, match="JOIN_FAILURE"):
                await RawClient.open(server.url, server.mint_token("bob", "small"))  # a Leave, not a join
            hidden = await RawClient.open(server.url, server.mint_token("recorder", "small", hidden=True))
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room="small"))
            assert sorted(p.identity for p in listed.participants) == ["alice", "recorder"]
            for client in (alice, hidden):
                await client.close()

    run_with_server(scenario)


def test_participants_listed_got_and_removed() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r", name="Alice"))
            bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False)
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room="r"))
            assert sorted(p.identity for p in listed.participants) == ["alice", "bob"]
            got = await lk.room.get_participant(api.RoomParticipantIdentity(room="r", identity="alice"))
            assert (got.sid, got.name) == (alice.sid, "Alice")

            error = await _server_error(
                lk.room.get_participant(api.RoomParticipantIdentity(room="r", identity="nobody"))
            )
            assert (error.code, error.message) == ("not_found", "participant does not exist")
            error = await _server_error(
                lk.room.list_participants(api.ListParticipantsRequest(room="nowhere"))
            )
            assert (error.code, error.message) == ("not_found", "requested room does not exist")

            await lk.room.remove_participant(api.RoomParticipantIdentity(room="r", identity="alice"))
            leave = await alice.wait_message(Leave)
            assert leave.reason is DisconnectReason.PARTICIPANT_REMOVED
            gone = await bob.wait_update(
                lambda p: p.identity == "alice" and p.state is ParticipantState.DISCONNECTED
            )
            assert gone.disconnect_reason is DisconnectReason.PARTICIPANT_REMOVED
            for client in (alice, bob):
                await client.close()

    run_with_server(scenario)


def test_mute_published_track_tells_the_publisher_and_everyone() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
            bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False)
            tone = Tone(440)
            [info] = await alice.publish(tone.track, name="mic", source=TrackSource.MICROPHONE)
            await bob.wait_update(
                lambda p: p.identity == "alice" and any(t.sid == info.sid for t in p.tracks)
            )

            muted = await lk.room.mute_published_track(
                api.MuteRoomTrackRequest(room="r", identity="alice", track_sid=info.sid, muted=True)
            )
            assert (muted.track.sid, muted.track.muted) == (info.sid, True)
            told = await alice.wait_message(MuteTrack)  # the publisher's SDK mutes its local track on this
            assert (told.sid, told.muted) == (info.sid, True)
            await bob.wait_update(
                lambda p: p.identity == "alice" and any(t.sid == info.sid and t.muted for t in p.tracks)
            )
            assert server.session_named("r", "alice").publications[info.sid].muted

            error = await _server_error(
                lk.room.mute_published_track(
                    api.MuteRoomTrackRequest(room="r", identity="alice", track_sid=info.sid, muted=False)
                )
            )
            assert (error.code, error.status, error.message) == (
                "failed_precondition",
                412,
                "remote unmute not enabled",
            )
            error = await _server_error(
                lk.room.mute_published_track(
                    api.MuteRoomTrackRequest(room="r", identity="alice", track_sid="TR_nothing", muted=True)
                )
            )
            assert (error.code, error.message) == ("not_found", "track is not found")
            await tone.stop()
            for client in (alice, bob):
                await client.close()

    run_with_server(scenario)


def test_remote_unmute_when_enabled() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
            tone = Tone(440)
            [info] = await alice.publish(tone.track, name="mic", source=TrackSource.MICROPHONE)
            request = api.MuteRoomTrackRequest(room="r", identity="alice", track_sid=info.sid, muted=True)
            await lk.room.mute_published_track(request)
            request.muted = False
            unmuted = await lk.room.mute_published_track(request)
            assert not unmuted.track.muted
            await alice.wait_message(MuteTrack, lambda m: not m.muted)
            await tone.stop()
            await alice.close()

    run_with_server(scenario, enable_remote_unmute=True)


def test_update_participant_metadata_name_attributes_and_permission() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r", attributes={"a": "1"}))
            bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False)
            updated = await lk.room.update_participant(
                api.UpdateParticipantRequest(
                    room="r", identity="alice", metadata="meta", name="Al", attributes={"a": "", "b": "2"}
                )
            )  # alice's token has no canUpdateOwnMetadata: the API does not need it
            assert (updated.metadata, updated.name, dict(updated.attributes)) == ("meta", "Al", {"b": "2"})
            seen = await bob.wait_update(lambda p: p.identity == "alice" and p.metadata == "meta")
            assert (seen.name, dict(seen.attributes)) == ("Al", {"b": "2"})
            await alice.wait_update(lambda p: p.identity == "alice" and p.metadata == "meta")

            tone = Tone(440)
            [info] = await alice.publish(tone.track, name="mic", source=TrackSource.MICROPHONE)
            await bob.wait_update(lambda p: p.identity == "alice" and len(p.tracks) == 1)
            revoked = await lk.room.update_participant(
                api.UpdateParticipantRequest(
                    room="r",
                    identity="alice",
                    permission=api.ParticipantPermission(can_subscribe=True, can_publish=False),
                )
            )
            assert not revoked.permission.can_publish
            assert list(revoked.tracks) == []  # a revoked publish grant unpublishes (as livekit-server)
            mine = await alice.wait_update(
                lambda p: p.identity == "alice" and p.permission.can_publish is False
            )
            assert mine.tracks == ()
            await bob.wait_update(
                lambda p: p.identity == "alice" and not p.tracks and p.version >= mine.version
            )
            assert info.sid not in server.session_named("r", "alice").publications
            await tone.stop()
            for client in (alice, bob):
                await client.close()

    run_with_server(scenario)


def test_update_subscriptions_subscribes_a_listener() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
            bob = await RawClient.join(
                server.url, server.mint_token("bob", "r"), publish=False, params=NO_AUTO
            )
            tone = Tone(440)
            [info] = await alice.publish(tone.track, name="mic", source=TrackSource.MICROPHONE)
            await bob.wait_update(lambda p: p.identity == "alice" and len(p.tracks) == 1)
            await lk.room.update_subscriptions(
                api.UpdateSubscriptionsRequest(
                    room="r", identity="bob", track_sids=[info.sid], subscribe=True
                )
            )
            await bob.subscribed_track(info.sid)
            await tone.stop()
            for client in (alice, bob):
                await client.close()

    run_with_server(scenario)


def test_send_data_to_everyone_and_to_one_with_a_topic() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r"), publish=False)
            bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False)
            await lk.room.send_data(api.SendDataRequest(room="r", data=b"all", topic="news"))
            for client in (alice, bob):
                got = await client.next_packet(lambda r: isinstance(r.packet.value, UserPacket))
                assert isinstance(got.packet.value, UserPacket)
                assert (got.packet.value.payload, got.packet.value.topic) == (b"all", "news")
                assert len(got.packet.value.nonce) == 16  # livekit-api sets one; it is passed through
                assert got.packet.participant_identity == ""  # from the server, not a participant
            await lk.room.send_data(
                api.SendDataRequest(
                    room="r", data=b"only bob", destination_identities=["bob"], kind=api.DataPacket.LOSSY
                )
            )
            got = await bob.next_packet(lambda r: isinstance(r.packet.value, UserPacket))
            assert (got.label, got.packet.destination_identities) == ("_lossy", ("bob",))
            # Alice was not a destination: a barrier to her, sent after, arrives with nothing before it.
            await lk.room.send_data(
                api.SendDataRequest(room="r", data=b"barrier", destination_identities=["alice"])
            )
            got = await alice.next_packet()
            assert isinstance(got.packet.value, UserPacket)
            assert got.packet.value.payload == b"barrier"
            for client in (alice, bob):
                await client.close()

    run_with_server(scenario)


def test_update_room_metadata_reaches_every_member() -> None:
    async def scenario(server: DevServer) -> None:
        async with lkapi(server) as lk:
            alice = await RawClient.join(server.url, server.mint_token("alice", "r"), publish=False)
            room = await lk.room.update_room_metadata(
                api.UpdateRoomMetadataRequest(room="r", metadata="topic: x")
            )
            assert room.metadata == "topic: x"
            await alice.wait_message(RoomUpdate, lambda u: u.room.metadata == "topic: x")
            error = await _server_error(
                lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="none", metadata="m"))
            )
            assert error.code == "not_found"
            await alice.close()

    run_with_server(scenario)
