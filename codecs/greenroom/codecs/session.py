"""Sans-I/O signal sessions: bytes in → events out, ``send(message)`` → bytes; no sockets, no clock.

Theory of operation (the h11 model). Each session owns one WebSocket's worth of LiveKit signalling:

* the I/O layer feeds every received binary frame to ``receive_data(frame, now)`` and then drains the
  decoded messages with ``next_event()`` / ``events()``;
* it turns a message into a frame with ``send(message)``, which checks the message is allowed in the
  current state before encoding it;
* time is always passed in (``now``, seconds as a float; use one clock per session). Timestamps put on the
  wire are ``int(now * 1000)`` ms, so pass wall-clock time (``time.time()``) if peers should read them.

What may be sent or received in which state is written down as data in the four transition tables below
(:data:`CLIENT_RECEIVE`, :data:`CLIENT_SEND`, :data:`SERVER_RECEIVE`, :data:`SERVER_SEND`); a message type
missing from a state's row is a protocol error. Receiving one raises
:class:`~greenroom.codecs.errors.RemoteProtocolError` whose ``leave_reason`` names the
``DisconnectReason`` to put in the ``leave`` we send before closing; sending one raises
:class:`~greenroom.codecs.errors.LocalProtocolError`. A receive error (including a
:class:`~greenroom.codecs.errors.CodecError`) does not change the state, so the caller can still send
that ``leave``.

Client: ``CONNECTING`` (or ``RESUMING`` for a ``reconnect=1`` session) → ``JOINED`` on ``join`` (or
``reconnect``) → ``CLOSED`` once a ``leave`` was sent or received. Server: ``AWAITING_JOIN`` → ``ACTIVE``
once it sent ``join``/``reconnect`` → ``CLOSED`` once a ``leave`` was sent or received. The server session
answers ``ping_req`` with ``pong_resp`` and legacy ``ping`` with ``pong`` by itself: the replies wait in
:meth:`ServerSignalSession.data_to_send`. Every decoded message is still reported as an event.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final, Generic, TypeVar, get_args

from greenroom.codecs.errors import LocalProtocolError, RemoteProtocolError
from greenroom.codecs.signalling import (
    JoinResponse,
    Leave,
    LegacyPing,
    LegacyPong,
    PingReq,
    PongResp,
    ReconnectResponse,
    RequestResponse,
    SignalRequestMessage,
    SignalResponseMessage,
    Unhandled,
    UpdateMetadata,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

__all__ = [
    "CLIENT_RECEIVE",
    "CLIENT_SEND",
    "SERVER_RECEIVE",
    "SERVER_SEND",
    "ClientSignalSession",
    "ClientState",
    "ServerSignalSession",
    "ServerState",
]


class ClientState(enum.Enum):
    """Where a client signal session stands."""

    CONNECTING = enum.auto()
    RESUMING = enum.auto()
    JOINED = enum.auto()
    CLOSED = enum.auto()


class ServerState(enum.Enum):
    """Where a server signal session stands."""

    AWAITING_JOIN = enum.auto()
    ACTIVE = enum.auto()
    CLOSED = enum.auto()


_S = TypeVar("_S", ClientState, ServerState)
_E = TypeVar("_E")
Transitions = Mapping[_S, Mapping[type, _S]]

_REQUESTS: Final = frozenset(get_args(SignalRequestMessage))
_RESPONSES: Final = frozenset(get_args(SignalResponseMessage))
_OPENERS: Final = frozenset({JoinResponse, ReconnectResponse})  # only ever the first server frame


def _stay(state: _S, types: Iterable[type]) -> dict[type, _S]:
    return dict.fromkeys(types, state)


_C = ClientState
_V = ServerState

CLIENT_RECEIVE: Final[Transitions[ClientState]] = {
    _C.CONNECTING: {JoinResponse: _C.JOINED, Leave: _C.CLOSED},
    _C.RESUMING: {ReconnectResponse: _C.JOINED, Leave: _C.CLOSED},
    _C.JOINED: {**_stay(_C.JOINED, _RESPONSES - _OPENERS), Leave: _C.CLOSED},
    _C.CLOSED: {},
}
"""Which server messages a client accepts in each state, and the state each one leads to."""

CLIENT_SEND: Final[Transitions[ClientState]] = {
    _C.CONNECTING: {Leave: _C.CLOSED},
    _C.RESUMING: {Leave: _C.CLOSED},
    _C.JOINED: {**_stay(_C.JOINED, _REQUESTS - {Unhandled}), Leave: _C.CLOSED},
    _C.CLOSED: {},
}
"""Which requests a client may send in each state."""

SERVER_RECEIVE: Final[Transitions[ServerState]] = {
    _V.AWAITING_JOIN: {},
    _V.ACTIVE: {**_stay(_V.ACTIVE, _REQUESTS), Leave: _V.CLOSED},
    _V.CLOSED: {},
}
"""Which client requests a server accepts in each state."""

SERVER_SEND: Final[Transitions[ServerState]] = {
    _V.AWAITING_JOIN: {JoinResponse: _V.ACTIVE, ReconnectResponse: _V.ACTIVE, Leave: _V.CLOSED},
    _V.ACTIVE: {**_stay(_V.ACTIVE, _RESPONSES - _OPENERS - {Unhandled}), Leave: _V.CLOSED},
    _V.CLOSED: {},
}
"""Which responses a server may send in each state."""

_MAX_REQUEST_ID: Final = 0xFFFF_FFFF  # UpdateParticipantMetadata.request_id is a uint32


def _ms(now: float) -> int:
    return int(now * 1000)


class _Session(Generic[_S, _E]):
    """What both sides share: the state, the event queue, liveness."""

    def __init__(self, state: _S, ping_timeout: float) -> None:
        self.state: _S = state
        self.ping_timeout = ping_timeout
        """Seconds without any received frame after which :meth:`timed_out` says the link is dead."""
        self._events: deque[_E] = deque()
        self._last_received: float | None = None

    def next_event(self) -> _E | None:
        """Pop the oldest decoded message, or return None when there is none."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[_E]:
        """Pop every decoded message, oldest first."""
        drained = list(self._events)
        self._events.clear()
        return drained

    def timed_out(self, now: float) -> bool:
        """Whether nothing arrived for longer than ``ping_timeout`` (0 disables the check)."""
        if self._last_received is None or self.ping_timeout <= 0:
            return False
        return now - self._last_received > self.ping_timeout

    def silence_deadline(self) -> float | None:
        """When the link counts as dead if nothing else arrives (``None``: no check yet, or disabled) — so a
        timer can fire at the deadline itself instead of polling (the official SDKs give up at
        ``ping_timeout`` exactly)."""
        if self._last_received is None or self.ping_timeout <= 0:
            return None
        return self._last_received + self.ping_timeout

    def _advance(self, table: Transitions[_S], msg: object, *, remote: bool, leave_reason: str) -> None:
        new = table[self.state].get(type(msg))
        if new is None:
            what = f"{type(msg).__name__} is not allowed while {self.state.name}"
            if remote:
                raise RemoteProtocolError(f"peer sent {what}", leave_reason=leave_reason)
            raise LocalProtocolError(f"cannot send: {what}")
        self.state = new


