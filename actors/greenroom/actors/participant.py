"""ParticipantActor (one per remote identity, plus the local one) and TrackActor (one per publication).

A ParticipantActor owns one participant's state — identity, name, metadata, attributes, kind, permissions
and publications — as the latest complete ``ParticipantInfo``. The RoomActor (its supervisor) hands it each
newer ``ParticipantInfo`` and each data packet that participant sent; the actor works out what changed and
reports it to the :class:`~greenroom.actors.messages.EventSink` (the facade). Because every event about one
participant comes from its one actor, the user sees them in the order they happened.

The local participant's actor also shapes what the user publishes: ``publish_data``, ``publish_dtmf``,
``publish_transcription`` become ``DataPacket`` values told to the RoomActor (``SendPacket``), and
``set_metadata``/``set_name``/``set_attributes`` become ``SetLocalInfo``.

A TrackActor holds one publication's state (sid, name, kind, source, muted, subscribed), reports mute and
subscription changes, and controls the publication's media path in the room's
:class:`~greenroom.actors.media.MediaRouter`: it gates (mutes) a local publication and detaches a remote one
on unsubscribe, unpublish and stop, which ends its streams. Media frames never flow through either actor.

Crash containment: the RoomActor keeps the latest ``ParticipantInfo`` of everyone, so a crashed
ParticipantActor is restarted *restored* — from that state, without re-announcing anything — and messages
queued for the dead incarnation are replayed to the new one. A ParticipantActor does the same for its
TrackActors from its own ``TrackInfo`` list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.core import AsyncioActor, ChildFailed, ChildStopped, link, stop_actor
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ApplyParticipantInfo,
    ApplyTrackInfo,
    Crash,
    DataPacketReceived,
    DeliverPacket,
    EventSink,
    GetState,
    LocalTrackAdded,
    MediaAttached,
    MediaDetached,
    ParticipantActive,
    ParticipantAttributesChanged,
    ParticipantConnected,
    ParticipantDisconnected,
    ParticipantLeft,
    ParticipantMetadataChanged,
    ParticipantNameChanged,
    PublishData,
    PublishDtmf,
    PublishTranscription,
    SendPacket,
    SetLocalInfo,
    SetLocalTrackMuted,
    SipDtmfReceived,
    TrackMuted,
    TrackPublished,
    TrackRemoved,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackUnpublished,
    TrackUnsubscribed,
    TranscriptionReceived,
    UpdateLocalInfo,
)
from greenroom.codecs import packets
from greenroom.codecs.errors import LocalProtocolError
from greenroom.codecs.models import ParticipantInfo, ParticipantState, TrackInfo, frozen_map

__all__ = ["ParticipantActor", "TrackActor", "TrackState", "changed_attributes"]

_log = logging.getLogger("greenroom.actors.participant")


def changed_attributes(old: ParticipantInfo, new: ParticipantInfo) -> dict[str, str]:
    """The attributes that differ between two infos: new values, and ``""`` for removed keys."""
    before, after = dict(old.attributes), dict(new.attributes)
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: "" for k in before if k not in after})
    return changed


# --- TrackActor ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackState:
    """What a TrackActor holds (answered to :class:`~greenroom.actors.messages.GetState`)."""

    sid: str
    name: str
    kind: int
    source: int
    muted: bool
    subscribed: bool


TrackMessage: TypeAlias = (
    ApplyTrackInfo | TrackRemoved | MediaAttached | MediaDetached | SetLocalTrackMuted | GetState | Crash
)
_TRACK_MESSAGES = (
    ApplyTrackInfo,
    TrackRemoved,
    MediaAttached,
    MediaDetached,
    SetLocalTrackMuted,
    GetState,
    Crash,
)


class TrackActor(AsyncioActor):
    """One publication's state and the control of its media path; reports mute and subscription changes.

    Args:
        identity: the publishing participant's identity (for events and logs).
        info: the publication's current ``TrackInfo``.
        sink: where events go.
        subscribed: whether the local participant receives it (a restarted actor re-reads the router).
        media: the room's media path (``None``: state only, as in unit tests).
        local: a publication of the local participant (mute gates its sender).
    """

    def __init__(
        self,
        identity: str,
        info: TrackInfo,
        sink: EventSink,
        subscribed: bool = False,
        *,
        media: MediaRouter | None = None,
        local: bool = False,
    ) -> None:
        super().__init__()
        self._identity = identity
        self._info = info
        self._sink = sink
        self._media = media
        self._local = local
        self._subscribed = subscribed or (media is not None and media.is_attached(info.sid))

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`TrackMessage`."""
        if not isinstance(message, _TRACK_MESSAGES):
            _log.warning("track %s of %s: unexpected message %r", self._info.sid, self._identity, message)
            return None
        return await self._dispatch(message)

    async def on_stop(self) -> None:
        """A publication that goes away (unpublished, participant left, room closed) ends its streams."""
        await self._detach(emit=False)

    async def _dispatch(self, message: TrackMessage) -> Any:
        match message:
            case ApplyTrackInfo(info=info):
                self._apply(info)
            case TrackRemoved():
                await self._detach(emit=True)
                self.stop()
            case MediaAttached():
                self._attached()
            case MediaDetached():
                await self._detach(emit=True)
            case SetLocalTrackMuted(muted=muted):
                if self._media is not None:
                    self._media.set_local_muted(self._info.sid, muted)
            case GetState():
                return self.state
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case _:
                assert_never(message)
        return None

    @property
    def state(self) -> TrackState:
        """A snapshot of the publication's state."""
        i = self._info
        return TrackState(i.sid, i.name, int(i.type), int(i.source), i.muted, self._subscribed)

    def _apply(self, info: TrackInfo) -> None:
        old, self._info = self._info, info
        if old.muted != info.muted:
            if self._local and self._media is not None:
                self._media.set_local_muted(info.sid, info.muted)
            self._sink.emit(TrackMuted(self._identity, info, info.muted))

    def _attached(self) -> None:
        """The subscriber PC delivers this publication's media (server offer, ``PA_sid|TR_sid``)."""
        if not self._subscribed:
            self._subscribed = True
            self._sink.emit(TrackSubscribed(self._identity, self._info))

    async def _detach(self, *, emit: bool) -> None:
        """Unsubscribe locally: stop reading the media and end every stream of it."""
        if self._media is not None and not self._local:
            await self._media.detach_remote(self._info.sid)
        if self._subscribed:
            self._subscribed = False
            if emit:
                self._sink.emit(TrackUnsubscribed(self._identity, self._info))


