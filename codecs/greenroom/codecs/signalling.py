"""LiveKit signal messages ⇄ frozen dataclasses, and the v0 ``/rtc`` URL query.

One WebSocket binary frame carries one ``livekit.SignalRequest`` (client → server) or
``livekit.SignalResponse`` (server → client); both are a single ``oneof message``. Each oneof variant we
model is one frozen dataclass here; its ``FIELD`` class attribute names the oneof field it travels in.
Five classes travel in both directions (:class:`Offer`, :class:`Answer`, :class:`Trickle`,
:class:`MuteTrack`, :class:`Leave`); the rest belong to one side.

* :func:`encode_request` / :func:`decode_request` — ``SignalRequest`` bytes ⇄ :data:`SignalRequestMessage`.
* :func:`encode_response` / :func:`decode_response` — ``SignalResponse`` bytes ⇄
  :data:`SignalResponseMessage`.

A variant that is valid protobuf but that we do not model (``update_layers``, ``simulate``, data tracks,
data blobs, ``room_moved``, ``media_sections_requirement``, …) decodes to :class:`Unhandled` naming the
field: the receiver decides to ignore it (real clients send some routinely). Bytes that are not a message,
a message with an empty oneof, a malformed trickle ``candidateInit`` or a missing field the SDKs unwrap
(``track_published.track``, ``room_update.room``) raise :class:`~greenroom.codecs.errors.CodecError`.
Encoding something the protocol cannot carry raises :class:`~greenroom.codecs.errors.LocalProtocolError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self, get_args
from urllib.parse import parse_qsl, urlencode

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as _PbMessage
from livekit.protocol import rtc as pr

from greenroom.codecs.errors import CodecError, LocalProtocolError
from greenroom.codecs.models import (
    ClientCapability,
    ClientConfiguration,
    Codec,
    ConnectionQualityInfo,
    DataChannelInfo,
    DataChannelReceiveState,
    DisconnectReason,
    EncryptionType,
    IceCandidate,
    IceServer,
    LeaveAction,
    ParticipantInfo,
    ParticipantTracks,
    ReconnectReason,
    RegionInfo,
    RequestResponseReason,
    RoomInfo,
    ServerInfo,
    SessionDescription,
    SignalTarget,
    SpeakerInfo,
    StreamStateInfo,
    StringPairs,
    SubscriptionError,
    TrackInfo,
    TrackPermission,
    TrackSource,
    TrackType,
    VideoLayer,
    VideoQuality,
    _enum,
    _numbers,
    _wire,
    frozen_map,
)

__all__ = [
    "PROTOCOL_VERSION",
    "AddTrackRequest",
    "Answer",
    "ConnectionQualityUpdate",
    "JoinParams",
    "JoinResponse",
    "Leave",
    "LegacyPing",
    "LegacyPong",
    "MuteTrack",
    "Offer",
    "ParticipantUpdate",
    "PingReq",
    "PongResp",
    "ReconnectResponse",
    "RefreshToken",
    "RequestResponse",
    "RoomUpdate",
    "SignalRequestMessage",
    "SignalResponseMessage",
    "SimulateScenario",
    "SpeakersChanged",
    "StreamStateUpdate",
    "SubscriptionPermission",
    "SubscriptionPermissionUpdate",
    "SubscriptionResponse",
    "SyncState",
    "TrackPublished",
    "TrackSubscribed",
    "TrackUnpublished",
    "Trickle",
    "Unhandled",
    "UpdateMetadata",
    "UpdateSubscription",
    "UpdateTrackSettings",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

PROTOCOL_VERSION: Final = 15
"""The signal ``protocol`` greenroom speaks: > 14 gets OK RequestResponses; ≤ 15 avoids room moves (which
we do not model) and packet trailers (> 16)."""


# --- messages that travel both ways -------------------------------------------------------------------


def _sdp_to_proto(kind: str, sdp: str, id_: int, mids: StringPairs) -> pr.SessionDescription:
    return SessionDescription(kind, sdp, id_, mids).to_proto()


@dataclass(frozen=True, slots=True)
class _Description:
    """What ``offer`` and ``answer`` share: a ``livekit.SessionDescription``."""

    FIELD: ClassVar[str] = ""
    sdp: str
    id: int = 0
    type: str = ""
    mid_to_track_id: StringPairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mid_to_track_id", frozen_map(self.mid_to_track_id))

    def to_proto(self) -> pr.SessionDescription:
        """Return the ``livekit.SessionDescription`` message."""
        return _sdp_to_proto(self.type, self.sdp, self.id, self.mid_to_track_id)

    @classmethod
    def from_proto(cls, pb: pr.SessionDescription) -> Self:
        """Build from a ``livekit.SessionDescription`` message."""
        return cls(sdp=pb.sdp, id=pb.id, type=pb.type, mid_to_track_id=frozen_map(pb.mid_to_track_id))


@dataclass(frozen=True, slots=True)
class Offer(_Description):
    """``offer`` (SessionDescription): the client's publisher offer (C→S) or a subscriber offer (S→C)."""

    FIELD: ClassVar[str] = "offer"
    type: str = "offer"


@dataclass(frozen=True, slots=True)
class Answer(_Description):
    """``answer`` (SessionDescription): echo the ``id`` of the offer it answers (JS ≥ 2.19 needs it)."""

    FIELD: ClassVar[str] = "answer"
    type: str = "answer"


