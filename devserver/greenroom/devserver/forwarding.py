"""The dev server's media plane: publications tapped as RTP, forwarded to subscribers without decoding.

One :class:`Publication` per published track: an :class:`~greenroom.runtime.rtp_forward.RtpTap` on the
publisher PC's receiver (installed in the ``track`` event, before any RTP flows, so aiortc never constructs a
decoder), the ``PA_sid``/``TR_sid`` pair, the mute switch and an audio-level meter. One :class:`Subscription`
per (subscriber, track): a :class:`~greenroom.runtime.rtp_forward.ForwardedTrack` on its own sendonly
transceiver of the subscriber PC. Speaker and quality rules are pure (:class:`SpeakerDetector`,
:func:`quality_from_loss`) and unit-tested with time passed in.

Traps (``reference/signal-protocol.md`` §6.7, §6.8, §11.5; ``feasibility-official-sdk.md`` trap 7):

* **msid.** The SDKs map a received track to its publication only through the msid stream id
  ``"<PA_sid>|<TR_sid>"`` (Rust ``unpack_stream_id``: exactly two parts, else the track is silently ignored;
  a first part without ``PA_`` panics). aiortc writes ``a=msid:<sender._stream_id> <sender._track_id>``
  (``aiortc/rtcpeerconnection.py`` line 230) and has no API for either, so both private attributes are
  set before the offer (:func:`~greenroom.runtime.rtp_forward.add_forwarded_track`). Pin aiortc.
* **One m-line per subscription, never reused.** libwebrtc does not re-fire ``OnTrack`` when an existing
  transceiver only gets a new msid (rust-sdks comment, §6.7 step 4), so an unsubscribed transceiver is set
  ``inactive`` and left in place; a new subscription gets a new m-line.
* **aiortc has no ``removeTrack``.** Unsubscribing = ``transceiver.direction = "inactive"`` + stopping the
  forwarded track (which stops its sender), then a renegotiation; libwebrtc then ends the remote track
  (``track_unsubscribed``).
* **Mute.** ``MuteTrackRequest`` pauses forwarding (the Go server mutes its down tracks the same way), so a
  muted publisher's comfort noise/black frames are not forwarded and video resumes at a keyframe.
* **Bundle policy.** aiortc's default ``BALANCED`` policy puts every transceiver added after the first of
  its kind *in the same negotiation round* on the first one's new, not-yet-bundled transport and marks it
  bundled; when the answer's BUNDLE group moves the first transceiver to the primary transport, the others
  stay on the old transport, which aiortc then stops (``aiortc/rtcpeerconnection.py``
  ``__createTransceiver`` lines 1193-1199 and ``setRemoteDescription`` lines 1003-1040). Symptom: of ten
  tracks subscribed (or published) at once only the first carries media. Every server PC therefore uses
  ``max-bundle`` (:func:`max_bundle`): all m-lines ride the first transport, as LiveKit clients bundle all.
  Max-bundle has its own corner: the transport's creator must be the BUNDLE group's first mid, or aiortc
  "replaces" the shared transport by itself and stops it. The server's subscriber PC creates its data
  channels first, so its first offer carries only them (tracks come in the next round); the publisher PC
  is the answerer, whose first transceiver is the offer's first m-line (libwebrtc's first BUNDLE mid).
* **Audio levels.** aiortc negotiates ``urn:ietf:params:rtp-hdrext:ssrc-audio-level`` for audio
  (``aiortc/codecs/__init__.py`` ``HEADER_EXTENSIONS``) and libwebrtc sends it whenever negotiated, so each
  Opus packet carries its level (RFC 6464: 0 = loudest … 127 = silence, in −dBov); nothing is decoded.
  A publisher that sends no level gets an energy proxy from the Opus payload size (DTX/silence packets are
  a few bytes, speech tens to hundreds).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver

from greenroom.codecs.models import ConnectionQuality, SpeakerInfo
from greenroom.runtime.ice import IcePolicy
from greenroom.runtime.rtp_forward import EncodedFrame, ForwardedTrack, RtpTap, add_forwarded_track

__all__ = [
    "ACTIVE_LEVEL",
    "AudioLevelMeter",
    "Publication",
    "SpeakerDetector",
    "Subscription",
    "level_to_amplitude",
    "max_bundle",
    "quality_from_loss",
    "stream_id",
]

_log = logging.getLogger("greenroom.devserver.forwarding")

#: RFC 6464 level (−dBov) at or below which a participant counts as speaking (−50 dBov, as libwebrtc's VAD
#: threshold is in the same range; a 0 dBFS sine is 3 dBov).
ACTIVE_LEVEL = 50
_SILENT = 127
_LEVEL_WINDOW = 0.5  # seconds a loud packet keeps a meter "loud"
_PROXY_LOUD_BYTES = 24  # Opus payloads above this count as speech when no level extension is sent
_PROXY_LEVEL = 30


def max_bundle(policy: IcePolicy) -> IcePolicy:
    """``policy`` with aiortc's ``max-bundle`` bundle policy (see the bundle trap above)."""
    return dataclasses.replace(policy, max_bundle=True)


