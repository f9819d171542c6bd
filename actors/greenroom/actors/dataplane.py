"""The room's data plane: publish commands become packets, and packets go out without a mailbox waiting.

The RoomActor owns one :class:`DataPlane`. Its handlers only *enqueue*: they build the ``DataPacket``
(:func:`packet_for`), stamp the reliable sequence number, encode it with the size limit and call
:meth:`DataPlane.put`, which returns at once. One **sender task per channel label** (``_reliable``,
``_lossy``) then waits for the publisher's channel to open and for its buffer to drain below the high-water
mark (``PeerTransport.send``), sends, and only then completes the caller's :class:`Reply` — so the caller's
``await publish_data(...)`` still means "handed to the transport", while a congested channel never holds up
the RoomActor's mailbox (signalling, pings, crash notices keep being handled).

The plane outlives links: a full reconnect :meth:`detaches <DataPlane.detach>` the dead publisher and
:meth:`attaches <DataPlane.attach>` the new one, and what was accepted but not yet sent goes out on it, in
order. Policy and counters:

* each label's outbox holds at most ``capacity`` packets (default :data:`OUTBOX_CAPACITY`); one more is
  **refused** at once with :class:`OutboxFullError` (the caller sees it; nothing is dropped silently) and
  counted in :attr:`DataPlaneStats.refused`;
* a packet the transport refuses (too large for the peer, channel closed for good) fails its reply and is
  counted in ``failed``; sent packets in ``sent``;
* every reliable packet sent is kept in the plane's :class:`~greenroom.actors.reliable.Retention` with the
  recipients it was meant for, so that it can be sent again after a fault (:meth:`DataPlane.resend`: ahead
  of what waits); while a full reconnect waits for its recipients the plane is :meth:`held
  <DataPlane.hold>` (nothing goes out, even on a new publisher).

Also here: decoding and de-duplicating what arrives (:func:`receive_packet`), the other half of the path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass

from greenroom.actors.messages import PublishData, PublishDtmf, PublishPacket, PublishTranscription, Reply
from greenroom.actors.reliable import IdentityDeduplicator, Retention, Sent
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError
from greenroom.runtime.peer import LOSSY, RELIABLE, ChannelNotOpenError, PeerTransport

__all__ = [
    "OUTBOX_CAPACITY",
    "DataPlane",
    "DataPlaneStats",
    "OutboxFullError",
    "packet_for",
    "receive_packet",
]

_log = logging.getLogger("greenroom.actors.dataplane")

#: Packets each channel's outbox holds before refusing more (about 4 s of a 250 packet/s burst).
OUTBOX_CAPACITY = 1_000


class OutboxFullError(GreenroomError):
    """The channel's outbox is full (the peer reads slower than the room publishes); nothing was queued."""


@dataclass(frozen=True, slots=True)
class DataPlaneStats:
    """Counters of a :class:`DataPlane` (see the module docstring for the policy)."""

    queued: int
    """Packets accepted and not yet sent, both channels."""
    sent: int
    failed: int
    refused: int
    capacity: int
    retained: int = 0
    """Reliable packets sent and kept for a resend after a fault."""
    resent: int = 0
    """Reliable packets sent again after a fault."""


@dataclass(slots=True)
class _Outgoing:
    data: bytes
    reply: Reply[None] | None
    kept: Sent | None = None
    """What to keep once sent (reliable packets): the packet and its recipients (``at`` is the queuing)."""
    retained: bool = False


