"""Data streams as in ``livekit.rtc.data_stream``: readers, writers, their infos and ``StreamError``.

Readers are handed to the handlers registered with ``Room.register_text_stream_handler`` /
``register_byte_stream_handler``; writers come from ``LocalParticipant.stream_text`` / ``stream_bytes``. Both
live on the room's loop. How packets become streams and back is :mod:`greenroom.codecs.streams`; who feeds
the readers and sends the writers' packets is :mod:`greenroom.rtc._streams`.

A reader buffers what arrived and was not read yet; the room bounds that (64 MiB over all its readers by
default): past it, the stream being fed fails with ``StreamError`` ("the reader fell behind") and its buffer
is dropped, so a handler that never reads cannot exhaust memory. A reader also raises ``StreamError`` when
its stream ends abnormally — cut by its sender, a missing chunk, wrong lengths, too large, or the room
disconnected ("Disconnected while receiving") — after what arrived before it has been read.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from greenroom.codecs import packets, streams

__all__ = [
    "STREAM_CHUNK_SIZE",
    "BaseStreamInfo",
    "BaseStreamWriter",
    "ByteStreamHandler",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "StreamError",
    "TextStreamHandler",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
]

STREAM_CHUNK_SIZE = streams.CHUNK_SIZE
"""Deprecated in ``livekit.rtc`` (chunking is internal); kept for compatibility."""


class StreamError(ConnectionError):
    """A stream could not be sent, or an incoming one ended abnormally; ``description`` says why."""

    def __init__(self, description: str) -> None:
        """Keep ``description`` (also the exception's text)."""
        super().__init__(description)
        self.description = description


@dataclass
class BaseStreamInfo:
    """What every stream's header says (``size`` is the announced total length, 0 when unknown)."""

    stream_id: str
    mime_type: str
    topic: str
    timestamp: int
    size: int | None
    attributes: dict[str, str] | None


@dataclass
class TextStreamInfo(BaseStreamInfo):
    """A text stream's info; ``attachments`` are the ids of byte streams sent with it."""

    attachments: list[str] = field(default_factory=list)


@dataclass
class ByteStreamInfo(BaseStreamInfo):
    """A byte stream's info; ``name`` is the file name it carries (``"unknown"`` by default)."""

    name: str = ""


def text_info(header: packets.StreamHeader) -> TextStreamInfo:
    """The info of a text stream's header."""
    text = header.content_header if isinstance(header.content_header, packets.TextHeader) else None
    return TextStreamInfo(
        stream_id=header.stream_id,
        mime_type=header.mime_type,
        topic=header.topic,
        timestamp=header.timestamp,
        size=header.total_length or 0,
        attributes=dict(header.attributes),
        attachments=[] if text is None else list(text.attached_stream_ids),
    )


def byte_info(header: packets.StreamHeader) -> ByteStreamInfo:
    """The info of a byte stream's header."""
    content = header.content_header
    return ByteStreamInfo(
        stream_id=header.stream_id,
        mime_type=header.mime_type,
        topic=header.topic,
        timestamp=header.timestamp,
        size=header.total_length or 0,
        attributes=dict(header.attributes),
        name=content.name if isinstance(content, packets.ByteHeader) else "",
    )


T = TypeVar("T", str, bytes)
I = TypeVar("I", TextStreamInfo, ByteStreamInfo)  # noqa: E741


class _Reader(Generic[T, I]):
    """An incoming stream's chunks, in order, for one consumer (the handler it was given to)."""

    def __init__(
        self, info: I, *, on_close: Callable[[], None] | None, account: Callable[[int], None]
    ) -> None:
        self._info: I = info
        self._on_close = on_close
        self._account = account  # tells the room how many bytes wait unread (+ pushed, − read or dropped)
        self._chunks: collections.deque[T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._closed = False
        self._error: StreamError | None = None

    @property
    def info(self) -> I:
        """The stream's info (attributes grow with the trailer's once the stream ends)."""
        return self._info

    def __aiter__(self) -> _Reader[T, I]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._account(-content_size(chunk))
                return chunk
            if self._ended or self._closed:
                self._close()
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Stop reading: what is buffered is dropped and nothing more arrives (iteration then ends)."""
        self._close()
        dropped = sum(content_size(c) for c in self._chunks)
        self._chunks.clear()
        self._account(-dropped)

    async def aclose(self) -> None:
        """:meth:`close`, awaitable."""
        self.close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()
            if self._on_close is not None:
                self._on_close()

    def _complete(self) -> list[T] | None:
        """Everything, taken now, if the stream already ended normally and nothing was read (a single-packet
        stream); else ``None`` and nothing changes. Lets RPC answer without a reading task."""
        if not self._ended or self._error is not None or self._closed:
            return None
        chunks = list(self._chunks)
        self.close()
        return chunks

    # -- fed by the room (greenroom.rtc._streams) -----------------------------------------------------------

    def _push(self, chunk: T) -> None:
        if self._closed or self._ended:
            return
        self._chunks.append(chunk)
        self._account(content_size(chunk))
        self._wake()

    def _end(self, attributes: packets.Attributes, error: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        if self._info.attributes is None:
            self._info.attributes = {}
        self._info.attributes.update(attributes)
        if error is not None:
            self._error = StreamError(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def content_size(chunk: str | bytes) -> int:
    """The bytes a chunk holds (UTF-8 for text)."""
    return len(chunk.encode("utf-8")) if isinstance(chunk, str) else len(chunk)


class TextStreamReader(_Reader[str, TextStreamInfo]):
    """An incoming text stream: ``async for chunk in reader`` or ``await reader.read_all()``."""

    async def read_all(self) -> str:
        """Everything, once the stream ended.

        Raises:
            StreamError: the stream ended abnormally.
        """
        return "".join([chunk async for chunk in self])


class ByteStreamReader(_Reader[bytes, ByteStreamInfo]):
    """An incoming byte stream: ``async for chunk in reader`` (or ``await reader.read_all()``)."""

    async def read_all(self) -> bytes:
        """Everything, once the stream ended (greenroom's; ``livekit.rtc`` 1.2 has it on text readers only).

        Raises:
            StreamError: the stream ended abnormally.
        """
        return b"".join([chunk async for chunk in self])


TextStreamHandler = Callable[[TextStreamReader, str], Awaitable[None] | None]
"""``handler(reader, participant_identity)``: called when a text stream on its topic opens (a coroutine
function is run as a task — greenroom's addition; ``livekit.rtc`` expects a plain function)."""
ByteStreamHandler = Callable[[ByteStreamReader, str], Awaitable[None] | None]
"""``handler(reader, participant_identity)``: called when a byte stream on its topic opens."""

#: Sends one stream packet to the destinations, stamped with an identity ("": ours); raises ``StreamError``.
SendPacket = Callable[[packets.StreamValue, tuple[str, ...], str], Awaitable[None]]


class BaseStreamWriter:
    """An outgoing stream opened with ``stream_text``/``stream_bytes``: its header is already sent."""

    def __init__(
        self, send: SendPacket, header: packets.StreamHeader, destinations: tuple[str, ...], identity: str
    ) -> None:
        self._send = send
        self._header = header
        self._destinations = destinations
        self._identity = identity
        self._next_index = 0
        self._lock = asyncio.Lock()
        self._closed = False

    async def _send_header(self) -> None:
        await self._send(self._header, self._destinations, self._identity)

    async def _write(self, pieces: list[bytes]) -> None:
        async with self._lock:
            if self._closed:
                raise RuntimeError("Cannot write after stream is closed")
            for chunk in streams.chunks(self._header.stream_id, pieces, self._next_index):
                await self._send(chunk, self._destinations, self._identity)
                self._next_index += 1

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        """End the stream (``reason`` non-empty: an abnormal end); ``attributes`` are merged at the receiver.

        Raises:
            RuntimeError: the stream is already closed.
            StreamError: the trailer could not be sent.
        """
        async with self._lock:
            if self._closed:
                raise RuntimeError("Stream already closed")
            self._closed = True
            trailer = packets.StreamTrailer(
                self._header.stream_id, reason, packets.freeze_attributes(attributes or {})
            )
            await self._send(trailer, self._destinations, self._identity)


class TextStreamWriter(BaseStreamWriter):
    """An outgoing text stream: ``await writer.write(text)`` as often as needed, then ``aclose()``."""

    def __init__(
        self,
        send: SendPacket,
        header: packets.StreamHeader,
        destinations: tuple[str, ...],
        identity: str,
        total_size: int | None = None,
    ) -> None:
        super().__init__(send, header, destinations, identity)
        self._info = text_info(header)
        if not self._info.size and total_size is not None:
            self._info.size = total_size  # not sent for text streams (as the official SDK): kept here

    @property
    def info(self) -> TextStreamInfo:
        """The stream's info."""
        return self._info

    async def write(self, text: str) -> None:
        """Send ``text`` (cut into chunks of at most 15 000 bytes, never inside a character).

        Raises:
            RuntimeError: the stream is closed.
            StreamError: a chunk could not be sent.
        """
        await self._write(streams.split_utf8(text.encode("utf-8")))


class ByteStreamWriter(BaseStreamWriter):
    """An outgoing byte stream: ``await writer.write(data)`` as often as needed, then ``aclose()``."""

    def __init__(
        self, send: SendPacket, header: packets.StreamHeader, destinations: tuple[str, ...], identity: str
    ) -> None:
        super().__init__(send, header, destinations, identity)
        self._info = byte_info(header)

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's info."""
        return self._info

    async def write(self, data: bytes) -> None:
        """Send ``data`` (cut into chunks of at most 15 000 bytes).

        Raises:
            RuntimeError: the stream is closed.
            StreamError: a chunk could not be sent.
        """
        await self._write(streams.split_raw(bytes(data)))


def now_ms() -> int:
    """Unix milliseconds, as a header's ``timestamp``."""
    return int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
