"""The facade's one reducer: the actors' events in, the view updated and the official events out.

:class:`RoomView` owns everything a ``Room`` shows — the room's info, the connection state, the local and
remote participants with their publications and tracks (the records of :mod:`greenroom.rtc._records`, and the
view objects built over them). :meth:`RoomView.apply` takes one event — a
:data:`~greenroom.actors.messages.RoomEvent` from the actor tree, or a
:data:`~greenroom.rtc._records.LocalChange` the local participant reported through its port — updates the
records, and returns the effects in the order the user must see them: :class:`Emit` (an event name and its
arguments exactly as ``livekit.rtc`` emits them) and :class:`Wake` (a stream waiting in
``from_participant`` gets its track). It never emits, calls back or sends anything itself, so it is tested
directly (``tests/rtc/test_view.py``); ``Room`` feeds it and carries the effects out on the user's loop.

The order follows ``livekit.rtc`` 1.2.1 (``livekit/rtc/room.py``, ``Room._on_room_event``): the state changes
before the event that announces it, so a callback sees the new state; a publication going away emits
``track_unsubscribed`` (if subscribed) before ``track_unpublished``, a participant leaving emits it for each
subscribed track before ``participant_disconnected``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, assert_never

from greenroom.actors import messages as m
from greenroom.actors.e2ee_messages import EncryptionStateChanged, EncryptionStatusChanged
from greenroom.codecs import packets
from greenroom.codecs.models import DisconnectReason, ParticipantInfo, RoomInfo, ServerInfo, TrackInfo
from greenroom.rtc._enums import ConnectionQuality, ConnectionState, DataPacketKind, TrackKind, track_kind
from greenroom.rtc._port import RoomPort
from greenroom.rtc._records import (
    LocalChange,
    LocalPublicationRecord,
    LocalTrackPublished,
    LocalTrackUnpublished,
    ParticipantRecord,
    PublicationRecord,
    TrackWaiter,
)
from greenroom.rtc.participant import LocalParticipant, Participant, RemoteParticipant
from greenroom.rtc.track import RemoteAudioTrack, RemoteVideoTrack, Track
from greenroom.rtc.track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from greenroom.rtc.transcription import TranscriptionSegment

__all__ = [
    "DataPacket",
    "Deliver",
    "Departed",
    "Effect",
    "Emit",
    "Ended",
    "EventTypes",
    "RoomView",
    "SipDTMF",
    "Wake",
]

EventTypes = Literal[
    "participant_connected",
    "participant_disconnected",
    "participant_active",
    "local_track_published",
    "local_track_unpublished",
    "local_track_republished",
    "local_track_subscribed",
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "track_subscription_failed",
    "track_muted",
    "track_unmuted",
    "active_speakers_changed",
    "room_metadata_changed",
    "participant_metadata_changed",
    "participant_name_changed",
    "participant_attributes_changed",
    "connection_quality_changed",
    "participant_encryption_status_changed",
    "participant_permissions_changed",
    "data_received",
    "data_undelivered",
    "sip_dtmf_received",
    "transcription_received",
    "e2ee_state_changed",
    "connection_state_changed",
    "connected",
    "disconnected",
    "reconnecting",
    "reconnected",
    "room_updated",
    "moved",
    "token_refreshed",
    "data_track_published",
    "data_track_unpublished",
]


@dataclass
class DataPacket:
    """A received user packet (``data_received``).

    Attributes:
        data: the payload.
        kind: ``KIND_RELIABLE`` or ``KIND_LOSSY`` (from the channel it arrived on).
        participant: the sender; ``None`` when a server API sent it.
        topic: the sender's topic (``""`` when it set none, as ``livekit.rtc``).
    """

    data: bytes
    kind: DataPacketKind
    participant: RemoteParticipant | None
    topic: str | None = None


@dataclass
class SipDTMF:
    """A received SIP DTMF tone (``sip_dtmf_received``)."""

    code: int
    digit: str
    participant: RemoteParticipant | None = None


@dataclass(frozen=True, slots=True)
class Emit:
    """Emit ``name`` with ``args`` on the room."""

    name: EventTypes
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Wake:
    """Give a waiting stream its track (``None``: its participant left)."""

    waiter: TrackWaiter
    track: Track | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand an RPC or data-stream packet from ``identity`` to the local participant's RPC or the streams."""

    identity: str
    value: packets.RpcValue | packets.StreamValue