def packet_for(
    message: PublishData | PublishDtmf | PublishTranscription | PublishPacket, identity: str, sid: str
) -> tuple[packets.DataPacket, bool]:
    """The ``DataPacket`` a publish command becomes, and whether it goes on the reliable channel.

    RPC and stream packets always go reliable; chunks and trailers repeat the header's destinations (as JS
    does: with the SFU's "empty = everyone" rule, a Rust sender's bare chunks reach every participant).
    """
    value: packets.PacketValue
    match message:
        case PublishData():
            value = packets.UserPacket(payload=message.payload, topic=message.topic or None)
            destinations, reliable = message.destination_identities, message.reliable
        case PublishDtmf(code=code, digit=digit):
            value, destinations, reliable = packets.SipDtmf(code=code, digit=digit), (), True
        case PublishTranscription(transcription=transcription):
            value, destinations, reliable = transcription, (), True
        case PublishPacket():
            value, destinations, reliable = message.value, message.destination_identities, True
            identity = message.identity or identity
    kind = packets.Kind.RELIABLE if reliable else packets.Kind.LOSSY
    packet = packets.DataPacket(
        value=value,
        participant_identity=identity,
        participant_sid=sid,
        destination_identities=destinations,
        kind=kind,
    )
    return packet, reliable


def receive_packet(
    label: str, data: bytes, dedup: IdentityDeduplicator, now: float
) -> tuple[packets.DataPacket, bool] | None:
    """Decode a received data message; ``None`` when it is undecodable (logged) or a reliable duplicate.

    Routing is by **channel label**, never by ``DataPacket.kind`` (the Rust SDK sets it inverted).
    """
    reliable = label == RELIABLE
    try:
        packet = packets.decode_packet(data)
    except GreenroomError as exc:
        _log.warning("dropped an undecodable data packet: %s", exc)
        return None
    if reliable and not dedup.accept_packet(packet, now):
        return None
    return packet, reliable