@dataclass(frozen=True, slots=True)
class Trickle:
    """``trickle`` (TrickleRequest): one ICE candidate for the client's ``target`` peer connection."""

    FIELD: ClassVar[str] = "trickle"
    candidate: IceCandidate
    target: SignalTarget = SignalTarget.PUBLISHER
    final: bool = False

    def to_proto(self) -> pr.TrickleRequest:
        """Return the ``livekit.TrickleRequest`` message."""
        return pr.TrickleRequest(
            candidateInit=self.candidate.to_json(), target=_wire(self.target), final=self.final
        )

    @classmethod
    def from_proto(cls, pb: pr.TrickleRequest) -> Trickle:
        """Build from a ``livekit.TrickleRequest`` message (raises CodecError on bad JSON)."""
        return cls(
            candidate=IceCandidate.from_json(pb.candidateInit),
            target=_enum(SignalTarget, pb.target),
            final=pb.final,
        )


@dataclass(frozen=True, slots=True)
class MuteTrack:
    """``mute`` (MuteTrackRequest): a local mute change (C→S) or a server-initiated mute (S→C)."""

    FIELD: ClassVar[str] = "mute"
    sid: str
    muted: bool

    def to_proto(self) -> pr.MuteTrackRequest:
        """Return the ``livekit.MuteTrackRequest`` message."""
        return pr.MuteTrackRequest(sid=self.sid, muted=self.muted)

    @classmethod
    def from_proto(cls, pb: pr.MuteTrackRequest) -> MuteTrack:
        """Build from a ``livekit.MuteTrackRequest`` message."""
        return cls(sid=pb.sid, muted=pb.muted)


@dataclass(frozen=True, slots=True)
class Leave:
    """``leave`` (LeaveRequest): a clean client shutdown, or the server telling the client to go/retry."""

    FIELD: ClassVar[str] = "leave"
    reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    action: LeaveAction = LeaveAction.DISCONNECT
    can_reconnect: bool = False
    regions: tuple[RegionInfo, ...] = ()

    def to_proto(self) -> pr.LeaveRequest:
        """Return the ``livekit.LeaveRequest`` message (``regions`` only when non-empty)."""
        pb = pr.LeaveRequest(
            reason=_wire(self.reason), action=_wire(self.action), can_reconnect=self.can_reconnect
        )
        if self.regions:
            pb.regions.regions.extend(r.to_proto() for r in self.regions)
        return pb

    @classmethod
    def from_proto(cls, pb: pr.LeaveRequest) -> Leave:
        """Build from a ``livekit.LeaveRequest`` message."""
        return cls(
            reason=_enum(DisconnectReason, pb.reason),
            action=_enum(LeaveAction, pb.action),
            can_reconnect=pb.can_reconnect,
            regions=tuple(RegionInfo.from_proto(r) for r in pb.regions.regions),
        )


# --- client → server (SignalRequest) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddTrackRequest:
    """``add_track`` (AddTrackRequest): announce a track before adding its sender; answered by
    :class:`TrackPublished` with the same ``cid``."""

    FIELD: ClassVar[str] = "add_track"
    cid: str
    name: str
    type: TrackType
    source: TrackSource = TrackSource.UNKNOWN
    muted: bool = False
    width: int = 0
    height: int = 0
    disable_dtx: bool = False
    disable_red: bool = False
    stereo: bool = False
    layers: tuple[VideoLayer, ...] = ()
    encryption: EncryptionType = EncryptionType.NONE
    stream: str = ""
    sid: str = ""
    #: ``livekit.AudioTrackFeature`` numbers the publisher announces
    audio_features: tuple[int, ...] = ()
    #: ``livekit.PacketTrailerFeature`` numbers: per-frame metadata its frames will carry
    packet_trailer_features: tuple[int, ...] = ()

    def to_proto(self) -> pr.AddTrackRequest:
        """Return the ``livekit.AddTrackRequest`` message."""
        return pr.AddTrackRequest(
            cid=self.cid,
            name=self.name,
            type=_wire(self.type),
            source=_wire(self.source),
            muted=self.muted,
            width=self.width,
            height=self.height,
            disable_dtx=self.disable_dtx,
            disable_red=self.disable_red,
            stereo=self.stereo,
            layers=[layer.to_proto() for layer in self.layers],
            encryption=_wire(self.encryption),
            stream=self.stream,
            sid=self.sid,
            audio_features=_numbers(self.audio_features),
            packet_trailer_features=_numbers(self.packet_trailer_features),
        )

    @classmethod
    def from_proto(cls, pb: pr.AddTrackRequest) -> AddTrackRequest:
        """Build from a ``livekit.AddTrackRequest`` message (simulcast codecs are dropped)."""
        return cls(
            cid=pb.cid,
            name=pb.name,
            type=_enum(TrackType, pb.type),
            source=_enum(TrackSource, pb.source),
            muted=pb.muted,
            width=pb.width,
            height=pb.height,
            disable_dtx=pb.disable_dtx,
            disable_red=pb.disable_red,
            stereo=pb.stereo,
            layers=tuple(VideoLayer.from_proto(v) for v in pb.layers),
            encryption=_enum(EncryptionType, pb.encryption),
            stream=pb.stream,
            sid=pb.sid,
            audio_features=tuple(pb.audio_features),
            packet_trailer_features=tuple(pb.packet_trailer_features),
        )


@dataclass(frozen=True, slots=True)
class UpdateSubscription:
    """``subscription`` (UpdateSubscription): subscribe to / unsubscribe from remote tracks."""

    FIELD: ClassVar[str] = "subscription"
    track_sids: tuple[str, ...]
    subscribe: bool
    participant_tracks: tuple[ParticipantTracks, ...] = ()

    def to_proto(self) -> pr.UpdateSubscription:
        """Return the ``livekit.UpdateSubscription`` message."""
        return pr.UpdateSubscription(
            track_sids=list(self.track_sids),
            subscribe=self.subscribe,
            participant_tracks=[p.to_proto() for p in self.participant_tracks],
        )

    @classmethod
    def from_proto(cls, pb: pr.UpdateSubscription) -> UpdateSubscription:
        """Build from a ``livekit.UpdateSubscription`` message."""
        return cls(
            track_sids=tuple(pb.track_sids),
            subscribe=pb.subscribe,
            participant_tracks=tuple(ParticipantTracks.from_proto(p) for p in pb.participant_tracks),
        )