class ClientSignalSession(_Session[ClientState, SignalResponseMessage]):
    """The client side of one signal WebSocket (``SignalRequest`` out, ``SignalResponse`` in).

    Args:
        resume: this socket resumes a session (``reconnect=1``): the first frame must be ``reconnect``.
        ping_interval: seconds between pings until a JoinResponse says otherwise (keep it on resume).
        ping_timeout: seconds of silence that mean a dead link until a JoinResponse says otherwise.
    """

    def __init__(
        self, *, resume: bool = False, ping_interval: float = 0.0, ping_timeout: float = 0.0
    ) -> None:
        super().__init__(ClientState.RESUMING if resume else ClientState.CONNECTING, ping_timeout)
        self.ping_interval = ping_interval
        """Seconds between ``ping_req`` (0 disables pings); set from ``JoinResponse.ping_interval``."""
        self.rtt: int | None = None
        """The last round-trip time in ms measured from a ``pong_resp``, or None before the first."""
        self.join: JoinResponse | None = None
        """The JoinResponse of this session, once received."""
        self._last_ping: float | None = None
        self._request_id = 0
        self._pending: set[int] = set()

    @property
    def pending_requests(self) -> frozenset[int]:
        """Request ids sent in ``update_metadata`` and not yet answered by a ``request_response``."""
        return frozenset(self._pending)

    def receive_data(self, data: bytes, now: float) -> None:
        """Decode one received frame and queue it as an event.

        Raises:
            CodecError: the frame is not a valid SignalResponse.
            RemoteProtocolError: the message is not allowed now (e.g. anything but ``join`` first).
        """
        msg = decode_response(data)
        joining = self.state in (ClientState.CONNECTING, ClientState.RESUMING)
        reason = "JOIN_FAILURE" if joining else "STATE_MISMATCH"
        self._advance(CLIENT_RECEIVE, msg, remote=True, leave_reason=reason)
        self._last_received = now
        match msg:
            case JoinResponse():  # SignalResponse.join: keepalive settings come from here
                self.join = msg
                self.ping_interval = float(msg.ping_interval)
                self.ping_timeout = float(msg.ping_timeout)
            case PongResp():  # SignalResponse.pong_resp: echoes our ping's timestamp
                self.rtt = max(0, _ms(now) - msg.last_ping_timestamp)
            case RequestResponse():  # SignalResponse.request_response: answers update_metadata
                self._pending.discard(msg.request_id)
            case _:
                pass
        self._events.append(msg)

    def send(self, msg: SignalRequestMessage) -> bytes:
        """Encode one request after checking it is allowed now.

        Raises:
            LocalProtocolError: not allowed in this state (anything but ``leave`` before ``join``,
                anything after ``leave``) or not encodable.
        """
        data = encode_request(msg)
        self._advance(CLIENT_SEND, msg, remote=False, leave_reason="")
        if isinstance(msg, UpdateMetadata) and msg.request_id:
            self._pending.add(msg.request_id)
        return data

    def next_request_id(self) -> int:
        """Return a fresh non-zero request id for ``update_metadata`` (wraps within uint32)."""
        self._request_id = self._request_id % _MAX_REQUEST_ID + 1
        return self._request_id

    def ping_due(self, now: float) -> bool:
        """Whether a ``ping_req`` should be sent now (the first one right after join, like Rust)."""
        if self.state is not ClientState.JOINED or self.ping_interval <= 0:
            return False
        return self._last_ping is None or now - self._last_ping >= self.ping_interval

    def make_ping(self, now: float) -> bytes:
        """Encode a ``ping_req`` carrying ``now`` in ms and the last measured rtt.

        Raises:
            LocalProtocolError: the session is not joined.
        """
        data = self.send(PingReq(timestamp=_ms(now), rtt=self.rtt or 0))
        self._last_ping = now
        return data


