"""The RoomActor's members and their data: participants' actors, and packets in and out.

A mixin of :class:`~greenroom.actors.room.RoomActor` (same actor, same state; split out to keep each module
readable):

* **the session** — the join response applied: the first (:meth:`Members._joined`) or, after a full
  reconnect, a reconcile that keeps the actors of those still present (:meth:`Members._rejoined`);
* **participants** — the :class:`~greenroom.actors.roster.Roster` decides who joined, changed or left; each
  participant's ParticipantActor is a transient child of the RoomActor's
  :class:`~greenroom.actors.supervision.ChildTable`, started from the roster's snapshot (a restart is
  restored from it without announcing anything) and reached only through its stable address, so messages
  for a crashed child wait in its stash and are replayed — a message never starts a dead child;
* **data out** — a publish command becomes a packet (stamped, encoded, size-checked) queued on the
  :class:`~greenroom.actors.dataplane.DataPlane`; the caller's reply completes when it is sent;
* **data in** — decoded, de-duplicated (reliable), an RPC request acknowledged at once (before any user code
  runs), routed to the sender's ParticipantActor (RPC and stream packets by the sender's sid).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from greenroom.actors.connection import ConnState, OnLoss
from greenroom.actors.dataplane import DataPlane, packet_for, receive_packet
from greenroom.actors.e2ee_messages import Keys
from greenroom.actors.link import CLOSE_TIMEOUT, Link, NotConnectedError
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ApplyParticipantInfo,
    DeliverPacket,
    EventSink,
    ParticipantLeft,
    PingTick,
    PublishData,
    PublishDtmf,
    PublishPacket,
    PublishTranscription,
    Reply,
    RoomJoined,
    RpcPacketReceived,
    UpdateLocalInfo,
)
from greenroom.actors.messages import DataPacketReceived as DataEvent
from greenroom.actors.messages import SipDtmfReceived as DtmfEvent
from greenroom.actors.messages import TranscriptionReceived as TranscriptionEvent
from greenroom.actors.participant import ParticipantActor
from greenroom.actors.reliable import IdentityDeduplicator
from greenroom.actors.roster import LOCAL, Joined, Roster, Updated
from greenroom.actors.supervision import ChildSpec, ChildTable, RestartType
from greenroom.codecs import packets, rpc
from greenroom.codecs.errors import GreenroomError, LocalProtocolError
from greenroom.codecs.models import DisconnectReason, ParticipantInfo, ParticipantState, RoomInfo, TrackInfo
from greenroom.codecs.signalling import JoinResponse, UpdateMetadata
from greenroom.runtime.peer import LOSSY, RELIABLE, PeerTransport

__all__ = ["REQUEST_TIMEOUT", "Members"]

_log = logging.getLogger("greenroom.actors.room")

#: Seconds ``set_metadata``/``set_name``/``set_attributes`` wait for the server's ``request_response``.
REQUEST_TIMEOUT = 5.0
#: Packet values routed by the sender's sid rather than the identity they name.
_BY_SID = (
    packets.StreamHeader,
    packets.StreamChunk,
    packets.StreamTrailer,
    packets.RpcRequest,
    packets.RpcAck,
    packets.RpcResponse,
)


class Members:
    """Participants' actors and the data path (mixed into the RoomActor, whose state it is)."""

    @property
    def _state(self) -> ConnState:
        raise NotImplementedError

    _link: Link | None
    _media: MediaRouter
    _sink: EventSink
    _roster: Roster
    _leaving: dict[str, ParticipantInfo]
    _participants: ChildTable
    _local_tracks: dict[str, TrackInfo]
    _plane: DataPlane
    _sequence: packets.SequenceCounter
    _dedup: IdentityDeduplicator
    _log: logging.LoggerAdapter[logging.Logger]
    _join: JoinResponse | None
    # end-to-end encryption (greenroom.actors.room_e2ee.E2eeHandlers, mixed in after this class)
    _seal: Callable[[packets.DataPacket, str], packets.DataPacket | None]
    _open: Callable[[packets.DataPacket], packets.DataPacket | None]
    keys_of: Callable[[str], Keys]
    _room: RoomInfo | None

    def _arm(self, link_: Link, delay: float, message: Any) -> None:
        raise NotImplementedError

    def _ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        raise NotImplementedError

    def _sent(self, key: object, request: Any, delay: float, *, on_loss: OnLoss, why_late: str) -> None:
        raise NotImplementedError

    async def _close(self, reason: DisconnectReason, *, send_leave: bool, emit: bool = True) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # DeliveryHandlers' (declared only: a stub here would shadow them)

        def _recipient_left(
            self, info: ParticipantInfo, reason: DisconnectReason, ping_timeout: float
        ) -> None: ...

        def _meant_for(self, packet: packets.DataPacket) -> frozenset[str]: ...

    # -- data out: the user's publish commands -> the data plane ---------------------------------------------

    def _on_publish(self, message: PublishData | PublishDtmf | PublishTranscription | PublishPacket) -> None:
        local = self._roster.local
        if self._state is not ConnState.CONNECTED or self._link is None or local is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        if isinstance(message, PublishTranscription) and not message.transcription.track_id.startswith("TR_"):
            # Trap: the Rust SDK (every official client but JS) aborts its whole process on receiving one:
            # ``handle_transcription`` does ``TrackSid::try_from(track_id).unwrap()`` and ``TrackSid``
            # requires the ``TR_`` prefix (rust-sdks livekit/src/room/mod.rs ``handle_transcription``,
            # room/id.rs ``impl_from_prefix!``; livekit 1.2.1 panics at mod.rs:1927, SIGABRT). The official
            # sender does not check, so one empty ``track_sid`` kills every official client in the room.
            wrong = message.transcription.track_id
            reason = f"track_sid must be a TR_ track sid, not {wrong!r}: official receivers abort on it"
            message.reply.fail(LocalProtocolError(reason))
            return
        packet, reliable = packet_for(message, local.identity, local.sid)
        sealed = self._seal(packet, local.identity)  # E2EE: before the sequence number (§5.12)
        if sealed is None:
            message.reply.fail(LocalProtocolError("end-to-end encryption is on and no key is set"))
            return
        packet = sealed
        publisher = self._link.publisher
        max_size = packets.MAX_MESSAGE_SIZE
        if publisher is not None and publisher.max_message_size is not None:
            max_size = min(max_size, publisher.max_message_size)
        keep = None
        if (
            reliable
        ):  # kept, with whom it is meant for, for a resend after a fault (greenroom.actors.delivery)
            packet = self._sequence.stamp(packet)
            keep = (packet, self._meant_for(packet))
        try:
            data = packets.encode_packet(packet, max_size=max_size)
        except GreenroomError as exc:  # too large: refused before queuing (a sequence gap is harmless)
            message.reply.fail(exc)
            return
        self._plane.put(RELIABLE if reliable else LOSSY, data, message.reply, keep)
        if publisher is None:
            self._ensure_publisher()

    def _on_update_local_info(self, message: UpdateLocalInfo) -> None:
        link_ = self._link
        if self._state is not ConnState.CONNECTED or link_ is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        request_id = link_.session.next_request_id()
        update = UpdateMetadata(
            request_id, message.name or "", message.metadata or "", message.attributes or ()
        )
        try:
            link_.post(update)
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        why_late = f"no answer from the server within {REQUEST_TIMEOUT} s"
        self._sent(request_id, message, REQUEST_TIMEOUT, on_loss=OnLoss.FAIL, why_late=why_late)

    # -- data in: DataReceived from a PeerTransport ----------------------------------------------------------

    def _on_data(self, label: str, data: bytes) -> None:
        received = receive_packet(label, data, self._dedup, time.monotonic())
        if received is None:
            return
        packet, reliable = received
        encrypted = isinstance(packet.value, packets.EncryptedPacket)
        opened = self._open(packet) if encrypted else packet
        if opened is None:
            return
        packet = opened
        identity = packet.participant_identity
        if not identity and isinstance(packet.value, packets.UserPacket):
            identity = packet.value.legacy_participant_identity
        ack = rpc.ack_for(packet.value)
        if ack is not None and identity:
            # Acknowledged here, the moment the request arrives, whatever the application's loop is doing:
            # the caller's 7 s ack timer measures the network, not our user code (the Rust SDK acks from its
            # own runtime too, before looking for a handler).
            self._on_publish(PublishPacket(ack, (identity,), Reply.new()))
        key = self._roster.key_of(identity) if identity else None
        if isinstance(packet.value, _BY_SID) and packet.participant_sid:
            # Stream and RPC packets go to the actor of their *sender*: an agent's header may name another
            # identity (publish on behalf) while its chunks name the agent; the SFU's sid is the sender's.
            key = self._roster.key_of_sid(packet.participant_sid) or key
        if key is not None:
            self._tell_child(key, DeliverPacket(packet, reliable, encrypted))
        else:
            self._emit_unattributed(packet, reliable)

    def _emit_unattributed(self, packet: packets.DataPacket, reliable: bool) -> None:
        """A packet from no known participant (a server API): reported with ``participant=None``."""
        match packet.value:
            case packets.UserPacket(payload=payload, topic=topic):
                self._sink.emit(DataEvent("", payload, reliable, topic))
            case packets.SipDtmf(code=code, digit=digit):
                self._sink.emit(DtmfEvent("", code, digit))
            case packets.Transcription() as t:
                self._sink.emit(TranscriptionEvent(t.participant_identity, t.track_id, t.segments))
            case packets.RpcRequest() | packets.RpcAck() | packets.RpcResponse() as value:
                # a server-initiated RPC: the SFU calls with a fresh identity nobody has (answered in v1)
                self._sink.emit(RpcPacketReceived(packet.participant_identity, value))
            case _:
                pass

    # -- participants: the roster and the supervision of their actors ----------------------------------------

    async def _joined(self) -> None:
        """The first JoinResponse: the room, the local participant, the others' actors; ping; publisher."""
        link_, join = self._link, self._join
        assert link_ is not None
        assert join is not None
        assert join.room is not None
        assert join.participant is not None
        self._room = join.room
        self._roster.set_local(join.participant)
        self._log = logging.LoggerAdapter(_log, {"room": join.room.name})
        link_.subscriber_primary = join.subscriber_primary
        self._start_child(LOCAL, announce=False)
        for info in join.other_participants:
            if info.identity != join.participant.identity:
                seen = self._roster.seen(info)
                if isinstance(seen, Joined):
                    self._start_child(seen.key, announce=False)
        remotes = self._roster.remotes()
        self._sink.emit(
            RoomJoined(join.room, join.participant, remotes, join.server_version, join.server_info)
        )
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary or join.fast_publish:  # fast_publish: open it now, as the SDKs do
            self._ensure_publisher()

    async def _rejoined(self) -> None:
        """A full reconnect's JoinResponse: reconcile, keeping the actors of the participants still here."""
        link_, join = self._link, self._join
        assert link_ is not None
        assert join is not None
        assert join.room is not None
        assert join.participant is not None
        self._room = join.room
        self._roster.set_local(join.participant)
        link_.subscriber_primary = join.subscriber_primary
        self._local_tracks.clear()  # the old local tracks ended with the old session; republished below
        self._tell_child(LOCAL, ApplyParticipantInfo(join.participant))  # new sid; old local tracks end
        others = {p.identity: p for p in join.other_participants if p.identity != join.participant.identity}
        for info in self._roster.remotes():
            if info.identity not in others:  # left while we were away
                self._participant_left(info.sid, info, DisconnectReason.UNKNOWN_REASON)
        for info in others.values():
            # still here with the same sid: same actor, whatever the version (a restarted server restarts
            # them); the same identity with a new sid is a leave + a join, as in the Rust SDK
            self._participant_seen(info, any_version=True)
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary or join.fast_publish:  # fast_publish: open it now, as the SDKs do
            self._ensure_publisher()

    def _on_participant_update(self, infos: tuple[ParticipantInfo, ...]) -> None:
        for info in infos:
            if self._roster.is_local(info):
                self._roster.set_local(info)
                self._tell_child(LOCAL, ApplyParticipantInfo(info))
            elif info.state is ParticipantState.DISCONNECTED:
                key = self._roster.key_of_sid(info.sid)
                if key is not None:
                    self._participant_left(key, info, info.disconnect_reason)
            else:
                self._participant_seen(info)

    def _participant_seen(self, info: ParticipantInfo, *, any_version: bool = False) -> None:
        match self._roster.seen(info, any_version=any_version):
            case Joined(key=key, replaced=replaced):
                if replaced is not None:  # same identity, new session: the old one left
                    self._say_goodbye(replaced.sid, replaced, DisconnectReason.DUPLICATE_IDENTITY)
                    self._recipient_left(replaced, DisconnectReason.DUPLICATE_IDENTITY, 0.0)
                self._start_child(key, announce=True)
            case Updated(key=key):
                self._tell_child(key, ApplyParticipantInfo(info))
            case None:
                pass

    def _participant_left(self, key: str, info: ParticipantInfo, reason: DisconnectReason) -> None:
        if self._roster.remove(key) is not None:
            self._say_goodbye(key, info, reason)
            ping_timeout = self._link.session.ping_timeout if self._link is not None else 0.0
            self._recipient_left(info, reason, ping_timeout)

    def _say_goodbye(self, key: str, info: ParticipantInfo, reason: DisconnectReason) -> None:
        self._leaving[key] = info
        self._tell_child(key, ParticipantLeft(info, reason))

    def _start_child(self, key: str, *, announce: bool) -> None:
        first = [announce]

        def start() -> pykka.ActorRef[Any]:
            # The first incarnation announces (if asked); a restart is restored from the roster's snapshot
            # (or the goodbye it was saying), without announcing anything again.
            announce_now, first[0] = first[0], False
            info = self._roster.info(key) or self._leaving[key]
            local_tracks = tuple(self._local_tracks.values()) if key == LOCAL else ()
            return ParticipantActor.start(
                info,
                self._sink,
                local=key == LOCAL,
                announce=announce_now,
                media=self._media,
                local_tracks=local_tracks,
                keys=self.keys_of(info.identity),
            )

        spec = ChildSpec(key, start, restart=RestartType.TRANSIENT, shutdown_timeout=CLOSE_TIMEOUT)
        self._participants.start_child_now(spec)

    def _tell_child(self, key: str, message: Any) -> None:
        """Tell a ParticipantActor through its stable address: stashed (never restarted) while it is down."""
        handle = self._participants.handle(key)
        if handle is None:
            self._log.debug("no participant actor %s for %r", key, message)
            return
        try:
            handle.tell(message)
        except pykka.ActorDeadError:
            self._log.debug("participant actor %s is gone; %r dropped", key, message)
        except GreenroomError as exc:  # a full stash: counted by the stable reference, and said here
            self._log.error("participant actor %s: %r not delivered: %s", key, message, exc)

    async def _on_supervision(self, message: Any) -> None:
        if not self._participants.owns(message):
            return
        escalation = await self._participants.on_message(message)
        for key in [k for k in self._leaving if k not in self._participants]:
            del self._leaving[key]  # said goodbye and stopped
        if escalation is not None:
            self._log.error("participant actors keep crashing: %s", escalation.error)
            await self._close(DisconnectReason.STATE_MISMATCH, send_leave=True)
