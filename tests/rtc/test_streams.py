"""Data streams between greenroom rooms through the real dev server: text and byte streams, files, writers,
handlers per topic, destinations, departures, RPC v2 over streams, and hostile input (each failure typed,
logged, bounded, and nothing else affected)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from greenroom import rtc
from greenroom.codecs import packets, streams
from greenroom.devserver.server import DevServer
from tests import wiretap
from tests.rtc.support import connect, run_with_server
from tests.waiting import wait_until

LOGGER = "greenroom.rtc.data_stream"
TO_B = ("b",)


class Inbox:
    """Readers handed to a room's handlers, read to the end by a task each: (kind, identity, info, result)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str, Any, Any]] = []
        self.readers: list[Any] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self._start(self._read("text", reader, identity), reader)

    def bytes(self, reader: rtc.ByteStreamReader, identity: str) -> None:
        self._start(self._read("bytes", reader, identity), reader)

    def _start(self, read: Coroutine[Any, Any, None], reader: Any) -> None:
        self.readers.append(reader)
        task = asyncio.ensure_future(read)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self, kind: str, reader: Any, identity: str) -> None:
        try:
            result: Any = await reader.read_all()
        except rtc.StreamError as error:
            result = error
        self.done.append((kind, identity, reader.info, result))

    async def next(self, count: int = 1, timeout: float = 20.0) -> list[tuple[str, str, Any, Any]]:
        await wait_until(lambda: len(self.done) >= count, timeout=timeout, what=f"{count} streams read")
        out, self.done = self.done[:count], self.done[count:]
        return out


def _send(room: rtc.Room) -> Callable[..., Any]:
    """Raw stream packets from ``room`` (crafted input: greenroom's own sender never makes these)."""
    return room.local_participant._streams.packet


def test_text_and_byte_streams_one_shot_and_written() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        inbox = Inbox()
        b.register_text_stream_handler("chat", inbox.text)
        b.register_byte_stream_handler("blobs", inbox.bytes)
        await wait_until(lambda: "b" in a.remote_participants, what="b")

        info = await a.local_participant.send_text(
            "héllo", topic="chat", attributes={"k": "v"}, reply_to_id="r1"
        )
        [(kind, who, got, text)] = await inbox.next()
        assert (kind, who, text) == ("text", "a", "héllo")
        assert (got.stream_id, got.topic, got.mime_type, got.size) == (
            info.stream_id,
            "chat",
            "text/plain",
            6,
        )
        assert got.attributes == {"k": "v"}
        assert info.timestamp == got.timestamp > 0

        long = "😀é" * 50_000  # 100 000 characters, 300 000 bytes: chunked, never cut inside a character
        await a.local_participant.send_text(long, topic="chat")
        [(_, _, got, text)] = await inbox.next()
        assert text == long
        assert got.size == len(long.encode())

        data = os.urandom(40_000)
        info_b = await a.local_participant.send_bytes(
            data, topic="blobs", name="r.bin", attributes={"x": "1"}
        )
        [(kind, _, got, received)] = await inbox.next()
        assert (kind, received) == ("bytes", data)
        assert (got.name, got.mime_type, got.size, got.stream_id) == (
            "r.bin",
            "application/octet-stream",
            40_000,
            info_b.stream_id,
        )
        assert (await a.local_participant.send_bytes(b"", topic="blobs")).name == "unknown"
        [(_, _, got, received)] = await inbox.next()
        assert (got.name, received) == ("unknown", b"")

        writer = await a.local_participant.stream_text(topic="chat", attributes={"a": "1"}, total_size=12)
        assert writer.info.size == 12  # kept locally: not sent for text streams, as the official SDK
        for word in ("one ", "two ", "three"):
            await writer.write(word)
        await writer.aclose(attributes={"b": "2"})
        with pytest.raises(RuntimeError):
            await writer.aclose()
        with pytest.raises(RuntimeError):
            await writer.write("late")
        [(_, _, got, text)] = await inbox.next()
        assert text == "one two three"
        assert got.attributes == {"a": "1", "b": "2"}  # the trailer's merged in

        bw = await a.local_participant.stream_bytes(
            "log.txt", total_size=6, mime_type="text/plain", topic="blobs"
        )
        await bw.write(b"abc")
        await bw.write(b"def")
        await bw.aclose()
        [(_, _, got, received)] = await inbox.next()
        assert (received, got.name, got.size, got.mime_type) == (b"abcdef", "log.txt", 6, "text/plain")
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_a_five_megabyte_file_arrives_whole(tmp_path: Path) -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        chunks: list[int] = []
        result: dict[str, Any] = {}

        async def on_file(reader: rtc.ByteStreamReader, identity: str) -> None:  # an async handler
            digest = hashlib.sha256()
            async for chunk in reader:
                chunks.append(len(chunk))
                digest.update(chunk)
            result.update(sha=digest.hexdigest(), info=reader.info, identity=identity)

        b.register_byte_stream_handler("files", on_file)
        path = tmp_path / "photo.png"
        data = os.urandom(5_000_000)
        path.write_bytes(data)
        await wait_until(lambda: "b" in a.remote_participants, what="b")
        info = await a.local_participant.send_file(str(path), topic="files", attributes={"album": "x"})
        assert (info.name, info.mime_type, info.size) == ("photo.png", "image/png", 5_000_000)
        await wait_until(lambda: "sha" in result, timeout=60, what="the file")
        assert result["sha"] == hashlib.sha256(data).hexdigest()
        assert (result["info"].name, result["info"].size, result["identity"]) == ("photo.png", 5_000_000, "a")
        assert max(chunks) <= streams.CHUNK_SIZE
        assert b._streams.buffered == 0
        for room in (a, b):
            await room.disconnect()

    run_with_server(
        scenario,
    )


