"""Reliable data across faults, the pure rules: what a sender keeps and sends again, what a receiver drops.

LiveKit's own answer to a lost link is a *resume*: the session survives, the server reports the last
sequence it received from the sender (``ReconnectResponse.last_message_seq``) and the sender resends from
there (rust-sdks ``rtc_session.rs`` ``_enqueue_for_retry_from``; client-sdk-js
``resendReliableMessagesForResume``).
After a *full rejoin* (a restarted server, a refused resume) the official SDKs start a new session: a new
participant sid, the sequence counter back at 1, receivers keyed by the sender's sid — what was in flight
is lost and nobody is told (the 28–37 % of issue 17). greenroom closes that gap without a server's help:

* **Sequence numbers outlive the link.** One counter per Room, starting at a time-derived base
  (:func:`sequence_base`, never below :data:`SEQUENCE_FLOOR`), continued across every full rejoin: a later
  session of the same identity (a restarted process) counts above an earlier one.
* **Receivers de-duplicate by identity** (:class:`IdentityDeduplicator`), not by the sid that changes at
  every rejoin; a new sid whose counter restarts low (an official SDK's new session) starts afresh.
* **Senders keep what they sent** (:class:`Retention`: the last :data:`RETAIN_SECONDS` seconds, at most
  :data:`RETAIN_CAPACITY` packets), with the recipients each packet was meant for (its destinations, or the
  room's other members when it was published). After a fault, what was sent since the last moment the
  path was known good (less :data:`RESEND_MARGIN`) is sent again to those recipients once they are back
  (:func:`resend_plan`), and what cannot reach them within :data:`RECIPIENT_GRACE` is counted per recipient
  and reported (:class:`DataUndelivered`) — never dropped without a word.

The actor side (when to hold, when to release) is in :mod:`greenroom.actors.delivery`; the guarantees per
fault kind are written in docs/architecture.md ("Reliable data across faults").
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from greenroom.codecs import packets

__all__ = [
    "DEDUP_TTL",
    "DEDUP_WINDOW",
    "RECIPIENT_GRACE",
    "RESEND_MARGIN",
    "RETAIN_CAPACITY",
    "RETAIN_SECONDS",
    "SEQUENCE_FLOOR",
    "DataUndelivered",
    "IdentityDeduplicator",
    "Retention",
    "Sent",
    "follows",
    "resend_plan",
    "sequence_base",
]

#: greenroom's sequence numbers never start below this (an official SDK's new session starts at 1).
SEQUENCE_FLOOR = 1 << 16
#: Sent reliable packets kept for a resend, at most (a 250 packet/s stream: the last 8 s).
RETAIN_CAPACITY = 2_000
#: Seconds a sent reliable packet is kept for a resend.
RETAIN_SECONDS = 30.0
#: Seconds before the last proof that the path worked from which packets are sent again after a fault.
RESEND_MARGIN = 2.0
#: Seconds held and unconfirmed packets wait for their recipients to be back before they are reported.
RECIPIENT_GRACE = 15.0
#: Seconds a receiver remembers a sender it has not heard from (longer than a rejoin's grace and resend).
DEDUP_TTL = 120.0
#: Sequence numbers a receiver remembers per sender (above the retention's capacity: a resend is within it).
DEDUP_WINDOW = 2 * RETAIN_CAPACITY

_MODULUS = 1 << 32


def sequence_base(now: float) -> int:
    """The last sequence number "handed out" before a Room's first packet: milliseconds of ``now`` (wall
    clock), folded into ``[SEQUENCE_FLOOR, 2**32 - SEQUENCE_FLOOR)``.

    A later session of the same identity therefore counts above an earlier one as long as that one sent
    fewer than 1,000 packets a second on average over its life (and clocks do not step back).
    """
    span = _MODULUS - 2 * SEQUENCE_FLOOR
    return SEQUENCE_FLOOR + int(now * 1000) % span


def follows(sequence: int, last: int) -> bool:
    """Whether ``sequence`` comes after ``last`` in serial-number arithmetic (RFC 1982, 32 bits)."""
    return 0 < (sequence - last) % _MODULUS < _MODULUS // 2


@dataclass(frozen=True, slots=True)
class DataUndelivered:
    """Reliable packets meant for ``identity`` that may not have reached it and could not be sent again.

    ``count`` packets (at most; some may have arrived before the fault): the recipient did not come back
    within the grace, or the retention had already let them go. Reported as the room event
    ``data_undelivered(identity, count, reason)``.
    """

    identity: str
    count: int
    reason: str


@dataclass(slots=True)
class _Seen:
    sid: str
    high: int
    at: float
    recent: collections.deque[int] = field(default_factory=collections.deque)
    known: set[int] = field(default_factory=set)

    def add(self, sequence: int) -> None:
        self.recent.append(sequence)
        self.known.add(sequence)
        if len(self.recent) > DEDUP_WINDOW:
            self.known.discard(self.recent.popleft())


class IdentityDeduplicator:
    """Receiver side: drop a reliable packet already received from the same sender *identity*.

    A rejoined sender has a new sid but continues its sequence; what it sends again is dropped if it
    arrived before. Per sender, the last :data:`DEDUP_WINDOW` sequence numbers accepted are remembered, so a
    packet sent again that had *not* arrived is accepted even after a newer one (a race at a recipient's
    rejoin: delivered late rather than lost); older than the window and not newer than the highest seen, it
    is taken for a duplicate. A packet from a new sid whose sequence is below :data:`SEQUENCE_FLOOR` and not
    after the highest starts a new sequence space (an official SDK's new session counts from 1 again).
    ``sequence == 0`` (unsequenced) is always accepted. Entries not refreshed within ``ttl`` seconds are
    forgotten. Time is passed in.
    """

    __slots__ = ("_last_prune", "_seen", "_ttl", "dropped", "late")

    def __init__(self, ttl: float = DEDUP_TTL) -> None:
        self._ttl = ttl
        self._seen: dict[str, _Seen] = {}
        self._last_prune = -math.inf
        self.dropped = 0
        """Duplicates dropped so far."""
        self.late = 0
        """Packets accepted after a newer one from the same sender (sent again after a fault)."""

    def accept(self, identity: str, sid: str, sequence: int, now: float) -> bool:
        """Record a received reliable packet; False when it is a duplicate."""
        self._prune(now)
        if sequence == 0 or not identity:
            return True
        seen = self._seen.get(identity)
        if seen is None or (
            sid != seen.sid and sequence < SEQUENCE_FLOOR and not follows(sequence, seen.high)
        ):
            seen = self._seen[identity] = _Seen(sid, sequence, now)
        elif follows(sequence, seen.high):
            seen.sid, seen.high, seen.at = sid, sequence, now
        elif sequence in seen.known or (seen.high - sequence) % _MODULUS >= DEDUP_WINDOW:
            seen.at = now
            self.dropped += 1
            return False
        else:
            seen.at = now
            self.late += 1
        seen.add(sequence)
        return True

    def accept_packet(self, packet: packets.DataPacket, now: float) -> bool:
        """:meth:`accept` applied to a decoded envelope (the SFU stamps the sender's identity and sid)."""
        return self.accept(packet.participant_identity, packet.participant_sid, packet.sequence, now)

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        if now - self._last_prune < self._ttl / 4:
            return
        self._last_prune = now
        for identity in [i for i, s in self._seen.items() if now - s.at > self._ttl]:
            del self._seen[identity]


@dataclass(frozen=True, slots=True)
class Sent:
    """A reliable packet that left on the channel, kept for a resend."""

    packet: packets.DataPacket
    recipients: frozenset[str]
    """The identities it was meant for: its destinations, or the room's other members when published."""
    at: float
    """When it was handed to the transport (monotonic seconds)."""


class Retention:
    """Sender side: the reliable packets sent in the last ``seconds``, at most ``capacity`` (oldest go first).

    A packet pushed out by the capacity while younger than ``seconds`` is counted per second of its sending
    (:meth:`unretained_since`), so a resend that reaches back past it reports the gap instead of hiding it.
    """

    __slots__ = ("_entries", "_evicted", "capacity", "evicted_early", "seconds")

    def __init__(self, capacity: int = RETAIN_CAPACITY, seconds: float = RETAIN_SECONDS) -> None:
        self.capacity = capacity
        self.seconds = seconds
        self._entries: dict[int, Sent] = {}  # by sequence, oldest sending first
        self._evicted: collections.deque[tuple[int, int]] = collections.deque()  # (second, count)
        self.evicted_early = 0
        """Packets let go by the capacity before ``seconds`` had passed."""

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Sent) -> None:
        """Keep ``entry`` (sent now); a packet sent again replaces its earlier sending (same sequence).
        Forget what is older than ``seconds`` or beyond ``capacity``."""
        self._expire(entry.at)
        self._entries.pop(entry.packet.sequence, None)
        self._entries[entry.packet.sequence] = entry
        while len(self._entries) > self.capacity:
            old = self._entries.pop(next(iter(self._entries)))
            self.evicted_early += 1
            second = math.floor(old.at)
            if self._evicted and self._evicted[-1][0] == second:
                self._evicted[-1] = (second, self._evicted[-1][1] + 1)
            else:
                self._evicted.append((second, 1))

    def since(self, start: float, now: float) -> list[Sent]:
        """The packets sent at or after ``start``, oldest first."""
        self._expire(now)
        return [e for e in self._entries.values() if e.at >= start]

    def unretained_since(self, start: float) -> int:
        """Packets sent at or after ``start`` (to the second) the capacity let go: a resend misses them."""
        floor = math.floor(start)
        return sum(count for second, count in self._evicted if second >= floor)

    def _expire(self, now: float) -> None:
        while self._entries:
            first = next(iter(self._entries))
            if now - self._entries[first].at <= self.seconds:
                break
            del self._entries[first]
        while self._evicted and now - self._evicted[0][0] > self.seconds + 1:
            self._evicted.popleft()


def resend_plan(
    entries: Iterable[Sent], present: frozenset[str], since: Mapping[str, float]
) -> tuple[list[packets.DataPacket], collections.Counter[str]]:
    """What to send again after a fault, and how many packets each absent recipient misses.

    ``since`` maps each recipient whose path failed to the moment from which what was sent to it is in
    doubt; a packet concerns a recipient when it was meant for it and sent at or after that moment. Each
    packet concerning someone present goes again, unchanged but for its destinations (those present); a
    packet concerning nobody present is not sent. Everything stays in its original order.
    """
    out: list[packets.DataPacket] = []
    missed: collections.Counter[str] = collections.Counter()
    for entry in entries:
        concerned = {r for r in entry.recipients if r in since and entry.at >= since[r]}
        here = concerned & present
        missed.update(concerned - present)
        if here:
            out.append(replace(entry.packet, destination_identities=tuple(sorted(here))))
    return out, missed
