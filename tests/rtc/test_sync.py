"""The sync facade (``greenroom.rtc.sync.SyncRoom``) against the real dev server: from a thread with no event
loop, from spawned and forked ``multiprocessing`` children (the parent having used greenroom already), event
order and threads, misuse, bad input, and cleanup after ``disconnect()``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import multiprocessing
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from greenroom import rtc
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.rtc.participant import PublishDataError
from greenroom.rtc.sync import SyncEvent, SyncRoom, SyncRoomError
from tests.helpers import assert_eventually
from tests.rtc.support import actor_count, runtime_tasks

#: Set in the parent before forking: the forked child checks it cannot use it.
_INHERITED: SyncRoom | None = None


@pytest.fixture
def server() -> Iterator[DevServer]:
    """A dev server on 127.0.0.1:0, running on greenroom's runtime loop (the test thread stays sync)."""
    dev = DevServer(ServerConfig(port=0)).start_in_thread()
    try:
        yield dev
    finally:
        dev.close_in_thread()


def _sync_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("greenroom-sync"))


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a fresh thread (which has no event loop) and return its result or raise its error."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="worker") as pool:
        return pool.submit(fn).result(timeout=50)


def _connected(server: DevServer, identity: str, **grants: Any) -> SyncRoom:
    grants.setdefault("can_update_own_metadata", True)
    kind = grants.pop("kind", "")
    room = SyncRoom()
    room.connect(server.url, server.mint_token(identity, "r1", kind=kind, **grants), timeout=15)
    return room


def _footprint() -> tuple[int, int, list[str]]:
    return actor_count(), runtime_tasks(), _sync_threads()


def test_data_both_ways_from_a_thread_without_a_loop(server: DevServer) -> None:
    def scenario() -> None:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        with _connected(server, "alice") as alice, _connected(server, "bob") as bob:
            assert alice.isconnected()
            assert alice.connection_state == rtc.ConnectionState.CONN_CONNECTED
            assert alice.sid.startswith("RM_")
            assert alice.name == "r1"
            assert alice.local_participant.identity == "alice"
            assert alice.local_participant.sid.startswith("PA_")
            assert_eventually(lambda: "bob" in alice.remote_participants)
            assert sorted(bob.remote_participants) == ["alice"]

            alice.local_participant.publish_data(b"to-all", topic="news")
            alice.local_participant.publish_data("to-bob", destination_identities=["bob"], reliable=False)
            got = [bob.wait_for("data_received", timeout=5).args[0] for _ in range(2)]
            first, second = sorted(got, key=lambda p: bytes(p.data))  # two channels: either order
            assert isinstance(first, rtc.DataPacket)
            assert first.participant is not None
            assert (first.data, first.topic, first.participant.identity) == (b"to-all", "news", "alice")
            assert (second.data, second.kind) == (b"to-bob", rtc.DataPacketKind.KIND_LOSSY)

            bob.local_participant.publish_data(b"back", topic="reply")
            packet = alice.wait_for("data_received", lambda p: p.topic == "reply", timeout=5).args[0]
            assert packet.data == b"back"
            assert packet.participant.identity == "bob"
            with pytest.raises(PublishDataError, match="64000"):
                alice.local_participant.publish_data(b"x" * 64_001)

    _in_thread(scenario)


def test_metadata_name_attributes_dtmf_transcription(server: DevServer) -> None:
    with _connected(server, "bob") as bob, _connected(server, "agent", kind="agent") as agent:
        local = agent.local_participant
        local.set_metadata("m1")
        local.set_name("Agent Smith")
        local.set_attributes({"role": "bot"})
        assert (local.metadata, local.name, local.attributes) == ("m1", "Agent Smith", {"role": "bot"})
        bob.wait_for("participant_attributes_changed", timeout=5)
        remote = bob.remote_participants["agent"]
        assert (remote.metadata, remote.name, remote.attributes) == ("m1", "Agent Smith", {"role": "bot"})

        local.publish_dtmf(code=11, digit="#")
        dtmf = bob.wait_for("sip_dtmf_received", timeout=5).args[0]
        assert (dtmf.code, dtmf.digit, dtmf.participant.identity) == (11, "#", "agent")
        segments = [rtc.TranscriptionSegment("s1", "hello", 0, 10, "en", True)]
        local.publish_transcription(rtc.Transcription("bob", "TR_bobmic", segments))
        got, participant, _publication = bob.wait_for("transcription_received", timeout=5).args
        assert got == segments
        assert participant.identity == "bob"


