"""Frozen value types for what LiveKit signalling carries (``livekit_models.proto`` and friends).

Every type here is a ``@dataclass(frozen=True, slots=True)`` whose fields are immutable: sequences are
tuples, and string maps (``attributes``, ``mid_to_track_id``) are **tuples of ``(key, value)`` pairs sorted
by key**. The constructor sorts and de-duplicates them (last value wins), so two values that carry the same
map compare and hash equal; use ``dict(info.attributes)`` to read one and :func:`frozen_map` to build one.
(A ``MappingProxyType`` would be read-only too, but it is not hashable, and frozen dataclasses hash.)

Conversion to and from the ``livekit.protocol`` classes is explicit: ``value.to_proto()`` and
``Type.from_proto(message)``. Nothing else in the public API hands out a protobuf object.

Enums are :class:`enum.IntEnum` with the protobuf numbers. LiveKit's enums are open (proto3): a peer newer
than us may send a number we do not know. Decoding maps such a number to the enum's zero member (the proto3
default, e.g. ``TrackSource.UNKNOWN``) instead of failing the whole message.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from greenroom.codecs.errors import CodecError
from greenroom.codecs.proto_enum import ProtoEnum

__all__ = [
    "ClientCapability",
    "ClientConfigSetting",
    "ClientConfiguration",
    "Codec",
    "ConnectionQuality",
    "ConnectionQualityInfo",
    "DataChannelInfo",
    "DataChannelReceiveState",
    "DisconnectReason",
    "EncryptionType",
    "IceCandidate",
    "IceServer",
    "LeaveAction",
    "ParticipantInfo",
    "ParticipantKind",
    "ParticipantPermission",
    "ParticipantState",
    "ParticipantTracks",
    "ReconnectReason",
    "RegionInfo",
    "RequestResponseReason",
    "RoomInfo",
    "ServerEdition",
    "ServerInfo",
    "SessionDescription",
    "SignalTarget",
    "SimulcastCodecInfo",
    "SpeakerInfo",
    "StreamState",
    "StreamStateInfo",
    "StringPairs",
    "SubscriptionError",
    "TrackInfo",
    "TrackPermission",
    "TrackSource",
    "TrackType",
    "VideoLayer",
    "VideoQuality",
    "frozen_map",
]

StringPairs = tuple[tuple[str, str], ...]
"""An immutable string map: ``(key, value)`` pairs sorted by key."""


def frozen_map(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> StringPairs:
    """Return the canonical immutable form of a string map.

    Args:
        pairs: a mapping, or ``(key, value)`` pairs (a later duplicate key wins).

    Returns:
        The pairs sorted by key, one per key.
    """
    return tuple(sorted(dict(pairs).items()))


# --- enums (numbers are the protobuf ones) -----------------------------------------------------------


class ParticipantState(enum.IntEnum):
    """``ParticipantInfo.State``."""

    JOINING = 0
    JOINED = 1
    ACTIVE = 2
    DISCONNECTED = 3


class ParticipantKind(enum.IntEnum):
    """``ParticipantInfo.Kind``."""

    STANDARD = 0
    INGRESS = 1
    EGRESS = 2
    SIP = 3
    AGENT = 4
    CONNECTOR = 7
    BRIDGE = 8


class TrackType(enum.IntEnum):
    """``livekit.TrackType`` (the Rust SDK accepts only AUDIO and VIDEO in a TrackInfo)."""

    AUDIO = 0
    VIDEO = 1
    DATA = 2


class TrackSource(enum.IntEnum):
    """``livekit.TrackSource``."""

    UNKNOWN = 0
    CAMERA = 1
    MICROPHONE = 2
    SCREEN_SHARE = 3
    SCREEN_SHARE_AUDIO = 4


class DisconnectReason(ProtoEnum):
    """``livekit.DisconnectReason``; ``RemoteProtocolError.leave_reason`` holds one of these names."""

    UNKNOWN_REASON = 0
    CLIENT_INITIATED = 1
    DUPLICATE_IDENTITY = 2
    SERVER_SHUTDOWN = 3
    PARTICIPANT_REMOVED = 4
    ROOM_DELETED = 5
    STATE_MISMATCH = 6
    JOIN_FAILURE = 7
    MIGRATION = 8
    SIGNAL_CLOSE = 9
    ROOM_CLOSED = 10
    USER_UNAVAILABLE = 11
    USER_REJECTED = 12
    SIP_TRUNK_FAILURE = 13
    CONNECTION_TIMEOUT = 14
    MEDIA_FAILURE = 15
    AGENT_ERROR = 16


class ReconnectReason(enum.IntEnum):
    """``livekit.ReconnectReason`` (sent as ``reconnect_reason`` on a v0 resume URL)."""

    RR_UNKNOWN = 0
    RR_SIGNAL_DISCONNECTED = 1
    RR_PUBLISHER_FAILED = 2
    RR_SUBSCRIBER_FAILED = 3
    RR_SWITCH_CANDIDATE = 4


class ConnectionQuality(enum.IntEnum):
    """``livekit.ConnectionQuality``."""

    POOR = 0
    GOOD = 1
    EXCELLENT = 2
    LOST = 3


class StreamState(enum.IntEnum):
    """``livekit.StreamState``."""

    ACTIVE = 0
    PAUSED = 1


class SignalTarget(enum.IntEnum):
    """``livekit.SignalTarget``: which of the *client's* peer connections a candidate belongs to."""

    PUBLISHER = 0
    SUBSCRIBER = 1


