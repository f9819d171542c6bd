"""Tests for the media path's E2EE adapter (``greenroom.runtime.e2ee_media``): the cryptors' counters and
reports, encode-then-encrypt into packets aiortc's sender only packetizes, and decryption inside a
receiver's jitter buffer. End to end through the dev server: ``tests/rtc/test_e2ee.py``."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from greenroom.codecs.e2ee import EncryptionState, KeyOptions, KeyRing
from greenroom.codecs.e2ee_frames import FrameDecryptor, encrypt_frame, unencrypted_bytes
from greenroom.runtime import aiortc_seams as seams
from greenroom.runtime.e2ee_media import (
    EncryptingEncoder,
    ReceiveCryptor,
    SendCryptor,
    install_decryption,
    route_keyframes,
)
from greenroom.runtime.media import AiortcSeamError

RING = KeyRing.empty(KeyOptions(ratchet_window=0)).with_material(b"media-key", 0)


def key() -> bytes:
    slot = RING.key_at(0)
    assert slot is not None
    return slot.key


def test_the_send_cryptor_reports_missing_key_then_ok_and_counts() -> None:
    reports: list[EncryptionState] = []
    cryptor = SendCryptor(reports.append)
    assert cryptor.encrypt(b"\x78opus", "audio/opus") is None
    cryptor.install(ring=RING)
    sealed = cryptor.encrypt(b"\x78opus", "audio/opus")
    assert sealed is not None
    assert sealed[-2:] == b"\x0c\x00"
    cryptor.install(key_index=5)  # nothing at index 5
    assert cryptor.encrypt(b"\x78opus", "audio/opus") is None
    cryptor.install(key_index=0, enabled=False)
    assert cryptor.encrypt(b"\x78opus", "audio/opus") == b"\x78opus"
    assert reports == [EncryptionState.MISSING_KEY, EncryptionState.OK, EncryptionState.MISSING_KEY]
    assert (cryptor.encrypted, cryptor.dropped) == (2, 2)


def test_the_receive_cryptor_drops_and_counts_garbage_without_raising() -> None:
    reports: list[EncryptionState] = []
    cryptor = ReceiveCryptor(reports.append, sif_trailer=b"SIF")
    cryptor.install(ring=RING)
    good = encrypt_frame(b"\x78voice", mime_type="audio/opus", key=key(), key_index=0)
    assert cryptor.decrypt(good, "audio/opus") == b"\x78voice"
    for garbage in (b"\x78", good[:-5], good[:-1] + b"\x07", bytes(100)):
        assert cryptor.decrypt(garbage, "audio/opus") is None
    assert cryptor.decrypt(b"\xf8blankSIF", "audio/opus") == b"\xf8blank"
    failed, missing = EncryptionState.DECRYPTION_FAILED, EncryptionState.MISSING_KEY
    assert reports == [EncryptionState.OK, failed, missing, failed]  # each change once
    assert (cryptor.decrypted, cryptor.dropped) == (2, 4)
    cryptor.install(enabled=False)
    assert cryptor.decrypt(b"\x78clear", "audio/opus") == b"\x78clear"


def audio_frame(n: int = 960) -> av.AudioFrame:
    samples = (np.sin(np.arange(n) / 10) * 8000).astype(np.int16).reshape(1, -1).repeat(2, axis=0)
    frame = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
    return frame


def test_audio_is_encoded_then_encrypted_into_a_packet() -> None:
    async def go() -> None:
        cryptor = SendCryptor(lambda state: None)
        cryptor.install(ring=RING)
        encoder = EncryptingEncoder("audio", cryptor)
        packet = await encoder(audio_frame())
        assert packet is not None
        assert packet.time_base == Fraction(1, 48000)
        clear = FrameDecryptor(RING).decrypt(bytes(packet), "audio/opus")[1].frame
        assert clear is not None
        assert len(clear) > 2  # an Opus packet: TOC byte in clear, the rest decrypted
        cryptor.install(enabled=True, key_index=9)  # no key: nothing to send
        assert await encoder(audio_frame()) is None

    asyncio.run(go())


def test_video_is_encoded_whole_then_encrypted_and_a_keyframe_can_be_asked() -> None:
    async def go() -> None:
        cryptor = SendCryptor(lambda state: None)
        cryptor.install(ring=RING)
        encoder = EncryptingEncoder("video", cryptor)
        frames = []
        for index in range(3):
            image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")
            image.pts, image.time_base = index * 3000, Fraction(1, 90000)
            if index == 2:
                encoder.request_keyframe()
            packet = await encoder(image)
            assert packet is not None
            frames.append(bytes(packet))
        for data, keyframe in zip(frames, (True, False, True), strict=True):
            assert (data[0] & 0x01 == 0) is keyframe  # the VP8 frame tag stays in clear
            assert unencrypted_bytes("video/vp8", data) == (10 if keyframe else 3)
            assert FrameDecryptor(RING).decrypt(data, "video/vp8")[1].frame is not None

    asyncio.run(go())


class FakeReceiver:
    """The two private attributes a receiver's decryption relies on (named as aiortc mangles them)."""

    def __init__(self, buffer: Any, codecs: dict[int, Any] | None) -> None:
        seams.set_receiver_jitter_buffer(self, buffer)
        setattr(self, "_RTCRtpReceiver__codecs", codecs)  # noqa: B010 - the mangled name


