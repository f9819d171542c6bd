"""The per-publication media path pieces the actors control: a gate track, and SDP reading for m-lines.

* :class:`GatedTrack` relays another aiortc track to a sender and can be muted (audio becomes silence,
  video becomes black frames) without touching the source. It exists for a second reason: **aiortc's
  sender stops the track it sends when its RTP loop ends** (``aiortc/rtcrtpsender.py`` ``_run_rtp``, the
  ``self.__track.stop()`` after the loop — on ``close()``, a stopped transceiver or a failed transport), so
  a user's ``AudioSource`` handed to a sender directly would die with the room. The gate is what the
  sender owns and stops; the source outlives it and can be published again.
* :func:`media_sections` reads ``mid``, ``msid`` and direction of each audio/video m-line of an SDP. aiortc
  gives a remote track LiveKit's id only when the msid stream id is listed in ``a=msid-semantic`` (libwebrtc
  writes an empty list; ``feasibility-official-sdk.md`` trap 7), so subscribers map a received track by the
  ``a=msid`` of its mid (``PA_sid|TR_sid``), never by aiortc's ``track.id``.

Everything here runs on the runtime loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

__all__ = ["GatedTrack", "MediaSection", "media_sections", "stop_quietly", "unpack_stream_id"]

_log = logging.getLogger("greenroom.runtime.media_path")


class GatedTrack(MediaStreamTrack):
    """Relays ``source`` frame by frame; while :attr:`muted`, audio is zeroed and video blacked out.

    Stopping the gate (aiortc does it when its sender ends) leaves ``source`` running.

    Args:
        source: the track to relay (``PcmSourceTrack``, ``VideoSourceTrack`` …).
    """

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.muted = False
        self.transform: Callable[[Any], Awaitable[Packet[Any] | None]] | None = None
        """Applied to each gated frame (end-to-end encryption: :mod:`greenroom.runtime.e2ee_media`);
        ``None`` from it means "nothing to send for this frame"."""

    async def recv(self) -> Frame | Packet[Any]:
        """The source's next frame, gated and transformed (called by aiortc's sender).

        Raises:
            MediaStreamError: the gate or its source was stopped.
        """
        while True:
            frame = await self._gated()
            if self.transform is None:
                return frame
            packet = await self.transform(frame)
            if packet is not None:
                return packet

    async def _gated(self) -> Frame | Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.source.recv()
        if self.readyState != "live":
            raise MediaStreamError
        if not self.muted:
            return frame
        if isinstance(frame, av.AudioFrame):
            for audio_plane in frame.planes:
                audio_plane.update(bytes(audio_plane.buffer_size))
            return frame
        if isinstance(frame, av.VideoFrame):
            return _black(frame)
        return frame


def _black(frame: av.VideoFrame) -> av.VideoFrame:
    black = av.VideoFrame(width=frame.width, height=frame.height, format="yuv420p")
    for index, plane in enumerate(black.planes):
        plane.update((b"\x00" if index == 0 else b"\x80") * plane.buffer_size)
    black.pts, black.time_base = frame.pts, frame.time_base
    return black


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One audio/video m-line of an SDP.

    Attributes:
        mid: its ``a=mid``.
        kind: ``audio`` or ``video``.
        direction: ``sendrecv``/``sendonly``/``recvonly``/``inactive`` (``inactive`` when the port is 0).
        stream_id: the msid stream id (``PA_sid|TR_sid`` in a LiveKit subscriber offer), or ``""``.
        track_id: the msid track id (the ``cid`` in a publisher offer), or ``""``.
    """

    mid: str
    kind: str
    direction: str
    stream_id: str = ""
    track_id: str = ""

    @property
    def sending(self) -> bool:
        """Whether the SDP's author sends media on it."""
        return self.direction in ("sendrecv", "sendonly")


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def media_sections(sdp: str) -> dict[str, MediaSection]:
    """The audio/video m-lines of ``sdp`` by mid (sections without a mid are skipped)."""
    sections: dict[str, MediaSection] = {}
    current: dict[str, str] | None = None

    def close() -> None:
        if current is not None and current.get("mid"):
            sections[current["mid"]] = MediaSection(
                current["mid"],
                current["kind"],
                current.get("direction", "sendrecv"),
                current.get("stream", ""),
                current.get("track", ""),
            )

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            close()
            parts = line[2:].split()
            kind = parts[0] if parts else ""
            current = {"kind": kind} if kind in ("audio", "video") else None
            if current is not None and len(parts) > 1 and parts[1] == "0":
                current["direction"] = "inactive"
                current["rejected"] = "1"
        elif current is None:
            continue
        elif line.startswith("a=mid:"):
            current["mid"] = line[6:]
        elif line.startswith("a=msid:"):
            stream, _, track = line[7:].partition(" ")
            current["stream"], current["track"] = stream, track
        elif line[2:] in _DIRECTIONS and line.startswith("a=") and "rejected" not in current:
            current["direction"] = line[2:]
    close()
    return sections


def unpack_stream_id(stream_id: str, track_id: str = "") -> tuple[str, str] | None:
    """``(participant_sid, track_sid)`` from a LiveKit stream id ``PA_sid|TR_sid``; ``None`` otherwise.

    Like the SDKs: exactly two parts; the track sid is the second part if it starts with ``TR``, else the
    msid track id.
    """
    parts = stream_id.split("|")
    if len(parts) != 2 or not parts[0]:
        return None
    participant, track = parts
    if not track.startswith("TR"):
        track = track_id
    return (participant, track) if track else None


async def stop_quietly(track: MediaStreamTrack) -> None:
    """Stop ``track`` (idempotent), yielding once so readers blocked on it can see the end."""
    track.stop()
    await asyncio.sleep(0)