# --- ParticipantActor ------------------------------------------------------------------------------------

ParticipantMessage: TypeAlias = (
    ApplyParticipantInfo
    | DeliverPacket
    | ParticipantLeft
    | LocalTrackAdded
    | MediaAttached
    | MediaDetached
    | SetLocalTrackMuted
    | PublishData
    | PublishDtmf
    | PublishTranscription
    | UpdateLocalInfo
    | ChildFailed
    | ChildStopped
    | GetState
    | Crash
)
_PARTICIPANT_MESSAGES = (
    ApplyParticipantInfo,
    DeliverPacket,
    ParticipantLeft,
    LocalTrackAdded,
    MediaAttached,
    MediaDetached,
    SetLocalTrackMuted,
    PublishData,
    PublishDtmf,
    PublishTranscription,
    UpdateLocalInfo,
    ChildFailed,
    ChildStopped,
    GetState,
    Crash,
)


class ParticipantActor(AsyncioActor):
    """One participant's state, its publications' TrackActors, and (for the local one) what it publishes.

    Args:
        info: the participant's latest complete ``ParticipantInfo``.
        sink: where events go.
        room: the RoomActor (local participant: receives ``SendPacket``/``SetLocalInfo``).
        local: this is the local participant.
        announce: report ``participant_connected`` (and its tracks) on start — False for those already in
            the room at join, for the local participant, and for a restarted (restored) incarnation.
        media: the room's media path, handed to the TrackActors.
    """

    def __init__(
        self,
        info: ParticipantInfo,
        sink: EventSink,
        room: pykka.ActorRef[Any],
        *,
        local: bool = False,
        announce: bool = True,
        media: MediaRouter | None = None,
    ) -> None:
        super().__init__()
        self._media = media
        self._info = info
        self._sink = sink
        self._room = room
        self._local = local
        self._announce = announce
        self._tracks: dict[str, pykka.ActorRef[Any]] = {}
        self._log = logging.LoggerAdapter(_log, {"participant": info.identity})

    def __str__(self) -> str:
        return f"ParticipantActor({self._info.identity})"

    # -- lifecycle ------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Announce the participant (if asked) and start one TrackActor per publication."""
        if self._announce:
            self._sink.emit(ParticipantConnected(self._info))
            if self._info.state is ParticipantState.ACTIVE:
                self._sink.emit(ParticipantActive(self._info))
        for track in self._info.tracks:
            self._start_track(track)
            if self._announce and not self._local:
                self._sink.emit(TrackPublished(self._info, track))

    async def on_stop(self) -> None:
        """Stop the TrackActors (ordered shutdown)."""
        await self._stop_tracks()

    async def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A crashed participant must not leave orphaned TrackActors behind."""
        await self._stop_tracks()

    async def _stop_tracks(self) -> None:
        tracks, self._tracks = self._tracks, {}
        for ref in tracks.values():
            await stop_actor(ref, timeout=1.0)

    # -- dispatch -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`ParticipantMessage`."""
        if not isinstance(message, _PARTICIPANT_MESSAGES):
            self._log.warning("unexpected message %r", message)
            return None
        return await self._dispatch(message)

    async def _dispatch(self, message: ParticipantMessage) -> Any:
        match message:
            case ApplyParticipantInfo(info=info):
                self._apply(info)
            case DeliverPacket():
                self._deliver(message)
            case ParticipantLeft(info=info, reason=reason):
                self._left(info, reason)
            case LocalTrackAdded(info=track):
                if track.sid not in self._tracks:
                    self._start_track(track)
            case MediaAttached(track_sid=sid) | MediaDetached(track_sid=sid) | SetLocalTrackMuted(sid=sid):
                self._to_track(sid, message)
            case PublishData() | PublishDtmf() | PublishTranscription():
                self._publish(message)
            case UpdateLocalInfo():
                self._update_local(message)
            case ChildFailed() | ChildStopped():
                self._track_ended(message)
            case GetState():
                return self._info
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case _:
                assert_never(message)
        return None

    # -- participant updates (ParticipantUpdate / JoinResponse, forwarded by the RoomActor) ----------------

    def _apply(self, info: ParticipantInfo) -> None:
        old, self._info = self._info, info
        emit = self._sink.emit
        if old.name != info.name:
            emit(ParticipantNameChanged(info, old.name, info.name))
        if old.metadata != info.metadata:
            emit(ParticipantMetadataChanged(info, old.metadata, info.metadata))
        changed = changed_attributes(old, info)
        if changed:
            emit(ParticipantAttributesChanged(info, frozen_map(changed)))
        if (
            old.state is not ParticipantState.ACTIVE
            and info.state is ParticipantState.ACTIVE
            and not self._local
        ):
            emit(ParticipantActive(info))
        self._apply_tracks(old, info)

    def _apply_tracks(self, old: ParticipantInfo, info: ParticipantInfo) -> None:
        before = {t.sid: t for t in old.tracks}
        after = {t.sid: t for t in info.tracks}
        for sid, track in after.items():
            if sid in before or sid in self._tracks:  # a local track's actor starts at track_published
                self._tell_track(track)
                continue
            self._start_track(track)
            if not self._local:
                self._sink.emit(TrackPublished(info, track))
        for sid, track in before.items():
            if sid not in after:
                ref = self._tracks.pop(sid, None)
                if ref is not None:
                    ref.tell(TrackRemoved())
                if not self._local:
                    self._sink.emit(TrackUnpublished(info, track))

    def _left(self, info: ParticipantInfo, reason: Any) -> None:
        self._info = info
        if not self._local:
            self._sink.emit(ParticipantDisconnected(info, reason))
        self.stop()

    # -- incoming data (DataPacket from this participant, routed by the RoomActor) --------------------------

    def _deliver(self, message: DeliverPacket) -> None:
        value = message.packet.value
        identity = self._info.identity
        match value:
            case packets.UserPacket(payload=payload, topic=topic):
                self._sink.emit(DataPacketReceived(identity, payload, message.reliable, topic))
            case packets.SipDtmf(code=code, digit=digit):
                self._sink.emit(SipDtmfReceived(identity, code, digit))
            case packets.Transcription():
                who = value.participant_identity or identity
                self._sink.emit(TranscriptionReceived(who, value.track_id, value.segments))
            case _:
                self._log.debug("ignored a %s packet", type(value).__name__)

    # -- local participant: what the user publishes ---------------------------------------------------------

    def _publish(self, message: PublishData | PublishDtmf | PublishTranscription) -> None:
        if not self._local:
            message.reply.fail(RuntimeError("only the local participant publishes"))
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
        packet, reliable = self._packet_for(message)
        self._room.tell(SendPacket(packet, reliable, message.reply))

    def _packet_for(
        self, message: PublishData | PublishDtmf | PublishTranscription
    ) -> tuple[packets.DataPacket, bool]:
        identity = self._info.identity
        value: packets.PacketValue
        match message:
            case PublishData():
                value = packets.UserPacket(payload=message.payload, topic=message.topic or None)
                destinations = message.destination_identities
                reliable = message.reliable
            case PublishDtmf(code=code, digit=digit):
                value, destinations, reliable = packets.SipDtmf(code=code, digit=digit), (), True
            case PublishTranscription(transcription=transcription):
                value, destinations, reliable = transcription, (), True
            case _:
                assert_never(message)
        kind = packets.Kind.RELIABLE if reliable else packets.Kind.LOSSY
        packet = packets.DataPacket(
            value=value,
            participant_identity=identity,
            participant_sid=self._info.sid,
            destination_identities=destinations,
            kind=kind,
        )
        return packet, reliable

    def _update_local(self, message: UpdateLocalInfo) -> None:
        if not self._local:
            message.reply.fail(RuntimeError("only the local participant updates its own info"))
            return
        self._room.tell(
            SetLocalInfo(
                message.reply,
                metadata=message.metadata or "",
                name=message.name or "",
                attributes=message.attributes or (),
            )
        )

    # -- TrackActors ----------------------------------------------------------------------------------------

    def _start_track(self, track: TrackInfo) -> None:
        ref = TrackActor.start(self._info.identity, track, self._sink, media=self._media, local=self._local)
        link(ref, self.actor_ref, track.sid)
        self._tracks[track.sid] = ref

    def _to_track(self, sid: str, message: MediaAttached | MediaDetached | SetLocalTrackMuted) -> None:
        ref = self._tracks.get(sid)
        if ref is not None:
            try:
                ref.tell(message)
                return
            except pykka.ActorDeadError:
                pass
        if isinstance(message, MediaAttached):
            self._sink.emit(TrackSubscriptionFailed(self._info.identity, sid, "unknown publication"))

    def _tell_track(self, track: TrackInfo) -> None:
        ref = self._tracks.get(track.sid)
        try:
            if ref is None:
                raise pykka.ActorDeadError(track.sid)
            ref.tell(ApplyTrackInfo(track))
        except pykka.ActorDeadError:
            self._start_track(track)  # restarted from our state: it starts with the latest info

    def _track_ended(self, message: ChildFailed | ChildStopped) -> None:
        if self._tracks.get(message.child_id) is not message.ref:
            return  # an earlier incarnation, or a publication already removed
        del self._tracks[message.child_id]
        if isinstance(message, ChildFailed):
            track = next((t for t in self._info.tracks if t.sid == message.child_id), None)
            if track is not None:
                self._log.warning("track %s crashed (%s); restarting it", track.sid, message.exception)
                self._start_track(track)