class LeaveAction(enum.IntEnum):
    """``LeaveRequest.Action``."""

    DISCONNECT = 0
    RESUME = 1
    RECONNECT = 2


class RequestResponseReason(enum.IntEnum):
    """``RequestResponse.Reason``."""

    OK = 0
    NOT_FOUND = 1
    NOT_ALLOWED = 2
    LIMIT_EXCEEDED = 3
    QUEUED = 4
    UNSUPPORTED_TYPE = 5
    UNCLASSIFIED_ERROR = 6
    INVALID_HANDLE = 7
    INVALID_NAME = 8
    DUPLICATE_HANDLE = 9
    DUPLICATE_NAME = 10
    INVALID_REQUEST = 11


class VideoQuality(enum.IntEnum):
    """``livekit.VideoQuality``."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    OFF = 3


class ServerEdition(enum.IntEnum):
    """``ServerInfo.Edition``."""

    STANDARD = 0
    CLOUD = 1


class EncryptionType(enum.IntEnum):
    """``Encryption.Type``."""

    NONE = 0
    GCM = 1
    CUSTOM = 2


class SubscriptionError(enum.IntEnum):
    """``livekit.SubscriptionError``."""

    SE_UNKNOWN = 0
    SE_CODEC_UNSUPPORTED = 1
    SE_TRACK_NOTFOUND = 2


class ClientCapability(enum.IntEnum):
    """``livekit.ClientInfo.Capability``: what a client can receive (``ParticipantInfo.capabilities``).

    ``CAP_COMPRESSION_DEFLATE_RAW``: it inflates raw-DEFLATE data streams; ``CAP_PACKET_TRAILER``: it accepts
    the media packet trailer (LKTS frame metadata).
    """

    CAP_UNUSED = 0
    CAP_PACKET_TRAILER = 1
    CAP_COMPRESSION_DEFLATE_RAW = 2


class ClientConfigSetting(enum.IntEnum):
    """``livekit.ClientConfigSetting``."""

    UNSET = 0
    DISABLED = 1
    ENABLED = 2


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(cls: type[_E], value: int) -> _E:
    """Decode an open protobuf enum: an unknown number becomes the zero member."""
    try:
        return cls(value)
    except ValueError:
        return cls(0)


def _enums(cls: type[_E], values: Iterable[int]) -> tuple[_E, ...]:
    return tuple(_enum(cls, v) for v in values)


def _any(value: int) -> Any:
    """A number as a protobuf enum field takes it (a capability a newer client announced stays as is)."""
    return value


def _wire(value: enum.IntEnum) -> Any:
    """An enum as the protobuf constructors take it (their stubs want the protobuf enum type)."""
    return int(value)


def _numbers(values: tuple[int, ...]) -> Any:
    """Repeated enum numbers as the protobuf constructors take them (their stubs want the enum type)."""
    return list(values)


# --- livekit_models.proto ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """``livekit.Codec``: a codec the room enables or the server accepts for publishing."""

    mime: str
    fmtp_line: str = ""

    def to_proto(self) -> pm.Codec:
        """Return the ``livekit.Codec`` message."""
        return pm.Codec(mime=self.mime, fmtp_line=self.fmtp_line)

    @classmethod
    def from_proto(cls, pb: pm.Codec) -> Codec:
        """Build from a ``livekit.Codec`` message."""
        return cls(mime=pb.mime, fmtp_line=pb.fmtp_line)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """``livekit.Room`` (JoinResponse.room, RoomUpdate.room). Room sids start with ``RM_``."""

    sid: str
    name: str
    metadata: str = ""
    num_participants: int = 0
    num_publishers: int = 0
    creation_time: int = 0
    creation_time_ms: int = 0
    empty_timeout: int = 0
    departure_timeout: int = 0
    max_participants: int = 0
    active_recording: bool = False
    enabled_codecs: tuple[Codec, ...] = ()

    def to_proto(self) -> pm.Room:
        """Return the ``livekit.Room`` message."""
        return pm.Room(
            sid=self.sid,
            name=self.name,
            metadata=self.metadata,
            num_participants=self.num_participants,
            num_publishers=self.num_publishers,
            creation_time=self.creation_time,
            creation_time_ms=self.creation_time_ms,
            empty_timeout=self.empty_timeout,
            departure_timeout=self.departure_timeout,
            max_participants=self.max_participants,
            active_recording=self.active_recording,
            enabled_codecs=[c.to_proto() for c in self.enabled_codecs],
        )

    @classmethod
    def from_proto(cls, pb: pm.Room) -> RoomInfo:
        """Build from a ``livekit.Room`` message."""
        return cls(
            sid=pb.sid,
            name=pb.name,
            metadata=pb.metadata,
            num_participants=pb.num_participants,
            num_publishers=pb.num_publishers,
            creation_time=pb.creation_time,
            creation_time_ms=pb.creation_time_ms,
            empty_timeout=pb.empty_timeout,
            departure_timeout=pb.departure_timeout,
            max_participants=pb.max_participants,
            active_recording=pb.active_recording,
            enabled_codecs=tuple(Codec.from_proto(c) for c in pb.enabled_codecs),
        )


@dataclass(frozen=True, slots=True)
class ParticipantPermission:
    """``livekit.ParticipantPermission`` (JS refuses to publish without ``can_publish``)."""

    can_subscribe: bool = True
    can_publish: bool = True
    can_publish_data: bool = True
    can_publish_sources: tuple[TrackSource, ...] = ()
    hidden: bool = False
    recorder: bool = False
    can_update_metadata: bool = False
    agent: bool = False

    def to_proto(self) -> pm.ParticipantPermission:
        """Return the ``livekit.ParticipantPermission`` message."""
        return pm.ParticipantPermission(
            can_subscribe=self.can_subscribe,
            can_publish=self.can_publish,
            can_publish_data=self.can_publish_data,
            can_publish_sources=[_wire(s) for s in self.can_publish_sources],
            hidden=self.hidden,
            recorder=self.recorder,
            can_update_metadata=self.can_update_metadata,
            agent=self.agent,
        )

    @classmethod
    def from_proto(cls, pb: pm.ParticipantPermission) -> ParticipantPermission:
        """Build from a ``livekit.ParticipantPermission`` message."""
        return cls(
            can_subscribe=pb.can_subscribe,
            can_publish=pb.can_publish,
            can_publish_data=pb.can_publish_data,
            can_publish_sources=_enums(TrackSource, pb.can_publish_sources),
            hidden=pb.hidden,
            recorder=pb.recorder,
            can_update_metadata=pb.can_update_metadata,
            agent=pb.agent,
        )


@dataclass(frozen=True, slots=True)
class VideoLayer:
    """``livekit.VideoLayer``: one simulcast layer."""

    quality: VideoQuality = VideoQuality.LOW
    width: int = 0
    height: int = 0
    bitrate: int = 0
    ssrc: int = 0
    rid: str = ""

    def to_proto(self) -> pm.VideoLayer:
        """Return the ``livekit.VideoLayer`` message."""
        return pm.VideoLayer(
            quality=_wire(self.quality),
            width=self.width,
            height=self.height,
            bitrate=self.bitrate,
            ssrc=self.ssrc,
            rid=self.rid,
        )

    @classmethod
    def from_proto(cls, pb: pm.VideoLayer) -> VideoLayer:
        """Build from a ``livekit.VideoLayer`` message."""
        return cls(
            quality=_enum(VideoQuality, pb.quality),
            width=pb.width,
            height=pb.height,
            bitrate=pb.bitrate,
            ssrc=pb.ssrc,
            rid=pb.rid,
        )


@dataclass(frozen=True, slots=True)
class SimulcastCodecInfo:
    """``livekit.SimulcastCodecInfo`` (TrackInfo.codecs)."""

    mime_type: str
    mid: str = ""
    cid: str = ""
    layers: tuple[VideoLayer, ...] = ()

    def to_proto(self) -> pm.SimulcastCodecInfo:
        """Return the ``livekit.SimulcastCodecInfo`` message."""
        return pm.SimulcastCodecInfo(
            mime_type=self.mime_type,
            mid=self.mid,
            cid=self.cid,
            layers=[layer.to_proto() for layer in self.layers],
        )

    @classmethod
    def from_proto(cls, pb: pm.SimulcastCodecInfo) -> SimulcastCodecInfo:
        """Build from a ``livekit.SimulcastCodecInfo`` message."""
        return cls(
            mime_type=pb.mime_type,
            mid=pb.mid,
            cid=pb.cid,
            layers=tuple(VideoLayer.from_proto(v) for v in pb.layers),
        )


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """``livekit.TrackInfo``: one published track. Track sids start with ``TR_``."""

    sid: str
    type: TrackType
    name: str = ""
    source: TrackSource = TrackSource.UNKNOWN
    muted: bool = False
    width: int = 0
    height: int = 0
    simulcast: bool = False
    disable_dtx: bool = False
    layers: tuple[VideoLayer, ...] = ()
    mime_type: str = ""
    mid: str = ""
    codecs: tuple[SimulcastCodecInfo, ...] = ()
    stereo: bool = False
    disable_red: bool = False
    encryption: EncryptionType = EncryptionType.NONE
    stream: str = ""
    #: ``livekit.AudioTrackFeature`` numbers (stereo, no DTX, AGC …), as the publisher announced them
    audio_features: tuple[int, ...] = ()
    #: ``livekit.PacketTrailerFeature`` numbers: the per-frame metadata the publisher's frames carry
    packet_trailer_features: tuple[int, ...] = ()

    def to_proto(self) -> pm.TrackInfo:
        """Return the ``livekit.TrackInfo`` message."""
        return pm.TrackInfo(
            sid=self.sid,
            type=_wire(self.type),
            name=self.name,
            source=_wire(self.source),
            muted=self.muted,
            width=self.width,
            height=self.height,
            simulcast=self.simulcast,
            disable_dtx=self.disable_dtx,
            layers=[layer.to_proto() for layer in self.layers],
            mime_type=self.mime_type,
            mid=self.mid,
            codecs=[c.to_proto() for c in self.codecs],
            stereo=self.stereo,
            disable_red=self.disable_red,
            encryption=_wire(self.encryption),
            stream=self.stream,
            audio_features=_numbers(self.audio_features),
            packet_trailer_features=_numbers(self.packet_trailer_features),
        )

    @classmethod
    def from_proto(cls, pb: pm.TrackInfo) -> TrackInfo:
        """Build from a ``livekit.TrackInfo`` message."""
        return cls(
            sid=pb.sid,
            type=_enum(TrackType, pb.type),
            name=pb.name,
            source=_enum(TrackSource, pb.source),
            muted=pb.muted,
            width=pb.width,
            height=pb.height,
            simulcast=pb.simulcast,
            disable_dtx=pb.disable_dtx,
            layers=tuple(VideoLayer.from_proto(v) for v in pb.layers),
            mime_type=pb.mime_type,
            mid=pb.mid,
            codecs=tuple(SimulcastCodecInfo.from_proto(c) for c in pb.codecs),
            stereo=pb.stereo,
            disable_red=pb.disable_red,
            encryption=_enum(EncryptionType, pb.encryption),
            stream=pb.stream,
            audio_features=tuple(pb.audio_features),
            packet_trailer_features=tuple(pb.packet_trailer_features),
        )


@dataclass(frozen=True, slots=True)
class ParticipantInfo:
    """``livekit.ParticipantInfo``: always complete (all tracks); ``version`` must grow on every change.

    ``attributes`` is a sorted tuple of pairs (see the module docstring). Participant sids start with ``PA_``.
    """

    sid: str
    identity: str
    name: str = ""
    metadata: str = ""
    attributes: StringPairs = ()
    state: ParticipantState = ParticipantState.JOINING
    kind: ParticipantKind = ParticipantKind.STANDARD
    tracks: tuple[TrackInfo, ...] = ()
    version: int = 0
    permission: ParticipantPermission | None = None
    joined_at: int = 0
    joined_at_ms: int = 0
    is_publisher: bool = False
    region: str = ""
    disconnect_reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON
    client_protocol: int = 0
    capabilities: tuple[int, ...] = ()
    """``ClientCapability`` numbers as announced (kept as numbers: a newer client may announce more)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", frozen_map(self.attributes))

    def to_proto(self) -> pm.ParticipantInfo:
        """Return the ``livekit.ParticipantInfo`` message."""
        pb = pm.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            attributes=dict(self.attributes),
            state=_wire(self.state),
            kind=_wire(self.kind),
            tracks=[t.to_proto() for t in self.tracks],
            version=self.version,
            joined_at=self.joined_at,
            joined_at_ms=self.joined_at_ms,
            is_publisher=self.is_publisher,
            region=self.region,
            disconnect_reason=_wire(self.disconnect_reason),
            client_protocol=self.client_protocol,
            capabilities=[_any(c) for c in self.capabilities],
        )
        if self.permission is not None:
            pb.permission.CopyFrom(self.permission.to_proto())
        return pb

    @classmethod
    def from_proto(cls, pb: pm.ParticipantInfo) -> ParticipantInfo:
        """Build from a ``livekit.ParticipantInfo`` message."""
        permission = ParticipantPermission.from_proto(pb.permission) if pb.HasField("permission") else None
        return cls(
            sid=pb.sid,
            identity=pb.identity,
            name=pb.name,
            metadata=pb.metadata,
            attributes=frozen_map(pb.attributes),
            state=_enum(ParticipantState, pb.state),
            kind=_enum(ParticipantKind, pb.kind),
            tracks=tuple(TrackInfo.from_proto(t) for t in pb.tracks),
            version=pb.version,
            permission=permission,
            joined_at=pb.joined_at,
            joined_at_ms=pb.joined_at_ms,
            is_publisher=pb.is_publisher,
            region=pb.region,
            disconnect_reason=_enum(DisconnectReason, pb.disconnect_reason),
            client_protocol=pb.client_protocol,
            capabilities=tuple(pb.capabilities),
        )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """``livekit.ServerInfo``: ``version`` must be semver ≥ 1.8.0 for the SDKs' RPC."""

    version: str
    edition: ServerEdition = ServerEdition.STANDARD
    protocol: int = 0
    region: str = ""
    node_id: str = ""
    debug_info: str = ""
    agent_protocol: int = 0

    def to_proto(self) -> pm.ServerInfo:
        """Return the ``livekit.ServerInfo`` message."""
        return pm.ServerInfo(
            version=self.version,
            edition=_wire(self.edition),
            protocol=self.protocol,
            region=self.region,
            node_id=self.node_id,
            debug_info=self.debug_info,
            agent_protocol=self.agent_protocol,
        )

    @classmethod
    def from_proto(cls, pb: pm.ServerInfo) -> ServerInfo:
        """Build from a ``livekit.ServerInfo`` message."""
        return cls(
            version=pb.version,
            edition=_enum(ServerEdition, pb.edition),
            protocol=pb.protocol,
            region=pb.region,
            node_id=pb.node_id,
            debug_info=pb.debug_info,
            agent_protocol=pb.agent_protocol,
        )


