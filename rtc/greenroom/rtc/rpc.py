"""RPC types as in ``livekit.rtc.rpc``: RpcError, RpcInvocationData, RpcCallInfo, RpcInterceptor.

The calls themselves are ``LocalParticipant.perform_rpc`` / ``register_rpc_method`` (see
:mod:`greenroom.rtc._rpc` for how they run). The wire rules — codes, default messages, limits, versions —
are :mod:`greenroom.codecs.rpc`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from greenroom.codecs import packets
from greenroom.codecs import rpc as wire

__all__ = [
    "IncomingRpcNext",
    "OutgoingRpcNext",
    "RpcCallInfo",
    "RpcError",
    "RpcHandler",
    "RpcInterceptor",
    "RpcInvocationData",
]


class RpcError(Exception):
    """An RPC failed: raised by ``perform_rpc``, or raised in a handler to answer the caller with it.

    Codes 1001–1999 are the built-in errors (:attr:`ErrorCode`, with their exact default messages in
    :attr:`ErrorMessage`); applications use other codes. On the wire the message is cut to 256 UTF-8 bytes and
    the data to 15 360.

    Args:
        code: the error code.
        message: a readable message.
        data: optional details (JSON recommended).
    """

    ErrorCode: ClassVar[type[wire.ErrorCode]] = wire.ErrorCode
    ErrorMessage: ClassVar[dict[wire.ErrorCode, str]] = dict(wire.MESSAGES)

    def __init__(self, code: int | wire.ErrorCode, message: str, data: str | None = None) -> None:
        """Build the error (see the class docstring)."""
        super().__init__(message)
        self._code = code
        self._message = message
        self._data = data

    @property
    def code(self) -> int:
        """The error code (1001–1999: built-in, see :attr:`ErrorCode`)."""
        return int(self._code)

    @property
    def message(self) -> str:
        """A readable message."""
        return self._message

    @property
    def data(self) -> str | None:
        """Optional details."""
        return self._data

    @classmethod
    def _built_in(cls, code: wire.ErrorCode, data: str | None = "") -> RpcError:
        # data "" (not None) as ``livekit.rtc`` reports every error of perform_rpc: they cross its FFI as
        # a protobuf, whose unset string reads ""
        return cls(code, wire.MESSAGES[code], data)

    @classmethod
    def _from_wire(cls, error: packets.RpcError) -> RpcError:
        return cls(error.code, error.message, error.data)

    def _to_wire(self) -> packets.RpcError:
        return wire.wire_error(self.code, self.message, self.data)

    def __repr__(self) -> str:
        return f"RpcError(code={self.code}, message={self.message!r}, data={self.data!r})"


@dataclass
class RpcInvocationData:
    """What an RPC method handler receives.

    Attributes:
        request_id: the call's id (the same on both sides; useful in logs).
        caller_identity: who called.
        payload: the request payload.
        response_timeout: seconds the caller waits for the answer; the handler is cancelled after it.
        method: the method called.
        cancel_reason: set just before the handler is cancelled: ``RESPONSE_TIMEOUT`` (its deadline passed)
            or ``RECIPIENT_DISCONNECTED`` (the room disconnected); ``None`` otherwise.
    """

    request_id: str
    caller_identity: str
    payload: str
    response_timeout: float
    method: str = ""
    cancel_reason: wire.ErrorCode | None = None


@dataclass
class RpcCallInfo:
    """An outgoing call as interceptors see it: the arguments of ``perform_rpc``."""

    destination_identity: str
    method: str
    payload: str
    response_timeout: float | None = None
    max_round_trip_latency: float | None = None


OutgoingRpcNext = Callable[[RpcCallInfo], Awaitable[str]]
"""The continuation an outgoing interceptor calls: performs the call."""
IncomingRpcNext = Callable[[RpcInvocationData], Awaitable[str | None]]
"""The continuation an incoming interceptor calls: runs the handler."""
RpcHandler = Callable[[RpcInvocationData], Awaitable[str | None] | str | None]
"""A method handler: sync or async, returns the response payload."""


class RpcInterceptor:
    """Wraps every RPC a ``LocalParticipant`` performs or handles (both directions pass through by default).

    Added with ``LocalParticipant.add_rpc_interceptor``; the first added is the outermost. An interceptor
    must return (or raise) what ``next`` returns (or raises) unless it short-circuits the call on purpose.
    """

    async def intercept_outgoing(self, call: RpcCallInfo, next: OutgoingRpcNext) -> str:
        """Wrap an outgoing ``perform_rpc``; return the response payload."""
        return await next(call)

    async def intercept_incoming(
        self,
        invocation: RpcInvocationData,
        next: IncomingRpcNext,
    ) -> str | None:
        """Wrap the handling of an incoming call; return the response payload."""
        return await next(invocation)


def chain_outgoing(interceptors: Sequence[RpcInterceptor], terminal: OutgoingRpcNext) -> OutgoingRpcNext:
    """``terminal`` wrapped by ``interceptors``, the first one outermost."""
    call_next = terminal
    for interceptor in reversed(interceptors):
        call_next = _bind_outgoing(interceptor, call_next)
    return call_next


def chain_incoming(interceptors: Sequence[RpcInterceptor], terminal: IncomingRpcNext) -> IncomingRpcNext:
    """``terminal`` wrapped by ``interceptors``, the first one outermost."""
    call_next = terminal
    for interceptor in reversed(interceptors):
        call_next = _bind_incoming(interceptor, call_next)
    return call_next


def _bind_outgoing(interceptor: RpcInterceptor, call_next: OutgoingRpcNext) -> OutgoingRpcNext:
    async def bound(call: RpcCallInfo) -> str:
        return await interceptor.intercept_outgoing(call, call_next)

    return bound


def _bind_incoming(interceptor: RpcInterceptor, call_next: IncomingRpcNext) -> IncomingRpcNext:
    async def bound(invocation: RpcInvocationData) -> str | None:
        return await interceptor.intercept_incoming(invocation, call_next)

    return bound
