"""Layer 4: the public Room API, shaped like ``livekit.rtc`` (``from greenroom import rtc``).

Every name here exists in ``livekit.rtc`` with the same meaning (``tests/rtc/test_exports.py`` checks it), so
a program written for ``livekit.rtc`` runs with only its import changed, as far as it uses these names.
The ``Publish*Error`` classes are importable from :mod:`greenroom.rtc.participant`, as with the official SDK.
"""

from __future__ import annotations

from greenroom.rtc._enums import (
    ConnectionQuality,
    ConnectionState,
    ContinualGatheringPolicy,
    DataPacketKind,
    DisconnectReason,
    EncodedFrameType,
    FrameMetadataFeature,
    IceTransportType,
    ParticipantKind,
    ParticipantState,
    SimulateScenarioKind,
    TrackKind,
    TrackSource,
    VideoCodec,
    VideoEncoderBackend,
    VideoQuality,
)
from greenroom.rtc.audio_frame import AudioFrame
from greenroom.rtc.audio_mixer import AudioMixer
from greenroom.rtc.audio_resampler import AudioResampler, AudioResamplerQuality
from greenroom.rtc.audio_source import AudioSource
from greenroom.rtc.audio_stream import AudioFrameEvent, AudioStream
from greenroom.rtc.data_stream import (
    ByteStreamInfo,
    ByteStreamReader,
    ByteStreamWriter,
    StreamError,
    TextStreamInfo,
    TextStreamReader,
    TextStreamWriter,
)
from greenroom.rtc.e2ee import (
    E2EEManager,
    E2EEOptions,
    EncryptionState,
    EncryptionType,
    FrameCryptor,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
)
from greenroom.rtc.event_emitter import EventEmitter
from greenroom.rtc.participant import LocalParticipant, Participant, RemoteParticipant
from greenroom.rtc.publish_options import TrackPublishOptions, VideoEncoding
from greenroom.rtc.room import (
    ConnectError,
    DataPacket,
    DataStreamOptions,
    IceServer,
    Room,
    RoomOptions,
    RtcConfiguration,
    SipDTMF,
)
from greenroom.rtc.rpc import RpcCallInfo, RpcError, RpcInterceptor, RpcInvocationData
from greenroom.rtc.synchronizer import AVSynchronizer
from greenroom.rtc.track import (
    AudioTrack,
    LocalAudioTrack,
    LocalTrack,
    LocalVideoTrack,
    RemoteAudioTrack,
    RemoteTrack,
    RemoteVideoTrack,
    Track,
    VideoTrack,
)
from greenroom.rtc.track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from greenroom.rtc.transcription import Transcription, TranscriptionSegment
from greenroom.rtc.utils import combine_audio_frames
from greenroom.rtc.video_frame import VideoBufferType, VideoFrame, VideoRotation
from greenroom.rtc.video_source import VideoSource
from greenroom.rtc.video_stream import VideoFrameEvent, VideoStream

__version__ = "0.1.0"

__all__ = [
    "AVSynchronizer",
    "AudioFrame",
    "AudioFrameEvent",
    "AudioMixer",
    "AudioResampler",
    "AudioResamplerQuality",
    "AudioSource",
    "AudioStream",
    "AudioTrack",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "ConnectError",
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataPacket",
    "DataPacketKind",
    "DataStreamOptions",
    "DisconnectReason",
    "E2EEManager",
    "E2EEOptions",
    "EncodedFrameType",
    "EncryptionState",
    "EncryptionType",
    "EventEmitter",
    "FrameCryptor",
    "FrameMetadataFeature",
    "IceServer",
    "IceTransportType",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
    "LocalAudioTrack",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "Participant",
    "ParticipantKind",
    "ParticipantState",
    "RemoteAudioTrack",
    "RemoteParticipant",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "Room",
    "RoomOptions",
    "RpcCallInfo",
    "RpcError",
    "RpcInterceptor",
    "RpcInvocationData",
    "RtcConfiguration",
    "SimulateScenarioKind",
    "SipDTMF",
    "StreamError",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "Transcription",
    "TranscriptionSegment",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoderBackend",
    "VideoEncoding",
    "VideoFrame",
    "VideoFrameEvent",
    "VideoQuality",
    "VideoRotation",
    "VideoSource",
    "VideoStream",
    "VideoTrack",
    "__version__",
    "combine_audio_frames",
]
