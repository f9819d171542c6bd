"""Data streams, pure (``reference/data-e2ee-formats.md`` §3): how a stream becomes packets, and back.

**Sending.** A stream is a ``DataStream.Header`` (``StreamHeader``), then chunks of at most
:data:`CHUNK_SIZE` bytes numbered from 0, then a ``Trailer``; text is cut without splitting a UTF-8
character (:func:`split_utf8`). A one-shot send (``send_text``/``send_bytes``) may instead put the whole
payload in the header (``inline_content``) when every recipient announces ``client_protocol >= 2``, and
raw-DEFLATE it first when they all announce ``CAP_COMPRESSION_DEFLATE_RAW`` and it gets smaller
(:func:`eligibility`, :func:`one_shot`, as the Rust and JS senders decide). A chunked header larger than
15 000 bytes is refused (:class:`HeaderTooLargeError`).

**Receiving.** :class:`IncomingStreams` reassembles what arrives, keyed by ``stream_id`` (never by sender:
an agent's header may name another identity than its chunks). It holds no payload: each chunk comes out at
once as :class:`Data` (``str`` for text, decoded incrementally so a character cut between chunks is held
back; ``bytes`` otherwise), and each stream ends with one :class:`End`, normal or with a
:class:`IncomingStreamError` whose ``reason`` uses the Rust SDK's vocabulary (``MissedChunk``,
``LengthExceeded``, ``Incomplete``, ``AbnormalEnd``, ``PayloadTooLarge``, ``Decompression``, ``Utf8`` …).
Limits: the total uncompressed size of a stream (``max_payload``, 5 GB by default as in the official SDKs;
inflation is bounded by it too, so a DEFLATE bomb fails instead of allocating) and the streams open at once
per sender (``max_open_per_sender``: a flood of headers is refused beyond it, other senders unaffected).
Chunks and trailers of unknown streams return ``None`` (dropped; a Rust sender's chunks of a stream
addressed to someone else reach everyone, data-e2ee-formats R4).
"""

from __future__ import annotations

import codecs
import enum
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from greenroom.codecs.errors import CodecError, LocalProtocolError
from greenroom.codecs.models import ClientCapability
from greenroom.codecs.packets import (
    Attributes,
    CompressionType,
    DataPacket,
    StreamChunk,
    StreamHeader,
    StreamTrailer,
    StreamValue,
    TextHeader,
    encode_packet,
    freeze_attributes,
)

__all__ = [
    "ANNOUNCED_CAPABILITIES",
    "ANNOUNCED_PROTOCOL",
    "BYTES_MIME_TYPE",
    "CHUNK_SIZE",
    "CLIENT_PROTOCOL_DATA_STREAM_V2",
    "DEFAULT_BYTE_NAME",
    "DEFAULT_MAX_OPEN_PER_SENDER",
    "DEFAULT_MAX_PAYLOAD",
    "MIN_COMPRESSED",
    "TEXT_MIME_TYPE",
    "Data",
    "Deflater",
    "End",
    "HeaderTooLargeError",
    "IncomingStreamError",
    "IncomingStreams",
    "Out",
    "Reason",
    "chunks",
    "deflate_raw",
    "eligibility",
    "header_fits",
    "one_shot",
    "split_raw",
    "split_utf8",
]

CHUNK_SIZE: Final = 15_000
"""The largest chunk content, and the largest header packet (with its destinations), in bytes."""
CLIENT_PROTOCOL_DATA_STREAM_V2: Final = 2
"""A participant announcing at least this ``client_protocol`` reads single-packet (inline) streams."""
DEFAULT_MAX_PAYLOAD: Final = 5_000_000_000
"""The default cap on one incoming stream's uncompressed size (the official SDKs' 5 GB)."""
DEFAULT_MAX_OPEN_PER_SENDER: Final = 100
"""Streams one sender may have open at once towards us; more headers are refused."""
ANNOUNCED_PROTOCOL: Final = CLIENT_PROTOCOL_DATA_STREAM_V2
ANNOUNCED_CAPABILITIES: Final = (ClientCapability.CAP_COMPRESSION_DEFLATE_RAW,)
"""What greenroom announces in its join: exactly what it implements — RPC over streams and single-packet
streams (``client_protocol`` 2), raw-DEFLATE streams; not the media packet trailer (CAP_PACKET_TRAILER)."""
TEXT_MIME_TYPE: Final = "text/plain"
BYTES_MIME_TYPE: Final = "application/octet-stream"
DEFAULT_BYTE_NAME: Final = "unknown"


