"""LiveKit end-to-end encryption, part 2: encrypted media frames and the frame cryptors' rules (pure).

An encoded frame (one Opus packet, one VP8 frame, one H.264 access unit in Annex B) is encrypted after
encoding and before packetization (``reference/data-e2ee-formats.md`` §5.4; native ``encryptFrame``)::

    | header (N bytes, clear, the GCM AAD) | ciphertext ‖ tag (16) | IV (12) | IV length = 12 | key index |

* **N** (:func:`unencrypted_bytes`, native ``get_unencrypted_bytes``): 1 for audio (the Opus TOC byte); VP8
  10 for a key frame (bit 0 of the first byte clear) else 3; VP9 0; H.264: the offset of the first slice
  NAL unit (type 1 or 5, ``byte & 0x1F``) after its ``00 00 01`` start code, plus 2 (its header and one
  byte) — 0 when there is none (native encrypts the whole frame then; JS falls back to the VP8 rule, R6).
  The receiver recomputes N from the clear header. AV1 is refused (JS cannot, native changed format, R7).
* **H.264 emulation prevention**: everything after the header is RBSP-escaped (``00 00`` followed by a
  byte ≤ 3 gets a ``03`` inserted; native ``H264::WriteRbsp``) so that no start code appears inside the
  ciphertext; the receiver unescapes only when the region holds ``00 00 03`` (native
  ``NeedsRbspUnescaping``), then reads the trailer. Native before 2025 read the trailer from the escaped
  bytes; the newest reads it after unescaping, as here.
* **Server-injected frames** (§5.6): a frame that ends with the room's SIF trailer (``JoinResponse.
  sif_trailer``) is the SFU's own clear blank frame: the trailer is stripped and the rest passed on.
* **Empty frames** pass untouched both ways; a disabled cryptor passes frames untouched.

The two cryptors are immutable values the media path replaces frame by frame; each call returns the next
cryptor, the output (``None``: drop the frame) and the state to emit (only on change, as native
``onFrameCryptionStateChanged``), so the state machine is tested here without any media.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from greenroom.codecs.e2ee import IV_LENGTH, TAG_LENGTH, EncryptionState, KeyRing, new_iv
from greenroom.codecs.errors import LocalProtocolError

__all__ = [
    "TRAILER_LENGTH",
    "FrameDecryptor",
    "FrameEncryptor",
    "Outcome",
    "ParsedFrame",
    "UnsupportedFrameCodecError",
    "decrypt_frame",
    "encrypt_frame",
    "escape_rbsp",
    "parse_frame",
    "strip_sif",
    "unencrypted_bytes",
    "unescape_rbsp",
]

TRAILER_LENGTH: Final = 2
_H264_SLICES: Final = frozenset({1, 5})
_START: Final = b"\x00\x00\x01"


class UnsupportedFrameCodecError(LocalProtocolError):
    """Frames of this codec cannot be end-to-end encrypted compatibly (e.g. AV1, R7)."""


def _h264_header(frame: bytes) -> int:
    pos = frame.find(_START)
    while 0 <= pos < len(frame) - 3:  # native FindNaluIndices: a start code needs a byte after it
        if frame[pos + 3] & 0x1F in _H264_SLICES:
            return pos + 3 + 2
        pos = frame.find(_START, pos + 3)
    return 0


def unencrypted_bytes(mime_type: str, frame: bytes) -> int:
    """How many leading bytes stay clear (and authenticated) for a frame of ``mime_type``.

    Raises:
        UnsupportedFrameCodecError: the codec has no compatible rule (AV1, anything unknown).
    """
    mime = mime_type.lower()
    if mime.startswith("audio/"):
        return 1
    if mime == "video/vp8":
        return 10 if frame and frame[0] & 0x01 == 0 else 3
    if mime == "video/vp9":
        return 0
    if mime == "video/h264":
        return _h264_header(frame)
    raise UnsupportedFrameCodecError(f"no end-to-end encryption rule for {mime_type!r} frames")


def escape_rbsp(data: bytes) -> bytes:
    """Insert emulation-prevention bytes (``00 00 0x`` with x ≤ 3 → ``00 00 03 0x``), native WriteRbsp."""
    if b"\x00\x00" not in data:
        return data
    out = bytearray()
    zeros = 0
    for byte in data:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def unescape_rbsp(data: bytes) -> bytes:
    """Drop each ``03`` that follows ``00 00`` (native ParseRbsp)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        if n - i >= 3 and data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 3:
            out += b"\x00\x00"
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def encrypt_frame(
    frame: bytes, *, mime_type: str, key: bytes, key_index: int, iv: bytes | None = None
) -> bytes:
    """The encrypted form of a non-empty encoded ``frame`` (see the module docstring for the layout).

    Args:
        frame: the encoded frame, at least N bytes long.
        mime_type: its codec, e.g. ``"audio/opus"``.
        key: the 16-byte AES key (:attr:`~greenroom.codecs.e2ee.KeySet.key`).
        key_index: the index written in the trailer (0–255).
        iv: 12 bytes (random by default).

    Raises:
        UnsupportedFrameCodecError: the codec cannot be encrypted.
        ValueError: the frame is shorter than its clear header.
    """
    n = unencrypted_bytes(mime_type, frame)
    if n > len(frame):
        raise ValueError(f"a {mime_type} frame of {len(frame)} bytes is shorter than its {n}-byte header")
    iv = new_iv() if iv is None else iv
    header = frame[:n]
    sealed = AESGCM(key).encrypt(iv, frame[n:], header)
    tail = sealed + iv + bytes((IV_LENGTH, key_index))
    return header + (escape_rbsp(tail) if mime_type.lower() == "video/h264" else tail)


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    """An encrypted frame taken apart: clear header (AAD), ciphertext ‖ tag, IV, key index."""

    header: bytes
    sealed: bytes
    iv: bytes
    key_index: int