@dataclass(frozen=True, slots=True)
class Departed:
    """``identity`` left: its calls in flight and the streams it was sending end now."""

    identity: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The room disconnected: every call, handler and stream of this connection ends."""


Effect = Emit | Wake | Deliver | Departed | Ended


class RoomView:
    """The state behind a ``Room``'s properties and views; :meth:`apply` is its only writer.

    Args:
        loop: the room's loop (``LocalTrackPublication.wait_for_subscription`` waits on a future of it).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._port = RoomPort.detached()
        self.info = RoomInfo(sid="", name="")
        """The room's latest ``RoomInfo`` (sid, name, metadata, counts)."""
        self.state = ConnectionState.CONN_DISCONNECTED
        self.server_version = ""
        self.server_info: ServerInfo | None = None
        """The server's version from the join (RPC needs ≥ 1.8.0)."""
        self._me: tuple[LocalParticipant, ParticipantRecord] | None = None
        self._remote_views: dict[str, RemoteParticipant] = {}
        self._remotes: dict[str, ParticipantRecord] = {}
        # ``track_subscribed`` for a local track can overtake ``publish_track``'s own return (the server
        # answers a subscriber that was already waiting); remembered here until the publication exists.
        self._early_subscriptions: set[str] = set()

    @property
    def local(self) -> LocalParticipant | None:
        """The local participant, once joined."""
        return None if self._me is None else self._me[0]

    @property
    def remotes(self) -> Mapping[str, RemoteParticipant]:
        """The remote participants by identity (a live mapping)."""
        return self._remote_views

    def bind(self, port: RoomPort) -> None:
        """A new connection: participants and publications built from now on act through ``port``."""
        self._port = port

    def apply(self, event: m.RoomEvent | LocalChange) -> list[Effect]:
        """Apply ``event`` to the view; return what the room must emit (and wake), in order."""
        out: list[Effect] = []
        match event:  # the data path first: a match tries its cases in order (RPC, streams: P14)
            case m.RpcPacketReceived(identity=identity, value=value):
                out.append(Deliver(identity, value))
            case m.StreamPacketReceived(identity=identity, value=value):
                out.append(Deliver(identity, value))
            case LocalTrackPublished() | LocalTrackUnpublished():
                self._local_change(event, out)
            case (
                m.RoomJoined()
                | m.RoomConnected()
                | m.ConnectionStateChanged()
                | m.Reconnecting()
                | m.Reconnected()
                | m.LocalTrackRepublished()
                | m.Disconnected()
                | m.RoomMetadataChanged()
            ):
                self._room_event(event, out)
            case (
                m.ParticipantConnected()
                | m.ParticipantActive()
                | m.ParticipantDisconnected()
                | m.ParticipantMetadataChanged()
                | m.ParticipantNameChanged()
                | m.ParticipantAttributesChanged()
                | m.ActiveSpeakersChanged()
                | m.ConnectionQualityChanged()
            ):
                self._participant_event(event, out)
            case (
                m.TrackPublished()
                | m.TrackUnpublished()
                | m.TrackMuted()
                | m.TrackSubscribed()
                | m.TrackUnsubscribed()
                | m.TrackSubscriptionFailed()
                | m.LocalTrackSubscribed()
            ):
                self._track_event(event, out)
            case m.DataPacketReceived() | m.SipDtmfReceived() | m.TranscriptionReceived():
                self._data_event(event, out)
            case m.DataUndelivered(identity=identity, count=count, reason=reason):
                out.append(Emit("data_undelivered", (identity, count, reason)))
            case EncryptionStateChanged() | EncryptionStatusChanged():
                self._e2ee_event(event, out)
            case _:
                assert_never(event)
        return out

    def _e2ee_event(self, event: EncryptionStateChanged | EncryptionStatusChanged, out: list[Effect]) -> None:
        """``e2ee_state_changed(participant, state)``, ``participant_encryption_status_changed(participant,
        encrypted)`` (participant first, as ``livekit.rtc`` emits it); unknown identities are dropped (RS)."""
        found = self._find(event.identity)
        if found is None:
            return
        if isinstance(event, EncryptionStateChanged):
            out.append(Emit("e2ee_state_changed", (found[0], event.state)))
        else:
            out.append(Emit("participant_encryption_status_changed", (found[0], event.encrypted)))

    # -- the room and the connection ------------------------------------------------------------------------

    def _room_event(  # noqa: C901 - one short branch per event
        self,
        event: m.RoomJoined
        | m.RoomConnected
        | m.ConnectionStateChanged
        | m.Reconnecting
        | m.Reconnected
        | m.LocalTrackRepublished
        | m.Disconnected
        | m.RoomMetadataChanged,
        out: list[Effect],
    ) -> None:
        match event:
            case m.RoomJoined(
                room=room, local=local, remotes=remotes, server_version=version, server_info=server
            ):
                self.info, self.server_version, self.server_info = room, version, server
                record = ParticipantRecord(local)
                self._me = LocalParticipant(record, self._port, self._remotes, version), record
                self._remotes.clear()
                self._remote_views.clear()
                for info in remotes:
                    self._add_remote(info)
            case m.RoomConnected():
                self._set_state(ConnectionState.CONN_CONNECTED, out)
                out.append(Emit("connected"))
            case m.ConnectionStateChanged(state=state):
                self._set_state(ConnectionState(state), out)
            case m.Reconnecting():
                out.append(Emit("reconnecting"))
            case m.Reconnected(room=room, local=local):
                self.info = room
                if self._me is not None:
                    self._me[1].info = local
                out.append(Emit("reconnected"))
            case m.LocalTrackRepublished(previous_sid=previous, track=info):
                self._republished(previous, info, out)
            case m.Disconnected(reason=reason):
                if self.state != ConnectionState.CONN_DISCONNECTED:
                    if self._me is not None:
                        self._me[1].disconnect_reason = reason
                    out.append(Ended())
                    self._set_state(ConnectionState.CONN_DISCONNECTED, out)
                    out.append(Emit("disconnected", (reason,)))
            case m.RoomMetadataChanged(room=room, old=old, new=new):
                self.info = room
                out.append(Emit("room_metadata_changed", (old, new)))
            case _:
                assert_never(event)

    def _set_state(self, state: ConnectionState, out: list[Effect]) -> None:
        if state != self.state:
            self.state = state
            out.append(Emit("connection_state_changed", (state,)))

    def _republished(self, previous_sid: str, info: TrackInfo, out: list[Effect]) -> None:
        """After a full reconnect: the same publication (and track) object, re-keyed under its new sid."""
        local = None if self._me is None else self._me[1]
        publication = None if local is None else local.publications.pop(previous_sid, None)
        if local is None or not isinstance(publication, LocalPublicationRecord):
            return
        publication.info = dataclasses.replace(info, muted=publication.info.muted)
        local.publications[info.sid] = publication
        track = publication.track_record
        track.info, track.port = dataclasses.replace(info, muted=track.info.muted), self._port
        out.append(Emit("local_track_republished", (publication.view, previous_sid)))

    # -- participants ---------------------------------------------------------------------------------------

    def _add_remote(self, info: ParticipantInfo) -> RemoteParticipant:
        record = ParticipantRecord(info)
        for track in info.tracks:
            record.publications[track.sid] = self._remote_publication(track)
        view = RemoteParticipant(record)
        self._remotes[info.identity], self._remote_views[info.identity] = record, view
        return view

    def _remote_publication(self, info: TrackInfo) -> PublicationRecord:
        record = PublicationRecord(info, self._port)
        record.view = RemoteTrackPublication(record)
        return record

    def _remote(self, identity: str) -> tuple[RemoteParticipant, ParticipantRecord] | None:
        record = self._remotes.get(identity)
        return None if record is None else (self._remote_views[identity], record)

    def _find(self, identity: str) -> tuple[Participant, ParticipantRecord] | None:
        if self._me is not None and identity == self._me[1].info.identity:
            return self._me
        return self._remote(identity)

    def _by_sid(self) -> dict[str, tuple[Participant, ParticipantRecord]]:
        found: dict[str, tuple[Participant, ParticipantRecord]] = {
            record.info.sid: (self._remote_views[identity], record)
            for identity, record in self._remotes.items()
        }
        if self._me is not None:
            found[self._me[1].info.sid] = self._me
        return found

    def _refresh(self, info: ParticipantInfo) -> Participant | None:
        found = self._find(info.identity)
        if found is None:
            return None
        found[1].info = info
        return found[0]

    def _participant_event(  # noqa: C901 - one short branch per event
        self,
        event: m.ParticipantConnected
        | m.ParticipantActive
        | m.ParticipantDisconnected
        | m.ParticipantMetadataChanged
        | m.ParticipantNameChanged
        | m.ParticipantAttributesChanged
        | m.ActiveSpeakersChanged
        | m.ConnectionQualityChanged,
        out: list[Effect],
    ) -> None:
        match event:
            case m.ParticipantConnected(info=info):
                out.append(Emit("participant_connected", (self._add_remote(info),)))
            case m.ParticipantActive(info=info):
                if (participant := self._refresh(info)) is not None:
                    out.append(Emit("participant_active", (participant,)))
            case m.ParticipantDisconnected(info=info, reason=reason):
                self._participant_left(info, reason, out)
            case m.ParticipantMetadataChanged(info=info, old=old, new=new):
                if (participant := self._refresh(info)) is not None:
                    out.append(Emit("participant_metadata_changed", (participant, old, new)))
            case m.ParticipantNameChanged(info=info, old=old, new=new):
                if (participant := self._refresh(info)) is not None:
                    out.append(Emit("participant_name_changed", (participant, old, new)))
            case m.ParticipantAttributesChanged(info=info, changed=changed):
                if (participant := self._refresh(info)) is not None:
                    out.append(Emit("participant_attributes_changed", (dict(changed), participant)))
            case m.ActiveSpeakersChanged(speakers=speakers):
                by_sid = self._by_sid()
                speaking = [by_sid[sid][0] for sid, _ in speakers if sid in by_sid]
                out.append(Emit("active_speakers_changed", (speaking,)))
            case m.ConnectionQualityChanged(participant_sid=sid, quality=quality):
                found = self._by_sid().get(sid)
                if found is not None:
                    found[1].quality = ConnectionQuality(quality)
                    out.append(Emit("connection_quality_changed", (found[0], found[1].quality)))
            case _:
                assert_never(event)

    def _participant_left(self, info: ParticipantInfo, reason: DisconnectReason, out: list[Effect]) -> None:
        record = self._remotes.pop(info.identity, None)
        if record is None:
            return
        participant = self._remote_views.pop(info.identity)
        for publication in record.publications.values():
            self._unsubscribed(publication, participant, out)
        waiters, record.waiters = record.waiters, []
        out.extend(Wake(waiter, None) for waiter in waiters)
        record.info, record.disconnect_reason = info, reason
        out.append(Departed(info.identity))
        out.append(Emit("participant_disconnected", (participant,)))

    # -- publications and subscriptions ---------------------------------------------------------------------

    def _track_event(  # noqa: C901 - one short branch per event
        self,
        event: m.TrackPublished
        | m.TrackUnpublished
        | m.TrackMuted
        | m.TrackSubscribed
        | m.TrackUnsubscribed
        | m.TrackSubscriptionFailed
        | m.LocalTrackSubscribed,
        out: list[Effect],
    ) -> None:
        match event:
            case m.TrackPublished(info=info, track=track):
                if (found := self._remote(info.identity)) is not None:
                    participant, record = found
                    record.info = info
                    publication = record.publications[track.sid] = self._remote_publication(track)
                    out.append(Emit("track_published", (publication.view, participant)))
            case m.TrackUnpublished(info=info, track=track):
                self._unpublished(info, track.sid, out)
            case m.TrackMuted(identity=identity, track=track, muted=muted):
                self._muted(identity, track, muted, out)
            case m.TrackSubscribed(identity=identity, track=info):
                self._subscribed(identity, info.sid, out)
            case m.TrackUnsubscribed(identity=identity, track=info):
                if (found := self._remote(identity)) is not None:
                    subscription = found[1].publications.get(info.sid)
                    if subscription is not None:
                        self._unsubscribed(subscription, found[0], out)
            case m.TrackSubscriptionFailed(identity=identity, track_sid=sid, error=error):
                if (found := self._remote(identity)) is not None:
                    out.append(Emit("track_subscription_failed", (found[0], sid, error)))
            case m.LocalTrackSubscribed(track_sid=sid):
                mine = None if self._me is None else self._me[1].publications.get(sid)
                if isinstance(mine, LocalPublicationRecord):
                    self._local_subscribed(mine, out)
                else:
                    self._early_subscriptions.add(sid)
            case _:
                assert_never(event)

    def _unpublished(self, info: ParticipantInfo, track_sid: str, out: list[Effect]) -> None:
        found = self._remote(info.identity)
        if found is None:
            return
        participant, record = found
        record.info = info
        gone = record.publications.pop(track_sid, None)
        if gone is not None:
            self._unsubscribed(gone, participant, out)  # the official order: unsubscribed first
            out.append(Emit("track_unpublished", (gone.view, participant)))

    def _muted(self, identity: str, track: TrackInfo, muted: bool, out: list[Effect]) -> None:
        found = self._find(identity)
        publication = None if found is None else found[1].publications.get(track.sid)
        if found is None or publication is None:
            return
        publication.info = track  # a remote track reads this record too
        if isinstance(publication, LocalPublicationRecord):
            publication.track_record.info = track
        out.append(Emit("track_muted" if muted else "track_unmuted", (found[0], publication.view)))

    def _subscribed(self, identity: str, track_sid: str, out: list[Effect]) -> None:
        found = self._remote(identity)
        publication = None if found is None else found[1].publications.get(track_sid)
        if found is None or publication is None or publication.track is not None:
            return
        participant, record = found
        kind = (
            RemoteVideoTrack
            if track_kind(publication.info.type) == TrackKind.KIND_VIDEO
            else RemoteAudioTrack
        )
        track = kind(publication)
        publication.track, publication.subscribed = track, True
        out.append(Emit("track_subscribed", (track, publication.view, participant)))
        waiting, record.waiters = record.waiters, []
        for waiter in waiting:
            if waiter.wants(publication):
                out.append(Wake(waiter, track))
            else:
                record.waiters.append(waiter)

    def _unsubscribed(
        self, publication: PublicationRecord, participant: RemoteParticipant, out: list[Effect]
    ) -> None:
        track = publication.track
        if track is None:
            return
        publication.track, publication.subscribed = None, False
        out.append(Emit("track_unsubscribed", (track, publication.view, participant)))

    def _local_subscribed(self, publication: LocalPublicationRecord, out: list[Effect]) -> None:
        if not publication.first_subscription.done():
            publication.first_subscription.set_result(None)
        out.append(Emit("local_track_subscribed", (publication.track,)))

    # -- what the local participant did ---------------------------------------------------------------------

    def _local_change(self, change: LocalChange, out: list[Effect]) -> None:
        match change:
            case LocalTrackPublished(publisher=publisher, info=info, track=track, record=record, port=port):
                record.info = dataclasses.replace(info, muted=record.info.muted)
                record.port, record.published = port, True
                publication = LocalPublicationRecord(
                    record.info,
                    port,
                    track=track,
                    track_record=record,
                    first_subscription=self._loop.create_future(),
                )
                publication.view = LocalTrackPublication(publication)
                publisher.publications[info.sid] = publication
                out.append(Emit("local_track_published", (publication.view, track)))
                if info.sid in self._early_subscriptions:  # subscribed before publish_track returned
                    self._early_subscriptions.discard(info.sid)
                    self._local_subscribed(publication, out)
            case LocalTrackUnpublished(publisher=publisher, track_sid=sid):
                gone = publisher.publications.pop(sid, None)
                if isinstance(gone, LocalPublicationRecord):
                    gone.track_record.published = False  # its own again: mute stays local, publishable
                    out.append(Emit("local_track_unpublished", (gone.view,)))
            case _:
                assert_never(change)

    # -- data -----------------------------------------------------------------------------------------------

    def _data_event(
        self, event: m.DataPacketReceived | m.SipDtmfReceived | m.TranscriptionReceived, out: list[Effect]
    ) -> None:
        match event:
            case m.DataPacketReceived(identity=identity, payload=payload, reliable=reliable, topic=topic):
                kind = DataPacketKind.KIND_RELIABLE if reliable else DataPacketKind.KIND_LOSSY
                # "" for no topic, never None: livekit.rtc passes the FFI proto's ``user.topic`` (a proto3
                # string reads "" when unset; livekit/rtc/room.py ``data_packet_received``).
                packet = DataPacket(payload, kind, self._remote_views.get(identity), topic or "")
                out.append(Emit("data_received", (packet,)))
            case m.SipDtmfReceived(identity=identity, code=code, digit=digit):
                out.append(
                    Emit("sip_dtmf_received", (SipDTMF(code, digit, self._remote_views.get(identity)),))
                )
            case m.TranscriptionReceived(identity=identity, track_sid=track_sid, segments=segments):
                found = self._find(identity)
                participant = None if found is None else found[0]
                publication = None if found is None else found[1].publications.get(track_sid)
                view: TrackPublication | None = None if publication is None else publication.view
                converted = [
                    TranscriptionSegment(s.id, s.text, s.start_time, s.end_time, s.language, s.final)
                    for s in segments
                ]
                out.append(Emit("transcription_received", (converted, participant, view)))
            case _:
                assert_never(event)
