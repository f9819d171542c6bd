"""The Room facade against the real dev server: connect, participants, data, metadata, DTMF, transcription,
bad inputs, cancellation and cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import threading
from typing import Any

import pytest

from greenroom import rtc
from greenroom.devserver.config import SERVER_VERSION
from greenroom.devserver.server import DevServer
from greenroom.rtc.participant import PublishDataError, PublishTranscriptionError
from tests.helpers import assert_eventually_async
from tests.rtc.support import Recorder, actor_count, connect, run_with_server, runtime_tasks, thread_names
from tests.waiting import before_marker, wait_until


def test_two_rooms_exchange_data_with_topic_and_destinations() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        bob_rec: dict[str, Recorder] = {}
        bob = rtc.Room()
        bob_rec["r"] = Recorder(bob, "data_received", "connected", "connection_state_changed")
        await bob.connect(server.url, server.mint_token("bob", "r1"))
        carol = await connect(server, "carol")
        carol_rec = Recorder(carol, "data_received")
        rec = bob_rec["r"]
        assert rec.names()[:2] == ["connection_state_changed", "connected"]
        assert bob.isconnected()
        assert bob.connection_state == rtc.ConnectionState.CONN_CONNECTED
        await assert_eventually_async(lambda: sorted(bob.remote_participants) == ["alice", "carol"])

        await alice.local_participant.publish_data(b"to-all", topic="news")
        await alice.local_participant.publish_data("to-bob", destination_identities=["bob"])
        await alice.local_participant.publish_data(b"lossy", reliable=False, destination_identities=["bob"])
        await assert_eventually_async(lambda: len(rec.named("data_received")) == 3)
        packets = [args[0] for args in rec.named("data_received")]
        assert [(p.data, p.topic) for p in packets[:2]] == [(b"to-all", "news"), (b"to-bob", "")]
        assert packets[0].kind == rtc.DataPacketKind.KIND_RELIABLE
        assert packets[2].kind == rtc.DataPacketKind.KIND_LOSSY
        assert all(p.participant is bob.remote_participants["alice"] for p in packets)
        # barrier: a marker to carol on each path (reliable, lossy) after the packets she must not get
        for reliable in (True, False):
            await alice.local_participant.publish_data(
                b"marker", reliable=reliable, destination_identities=["carol"]
            )
        for kind, expected in (
            (rtc.DataPacketKind.KIND_RELIABLE, [b"to-all"]),
            (rtc.DataPacketKind.KIND_LOSSY, []),
        ):
            before = await before_marker(
                lambda kind=kind: [a[0] for a in carol_rec.named("data_received") if a[0].kind == kind],  # type: ignore[misc]
                lambda packet: packet.data == b"marker",
                what=f"carol's {kind.name} marker",
            )
            assert [p.data for p in before] == expected, kind

        alice_got: list[Any] = []
        alice.on("data_received", alice_got.append)
        await bob.local_participant.publish_data(b"back", topic="reply")
        await assert_eventually_async(lambda: [p.data for p in alice_got] == [b"back"])
        assert alice_got[0].participant is alice.remote_participants["bob"]
        assert alice_got[0].topic == "reply"
        for room in (alice, bob, carol):
            await room.disconnect()

    run_with_server(scenario)


def test_participant_events_and_metadata_name_attributes() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        rec = Recorder(
            bob,
            "participant_connected",
            "participant_active",
            "participant_disconnected",
            "participant_metadata_changed",
            "participant_name_changed",
            "participant_attributes_changed",
        )
        alice = await connect(server, "alice")
        await assert_eventually_async(lambda: len(rec.named("participant_connected")) == 1)
        remote = rec.named("participant_connected")[0][0]
        assert isinstance(remote, rtc.RemoteParticipant)
        assert remote.identity == "alice"
        assert remote.sid.startswith("PA_")
        assert bob.remote_participants["alice"] is remote
        await assert_eventually_async(lambda: len(rec.named("participant_active")) == 1)

        local_changes: list[tuple[Any, ...]] = []
        alice.on("participant_metadata_changed", lambda p, old, new: local_changes.append((p, old, new)))
        await alice.local_participant.set_metadata("m1")
        await alice.local_participant.set_name("Alice")
        await alice.local_participant.set_attributes({"role": "host", "x": "1"})
        await assert_eventually_async(lambda: len(rec.named("participant_attributes_changed")) == 1)
        assert rec.named("participant_metadata_changed") == [(remote, "", "m1")]
        assert rec.named("participant_name_changed") == [(remote, "", "Alice")]
        assert rec.named("participant_attributes_changed") == [({"role": "host", "x": "1"}, remote)]
        assert (remote.metadata, remote.name, remote.attributes) == (
            "m1",
            "Alice",
            {"role": "host", "x": "1"},
        )
        await assert_eventually_async(lambda: len(local_changes) == 1)
        assert local_changes[0] == (alice.local_participant, "", "m1")
        assert alice.local_participant.metadata == "m1"

        await alice.disconnect()
        await assert_eventually_async(lambda: len(rec.named("participant_disconnected")) == 1)
        assert rec.named("participant_disconnected")[0][0] is remote
        assert "alice" not in bob.remote_participants
        await bob.disconnect()

    run_with_server(scenario)


def test_fast_publish_opens_the_publisher_at_join() -> None:
    """With ``JoinResponse.fast_publish`` (livekit-server sends it to publishers) the publisher peer
    connection comes up right after the join, before anything is published; without it, only on first use."""

    async def scenario(server: DevServer) -> None:
        fast = await connect(server, "fast")
        slow = await connect(server, "slow", can_publish=False)  # no fast_publish for who cannot publish
        sessions = server._sessions  # the dev server's view: a publisher PC exists once the client offers
        await wait_until(lambda: sessions["r1", "fast"]._publisher is not None, what="fast's publisher offer")
        await slow.local_participant.publish_data(b"barrier")  # slow's first use opens its publisher now
        await wait_until(lambda: sessions["r1", "slow"]._publisher is not None, what="slow's publisher")
        for room in (fast, slow):
            await room.disconnect()

    run_with_server(scenario, fast_publish=True)

    # and without the flag nothing is opened before the first use
    async def plain(server: DevServer) -> None:
        room = await connect(server, "plain")
        other = await connect(server, "other")
        await other.local_participant.publish_data(b"to plain")
        await wait_until(
            lambda: server._sessions["r1", "other"]._publisher is not None, what="other's publisher"
        )
        assert server._sessions["r1", "plain"]._publisher is None
        for r in (room, other):
            await r.disconnect()

    run_with_server(plain)


def test_the_server_info_of_the_join_is_exposed() -> None:
    async def scenario(server: DevServer) -> None:
        room = rtc.Room()
        assert room.server_info is None
        await room.connect(server.url, server.mint_token("alice", "r1"))
        info = room.server_info
        assert info is not None
        assert (info.version, info.node_id, info.protocol) == (SERVER_VERSION, "greenroom-dev", 16)
        await room.disconnect()

    run_with_server(scenario)


def test_dtmf_and_transcription() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        rec = Recorder(bob, "sip_dtmf_received", "transcription_received")
        agent = await connect(server, "agent", kind="agent")
        await assert_eventually_async(lambda: "agent" in bob.remote_participants)
        await agent.local_participant.publish_dtmf(code=11, digit="#")
        segments = [rtc.TranscriptionSegment("s1", "hello", 0, 10, "en", True)]
        # A track sid that is not TR_… is refused: official (Rust) receivers abort their process on it.
        with pytest.raises(PublishTranscriptionError, match="TR_"):
            await agent.local_participant.publish_transcription(rtc.Transcription("bob", "", segments))
        await agent.local_participant.publish_transcription(rtc.Transcription("bob", "TR_bobmic", segments))
        await assert_eventually_async(lambda: len(rec.events) == 2)
        dtmf = rec.named("sip_dtmf_received")[0][0]
        assert isinstance(dtmf, rtc.SipDTMF)
        assert (dtmf.code, dtmf.digit, dtmf.participant) == (11, "#", bob.remote_participants["agent"])
        got_segments, participant, publication = rec.named("transcription_received")[0]
        assert got_segments == segments
        assert participant is bob.local_participant
        assert publication is None
        await agent.disconnect()
        await bob.disconnect()

    run_with_server(scenario)


def test_publish_data_size_check_and_not_connected() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        local = alice.local_participant
        with pytest.raises(PublishDataError, match="64000"):
            await local.publish_data(b"x" * 64_001)
        await local.publish_data(b"x" * 60_000)  # below the limit: fine
        await alice.disconnect()
        with pytest.raises(PublishDataError) as info:
            await local.publish_data(b"late")
        assert info.value.message

    run_with_server(scenario)


def test_room_properties_before_connect() -> None:
    async def main() -> None:
        room = rtc.Room()
        with pytest.raises(Exception, match="before connecting"):
            _ = room.local_participant
        assert not room.isconnected()
        assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
        assert room.remote_participants == {}
        await room.disconnect()  # a no-op

    asyncio.run(main())


def test_callbacks_run_on_the_user_loop_and_a_raising_callback_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        bob = rtc.Room()
        rec = Recorder(bob, "data_received")

        def boom(_packet: Any) -> None:
            raise RuntimeError("user bug")

        bob.on("data_received", boom)
        await bob.connect(server.url, server.mint_token("bob", "r1"))
        for i in range(3):
            await alice.local_participant.publish_data(str(i))
        await assert_eventually_async(lambda: len(rec.named("data_received")) == 3)
        assert [a[0].data for a in rec.named("data_received")] == [b"0", b"1", b"2"]
        assert rec.threads == {threading.get_ident()}
        assert bob.isconnected()
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)
    assert "user bug" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_errors_carry_the_reason() -> None:
    async def scenario(server: DevServer) -> None:
        room = rtc.Room()
        with pytest.raises(rtc.ConnectError, match="cannot reach") as refused:
            await room.connect(f"ws://127.0.0.1:{_free_port()}", server.mint_token("a", "r1"))
        assert "refused" in refused.value.message.lower() or "connect" in refused.value.message.lower()
        with pytest.raises(rtc.ConnectError, match="401"):
            await room.connect(server.url, "not-a-token")
        expired = server.mint_token("a", "r1", ttl=datetime.timedelta(seconds=-3600))
        with pytest.raises(rtc.ConnectError, match=r"401.*expired|expired"):
            await room.connect(server.url, expired)
        assert not room.isconnected()
        # the same Room still connects afterwards
        await room.connect(server.url, server.mint_token("a", "r1"))
        assert room.isconnected()
        await room.disconnect()

    run_with_server(scenario)


def test_server_gone_mid_connect() -> None:
    """A server that accepts the websocket and then closes it before joining: ConnectError, not a hang."""

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: x\r\n\r\n"
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        room = rtc.Room()
        with pytest.raises(rtc.ConnectError):
            await room.connect(f"ws://127.0.0.1:{port}", "token", rtc.RoomOptions(connect_timeout=5))
        server.close()
        await server.wait_closed()

        async def close_after_upgrade(server_: DevServer) -> None:
            pass

        _ = close_after_upgrade

    asyncio.run(main())


def test_server_closes_after_join_before_pc_connects() -> None:
    """The dev server shuts down while the client waits for its peer connection."""

    async def scenario(server: DevServer) -> None:
        room = rtc.Room()
        task = asyncio.create_task(room.connect(server.url, server.mint_token("a", "r1")))
        await asyncio.sleep(0)  # a yield: connect() starts, then the server closes under it (the scenario)
        await server.close()
        with contextlib.suppress(rtc.ConnectError):
            await task
        # either it failed with ConnectError, or it connected and was then told to leave
        await assert_eventually_async(lambda: not room.isconnected())

    run_with_server(scenario)


def test_cancelling_connect_leaves_nothing_behind() -> None:
    async def scenario(server: DevServer) -> None:
        actors, tasks = actor_count(), runtime_tasks()
        room = rtc.Room()
        task = asyncio.create_task(room.connect(server.url, server.mint_token("a", "r1")))
        await asyncio.sleep(0.005)  # fault injection: cancel partway into connect(), wherever it has got to
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not room.isconnected()
        await assert_eventually_async(
            lambda: actor_count() == actors and runtime_tasks() == tasks, timeout=10
        )

    run_with_server(scenario)


def test_disconnect_leaves_no_actor_task_or_thread() -> None:
    async def scenario(server: DevServer) -> None:
        warm = await connect(server, "warmup")  # start the runtime loop and imports once
        await warm.disconnect()
        actors, tasks, threads = actor_count(), runtime_tasks(), thread_names()
        rooms = [await connect(server, f"p{i}") for i in range(3)]
        await rooms[0].local_participant.publish_data(b"hi")
        assert actor_count() >= actors + 6  # 3 RoomActors + their participants
        events: list[Any] = []
        rooms[0].on("disconnected", events.append)
        for room in rooms:
            await room.disconnect()
        assert events == [rtc.DisconnectReason.CLIENT_INITIATED]
        await assert_eventually_async(
            lambda: actor_count() == actors and runtime_tasks() == tasks, timeout=10
        )
        assert thread_names() == threads

    run_with_server(scenario)


def test_cancelling_disconnect_still_ends_the_room_actor() -> None:
    """A disconnect cancelled partway (here: as soon as it has begun closing; in the fleet, a job's
    connection actor killed while it left) still stops the RoomActor tree: the close runs to its end on
    the runtime loop (before, the tree stayed alive, CLOSED, with its task)."""

    async def scenario(server: DevServer) -> None:
        warm = await connect(server, "warmup")
        await warm.disconnect()
        actors, tasks = actor_count(), runtime_tasks()
        room = await connect(server, "leaver")
        leaving = asyncio.create_task(room.disconnect())
        await asyncio.sleep(
            0
        )  # one turn: the task runs to its first suspension, the close on the runtime loop
        assert not room.isconnected()  # it got there: the client is being closed
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        await wait_until(
            lambda: actor_count() == actors and runtime_tasks() == tasks,
            timeout=10,
            what="the room's actors and tasks ended",
        )

    run_with_server(scenario)


def test_sid_is_awaitable_and_connect_twice_fails() -> None:
    async def scenario(server: DevServer) -> None:
        room = rtc.Room()
        sid_task = asyncio.ensure_future(room.sid)
        await room.connect(server.url, server.mint_token("a", "r1"))
        assert (await sid_task).startswith("RM_")
        assert room.name == "r1"
        with pytest.raises(rtc.ConnectError):
            await room.connect(server.url, server.mint_token("a", "r1"))
        await room.disconnect()

    run_with_server(scenario)