def parse_frame(frame: bytes, mime_type: str) -> ParsedFrame | None:
    """Take an encrypted frame apart, or ``None`` when it cannot be one (too short, IV length ≠ 12)."""
    n = unencrypted_bytes(mime_type, frame)
    if n > len(frame):
        return None
    region = frame[n:]
    if mime_type.lower() == "video/h264" and b"\x00\x00\x03" in region[:-1]:
        region = unescape_rbsp(region)
    if len(region) < TRAILER_LENGTH + IV_LENGTH + TAG_LENGTH or region[-2] != IV_LENGTH:
        return None
    end = len(region) - TRAILER_LENGTH
    return ParsedFrame(frame[:n], region[: end - IV_LENGTH], region[end - IV_LENGTH : end], region[-1])


def decrypt_frame(parsed: ParsedFrame, key: bytes) -> bytes | None:
    """The clear frame (header + plaintext), or ``None`` when ``key`` does not open it."""
    try:
        return parsed.header + AESGCM(key).decrypt(parsed.iv, parsed.sealed, parsed.header)
    except InvalidTag:
        return None


def strip_sif(frame: bytes, trailer: bytes) -> bytes | None:
    """The frame without the SIF trailer if it ends with it (a clear frame the SFU injected), else None."""
    if trailer and frame.endswith(trailer):
        return frame[: len(frame) - len(trailer)]
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One frame through a cryptor: the frame to pass on (``None``: drop it) and the state to emit."""

    frame: bytes | None
    emit: EncryptionState | None = None


@dataclass(frozen=True, slots=True)
class FrameEncryptor:
    """The sending cryptor of one local track (native ``encryptFrame``), immutable.

    Attributes:
        ring: the local participant's keys (``None``: none set yet).
        key_index: the index this track encrypts with (``FrameCryptor.set_key_index``; default 0, R9).
        enabled: ``FrameCryptor.set_enabled``.
        state: the last state emitted.
    """

    ring: KeyRing | None = None
    key_index: int = 0
    enabled: bool = True
    state: EncryptionState = EncryptionState.NEW

    def encrypt(
        self, frame: bytes, mime_type: str, *, iv: bytes | None = None
    ) -> tuple[FrameEncryptor, Outcome]:
        """Encrypt one encoded frame: the next cryptor and the outcome."""
        if not frame or not self.enabled:
            return self, Outcome(frame)
        key = None if self.ring is None else self.ring.key_at(self.key_index)
        if key is None:
            return self._to(EncryptionState.MISSING_KEY, None)
        try:
            out = encrypt_frame(frame, mime_type=mime_type, key=key.key, key_index=self.key_index, iv=iv)
        except (ValueError, UnsupportedFrameCodecError):
            return self._to(EncryptionState.ENCRYPTION_FAILED, None)
        return self._to(EncryptionState.OK, out)

    def _to(self, state: EncryptionState, frame: bytes | None) -> tuple[FrameEncryptor, Outcome]:
        if state == self.state:
            return self, Outcome(frame)
        return replace(self, state=state), Outcome(frame, state)


@dataclass(frozen=True, slots=True)
class FrameDecryptor:
    """The receiving cryptor of one remote track (native ``decryptFrame``), immutable.

    Attributes:
        ring: the sender's keys as this track sees them (auto-ratchet and failures change this copy).
        enabled: ``FrameCryptor.set_enabled``.
        sif_trailer: the room's server-injected-frame trailer (``b""``: none).
        state: the last state emitted.
    """

    ring: KeyRing | None = None
    enabled: bool = True
    sif_trailer: bytes = b""
    state: EncryptionState = EncryptionState.NEW

    def decrypt(self, frame: bytes, mime_type: str) -> tuple[FrameDecryptor, Outcome]:
        """Decrypt one received encoded frame: the next cryptor and the outcome."""
        if not frame or not self.enabled:
            return self, Outcome(frame)
        clear = strip_sif(frame, self.sif_trailer)
        if clear is not None:
            return self, Outcome(clear)
        checked = self._check(frame, mime_type)
        if isinstance(checked, EncryptionState):
            return self._to(checked, None)
        ring, parsed = checked
        if self.state == EncryptionState.DECRYPTION_FAILED and not ring.valid:
            return self, Outcome(None)  # native: wait for a new key before trying again
        opened = ring.open(parsed.key_index, lambda key: decrypt_frame(parsed, key))
        if opened.value is None:
            ring, invalid = opened.ring.failed()
            after = replace(self, ring=ring)
            return after._to(EncryptionState.DECRYPTION_FAILED, None) if invalid else (after, Outcome(None))
        state = EncryptionState.KEY_RATCHETED if opened.ratcheted else EncryptionState.OK
        return replace(self, ring=opened.ring)._to(state, opened.value)

    def _check(self, frame: bytes, mime_type: str) -> tuple[KeyRing, ParsedFrame] | EncryptionState:
        """The ring and the parsed frame, or the state a malformed frame or a missing key leads to."""
        try:
            parsed = parse_frame(frame, mime_type)
        except UnsupportedFrameCodecError:
            parsed = None
        if parsed is None:
            return EncryptionState.DECRYPTION_FAILED
        if self.ring is None or self.ring.key_at(parsed.key_index) is None:
            return EncryptionState.MISSING_KEY
        return self.ring, parsed

    def _to(self, state: EncryptionState, frame: bytes | None) -> tuple[FrameDecryptor, Outcome]:
        if state == self.state:
            return self, Outcome(frame)
        return replace(self, state=state), Outcome(frame, state)
