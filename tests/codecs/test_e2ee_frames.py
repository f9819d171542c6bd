"""Tests for encrypted media frames and the frame cryptors (``greenroom.codecs.e2ee_frames``).

The golden frames (``golden/e2ee_official.json``) were written by the official SDK's libwebrtc frame
cryptor (livekit 1.2.1): Opus, VP8 (a key frame and deltas) and H.264.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenroom.codecs.e2ee import EncryptionState, KeyOptions, KeyRing
from greenroom.codecs.e2ee_frames import (
    FrameDecryptor,
    FrameEncryptor,
    Outcome,
    UnsupportedFrameCodecError,
    decrypt_frame,
    encrypt_frame,
    escape_rbsp,
    parse_frame,
    strip_sif,
    unencrypted_bytes,
    unescape_rbsp,
)

GOLDEN: dict[str, Any] = json.loads((Path(__file__).parent / "golden" / "e2ee_official.json").read_text())
OPUS, VP8, H264 = "audio/opus", "video/vp8", "video/h264"
S = EncryptionState


def ring(material: bytes = b"frame-key", index: int = 0, **options: Any) -> KeyRing:
    return KeyRing.empty(KeyOptions(**options)).with_material(material, index)


def key(material: bytes = b"frame-key") -> bytes:
    found = ring(material).key_at(0)
    assert found is not None
    return found.key


# -- what the official SDK wrote -------------------------------------------------------------------------


@pytest.mark.parametrize("mime", [OPUS, VP8, H264])
def test_the_official_sdks_frames_decrypt(mime: str) -> None:
    keys = ring(GOLDEN["shared_key"].encode())
    decryptor = FrameDecryptor(keys)
    for frame in GOLDEN["frames"][mime]:
        encrypted, clear = base64.b64decode(frame["encrypted"]), base64.b64decode(frame["clear"])
        parsed = parse_frame(encrypted, mime)
        assert parsed is not None
        assert parsed.key_index == 0
        assert len(parsed.iv) == 12
        decryptor, outcome = decryptor.decrypt(encrypted, mime)
        assert outcome.frame == clear
    assert decryptor.state == S.OK


def test_the_official_layouts_are_the_documented_ones() -> None:
    opus = base64.b64decode(GOLDEN["frames"][OPUS][0]["encrypted"])
    vp8_key, vp8_delta = (base64.b64decode(f["encrypted"]) for f in GOLDEN["frames"][VP8][:2])
    assert opus[-2:] == b"\x0c\x00"  # IV length 12, key index 0
    assert unencrypted_bytes(OPUS, opus) == 1
    assert unencrypted_bytes(VP8, vp8_key) == 10
    assert vp8_key[3:6] == b"\x9d\x01\x2a"
    assert unencrypted_bytes(VP8, vp8_delta) == 3
    h264 = base64.b64decode(GOLDEN["frames"][H264][0]["encrypted"])  # SPS, PPS, then the IDR slice
    assert unencrypted_bytes(H264, h264) == h264.index(b"\x00\x00\x00\x01\x65") + 4 + 2


@pytest.mark.parametrize("mime", [OPUS, VP8, H264])
def test_greenroom_encrypts_what_decrypts_back(mime: str) -> None:
    encryptor, decryptor = FrameEncryptor(ring()), FrameDecryptor(ring())
    for frame in GOLDEN["frames"][mime]:
        clear = base64.b64decode(frame["clear"])
        encryptor, sealed = encryptor.encrypt(clear, mime)
        assert sealed.frame is not None
        assert sealed.frame != clear
        decryptor, opened = decryptor.decrypt(sealed.frame, mime)
        assert opened.frame == clear


# -- the clear header per codec --------------------------------------------------------------------------


def test_unencrypted_bytes_per_codec() -> None:
    assert unencrypted_bytes("audio/PCMU", b"\x01\x02") == 1
    assert unencrypted_bytes(VP8, b"") == 3
    assert unencrypted_bytes("video/VP9", b"\x00" * 20) == 0
    with pytest.raises(UnsupportedFrameCodecError):
        unencrypted_bytes("video/AV1", b"\x00" * 20)


def test_h264_clear_bytes_reach_one_past_the_first_slice_header() -> None:
    sps, pps = b"\x00\x00\x00\x01\x67\x42\x00", b"\x00\x00\x01\x68\xce"
    assert unencrypted_bytes(H264, sps + pps + b"\x00\x00\x01\x41\x9a\x00") == len(sps + pps) + 3 + 2
    assert unencrypted_bytes(H264, b"\x00\x00\x00\x01\x65\x88\x80") == 6
    assert unencrypted_bytes(H264, sps + pps) == 0  # no slice: the whole frame is encrypted (native, R6)
    assert unencrypted_bytes(H264, b"\x12\x00\x00\x01") == 0  # a start code with nothing after it
    assert unencrypted_bytes(H264, b"\x00\x00\x01\x65") == 5  # longer than the frame: refused later


# -- emulation prevention ----------------------------------------------------------------------------------


def test_rbsp_escaping_inserts_03_after_two_zeros_before_a_small_byte() -> None:
    assert escape_rbsp(b"\x01\x02") == b"\x01\x02"
    assert escape_rbsp(b"\x00\x00\x01\x00\x00\x00\x00\x04") == b"\x00\x00\x03\x01\x00\x00\x03\x00\x00\x04"
    assert unescape_rbsp(b"\x00\x00\x03\x01\x00\x00\x03\x00\x00\x04") == b"\x00\x00\x01\x00\x00\x00\x00\x04"
    assert unescape_rbsp(b"\x00\x00") == b"\x00\x00"


@given(st.binary(max_size=200))
def test_rbsp_escaping_round_trips_and_leaves_no_start_code(data: bytes) -> None:
    escaped = escape_rbsp(data)
    assert unescape_rbsp(escaped) == data
    assert b"\x00\x00\x01" not in escaped
    assert b"\x00\x00\x00" not in escaped


def test_h264_frames_whose_ciphertext_needs_escaping_round_trip() -> None:
    frame = b"\x00\x00\x00\x01\x65\x88" + bytes(64)
    for n in range(40):  # IVs full of zeros make escapes inside the trailer too
        iv = bytes(11) + bytes([n])
        sealed = encrypt_frame(frame, mime_type=H264, key=key(), key_index=0, iv=iv)
        assert b"\x00\x00\x01" not in sealed[6:]
        parsed = parse_frame(sealed, H264)
        assert parsed is not None
        assert parsed.iv == iv
        assert decrypt_frame(parsed, key()) == frame


# -- taking frames apart -------------------------------------------------------------------------------------


def test_frames_that_cannot_be_encrypted_ones_do_not_parse() -> None:
    assert parse_frame(b"\x10\x00", VP8) is None  # a key frame shorter than its header
    assert parse_frame(b"\x78" + bytes(29), OPUS) is None  # shorter than tag + IV + trailer
    good = encrypt_frame(b"\x78abc", mime_type=OPUS, key=key(), key_index=2)
    assert parse_frame(good[:-2] + b"\x0b\x02", OPUS) is None  # IV length 11
    parsed = parse_frame(good, OPUS)
    assert parsed is not None
    assert parsed.key_index == 2
    assert parsed.header == b"\x78"
    assert decrypt_frame(parsed, key(b"other")) is None


def test_encrypting_a_frame_shorter_than_its_header_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter"):
        encrypt_frame(b"\x10\x00", mime_type=VP8, key=key(), key_index=0)


def test_server_injected_frames_are_recognised_by_their_trailer() -> None:
    assert strip_sif(b"blankTRAILER", b"TRAILER") == b"blank"
    assert strip_sif(b"blank", b"TRAILER") is None
    assert strip_sif(b"blank", b"") is None


# -- the sending cryptor ------------------------------------------------------------------------------


def test_the_encryptor_passes_empty_frames_and_disabled_tracks_through() -> None:
    encryptor = FrameEncryptor(ring())
    assert encryptor.encrypt(b"", OPUS) == (encryptor, Outcome(b""))
    off = FrameEncryptor(ring(), enabled=False)
    assert off.encrypt(b"\x78abc", OPUS) == (off, Outcome(b"\x78abc"))


def test_the_encryptor_reports_each_state_once() -> None:
    encryptor = FrameEncryptor(None)
    encryptor, outcome = encryptor.encrypt(b"\x78abc", OPUS)
    assert outcome == Outcome(None, S.MISSING_KEY)
    encryptor, outcome = encryptor.encrypt(b"\x78abc", OPUS)
    assert outcome == Outcome(None)
    encryptor = FrameEncryptor(ring(), key_index=3, state=encryptor.state)
    assert encryptor.encrypt(b"\x78abc", OPUS)[1] == Outcome(None)  # nothing at index 3 either
    encryptor = FrameEncryptor(ring(), state=S.MISSING_KEY)
    encryptor, outcome = encryptor.encrypt(b"\x78abc", OPUS)
    assert outcome.emit == S.OK
    assert outcome.frame is not None
    assert outcome.frame[-1] == 0
    encryptor, outcome = encryptor.encrypt(b"\x10\x00", VP8)
    assert outcome == Outcome(None, S.ENCRYPTION_FAILED)
    encryptor, outcome = encryptor.encrypt(b"\x00" * 20, "video/AV1")
    assert outcome == Outcome(None)
    assert encryptor.state == S.ENCRYPTION_FAILED


# -- the receiving cryptor ----------------------------------------------------------------------------


def sealed(material: bytes = b"frame-key", frame: bytes = b"\x78abcdef", index: int = 0) -> bytes:
    return encrypt_frame(frame, mime_type=OPUS, key=key(material), key_index=index)


def test_the_decryptor_passes_empty_disabled_and_server_injected_frames() -> None:
    decryptor = FrameDecryptor(ring(), sif_trailer=b"LKSIF")
    assert decryptor.decrypt(b"", OPUS) == (decryptor, Outcome(b""))
    assert decryptor.decrypt(b"\xf8\xff\xfeLKSIF", OPUS) == (decryptor, Outcome(b"\xf8\xff\xfe"))
    off = FrameDecryptor(ring(), enabled=False)
    assert off.decrypt(b"\x78clear", OPUS) == (off, Outcome(b"\x78clear"))


def test_garbage_truncated_and_unsupported_frames_fail_without_raising() -> None:
    decryptor = FrameDecryptor(ring())
    decryptor, outcome = decryptor.decrypt(b"\x78 not encrypted at all", OPUS)
    assert outcome == Outcome(None, S.DECRYPTION_FAILED)
    decryptor, outcome = decryptor.decrypt(sealed()[:-20], OPUS)
    assert outcome == Outcome(None)  # still failed: no new event
    _, outcome = FrameDecryptor(ring()).decrypt(b"\x00" * 40, "video/AV1")
    assert outcome == Outcome(None, S.DECRYPTION_FAILED)


def test_a_missing_key_is_reported_then_ok_when_it_arrives() -> None:
    decryptor, outcome = FrameDecryptor(None).decrypt(sealed(), OPUS)
    assert outcome == Outcome(None, S.MISSING_KEY)
    decryptor, outcome = FrameDecryptor(ring(), state=decryptor.state).decrypt(sealed(index=9), OPUS)
    assert outcome == Outcome(None)
    decryptor, outcome = FrameDecryptor(ring(), state=decryptor.state).decrypt(sealed(), OPUS)
    assert outcome == Outcome(b"\x78abcdef", S.OK)


def test_a_wrong_key_is_silent_without_a_tolerance_as_the_python_sdk() -> None:
    decryptor = FrameDecryptor(ring(b"wrong", ratchet_window=0))
    for _ in range(3):
        decryptor, outcome = decryptor.decrypt(sealed(), OPUS)
        assert outcome == Outcome(None)
    assert decryptor.state == S.NEW


def test_a_wrong_key_past_the_tolerance_fails_once_then_waits_for_a_new_key() -> None:
    decryptor = FrameDecryptor(ring(b"wrong", ratchet_window=0, failure_tolerance=1))
    decryptor, outcome = decryptor.decrypt(sealed(), OPUS)
    assert outcome == Outcome(None)
    decryptor, outcome = decryptor.decrypt(sealed(), OPUS)
    assert outcome == Outcome(None, S.DECRYPTION_FAILED)
    assert decryptor.ring is not None
    assert not decryptor.ring.valid
    assert decryptor.decrypt(sealed(b"wrong"), OPUS) == (decryptor, Outcome(None))  # not even tried
    renewed = FrameDecryptor(decryptor.ring.with_material(b"frame-key", 0), state=decryptor.state)
    assert renewed.decrypt(sealed(), OPUS)[1] == Outcome(b"\x78abcdef", S.OK)


def test_a_sender_that_ratcheted_is_followed_and_reported() -> None:
    ahead, _ = ring().ratcheted(0)
    ahead_key = ahead.key_at(0)
    assert ahead_key is not None
    frame = encrypt_frame(b"\x78later", mime_type=OPUS, key=ahead_key.key, key_index=0)
    decryptor, outcome = FrameDecryptor(ring(ratchet_window=2)).decrypt(frame, OPUS)
    assert outcome == Outcome(b"\x78later", S.KEY_RATCHETED)
    assert decryptor.ring is not None
    assert decryptor.ring.export(0) == ahead.export(0)
    _, outcome = decryptor.decrypt(frame, OPUS)
    assert outcome == Outcome(b"\x78later", S.OK)