def rtp(data: bytes, seq: int, payload_type: int = 111) -> RtpPacket:
    packet = RtpPacket(payload_type=payload_type, sequence_number=seq, timestamp=seq * 960)
    packet._data = data  # type: ignore[attr-defined]  # what the receiver's depayloader sets
    return packet


def test_a_receivers_frames_are_decrypted_in_its_jitter_buffer_and_bad_ones_dropped() -> None:
    opus = SimpleNamespace(mimeType="audio/opus")
    receiver = FakeReceiver(JitterBuffer(capacity=16, prefetch=0), {111: opus})
    cryptor = ReceiveCryptor(lambda state: None)
    cryptor.install(ring=RING)
    install_decryption(receiver, cryptor)
    buffer: Any = seams.receiver_jitter_buffer(receiver)
    assert buffer is not None
    assert buffer.capacity == 16
    good = encrypt_frame(b"\x78voice", mime_type="audio/opus", key=key(), key_index=0)
    sent = [good, b"\x78garbage" * 5, good, good]
    outputs = [buffer.add(rtp(data, seq))[1] for seq, data in enumerate(sent)]
    # an audio frame completes when the next packet arrives (aiortc's JitterBuffer)
    assert [None if f is None else f.data for f in outputs] == [None, b"\x78voice", None, b"\x78voice"]
    again = ReceiveCryptor(lambda state: None)
    install_decryption(receiver, again)  # installed twice: the stand-in just takes the new cryptor
    assert id(seams.receiver_jitter_buffer(receiver)) == id(buffer)
    buffer.add(rtp(good, 4, payload_type=99))
    assert buffer.add(rtp(good, 5))[1] is None  # unknown payload type: the Opus rules; no key: dropped


def test_decryption_needs_the_receivers_jitter_buffer() -> None:
    with pytest.raises(AiortcSeamError):
        install_decryption(FakeReceiver(None, {}), ReceiveCryptor(lambda state: None))


def test_keyframe_requests_are_routed_to_the_encoder() -> None:
    encoder = EncryptingEncoder("video", SendCryptor(lambda state: None))
    sender = SimpleNamespace(_send_keyframe=lambda: None)
    assert route_keyframes(sender, encoder)
    sender._send_keyframe()
    assert encoder._force_keyframe
    assert not route_keyframes(SimpleNamespace(), encoder)


def test_an_auto_ratchet_walk_is_derived_off_the_loop_once_then_followed() -> None:
    async def go() -> None:
        base = KeyRing.empty(KeyOptions(ratchet_window=3)).with_material(b"walk-from-here", 0)
        ahead, _ = base.ratcheted(0)
        ahead, _ = ahead.ratcheted(0)
        ahead_key = ahead.key_at(0)
        assert ahead_key is not None
        frame = encrypt_frame(b"\x78ahead", mime_type="audio/opus", key=ahead_key.key, key_index=0)
        reports: list[EncryptionState] = []
        cryptor = ReceiveCryptor(reports.append)
        cryptor.install(ring=base)
        assert cryptor.decrypt(frame, "audio/opus") is None  # the walk starts in the executor
        assert cryptor.decrypt(frame, "audio/opus") is None  # still deriving: dropped unread
        assert cryptor._warming is not None
        await cryptor._warming
        assert cryptor.decrypt(frame, "audio/opus") == b"\x78ahead"  # from the memo
        assert cryptor.decrypt(frame, "audio/opus") == b"\x78ahead"
        assert reports == [EncryptionState.KEY_RATCHETED, EncryptionState.OK]
        assert (cryptor.warmed, cryptor.deferred) == (1, 2)
        other = encrypt_frame(b"\x78x", mime_type="audio/opus", key=key(), key_index=0)
        assert cryptor.decrypt(other, "audio/opus") is None  # another material: one more walk
        await cryptor._warming
        assert cryptor.decrypt(other, "audio/opus") is None  # no key in the window: failed, counted
        assert cryptor.warmed == 2
        assert cryptor.decrypt(b"\\x00" * 40, "video/AV1") is None  # not a codec with a rule: no walk
        assert cryptor.warmed == 2

    asyncio.run(go())