@dataclass(frozen=True, slots=True)
class UpdateTrackSettings:
    """``track_setting`` (UpdateTrackSettings): adaptive-stream hints; a dev server may ignore them."""

    FIELD: ClassVar[str] = "track_setting"
    track_sids: tuple[str, ...]
    disabled: bool = False
    quality: VideoQuality = VideoQuality.LOW
    width: int = 0
    height: int = 0
    fps: int = 0
    priority: int = 0

    def to_proto(self) -> pr.UpdateTrackSettings:
        """Return the ``livekit.UpdateTrackSettings`` message."""
        return pr.UpdateTrackSettings(
            track_sids=list(self.track_sids),
            disabled=self.disabled,
            quality=_wire(self.quality),
            width=self.width,
            height=self.height,
            fps=self.fps,
            priority=self.priority,
        )

    @classmethod
    def from_proto(cls, pb: pr.UpdateTrackSettings) -> UpdateTrackSettings:
        """Build from a ``livekit.UpdateTrackSettings`` message."""
        return cls(
            track_sids=tuple(pb.track_sids),
            disabled=pb.disabled,
            quality=_enum(VideoQuality, pb.quality),
            width=pb.width,
            height=pb.height,
            fps=pb.fps,
            priority=pb.priority,
        )


@dataclass(frozen=True, slots=True)
class SubscriptionPermission:
    """``subscription_permission`` (SubscriptionPermission): who may subscribe to the sender's tracks."""

    FIELD: ClassVar[str] = "subscription_permission"
    all_participants: bool = True
    track_permissions: tuple[TrackPermission, ...] = ()

    def to_proto(self) -> pr.SubscriptionPermission:
        """Return the ``livekit.SubscriptionPermission`` message."""
        return pr.SubscriptionPermission(
            all_participants=self.all_participants,
            track_permissions=[t.to_proto() for t in self.track_permissions],
        )

    @classmethod
    def from_proto(cls, pb: pr.SubscriptionPermission) -> SubscriptionPermission:
        """Build from a ``livekit.SubscriptionPermission`` message."""
        return cls(
            all_participants=pb.all_participants,
            track_permissions=tuple(TrackPermission.from_proto(t) for t in pb.track_permissions),
        )


def _optional_sdp(pb: pr.SyncState, field: str) -> SessionDescription | None:
    return SessionDescription.from_proto(getattr(pb, field)) if pb.HasField(field) else None


@dataclass(frozen=True, slots=True)
class SyncState:
    """``sync_state`` (SyncState), sent during a resume. Data-track states are not modelled."""

    FIELD: ClassVar[str] = "sync_state"
    answer: SessionDescription | None = None
    offer: SessionDescription | None = None
    subscription: UpdateSubscription | None = None
    publish_tracks: tuple[TrackPublished, ...] = ()
    data_channels: tuple[DataChannelInfo, ...] = ()
    track_sids_disabled: tuple[str, ...] = ()
    datachannel_receive_states: tuple[DataChannelReceiveState, ...] = ()

    def to_proto(self) -> pr.SyncState:
        """Return the ``livekit.SyncState`` message."""
        pb = pr.SyncState(
            publish_tracks=[t.to_proto() for t in self.publish_tracks],
            data_channels=[d.to_proto() for d in self.data_channels],
            track_sids_disabled=list(self.track_sids_disabled),
            datachannel_receive_states=[s.to_proto() for s in self.datachannel_receive_states],
        )
        if self.answer is not None:
            pb.answer.CopyFrom(self.answer.to_proto())
        if self.offer is not None:
            pb.offer.CopyFrom(self.offer.to_proto())
        if self.subscription is not None:
            pb.subscription.CopyFrom(self.subscription.to_proto())
        return pb

    @classmethod
    def from_proto(cls, pb: pr.SyncState) -> SyncState:
        """Build from a ``livekit.SyncState`` message."""
        has_sub = pb.HasField("subscription")
        return cls(
            answer=_optional_sdp(pb, "answer"),
            offer=_optional_sdp(pb, "offer"),
            subscription=UpdateSubscription.from_proto(pb.subscription) if has_sub else None,
            publish_tracks=tuple(TrackPublished.from_proto(t) for t in pb.publish_tracks),
            data_channels=tuple(DataChannelInfo.from_proto(d) for d in pb.data_channels),
            track_sids_disabled=tuple(pb.track_sids_disabled),
            datachannel_receive_states=tuple(
                DataChannelReceiveState.from_proto(s) for s in pb.datachannel_receive_states
            ),
        )


