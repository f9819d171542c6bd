"""``TrackPublishOptions`` (a dataclass here; a protobuf message in ``livekit.rtc``).

Same field names, so ``TrackPublishOptions(source=TrackSource.SOURCE_MICROPHONE)`` works unchanged. What
differs from the official protobuf: plain attributes instead of ``HasField``/``CopyFrom``; the encoding,
codec, simulcast and encoder fields are accepted but aiortc decides (Opus for audio, VP8 for video, one
layer); ``dtx``/``red`` default to True, as the official SDK's native defaults behave, and are passed to the
server as ``disable_dtx``/``disable_red``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from greenroom.rtc._enums import TrackSource

__all__ = ["TrackPublishOptions", "VideoEncoding"]


@dataclass
class VideoEncoding:
    """A video encoding's limits (``TrackPublishOptions.video_encoding``; a protobuf message officially).

    Attributes:
        max_bitrate: bits per second (0: the encoder's default).
        max_framerate: frames per second (0: the source's rate).
    """

    max_bitrate: int = 0
    max_framerate: float = 0.0


@dataclass
class TrackPublishOptions:
    """How to publish a track (``LocalParticipant.publish_track``).

    Attributes:
        source: microphone, camera, screen share … (what subscribers see as ``publication.source``).
        stream: groups tracks into one stream (``TrackInfo.stream``).
        dtx: discontinuous transmission for audio (advertised to the server).
        red: redundant audio (advertised; aiortc sends none).
        video_encoding, audio_encoding, video_codec, simulcast, preconnect_buffer, frame_metadata_features,
            scalability_mode, video_encoder, degradation_preference: accepted for compatibility; ignored.
    """

    video_encoding: VideoEncoding | None = None
    audio_encoding: Any | None = None
    video_codec: int = 0
    dtx: bool = True
    red: bool = True
    simulcast: bool = False
    source: int = TrackSource.SOURCE_UNKNOWN
    stream: str = ""
    preconnect_buffer: bool = False
    frame_metadata_features: list[int] = field(default_factory=list)
    scalability_mode: str = ""
    video_encoder: int = 0
    degradation_preference: int = 0
