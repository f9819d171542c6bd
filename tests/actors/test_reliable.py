"""The pure rules of reliable data across faults: sequence bases, de-duplication by identity, retention,
and what is sent again to whom."""

from __future__ import annotations

from greenroom.actors.reliable import (
    DEDUP_WINDOW,
    SEQUENCE_FLOOR,
    IdentityDeduplicator,
    Retention,
    Sent,
    follows,
    resend_plan,
    sequence_base,
)
from greenroom.codecs import packets


def packet(sequence: int, *destinations: str) -> packets.DataPacket:
    return packets.DataPacket(
        value=packets.UserPacket(payload=str(sequence).encode()),
        sequence=sequence,
        destination_identities=destinations,
    )


def test_sequence_bases_are_above_the_floor_and_later_sessions_count_above() -> None:
    assert SEQUENCE_FLOOR <= sequence_base(0.0) < 2**32 - SEQUENCE_FLOOR
    assert sequence_base(1_000.0) - sequence_base(999.0) == 1_000  # one per millisecond
    assert SEQUENCE_FLOOR <= sequence_base(4_294_967.295) < 2**32 - SEQUENCE_FLOOR  # folded, never below
    assert follows(5, 4)
    assert not follows(4, 4)
    assert not follows(3, 4)
    assert follows(2, 2**32 - 2)  # across the wrap
    assert not follows(2**32 - 2, 2)


def test_a_rejoined_sender_is_known_by_its_identity_and_its_resends_dropped() -> None:
    dedup = IdentityDeduplicator(ttl=60.0)
    base = sequence_base(1_700_000_000.0)
    assert [dedup.accept("alice", "PA_1", base + n, 0.0) for n in (1, 2, 3)] == [True, True, True]
    assert not dedup.accept("alice", "PA_1", base + 3, 0.0)  # a duplicate on the same session
    # alice rejoined (new sid) and sends again from base+2: the two she had sent are dropped, the rest pass
    again = [dedup.accept("alice", "PA_2", base + n, 1.0) for n in (2, 3, 4, 5)]
    assert again == [False, False, True, True]
    assert dedup.dropped == 3
    assert dedup.accept("bob", "PA_3", base, 1.0)  # another sender has its own space
    assert dedup.accept("alice", "PA_2", 0, 1.0)  # unsequenced (lossy, a server API): always
    assert dedup.accept("", "", 7, 1.0)  # no identity: nothing to key by
    assert len(dedup) == 2
    envelope = packets.DataPacket(packets.UserPacket(b"x"), "alice", "PA_2", sequence=base + 5)
    assert not dedup.accept_packet(envelope, 1.0)


def test_a_packet_sent_again_that_had_not_arrived_is_delivered_late_not_dropped() -> None:
    dedup = IdentityDeduplicator()
    base = SEQUENCE_FLOOR + 10
    assert dedup.accept("alice", "PA_1", base + 1, 0.0)
    assert dedup.accept("alice", "PA_2", base + 3, 1.0)  # base+2 was lost with the old path
    assert dedup.accept("alice", "PA_2", base + 2, 1.0)  # its resend came after a newer one: late
    assert not dedup.accept("alice", "PA_2", base + 2, 1.0)
    assert not dedup.accept("alice", "PA_2", base + 1, 1.0)
    assert (dedup.late, dedup.dropped) == (1, 2)
    assert dedup.accept("alice", "PA_2", base + 4 + DEDUP_WINDOW, 2.0)
    assert not dedup.accept("alice", "PA_2", base + 4, 2.0)  # beyond the window: taken for a duplicate
    for n in range(DEDUP_WINDOW):
        dedup.accept("bob", "PA_3", base + n, 3.0)
    assert dedup.accept("bob", "PA_3", base + DEDUP_WINDOW, 3.0)  # the oldest is forgotten, not the count
    assert not dedup.accept("bob", "PA_3", base + 1, 3.0)


