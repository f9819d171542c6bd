"""End-to-end encryption on the media path: encrypt after encoding, decrypt before decoding (runtime loop).

LiveKit encrypts whole encoded frames between the encoder and the RTP packetizer, and decrypts them between
the depacketizer and the decoder (``reference/data-e2ee-formats.md`` §5.4; libwebrtc's frame transformer).
aiortc has no such hook, so this is the one adapter over aiortc that provides it, built from seams that are
already checked at import (:mod:`greenroom.runtime.aiortc_seams`) — no new private name:

* **Send** (:class:`EncryptingEncoder`, the transform of a local track's
  :class:`~greenroom.runtime.media_path.GatedTrack`): the gate's frame is encoded here with aiortc's own
  encoder for the codec (``aiortc.codecs.get_encoder``, in the default executor as aiortc's sender does),
  the payloads it returns are depayloaded back into the whole frame (``aiortc.codecs.depayload``: VP8
  descriptors stripped, H.264 re-joined in Annex B), the frame is encrypted, and an ``av.Packet`` goes to
  the sender, whose ``_next_encoded_frame`` hands anything that is not a decoded frame to ``encoder.pack``
  (the seam the dev server's forwarding relies on) — packetization only. What the sender's own encoder
  would have done on top is lost: the RFC 6464 audio level (the SFU's speaker detection does not see an
  encrypted track; the official SDK keeps it) and REMB bitrate adaptation. A subscriber's PLI is routed to
  :meth:`EncryptingEncoder.request_keyframe` (``route_keyframe_requests``).
* **Receive** (:func:`install_decryption`): the receiver's jitter buffer is wrapped
  (``receiver_jitter_buffer``/``set_receiver_jitter_buffer``, as
  :class:`~greenroom.runtime.rtp_forward.RtpTap` does) so that each frame it completes is decrypted
  before aiortc queues it for its decoder; a frame that does not decrypt is dropped (silence rather
  than noise; the decoder never sees ciphertext).

The keys are not here: each :class:`SendCryptor`/:class:`ReceiveCryptor` holds an immutable
:class:`~greenroom.codecs.e2ee_frames.FrameEncryptor`/``FrameDecryptor`` that its TrackActor replaces
(:meth:`SendCryptor.install`) whenever a key, the key index or ``enabled`` changes — no mailbox hop per
frame. Each state change (``EncryptionState``) is reported through the ``report`` callback (a ``tell`` to
the RoomActor, which routes it to the TrackActor that emits it). Counters: frames encrypted/decrypted and
dropped.

Trap: a frame under a wrong key makes the decryptor try ``ratchet_window_size`` ratchet steps (PBKDF2,
~50 ms each here; about 0.9 s with the default window of 16 — the official SDK pays it on its own thread).
The receiving cryptor derives that chain once in the default executor (:func:`greenroom.codecs.e2ee.derive`
memoises it) and drops the frames that arrive meanwhile unread; the walk then runs from the memo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc.codecs import depayload, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.packet import Packet

from greenroom.codecs.e2ee import EncryptionState, KeyRing, derive
from greenroom.codecs.e2ee_frames import (
    FrameDecryptor,
    FrameEncryptor,
    UnsupportedFrameCodecError,
    decrypt_frame,
    parse_frame,
)
from greenroom.runtime import aiortc_seams as seams
from greenroom.runtime.media import AiortcSeamError

__all__ = [
    "CODECS",
    "EncryptingEncoder",
    "ReceiveCryptor",
    "SendCryptor",
    "install_decryption",
]

_log = logging.getLogger("greenroom.runtime.e2ee_media")

Report = Callable[[EncryptionState], None]

#: The codec each kind is encoded with when encrypted here (what aiortc negotiates first by default).
CODECS: dict[str, RTCRtpCodecParameters] = {
    "audio": RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111),
    "video": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
}


class SendCryptor:
    """The sending cryptor of one local track as the media path sees it (runtime loop only).

    Args:
        report: called with each new state (on the loop; keep it to a ``tell``).
    """

    def __init__(self, report: Report) -> None:
        self.encryptor = FrameEncryptor()
        self.report = report
        self.encrypted = 0
        self.dropped = 0

    def install(
        self, *, ring: KeyRing | None = None, key_index: int | None = None, enabled: bool | None = None
    ) -> None:
        """Replace the key ring, key index or ``enabled`` (the TrackActor's decisions); the state stays."""
        e = self.encryptor
        self.encryptor = FrameEncryptor(
            ring if ring is not None else e.ring,
            e.key_index if key_index is None else key_index,
            e.enabled if enabled is None else enabled,
            e.state,
        )

    def encrypt(self, frame: bytes, mime_type: str) -> bytes | None:
        """The frame to send, or ``None`` (drop it: no key, or it cannot be encrypted)."""
        self.encryptor, outcome = self.encryptor.encrypt(frame, mime_type)
        if outcome.emit is not None:
            self.report(outcome.emit)
        if outcome.frame is None:
            self.dropped += 1
        else:
            self.encrypted += 1
        return outcome.frame


class ReceiveCryptor:
    """The receiving cryptor of one remote track as the media path sees it (runtime loop only).

    Args:
        report: called with each new state.
        sif_trailer: the room's server-injected-frame trailer (``JoinResponse.sif_trailer``).
    """

    def __init__(self, report: Report, sif_trailer: bytes = b"") -> None:
        self.decryptor = FrameDecryptor(sif_trailer=sif_trailer)
        self.report = report
        self.decrypted = 0
        self.dropped = 0
        #: frames dropped unread while a ratchet chain was derived off the loop, and those derivations.
        self.deferred = 0
        self.warmed = 0
        self._warm: set[bytes] = set()  # materials whose ratchet chain is memoised
        self._warming: asyncio.Future[None] | None = None

    def install(self, *, ring: KeyRing | None = None, enabled: bool | None = None) -> None:
        """Replace the key ring (a key set or ratcheted by the application) or ``enabled``."""
        d = self.decryptor
        self.decryptor = FrameDecryptor(
            ring if ring is not None else d.ring,
            d.enabled if enabled is None else enabled,
            d.sif_trailer,
            d.state,
        )

    def decrypt(self, frame: bytes, mime_type: str) -> bytes | None:
        """The clear frame, or ``None`` (drop it)."""
        if (self._warming is not None and not self._warming.done()) or self._chain_is_cold(frame, mime_type):
            self.deferred += 1
            self.dropped += 1
            return None
        self.decryptor, outcome = self.decryptor.decrypt(frame, mime_type)
        if outcome.emit is not None:
            self.report(outcome.emit)
        if outcome.frame is None:
            self.dropped += 1
        else:
            self.decrypted += 1
        return outcome.frame

    def _chain_is_cold(self, frame: bytes, mime_type: str) -> bool:
        """Whether ``frame`` needs an auto-ratchet walk not derived yet; if so, derive it off the loop.

        The walk is ``ratchet_window_size`` key derivations (PBKDF2: ~50 ms each): done inline it would stall
        the runtime loop for up to a second. It is done once in the default executor (memoised by
        :func:`~greenroom.codecs.e2ee.derive`); frames arriving meanwhile are dropped unread (no state
        change, no failure counted), then the walk runs inline from the memo.
        """
        d = self.decryptor
        ring = d.ring
        if ring is None or ring.options.ratchet_window <= 0 or not frame or not d.enabled:
            return False
        try:
            parsed = parse_frame(frame, mime_type)
        except UnsupportedFrameCodecError:
            return False
        slot = None if parsed is None else ring.key_at(parsed.key_index)
        if parsed is None or slot is None or slot.material in self._warm:
            return False
        if decrypt_frame(parsed, slot.key) is not None:
            return False
        material, options = slot.material, ring.options

        def walk() -> None:
            step = material
            for _ in range(options.ratchet_window):
                step = derive(step, options.salt, options.kdf)

        self._warming = asyncio.get_running_loop().run_in_executor(None, walk)
        self._warming.add_done_callback(lambda _: self._warm.add(material))
        self.warmed += 1
        return True


class EncryptingEncoder:
    """Encodes and encrypts a local track's frames into ``av.Packet`` s for aiortc's sender.

    Args:
        kind: ``audio`` or ``video``.
        cryptor: the track's sending cryptor.
    """

    def __init__(self, kind: str, cryptor: SendCryptor) -> None:
        self.codec = CODECS[kind]
        self.cryptor = cryptor
        self._encoder: Any = None
        self._force_keyframe = False
        self._time_base = Fraction(1, self.codec.clockRate)

    def request_keyframe(self) -> None:
        """A subscriber asked for a keyframe (PLI/FIR): the next video frame is encoded as one."""
        self._force_keyframe = True

    async def __call__(self, frame: av.AudioFrame | av.VideoFrame) -> Packet[Any] | None:
        """The encrypted packet for ``frame``, or ``None`` (nothing to send for it yet, or dropped)."""
        if self._encoder is None:
            self._encoder = get_encoder(self.codec)
        force, self._force_keyframe = self._force_keyframe, False
        loop = asyncio.get_running_loop()
        payloads, timestamp = await loop.run_in_executor(None, self._encoder.encode, frame, force)
        if not payloads:
            return None
        if self.codec.mimeType.startswith("audio/"):
            data = b"".join(payloads)
        else:
            data = b"".join(depayload(self.codec, payload) for payload in payloads)
        sealed = self.cryptor.encrypt(data, self.codec.mimeType)
        if sealed is None:
            return None
        packet = av.Packet(sealed)
        packet.pts = timestamp
        packet.time_base = self._time_base
        return packet


class _DecryptingJitterBuffer:
    """Stands in for a receiver's jitter buffer: the inner one assembles frames, this decrypts them."""

    def __init__(self, inner: Any, codecs: dict[int, Any], cryptor: ReceiveCryptor) -> None:
        self._inner = inner
        self._codecs = codecs  # aiortc fills this dict in place; never replaced
        self.cryptor = cryptor

    @property
    def capacity(self) -> int:
        return int(self._inner.capacity)

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        pli, frame = self._inner.add(packet)
        if frame is None:
            return pli, None
        codec = self._codecs.get(packet.payload_type)
        mime = "audio/opus" if codec is None else str(codec.mimeType)
        clear = self.cryptor.decrypt(frame.data, mime)
        if clear is None:
            return pli, None
        frame.data = clear
        return pli, frame


def install_decryption(receiver: Any, cryptor: ReceiveCryptor) -> None:
    """Decrypt every frame ``receiver`` completes before aiortc decodes it (install before RTP flows).

    Raises:
        AiortcSeamError: the receiver has no jitter buffer or codec table (aiortc version?).
    """
    inner = seams.receiver_jitter_buffer(receiver)
    codecs = seams.receiver_codecs(receiver)
    if inner is None or not hasattr(inner, "add") or codecs is None:
        raise AiortcSeamError(
            "RTCRtpReceiver has no jitter buffer/codec table to decrypt in (aiortc version?)"
        )
    if isinstance(inner, _DecryptingJitterBuffer):
        inner.cryptor = cryptor
        return
    seams.set_receiver_jitter_buffer(receiver, _DecryptingJitterBuffer(inner, codecs, cryptor))


def route_keyframes(sender: Any, encoder: EncryptingEncoder) -> bool:
    """Send ``sender``'s keyframe requests to ``encoder`` (its own encoder never sees a frame)."""
    return seams.route_keyframe_requests(sender, encoder.request_keyframe)