@dataclass(frozen=True, slots=True)
class ClientConfiguration:
    """``livekit.ClientConfiguration``, reduced to the two settings the SDKs act on."""

    resume_connection: ClientConfigSetting = ClientConfigSetting.UNSET
    force_relay: ClientConfigSetting = ClientConfigSetting.UNSET

    def to_proto(self) -> pm.ClientConfiguration:
        """Return the ``livekit.ClientConfiguration`` message."""
        return pm.ClientConfiguration(
            resume_connection=_wire(self.resume_connection), force_relay=_wire(self.force_relay)
        )

    @classmethod
    def from_proto(cls, pb: pm.ClientConfiguration) -> ClientConfiguration:
        """Build from a ``livekit.ClientConfiguration`` message (video/screen/codec hints are dropped)."""
        return cls(
            resume_connection=_enum(ClientConfigSetting, pb.resume_connection),
            force_relay=_enum(ClientConfigSetting, pb.force_relay),
        )


@dataclass(frozen=True, slots=True)
class SpeakerInfo:
    """``livekit.SpeakerInfo`` (SpeakersChanged). ``level`` travels as a float32."""

    sid: str
    level: float = 0.0
    active: bool = False

    def to_proto(self) -> pm.SpeakerInfo:
        """Return the ``livekit.SpeakerInfo`` message."""
        return pm.SpeakerInfo(sid=self.sid, level=self.level, active=self.active)

    @classmethod
    def from_proto(cls, pb: pm.SpeakerInfo) -> SpeakerInfo:
        """Build from a ``livekit.SpeakerInfo`` message."""
        return cls(sid=pb.sid, level=pb.level, active=pb.active)


