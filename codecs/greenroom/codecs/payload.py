"""A msgpack codec for application data carried in ``UserPacket.payload``, RPC payloads and streams.

Accepted values (:data:`Value`), checked on both sides:

* ``None``, ``bool``, ``int`` (−2**63 … 2**64−1), ``float``, ``str``, ``bytes``;
* ``list`` and ``tuple`` (both come back as ``list``);
* ``dict`` with ``str`` keys.

Nothing else: no msgpack extension types (``unpack`` refuses any ext, including msgpack's timestamp),
no non-string map keys, nesting at most :data:`MAX_DEPTH` containers deep, and at most ``max_size`` bytes
(:data:`MAX_PAYLOAD_SIZE` by default, the 15 KiB LiveKit advises for one reliable packet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TypeAlias

import msgpack

from greenroom.codecs.errors import CodecError, GreenroomError, LocalProtocolError, PayloadTooLargeError

__all__ = ["MAX_DEPTH", "MAX_PAYLOAD_SIZE", "Value", "pack", "unpack"]

MAX_PAYLOAD_SIZE: Final = 15 * 1024
"""Default size limit in bytes (LiveKit's guidance for a reliable user payload; the RPC v1 limit)."""

MAX_DEPTH: Final = 32
"""Deepest nesting of lists/dicts accepted (the top-level value is depth 0)."""

Value: TypeAlias = (
    bool | int | float | str | bytes | list["Value"] | tuple["Value", ...] | dict[str, "Value"] | None
)
"""What :func:`pack` accepts and :func:`unpack` returns (tuples come back as lists)."""

_SCALARS: Final = (type(None), bool, int, float, str, bytes)


def _children(obj: object, depth: int) -> Iterable[object]:
    """The values directly inside ``obj`` (empty for a scalar); raises on anything not allowed."""
    if isinstance(obj, _SCALARS):
        return ()
    if depth >= MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(obj, list | tuple):
        return obj
    if isinstance(obj, dict):
        if not all(type(key) is str for key in obj):
            raise ValueError("map keys must be str")
        return obj.values()
    raise ValueError(f"type {type(obj).__name__} is not allowed")


def _check(value: object) -> None:
    """Walk ``value`` (iteratively) and raise ValueError on a type, key or depth that is not allowed."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        obj, depth = stack.pop()
        stack.extend((child, depth + 1) for child in _children(obj, depth))


def pack(value: Value, *, max_size: int = MAX_PAYLOAD_SIZE) -> bytes:
    """Serialize ``value`` to msgpack.

    Args:
        value: an accepted value (see the module docstring).
        max_size: the largest result allowed, in bytes.

    Returns:
        The msgpack bytes (strings as ``str``, bytes as ``bin``).

    Raises:
        LocalProtocolError: a type, map key or nesting depth that is not allowed, or an int out of range.
        PayloadTooLargeError: the result is larger than ``max_size``.
    """
    try:
        _check(value)
        data: bytes = msgpack.packb(value, use_bin_type=True, strict_types=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot pack payload: {exc}") from exc
    if len(data) > max_size:
        raise PayloadTooLargeError(
            f"payload is {len(data)} bytes, above the {max_size}-byte limit", size=len(data), limit=max_size
        )
    return data


def _refuse_ext(code: int, data: bytes) -> object:
    raise CodecError(f"msgpack extension type {code} is not accepted")


def unpack(data: bytes, *, max_size: int = MAX_PAYLOAD_SIZE) -> Value:
    """Parse msgpack bytes produced by :func:`pack` (or any peer using the same subset).

    Args:
        data: the msgpack bytes; exactly one value, nothing after it.
        max_size: the largest input accepted, in bytes.

    Returns:
        The value; arrays come back as ``list``.

    Raises:
        CodecError: oversize or malformed input, trailing bytes, an extension type, a non-``str`` map key,
            invalid UTF-8, or nesting deeper than :data:`MAX_DEPTH`.
    """
    if len(data) > max_size:
        raise CodecError(f"payload of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        value: Value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            timestamp=0,
        )  # unpackb bounds declared array/map/str lengths by len(data) itself
        _check(value)
    except GreenroomError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise CodecError(f"not a valid payload: {type(exc).__name__}: {exc}") from exc
    return value
