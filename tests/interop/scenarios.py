"""Interop scenarios: the official ``livekit`` SDK (in subprocesses) against greenroom's dev server.

Each function runs inside a private network namespace (``tests.interop.netns.run_in_netns``): the server
binds ``198.18.0.1`` (the veth address, so libwebrtc — which never gathers loopback — can reach it) and
gathers ICE there; nothing leaves the namespace. Each returns a JSON-able dict the test asserts on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import websockets

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess
from tests.waiting import recorded_logs, wait_until

__all__ = ["duplicate_identity", "grants_and_bad_input", "room_lifecycle_and_data"]

# Default options = the SDK's own defaults: single_peer_connection=True, so it tries /rtc/v1 first and
# must fall back on our 404. The explicit v0 option skips that attempt.
DEFAULT: dict[str, Any] = {}
V0: dict[str, Any] = {"single_peer_connection": False}


@contextlib.asynccontextmanager
async def _server(**config: Any) -> AsyncIterator[DevServer]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    async with DevServer(ServerConfig(bind=HOST_IP, port=0, **config)) as server:
        yield server


@contextlib.asynccontextmanager
async def _peers(*labels: str) -> AsyncIterator[list[PeerProcess]]:
    peers = await asyncio.gather(*(PeerProcess("livekit", label).start() for label in labels))
    try:
        yield list(peers)
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)


def _named(name: str, **fields: Any) -> Any:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def _data(peer: PeerProcess) -> list[dict[str, Any]]:
    return [
        {"data": base64.b64decode(e["data"]).decode(), "from": e["from"], "topic": e["topic"]}
        for e in peer.received("data_received")
    ]


async def room_lifecycle_and_data() -> dict[str, Any]:
    """Three official clients: connect (default options and v0), data, metadata/name/attributes, leave."""
    async with _server() as server, _peers("alice", "bob", "carol") as (alice, bob, carol):
        grants: dict[str, Any] = {"can_update_own_metadata": True}
        connects = {}
        connects["alice"] = await alice.call(
            "connect", url=server.url, token=server.mint_token("alice", "r", **grants), options=DEFAULT
        )
        connects["bob"] = await bob.call(
            "connect", url=server.url, token=server.mint_token("bob", "r", **grants), options=V0
        )
        connects["carol"] = await carol.call(
            "connect", url=server.url, token=server.mint_token("carol", "r"), options=V0
        )
        await alice.wait_event(_named("participant_connected", identity="bob"))
        await alice.wait_event(_named("participant_connected", identity="carol"))
        await bob.wait_event(_named("participant_connected", identity="carol"))

        # data: both directions, reliable and lossy, topics, destinations
        await alice.send_data(b"a->all reliable", topic="t1")
        await bob.send_data(b"b->a reliable", topic="t2", destinations=["alice"])
        await alice.send_data(b"a->b lossy", reliable=False, topic="t3", destinations=["bob"])
        await bob.send_data(b"b->all lossy", reliable=False)
        await bob.wait_event(_named("data_received", topic="t3"))
        await alice.wait_event(_named("data_received", topic="t2"))
        await carol.wait_event(_named("data_received", topic="t1"))
        await alice.wait_event(lambda e: e.get("event") == "data_received" and e.get("topic") == "")
        await carol.wait_event(lambda e: e.get("event") == "data_received" and e.get("topic") == "")

        # metadata, name, attributes (bob watches alice)
        await alice.call("set_metadata", metadata="meta-1")
        await alice.call("set_name", name="Alice A.")
        await alice.call("set_attributes", attributes={"role": "host"})
        await bob.wait_event(_named("participant_metadata_changed", identity="alice", new="meta-1"))
        await bob.wait_event(_named("participant_name_changed", identity="alice", new="Alice A."))
        await bob.wait_event(_named("participant_attributes_changed", identity="alice"))
        carol_denied = ""
        try:
            await carol.call("set_metadata", metadata="nope", timeout=15)
        except RuntimeError as exc:
            carol_denied = str(exc)
        state = await bob.call("state")

        # leave
        await carol.call("disconnect")
        await alice.wait_event(_named("participant_disconnected", identity="carol"))
        await bob.wait_event(_named("participant_disconnected", identity="carol"))
        return {
            "connects": connects,
            "data": {p.label: _data(p) for p in (alice, bob, carol)},
            "attributes": [e["changed"] for e in bob.received("participant_attributes_changed")],
            "bob_state": state,
            "carol_denied": carol_denied,
        }


async def duplicate_identity() -> dict[str, Any]:
    """A second official client with the same identity replaces the first (DUPLICATE_IDENTITY)."""
    async with _server() as server, _peers("first", "second", "bob") as (first, second, bob):
        await first.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        joined = await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=V0)
        await second.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=DEFAULT)
        kicked = await first.wait_event(_named("disconnected"))
        await bob.wait_event(_named("participant_disconnected", identity="alice"))
        await bob.wait_event(_named("participant_connected", identity="alice"))
        await second.send_data(b"from the second alice", topic="dup")
        got = await bob.wait_event(_named("data_received", topic="dup"))
        return {
            "bob_saw_at_join": joined["remote"],
            "first_reason": kicked["reason"],
            "bob_got_from": got["from"],
        }


async def grants_and_bad_input() -> dict[str, Any]:
    """Bad tokens are refused clearly; data/transcription grants hold; garbage closes only its session."""
    async with (
        _server() as server,
        _peers("alice", "bob", "mute", "intruder") as (alice, bob, mute, intruder),
    ):
        refused = {}
        bad_tokens = {
            "bad signature": server.mint_token("x", "r").rsplit(".", 1)[0] + ".AAAA",
            "expired": server.mint_token("x", "r", ttl=datetime.timedelta(hours=-1)),
            "no roomJoin": server.mint_token("x", "r", room_join=False),
        }
        for name, token in bad_tokens.items():
            try:
                await intruder.call("connect", url=server.url, token=token, options=V0, timeout=20)
                refused[name] = "CONNECTED"
            except RuntimeError as exc:
                refused[name] = str(exc)

        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        await bob.call(
            "connect", url=server.url, token=server.mint_token("bob", "r", kind="agent"), options=V0
        )
        await mute.call(
            "connect",
            url=server.url,
            token=server.mint_token("mute", "r", can_publish_data=False),
            options=V0,
        )
        await alice.wait_event(_named("participant_connected", identity="mute"))

        # garbage on the signal socket of a fresh session, while alice and bob keep talking
        garbage_leave = await _send_garbage(server)
        for n in range(20):
            await alice.send_data(f"{n}".encode(), topic="seq")
        await bob.wait_event(lambda e: e.get("event") == "data_received" and e.get("data") == _b64("19"))

        with recorded_logs("greenroom.devserver.participant") as logs:
            await mute.send_data(b"should be dropped", topic="muted")
            # mute's path has no later packet to act as a marker: wait for the server's decision on it
            await wait_until(
                lambda: logs.count("[r/mute] dropped a data packet: sender lacks canPublishData") == 1,
                what="the server to drop mute's packet",
            )
        segment = {
            "id": "s1",
            "text": "hello",
            "start_time": 0,
            "end_time": 1,
            "final": True,
            "language": "en",
        }
        # The Rust SDK drops a received transcription whose track sid is not a TR_ id, so give one.
        track = "TR_transcribed01"
        await alice.call("publish_transcription", identity="alice", track_sid=track, segments=[segment])
        await bob.call("publish_transcription", identity="bob", track_sid=track, segments=[segment])
        await alice.wait_event(_named("transcription_received", **{"from": "bob"}))
        # alice's marker follows her transcription on her path to bob (the barrier for "dropped")
        await alice.send_data(b"marker", topic="marker")
        await bob.wait_event(_named("data_received", topic="marker"))
        return {
            "refused": refused,
            "garbage_leave": garbage_leave,
            "bob_seq": len(bob.received("data_received")),
            "bob_topics": [e["topic"] for e in bob.received("data_received")],
            "transcriptions_at_bob": len(bob.received("transcription_received")),
            "transcriptions_at_alice": [e["from"] for e in alice.received("transcription_received")],
            "alice_connected": (await alice.call("state"))["connected"],
        }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _send_garbage(server: DevServer) -> int | None:
    """Join raw, send a non-protobuf frame; return the LeaveRequest reason the server answered with."""
    from greenroom.codecs.signalling import Leave, decode_response

    token = server.mint_token("garbage", "r")
    reason = None
    async with websockets.connect(
        f"{server.url}/rtc?sdk=python&protocol=16", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.send(b"\xff\xfe garbage \x00")
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in ws:
                assert isinstance(frame, bytes)
                message = decode_response(frame)
                if isinstance(message, Leave):
                    reason = int(message.reason)
    return reason
