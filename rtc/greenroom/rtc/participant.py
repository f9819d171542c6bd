"""Participant views, as in ``livekit.rtc.participant``: ``Participant``, ``LocalParticipant``,
``RemoteParticipant``, and the ``Publish*Error`` classes users import from this module.

A view holds a copy of the participant's latest ``ParticipantInfo``, refreshed by the room from the actors'
events on the user's loop; reading a property never crosses threads. The local participant's methods send
messages to the actor tree (facade → RoomActor → local ParticipantActor → RoomActor → PeerTransport) and
await the reply.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenroom.actors.messages import (
    PublishData,
    PublishDtmf,
    PublishTrack,
    PublishTranscription,
    Reply,
    UnpublishTrack,
    UpdateLocalInfo,
)
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantInfo,
    ParticipantPermission,
    TrackInfo,
    TrackType,
    frozen_map,
)
from greenroom.codecs.models import TrackSource as WireTrackSource
from greenroom.rtc._bridge import call
from greenroom.rtc._enums import (
    ConnectionQuality,
    ParticipantKind,
    ParticipantState,
    participant_kind,
    participant_state,
)
from greenroom.rtc.publish_options import TrackPublishOptions
from greenroom.rtc.track import LocalAudioTrack, LocalTrack, LocalVideoTrack, Track
from greenroom.rtc.track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from greenroom.rtc.transcription import Transcription

if TYPE_CHECKING:
    from greenroom.actors.client import RoomClient
    from greenroom.rtc.room import Room

__all__ = [
    "ConnectionQuality",
    "LocalParticipant",
    "Participant",
    "PublishDTMFError",
    "PublishDataError",
    "PublishDataTrackError",
    "PublishTrackError",
    "PublishTranscriptionError",
    "RemoteParticipant",
    "UnpublishTrackError",
]


_DEFAULT_PUBLISH = TrackPublishOptions()


class _PublishError(Exception):
    """Base of the ``Publish*Error`` classes: the text is also in ``.message`` (as in ``livekit.rtc``)."""

    def __init__(self, message: str) -> None:
        """Keep ``message`` (also in ``.message``)."""
        super().__init__(message)
        self.message = message


class PublishTrackError(_PublishError):
    """Publishing a track failed."""


class UnpublishTrackError(_PublishError):
    """Unpublishing a track failed."""


class PublishDataError(_PublishError):
    """``publish_data`` failed (too large, not connected, channel closed …)."""


class PublishDTMFError(_PublishError):
    """``publish_dtmf`` failed."""


class PublishTranscriptionError(_PublishError):
    """``publish_transcription`` failed."""


class PublishDataTrackError(_PublishError):
    """Publishing a data track failed (data tracks are not supported yet)."""


class Participant:
    """What every participant view has: identity, name, metadata, attributes, kind, permissions …"""

    def __init__(self, info: ParticipantInfo) -> None:
        """Build the view of ``info``."""
        self._info = info
        self._publications: dict[str, TrackPublication] = {}
        self._disconnect_reason = DisconnectReason.UNKNOWN_REASON
        self._quality = ConnectionQuality.QUALITY_UNKNOWN
        self._track_waiters: list[tuple[int, int, Callable[[Track | None], None]]] = []

    def _update(self, info: ParticipantInfo) -> None:
        self._info = info

    def _wait_for_track(self, source: int, kind: int, callback: Callable[[Track | None], None]) -> None:
        """Call ``callback(track)`` with the first subscribed track of ``source`` and ``kind`` (now if there
        is one); ``callback(None)`` if the participant leaves first (``AudioStream.from_participant``)."""
        for publication in self._publications.values():
            track = publication.track
            if track is not None and publication.source == source and publication.kind == kind:
                callback(track)
                return
        self._track_waiters.append((source, kind, callback))

    def _track_subscribed(self, publication: TrackPublication) -> None:
        waiting, self._track_waiters = self._track_waiters, []
        for source, kind, callback in waiting:
            if publication.track is not None and publication.source == source and publication.kind == kind:
                callback(publication.track)
            else:
                self._track_waiters.append((source, kind, callback))

    def _gone(self) -> None:
        waiting, self._track_waiters = self._track_waiters, []
        for _, _, callback in waiting:
            callback(None)

    @property
    def track_publications(self) -> Mapping[str, TrackPublication]:
        """The participant's publications by track sid."""
        return self._publications

    @property
    def sid(self) -> str:
        """The participant's server id (``PA_…``)."""
        return self._info.sid

    @property
    def identity(self) -> str:
        """The identity from the participant's token."""
        return self._info.identity

    @property
    def name(self) -> str:
        """The display name."""
        return self._info.name

    @property
    def metadata(self) -> str:
        """Application metadata."""
        return self._info.metadata

    @property
    def attributes(self) -> dict[str, str]:
        """A copy of the participant's attributes."""
        return dict(self._info.attributes)

    @property
    def kind(self) -> ParticipantKind:
        """Standard, agent, SIP …"""
        return participant_kind(self._info.kind)

    @property
    def kind_details(self) -> list[int]:
        """More about the kind (not reported by the dev server: empty)."""
        return []

    @property
    def state(self) -> ParticipantState:
        """Joining, joined, active or disconnected."""
        return participant_state(self._info.state)

    @property
    def joined_at(self) -> datetime.datetime | None:
        """When the participant joined (UTC), if the server said."""
        ms = self._info.joined_at_ms or self._info.joined_at * 1000
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC) if ms else None

    @property
    def permissions(self) -> ParticipantPermission:
        """What the participant may do (``can_publish``, ``can_publish_data``, ``can_update_metadata`` …)."""
        return self._info.permission or ParticipantPermission()

    @property
    def connection_quality(self) -> ConnectionQuality:
        """Connection quality (from the server's ``connection_quality``; ``QUALITY_UNKNOWN`` until then)."""
        return self._quality

    @property
    def disconnect_reason(self) -> DisconnectReason:
        """Why the participant left (``UNKNOWN_REASON`` while it is here)."""
        return self._disconnect_reason


