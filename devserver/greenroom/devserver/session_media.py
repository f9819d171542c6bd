"""One participant's media in the dev server: what it publishes and what it receives.

A mixin of :class:`~greenroom.devserver.participant.ParticipantSession` (same session, same loop, same
state; split out along the seam between signalling and media). Publish: ``add_track`` answers
``track_published`` with a fresh ``TR_`` sid (pending by ``cid``); every remote track is tapped in aiortc's
``track`` event (so nothing is ever decoded); a sending media section of a publisher offer matched to a
pending track becomes a :class:`~greenroom.devserver.forwarding.Publication`; a section that stopped sending
is an unpublish. Subscribe: :meth:`SessionMedia.reconcile` keeps the subscriber PC's forwarded tracks equal to
what the room's rules grant (auto-subscribe, ``UpdateSubscription`` wishes, the publisher's
``SubscriptionPermission``), renegotiating through the session's queue. Statistics: the audio level and
connection quality the server's monitor reads. RoomService calls about one participant's media land here
too (``mute_by_admin``, ``update_by_admin``, ``subscribe``), with the code the signal handlers use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import (
    ConnectionQuality,
    ConnectionQualityInfo,
    DisconnectReason,
    LeaveAction,
    ParticipantInfo,
    ParticipantPermission,
    RequestResponseReason,
    SubscriptionError,
    TrackInfo,
)
from greenroom.codecs.signalling import (
    AddTrackRequest,
    MuteTrack,
    RequestResponse,
    SignalResponseMessage,
    SubscriptionPermission,
    SubscriptionPermissionUpdate,
    SubscriptionResponse,
    TrackPublished,
    TrackSubscribed,
    UpdateSubscription,
)
from greenroom.devserver.forwarding import Publication, Subscription, quality_from_loss
from greenroom.devserver.limits import NORMAL_CLOSE, CloseFrame, Limits, ServerStats
from greenroom.devserver.room import Member, Room, new_sid
from greenroom.devserver.tracks import PendingTrack, match_pending, media_sections
from greenroom.runtime.peer import PeerRole, PeerTransport, TrackReceived
from greenroom.runtime.rtp_forward import RtpTap, receiver_for_track

if TYPE_CHECKING:
    from greenroom.devserver.participant import Hub

__all__ = ["FEATURES_KEPT", "SessionMedia"]

#: At most this many audio / packet-trailer feature numbers are kept from one AddTrackRequest (the enums
#: have 7 and 3 values; a request may repeat or invent numbers).
FEATURES_KEPT = 16


def _features(numbers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(numbers))[:FEATURES_KEPT]


class SessionMedia:
    """Publications, subscriptions and media statistics of one participant (mixed into its session)."""

    room: Room
    member: Member
    _hub: Hub
    _log: logging.LoggerAdapter[logging.Logger]
    _subscriber: PeerTransport
    _publisher: PeerTransport | None
    _sub_ready: bool  # the subscriber PC connected on its first (data-only) offer
    _peer_closes: list[asyncio.Task[None]]
    _limits: Limits
    _stats: ServerStats

    def _init_media(self) -> None:
        self._taps: dict[str, tuple[RtpTap, Any]] = {}  # publisher mid -> (tap, receiver), from ``track``
        #: TR_ sid -> the media of this participant's published tracks.
        self.publications: dict[str, Publication] = {}
        self._subscriptions: dict[str, Subscription] = {}  # TR_ sid -> forwarded on our subscriber PC
        self._refused: set[str] = set()  # TR_ sids we were told we may not subscribe to
        self._pending_tracks: list[PendingTrack] = []
        self._mid_to_track: dict[str, str] = {}  # publisher mid -> TR_ sid (the track registry)
        self._track_templates: dict[str, TrackInfo] = {}  # TR_ sid -> TrackInfo awaiting its m-line

    # What the session provides (participant.py).

    @property
    def _closing(self) -> bool:
        raise NotImplementedError

    def signal(self, message: SignalResponseMessage) -> None:
        raise NotImplementedError

    def end(
        self,
        reason: DisconnectReason,
        *,
        action: LeaveAction = LeaveAction.DISCONNECT,
        close: CloseFrame = NORMAL_CLOSE,
    ) -> None:
        raise NotImplementedError

    def _broadcast(self, info: ParticipantInfo, *, to_self: bool) -> None:
        raise NotImplementedError

    def _renegotiate_soon(self) -> None:
        raise NotImplementedError

    # --- publishing (add_track, the publisher offer's m-lines, mute, unpublish) ---------------------

    def _on_add_track(self, message: AddTrackRequest) -> None:
        """``add_track``: answer ``track_published`` with a fresh ``TR_`` sid.

        Needs ``canPublish``, and the track's source in ``canPublishSources`` when that list is not empty
        (livekit-server: an empty list allows every source). A refusal is a ``request_response`` NOT_ALLOWED
        carrying a copy of the request (its ``cid``), as livekit-server sends it: ``add_track`` has no request
        id, and the copy is how the client knows which publish failed.
        """
        permission = self.member.permission
        sources = permission.can_publish_sources
        if not permission.can_publish or (sources and message.source not in sources):
            why = (
                "does not have permission to publish" if not permission.can_publish else "source not allowed"
            )
            self._refuse_track(message, RequestResponseReason.NOT_ALLOWED, why)
            return
        if len(self._pending_tracks) >= self._limits.pending_tracks:
            # livekit-server rtc/participant.go: cMaxPendingTracks, answered LIMIT_EXCEEDED with the request
            self._stats.tracks_refused += 1
            why = f"too many pending tracks ({len(self._pending_tracks)})"
            self._refuse_track(message, RequestResponseReason.LIMIT_EXCEEDED, why)
            return
        sid = new_sid("TR_")
        self._pending_tracks.append(PendingTrack(message.cid, sid, message.type))
        info = TrackInfo(
            sid=sid,
            type=message.type,
            name=message.name,
            source=message.source,
            muted=message.muted,
            width=message.width,
            height=message.height,
            layers=message.layers,
            stereo=message.stereo,
            disable_red=message.disable_red,
            encryption=message.encryption,
            stream=message.stream,
            # copied as livekit-server does (the official SDK's frame-metadata test reads them back); each a
            # set of enum numbers, so duplicates are dropped and at most FEATURES_KEPT kept
            audio_features=_features(message.audio_features),
            packet_trailer_features=_features(message.packet_trailer_features),
        )
        self._track_templates[sid] = info
        self.signal(TrackPublished(cid=message.cid, track=info))

    def _refuse_track(self, message: AddTrackRequest, reason: RequestResponseReason, why: str) -> None:
        self._log.warning("refused add_track %r (%s): %s", message.cid, message.source.name, why)
        self.signal(RequestResponse(0, reason, why, add_track_cid=message.cid))

    def _sync_publications(self, offer_sdp: str) -> None:
        """Publish tracks whose media section appeared; unpublish those that stopped sending."""
        changed = False
        for section in media_sections(offer_sdp):
            known = self._mid_to_track.get(section.mid)
            if section.sending and known is None:
                pending = match_pending(section, self._pending_tracks)
                if pending is None:
                    continue
                self._pending_tracks.remove(pending)
                self._mid_to_track[section.mid] = pending.sid
                track = replace(self._track_templates.pop(pending.sid), mid=section.mid)
                self._start_publication(section.mid, track)
                # The update goes into every outbox now, the offers carrying the track only after
                # media_changed → reconcile → renegotiate: update before offer (trap 10 of §11.5).
                self._broadcast(self.room.publish_track(self.member, track), to_self=True)
                self._hub.emit("track_published", self.room, participant=self._brief(), track=track)
                changed = True
            elif not section.sending and known is not None:
                # Unpublish has no signal message: the section stopped sending (trap 21 of §11.5).
                del self._mid_to_track[section.mid]
                self._unpublish(known)
                changed = True
        if changed:
            self._hub.media_changed(self.room)

    def _start_publication(self, mid: str, track: TrackInfo) -> None:
        tapped = self._taps.get(mid)
        if tapped is None:
            self._log.warning("no remote track for mid %s (%s): nothing to forward", mid, track.sid)
            return
        tap, receiver = tapped
        self.publications[track.sid] = Publication(
            self.member.sid, track.sid, tap, receiver, muted=track.muted
        )

    def _on_mute(self, message: MuteTrack) -> None:
        """``mute``: flip ``TrackInfo.muted``, broadcast, and pause/resume forwarding."""
        self._set_muted(message.sid, message.muted)

    def _set_muted(self, sid: str, muted: bool) -> None:
        info = self.room.set_track_muted(self.member, sid, muted)
        if info is not None:
            self._broadcast(info, to_self=True)
        publication = self.publications.get(sid)
        if publication is not None:
            publication.set_muted(muted)

    def _on_update_subscription(self, message: UpdateSubscription) -> None:
        """``subscription``: (un)subscribe the listed tracks (Rust fills both lists, one track at a time)."""
        sids = [*message.track_sids, *(sid for pt in message.participant_tracks for sid in pt.track_sids)]
        self.subscribe(sids, message.subscribe)

    def subscribe(self, track_sids: Iterable[str], subscribe: bool) -> None:
        """(Un)subscribe tracks — ``subscription`` from the client or RoomService ``UpdateSubscriptions``.

        A subscription to a sid nobody publishes is answered ``SE_TRACK_NOTFOUND`` and not kept; past
        ``Limits.unknown_sids_answered`` in one request the rest are dropped (counted), so one request cannot
        queue thousands of answers.
        """
        unknown = self.room.set_subscribed(self.member, dict.fromkeys(track_sids), subscribe)
        if subscribe:
            answered = unknown[: self._limits.unknown_sids_answered]
            for sid in answered:
                self.signal(SubscriptionResponse(sid, SubscriptionError.SE_TRACK_NOTFOUND))
            if len(unknown) > len(answered):
                self._stats.unknown_sids_dropped += len(unknown) - len(answered)
                self._log.warning(
                    "subscription to %d unknown track sids: answered %d", len(unknown), len(answered)
                )
        self.reconcile()

    # --- RoomService calls (the owner's rules, shared with the signal handlers above) ---------------

    def mute_by_admin(self, sid: str, muted: bool) -> TrackInfo | None:
        """``MutePublishedTrack``: tell the client to (un)mute its track (``mute`` from the server, as
        livekit-server's ``SetTrackMuted(fromAdmin)``), then apply it as the client's own ``mute`` would."""
        if sid not in self.member.tracks:
            return None
        self.signal(MuteTrack(sid=sid, muted=muted))
        self._set_muted(sid, muted)
        return self.member.tracks[sid]

    def update_by_admin(
        self,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        permission: ParticipantPermission | None = None,
    ) -> ParticipantInfo:
        """``UpdateParticipant``: metadata without the ``canUpdateOwnMetadata`` check; a new permission
        unpublishes the tracks it no longer allows and re-checks every subscription (livekit-server
        ``ParticipantImpl.SetPermission``)."""
        change = self.room.update_metadata(
            self.member, name=name, metadata=metadata, attributes=attributes, by_admin=True
        )
        info = change.info or self.member.info()
        if permission is not None and self.room.set_permission(self.member, permission) is not None:
            info = self._unpublish_refused() or self.member.info()
            self._hub.media_changed(self.room)
        self._broadcast(info, to_self=True)
        return info

    def _unpublish_refused(self) -> ParticipantInfo | None:
        info = None
        for sid in self.room.refused_tracks(self.member):
            self._mid_to_track = {mid: t for mid, t in self._mid_to_track.items() if t != sid}
            info = self._unpublish(sid, broadcast=False) or info
        return info

    def _unpublish(self, sid: str, *, broadcast: bool = True) -> ParticipantInfo | None:
        """Stop forwarding ``sid``, take it out of the room (``track_unpublished``), optionally broadcast."""
        publication = self.publications.pop(sid, None)
        if publication is not None:
            publication.close()
        track = self.member.tracks.get(sid)
        info = self.room.unpublish_track(self.member, sid)
        if info is not None and track is not None:
            self._hub.emit("track_unpublished", self.room, participant=self._brief(), track=track)
            if broadcast:
                self._broadcast(info, to_self=True)
        return info

    def _brief(self) -> ParticipantInfo:
        """Sid and identity: the participant of a track webhook, as livekit-server sends it."""
        return ParticipantInfo(sid=self.member.sid, identity=self.member.identity)

    def _on_subscription_permission(self, message: SubscriptionPermission) -> None:
        """``subscription_permission``: the publisher says who may receive its tracks; all re-check."""
        self.room.set_permissions(self.member, message.all_participants, message.track_permissions)
        self._hub.media_changed(self.room)

    # --- subscriptions (the subscriber PC's forwarded tracks) --------------------------------------

    def reconcile(self) -> None:
        """Make the forwarded tracks on our subscriber PC what the room grants; renegotiate on a change.

        Synchronous up to the offer: transceivers are added/deactivated here, and any ``ParticipantUpdate``
        queued before this call precedes the offer, which :meth:`renegotiate` queues later.

        Nothing happens before the subscriber PC connected on its first (data-channel-only) offer:

        * with aiortc's max-bundle policy every m-line rides the transport of whoever was created first
          (the data channels), and an initial offer whose first m-line is audio would make aiortc stop that
          shared transport when applying the answer (the bundle trap in ``forwarding.py``);
        * aiortc starts a sender only if its DTLS transport is already ``connected`` when an answer is
          applied (``RTCPeerConnection.__connect``, ``aiortc/rtcpeerconnection.py`` lines 1072-1093); an
          answer applied while DTLS is still ``connecting`` leaves that sender silent for good.
        """
        if self._closing or not self._sub_ready:
            return
        granted, refused = self.room.subscriptions(self.member)
        wanted: dict[str, Publication] = {}
        for publisher, track in granted:
            session = self._hub.session_of(self.room, publisher.identity)
            publication = None if session is None else session.publications.get(track.sid)
            if publication is not None and not publication.ended:
                wanted[track.sid] = publication
        changed = False
        for sid in [sid for sid in self._subscriptions if sid not in wanted]:
            self._subscriptions.pop(sid).end()
            changed = True
        for sid, publication in wanted.items():
            if sid not in self._subscriptions:
                self._subscriptions[sid] = publication.subscribe(self._subscriber.pc)
                self._tell_publisher_subscribed(publication)
                changed = True
        self._report_refusals({sid: publisher.sid for publisher, sid in refused})
        if changed:
            self._renegotiate_soon()

    def _tell_publisher_subscribed(self, publication: Publication) -> None:
        """``track_subscribed`` to the publisher on its track's first subscription (LocalTrackSubscribed)."""
        if publication.announced_subscribed:
            return
        publication.announced_subscribed = True
        owner = self.room.by_sid(publication.participant_sid)
        session = None if owner is None else self._hub.session_of(self.room, owner.identity)
        if session is not None:
            session.signal(TrackSubscribed(publication.track_sid))

    def _report_refusals(self, refused: dict[str, str]) -> None:
        """``subscription_permission_update`` (JS) + ``subscription_response`` (error) on each change."""
        for sid, publisher_sid in refused.items():
            if sid not in self._refused:
                self._refused.add(sid)
                self.signal(SubscriptionPermissionUpdate(publisher_sid, sid, allowed=False))
                self.signal(SubscriptionResponse(sid, SubscriptionError.SE_UNKNOWN))
        for sid in self._refused - set(refused):
            self._refused.discard(sid)
            owner = self.room.track_owner(sid)
            if owner is not None:
                self.signal(SubscriptionPermissionUpdate(owner.sid, sid, allowed=True))

    # --- media statistics (SpeakersChanged, ConnectionQualityUpdate) --------------------------------

    def audio_level(self, now: float) -> int:
        """The loudest RFC 6464 level among our unmuted audio publications (127 = silent)."""
        return min((p.level(now) for p in self.publications.values()), default=127)

    async def connection_quality(self) -> ConnectionQualityInfo:
        """Our quality: LOST when a peer connection failed, else from the publisher-side packet loss."""
        states = {self._subscriber.connection_state}
        if self._publisher is not None:
            states.add(self._publisher.connection_state)
        if "failed" in states:
            return ConnectionQualityInfo(self.member.sid, ConnectionQuality.LOST, 0.0)
        losses = [loss for p in self.publications.values() if (loss := await p.loss()) is not None]
        quality = quality_from_loss(max(losses, default=None))
        return ConnectionQualityInfo(self.member.sid, quality, 5.0 - 4.0 * max(losses, default=0.0))

    def _close_media(self) -> None:
        for subscription in self._subscriptions.values():
            subscription.track.stop()
        self._subscriptions.clear()
        for publication in self.publications.values():
            publication.close()
        self.publications.clear()
        for tap, _ in self._taps.values():
            tap.close()
        self._taps.clear()

    def _on_track(self, event: TrackReceived) -> None:
        """A remote track: tap it at once, in aiortc's ``track`` event, before any RTP is handled.

        Every remote track is tapped, matched to a publication or not: an untapped receiver would start
        aiortc's decoder on its first frame, and an SFU never decodes. A tap that cannot be installed ends
        the session (``LeaveRequest{MEDIA_FAILURE}``) after closing that peer connection.
        """
        transport = self._publisher if event.role is PeerRole.PUBLISHER else self._subscriber
        if transport is None or event.mid is None:
            return
        track = transport.remote_track(event.track_id)
        try:
            receiver = receiver_for_track(transport.pc, track)
            key = event.mid if event.role is PeerRole.PUBLISHER else f"subscriber:{event.mid}"
            self._taps[key] = (RtpTap(receiver), receiver)
        except ValueError:
            self._log.debug("the %s track of mid %s is tapped already", event.kind, event.mid)
        except (LookupError, GreenroomError) as exc:
            # No fallback to decoding: close that PC before more RTP arrives, and end the session.
            self._log.error("could not tap the %s track of mid %s: %r; ending", event.kind, event.mid, exc)
            # Never cancelled (see _finish): a cancelled aiortc close() leaves the PC half closed, and the
            # next close() awaits a future nobody resolves (aiortc rtcpeerconnection.py ``close``).
            self._peer_closes.append(
                asyncio.create_task(transport.close(), name=f"close untapped {self.member.sid}")
            )
            self.end(DisconnectReason.MEDIA_FAILURE)
