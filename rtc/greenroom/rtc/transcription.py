"""``Transcription`` and ``TranscriptionSegment``, as in ``livekit.rtc.transcription``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Transcription", "TranscriptionSegment"]


@dataclass
class Transcription:
    """Segments of speech-to-text for one participant's track (sent with ``publish_transcription``).

    Attributes:
        participant_identity: whose speech this is (not necessarily the sender's identity).
        track_sid: the audio track transcribed (may be empty).
        segments: the segments, in order.
    """

    participant_identity: str
    track_sid: str
    segments: list[TranscriptionSegment]


@dataclass
class TranscriptionSegment:
    """One piece of transcribed text; ``start_time``/``end_time`` are opaque integers (no unit is defined)."""

    id: str
    text: str
    start_time: int
    end_time: int
    language: str
    final: bool
