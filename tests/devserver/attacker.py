"""The attacking side of the flood scenarios, run as its own process (``python -m tests.devserver.attacker``).

A separate process, so that what the flood costs the *attacker* (encoding 300,000 pings, building 3,000
clients) neither slows the well-behaved pair nor counts in the server's memory: ``tests/devserver/floods.py``
runs the server and the pair in the test's process and measures those alone.

Protocol: the command is one JSON object in the file named by ``argv[1]`` — ``{"case", "url", "host",
"port", "tokens", "scale"}`` (a file: thousands of tokens do not fit in an argument). The attacker runs the
attack, prints ``RESULT <json>`` (what it observed: what the server told it, how far it got), then keeps its
connections open until its stdin closes, so that the test can look at the server while the attacker is still
there; then it closes everything and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from greenroom.codecs.models import IceCandidate, SignalTarget, TrackType
from greenroom.codecs.signalling import (
    AddTrackRequest,
    JoinParams,
    Leave,
    PingReq,
    RequestResponse,
    SubscriptionResponse,
    TrackPublished,
    Trickle,
    UpdateSubscription,
    decode_response,
    encode_request,
)
from tests.devserver.rawclient import RawClient

__all__ = ["RESULT", "Lurker", "main"]

RESULT = "RESULT "

Cleanup = Callable[[], Awaitable[None]]


class Target:
    """Where to attack, and with which tokens (the test mints them; the attacker knows no secret)."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.url: str = command["url"]
        self.host: str = command["host"]
        self.port: int = command["port"]
        self.tokens: dict[str, str] = command["tokens"]


