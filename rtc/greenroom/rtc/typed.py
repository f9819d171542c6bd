"""Typed payloads for RPC and data streams: msgpack values instead of strings (greenroom's convenience).

The wire stays the official one — an RPC payload is a string, a stream carries bytes — so these helpers only
choose what goes inside, and both ends must use them (or read the same format):

* **RPC**: the value is msgpack'd (:mod:`greenroom.codecs.payload`: ``None``, bools, ints, floats, strings,
  bytes, lists and string-keyed maps, nesting ≤ 32) and base64-encoded into the payload string.
  :func:`perform_rpc` calls, :func:`register_rpc_method` wraps a handler that takes and returns values;
  a payload that does not decode answers ``RpcError`` 1500 with the reason, raised at the caller.
* **Streams**: :func:`send_value` sends one value as a byte stream with MIME type ``application/msgpack``;
  :func:`read_value` reads it back from a ``ByteStreamReader``.

Sizes: a value is refused locally above ``max_size`` (1 MiB by default; RPC v1 callees still take at most
15 360 payload characters, base64 included).
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from greenroom.codecs import payload
from greenroom.codecs.errors import CodecError, GreenroomError
from greenroom.rtc.data_stream import ByteStreamInfo, ByteStreamReader
from greenroom.rtc.rpc import RpcError, RpcInvocationData

if TYPE_CHECKING:
    from greenroom.rtc.participant import LocalParticipant

__all__ = [
    "MIME_TYPE",
    "TypedHandler",
    "Value",
    "decode",
    "encode",
    "perform_rpc",
    "read_value",
    "register_rpc_method",
    "send_value",
]

MIME_TYPE = "application/msgpack"
DEFAULT_MAX_SIZE = 1024 * 1024
Value = payload.Value
TypedHandler = Callable[[RpcInvocationData, Value], Awaitable[Value] | Value]
"""A typed handler: the invocation (its ``payload`` is the encoded string) and the decoded value."""


def encode(value: Value, *, max_size: int = DEFAULT_MAX_SIZE) -> str:
    """``value`` as an RPC payload string (msgpack, base64).

    Raises:
        GreenroomError: a type that is not allowed, or more than ``max_size`` bytes of msgpack.
    """
    return base64.b64encode(payload.pack(value, max_size=max_size)).decode("ascii")


def decode(text: str, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """The value an RPC payload string carries.

    Raises:
        GreenroomError: not base64, not a valid msgpack value, or too large.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CodecError(f"not a base64 payload: {exc}") from exc
    return payload.unpack(data, max_size=max_size)


async def perform_rpc(
    participant: LocalParticipant,
    *,
    destination_identity: str,
    method: str,
    value: Value,
    response_timeout: float | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Value:
    """``participant.perform_rpc`` with a value in and a value out.

    Raises:
        RpcError: as ``perform_rpc``; 1500 when the answer is not a value.
        GreenroomError: ``value`` cannot be encoded (nothing was sent).
    """
    answer = await participant.perform_rpc(
        destination_identity=destination_identity,
        method=method,
        payload=encode(value, max_size=max_size),
        response_timeout=response_timeout,
    )
    try:
        return decode(answer, max_size=max_size)
    except GreenroomError as exc:
        why = "the answer is not a msgpack value"
        raise RpcError(RpcError.ErrorCode.APPLICATION_ERROR, why, str(exc)) from exc


def register_rpc_method(
    participant: LocalParticipant, method_name: str, *, max_size: int = DEFAULT_MAX_SIZE
) -> Callable[[TypedHandler], TypedHandler]:
    """A decorator: answer ``method_name`` with a handler that takes ``(data, value)`` and returns a value.

    A request that is not a value is answered 1500 (``data`` says why) without calling the handler.
    """

    def register(handler: TypedHandler) -> TypedHandler:
        @functools.wraps(handler)
        async def untyped(data: RpcInvocationData) -> str:
            try:
                value = decode(data.payload, max_size=max_size)
            except GreenroomError as exc:
                why = "the request is not a msgpack value"
                raise RpcError(RpcError.ErrorCode.APPLICATION_ERROR, why, str(exc)) from exc
            result = handler(data, value)
            if inspect.isawaitable(result):
                result = await result
            return encode(result, max_size=max_size)

        participant.register_rpc_method(method_name, untyped)
        return handler

    return register


async def send_value(
    participant: LocalParticipant,
    value: Value,
    *,
    topic: str = "",
    destination_identities: list[str] | None = None,
    attributes: dict[str, str] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> ByteStreamInfo:
    """Send one value as a byte stream (``application/msgpack``).

    Raises:
        GreenroomError: ``value`` cannot be encoded (nothing was sent).
        StreamError: as ``send_bytes``.
    """
    return await participant.send_bytes(
        payload.pack(value, max_size=max_size),
        topic=topic,
        name="value.msgpack",
        mime_type=MIME_TYPE,
        destination_identities=destination_identities,
        attributes=attributes,
    )


async def read_value(reader: ByteStreamReader, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Read a byte stream to its end and decode the value it carries.

    Raises:
        StreamError: the stream ended abnormally.
        GreenroomError: the content is not a msgpack value, or too large.
    """
    data = bytearray()
    async for chunk in reader:
        data += chunk
        if len(data) > max_size:  # stop reading: the rest is dropped, not buffered
            reader.close()
            raise CodecError(f"the value's stream is over {max_size} bytes")
    return payload.unpack(bytes(data), max_size=max_size)