class DataPlane:
    """Outboxes and sender tasks of one room (runtime loop only; owned by its RoomActor)."""

    def __init__(self, capacity: int = OUTBOX_CAPACITY) -> None:
        self.capacity = capacity
        self._outboxes: dict[str, collections.deque[_Outgoing]] = {
            RELIABLE: collections.deque(),
            LOSSY: collections.deque(),
        }
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._publisher: PeerTransport | None = None
        self._sent = self._failed = self._refused = self._resent = 0
        self._closed = self._held = False
        self.retention = Retention()
        self.replaying = False
        """Requests held through a reconnect are being replayed: admitted past ``capacity`` (they were
        counted against the hold's capacity already; refusing them now would fail what was accepted)."""

    def stats(self) -> DataPlaneStats:
        """A snapshot of the counters."""
        queued = sum(len(q) for q in self._outboxes.values())
        return DataPlaneStats(
            queued, self._sent, self._failed, self._refused, self.capacity, len(self.retention), self._resent
        )

    def put(
        self,
        label: str,
        data: bytes,
        reply: Reply[None],
        keep: tuple[packets.DataPacket, frozenset[str]] | None = None,
    ) -> None:
        """Queue an encoded packet; its reply completes once it is sent (or fails). ``keep``: the packet and
        its recipients, retained when it leaves (reliable packets)."""
        if self._closed:
            reply.fail(OutboxFullError("the room is closed"))
            return
        outbox = self._outboxes[label]
        if len(outbox) >= self.capacity and not self.replaying:
            self._refused += 1
            reply.fail(OutboxFullError(f"the {label} outbox holds {self.capacity} packets already"))
            return
        kept = None if keep is None else Sent(keep[0], keep[1], 0.0)
        item = _Outgoing(data, reply, kept)
        if not outbox and self._send_now(label, item):
            return
        outbox.append(item)
        self._kick(label)

    def _send_now(self, label: str, item: _Outgoing) -> bool:
        """The fast path: nothing of ``label`` waits and the channel takes ``item`` without waiting.

        Measured (docs/benchmarks.md, "CPU per packet"): at 1 msg/s per room the sender task was started
        for every packet (it ends when its outbox is empty), a task and one more pass of the loop each. Order
        is kept: only an empty outbox (no packet waiting, none being sent: an item leaves the outbox only
        once sent) and a channel without a ``send`` in progress take this path; anything else — held,
        no publisher, channel not open, congested, an error — queues as before and the sender decides.
        """
        publisher = self._publisher
        if self._held or publisher is None:
            return False
        if not publisher.try_send(label, item.data):
            return False
        self._wire(item)  # kept now: the send above was synchronous, no resend decision came in between
        self._sent += 1
        if item.reply is not None:
            item.reply.ok(None)
        return True

    def queued_recipients(self) -> list[frozenset[str]]:
        """The recipients of each reliable packet waiting in the outbox (to count what an absentee misses)."""
        return [item.kept.recipients for item in self._outboxes[RELIABLE] if item.kept is not None]

    def resend(self, resends: list[tuple[bytes, Sent]]) -> None:
        """Send these (encoded, what to keep) again on ``_reliable``, ahead of what waits, in this order.

        Not bounded by the capacity: they are at most the :class:`Retention`'s capacity."""
        outbox = self._outboxes[RELIABLE]
        outbox.extendleft(_Outgoing(data, None, kept) for data, kept in reversed(resends))
        self._resent += len(resends)
        if resends and not self._closed:
            self._kick(RELIABLE)

    def hold(self) -> None:
        """Send nothing until :meth:`release` (a full reconnect waits for the recipients to be back)."""
        self._held = True

    def release(self) -> None:
        """Send again."""
        self._held = False
        self.channel_changed()

    def attach(self, publisher: PeerTransport) -> None:
        """A (new) publisher PC: senders use it from now on."""
        self._publisher = publisher
        self.channel_changed()

    def detach(self) -> None:
        """The link is gone: senders wait for the next publisher (queued packets stay)."""
        self._publisher = None

    def channel_changed(self) -> None:
        """A channel opened (or the publisher changed): wake the senders."""
        for label in self._outboxes:
            if self._outboxes[label]:
                self._kick(label)

    async def close(self, error: GreenroomError) -> None:
        """Stop the senders and fail everything still queued with ``error``."""
        self._closed = True
        self._publisher = None
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for outbox in self._outboxes.values():
            while outbox:
                reply = outbox.popleft().reply
                if reply is not None:
                    reply.fail(error)

    def _kick(self, label: str) -> None:
        wake = self._wake.get(label)
        if wake is None:
            wake = self._wake[label] = asyncio.Event()
        wake.set()
        task = self._tasks.get(label)
        if task is None or task.done():
            self._tasks[label] = asyncio.get_running_loop().create_task(
                self._sender(label), name=f"greenroom-sender{label}"
            )

    def _ready(self, label: str) -> PeerTransport | None:
        publisher = self._publisher
        if (
            self._held
            or publisher is None
            or not self._outboxes[label]
            or label not in publisher.channel_labels()
        ):
            return None
        return publisher

    async def _sender(self, label: str) -> None:
        outbox, wake = self._outboxes[label], self._wake[label]
        while True:
            publisher = self._ready(label)
            if publisher is None:
                if not outbox:
                    return  # idle: the next put starts a new task
                wake.clear()
                await wake.wait()
                continue
            item = outbox[0]
            data = self._wire(item)
            try:
                await publisher.send(label, data)
            except ChannelNotOpenError as exc:
                if publisher is not self._publisher:
                    continue  # the link changed while it waited: send it on the new one
                self._finish(outbox, item, exc)
            except GreenroomError as exc:
                self._finish(outbox, item, exc)
            else:
                self._finish(outbox, item, None)

    def _wire(self, item: _Outgoing) -> bytes:
        """What to send for ``item``; a reliable packet is kept *before* it is sent, so that a resend
        decided while it is on its way includes it (:mod:`greenroom.actors.delivery`)."""
        kept = item.kept
        if kept is not None and not item.retained:
            item.retained = True
            self.retention.add(Sent(kept.packet, kept.recipients, time.monotonic()))
        return item.data

    def _finish(self, outbox: collections.deque[_Outgoing], item: _Outgoing, error: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            outbox.remove(item)
        if error is None:
            self._sent += 1
            if item.reply is not None:
                item.reply.ok(None)
        else:
            self._failed += 1
            if item.reply is not None:
                item.reply.fail(error)
