"""``Transcription`` and ``TranscriptionSegment``, as in ``livekit.rtc.transcription``, and the
``lk.transcription`` text streams that carry them today.

Transcripts travel two ways. The ``Transcription`` data packet is what ``livekit.rtc`` sends
(``publish_transcription``) and what receivers surface as ``transcription_received``; the server forwards it
only from agents. Current livekit-agents (``voice/room_io/_output.py``) send every transcript *also* as a
text stream on the topic ``lk.transcription``, on behalf of the transcribed participant, with the
attributes below (livekit-agents ``types.py``; livekit-client reads the same names) — that is what current
front ends listen to. greenroom's ``publish_transcription`` sends both; a receiver reads the streams with
``register_text_stream_handler(TOPIC_TRANSCRIPTION, ...)`` and :func:`from_stream` turns one into a
:class:`Transcription`. Interim and final streams of one segment share ``lk.segment_id``; each carries the
segment's whole text so far (the agents' non-delta mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ATTRIBUTE_FINAL",
    "ATTRIBUTE_SEGMENT_ID",
    "ATTRIBUTE_TRACK_ID",
    "TOPIC_TRANSCRIPTION",
    "Transcription",
    "TranscriptionSegment",
    "from_stream",
    "stream_attributes",
]

TOPIC_TRANSCRIPTION: Final = "lk.transcription"
ATTRIBUTE_SEGMENT_ID: Final = "lk.segment_id"
ATTRIBUTE_FINAL: Final = "lk.transcription_final"
ATTRIBUTE_TRACK_ID: Final = "lk.transcribed_track_id"


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


def stream_attributes(track_sid: str, segment: TranscriptionSegment) -> dict[str, str]:
    """The attributes of the ``lk.transcription`` stream carrying ``segment`` (no track id when unknown, as
    the agents leave it out)."""
    attributes = {ATTRIBUTE_SEGMENT_ID: segment.id, ATTRIBUTE_FINAL: "true" if segment.final else "false"}
    if track_sid:
        attributes[ATTRIBUTE_TRACK_ID] = track_sid
    return attributes


def from_stream(participant_identity: str, attributes: dict[str, str] | None, text: str) -> Transcription:
    """The :class:`Transcription` one ``lk.transcription`` stream carries: ``participant_identity`` is the
    identity its handler was given (the transcribed participant), ``attributes`` its ``info.attributes``,
    ``text`` what it read. Times and language travel only in the packet: 0 and ``""`` here."""
    attributes = attributes or {}
    segment = TranscriptionSegment(
        id=attributes.get(ATTRIBUTE_SEGMENT_ID, ""),
        text=text,
        start_time=0,
        end_time=0,
        language="",
        final=attributes.get(ATTRIBUTE_FINAL) == "true",
    )
    return Transcription(participant_identity, attributes.get(ATTRIBUTE_TRACK_ID, ""), [segment])