@dataclass(frozen=True, slots=True)
class SimulateScenario:
    """``simulate`` (SimulateScenario): the client asks the server to stage a fault (``simulate_scenario``).

    ``scenario`` is the oneof's field name (``speaker_update``, ``node_failure``, ``migration``,
    ``server_leave``, ``switch_candidate_protocol``, ``subscriber_bandwidth``,
    ``disconnect_signal_on_resume``, ``disconnect_signal_on_resume_no_messages``,
    ``leave_request_full_reconnect``) and ``value`` its value
    (seconds for ``speaker_update``, a ``CandidateProtocol`` number, bits per second, or 1 for the flags).
    """

    FIELD: ClassVar[str] = "simulate"
    scenario: str
    value: int = 1

    def to_proto(self) -> pr.SimulateScenario:
        """Return the ``livekit.SimulateScenario`` message.

        Raises:
            ValueError: ``scenario`` is not one of the message's fields.
        """
        if self.scenario not in pr.SimulateScenario.DESCRIPTOR.fields_by_name:
            raise ValueError(f"no simulate scenario {self.scenario!r}")
        field = pr.SimulateScenario.DESCRIPTOR.fields_by_name[self.scenario]
        value: Any = bool(self.value) if field.type == field.TYPE_BOOL else self.value
        return pr.SimulateScenario(**{self.scenario: value})

    @classmethod
    def from_proto(cls, pb: pr.SimulateScenario) -> SimulateScenario:
        """Build from a ``livekit.SimulateScenario`` message (an empty one is ``scenario=""``)."""
        field = pb.WhichOneof("scenario") or ""
        return cls(scenario=field, value=int(getattr(pb, field)) if field else 0)


@dataclass(frozen=True, slots=True)
class LegacyPing:
    """``ping`` (int64 ms): the legacy keepalive JS still sends; answered by :class:`LegacyPong`."""

    FIELD: ClassVar[str] = "ping"
    timestamp: int

    def to_proto(self) -> int:
        """Return the scalar field value."""
        return self.timestamp

    @classmethod
    def from_proto(cls, value: int) -> LegacyPing:
        """Build from the scalar field value."""
        return cls(timestamp=value)


@dataclass(frozen=True, slots=True)
class UpdateMetadata:
    """``update_metadata`` (UpdateParticipantMetadata); answered by :class:`RequestResponse` with the
    same ``request_id``. Empty ``name``/``metadata`` mean "unchanged"; an empty attribute value deletes."""

    FIELD: ClassVar[str] = "update_metadata"
    request_id: int = 0
    name: str = ""
    metadata: str = ""
    attributes: StringPairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", frozen_map(self.attributes))

    def to_proto(self) -> pr.UpdateParticipantMetadata:
        """Return the ``livekit.UpdateParticipantMetadata`` message."""
        return pr.UpdateParticipantMetadata(
            request_id=self.request_id,
            name=self.name,
            metadata=self.metadata,
            attributes=dict(self.attributes),
        )

    @classmethod
    def from_proto(cls, pb: pr.UpdateParticipantMetadata) -> UpdateMetadata:
        """Build from a ``livekit.UpdateParticipantMetadata`` message."""
        return cls(
            request_id=pb.request_id,
            name=pb.name,
            metadata=pb.metadata,
            attributes=frozen_map(pb.attributes),
        )


@dataclass(frozen=True, slots=True)
class PingReq:
    """``ping_req`` (Ping): ``timestamp`` in ms and the last measured ``rtt`` in ms."""

    FIELD: ClassVar[str] = "ping_req"
    timestamp: int
    rtt: int = 0

    def to_proto(self) -> pr.Ping:
        """Return the ``livekit.Ping`` message."""
        return pr.Ping(timestamp=self.timestamp, rtt=self.rtt)

    @classmethod
    def from_proto(cls, pb: pr.Ping) -> PingReq:
        """Build from a ``livekit.Ping`` message."""
        return cls(timestamp=pb.timestamp, rtt=pb.rtt)


# --- server → client (SignalResponse) ----------------------------------------------------------------


def _optional(pb: _PbMessage, field: str, build: Any) -> Any:
    """``build(pb.field)`` when the sub-message is present, else None."""
    return build(getattr(pb, field)) if pb.HasField(field) else None


@dataclass(frozen=True, slots=True)
class JoinResponse:
    """``join`` (JoinResponse): the first frame of every session.

    The Rust SDK needs ``room``, a ``participant`` whose sid starts with ``PA_``, ``ping_interval`` and
    ``ping_timeout`` > 0 (seconds) and a semver ``server_info.version`` ≥ 1.8.0.
    """

    FIELD: ClassVar[str] = "join"
    room: RoomInfo | None
    participant: ParticipantInfo | None
    other_participants: tuple[ParticipantInfo, ...] = ()
    server_version: str = ""
    server_info: ServerInfo | None = None
    ice_servers: tuple[IceServer, ...] = ()
    subscriber_primary: bool = True
    fast_publish: bool = False
    ping_interval: int = 5
    ping_timeout: int = 15
    client_configuration: ClientConfiguration | None = None
    server_region: str = ""
    alternative_url: str = ""
    sif_trailer: bytes = b""
    enabled_publish_codecs: tuple[Codec, ...] = ()

    def to_proto(self) -> pr.JoinResponse:
        """Return the ``livekit.JoinResponse`` message."""
        pb = pr.JoinResponse(
            other_participants=[p.to_proto() for p in self.other_participants],
            server_version=self.server_version,
            ice_servers=[s.to_proto() for s in self.ice_servers],
            subscriber_primary=self.subscriber_primary,
            fast_publish=self.fast_publish,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            server_region=self.server_region,
            alternative_url=self.alternative_url,
            sif_trailer=self.sif_trailer,
            enabled_publish_codecs=[c.to_proto() for c in self.enabled_publish_codecs],
        )
        for name in ("room", "participant", "server_info", "client_configuration"):
            value = getattr(self, name)
            if value is not None:
                getattr(pb, name).CopyFrom(value.to_proto())
        return pb

    @classmethod
    def from_proto(cls, pb: pr.JoinResponse) -> JoinResponse:
        """Build from a ``livekit.JoinResponse`` message."""
        return cls(
            room=_optional(pb, "room", RoomInfo.from_proto),
            participant=_optional(pb, "participant", ParticipantInfo.from_proto),
            other_participants=tuple(ParticipantInfo.from_proto(p) for p in pb.other_participants),
            server_version=pb.server_version,
            server_info=_optional(pb, "server_info", ServerInfo.from_proto),
            ice_servers=tuple(IceServer.from_proto(s) for s in pb.ice_servers),
            subscriber_primary=pb.subscriber_primary,
            fast_publish=pb.fast_publish,
            ping_interval=pb.ping_interval,
            ping_timeout=pb.ping_timeout,
            client_configuration=_optional(pb, "client_configuration", ClientConfiguration.from_proto),
            server_region=pb.server_region,
            alternative_url=pb.alternative_url,
            sif_trailer=pb.sif_trailer,
            enabled_publish_codecs=tuple(Codec.from_proto(c) for c in pb.enabled_publish_codecs),
        )