def stream_id(participant_sid: str, track_sid: str) -> str:
    """The msid stream id LiveKit SDKs parse: ``PA_sid|TR_sid`` (Go ``PackStreamID``)."""
    return f"{participant_sid}|{track_sid}"


def level_to_amplitude(level: int) -> float:
    """RFC 6464 level (0 loudest … 127 silent, −dBov) → linear amplitude 0..1 (``SpeakerInfo.level``)."""
    return 0.0 if level >= _SILENT else math.pow(10.0, -level / 20.0)


def quality_from_loss(loss: float | None) -> ConnectionQuality:
    """``ConnectionQuality`` from a packet-loss fraction (``None``: nothing measured → EXCELLENT)."""
    if loss is None or loss < 0.02:
        return ConnectionQuality.EXCELLENT
    if loss < 0.1:
        return ConnectionQuality.GOOD
    return ConnectionQuality.POOR


class AudioLevelMeter:
    """The loudest audio level of the last :data:`_LEVEL_WINDOW` seconds of one audio publication."""

    __slots__ = ("_at", "_loudest")

    def __init__(self) -> None:
        self._loudest = _SILENT
        self._at = -math.inf

    def feed(self, level: int | None, payload_size: int, now: float) -> None:
        """One packet: its RFC 6464 level, or ``None`` (then its payload size stands in)."""
        if level is None:
            level = _PROXY_LEVEL if payload_size > _PROXY_LOUD_BYTES else _SILENT
        if level <= self._loudest or now - self._at > _LEVEL_WINDOW:
            self._loudest = level
            self._at = now

    def level(self, now: float) -> int:
        """The loudest level seen within the window (127 when nothing recent)."""
        return self._loudest if now - self._at <= _LEVEL_WINDOW else _SILENT


class SpeakerDetector:
    """Which participants are speaking; reports a change as a ``SpeakersChanged`` list.

    The Rust SDK rebuilds its active-speaker list from each message's active entries, so every report carries
    the whole current active set (loudest first) plus the participants that just stopped (``active=False``).
    """

    def __init__(self, threshold: int = ACTIVE_LEVEL) -> None:
        self.threshold = threshold
        self._active: frozenset[str] = frozenset()

    def update(self, levels: Mapping[str, int]) -> tuple[SpeakerInfo, ...] | None:
        """``levels``: participant sid → loudest RFC 6464 level. Returns the speakers if the set changed."""
        speaking = {sid: lvl for sid, lvl in levels.items() if lvl <= self.threshold}
        active = frozenset(speaking)
        if active == self._active:
            return None
        stopped = sorted(self._active - active)
        self._active = active
        ordered = sorted(speaking.items(), key=lambda item: item[1])
        return (
            *(SpeakerInfo(sid, level_to_amplitude(lvl), True) for sid, lvl in ordered),
            *(SpeakerInfo(sid, 0.0, False) for sid in stopped),
        )


