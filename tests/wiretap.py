"""What crossed the dev server: every data packet a participant sent, as the server decoded it off the wire.

The dev server decodes each client ``DataPacket`` before routing it (``devserver.room.Room.route``); wrapping
that method sees exactly the bytes a sender put on its data channel — so a test can prove *how* something
was sent (compressed, inline, chunked, as a ``Transcription`` packet) and not only that it arrived. The
server must run in this process (the rtc tests' ``run_with_server``, the interop scenarios' ``DevServer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from greenroom.codecs import packets
from greenroom.devserver import room as server_room

__all__ = ["Wire", "tap"]


@dataclass
class Wire:
    """The packets routed while the tap was open, as ``(sender identity, packet)`` in arrival order."""

    sent: list[tuple[str, packets.DataPacket]] = field(default_factory=list)

    def values(self, sender: str, kind: type[Any]) -> list[Any]:
        """The packet values of one type ``sender`` sent (e.g. ``packets.StreamHeader``)."""
        return [p.value for who, p in self.sent if who == sender and isinstance(p.value, kind)]

    def headers(self, sender: str, topic: str) -> list[packets.StreamHeader]:
        """The stream headers ``sender`` sent on ``topic``."""
        return [h for h in self.values(sender, packets.StreamHeader) if h.topic == topic]

    def chunks(self, sender: str, stream_id: str) -> list[packets.StreamChunk]:
        return [c for c in self.values(sender, packets.StreamChunk) if c.stream_id == stream_id]


@contextlib.contextmanager
def tap() -> Iterator[Wire]:
    """Record every data packet the in-process dev server routes until the block ends."""
    wire = Wire()
    original = server_room.Room.route

    def route(
        self: server_room.Room, sender: server_room.Member, packet: packets.DataPacket, **kw: Any
    ) -> Any:
        wire.sent.append((sender.identity, packet))
        return original(self, sender, packet, **kw)

    server_room.Room.route = route  # type: ignore[method-assign]
    try:
        yield wire
    finally:
        server_room.Room.route = original  # type: ignore[method-assign]