def test_handlers_per_topic_destinations_and_ignored_topics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario(server: DevServer) -> None:
        a, b, c = await connect(server, "a"), await connect(server, "b"), await connect(server, "c")
        inbox_b, inbox_c, other = Inbox(), Inbox(), Inbox()
        for room, inbox in ((b, inbox_b), (c, inbox_c)):
            room.register_text_stream_handler("t1", inbox.text)
        b.register_text_stream_handler("t2", other.text)
        with pytest.raises(ValueError, match="already set"):
            b.register_text_stream_handler("t1", other.text)
        b.register_byte_stream_handler("t1", other.bytes)  # another kind, same topic: allowed
        await wait_until(lambda: len(a.remote_participants) == 2, what="b and c")

        await a.local_participant.send_text("to b", topic="t1", destination_identities=["b"])
        await a.local_participant.send_text("t2 for b", topic="t2")
        await a.local_participant.send_text("nobody listens", topic="t3")
        await a.local_participant.send_text("nobody listens again", topic="t3")
        await a.local_participant.send_text("marker", topic="t1", destination_identities=["c"])
        [(_, _, _, text)] = await inbox_b.next()
        assert text == "to b"
        [(_, _, _, text)] = await other.next()
        assert text == "t2 for b"
        [(_, _, _, text)] = await inbox_c.next()
        assert text == "marker"  # the stream addressed to b never reached c: the marker came first
        assert inbox_c.done == []
        ignored = [r for r in caplog.records if "no handler registered" in r.getMessage()]
        assert (
            len([r for r in ignored if r.name == LOGGER and "'t3'" in r.getMessage()]) == 2
        )  # b and c, once each

        b.unregister_text_stream_handler("t1")
        b.unregister_text_stream_handler("t1")  # a no-op
        b.register_text_stream_handler("t1", other.text)
        await a.local_participant.send_text("again", topic="t1", destination_identities=["b"])
        [(_, _, _, text)] = await other.next()
        assert text == "again"
        for room in (a, b, c):
            await room.disconnect()

    run_with_server(scenario)


def test_endings_sender_leaves_room_disconnects_reader_closes_handler_raises() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        inbox = Inbox()
        b.register_text_stream_handler("t", inbox.text)

        def broken(reader: rtc.ByteStreamReader, identity: str) -> None:
            raise RuntimeError("a bug in the handler")

        b.register_byte_stream_handler("t", broken)
        await wait_until(lambda: "b" in a.remote_participants, what="b")

        await a.local_participant.send_bytes(b"x", topic="t")  # its handler raises: logged, nothing else
        writer = await a.local_participant.stream_text(topic="t")
        await writer.write("half")
        await a.disconnect()  # the sender leaves mid-stream
        [(_, _, _, error)] = await inbox.next()
        assert isinstance(error, rtc.StreamError)
        assert "Participant a unexpectedly disconnected" in error.description

        a = await connect(server, "a")
        writer = await a.local_participant.stream_text(topic="t")
        await writer.write("some")
        await wait_until(lambda: inbox.readers and b._streams.open_streams == 1, what="the second stream")
        await b.disconnect()  # our room goes: the reader ends with what it had, then StreamError
        [(_, _, _, error)] = await inbox.next()
        assert isinstance(error, rtc.StreamError)
        assert error.description == "Disconnected while receiving"
        await a.disconnect()

    run_with_server(scenario)


