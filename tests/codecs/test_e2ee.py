"""Tests for E2EE keys, rings, the key store and sealed data packets (``greenroom.codecs.e2ee``).

Known answers come from the sources named in ``reference/data-e2ee-formats.md`` §5.13 and from the official
SDK itself (``golden/e2ee_official.json``, captured from livekit 1.2.1 publishing through the dev server).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from greenroom.codecs.e2ee import (
    DEFAULT_RATCHET_SALT,
    EncryptionState,
    KeyDerivationFunction,
    KeyOptions,
    KeyRing,
    KeySet,
    KeyStore,
    derive,
    new_iv,
    open_packet,
    ratchet_material,
    seal_packet,
)
from greenroom.codecs.errors import LocalProtocolError
from greenroom.codecs.packets import (
    DataPacket,
    EncryptedPacket,
    EncryptionType,
    SipDtmf,
    UserPacket,
    decode_packet,
    encode_packet,
)

PBKDF2 = KeyDerivationFunction.PBKDF2
HKDF = KeyDerivationFunction.HKDF
SALT = DEFAULT_RATCHET_SALT
GOLDEN: dict[str, Any] = json.loads((Path(__file__).parent / "golden" / "e2ee_official.json").read_text())


def ring(material: bytes = b"test-key", index: int = 0, **options: Any) -> KeyRing:
    return KeyRing.empty(KeyOptions(**options)).with_material(material, index)


# -- derivation: published vectors ---------------------------------------------------------------------


def test_pbkdf2_keys_match_the_published_vectors() -> None:
    # JS FrameCryptor.test.ts ("key1"), Go TestDeriveKeyFromString ("12345"), native unit test (custom salt)
    assert KeySet.of(b"key1", KeyOptions()).key.hex() == "7adabac1db9abf018ef98fdc737f4f2f"
    assert KeySet.of(b"12345", KeyOptions()).key.hex() == "0f5ec6425dd3742e3761e879bde9e016"
    custom = KeyOptions(salt=bytes(range(8)))
    assert KeySet.of(bytes(range(16)), custom).key.hex() == "a658cd52efbacadfecdfe0a0dc574ec3"


def test_hkdf_keys_match_the_published_vectors() -> None:
    options = KeyOptions(kdf=HKDF)
    # Go TestDeriveKeyFromBytes; and the reference's own vector (info = 128 zero bytes)
    assert KeySet.of(bytes.fromhex("2215bbca86cca83e056928f458"), options).key.hex() == (
        "81e05d3e11cb638865239580bd98fb4c"
    )
    assert KeySet.of(bytes(range(16)), options).key.hex() == "4086b4641064e1ae8b63d4eb83ad3e7e"


def test_a_ratchet_step_is_32_bytes_of_the_same_derivation() -> None:
    step = ratchet_material(b"key1", SALT, PBKDF2)
    assert step.hex() == "7adabac1db9abf018ef98fdc737f4f2fa5525bb263614b058227fad0ee98a45a"
    assert KeySet.of(step, KeyOptions()).key.hex() == "ef72273fb77192920832fe07b24cb4a5"
    assert len(derive(b"x", SALT, HKDF)) == 32


def test_a_key_set_never_shows_its_bytes() -> None:
    assert "7adabac1" not in repr(KeySet.of(b"key1", KeyOptions()))
    assert "key1" not in repr(ring(b"key1"))


def test_ivs_are_12_fresh_bytes() -> None:
    assert len(new_iv()) == 12
    assert new_iv() != new_iv()


# -- rings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "size"), [(0, 16), (-3, 16), (1, 1), (255, 255), (300, 256)])
def test_the_ring_size_is_normalised_as_native(asked: int, size: int) -> None:
    assert len(KeyRing.empty(KeyOptions(ring_size=asked)).slots) == size


def test_setting_a_key_returns_a_new_valid_ring_and_leaves_the_old_one() -> None:
    empty = KeyRing.empty(KeyOptions(ring_size=4))
    one = empty.with_material(b"a", 5)  # 5 % 4
    assert empty.key_at(1) is None
    assert not empty.valid
    assert one.key_at(1) == KeySet.of(b"a", KeyOptions())
    assert one.latest == 1
    assert one.valid
    assert one.key_at(-1) is None
    assert one.key_at(4) is None
    again = one.with_material(b"b", -1)  # negative: the latest index
    assert again.export(1) == b"b"
    assert again.export(0) == b""


def test_ratcheting_replaces_the_slot_and_returns_the_new_material() -> None:
    start = ring(b"key1", 2)
    after, material = start.ratcheted(2)
    assert material == ratchet_material(b"key1", SALT, PBKDF2)
    assert after.export(2) == material
    assert start.export(2) == b"key1"
    latest, same = start.ratcheted(-1)
    assert same == material
    assert latest == after
    assert start.ratcheted(3) == (start, b"")


def test_failures_count_only_with_a_tolerance_and_invalidate_past_it() -> None:
    lenient = ring()
    assert lenient.failed() == (lenient, False)
    strict = ring(failure_tolerance=1)
    once, invalid = strict.failed()
    assert not invalid
    assert once.valid
    assert once.failures == 1
    twice, invalid = once.failed()
    assert invalid
    assert not twice.valid
    assert twice.with_material(b"new", 0).valid
    assert twice.with_material(b"new", 0).failures == 0


def test_open_ratchets_forward_within_the_window_only() -> None:
    start = ring(b"base", 0, ratchet_window=2)
    two = ratchet_material(ratchet_material(b"base", SALT, PBKDF2), SALT, PBKDF2)
    target = KeySet.of(two, KeyOptions()).key

    def attempt(key: bytes) -> str | None:
        return "opened" if key == target else None

    opened = start.open(0, attempt)
    assert opened.value == "opened"
    assert opened.ratcheted
    assert opened.ring.export(0) == two
    direct = opened.ring.open(0, attempt)
    assert direct.value == "opened"
    assert not direct.ratcheted
    assert direct.ring is opened.ring
    narrow = ring(b"base", 0, ratchet_window=1).open(0, attempt)
    assert narrow.value is None
    assert narrow.ring.export(0) == b"base"


# -- the key store (native DefaultKeyProviderImpl) -----------------------------------------------------


def test_shared_mode_gives_every_participant_the_shared_ring_unless_they_have_their_own() -> None:
    store = KeyStore(KeyOptions(), shared_mode=True)
    assert store.ring_for("alice") is None
    assert store.export_shared_key(0) == b""
    assert store.ratchet_shared_key(0) == (store, b"")
    store = store.with_shared_key(b"shared", 0)
    assert store.ring_for("alice") is store.shared
    store = store.with_key("bob", b"own", 1)
    bob = store.ring_for("bob")
    assert bob is not None
    assert bob.export(1) == b"own"
    store = store.with_shared_key(b"shared2", 0)  # applied to bob's ring too (native SetSharedKey)
    assert store.export_key("bob", 0) == b"shared2"
    assert store.export_shared_key(0) == b"shared2"
    ratcheted, material = store.ratchet_shared_key(0)
    assert material == ratchet_material(b"shared2", SALT, PBKDF2)
    assert ratcheted.export_shared_key(0) == material
    assert ratcheted.export_key("bob", 0) == material
    assert store.ratchet_shared_key(5) == (store, b"")


def test_per_participant_mode_ignores_shared_keys() -> None:
    store = KeyStore(KeyOptions())
    assert store.with_shared_key(b"x", 0) is store
    assert store.ring_for("alice") is None
    assert store.export_key("alice", 0) == b""
    assert store.ratchet_key("alice", 0) == (store, b"")
    store = store.with_key("alice", b"a", 0).with_key("alice", b"a1", 1)
    assert store.export_key("alice", 0) == b"a"
    assert store.export_key("alice", 1) == b"a1"
    after, material = store.ratchet_key("alice", 1)
    assert after.export_key("alice", 1) == material == ratchet_material(b"a1", SALT, PBKDF2)


# -- data packets ----------------------------------------------------------------------------------------


def test_sealing_matches_the_reference_vector() -> None:
    sealed = seal_packet(UserPacket(payload=b"hello"), ring(), iv=bytes(range(12)))
    assert sealed is not None
    assert sealed.encrypted_value.hex() == "2f70f92fc6a2cc1163298f7b5050ec31c8a8b59a0c2de8e70c"
    assert encode_packet(DataPacket(value=sealed)).hex() == (
        "92012b0801120c000102030405060708090a0b22192f70f92fc6a2cc1163298f7b5050ec31c8a8b59a0c2de8e70c"
    )


def test_the_official_sdks_sealed_packets_open() -> None:
    keys = ring(GOLDEN["shared_key"].encode())
    for packet in GOLDEN["data"]:
        sealed = EncryptedPacket(
            EncryptionType.GCM, base64.b64decode(packet["iv"]), 0, base64.b64decode(packet["wire"])
        )
        opened = open_packet(sealed, keys)
        assert opened is not None
        assert opened.state == EncryptionState.OK
        assert opened.value == UserPacket(payload=base64.b64decode(packet["payload"]), topic="e2ee")


def test_sealing_uses_the_latest_index_and_round_trips() -> None:
    keys = ring(b"k0", 0).with_material(b"k3", 3)
    sealed = seal_packet(UserPacket(payload=b"x"), keys)
    assert sealed is not None
    assert sealed.key_index == 3
    assert len(sealed.iv) == 12
    wire = decode_packet(encode_packet(DataPacket(value=sealed))).value
    assert isinstance(wire, EncryptedPacket)
    opened = open_packet(replace_type(wire, EncryptionType.NONE), keys)  # JS writes NONE (R1): accepted
    assert opened is not None
    assert opened.value == UserPacket(payload=b"x")
    assert opened.state == EncryptionState.OK
    assert seal_packet(UserPacket(payload=b"x"), KeyRing.empty(KeyOptions())) is None
    with pytest.raises(LocalProtocolError):
        seal_packet(SipDtmf(code=1, digit="1"), keys)  # type: ignore[arg-type]


def replace_type(packet: EncryptedPacket, kind: EncryptionType) -> EncryptedPacket:
    return EncryptedPacket(kind, packet.iv, packet.key_index, packet.encrypted_value)


def test_opening_reports_each_failure() -> None:
    keys = ring(failure_tolerance=0, ratchet_window=0)
    sealed = seal_packet(UserPacket(payload=b"x"), keys)
    assert sealed is not None
    assert open_packet(sealed, None) is None
    bad_iv = EncryptedPacket(EncryptionType.GCM, b"short", 0, sealed.encrypted_value)
    short = EncryptedPacket(EncryptionType.GCM, sealed.iv, 0, b"\x00" * 15)
    other_index = EncryptedPacket(EncryptionType.GCM, sealed.iv, 7, sealed.encrypted_value)
    for packet, state in [
        (bad_iv, EncryptionState.DECRYPTION_FAILED),
        (short, EncryptionState.DECRYPTION_FAILED),
        (other_index, EncryptionState.MISSING_KEY),
    ]:
        opened = open_packet(packet, keys)
        assert opened is not None
        assert opened.state == state
        assert opened.value is None
    wrong = open_packet(sealed, ring(b"other", failure_tolerance=0, ratchet_window=0))
    assert wrong is not None
    assert wrong.state == EncryptionState.DECRYPTION_FAILED
    assert not wrong.ring.valid


def test_a_sealed_non_payload_is_a_decryption_failure() -> None:
    keys = ring()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = keys.key_at(0)
    assert key is not None
    garbage = AESGCM(key.key).encrypt(bytes(12), b"\xff\xff\xff", None)
    opened = open_packet(EncryptedPacket(EncryptionType.GCM, bytes(12), 0, garbage), keys)
    assert opened is not None
    assert opened.state == EncryptionState.DECRYPTION_FAILED


def test_a_packet_sealed_with_a_later_ratchet_opens_and_is_reported() -> None:
    ahead, _ = ring(b"base").ratcheted(0)
    sealed = seal_packet(UserPacket(payload=b"later"), ahead)
    assert sealed is not None
    opened = open_packet(sealed, ring(b"base", ratchet_window=2))
    assert opened is not None
    assert opened.state == EncryptionState.KEY_RATCHETED
    assert opened.ring.export(0) == ahead.export(0)