def test_an_official_sdks_new_session_counts_from_one_again() -> None:
    dedup = IdentityDeduplicator()
    assert [dedup.accept("rust", "PA_1", n, 0.0) for n in (1, 2, 3)] == [True, True, True]
    assert dedup.accept("rust", "PA_2", 1, 1.0)  # a new sid from 1: a new sequence space
    assert dedup.accept("rust", "PA_2", 2, 1.0)
    assert not dedup.accept("rust", "PA_2", 2, 1.0)
    assert not dedup.accept("rust", "PA_2", 1, 1.0)  # same sid: no fresh start


def test_a_silent_sender_is_forgotten_after_the_ttl() -> None:
    dedup = IdentityDeduplicator(ttl=10.0)
    base = SEQUENCE_FLOOR + 100
    assert dedup.accept("alice", "PA_1", base, 0.0)
    assert not dedup.accept("alice", "PA_1", base, 5.0)  # a duplicate refreshes the entry
    assert dedup.accept("bob", "PA_2", base, 14.0)
    assert len(dedup) == 2  # pruned at most every ttl/4
    assert dedup.accept("bob", "PA_2", base + 1, 17.0)
    assert len(dedup) == 1  # alice not heard of since 5 s
    assert dedup.accept("alice", "PA_1", base, 17.0)  # she is new again


def test_retention_keeps_a_window_and_counts_what_the_capacity_let_go() -> None:
    kept = Retention(capacity=3, seconds=10.0)
    for n in range(5):
        kept.add(Sent(packet(n + 1), frozenset({"bob"}), 100.0 + n))
    burst = Retention(capacity=1, seconds=10.0)
    for n in range(3):
        burst.add(Sent(packet(n + 1), frozenset({"bob"}), 50.25 + n / 10))
    assert burst.unretained_since(50.0) == 2  # the same second: one count
    assert len(kept) == 3
    assert [e.packet.sequence for e in kept.since(0.0, 104.0)] == [3, 4, 5]
    assert [e.packet.sequence for e in kept.since(103.0, 104.0)] == [4, 5]
    assert kept.evicted_early == 2
    assert kept.unretained_since(100.5) == 2  # counted to the second
    assert kept.unretained_since(101.0) == 1
    assert kept.unretained_since(102.0) == 0
    kept.add(Sent(packet(6), frozenset({"bob"}), 101.0 + 10.0 + 1.5))  # later: the old ones expire
    assert [e.packet.sequence for e in kept.since(0.0, 112.5)] == [4, 5, 6]
    assert kept.unretained_since(0.0) == 0  # the eviction counts expire with the window
    again = Sent(packet(5, "bob"), frozenset({"bob"}), 113.0)  # sent again: replaces its first sending
    kept.add(again)
    assert [e.packet.sequence for e in kept.since(0.0, 113.0)] == [4, 6, 5]
    assert kept.since(112.8, 113.0) == [again]
    assert kept.since(0.0, 200.0) == []


def test_what_is_sent_again_to_whom_and_what_the_absent_miss() -> None:
    entries = [
        Sent(packet(1), frozenset({"bob", "carol"}), 10.0),  # before anyone's doubt
        Sent(packet(2), frozenset({"bob", "carol"}), 12.0),
        Sent(packet(3, "carol"), frozenset({"carol"}), 13.0),
        Sent(packet(4, "dave"), frozenset({"dave"}), 14.0),  # dave's path did not fail
        Sent(packet(5), frozenset({"bob"}), 15.0),
    ]
    again, missed = resend_plan(entries, frozenset({"bob", "dave"}), {"bob": 11.0, "carol": 12.5})
    assert [(p.sequence, p.destination_identities) for p in again] == [(2, ("bob",)), (5, ("bob",))]
    assert again[0].value == packet(2).value
    assert dict(missed) == {"carol": 1}  # packet 3 (packet 2 was sent before carol's doubt)
