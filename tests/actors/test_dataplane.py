"""The data plane's pure parts and its queue policy (the sending itself runs against the dev server in
tests/testing/test_faults.py and every data test of tests/rtc)."""

from __future__ import annotations

import asyncio

from greenroom.actors import messages as m
from greenroom.actors.dataplane import DataPlane, OutboxFullError, packet_for, receive_packet
from greenroom.codecs import packets
from greenroom.runtime.peer import LOSSY, RELIABLE


def test_publish_commands_become_packets() -> None:
    async def main() -> None:
        reply: m.Reply[None] = m.Reply.new()
        data, reliable = packet_for(m.PublishData(b"x", False, ("bob",), "t", reply), "alice", "PA_a")
        assert not reliable
        assert data.value == packets.UserPacket(payload=b"x", topic="t")
        assert (data.participant_identity, data.participant_sid) == ("alice", "PA_a")
        assert data.destination_identities == ("bob",)
        assert data.kind is packets.Kind.LOSSY
        untopical, _ = packet_for(m.PublishData(b"x", True, (), "", reply), "alice", "PA_a")
        assert untopical.value == packets.UserPacket(payload=b"x", topic=None)
        dtmf, reliable = packet_for(m.PublishDtmf(5, "5", reply), "alice", "PA_a")
        assert reliable
        assert dtmf.value == packets.SipDtmf(5, "5")
        text = packets.Transcription("alice", "TR_1", ())
        transcription, reliable = packet_for(m.PublishTranscription(text, reply), "alice", "PA_a")
        assert reliable
        assert transcription.value == text

    asyncio.run(main())


def test_received_packets_are_decoded_and_reliable_duplicates_dropped() -> None:
    dedup = packets.ReliableDeduplicator()
    packet = packets.SequenceCounter().stamp(
        packets.DataPacket(
            packets.UserPacket(payload=b"hi"), participant_identity="a", participant_sid="PA_a"
        )
    )
    data = packets.encode_packet(packet)
    got = receive_packet(RELIABLE, data, dedup, 0.0)
    assert got is not None
    assert got[1] is True
    assert receive_packet(RELIABLE, data, dedup, 0.0) is None  # the same sequence again
    lossy = receive_packet(LOSSY, data, dedup, 0.0)  # lossy packets are not de-duplicated
    assert lossy is not None
    assert lossy[1] is False
    assert receive_packet(RELIABLE, b"\xff\xff", dedup, 0.0) is None  # undecodable: logged and dropped


def test_a_full_outbox_refuses_and_counts_and_closing_fails_what_waits() -> None:
    async def main() -> None:
        plane = DataPlane(capacity=2)  # no publisher attached: nothing can be sent
        replies: list[m.Reply[None]] = [m.Reply.new() for _ in range(3)]
        for reply in replies:
            plane.put(RELIABLE, b"x", reply)
        assert isinstance(replies[2].future.exception(), OutboxFullError)
        assert plane.stats().queued == 2
        assert plane.stats().refused == 1
        lossy: m.Reply[None] = m.Reply.new()
        plane.put(LOSSY, b"y", lossy)  # each channel has its own outbox
        assert plane.stats().queued == 3
        await plane.close(OutboxFullError("closed"))
        assert all(r.done for r in (*replies, lossy))
        assert plane.stats().queued == 0
        late: m.Reply[None] = m.Reply.new()
        plane.put(RELIABLE, b"z", late)
        assert isinstance(late.future.exception(), OutboxFullError)

    asyncio.run(main())
