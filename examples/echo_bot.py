"""An echo bot, written exactly as for ``livekit.rtc`` — only the import differs.

With the official SDK this file starts ``from livekit import rtc``; here it is ``from greenroom import rtc``
and nothing else changes in the bot (``run_bot``). It joins a room, answers every data packet with
``echo: <payload>`` to its sender (topic ``echo``), and leaves on Ctrl-C / SIGTERM.

Where it connects:

* ``LIVEKIT_URL`` and ``LIVEKIT_TOKEN`` set: that server, with that token;
* ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` set: that server, with a token minted here
  for identity ``echo-bot`` in room ``echo`` (``ROOM`` overrides the room);
* nothing set: an embedded greenroom dev server on an ephemeral loopback port; it prints the URL and a guest
  token, so another client can join and talk to the bot.

Run it: ``python examples/echo_bot.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

from greenroom import rtc

__all__ = ["main", "run_bot"]


async def run_bot(url: str, token: str, stop: asyncio.Event) -> None:
    """Join the room at ``url`` and echo every data packet back to its sender until ``stop`` is set.

    Args:
        url: the server URL.
        token: a join token.
        stop: set it to leave (the bot sets it itself when the room disconnects).
    """
    room = rtc.Room()
    pending: set[asyncio.Task[None]] = set()

    @room.on("participant_connected")
    def on_participant_connected(participant: rtc.RemoteParticipant) -> None:
        print(f"participant connected: {participant.identity}", flush=True)

    @room.on("data_received")
    def on_data_received(packet: rtc.DataPacket) -> None:
        if packet.participant is None:
            return
        print(f"from {packet.participant.identity}: {packet.data!r}", flush=True)
        reply = room.local_participant.publish_data(
            b"echo: " + packet.data,
            destination_identities=[packet.participant.identity],
            topic="echo",
        )
        task = asyncio.create_task(reply)  # callbacks are synchronous: schedule the send
        pending.add(task)
        task.add_done_callback(pending.discard)

    @room.on("disconnected")
    def on_disconnected(reason: rtc.DisconnectReason) -> None:
        print(f"disconnected: {reason}", flush=True)
        stop.set()

    await room.connect(url, token)
    print(f"echo bot connected to room {room.name!r} as {room.local_participant.identity!r}", flush=True)
    await stop.wait()
    await room.disconnect()


# -- where to connect (not part of the bot: the official SDK would use livekit.api / livekit-server) ------


@contextlib.asynccontextmanager
async def _server_and_token() -> AsyncIterator[tuple[str, str]]:
    url, room = os.environ.get("LIVEKIT_URL", ""), os.environ.get("ROOM", "echo")
    if url and os.environ.get("LIVEKIT_TOKEN"):
        yield url, os.environ["LIVEKIT_TOKEN"]
        return
    from greenroom.codecs.tokens import Claims, VideoGrants, mint_token

    key, secret = os.environ.get("LIVEKIT_API_KEY", ""), os.environ.get("LIVEKIT_API_SECRET", "")
    if url and key and secret:
        claims = Claims(identity="echo-bot", video=VideoGrants(room_join=True, room=room))
        yield url, mint_token(key, secret, claims)
        return
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    async with DevServer(ServerConfig(port=0)) as server:
        print(f"dev server: {server.url}", flush=True)
        print(f"guest token: {server.mint_token('guest', room)}", flush=True)
        yield server.url, server.mint_token("echo-bot", room)


async def main() -> None:
    """Run the bot until Ctrl-C / SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with _server_and_token() as (url, token):
        await run_bot(url, token, stop)


if __name__ == "__main__":
    asyncio.run(main())
