"""The data plane's pure parts and its queue policy (the sending itself runs against the dev server in
tests/testing/test_faults.py and every data test of tests/rtc)."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from greenroom.actors import messages as m
from greenroom.actors.dataplane import DataPlane, OutboxFullError, packet_for, receive_packet
from greenroom.actors.reliable import IdentityDeduplicator, Sent
from greenroom.codecs import packets
from greenroom.runtime.peer import LOSSY, RELIABLE, PeerTransport


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
    dedup = IdentityDeduplicator()
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


class FakePublisher:
    """Just enough of a PeerTransport for the plane: its channel is open, sends are recorded."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def channel_labels(self) -> set[str]:
        return {RELIABLE, LOSSY}

    async def send(self, _label: str, data: bytes) -> None:
        self.sent.append(data)

    def try_send(self, _label: str, _data: bytes) -> bool:
        return False  # every packet takes the queued path (the fast path has its own test)


class EagerPublisher(FakePublisher):
    """A publisher whose channel takes a packet at once unless ``busy``."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.eager: list[bytes] = []

    def try_send(self, _label: str, data: bytes) -> bool:
        if self.busy:
            return False
        self.eager.append(data)
        self.sent.append(data)
        return True


def test_a_packet_goes_out_at_once_when_nothing_waits_and_never_overtakes() -> None:
    async def main() -> None:
        plane = DataPlane()
        publisher = EagerPublisher()
        plane.attach(cast(PeerTransport, publisher))
        first = packets.DataPacket(packets.UserPacket(b"1"), sequence=1)
        now: m.Reply[None] = m.Reply.new()
        plane.put(RELIABLE, b"p1", now, (first, frozenset({"bob"})))
        assert now.done  # no sender task, no pass of the loop
        assert now.future.exception() is None
        assert (plane.stats().sent, plane.stats().retained) == (1, 1)
        publisher.busy = True
        queued: list[m.Reply[None]] = [m.Reply.new() for _ in range(2)]
        plane.put(RELIABLE, b"p2", queued[0])
        publisher.busy = False
        plane.put(RELIABLE, b"p3", queued[1])  # p2 waits: p3 queues behind it
        assert not queued[1].done
        await asyncio.wait_for(asyncio.gather(*(r.future for r in queued)), 5)
        assert publisher.sent == [b"p1", b"p2", b"p3"]
        assert publisher.eager == [b"p1"]
        plane.hold()
        held: m.Reply[None] = m.Reply.new()
        plane.put(RELIABLE, b"p4", held)
        assert not held.done  # held: nothing goes out, not even by the fast path
        await plane.close(OutboxFullError("closed"))

    asyncio.run(main())


def test_a_held_plane_sends_nothing_then_resends_first_and_keeps_what_leaves() -> None:
    async def main() -> None:
        plane = DataPlane(capacity=1)
        publisher = FakePublisher()
        plane.hold()
        plane.attach(cast(PeerTransport, publisher))
        first, second = (
            packets.DataPacket(packets.UserPacket(b"1"), sequence=7),
            packets.DataPacket(packets.UserPacket(b"2"), sequence=8),
        )
        replies: list[m.Reply[None]] = [m.Reply.new() for _ in range(3)]
        plane.put(RELIABLE, b"q1", replies[0], (first, frozenset({"bob"})))
        plane.replaying = True  # replayed after a reconnect: admitted past the capacity
        plane.put(RELIABLE, b"q2", replies[1], (second, frozenset({"bob", "carol"})))
        plane.replaying = False
        plane.put(RELIABLE, b"q3", replies[2])
        assert isinstance(replies[2].future.exception(), OutboxFullError)
        await asyncio.sleep(0.01)
        assert publisher.sent == []  # held
        assert plane.queued_recipients() == [frozenset({"bob"}), frozenset({"bob", "carol"})]
        plane.resend([(b"r6", Sent(first, frozenset({"bob"}), 0.0))])
        plane.release()
        await asyncio.wait_for(asyncio.gather(replies[0].future, replies[1].future), 5)
        assert publisher.sent == [b"r6", b"q1", b"q2"]
        stats = plane.stats()
        assert (stats.sent, stats.resent, stats.retained, stats.queued) == (3, 1, 2, 0)  # 7 kept once
        assert [e.recipients for e in plane.retention.since(0.0, time.monotonic())] == [
            frozenset({"bob"}),
            frozenset({"bob", "carol"}),
        ]
        await plane.close(OutboxFullError("closed"))
        plane.resend([(b"late", Sent(first, frozenset({"bob"}), 0.0))])  # closed: queued, never sent

    asyncio.run(main())