def test_callbacks_run_in_order_on_the_event_thread_and_cannot_block_it(server: DevServer) -> None:
    runtime_thread = "greenroom-runtime"
    with _connected(server, "alice") as alice, _connected(server, "bob") as bob:
        seen: list[tuple[bytes, str]] = []
        misuse: list[BaseException] = []

        @bob.on("data_received")
        def record(packet: rtc.DataPacket) -> None:
            seen.append((packet.data, threading.current_thread().name))

        def blocking(packet: rtc.DataPacket) -> None:
            try:
                bob.local_participant.publish_data(b"from a callback")
            except SyncRoomError as exc:
                misuse.append(exc)
            assert sorted(bob.remote_participants) == ["alice"]  # a snapshot works here too

        def explode(packet: rtc.DataPacket) -> None:
            raise RuntimeError("a faulty listener")

        bob.once("data_received", blocking)
        bob.on("data_received", explode)  # logged; the room carries on
        payloads = [f"{i}".encode() for i in range(50)]
        for payload in payloads:
            alice.local_participant.publish_data(payload)
        pulled = [bob.wait_for("data_received", timeout=5).args[0].data for _ in payloads]
        assert pulled == payloads
        assert [data for data, _ in seen] == payloads
        threads = {name for _, name in seen}
        assert len(threads) == 1
        (thread,) = threads
        assert thread.startswith("greenroom-sync-")
        assert thread != runtime_thread
        assert len(misuse) == 1
        assert "event thread" in str(misuse[0])
        assert bob.isconnected()


def test_events_iterator_queue_bound_and_disconnect_event(server: DevServer) -> None:
    alice = _connected(server, "alice")
    bob = SyncRoom(max_queued_events=3)
    bob.connect(server.url, server.mint_token("bob", "r1"))
    last = threading.Event()

    @bob.on("data_received")  # callbacks run after the event was queued
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.data == b"9":
            last.set()

    for i in range(10):
        alice.local_participant.publish_data(f"{i}".encode(), destination_identities=["bob"])
    assert last.wait(5)
    assert bob.dropped_events == 9  # connection_state_changed, connected, b"0" … b"6"
    assert [e.args[0].data for e in bob.events(timeout=0.2)] == [b"7", b"8", b"9"]
    bob.disconnect()
    assert [e.name for e in bob.events(timeout=1)] == ["connection_state_changed", "disconnected"]
    assert bob.next_event(timeout=0.05) is None
    alice.disconnect()
    alice.disconnect()  # twice is fine
    assert not alice.isconnected()
    assert alice.remote_participants == {}


def test_disconnect_leaves_no_actor_task_or_thread(server: DevServer) -> None:
    warm = _connected(server, "warmup")
    warm.disconnect()
    actors, tasks, threads = _footprint()
    rooms = [_connected(server, f"p{i}") for i in range(3)]
    rooms[0].local_participant.publish_data(b"hi")
    assert actor_count() >= actors + 6
    assert len(_sync_threads()) == 3
    for room in rooms:
        room.disconnect()
    assert_eventually(lambda: _footprint() == (actors, tasks, threads), timeout=10)
    assert threads == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_errors_carry_the_reason_and_leave_nothing(server: DevServer) -> None:
    warm = _connected(server, "warmup")
    warm.disconnect()
    before = _footprint()
    room = SyncRoom()
    with pytest.raises(rtc.ConnectError, match="401"):
        room.connect(server.url, "not-a-token")
    with pytest.raises(rtc.ConnectError):
        room.connect(f"ws://127.0.0.1:{_free_port()}", server.mint_token("a", "r1"), timeout=5)
    assert not room.isconnected()
    assert_eventually(lambda: _footprint() == before, timeout=10)
    room.connect(server.url, server.mint_token("a", "r1"))  # the same SyncRoom connects afterwards
    with pytest.raises(SyncRoomError, match="already connected"):
        room.connect(server.url, server.mint_token("a", "r1"))
    local = room.local_participant
    room.disconnect()
    with pytest.raises(SyncRoomError, match="not connected"):
        local.publish_data(b"x")
    with pytest.raises(SyncRoomError, match="before connecting"):
        _ = room.local_participant
    assert_eventually(lambda: _footprint() == before, timeout=10)