@dataclass(frozen=True, slots=True)
class ParticipantUpdate:
    """``update`` (ParticipantUpdate): complete ParticipantInfos; DISCONNECTED state removes one."""

    FIELD: ClassVar[str] = "update"
    participants: tuple[ParticipantInfo, ...]

    def to_proto(self) -> pr.ParticipantUpdate:
        """Return the ``livekit.ParticipantUpdate`` message."""
        return pr.ParticipantUpdate(participants=[p.to_proto() for p in self.participants])

    @classmethod
    def from_proto(cls, pb: pr.ParticipantUpdate) -> ParticipantUpdate:
        """Build from a ``livekit.ParticipantUpdate`` message."""
        return cls(participants=tuple(ParticipantInfo.from_proto(p) for p in pb.participants))


def _required(pb: _PbMessage, field: str, owner: str) -> Any:
    if not pb.HasField(field):
        raise CodecError(f"{owner} without {field}")
    return getattr(pb, field)


@dataclass(frozen=True, slots=True)
class TrackPublished:
    """``track_published`` (TrackPublishedResponse): the server's ``TR_`` sid for an ``add_track`` cid."""

    FIELD: ClassVar[str] = "track_published"
    cid: str
    track: TrackInfo

    def to_proto(self) -> pr.TrackPublishedResponse:
        """Return the ``livekit.TrackPublishedResponse`` message."""
        return pr.TrackPublishedResponse(cid=self.cid, track=self.track.to_proto())

    @classmethod
    def from_proto(cls, pb: pr.TrackPublishedResponse) -> TrackPublished:
        """Build from a ``livekit.TrackPublishedResponse`` (raises CodecError without ``track``)."""
        return cls(cid=pb.cid, track=TrackInfo.from_proto(_required(pb, "track", "track_published")))


@dataclass(frozen=True, slots=True)
class SpeakersChanged:
    """``speakers_changed`` (SpeakersChanged): send the full active set each time (Rust replaces)."""

    FIELD: ClassVar[str] = "speakers_changed"
    speakers: tuple[SpeakerInfo, ...]

    def to_proto(self) -> pr.SpeakersChanged:
        """Return the ``livekit.SpeakersChanged`` message."""
        return pr.SpeakersChanged(speakers=[s.to_proto() for s in self.speakers])

    @classmethod
    def from_proto(cls, pb: pr.SpeakersChanged) -> SpeakersChanged:
        """Build from a ``livekit.SpeakersChanged`` message."""
        return cls(speakers=tuple(SpeakerInfo.from_proto(s) for s in pb.speakers))


@dataclass(frozen=True, slots=True)
class RoomUpdate:
    """``room_update`` (RoomUpdate): ``room`` is required (Rust unwraps it)."""

    FIELD: ClassVar[str] = "room_update"
    room: RoomInfo

    def to_proto(self) -> pr.RoomUpdate:
        """Return the ``livekit.RoomUpdate`` message."""
        return pr.RoomUpdate(room=self.room.to_proto())

    @classmethod
    def from_proto(cls, pb: pr.RoomUpdate) -> RoomUpdate:
        """Build from a ``livekit.RoomUpdate`` message (raises CodecError without ``room``)."""
        return cls(room=RoomInfo.from_proto(_required(pb, "room", "room_update")))


@dataclass(frozen=True, slots=True)
class ConnectionQualityUpdate:
    """``connection_quality`` (ConnectionQualityUpdate)."""

    FIELD: ClassVar[str] = "connection_quality"
    updates: tuple[ConnectionQualityInfo, ...]

    def to_proto(self) -> pr.ConnectionQualityUpdate:
        """Return the ``livekit.ConnectionQualityUpdate`` message."""
        return pr.ConnectionQualityUpdate(updates=[u.to_proto() for u in self.updates])

    @classmethod
    def from_proto(cls, pb: pr.ConnectionQualityUpdate) -> ConnectionQualityUpdate:
        """Build from a ``livekit.ConnectionQualityUpdate`` message."""
        return cls(updates=tuple(ConnectionQualityInfo.from_proto(u) for u in pb.updates))


@dataclass(frozen=True, slots=True)
class StreamStateUpdate:
    """``stream_state_update`` (StreamStateUpdate): JS only."""

    FIELD: ClassVar[str] = "stream_state_update"
    stream_states: tuple[StreamStateInfo, ...]

    def to_proto(self) -> pr.StreamStateUpdate:
        """Return the ``livekit.StreamStateUpdate`` message."""
        return pr.StreamStateUpdate(stream_states=[s.to_proto() for s in self.stream_states])

    @classmethod
    def from_proto(cls, pb: pr.StreamStateUpdate) -> StreamStateUpdate:
        """Build from a ``livekit.StreamStateUpdate`` message."""
        return cls(stream_states=tuple(StreamStateInfo.from_proto(s) for s in pb.stream_states))