@dataclass(slots=True)
class Subscription:
    """One forwarded track on a subscriber PC (its own transceiver, never reused)."""

    track_sid: str
    track: ForwardedTrack
    transceiver: RTCRtpTransceiver

    def end(self) -> None:
        """Stop forwarding and mark the m-line ``inactive`` (the caller renegotiates)."""
        self.transceiver.direction = "inactive"
        self.track.stop()


class Publication:
    """A published track's media: the tap on the publisher's receiver and who it is forwarded to.

    Args:
        participant_sid: the publisher's ``PA_`` sid.
        track_sid: the track's ``TR_`` sid.
        tap: the tap installed on the receiver in the ``track`` event.
        receiver: that receiver (for loss statistics).
        muted: the ``TrackInfo.muted`` it was published with.
    """

    def __init__(
        self,
        participant_sid: str,
        track_sid: str,
        tap: RtpTap,
        receiver: RTCRtpReceiver,
        *,
        muted: bool = False,
    ) -> None:
        self.participant_sid = participant_sid
        self.track_sid = track_sid
        self.tap = tap
        self.kind = tap.kind
        self.receiver = receiver
        self.muted = muted
        self.meter = AudioLevelMeter()
        #: whether the publisher was sent ``track_subscribed`` (first subscription only)
        self.announced_subscribed = False
        self._forwarded: set[ForwardedTrack] = set()
        self._loss_base: tuple[int, int] = (0, 0)
        self._closed = False
        self._remove_listener = tap.add_listener(self._on_frame) if self.kind == "audio" else None

    @property
    def ended(self) -> bool:
        """Whether the track was unpublished or the publisher's track ended."""
        return self._closed or self.tap.ended.is_set()

    def subscribe(self, pc: RTCPeerConnection) -> Subscription:
        """Add a sendonly transceiver forwarding this track to ``pc`` (msid ``PA_sid|TR_sid TR_sid``).

        Call before the subscriber offer is created; the caller renegotiates.
        """
        track = self.tap.forward()
        sender = add_forwarded_track(
            pc, track, stream_id=stream_id(self.participant_sid, self.track_sid), track_id=self.track_sid
        )
        transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
        track.set_paused(self.muted)
        self._forwarded.add(track)
        track.on("ended", lambda: self._forwarded.discard(track))
        return Subscription(self.track_sid, track, transceiver)

    def set_muted(self, muted: bool) -> None:
        """``MuteTrackRequest``: pause or resume forwarding to every subscriber."""
        self.muted = muted
        for track in list(self._forwarded):
            track.set_paused(muted)

    def level(self, now: float) -> int:
        """The publication's current RFC 6464 level (127 for video, muted or silent)."""
        if self.kind != "audio" or self.muted:
            return _SILENT
        return self.meter.level(now)

    async def loss(self) -> float | None:
        """Fraction of packets lost since the last call (``None`` when nothing was expected)."""
        received = lost = 0
        for stats in (await self.receiver.getStats()).values():
            if getattr(stats, "type", "") == "inbound-rtp":
                received += int(stats.packetsReceived)
                lost += max(0, int(stats.packetsLost))
        base_received, base_lost = self._loss_base
        self._loss_base = (received, lost)
        expected = (received - base_received) + (lost - base_lost)
        return None if expected <= 0 else (lost - base_lost) / expected

    def close(self) -> None:
        """Unpublished: every subscriber's forwarded track ends.

        The tap itself stays on the receiver (the session closes it when it ends): libwebrtc may reuse the
        m-line for a later track, and aiortc then keeps the same receiver, which must stay undecoded.
        """
        self._closed = True
        if self._remove_listener is not None:
            self._remove_listener()
        for track in list(self._forwarded):
            track.stop()

    def _on_frame(self, frame: EncodedFrame) -> None:
        self.meter.feed(frame.audio_level, len(frame.data), frame.arrival)
