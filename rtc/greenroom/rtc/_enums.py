"""The facade's enums: ``livekit.rtc``'s member names and numbers, with converters from the wire enums.

The official SDK exposes FFI protobuf enums whose numbers sometimes differ from the signalling protocol's:
``DataPacketKind`` is ``KIND_LOSSY=0, KIND_RELIABLE=1`` (the wire ``DataPacket.Kind`` is the reverse),
``TrackKind`` starts at ``KIND_UNKNOWN=0`` (the wire ``TrackType`` has ``AUDIO=0``) and ``ParticipantKind``
numbers ``CONNECTOR``/``BRIDGE`` 5/6 (7/8 on the wire). Every conversion goes through a function here, never
through a numeric cast.
"""

from __future__ import annotations

from greenroom.codecs import models
from greenroom.codecs.proto_enum import ProtoEnum

__all__ = [
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataPacketKind",
    "DisconnectReason",
    "EncodedFrameType",
    "FrameMetadataFeature",
    "IceTransportType",
    "ParticipantKind",
    "ParticipantState",
    "SimulateScenarioKind",
    "TrackKind",
    "TrackSource",
    "VideoCodec",
    "VideoEncoderBackend",
    "VideoQuality",
    "participant_kind",
    "participant_state",
    "track_kind",
    "track_source",
]

DisconnectReason = models.DisconnectReason
"""Why a room or participant was disconnected (same names and numbers as ``livekit.rtc``)."""


class ConnectionState(ProtoEnum):
    """The room's connection state (there is no "connecting" value, as in ``livekit.rtc``)."""

    CONN_DISCONNECTED = 0
    CONN_CONNECTED = 1
    CONN_RECONNECTING = 2


class DataPacketKind(ProtoEnum):
    """How a data packet travelled (FFI numbering: the reverse of the wire's ``DataPacket.Kind``)."""

    KIND_LOSSY = 0
    KIND_RELIABLE = 1


class IceTransportType(ProtoEnum):
    """Which ICE candidates may be used."""

    TRANSPORT_RELAY = 0
    TRANSPORT_NOHOST = 1
    TRANSPORT_ALL = 2


class ContinualGatheringPolicy(ProtoEnum):
    """Whether ICE keeps gathering after the first candidates."""

    GATHER_ONCE = 0
    GATHER_CONTINUALLY = 1


class ParticipantKind(ProtoEnum):
    """What kind of client a participant is."""

    PARTICIPANT_KIND_STANDARD = 0
    PARTICIPANT_KIND_INGRESS = 1
    PARTICIPANT_KIND_EGRESS = 2
    PARTICIPANT_KIND_SIP = 3
    PARTICIPANT_KIND_AGENT = 4
    PARTICIPANT_KIND_CONNECTOR = 5
    PARTICIPANT_KIND_BRIDGE = 6


class ParticipantState(ProtoEnum):
    """A participant's lifecycle state."""

    PARTICIPANT_STATE_JOINING = 0
    PARTICIPANT_STATE_JOINED = 1
    PARTICIPANT_STATE_ACTIVE = 2
    PARTICIPANT_STATE_DISCONNECTED = 3


class TrackKind(ProtoEnum):
    """Audio or video."""

    KIND_UNKNOWN = 0
    KIND_AUDIO = 1
    KIND_VIDEO = 2


class TrackSource(ProtoEnum):
    """Where a track comes from."""

    SOURCE_UNKNOWN = 0
    SOURCE_CAMERA = 1
    SOURCE_MICROPHONE = 2
    SOURCE_SCREENSHARE = 3
    SOURCE_SCREENSHARE_AUDIO = 4


class ConnectionQuality(ProtoEnum):
    """A participant's connection quality (``QUALITY_UNKNOWN`` has no wire counterpart)."""

    QUALITY_UNKNOWN = -1
    QUALITY_POOR = 0
    QUALITY_GOOD = 1
    QUALITY_EXCELLENT = 2
    QUALITY_LOST = 3