class ServerSignalSession(_Session[ServerState, SignalRequestMessage]):
    """The server side of one signal WebSocket (``SignalResponse`` out, ``SignalRequest`` in).

    Args:
        now: when the socket was accepted; the liveness clock starts here.
        ping_timeout: seconds of client silence that mean a dead link; replaced by the
            ``ping_timeout`` of the JoinResponse this session sends.
    """

    def __init__(self, now: float, *, ping_timeout: float = 15.0) -> None:
        super().__init__(ServerState.AWAITING_JOIN, ping_timeout)
        self._last_received = now
        self._outgoing: list[bytes] = []

    def receive_data(self, data: bytes, now: float) -> None:
        """Decode one received frame, queue it as an event and queue any automatic reply.

        Raises:
            CodecError: the frame is not a valid SignalRequest.
            RemoteProtocolError: the message is not allowed now (before ``join`` was sent, or after
                ``leave``).
        """
        msg = decode_request(data)
        self._advance(SERVER_RECEIVE, msg, remote=True, leave_reason="STATE_MISMATCH")
        self._last_received = now
        match msg:
            case PingReq():  # SignalRequest.ping_req -> SignalResponse.pong_resp
                self._outgoing.append(self.send(PongResp(msg.timestamp, _ms(now))))
            case LegacyPing():  # SignalRequest.ping (legacy JS) -> SignalResponse.pong
                self._outgoing.append(self.send(LegacyPong(_ms(now))))
            case _:
                pass
        self._events.append(msg)

    def data_to_send(self) -> list[bytes]:
        """Pop the frames the session produced by itself (pong replies), oldest first."""
        out, self._outgoing = self._outgoing, []
        return out

    def send(self, msg: SignalResponseMessage, *, encoded: bytes | None = None) -> bytes:
        """Encode one response after checking it is allowed now.

        Args:
            msg: the response.
            encoded: ``encode_response(msg)`` when the caller already has it — a server sending one update
                to every member of a room encodes it once, not once per member.

        Raises:
            LocalProtocolError: not allowed in this state (anything but ``join``/``reconnect``/``leave``
                first, a second ``join``, anything after ``leave``), not encodable, or a JoinResponse an
                official SDK would reject.
        """
        if isinstance(msg, JoinResponse):
            _check_join(msg)
        data = encode_response(msg) if encoded is None else encoded
        self._advance(SERVER_SEND, msg, remote=False, leave_reason="")
        if isinstance(msg, JoinResponse):
            self.ping_timeout = float(msg.ping_timeout)
        return data


def _check_join(msg: JoinResponse) -> None:
    """Refuse the JoinResponse shapes that break the official SDKs (signal-protocol.md §5.2, §11.5)."""
    problems = [
        text
        for broken, text in (
            (msg.room is None, "room is required"),
            (msg.participant is None or not msg.participant.sid.startswith("PA_"), "participant sid PA_…"),
            (msg.ping_interval <= 0 or msg.ping_timeout <= 0, "ping_interval/ping_timeout must be > 0"),
            (not (msg.server_version or (msg.server_info and msg.server_info.version)), "server version"),
        )
        if broken
    ]
    if problems:
        raise LocalProtocolError("JoinResponse rejected: " + "; ".join(problems))
