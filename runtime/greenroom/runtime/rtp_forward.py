"""Forward media between aiortc peer connections **without decoding or encoding** (the dev server's SFU path).

An SFU must never decode: decoding and re-encoding costs ~10% of a core per audio stream, adds latency and
destroys end-to-end encrypted payloads. aiortc has no public hook for that, so this module takes two narrow
seams and nothing else:

* **In** — :class:`RtpTap` swaps the receiver's jitter buffer for a stand-in. aiortc's receiver still does
  everything up to that stage itself (SRTP, RTCP receiver reports, RTX unwrapping, NACKs, REMB), and calls
  ``jitter_buffer.add(packet)`` with the depayloaded codec bytes in ``packet._data``. The stand-in hands
  the packet (audio) or the frame the real jitter buffer assembles (video) to the tap, and always answers
  "no complete frame", so the receiver never queues anything for its decoder thread and **no decoder is ever
  constructed** (aiortc creates decoders lazily in that thread, on the first queued frame). The tap must be
  installed before the first RTP packet arrives: do it in the peer connection's ``track`` handler.
* **Out** — :class:`ForwardedTrack` is a ``MediaStreamTrack`` whose ``recv()`` returns ``av.Packet`` objects
  holding encoded frames. aiortc's sender sends those through ``encoder.pack()`` — the documented path for
  pre-encoded media (``MediaPlayer(decode=False)``) — so nothing is encoded: Opus payloads go out byte for
  byte, VP8/H264 frames are re-packetized (fresh VP8 payload descriptors, new SSRC/sequence/timestamp
  origin). The sender still instantiates its encoder object (``get_encoder``), but never calls ``encode``.
* **Keyframes** — a subscriber's PLI/FIR reaches the sender's ``_send_keyframe``;
  :meth:`ForwardedTrack.bind_sender` replaces it on that sender instance with the track's
  ``keyframe_requested`` hook, which by default asks the tap to send a PLI to the publisher (throttled).
  A new video subscriber gets no delta frames before the next keyframe, and asks for one.

Traps — aiortc private attributes this relies on (aiortc 1.16.0). Every one is reached through
:mod:`greenroom.runtime.aiortc_seams`, which checks them when it is imported (pinned version, names and
shapes); :class:`~greenroom.runtime.media.AiortcSeamError` is raised when a given object still lacks one:

1. ``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`` (``aiortc/rtcrtpreceiver.py`` lines 294-301, used at
   line 551; a frame it returns is queued for decoding at lines 563-567 — the stand-in never returns one).
2. ``RTCRtpReceiver._RTCRtpReceiver__codecs`` (payload type → codec, filled by ``receive()`` at lines
   398-400; read to learn the codec and clock rate of each packet).
3. ``RtpPacket._data`` — the depayloaded bytes set at ``rtcrtpreceiver.py`` lines 541-545 (``depayload``:
   VP8 descriptor / H264 aggregation removed, Opus as is).
4. ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` (lines 630-638) — sends the PLI to the publisher.
5. ``RTCRtpSender._send_keyframe`` (``aiortc/rtcrtpsender.py`` lines 351-355, called for PLI/FIR at
   lines 277-281) — replaced on the sender *instance* to catch subscribers' keyframe requests.
6. ``RTCRtpSender._next_encoded_frame`` treats anything that is not an ``av.frame.Frame`` as pre-encoded
   and calls ``encoder.pack(packet)`` (lines 311-323): ``OpusEncoder.pack`` (``codecs/opus.py`` line 75)
   and ``Vp8Encoder.pack`` (``codecs/vpx.py`` line 239) convert ``packet.pts``/``time_base`` to the RTP
   clock. The sender's audio-level header extension is only set for decoded frames (line 314), so
   forwarded audio carries none (the tap exposes the publisher's level in :attr:`EncodedFrame.audio_level`).
7. The end of a tapped stream: the receiver's own ``RemoteStreamTrack`` gets the decoder thread's end
   sentinel on BYE, DTLS close or ``receiver.stop()`` (lines 468-469, 438-439, 425-431, 643-650) and then
   raises ``MediaStreamError`` from ``recv()``. The tap waits on that ``recv()``; nobody else may read
   that track (it would never yield a frame anyway).
8. ``sender._stream_id`` / ``sender._track_id`` (``rtcrtpsender.py`` lines 102, 197) set the ``a=msid`` the
   LiveKit SDKs map tracks by (``PA_sid|TR_sid``, ``reference/signal-protocol.md`` §6.7);
   :func:`add_forwarded_track` sets them when given.

Audio packets are forwarded as they arrive (one Opus frame per packet, no reordering: on loopback and LANs
reordering is rare and the subscriber's jitter buffer copes); video goes through aiortc's jitter buffer, so
a frame leaves when the first packet of the next one arrives (one frame interval of added latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from greenroom.runtime import aiortc_seams as seams
from greenroom.runtime.media import AiortcSeamError, DropOldestQueue, UnsupportedCodecError

__all__ = [
    "CLOCK_RATES",
    "EncodedFrame",
    "ForwardedTrack",
    "RtpTap",
    "add_forwarded_track",
    "is_keyframe",
    "receiver_for_track",
]

_log = logging.getLogger("greenroom.runtime.rtp_forward")

#: RTP clock rate of each codec that can be forwarded (lower-case MIME type).
CLOCK_RATES: dict[str, int] = {"audio/opus": 48_000, "video/vp8": 90_000, "video/h264": 90_000}

_H264_KEY_NALS = frozenset({5, 7})  # IDR slice, SPS


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame taken off the wire.

    Attributes:
        mime_type: lower-case codec MIME type, e.g. ``"audio/opus"``.
        data: the codec bytes (one Opus packet; one whole VP8 frame without payload descriptors; H264 in
            Annex B). Passed through untouched, so E2EE-encrypted frames stay encrypted.
        timestamp: RTP timestamp, unwrapped (64-bit, continuous), relative to the first tapped packet.
        clock_rate: RTP clock rate (48000 for Opus, 90000 for video).
        keyframe: whether a decoder can start at this frame (always true for audio).
        ssrc: the publisher's SSRC.
        audio_level: the publisher's RFC 6464 level (0 = loudest … 127 = silence, i.e. -dBov), if sent.
        arrival: ``time.monotonic()`` when the (last) packet arrived.
    """

    mime_type: str
    data: bytes
    timestamp: int
    clock_rate: int
    keyframe: bool
    ssrc: int
    audio_level: int | None = None
    arrival: float = 0.0


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame is independently decodable (audio frames always are).

    VP8: bit 0 of the first byte (RFC 6386 §9.1, 0 = key frame). H264: an IDR slice or SPS NAL unit.
    """
    if mime_type.startswith("audio/"):
        return True
    if not data:
        return False
    if mime_type == "video/vp8":
        return data[0] & 0x01 == 0
    if mime_type == "video/h264":
        pos = data.find(b"\x00\x00\x01")
        while 0 <= pos < len(data) - 3:
            if data[pos + 3] & 0x1F in _H264_KEY_NALS:
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def receiver_for_track(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    """The receiver of a remote ``track`` (aiortc's ``track`` event carries only the track).

    Raises:
        LookupError: no receiver of ``pc`` owns ``track``.
    """
    for receiver in pc.getReceivers():
        if receiver.track is track:
            return receiver
    raise LookupError("no receiver owns this track")


class _Unwrapper:
    """Unwraps 32-bit RTP timestamps into a continuous count from the first one."""

    __slots__ = ("_last", "_origin", "_total")

    def __init__(self) -> None:
        self._last: int | None = None
        self._total = 0

    def unwrap(self, timestamp: int) -> int:
        if self._last is not None:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            if delta >= 0x80000000:  # a slightly older timestamp (reordered packet)
                delta -= 0x100000000
            self._total += delta
        self._last = timestamp
        return self._total


class _JitterBufferStandIn:
    """Takes the receiver jitter buffer's place: packets go to the tap, nothing goes to the decoder."""

    def __init__(self, tap: RtpTap, inner: Any) -> None:
        self._tap = tap
        self._inner = inner

    @property
    def capacity(self) -> int:
        return int(self._inner.capacity)

    def add(self, packet: Any) -> tuple[bool, None]:
        try:
            return self._tap._on_packet(packet, self._inner), None
        except Exception:  # never break aiortc's packet handler
            _log.exception("RTP tap failed on a packet")
            return False, None


class RtpTap:
    """Takes the encoded frames of an aiortc receiver so that it never decodes them.

    Construct it on the loop of the peer connection, in its ``track`` handler (before RTP flows)::

        @pc.on("track")
        def on_track(track):
            tap = RtpTap(receiver_for_track(pc, track))

    then fan out with :meth:`forward` (one :class:`ForwardedTrack` per subscriber) and/or
    :meth:`add_listener`.

    Args:
        receiver: the publisher-side receiver.
        keyframe_interval: minimum seconds between two PLIs sent to the publisher.

    Raises:
        AiortcSeamError: the installed aiortc lacks the private attributes this needs.
    """

    def __init__(self, receiver: RTCRtpReceiver, *, keyframe_interval: float = 0.5) -> None:
        inner = seams.receiver_jitter_buffer(receiver)
        codecs = seams.receiver_codecs(receiver)
        if inner is None or not hasattr(inner, "add") or codecs is None:
            raise AiortcSeamError("RTCRtpReceiver has no jitter buffer/codec table to tap (aiortc version?)")
        if not seams.has_pli(receiver) or receiver.track is None:
            raise AiortcSeamError("RTCRtpReceiver has no _send_rtcp_pli or no track (aiortc version?)")
        if isinstance(inner, _JitterBufferStandIn):
            raise ValueError("this receiver is already tapped")
        self._receiver = receiver
        self._codecs = codecs  # aiortc fills this dict in place (receive()), never replaces it
        self.kind: str = receiver.track.kind
        self.keyframe_interval = keyframe_interval
        self.mime_type: str | None = None
        self.ssrc: int | None = None
        self._unwrappers: dict[int, _Unwrapper] = {}
        self._tracks: set[ForwardedTrack] = set()
        self._listeners: list[Callable[[EncodedFrame], None]] = []
        self._last_pli = -1e9
        self._pending: set[asyncio.Future[Any]] = set()
        self._closed = False
        self.ended = asyncio.Event()
        #: counters: packets and frames tapped, PLIs sent to the publisher, packets of unknown/bad codec.
        self.packets = 0
        self.frames = 0
        self.keyframe_requests_sent = 0
        self.unsupported = 0
        seams.set_receiver_jitter_buffer(receiver, _JitterBufferStandIn(self, inner))
        self._watch = asyncio.ensure_future(self._watch_end(receiver.track))

    # -- fan-out -------------------------------------------------------------------------------------------

    def forward(self, *, mime_type: str | None = None, capacity: int = 0) -> ForwardedTrack:
        """A new :class:`ForwardedTrack` fed by this tap (add it to a subscriber's peer connection).

        Args:
            mime_type: the publisher's codec; default: the codec seen on the wire, else the first
                forwardable codec the receiver negotiated, else Opus/VP8. Pass it when subscribing before
                the publisher's media flows with a codec other than Opus/VP8 (the dev server knows it from
                the publisher's SDP).
            capacity: frames queued for the sender (see :class:`ForwardedTrack`).

        Raises:
            UnsupportedCodecError: the codec cannot be forwarded.
        """
        mime = mime_type or self.mime_type or self._negotiated_mime()
        track = ForwardedTrack(self.kind, mime, capacity=capacity, on_keyframe_request=self.request_keyframe)
        track._tap = self
        if self._closed:
            track._end()
        else:
            self._tracks.add(track)
        return track

    def _negotiated_mime(self) -> str:
        for codec in self._codecs.values():
            mime = str(codec.mimeType).lower()
            if mime in CLOCK_RATES:
                return mime
        return "audio/opus" if self.kind == "audio" else "video/vp8"

    def add_listener(self, listener: Callable[[EncodedFrame], None]) -> Callable[[], None]:
        """Call ``listener`` with every tapped frame (on the loop; keep it quick). Returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe (an RTCP PLI), at most once per ``keyframe_interval``.

        Returns:
            Whether a PLI was sent (``False`` for audio, before the first packet, or when throttled).
        """
        now = time.monotonic()
        if self.kind != "video" or self.ssrc is None or self._closed:
            return False
        if now - self._last_pli < self.keyframe_interval:
            return False
        self._last_pli = now
        self.keyframe_requests_sent += 1
        future = asyncio.ensure_future(seams.send_pli(self._receiver, self.ssrc))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return True

    def close(self) -> None:
        """Stop forwarding and end every :class:`ForwardedTrack`. The receiver stays undecoded."""
        if self._closed:
            return
        self._closed = True
        self._watch.cancel()
        for track in list(self._tracks):
            track._end()
        self._tracks.clear()
        self._listeners.clear()
        self.ended.set()

    # -- internals -----------------------------------------------------------------------------------------

    def _detach(self, track: ForwardedTrack) -> None:
        self._tracks.discard(track)

    async def _watch_end(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:  # nothing is decoded, so only the end sentinel (or frames decoded before the tap)
                await track.recv()
        _log.debug("tapped %s track ended", self.kind)
        self.close()

    def _on_packet(self, packet: Any, inner: Any) -> bool:
        if self._closed:
            return False
        codec = self._codecs.get(packet.payload_type)
        mime = None if codec is None else str(codec.mimeType).lower()
        if mime not in CLOCK_RATES:
            self.unsupported += 1
            return False
        self.packets += 1
        self.mime_type = mime
        self.ssrc = packet.ssrc
        if self.kind == "audio":
            level = packet.extensions.audio_level
            level = None if level is None else level[1]
            self._emit(mime, seams.depayloaded(packet), packet.timestamp, packet.ssrc, level)
            return False
        pli, frame = inner.add(packet)
        if frame is not None:
            self._emit(mime, frame.data, frame.timestamp, packet.ssrc, None)
        return bool(pli)

    def _emit(self, mime: str, data: bytes, timestamp: int, ssrc: int, level: int | None) -> None:
        unwrapper = self._unwrappers.get(ssrc)
        if unwrapper is None:
            unwrapper = self._unwrappers[ssrc] = _Unwrapper()
        frame = EncodedFrame(
            mime_type=mime,
            data=data,
            timestamp=unwrapper.unwrap(timestamp),
            clock_rate=CLOCK_RATES[mime],
            keyframe=is_keyframe(mime, data),
            ssrc=ssrc,
            audio_level=level,
            arrival=time.monotonic(),
        )
        self.frames += 1
        for track in self._tracks:
            track.push(frame)
        for listener in self._listeners:
            try:
                listener(frame)
            except Exception:
                _log.exception("RTP tap listener failed")


class ForwardedTrack(MediaStreamTrack):
    """A track whose frames are already encoded: aiortc's sender packetizes them without an encoder.

    Usually made by :meth:`RtpTap.forward`; feed it by hand with :meth:`push` otherwise.

    Args:
        kind: ``"audio"`` or ``"video"``.
        mime_type: the codec of the frames (``"audio/opus"``, ``"video/vp8"``, ``"video/h264"``); the
            subscriber's transceiver must negotiate the same one (:func:`add_forwarded_track` sees to that).
        capacity: frames queued for the sender; ``0`` = 10 for audio (200 ms), 30 for video. Audio drops the
            oldest frame when full; video drops everything queued and waits for the next keyframe. Nothing
            is queued before the sender first pulls (its transport is up), so a late-connecting subscriber
            never gets a burst of stale frames; video then starts at a keyframe it asks for.
        on_keyframe_request: called when the subscriber asks for a keyframe, and when the track needs one
            to start or recover.

    Raises:
        UnsupportedCodecError: ``mime_type`` cannot be forwarded or does not match ``kind``.
    """

    def __init__(
        self,
        kind: str,
        mime_type: str,
        *,
        capacity: int = 0,
        on_keyframe_request: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        mime = mime_type.lower()
        if mime not in CLOCK_RATES or not mime.startswith(kind + "/"):
            raise UnsupportedCodecError(f"cannot forward {mime_type!r} as {kind}")
        self.kind = kind
        self.mime_type = mime
        self._time_base = fractions.Fraction(1, CLOCK_RATES[mime])
        self._queue: DropOldestQueue[EncodedFrame] = DropOldestQueue(
            capacity or (10 if kind == "audio" else 30)
        )
        self._need_keyframe = kind == "video"
        self._pulling = False
        self._paused = False
        self._tap: RtpTap | None = None
        self.keyframe_requested: Callable[[], object] | None = on_keyframe_request
        #: counters: frames sent, frames dropped (overflow, or deltas while waiting for a keyframe), keyframe
        #: requests received from the subscriber.
        self.frames_sent = 0
        self.dropped = 0
        self.keyframe_requests = 0
        self.mismatched = 0

    def bind_sender(self, sender: RTCRtpSender) -> None:
        """Route the subscriber's PLI/FIR on ``sender`` to :attr:`keyframe_requested`; end the sender with us.

        Raises:
            AiortcSeamError: the sender has no ``_send_keyframe`` (aiortc version?).
        """
        # Shadows the method on this instance only (trap 5).
        if not seams.route_keyframe_requests(sender, self._on_keyframe_request):
            raise AiortcSeamError("RTCRtpSender has no _send_keyframe (aiortc version?)")
        self.on("ended", lambda: _schedule(sender.stop()))

    @property
    def paused(self) -> bool:
        """Whether frames are being discarded instead of sent (see :meth:`set_paused`)."""
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """Stop or resume sending (server-side mute, paused subscription); video resumes at a keyframe."""
        if paused and not self._paused:
            self._queue.clear()
            self._need_keyframe = self.kind == "video"
        self._paused = paused

    def push(self, frame: EncodedFrame) -> None:
        """Queue one encoded frame for the sender (from the tap, or by hand)."""
        if self.readyState != "live" or not self._pulling or self._paused:
            return
        if frame.mime_type != self.mime_type:
            self.mismatched += 1
            return
        if self._need_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                self._ask_keyframe()
                return
            self._need_keyframe = False
        if self.kind == "video" and len(self._queue) >= self._queue.capacity:
            self.dropped += self._queue.clear()
            if not frame.keyframe:
                self.dropped += 1
                self._need_keyframe = True
                self._ask_keyframe()
                return
        self._queue.put_nowait(frame)

    @property
    def frames_dropped(self) -> int:
        """All frames not sent: queue overflow plus frames skipped while waiting for a keyframe."""
        return self.dropped + self._queue.dropped

    async def recv(self) -> av.Packet[Any]:
        """The next encoded frame as an ``av.Packet`` (called by aiortc's sender, which packs it).

        Raises:
            MediaStreamError: the track or its tap ended.
        """
        if self.readyState != "live":
            raise MediaStreamError
        self._pulling = True
        try:
            frame = await self._queue.get()
        except StopAsyncIteration:
            raise MediaStreamError from None
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = self._time_base
        self.frames_sent += 1
        return packet

    def stop(self) -> None:
        """End the track (its sender stops sending) and detach it from its tap."""
        self._queue.end()
        if self._tap is not None:
            self._tap._detach(self)
        super().stop()

    def _end(self) -> None:
        # The tap ended: let the sender drain what is queued, then recv() raises and aiortc stops us.
        self._queue.end()
        self._tap = None
        if not len(self._queue):
            self.stop()

    def _ask_keyframe(self) -> None:
        if self.keyframe_requested is not None:
            self.keyframe_requested()

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        self._ask_keyframe()


_background: set[asyncio.Future[Any]] = set()


def _schedule(coro: Any) -> None:
    future = asyncio.ensure_future(coro)
    _background.add(future)
    future.add_done_callback(_background.discard)


def add_forwarded_track(
    pc: RTCPeerConnection,
    track: ForwardedTrack,
    *,
    stream_id: str | None = None,
    track_id: str | None = None,
) -> RTCRtpSender:
    """Add ``track`` to a subscriber's peer connection as a sendonly transceiver that negotiates its codec.

    Call before ``createOffer``. The transceiver's codec preferences are restricted to the track's codec
    (plus RTX for video), and the sender's keyframe requests are bound to the track.

    Args:
        pc: the subscriber-side peer connection (the server offers it).
        track: the forwarded track.
        stream_id: the msid stream id to advertise (LiveKit: ``"PA_sid|TR_sid"``).
        track_id: the msid track id (LiveKit: ``"TR_sid"``).

    Returns:
        The sender.
    """
    transceiver = pc.addTransceiver(track, direction="sendonly")
    capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
    preferred = [c for c in capabilities if c.mimeType.lower() in (track.mime_type, "video/rtx")]
    transceiver.setCodecPreferences(preferred)
    sender = transceiver.sender
    track.bind_sender(sender)
    seams.set_msid(sender, stream_id, track_id)
    return sender
