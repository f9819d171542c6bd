"""ParticipantActor (one per remote participant, plus the local one) and TrackActor (one per publication).

A ParticipantActor owns one participant's state — identity, name, metadata, attributes, kind, permissions
and publications — as the latest complete ``ParticipantInfo``. The RoomActor (its supervisor) hands it each
newer ``ParticipantInfo`` and each data packet that participant sent; the actor works out what changed and
reports it to the :class:`~greenroom.actors.messages.EventSink` (the facade). Every event about the
participant itself comes from its one actor, so the user sees them in the order they happened; events
about one publication (mute, subscription) come from that publication's TrackActor.

A ParticipantActor **supervises its TrackActors** with the project's one supervision mechanism (a
:class:`~greenroom.actors.supervision.ChildTable`: transient children, :data:`TRACK_INTENSITY`, back-off,
stable addresses with a stash). A crashed TrackActor is restarted from the participant's own ``TrackInfo``;
more crashes than the intensity allows make the ParticipantActor itself fail, so its supervisor (the
RoomActor) decides next — OTP's escalation.

A TrackActor holds one publication's state (sid, name, kind, source, muted, subscribed) and controls the
publication's media in the room's :class:`~greenroom.actors.media.MediaRouter`: it gates (mutes) a local
publication and detaches a remote one on unsubscribe and unpublish, which ends its streams. **The media
outlives the actor**: stopping or crashing a TrackActor (or its ParticipantActor) never touches the media,
and a restarted TrackActor finds it still attached, so open ``AudioStream`` s keep playing and the
publication stays subscribed with no event. Only a decision — ``TrackRemoved``, ``MediaDetached``, the
room closing — detaches it. Media frames never flow through either actor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.core import AsyncioActor
from greenroom.actors.e2ee_messages import NO_KEYS, CryptorControl, CryptorReport, Keys, KeysChanged
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ApplyParticipantInfo,
    ApplyTrackInfo,
    Crash,
    DataPacketReceived,
    DeliverPacket,
    EventSink,
    GetState,
    GetTree,
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
    RpcPacketReceived,
    SetLocalTrackMuted,
    SipDtmfReceived,
    Stall,
    StreamPacketReceived,
    TrackMuted,
    TrackPublished,
    TrackRemoved,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackUnpublished,
    TrackUnsubscribed,
    TranscriptionReceived,
    TreeState,
)
from greenroom.actors.supervision import (
    SUPERVISION_MESSAGES,
    Backoff,
    ChildSpec,
    ChildTable,
    Intensity,
    RestartType,
)
from greenroom.actors.track_crypto import EncryptionStatus, TrackCryptor
from greenroom.codecs import packets
from greenroom.codecs.models import ParticipantInfo, ParticipantState, TrackInfo, frozen_map

__all__ = [
    "TRACK_BACKOFF",
    "TRACK_INTENSITY",
    "ParticipantActor",
    "TrackActor",
    "TrackState",
    "changed_attributes",
    "stall",
]

_log = logging.getLogger("greenroom.actors.participant")

#: The crash-loop brake for one participant's TrackActors; past it the ParticipantActor fails (escalates).
TRACK_INTENSITY = Intensity(max_restarts=5, period=10.0)
#: The first restart is immediate, then 10 ms doubling up to 0.5 s (± 20 %), counting the last second's.
TRACK_BACKOFF = Backoff(min_delay=0.01, max_delay=0.5, random_factor=0.2, reset_after=1.0, immediate=1)


def changed_attributes(old: ParticipantInfo, new: ParticipantInfo) -> dict[str, str]:
    """The attributes that differ between two infos: new values, and ``""`` for removed keys."""
    before, after = dict(old.attributes), dict(new.attributes)
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: "" for k in before if k not in after})
    return changed


async def stall(message: Stall) -> None:
    """Hold the calling handler until the stall is released (the fault kit's stuck actor)."""
    message.entered.ok(None)
    await message.release.wait()


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
    ApplyTrackInfo
    | KeysChanged
    | CryptorControl
    | CryptorReport
    | TrackRemoved
    | MediaAttached
    | MediaDetached
    | SetLocalTrackMuted
    | GetState
    | Crash
    | Stall
)
_TRACK_MESSAGES = (
    ApplyTrackInfo,
    KeysChanged,
    CryptorControl,
    CryptorReport,
    TrackRemoved,
    MediaAttached,
    MediaDetached,
    SetLocalTrackMuted,
    GetState,
    Crash,
    Stall,
)


