"""Data streams, pure: chunking, the one-shot plan (inline, compression), and reassembly with its failures."""

from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenroom.codecs.models import ClientCapability
from greenroom.codecs.packets import (
    ByteHeader,
    CompressionType,
    StreamChunk,
    StreamHeader,
    StreamTrailer,
    TextHeader,
)
from greenroom.codecs.streams import (
    CHUNK_SIZE,
    MIN_COMPRESSED,
    Data,
    Deflater,
    End,
    HeaderTooLargeError,
    IncomingStreamError,
    IncomingStreams,
    Reason,
    chunks,
    deflate_raw,
    eligibility,
    header_fits,
    one_shot,
    split_raw,
    split_utf8,
)

DEFLATE = int(ClientCapability.CAP_COMPRESSION_DEFLATE_RAW)


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=-15).decompress(data)


def text_header(stream_id: str = "s1", **fields: object) -> StreamHeader:
    fields.setdefault("content_header", TextHeader())
    return StreamHeader(stream_id=stream_id, topic="t", mime_type="text/plain", **fields)  # type: ignore[arg-type]


def byte_header(stream_id: str = "b1", **fields: object) -> StreamHeader:
    return StreamHeader(stream_id=stream_id, topic="t", content_header=ByteHeader("f.bin"), **fields)  # type: ignore[arg-type]


# --- sending ---------------------------------------------------------------------------------------------


def test_split_utf8_never_cuts_a_character() -> None:
    assert split_utf8(b"") == []
    assert split_utf8(b"abcdef", 3) == [b"abc", b"def"]
    data = "aé€😀".encode() * 3  # 1, 2, 3 and 4-byte characters
    pieces = split_utf8(data, 5)
    assert b"".join(pieces) == data
    assert all(len(p) <= 5 for p in pieces)
    for piece in pieces:
        piece.decode("utf-8")  # each piece is whole characters


@given(st.text(max_size=300), st.integers(min_value=4, max_value=40))
def test_split_utf8_pieces_are_whole_and_bounded(text: str, size: int) -> None:
    pieces = split_utf8(text.encode(), size)
    assert "".join(p.decode() for p in pieces) == text
    assert all(0 < len(p) <= size for p in pieces)


def test_split_raw_and_chunk_numbering() -> None:
    assert split_raw(b"abcdefg", 3) == [b"abc", b"def", b"g"]
    assert list(chunks("s", [b"a", b"b"], 4)) == [StreamChunk("s", 4, b"a"), StreamChunk("s", 5, b"b")]


def test_raw_deflate_has_no_wrapper_and_streams() -> None:
    data = b"hello " * 1000
    assert inflate(deflate_raw(data)) == data
    assert not deflate_raw(data).startswith(b"\x78")  # no zlib header
    deflater = Deflater()
    out = b"".join(deflater.push(data[i : i + 500]) for i in range(0, len(data), 500)) + deflater.finish()
    assert inflate(out) == data


def test_eligibility_needs_every_recipient() -> None:
    assert eligibility([]) == (True, True)  # nobody else in the room
    assert eligibility([(2, (DEFLATE,)), (2, (1, DEFLATE))]) == (True, True)
    assert eligibility([(2, (DEFLATE,)), (2, ())]) == (True, False)
    assert eligibility([(2, (DEFLATE,)), (1, (DEFLATE,))]) == (False, False)
    assert eligibility([(0, ())]) == (False, False)


def test_header_fits_counts_the_destinations() -> None:
    header = text_header()
    assert header_fits(header, ())
    assert not header_fits(header, tuple(f"participant-{i:05d}" for i in range(1000)))


def test_one_shot_inline_raw_or_compressed() -> None:
    small = one_shot(text_header(), "héllo".encode(), (), inline_ok=True, compress_ok=False)
    assert small == [text_header(total_length=6, inline_content="héllo".encode())]
    text = ("word " * 2000).encode()
    [header] = one_shot(text_header(), text, ("bob",), inline_ok=True, compress_ok=True)
    assert isinstance(header, StreamHeader)
    assert header.compression is CompressionType.DEFLATE_RAW
    assert header.total_length == len(text)  # the uncompressed length
    assert header.inline_content is not None
    assert inflate(header.inline_content) == text
    noise = os.urandom(100)  # does not get smaller: sent as it is
    [header] = one_shot(byte_header(), noise, (), inline_ok=True, compress_ok=True)
    assert isinstance(header, StreamHeader)
    assert (header.compression, header.inline_content) == (CompressionType.NONE, noise)


def test_short_payloads_are_not_compressed() -> None:
    """Below MIN_COMPRESSED bytes nothing is deflated, even what would shrink (an RPC's "ping")."""
    for size, expected in (
        (MIN_COMPRESSED - 1, CompressionType.NONE),
        (MIN_COMPRESSED, CompressionType.DEFLATE_RAW),
    ):
        [header] = one_shot(text_header(), b"a" * size, (), inline_ok=True, compress_ok=True)
        assert isinstance(header, StreamHeader)
        assert header.compression is expected, size


