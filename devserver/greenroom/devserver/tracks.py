"""The track registry's SDP side: which media sections of a publisher offer carry which announced track.

A matched section becomes a publication: announced in ``ParticipantUpdate`` and forwarded as RTP from the
receiver tapped on its mid (``forwarding.py``). Pure functions, no I/O.

Traps (``reference/signal-protocol.md`` §6.6, §6.8, ``feasibility-official-sdk.md`` trap 7):

* aiortc's remote track ids are unreliable (libwebrtc writes ``a=msid:- <cid>`` with an empty
  ``a=msid-semantic: WMS``), so the msid of each mid is read from the offer text here;
* a section is matched to a pending ``AddTrackRequest`` by msid track id == ``cid``, else to the first
  pending request of the same kind (livekit/livekit ``getPendingTrack``);
* unpublishing has no signal message: a section that stops sending (``recvonly``/``inactive``, port 0,
  or no msid) in a later offer is the only sign;
* the six ``recvonly`` placeholder sections the Rust SDK keeps after the v1 → v0 fallback are not tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenroom.codecs.models import TrackType

__all__ = ["MediaSection", "PendingTrack", "match_pending", "media_sections"]

_SENDING = frozenset({"sendonly", "sendrecv"})


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One ``m=audio``/``m=video`` section of a publisher offer."""

    kind: TrackType
    mid: str
    direction: str
    msid_track: str | None
    port_zero: bool = False

    @property
    def sending(self) -> bool:
        """True when the client sends media in this section (a live publication)."""
        return not self.port_zero and self.direction in _SENDING and self.msid_track is not None


@dataclass(frozen=True, slots=True)
class PendingTrack:
    """An ``AddTrackRequest`` answered with ``TrackPublished`` whose media section has not appeared yet."""

    cid: str
    sid: str
    kind: TrackType


def media_sections(sdp: str) -> list[MediaSection]:
    """The audio/video sections of an SDP, in order (data sections are skipped)."""
    sections: list[MediaSection] = []
    current: dict[str, str] | None = None
    for raw in [*sdp.splitlines(), "m=end 0"]:
        line = raw.strip()
        if line.startswith("m="):
            if current is not None:
                sections.append(_section(current))
            parts = line[2:].split()
            current = {"kind": parts[0], "port": parts[1] if len(parts) > 1 else "0", "direction": "sendrecv"}
            if parts[0] not in ("audio", "video"):
                current = None
        elif current is not None:
            _read_attribute(current, line)
    return sections


def _read_attribute(section: dict[str, str], line: str) -> None:
    if line.startswith("a=mid:"):
        section["mid"] = line[6:]
    elif line.startswith("a=msid:"):
        parts = line[7:].split()
        if len(parts) >= 2:
            section["msid"] = parts[1]
    elif line[2:] in ("sendonly", "recvonly", "sendrecv", "inactive") and line.startswith("a="):
        section["direction"] = line[2:]


def _section(values: dict[str, str]) -> MediaSection:
    return MediaSection(
        kind=TrackType.AUDIO if values["kind"] == "audio" else TrackType.VIDEO,
        mid=values.get("mid", ""),
        direction=values["direction"],
        msid_track=values.get("msid"),
        port_zero=values["port"] == "0",
    )


def match_pending(section: MediaSection, pending: list[PendingTrack]) -> PendingTrack | None:
    """The pending track a sending section carries: msid track id == cid, else first of the same kind."""
    exact = next((p for p in pending if p.cid == section.msid_track), None)
    if exact is not None:
        return exact
    return next((p for p in pending if p.kind is section.kind), None)