class TrackActor(AsyncioActor):
    """One publication's state and the control of its media path; reports mute and subscription changes.

    Args:
        identity: the publishing participant's identity (for events and logs).
        info: the publication's current ``TrackInfo``.
        sink: where events go.
        media: the room's media path (``None``: state only, as in unit tests).
        local: a publication of the local participant (mute gates its sender).
    """

    def __init__(
        self,
        identity: str,
        info: TrackInfo,
        sink: EventSink,
        *,
        media: MediaRouter | None = None,
        local: bool = False,
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__()
        self._identity = identity
        self._info = info
        self._sink = sink
        self._media = media
        self._local = local
        self._crypto = TrackCryptor(identity, info.sid, local=local, keys=keys, media=media, sink=sink)
        # A restarted incarnation finds the media where its predecessor left it (it outlives the actor).
        self._subscribed = media is not None and media.is_attached(info.sid)

    def __str__(self) -> str:
        return f"TrackActor({self._info.sid} of {self._identity})"

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`TrackMessage`."""
        if not isinstance(message, _TRACK_MESSAGES):
            _log.warning("track %s of %s: unexpected message %r", self._info.sid, self._identity, message)
            return None
        return await self._dispatch(message)

    async def _dispatch(self, message: TrackMessage) -> Any:
        match message:
            case ApplyTrackInfo(info=info):
                self._apply(info)
            case KeysChanged() | CryptorControl() | CryptorReport():
                self._crypto.on(message)
            case TrackRemoved(silent=silent):
                await self._detach(emit=not silent)
                self.stop()
            case MediaAttached():
                self._crypto.install()  # the receiving cryptor exists now
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
            case Stall():
                await stall(message)
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
    | KeysChanged
    | CryptorControl
    | CryptorReport
    | DeliverPacket
    | ParticipantLeft
    | LocalTrackAdded
    | MediaAttached
    | MediaDetached
    | SetLocalTrackMuted
    | GetState
    | GetTree
    | Crash
    | Stall
)
_PARTICIPANT_MESSAGES = (
    ApplyParticipantInfo,
    KeysChanged,
    CryptorControl,
    CryptorReport,
    DeliverPacket,
    ParticipantLeft,
    LocalTrackAdded,
    MediaAttached,
    MediaDetached,
    SetLocalTrackMuted,
    GetState,
    GetTree,
    Crash,
    Stall,
)


class ParticipantActor(AsyncioActor):
    """One participant's state, the supervisor of its publications' TrackActors.

    Args:
        info: the participant's latest complete ``ParticipantInfo``.
        sink: where events go.
        local: this is the local participant.
        announce: report ``participant_connected`` (and its tracks) on start — False for those already in
            the room at join, for the local participant, and for a restarted (restored) incarnation.
        media: the room's media path, handed to the TrackActors.
        local_tracks: the local participant's published tracks (its info from the server may lag them).
    """

    def __init__(
        self,
        info: ParticipantInfo,
        sink: EventSink,
        *,
        local: bool = False,
        announce: bool = True,
        media: MediaRouter | None = None,
        local_tracks: tuple[TrackInfo, ...] = (),
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__()
        self._media = media
        self._keys = keys
        self._status = EncryptionStatus(info.identity, sink)
        self._info = info
        self._sink = sink
        self._local = local
        self._announce = announce
        self._track_infos: dict[str, TrackInfo] = {t.sid: t for t in (*info.tracks, *local_tracks)}
        self._tracks = ChildTable(
            self.actor_ref,
            f"tracks of {info.identity}",
            intensity=TRACK_INTENSITY,
            backoff=TRACK_BACKOFF,
            ask_timeout=self.ask_timeout,
        )
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
        for track in self._track_infos.values():
            self._start_track(track)
            if self._announce and not self._local:
                self._sink.emit(TrackPublished(self._info, track))
        if not self._local:
            self._status.update(list(self._track_infos.values()), enabled=self._keys.enabled)

    async def on_stop(self) -> None:
        """Stop the TrackActors, newest first (their media is not touched: see the module docstring)."""
        await self._tracks.shutdown()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A crashed participant must not leave orphaned TrackActors behind (the media stays)."""
        await self._tracks.shutdown()

    # -- dispatch -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`ParticipantMessage` or a TrackActor's exit."""
        if isinstance(message, SUPERVISION_MESSAGES):
            if self._tracks.owns(message):
                escalation = await self._tracks.on_message(message)
                if escalation is not None:
                    raise escalation.error  # our supervisor (the RoomActor) decides next
            return None
        if not isinstance(message, _PARTICIPANT_MESSAGES):
            self._log.warning("unexpected message %r", message)
            return None
        return await self._dispatch(message)

    async def _dispatch(self, message: ParticipantMessage) -> Any:
        match message:
            case ApplyParticipantInfo(info=info):
                self._apply(info)
            case KeysChanged() | CryptorControl() | CryptorReport():
                self._on_crypto(message)
            case DeliverPacket(encrypted=encrypted):
                self._status.update(
                    list(self._track_infos.values()), enabled=self._keys.enabled, data=encrypted
                )
                self._deliver(message)
            case ParticipantLeft(info=info, reason=reason):
                self._left(info, reason)
            case LocalTrackAdded(info=track):
                if track.sid not in self._tracks:
                    self._track_infos[track.sid] = track
                    self._start_track(track)
            case MediaAttached(track_sid=sid) | MediaDetached(track_sid=sid) | SetLocalTrackMuted(sid=sid):
                self._to_track(sid, message)
            case GetState():
                return self._info
            case GetTree():
                return self._tree()
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case Stall():
                await stall(message)
            case _:
                assert_never(message)
        return None

    def _on_crypto(self, message: KeysChanged | CryptorControl | CryptorReport) -> None:
        """Keys for every TrackActor of the participant; a cryptor's control or report for its one."""
        if isinstance(message, KeysChanged):
            self._keys = message.keys
            for sid in self._track_infos:
                self._tell_track(sid, message)
        else:
            self._tell_track(message.track_sid, message)

    def _tree(self) -> TreeState:
        children = tuple((c.id, c.id, c.ref) for c in self._tracks.which_children())
        return TreeState(children, tuple(self._tracks.restart_events()))

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
            self._track_infos[sid] = track
            if sid in before or sid in self._tracks:  # a local track's actor starts at track_published
                self._tell_track(sid, ApplyTrackInfo(track))
                continue
            self._start_track(track)
            if not self._local:
                self._sink.emit(TrackPublished(info, track))
        for sid, track in before.items():
            if sid not in after:
                self._remove_track(sid, silent=False)
                if not self._local:
                    self._sink.emit(TrackUnpublished(info, track))
        if not self._local:
            self._status.update(list(after.values()), enabled=self._keys.enabled)

    def _left(self, info: ParticipantInfo, reason: Any) -> None:
        self._info = info
        for sid in list(self._track_infos):
            self._remove_track(sid, silent=True)
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
            case packets.RpcRequest() | packets.RpcAck() | packets.RpcResponse():
                self._sink.emit(RpcPacketReceived(identity, value))
            case packets.StreamHeader() | packets.StreamChunk() | packets.StreamTrailer():
                # a header may name the participant an agent publishes for (the SFU keeps that identity)
                self._sink.emit(StreamPacketReceived(message.packet.participant_identity or identity, value))
            case _:
                self._log.debug("ignored a %s packet", type(value).__name__)

    # -- TrackActors ----------------------------------------------------------------------------------------

    def _start_track(self, track: TrackInfo) -> None:
        sid, identity, sink, media, local = (
            track.sid,
            self._info.identity,
            self._sink,
            self._media,
            self._local,
        )

        def start() -> pykka.ActorRef[Any]:
            # A restart comes from this participant's own, latest TrackInfo of the publication (and keys).
            info = self._track_infos.get(sid, track)
            return TrackActor.start(identity, info, sink, media=media, local=local, keys=self._keys)

        self._tracks.start_child_now(
            ChildSpec(sid, start, restart=RestartType.TRANSIENT, shutdown_timeout=1.0)
        )

    def _remove_track(self, sid: str, *, silent: bool) -> None:
        """The publication is gone: its TrackActor detaches the media and stops (not restarted)."""
        self._track_infos.pop(sid, None)
        self._tell_track(sid, TrackRemoved(silent=silent))

    def _tell_track(self, sid: str, message: Any) -> bool:
        """Tell a TrackActor through its stable address (stashed while it restarts); False: no such track."""
        handle = self._tracks.handle(sid)
        if handle is None:
            return False
        try:
            handle.tell(message)
        except pykka.ActorDeadError:
            return False
        except Exception as exc:  # a full stash: counted by the stable reference, and said here
            self._log.error("track %s: %r not delivered: %s", sid, message, exc)
        return True

    def _to_track(self, sid: str, message: MediaAttached | MediaDetached | SetLocalTrackMuted) -> None:
        if not self._tell_track(sid, message) and isinstance(message, MediaAttached):
            self._sink.emit(TrackSubscriptionFailed(self._info.identity, sid, "unknown publication"))