def test_one_shot_chunked_when_inline_is_not_allowed_or_too_big() -> None:
    text = ("é" * 10_000).encode()  # 20 000 bytes: an odd cut would split a character
    values = one_shot(text_header(), text, (), inline_ok=False, compress_ok=False)
    header, *middle, trailer = values
    assert header == text_header(total_length=20_000)
    assert [c.chunk_index for c in middle if isinstance(c, StreamChunk)] == [0, 1]
    assert b"".join(c.content for c in middle if isinstance(c, StreamChunk)) == text
    assert all(len(c.content) <= CHUNK_SIZE for c in middle if isinstance(c, StreamChunk))
    assert trailer == StreamTrailer("s1")
    noise = os.urandom(40_000)
    values = one_shot(byte_header(), noise, (), inline_ok=True, compress_ok=False)  # too big for inline
    assert [type(v).__name__ for v in values] == [
        "StreamHeader",
        "StreamChunk",
        "StreamChunk",
        "StreamChunk",
        "StreamTrailer",
    ]
    big = ("abc" * 20_000).encode()
    values = one_shot(text_header(), big, (), inline_ok=True, compress_ok=True)
    assert len(values) == 1  # compressed, it fits inline
    attached = text_header(content_header=TextHeader(attached_stream_ids=("f1",)))
    values = one_shot(attached, b"see attached", (), inline_ok=True, compress_ok=True)
    assert len(values) == 3  # a text stream with attachments is never inline


def test_one_shot_compressed_chunks_are_cut_raw() -> None:
    text = os.urandom(30_000).hex().encode()  # compressible only by half: chunked even compressed
    header, *middle, _ = one_shot(text_header(), text, (), inline_ok=False, compress_ok=True)
    assert isinstance(header, StreamHeader)
    assert header.compression is CompressionType.DEFLATE_RAW
    assert inflate(b"".join(c.content for c in middle if isinstance(c, StreamChunk))) == text


def test_one_shot_refuses_a_header_that_cannot_fit() -> None:
    huge = text_header(attributes=(("k", "v" * 20_000),))
    with pytest.raises(HeaderTooLargeError):
        one_shot(huge, b"x", (), inline_ok=True, compress_ok=False)


# --- receiving -------------------------------------------------------------------------------------------


def feed(streams: IncomingStreams, *values: object) -> list[object]:
    out: list[object] = []
    for value in values:
        match value:
            case StreamHeader():
                out.extend(streams.open(value, "alice"))
            case StreamChunk():
                out.extend(streams.chunk(value) or ["unknown"])
            case StreamTrailer():
                out.extend(streams.trailer(value) or ["unknown"])
    return out


def reason_of(out: list[object]) -> Reason:
    end = out[-1]
    assert isinstance(end, End)
    assert end.error is not None
    return end.error.reason


def test_inline_streams_end_at_once() -> None:
    streams = IncomingStreams()
    out = feed(streams, text_header(total_length=6, inline_content="héllo".encode()))
    assert out == [Data("s1", "héllo"), End("s1")]
    assert "s1" not in streams
    assert feed(streams, text_header("s2", inline_content=b"")) == [End("s2")]  # present but empty
    payload = b"\x00\x01" * 5000
    packed = byte_header(
        total_length=len(payload),
        inline_content=deflate_raw(payload),
        compression=CompressionType.DEFLATE_RAW,
    )
    assert feed(streams, packed) == [Data("b1", payload), End("b1")]
    short = byte_header("b2", total_length=10, inline_content=b"abc")
    assert reason_of(feed(streams, short)) is Reason.INCOMPLETE
    broken = byte_header("b3", inline_content=b"not deflate", compression=CompressionType.DEFLATE_RAW)
    assert reason_of(feed(streams, broken)) is Reason.DECOMPRESSION
    assert len(streams) == 0


def test_chunked_text_holds_back_a_character_cut_between_chunks() -> None:
    streams = IncomingStreams()
    data = "aé".encode()
    out = feed(
        streams,
        text_header(total_length=3),
        StreamChunk("s1", 0, data[:2]),  # "a" and the first byte of "é"
        StreamChunk("s1", 1, data[2:]),
        StreamTrailer("s1", attributes=(("k", "v"),)),
    )
    assert out == [Data("s1", "a"), Data("s1", "é"), End("s1", (("k", "v"),))]
    assert "s1" not in streams


def test_bytes_stream_without_a_length_and_abnormal_ends() -> None:
    streams = IncomingStreams()
    out = feed(streams, byte_header(), StreamChunk("b1", 0, b"xy"), StreamTrailer("b1", reason="cancelled"))
    assert out[0] == Data("b1", b"xy")
    assert reason_of(out) is Reason.ABNORMAL_END
    end = out[-1]
    assert isinstance(end, End)
    assert end.error is not None
    assert end.error.description == "stream closed abnormally: cancelled"