def test_a_reader_closed_early_drops_the_rest_only() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        first: list[str] = []
        inbox = Inbox()

        async def take_one(reader: rtc.TextStreamReader, identity: str) -> None:
            async for chunk in reader:
                first.append(chunk)
                reader.close()
            first.append("ended")

        b.register_text_stream_handler("one", take_one)
        b.register_text_stream_handler("all", inbox.text)
        await wait_until(lambda: "b" in a.remote_participants, what="b")
        writer = await a.local_participant.stream_text(topic="one")
        await writer.write("first")
        await wait_until(lambda: first == ["first", "ended"], what="the first chunk")
        await writer.write("second")
        await writer.aclose()
        await a.local_participant.send_text("next stream", topic="all")
        [(_, _, _, text)] = await inbox.next()
        assert text == "next stream"
        assert first == ["first", "ended"]
        assert b._streams.buffered == 0
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_rpc_v2_carries_payloads_over_the_v1_limit() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        b.local_participant.register_rpc_method("twice", lambda d: d.payload * 2)
        await wait_until(lambda: "b" in a.remote_participants, what="b")
        payload = "é" * 20_000  # 40 000 bytes: v1 would refuse it (1402)
        answer = await a.local_participant.perform_rpc(
            destination_identity="b", method="twice", payload=payload
        )
        assert answer == payload * 2
        with pytest.raises(rtc.RpcError) as info:  # errors still travel as packets
            await a.local_participant.perform_rpc(destination_identity="b", method="nope", payload=payload)
        assert info.value.code == 1400
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_compressed_streams_are_inflated() -> None:
    """Both rooms announce ``CAP_COMPRESSION_DEFLATE_RAW`` and the dev server relays it, so a sender
    compresses: inline, chunked and a file, each seen compressed on the wire (the server's decoding of what
    was sent) and read whole by the receiver; ``compress=False`` and a payload that does not shrink go
    uncompressed."""

    async def scenario(server: DevServer, tmp: Path) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        inbox = Inbox()
        b.register_text_stream_handler("z", inbox.text)
        b.register_byte_stream_handler("zf", inbox.bytes)
        await wait_until(lambda: "b" in a.remote_participants, what="b")
        text = "compress me " * 10_000  # 120 000 bytes, inline once compressed
        noise = os.urandom(20_000).hex()  # 40 000 characters, compressed to ~half: chunked
        plain = "not compressed " * 100
        incompressible = os.urandom(300).hex()[:17]
        (tmp / "f.txt").write_text(text)
        with wiretap.tap() as wire:
            for payload in (text, noise):
                await a.local_participant.send_text(payload, topic="z", destination_identities=["b"])
            await a.local_participant.send_text(
                plain, topic="z", destination_identities=["b"], compress=False
            )
            await a.local_participant.send_text(incompressible, topic="z", destination_identities=["b"])
            await a.local_participant.send_file(str(tmp / "f.txt"), topic="zf", destination_identities=["b"])
            read = await inbox.next(5)
        assert [result for _, _, _, result in read] == [text, noise, plain, incompressible, text.encode()]
        first, second, third, fourth = wire.headers("a", "z")
        deflate, none = packets.CompressionType.DEFLATE_RAW, packets.CompressionType.NONE
        assert (first.compression, first.total_length) == (deflate, len(text))
        assert first.inline_content is not None
        assert len(first.inline_content) < len(text) // 50
        assert (second.compression, second.inline_content) == (deflate, None)
        on_wire = sum(len(c.content) for c in wire.chunks("a", second.stream_id))
        assert len(noise) // 3 < on_wire < len(noise) * 2 // 3
        assert (third.compression, third.inline_content) == (none, plain.encode())
        assert (fourth.compression, fourth.inline_content) == (none, incompressible.encode())
        [file_header] = wire.headers("a", "zf")
        assert (file_header.compression, file_header.inline_content) == (deflate, None)
        assert sum(len(c.content) for c in wire.chunks("a", file_header.stream_id)) < len(text) // 50
        for room in (a, b):
            await room.disconnect()

    with tempfile.TemporaryDirectory() as tmp:
        run_with_server(lambda server: scenario(server, Path(tmp)))


