"""SignalTransport against a small websockets server on 127.0.0.1 (started on the runtime loop)."""

from __future__ import annotations

import asyncio
import http
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from greenroom.runtime import loop as rt
from greenroom.runtime.signal_transport import (
    SignalBytes,
    SignalClosed,
    SignalConnectError,
    SignalNotConnectedError,
    SignalTransport,
    signal_url,
)
from tests.helpers import assert_eventually_async


class Collect:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def tell(self, message: Any) -> None:
        self.events.append(message)


class FakeServer:
    """Records each upgrade request; rejects some paths; echoes binary frames; closes on request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.url = ""

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        path = urllib.parse.urlsplit(request.path).path
        if path == "/rtc/v1":
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        if "Bearer bad" in request.headers.get("Authorization", ""):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid token: signature mismatch\n")
        if path == "/rtc/empty-403":
            return Response(403, "Forbidden", Headers([("Content-Length", "0")]), b"")
        return None

    async def handler(self, connection: ServerConnection) -> None:
        path = urllib.parse.urlsplit(connection.request.path if connection.request else "").path
        if path == "/rtc/text":  # a server that is not LiveKit: JSON in a text frame
            await connection.send('{"join": {}}')
        elif path == "/rtc/huge":
            await connection.send(b"x" * 2_000_000)
        async for message in connection:
            if message == b"close-me":
                await connection.close(4001, "bye")
            elif message == b"drop-me":
                connection.transport.abort()
            else:
                await connection.send(b"echo:" + bytes(message))  # type: ignore[arg-type]


@asynccontextmanager
async def running_server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}"
        yield fake


def run(test: Callable[[FakeServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running_server() as fake:
            await test(fake)

    rt.run_sync(main(), timeout=30)


def _query(request: Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.path).query))


def test_signal_url() -> None:
    assert signal_url("ws://h:7880", {"a": "1"}) == "ws://h:7880/rtc?a=1"
    assert signal_url("http://h/base/", {}) == "ws://h/base/rtc"
    assert signal_url("https://h/?x=y", {"a": "b c"}) == "wss://h/rtc?x=y&a=b+c"
    assert signal_url("wss://h", path="/rtc/v1/") == "wss://h/rtc/v1"
    with pytest.raises(SignalConnectError) as caught:
        signal_url("ftp://h")
    assert caught.value.status is None


def test_token_in_header_bytes_both_ways_and_local_close() -> None:
    async def body(fake: FakeServer) -> None:
        sink = Collect()
        signal = SignalTransport(sink)
        await signal.connect(fake.url, "tok", {"auto_subscribe": "1", "sdk": "python"}, timeout=5)
        assert signal.is_open
        request = fake.requests[-1]
        assert request.headers["Authorization"] == "Bearer tok"
        assert urllib.parse.urlsplit(request.path).path == "/rtc"
        assert _query(request) == {"auto_subscribe": "1", "sdk": "python"}
        await signal.send(b"\x00\x01hello")
        await signal.send(bytearray(b"two"))  # type: ignore[arg-type]
        await assert_eventually_async(lambda: len(sink.events) == 2)
        assert sink.events == [SignalBytes(b"echo:\x00\x01hello"), SignalBytes(b"echo:two")]
        with pytest.raises(SignalConnectError):
            await signal.connect(fake.url, "tok")  # one connection per transport
        await asyncio.gather(signal.close(), signal.close())
        await signal.close()
        assert sink.events[-1] == SignalClosed(1000, "", local=True)
        assert [type(e) for e in sink.events].count(SignalClosed) == 1
        assert not signal.is_open
        with pytest.raises(SignalNotConnectedError):
            await signal.send(b"late")

    run(body)


def test_token_in_query() -> None:
    async def body(fake: FakeServer) -> None:
        signal = SignalTransport(Collect())
        await signal.connect(fake.url, "tok", {"protocol": "16"}, token_in_query=True)
        request = fake.requests[-1]
        assert "Authorization" not in request.headers
        assert _query(request) == {"protocol": "16", "access_token": "tok"}
        await signal.close()

    run(body)


def test_refused_upgrades_carry_status_and_body() -> None:
    async def body(fake: FakeServer) -> None:
        with pytest.raises(SignalConnectError) as unauthorized:
            await SignalTransport(Collect()).connect(fake.url, "bad")
        assert (unauthorized.value.status, unauthorized.value.reason) == (
            401,
            "invalid token: signature mismatch",
        )
        assert "401" in str(unauthorized.value)
        with pytest.raises(SignalConnectError) as not_found:
            await SignalTransport(Collect()).connect(fake.url, "tok", path="rtc/v1")
        assert (not_found.value.status, not_found.value.reason) == (404, "not found")
        with pytest.raises(SignalConnectError) as forbidden:
            await SignalTransport(Collect()).connect(fake.url, "tok", path="rtc/empty-403")
        assert (forbidden.value.status, forbidden.value.reason) == (403, "Forbidden")

    run(body)


def test_unreachable_servers() -> None:
    async def body(fake: FakeServer) -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(SignalConnectError) as refused:
            await SignalTransport(Collect()).connect(f"ws://127.0.0.1:{port}", "tok", timeout=2)
        assert refused.value.status is None
        assert "cannot connect to 127.0.0.1" in refused.value.reason

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accept and never answer the upgrade
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(SignalConnectError) as slow:
                await SignalTransport(Collect()).connect(f"ws://127.0.0.1:{port}", "tok", timeout=0.2)
            assert slow.value.status is None
            assert "timed out" in slow.value.reason
        finally:
            server.close()
            await server.wait_closed()

    run(body)


def test_server_close_and_drop_are_reported() -> None:
    async def body(fake: FakeServer) -> None:
        sink = Collect()
        signal = SignalTransport(sink)
        await signal.connect(fake.url, "tok")
        await signal.send(b"close-me")
        await assert_eventually_async(lambda: bool(sink.events))
        assert sink.events == [SignalClosed(4001, "bye", local=False)]
        assert not signal.is_open
        with pytest.raises(SignalNotConnectedError):
            await signal.send(b"late")
        await signal.close()
        assert len(sink.events) == 1

        dropped = Collect()
        signal = SignalTransport(dropped, keepalive=None)
        await signal.connect(fake.url, "tok")
        await signal.send(b"drop-me")
        await assert_eventually_async(lambda: bool(dropped.events))
        assert dropped.events == [SignalClosed(1006, "", local=False)]
        await signal.close()

    run(body)


def test_a_text_frame_or_an_oversized_frame_ends_the_connection_with_the_reason() -> None:
    """Both are reported at once with their RFC 6455 code (not 1006), so a connect fails now, not at its
    deadline."""

    async def body(fake: FakeServer) -> None:
        for path, code in [("rtc/text", 1003), ("rtc/huge", 1009)]:
            sink = Collect()
            signal = SignalTransport(sink, max_message_size=1_000_000)
            await signal.connect(fake.url, "tok", path=path)
            await assert_eventually_async(lambda sink=sink: bool(sink.events))  # type: ignore[misc]
            assert len(sink.events) == 1
            closed = sink.events[0]
            assert isinstance(closed, SignalClosed)
            assert (closed.code, closed.local) == (code, False)
            await signal.close()

    run(body)


def test_close_before_connect_is_safe() -> None:
    async def body(fake: FakeServer) -> None:
        sink = Collect()
        signal = SignalTransport(sink)
        await signal.close()
        await signal.close()
        assert not signal.is_open
        assert sink.events == []
        with pytest.raises(SignalConnectError):
            await signal.connect(fake.url, "tok")
        with pytest.raises(SignalNotConnectedError):
            await signal.send(b"x")

    run(body)


def test_close_while_connecting() -> None:
    async def body(fake: FakeServer) -> None:
        sink = Collect()
        signal = SignalTransport(sink)
        connecting = asyncio.ensure_future(signal.connect(fake.url, "tok"))
        await asyncio.sleep(0)  # a yield: connect() starts, then close() lands mid-connect (the scenario)
        await signal.close()
        with pytest.raises(SignalConnectError, match="closed while connecting"):
            await connecting
        assert sink.events == []

    run(body)