def test_missing_duplicate_and_extra_data() -> None:
    streams = IncomingStreams()
    assert reason_of(feed(streams, byte_header(), StreamChunk("b1", 1, b"x"))) is Reason.MISSED_CHUNK
    assert feed(streams, StreamChunk("b1", 2, b"x")) == ["unknown"]  # the stream is gone
    out = feed(streams, byte_header("b2", total_length=2), StreamChunk("b2", 0, b"abc"))
    assert reason_of(out) is Reason.LENGTH_EXCEEDED
    out = feed(streams, text_header("t3", total_length=5), StreamChunk("t3", 0, b"ab"), StreamTrailer("t3"))
    assert out[0] == Data("t3", "ab")
    assert reason_of(out) is Reason.INCOMPLETE
    out = feed(streams, text_header("t4"), StreamChunk("t4", 0, b"\xff\xfe"))
    assert reason_of(out) is Reason.UTF8
    out = feed(streams, text_header("t5"), StreamChunk("t5", 0, "é".encode()[:1]), StreamTrailer("t5"))
    assert reason_of(out) is Reason.UTF8  # ends inside a character
    assert feed(streams, StreamTrailer("nope")) == ["unknown"]


def test_compressed_chunks_duplicates_dropped_gaps_fail() -> None:
    streams = IncomingStreams()
    text = os.urandom(3000).hex().encode()
    packed = split_raw(deflate_raw(text), 1000)
    assert len(packed) > 2
    header = text_header(total_length=len(text), compression=CompressionType.DEFLATE_RAW)
    out = feed(streams, header, StreamChunk("s1", 0, packed[0]), StreamChunk("s1", 0, packed[0]))
    for index, piece in enumerate(packed[1:], 1):
        out.extend(feed(streams, StreamChunk("s1", index, piece)))
    out.extend(feed(streams, StreamTrailer("s1")))
    assert "".join(d.content for d in out if isinstance(d, Data)) == text.decode()  # type: ignore[misc]
    assert out[-1] == End("s1")
    gap = feed(
        streams, text_header("s2", compression=CompressionType.DEFLATE_RAW), StreamChunk("s2", 1, packed[1])
    )
    assert reason_of(gap) is Reason.MISSED_CHUNK
    bad = feed(
        streams, byte_header("b", compression=CompressionType.DEFLATE_RAW), StreamChunk("b", 0, b"\xff" * 9)
    )
    assert reason_of(bad) is Reason.DECOMPRESSION


def test_size_caps_and_a_deflate_bomb() -> None:
    streams = IncomingStreams(max_payload=1000)
    assert reason_of(feed(streams, byte_header(total_length=1001))) is Reason.PAYLOAD_TOO_LARGE
    assert "b1" not in streams
    out = feed(streams, byte_header("b2"), StreamChunk("b2", 0, b"x" * 600), StreamChunk("b2", 1, b"x" * 600))
    assert reason_of(out) is Reason.PAYLOAD_TOO_LARGE
    bomb = deflate_raw(b"\x00" * 10_000_000)  # ~10 kB that would inflate to 10 MB
    out = feed(
        streams, byte_header("b3", compression=CompressionType.DEFLATE_RAW), StreamChunk("b3", 0, bomb)
    )
    assert reason_of(out) is Reason.PAYLOAD_TOO_LARGE
    assert out[:-1] == []  # nothing of it was delivered


def test_header_problems_and_the_per_sender_limit() -> None:
    streams = IncomingStreams(max_open_per_sender=2)
    with pytest.raises(IncomingStreamError) as info:
        streams.open(StreamHeader(stream_id="x"), "alice")
    assert info.value.reason is Reason.INVALID_HEADER
    streams.open(byte_header("a1"), "alice")
    with pytest.raises(IncomingStreamError):
        streams.open(byte_header("a1"), "alice")  # already open
    streams.open(byte_header("a2"), "alice")
    with pytest.raises(IncomingStreamError) as info:
        streams.open(byte_header("a3"), "alice")
    assert info.value.reason is Reason.TOO_MANY_STREAMS
    assert streams.open(byte_header("a4", inline_content=b"x"), "alice")[-1] == End("a4")  # inline: no slot
    streams.open(byte_header("b1"), "bob")  # another sender is not affected
    assert streams.open_from("alice") == 2
    assert len(streams) == 3


def test_departures_discards_and_outside_failures() -> None:
    streams = IncomingStreams()
    streams.open(byte_header("a1"), "alice")
    streams.open(byte_header("b1"), "bob")
    streams.open(byte_header("b2"), "bob")
    [end] = streams.abort_from("alice")
    assert isinstance(end, End)
    assert end.error is not None
    assert (end.stream_id, end.error.reason) == ("a1", Reason.ABNORMAL_END)
    assert end.error.description == (
        "stream closed abnormally: Participant alice unexpectedly disconnected in the middle of sending data"
    )
    streams.discard("b1")
    assert streams.chunk(StreamChunk("b1", 0, b"x")) is None
    slow = streams.fail("b2", Reason.READER_TOO_SLOW, "64 MiB unread")
    assert slow.error is not None
    assert slow.error.description == "the reader fell behind"
    assert str(slow.error) == "the reader fell behind (64 MiB unread)"
    assert len(streams) == 0
