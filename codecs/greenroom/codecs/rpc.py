"""RPC wire rules, pure (``reference/data-e2ee-formats.md`` §2): codes, limits, versions, acks.

What both ends of a LiveKit RPC agree on, without any I/O or timer:

* the built-in error codes and their exact default messages (:class:`ErrorCode`, :data:`MESSAGES`) — callers
  of every SDK may compare them verbatim;
* the size limits: a v1 request or response payload is at most :data:`MAX_V1_PAYLOAD_BYTES` UTF-8 bytes;
  an error's message and data are truncated on character boundaries (:func:`wire_error`);
* the versions: a caller picks v2 (the payload as a text data stream on :data:`REQUEST_TOPIC`) when the
  callee announces ``client_protocol >= 1`` (:func:`uses_v2`), else one ``RpcRequest`` packet (v1);
  errors always travel as ``RpcResponse`` packets and acks always as ``RpcAck`` packets;
* the timeouts, in the Rust SDK's terms (the engine of ``livekit.rtc``): the caller waits
  ``max_round_trip_latency`` (7 s) for the ack (else 1501), then ``response_timeout`` (15 s) for the answer
  (else 1502), and tells the callee ``max(response_timeout − max_round_trip_latency, 1 s)``
  (:func:`callee_timeout_ms`, 8 000 ms by default);
* which packet a request must be acknowledged with (:func:`ack_for`), so the ack can be sent the moment a
  request arrives, before any application code runs.

Sources: rust-sdks ``livekit/src/room/rpc/{mod,client,server}.rs``, client-sdk-js ``src/room/rpc/utils.ts``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from greenroom.codecs.packets import Attributes, RpcAck, RpcError, RpcRequest, StreamHeader, freeze_attributes

__all__ = [
    "ATTR_METHOD",
    "ATTR_REQUEST_ID",
    "ATTR_RESPONSE_TIMEOUT_MS",
    "ATTR_VERSION",
    "CLIENT_PROTOCOL_DATA_STREAM_RPC",
    "DEFAULT_MAX_ROUND_TRIP_LATENCY",
    "DEFAULT_RESPONSE_TIMEOUT",
    "MAX_ERROR_DATA_BYTES",
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_V1_PAYLOAD_BYTES",
    "MESSAGES",
    "REQUEST_TOPIC",
    "RESPONSE_TOPIC",
    "VERSION_V1",
    "VERSION_V2",
    "ErrorCode",
    "V2Request",
    "ack_for",
    "built_in",
    "callee_timeout_ms",
    "parse_v2_request",
    "payload_bytes",
    "server_supports_rpc",
    "truncate_utf8",
    "uses_v2",
    "v2_request_attributes",
    "wire_error",
]

MAX_V1_PAYLOAD_BYTES: Final = 15_360
"""The largest v1 request or response payload in UTF-8 bytes (over it: 1402 at a caller, 1504 at a callee)."""
MAX_ERROR_MESSAGE_BYTES: Final = 256
MAX_ERROR_DATA_BYTES: Final = MAX_V1_PAYLOAD_BYTES

REQUEST_TOPIC: Final = "lk.rpc_request"
RESPONSE_TOPIC: Final = "lk.rpc_response"
ATTR_REQUEST_ID: Final = "lk.rpc_request_id"
ATTR_METHOD: Final = "lk.rpc_request_method"
ATTR_RESPONSE_TIMEOUT_MS: Final = "lk.rpc_request_response_timeout_ms"
ATTR_VERSION: Final = "lk.rpc_request_version"

VERSION_V1: Final = 1
VERSION_V2: Final = 2
CLIENT_PROTOCOL_DATA_STREAM_RPC: Final = 1
"""A participant announcing at least this ``client_protocol`` receives RPC requests as data streams (v2)."""

DEFAULT_RESPONSE_TIMEOUT: Final = 15.0
DEFAULT_MAX_ROUND_TRIP_LATENCY: Final = 7.0
_MIN_CALLEE_TIMEOUT: Final = 1.0
_V2_DEFAULT_TIMEOUT_MS: Final = 15_000  # what the Rust callee assumes when the attribute is missing
_MIN_SERVER: Final = (1, 8, 0)
_SEMVER: Final = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class ErrorCode(enum.IntEnum):
    """The built-in RPC error codes (1001–1999 are reserved for them), as in ``RpcError.ErrorCode``."""

    APPLICATION_ERROR = 1500
    CONNECTION_TIMEOUT = 1501
    RESPONSE_TIMEOUT = 1502
    RECIPIENT_DISCONNECTED = 1503
    RESPONSE_PAYLOAD_TOO_LARGE = 1504
    SEND_FAILED = 1505

    UNSUPPORTED_METHOD = 1400
    RECIPIENT_NOT_FOUND = 1401
    REQUEST_PAYLOAD_TOO_LARGE = 1402
    UNSUPPORTED_SERVER = 1403
    UNSUPPORTED_VERSION = 1404


MESSAGES: Final[Mapping[ErrorCode, str]] = {
    ErrorCode.APPLICATION_ERROR: "Application error in method handler",
    ErrorCode.CONNECTION_TIMEOUT: "Connection timeout",
    ErrorCode.RESPONSE_TIMEOUT: "Response timeout",
    ErrorCode.RECIPIENT_DISCONNECTED: "Recipient disconnected",
    ErrorCode.RESPONSE_PAYLOAD_TOO_LARGE: "Response payload too large",
    ErrorCode.SEND_FAILED: "Failed to send",
    ErrorCode.UNSUPPORTED_METHOD: "Method not supported at destination",
    ErrorCode.RECIPIENT_NOT_FOUND: "Recipient not found",
    ErrorCode.REQUEST_PAYLOAD_TOO_LARGE: "Request payload too large",
    ErrorCode.UNSUPPORTED_SERVER: "RPC not supported by server",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported RPC version",
}
"""The exact default message of each built-in code (JS, Rust, Python and the SFU use the same strings)."""


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def wire_error(code: int, message: str, data: str | None = None) -> RpcError:
    """The ``livekit.RpcError`` for an error, message and data truncated as JS and Rust do."""
    return RpcError(
        code=code,
        message=truncate_utf8(message, MAX_ERROR_MESSAGE_BYTES),
        data=truncate_utf8(data or "", MAX_ERROR_DATA_BYTES),
    )


def built_in(code: ErrorCode, data: str | None = None) -> RpcError:
    """The wire form of a built-in error, with its default message."""
    return wire_error(code, MESSAGES[code], data)


def payload_bytes(payload: str) -> int:
    """The size that the v1 limit applies to: UTF-8 bytes, not characters."""
    return len(payload.encode("utf-8"))


def uses_v2(callee_client_protocol: int) -> bool:
    """Whether a request to a callee announcing ``callee_client_protocol`` goes as a data stream (v2)."""
    return callee_client_protocol >= CLIENT_PROTOCOL_DATA_STREAM_RPC


def callee_timeout_ms(response_timeout: float, max_round_trip_latency: float) -> int:
    """The ``response_timeout_ms`` a caller writes: what is left after the ack's round trip, at least 1 s."""
    return round(max(response_timeout - max_round_trip_latency, _MIN_CALLEE_TIMEOUT) * 1000)


