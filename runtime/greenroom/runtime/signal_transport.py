"""The LiveKit signalling websocket (client side): connect, send bytes, deliver received frames to a sink.

This is transport only: the protobuf messages, the join flow and LiveKit's app-level ``ping_req`` are the
codecs session's business. One :class:`SignalTransport` carries one connection; reconnecting means a new one.

Traps handled here (websockets 17; ``reference/signal-protocol.md`` §1, §2):

* **Where the token goes.** The Rust/Python SDK sends ``Authorization: Bearer <jwt>`` only; the JS SDK puts
  ``access_token`` in the query (browsers cannot set websocket headers). Both are offered
  (``token_in_query``). URL building follows the SDKs: http→ws, https→wss, then ``rtc`` appended to whatever
  path the user URL has (rust-sdks ``signal_client/mod.rs`` ``get_livekit_url``; §2.1).
* **Why an upgrade failed.** websockets raises ``InvalidStatus`` carrying the HTTP response; LiveKit (and the
  dev server) put the reason in a short text body (§2.6). :class:`SignalConnectError` keeps status and body.
* **Binary frames only.** The Rust SDK skips text frames (§1.2); text frames received here are dropped with a
  warning, and :meth:`SignalTransport.send` sends binary.
* **websockets ≥ 15 uses the system proxy by default** (``proxy=True`` reads ``HTTP(S)_PROXY``/``ALL_PROXY``,
  ``websockets/asyncio/client.py`` ``connect``); a local dev server must not be reached through a proxy, so
  the proxy is off unless given.
* **Compression.** The Rust SDK does not offer permessage-deflate; neither do we (small protobuf frames,
  CPU saved).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from greenroom.codecs.errors import GreenroomError
from greenroom.runtime.loop import Sink

__all__ = [
    "SignalBytes",
    "SignalClosed",
    "SignalConnectError",
    "SignalNotConnectedError",
    "SignalTransport",
    "signal_url",
]

_log = logging.getLogger("greenroom.runtime.signal_transport")

#: Close code reported when the socket dropped without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006
#: The close code for a text frame (RFC 6455 §7.4.1: a type of data the endpoint cannot accept).
UNSUPPORTED_DATA = 1003


class SignalConnectError(GreenroomError):
    """The signalling websocket could not be opened.

    Attributes:
        status: the HTTP status of a refused upgrade (401, 403, 404, …), or ``None`` when no HTTP answer came
            (connection refused, DNS failure, timeout, bad URL, broken handshake).
        reason: the response body (LiveKit's short error text), or a description of the failure.
    """

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(f"signal connection failed: {status} {reason}" if status else reason)
        self.status = status
        self.reason = reason


class SignalNotConnectedError(GreenroomError):
    """``send`` was called while the signalling websocket is not open."""


@dataclass(frozen=True, slots=True)
class SignalBytes:
    """One binary frame from the server (a serialized ``SignalResponse``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SignalClosed:
    """The websocket is closed; always the last event of a connection.

    Attributes:
        code: the close code (1006 when the connection dropped without a close frame).
        reason: the close reason text.
        local: whether our own :meth:`SignalTransport.close` started it.
    """

    code: int
    reason: str
    local: bool


def signal_url(url: str, params: Mapping[str, str] = {}, *, path: str = "rtc") -> str:
    """Build the websocket URL: map http(s)→ws(s), append ``path`` to the URL's path, add ``params``.

    Raises:
        SignalConnectError: the URL's scheme is not ws, wss, http or https.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise SignalConnectError(None, f"unsupported URL scheme in {url!r}")
    base = parts.path.rstrip("/")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(
        (scheme, parts.netloc, f"{base}/{path.strip('/')}", urllib.parse.urlencode(query), "")
    )


class SignalTransport:
    """One LiveKit signalling websocket: frames in → :class:`SignalBytes` to the sink, then one
    :class:`SignalClosed`.

    Args:
        sink: receives :class:`SignalBytes` for every binary frame and finally :class:`SignalClosed`.
        max_message_size: the largest frame accepted from the server.
        keepalive: websockets' own ping interval in seconds (``None`` disables; LiveKit's app-level ping is
            separate).
        proxy: a proxy URL, or ``None`` (default) for a direct connection.
        ssl_context: TLS settings for ``wss``/``https`` URLs (default: the system's trust store).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        max_message_size: int = 4 * 1024 * 1024,
        keepalive: float | None = 20.0,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._sink = sink
        self._ssl_context = ssl_context
        self._max_message_size = max_message_size
        self._keepalive = keepalive
        self._proxy = proxy
        self._ws: ClientConnection | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def is_open(self) -> bool:
        """Whether the websocket is connected and not closing."""
        return (
            self._ws is not None
            and not self._closing
            and self._receiver is not None
            and not self._receiver.done()
        )

    async def connect(
        self,
        url: str,
        token: str,
        params: Mapping[str, str] = {},
        *,
        timeout: float = 10.0,
        token_in_query: bool = False,
        path: str = "rtc",
    ) -> None:
        """Open ``ws(s)://host/<path>?params`` and start delivering frames to the sink.

        Args:
            url: the LiveKit URL (``ws``, ``wss``, ``http`` or ``https``; a path prefix is kept).
            token: the access token (JWT).
            params: query parameters (``auto_subscribe``, ``sdk``, ``protocol``, …).
            timeout: seconds for TCP connect + TLS + upgrade.
            token_in_query: send ``access_token`` in the query (JS style) instead of the header.
            path: the endpoint path, ``rtc`` for LiveKit's v0 signalling.

        Raises:
            SignalConnectError: the upgrade was refused (``status`` and body kept) or the server was
                unreachable (``status`` None).
        """
        if self._ws is not None or self._closing:
            raise SignalConnectError(None, "this transport was already used; create a new one")
        query = {**params, "access_token": token} if token_in_query else dict(params)
        headers = {} if token_in_query else {"Authorization": f"Bearer {token}"}
        ws = await self._open(signal_url(url, query, path=path), headers, timeout)
        if self._closing:  # close() was called while connecting
            await ws.close()
            raise SignalConnectError(None, "closed while connecting")
        self._ws = ws
        self._receiver = asyncio.get_running_loop().create_task(self._receive(ws), name="greenroom-signal-rx")

    async def send(self, data: bytes) -> None:
        """Send one binary frame (a serialized ``SignalRequest``).

        Raises:
            SignalNotConnectedError: not connected, or the connection closed.
        """
        if self._ws is None or self._closing:
            raise SignalNotConnectedError("signal websocket is not open")
        try:
            await self._ws.send(bytes(data))
        except ConnectionClosed as exc:
            raise SignalNotConnectedError(f"signal websocket closed: {exc}") from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket and wait for the final :class:`SignalClosed`; safe in any state, idempotent."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)
        if self._receiver is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._receiver)

    async def _open(self, uri: str, headers: dict[str, str], timeout: float) -> ClientConnection:
        tls: dict[str, Any] = {}
        if self._ssl_context is not None and uri.startswith("wss:"):
            tls["ssl"] = self._ssl_context
        try:
            return await websockets.connect(
                uri,
                additional_headers=headers,
                open_timeout=timeout,
                proxy=self._proxy,
                compression=None,
                max_size=self._max_message_size,
                ping_interval=self._keepalive,
                ping_timeout=self._keepalive,
                close_timeout=2.0,
                **tls,
            )
        except InvalidStatus as exc:
            raise _status_error(exc) from exc
        except TimeoutError as exc:
            raise SignalConnectError(None, f"timed out after {timeout} s connecting to {_host(uri)}") from exc
        except socket.gaierror as exc:
            raise SignalConnectError(None, f"cannot resolve {_host(uri)}: {exc.strerror}") from exc
        except OSError as exc:
            raise SignalConnectError(None, f"cannot connect to {_host(uri)}: {exc.strerror or exc}") from exc
        except (InvalidHandshake, InvalidURI) as exc:
            raise SignalConnectError(None, f"websocket handshake with {_host(uri)} failed: {exc}") from exc

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    if isinstance(message, bytes):
                        self._sink.tell(SignalBytes(message))
                        continue
                    # LiveKit signals in binary frames only; a text frame (even a JSON JoinResponse) is a
                    # server that speaks something else: fail now rather than wait out the join deadline.
                    _log.warning("a text frame on the signal websocket: closing (LiveKit sends binary)")
                    await ws.close(UNSUPPORTED_DATA, "text frames are not LiveKit signalling")
            await ws.wait_closed()
        finally:
            code, reason = _close_of(ws)
            self._sink.tell(SignalClosed(code, reason, self._closing))


def _close_of(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason to report: the peer's close frame, else the one we sent.

    Trap: when *we* fail the connection (websockets' ``max_size`` exceeded → 1009, a text frame → 1003) and
    the server never answers the close frame, ``ws.close_code`` is ``None`` and would be reported as 1006,
    hiding why; the frame we sent says it (websockets ``Protocol.close_sent``).
    """
    received, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    if received is not None:
        return received.code, received.reason
    if sent is not None:
        return sent.code, sent.reason
    return ABNORMAL_CLOSURE, ""


def _status_error(exc: InvalidStatus) -> SignalConnectError:
    response = exc.response
    body = bytes(response.body).decode("utf-8", errors="replace").strip()
    return SignalConnectError(response.status_code, body or response.reason_phrase)


def _host(uri: str) -> str:
    return urllib.parse.urlsplit(uri).netloc