async def open_socket(target: Target, *, rcvbuf: int | None = None) -> socket.socket:
    """A connected TCP socket (optionally with a small receive buffer, which a reader that stops fills)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (target.host, target.port))
    return sock


class Lurker:
    """A raw signal connection that never answers the subscriber offer (its peer connection never comes up);
    it reads everything the server sends, or — with ``read=False`` — nothing at all."""

    def __init__(self, ws: ClientConnection, *, read: bool) -> None:
        self.ws = ws
        self.leave: Leave | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read()) if read else None

    @classmethod
    async def open(
        cls, target: Target, token: str, *, read: bool = True, rcvbuf: int | None = None
    ) -> Lurker:
        """Connect with ``token``."""
        params = JoinParams(sdk="python", version="lurker", protocol=16)
        ws = await websockets.connect(
            f"{target.url}/rtc?{params.to_query()}",
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=None,
            max_queue=16 if read else 1,
            sock=await open_socket(target, rcvbuf=rcvbuf),
        )
        return cls(ws, read=read)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = decode_response(frame)
                if isinstance(message, Leave):
                    self.leave = message
        self.closed.set()

    async def send(self, message: Any) -> None:
        """Send one SignalRequest."""
        await self.ws.send(encode_request(message))

    def told(self) -> dict[str, Any]:
        """The LeaveRequest's reason and the close code/reason the server sent (if any)."""
        return {
            "leave": None if self.leave is None else self.leave.reason.name,
            "close": [self.ws.close_code, self.ws.close_reason],
        }

    async def close(self) -> None:
        """Close (and stop reading)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.ws.close()
        self.ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.closed.set()


async def _barrier_or_closed(client: RawClient, timeout: float = 30) -> None:
    """A ping answered (the server read everything sent before it), or the server closed the connection."""
    barrier = asyncio.ensure_future(client.signal_barrier(timeout))
    closed = asyncio.ensure_future(client.closed.wait())
    done, pending = await asyncio.wait({barrier, closed}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if closed not in done:
        barrier.result()  # a failed barrier on an open connection is an error


async def _keepalive(*clients: Lurker | RawClient) -> None:
    """Ping every 2 s, as the SDKs do every 5 s: an attack that takes longer than the server's ping timeout
    must not end for that."""
    while True:
        await asyncio.sleep(2)
        for client in clients:
            with contextlib.suppress(ConnectionClosed, ConnectionError):
                if isinstance(client, RawClient):
                    await client.ping()
                else:
                    await client.send(PingReq(timestamp=int(time.time() * 1000)))


def _pinging(*clients: Lurker | RawClient) -> Cleanup:
    """Keep ``clients`` alive until the cleanup, which then closes them."""
    pinger = asyncio.create_task(_keepalive(*clients))

    async def cleanup() -> None:
        pinger.cancel()
        await _closing(*clients)

    return cleanup


async def _closing(*clients: Lurker | RawClient) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


# --- attacks: each returns (what it observed, how to clean up) ---------------------------------------------


async def ping_flood(target: Target, *, pings: int) -> tuple[dict[str, Any], Cleanup]:
    """``pings`` ping_req as fast as they go, until the server closes."""
    flooder = await Lurker.open(target, target.tokens["flooder"])
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        while sent < pings:
            await flooder.send(PingReq(timestamp=sent))
            sent += 1
    await asyncio.wait_for(flooder.closed.wait(), 10)
    return {"sent": sent, **flooder.told()}, lambda: _closing(flooder)


async def slow_reader(target: Target, *, updates: int) -> tuple[dict[str, Any], Cleanup]:
    """``sleeper`` reads nothing but pings after each of carol's 60 KB metadata updates, until its connection
    is cut."""
    sleeper = await Lurker.open(target, target.tokens["sleeper"], read=False, rcvbuf=4096)
    carol = await RawClient.open(target.url, target.tokens["carol"])
    sent, cut = 0, False
    while sent < updates and not cut:
        sent += 1
        request = await carol.update_metadata(metadata=f"{sent:06d}" + "m" * 60_000)
        await carol.wait_message(RequestResponse, lambda r, n=request: r.request_id == n)  # type: ignore[misc]
        carol.messages.clear()
        try:
            await sleeper.send(PingReq(timestamp=sent))  # it keeps its session alive
        except (ConnectionClosed, ConnectionError):
            cut = True
    return {"updates": sent, "cut": cut}, lambda: _closing(carol, sleeper)


async def trickle_flood(target: Target, *, trickles: int) -> tuple[dict[str, Any], Cleanup]:
    """Candidates for a publisher PC that was never offered, then a ping as the barrier."""
    client = await RawClient.open(target.url, target.tokens["trickler"])
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        for n in range(trickles):
            line = f"candidate:{n} 1 udp 2130706431 127.0.0.1 {1024 + n % 60000} typ host"
            await client.send(Trickle(candidate=IceCandidate(line, "0", 0), target=SignalTarget.PUBLISHER))
            sent += 1
    await _barrier_or_closed(client)  # the server read every trickle before the ping, or cut the client
    leave = next((m for m in client.messages if isinstance(m, Leave)), None)
    return {"sent": sent, "leave": leave and leave.reason.name}, lambda: _closing(client)


async def add_track_flood(target: Target, *, requests: int, name_size: int) -> tuple[dict[str, Any], Cleanup]:
    """AddTrackRequests with long names and no offer."""
    client = await RawClient.open(target.url, target.tokens["adder"])
    for n in range(requests):
        await client.send(AddTrackRequest(cid=f"c{n}", name="n" * name_size, type=TrackType.AUDIO))
    await client.signal_barrier(timeout=60)
    refused = [m for m in client.messages if isinstance(m, RequestResponse)]
    observed = {
        "published": sum(isinstance(m, TrackPublished) for m in client.messages),
        "refused": len(refused),
        "reasons": sorted({r.reason.name for r in refused}),
        "last_cid": refused[-1].add_track_cid if refused else None,
    }
    client.messages.clear()
    return observed, lambda: _closing(client)


async def unknown_sids(target: Target, *, sids: int) -> tuple[dict[str, Any], Cleanup]:
    """One UpdateSubscription naming ``sids`` track sids nobody publishes."""
    client = await RawClient.open(target.url, target.tokens["subscriber"])
    await client.send(UpdateSubscription(tuple(f"TR_{n:012d}" for n in range(sids)), subscribe=True))
    before_pong = await client.signal_barrier(timeout=30)
    answers = sum(isinstance(m, SubscriptionResponse) for m in before_pong)
    return {"answers": answers}, lambda: _closing(client)


async def undeliverable_data(target: Target, *, packets: int, size: int) -> tuple[dict[str, Any], Cleanup]:
    """carol sends reliable packets to ``mute``, whose data channel never opens."""
    mute = await Lurker.open(target, target.tokens["mute"])
    carol = await RawClient.join(target.url, target.tokens["carol"])
    cleanup = _pinging(mute, carol)
    started = time.monotonic()
    for n in range(packets):
        await carol.send_user(b"%06d" % n + b"d" * (size - 6), destinations=("mute",))
    rate = packets * size / (time.monotonic() - started) / (1 << 20)
    return {"sent": packets, "send_mb_s": round(rate, 2)}, cleanup


async def held_joins(target: Target, *, joins: int) -> tuple[dict[str, Any], Cleanup]:
    """Connections that read but never bring their peer connection up; waits until the server ends them."""
    held = [await Lurker.open(target, target.tokens[f"held{n}"]) for n in range(joins)]
    await asyncio.wait_for(asyncio.gather(*(h.closed.wait() for h in held)), 60)
    reasons = sorted({h.leave.reason.name if h.leave else "none" for h in held})
    return {"joins": joins, "reasons": reasons}, lambda: _closing(*held)


async def failed_handshakes(target: Target, *, upgrades: int) -> tuple[dict[str, Any], Cleanup]:
    """Upgrades with a valid token whose handshake then fails: half a bad key (400), half gone before the
    101 is written."""
    head = f"GET /rtc HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {target.tokens['x']}\r\n"
    head += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    statuses: dict[str, int] = {}
    for n in range(upgrades):
        reader, writer = await asyncio.open_connection(target.host, target.port)
        if n % 2:
            writer.write((head + "Sec-WebSocket-Key: short\r\n\r\n").encode())
            status = (await reader.readline()).decode().split(" ")[1]
            statuses[status] = statuses.get(status, 0) + 1
        else:
            writer.write((head + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
            await writer.drain()
            writer.transport.abort()  # gone before the 101
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return {"upgrades": upgrades, "statuses": statuses}, _nothing


async def connect_churn(target: Target, *, cycles: int, concurrency: int) -> tuple[dict[str, Any], Cleanup]:
    """Join-and-leave cycles from one address, ``concurrency`` at a time, as fast as they go; then one more
    connect, retried after the server's ``Retry-After`` until it is let in."""
    outcomes: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def cycle(token: str) -> None:
        async with gate:
            try:
                lurker = await Lurker.open(target, token, read=False)  # light: no peer connection here
            except InvalidStatus as exc:
                key = f"refused {exc.response.status_code}"
            else:
                await lurker.ws.recv()  # the JoinResponse: joined
                await lurker.close()
                key = "joined"
            outcomes[key] = outcomes.get(key, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(cycle(target.tokens[f"churn{n}"]) for n in range(cycles)))
    outcomes["cycles_per_s"] = round(cycles / (time.monotonic() - started))
    late = await _connect_when_allowed(target, target.tokens["latecomer"])
    return outcomes, lambda: _closing(late)


async def _connect_when_allowed(target: Target, token: str) -> RawClient:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await RawClient.open(target.url, token)
        except InvalidStatus as exc:
            if exc.response.status_code != 429 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(float(exc.response.headers.get("Retry-After", "1")))  # the server's answer


async def _nothing() -> None:
    return None


ATTACKS: dict[str, Callable[..., Awaitable[tuple[dict[str, Any], Cleanup]]]] = {
    f.__name__: f
    for f in (
        ping_flood,
        slow_reader,
        trickle_flood,
        add_track_flood,
        unknown_sids,
        undeliverable_data,
        held_joins,
        failed_handshakes,
        connect_churn,
    )
}


async def _main(command: dict[str, Any]) -> None:
    observed, cleanup = await ATTACKS[command["case"]](Target(command), **command["scale"])
    print(RESULT + json.dumps(observed), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await cleanup()


def main() -> None:
    """Run the attack named in the JSON command in the file ``argv[1]``."""
    with open(sys.argv[1], encoding="utf-8") as file:
        command = json.load(file)
    asyncio.run(_main(command))


if __name__ == "__main__":
    main()