@dataclass(frozen=True, slots=True)
class SubscriptionPermissionUpdate:
    """``subscription_permission_update``: whether we may subscribe to one remote track."""

    FIELD: ClassVar[str] = "subscription_permission_update"
    participant_sid: str
    track_sid: str
    allowed: bool

    def to_proto(self) -> pr.SubscriptionPermissionUpdate:
        """Return the ``livekit.SubscriptionPermissionUpdate`` message."""
        return pr.SubscriptionPermissionUpdate(
            participant_sid=self.participant_sid, track_sid=self.track_sid, allowed=self.allowed
        )

    @classmethod
    def from_proto(cls, pb: pr.SubscriptionPermissionUpdate) -> SubscriptionPermissionUpdate:
        """Build from a ``livekit.SubscriptionPermissionUpdate`` message."""
        return cls(participant_sid=pb.participant_sid, track_sid=pb.track_sid, allowed=pb.allowed)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """``refresh_token`` (string): a fresh access token to use for later reconnects."""

    FIELD: ClassVar[str] = "refresh_token"
    token: str

    def to_proto(self) -> str:
        """Return the scalar field value."""
        return self.token

    @classmethod
    def from_proto(cls, value: str) -> RefreshToken:
        """Build from the scalar field value."""
        return cls(token=value)


@dataclass(frozen=True, slots=True)
class TrackUnpublished:
    """``track_unpublished`` (TrackUnpublishedResponse): a server-initiated unpublish."""

    FIELD: ClassVar[str] = "track_unpublished"
    track_sid: str

    def to_proto(self) -> pr.TrackUnpublishedResponse:
        """Return the ``livekit.TrackUnpublishedResponse`` message."""
        return pr.TrackUnpublishedResponse(track_sid=self.track_sid)

    @classmethod
    def from_proto(cls, pb: pr.TrackUnpublishedResponse) -> TrackUnpublished:
        """Build from a ``livekit.TrackUnpublishedResponse`` message."""
        return cls(track_sid=pb.track_sid)


@dataclass(frozen=True, slots=True)
class LegacyPong:
    """``pong`` (int64 ms): the answer to a legacy :class:`LegacyPing` (the server's clock)."""

    FIELD: ClassVar[str] = "pong"
    timestamp: int

    def to_proto(self) -> int:
        """Return the scalar field value."""
        return self.timestamp

    @classmethod
    def from_proto(cls, value: int) -> LegacyPong:
        """Build from the scalar field value."""
        return cls(timestamp=value)


@dataclass(frozen=True, slots=True)
class ReconnectResponse:
    """``reconnect`` (ReconnectResponse): the first frame of a resumed session (empty fields are fine)."""

    FIELD: ClassVar[str] = "reconnect"
    ice_servers: tuple[IceServer, ...] = ()
    client_configuration: ClientConfiguration | None = None
    server_info: ServerInfo | None = None
    last_message_seq: int = 0

    def to_proto(self) -> pr.ReconnectResponse:
        """Return the ``livekit.ReconnectResponse`` message."""
        pb = pr.ReconnectResponse(
            ice_servers=[s.to_proto() for s in self.ice_servers], last_message_seq=self.last_message_seq
        )
        if self.client_configuration is not None:
            pb.client_configuration.CopyFrom(self.client_configuration.to_proto())
        if self.server_info is not None:
            pb.server_info.CopyFrom(self.server_info.to_proto())
        return pb

    @classmethod
    def from_proto(cls, pb: pr.ReconnectResponse) -> ReconnectResponse:
        """Build from a ``livekit.ReconnectResponse`` message."""
        return cls(
            ice_servers=tuple(IceServer.from_proto(s) for s in pb.ice_servers),
            client_configuration=_optional(pb, "client_configuration", ClientConfiguration.from_proto),
            server_info=_optional(pb, "server_info", ServerInfo.from_proto),
            last_message_seq=pb.last_message_seq,
        )


@dataclass(frozen=True, slots=True)
class PongResp:
    """``pong_resp`` (Pong): echoes the ping's timestamp and adds the server's clock (both ms)."""

    FIELD: ClassVar[str] = "pong_resp"
    last_ping_timestamp: int
    timestamp: int

    def to_proto(self) -> pr.Pong:
        """Return the ``livekit.Pong`` message."""
        return pr.Pong(last_ping_timestamp=self.last_ping_timestamp, timestamp=self.timestamp)

    @classmethod
    def from_proto(cls, pb: pr.Pong) -> PongResp:
        """Build from a ``livekit.Pong`` message."""
        return cls(last_ping_timestamp=pb.last_ping_timestamp, timestamp=pb.timestamp)