def server_supports_rpc(version: str) -> bool:
    """False when the server says it is older than 1.8.0 (the SDKs then refuse to call: 1403).

    An empty or unparsable version is given the benefit of the doubt (the Rust SDK would panic on it).
    """
    match = _SEMVER.match(version)
    if match is None:
        return True
    return tuple(int(part) for part in match.groups()) >= _MIN_SERVER


def v2_request_attributes(request_id: str, method: str, response_timeout_ms: int) -> Attributes:
    """The stream attributes of a v2 request (the payload is the stream's text)."""
    return freeze_attributes(
        {
            ATTR_REQUEST_ID: request_id,
            ATTR_METHOD: method,
            ATTR_RESPONSE_TIMEOUT_MS: str(response_timeout_ms),
            ATTR_VERSION: str(VERSION_V2),
        }
    )


@dataclass(frozen=True, slots=True)
class V2Request:
    """A v2 request as its stream's attributes describe it (the Rust callee's defaults fill the gaps)."""

    request_id: str
    method: str
    response_timeout_ms: int
    version: int


def _number(attributes: Mapping[str, str], key: str, default: int) -> int:
    value = attributes.get(key, "")
    return int(value) if value.isdigit() else default


def parse_v2_request(attributes: Attributes | Mapping[str, str]) -> V2Request:
    """Read a v2 request's attributes: a missing or non-numeric timeout is 15 000 ms, a version 0 (→ 1404)."""
    attrs = dict(attributes)
    return V2Request(
        request_id=attrs.get(ATTR_REQUEST_ID, ""),
        method=attrs.get(ATTR_METHOD, ""),
        response_timeout_ms=_number(attrs, ATTR_RESPONSE_TIMEOUT_MS, _V2_DEFAULT_TIMEOUT_MS),
        version=_number(attrs, ATTR_VERSION, 0),
    )


def ack_for(value: object) -> RpcAck | None:
    """The ``RpcAck`` a received packet value calls for, if it opens an RPC request.

    A v1 ``RpcRequest`` is acknowledged whatever its version (the callee then answers 1404 if it is not 1);
    a v2 request is acknowledged when its stream header arrives, if it names a request id.
    """
    match value:
        case RpcRequest(id=request_id) if request_id:
            return RpcAck(request_id=request_id)
        case StreamHeader(topic=topic, attributes=attributes) if topic == REQUEST_TOPIC:
            request_id = dict(attributes).get(ATTR_REQUEST_ID, "")
            return RpcAck(request_id=request_id) if request_id else None
        case _:
            return None