class HeaderTooLargeError(LocalProtocolError):
    """A stream header does not fit in one packet (huge attributes or destinations); nothing was sent."""


# --------------------------------------------------------------------------------------------------
# Sending


def split_utf8(data: bytes, size: int = CHUNK_SIZE) -> list[bytes]:
    """``data`` (UTF-8) in pieces of at most ``size`` bytes, never cutting a character (as JS and Rust)."""
    out: list[bytes] = []
    while len(data) > size:
        cut = size
        while cut > 0 and data[cut] & 0xC0 == 0x80:  # a continuation byte: the character starts earlier
            cut -= 1
        out.append(data[:cut])
        data = data[cut:]
    if data:
        out.append(data)
    return out


def split_raw(data: bytes, size: int = CHUNK_SIZE) -> list[bytes]:
    """``data`` in pieces of at most ``size`` bytes (bytes, and compressed content of any kind)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def deflate_raw(data: bytes) -> bytes:
    """RFC 1951 raw DEFLATE (no zlib or gzip wrapper), as ``DEFLATE_RAW`` streams carry."""
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


class Deflater:
    """Raw DEFLATE of a stream fed piece by piece (``send_file``: the file is never held whole)."""

    def __init__(self) -> None:
        """Start a new raw DEFLATE stream."""
        self._compressor = zlib.compressobj(wbits=-15)

    def push(self, data: bytes) -> bytes:
        """Compress ``data``; returns what is ready (often nothing)."""
        return self._compressor.compress(data)

    def finish(self) -> bytes:
        """The rest of the compressed stream (its final block)."""
        return self._compressor.flush()


def eligibility(recipients: Iterable[tuple[int, tuple[int, ...]]]) -> tuple[bool, bool]:
    """``(inline, compress)`` for recipients given as ``(client_protocol, capabilities)``.

    Inline when every recipient reads single-packet streams (``client_protocol >= 2``; an empty room is
    eligible); compressed when, in addition, every one inflates raw DEFLATE.
    """
    listed = list(recipients)
    inline = all(protocol >= CLIENT_PROTOCOL_DATA_STREAM_V2 for protocol, _ in listed)
    deflate = ClientCapability.CAP_COMPRESSION_DEFLATE_RAW
    return inline, inline and all(deflate in capabilities for _, capabilities in listed)


def header_fits(header: StreamHeader, destinations: tuple[str, ...]) -> bool:
    """Whether the header's packet (with its destinations) is at most :data:`CHUNK_SIZE` bytes."""
    packet = DataPacket(value=header, destination_identities=destinations)
    return len(encode_packet(packet, max_size=2**31)) <= CHUNK_SIZE


def chunks(stream_id: str, pieces: Iterable[bytes], first_index: int = 0) -> Iterator[StreamChunk]:
    """Number ``pieces`` as the chunks of ``stream_id`` from ``first_index``."""
    for index, piece in enumerate(pieces, first_index):
        yield StreamChunk(stream_id=stream_id, chunk_index=index, content=piece)


#: Payloads shorter than this are never compressed: raw DEFLATE seldom makes them smaller (its block header
#: and Huffman-coded literals), and a compressor costs 30-80 µs to set up — most of an RPC's budget, since
#: RPC payloads (v2: text streams) are usually a few bytes. Compression is optional for the sender
#: (data-e2ee-formats.md §3.3: "only if strictly smaller"), so this changes no receiver.
MIN_COMPRESSED: Final = 64


