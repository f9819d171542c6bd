"""The RoomActor's media handlers: publish, unpublish, mute, subscribe, and received tracks.

A mixin of :class:`~greenroom.actors.room.RoomActor` (same actor, same state; split out to keep each module
readable). Publish: the facade registers a gate in the room's :class:`~greenroom.actors.media.MediaRouter`
(its id is the ``cid``) → ``AddTrackRequest`` → on ``track_published`` the local ParticipantActor starts the
publication's TrackActor, a ``sendonly`` transceiver is added and the publisher renegotiates. Unpublish has
no signal message: the transceiver goes ``inactive`` and the publisher renegotiates (signal-protocol §6.8).
Subscribe: the subscriber PC's ``track`` event is mapped by its m-line's ``a=msid`` (``PA_sid|TR_sid``),
attached in the router, and the publication's TrackActor is told (``track_subscribed``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, assert_never

from greenroom.actors.connection import ConnState, OnLoss
from greenroom.actors.link import Link, NotConnectedError
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ActiveSpeakersChanged,
    ConnectionQualityChanged,
    EventSink,
    LocalTrackAdded,
    LocalTrackRepublished,
    LocalTrackSubscribed,
    MediaAttached,
    MediaDetached,
    PublishTrack,
    SetLocalTrackMuted,
    SetSubscribed,
    TrackSubscriptionFailed,
    UnpublishTrack,
)
from greenroom.actors.roster import LOCAL, Roster
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import EncryptionType, ParticipantTracks, TrackInfo
from greenroom.codecs.signalling import (
    AddTrackRequest,
    ConnectionQualityUpdate,
    MuteTrack,
    SpeakersChanged,
    SubscriptionResponse,
    UpdateSubscription,
)
from greenroom.codecs.signalling import TrackPublished as TrackPublishedResponse
from greenroom.codecs.signalling import TrackSubscribed as TrackSubscribedResponse
from greenroom.runtime.media_path import media_sections, unpack_stream_id
from greenroom.runtime.peer import PeerRole, PeerTransport, TrackReceived

__all__ = ["TRACK_PUBLISH_TIMEOUT", "MediaHandlers", "RequestFailedError"]

_log = logging.getLogger("greenroom.actors.room")

#: Seconds ``publish_track`` waits for ``track_published`` (10 s in both official SDKs).
TRACK_PUBLISH_TIMEOUT = 10.0


class RequestFailedError(GreenroomError):
    """The server refused a request (``request_response`` with a reason other than OK), or never answered."""


class MediaHandlers:
    """Publish/unpublish/mute/subscribe and received tracks (mixed into the RoomActor, whose state it is)."""

    @property
    def _state(self) -> ConnState:
        raise NotImplementedError

    _link: Link | None
    _media: MediaRouter
    _sink: EventSink
    _roster: Roster
    _published: dict[str, PublishTrack]
    _local_tracks: dict[str, TrackInfo]
    _republishing: dict[str, str]

    def _tell_child(self, key: str, message: Any) -> None:
        raise NotImplementedError

    # end-to-end encryption (greenroom.actors.room_e2ee.E2eeHandlers, mixed in after this class)
    _encrypting: Callable[[], bool]
    _install_decryption: Callable[[Any, str, Any, bool], None]
    _route_keyframes: Callable[[Any, Any], None]

    def _in_flight(self, key: object) -> bool:
        raise NotImplementedError

    def _answered(self, key: object) -> Any:
        raise NotImplementedError

    def _ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        raise NotImplementedError

    def _sent(self, key: object, request: Any, delay: float, *, on_loss: OnLoss, why_late: str) -> None:
        raise NotImplementedError

    def _on_publish_track(self, message: PublishTrack) -> None:
        if self._state is not ConnState.CONNECTED or self._link is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        if self._media.local(message.cid) is None or self._in_flight(message.cid):
            message.reply.fail(RequestFailedError("this track is not publishable (already publishing?)"))
            return
        request = AddTrackRequest(  # SignalRequest.add_track; answered by track_published with our cid
            cid=message.cid,
            name=message.name,
            type=message.type,
            source=message.source,
            width=message.width,
            height=message.height,
            stereo=message.stereo,
            disable_dtx=message.disable_dtx,
            disable_red=message.disable_red or self._encrypting(),  # E2EE: no RED, as both SDKs
            stream=message.stream,
            encryption=EncryptionType.GCM if self._encrypting() else EncryptionType.NONE,
        )
        try:
            self._link.post(request)
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        why_late = f"no track_published within {TRACK_PUBLISH_TIMEOUT} s"
        self._sent(message.cid, message, TRACK_PUBLISH_TIMEOUT, on_loss=OnLoss.RETRY, why_late=why_late)

    def _on_track_published(self, cid: str, info: TrackInfo) -> None:
        """``track_published``: the publication's TrackActor, a transceiver, and an offer; ``publish_track``
        returns once the offer went out."""
        message = self._answered(cid)
        gate = self._media.local(cid)
        link_ = self._link
        if not isinstance(message, PublishTrack) or gate is None or link_ is None:
            return
        self._media.bind_local(cid, info.sid)
        self._local_tracks[info.sid] = info
        self._tell_child(LOCAL, LocalTrackAdded(info))
        publisher = self._ensure_publisher(offer=False)
        try:
            publisher.add_track(gate)  # msid track id = gate.id = cid: how the server matches it
            self._route_keyframes(publisher.pc, gate)  # E2EE: our encoder, not the sender's
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        self._published[cid] = message

        def done(error: GreenroomError | None) -> None:
            if error is None:
                message.reply.ok(info)
            else:
                message.reply.fail(error)

        link_.negotiate_publisher(done)
        previous = self._republishing.pop(cid, None)
        if previous is not None:  # a full reconnect published it again: same publication, new sid
            self._sink.emit(LocalTrackRepublished(previous, info))
            if gate.muted:
                with contextlib.suppress(GreenroomError):
                    link_.post(MuteTrack(info.sid, True))  # SignalRequest.mute

    def _on_unpublish_track(self, message: UnpublishTrack) -> None:
        link_ = self._link
        cid = self._media.cid_of(message.sid)
        gate = None if cid is None else self._media.local(cid)
        self._local_tracks.pop(message.sid, None)
        if (
            self._state is ConnState.RECONNECTING
            and cid is not None
            and self._published.pop(cid, None) is not None
        ):
            self._media.drop_local(cid)  # no publisher PC now: it is simply not published again
            message.reply.ok(None)
            return
        if link_ is None or link_.publisher is None or cid is None or gate is None:
            message.reply.fail(RequestFailedError(f"track {message.sid} is not published"))
            return
        link_.publisher.remove_track(gate)  # unpublish = an inactive m-line in the next offer (§6.8)
        self._published.pop(cid, None)
        self._media.drop_local(cid)

        def done(error: GreenroomError | None) -> None:
            if error is None:
                message.reply.ok(None)
            else:
                message.reply.fail(error)

        link_.negotiate_publisher(done)

    def _on_track_control(self, message: SetLocalTrackMuted | SetSubscribed) -> None:
        if self._state is ConnState.RECONNECTING and isinstance(message, SetLocalTrackMuted):
            self._tell_child(LOCAL, message)  # the gate mutes now; the republish tells the server
            return
        if self._state is not ConnState.CONNECTED or self._link is None:
            return
        match message:
            case SetLocalTrackMuted(sid=sid, muted=muted):
                self._tell_child(LOCAL, message)
                with contextlib.suppress(GreenroomError):
                    self._link.post(MuteTrack(sid, muted))  # SignalRequest.mute
            case SetSubscribed(track_sid=sid, subscribe=subscribe):
                owner = self._roster.owner_of(sid)  # a remote participant's key is its sid
                if owner is None:
                    return
                tracks = (ParticipantTracks(owner, (sid,)),)
                with contextlib.suppress(GreenroomError):
                    self._link.post(
                        UpdateSubscription((sid,), subscribe, tracks)
                    )  # SignalRequest.subscription
                if not subscribe:
                    self._tell_child(owner, MediaDetached(sid))
            case _:
                assert_never(message)

    def _on_track_signal(self, msg: TrackPublishedResponse | TrackSubscribedResponse | MuteTrack) -> None:
        match msg:
            case TrackPublishedResponse(cid=cid, track=info):  # SignalResponse.track_published
                self._on_track_published(cid, info)
            case TrackSubscribedResponse(track_sid=sid):  # SignalResponse.track_subscribed
                self._sink.emit(LocalTrackSubscribed(sid))
            case MuteTrack(sid=sid, muted=muted):  # SignalResponse.mute: the server mutes our track
                self._tell_child(LOCAL, SetLocalTrackMuted(sid, muted))
            case _:
                assert_never(msg)

    def _on_room_signal(self, msg: SpeakersChanged | ConnectionQualityUpdate | SubscriptionResponse) -> None:
        match msg:
            case SpeakersChanged(speakers=speakers):  # the full active set (Rust replaces, JS merges)
                active = sorted((s for s in speakers if s.active), key=lambda s: -s.level)
                self._sink.emit(ActiveSpeakersChanged(tuple((s.sid, s.level) for s in active)))
            case ConnectionQualityUpdate(updates=updates):
                for update in updates:
                    self._sink.emit(ConnectionQualityChanged(update.participant_sid, int(update.quality)))
            case SubscriptionResponse(track_sid=sid, err=err):
                identity = self._roster.identity_of(self._roster.owner_of(sid) or "")
                self._sink.emit(TrackSubscriptionFailed(identity, sid, err.name))
            case _:
                assert_never(msg)

    async def _on_track_received(self, message: TrackReceived) -> None:
        """The subscriber PC got a track: map it by its m-line's ``a=msid`` (``PA_sid|TR_sid``), attach it."""
        link_ = self._link
        if message.role is not PeerRole.SUBSCRIBER or link_ is None or link_.subscriber is None:
            return
        section = media_sections(link_.subscriber.remote_description or "").get(message.mid or "")
        ids = None if section is None else unpack_stream_id(section.stream_id, section.track_id)
        track = link_.subscriber.track_for_mid(message.mid or "")
        if ids is None or track is None:
            _log.warning("a received track on mid %s has no LiveKit stream id; ignored", message.mid)
            return
        participant_sid, track_sid = ids
        owner = self._roster.key_of_sid(participant_sid)
        if owner is None:  # the server must announce the participant before the offer (§6.7)
            _log.warning("track %s from unknown participant %s; ignored", track_sid, participant_sid)
            return
        info = self._roster.info(owner)
        encrypted = any(t.sid == track_sid and t.encryption for t in (info.tracks if info else ()))
        try:
            self._install_decryption(link_.subscriber.pc, track_sid, track, encrypted)
        except GreenroomError as exc:  # never decode ciphertext: the track is not attached
            _log.error("track %s cannot be decrypted here: %s", track_sid, exc)
            return
        await self._media.attach_remote(track_sid, message.mid or "", track)
        self._tell_child(owner, MediaAttached(track_sid))

    def _check_subscriptions(self, offer_sdp: str) -> None:
        """After a subscriber offer: an attached track whose m-line stopped sending was unsubscribed."""
        sections = media_sections(offer_sdp)
        for mid, track_sid in self._media.subscribed_mids().items():
            section = sections.get(mid)
            if section is not None and section.sending:
                continue
            owner = self._roster.owner_of(track_sid)
            if owner is not None:
                self._tell_child(owner, MediaDetached(track_sid))

    async def _detach_all_media(self) -> None:
        """The subscriber PC is gone (link lost): its streams end (``track_unsubscribed``)."""
        for sid in self._media.attached():
            await self._media.detach_remote(sid)
            owner = self._roster.owner_of(sid)
            if owner is not None:
                self._tell_child(owner, MediaDetached(sid))
