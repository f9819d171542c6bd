"""Data streams on the room's loop: :class:`StreamSender` (one per local participant) and :class:`StreamHub`
(one per room: the handlers, the readers, and the reassembly of what arrives).

Every stream packet travels like any data packet: out through the connection's port (``PublishPacket`` →
RoomActor → data plane, always on ``_reliable``, chunks and trailers repeating the header's destinations),
in through the mailboxes (RoomActor → the sender's ParticipantActor → the reducer's ``Deliver`` →
:meth:`StreamHub.receive`), in order. The rules are :mod:`greenroom.codecs.streams`.

Bounds and policies of the hub (each a decision; see docs/architecture.md "Data streams"):

* a stream's total size: ``DataStreamOptions.max_payload_byte_length`` (5 GB by default, as the official
  SDKs) → the stream fails ``PayloadTooLarge``;
* streams open at once per sender: 100 → further headers are refused (logged), other senders unaffected;
* bytes waiting unread in the room's readers: :data:`MAX_BUFFERED` (64 MiB) → the stream being fed fails
  ("the reader fell behind") and its buffer is dropped;
* a header for a topic nobody handles: logged once per topic (INFO, as ``livekit.rtc``) and ignored; its
  chunks are dropped quietly (the last :data:`REMEMBERED` ignored ids are remembered). Chunks of a stream
  never seen are dropped with one INFO line per stream id (a Rust sender's chunks of a stream addressed to
  someone else reach every participant: data-e2ee-formats R4).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import itertools
import logging
import mimetypes
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from greenroom.actors.messages import PublishPacket
from greenroom.codecs import packets, rpc, streams
from greenroom.codecs.errors import GreenroomError
from greenroom.rtc.data_stream import (
    ByteStreamHandler,
    ByteStreamInfo,
    ByteStreamReader,
    ByteStreamWriter,
    StreamError,
    TextStreamHandler,
    TextStreamInfo,
    TextStreamReader,
    TextStreamWriter,
    byte_info,
    content_size,
    now_ms,
    text_info,
)

if TYPE_CHECKING:
    from greenroom.rtc._port import RoomPort
    from greenroom.rtc._records import ParticipantRecord

__all__ = ["MAX_BUFFERED", "REMEMBERED", "StreamHub", "StreamSender"]

_log = logging.getLogger("greenroom.rtc.data_stream")

#: Bytes the readers of one room may hold unread before the stream being fed fails.
MAX_BUFFERED = 64 * 1024 * 1024
#: Ignored or unknown stream ids remembered (each logged once, its further packets dropped quietly).
REMEMBERED = 1024
#: Packets of one stream in flight at once between the user's loop and the data plane (order is kept).
WINDOW = 16
_INTERNAL = (rpc.REQUEST_TOPIC, rpc.RESPONSE_TOPIC)


class StreamSender:
    """The outgoing streams of one local participant.

    Args:
        port: the connection's port.
        remotes: the room's other participants (their announced ``client_protocol`` and capabilities decide
            inline and compression).
        identity: the local identity (read when a stream starts).
    """

    def __init__(
        self, port: RoomPort, remotes: Mapping[str, ParticipantRecord], identity: Callable[[], str]
    ) -> None:
        self._port = port
        self._remotes = remotes
        self._identity = identity

    async def packet(
        self, value: packets.StreamValue, destinations: tuple[str, ...], identity: str = ""
    ) -> None:
        """Send one stream packet (reliable) and wait until it is handed to the transport.

        Raises:
            StreamError: not connected, refused, or the channel failed.
        """
        try:
            await self._port.request(lambda r: PublishPacket(value, destinations, r, identity))
        except GreenroomError as exc:
            raise StreamError(str(exc) or type(exc).__name__) from exc

    async def send_all(
        self,
        values: Iterator[packets.StreamValue],
        destinations: tuple[str, ...],
        identity: str,
        on_failure: Callable[[StreamError], None] | None = None,
    ) -> None:
        """Send ``values`` in order, up to :data:`WINDOW` in flight (each request reaches the RoomActor in the
        order it was made), so a long stream is not one round trip per chunk. With ``on_failure`` a single
        packet is posted without waiting for its hand-over (:meth:`RoomPort.post`; RPC)."""
        first = next(values, None)
        if first is None:
            return
        following = next(values, None)
        if following is None and on_failure is not None:
            report = on_failure
            self._port.post(
                lambda r: PublishPacket(first, destinations, r, identity),
                lambda exc: report(StreamError(str(exc) or type(exc).__name__)),
            )
            return
        if following is None:  # one packet (a single-packet stream): no window to keep
            await self.packet(first, destinations, identity)
            return
        values = itertools.chain((first, following), values)
        in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
        try:
            for value in values:
                if len(in_flight) >= WINDOW:
                    await in_flight.popleft()
                in_flight.append(asyncio.ensure_future(self.packet(value, destinations, identity)))
            while in_flight:
                await in_flight.popleft()
        finally:
            for future in in_flight:
                future.cancel()

    def eligibility(self, destinations: tuple[str, ...]) -> tuple[bool, bool]:
        """``(inline, compress)`` for these destinations (everyone else when empty)."""
        identities = destinations or tuple(self._remotes)
        recipients = []
        for identity in identities:
            record = self._remotes.get(identity)
            info = None if record is None else record.info
            recipients.append((0, ()) if info is None else (info.client_protocol, info.capabilities))
        return streams.eligibility(recipients)

    def _header(
        self,
        stream_id: str | None,
        *,
        topic: str,
        mime_type: str,
        attributes: dict[str, str] | None,
        content: packets.TextHeader | packets.ByteHeader,
        total_length: int | None = None,
    ) -> packets.StreamHeader:
        return packets.StreamHeader(
            stream_id=stream_id or str(uuid.uuid4()),
            timestamp=now_ms(),
            topic=topic,
            mime_type=mime_type,
            total_length=total_length,
            attributes=packets.freeze_attributes(attributes or {}),
            content_header=content,
        )

    async def send_text(
        self,
        text: str,
        *,
        destinations: tuple[str, ...],
        topic: str,
        attributes: dict[str, str] | None,
        reply_to_id: str | None,
        compress: bool,
        stream_id: str | None = None,
        sender_identity: str = "",
        on_failure: Callable[[StreamError], None] | None = None,
    ) -> TextStreamInfo:
        """``LocalParticipant.send_text``: a one-shot text stream (inline and compressed when eligible);
        ``sender_identity`` names another participant it is sent on behalf of (transcriptions);
        ``on_failure``: see :meth:`send_all`."""
        content = packets.TextHeader(reply_to_stream_id=reply_to_id or "")
        header = self._header(
            stream_id, topic=topic, mime_type=streams.TEXT_MIME_TYPE, attributes=attributes, content=content
        )
        inline_ok, compress_ok = self.eligibility(destinations)
        values = self._plan(header, text.encode("utf-8"), destinations, inline_ok, compress_ok and compress)
        identity = sender_identity if sender_identity != self._identity() else ""
        await self.send_all(iter(values), destinations, identity, on_failure)
        return text_info(_sent_header(values))

    async def send_bytes(
        self,
        data: bytes,
        *,
        destinations: tuple[str, ...],
        topic: str,
        name: str | None,
        mime_type: str | None,
        attributes: dict[str, str] | None,
        stream_id: str | None,
        compress: bool,
    ) -> ByteStreamInfo:
        """``LocalParticipant.send_bytes``: a one-shot byte stream (inline and compressed when eligible)."""
        content = packets.ByteHeader(name=name or streams.DEFAULT_BYTE_NAME)
        mime_type = mime_type or streams.BYTES_MIME_TYPE
        header = self._header(
            stream_id, topic=topic, mime_type=mime_type, attributes=attributes, content=content
        )
        inline_ok, compress_ok = self.eligibility(destinations)
        values = self._plan(header, bytes(data), destinations, inline_ok, compress_ok and compress)
        await self.send_all(iter(values), destinations, "")
        return byte_info(_sent_header(values))

    @staticmethod
    def _plan(
        header: packets.StreamHeader,
        payload: bytes,
        destinations: tuple[str, ...],
        inline: bool,
        compress: bool,
    ) -> list[packets.StreamValue]:
        try:
            return streams.one_shot(header, payload, destinations, inline_ok=inline, compress_ok=compress)
        except streams.HeaderTooLargeError as exc:
            raise StreamError(str(exc)) from exc

    async def send_file(
        self,
        path: str,
        *,
        destinations: tuple[str, ...],
        topic: str,
        attributes: dict[str, str] | None,
        stream_id: str | None,
        compress: bool,
    ) -> ByteStreamInfo:
        """``LocalParticipant.send_file``: never inline; compressed on the fly when every recipient inflates;
        the file is read piece by piece, never held whole."""
        size = (await asyncio.to_thread(os.stat, path)).st_size
        mime_type = mimetypes.guess_type(path)[0] or streams.BYTES_MIME_TYPE
        content = packets.ByteHeader(name=os.path.basename(path))
        _, compress_ok = self.eligibility(destinations)
        header = self._header(
            stream_id,
            topic=topic,
            mime_type=mime_type,
            attributes=attributes,
            content=content,
            total_length=size,
        )
        if compress and compress_ok:
            header = dataclasses.replace(header, compression=packets.CompressionType.DEFLATE_RAW)
        if not streams.header_fits(header, destinations):
            raise StreamError(f"the header of stream {header.stream_id} is over {streams.CHUNK_SIZE} bytes")
        deflater = streams.Deflater() if header.compression is packets.CompressionType.DEFLATE_RAW else None
        await self.send_all(_file_packets(path, header, deflater), destinations, "")
        return byte_info(header)

    async def stream_text(
        self,
        *,
        destinations: tuple[str, ...],
        topic: str,
        attributes: dict[str, str] | None,
        stream_id: str | None,
        reply_to_id: str | None,
        total_size: int | None,
        sender_identity: str | None,
    ) -> TextStreamWriter:
        """``LocalParticipant.stream_text``: the header now, chunks per ``write``, a trailer on ``aclose``."""
        content = packets.TextHeader(reply_to_stream_id=reply_to_id or "")
        header = self._header(
            stream_id, topic=topic, mime_type=streams.TEXT_MIME_TYPE, attributes=attributes, content=content
        )
        identity = sender_identity if sender_identity and sender_identity != self._identity() else ""
        writer = TextStreamWriter(self.packet, header, destinations, identity, total_size)
        await self._open(writer, header, destinations)
        return writer

    async def stream_bytes(
        self,
        name: str,
        *,
        destinations: tuple[str, ...],
        topic: str,
        mime_type: str,
        attributes: dict[str, str] | None,
        stream_id: str | None,
        total_size: int | None,
    ) -> ByteStreamWriter:
        """``LocalParticipant.stream_bytes``: the header now, chunks per ``write``, a trailer at the end."""
        content = packets.ByteHeader(name=name)
        header = self._header(
            stream_id,
            topic=topic,
            mime_type=mime_type,
            attributes=attributes,
            content=content,
            total_length=total_size,
        )
        writer = ByteStreamWriter(self.packet, header, destinations, "")
        await self._open(writer, header, destinations)
        return writer

    async def _open(
        self,
        writer: TextStreamWriter | ByteStreamWriter,
        header: packets.StreamHeader,
        destinations: tuple[str, ...],
    ) -> None:
        if not streams.header_fits(header, destinations):
            raise StreamError(f"the header of stream {header.stream_id} is over {streams.CHUNK_SIZE} bytes")
        await writer._send_header()


def _sent_header(values: list[packets.StreamValue]) -> packets.StreamHeader:
    header = values[0]
    assert isinstance(header, packets.StreamHeader)
    return header


def _file_packets(
    path: str, header: packets.StreamHeader, deflater: streams.Deflater | None
) -> Iterator[packets.StreamValue]:
    """The header, the file's chunks (compressed on the fly if ``deflater``), the trailer — lazily."""
    yield header
    pending, index = b"", 0
    with open(path, "rb") as file:  # read piece by piece, as the packets are sent
        while block := file.read(64 * 1024):
            pending += deflater.push(block) if deflater is not None else block
            while len(pending) >= streams.CHUNK_SIZE:
                yield packets.StreamChunk(header.stream_id, index, pending[: streams.CHUNK_SIZE])
                pending, index = pending[streams.CHUNK_SIZE :], index + 1
    if deflater is not None:
        pending += deflater.finish()
    for piece in streams.split_raw(pending):
        yield packets.StreamChunk(header.stream_id, index, piece)
        index += 1
    yield packets.StreamTrailer(header.stream_id)


