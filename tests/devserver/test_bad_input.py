"""Bad input closes only the session that sent it; two other clients keep exchanging data throughout."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from greenroom.codecs.models import DisconnectReason
from greenroom.codecs.packets import DataPacket, UserPacket, encode_packet
from greenroom.codecs.signalling import Leave, decode_response
from greenroom.devserver.server import DevServer
from greenroom.runtime.peer import RELIABLE
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient

MAX_SIGNAL = 4096

BAD_FRAMES: dict[str, bytes | str] = {
    "garbage bytes": b"\xff\xfe\x00garbage\x01\x02",
    "text frame": "hello, I am text",
    "empty SignalRequest (no oneof)": b"",
    "unknown oneof field": b"\xf8\x06\x01",  # field 111, varint: valid protobuf, not a SignalRequest variant
    "truncated protobuf": b"\x0a\x10abc",
    "bad trickle JSON": b"\x1a\x0c\x0a\x08{not json\x10\x00",
}


async def _chatter(alice: RawClient, bob: RawClient, stop: asyncio.Event) -> int:
    """Alice → Bob reliable packets until stopped; returns how many Bob got (all must arrive)."""
    sent = 0
    while not stop.is_set():
        sent += 1
        await alice.send_user(str(sent).encode())
        await bob.next_packet(lambda r, n=sent: r.packet.sequence == n, timeout=5)  # type: ignore[misc]
        await asyncio.sleep(0.005)  # pacing: the chatter goes on while the bad input is sent (the scenario)
    return sent


async def _expect_leave(ws: websockets.ClientConnection) -> Leave | None:
    """Read until the server closes; return the LeaveRequest it sent first (if any)."""
    leave = None
    try:
        async with asyncio.timeout(5):
            async for frame in ws:
                assert isinstance(frame, bytes)
                message = decode_response(frame)
                if isinstance(message, Leave):
                    leave = message
    except ConnectionClosed:
        pass
    return leave


@pytest.mark.timeout(60)
def test_bad_input_closes_only_the_offender() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        stop = asyncio.Event()
        chatter = asyncio.create_task(_chatter(alice, bob, stop))

        for index, (name, frame) in enumerate(BAD_FRAMES.items()):
            bad = await RawClient.open(server.url, server.mint_token(f"bad{index}", "r"))
            await bad.send_raw(frame)
            await asyncio.wait_for(bad.closed.wait(), 5)
            leaves = [m for m in bad.messages if isinstance(m, Leave)]
            assert leaves, f"{name}: no LeaveRequest before the close"
            assert leaves[-1].reason in (DisconnectReason.SIGNAL_CLOSE, DisconnectReason.STATE_MISMATCH), name
            await bad.close()

        # Oversize frame: websockets closes with 1009 (message too big) before any protobuf is read.
        big = await RawClient.open(server.url, server.mint_token("big", "r"))
        await big.send_raw(b"\x00" * (MAX_SIGNAL + 1))
        await asyncio.wait_for(big.closed.wait(), 5)
        assert big.ws.close_code == 1009
        await big.close()

        # A packet above 64,000 bytes on the data channel is refused and logged; the sender stays.
        assert alice.publisher is not None
        huge = encode_packet(DataPacket(UserPacket(b"x" * 64_100)), max_size=1 << 20)
        alice.publisher._max_message_size = None  # bypass our own client-side limit on purpose
        await alice.publisher.send(RELIABLE, huge)

        # Raw sockets that never speak protobuf at all: plain HTTP garbage on the port.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
        writer.close()

        stop.set()
        delivered = await chatter
        assert delivered > 5
        assert not alice.closed.is_set()
        assert not bob.closed.is_set()
        # The server still admits and serves newcomers.
        carol = await RawClient.join(server.url, server.mint_token("carol", "r"))
        await alice.send_user(b"after")
        assert (await carol.next_packet()).packet.participant_identity == "alice"
        for client in (alice, bob, carol):
            await client.close()

    run_with_server(scenario, max_signal_size=MAX_SIGNAL)