class RemoteParticipant(Participant):
    """Another participant in the room (``Room.remote_participants`` is keyed by identity)."""

    def __init__(self, info: ParticipantInfo, client: RoomClient | None = None) -> None:
        """Build the view of ``info`` with its publications (``client``: the room, for subscriptions)."""
        super().__init__(info)
        self._client = client
        for track in info.tracks:
            self._publications[track.sid] = RemoteTrackPublication(track, client=client)

    @property
    def track_publications(self) -> Mapping[str, RemoteTrackPublication]:
        """The participant's publications by track sid."""
        return {
            sid: pub for sid, pub in self._publications.items() if isinstance(pub, RemoteTrackPublication)
        }

    def _add_publication(self, track: TrackInfo) -> RemoteTrackPublication:
        publication = RemoteTrackPublication(track, client=self._client)
        self._publications[track.sid] = publication
        return publication

    def __repr__(self) -> str:
        return f"rtc.RemoteParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class LocalParticipant(Participant):
    """The participant this room client joined as: publishes data and updates its own info."""

    def __init__(self, room: Room, info: ParticipantInfo) -> None:
        """Build the view of ``info``, bound to ``room``."""
        super().__init__(info)
        self._room = room

    @property
    def track_publications(self) -> Mapping[str, LocalTrackPublication]:
        """Local publications by track sid."""
        return {sid: pub for sid, pub in self._publications.items() if isinstance(pub, LocalTrackPublication)}

    async def _request(self, make: Callable[[Reply[None]], Any], error: type[_PublishError] | None) -> None:
        try:
            await self._room._request(make)
        except GreenroomError as exc:
            if error is None:
                raise
            raise error(_message(exc)) from exc

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> None:
        """Send ``payload`` to everyone in the room, or only to ``destination_identities``.

        Args:
            payload: bytes, or text sent as UTF-8.
            reliable: ordered and retransmitted (``_reliable``) or best effort (``_lossy``).
            destination_identities: recipients; empty means everyone else.
            topic: an application topic the receivers see in ``DataPacket.topic``.

        Raises:
            PublishDataError: the packet is larger than the max message size (64 000 bytes unless the
                server says less), the room is not connected, or sending failed.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        destinations = tuple(destination_identities or ())
        await self._request(lambda r: PublishData(data, reliable, destinations, topic, r), PublishDataError)

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        """Send a SIP DTMF tone (code 0–9 for '0'–'9', 10 '*', 11 '#', 12–15 'A'–'D').

        Raises:
            PublishDTMFError: the room is not connected or sending failed.
        """
        await self._request(lambda r: PublishDtmf(code, digit, r), PublishDTMFError)

    async def publish_transcription(self, transcription: Transcription) -> None:
        """Send transcription segments (the server forwards them only from agents).

        Raises:
            PublishTranscriptionError: the room is not connected or sending failed.
        """
        value = packets.Transcription(
            participant_identity=transcription.participant_identity,
            track_id=transcription.track_sid,
            segments=tuple(
                packets.TranscriptionSegment(
                    id=s.id,
                    text=s.text,
                    start_time=s.start_time,
                    end_time=s.end_time,
                    final=s.final,
                    language=s.language,
                )
                for s in transcription.segments
            ),
        )
        await self._request(lambda r: PublishTranscription(value, r), PublishTranscriptionError)

    async def publish_track(
        self,
        track: LocalTrack,
        options: TrackPublishOptions = _DEFAULT_PUBLISH,
    ) -> LocalTrackPublication:
        """Publish a local audio or video track (``add_track`` → ``track_published`` → renegotiation).

        Returns once the publisher offer carrying the track is sent (as the Rust SDK); the server then
        announces the track and subscribers receive it. ``local_track_published`` is emitted before return.

        Raises:
            PublishTrackError: not connected, already published, refused (no ``canPublish``) or timed out.
        """
        client = self._room._client
        if client is None:
            raise PublishTrackError("the room is not connected")
        if track.sid:
            raise PublishTrackError(f"track {track.sid} is already published")
        media = client.media

        async def register() -> str:
            return media.add_local(track._source_track)

        async def forget(cid: str) -> None:
            media.drop_local(cid)

        try:
            cid = await call(register())
        except GreenroomError as exc:
            raise PublishTrackError(_message(exc)) from exc
        video = isinstance(track, LocalVideoTrack)
        wire_type = TrackType.VIDEO if video else TrackType.AUDIO
        source = (
            WireTrackSource(int(options.source)) if 0 <= int(options.source) <= 4 else WireTrackSource.UNKNOWN
        )
        try:
            info: TrackInfo = await call(
                client.ask(
                    lambda r: PublishTrack(
                        cid,
                        track.name,
                        wire_type,
                        source,
                        r,
                        disable_dtx=not options.dtx,
                        disable_red=not options.red,
                        stream=options.stream,
                    )
                )
            )
        except GreenroomError as exc:
            await call(forget(cid))
            raise PublishTrackError(_message(exc)) from exc
        muted = track.muted
        track._bind(info, client)
        publication = LocalTrackPublication(track._info, track)
        self._publications[info.sid] = publication
        if muted:
            track.mute()
        self._room.emit("local_track_published", publication, track)
        if info.sid in self._room._early_subscriptions:  # subscribed before publish_track returned
            self._room._early_subscriptions.discard(info.sid)
            publication._subscribed()
            self._room.emit("local_track_subscribed", track)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        """Stop publishing ``track_sid`` (the sender goes inactive and the publisher renegotiates).

        Raises:
            UnpublishTrackError: no such local publication, or the room is not connected.
        """
        publication = self.track_publications.get(track_sid)
        if publication is None:
            raise UnpublishTrackError(f"no local track {track_sid}")
        await self._request(lambda r: UnpublishTrack(track_sid, r), UnpublishTrackError)
        self._publications.pop(track_sid, None)
        self._room.emit("local_track_unpublished", publication)
        track = publication.track
        if isinstance(track, LocalAudioTrack | LocalVideoTrack):
            track._unbind()

    async def set_metadata(self, metadata: str) -> None:
        """Set the local participant's metadata (needs the ``canUpdateOwnMetadata`` grant).

        Raises:
            GreenroomError: the server refused it or did not answer within 5 s.
        """
        await self._request(lambda r: UpdateLocalInfo(r, metadata=metadata), None)

    async def set_name(self, name: str) -> None:
        """Set the local participant's display name (needs ``canUpdateOwnMetadata``)."""
        await self._request(lambda r: UpdateLocalInfo(r, name=name), None)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Merge ``attributes`` into the local participant's (an empty value deletes a key)."""
        frozen = frozen_map(attributes)
        await self._request(lambda r: UpdateLocalInfo(r, attributes=frozen), None)

    def __repr__(self) -> str:
        return f"rtc.LocalParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"