@dataclass(frozen=True, slots=True)
class SubscriptionResponse:
    """``subscription_response`` (SubscriptionResponse): a subscription failed."""

    FIELD: ClassVar[str] = "subscription_response"
    track_sid: str
    err: SubscriptionError = SubscriptionError.SE_UNKNOWN

    def to_proto(self) -> pr.SubscriptionResponse:
        """Return the ``livekit.SubscriptionResponse`` message."""
        return pr.SubscriptionResponse(track_sid=self.track_sid, err=_wire(self.err))

    @classmethod
    def from_proto(cls, pb: pr.SubscriptionResponse) -> SubscriptionResponse:
        """Build from a ``livekit.SubscriptionResponse`` message."""
        return cls(track_sid=pb.track_sid, err=_enum(SubscriptionError, pb.err))


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """``request_response`` (RequestResponse): the outcome of the request with ``request_id``.

    Of the copy of the original request the server may attach (the ``request`` oneof) only an ``add_track``'s
    ``cid`` is modelled (``add_track_cid``): an ``add_track`` has no request id, so that copy is how a refusal
    (``NOT_ALLOWED``: no ``canPublish``, or a source outside ``canPublishSources``) names the publish it ends.
    """

    FIELD: ClassVar[str] = "request_response"
    request_id: int
    reason: RequestResponseReason = RequestResponseReason.OK
    message: str = ""
    add_track_cid: str = ""

    def to_proto(self) -> pr.RequestResponse:
        """Return the ``livekit.RequestResponse`` message."""
        pb = pr.RequestResponse(request_id=self.request_id, reason=_wire(self.reason), message=self.message)
        if self.add_track_cid:
            pb.add_track.cid = self.add_track_cid
        return pb

    @classmethod
    def from_proto(cls, pb: pr.RequestResponse) -> RequestResponse:
        """Build from a ``livekit.RequestResponse`` message."""
        return cls(
            request_id=pb.request_id,
            reason=_enum(RequestResponseReason, pb.reason),
            message=pb.message,
            add_track_cid=pb.add_track.cid if pb.WhichOneof("request") == "add_track" else "",
        )


