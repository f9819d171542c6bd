"""The RoomActor's reliable data across faults: hold, wait for the recipients, send again, report.

A mixin of :class:`~greenroom.actors.room.RoomActor` (same actor, same state); the rules are pure, in
:mod:`greenroom.actors.reliable`.

* **Our own link is lost** (a full reconnect): every remote member is *away* since the last moment the
  path was known to work, less :data:`~greenroom.actors.reliable.RESEND_MARGIN`. The data plane is held
  (:meth:`DataPlane.hold <greenroom.actors.dataplane.DataPlane.hold>`); once the new link is up, the held
  publishes keep waiting (the connection machine's ``recovering``) until every member away is back in the
  new session or :data:`~greenroom.actors.reliable.RECIPIENT_GRACE` has passed. Then what was sent to them
  since that moment is sent again — on the new session, with the same sequence numbers, addressed to those
  back — ahead of what was queued, and then the held publishes are replayed. Receivers drop what they
  already had (:class:`~greenroom.actors.reliable.IdentityDeduplicator`). Without this, a sender that
  rejoins a restarted server before its receiver publishes into a room where the receiver is not yet a
  member, and the server forwards it to nobody (issue 17: 28–37 % lost, unreported).
* **A recipient's link is lost** (it leaves other than by its own choice, we stay connected): what was sent
  to it shortly before cannot be sent again (see :meth:`DeliveryHandlers._recipient_left`); it is reported.

What a recipient misses for good is reported as :class:`~greenroom.actors.reliable.DataUndelivered`, per
recipient, with a count (at most: some may have arrived).

"The last moment the path was known to work": a signal close or a server ``leave`` comes from a live server,
so it is the moment of the loss itself; a ping timeout or a failed peer connection is dated by the last
signal frame received.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from greenroom.actors.connection import ConnectionMachine, ConnEvent, ConnState, RecipientsBack
from greenroom.actors.dataplane import DataPlane
from greenroom.actors.link import Link
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ConnectionStateChanged,
    EventSink,
    PublishData,
    PublishDtmf,
    PublishPacket,
    PublishTrack,
    PublishTranscription,
    Reconnected,
    Reconnecting,
    Reply,
)
from greenroom.actors.reliable import RECIPIENT_GRACE, RESEND_MARGIN, DataUndelivered, Sent, resend_plan
from greenroom.actors.roster import Roster
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import DisconnectReason, ParticipantInfo, RoomInfo

__all__ = ["DeliveryDue", "DeliveryHandlers"]

_log = logging.getLogger("greenroom.actors.room")
_RELIABLE_PUBLISH = (PublishData, PublishDtmf, PublishTranscription, PublishPacket)


@dataclass(frozen=True, slots=True)
class DeliveryDue:
    """The grace for the recipients after the full reconnect of link ``generation`` ended."""

    generation: int


class DeliveryHandlers:
    """Reliable data across faults (mixed into the RoomActor, whose state it is)."""

    _machine: ConnectionMachine[Any]
    _plane: DataPlane
    _roster: Roster
    _sink: EventSink
    _link: Link | None
    _media: MediaRouter
    _room: RoomInfo | None
    _published: dict[str, PublishTrack]
    _republishing: dict[str, str]
    _log: logging.LoggerAdapter[logging.Logger]
    _away: dict[str, float]
    """Recipients whose path failed → since when what was sent to them is in doubt (monotonic)."""
    _alive_at: float
    """The last moment the link was known to work (monotonic)."""

    if TYPE_CHECKING:  # the RoomActor's and the other mixins' (declared only: they must not shadow them)

        @property
        def _state(self) -> ConnState: ...

        async def _feed(self, event: ConnEvent) -> None: ...

        def _arm(self, link_: Link, delay: float, message: Any) -> None: ...

        def _ensure_publisher(self, *, offer: bool = True) -> Any: ...

        def _on_publish_track(self, message: PublishTrack) -> None: ...

        async def on_receive(self, message: Any) -> Any: ...

        async def _detach_all_media(self) -> None: ...

    # -- our own link lost: a full reconnect ------------------------------------------------------------

    async def _begin_reconnect(self, reason: DisconnectReason) -> None:
        self._log.warning("connection lost (%s): reconnecting", reason.name)
        self._sink.emit(ConnectionStateChanged(2))  # CONN_RECONNECTING
        self._sink.emit(Reconnecting())
        since = min(time.monotonic(), self._alive_at) - RESEND_MARGIN
        for info in self._roster.remotes():
            self._away[info.identity] = min(self._away.get(info.identity, since), since)
        self._plane.hold()
        self._plane.detach()  # accepted packets stay queued for the next publisher
        await self._detach_all_media()

    async def _reconnected(self) -> None:
        """The new link's primary PC is up: connected again; republish; then wait for the recipients."""
        local = self._roster.local
        assert self._room is not None
        assert local is not None
        self._log.info("reconnected")
        self._sink.emit(ConnectionStateChanged(1))  # CONN_CONNECTED
        self._sink.emit(Reconnected(self._room, local))
        published, self._published = self._published, {}
        for cid, request in published.items():
            previous, new_cid = self._media.sid_of(cid), self._media.regate(cid)
            if previous is not None and new_cid is not None:
                self._republishing[new_cid] = previous
                self._on_publish_track(replace(request, cid=new_cid, reply=Reply.new()))
        link_ = self._link
        assert link_ is not None
        self._arm(link_, RECIPIENT_GRACE, DeliveryDue(link_.generation))
        await self._check_recipients()

    async def _check_recipients(self) -> None:
        """While a full reconnect waits: release once every recipient away is a member again."""
        link_ = self._link
        if not self._machine.recovering or self._state is not ConnState.CONNECTED or link_ is None:
            return
        if set(self._away) <= self._present():
            await self._feed(RecipientsBack(link_.generation))

    async def _replay(self, replay: tuple[Any, ...]) -> None:
        """The recipients are back (or the grace ended): send again what is in doubt, report what cannot
        be, release the plane, then handle the held requests in order."""
        present = self._present()
        away, self._away = self._away, {}
        if self._machine.options.resend:
            missed = self._resend(away, present)
        else:  # reported instead: official receivers would get them twice (they key by the sender's sid)
            now = time.monotonic()
            _again, missed = resend_plan(
                self._plane.retention.since(min(away.values(), default=now), now), frozenset(), away
            )
            self._report(
                collections.Counter({i: n for i, n in missed.items() if i in present}),
                {},
                "sent shortly before our connection failed; not sent again (ReconnectPolicy.resend is off)",
            )
            missed = collections.Counter({i: n for i, n in missed.items() if i not in present})
        for identity in set(away) - present:
            queued = sum(identity in r for r in self._plane.queued_recipients())
            held = sum(_meant_for(m, identity) for m in replay)
            missed[identity] += queued + held
        self._report(missed, away, f"not back within {RECIPIENT_GRACE:g} s of the reconnect")
        self._plane.release()
        if self._plane.stats().queued or (self._link is not None and self._link.publisher is not None):
            self._ensure_publisher()
        self._plane.replaying = True
        try:
            for message in replay:
                reply = getattr(message, "reply", None)
                if isinstance(reply, Reply) and reply.done:
                    continue  # the caller gave up meanwhile
                await self.on_receive(message)  # held again if the link is lost once more
        finally:
            self._plane.replaying = False

    # -- a recipient's link lost ------------------------------------------------------------------------

    def _recipient_left(self, info: ParticipantInfo, reason: DisconnectReason, ping_timeout: float) -> None:
        """A member left other than by its own choice: its connection failed (it may come back, as a new
        session). What was sent to it shortly before is in doubt, and cannot be sent again: our session is
        unchanged, and a server drops a sequence number it has already seen from it (livekit-server
        ``handleReceivedDataMessage``, "received out of order reliable data packet"; the dev server too),
        while a fresh number would duplicate what did arrive. So it is reported at once, with a count."""
        if reason is DisconnectReason.CLIENT_INITIATED or self._machine.recovering:
            return  # gone by its own choice, or our own reconnect covers it
        now = time.monotonic()
        since = now - RESEND_MARGIN
        if reason is DisconnectReason.CONNECTION_TIMEOUT:
            since -= ping_timeout  # the server waited that long before calling it gone
        sent = sum(info.identity in e.recipients for e in self._plane.retention.since(since, now))
        queued = sum(info.identity in r for r in self._plane.queued_recipients())
        why = f"its connection failed ({reason.name}) while they were on their way; they cannot be sent again"
        self._report(collections.Counter({info.identity: sent + queued}), {info.identity: since}, why)

    async def _on_delivery_due(self, message: DeliveryDue) -> None:
        link_ = self._link
        if link_ is not None and message.generation == link_.generation:
            await self._feed(RecipientsBack(message.generation))

    def _meant_for(self, packet: packets.DataPacket) -> frozenset[str]:
        """Whom a reliable packet is meant for: its destinations, or the members here now."""
        return frozenset(packet.destination_identities) or self._present()

    # -- helpers ----------------------------------------------------------------------------------------

    def _present(self) -> frozenset[str]:
        return frozenset(info.identity for info in self._roster.remotes())

    def _resend(self, away: dict[str, float], present: frozenset[str]) -> collections.Counter[str]:
        """Queue again (ahead) what was sent to ``away`` since their moment; what the absent miss."""
        start = min(away.values(), default=time.monotonic())
        entries = self._plane.retention.since(start, time.monotonic())
        again, missed = resend_plan(entries, present, away)
        resends: list[tuple[bytes, Sent]] = []
        for packet in again:
            try:
                data = packets.encode_packet(packet)
            except GreenroomError:  # pragma: no cover - it was encoded once; destinations only got shorter
                continue
            resends.append((data, Sent(packet, frozenset(packet.destination_identities), 0.0)))
        self._plane.resend(resends)
        if resends:
            first, last = resends[0][1].packet, resends[-1][1].packet
            self._log.info(
                "sending %d reliable packet(s) again after a fault (sequence %d to %d, to %s)",
                len(resends),
                first.sequence,
                last.sequence,
                ", ".join(sorted(away)),
            )
        return missed

    def _report(self, missed: collections.Counter[str], away: dict[str, float], why: str) -> None:
        """Report per recipient what it misses for good (``why``), and what the retention had let go."""
        for identity, count in sorted(missed.items()):
            if count:
                self._undelivered(identity, count, why)
        for identity, since in sorted(away.items()):
            unretained = self._plane.retention.unretained_since(since)
            if unretained:
                self._undelivered(
                    identity, unretained, "sent in doubt but no longer kept (the retention was full)"
                )

    def _undelivered(self, identity: str, count: int, why: str) -> None:
        self._log.warning(
            "%d reliable packet(s) for %s may not have been delivered: %s", count, identity, why
        )
        self._sink.emit(DataUndelivered(identity, count, why))


def _meant_for(message: Any, identity: str) -> bool:
    """Whether a held request is a reliable packet meant for ``identity`` (its destinations, or everyone)."""
    if not isinstance(message, _RELIABLE_PUBLISH):
        return False
    if isinstance(message, PublishData) and not message.reliable:
        return False
    destinations = getattr(message, "destination_identities", ())
    return not destinations or identity in destinations
