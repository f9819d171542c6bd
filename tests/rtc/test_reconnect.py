"""Full reconnect against the real dev server: a server killed and restarted on the same port, a server
``leave{RECONNECT}``, a server that never comes back (retry limit, nothing left behind), and a published
audio track that is republished and heard again. Plus the pure retry schedule."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from greenroom import rtc
from greenroom.actors.messages import ConnectOptions
from greenroom.actors.room import reconnect_delay
from greenroom.codecs.models import LeaveAction
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.rtc.participant import PublishDataError
from greenroom.rtc.room import ReconnectPolicy
from tests.rtc.support import Recorder, actor_count, connect, run_with_server, runtime_tasks, thread_names
from tests.rtc.test_media import collect, peak_hz, play, publish_tone, rms, subscribed, until
from tests.waiting import recorded_logs, resend_until, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAST = ReconnectPolicy(max_delay=0.5)
CONN = rtc.ConnectionState


def test_reconnect_delay_schedule() -> None:
    options = ConnectOptions()
    low = [reconnect_delay(n, options, 0.0) for n in range(1, 11)]
    assert low == pytest.approx([0.0, 0.3, 0.6, 1.2, 2.4, 4.8, 7.0, 7.0, 7.0, 7.0])
    assert reconnect_delay(4, options, 0.999) == pytest.approx(1.2 * 1.4995)
    assert reconnect_delay(2, ConnectOptions(reconnect_min_delay=0.1, reconnect_max_delay=0.15), 0.0) == 0.1


@contextlib.asynccontextmanager
async def server_process(port: int = 0) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``greenroom serve`` in a subprocess (so it can be killed without a word); yields it and its port."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "greenroom.devserver",
        "serve",
        "--port",
        str(port),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert "ready at ws://127.0.0.1:" in line, line
        yield proc, int(line.split("ws://127.0.0.1:")[1].split()[0])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


def kill(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)


async def join(port: int, identity: str, policy: ReconnectPolicy = FAST) -> rtc.Room:
    tokens = DevServer(ServerConfig(port=port))  # only mints tokens (devkey/secret, like the process)
    room = rtc.Room()
    room.reconnect_policy = policy
    await room.connect(f"ws://127.0.0.1:{port}", tokens.mint_token(identity, "r1"))
    return room


async def exchange(a: rtc.Room, b: rtc.Room, tag: bytes) -> None:
    """A → B and B → A reliable data arrive (retried: the other side may still be reconnecting)."""
    for sender, receiver in ((a, b), (b, a)):
        got: list[bytes] = []
        receiver.on("data_received", lambda packet, got=got: got.append(packet.data))

        async def send(sender: rtc.Room = sender) -> None:
            with contextlib.suppress(Exception):
                await sender.local_participant.publish_data(tag)

        await resend_until(send, lambda got=got: tag in got, timeout=15, what=f"{tag!r} to arrive")  # type: ignore[misc]


@pytest.mark.timeout(90)
def test_server_killed_and_restarted_on_the_same_port() -> None:
    async def scenario() -> None:
        async with server_process() as (proc, port):
            a, b = await join(port, "alice"), await join(port, "bob")
            await until(lambda: "bob" in a.remote_participants and "alice" in b.remote_participants)
            await exchange(a, b, b"before")
            rec = Recorder(a, "connection_state_changed", "reconnecting", "reconnected", "disconnected")
            old_sid = a.local_participant.sid
            with recorded_logs("greenroom.actors.room") as logs:
                kill(proc)
                await until(lambda: "reconnecting" in rec.names(), 10)
                assert a.connection_state.name == "CONN_RECONNECTING"
                assert a.isconnected()
                # the outage lasts until a few attempts (of alice's and bob's) were refused
                await wait_until(lambda: logs.count("failed: cannot reach the server") >= 4, timeout=10)
        async with server_process(port) as (_proc, again):
            assert again == port
            await until(lambda: "reconnected" in rec.names(), 20)
            assert rec.names() == [
                "connection_state_changed",
                "reconnecting",
                "connection_state_changed",
                "reconnected",
            ]
            assert rec.named("connection_state_changed") == [
                (CONN.CONN_RECONNECTING,),
                (CONN.CONN_CONNECTED,),
            ]
            assert a.connection_state == CONN.CONN_CONNECTED
            assert a.local_participant.sid != old_sid
            await until(lambda: b.connection_state == CONN.CONN_CONNECTED, 20)
            # each side sees the other again (the one that rejoined later is announced to the first)
            await until(lambda: "bob" in a.remote_participants and "alice" in b.remote_participants, 10)
            await exchange(a, b, b"after")
            assert a.remote_participants["bob"].sid == b.local_participant.sid
            await a.disconnect()
            await b.disconnect()

    asyncio.run(scenario())


def test_leave_reconnect_rejoins_keeping_the_room_and_participant_objects() -> None:
    async def scenario(server: DevServer) -> None:
        a = rtc.Room()
        a.reconnect_policy = FAST
        await a.connect(server.url, server.mint_token("alice", "r1"))
        b = await connect(server, "bob")
        await until(lambda: "bob" in a.remote_participants and "alice" in b.remote_participants)
        bob_seen_by_a, local = a.remote_participants["bob"], a.local_participant
        old_sid = local.sid
        names = (
            "connection_state_changed",
            "reconnecting",
            "reconnected",
            "participant_connected",
            "participant_disconnected",
            "disconnected",
        )
        rec_a, rec_b = Recorder(a, *names), Recorder(b, *names)
        reason = rtc.DisconnectReason.STATE_MISMATCH
        assert server.end_session("r1", "alice", reason=reason, action=LeaveAction.RECONNECT)
        await until(lambda: "reconnected" in rec_a.names(), 10)
        assert rec_a.names() == [
            "connection_state_changed",
            "reconnecting",
            "connection_state_changed",
            "reconnected",
        ]
        assert a.remote_participants["bob"] is bob_seen_by_a  # still there: the same object
        assert a.local_participant is local
        assert local.sid != old_sid
        assert local.sid.startswith("PA_")
        # bob saw alice's old session leave and her new one join
        await until(lambda: "participant_connected" in rec_b.names(), 10)
        assert rec_b.names() == ["participant_disconnected", "participant_connected"]
        assert b.remote_participants["alice"].sid == local.sid
        await exchange(a, b, b"again")
        await a.disconnect()
        await b.disconnect()
        assert rec_a.named("disconnected") == [(rtc.DisconnectReason.CLIENT_INITIATED,)]

    run_with_server(scenario)


def test_data_published_while_reconnecting_is_held_and_sent_after() -> None:
    async def scenario(server: DevServer) -> None:
        a = rtc.Room()
        a.reconnect_policy = FAST
        await a.connect(server.url, server.mint_token("alice", "r1"))
        b = await connect(server, "bob")
        await until(lambda: "alice" in b.remote_participants)
        got: list[bytes] = []
        b.on("data_received", lambda packet: got.append(packet.data))
        reconnecting = asyncio.Event()
        a.on("reconnecting", reconnecting.set)
        server.end_session("r1", "alice", reason=rtc.DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT)
        await asyncio.wait_for(reconnecting.wait(), 5)
        sends = [asyncio.create_task(a.local_participant.publish_data(f"held {i}")) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*sends), 15)  # they complete once reconnected
        await until(lambda: len(got) == 3, 10)
        assert got == [b"held 0", b"held 1", b"held 2"]
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


@pytest.mark.timeout(60)
def test_server_never_comes_back_gives_up_and_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        actors, tasks, threads = actor_count(), runtime_tasks(), thread_names()
        options = ReconnectPolicy(attempts=3, max_delay=0.2)
        async with server_process() as (proc, port):
            a = await join(port, "alice", options)
            rec = Recorder(a, "connection_state_changed", "reconnecting", "reconnected", "disconnected")
            kill(proc)
            await until(lambda: "disconnected" in rec.names(), 20)
        assert rec.names() == [
            "connection_state_changed",
            "reconnecting",
            "connection_state_changed",
            "disconnected",
        ]
        assert rec.named("disconnected") == [(rtc.DisconnectReason.SIGNAL_CLOSE,)]
        assert a.connection_state == CONN.CONN_DISCONNECTED
        assert not a.isconnected()
        with pytest.raises(PublishDataError):
            await a.local_participant.publish_data(b"too late")
        await until(lambda: actor_count() == actors and runtime_tasks() == tasks, timeout=10)
        await a.disconnect()  # a no-op now
        assert thread_names() == threads

    asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_published_audio_is_republished_and_heard_again() -> None:
    async def scenario(server: DevServer) -> None:
        a, b, source, publication = await publish_tone(server)
        feeder = asyncio.create_task(play(source, 440.0, 60.0))
        remote = await subscribed(b, "alice")
        frames: list[np.ndarray[Any, Any]] = []
        reader = asyncio.create_task(collect(rtc.AudioStream(remote.track), frames))
        await until(lambda: len(frames) > 50, 10)
        assert round(peak_hz(np.concatenate(frames[-50:])) / 20) * 20 == 440
        republished: list[tuple[Any, str]] = []
        a.on("local_track_republished", lambda pub, previous: republished.append((pub, previous)))
        old_sid = publication.sid
        server.end_session("r1", "alice", reason=rtc.DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT)
        await until(lambda: bool(republished), 15)
        assert republished == [(publication, old_sid)]
        assert publication.sid != old_sid
        assert publication.sid.startswith("TR_")
        assert publication.track is not None
        assert publication.track.sid == publication.sid
        assert a.local_participant.track_publications == {publication.sid: publication}
        await reader  # the old stream ended with alice's old session
        again = await subscribed(b, "alice", timeout=15)
        assert again.sid == publication.sid
        frames.clear()
        reader = asyncio.create_task(collect(rtc.AudioStream(again.track), frames))
        await until(lambda: len(frames) > 60, 10)
        tail = np.concatenate(frames[-50:])
        assert rms(tail) > 1000
        assert round(peak_hz(tail) / 20) * 20 == 440
        feeder.cancel()
        reader.cancel()
        await a.disconnect()
        await b.disconnect()

    run_with_server(scenario)


def test_sync_room_surfaces_the_reconnect_events() -> None:
    from greenroom.rtc.sync import SyncRoom
    from greenroom.runtime import loop as runtime

    server = DevServer(ServerConfig(port=0)).start_in_thread()
    try:
        with SyncRoom() as room:
            room.connect(server.url, server.mint_token("alice", "r1"), timeout=10)
            room.wait_for("connected", timeout=5)  # the connect's own events

            async def end() -> bool:
                reason = rtc.DisconnectReason.MIGRATION
                return server.end_session("r1", "alice", reason=reason, action=LeaveAction.RECONNECT)

            assert runtime.run_sync(end(), timeout=5)
            seen = [room.next_event(10) for _ in range(4)]
            assert [(e.name, e.args) for e in seen if e is not None] == [
                ("connection_state_changed", (CONN.CONN_RECONNECTING,)),
                ("reconnecting", ()),
                ("connection_state_changed", (CONN.CONN_CONNECTED,)),
                ("reconnected", ()),
            ]
            assert room.connection_state == CONN.CONN_CONNECTED
            room.local_participant.publish_data(b"still here", timeout=5)
    finally:
        server.close_in_thread()