_KINDS = {
    models.ParticipantKind.STANDARD: ParticipantKind.PARTICIPANT_KIND_STANDARD,
    models.ParticipantKind.INGRESS: ParticipantKind.PARTICIPANT_KIND_INGRESS,
    models.ParticipantKind.EGRESS: ParticipantKind.PARTICIPANT_KIND_EGRESS,
    models.ParticipantKind.SIP: ParticipantKind.PARTICIPANT_KIND_SIP,
    models.ParticipantKind.AGENT: ParticipantKind.PARTICIPANT_KIND_AGENT,
    models.ParticipantKind.CONNECTOR: ParticipantKind.PARTICIPANT_KIND_CONNECTOR,
    models.ParticipantKind.BRIDGE: ParticipantKind.PARTICIPANT_KIND_BRIDGE,
}
_TRACK_KINDS = {
    models.TrackType.AUDIO: TrackKind.KIND_AUDIO,
    models.TrackType.VIDEO: TrackKind.KIND_VIDEO,
}
_SOURCES = {
    models.TrackSource.UNKNOWN: TrackSource.SOURCE_UNKNOWN,
    models.TrackSource.CAMERA: TrackSource.SOURCE_CAMERA,
    models.TrackSource.MICROPHONE: TrackSource.SOURCE_MICROPHONE,
    models.TrackSource.SCREEN_SHARE: TrackSource.SOURCE_SCREENSHARE,
    models.TrackSource.SCREEN_SHARE_AUDIO: TrackSource.SOURCE_SCREENSHARE_AUDIO,
}


def participant_kind(kind: models.ParticipantKind) -> ParticipantKind:
    """Convert a wire ``ParticipantInfo.Kind``."""
    return _KINDS.get(kind, ParticipantKind.PARTICIPANT_KIND_STANDARD)


def participant_state(state: models.ParticipantState) -> ParticipantState:
    """Convert a wire ``ParticipantInfo.State`` (same numbering)."""
    return ParticipantState(int(state))


def track_kind(kind: models.TrackType) -> TrackKind:
    """Convert a wire ``TrackType``."""
    return _TRACK_KINDS.get(kind, TrackKind.KIND_UNKNOWN)


def track_source(source: models.TrackSource) -> TrackSource:
    """Convert a wire ``TrackSource``."""
    return _SOURCES.get(source, TrackSource.SOURCE_UNKNOWN)


class VideoCodec(ProtoEnum):
    """A video codec to publish with (``TrackPublishOptions.video_codec``; aiortc sends VP8 or H264)."""

    VP8 = 0
    H264 = 1
    AV1 = 2
    VP9 = 3
    H265 = 4


class VideoQuality(ProtoEnum):
    """A simulcast layer (``RemoteTrackPublication.set_video_quality``): q, h and f."""

    VIDEO_QUALITY_LOW = 0
    VIDEO_QUALITY_MEDIUM = 1
    VIDEO_QUALITY_HIGH = 2


class VideoEncoderBackend(ProtoEnum):
    """Which encoder to use (``TrackPublishOptions.video_encoder``; aiortc has only its software encoders)."""

    ENCODER_BACKEND_AUTO = 0
    ENCODER_BACKEND_SOFTWARE = 1
    ENCODER_BACKEND_HARDWARE = 2
    ENCODER_BACKEND_NVENC = 3
    ENCODER_BACKEND_VAAPI = 4
    ENCODER_BACKEND_VIDEOTOOLBOX = 5
    ENCODER_BACKEND_PRE_ENCODED = 6


class EncodedFrameType(ProtoEnum):
    """Whether a pre-encoded frame is a key frame."""

    ENCODED_FRAME_KEY = 0
    ENCODED_FRAME_DELTA = 1


class FrameMetadataFeature(ProtoEnum):
    """Per-frame metadata a publisher can attach (``TrackPublishOptions.frame_metadata_features``)."""

    FMF_USER_TIMESTAMP = 0
    FMF_FRAME_ID = 1
    FMF_USER_DATA = 2


class SimulateScenarioKind(ProtoEnum):
    """A fault ``Room.simulate_scenario`` stages (the official names and numbers)."""

    SIMULATE_SIGNAL_RECONNECT = 0
    SIMULATE_SPEAKER = 1
    SIMULATE_NODE_FAILURE = 2
    SIMULATE_SERVER_LEAVE = 3
    SIMULATE_MIGRATION = 4
    SIMULATE_FORCE_TCP = 5
    SIMULATE_FORCE_TLS = 6
    SIMULATE_FULL_RECONNECT = 7
    SIMULATE_DISCONNECT_SIGNAL_ON_RESUME = 8
