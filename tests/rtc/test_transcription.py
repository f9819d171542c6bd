"""Transcriptions both ways through the real dev server: ``publish_transcription`` sends the ``Transcription``
packet and the ``lk.transcription`` text streams the official agents send; a receiver gets both (the
``transcription_received`` event, a stream handler on the topic, :func:`rtc.transcription.from_stream`)."""

from __future__ import annotations

import asyncio
from typing import Any

from greenroom import rtc
from greenroom.codecs import packets
from greenroom.devserver.server import DevServer
from greenroom.rtc import transcription
from tests import wiretap
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until

TOPIC = transcription.TOPIC_TRANSCRIPTION


class Transcripts:
    """What a room's ``lk.transcription`` handler read, as ``(handler identity, attributes, text)``."""

    def __init__(self, room: rtc.Room) -> None:
        self.read: list[tuple[str, dict[str, str], str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        room.register_text_stream_handler(TOPIC, self._on_stream)

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            self.read.append((identity, dict(reader.info.attributes or {}), text))

        task = asyncio.ensure_future(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def test_an_agent_transcribing_a_user_reaches_listeners_as_packet_and_stream() -> None:
    async def scenario(server: DevServer) -> None:
        carol = await connect(server, "carol")
        events = Recorder(carol, "transcription_received")
        streams = Transcripts(carol)
        await connect(server, "bob")
        agent = await connect(server, "agent", kind="agent")
        await wait_until(lambda: {"bob", "agent"} <= set(carol.remote_participants), what="bob and agent")
        interim = rtc.TranscriptionSegment("SG_1", "hello", 0, 0, "", False)
        final = rtc.TranscriptionSegment("SG_1", "hello world", 0, 0, "", True)
        with wiretap.tap() as wire:
            for segment in (interim, final):
                await agent.local_participant.publish_transcription(
                    rtc.Transcription("bob", "TR_bobmic", [segment])
                )
            await wait_until(lambda: len(streams.read) == 2 and len(events.events) == 2, what="both forms")
        assert [args[0] for args in events.named("transcription_received")] == [[interim], [final]]
        assert [args[1] for args in events.named("transcription_received")] == [
            carol.remote_participants["bob"]
        ] * 2
        expected = {"lk.segment_id": "SG_1", "lk.transcribed_track_id": "TR_bobmic"}
        assert streams.read == [
            ("bob", {**expected, "lk.transcription_final": "false"}, "hello"),  # on behalf of bob
            ("bob", {**expected, "lk.transcription_final": "true"}, "hello world"),
        ]
        identity, attributes, text = streams.read[1]
        assert transcription.from_stream(identity, attributes, text) == rtc.Transcription(
            "bob", "TR_bobmic", [rtc.TranscriptionSegment("SG_1", "hello world", 0, 0, "", True)]
        )
        # on the wire: packet then stream, per call; the stream names bob as its sender
        sent = [(type(p.value).__name__, p.participant_identity) for who, p in wire.sent if who == "agent"]
        assert sent == [("Transcription", "agent"), ("StreamHeader", "bob")] * 2
        for room in (carol, agent):
            await room.disconnect()

    run_with_server(scenario)


def test_a_user_transcription_goes_as_a_stream_only() -> None:
    """The server forwards ``Transcription`` packets only from agents (livekit-server does the same); the
    stream of a participant that is not an agent still arrives, under its own identity."""

    async def scenario(server: DevServer) -> None:
        carol = await connect(server, "carol")
        events = Recorder(carol, "transcription_received")
        streams = Transcripts(carol)
        bob = await connect(server, "bob")
        await wait_until(lambda: "bob" in carol.remote_participants, what="bob")
        segment = rtc.TranscriptionSegment("SG_2", "I said this", 0, 0, "", True)
        with wiretap.tap() as wire:
            await bob.local_participant.publish_transcription(
                rtc.Transcription("bob", "TR_bobmic", [segment])
            )
            await wait_until(lambda: len(streams.read) == 1, what="the stream")
        attributes = {
            "lk.segment_id": "SG_2",
            "lk.transcription_final": "true",
            "lk.transcribed_track_id": "TR_bobmic",
        }
        assert streams.read == [("bob", attributes, "I said this")]
        values: list[Any] = [type(p.value) for _, p in wire.sent]
        assert values == [packets.Transcription, packets.StreamHeader]  # sent, and the packet dropped
        assert events.events == []  # the stream arrived after the packet would have
        for room in (carol, bob):
            await room.disconnect()

    run_with_server(scenario)