def test_hostile_streams_fail_alone_logged_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario(server: DevServer) -> None:
        a, b, c = await connect(server, "a"), await connect(server, "b"), await connect(server, "c")
        inbox = Inbox()
        b.register_text_stream_handler("t", inbox.text)
        b.register_byte_stream_handler("t", inbox.bytes)
        await wait_until(lambda: len(b.remote_participants) == 2, what="a and c")
        send = _send(a)  # every crafted packet to b alone (c is the bystander that must not be affected)

        def header(stream_id: str, **fields: Any) -> packets.StreamHeader:
            return packets.StreamHeader(
                stream_id=stream_id, topic="t", content_header=packets.ByteHeader("f"), **fields
            )

        # chunks and trailers of streams nobody opened (first: the four failures below arrive after them)
        for index in range(3):
            await send(packets.StreamChunk("ghost", index, b"boo"), TO_B)
        await send(packets.StreamTrailer("ghost"), TO_B)
        # truncated: fewer bytes than announced, then the trailer
        await send(header("trunc", total_length=100), TO_B)
        await send(packets.StreamChunk("trunc", 0, b"x" * 50), TO_B)
        await send(packets.StreamTrailer("trunc"), TO_B)
        # a missing chunk
        await send(header("gap"), TO_B)
        await send(packets.StreamChunk("gap", 0, b"a"), TO_B)
        await send(packets.StreamChunk("gap", 2, b"c"), TO_B)
        # more than announced
        await send(header("long", total_length=2), TO_B)
        await send(packets.StreamChunk("long", 0, b"abc"), TO_B)
        # a sender that gives up
        await send(header("cut"), TO_B)
        await send(packets.StreamTrailer("cut", reason="cancelled by the sender"), TO_B)
        results = {info.stream_id: result for _, _, info, result in await inbox.next(4)}
        # the official SDK's texts (tests/interop/test_streams_interop.py compares them)
        assert results["trunc"].description == "stream data is incomplete"
        assert results["gap"].description == "expected chunk index to be exactly one more than the previous"
        assert results["long"].description == "read length exceeded total length specified in stream header"
        assert results["cut"].description == "stream closed abnormally: cancelled by the sender"
        assert all(isinstance(r, rtc.StreamError) for r in results.values())
        ghost = [r for r in caplog.records if "unknown stream ghost" in r.getMessage()]
        assert len(ghost) == 1  # once per stream id, however many packets
        assert b._streams.dropped_chunks >= 4

        # a flood of headers from a: 100 open at once, the rest refused; c is not affected
        limit = streams.DEFAULT_MAX_OPEN_PER_SENDER
        for index in range(limit + 20):
            await send(header(f"flood{index}"), TO_B)
        await c.local_participant.send_text("c still gets through", topic="t")
        await wait_until(lambda: any(r == "c still gets through" for *_, r in inbox.done), what="c's stream")
        assert b._streams.open_streams == limit
        refused = [r for r in caplog.records if "too many open streams" in r.getMessage()]
        assert len(refused) == 20
        await a.disconnect()  # the flooder leaves: its open streams end, nothing stays behind
        await wait_until(lambda: b._streams.open_streams == 0, what="the flood's streams to end")

        # a handler that never reads: the room's unread bytes stay bounded, that stream fails
        b._streams.max_buffered = 200_000
        stuck: list[rtc.ByteStreamReader] = []
        b.register_byte_stream_handler("stuck", lambda reader, identity: stuck.append(reader))
        await c.local_participant.send_bytes(os.urandom(1_000_000), topic="stuck")
        await wait_until(lambda: stuck and stuck[0]._ended, what="the unread stream to fail")
        assert b._streams.buffered <= 200_000
        with pytest.raises(rtc.StreamError, match="fell behind"):
            await stuck[0].read_all()
        assert b._streams.buffered == 0
        await c.local_participant.send_text("and still", topic="t")
        await wait_until(lambda: any(r == "and still" for *_, r in inbox.done), what="the next stream")
        for room in (b, c):
            await room.disconnect()

    run_with_server(scenario)


def test_an_agent_streams_text_on_behalf_of_another_participant() -> None:
    """The header names the user (the server keeps it for agents); its chunks name the agent. Routed by the
    sender's sid, they reach the reader in order (data-e2ee-formats §1.5)."""

    async def scenario(server: DevServer) -> None:
        agent, app = await connect(server, "agent", kind="agent"), await connect(server, "app")
        user = await connect(server, "user")
        inbox = Inbox()
        app.register_text_stream_handler("lk.transcription", inbox.text)
        await wait_until(lambda: len(agent.remote_participants) == 2, what="app and user")
        writer = await agent.local_participant.stream_text(
            topic="lk.transcription", sender_identity="user", attributes={"lk.transcription_final": "true"}
        )
        for word in ("what ", "the ", "user ", "said"):
            await writer.write(word)
        await writer.aclose()
        [(_, identity, info, text)] = await inbox.next()
        assert (identity, text) == ("user", "what the user said")
        assert info.attributes == {"lk.transcription_final": "true"}
        for room in (agent, app, user):
            await room.disconnect()

    run_with_server(scenario)