def one_shot(
    header: StreamHeader,
    payload: bytes,
    destinations: tuple[str, ...],
    *,
    inline_ok: bool,
    compress_ok: bool,
) -> list[StreamValue]:
    """Every packet value of a one-shot send (``send_text``/``send_bytes``), in order.

    ``header`` has everything but the content fields: ``total_length`` becomes the uncompressed length,
    the payload is compressed when allowed, at least :data:`MIN_COMPRESSED` bytes long and smaller, put
    inline when allowed and the header packet stays within :data:`CHUNK_SIZE` (a text header listing
    attachments never goes inline), else chunked: text uncompressed is cut on UTF-8 boundaries, anything
    compressed or bytes on raw boundaries.

    Raises:
        HeaderTooLargeError: the chunked header alone is larger than :data:`CHUNK_SIZE`.
    """
    compress_ok = compress_ok and len(payload) >= MIN_COMPRESSED
    compressed = deflate_raw(payload) if compress_ok else b""
    use_compression = compress_ok and len(compressed) < len(payload)
    content, compression = (
        (compressed, CompressionType.DEFLATE_RAW) if use_compression else (payload, CompressionType.NONE)
    )
    header = replace(header, total_length=len(payload), compression=compression)
    attachments = isinstance(header.content_header, TextHeader) and header.content_header.attached_stream_ids
    inline = replace(header, inline_content=content)
    if inline_ok and not attachments and header_fits(inline, destinations):
        return [inline]
    if not header_fits(header, destinations):
        raise HeaderTooLargeError(f"the header of stream {header.stream_id} is over {CHUNK_SIZE} bytes")
    text = isinstance(header.content_header, TextHeader) and compression is CompressionType.NONE
    pieces = split_utf8(content) if text else split_raw(content)
    return [header, *chunks(header.stream_id, pieces), StreamTrailer(stream_id=header.stream_id)]


# --------------------------------------------------------------------------------------------------
# Receiving


class Reason(enum.Enum):
    """Why an incoming stream failed: the Rust SDK's ``StreamError`` variants (and greenroom's limits)."""

    ABNORMAL_END = "AbnormalEnd"
    UTF8 = "Utf8"
    INVALID_HEADER = "InvalidHeader"
    MISSED_CHUNK = "MissedChunk"
    LENGTH_EXCEEDED = "LengthExceeded"
    INCOMPLETE = "Incomplete"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    DECOMPRESSION = "Decompression"
    TOO_MANY_STREAMS = "TooManyStreams"
    READER_TOO_SLOW = "ReaderTooSlow"


_DESCRIPTIONS: Final = {  # the Rust SDK's texts, which livekit.rtc readers raise (StreamError.description)
    Reason.ABNORMAL_END: "stream closed abnormally: {}",
    Reason.UTF8: "UTF-8 decoding error: {}",
    Reason.INVALID_HEADER: "incoming header was invalid",
    Reason.MISSED_CHUNK: "expected chunk index to be exactly one more than the previous",
    Reason.LENGTH_EXCEEDED: "read length exceeded total length specified in stream header",
    Reason.INCOMPLETE: "stream data is incomplete",
    Reason.PAYLOAD_TOO_LARGE: "stream payload exceeds maximum size",
    Reason.DECOMPRESSION: "decompression failed",
    Reason.TOO_MANY_STREAMS: "too many open streams",
    Reason.READER_TOO_SLOW: "the reader fell behind",
}