@dataclass(frozen=True, slots=True)
class ParticipantTracks:
    """``livekit.ParticipantTracks`` (UpdateSubscription.participant_tracks)."""

    participant_sid: str
    track_sids: tuple[str, ...] = ()

    def to_proto(self) -> pm.ParticipantTracks:
        """Return the ``livekit.ParticipantTracks`` message."""
        return pm.ParticipantTracks(participant_sid=self.participant_sid, track_sids=list(self.track_sids))

    @classmethod
    def from_proto(cls, pb: pm.ParticipantTracks) -> ParticipantTracks:
        """Build from a ``livekit.ParticipantTracks`` message."""
        return cls(participant_sid=pb.participant_sid, track_sids=tuple(pb.track_sids))


# --- value types from livekit_rtc.proto --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IceServer:
    """``livekit.ICEServer`` (JoinResponse/ReconnectResponse.ice_servers)."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""

    def to_proto(self) -> pr.ICEServer:
        """Return the ``livekit.ICEServer`` message."""
        return pr.ICEServer(urls=list(self.urls), username=self.username, credential=self.credential)

    @classmethod
    def from_proto(cls, pb: pr.ICEServer) -> IceServer:
        """Build from a ``livekit.ICEServer`` message."""
        return cls(urls=tuple(pb.urls), username=pb.username, credential=pb.credential)


@dataclass(frozen=True, slots=True)
class ConnectionQualityInfo:
    """``livekit.ConnectionQualityInfo``. ``score`` travels as a float32."""

    participant_sid: str
    quality: ConnectionQuality
    score: float = 0.0

    def to_proto(self) -> pr.ConnectionQualityInfo:
        """Return the ``livekit.ConnectionQualityInfo`` message."""
        return pr.ConnectionQualityInfo(
            participant_sid=self.participant_sid, quality=_wire(self.quality), score=self.score
        )

    @classmethod
    def from_proto(cls, pb: pr.ConnectionQualityInfo) -> ConnectionQualityInfo:
        """Build from a ``livekit.ConnectionQualityInfo`` message."""
        return cls(
            participant_sid=pb.participant_sid,
            quality=_enum(ConnectionQuality, pb.quality),
            score=pb.score,
        )


@dataclass(frozen=True, slots=True)
class StreamStateInfo:
    """``livekit.StreamStateInfo`` (StreamStateUpdate)."""

    participant_sid: str
    track_sid: str
    state: StreamState

    def to_proto(self) -> pr.StreamStateInfo:
        """Return the ``livekit.StreamStateInfo`` message."""
        return pr.StreamStateInfo(
            participant_sid=self.participant_sid, track_sid=self.track_sid, state=_wire(self.state)
        )

    @classmethod
    def from_proto(cls, pb: pr.StreamStateInfo) -> StreamStateInfo:
        """Build from a ``livekit.StreamStateInfo`` message."""
        return cls(
            participant_sid=pb.participant_sid,
            track_sid=pb.track_sid,
            state=_enum(StreamState, pb.state),
        )


@dataclass(frozen=True, slots=True)
class TrackPermission:
    """``livekit.TrackPermission`` (SubscriptionPermission.track_permissions)."""

    participant_sid: str = ""
    participant_identity: str = ""
    all_tracks: bool = False
    track_sids: tuple[str, ...] = ()

    def to_proto(self) -> pr.TrackPermission:
        """Return the ``livekit.TrackPermission`` message."""
        return pr.TrackPermission(
            participant_sid=self.participant_sid,
            participant_identity=self.participant_identity,
            all_tracks=self.all_tracks,
            track_sids=list(self.track_sids),
        )

    @classmethod
    def from_proto(cls, pb: pr.TrackPermission) -> TrackPermission:
        """Build from a ``livekit.TrackPermission`` message."""
        return cls(
            participant_sid=pb.participant_sid,
            participant_identity=pb.participant_identity,
            all_tracks=pb.all_tracks,
            track_sids=tuple(pb.track_sids),
        )


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """``livekit.RegionInfo`` (LeaveRequest.regions)."""

    region: str
    url: str = ""
    distance: int = 0

    def to_proto(self) -> pr.RegionInfo:
        """Return the ``livekit.RegionInfo`` message."""
        return pr.RegionInfo(region=self.region, url=self.url, distance=self.distance)

    @classmethod
    def from_proto(cls, pb: pr.RegionInfo) -> RegionInfo:
        """Build from a ``livekit.RegionInfo`` message."""
        return cls(region=pb.region, url=pb.url, distance=pb.distance)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """``livekit.SessionDescription`` as carried inside SyncState.

    ``type`` is the lower-case SDP type (``"offer"``, ``"answer"``, ``"pranswer"``, ``"rollback"``);
    ``id`` numbers negotiations (always echo an offer's id in its answer); ``mid_to_track_id`` is only used
    in single-PC mode.
    """

    type: str
    sdp: str
    id: int = 0
    mid_to_track_id: StringPairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mid_to_track_id", frozen_map(self.mid_to_track_id))

    def to_proto(self) -> pr.SessionDescription:
        """Return the ``livekit.SessionDescription`` message."""
        return pr.SessionDescription(
            type=self.type, sdp=self.sdp, id=self.id, mid_to_track_id=dict(self.mid_to_track_id)
        )

    @classmethod
    def from_proto(cls, pb: pr.SessionDescription) -> SessionDescription:
        """Build from a ``livekit.SessionDescription`` message."""
        return cls(type=pb.type, sdp=pb.sdp, id=pb.id, mid_to_track_id=frozen_map(pb.mid_to_track_id))


@dataclass(frozen=True, slots=True)
class DataChannelInfo:
    """``livekit.DataChannelInfo`` (SyncState.data_channels)."""

    label: str
    id: int = 0
    target: SignalTarget = SignalTarget.PUBLISHER

    def to_proto(self) -> pr.DataChannelInfo:
        """Return the ``livekit.DataChannelInfo`` message."""
        return pr.DataChannelInfo(label=self.label, id=self.id, target=_wire(self.target))

    @classmethod
    def from_proto(cls, pb: pr.DataChannelInfo) -> DataChannelInfo:
        """Build from a ``livekit.DataChannelInfo`` message."""
        return cls(label=pb.label, id=pb.id, target=_enum(SignalTarget, pb.target))


@dataclass(frozen=True, slots=True)
class DataChannelReceiveState:
    """``livekit.DataChannelReceiveState`` (SyncState.datachannel_receive_states)."""

    publisher_sid: str
    last_seq: int = 0

    def to_proto(self) -> pr.DataChannelReceiveState:
        """Return the ``livekit.DataChannelReceiveState`` message."""
        return pr.DataChannelReceiveState(publisher_sid=self.publisher_sid, last_seq=self.last_seq)

    @classmethod
    def from_proto(cls, pb: pr.DataChannelReceiveState) -> DataChannelReceiveState:
        """Build from a ``livekit.DataChannelReceiveState`` message."""
        return cls(publisher_sid=pb.publisher_sid, last_seq=pb.last_seq)


_MAX_MLINE_INDEX = 0xFFFF  # RTCIceCandidateInit.sdpMLineIndex is an unsigned short


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """An ``RTCIceCandidateInit``: the JSON inside ``TrickleRequest.candidateInit``.

    ``candidate`` is the ``candidate:…`` attribute line (empty = end of candidates). The Rust SDK panics on
    a server trickle without ``sdp_mid`` or ``sdp_mline_index``, so a server must set both.
    """

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def to_json(self) -> str:
        """Return the ``candidateInit`` JSON (keys that are ``None`` are left out)."""
        obj: dict[str, str | int] = {"candidate": self.candidate}
        if self.sdp_mid is not None:
            obj["sdpMid"] = self.sdp_mid
        if self.sdp_mline_index is not None:
            obj["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            obj["usernameFragment"] = self.username_fragment
        return json.dumps(obj, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> IceCandidate:
        """Parse a ``candidateInit`` JSON string; unknown keys are ignored.

        Raises:
            CodecError: not JSON, not an object, or a key of the wrong type.
        """
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise CodecError(f"trickle candidateInit is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise CodecError("trickle candidateInit is not a JSON object")
        index = obj.get("sdpMLineIndex")
        valid_index = index is None or (
            isinstance(index, int) and not isinstance(index, bool) and 0 <= index <= _MAX_MLINE_INDEX
        )
        if not valid_index:
            raise CodecError(f"trickle sdpMLineIndex is invalid: {index!r}")
        return cls(
            candidate=_json_str(obj, "candidate", required=True) or "",
            sdp_mid=_json_str(obj, "sdpMid"),
            sdp_mline_index=index,
            username_fragment=_json_str(obj, "usernameFragment"),
        )


def _json_str(obj: dict[str, object], key: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise CodecError(f"trickle {key} must be a string, got {value!r}")
    return value