# -- multiprocessing -----------------------------------------------------------------------------------------


def _child_session(url: str, token: str, parent: str) -> dict[str, Any]:
    """In the child: check an inherited room is refused, join, talk to ``parent``, leave; report."""
    faulthandler.dump_traceback_later(30, exit=False)  # where a hung child waits (to stderr)
    refused = ""
    if _INHERITED is not None:
        try:
            _INHERITED.local_participant.publish_data(b"from an inherited room")
        except SyncRoomError as exc:
            refused = str(exc)
    actors = actor_count()
    with SyncRoom() as room:
        room.connect(url, token, timeout=20)
        identity = room.local_participant.identity
        assert_eventually(lambda: parent in room.remote_participants, timeout=10)
        room.local_participant.publish_data(identity.encode(), destination_identities=[parent], topic="child")
        reply = room.wait_for("data_received", lambda p: p.topic == "reply", timeout=10).args[0]
    faulthandler.cancel_dump_traceback_later()
    return {
        "pid": os.getpid(),
        "reply": reply.data.decode(),
        "refused": refused,
        "actors_left": actor_count() - actors,
        "sync_threads": _sync_threads(),
        "runtime_tasks": runtime_tasks(),
    }


def _talk_to_child(url: str, tokens: dict[str, str], method: str) -> dict[str, Any]:
    """Connect a "parent" room, use it, start a child process with ``method``, talk to it; report."""
    global _INHERITED
    parent = SyncRoom()
    parent.connect(url, tokens["parent"], timeout=15)
    parent.local_participant.set_metadata("used before the fork")  # the runtime and event threads run
    _INHERITED = parent
    try:
        context = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            child = f"child-{method}"
            future = pool.submit(_child_session, url, tokens[child], "parent")
            event: SyncEvent = parent.wait_for("data_received", lambda p: p.topic == "child", timeout=40)
            assert event.args[0].data == child.encode()
            parent.local_participant.publish_data(
                f"hello {child}", destination_identities=[child], topic="reply"
            )
            result: dict[str, Any] = future.result(timeout=40)
        assert result["pid"] != os.getpid()
        assert result["reply"] == f"hello {child}"
        assert result["actors_left"] == 0
        assert result["sync_threads"] == []
        assert result["runtime_tasks"] == 1  # the loop-lag watchdog only
        parent.wait_for("participant_disconnected", timeout=10)
        assert parent.isconnected()
        return result
    finally:
        _INHERITED = None
        parent.disconnect()


def _tokens(server: DevServer, method: str) -> dict[str, str]:
    grants: dict[str, Any] = {"can_update_own_metadata": True}
    return {name: server.mint_token(name, "r1", **grants) for name in ("parent", f"child-{method}")}


def test_from_a_spawned_child(server: DevServer) -> None:
    result = _talk_to_child(server.url, _tokens(server, "spawn"), "spawn")
    assert result["refused"] == ""  # a spawned child inherits nothing


def test_from_a_forked_child_after_the_parent_used_greenroom(server: DevServer) -> None:
    """The forking parent is a fresh process that used greenroom (as a user's worker would), not this test
    runner: forking the runner, which carries the threads left by hundreds of earlier tests, hung the child
    twice in ~1,000-test runs on a loaded machine (cause not yet found; the child dumps its stacks after 30 s
    to say where, should it happen again here)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        result = fresh.submit(_talk_to_child, server.url, _tokens(server, "fork"), "fork").result(timeout=90)
    assert "created in process" in result["refused"]
