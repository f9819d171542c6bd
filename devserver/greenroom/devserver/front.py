"""The dev server's one HTTP front: WebSocket signalling and plain HTTP (Twirp, validate, health) on one port.

livekit-server serves everything on port 7880 — ``/rtc`` upgrades, ``/rtc/validate``, the Twirp APIs
(``POST /twirp/livekit.RoomService/…`` with protobuf or JSON bodies) and ``/`` (health). The websockets
library's server cannot do that: its handshake parser refuses any request that carries a body, so the
official ``livekit-api`` client's ``ListRooms`` was closed without a response (issue 18). aiohttp serves
WebSockets and ordinary requests on one listener, is maintained, and is already installed with
``livekit-api``; it is the front (decision recorded in ``docs/architecture.md``).

What stays as it was (``tests/devserver/test_http.py``, ``test_bad_input.py`` are the oracle):

* the signal session code (``participant.py``) reads and writes through :class:`SignalSocket`, which
  :class:`AiohttpSignalSocket` implements with the websockets semantics the session was written for: a
  ``recv()`` that returns ``bytes`` or ``str`` and raises :class:`websockets.exceptions.ConnectionClosed`
  when the socket closes — with ``sent.code == 1009`` when the peer sent a frame above
  ``max_signal_size`` (aiohttp closes with 1009 itself, as websockets did);
* no WebSocket compression, a keepalive ping every 20 s (websockets' default), the same header limits
  (8 KiB lines); reading a request body above :data:`MAX_BODY` is refused with a 413.

Traps: aiohttp's ``receive()`` returns ``CLOSING``/``CLOSED`` messages instead of raising, and a
``receive()`` after ``CLOSED`` more than a few times raises ``RuntimeError`` — the adapter raises
``ConnectionClosed`` on the first one. ``close()`` from the signal writer while the reader waits makes
the reader's ``receive()`` return ``CLOSING`` (aiohttp ``web_ws.py`` ``close``): that is the session's
"ended by the server" path, as with websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import WSMsgType, web
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

__all__ = [
    "KEEPALIVE_PING",
    "MAX_BODY",
    "AiohttpSignalSocket",
    "HandshakeFailedError",
    "HttpFront",
    "SignalSocket",
    "accept_websocket",
]

_log = logging.getLogger("greenroom.devserver.front")

MAX_BODY = 1 << 20
"""The largest HTTP request body read (Twirp requests); larger is refused with a 413."""

KEEPALIVE_PING = 20.0
"""Seconds between WebSocket keepalive pings (websockets' default, which the server used before)."""

_KEEPALIVE_TIMEOUT = 15.0  # an idle HTTP keep-alive connection is closed after this many seconds
_CLOSE_TIMEOUT = 2.0  # seconds a close waits for the peer's close frame (aiohttp's default is 10)
_CLOSE_REASON_BYTES = 123  # a close frame's reason is at most 123 bytes (RFC 6455 §5.5)
_ABNORMAL = 1006


class SignalSocket(Protocol):
    """The WebSocket a signal session reads and writes (websockets' ``ServerConnection`` shape)."""

    async def recv(self) -> bytes | str:
        """The next message; raises ``ConnectionClosed`` once the socket is closed."""

    async def send(self, message: bytes) -> None:
        """Send one binary message; raises ``ConnectionClosed`` if the socket is closed."""

    async def close(self, code: int = 1000, reason: str = "", *, wait_reply: bool = True) -> None:
        """Close with ``code`` and ``reason`` (idempotent); ``wait_reply`` False: without waiting for the
        peer's close frame."""

    def abort(self) -> None:
        """Drop the connection at once, discarding whatever is still buffered (a peer that does not read)."""


class AiohttpSignalSocket:
    """An aiohttp ``WebSocketResponse`` seen as a :class:`SignalSocket`."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request

    @property
    def response(self) -> web.WebSocketResponse:
        """The aiohttp response (the request handler returns it)."""
        return self._ws

    async def recv(self) -> bytes | str:
        """Return the next binary or text message; raise ``ConnectionClosed`` when it is closed."""
        message = await self._ws.receive()
        if message.type is WSMsgType.BINARY or message.type is WSMsgType.TEXT:
            data: bytes | str = message.data
            return data
        code = self._ws.close_code or _ABNORMAL
        if message.type is WSMsgType.ERROR:
            # aiohttp already closed the socket with the error's code (1009 for an oversize frame).
            raise ConnectionClosed(None, Close(code, str(message.data or "")))
        raise ConnectionClosed(Close(code, ""), None)

    async def send(self, message: bytes) -> None:
        """Send ``message`` as one binary frame."""
        try:
            await self._ws.send_bytes(message)
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionClosed(None, Close(self._ws.close_code or _ABNORMAL, str(exc))) from exc

    async def close(self, code: int = 1000, reason: str = "", *, wait_reply: bool = True) -> None:
        """Send a close frame (``code``, ``reason``) and close the transport (after the peer's close frame,
        at most ``_CLOSE_TIMEOUT`` s, unless ``wait_reply`` is False)."""
        message = reason.encode()[:_CLOSE_REASON_BYTES]
        if wait_reply or self._ws.closed:
            await self._ws.close(code=code, message=message)
            return
        # aiohttp's close() reads (and parses) whatever the peer still sends until its close frame arrives:
        # a flooding client would keep the server busy for the whole close timeout. Instead: stop reading,
        # send the close frame and a FIN after what is buffered, and give the client the close timeout to
        # read them before the connection is dropped (closed at once, a socket with unread input sends an
        # RST, and the client's kernel may then discard the LeaveRequest before the client has read it).
        transport = self._request.transport
        if transport is None:
            return
        transport.pause_reading()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.send_frame(code.to_bytes(2, "big") + message, WSMsgType.CLOSE)
        if transport.can_write_eof():
            transport.write_eof()
        await asyncio.sleep(_CLOSE_TIMEOUT)  # a linger with nothing read: costs the server nothing
        transport.abort()

    def abort(self) -> None:
        """Abort the TCP connection: a closing transport would first wait for its buffer to drain, which a
        peer that does not read never lets happen."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpFront:
    """One aiohttp listener; every request goes to ``handler`` (the server routes by path itself)."""

    def __init__(
        self,
        handler: Handler,
        *,
        logger: logging.Logger | None = None,
        max_header_size: int = 8190,
        max_headers: int = 128,
    ) -> None:
        self._handler = handler
        app = web.Application(client_max_size=MAX_BODY, logger=logger or _log)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=_KEEPALIVE_TIMEOUT,
            shutdown_timeout=1.0,
            handle_signals=False,
            # aiohttp limits each line (request line: a JS client's ``access_token`` query; each header:
            # ``Authorization: Bearer``) rather than the whole header block as Go's net/http does.
            max_line_size=max_header_size,
            max_field_size=max_header_size,
            max_headers=max_headers,
        )
        self._site: web.TCPSite | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await self._handler(request)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; returns the port bound (the real one for port 0)."""
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host or None, port)
        await self._site.start()
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening, cancel the handlers still running, release everything."""
        await self._runner.cleanup()


class HandshakeFailedError(Exception):
    """The WebSocket handshake did not complete: the request was invalid, or the client went away first."""


async def accept_websocket(request: web.Request, *, max_size: int) -> AiohttpSignalSocket:
    """Complete the upgrade of ``request``.

    Raises:
        HandshakeFailedError: an invalid WebSocket handshake (nothing sent: answer 400), or a client that
            went away before the ``101`` was written (aiohttp would log that as an unhandled error with
            a traceback, once per attempt).
    """
    ws = web.WebSocketResponse(
        max_msg_size=max_size, compress=False, heartbeat=KEEPALIVE_PING, timeout=_CLOSE_TIMEOUT
    )
    if not ws.can_prepare(request).ok:
        raise HandshakeFailedError("invalid WebSocket handshake")
    try:
        await ws.prepare(request)
    except (ConnectionError, RuntimeError) as exc:  # aiohttp's ClientConnectionResetError is one
        gone = f"client gone during the handshake: {exc}"
        raise HandshakeFailedError(gone) from exc
    return AiohttpSignalSocket(ws, request)
