"""``Room`` and its companions, shaped like ``livekit.rtc.room``.

A :class:`Room` is a thin view over one RoomActor tree running on greenroom's runtime loop:

* **commands** (``connect``, ``disconnect``, ``publish_data`` …) are messages to the RoomActor, run with
  :func:`greenroom.rtc._bridge.call` and awaited from the user's loop;
* **events** come back through a :class:`~greenroom.rtc._bridge.LoopSink`: the actors report
  :data:`~greenroom.actors.messages.RoomEvent` values, the sink hands them to the user's loop with
  ``call_soon_threadsafe`` (order kept), and :meth:`Room._on_event` updates the views and emits the official
  event with the official arguments. User callbacks therefore always run on the loop the room was created
  on, never on the runtime loop.

Differences from ``livekit.rtc`` (deliberate): the ``connected`` event fires (after
``connection_state_changed(CONN_CONNECTED)``, before ``connect()`` returns); ``connect`` has an overall
deadline (``RoomOptions.connect_timeout``, default 15 s) and cancelling it is safe — the actor tree is torn
down and nothing is left behind; ``disconnect`` accepts ``reason`` positionally too. After a lost link the
room reconnects in full (``reconnecting`` … ``reconnected``, ``local_track_republished``; schedule in
:attr:`Room.reconnect_policy`): participants still present keep their objects, and data published meanwhile
is held and sent once reconnected (docs/architecture.md, "Reconnect").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, assert_never

from greenroom.actors import messages as m
from greenroom.actors.client import RoomClient
from greenroom.actors.room import ConnectFailedError
from greenroom.codecs.models import IceServer as _WireIceServer
from greenroom.codecs.models import ParticipantInfo, RoomInfo, TrackInfo
from greenroom.rtc._bridge import LoopSink, call
from greenroom.rtc._enums import (
    ConnectionQuality,
    ConnectionState,
    ContinualGatheringPolicy,
    DataPacketKind,
    DisconnectReason,
    IceTransportType,
    TrackKind,
)
from greenroom.rtc.event_emitter import EventEmitter
from greenroom.rtc.participant import LocalParticipant, Participant, RemoteParticipant
from greenroom.rtc.track import LocalAudioTrack, LocalVideoTrack, RemoteAudioTrack, RemoteVideoTrack
from greenroom.rtc.track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from greenroom.rtc.transcription import TranscriptionSegment

__all__ = [
    "ConnectError",
    "DataPacket",
    "DataStreamOptions",
    "EventTypes",
    "IceServer",
    "ReconnectPolicy",
    "Room",
    "RoomOptions",
    "RtcConfiguration",
    "SipDTMF",
]

_log = logging.getLogger("greenroom.rtc.room")

#: The default overall connect deadline, in seconds (signal + join + primary peer connection).
DEFAULT_CONNECT_TIMEOUT = 15.0

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


class ConnectError(Exception):
    """``Room.connect`` failed; ``message`` says why (refused token, unreachable server, timeout …)."""

    def __init__(self, message: str) -> None:
        """Keep ``message`` (also in ``.message``)."""
        super().__init__(message)
        self.message = message


@dataclass
class IceServer:
    """A STUN/TURN server for ``RtcConfiguration.ice_servers``."""

    urls: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""


@dataclass
class RtcConfiguration:
    """WebRTC settings: ICE transport type, gathering policy and explicit ICE servers.

    ``ice_transport_type=TRANSPORT_RELAY`` is honoured only with TURN servers (aiortc has no relay-only
    filter; greenroom refuses to fall back silently: the servers given are the only ones used).
    """

    ice_transport_type: int = IceTransportType.TRANSPORT_ALL
    continual_gathering_policy: int = ContinualGatheringPolicy.GATHER_CONTINUALLY
    ice_servers: list[IceServer] = field(default_factory=list)


@dataclass
class DataStreamOptions:
    """Options of incoming data streams (accepted for compatibility; data streams are not supported yet)."""

    max_payload_byte_length: int | None = None


@dataclass
class RoomOptions:
    """How to connect. ``e2ee``/``encryption``, ``dynacast``, ``single_peer_connection`` and ``data_stream``
    are accepted for compatibility and ignored (greenroom speaks v0 signalling with two peer connections).

    Attributes:
        auto_subscribe: subscribe to remote tracks automatically.
        rtc_config: ICE settings.
        connect_timeout: the whole connect deadline in seconds (default 15); also each reconnect attempt's.

    The fields are exactly the official ones; the reconnect schedule is :attr:`Room.reconnect_policy`.
    """

    auto_subscribe: bool = True
    dynacast: bool = False
    e2ee: Any | None = None
    encryption: Any | None = None
    rtc_config: RtcConfiguration | None = None
    connect_timeout: float | None = None
    single_peer_connection: bool | None = None
    data_stream: DataStreamOptions | None = None


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a connected room retries after a lost link (greenroom's; set :attr:`Room.reconnect_policy`).

    Attributes:
        attempts: full-reconnect attempts before ``disconnected`` (default 10, like the official SDKs;
            0 turns reconnecting off: a lost link disconnects at once).
        min_delay: the wait before the second attempt (the first is immediate), doubled for each further one.
        max_delay: the cap of that wait, before up to +50 % jitter (default 7 s; about 40 s in all).
    """

    attempts: int = 10
    min_delay: float = 0.3
    max_delay: float = 7.0


