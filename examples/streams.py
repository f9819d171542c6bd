"""Data streams between two participants, written as for ``livekit.rtc`` — only the import differs.

A ``reader`` registers a text handler for topic ``chat`` and a byte handler for topic ``files``; a ``writer``
sends a message in one call (``send_text``), streams an answer word by word (``stream_text``, as an agent
streams a transcript), and sends a file (``send_file``). The reader prints what arrives, the file with its
SHA-256.

Where it connects: ``LIVEKIT_URL`` with ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` (tokens minted here for
room ``streams``), else an embedded greenroom dev server on an ephemeral loopback port.

Run it: ``python examples/streams.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator

from greenroom import rtc

__all__ = ["main", "run"]


async def run(url: str, reader_token: str, writer_token: str) -> None:
    """Join both participants, send the streams, print what the reader gets, leave."""
    reader, writer = rtc.Room(), rtc.Room()
    done = asyncio.Event()
    received: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def read_text(stream: rtc.TextStreamReader, sender: str) -> None:
        parts = [part async for part in stream]  # or: await stream.read_all()
        received.append(
            f"text from {sender} in {len(parts)} part(s): {''.join(parts)!r} {stream.info.attributes}"
        )
        if len(received) == 3:
            done.set()

    async def read_file(stream: rtc.ByteStreamReader, sender: str) -> None:
        digest = hashlib.sha256()
        async for chunk in stream:
            digest.update(chunk)
        info = stream.info
        received.append(
            f"file from {sender}: {info.name} ({info.mime_type}, {info.size} bytes) {digest.hexdigest()[:16]}"
        )
        if len(received) == 3:
            done.set()

    def on_text(stream: rtc.TextStreamReader, sender: str) -> None:  # handlers are plain functions:
        task = asyncio.create_task(read_text(stream, sender))  # they start a task that reads
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_file(stream: rtc.ByteStreamReader, sender: str) -> None:
        task = asyncio.create_task(read_file(stream, sender))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    reader.register_text_stream_handler("chat", on_text)
    reader.register_byte_stream_handler("files", on_file)
    await reader.connect(url, reader_token)
    await writer.connect(url, writer_token)
    me = writer.local_participant

    await me.send_text("hello, reader", topic="chat", attributes={"lang": "en"})
    stream = await me.stream_text(topic="chat", destination_identities=["reader"])
    for word in ("streamed", " word", " by", " word"):
        await stream.write(word)
    await stream.aclose(attributes={"final": "true"})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "report.pdf")
        data = bytes(range(256)) * 4096  # 1 MiB
        with open(path, "wb") as file:  # noqa: ASYNC230 - a setup step of the example
            file.write(data)
        print("sending report.pdf", hashlib.sha256(data).hexdigest()[:16])
        await me.send_file(path, topic="files")

    await asyncio.wait_for(done.wait(), 30)
    for line in sorted(received):
        print(line)
    await writer.disconnect()
    await reader.disconnect()


# -- where to connect (not part of the stream code; the official SDK would use livekit.api) --


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[tuple[str, str, str]]:
    url, key, secret = (
        os.environ.get(k, "") for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    )
    if url and key and secret:
        from greenroom.codecs.tokens import Claims, VideoGrants, mint_token

        def token(identity: str) -> str:
            grants = VideoGrants(room_join=True, room="streams")
            return mint_token(key, secret, Claims(identity=identity, video=grants))

        yield url, token("reader"), token("writer")
        return
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    async with DevServer(ServerConfig(port=0)) as server:
        yield server.url, server.mint_token("reader", "streams"), server.mint_token("writer", "streams")


async def main() -> None:
    """Run the example once."""
    async with _server() as (url, reader_token, writer_token):
        await run(url, reader_token, writer_token)


if __name__ == "__main__":
    asyncio.run(main())