Reader = TextStreamReader | ByteStreamReader
#: What the hub hands RPC v2 streams to: ``(topic, reader, sender identity)``.
InternalHandler = Callable[[str, TextStreamReader, str], None]


class StreamHub:
    """The incoming streams of one room: handlers by topic, readers by stream id, the reassembly.

    Args:
        max_payload: the most bytes one incoming stream may carry (``DataStreamOptions``).
    """

    def __init__(self, max_payload: int | None = None) -> None:
        self.text_handlers: dict[str, TextStreamHandler] = {}
        self.byte_handlers: dict[str, ByteStreamHandler] = {}
        self.internal: InternalHandler | None = None
        self.max_buffered = MAX_BUFFERED
        self._incoming = streams.IncomingStreams(max_payload or streams.DEFAULT_MAX_PAYLOAD)
        self._readers: dict[str, Reader] = {}
        self._buffered = 0
        self._ignored: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._topics_logged: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dropped_chunks = 0
        """Chunks and trailers of streams not open here (ignored, refused, failed, or never seen)."""

    @property
    def buffered(self) -> int:
        """Bytes the readers hold unread."""
        return self._buffered

    @property
    def open_streams(self) -> int:
        """Incoming streams being received."""
        return len(self._incoming)

    def reset(self, max_payload: int | None) -> None:
        """A new connection: a fresh reassembly with its size cap (handlers stay registered)."""
        self._incoming = streams.IncomingStreams(max_payload or streams.DEFAULT_MAX_PAYLOAD)
        self._ignored.clear()

    # -- packets in -----------------------------------------------------------------------------------------

    def receive(self, identity: str, value: packets.StreamValue) -> None:
        """A stream packet from ``identity`` (a header's identity may be one an agent publishes for)."""
        match value:
            case packets.StreamHeader():
                self._header(identity, value)
            case packets.StreamChunk():
                self._apply(self._incoming.chunk(value), value.stream_id, identity)
            case packets.StreamTrailer():
                self._apply(self._incoming.trailer(value), value.stream_id, identity)

    def _header(self, identity: str, header: packets.StreamHeader) -> None:
        stream_id, topic = header.stream_id, header.topic
        text = isinstance(header.content_header, packets.TextHeader)
        handler = self._handler_for(header, text)
        if handler is None:
            kind = "text" if text else "byte"
            if (kind, topic) not in self._topics_logged:
                self._topics_logged.add((kind, topic))
                _log.info("ignoring %s streams with topic %r: no handler registered", kind, topic)
            self._remember(stream_id)
            return
        try:
            out = self._incoming.open(header, identity)
        except streams.IncomingStreamError as exc:
            _log.warning("refused stream %s from %s: %s", stream_id, identity, exc)
            self._remember(stream_id)
            return
        reader: Reader
        if text:
            reader = TextStreamReader(
                text_info(header), on_close=self._closer(stream_id), account=self._account
            )
        else:
            reader = ByteStreamReader(
                byte_info(header), on_close=self._closer(stream_id), account=self._account
            )
        self._readers[stream_id] = reader
        self._apply(out, stream_id, identity)  # a single-packet stream is complete before its handler runs
        self._call(handler, reader, identity, topic)

    def _handler_for(self, header: packets.StreamHeader, text: bool) -> Callable[..., Any] | None:
        if header.topic in _INTERNAL:
            internal = self.internal
            if not text or internal is None:
                return None
            return lambda reader, identity: internal(header.topic, reader, identity)
        return self.text_handlers.get(header.topic) if text else self.byte_handlers.get(header.topic)

    def _call(self, handler: Callable[..., Any], reader: Reader, identity: str, topic: str) -> None:
        """Run a user's handler; its failure is its own (logged), never the room's."""
        try:
            result = handler(reader, identity)
        except Exception:
            _log.exception("the stream handler for topic %r raised", topic)
            return
        if inspect.isawaitable(result):  # an async handler: run it (livekit.rtc would drop the coroutine)
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("a stream handler failed", exc_info=task.exception())

    def _apply(self, out: list[streams.Out] | None, stream_id: str, identity: str) -> None:
        if out is None:
            self.dropped_chunks += 1
            if stream_id not in self._ignored:
                self._remember(stream_id)
                why = "not addressed to us, or its header was refused"
                _log.info("dropping packets of unknown stream %s from %s (%s)", stream_id, identity, why)
            return
        for item in out:
            reader = self._readers.get(item.stream_id)
            if reader is None:
                continue
            match item:
                case streams.Data(content=content):
                    if self._buffered + content_size(content) > self.max_buffered:
                        self._too_slow(item.stream_id, reader, identity)
                        continue
                    reader._push(content)  # type: ignore[arg-type]
                case streams.End(attributes=attributes, error=error):
                    self._readers.pop(item.stream_id, None)
                    if error is not None:
                        _log.info("stream %s from %s failed: %s", item.stream_id, identity, error)
                    reader._end(attributes, None if error is None else error.description)

    def _too_slow(self, stream_id: str, reader: Reader, identity: str) -> None:
        """The readers of this room hold too much unread: the stream being fed fails, its buffer dropped."""
        why = f"more than {self.max_buffered} bytes unread in this room"
        end = self._incoming.fail(stream_id, streams.Reason.READER_TOO_SLOW, why)
        description = end.error.description if end.error is not None else why
        _log.warning("stream %s from %s failed: %s", stream_id, identity, end.error)
        self._readers.pop(stream_id, None)
        reader.close()
        reader._end(end.attributes, description)

    def _remember(self, stream_id: str) -> None:
        self._ignored[stream_id] = None
        while len(self._ignored) > REMEMBERED:
            self._ignored.popitem(last=False)

    def _closer(self, stream_id: str) -> Callable[[], None]:
        def closed() -> None:
            if self._readers.pop(stream_id, None) is not None:
                self._incoming.discard(stream_id)
                self._remember(stream_id)

        return closed

    def _account(self, delta: int) -> None:
        self._buffered += delta

    # -- the room -------------------------------------------------------------------------------------------

    def departed(self, identity: str) -> None:
        """``identity`` left: the streams it was sending end abnormally."""
        self._apply(self._incoming.abort_from(identity), "", identity)

    def ended(self) -> None:
        """The room disconnected: every reader still open ends with ``StreamError`` (after what it holds)."""
        readers, self._readers = self._readers, {}
        for stream_id, reader in readers.items():
            self._incoming.discard(stream_id)
            reader._end((), "Disconnected while receiving")
        self._incoming = streams.IncomingStreams(self._incoming.max_payload)