@dataclass
class DataPacket:
    """A received user packet (``data_received``).

    Attributes:
        data: the payload.
        kind: ``KIND_RELIABLE`` or ``KIND_LOSSY`` (from the channel it arrived on).
        participant: the sender; ``None`` when a server API sent it.
        topic: the sender's topic (``None`` when it set none).
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


def _connect_options(options: RoomOptions, policy: ReconnectPolicy) -> m.ConnectOptions:
    rtc = options.rtc_config or RtcConfiguration()
    servers = tuple(_WireIceServer(tuple(s.urls), s.username, s.password) for s in rtc.ice_servers)
    return m.ConnectOptions(
        auto_subscribe=options.auto_subscribe,
        ice_servers=servers,
        relay_only=rtc.ice_transport_type == IceTransportType.TRANSPORT_RELAY,
        timeout=options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
        reconnect_attempts=policy.attempts,
        reconnect_min_delay=policy.min_delay,
        reconnect_max_delay=policy.max_delay,
    )


def _user_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()


class Room(EventEmitter[EventTypes]):
    """A LiveKit room client: connect, see participants, exchange data.

    Args:
        loop: the loop events are delivered on and callbacks run on; default: the running loop (or the
            policy's current loop), captured here like ``livekit.rtc.Room``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = _user_loop(loop)
        self._client: RoomClient | None = None
        self._sink: LoopSink | None = None
        self._info = RoomInfo(sid="", name="")
        self._local: LocalParticipant | None = None
        self._remotes: dict[str, RemoteParticipant] = {}
        # ``track_subscribed`` for a local track can overtake ``publish_track``'s own return (the server
        # answers a subscriber that was already waiting); remembered here until the publication exists.
        self._early_subscriptions: set[str] = set()
        self._state = ConnectionState.CONN_DISCONNECTED
        self._first_sid: asyncio.Future[str] = self._loop.create_future()
        self.reconnect_policy = ReconnectPolicy()
        """How the room retries after a lost link (read by ``connect``; not in ``livekit.rtc``)."""

    # -- properties -----------------------------------------------------------------------------------------

    @property
    async def sid(self) -> str:
        """The room's server id (``RM_…``), waiting for it if the room has not joined yet."""
        if self._info.sid:
            return self._info.sid
        return await asyncio.shield(self._first_sid)

    @property
    def name(self) -> str:
        """The room's name."""
        return self._info.name

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return self._info.metadata

    @property
    def num_participants(self) -> int:
        """How many participants the server counts."""
        return self._info.num_participants

    @property
    def local_participant(self) -> LocalParticipant:
        """The local participant.

        Raises:
            Exception: before the room joined.
        """
        if self._local is None:
            raise Exception("cannot access local participant before connecting")
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """The other participants, by identity."""
        return self._remotes

    @property
    def connection_state(self) -> ConnectionState:
        """Connected, reconnecting or disconnected."""
        return self._state

    def isconnected(self) -> bool:
        """Whether the room is connected (or reconnecting)."""
        return self._client is not None and self._state != ConnectionState.CONN_DISCONNECTED

    # -- commands -------------------------------------------------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room at ``url`` with ``token``; returns once the room is connected.

        Register event callbacks before calling it. Cancelling it (or its deadline, ``connect_timeout``)
        tears the connection attempt down completely.

        Raises:
            ConnectError: the URL is unreachable, the token refused (invalid, expired), the server went away,
                or the deadline passed.
        """
        if self._client is not None:
            raise ConnectError("the room is already connected")
        sink = LoopSink(self._loop, self._on_event)
        client = RoomClient.start(sink)
        self._client, self._sink = client, sink
        try:
            connect_options = _connect_options(options or RoomOptions(), self.reconnect_policy)
            await call(client.connect(url, token, connect_options))
        except ConnectFailedError as exc:
            await self._teardown()
            raise ConnectError(str(exc)) from None
        except BaseException:
            await asyncio.shield(self._teardown())
            raise

    async def disconnect(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room and stop everything this room started (a no-op when not connected)."""
        if self._client is None:
            return
        await self._teardown(reason)

    async def _teardown(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        client, self._client = self._client, None
        if client is not None:
            await call(client.close(reason))
        await asyncio.sleep(0)  # let events the actors queued before closing reach the user first
        if self._sink is not None:
            self._sink.detach()
            self._sink = None
        self._set_disconnected(reason)

    async def _request(self, make: Callable[[m.Reply[None]], Any]) -> None:
        client = self._client
        if client is None:
            raise ConnectFailedError("the room is not connected")
        await call(client.request(make))

    # -- events (always on the user's loop) -----------------------------------------------------------------

    def _on_event(self, event: m.RoomEvent) -> None:  # noqa: C901, PLR0912 - one short branch per event
        match event:
            case m.RoomJoined():
                self._joined(event)
            case m.RoomConnected():
                self._set_state(ConnectionState.CONN_CONNECTED)
                self.emit("connected")
            case m.ConnectionStateChanged(state=state):
                self._set_state(ConnectionState(state))
            case m.Reconnecting():
                self.emit("reconnecting")
            case m.Reconnected(room=room, local=local):
                self._info = room
                if self._local is not None:
                    self._local._update(local)
                self.emit("reconnected")
            case m.LocalTrackRepublished(previous_sid=previous, track=info):
                self._republished(previous, info)
            case m.Disconnected(reason=reason):
                self._set_disconnected(reason)
            case m.RoomMetadataChanged(room=room, old=old, new=new):
                self._info = room
                self.emit("room_metadata_changed", old, new)
            case m.ParticipantConnected(info=info):
                participant = RemoteParticipant(info, self._client)
                self._remotes[info.identity] = participant
                self.emit("participant_connected", participant)
            case m.ParticipantActive(info=info):
                self._participant_event("participant_active", info)
            case m.ParticipantDisconnected(info=info, reason=reason):
                self._participant_left(info, reason)
            case m.ParticipantMetadataChanged(info=info, old=old, new=new):
                self._participant_event("participant_metadata_changed", info, old, new)
            case m.ParticipantNameChanged(info=info, old=old, new=new):
                self._participant_event("participant_name_changed", info, old, new)
            case m.ParticipantAttributesChanged(info=info, changed=changed):
                changed_of = self._refresh(info)
                if changed_of is not None:
                    self.emit("participant_attributes_changed", dict(changed), changed_of)
            case m.TrackPublished() | m.TrackUnpublished() | m.TrackMuted():
                self._track_event(event)
            case m.DataPacketReceived() | m.SipDtmfReceived() | m.TranscriptionReceived():
                self._data_event(event)
            case (
                m.TrackSubscribed()
                | m.TrackUnsubscribed()
                | m.TrackSubscriptionFailed()
                | m.LocalTrackSubscribed()
            ):
                self._subscription_event(event)
            case m.ActiveSpeakersChanged() | m.ConnectionQualityChanged():
                self._quality_event(event)
            case _:
                assert_never(event)

    def _joined(self, event: m.RoomJoined) -> None:
        self._info = event.room
        self._local = LocalParticipant(self, event.local)
        self._remotes = {p.identity: RemoteParticipant(p, self._client) for p in event.remotes}
        if event.room.sid and not self._first_sid.done():
            self._first_sid.set_result(event.room.sid)

    def _republished(self, previous_sid: str, info: TrackInfo) -> None:
        """After a full reconnect: the same publication (and track) object, re-keyed under its new sid."""
        local = self._local
        publication = None if local is None else local._publications.pop(previous_sid, None)
        if local is None or not isinstance(publication, LocalTrackPublication):
            return
        publication._update(dataclasses.replace(info, muted=publication.muted))
        local._publications[info.sid] = publication
        track = publication.track
        if isinstance(track, LocalAudioTrack | LocalVideoTrack) and self._client is not None:
            track._bind(info, self._client)
        self.emit("local_track_republished", publication, previous_sid)

    def _set_state(self, state: ConnectionState) -> None:
        if state != self._state:
            self._state = state
            self.emit("connection_state_changed", state)

    def _set_disconnected(self, reason: DisconnectReason) -> None:
        if self._state == ConnectionState.CONN_DISCONNECTED:
            return
        if self._local is not None:
            self._local._disconnect_reason = reason
        self._set_state(ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", reason)

    def _participant(self, identity: str) -> Participant | None:
        if self._local is not None and identity == self._local.identity:
            return self._local
        return self._remotes.get(identity)

    def _refresh(self, info: ParticipantInfo) -> Participant | None:
        participant = self._participant(info.identity)
        if participant is not None:
            participant._update(info)
        return participant

    def _participant_event(self, name: EventTypes, info: ParticipantInfo, *args: Any) -> None:
        participant = self._refresh(info)
        if participant is not None:
            self.emit(name, participant, *args)

    def _participant_left(self, info: ParticipantInfo, reason: DisconnectReason) -> None:
        participant = self._remotes.pop(info.identity, None)
        if participant is None:
            return
        for publication in list(participant.track_publications.values()):
            self._unsubscribed(publication, participant)
        participant._gone()
        participant._update(info)
        participant._disconnect_reason = reason
        self.emit("participant_disconnected", participant)

    def _track_event(self, event: m.TrackPublished | m.TrackUnpublished | m.TrackMuted) -> None:
        match event:
            case m.TrackPublished(info=info, track=track):
                participant = self._remotes.get(info.identity)
                if participant is not None:
                    participant._update(info)
                    self.emit("track_published", participant._add_publication(track), participant)
            case m.TrackUnpublished(info=info, track=track):
                participant = self._remotes.get(info.identity)
                if participant is not None:
                    participant._update(info)
                    publication = participant._publications.pop(track.sid, None)
                    if isinstance(publication, RemoteTrackPublication):
                        self._unsubscribed(publication, participant)  # the official order: unsubscribed first
                        self.emit("track_unpublished", publication, participant)
            case m.TrackMuted(identity=identity, track=track, muted=muted):
                found = self._participant(identity)
                pub: TrackPublication | None = None if found is None else found._publications.get(track.sid)
                if found is not None and pub is not None:
                    pub._update(track)
                    self.emit("track_muted" if muted else "track_unmuted", found, pub)
            case _:
                assert_never(event)

    def _subscription_event(
        self,
        event: m.TrackSubscribed | m.TrackUnsubscribed | m.TrackSubscriptionFailed | m.LocalTrackSubscribed,
    ) -> None:
        match event:
            case m.TrackSubscribed(identity=identity, track=info):
                participant = self._remotes.get(identity)
                publication = None if participant is None else participant.track_publications.get(info.sid)
                if participant is None or publication is None or publication._track is not None:
                    return
                kind = RemoteVideoTrack if publication.kind == TrackKind.KIND_VIDEO else RemoteAudioTrack
                track = kind(publication._info, self._client)
                publication._track, publication._subscribed = track, True
                self.emit("track_subscribed", track, publication, participant)
                participant._track_subscribed(publication)
            case m.TrackUnsubscribed(identity=identity, track=info):
                participant = self._remotes.get(identity)
                publication = None if participant is None else participant.track_publications.get(info.sid)
                if participant is not None and publication is not None:
                    self._unsubscribed(publication, participant)
            case m.TrackSubscriptionFailed(identity=identity, track_sid=sid, error=error):
                participant = self._remotes.get(identity)
                if participant is not None:
                    self.emit("track_subscription_failed", participant, sid, error)
            case m.LocalTrackSubscribed(track_sid=sid):
                local = self._local
                mine = None if local is None else local._publications.get(sid)
                if isinstance(mine, LocalTrackPublication):
                    mine._subscribed()
                    self.emit("local_track_subscribed", mine.track)
                else:
                    self._early_subscriptions.add(sid)
            case _:
                assert_never(event)

    def _unsubscribed(self, publication: RemoteTrackPublication, participant: RemoteParticipant) -> None:
        track = publication._track
        if track is None:
            return
        publication._track, publication._subscribed = None, False
        self.emit("track_unsubscribed", track, publication, participant)

    def _quality_event(self, event: m.ActiveSpeakersChanged | m.ConnectionQualityChanged) -> None:
        by_sid: dict[str, Participant] = {p.sid: p for p in self._remotes.values()}
        if self._local is not None:
            by_sid[self._local.sid] = self._local
        match event:
            case m.ActiveSpeakersChanged(speakers=speakers):
                self.emit("active_speakers_changed", [by_sid[sid] for sid, _ in speakers if sid in by_sid])
            case m.ConnectionQualityChanged(participant_sid=sid, quality=quality):
                participant = by_sid.get(sid)
                if participant is not None:
                    participant._quality = ConnectionQuality(quality)
                    self.emit("connection_quality_changed", participant, participant._quality)
            case _:
                assert_never(event)

    def _data_event(self, event: m.DataPacketReceived | m.SipDtmfReceived | m.TranscriptionReceived) -> None:
        match event:
            case m.DataPacketReceived(identity=identity, payload=payload, reliable=reliable, topic=topic):
                kind = DataPacketKind.KIND_RELIABLE if reliable else DataPacketKind.KIND_LOSSY
                # "" for no topic, never None: livekit.rtc passes the FFI proto's ``user.topic`` (a proto3
                # string reads "" when unset; livekit/rtc/room.py ``data_packet_received``).
                packet = DataPacket(payload, kind, self._remotes.get(identity), topic or "")
                self.emit("data_received", packet)
            case m.SipDtmfReceived(identity=identity, code=code, digit=digit):
                self.emit("sip_dtmf_received", SipDTMF(code, digit, self._remotes.get(identity)))
            case m.TranscriptionReceived(identity=identity, track_sid=track_sid, segments=segments):
                participant = self._participant(identity)
                publication = None if participant is None else participant._publications.get(track_sid)
                converted = [
                    TranscriptionSegment(s.id, s.text, s.start_time, s.end_time, s.language, s.final)
                    for s in segments
                ]
                self.emit("transcription_received", converted, participant, publication)
            case _:
                assert_never(event)

    def __repr__(self) -> str:
        return (
            f"rtc.Room(sid={self._info.sid or 'unknown'}, name={self.name}, metadata={self.metadata}, "
            f"connection_state={self._state.name})"
        )
