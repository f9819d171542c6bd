"""Layer 1: pure LiveKit wire formats — synchronous, no sockets, no loop, no threads.

Importing this package must never import asyncio-based libraries (aiortc, websockets) or pykka; an
import-linter contract in ``pyproject.toml`` enforces it.
"""

from __future__ import annotations

from greenroom.codecs.errors import (
    CodecError,
    GreenroomError,
    LocalProtocolError,
    PayloadTooLargeError,
    ProtocolError,
    RemoteProtocolError,
    TokenError,
)

__all__ = [
    "CodecError",
    "GreenroomError",
    "LocalProtocolError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RemoteProtocolError",
    "TokenError",
]