class IncomingStreamError(CodecError):
    """An incoming stream cannot be delivered as sent.

    Attributes:
        reason: what went wrong (:class:`Reason`).
        description: the text a reader's ``StreamError`` carries — the official SDK's for the same failure
            (with the sender's reason for an abnormal end).
        detail: the specifics (stream, counts), for logs; also in ``str()``.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        """Describe a failure of kind ``reason`` (``detail``: the specifics)."""
        self.reason = reason
        self.detail = detail
        template = _DESCRIPTIONS[reason]
        self.description = template.format(detail) if "{}" in template else template
        text = self.description if "{}" in template else f"{self.description} ({detail})"
        super().__init__(text, leave_reason="UNKNOWN_REASON")


@dataclass(frozen=True, slots=True)
class Data:
    """Content of stream ``stream_id``, in order: ``str`` for a text stream, ``bytes`` for a byte stream."""

    stream_id: str
    content: str | bytes


@dataclass(frozen=True, slots=True)
class End:
    """Stream ``stream_id`` is over: normally (``error`` is ``None``) or not; ``attributes`` are the
    trailer's, to merge into the stream's."""

    stream_id: str
    attributes: Attributes = ()
    error: IncomingStreamError | None = None


Out = Data | End


@dataclass(eq=False)
class _Open:
    """One stream being received."""

    identity: str
    text: bool
    total_length: int | None
    inflater: zlib._Decompress | None  # typeshed's name for a decompressobj
    decoder: codecs.IncrementalDecoder | None
    received: int = 0  # uncompressed bytes
    next_index: int = 0
    attributes: dict[str, str] = field(default_factory=dict)


class IncomingStreams:
    """The receiver side of data streams for one room connection (see the module docstring).

    Args:
        max_payload: the most uncompressed bytes one stream may carry.
        max_open_per_sender: streams one sender may have open at once.
    """

    def __init__(
        self, max_payload: int = DEFAULT_MAX_PAYLOAD, max_open_per_sender: int = DEFAULT_MAX_OPEN_PER_SENDER
    ) -> None:
        self.max_payload = max_payload
        self.max_open_per_sender = max_open_per_sender
        self._open: dict[str, _Open] = {}

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._open

    def __len__(self) -> int:
        return len(self._open)

    def open_from(self, identity: str) -> int:
        """How many streams ``identity`` has open."""
        return sum(1 for s in self._open.values() if s.identity == identity)

    def open(self, header: StreamHeader, identity: str) -> list[Out]:
        """Accept a stream's header (its reader exists from now on); an inline stream ends at once.

        Returns:
            The inline content and its :class:`End`, an immediate failing :class:`End` (the announced
            length is over ``max_payload``), or nothing (chunks and a trailer follow).

        Raises:
            IncomingStreamError: the header cannot open a stream (no content header, a stream id already open,
                the sender's open-stream limit) — there is no stream to fail, nothing was kept.
        """
        stream_id = header.stream_id
        if header.content_header is None:
            raise IncomingStreamError(Reason.INVALID_HEADER, f"stream {stream_id} has no text or byte header")
        if stream_id in self._open:
            raise IncomingStreamError(Reason.INVALID_HEADER, f"stream {stream_id} is already open")
        if header.inline_content is None and self.open_from(identity) >= self.max_open_per_sender:
            limit = self.max_open_per_sender
            raise IncomingStreamError(Reason.TOO_MANY_STREAMS, f"{identity} already has {limit} streams open")
        text = isinstance(header.content_header, TextHeader)
        if header.total_length is not None and header.total_length > self.max_payload:
            why = f"{header.total_length} bytes announced, {self.max_payload} accepted"
            return [End(stream_id, (), IncomingStreamError(Reason.PAYLOAD_TOO_LARGE, why))]
        compressed = header.compression is CompressionType.DEFLATE_RAW
        stream = _Open(
            identity=identity,
            text=text,
            total_length=header.total_length,
            inflater=zlib.decompressobj(wbits=-15) if compressed else None,
            decoder=codecs.getincrementaldecoder("utf-8")() if text else None,
        )
        if header.inline_content is None:
            self._open[stream_id] = stream
            return []
        out = self._content(stream_id, stream, header.inline_content)
        if not out or not isinstance(out[-1], End):
            out.extend(self._finish(stream_id, stream, ""))
        return out

    def chunk(self, chunk: StreamChunk) -> list[Out] | None:
        """A chunk: its content (or the stream's failure); ``None`` if its stream is not open here."""
        stream = self._open.get(chunk.stream_id)
        if stream is None:
            return None
        if stream.inflater is not None and chunk.chunk_index < stream.next_index:
            return []  # a duplicate of a compressed chunk (a replay after a reconnect): dropped, as Rust
        if chunk.chunk_index != stream.next_index:
            why = f"chunk {chunk.chunk_index} of {chunk.stream_id} where {stream.next_index} was due"
            return [self._fail(chunk.stream_id, Reason.MISSED_CHUNK, why)]
        stream.next_index += 1
        return self._content(chunk.stream_id, stream, chunk.content)

    def trailer(self, trailer: StreamTrailer) -> list[Out] | None:
        """The end of a stream: normal, incomplete or abnormal; ``None`` if it is not open here."""
        stream = self._open.get(trailer.stream_id)
        if stream is None:
            return None
        stream.attributes.update(trailer.attributes)
        del self._open[trailer.stream_id]
        return self._finish(trailer.stream_id, stream, trailer.reason)

    def abort_from(self, identity: str) -> list[Out]:
        """``identity`` left: its open streams end abnormally."""
        gone = [stream_id for stream_id, s in self._open.items() if s.identity == identity]
        why = f"Participant {identity} unexpectedly disconnected in the middle of sending data"
        return [self._fail(stream_id, Reason.ABNORMAL_END, why) for stream_id in gone]

    def discard(self, stream_id: str) -> None:
        """Forget a stream (its reader was closed, or failed elsewhere): what follows of it is dropped."""
        self._open.pop(stream_id, None)

    def fail(self, stream_id: str, reason: Reason, detail: str) -> End:
        """End an open stream with a failure decided outside (e.g. its reader fell behind)."""
        return self._fail(stream_id, reason, detail)

    # -- internals ------------------------------------------------------------------------------------------

    def _fail(self, stream_id: str, reason: Reason, detail: str) -> End:
        stream = self._open.pop(stream_id, None)
        attributes = () if stream is None else freeze_attributes(stream.attributes)
        return End(stream_id, attributes, IncomingStreamError(reason, detail))

    def _content(self, stream_id: str, stream: _Open, content: bytes) -> list[Out]:
        """Inflate and decode ``content``; check the lengths."""
        raw = content
        if stream.inflater is not None:
            room = self.max_payload - stream.received
            try:
                raw = stream.inflater.decompress(content, room + 1)
            except zlib.error as exc:
                return [self._fail(stream_id, Reason.DECOMPRESSION, f"{stream_id}: {exc}")]
        stream.received += len(raw)
        if stream.received > self.max_payload:
            why = f"{stream_id} is over {self.max_payload} bytes"
            return [self._fail(stream_id, Reason.PAYLOAD_TOO_LARGE, why)]
        if stream.total_length is not None and stream.received > stream.total_length:
            why = f"{stream_id}: {stream.received} bytes, {stream.total_length} announced"
            return [self._fail(stream_id, Reason.LENGTH_EXCEEDED, why)]
        if stream.decoder is None:
            return [Data(stream_id, raw)] if raw else []
        try:
            text = stream.decoder.decode(raw)
        except UnicodeDecodeError as exc:
            return [self._fail(stream_id, Reason.UTF8, f"{stream_id}: {exc.reason}")]
        return [Data(stream_id, text)] if text else []

    def _finish(self, stream_id: str, stream: _Open, reason: str) -> list[Out]:
        attributes = freeze_attributes(stream.attributes)
        if stream.total_length is not None and stream.received < stream.total_length:
            why = f"{stream_id}: {stream.received} of {stream.total_length} bytes"
            return [End(stream_id, attributes, IncomingStreamError(Reason.INCOMPLETE, why))]
        if reason:
            return [End(stream_id, attributes, IncomingStreamError(Reason.ABNORMAL_END, reason))]
        if stream.decoder is not None:
            try:
                stream.decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                return [
                    End(stream_id, attributes, IncomingStreamError(Reason.UTF8, f"{stream_id}: {exc.reason}"))
                ]
        return [End(stream_id, attributes)]