@dataclass(frozen=True, slots=True)
class TrackSubscribed:
    """``track_subscribed`` (TrackSubscribed): someone subscribed to one of our tracks for the first time."""

    FIELD: ClassVar[str] = "track_subscribed"
    track_sid: str

    def to_proto(self) -> pr.TrackSubscribed:
        """Return the ``livekit.TrackSubscribed`` message."""
        return pr.TrackSubscribed(track_sid=self.track_sid)

    @classmethod
    def from_proto(cls, pb: pr.TrackSubscribed) -> TrackSubscribed:
        """Build from a ``livekit.TrackSubscribed`` message."""
        return cls(track_sid=pb.track_sid)


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A valid variant we do not model; ``field`` is its oneof name (e.g. ``"update_layers"``).

    It is never encoded: passing one to an encoder raises LocalProtocolError.
    """

    field: str


# --- the two unions and their codecs -----------------------------------------------------------------

SignalRequestMessage = (
    Offer
    | Answer
    | Trickle
    | AddTrackRequest
    | MuteTrack
    | UpdateSubscription
    | UpdateTrackSettings
    | Leave
    | SubscriptionPermission
    | SyncState
    | LegacyPing
    | UpdateMetadata
    | PingReq
    | SimulateScenario
    | Unhandled
)
"""Everything :func:`decode_request` returns (and :func:`encode_request` takes, except Unhandled)."""

SignalResponseMessage = (
    JoinResponse
    | Answer
    | Offer
    | Trickle
    | ParticipantUpdate
    | TrackPublished
    | Leave
    | MuteTrack
    | SpeakersChanged
    | RoomUpdate
    | ConnectionQualityUpdate
    | StreamStateUpdate
    | SubscriptionPermissionUpdate
    | RefreshToken
    | TrackUnpublished
    | LegacyPong
    | ReconnectResponse
    | PongResp
    | SubscriptionResponse
    | RequestResponse
    | TrackSubscribed
    | Unhandled
)
"""Everything :func:`decode_response` returns (and :func:`encode_response` takes, except Unhandled)."""

_REQUEST_CLASSES: Final = tuple(c for c in get_args(SignalRequestMessage) if c is not Unhandled)
_RESPONSE_CLASSES: Final = tuple(c for c in get_args(SignalResponseMessage) if c is not Unhandled)
# oneof field name -> decoder of that field's value
_REQUEST_DECODERS: Final[dict[str, Any]] = {c.FIELD: c.from_proto for c in _REQUEST_CLASSES}
_RESPONSE_DECODERS: Final[dict[str, Any]] = {c.FIELD: c.from_proto for c in _RESPONSE_CLASSES}


def _encode(envelope: type[_PbMessage], msg: Any, allowed: tuple[type, ...]) -> bytes:
    if not isinstance(msg, allowed):
        raise LocalProtocolError(f"{type(msg).__name__} cannot be sent as a {envelope.__name__}")
    wire: Any = msg
    try:
        return envelope(**{wire.FIELD: wire.to_proto()}).SerializeToString()
    except (ValueError, TypeError) as exc:  # out-of-range integers, wrong value types
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def _decode(envelope: type[_PbMessage], data: bytes, decoders: dict[str, Any]) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"signal frames are binary, got {type(data).__name__}")
    pb = envelope()
    try:
        pb.ParseFromString(data)
    except DecodeError as exc:
        raise CodecError(f"not a {envelope.__name__}: {exc}") from exc
    field = pb.WhichOneof("message")
    if field is None:
        raise CodecError(f"{envelope.__name__} carries no message")
    decoder = decoders.get(field)
    if decoder is None:
        return Unhandled(field)
    return decoder(getattr(pb, field))


def encode_request(msg: SignalRequestMessage) -> bytes:
    """Serialize one client → server message as ``SignalRequest`` bytes.

    Raises:
        LocalProtocolError: ``msg`` is Unhandled or not a request, or a field is out of range.
    """
    return _encode(pr.SignalRequest, msg, _REQUEST_CLASSES)


def decode_request(data: bytes) -> SignalRequestMessage:
    """Parse ``SignalRequest`` bytes (one WebSocket binary frame).

    Raises:
        CodecError: not a SignalRequest, an empty oneof, or a malformed field (e.g. trickle JSON).
    """
    msg: SignalRequestMessage = _decode(pr.SignalRequest, data, _REQUEST_DECODERS)
    return msg


def encode_response(msg: SignalResponseMessage) -> bytes:
    """Serialize one server → client message as ``SignalResponse`` bytes.

    Raises:
        LocalProtocolError: ``msg`` is Unhandled or not a response, a field is out of range, or a
            trickle lacks ``sdp_mid``/``sdp_mline_index`` (the Rust SDK panics on those).
    """
    if isinstance(msg, Trickle) and None in (msg.candidate.sdp_mid, msg.candidate.sdp_mline_index):
        raise LocalProtocolError("a server trickle needs sdp_mid and sdp_mline_index")
    return _encode(pr.SignalResponse, msg, _RESPONSE_CLASSES)


def decode_response(data: bytes) -> SignalResponseMessage:
    """Parse ``SignalResponse`` bytes (one WebSocket binary frame).

    Raises:
        CodecError: not a SignalResponse, an empty oneof, or a malformed/missing required field.
    """
    msg: SignalResponseMessage = _decode(pr.SignalResponse, data, _RESPONSE_DECODERS)
    return msg


# --- v0 join URL query (GET /rtc?...) -----------------------------------------------------------------

_TRUE: Final = frozenset({"1", "t", "true"})
_FALSE: Final = frozenset({"0", "f", "false"})
_INT: Final = re.compile(r"-?[0-9]{1,10}")
# query keys JoinParams models, in the order to_query writes them
_KNOWN_KEYS: Final = (
    "access_token",
    "auto_subscribe",
    "adaptive_stream",
    "sdk",
    "version",
    "protocol",
    "client_protocol",
    "capabilities",
    "os",
    "os_version",
    "device_model",
    "reconnect",
    "sid",
    "reconnect_reason",
)


def _query_bool(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise CodecError(f"query parameter {key}={value!r} is not a boolean")


def _query_int(key: str, value: str) -> int:
    if _INT.fullmatch(value) is None:
        raise CodecError(f"query parameter {key}={value!r} is not an integer")
    return int(value)


def _capabilities(value: str) -> tuple[ClientCapability, ...]:
    """Comma-separated ``ClientInfo.Capability`` names; names this version does not know are skipped."""
    names = ClientCapability.__members__
    return tuple(ClientCapability[name] for name in value.split(",") if name in names)


@dataclass(frozen=True, slots=True)
class JoinParams:
    """The v0 ``/rtc`` query parameters (what a client sends instead of a JoinRequest).

    Defaults are greenroom's client values. ``extra`` keeps parameters we do not model (e.g. the JS
    ``browser`` or server-only ``publish``) as sorted pairs, so a server can still read them.
    """

    access_token: str | None = None
    auto_subscribe: bool = True
    adaptive_stream: bool = False
    sdk: str = "python"
    version: str = ""
    protocol: int = PROTOCOL_VERSION
    client_protocol: int = 0
    capabilities: tuple[ClientCapability, ...] = ()
    os: str = ""
    os_version: str = ""
    device_model: str = ""
    reconnect: bool = False
    sid: str = ""
    reconnect_reason: ReconnectReason | None = None
    extra: StringPairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", frozen_map(self.extra))

    def to_query(self) -> str:
        """Return the URL query string (without ``?``); empty optional values are left out."""
        pairs: list[tuple[str, str]] = []
        if self.access_token is not None:
            pairs.append(("access_token", self.access_token))
        pairs += [
            ("auto_subscribe", "1" if self.auto_subscribe else "0"),
            ("adaptive_stream", "1" if self.adaptive_stream else "0"),
            ("sdk", self.sdk),
            ("version", self.version),
            ("protocol", str(self.protocol)),
            ("client_protocol", str(self.client_protocol)),
        ]
        if self.capabilities:  # enum names, comma-separated (the Rust SDK's signal_client)
            pairs.append(("capabilities", ",".join(c.name for c in self.capabilities)))
        pairs += [(k, v) for k, v in self._optional_pairs() if v]
        return urlencode(pairs + list(self.extra))

    def _optional_pairs(self) -> list[tuple[str, str]]:
        reason = "" if self.reconnect_reason is None else str(int(self.reconnect_reason))
        return [
            ("os", self.os),
            ("os_version", self.os_version),
            ("device_model", self.device_model),
            ("reconnect", "1" if self.reconnect else ""),
            ("sid", self.sid),
            ("reconnect_reason", reason),
        ]

    @classmethod
    def from_query(cls, query: str) -> JoinParams:
        """Parse a URL query string (a leading ``?`` is allowed; a repeated key: the last one wins).

        Raises:
            CodecError: a boolean or integer parameter has an invalid value.
        """
        raw = dict(parse_qsl(query.removeprefix("?"), keep_blank_values=True))
        get = raw.get
        reason = get("reconnect_reason")
        return cls(
            access_token=get("access_token"),
            auto_subscribe=_query_bool("auto_subscribe", get("auto_subscribe", "1")),
            adaptive_stream=_query_bool("adaptive_stream", get("adaptive_stream", "0")),
            sdk=get("sdk", ""),
            version=get("version", ""),
            protocol=_query_int("protocol", get("protocol", "0")),
            client_protocol=_query_int("client_protocol", get("client_protocol", "0")),
            capabilities=_capabilities(get("capabilities", "")),
            os=get("os", ""),
            os_version=get("os_version", ""),
            device_model=get("device_model", ""),
            reconnect=_query_bool("reconnect", get("reconnect", "0")),
            sid=get("sid", ""),
            reconnect_reason=None
            if reason is None
            else _enum(ReconnectReason, _query_int("reconnect_reason", reason)),
            extra=tuple((k, v) for k, v in raw.items() if k not in _KNOWN_KEYS),
        )
